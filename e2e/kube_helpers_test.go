//go:build linux

package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/weir-mesh/weir/translator/envoy"
	"github.com/weir-mesh/weir/xds"
)

// kubeSetup starts a control plane and installs what weir needs in a
// cluster: the SMI CRDs and deploy/rbac.yaml.
func kubeSetup(t *testing.T) *kubeEnv {
	t.Helper()
	k := startKube(t)
	for _, f := range []string{"deploy/crds/smi.yaml", "deploy/rbac.yaml"} {
		b, err := os.ReadFile(filepath.Join(repoRoot(t), f))
		if err != nil {
			t.Fatal(err)
		}
		k.Apply(t, string(b))
	}
	return k
}

var weirBuild struct {
	sync.Once
	path string
	err  error
}

// weirBinary builds ./cmd/weir once per test binary, into
// .cache/e2e/weir-<pid> (git-ignored), and returns its path. Binaries left
// by test processes that no longer run are removed first.
func weirBinary(t testing.TB) string {
	t.Helper()
	weirBuild.Do(func() {
		root := repoRoot(t)
		dir := filepath.Join(root, ".cache", "e2e")
		if err := os.MkdirAll(dir, 0o755); err != nil {
			weirBuild.err = err
			return
		}
		removeStaleBinaries(dir)
		weirBuild.path = filepath.Join(dir, "weir-"+strconv.Itoa(os.Getpid()))
		cmd := exec.Command("go", "build", "-o", weirBuild.path, "./cmd/weir")
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			weirBuild.err = fmt.Errorf("go build ./cmd/weir: %v\n%s", err, out)
		}
	})
	if weirBuild.err != nil {
		t.Fatal(weirBuild.err)
	}
	return weirBuild.path
}

// removeStaleBinaries deletes dir/weir-<pid> for every pid that is gone.
func removeStaleBinaries(dir string) {
	names, _ := filepath.Glob(filepath.Join(dir, "weir-*")) // only a bad pattern errs
	for _, name := range names {
		pid, err := strconv.Atoi(strings.TrimPrefix(filepath.Base(name), "weir-"))
		if err != nil {
			continue
		}
		if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
			os.Remove(name) // best effort: another run may race us to it
		}
	}
}

// weirProc is `weir serve` running as its own process against a kubeEnv,
// as weir's service account.
type weirProc struct {
	id      string // its --lease-identity
	xds     string // host:port of its ADS server
	admin   string // host:port of its admin endpoints
	logPath string
	cmd     *exec.Cmd
	exited  chan struct{}
	waitErr error // set before exited is closed
	client  *http.Client
}

// servingLine is weir's start-up log line, which names its listeners.
var servingLine = regexp.MustCompile(`msg="weir serving".* xds=(\S+) admin=(\S+)`)

// startWeirProc runs `weir serve` with weir's RBAC-bound identity, on free
// loopback ports, short lease timings and lease identity id, plus extra
// flags, until the test ends; it returns once /readyz answers ok.
func startWeirProc(t testing.TB, k *kubeEnv, id string, extra ...string) *weirProc {
	t.Helper()
	w := &weirProc{
		id:      id,
		logPath: filepath.Join(t.TempDir(), "weir-"+id+".log"),
		exited:  make(chan struct{}),
		client:  &http.Client{Timeout: requestTimeout},
	}
	args := append([]string{"serve",
		"--kubeconfig", k.Kubeconfig(t, kubeWeir),
		"--xds-addr", "127.0.0.1:0", "--admin-addr", "127.0.0.1:0",
		"--lease-namespace", "weir-system", "--lease-name", "weir", "--lease-identity", id,
		"--lease-duration", "2s", "--lease-renew-deadline", "1500ms", "--lease-retry-period", "300ms",
	}, extra...)
	w.cmd = exec.Command(weirBinary(t), args...)
	w.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	stderr, err := w.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	logFile, err := os.Create(w.logPath)
	if err != nil {
		t.Fatal(err)
	}
	w.cmd.Stdout = logFile
	if err := w.cmd.Start(); err != nil {
		logFile.Close()
		t.Fatalf("start weir: %v", err)
	}
	addrs := make(chan []string, 1)
	copied := make(chan struct{})
	go func() { // copy the log to the file, and pick out the listeners
		defer close(copied)
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			fmt.Fprintln(logFile, line)
			if m := servingLine.FindStringSubmatch(line); m != nil {
				select {
				case addrs <- m[1:]:
				default:
				}
			}
		}
		_, _ = io.Copy(logFile, stderr) // a line past the buffer; the pipe is closing anyway
	}()
	go func() {
		<-copied // Wait closes the pipe, so read it all first
		w.waitErr = w.cmd.Wait()
		logFile.Close()
		close(w.exited)
	}()
	t.Cleanup(func() {
		w.kill()
		if t.Failed() {
			t.Logf("weir %s log (%s), last lines:\n%s", id, w.logPath, fileTail(w.logPath, 40))
		}
	})
	select {
	case a := <-addrs:
		w.xds, w.admin = a[0], a[1]
	case <-w.exited:
		t.Fatalf("weir %s exited (%v); log:\n%s", id, w.waitErr, fileTail(w.logPath, 40))
	case <-time.After(kubeStartTimeout):
		t.Fatalf("weir %s did not log its addresses in %v; log:\n%s", id, kubeStartTimeout, fileTail(w.logPath, 40))
	}
	waitFor(t, kubeStartTimeout, "weir "+id+" to be ready", func() error {
		if err := w.alive(); err != nil {
			t.Fatal(err)
		}
		return w.readyz()
	})
	return w
}

// kill sends SIGKILL, as a crash would, and waits for the process to exit.
func (w *weirProc) kill() {
	select {
	case <-w.exited:
		return
	default:
	}
	_ = w.cmd.Process.Signal(syscall.SIGKILL) // it may have just exited
	<-w.exited
}

// alive returns an error, with the end of the log, if weir exited.
func (w *weirProc) alive() error {
	select {
	case <-w.exited:
		return fmt.Errorf("weir %s exited (%v); log:\n%s", w.id, w.waitErr, fileTail(w.logPath, 40))
	default:
		return nil
	}
}

// get returns the body of a 200 answer to GET path on weir's admin.
func (w *weirProc) get(path string) (string, error) {
	resp, err := w.client.Get("http://" + w.admin + path)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("%s: %s: %s", path, resp.Status, strings.TrimSpace(string(b)))
	}
	return string(b), nil
}

// readyz returns nil once weir's /readyz answers ok.
func (w *weirProc) readyz() error {
	_, err := w.get("/readyz")
	return err
}

// proxyEntry is one element of weir's /debug/proxies.
type proxyEntry struct {
	xds.ProxyStatus
	Published map[string]string `json:"published"`
}

// proxy returns what /debug/proxies says of nodeID; nil if not connected.
func (w *weirProc) proxy(nodeID string) (*proxyEntry, error) {
	body, err := w.get("/debug/proxies")
	if err != nil {
		return nil, err
	}
	var all []proxyEntry
	if err := json.Unmarshal([]byte(body), &all); err != nil {
		return nil, fmt.Errorf("/debug/proxies: %w", err)
	}
	for i := range all {
		if all[i].NodeID == nodeID {
			return &all[i], nil
		}
	}
	return nil, nil
}

// waitConverged polls until pre holds (nil: always), and then node has
// ACKed what weir publishes for every xDS type, with the version of each
// type in changed different from prev's. It returns the ACKed versions and
// fails on a NACK or after timeout.
func (w *weirProc) waitConverged(t testing.TB, timeout time.Duration, nodeID string, prev map[string]string, pre func() error, changed ...string) map[string]string {
	t.Helper()
	var acked map[string]string
	waitFor(t, timeout, "node "+nodeID+" to ACK weir "+w.id+"'s configuration", func() error {
		if err := w.alive(); err != nil {
			t.Fatal(err)
		}
		if pre != nil {
			if err := pre(); err != nil {
				return err
			}
		}
		p, err := w.proxy(nodeID)
		if err != nil {
			return err
		}
		if p == nil {
			return errors.New("not connected")
		}
		if p.LastNack != nil {
			t.Fatalf("node %s NACKed %s: %s", nodeID, p.LastNack.TypeURL, p.LastNack.Message)
		}
		for _, typ := range xdsTypes {
			if p.Published[typ] == "" || p.Acked[typ] != p.Published[typ] {
				return fmt.Errorf("%s: published %q, acked %q", typ, p.Published[typ], p.Acked[typ])
			}
		}
		for _, typ := range changed {
			if p.Acked[typ] == prev[typ] {
				return fmt.Errorf("%s: still %q", typ, prev[typ])
			}
		}
		acked = p.Acked
		return nil
	})
	return acked
}

// servicesHas returns a condition that holds once weir's /debug/services
// has line.
func (w *weirProc) servicesHas(line string) func() error {
	return func() error {
		body, err := w.get("/debug/services")
		if err != nil {
			return err
		}
		for _, l := range strings.Split(body, "\n") {
			if l == line {
				return nil
			}
		}
		return fmt.Errorf("/debug/services has no %q:\n%s", line, body)
	}
}

// statusAccepted returns a condition that holds once weir's /debug/status
// has every one of objs ("Kind/ns/name") Accepted=True.
func (w *weirProc) statusAccepted(objs ...string) func() error {
	return func() error {
		body, err := w.get("/debug/status")
		if err != nil {
			return err
		}
		var ws weirStatus
		if err := json.Unmarshal([]byte(body), &ws); err != nil {
			return fmt.Errorf("/debug/status: %w", err)
		}
		for _, o := range objs {
			parts := strings.SplitN(o, "/", 3)
			if c := ws.condition(parts[0], parts[1], parts[2], "Accepted"); c == nil || c.Status != "True" {
				return fmt.Errorf("%s: Accepted %+v", o, c)
			}
		}
		return nil
	}
}

// startKubeSidecar runs Envoy as a sidecar in namespace, bootstrapped for
// weir w as `weir bootstrap` would, until the test ends; it returns once
// Envoy is LIVE and has ACKed every type, with the ACKed versions.
func startKubeSidecar(t testing.TB, w *weirProc, namespace string) (*sidecar, map[string]string) {
	t.Helper()
	dir := t.TempDir()
	outboundPort := freePort(t)
	s := &sidecar{
		nodeID:   "sidecar-" + strings.NewReplacer("/", "-", " ", "_").Replace(t.Name()),
		outbound: net.JoinHostPort("127.0.0.1", strconv.Itoa(int(outboundPort))),
		logPath:  filepath.Join(dir, "envoy.log"),
		exited:   make(chan struct{}),
		client:   newClient(16),
	}
	bootstrap, err := xds.EnvoyBootstrap(xds.BootstrapOptions{
		NodeID: s.nodeID, Role: envoy.Sidecar, Namespace: namespace, XDSAddr: w.xds,
		AdminAddress: "127.0.0.1", AdminPort: 0, OutboundPort: outboundPort,
	})
	if err != nil {
		t.Fatal(err)
	}
	config, adminPath := filepath.Join(dir, "envoy.yaml"), filepath.Join(dir, "admin-address")
	writeFile(t, config, string(bootstrap))
	s.run(t, config, adminPath)
	s.waitLive(t, adminPath)
	return s, w.waitConverged(t, 15*time.Second, s.nodeID, nil, nil)
}

// kubeSend sends n requests r over 8 keep-alive connections and counts
// the answers.
func kubeSend(t testing.TB, s *sidecar, n int, r request) tally {
	t.Helper()
	tl := sendAll(8, n, func() *http.Client { return newClient(1) },
		func(c *http.Client) (string, error) { return s.answer(c, r) })
	t.Logf("%s: %v", r, tl)
	return tl
}

// kubeStartLoad sends r from workers goroutines, each with its own
// keep-alive connection, until stopped or limit requests were sent.
func kubeStartLoad(s *sidecar, workers int, r request, limit int64) *load {
	return startLoadWith(workers, limit, func() *http.Client { return newClient(1) },
		func(c *http.Client) (string, error) { return s.answer(c, r) })
}

// failed is how many of tl's requests were not answered by one of names.
func failed(tl tally, names ...string) int {
	ok := 0
	for _, n := range names {
		ok += tl.counts[n]
	}
	return tl.n - ok
}

// podIPNext numbers the pod addresses this process hands out; it starts at
// a random point so that concurrent test processes rarely share one.
var podIPNext atomic.Int64

func init() { podIPNext.Store(int64(1024 + rand.N(48*1024))) }

// podBackend is an HTTP server on a pod's address answering its name.
type podBackend struct {
	name, ip string
	srv      *http.Server
	done     chan struct{}
}

// startPodBackend listens on ip:port and answers body to every request
// until stopped or the test ends.
func startPodBackend(t testing.TB, ip string, port int, body string) *podBackend {
	t.Helper()
	l, err := net.Listen("tcp", net.JoinHostPort(ip, strconv.Itoa(port)))
	if err != nil {
		t.Fatalf("listen on pod address: %v", err)
	}
	b := &podBackend{name: body, ip: ip, done: make(chan struct{}),
		srv: &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			_, _ = io.WriteString(w, body) // an error means the client went away
		})}}
	go func() {
		defer close(b.done)
		_ = b.srv.Serve(l) // returns ErrServerClosed on stop
	}()
	t.Cleanup(b.stop)
	return b
}

// stop shuts the server down gracefully: requests in flight complete.
func (b *podBackend) stop() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = b.srv.Shutdown(ctx) // after the timeout, connections are dropped anyway
	<-b.done
}

// kubePod is a Pod of the test with its backend.
type kubePod struct {
	ns, name string
	ip       string
	backend  *podBackend
}

// startPod starts a backend answering body on a fresh pod address and
// port, creates Pod ns/name with labels, and makes it ready if ready.
func startPod(t testing.TB, k *kubeEnv, ns, name string, labels map[string]string, port int, body string, ready bool) *kubePod {
	t.Helper()
	p := &kubePod{ns: ns, name: name, ip: localPodIP(t, int(podIPNext.Add(1)))}
	p.backend = startPodBackend(t, p.ip, port, body)
	k.CreatePod(t, ns, name, labels, corev1.ContainerPort{Name: "http", ContainerPort: int32(port)})
	k.SetPodReady(t, ns, name, p.ip, ready)
	return p
}

// leaseHolder returns the holder of Lease weir-system/weir, "" if none.
func leaseHolder(l *unstructured.Unstructured) string {
	if l == nil {
		return ""
	}
	h, _, _ := unstructured.NestedString(l.Object, "spec", "holderIdentity")
	return h
}

// waitLeaseHolder waits until cond accepts the holder of the weir Lease,
// and returns it.
func waitLeaseHolder(t testing.TB, k *kubeEnv, timeout time.Duration, cond func(string) error) string {
	t.Helper()
	var holder string
	k.WaitObject(t, timeout, "coordination.k8s.io/v1", "Lease", "weir-system", "weir", func(l *unstructured.Unstructured) error {
		holder = leaseHolder(l)
		return cond(holder)
	})
	return holder
}

// acceptedCondition returns a WaitObject condition that holds once the
// object's status has Accepted with status and reason (reason "": any),
// observed at its current generation.
func acceptedCondition(status, reason string) func(*unstructured.Unstructured) error {
	return func(obj *unstructured.Unstructured) error {
		if obj == nil {
			return errors.New("not found")
		}
		conds, _, _ := unstructured.NestedSlice(obj.Object, "status", "conditions")
		for _, c := range conds {
			m, _ := c.(map[string]any)
			if m["type"] != "Accepted" {
				continue
			}
			var mc metav1.Condition
			b, _ := json.Marshal(m) // a map decoded from JSON encodes
			if err := json.Unmarshal(b, &mc); err != nil {
				return err
			}
			if string(mc.Status) != status || (reason != "" && mc.Reason != reason) || mc.ObservedGeneration != obj.GetGeneration() {
				return fmt.Errorf("Accepted=%s %s (%s), observedGeneration %d; generation %d",
					mc.Status, mc.Reason, mc.Message, mc.ObservedGeneration, obj.GetGeneration())
			}
			return nil
		}
		return fmt.Errorf("no Accepted condition: %v", conds)
	}
}

// routeType is the xDS route type URL, for waitConverged.
const routeType = resourcev3.RouteType
