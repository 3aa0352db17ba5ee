package e2e

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/weir-mesh/weir/translator/ingressnginx"
	"github.com/weir-mesh/weir/translator/status"
)

// The ingress-nginx gray-release tutorial, step by step, with weir driving a
// real Envoy gateway that routes real HTTP to three backends.

// startNamedBackend serves "<name> <request URI>" for every request on a
// free loopback port until the test ends, and returns the port.
func startNamedBackend(t testing.TB, name string) uint32 {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, name+" "+r.URL.RequestURI()) // an error means the client went away
	}))
	t.Cleanup(srv.Close)
	port, err := strconv.ParseUint(srv.URL[strings.LastIndex(srv.URL, ":")+1:], 10, 16)
	if err != nil {
		t.Fatal(err)
	}
	return uint32(port)
}

// ingressServices are the tutorial's Services in namespace default, each
// with one endpoint on its backend.
func ingressServices(t testing.TB) string {
	var docs []string
	for _, name := range []string{"user-v1", "user-v2", "pay-v1"} {
		port := startNamedBackend(t, name)
		docs = append(docs, fmt.Sprintf(`apiVersion: v1
kind: Service
metadata: {name: service-%[1]s, namespace: default}
spec:
  ports:
  - {name: http, port: 80, targetPort: %[2]d}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: service-%[1]s-abcde
  namespace: default
  labels: {kubernetes.io/service-name: service-%[1]s}
addressType: IPv4
ports:
- {name: http, port: %[2]d, protocol: TCP}
endpoints:
- addresses: [127.0.0.1]
  conditions: {ready: true}
`, name, port))
	}
	return strings.Join(docs, "---\n")
}

// tutorialMainIngress is the tutorial's main Ingress, as written there.
const tutorialMainIngress = `apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: main
  namespace: default
  annotations:
    nginx.ingress.kubernetes.io/rewrite-target: /
spec:
  ingressClassName: weir
  defaultBackend:
    service:
      name: service-user-v1
      port: {number: 80}
  rules:
  - http:
      paths:
      - path: /user
        pathType: Prefix
        backend:
          service:
            name: service-user-v1
            port: {number: 80}
      - path: /pay
        pathType: Prefix
        backend:
          service:
            name: service-pay-v1
            port: {number: 80}
`

// userCanaryIngress is the tutorial's canary Ingress for /user with the
// given canary annotations (without the prefix).
func userCanaryIngress(annotations ...string) string {
	var ann strings.Builder
	for i := 0; i+1 < len(annotations); i += 2 {
		fmt.Fprintf(&ann, "    %s%s: %q\n", ingressnginx.AnnotationPrefix, annotations[i], annotations[i+1])
	}
	return `apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: user-canary
  namespace: default
  annotations:
    nginx.ingress.kubernetes.io/canary: "true"
` + ann.String() + `spec:
  ingressClassName: weir
  rules:
  - http:
      paths:
      - path: /user
        pathType: Prefix
        backend:
          service:
            name: service-user-v2
            port: {number: 80}
`
}

// ingressRequest is a GET through the gateway's port 80 with headers.
type ingressRequest struct {
	path   string
	header map[string]string
}

func (r ingressRequest) String() string {
	s := "GET " + r.path
	for k, v := range r.header {
		s += fmt.Sprintf(" [%s: %s]", k, v)
	}
	return s
}

func get(path string, header ...string) ingressRequest {
	r := ingressRequest{path: path, header: map[string]string{}}
	for i := 0; i+1 < len(header); i += 2 {
		r.header[header[i]] = header[i+1]
	}
	return r
}

// ingressAnswer sends r and returns the backend's answer "<name> <uri>"
// for a 200, else "HTTP <code>" or "error", with the detail.
func (g *gateway) ingressAnswer(c *http.Client, r ingressRequest) (string, error) {
	req, err := http.NewRequest(http.MethodGet, "http://"+g.outbound+r.path, nil)
	if err != nil {
		return "error", err
	}
	req.Host = "tutorial.example.test"
	for k, v := range r.header {
		req.Header.Set(k, v)
	}
	return readAnswer(c.Do(req))
}

// ingressSend sends n requests r over 8 keep-alive connections and counts
// the answers by backend name ("user-v1"), or failure.
func (g *gateway) ingressSend(t testing.TB, n int, r ingressRequest) tally {
	t.Helper()
	tl := sendAll(8, n, func() *http.Client { return g.client }, func(c *http.Client) (string, error) {
		out, err := g.ingressAnswer(c, r)
		name, _, _ := strings.Cut(out, " /")
		return name, err
	})
	t.Logf("%s: %v", r, tl)
	return tl
}

// ingressExpect fails unless all n requests r were answered by backend.
func (g *gateway) ingressExpect(t testing.TB, n int, r ingressRequest, backend string) {
	t.Helper()
	if tl := g.ingressSend(t, n, r); tl.counts[backend] != n {
		t.Errorf("%s: want all %d answered by %s, got %v", r, n, backend, tl)
	}
}

// ingressShare fails unless n requests r all reach user-v1 or user-v2 and
// user-v2 answers a share plausible for probability p.
func (g *gateway) ingressShare(t testing.TB, n int, r ingressRequest, p float64) {
	t.Helper()
	tl := g.ingressSend(t, n, r)
	if tl.counts["user-v1"]+tl.counts["user-v2"] != n {
		t.Errorf("%s: want %d answers from user-v1 or user-v2, got %v", r, n, tl)
	}
	checkShare(t, r.String()+" answered by user-v2", tl.counts["user-v2"], n, p)
}

// ingressURI fails unless r is answered by backend with request URI uri.
func (g *gateway) ingressURI(t testing.TB, r ingressRequest, backend, uri string) {
	t.Helper()
	got, err := g.ingressAnswer(g.client, r)
	if want := backend + " " + uri; got != want {
		t.Errorf("%s: want %q, got %q (%v)", r, want, got, err)
	}
}

// TestIngressCanaryTutorial follows the ingress-nginx gray-release
// tutorial: a main Ingress, then a canary Ingress by cookie, by header, by
// weight, all three at once, and weights 0 and 100; each step edits the
// manifests, waits for the gateway to ACK the new routes, and checks where
// real requests go.
func TestIngressCanaryTutorial(t *testing.T) {
	start := time.Now()
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "services.yaml"), ingressServices(t))
	writeFile(t, filepath.Join(dir, "main.yaml"), tutorialMainIngress)
	weir := startWeir(t, dir)
	g := startGateway(t, weir, nil)
	acked := ackedVersions(t, weir.XDS(), g.nodeID, nil, xdsTypes...)
	t.Logf("weir and the gateway ready in %v", time.Since(start).Round(time.Millisecond))
	canaryFile := filepath.Join(dir, "user-canary.yaml")
	setCanary := func(t *testing.T, annotations ...string) {
		writeFile(t, canaryFile, userCanaryIngress(annotations...))
		acked = g.waitRoute(t, acked)
	}
	const single = 200
	vip := func(v string) ingressRequest { return get("/user", "Cookie", "lang=en; vip_user="+v) }

	steps := []struct {
		name string
		run  func(t *testing.T)
	}{
		{"0-main-ingress", func(t *testing.T) {
			// rewrite-target: / replaces the whole path, as nginx does;
			// the query string is kept.
			g.ingressURI(t, get("/user"), "user-v1", "/")
			g.ingressURI(t, get("/user/profile?id=7"), "user-v1", "/?id=7")
			g.ingressURI(t, get("/pay/orders/1"), "pay-v1", "/")
			g.ingressURI(t, get("/PAY"), "pay-v1", "/") // regex paths ignore case
			g.ingressURI(t, get("/shop/cart"), "user-v1", "/shop/cart")
			g.ingressExpect(t, single, get("/user"), "user-v1")
		}},
		{"1-canary-by-cookie", func(t *testing.T) {
			setCanary(t, "canary-by-cookie", "vip_user")
			g.ingressExpect(t, single, get("/user"), "user-v1")
			g.ingressExpect(t, single, get("/user", "Cookie", "vip_user=always"), "user-v2")
			g.ingressExpect(t, single, vip("always"), "user-v2")
			g.ingressExpect(t, single, vip("never"), "user-v1")
			g.ingressExpect(t, single, get("/user", "Cookie", "not_vip_user=always"), "user-v1")
			// The canary only adds to /user; the rewrite is inherited.
			g.ingressURI(t, get("/user/x", "Cookie", "vip_user=always"), "user-v2", "/")
			g.ingressExpect(t, single, get("/pay", "Cookie", "vip_user=always"), "pay-v1")
			g.ingressExpect(t, single, get("/other", "Cookie", "vip_user=always"), "user-v1")
		}},
		{"2-canary-by-header", func(t *testing.T) {
			setCanary(t, "canary-by-header", "role", "canary-by-header-value", "test")
			g.ingressExpect(t, single, get("/user", "role", "test"), "user-v2")
			g.ingressExpect(t, single, get("/user", "role", "prod"), "user-v1")
			g.ingressExpect(t, single, get("/user", "role", "always"), "user-v1")
			g.ingressExpect(t, single, get("/user"), "user-v1")
			g.ingressExpect(t, single, vip("always"), "user-v1")
		}},
		{"3-canary-weight-50", func(t *testing.T) {
			setCanary(t, "canary-weight", "50")
			g.ingressShare(t, 2000, get("/user"), 0.5)
		}},
		{"4-precedence", func(t *testing.T) {
			setCanary(t, "canary-by-header", "role", "canary-by-header-value", "test",
				"canary-by-cookie", "vip_user", "canary-weight", "50")
			// header > cookie
			g.ingressExpect(t, single, get("/user", "role", "test", "Cookie", "vip_user=never"), "user-v2")
			// cookie > weight, both ways
			g.ingressExpect(t, single, get("/user", "role", "prod", "Cookie", "vip_user=always"), "user-v2")
			g.ingressExpect(t, single, get("/user", "role", "prod", "Cookie", "vip_user=never"), "user-v1")
			// neither: the weight
			g.ingressShare(t, 2000, get("/user", "role", "prod", "Cookie", "vip_user=maybe"), 0.5)
		}},
		{"5-weight-0-and-100", func(t *testing.T) {
			setCanary(t, "canary-weight", "0")
			g.ingressExpect(t, 2*single, get("/user"), "user-v1")
			setCanary(t, "canary-weight", "100")
			g.ingressExpect(t, 2*single, get("/user"), "user-v2")
			g.ingressExpect(t, single, get("/pay"), "pay-v1")
		}},
		{"6-bad-weight-keeps-main", func(t *testing.T) {
			setCanary(t, "canary-weight", "abc")
			ws, err := fetchStatus(weir)
			if err != nil {
				t.Fatal(err)
			}
			c := ws.condition("Ingress", "default", "user-canary", status.Accepted)
			if c == nil || c.Status != status.False || c.Reason != ingressnginx.ReasonInvalidAnnotation || !strings.Contains(c.Message, "canary-weight") {
				t.Errorf("user-canary: want Accepted=False %s naming canary-weight, got %+v", ingressnginx.ReasonInvalidAnnotation, c)
			}
			if c := ws.condition("Ingress", "default", "main", status.Accepted); c == nil || c.Status != status.True {
				t.Errorf("main: want Accepted=True, got %+v", c)
			}
			g.ingressExpect(t, single, get("/user"), "user-v1")
			g.ingressExpect(t, single, get("/pay"), "pay-v1")
		}},
	}
	for _, st := range steps {
		if !t.Run(st.name, st.run) {
			break
		}
	}
	if ps := g.status(t); ps.Nacks != 0 {
		t.Errorf("envoy NACKed %d times, last: %+v", ps.Nacks, ps.LastNack)
	}
	t.Logf("tutorial done in %v", time.Since(start).Round(time.Millisecond))
}
