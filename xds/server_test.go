package xds

import (
	"fmt"
	"io"
	"log/slog"
	"slices"
	"sort"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/weir-mesh/weir/translator/envoy"
	"github.com/weir-mesh/weir/translator/ir"
)

func quietServer(grace time.Duration) *Server {
	return NewServer(Options{ClusterGrace: grace, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
}

func node(t testing.TB, id string, md map[string]any) *corev3.Node {
	t.Helper()
	s, err := structpb.NewStruct(md)
	if err != nil {
		t.Fatal(err)
	}
	return &corev3.Node{Id: id, Metadata: s}
}

// twoVersions routes host web to clusters a and b by weight.
func twoVersions(wa, wb uint32) *ir.IR {
	var backends []ir.Backend
	if wa > 0 {
		backends = append(backends, ir.Backend{Cluster: "a", Weight: wa})
	}
	if wb > 0 {
		backends = append(backends, ir.Backend{Cluster: "b", Weight: wb})
	}
	var clusters []ir.Cluster
	for _, b := range backends {
		clusters = append(clusters, ir.Cluster{Name: b.Cluster, Endpoints: []ir.Endpoint{{Address: "127.0.0.1", Port: 8080}}})
	}
	return &ir.IR{
		Hosts:    []ir.Host{{Name: "web.default.svc.cluster.local:80", Service: "web", Namespace: "default", Port: 80, Routes: []ir.Route{{Name: "r", Backends: backends}}}},
		Clusters: clusters,
	}
}

func clusterNames(t *testing.T, s *Server, nodeID string) []string {
	t.Helper()
	snap, err := s.cache.GetSnapshot(nodeID)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for name := range snap.GetResources(resourcev3.ClusterType) {
		names = append(names, name)
	}
	sort.Strings(names)
	return names
}

func TestInvalidConfigurationKeepsLastGood(t *testing.T) {
	s := quietServer(0)
	s.Update(twoVersions(90, 10))
	register(t, s, "n1", envoy.Sidecar)
	good := s.SnapshotVersions("n1")

	broken := twoVersions(90, 10)
	broken.Clusters = broken.Clusters[:1] // the route still uses "b"
	s.Update(broken)
	if diff := cmp.Diff(good, s.SnapshotVersions("n1")); diff != "" {
		t.Errorf("an invalid configuration was published (-last good +now):\n%s", diff)
	}

	s.Update(twoVersions(50, 50))
	if s.SnapshotVersions("n1")[resourcev3.RouteType] == good[resourcev3.RouteType] {
		t.Error("a valid configuration after an invalid one was not published")
	}
}

func TestVersionsAreContentHashes(t *testing.T) {
	a, b := quietServer(0), quietServer(0)
	for _, s := range []*Server{a, b} {
		s.Update(twoVersions(75, 25))
		register(t, s, "n1", envoy.Sidecar)
	}
	if diff := cmp.Diff(a.SnapshotVersions("n1"), b.SnapshotVersions("n1")); diff != "" {
		t.Errorf("two servers with the same input publish different versions:\n%s", diff)
	}
	before := a.SnapshotVersions("n1")
	a.Update(twoVersions(70, 30))
	after := a.SnapshotVersions("n1")
	for _, typ := range []string{resourcev3.ClusterType, resourcev3.EndpointType, resourcev3.ListenerType} {
		if before[typ] != after[typ] {
			t.Errorf("%s version changed on a weight change", typ)
		}
	}
	if before[resourcev3.RouteType] == after[resourcev3.RouteType] {
		t.Error("route version did not change on a weight change")
	}
}

func TestRemovedClusterIsServedDuringGrace(t *testing.T) {
	s := quietServer(time.Hour)
	clock := time.Unix(1000, 0)
	s.now = func() time.Time { return clock }
	s.Update(twoVersions(50, 50))
	register(t, s, "n1", envoy.Sidecar)
	s.Update(twoVersions(100, 0))
	if diff := cmp.Diff([]string{"a", "b"}, clusterNames(t, s, "n1")); diff != "" {
		t.Errorf("cluster b left in the same push as the route that stopped using it:\n%s", diff)
	}
	clock = clock.Add(time.Hour)
	s.tick()
	if diff := cmp.Diff([]string{"a"}, clusterNames(t, s, "n1")); diff != "" {
		t.Errorf("cluster b still served after its grace period:\n%s", diff)
	}
}

// TestNewClusterBeforeRoute has a subscribed proxy answer each step: the
// cluster a route will use is published, and answered, before the route.
func TestNewClusterBeforeRoute(t *testing.T) {
	for _, role := range []envoy.Role{envoy.Sidecar, envoy.GRPC} {
		t.Run(string(role), func(t *testing.T) {
			s := quietServer(time.Hour)
			clock := new(time.Time)
			*clock = time.Unix(1000, 0)
			s.now = func() time.Time { return *clock }
			s.Update(twoVersions(100, 0))
			p := connect(t, s, "n1", role)
			routesBefore := s.SnapshotVersions("n1")[resourcev3.RouteType]

			s.Update(twoVersions(50, 50))
			if diff := cmp.Diff([]string{"a", "b"}, clusterNames(t, s, "n1")); diff != "" {
				t.Errorf("warm step clusters (-want +got):\n%s", diff)
			}
			if role == envoy.Sidecar && s.SnapshotVersions("n1")[resourcev3.RouteType] != routesBefore {
				t.Error("routes changed in the same step that added their cluster")
			}
			if role == envoy.GRPC && !standbyNames(t, s, "n1", "b") {
				t.Error("gRPC route configuration does not name the new cluster in its standby route")
			}
			warm := s.SnapshotVersions("n1")
			if role == envoy.GRPC {
				// grpc-go asks for a cluster once a route names it, and the
				// switch waits until it has ACKed that cluster's resources.
				p.ackAll(t)
				if s.SnapshotVersions("n1")[resourcev3.RouteType] != warm[resourcev3.RouteType] {
					t.Fatal("routes moved before the gRPC client had the new cluster")
				}
				for _, typ := range []string{resourcev3.ClusterType, resourcev3.EndpointType} {
					s.proxies.request(p.stream, request{typeURL: typ, names: []string{"a", "b"}})
				}
				*clock = clock.Add(grpcWarmDwell)
			}
			p.ackAll(t)
			if s.SnapshotVersions("n1")[resourcev3.RouteType] == warm[resourcev3.RouteType] {
				t.Error("routes did not move after the proxy answered the warm step")
			}
		})
	}
}

// fakeProxy stands for a proxy subscribed to every type it uses on one stream.
type fakeProxy struct {
	s      *Server
	stream int64
	node   string
	nonce  int
	// unsubscribed types get no responses.
	unsubscribed map[string]bool
}

func connect(t *testing.T, s *Server, id string, role envoy.Role) *fakeProxy {
	t.Helper()
	n := node(t, id, map[string]any{MetaRole: string(role)})
	key, err := proxyKey(n, s.opts)
	if err != nil {
		t.Fatal(err)
	}
	p := &fakeProxy{s: s, stream: 1, node: id, unsubscribed: map[string]bool{}}
	if role != envoy.Gateway {
		p.unsubscribed[resourcev3.SecretType] = true // only TLS listeners make Envoy ask for secrets
	}
	s.proxies.stream(p.stream, n, key, false)
	for _, typ := range typeURLs {
		if !p.unsubscribed[typ] {
			s.proxies.request(p.stream, request{typeURL: typ})
		}
	}
	s.registerNode(n, key)
	p.ackAll(t)
	return p
}

// ackAll sends and ACKs the node's current versions of every type.
func (p *fakeProxy) ackAll(t *testing.T) {
	t.Helper()
	for typ, v := range p.s.SnapshotVersions(p.node) {
		if p.unsubscribed[typ] {
			continue
		}
		p.nonce++
		nonce := fmt.Sprint(p.nonce)
		p.s.proxies.response(p.stream, typ, v, nonce)
		if _, answered, _ := p.s.proxies.request(p.stream, request{typeURL: typ, nonce: nonce}); answered {
			p.s.answered(p.node)
		}
	}
}

func standbyNames(t *testing.T, s *Server, nodeID, cluster string) bool {
	t.Helper()
	snap, err := s.cache.GetSnapshot(nodeID)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range snap.(*nodeView).Messages(resourcev3.RouteType) {
		for _, vh := range r.(*routev3.RouteConfiguration).VirtualHosts {
			for _, rt := range vh.Routes {
				if rt.Name == "standby" && slices.Contains(envoy.RouteClusters(rt), cluster) {
					return true
				}
			}
		}
	}
	return false
}

func register(t *testing.T, s *Server, id string, role envoy.Role) {
	t.Helper()
	n := node(t, id, map[string]any{MetaRole: string(role)})
	key, err := proxyKey(n, s.opts)
	if err != nil {
		t.Fatal(err)
	}
	s.registerNode(n, key)
}

func TestProxyKey(t *testing.T) {
	opts := Options{OutboundAddress: "127.0.0.1", OutboundPort: 15001}
	tests := map[string]struct {
		node    *corev3.Node
		want    envoy.Proxy
		wantErr bool
	}{
		"sidecar with namespace and port": {
			node: node(t, "a", map[string]any{MetaRole: "sidecar", MetaNamespace: "shop", MetaOutboundPort: "16001"}),
			want: envoy.Proxy{Role: envoy.Sidecar, Namespace: "shop", OutboundAddress: "127.0.0.1", OutboundPort: 16001},
		},
		"numeric port": {
			node: node(t, "a", map[string]any{MetaRole: "sidecar", MetaOutboundPort: 16002}),
			want: envoy.Proxy{Role: envoy.Sidecar, OutboundAddress: "127.0.0.1", OutboundPort: 16002},
		},
		"no role: sidecar": {
			node: node(t, "a", map[string]any{}),
			want: envoy.Proxy{Role: envoy.Sidecar, OutboundAddress: "127.0.0.1", OutboundPort: 15001},
		},
		"no role, gRPC user agent": {
			node: &corev3.Node{Id: "a", UserAgentName: "gRPC Go"},
			want: envoy.Proxy{Role: envoy.GRPC},
		},
		"grpc ignores namespace and outbound settings": {
			node: node(t, "a", map[string]any{MetaRole: "grpc", MetaNamespace: "x", MetaOutboundPort: "1"}),
			want: envoy.Proxy{Role: envoy.GRPC},
		},
		"scoped routes": {
			node: node(t, "a", map[string]any{MetaScopedRoutes: "true"}),
			want: envoy.Proxy{Role: envoy.Sidecar, OutboundAddress: "127.0.0.1", OutboundPort: 15001, ScopedRoutes: true},
		},
		"scoped routes as a bool": {
			node: node(t, "a", map[string]any{MetaScopedRoutes: true}),
			want: envoy.Proxy{Role: envoy.Sidecar, OutboundAddress: "127.0.0.1", OutboundPort: 15001, ScopedRoutes: true},
		},
		"gRPC never scoped": {
			node: node(t, "a", map[string]any{MetaRole: "grpc", MetaScopedRoutes: "true"}),
			want: envoy.Proxy{Role: envoy.GRPC},
		},
		"bad scoped routes": {node: node(t, "a", map[string]any{MetaScopedRoutes: "yes please"}), wantErr: true},
		"unknown role":      {node: node(t, "a", map[string]any{MetaRole: "router"}), wantErr: true},
		"bad port":          {node: node(t, "a", map[string]any{MetaOutboundPort: "http"}), wantErr: true},
		"port too big":      {node: node(t, "a", map[string]any{MetaOutboundPort: 70000}), wantErr: true},
		"no id":             {node: &corev3.Node{}, wantErr: true},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got, err := proxyKey(tc.node, opts)
			if (err != nil) != tc.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tc.wantErr)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

// TestSubscriptionChangeAnswersStep: a sidecar asks for the route
// configuration of a new host once the scopes naming it arrive, so the
// route version it ACKs is the one of its new subscription, not the one
// published with the step. That answers the step, and the next change is
// published at once.
func TestSubscriptionChangeAnswersStep(t *testing.T) {
	s := quietServer(time.Hour)
	s.opts.ScopedRoutes = true
	// Host api appears, and web's routes change in the same step.
	withAPI := func(weight uint32) *ir.IR {
		in := twoVersions(50, 50)
		api := ir.Host{Name: "api.default.svc.cluster.local:80", Service: "api", Namespace: "default", Port: 80,
			Routes: []ir.Route{{Name: "r", Backends: []ir.Backend{{Cluster: "c", Weight: weight}, {Cluster: "a", Weight: 100 - weight}}}}}
		in.Hosts = []ir.Host{api, in.Hosts[0]}
		in.Clusters = append(in.Clusters, ir.Cluster{Name: "c", Endpoints: []ir.Endpoint{{Address: "127.0.0.2", Port: 8080}}})
		return in
	}
	s.Update(twoVersions(100, 0))
	p := connect(t, s, "n1", envoy.Sidecar)
	routes := []string{"web.default.svc.cluster.local:80"}
	// ack answers every type's current version, asking for routes by name.
	ack := func() {
		for typ, v := range s.SnapshotVersions("n1") {
			if p.unsubscribed[typ] {
				continue
			}
			p.nonce++
			nonce := fmt.Sprint(p.nonce)
			s.proxies.response(p.stream, typ, v, nonce)
			r := request{typeURL: typ, nonce: nonce}
			if typ == resourcev3.RouteType {
				r.names = routes
			}
			if _, answered, _ := s.proxies.request(p.stream, r); answered {
				s.answered("n1")
			}
		}
	}
	s.proxies.request(p.stream, request{typeURL: resourcev3.RouteType, names: routes})
	ack()

	s.Update(withAPI(50))
	ack() // the warm step: cluster c
	if got := s.PublishedNames("n1", resourcev3.ScopedRouteType); !slices.Contains(got, "api.default:80") {
		t.Fatalf("scopes after the warm step's answer: %v, want api's", got)
	}
	routes = append([]string{"api.default.svc.cluster.local:80"}, routes...)
	s.proxies.request(p.stream, request{typeURL: resourcev3.RouteType, names: routes})
	ack() // the switch, at the version of the new subscription
	before := s.SnapshotVersions("n1")[resourcev3.RouteType]
	s.Update(withAPI(10))
	if s.SnapshotVersions("n1")[resourcev3.RouteType] == before {
		t.Fatal("a weight change was not published: the switch before it still waits for an answer")
	}
}

// checkKeyCounts compares each key's counts of nodes, and of nodes that
// have its desired configuration, with a scan of the nodes.
func checkKeyCounts(t *testing.T, s *Server, when string) {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	nodes, arrived := map[envoy.Proxy]int{}, map[envoy.Proxy]int{}
	for _, ns := range s.nodes {
		nodes[ns.key]++
		if ks := s.keys[ns.key]; ks != nil && ns.published == ks.desired {
			arrived[ns.key]++
		}
	}
	for key, ks := range s.keys {
		if ks.nodes != nodes[key] || ks.arrived != arrived[key] {
			t.Errorf("%s: key %v counts %d nodes, %d arrived; the nodes say %d, %d", when, key, ks.nodes, ks.arrived, nodes[key], arrived[key])
		}
	}
	for key := range nodes {
		if s.keys[key] == nil {
			t.Errorf("%s: nodes of key %v, which has no state", when, key)
		}
	}
}

// TestKeyCountsFollowNodes: the counts that tell whether a key's nodes all
// have its desired configuration follow connects, updates, ACKs, a node
// that comes back as another kind of proxy, and disconnects.
func TestKeyCountsFollowNodes(t *testing.T) {
	s := quietServer(0)
	s.Update(twoVersions(90, 10))
	a := connect(t, s, "a", envoy.Sidecar)
	b := connect(t, s, "b", envoy.Sidecar)
	connect(t, s, "g", envoy.GRPC)
	checkKeyCounts(t, s, "connected")
	s.mu.Lock()
	settled := s.allSettledLocked()
	s.mu.Unlock()
	if !settled {
		t.Error("every node ACKed its configuration, yet the nodes are not all settled")
	}
	s.Update(twoVersions(50, 50))
	checkKeyCounts(t, s, "updated")
	a.ackAll(t)
	checkKeyCounts(t, s, "one sidecar ACKed")
	b.ackAll(t)
	checkKeyCounts(t, s, "both sidecars ACKed")
	register(t, s, "a", envoy.Gateway)
	checkKeyCounts(t, s, "a came back as a gateway")
	s.forgetNode("b")
	checkKeyCounts(t, s, "b left")
	s.mu.Lock()
	_, sidecarKey := s.keys[envoy.Proxy{Role: envoy.Sidecar, Namespace: "default", OutboundAddress: "127.0.0.1", OutboundPort: 15001}]
	keys := len(s.keys)
	s.mu.Unlock()
	if sidecarKey || keys != 2 {
		t.Errorf("after the last sidecar left: %d keys, the sidecars' still there: %v; want the gateway's and the gRPC clients'", keys, sidecarKey)
	}
}
