package xds

import (
	"context"
	"slices"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"github.com/google/go-cmp/cmp"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"

	"github.com/weir-mesh/weir/translator/envoy"
)

// deltaClient is a raw delta ADS client.
type deltaClient struct {
	t      *testing.T
	stream discoveryv3.AggregatedDiscoveryService_DeltaAggregatedResourcesClient
	node   *corev3.Node
	sent   bool
}

func dialDelta(t *testing.T, conn *grpc.ClientConn, id string, role envoy.Role) *deltaClient {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	stream, err := discoveryv3.NewAggregatedDiscoveryServiceClient(conn).DeltaAggregatedResources(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return &deltaClient{t: t, stream: stream, node: node(t, id, map[string]any{MetaRole: string(role)})}
}

func (c *deltaClient) send(req *discoveryv3.DeltaDiscoveryRequest) {
	c.t.Helper()
	if !c.sent {
		req.Node, c.sent = c.node, true
	}
	if err := c.stream.Send(req); err != nil {
		c.t.Fatal(err)
	}
}

// recv returns the next response of typeURL, ACKing those of other types.
func (c *deltaClient) recv(typeURL string) *discoveryv3.DeltaDiscoveryResponse {
	c.t.Helper()
	for {
		resp, err := c.stream.Recv()
		if err != nil {
			c.t.Fatalf("waiting for %s: %v", typeURL, err)
		}
		if resp.GetTypeUrl() == typeURL {
			return resp
		}
		c.ack(resp)
	}
}

func (c *deltaClient) ack(resp *discoveryv3.DeltaDiscoveryResponse) {
	c.t.Helper()
	c.send(&discoveryv3.DeltaDiscoveryRequest{TypeUrl: resp.GetTypeUrl(), ResponseNonce: resp.GetNonce()})
}

func deltaNames(resp *discoveryv3.DeltaDiscoveryResponse) []string {
	var out []string
	for _, r := range resp.GetResources() {
		out = append(out, r.GetName())
	}
	return out
}

// TestDeltaSendsWhatChanged checks that a delta stream gets every resource
// it subscribes to once, then only those a change touched, as the
// messages weir built.
func TestDeltaSendsWhatChanged(t *testing.T) {
	s := quietServer(0)
	s.Update(manyHosts(20, nil))
	g := dialDelta(t, serveLoopback(t, s), "grpc", envoy.GRPC)
	g.send(&discoveryv3.DeltaDiscoveryRequest{TypeUrl: resourcev3.ListenerType, ResourceNamesSubscribe: hosts(0, 1)})
	lds := g.recv(resourcev3.ListenerType)
	if diff := cmp.Diff(hosts(0, 1), deltaNames(lds)); diff != "" {
		t.Fatalf("listeners (-want +got):\n%s", diff)
	}
	g.ack(lds)
	g.send(&discoveryv3.DeltaDiscoveryRequest{TypeUrl: resourcev3.RouteType, ResourceNamesSubscribe: hosts(0, 1, 2)})
	rds := g.recv(resourcev3.RouteType)
	if diff := cmp.Diff(hosts(0, 1, 2), deltaNames(rds)); diff != "" {
		t.Fatalf("route configurations (-want +got):\n%s", diff)
	}
	var rc routev3.RouteConfiguration
	if err := rds.GetResources()[1].GetResource().UnmarshalTo(&rc); err != nil || rc.GetName() != host(1) {
		t.Fatalf("route configuration %s decodes to %q, %v", host(1), rc.GetName(), err)
	}
	s.mu.Lock()
	want, ok := s.nodes["grpc"].published.snap.Messages(resourcev3.RouteType)[host(1)]
	s.mu.Unlock()
	if !ok || !proto.Equal(want, &rc) {
		t.Errorf("route configuration %s is not the one published", host(1))
	}
	g.ack(rds)

	// One host's weights change: its route configuration alone, once the
	// steps reach it.
	s.Update(manyHosts(20, []int{1}))
	for {
		resp := g.recv(resourcev3.RouteType)
		if len(resp.GetRemovedResources()) > 0 {
			t.Fatalf("removed %v", resp.GetRemovedResources())
		}
		if got := deltaNames(resp); !slices.Equal(got, hosts(1)) {
			t.Fatalf("after host 1 changed, a response held %v, want only %v", got, hosts(1))
		}
		g.ack(resp)
		if resp.GetSystemVersionInfo() == s.DesiredVersions("grpc")[resourcev3.RouteType] {
			break
		}
	}

	// Subscribed anew, a host is sent as it is now; unsubscribed, its
	// changes are not sent.
	g.send(&discoveryv3.DeltaDiscoveryRequest{TypeUrl: resourcev3.RouteType, ResourceNamesSubscribe: hosts(3), ResourceNamesUnsubscribe: hosts(2)})
	resp := g.recv(resourcev3.RouteType)
	if got := deltaNames(resp); !slices.Equal(got, hosts(3)) {
		t.Fatalf("subscribing to host 3: got %v, want %v", got, hosts(3))
	}
	g.ack(resp)
	s.Update(manyHosts(20, []int{2})) // host 1 back to 90/10, host 2 to 50/50
	resp = g.recv(resourcev3.RouteType)
	if got := deltaNames(resp); !slices.Equal(got, hosts(1)) {
		t.Errorf("hosts 1 and 2 changed, 2 unsubscribed: got %v, want %v", got, hosts(1))
	}
}

// TestDeltaReconnectSkipsHeld checks that a proxy reconnecting with the
// versions it holds gets only what differs, and that resources gone
// since are removed.
func TestDeltaReconnectSkipsHeld(t *testing.T) {
	s := quietServer(0)
	s.Update(manyHosts(3, nil))
	conn := serveLoopback(t, s)
	a := dialDelta(t, conn, "a", envoy.Sidecar)
	a.send(&discoveryv3.DeltaDiscoveryRequest{TypeUrl: resourcev3.ClusterType})
	cds := a.recv(resourcev3.ClusterType)
	held := map[string]string{"gone": "v0"}
	for _, r := range cds.GetResources() {
		held[r.GetName()] = r.GetVersion()
	}
	held[cluster(0, "a")] = "stale"

	b := dialDelta(t, conn, "b", envoy.Sidecar)
	b.send(&discoveryv3.DeltaDiscoveryRequest{TypeUrl: resourcev3.ClusterType, InitialResourceVersions: held})
	resp := b.recv(resourcev3.ClusterType)
	if got := deltaNames(resp); !slices.Equal(got, []string{cluster(0, "a")}) {
		t.Errorf("reconnected with every cluster but one stale: got %v", got)
	}
	if got := resp.GetRemovedResources(); !slices.Equal(got, []string{"gone"}) {
		t.Errorf("removed %v, want [gone]", got)
	}
}

// TestDeltaFirstWildcardResponseIsSentEmpty checks that a proxy asking for
// a type of which there is nothing still gets a response, which Envoy
// waits for to finish initializing.
func TestDeltaFirstWildcardResponseIsSentEmpty(t *testing.T) {
	s := quietServer(0)
	s.Update(manyHosts(1, nil))
	c := dialDelta(t, serveLoopback(t, s), "a", envoy.Sidecar)
	c.send(&discoveryv3.DeltaDiscoveryRequest{TypeUrl: resourcev3.SecretType})
	if resp := c.recv(resourcev3.SecretType); len(resp.GetResources())+len(resp.GetRemovedResources()) != 0 {
		t.Errorf("secrets: got %v", resp)
	}
}
