package e2e

import (
	"errors"
	"fmt"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"github.com/google/go-cmp/cmp"
	"google.golang.org/grpc"
	healthgrpc "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/weir-mesh/weir/translator/envoy"
	"github.com/weir-mesh/weir/xds"
)

// The promise users care most about in a canary tool: moving traffic never
// breaks traffic. Each test below changes something under a steady load sent
// through a real Envoy, over state-of-the-world xDS and over delta, each
// with one route configuration per namespace and with scoped routes
// (subtests sotw, delta, sotw-scoped, delta-scoped), and most also through a proxyless grpc-go client
// (subtest grpc, state of the world: grpc-go has no delta). Every answer is
// checked: status 200 (or an RPC without error) from a known version.

const (
	// loadRate is the requests per second of every steady load.
	loadRate = 200
	// loadLimit bounds the requests of one load, whatever happens.
	loadLimit = 20000
	// awaitLoad bounds a wait for some hundred answers at loadRate.
	awaitLoad = 15 * time.Second
	// applyMargin: a proxy ACKs a configuration before all of it routes by
	// it (Envoy's workers get it from the main thread; grpc-go ACKs what it
	// parsed, then its channel applies it), well under a millisecond later
	// here. Requests sent this long after an ACK are held to what it ACKed.
	applyMargin = 100 * time.Millisecond
	// grpcLoadRate is the RPCs per second where a version appears for a
	// proxyless client: RPCs are cheap, and a gap of about a millisecond
	// at the switch shows in most runs at this rate, in few at loadRate.
	grpcLoadRate = 1000
)

// mustOnly fails unless every request of tl was answered by version.
func mustOnly(t testing.TB, what string, tl tally, version string) {
	t.Helper()
	if tl.n == 0 || tl.counts[version] != tl.n {
		t.Errorf("%s: want every request answered by %s, got %v", what, version, tl)
	}
}

// TestSafetyWeightSweep moves the split 100/0 -> 90/10 -> ... -> 0/100, one
// step every 200 ms, without waiting for the proxy between steps.
func TestSafetyWeightSweep(t *testing.T) {
	forEachMode(t, sweepEnvoy)
	t.Run("grpc", sweepGRPC)
}

// sweepEnvoy sweeps the split of root httpbin under HTTP load through an
// Envoy sidecar.
func sweepEnvoy(t *testing.T, mode xdsMode) {
	v1, v2 := startBackend(t, "Hi, I am v1!"), startBackend(t, "Hi, I am v2!")
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "services.yaml"), tutorialServices)
	writeFile(t, filepath.Join(dir, "endpoints.yaml"), tutorialEndpoints(v1, v2))
	splitFile := filepath.Join(dir, "split.yaml")
	writeFile(t, splitFile, rootSplit(0, 100))
	weir := runWeir(t, dir, "127.0.0.1:0")
	sc := startSidecarMode(t, weir.Server, "httpbin", mode)
	// Versions are content hashes: the one of 0/100, learnt first, is
	// the one the sweep must end on.
	final := ackedVersions(t, weir.XDS(), sc.nodeID, nil, mode.types()...)
	writeFile(t, splitFile, rootSplit(100, 0))
	acked := sc.waitRoute(t, final)
	pushesBefore := sc.status(t).Pushes[resourcev3.RouteType]

	l := sc.httpLoad(t, getDemo, loadRate, loadLimit)
	l.await(t, 100, l.start, awaitLoad)
	mustOnly(t, "before the sweep", l.since(l.start), "v1")

	sweep := time.Now()
	tick := time.NewTicker(200 * time.Millisecond)
	for v1w := 90; v1w >= 0; v1w -= 10 {
		<-tick.C
		writeFile(t, splitFile, rootSplit(v1w, 100-v1w))
	}
	tick.Stop()
	written := time.Now()
	waitFor(t, 10*time.Second, "the proxy to ACK 0/100", func() error {
		if got := sc.status(t).Acked[resourcev3.RouteType]; got != final[resourcev3.RouteType] {
			return fmt.Errorf("route %s ACKed, want %s", got, final[resourcev3.RouteType])
		}
		return nil
	})
	acked = ackedVersions(t, weir.XDS(), sc.nodeID, acked, mode.types()...)
	done := time.Now()
	if diff := cmp.Diff(final, acked); diff != "" {
		t.Errorf("versions after the sweep differ from those of the same configuration before (-before +after):\n%s", diff)
	}
	l.await(t, 400, done, awaitLoad)
	during, after := l.between(sweep, done), l.since(done.Add(applyMargin))
	l.report(t, "v1", "v2")
	ps := sc.status(t)
	t.Logf("sweep: 10 writes in %v; 0/100 ACKed %v after the last; %d route pushes; during: %v; from %v after the ACK: %v",
		written.Sub(sweep).Round(time.Millisecond), done.Sub(written).Round(time.Millisecond),
		ps.Pushes[resourcev3.RouteType]-pushesBefore, during, applyMargin, after)
	if during.counts["v1"] == 0 || during.counts["v2"] == 0 {
		t.Errorf("the load did not span the sweep: %v", during)
	}
	mustOnly(t, "after 0/100 was ACKed", after, "v2")
	if ps.Nacks != 0 {
		t.Errorf("envoy NACKed %d times, last: %+v", ps.Nacks, ps.LastNack)
	}
}

// sweepGRPC sweeps the split of root echo under RPCs of a proxyless client.
func sweepGRPC(t *testing.T) {
	versions := []string{"v1", "v2"}
	g := newGRPCLeg(t, versions...)
	final := g.start(t, versions, map[string]int{"v2": 100})
	g.write(t, versions, map[string]int{"v1": 100})
	acked := ackedVersions(t, g.weir.XDS(), g.nodeID, final, grpcTypes...)
	// Under 0/100 every RPC reaches v2: the first to reach v1 shows
	// that the channel routes by 100/0.
	waitFor(t, 10*time.Second, "the channel to route by 100/0", func() error {
		if v, err := g.backends.call(g.cc, healthgrpc.Health_Check_FullMethodName, ""); err != nil || v != "v1" {
			return fmt.Errorf("answered by %q (%v)", v, err)
		}
		return nil
	})
	pushesBefore := g.status(t).Pushes[resourcev3.RouteType]

	l := g.load(t, loadRate, loadLimit)
	l.await(t, 100, l.start, awaitLoad)
	mustOnly(t, "before the sweep", l.since(l.start), "v1")
	sweep := time.Now()
	tick := time.NewTicker(200 * time.Millisecond)
	for v1w := 90; v1w >= 0; v1w -= 10 {
		<-tick.C
		g.write(t, versions, map[string]int{"v1": v1w, "v2": 100 - v1w})
	}
	tick.Stop()
	written := time.Now()
	waitFor(t, 10*time.Second, "the client to ACK 0/100", func() error {
		if got := g.status(t).Acked[resourcev3.RouteType]; got != final[resourcev3.RouteType] {
			return fmt.Errorf("route %s ACKed, want %s", got, final[resourcev3.RouteType])
		}
		return nil
	})
	acked = ackedVersions(t, g.weir.XDS(), g.nodeID, acked, grpcTypes...)
	done := time.Now()
	// A state-of-the-world version covers the resources the client asks
	// for, and grpc-go lets go of v1's cluster only once no RPC uses it:
	// the same configuration and subscription give the same versions.
	waitFor(t, 10*time.Second, "the versions of the same configuration as before", func() error {
		ps := g.status(t)
		for _, typ := range grpcTypes {
			if ps.Acked[typ] != final[typ] {
				return fmt.Errorf("%s: ACKed %s, before the sweep %s", typ, ps.Acked[typ], final[typ])
			}
		}
		return nil
	})
	l.await(t, 400, done, awaitLoad)
	during, after := l.between(sweep, done), l.since(done.Add(applyMargin))
	l.report(t, "v1", "v2")
	ps := g.status(t)
	t.Logf("sweep: 10 writes in %v; 0/100 ACKed %v after the last; %d route pushes; during: %v; from %v after the ACK: %v",
		written.Sub(sweep).Round(time.Millisecond), done.Sub(written).Round(time.Millisecond),
		ps.Pushes[resourcev3.RouteType]-pushesBefore, during, applyMargin, after)
	if during.counts["v1"] == 0 || during.counts["v2"] == 0 {
		t.Errorf("the load did not span the sweep: %v", during)
	}
	mustOnly(t, "after 0/100 was ACKed", after, "v2")
	if ps.Nacks != 0 {
		t.Errorf("the client NACKed %d times, last: %+v", ps.Nacks, ps.LastNack)
	}
}

// TestSafetyVersionAppearsAndGoes adds a version and routes half the traffic
// to it in one edit, then deletes the oldest version in the edit that routes
// away from it; its backend stops only once weir retired its cluster.
func TestSafetyVersionAppearsAndGoes(t *testing.T) {
	forEachMode(t, appearAndGoEnvoy)
	t.Run("grpc", appearAndGoGRPC)
}

// appearAndGoEnvoy adds httpbin-v3 and removes httpbin-v1 under HTTP load
// through an Envoy sidecar.
func appearAndGoEnvoy(t *testing.T, mode xdsMode) {
	b1 := startStoppableBackend(t, "Hi, I am v1!")
	b2 := startStoppableBackend(t, "Hi, I am v2!")
	b3 := startStoppableBackend(t, "Hi, I am v3!")
	dir := t.TempDir()
	file := filepath.Join(dir, "httpbin.yaml")
	writeFile(t, file, versionedManifests(
		map[string][]uint32{"v1": {b1.port}, "v2": {b2.port}},
		map[string]int{"httpbin-v1": 50, "httpbin-v2": 50}))
	weir := runWeir(t, dir, "127.0.0.1:0")
	sc := startSidecarMode(t, weir.Server, "httpbin", mode)
	acked := ackedVersions(t, weir.XDS(), sc.nodeID, nil, mode.types()...)

	l := sc.httpLoad(t, getDemo, loadRate, loadLimit)
	l.await(t, 100, l.start, awaitLoad)

	// v3 appears (Service, EndpointSlice) and takes half, in one write.
	edit := time.Now()
	writeFile(t, file, versionedManifests(
		map[string][]uint32{"v1": {b1.port}, "v2": {b2.port}, "v3": {b3.port}},
		map[string]int{"httpbin-v1": 25, "httpbin-v2": 25, "httpbin-v3": 50}))
	acked = sc.waitRoute(t, acked)
	appeared := time.Now()
	t.Logf("v3 routed to %v after the write; %v", appeared.Sub(edit).Round(time.Millisecond), l.between(edit, appeared))
	l.await(t, 400, appeared, awaitLoad)
	withV3 := l.since(appeared.Add(applyMargin))
	checkShare(t, "answered by v3 once ACKed", withV3.counts["v3"], withV3.n, 0.5)

	// v1 goes (Service and slices removed) in the write that routes
	// away from it. The routes move first; every type reaches its
	// desired version only after the grace period, when the cluster of
	// v1 is retired.
	edit = time.Now()
	writeFile(t, file, versionedManifests(
		map[string][]uint32{"v2": {b2.port}, "v3": {b3.port}},
		map[string]int{"httpbin-v2": 50, "httpbin-v3": 50}))
	routed := ackedVersions(t, weir.XDS(), sc.nodeID, map[string]string{resourcev3.RouteType: acked[resourcev3.RouteType]}, resourcev3.RouteType)
	switched := time.Now()
	acked = ackedVersions(t, weir.XDS(), sc.nodeID, nil, mode.types()...)
	retired := time.Now()
	if retired.Sub(switched) < safetyGrace/2 {
		t.Errorf("the cluster of v1 was retired %v after the routes moved away, want about the grace period %v", retired.Sub(switched), safetyGrace)
	}
	if sc.hasCluster(t, clusterOf("v1")) {
		t.Errorf("envoy still has cluster %s after weir retired it", clusterOf("v1"))
	}
	for _, v := range []string{"v2", "v3"} {
		if !sc.hasCluster(t, clusterOf(v)) {
			t.Errorf("envoy lost cluster %s", clusterOf(v))
		}
	}
	b1.shutdown(t)
	stopped := time.Now()
	t.Logf("routes moved off v1 %v after the write (route %s); cluster retired %v later; v1 stopped",
		switched.Sub(edit).Round(time.Millisecond), routed[resourcev3.RouteType], retired.Sub(switched).Round(time.Millisecond))
	l.await(t, 400, stopped, awaitLoad)
	l.report(t, "v1", "v2", "v3")
	if got := l.since(switched.Add(applyMargin)).counts["v1"]; got != 0 {
		t.Errorf("%d requests sent after the routes left v1 were answered by v1", got)
	}
	checkShare(t, "answered by v3 after v1 left", l.since(stopped).counts["v3"], l.since(stopped).n, 0.5)
	if ps := sc.status(t); ps.Nacks != 0 {
		t.Errorf("envoy NACKed %d times, last: %+v", ps.Nacks, ps.LastNack)
	}
}

// appearAndGoGRPC adds echo-v3 and removes echo-v1 under RPCs of a
// proxyless client.
func appearAndGoGRPC(t *testing.T) {
	g := newGRPCLeg(t, "v1", "v2", "v3")
	acked := g.start(t, []string{"v1", "v2"}, map[string]int{"v1": 50, "v2": 50})
	l := g.load(t, grpcLoadRate, loadLimit)
	l.await(t, 100, l.start, awaitLoad)

	edit := time.Now()
	g.write(t, []string{"v1", "v2", "v3"}, map[string]int{"v1": 25, "v2": 25, "v3": 50})
	acked = ackedVersions(t, g.weir.XDS(), g.nodeID, map[string]string{resourcev3.RouteType: acked[resourcev3.RouteType]}, resourcev3.RouteType)
	appeared := time.Now()
	acked = ackedVersions(t, g.weir.XDS(), g.nodeID, nil, grpcTypes...)
	t.Logf("v3 routed to %v after the write; %v", appeared.Sub(edit).Round(time.Millisecond), l.between(edit, appeared))
	l.await(t, 400, appeared, awaitLoad)
	withV3 := l.since(appeared.Add(applyMargin))
	checkShare(t, "answered by v3 once ACKed", withV3.counts["v3"], withV3.n, 0.5)

	edit = time.Now()
	g.write(t, []string{"v2", "v3"}, map[string]int{"v2": 50, "v3": 50})
	// The switch keeps the route configuration of echo-v1's own
	// listener until the retirement, so the route type reaches its
	// desired version only then: a new ACKed version marks the switch.
	waitFor(t, 10*time.Second, "the client to ACK the routes away from v1", func() error {
		if g.status(t).Acked[resourcev3.RouteType] == acked[resourcev3.RouteType] {
			return errNotYet
		}
		return nil
	})
	switched := time.Now()
	// The client asks only for what its routes name, so its versions
	// reach the desired ones at the switch; the retirement is when v1's
	// cluster leaves what is served to it.
	waitFor(t, 10*time.Second, "weir to retire the cluster of v1", func() error {
		if slices.Contains(g.weir.XDS().PublishedNames(g.nodeID, resourcev3.ClusterType), "outbound|50051||echo-v1.grpcdemo.svc.cluster.local") {
			return errNotYet
		}
		return nil
	})
	retired := time.Now()
	ackedVersions(t, g.weir.XDS(), g.nodeID, nil, grpcTypes...)
	if retired.Sub(switched) < safetyGrace/2 {
		t.Errorf("the cluster of v1 was retired %v after the routes moved away, want about the grace period %v", retired.Sub(switched), safetyGrace)
	}
	g.stops["v1"]()
	stopped := time.Now()
	t.Logf("routes moved off v1 %v after the write; cluster retired %v later; v1 stopped",
		switched.Sub(edit).Round(time.Millisecond), retired.Sub(switched).Round(time.Millisecond))
	l.await(t, 400, stopped, awaitLoad)
	l.report(t, "v1", "v2", "v3")
	if got := l.since(switched.Add(applyMargin)).counts["v1"]; got != 0 {
		t.Errorf("%d RPCs sent after the routes left v1 were answered by v1", got)
	}
	if ps := g.status(t); ps.Nacks != 0 {
		t.Errorf("the client NACKed %d times, last: %+v", ps.Nacks, ps.LastNack)
	}
}

// TestSafetyEndpointChurn replaces every backend instance, one at a time:
// a new one on a new port, the EndpointSlice moved to it, and once the proxy
// ACKed the endpoints, the old one shut down gracefully.
func TestSafetyEndpointChurn(t *testing.T) {
	forEachMode(t, churnEnvoy)
}

// churnEnvoy replaces the two instances of httpbin-v1 and of httpbin-v2
// under HTTP load through an Envoy sidecar.
func churnEnvoy(t *testing.T, mode xdsMode) {
	instances := map[string][]*backend{}
	for _, v := range []string{"v1", "v2"} {
		for range 2 {
			instances[v] = append(instances[v], startStoppableBackend(t, "Hi, I am "+v+"!"))
		}
	}
	manifests := func() string {
		ports := map[string][]uint32{}
		for v, bs := range instances {
			for _, b := range bs {
				ports[v] = append(ports[v], b.port)
			}
		}
		return versionedManifests(ports, map[string]int{"httpbin-v1": 50, "httpbin-v2": 50})
	}
	dir := t.TempDir()
	file := filepath.Join(dir, "httpbin.yaml")
	writeFile(t, file, manifests())
	weir := runWeir(t, dir, "127.0.0.1:0")
	sc := startSidecarMode(t, weir.Server, "httpbin", mode)
	acked := ackedVersions(t, weir.XDS(), sc.nodeID, nil, mode.types()...)

	l := sc.httpLoad(t, getDemo, loadRate, loadLimit)
	l.await(t, 100, l.start, awaitLoad)
	for _, v := range []string{"v1", "v2"} {
		for i, old := range instances[v] {
			instances[v][i] = startStoppableBackend(t, "Hi, I am "+v+"!")
			edit := time.Now()
			writeFile(t, file, manifests())
			acked = ackedVersions(t, weir.XDS(), sc.nodeID, acked, resourcev3.EndpointType)
			ackedAt := time.Now()
			old.shutdown(t)
			stopped := time.Now()
			t.Logf("%s instance %d: :%d -> :%d; endpoints ACKed %v after the write; old one shut down in %v after answering %d requests",
				v, i, old.port, instances[v][i].port, ackedAt.Sub(edit).Round(time.Millisecond), stopped.Sub(ackedAt).Round(time.Millisecond), old.served.Load())
			if old.served.Load() == 0 {
				t.Errorf("%s instance :%d answered no request before it was replaced", v, old.port)
			}
			l.await(t, 100, stopped, awaitLoad)
		}
	}
	ackedVersions(t, weir.XDS(), sc.nodeID, nil, mode.types()...)
	tl := l.report(t, "v1", "v2")
	for v, bs := range instances {
		for _, b := range bs {
			if b.served.Load() == 0 {
				t.Errorf("%s instance :%d, started last, answered no request", v, b.port)
			}
		}
	}
	checkShare(t, "answered by v2", tl.counts["v2"], tl.n, 0.5)
	if ps := sc.status(t); ps.Nacks != 0 {
		t.Errorf("envoy NACKed %d times, last: %+v", ps.Nacks, ps.LastNack)
	}
}

// configStats are the Envoy counters that move when a configuration really
// changes (not when the same one is sent again), and those of rejections.
var configStats = regexp.MustCompile(`^(cluster_manager\.cluster_(added|modified|removed)|listener_manager\.listener_(added|modified|removed)|http\..*\.rds\..*\.config_reload|cluster\..*\.membership_change|.*\.update_rejected)$`)

// TestSafetyRestart stops weir under load and starts a new one on the same
// address: the proxy reconnects, keeps serving, and gets the same versions
// and no new content.
func TestSafetyRestart(t *testing.T) {
	forEachMode(t, restartEnvoy)
	t.Run("grpc", restartGRPC)
}

// restartEnvoy restarts weir under HTTP load through an Envoy sidecar, and
// compares what Envoy has before and after.
func restartEnvoy(t *testing.T, mode xdsMode) {
	v1, v2 := startBackend(t, "Hi, I am v1!"), startBackend(t, "Hi, I am v2!")
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "services.yaml"), tutorialServices)
	writeFile(t, filepath.Join(dir, "endpoints.yaml"), tutorialEndpoints(v1, v2))
	writeFile(t, filepath.Join(dir, "split.yaml"), rootSplit(50, 50))
	first := runWeir(t, dir, "127.0.0.1:0")
	addr := first.XDSAddr()
	sc := startSidecarMode(t, first.Server, "httpbin", mode)
	before := ackedVersions(t, first.XDS(), sc.nodeID, nil, mode.types()...)
	if published := first.XDS().SnapshotVersions(sc.nodeID); !cmp.Equal(before, published) {
		t.Fatalf("acked %v, published %v", before, published)
	}
	statsBefore := sc.stats(t, configStats)

	l := sc.httpLoad(t, getDemo, loadRate, loadLimit)
	l.await(t, 200, l.start, awaitLoad)

	stop := time.Now()
	if err := first.stop(); err != nil {
		t.Fatalf("weir stopped with: %v", err)
	}
	stopped := time.Now()
	second := runWeir(t, dir, addr)
	sc.weir = second.Server
	// In state of the world a new stream is answered with everything;
	// in delta Envoy names the versions it has and only the wildcard
	// types (clusters, listeners) get an (empty) answer.
	required := xdsTypes
	if mode.delta {
		required = []string{resourcev3.ClusterType, resourcev3.ListenerType}
	}
	after := waitReconnected(t, second.XDS(), sc.nodeID, required)
	reconnected := time.Now()
	if published := second.XDS().SnapshotVersions(sc.nodeID); !cmp.Equal(before, published) {
		t.Errorf("after the restart weir published other versions (-before +after):\n%s", cmp.Diff(before, published))
	}
	for typ, v := range after.Sent {
		if v != before[typ] {
			t.Errorf("after the restart weir pushed %s version %s, want the version before, %s", typ, v, before[typ])
		}
	}
	for typ, v := range after.Acked {
		if v != before[typ] {
			t.Errorf("after the restart envoy ACKed %s version %s, want the version before, %s", typ, v, before[typ])
		}
	}
	if diff := cmp.Diff(statsBefore, sc.stats(t, configStats)); diff != "" {
		t.Errorf("envoy's configuration changed across the restart (-before +after):\n%s", diff)
	}
	t.Logf("weir stopped in %v; envoy reconnected and settled %v after the new one started; pushes after reconnect: %v",
		stopped.Sub(stop).Round(time.Millisecond), reconnected.Sub(stopped).Round(time.Millisecond), after.Pushes)
	l.await(t, 200, reconnected, awaitLoad)
	t.Logf("while weir was away: %v", l.between(stop, reconnected))
	l.report(t, "v1", "v2")
	if after.Nacks != 0 {
		t.Errorf("envoy NACKed %d times, last: %+v", after.Nacks, after.LastNack)
	}
}

// restartGRPC restarts weir under RPCs of a proxyless client.
func restartGRPC(t *testing.T) {
	g := newGRPCLeg(t, "v1", "v2")
	before := g.start(t, []string{"v1", "v2"}, map[string]int{"v1": 50, "v2": 50})
	first := g.weir
	l := g.load(t, loadRate, loadLimit)
	l.await(t, 200, l.start, awaitLoad)

	stop := time.Now()
	if err := first.stop(); err != nil {
		t.Fatalf("weir stopped with: %v", err)
	}
	stopped := time.Now()
	g.weir = runWeir(t, g.dir, first.XDSAddr())
	// On a new stream the state of the world server answers each type.
	after := waitReconnected(t, g.weir.XDS(), g.nodeID, grpcTypes)
	reconnected := time.Now()
	if published := g.weir.XDS().SnapshotVersions(g.nodeID); !cmp.Equal(before, published) {
		t.Errorf("after the restart weir published other versions (-before +after):\n%s", cmp.Diff(before, published))
	}
	if !cmp.Equal(before, after.Acked) || !cmp.Equal(before, after.Sent) {
		t.Errorf("after the restart: sent %v, acked %v; want the versions before, %v", after.Sent, after.Acked, before)
	}
	t.Logf("weir stopped in %v; the client reconnected and ACKed %v after the new one started; pushes after reconnect: %v",
		stopped.Sub(stop).Round(time.Millisecond), reconnected.Sub(stopped).Round(time.Millisecond), after.Pushes)
	l.await(t, 200, reconnected, awaitLoad)
	t.Logf("while weir was away: %v", l.between(stop, reconnected))
	l.report(t, "v1", "v2")
	if after.Nacks != 0 {
		t.Errorf("the client NACKed %d times, last: %+v", after.Nacks, after.LastNack)
	}
}

// badRegex is valid as a proto (a non-empty string) but not as RE2: Envoy
// rejects a route configuration that uses it.
const badRegex = "^/nack(?=x)"

// badRegexError is what RE2, and so Envoy, says of badRegex.
const badRegexError = "invalid perl operator: (?="

// breakRoutes adds to every sidecar route configuration a virtual host whose
// route matches the path with badRegex.
func breakRoutes(p envoy.Proxy, res *envoy.Resources) {
	if p.Role != envoy.Sidecar {
		return
	}
	for _, rc := range res.Routes {
		rc.VirtualHosts = append(rc.VirtualHosts, badVirtualHost())
	}
}

func badVirtualHost() *routev3.VirtualHost {
	return &routev3.VirtualHost{
		Name:    "weir-test-nack",
		Domains: []string{"nack.invalid"},
		Routes: []*routev3.Route{{
			Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_SafeRegex{
				SafeRegex: &matcherv3.RegexMatcher{Regex: badRegex},
			}},
			Action: &routev3.Route_DirectResponse{DirectResponse: &routev3.DirectResponseAction{Status: 204}},
		}},
	}
}

// TestSafetyNack forces a route configuration Envoy rejects through weir's
// test hook: the NACK is recorded with Envoy's words, the proxy keeps
// serving its last good routes, and nothing is sent again until the
// configuration changes.
func TestSafetyNack(t *testing.T) {
	rc := &routev3.RouteConfiguration{Name: "outbound", VirtualHosts: []*routev3.VirtualHost{badVirtualHost()}}
	if err := rc.ValidateAll(); err != nil {
		t.Fatalf("the forced route configuration must be valid as a proto: %v", err)
	}
	forEachMode(t, nackEnvoy)
}

// nackEnvoy forces a NACK from an Envoy sidecar under HTTP load.
func nackEnvoy(t *testing.T, mode xdsMode) {
	v1, v2 := startBackend(t, "Hi, I am v1!"), startBackend(t, "Hi, I am v2!")
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "services.yaml"), tutorialServices)
	writeFile(t, filepath.Join(dir, "endpoints.yaml"), tutorialEndpoints(v1, v2))
	splitFile := filepath.Join(dir, "split.yaml")
	writeFile(t, splitFile, rootSplit(100, 0))
	weir := runWeir(t, dir, "127.0.0.1:0")
	sc := startSidecarMode(t, weir.Server, "httpbin", mode)
	acked := ackedVersions(t, weir.XDS(), sc.nodeID, nil, mode.types()...)
	rejected := regexp.MustCompile(`\.rds\..*\.update_rejected$`)

	l := sc.httpLoad(t, getDemo, loadRate, loadLimit)
	l.await(t, 100, l.start, awaitLoad)

	// All to v2, with a virtual host Envoy rejects.
	weir.XDS().SetTestMutator(breakRoutes)
	edit := time.Now()
	writeFile(t, splitFile, rootSplit(0, 100))
	var nack *xds.Nack
	waitFor(t, 10*time.Second, "a NACK", func() error {
		if nack = sc.status(t).LastNack; nack == nil {
			return errNotYet
		}
		return nil
	})
	nacked := time.Now()
	t.Logf("NACK %v after the write: %+v", nacked.Sub(edit).Round(time.Millisecond), *nack)
	// RE2's words for the lookahead, as Envoy logs them.
	if nack.TypeURL != resourcev3.RouteType || !strings.Contains(nack.Message, badRegexError) {
		t.Errorf("NACK of %s %q, want one of %s saying %q", nack.TypeURL, nack.Message, resourcev3.RouteType, badRegexError)
	}
	if log := sc.logTail(100); nack.Message == "" || !strings.Contains(log, "rejected: "+nack.Message) {
		t.Errorf("envoy's log does not say it rejected the configuration with %q:\n%s", nack.Message, log)
	}
	if want := weir.XDS().DesiredVersions(sc.nodeID)[resourcev3.RouteType]; nack.Version != want {
		t.Errorf("NACKed route version %s, want the desired one %s", nack.Version, want)
	}
	st := sc.status(t)
	routePushes := metricValue(t, weir.AdminAddr(), `weir_xds_pushes_total{role="sidecar",type="route"}`)
	// Absence of events: a resend loop would show within 2 s.
	l.await(t, 2*loadRate, nacked, awaitLoad)
	time.Sleep(time.Until(nacked.Add(2 * time.Second)))
	st2 := sc.status(t)
	if got := metricValue(t, weir.AdminAddr(), `weir_xds_nacks_total{role="sidecar",type="route"}`); got != 1 {
		t.Errorf("/metrics: %v route NACKs, want 1", got)
	}
	if got := metricValue(t, weir.AdminAddr(), `weir_xds_pushes_total{role="sidecar",type="route"}`); got != routePushes {
		t.Errorf("/metrics: route pushes went from %v to %v in the 2 s after the NACK, want no resend", routePushes, got)
	}
	if !cmp.Equal(st.Pushes, st2.Pushes) || st2.Nacks != st.Nacks || st2.Nacks != 1 {
		t.Errorf("after the NACK: pushes %v then %v 2 s later, NACKs %d then %d; want no change and 1 NACK",
			st.Pushes, st2.Pushes, st.Nacks, st2.Nacks)
	}
	t.Logf("pushes at the NACK %v, 2 s later %v; %v answered since the NACK", st.Pushes, st2.Pushes, l.since(nacked))
	if got := st2.Acked[resourcev3.RouteType]; got != acked[resourcev3.RouteType] {
		t.Errorf("ACKed route %s after the NACK, want the last good one %s", got, acked[resourcev3.RouteType])
	}
	if published, desired := weir.XDS().SnapshotVersions(sc.nodeID), weir.XDS().DesiredVersions(sc.nodeID); !cmp.Equal(published, desired) {
		t.Errorf("weir's steps stopped at the NACK: published %v, desired %v", published, desired)
	}
	mustOnly(t, "requests after the NACK (last good routes: all to v1)", l.since(nacked), "v1")
	// The hook broke every route configuration (one per host): each was
	// rejected once, and not sent again.
	stats := sc.stats(t, rejected)
	routeConfigs := weir.XDS().PublishedNames(sc.nodeID, resourcev3.RouteType)
	if len(stats) != len(routeConfigs) {
		t.Errorf("envoy's RDS rejections: %v, want one counter per route configuration %v", stats, routeConfigs)
	}
	for name, v := range stats {
		if v != 1 {
			t.Errorf("envoy's RDS rejections of %s: %d, want 1", name, v)
		}
	}

	// Without the hook the next edit goes through.
	weir.XDS().SetTestMutator(nil)
	writeFile(t, splitFile, rootSplit(50, 50))
	settled(t, weir.XDS(), sc.nodeID, map[string]string{resourcev3.RouteType: nack.Version}, mode.types()...)
	fixed := time.Now()
	l.await(t, 400, fixed, awaitLoad)
	tl := l.since(fixed)
	checkShare(t, "answered by v2 after the fix", tl.counts["v2"], tl.n, 0.5)
	l.report(t, "v1", "v2")
	if ps := sc.status(t); ps.Nacks != 1 {
		t.Errorf("envoy NACKed %d times, want 1; last: %+v", ps.Nacks, ps.LastNack)
	}
}

// TestSafetyManyGRPCClients connects 500 proxyless gRPC clients at once,
// each its own xDS client and node, waits until all ACKed, makes one RPC
// through each, closes them, and checks that weir forgets them and that
// goroutines and heap return to where they were.
func TestSafetyManyGRPCClients(t *testing.T) {
	if testing.Short() {
		t.Skip("500 xDS clients: skipped in -short mode")
	}
	const (
		clients = 500
		// goroutineSlack absorbs goroutines a process starts once.
		goroutineSlack = 10
		// heapSlack is what the heap may grow by: 8 KiB a client. The
		// baseline holds reservedGoroutines descriptors, so twice the
		// baseline would hide a lot.
		heapSlack = 4 << 20
	)
	b := startEchoBackends(t)
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "services.yaml"), echoManifests(b))
	writeFile(t, filepath.Join(dir, "split.yaml"), trafficSplit("echo-split", 75, 25))
	weir := runWeir(t, dir, "127.0.0.1:0")
	dial := func(nodeID string) (*grpc.ClientConn, error) { return dialXDS(weir.XDSAddr(), nodeID) }
	rpc := func(cc *grpc.ClientConn) error {
		_, err := b.call(cc, healthgrpc.Health_Check_FullMethodName, "")
		return err
	}
	waitGone := func(what string) {
		t.Helper()
		waitFor(t, 60*time.Second, what, func() error {
			if n := len(weir.XDS().Proxies()); n != 0 {
				return fmt.Errorf("%d proxies connected", n)
			}
			return nil
		})
	}

	baseGoroutines, baseHeap := baseline(t, weir.XDS(), dial, rpc, waitGone)
	peak := samplePeakGoroutines()

	start := time.Now()
	ccs := dialAll(t, weir.XDSAddr(), clients)
	dialed := time.Since(start)
	waitFor(t, 120*time.Second, fmt.Sprintf("%d clients to ACK every type", clients), func() error {
		return allAcked(weir.XDS(), clients)
	})
	acked := time.Since(start)
	peakHeap := heapInuse()
	errs := make([]error, clients)
	var wg sync.WaitGroup
	for i, cc := range ccs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = rpc(cc)
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Errorf("RPCs: %v", err)
	}
	rpcs := time.Since(start)
	closing := time.Now()
	closeAll(t, ccs)
	waitGone(fmt.Sprintf("weir to forget all %d clients", clients))
	forgotten := time.Since(closing)
	peakGoroutines := peak()
	if peakGoroutines > reservedGoroutines {
		t.Errorf("%d goroutines at the peak, more than the %d reserved: the heap comparison below counts their descriptors; raise reservedGoroutines", peakGoroutines, reservedGoroutines)
	}
	g, h := waitBaseline(t, fmt.Sprintf("after %d clients", clients), baseGoroutines+goroutineSlack, baseHeap+heapSlack)
	t.Logf("%d clients: dialed in %v, all ACKed after %v, one RPC each done after %v; at the peak %d goroutines, heap in use %.1f MiB once all ACKed; "+
		"closed, and weir forgot them in %v; then %d goroutines (baseline %d), heap %.1f MiB (baseline %.1f), after %v",
		clients, dialed.Round(time.Millisecond), acked.Round(time.Millisecond), rpcs.Round(time.Millisecond),
		peakGoroutines, mib(peakHeap), forgotten.Round(time.Millisecond), g, baseGoroutines, mib(h), mib(baseHeap),
		time.Since(closing).Round(time.Millisecond))
}

// baseline runs one client first (it must work; it makes the process set
// up what it sets up once, such as protobuf descriptors and grpc-go's
// registries), then returns the goroutine count and heap in use.
func baseline(t *testing.T, srv *xds.Server, dial func(string) (*grpc.ClientConn, error), rpc func(*grpc.ClientConn) error, waitGone func(string)) (int, uint64) {
	t.Helper()
	cc, err := dial("grpc-many-first")
	if err != nil {
		t.Fatal(err)
	}
	ackedVersions(t, srv, "grpc-many-first", nil, grpcTypes...)
	if err := rpc(cc); err != nil {
		t.Fatalf("RPC: %v", err)
	}
	if err := cc.Close(); err != nil {
		t.Fatal(err)
	}
	waitGone("weir to forget the first client")
	// The runtime never frees a goroutine's descriptor: it keeps it for the
	// next goroutine, so the heap grows with the most goroutines ever alive
	// at once. Having had that many before the baseline keeps this out of
	// the comparison.
	reserveGoroutines(t, reservedGoroutines)
	waitFor(t, 10*time.Second, "the goroutine count to settle", func() error {
		before := runtime.NumGoroutine()
		time.Sleep(50 * time.Millisecond)
		if after := runtime.NumGoroutine(); after != before {
			return fmt.Errorf("%d goroutines, then %d", before, after)
		}
		return nil
	})
	g, h := runtime.NumGoroutine(), heapInuse()
	t.Logf("baseline: %d goroutines, heap in use %.1f MiB", g, mib(h))
	return g, h
}

// waitBaseline waits until the process runs at most goroutines goroutines
// and, after a collection, has at most heap bytes of heap in use; it returns
// the last counts.
func waitBaseline(t *testing.T, what string, goroutines int, heap uint64) (int, uint64) {
	t.Helper()
	var g int
	var h uint64
	waitFor(t, 60*time.Second, "goroutines and heap back to baseline "+what, func() error {
		g, h = runtime.NumGoroutine(), heapInuse()
		if g > goroutines || h > heap {
			return fmt.Errorf("%d goroutines (at most %d), heap in use %.1f MiB (at most %.1f)", g, goroutines, mib(h), mib(heap))
		}
		return nil
	})
	return g, h
}

// reservedGoroutines is more than the goroutines alive at once while
// TestSafetyManyGRPCClients runs: about 18,000 on 2 cores, 36 a client
// counting its backends' and weir's side.
const reservedGoroutines = 40000

// reserveGoroutines starts n goroutines and lets them end, so that the
// runtime holds n goroutine descriptors for reuse.
func reserveGoroutines(t *testing.T, n int) {
	t.Helper()
	var started, ended sync.WaitGroup
	release := make(chan struct{})
	for range n {
		started.Add(1)
		ended.Add(1)
		go func() {
			defer ended.Done()
			started.Done()
			<-release
		}()
	}
	started.Wait()
	close(release)
	ended.Wait()
}

// samplePeakGoroutines samples the goroutine count every millisecond until
// the returned func is called, which returns the highest count seen.
func samplePeakGoroutines() func() int {
	stop, done := make(chan struct{}), make(chan int)
	go func() {
		peak := 0
		tick := time.NewTicker(time.Millisecond)
		defer tick.Stop()
		for {
			peak = max(peak, runtime.NumGoroutine())
			select {
			case <-stop:
				done <- peak
				return
			case <-tick.C:
			}
		}
	}()
	return func() int {
		close(stop)
		return <-done
	}
}

// heapInuse returns the heap in use after a collection.
func heapInuse() uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapInuse
}

func mib(b uint64) float64 { return float64(b) / (1 << 20) }
