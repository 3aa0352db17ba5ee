package e2e

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthgrpc "google.golang.org/grpc/health/grpc_health_v1"
	grpcxds "google.golang.org/grpc/xds"

	"github.com/weir-mesh/weir/cmd/weir/serve"
	"github.com/weir-mesh/weir/translator/envoy"
	"github.com/weir-mesh/weir/xds"
)

// Helpers of safety_test.go: a control plane that can be stopped and started
// again on the same address, Envoy in either xDS mode, backends that shut
// down gracefully, and load sent at a steady rate with every answer checked.

// safetyGrace is the ClusterGrace of the safety tests: long enough to see a
// retired cluster kept for a while, short enough not to slow the tests.
const safetyGrace = time.Second

// weirRun is a control plane run in-process that a test can stop before it
// ends.
type weirRun struct {
	*serve.Server
	cancel context.CancelFunc
	done   chan error
	once   sync.Once
	err    error
}

// runWeir starts weir on the manifests in dir with a ClusterGrace of
// safetyGrace, serving ADS on xdsAddr ("127.0.0.1:0": any free port). It is
// stopped when the test ends, if not before.
func runWeir(t testing.TB, dir, xdsAddr string) *weirRun {
	t.Helper()
	var out io.Writer = testWriter{t}
	if os.Getenv("WEIR_E2E_QUIET") != "" {
		out = io.Discard
	}
	s, err := serve.New(serve.Config{
		Dir:             dir,
		XDSAddr:         xdsAddr,
		AdminAddr:       "127.0.0.1:0",
		OutboundAddress: "127.0.0.1",
		OutboundPort:    15001,
		ClusterGrace:    safetyGrace,
		Debounce:        20 * time.Millisecond,
		DebounceMax:     200 * time.Millisecond,
		Logger:          slog.New(slog.NewTextHandler(out, &slog.HandlerOptions{Level: slog.LevelInfo})),
	})
	if err != nil {
		t.Fatalf("start weir: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	w := &weirRun{Server: s, cancel: cancel, done: make(chan error, 1)}
	go func() { w.done <- s.Run(ctx) }()
	t.Cleanup(func() {
		if err := w.stop(); err != nil {
			t.Errorf("weir stopped with: %v", err)
		}
	})
	return w
}

// stop cancels weir's context, as SIGTERM does, and returns what Run
// returned. It may be called again.
func (w *weirRun) stop() error {
	w.once.Do(func() {
		w.cancel()
		w.err = <-w.done
	})
	return w.err
}

// xdsMode is how an Envoy sidecar talks to weir: delta (DELTA_GRPC) or
// state of the world, and with scoped routes or not.
type xdsMode struct {
	name          string
	delta, scoped bool
}

var xdsModes = []xdsMode{{"sotw", false, false}, {"delta", true, false}, {"sotw-scoped", false, true}, {"delta-scoped", true, true}}

// forEachMode runs an Envoy case once per xDS mode, as subtests.
func forEachMode(t *testing.T, run func(t *testing.T, mode xdsMode)) {
	for _, m := range xdsModes {
		t.Run(m.name, func(t *testing.T) { run(t, m) })
	}
}

// types are the resource types the sidecar receives.
func (m xdsMode) types() []string {
	if m.scoped {
		return sidecarTypes
	}
	return xdsTypes
}

// startSidecarMode is startSidecar with the xDS mode chosen. It checks
// that weir sees the mode asked for.
func startSidecarMode(t testing.TB, weir *serve.Server, namespace string, mode xdsMode) *sidecar {
	t.Helper()
	dir := t.TempDir()
	outboundPort := freePort(t)
	s := &sidecar{
		weir:     weir,
		nodeID:   "sidecar-" + strings.NewReplacer("/", "-", " ", "_").Replace(t.Name()),
		outbound: net.JoinHostPort("127.0.0.1", strconv.Itoa(int(outboundPort))),
		logPath:  filepath.Join(dir, "envoy.log"),
		exited:   make(chan struct{}),
		client:   newClient(16),
	}
	bootstrap, err := xds.EnvoyBootstrap(xds.BootstrapOptions{
		NodeID: s.nodeID, Role: envoy.Sidecar, Namespace: namespace, XDSAddr: weir.XDSAddr(),
		AdminAddress: "127.0.0.1", AdminPort: 0,
		OutboundPort: outboundPort, Delta: mode.delta, ScopedRoutes: mode.scoped,
	})
	if err != nil {
		t.Fatal(err)
	}
	config := filepath.Join(dir, "envoy.yaml")
	adminPath := filepath.Join(dir, "admin-address")
	writeFile(t, config, string(bootstrap))
	s.run(t, config, adminPath)
	s.waitLive(t, adminPath)
	ackedVersions(t, weir.XDS(), s.nodeID, nil, mode.types()...)
	if got := s.status(t).Delta; got != mode.delta {
		t.Fatalf("node %s: weir sees delta=%v, want %v", s.nodeID, got, mode.delta)
	}
	return s
}

// admin GETs path from Envoy's admin listener.
func (s *sidecar) adminGet(path string) (string, error) {
	c := &http.Client{Timeout: requestTimeout}
	resp, err := c.Get("http://" + s.admin + path)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("envoy admin %s: %s", path, resp.Status)
	}
	return string(b), nil
}

// stats returns Envoy's counters and gauges whose names match re.
func (s *sidecar) stats(t testing.TB, re *regexp.Regexp) map[string]int64 {
	t.Helper()
	body, err := s.adminGet("/stats")
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]int64{}
	sc := bufio.NewScanner(strings.NewReader(body))
	for sc.Scan() {
		name, value, ok := strings.Cut(sc.Text(), ": ")
		if !ok || !re.MatchString(name) {
			continue
		}
		if v, err := strconv.ParseInt(value, 10, 64); err == nil { // histograms are not numbers
			out[name] = v
		}
	}
	return out
}

// hasCluster reports whether Envoy's cluster manager holds cluster name.
func (s *sidecar) hasCluster(t testing.TB, name string) bool {
	t.Helper()
	body, err := s.adminGet("/clusters")
	if err != nil {
		t.Fatal(err)
	}
	return strings.Contains("\n"+body, "\n"+name+"::")
}

// backend is an HTTP server answering body that can be shut down gracefully
// before the test ends.
type backend struct {
	port   uint32
	served atomic.Int64 // requests answered
	srv    *http.Server
	done   chan error
	once   sync.Once
}

// startStoppableBackend serves body on a free loopback port.
func startStoppableBackend(t testing.TB, body string) *backend {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b := &backend{port: uint32(lis.Addr().(*net.TCPAddr).Port), done: make(chan error, 1)}
	b.srv = &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			b.served.Add(1)
			_, _ = io.WriteString(w, body) // an error means the client went away
		}),
		ReadHeaderTimeout: 5 * time.Second,
	}
	go func() { b.done <- b.srv.Serve(lis) }()
	t.Cleanup(func() { b.shutdown(t) })
	return b
}

// shutdown stops accepting connections, closes idle ones, waits for the
// requests in flight and returns when the server stopped.
func (b *backend) shutdown(t testing.TB) {
	t.Helper()
	b.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := b.srv.Shutdown(ctx); err != nil {
			t.Errorf("backend :%d shutdown: %v", b.port, err)
		}
		if err := <-b.done; !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("backend :%d: %v", b.port, err)
		}
	})
}

// versionBody matches the body of every backend: "Hi, I am v<n>!".
var versionBody = regexp.MustCompile(`^Hi, I am (v[0-9]+)!$`)

// fetch sends r through the sidecar and returns its outcome: the version
// of the backend for a 200 with a known body, else "HTTP <code>", "bad
// body" or "error", with the detail (for Envoy's own answers its body says
// why, e.g. "no healthy upstream").
func (s *sidecar) fetch(c *http.Client, r request) (string, error) {
	body, err := s.answer(c, r)
	if err != nil {
		return body, err
	}
	m := versionBody.FindStringSubmatch(body)
	if m == nil {
		return "bad body", fmt.Errorf("%s: body %q", r, body)
	}
	return m[1], nil
}

// loadWorkers bounds the requests of a steady load in flight at once.
const loadWorkers = 16

// outcome is the result of one request of a steady load.
type outcome struct {
	sent   time.Time
	result string // a version ("v1"), or what went wrong
}

// steadyLoad sends requests at a fixed rate and records every outcome.
type steadyLoad struct {
	start time.Time
	stopc chan struct{}
	done  chan struct{}
	once  sync.Once

	mu       sync.Mutex
	outcomes []outcome
	failures []string // the first maxFailures, with when and why
	late     int      // requests not sent: every worker busy, backlog full
}

const maxFailures = 20

// startSteadyLoad calls a worker's do rate times a second until stopped or
// limit calls were made. Each of loadWorkers goroutines gets its do (and a
// func to release it) from newWorker, e.g. its own keep-alive connection.
// do returns a version, or an outcome naming the failure and its error.
func startSteadyLoad(t testing.TB, rate, limit int, newWorker func() (do func() (string, error), release func())) *steadyLoad {
	l := &steadyLoad{start: time.Now(), stopc: make(chan struct{}), done: make(chan struct{})}
	// A backlog lets the workers absorb a burst after a stall.
	jobs := make(chan struct{}, 4*loadWorkers)
	var wg sync.WaitGroup
	for range loadWorkers {
		wg.Add(1)
		do, release := newWorker()
		go func() {
			defer wg.Done()
			defer release()
			for range jobs {
				sent := time.Now()
				res, err := do()
				l.record(sent, res, err)
			}
		}()
	}
	go func() {
		defer close(l.done)
		defer wg.Wait()
		defer close(jobs)
		// Request i is due at start + i/rate; a late dispatcher catches
		// up, so the rate holds on average however the process is slowed.
		interval := time.Second / time.Duration(rate)
		timer := time.NewTimer(0)
		defer timer.Stop()
		for i := range limit {
			timer.Reset(time.Until(l.start.Add(time.Duration(i) * interval)))
			select {
			case <-l.stopc:
				return
			case <-timer.C:
			}
			select {
			case jobs <- struct{}{}:
			default:
				l.mu.Lock()
				l.late++
				l.mu.Unlock()
			}
		}
	}()
	t.Cleanup(func() { l.finish() })
	return l
}

// httpLoad sends r through the sidecar at rate requests a second, each
// worker on its own keep-alive connection.
func (s *sidecar) httpLoad(t testing.TB, r request, rate, limit int) *steadyLoad {
	return startSteadyLoad(t, rate, limit, func() (func() (string, error), func()) {
		c := newClient(1)
		return func() (string, error) { return s.fetch(c, r) }, c.CloseIdleConnections
	})
}

func (l *steadyLoad) record(sent time.Time, res string, err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.outcomes = append(l.outcomes, outcome{sent: sent, result: res})
	if err != nil && len(l.failures) < maxFailures {
		l.failures = append(l.failures, fmt.Sprintf("at +%v: %s: %v", sent.Sub(l.start).Round(time.Millisecond), res, err))
	}
}

// since counts the outcomes of the requests sent at or after t0.
func (l *steadyLoad) since(t0 time.Time) tally {
	return l.between(t0, time.Now().Add(time.Hour))
}

// between counts the outcomes of the requests sent in [t0, t1).
func (l *steadyLoad) between(t0, t1 time.Time) tally {
	l.mu.Lock()
	defer l.mu.Unlock()
	tl := tally{counts: map[string]int{}}
	for _, o := range l.outcomes {
		if !o.sent.Before(t0) && o.sent.Before(t1) {
			tl.n++
			tl.counts[o.result]++
		}
	}
	return tl
}

// await waits until n requests sent at or after t0 were answered, which at
// the load's rate takes n/rate; timeout bounds the wait.
func (l *steadyLoad) await(t testing.TB, n int, t0 time.Time, timeout time.Duration) {
	t.Helper()
	waitFor(t, timeout, fmt.Sprintf("%d answers to requests sent since +%v", n, t0.Sub(l.start).Round(time.Millisecond)), func() error {
		if got := l.since(t0).n; got < n {
			return fmt.Errorf("%d so far", got)
		}
		return nil
	})
}

// finish stops the load, waits for the requests in flight and returns every
// outcome. It may be called again.
func (l *steadyLoad) finish() tally {
	l.once.Do(func() { close(l.stopc) })
	<-l.done
	return l.since(l.start)
}

// report logs what the load did and fails the test if any request failed or
// was answered by a version not in want.
func (l *steadyLoad) report(t testing.TB, want ...string) tally {
	t.Helper()
	tl := l.finish()
	l.mu.Lock()
	defer l.mu.Unlock()
	took := time.Since(l.start)
	var last time.Time
	if len(l.outcomes) > 0 {
		last = l.outcomes[len(l.outcomes)-1].sent
	}
	t.Logf("load: %v in %v (%.0f/s; %d not sent, every worker busy and backlog full); last sent at +%v",
		tl, took.Round(time.Millisecond), float64(tl.n)/took.Seconds(), l.late, last.Sub(l.start).Round(time.Millisecond))
	good := 0
	for _, v := range want {
		good += tl.counts[v]
	}
	if good != tl.n {
		t.Errorf("%d of %d requests failed or reached an unexpected version (want only %v): %v", tl.n-good, tl.n, want, tl)
		for _, f := range l.failures {
			t.Errorf("  %s", f)
		}
	}
	return tl
}

// httpbinService is a Service of namespace httpbin with one HTTP port.
func httpbinService(name string) string {
	return fmt.Sprintf(`apiVersion: v1
kind: Service
metadata: {name: %s, namespace: httpbin}
spec:
  ports:
  - {name: http, port: 8080, targetPort: 8080}
`, name)
}

// splitOf is the TrafficSplit of root httpbin with the given backend
// weights; a weight of 0 leaves the backend out.
func splitOf(weights map[string]int) string {
	names := make([]string, 0, len(weights))
	for n := range weights {
		names = append(names, n)
	}
	sort.Strings(names)
	s := `apiVersion: split.smi-spec.io/v1alpha4
kind: TrafficSplit
metadata: {name: httpbin-split, namespace: httpbin}
spec:
  service: httpbin
  backends:
`
	for _, n := range names {
		if weights[n] != 0 {
			s += fmt.Sprintf("  - {service: %s, weight: %d}\n", n, weights[n])
		}
	}
	return s
}

// versionedManifests is, in one document stream, root Service httpbin, a
// Service httpbin-<version> per version with one slice per port, the root's
// slices, and the split.
func versionedManifests(ports map[string][]uint32, weights map[string]int) string {
	versions := make([]string, 0, len(ports))
	for v := range ports {
		versions = append(versions, v)
	}
	sort.Strings(versions)
	docs := []string{httpbinService("httpbin")}
	for _, v := range versions {
		svc := "httpbin-" + v
		docs = append(docs, httpbinService(svc))
		for _, p := range ports[v] {
			docs = append(docs,
				endpointSlice(fmt.Sprintf("%s-%d", svc, p), svc, p),
				endpointSlice(fmt.Sprintf("httpbin-root-%s-%d", v, p), "httpbin", p))
		}
	}
	return strings.Join(append(docs, splitOf(weights)), "---\n")
}

// clusterOf is the Envoy cluster of Service httpbin-<version>.
func clusterOf(version string) string {
	return "outbound|8080||httpbin-" + version + ".httpbin.svc.cluster.local"
}

// settled waits until the node ACKed, for every type, the version weir
// wants it to have, and at least one of them differs from prev (nil prev:
// any). It returns the ACKed versions. Unlike ackedVersions it tolerates an
// earlier NACK, and fails on a new one only by timing out.
func settled(t testing.TB, srv *xds.Server, nodeID string, prev map[string]string, types ...string) map[string]string {
	t.Helper()
	return waitDesired(t, srv, nodeID, prev, false, types...)
}

// dialXDS dials grpcTarget as node nodeID of the weir at xdsAddr, through
// an xDS resolver (and so an xDS client and ADS stream) of its own, and
// makes the channel leave idle mode.
func dialXDS(xdsAddr, nodeID string) (*grpc.ClientConn, error) {
	bootstrap, err := xds.GRPCBootstrap(xds.BootstrapOptions{
		NodeID: nodeID, Role: envoy.GRPC, Namespace: "grpcdemo", XDSAddr: xdsAddr,
	})
	if err != nil {
		return nil, err
	}
	builder, err := grpcxds.NewXDSResolverWithConfigForTesting(bootstrap)
	if err != nil {
		return nil, err
	}
	cc, err := grpc.NewClient(grpcTarget, grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithResolvers(builder))
	if err != nil {
		return nil, err
	}
	cc.Connect()
	return cc, nil
}

// grpcLeg is a proxyless gRPC client of a weir serving a directory, with
// echo backends by version.
type grpcLeg struct {
	dir      string
	file     string // the one manifest file the leg rewrites
	weir     *weirRun
	cc       *grpc.ClientConn
	nodeID   string
	backends *echoBackends
	stops    map[string]func()
	ports    map[string]string // version -> port
}

// newGRPCLeg starts one echo backend per version.
func newGRPCLeg(t *testing.T, versions ...string) *grpcLeg {
	t.Helper()
	g := &grpcLeg{
		dir:      t.TempDir(),
		nodeID:   "grpc-" + strings.ReplaceAll(t.Name(), "/", "-"),
		backends: &echoBackends{version: map[string]string{}},
		stops:    map[string]func(){},
		ports:    map[string]string{},
	}
	g.file = filepath.Join(g.dir, "echo.yaml")
	for _, v := range versions {
		g.stops[v] = g.startBackend(t, v)
	}
	return g
}

// start writes the manifests of versions and weights, starts weir and
// dials it; it returns the versions the client ACKed.
func (g *grpcLeg) start(t *testing.T, versions []string, weights map[string]int) map[string]string {
	t.Helper()
	g.write(t, versions, weights)
	g.weir = runWeir(t, g.dir, "127.0.0.1:0")
	var err error
	if g.cc, err = dialXDS(g.weir.XDSAddr(), g.nodeID); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := g.cc.Close(); err != nil {
			t.Errorf("close client: %v", err)
		}
	})
	return ackedVersions(t, g.weir.XDS(), g.nodeID, nil, grpcTypes...)
}

// startBackend serves the health service as version v and returns a func
// that stops it gracefully (GOAWAY, then the RPCs in flight finish).
func (g *grpcLeg) startBackend(t *testing.T, v string) func() {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := grpc.NewServer()
	hs := health.NewServer()
	hs.SetServingStatus("", healthgrpc.HealthCheckResponse_SERVING)
	healthgrpc.RegisterHealthServer(s, hs)
	done := make(chan error, 1)
	go func() { done <- s.Serve(lis) }()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			s.GracefulStop()
			if err := <-done; err != nil {
				t.Errorf("backend %s: %v", v, err)
			}
		})
	}
	t.Cleanup(stop)
	g.backends.version[lis.Addr().String()] = v // before any RPC reads it
	g.ports[v] = strconv.Itoa(lis.Addr().(*net.TCPAddr).Port)
	return stop
}

// port returns the port of version v's backend.
func (g *grpcLeg) port(v string) string { return g.ports[v] }

// manifests are root Service echo, a Service echo-<v> per version with its
// slice, the root's slices, and a TrafficSplit of echo; a weight of 0 leaves
// the backend out.
func (g *grpcLeg) manifests(versions []string, weights map[string]int) string {
	svc := func(name string) string {
		return fmt.Sprintf(`apiVersion: v1
kind: Service
metadata: {name: %s, namespace: grpcdemo}
spec:
  ports:
  - {name: grpc, port: 50051, targetPort: 50051, appProtocol: grpc}
`, name)
	}
	slice := func(name, service, port string) string {
		return fmt.Sprintf(`apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: %s
  namespace: grpcdemo
  labels: {kubernetes.io/service-name: %s}
addressType: IPv4
ports:
- {name: grpc, port: %s, protocol: TCP}
endpoints:
- addresses: [127.0.0.1]
  conditions: {ready: true}
`, name, service, port)
	}
	docs := []string{"apiVersion: v1\nkind: Namespace\nmetadata: {name: grpcdemo}\n", svc("echo")}
	split := "apiVersion: split.smi-spec.io/v1alpha4\nkind: TrafficSplit\nmetadata: {name: echo-split, namespace: grpcdemo}\nspec:\n  service: echo\n  backends:\n"
	for _, v := range versions {
		docs = append(docs, svc("echo-"+v), slice("echo-"+v, "echo-"+v, g.port(v)), slice("echo-root-"+v, "echo", g.port(v)))
		if weights[v] != 0 {
			split += fmt.Sprintf("  - {service: echo-%s, weight: %d}\n", v, weights[v])
		}
	}
	return strings.Join(append(docs, split), "---\n")
}

// write rewrites the leg's manifest file.
func (g *grpcLeg) write(t *testing.T, versions []string, weights map[string]int) {
	t.Helper()
	writeFile(t, g.file, g.manifests(versions, weights))
}

// load sends Health/Check RPCs at rate a second through the client.
func (g *grpcLeg) load(t testing.TB, rate, limit int) *steadyLoad {
	return startSteadyLoad(t, rate, limit, func() (func() (string, error), func()) {
		return func() (string, error) {
			v, err := g.backends.call(g.cc, healthgrpc.Health_Check_FullMethodName, "")
			if err != nil {
				return "error", err
			}
			return v, nil
		}, func() {}
	})
}

// status returns what weir knows of the leg's client.
func (g *grpcLeg) status(t testing.TB) xds.ProxyStatus {
	t.Helper()
	p, ok := proxyOf(g.weir.XDS(), g.nodeID)
	if !ok {
		t.Fatalf("weir does not know node %s", g.nodeID)
	}
	return p
}

// waitReconnected waits until node is connected to srv, srv published what
// it wants the node to have, something of each required type was sent, and
// the node ACKed everything sent. It returns what srv knows of the node.
func waitReconnected(t *testing.T, srv *xds.Server, nodeID string, required []string) xds.ProxyStatus {
	t.Helper()
	var after xds.ProxyStatus
	waitFor(t, 30*time.Second, "node "+nodeID+" to reconnect and ACK what it was sent", func() error {
		ps, ok := proxyOf(srv, nodeID)
		if !ok {
			return errors.New("not connected")
		}
		if published, desired := srv.SnapshotVersions(nodeID), srv.DesiredVersions(nodeID); !cmp.Equal(published, desired) {
			return fmt.Errorf("published %v, desired %v", published, desired)
		}
		for _, typ := range required {
			if ps.Sent[typ] == "" {
				return fmt.Errorf("nothing of %s sent yet", typ)
			}
		}
		for typ, v := range ps.Sent {
			if ps.Acked[typ] != v {
				return fmt.Errorf("%s: sent %s, acked %q", typ, v, ps.Acked[typ])
			}
		}
		after = ps
		return nil
	})
	return after
}

// dialAll dials n clients at once, each its own node of the weir at
// xdsAddr; they are closed when the test ends if closeAll did not before.
func dialAll(t *testing.T, xdsAddr string, n int) []*grpc.ClientConn {
	t.Helper()
	ccs := make([]*grpc.ClientConn, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	ready := make(chan struct{})
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-ready
			ccs[i], errs[i] = dialXDS(xdsAddr, fmt.Sprintf("grpc-many-%03d", i))
		}()
	}
	close(ready)
	wg.Wait()
	t.Cleanup(func() { closeAll(t, ccs) })
	if err := errors.Join(errs...); err != nil {
		t.Fatalf("dial: %v", err)
	}
	return ccs
}

// closeAll closes every client not closed yet.
func closeAll(t *testing.T, ccs []*grpc.ClientConn) {
	t.Helper()
	for i, cc := range ccs {
		if cc != nil {
			if err := cc.Close(); err != nil {
				t.Errorf("close client %d: %v", i, err)
			}
			ccs[i] = nil
		}
	}
}

// allAcked returns nil once n proxies are connected and each ACKed, for
// every type, the version weir wants it to have.
func allAcked(srv *xds.Server, n int) error {
	proxies := srv.Proxies()
	if len(proxies) != n {
		return fmt.Errorf("%d of %d connected", len(proxies), n)
	}
	waiting := 0
	for _, p := range proxies {
		if p.LastNack != nil {
			return fmt.Errorf("node %s NACKed %s: %s", p.NodeID, p.LastNack.TypeURL, p.LastNack.Message)
		}
		published, desired := srv.SnapshotVersions(p.NodeID), srv.DesiredVersions(p.NodeID)
		for _, typ := range grpcTypes {
			if published[typ] == "" || published[typ] != desired[typ] || p.Acked[typ] != published[typ] {
				waiting++
				break
			}
		}
	}
	if waiting > 0 {
		return fmt.Errorf("%d of %d not settled", waiting, n)
	}
	return nil
}

// metricValue reads one sample, named with its labels exactly as the
// Prometheus text format writes them, from weir's /metrics; a missing
// sample is 0.
func metricValue(t testing.TB, adminAddr, sample string) float64 {
	t.Helper()
	resp, err := http.Get("http://" + adminAddr + "/metrics")
	if err != nil {
		t.Fatalf("/metrics: %v", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("/metrics: %v", err)
	}
	for _, line := range strings.Split(string(body), "\n") {
		if rest, ok := strings.CutPrefix(line, sample+" "); ok {
			v, err := strconv.ParseFloat(strings.TrimSpace(rest), 64)
			if err != nil {
				t.Fatalf("/metrics: %q: %v", line, err)
			}
			return v
		}
	}
	return 0
}
