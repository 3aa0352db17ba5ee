package e2e

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

// meshPod is a Pod of a mesh app: an HTTP server on 127.0.0.1 answering
// its name, with the Pod's labels in the manifests so that subsets select
// it.
type meshPod struct {
	name    string
	version string
	port    uint32
	served  atomic.Int64
	mu      sync.Mutex
	hosts   map[string]int // Host headers received
}

// meshApp is a Service with one port and its Pods; each Pod has its own
// EndpointSlice (with a targetRef to it), as its port differs.
type meshApp struct {
	namespace, name string
	port            uint32
	pods            []*meshPod
}

// newMeshApp starts perVersion Pods of each version, named
// "<name>-<version>-<i>". answer, if set, writes a Pod's answer instead of
// its name.
func newMeshApp(t testing.TB, namespace, name string, port uint32, perVersion int, answer func(p *meshPod, w io.Writer), versions ...string) *meshApp {
	t.Helper()
	a := &meshApp{namespace: namespace, name: name, port: port}
	for _, v := range versions {
		for i := range perVersion {
			p := &meshPod{name: fmt.Sprintf("%s-%s-%d", name, v, i), version: v, hosts: map[string]int{}}
			p.port = serveHTTP(t, func(w http.ResponseWriter, r *http.Request) {
				p.served.Add(1)
				p.mu.Lock()
				p.hosts[r.Host]++
				p.mu.Unlock()
				if answer != nil {
					answer(p, w)
					return
				}
				_, _ = io.WriteString(w, p.name) // an error means the client went away
			})
			a.pods = append(a.pods, p)
		}
	}
	return a
}

// serveHTTP serves h on a free loopback port until the test ends.
func serveHTTP(t testing.TB, h http.HandlerFunc) uint32 {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	_, port, err := net.SplitHostPort(srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	p, err := strconv.ParseUint(port, 10, 16)
	if err != nil {
		t.Fatal(err)
	}
	return uint32(p)
}

// host is the app's name as a client addresses it.
func (a *meshApp) host() string {
	return fmt.Sprintf("%s.%s.svc.cluster.local:%d", a.name, a.namespace, a.port)
}

// manifests are the Service, and a Pod and an EndpointSlice per Pod.
func (a *meshApp) manifests() string {
	docs := []string{fmt.Sprintf(`apiVersion: v1
kind: Service
metadata: {name: %[1]s, namespace: %[2]s}
spec:
  selector: {app: %[1]s}
  ports:
  - {name: http, port: %[3]d, targetPort: 8080}
`, a.name, a.namespace, a.port)}
	for _, p := range a.pods {
		docs = append(docs, fmt.Sprintf(`apiVersion: v1
kind: Pod
metadata:
  name: %[1]s
  namespace: %[2]s
  labels: {app: %[3]s, version: %[4]s}
status:
  podIP: 127.0.0.1
  conditions: [{type: Ready, status: "True"}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: %[1]s
  namespace: %[2]s
  labels: {kubernetes.io/service-name: %[3]s}
addressType: IPv4
ports:
- {name: http, port: %[5]d, protocol: TCP}
endpoints:
- addresses: [127.0.0.1]
  conditions: {ready: true}
  targetRef: {kind: Pod, namespace: %[2]s, name: %[1]s}
`, p.name, a.namespace, a.name, p.version, p.port))
	}
	return strings.Join(docs, "---\n")
}

// hostsSeen returns the Host headers the Pod received, with counts.
func (p *meshPod) hostsSeen() map[string]int {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make(map[string]int, len(p.hosts))
	for h, n := range p.hosts {
		out[h] = n
	}
	return out
}

// meshGet sends GET host+path through the sidecar with extra headers and
// returns the answer's trimmed body for a 200, else "HTTP <code>" or
// "error", with the detail.
func meshGet(sc *sidecar, c *http.Client, host, path string, header http.Header) (string, error) {
	req, err := http.NewRequest(http.MethodGet, "http://"+sc.outbound+path, nil)
	if err != nil {
		return "error", err
	}
	req.Host = host
	for k, vs := range header {
		req.Header[k] = vs
	}
	return readAnswer(c.Do(req))
}

// meshSend sends n GETs from workers keep-alive clients; header(i) gives
// the headers of the i-th request. It counts the answers.
func meshSend(t testing.TB, sc *sidecar, workers, n int, host, path string, header func(i int) http.Header) tally {
	t.Helper()
	var next atomic.Int64
	tl := sendAll(workers, n, func() *http.Client { return newClient(1) }, func(c *http.Client) (string, error) {
		var h http.Header
		if header != nil {
			h = header(int(next.Add(1)) - 1)
		}
		return meshGet(sc, c, host, path, h)
	})
	t.Logf("GET %s%s: %v", host, path, tl)
	return tl
}

// versionOf is the version of a Pod's answer ("<app>-<version>-<i>",
// possibly followed by "+..."), or the answer itself.
func versionOf(answer string) string {
	first, _, _ := strings.Cut(answer, "+")
	parts := strings.Split(first, "-")
	if len(parts) >= 3 && strings.HasPrefix(parts[len(parts)-2], "v") {
		return parts[len(parts)-2]
	}
	return answer
}

// byVersion sums a tally of Pod names ("<app>-<version>-<i>", possibly
// followed by "+..." ) per version; other answers keep their key.
func byVersion(tl tally) map[string]int {
	out := map[string]int{}
	for answer, n := range tl.counts {
		out[versionOf(answer)] += n
	}
	return out
}

// expectVersionShare fails unless every answer came from v1 or v2 (by Pod
// name), and v2's share of n is plausible for probability p. It returns
// the counts per version.
func expectVersionShare(t testing.TB, tl tally, p float64) map[string]int {
	t.Helper()
	v := byVersion(tl)
	if v["v1"]+v["v2"] != tl.n {
		t.Errorf("want every answer from v1 or v2, got %v", tl)
	}
	checkShare(t, "answered by v2", v["v2"], tl.n, p)
	return v
}

// expectOnlyVersion fails unless every answer came from version.
func expectOnlyVersion(t testing.TB, tl tally, version string) {
	t.Helper()
	if v := byVersion(tl); v[version] != tl.n {
		t.Errorf("want all %d answered by %s, got %v", tl.n, version, tl)
	}
}

// sortedCounts renders counts deterministically for messages.
func sortedCounts(m map[string]int) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s=%d", k, m[k])
	}
	return strings.Join(parts, " ")
}
