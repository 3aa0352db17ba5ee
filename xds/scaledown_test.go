package xds

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"
	"weak"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	cachev3 "github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	serverv3 "github.com/envoyproxy/go-control-plane/pkg/server/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/weir-mesh/weir/translator"
	"github.com/weir-mesh/weir/translator/benchmesh"
	"github.com/weir-mesh/weir/translator/envoy"
	"github.com/weir-mesh/weir/translator/ir"
)

// benchIR is the IR of the benchmark mesh of n services.
func benchIR(t *testing.T, n int) *ir.IR {
	t.Helper()
	store, err := benchmesh.Store(n)
	if err != nil {
		t.Fatal(err)
	}
	return translator.Translate(store.Snapshot(), translator.Options{}).IR
}

// mesh serves a Server over loopback to followers: clients that subscribe
// like Envoy or grpc-go, follow references and ACK every response. It
// tells when every proxy is settled: the server has nothing more to
// publish to it, and nothing sent to it or asked by it is unanswered.
type mesh struct {
	t      *testing.T
	s      *Server
	conn   *grpc.ClientConn
	events chan struct{} // a value after anything happened (buffer 1)
	stop   func()        // ends the clients and the server

	mu sync.Mutex
	// unwatched are the nodes with a request the callbacks took and the
	// cache has not. A SotW request whose nonce is stale never reaches the
	// cache; the node's next request, the ACK of the newer response, does.
	unwatched map[string]bool
	clients   []*follower
}

// watchedCache tells mesh when the cache took a request.
type watchedCache struct {
	cachev3.SnapshotCache
	m *mesh
}

func (c watchedCache) CreateWatch(r *cachev3.Request, sub cachev3.Subscription, out chan cachev3.Response) (func(), error) {
	defer c.m.watched(r.GetNode().GetId())
	return c.SnapshotCache.CreateWatch(r, sub, out)
}

func (m *mesh) watched(nodeID string) {
	m.mu.Lock()
	delete(m.unwatched, nodeID)
	m.mu.Unlock()
	m.notify()
}

func (m *mesh) notify() {
	select {
	case m.events <- struct{}{}:
	default:
	}
}

// serveMesh serves s until the test ends.
func serveMesh(t *testing.T, s *Server) *mesh {
	t.Helper()
	m := &mesh{t: t, s: s, events: make(chan struct{}, 1), unwatched: map[string]bool{}}
	cb := s.callbacks().(serverv3.CallbackFuncs)
	sotw := cb.StreamRequestFunc
	cb.StreamRequestFunc = func(id int64, r *discoveryv3.DiscoveryRequest) error {
		m.mu.Lock()
		m.unwatched[r.GetNode().GetId()] = true
		m.mu.Unlock()
		return sotw(id, r)
	}
	s.deltaServed = m.notify // delta streams answer every request at once
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	gs := grpc.NewServer()
	discoveryv3.RegisterAggregatedDiscoveryServiceServer(gs, adsServer{Server: serverv3.NewServer(ctx, watchedCache{s.cache, m}, cb), s: s})
	served := make(chan error, 1)
	go func() { served <- gs.Serve(lis) }()
	m.conn, err = grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	m.stop = sync.OnceFunc(func() {
		m.close()
		cancel()
		gs.Stop()
		<-served
		s.stopTimer()
	})
	t.Cleanup(m.stop)
	return m
}

// close ends every client's stream and waits for the server to see it.
func (m *mesh) close() {
	for _, c := range m.clients {
		c.stop()
	}
	m.clients = nil
	m.conn.Close()
}

// settle waits until every client is connected and settled; it fails the
// test if nothing happens for a minute.
func (m *mesh) settle() {
	m.t.Helper()
	for !m.settled() {
		select {
		case <-m.events:
		case <-time.After(time.Minute):
			m.t.Fatal("the proxies did not settle")
		}
	}
}

// settled reports whether every client is connected, the server has
// each one's node at its key's desired configuration, and nothing is on
// its way: every request taken by the cache, every response ACKed, and a
// watch open for every type a node asks for.
func (m *mesh) settled() bool {
	m.mu.Lock()
	clients, unwatched := slices.Clone(m.clients), len(m.unwatched)
	m.mu.Unlock()
	for _, c := range clients {
		if err := c.failure(); err != nil {
			m.t.Fatalf("client %s: %v", c.id, err)
		}
	}
	if unwatched > 0 || !m.serverSettled(len(clients)) {
		return false
	}
	// What each node subscribes to, read before the cache, whose mutex
	// the views take while they read the tracker.
	type want struct {
		delta bool
		types int
	}
	wants := map[string]want{}
	s := m.s
	s.proxies.mu.Lock()
	for id, ps := range s.proxies.nodes {
		for t, v := range ps.status.Sent {
			if ps.status.Acked[t] != v {
				s.proxies.mu.Unlock()
				return false
			}
		}
		wants[id] = want{ps.status.Delta, len(ps.subs)}
	}
	s.proxies.mu.Unlock()
	for id, w := range wants {
		if w.delta {
			continue // weir's delta streams take every request at once
		}
		info := s.cache.GetStatusInfo(id)
		if info == nil {
			return false
		}
		if info.GetNumWatches() != w.types { // a response is on its way
			return false
		}
	}
	return true
}

// serverSettled reports whether n nodes are connected and every one has
// its key's desired configuration.
func (m *mesh) serverSettled(n int) bool {
	m.s.mu.Lock()
	defer m.s.mu.Unlock()
	if len(m.s.nodes) != n {
		return false
	}
	for _, ns := range m.s.nodes {
		if ns.step != stepSettled {
			return false
		}
	}
	return true
}

// follower is an ADS client that subscribes like Envoy (a sidecar, on a
// SotW or delta stream) or grpc-go (a proxyless client of one target) and
// ACKs every response.
type follower struct {
	m      *mesh
	id     string
	role   envoy.Role
	delta  bool
	target string // gRPC: the listener it asks for
	cancel context.CancelFunc
	done   chan struct{}

	mu  sync.Mutex
	err error
}

// follow starts a client; it does not wait for anything.
func (m *mesh) follow(id string, role envoy.Role, namespace string, delta bool, target string) {
	ctx, cancel := context.WithCancel(context.Background())
	c := &follower{m: m, id: id, role: role, delta: delta, target: target, cancel: cancel, done: make(chan struct{})}
	m.mu.Lock()
	m.clients = append(m.clients, c)
	m.mu.Unlock()
	n := node(m.t, id, map[string]any{MetaRole: string(role), MetaNamespace: namespace})
	go func() {
		defer close(c.done)
		var err error
		if delta {
			err = c.runDelta(ctx, n)
		} else {
			err = c.runSotW(ctx, n)
		}
		if err != nil && ctx.Err() == nil {
			c.mu.Lock()
			c.err = err
			c.mu.Unlock()
			m.notify()
		}
	}()
}

func (c *follower) failure() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

func (c *follower) stop() {
	c.cancel()
	<-c.done
}

// refers returns, by type, the names resources of typeURL refer to, sorted;
// no names for scopes (all of them). A listener always refers to route
// configurations, if to none.
func (c *follower) refers(typeURL string, resources []*anypb.Any) (map[string][]string, error) {
	sets := map[string]map[string]bool{}
	add := func(t, n string) {
		if sets[t] == nil {
			sets[t] = map[string]bool{}
		}
		if n != "" {
			sets[t][n] = true
		}
	}
	if typeURL == resourcev3.ListenerType {
		add(resourcev3.RouteType, "")
	}
	for _, a := range resources {
		m, err := a.UnmarshalNew()
		if err != nil {
			return nil, err
		}
		switch r := m.(type) {
		case *clusterv3.Cluster:
			add(resourcev3.EndpointType, r.Name)
		case *listenerv3.Listener:
			var hcms []*hcmv3.HttpConnectionManager
			if api := r.GetApiListener().GetApiListener(); api != nil {
				h := &hcmv3.HttpConnectionManager{}
				if err := api.UnmarshalTo(h); err != nil {
					return nil, err
				}
				hcms = append(hcms, h)
			}
			for _, fc := range r.FilterChains {
				for _, f := range fc.Filters {
					h := &hcmv3.HttpConnectionManager{}
					if tc := f.GetTypedConfig(); tc != nil && tc.UnmarshalTo(h) == nil {
						hcms = append(hcms, h)
					}
				}
			}
			for _, h := range hcms {
				if h.GetScopedRoutes() != nil {
					add(resourcev3.ScopedRouteType, "")
				}
				add(resourcev3.RouteType, h.GetRds().GetRouteConfigName())
			}
		case *routev3.ScopedRouteConfiguration:
			add(resourcev3.RouteType, r.RouteConfigurationName)
		case *routev3.RouteConfiguration:
			if c.role != envoy.GRPC {
				continue
			}
			for _, vh := range r.VirtualHosts {
				for _, rt := range vh.Routes {
					for _, cl := range envoy.RouteClusters(rt) {
						add(resourcev3.ClusterType, cl)
						add(resourcev3.EndpointType, cl)
					}
				}
			}
		}
	}
	out := map[string][]string{}
	for t, set := range sets {
		out[t] = slices.Sorted(maps.Keys(set))
	}
	return out, nil
}

func (c *follower) runSotW(ctx context.Context, n *corev3.Node) error {
	stream, err := discoveryv3.NewAggregatedDiscoveryServiceClient(c.m.conn).StreamAggregatedResources(ctx)
	if err != nil {
		return err
	}
	type state struct {
		names            []string
		version, nonce   string
		asked, wildcards bool
	}
	st := map[string]*state{}
	send := func(t string) error {
		s := st[t]
		s.asked = true
		return stream.Send(&discoveryv3.DiscoveryRequest{Node: n, TypeUrl: t, ResourceNames: s.names, VersionInfo: s.version, ResponseNonce: s.nonce})
	}
	ask := func(t string, names []string) error {
		s := st[t]
		if s == nil {
			s = &state{}
			st[t] = s
		}
		if s.asked && slices.Equal(s.names, names) {
			return nil
		}
		s.names = names
		return send(t)
	}
	if c.role == envoy.GRPC {
		if err := ask(resourcev3.ListenerType, []string{c.target}); err != nil {
			return err
		}
	} else {
		for _, t := range []string{resourcev3.ClusterType, resourcev3.ListenerType} {
			if err := ask(t, nil); err != nil {
				return err
			}
		}
	}
	for {
		resp, err := stream.Recv()
		if err != nil {
			return eofIsNil(err)
		}
		t := resp.GetTypeUrl()
		refs, err := c.refers(t, resp.GetResources())
		if err != nil {
			return err
		}
		st[t].version, st[t].nonce = resp.GetVersionInfo(), resp.GetNonce()
		if err := send(t); err != nil {
			return err
		}
		for _, rt := range typeURLs {
			if names, ok := refs[rt]; ok {
				if err := ask(rt, names); err != nil {
					return err
				}
			}
		}
		c.m.notify()
	}
}

func (c *follower) runDelta(ctx context.Context, n *corev3.Node) error {
	stream, err := discoveryv3.NewAggregatedDiscoveryServiceClient(c.m.conn).DeltaAggregatedResources(ctx)
	if err != nil {
		return err
	}
	send := func(r *discoveryv3.DeltaDiscoveryRequest) error {
		r.Node = n
		return stream.Send(r)
	}
	for _, t := range []string{resourcev3.ClusterType, resourcev3.ListenerType} {
		if err := send(&discoveryv3.DeltaDiscoveryRequest{TypeUrl: t}); err != nil {
			return err
		}
	}
	held := map[string]map[string]*anypb.Any{}
	subscribed := map[string][]string{}
	for {
		resp, err := stream.Recv()
		if err != nil {
			return eofIsNil(err)
		}
		t := resp.GetTypeUrl()
		if held[t] == nil {
			held[t] = map[string]*anypb.Any{}
		}
		for _, r := range resp.GetResources() {
			held[t][r.GetName()] = r.GetResource()
		}
		if len(resp.GetRemovedResources()) > 0 {
			// A new map: a map keeps the memory of its largest size, which
			// the test would count as the server's.
			gone := map[string]bool{}
			for _, name := range resp.GetRemovedResources() {
				gone[name] = true
			}
			kept := map[string]*anypb.Any{}
			for name, r := range held[t] {
				if !gone[name] {
					kept[name] = r
				}
			}
			held[t] = kept
		}
		if err := send(&discoveryv3.DeltaDiscoveryRequest{TypeUrl: t, ResponseNonce: resp.GetNonce()}); err != nil {
			return err
		}
		all := make([]*anypb.Any, 0, len(held[t]))
		for _, r := range held[t] {
			all = append(all, r)
		}
		refs, err := c.refers(t, all)
		if err != nil {
			return err
		}
		for _, rt := range typeURLs {
			names, ok := refs[rt]
			if !ok {
				continue
			}
			if _, asked := subscribed[rt]; asked && rt == resourcev3.ScopedRouteType {
				continue
			}
			had, asked := subscribed[rt]
			if !asked && len(names) == 0 && rt != resourcev3.ScopedRouteType {
				continue // an empty first request would ask for all
			}
			sub, unsub := diff(had, names)
			subscribed[rt] = names
			if asked && len(sub)+len(unsub) == 0 {
				continue
			}
			if err := send(&discoveryv3.DeltaDiscoveryRequest{TypeUrl: rt, ResourceNamesSubscribe: sub, ResourceNamesUnsubscribe: unsub}); err != nil {
				return err
			}
		}
		c.m.notify()
	}
}

// diff returns the names of want not in had, and of had not in want.
func diff(had, want []string) (added, removed []string) {
	h, w := map[string]bool{}, map[string]bool{}
	for _, n := range had {
		h[n] = true
	}
	for _, n := range want {
		w[n] = true
		if !h[n] {
			added = append(added, n)
		}
	}
	for _, n := range had {
		if !w[n] {
			removed = append(removed, n)
		}
	}
	return added, removed
}

func eofIsNil(err error) error {
	if errors.Is(err, io.EOF) {
		return nil
	}
	return err
}

// connectFleet connects, to hosts of small, a SotW and a delta sidecar in
// each of two namespaces and proxyless gRPC clients of ten hosts.
func (m *mesh) connectFleet(small *ir.IR) {
	for i, ns := range []string{"ns0", "ns1"} {
		m.follow(fmt.Sprintf("sidecar-%d", i), envoy.Sidecar, ns, false, "")
		m.follow(fmt.Sprintf("delta-%d", i), envoy.Sidecar, ns, true, "")
	}
	for i := range 20 {
		m.follow(fmt.Sprintf("grpc-%d", i), envoy.GRPC, "", false, small.Hosts[i%10].Name)
	}
}

// liveHeap returns the bytes of the heap's live objects.
func liveHeap() int64 {
	runtime.GC()
	runtime.GC() // and what sync.Pools kept over the first
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return int64(ms.HeapAlloc)
}

// TestScaleDownFreesConfigurations scales a mesh whose proxies are
// connected from 2,000 services down to 100, and checks that what weir
// built and tracked for the larger mesh is collectable, and that its live
// heap comes back close to that of a server started at 100 services with
// the same proxies.
func TestScaleDownFreesConfigurations(t *testing.T) {
	if testing.Short() {
		t.Skip("translates and serves a mesh of 2,000 services")
	}
	big, small := benchIR(t, 2000), benchIR(t, 100)
	freshSmall(t, small) // what a process does once is not counted below
	fresh := freshSmall(t, small)

	base := liveHeap()
	s := quietServer(0)
	s.Update(big)
	m := serveMesh(t, s)
	m.connectFleet(small)
	m.settle()
	large := liveHeap() - base
	held := m.heldAtScale(small)
	s.Update(small)
	m.settle()
	down := liveHeap() - base
	runtime.KeepAlive(big) // in every heap measured from base
	for what, alive := range held {
		if n := alive(); n > 0 {
			t.Errorf("after scaling down, %d %s are still reachable", n, what)
		}
	}
	// What stays is not weir's: gRPC's buffer pools may keep the buffer of
	// a large response (1 to 3 MB here, of some 50 MB).
	t.Logf("live heap: %d KB at 100 services, %d KB at 2,000, %d KB once scaled down to 100", fresh>>10, large>>10, down>>10)
	if down-fresh > (large-fresh)/10 {
		t.Errorf("scaled down, the server holds %d KB more than one started at the smaller size; want at most 10%% of the %d KB the larger mesh took", (down-fresh)>>10, (large-fresh)>>10)
	}
}

// freshSmall serves small to the fleet and returns the live heap that
// took, once it settled.
func freshSmall(t *testing.T, small *ir.IR) int64 {
	t.Helper()
	base := liveHeap()
	m := serveMesh(t, quietServer(0))
	m.s.Update(small)
	m.connectFleet(small)
	m.settle()
	heap := liveHeap() - base
	m.stop()
	return heap
}

// heldAtScale returns, by description, functions counting what of the
// current, larger mesh is still reachable: every key's configuration, the
// gRPC route configurations of hosts small lacks, and the names the SotW
// sidecars ask for.
func (m *mesh) heldAtScale(small *ir.IR) map[string]func() int {
	inSmall := map[string]bool{}
	for _, h := range small.Hosts {
		inSmall[h.Name] = true
	}
	var configs []weak.Pointer[config]
	var routes []weak.Pointer[routev3.RouteConfiguration]
	var names []weak.Pointer[nameSet]
	m.s.mu.Lock()
	for key, ks := range m.s.keys {
		configs = append(configs, weak.Make(ks.desired))
		if key.Role != envoy.GRPC {
			continue
		}
		for name, e := range ks.desired.set[resourcev3.RouteType] {
			if !inSmall[name] {
				routes = append(routes, weak.Make(e.res.(*routev3.RouteConfiguration)))
			}
		}
	}
	m.s.mu.Unlock()
	m.s.proxies.mu.Lock()
	for _, ps := range m.s.proxies.nodes {
		if sub := ps.subs[resourcev3.EndpointType]; sub != nil && sub.shared != nil && len(sub.shared.names) > 2*len(small.Hosts) {
			names = append(names, weak.Make(sub.shared))
		}
	}
	m.s.proxies.mu.Unlock()
	if len(routes) == 0 || len(names) == 0 {
		m.t.Fatalf("%d gRPC route configurations of removed hosts, %d large subscriptions: want some of each", len(routes), len(names))
	}
	return map[string]func() int{
		"configurations of the larger mesh":           func() int { return alive(configs) },
		"gRPC route configurations of removed hosts":  func() int { return alive(routes) },
		"endpoint subscriptions of the SotW sidecars": func() int { return alive(names) },
	}
}

// alive counts the pointers whose object is still reachable.
func alive[T any](ps []weak.Pointer[T]) int {
	n := 0
	for _, p := range ps {
		if p.Value() != nil {
			n++
		}
	}
	return n
}
