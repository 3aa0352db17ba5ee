package xds

import (
	"context"
	"fmt"
	"maps"
	"net"
	"reflect"
	"slices"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"github.com/google/go-cmp/cmp"
	"google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/weir-mesh/weir/translator/envoy"
	"github.com/weir-mesh/weir/translator/ir"
)

// manyHosts is n hosts, host(i), each sending 90% of its traffic to
// cluster(i, "a") and 10% to cluster(i, "b"), but half and half for the
// hosts in even. Every cluster's endpoint is 10.0.0.1, but 10.0.0.2 for
// the clusters in moved.
func manyHosts(n int, even []int, moved ...string) *ir.IR {
	in := &ir.IR{}
	for i := range n {
		wa, wb := uint32(90), uint32(10)
		if slices.Contains(even, i) {
			wa, wb = 50, 50
		}
		in.Hosts = append(in.Hosts, ir.Host{Name: host(i), Service: fmt.Sprintf("svc%d", i), Namespace: "default", Port: 80,
			Routes: []ir.Route{{Name: "r", Backends: []ir.Backend{{Cluster: cluster(i, "a"), Weight: wa}, {Cluster: cluster(i, "b"), Weight: wb}}}}})
		for _, v := range []string{"a", "b"} {
			addr := "10.0.0.1"
			if slices.Contains(moved, cluster(i, v)) {
				addr = "10.0.0.2"
			}
			in.Clusters = append(in.Clusters, ir.Cluster{Name: cluster(i, v), Endpoints: []ir.Endpoint{{Address: addr, Port: 8080}}})
		}
	}
	return in
}

func host(i int) string              { return fmt.Sprintf("svc%d.default.svc.cluster.local:80", i) }
func cluster(i int, v string) string { return fmt.Sprintf("svc%d-%s", i, v) }

func hosts(is ...int) []string {
	var out []string
	for _, i := range is {
		out = append(out, host(i))
	}
	return out
}

// serveLoopback serves s on a loopback port until the test ends and
// returns a connection to it.
func serveLoopback(t *testing.T, s *Server) *grpc.ClientConn {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- s.Serve(ctx, lis) }()
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		conn.Close()
		cancel()
		if err := <-served; err != nil {
			t.Error(err)
		}
	})
	return conn
}

// sotwClient is a raw state-of-the-world ADS client: it sends what it is
// told to and hands over every response.
type sotwClient struct {
	t      *testing.T
	stream discoveryv3.AggregatedDiscoveryService_StreamAggregatedResourcesClient
	node   *corev3.Node
	// names is what the client asks for, by type.
	names map[string][]string
}

// dialSotW opens an ADS stream as node id of role; it fails the test
// if no response comes within 20 s.
func dialSotW(t *testing.T, conn *grpc.ClientConn, id string, role envoy.Role) *sotwClient {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	stream, err := discoveryv3.NewAggregatedDiscoveryServiceClient(conn).StreamAggregatedResources(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return &sotwClient{t: t, stream: stream, node: node(t, id, map[string]any{MetaRole: string(role)}), names: map[string][]string{}}
}

// ask asks for names of typeURL as a new subscription, or a changed one
// after last (nil: none yet).
func (c *sotwClient) ask(typeURL string, last *discoveryv3.DiscoveryResponse, names ...string) {
	c.t.Helper()
	c.names[typeURL] = names
	c.send(&discoveryv3.DiscoveryRequest{TypeUrl: typeURL, ResourceNames: names,
		VersionInfo: last.GetVersionInfo(), ResponseNonce: last.GetNonce()})
}

// ack accepts resp, asking for the same names.
func (c *sotwClient) ack(resp *discoveryv3.DiscoveryResponse) {
	c.t.Helper()
	c.send(&discoveryv3.DiscoveryRequest{TypeUrl: resp.GetTypeUrl(), ResourceNames: c.names[resp.GetTypeUrl()],
		VersionInfo: resp.GetVersionInfo(), ResponseNonce: resp.GetNonce()})
}

// nack rejects resp, which came after accepted (nil: none).
func (c *sotwClient) nack(resp, accepted *discoveryv3.DiscoveryResponse) {
	c.t.Helper()
	c.send(&discoveryv3.DiscoveryRequest{TypeUrl: resp.GetTypeUrl(), ResourceNames: c.names[resp.GetTypeUrl()],
		VersionInfo: accepted.GetVersionInfo(), ResponseNonce: resp.GetNonce(), ErrorDetail: &status.Status{Message: "rejected"}})
}

func (c *sotwClient) send(req *discoveryv3.DiscoveryRequest) {
	c.t.Helper()
	req.Node = c.node
	if err := c.stream.Send(req); err != nil {
		c.t.Fatal(err)
	}
}

// recv returns the next response, which must be of typeURL.
func (c *sotwClient) recv(typeURL string) *discoveryv3.DiscoveryResponse {
	c.t.Helper()
	resp, err := c.stream.Recv()
	if err != nil {
		c.t.Fatalf("waiting for a response of %s: %v", typeURL, err)
	}
	if resp.GetTypeUrl() != typeURL {
		c.t.Fatalf("got a response of %s, want %s", resp.GetTypeUrl(), typeURL)
	}
	return resp
}

// close ends the stream and waits until the server has closed it.
func (c *sotwClient) close() {
	c.t.Helper()
	if err := c.stream.CloseSend(); err != nil {
		c.t.Fatal(err)
	}
	for {
		if _, err := c.stream.Recv(); err != nil {
			return
		}
	}
}

// names returns the names of the resources resp holds, sorted.
func names(t *testing.T, resp *discoveryv3.DiscoveryResponse) []string {
	t.Helper()
	out := []string{}
	for _, a := range resp.GetResources() {
		m, err := a.UnmarshalNew()
		if err != nil {
			t.Fatal(err)
		}
		switch r := m.(type) {
		case *routev3.RouteConfiguration:
			out = append(out, r.GetName())
		case *endpointv3.ClusterLoadAssignment:
			out = append(out, r.GetClusterName())
		default:
			t.Fatalf("unexpected resource %T", m)
		}
	}
	slices.Sort(out)
	return out
}

func wantNames(t *testing.T, what string, want []string, resp *discoveryv3.DiscoveryResponse) {
	t.Helper()
	slices.Sort(want)
	if diff := cmp.Diff(want, names(t, resp)); diff != "" {
		t.Errorf("%s (version %s) holds (-want +got):\n%s", what, resp.GetVersionInfo(), diff)
	}
}

// TestPartialRouteResponses has a proxyless gRPC client, which asks for a
// route configuration per host, take a full response and then only the
// route configuration that changed.
func TestPartialRouteResponses(t *testing.T) {
	s := quietServer(0)
	s.Update(manyHosts(6, nil))
	c := dialSotW(t, serveLoopback(t, s), "g1", envoy.GRPC)
	rds := resourcev3.RouteType
	subscribed := hosts(0, 1, 2, 3, 4)
	c.ask(rds, nil, subscribed...)
	first := c.recv(rds)
	wantNames(t, "the first response", subscribed, first)
	c.ack(first)

	s.Update(manyHosts(6, []int{2}))
	second := c.recv(rds)
	wantNames(t, "the response after host 2 changed", hosts(2), second)
	if second.GetVersionInfo() == first.GetVersionInfo() {
		t.Error("the version did not change")
	}
	c.ack(second)

	// A host the client does not ask for changes nothing it sees; the
	// next change brings only the host that changed, not 2 again.
	s.Update(manyHosts(6, []int{2, 5}))
	s.Update(manyHosts(6, []int{2, 5, 0}))
	wantNames(t, "the response after host 0 changed", hosts(0), c.recv(rds))
}

// routesClient serves six hosts to a proxyless gRPC client that asks for
// the route configurations of hosts 0 to 4 and ACKs the first response.
func routesClient(t *testing.T) (s *Server, c *sotwClient, subscribed []string, first *discoveryv3.DiscoveryResponse) {
	t.Helper()
	s = quietServer(0)
	s.Update(manyHosts(6, nil))
	c = dialSotW(t, serveLoopback(t, s), "g1", envoy.GRPC)
	subscribed = hosts(0, 1, 2, 3, 4)
	c.ask(resourcev3.RouteType, nil, subscribed...)
	first = c.recv(resourcev3.RouteType)
	c.ack(first)
	return s, c, subscribed, first
}

// TestPartialRoutesAfterNACK checks that the response after a NACK holds
// every route configuration, as the client may hold any mix of the ones
// it rejected and the ones before, and that the rejected response is not
// sent again meanwhile.
func TestPartialRoutesAfterNACK(t *testing.T) {
	s, c, subscribed, first := routesClient(t)
	rds := resourcev3.RouteType

	s.Update(manyHosts(6, []int{1}))
	rejected := c.recv(rds)
	wantNames(t, "the response after host 1 changed", hosts(1), rejected)
	c.nack(rejected, first)
	// The server reads a stream's requests in order: once it answers the
	// next one, it has taken the NACK, and whatever it answered the NACK
	// with comes before the response to the next change.
	eds := resourcev3.EndpointType
	c.ask(eds, nil, cluster(0, "a"))
	for {
		resp, err := c.stream.Recv()
		if err != nil {
			t.Fatal(err)
		}
		if resp.GetTypeUrl() == eds {
			break
		}
		t.Fatalf("%s version %s sent again after its NACK, holding %v", resp.GetTypeUrl(), resp.GetVersionInfo(), names(t, resp))
	}

	s.Update(manyHosts(6, []int{1, 3}))
	next := c.recv(rds)
	if next.GetVersionInfo() == rejected.GetVersionInfo() {
		t.Fatal("the rejected version was sent again")
	}
	wantNames(t, "the response after a NACK", subscribed, next)
	c.ack(next)

	s.Update(manyHosts(6, []int{1, 3, 4}))
	wantNames(t, "the response after the next ACK", hosts(4), c.recv(rds))
}

// TestPartialRoutesOnANewStream checks that a node's new stream gets
// every route configuration; that while the node has two streams, which
// may hold different ones, each gets every one; and that once the old
// stream closed, responses are partial again after a full one.
func TestPartialRoutesOnANewStream(t *testing.T) {
	s := quietServer(0)
	s.Update(manyHosts(6, nil))
	conn := serveLoopback(t, s)
	old := dialSotW(t, conn, "g1", envoy.GRPC)
	rds := resourcev3.RouteType
	subscribed := hosts(0, 1, 2, 3, 4)
	old.ask(rds, nil, subscribed...)
	first := old.recv(rds)
	old.ack(first)
	s.Update(manyHosts(6, []int{0}))
	resp := old.recv(rds)
	wantNames(t, "the response on the old stream", hosts(0), resp)
	old.nack(resp, first) // the old stream holds host 0 as it was

	c := dialSotW(t, conn, "g1", envoy.GRPC)
	c.ask(rds, nil, subscribed...)
	resp = c.recv(rds)
	wantNames(t, "the first response on a new stream", subscribed, resp)
	c.ack(resp) // the new stream holds host 0 as it is

	s.Update(manyHosts(6, []int{0, 1}))
	wantNames(t, "the old stream's response while the node has two", subscribed, old.recv(rds))
	resp = c.recv(rds)
	wantNames(t, "the new stream's response while the node has two", subscribed, resp)
	c.ack(resp)
	old.close()

	s.Update(manyHosts(6, []int{0, 1, 2}))
	resp = c.recv(rds)
	wantNames(t, "the first response once the old stream closed", subscribed, resp)
	c.ack(resp)

	s.Update(manyHosts(6, []int{0, 1, 2, 3}))
	wantNames(t, "the next response", hosts(3), c.recv(rds))
}

// TestPartialRoutesAskedAgain has the client stop asking for a route
// configuration, which it then drops, and ask for it again at once: the
// version it has is the current one, and the route configuration is sent
// though nothing changed.
func TestPartialRoutesAskedAgain(t *testing.T) {
	s, c, subscribed, first := routesClient(t)
	rds := resourcev3.RouteType

	c.ask(rds, first, hosts(0, 1, 2, 3)...)
	c.ask(rds, first, subscribed...)
	// The server may answer the first request before it reads the second,
	// which it then ignores (its nonce is stale): the client ACKs that
	// response, asking for host 4 again.
	for i := 0; ; i++ {
		resp := c.recv(rds)
		c.ack(resp)
		if slices.Contains(names(t, resp), host(4)) {
			break
		}
		if i == 1 {
			t.Fatal("host 4, asked for again, was not sent")
		}
	}

	// Once the client ACKed it, host 4 is sent only when it changes.
	s.Update(manyHosts(6, []int{2}))
	wantNames(t, "the response after host 2 changed", hosts(2), c.recv(rds))
}

// TestPartialEndpointResponses has a sidecar asking for many load
// assignments get all of them, then only the one that changed.
func TestPartialEndpointResponses(t *testing.T) {
	s := quietServer(0)
	s.Update(manyHosts(8, nil))
	c := dialSotW(t, serveLoopback(t, s), "s1", envoy.Sidecar)
	eds := resourcev3.EndpointType
	var subscribed []string
	for i := range 4 {
		subscribed = append(subscribed, cluster(i, "a"), cluster(i, "b"))
	}
	c.ask(eds, nil, subscribed...)
	first := c.recv(eds)
	wantNames(t, "the first response", subscribed, first)
	c.ack(first)

	// svc7-a is not asked for: it is not sent.
	s.Update(manyHosts(8, nil, cluster(2, "b"), cluster(7, "a")))
	wantNames(t, "the response after svc2-b moved", []string{cluster(2, "b")}, c.recv(eds))
}

// TestPartialBaseUnknown drives the tracker as go-control-plane would
// when a response is not the one the view last offered: the node's base
// becomes unknown and the next response holds everything.
func TestPartialBaseUnknown(t *testing.T) {
	rds := resourcev3.RouteType
	v1 := wireResources{"a": {Resource: &routev3.RouteConfiguration{Name: "a"}}, "b": {Resource: &routev3.RouteConfiguration{Name: "b"}}}
	v2 := wireResources{"a": {Resource: &routev3.RouteConfiguration{Name: "a"}}, "b": v1["b"]} // a changed
	tests := map[string]func(tr *proxyTracker){
		// The response sent is of another version than the view's last offer.
		"another version": func(tr *proxyTracker) {
			_, h := tr.sotw("n1", rds)
			tr.offered(h, offer{version: "v2", full: v2, resp: h.response("v2", v2)})
			tr.response(1, rds, "v3", "2")
			tr.request(1, request{typeURL: rds, nonce: "2", names: []string{"a", "b"}})
		},
		// An ACK comes between the view reading the node's state and
		// recording its offer, which it made from the older base.
		"offer from an older state": func(tr *proxyTracker) {
			_, h := tr.sotw("n1", rds)
			tr.response(1, rds, "v1", "2")
			tr.request(1, request{typeURL: rds, nonce: "2", names: []string{"a", "b"}})
			tr.offered(h, offer{version: "v2", full: v2, resp: h.response("v2", v2)})
			tr.response(1, rds, "v2", "3")
			tr.request(1, request{typeURL: rds, nonce: "3", names: []string{"a", "b"}})
		},
	}
	for name, then := range tests {
		t.Run(name, func(t *testing.T) {
			tr := quietServer(0).proxies
			n := node(t, "n1", map[string]any{MetaRole: string(envoy.GRPC)})
			tr.stream(1, n, envoy.Proxy{Role: envoy.GRPC}, false)
			tr.request(1, request{typeURL: rds, names: []string{"a", "b"}})
			_, h := tr.sotw("n1", rds)
			tr.offered(h, offer{version: "v1", full: v1, resp: h.response("v1", v1)})
			tr.response(1, rds, "v1", "1")
			tr.request(1, request{typeURL: rds, nonce: "1", names: []string{"a", "b"}})
			if _, h := tr.sotw("n1", rds); len(h.response("v1", v1)) != 0 {
				t.Fatal("after the ACK, the node is sent what it holds")
			}
			then(tr)
			if _, h := tr.sotw("n1", rds); len(h.response("v2", v2)) != 2 {
				t.Errorf("the response after: %d resources, want 2", len(h.response("v2", v2)))
			}
		})
	}
}

// TestChangedSinceIsShared: nodes holding the same base get one response
// map, which holds what differs from the base; another base gets its own.
func TestChangedSinceIsShared(t *testing.T) {
	res := func(name string) types.ResourceWithTTL {
		return types.ResourceWithTTL{Resource: &routev3.RouteConfiguration{Name: name}}
	}
	a, b, newB, c := res("a"), res("b"), res("b"), res("c")
	base := wireResources{"a": a, "b": b}
	full := wireResources{"a": a, "b": newB, "c": c}
	sn := &snapshot{}
	id := sn.mapID(resourcev3.RouteType, nil)
	if other := sn.mapID(resourcev3.EndpointType, nil); other == id {
		t.Fatal("two maps share an id")
	}
	got := sn.changedSince(holding{base: base, baseID: 1}, id, full)
	if names := slices.Sorted(maps.Keys(got)); !slices.Equal(names, []string{"b", "c"}) {
		t.Errorf("changed since the base: %v, want [b c]", names)
	}
	again := sn.changedSince(holding{base: base, baseID: 1}, id, full)
	if reflect.ValueOf(again).UnsafePointer() != reflect.ValueOf(got).UnsafePointer() {
		t.Error("a second node with the same base got a map of its own")
	}
	fresh := sn.changedSince(holding{base: wireResources{}, baseID: 2}, id, full)
	if len(fresh) != 3 {
		t.Errorf("changed since an empty base: %d resources, want 3", len(fresh))
	}
}

// TestReconnectBeforeFirstTranslation checks that a SotW proxy that
// reconnects before weir has a configuration for it (a restarted weir),
// naming the version it holds, is answered with everything once there is
// one, as a stream that found the configuration is, and ACKs it.
func TestReconnectBeforeFirstTranslation(t *testing.T) {
	first := quietServer(0)
	first.Update(manyHosts(3, nil))
	c := dialSotW(t, serveLoopback(t, first), "a", envoy.Sidecar)
	c.ask(resourcev3.ClusterType, nil)
	held := c.recv(resourcev3.ClusterType)

	restarted := quietServer(0)
	c = dialSotW(t, serveLoopback(t, restarted), "a", envoy.Sidecar)
	c.send(&discoveryv3.DiscoveryRequest{TypeUrl: resourcev3.ClusterType, VersionInfo: held.GetVersionInfo()})
	waitFor(t, func() bool {
		info := restarted.cache.GetStatusInfo("a")
		return info != nil && info.GetNumWatches() == 1
	})
	restarted.Update(manyHosts(3, nil))
	resp := c.recv(resourcev3.ClusterType)
	if resp.GetVersionInfo() != held.GetVersionInfo() || len(resp.GetResources()) != len(held.GetResources()) {
		t.Errorf("answered with version %s and %d clusters, want %s and %d", resp.GetVersionInfo(), len(resp.GetResources()), held.GetVersionInfo(), len(held.GetResources()))
	}
	c.ack(resp)
	waitFor(t, func() bool { return restarted.proxies.acked("a", resourcev3.ClusterType, held.GetVersionInfo()) })
}

// waitFor polls cond, which watches state no event announces, for up to
// ten seconds.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("condition not met in 10 s")
		}
	}
}
