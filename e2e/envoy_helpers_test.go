package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"

	"github.com/weir-mesh/weir/cmd/weir/serve"
	"github.com/weir-mesh/weir/translator/envoy"
	"github.com/weir-mesh/weir/translator/status"
	"github.com/weir-mesh/weir/xds"
)

// xdsTypes are the four resource types every Envoy receives; sidecarTypes
// adds the sidecar's scopes.
var (
	xdsTypes     = []string{resourcev3.ClusterType, resourcev3.EndpointType, resourcev3.ListenerType, resourcev3.RouteType}
	sidecarTypes = append(slices.Clip(xdsTypes), resourcev3.ScopedRouteType)
)

// requestTimeout bounds every HTTP request the tests send.
const requestTimeout = 5 * time.Second

// startBackend serves body for every method and path on a free loopback
// port until the test ends, and returns the port.
func startBackend(t testing.TB, body string) uint32 {
	t.Helper()
	return serveHTTP(t, func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(w, body) // an error means the client went away
	})
}

// freePort returns a loopback port that was free a moment ago. Another
// process may take it before Envoy binds it; that race is accepted because
// Envoy's listener port comes from weir's configuration.
func freePort(t testing.TB) uint32 {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return uint32(l.Addr().(*net.TCPAddr).Port)
}

// sidecar is a real Envoy in the sidecar role, fed by a weir started in the
// same test.
type sidecar struct {
	weir     *serve.Server
	nodeID   string
	outbound string // host:port of the outbound listener
	admin    string // host:port of Envoy's admin
	logPath  string
	exited   chan struct{}
	waitErr  error // set before exited is closed
	client   *http.Client
}

// startSidecar runs Envoy with a bootstrap pointing at weir, as a sidecar in
// namespace, until the test ends; it returns once Envoy is LIVE and has ACKed
// a configuration of every type.
func startSidecar(t testing.TB, weir *serve.Server, namespace string) *sidecar {
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
		AdminAddress: "127.0.0.1", AdminPort: 0, // Envoy picks; it writes the address to a file
		OutboundPort: outboundPort,
	})
	if err != nil {
		t.Fatal(err)
	}
	config := filepath.Join(dir, "envoy.yaml")
	adminPath := filepath.Join(dir, "admin-address")
	writeFile(t, config, string(bootstrap))
	s.run(t, config, adminPath)
	s.waitLive(t, adminPath)
	ackedVersions(t, weir.XDS(), s.nodeID, nil, xdsTypes...)
	return s
}

// run starts Envoy; the test's cleanup kills it and, if the test failed,
// prints the tail of its log.
func (s *sidecar) run(t testing.TB, config, adminPath string) {
	logFile, err := os.Create(s.logPath)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, envoyBinary(t), "-c", config,
		"--use-dynamic-base-id", "--log-level", "warn", "--concurrency", "2",
		"--admin-address-path", adminPath)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Start(); err != nil {
		cancel()
		logFile.Close()
		t.Fatalf("start envoy: %v", err)
	}
	go func() {
		s.waitErr = cmd.Wait()
		logFile.Close()
		close(s.exited)
	}()
	t.Cleanup(func() {
		s.client.CloseIdleConnections()
		cancel() // SIGKILL
		<-s.exited
		if t.Failed() {
			t.Logf("envoy log (%s), last lines:\n%s", s.logPath, s.logTail(40))
		}
	})
}

// logTail returns the last n lines of Envoy's log.
func (s *sidecar) logTail(n int) string {
	b, err := os.ReadFile(s.logPath)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// alive returns an error if Envoy exited.
func (s *sidecar) alive() error {
	select {
	case <-s.exited:
		return fmt.Errorf("envoy exited (%v); log:\n%s", s.waitErr, s.logTail(40))
	default:
		return nil
	}
}

// waitLive waits until Envoy's admin answers /ready with LIVE.
func (s *sidecar) waitLive(t testing.TB, adminPath string) {
	t.Helper()
	client := &http.Client{Timeout: time.Second}
	waitFor(t, 15*time.Second, "envoy to be LIVE", func() error {
		if err := s.alive(); err != nil {
			t.Fatal(err)
		}
		if s.admin == "" {
			b, err := os.ReadFile(adminPath)
			if err != nil || len(bytes.TrimSpace(b)) == 0 {
				return fmt.Errorf("no admin address yet (%v)", err)
			}
			s.admin = string(bytes.TrimSpace(b))
		}
		resp, err := client.Get("http://" + s.admin + "/ready")
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			return err
		}
		if got := strings.TrimSpace(string(b)); resp.StatusCode != http.StatusOK || got != "LIVE" {
			return fmt.Errorf("/ready: %d %q", resp.StatusCode, got)
		}
		return nil
	})
}

// waitRoute waits until Envoy ACKed a route configuration other than the one
// in prev, and ACKed the current version of every other type too. It returns
// the ACKed versions.
func (s *sidecar) waitRoute(t testing.TB, prev map[string]string) map[string]string {
	t.Helper()
	route := resourcev3.RouteType
	ackedVersions(t, s.weir.XDS(), s.nodeID, map[string]string{route: prev[route]}, route)
	s.waitAsksAllRoutes(t)
	return ackedVersions(t, s.weir.XDS(), s.nodeID, nil, xdsTypes...)
}

// waitAsksAllRoutes waits until a state-of-the-world sidecar asks for every
// route configuration weir published to it. A scoped sidecar asks for a new
// host's once the scopes naming it arrive, after ACKing the routes it had,
// and the route version it ACKs then changes again: a change of version
// seen before that is not yet the last of the write.
func (s *sidecar) waitAsksAllRoutes(t testing.TB) {
	t.Helper()
	route := resourcev3.RouteType
	waitFor(t, 10*time.Second, "node "+s.nodeID+" to ask for every route configuration", func() error {
		ps, ok := proxyOf(s.weir.XDS(), s.nodeID)
		if !ok {
			return errors.New("not connected")
		}
		asked, ok := ps.Subscribed[route]
		if published := len(s.weir.XDS().PublishedNames(s.nodeID, route)); ok && asked != published {
			return fmt.Errorf("asks for %d route configurations of %d published", asked, published)
		}
		return nil
	})
}

// status returns what weir knows of this proxy.
func (s *sidecar) status(t testing.TB) xds.ProxyStatus {
	t.Helper()
	p, ok := proxyOf(s.weir.XDS(), s.nodeID)
	if !ok {
		t.Fatalf("weir does not know node %s", s.nodeID)
	}
	return p
}

// request is one kind of request sent through the sidecar's outbound listener.
type request struct {
	Method, Host, Path string
}

func (r request) String() string { return r.Method + " " + r.Host + r.Path }

// newClient returns a keep-alive HTTP client that never uses a proxy.
func newClient(conns int) *http.Client {
	return &http.Client{
		Transport: &http.Transport{MaxIdleConnsPerHost: conns, DisableCompression: true},
		Timeout:   requestTimeout,
	}
}

// answer sends r through the sidecar and returns the backend's answer (its
// trimmed body) for a 200, else "HTTP <code>" or "error", with the detail.
func (s *sidecar) answer(c *http.Client, r request) (string, error) {
	req, err := http.NewRequest(r.Method, "http://"+s.outbound+r.Path, nil)
	if err != nil {
		return "error", err
	}
	req.Host = r.Host
	return readAnswer(c.Do(req))
}

// readAnswer returns the trimmed body of a 200 answer, else "HTTP <code>"
// or "error", with the detail.
func readAnswer(resp *http.Response, err error) (string, error) {
	if err != nil {
		return "error", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if err != nil {
		return "error", err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Sprintf("HTTP %d", resp.StatusCode), fmt.Errorf("%s %s: %s %q", resp.Request.Method, resp.Request.URL, resp.Status, body)
	}
	return strings.TrimSpace(string(body)), nil
}

// do sends r and returns its outcome: "v1" or "v2" for a 200 from that
// backend, else "HTTP <code>", "bad body" or "error", with the detail.
func (s *sidecar) do(c *http.Client, r request) (string, error) {
	body, err := s.answer(c, r)
	if err != nil {
		return body, err
	}
	switch body {
	case "Hi, I am v1!":
		return "v1", nil
	case "Hi, I am v2!":
		return "v2", nil
	}
	return "bad body", fmt.Errorf("%s: body %q", r, body)
}

// tally counts the outcomes of n requests.
type tally struct {
	n       int
	counts  map[string]int
	example error // one of the failures, if any
}

func (tl tally) String() string {
	keys := make([]string, 0, len(tl.counts))
	for k := range tl.counts {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s=%d", k, tl.counts[k])
	}
	s := fmt.Sprintf("%d requests: %s", tl.n, strings.Join(parts, " "))
	if tl.example != nil {
		s += fmt.Sprintf(" (e.g. %v)", tl.example)
	}
	return s
}

// send sends n requests r over 8 keep-alive connections and counts the
// outcomes.
func (s *sidecar) send(t testing.TB, n int, r request) tally {
	t.Helper()
	tl := sendAll(8, n, func() *http.Client { return s.client }, func(c *http.Client) (string, error) { return s.do(c, r) })
	t.Logf("%s: %v", r, tl)
	return tl
}

// sendAll calls do n times from workers goroutines, each with a client
// from client, and counts the outcomes.
func sendAll(workers, n int, client func() *http.Client, do func(*http.Client) (string, error)) tally {
	l := startLoadWith(workers, int64(n), client, do)
	l.wg.Wait()
	return l.finish()
}

// expectOnly fails unless every one of n requests r was answered by version.
func (s *sidecar) expectOnly(t testing.TB, n int, r request, version string) {
	t.Helper()
	if tl := s.send(t, n, r); tl.counts[version] != n {
		t.Errorf("%s: want all %d answered by %s, got %v", r, n, version, tl)
	}
}

// expectShare fails unless n requests r all succeed and v2 answers a share
// of them plausible for probability p.
func (s *sidecar) expectShare(t testing.TB, n int, r request, p float64) {
	t.Helper()
	tl := s.send(t, n, r)
	if tl.counts["v1"]+tl.counts["v2"] != n {
		t.Errorf("%s: want %d answers from v1 or v2, got %v", r, n, tl)
	}
	checkShare(t, r.String()+" answered by v2", tl.counts["v2"], n, p)
}

// load is traffic sent continuously by several keep-alive clients.
type load struct {
	stop    atomic.Bool
	wg      sync.WaitGroup
	mu      sync.Mutex
	counts  map[string]int
	example error
	total   atomic.Int64
}

// startLoad sends r from workers goroutines, each with its own keep-alive
// connection, until stopped or until limit requests were sent in all.
func (s *sidecar) startLoad(workers int, r request, limit int64) *load {
	return startLoadWith(workers, limit, func() *http.Client { return newClient(1) },
		func(c *http.Client) (string, error) { return s.do(c, r) })
}

// startLoadWith calls do from workers goroutines, each with its own client,
// until stopped or until limit calls were made in all.
func startLoadWith(workers int, limit int64, client func() *http.Client, do func(*http.Client) (string, error)) *load {
	l := &load{counts: map[string]int{}}
	for range workers {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			c := client()
			defer c.CloseIdleConnections()
			for !l.stop.Load() && l.total.Add(1) <= limit {
				out, err := do(c)
				l.mu.Lock()
				l.counts[out]++
				if err != nil && l.example == nil {
					l.example = err
				}
				l.mu.Unlock()
			}
		}()
	}
	return l
}

// snapshot returns the outcomes so far.
func (l *load) snapshot() map[string]int {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make(map[string]int, len(l.counts))
	for k, v := range l.counts {
		out[k] = v
	}
	return out
}

// finish stops the load and returns every outcome. It may be called again.
func (l *load) finish() tally {
	l.stop.Store(true)
	l.wg.Wait()
	tl := tally{counts: l.snapshot(), example: l.example}
	for _, v := range tl.counts {
		tl.n += v
	}
	return tl
}

// weirStatus is the document of weir's /debug/status.
type weirStatus struct {
	Status     []status.Object   `json:"status"`
	FileErrors map[string]string `json:"fileErrors"`
}

// condition returns the condition typ of kind namespace/name, or nil. kind
// is a Kind, or Kind.group where the Kind alone is ambiguous
// ("Gateway.networking.istio.io").
func (ws weirStatus) condition(kind, namespace, name, typ string) *status.Condition {
	for _, o := range ws.Status {
		if (o.Kind == kind || o.Resource() == kind) && o.Namespace == namespace && o.Name == name {
			return o.Get(typ)
		}
	}
	return nil
}

// fetchStatus reads weir's /debug/status admin endpoint.
func fetchStatus(weir *serve.Server) (weirStatus, error) {
	var ws weirStatus
	c := &http.Client{Timeout: requestTimeout}
	resp, err := c.Get("http://" + weir.AdminAddr() + "/debug/status")
	if err != nil {
		return ws, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return ws, fmt.Errorf("/debug/status: %s", resp.Status)
	}
	if err := json.NewDecoder(resp.Body).Decode(&ws); err != nil {
		return ws, fmt.Errorf("/debug/status: %w", err)
	}
	return ws, nil
}

// waitStatus polls /debug/status until cond accepts it, and returns it.
func waitStatus(t testing.TB, weir *serve.Server, what string, cond func(weirStatus) error) weirStatus {
	t.Helper()
	var last weirStatus
	waitFor(t, 10*time.Second, what, func() error {
		ws, err := fetchStatus(weir)
		if err != nil {
			return err
		}
		last = ws
		return cond(ws)
	})
	return last
}

// errNotYet is a condition that does not hold yet.
var errNotYet = errors.New("not yet")
