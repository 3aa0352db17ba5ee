package e2e

import (
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	healthgrpc "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/weir-mesh/weir/translator/gatewayapi"
	"github.com/weir-mesh/weir/translator/status"
)

// gwapiGateway is a GatewayClass of weir's and the Gateway default/edge:
// HTTP on 80 for routes of every namespace.
const gwapiGateway = `apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: {name: weir}
spec:
  controllerName: weir.dev/gateway-controller
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: edge, namespace: default}
spec:
  gatewayClassName: weir
  listeners:
  - name: http
    protocol: HTTP
    port: 80
    allowedRoutes: {namespaces: {from: All}}
`

// gwapiRoute is an HTTPRoute named name in namespace ns on the Gateway
// default/edge for host, with rules given as YAML (indented by two).
func gwapiRoute(ns, name, host, rules string) string {
	return fmt.Sprintf(`apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: %s, namespace: %s}
spec:
  parentRefs: [{name: edge, namespace: default}]
  hostnames: [%s]
  rules:
%s`, name, ns, host, rules)
}

func weightedRules(v1, v2 int) string {
	return fmt.Sprintf(`  - backendRefs:
    - {name: web-v1, namespace: default, port: 80, weight: %d}
    - {name: web-v2, namespace: default, port: 80, weight: %d}
`, v1, v2)
}

// parentCondition returns condition typ of the first parent of the
// Gateway API route namespace/name in ws, or nil.
func parentCondition(ws weirStatus, namespace, name, typ string) *status.Condition {
	for _, o := range ws.Status {
		if o.Group == "gateway.networking.k8s.io" && o.Kind == "HTTPRoute" && o.Namespace == namespace && o.Name == name && len(o.Parents) > 0 {
			return status.FindCondition(o.Parents[0].Conditions, typ)
		}
	}
	return nil
}

// waitParent waits until the route's first parent has condition typ with
// status and reason.
func waitParent(t testing.TB, ws func(string, func(weirStatus) error) weirStatus, namespace, name, typ, st, reason string) {
	t.Helper()
	ws(fmt.Sprintf("HTTPRoute %s/%s %s=%s (%s)", namespace, name, typ, st, reason), func(s weirStatus) error {
		c := parentCondition(s, namespace, name, typ)
		if c == nil || c.Status != st || c.Reason != reason {
			return fmt.Errorf("%+v", c)
		}
		return nil
	})
}

// sendHTTP sends GET http://host/path through the gateway with headers
// and returns "v1"/"v2" for a 200 from that backend, else "HTTP <code>".
func (g *gateway) sendHTTP(c *http.Client, host, path string, headers map[string]string) (string, *http.Response, error) {
	req, err := http.NewRequest(http.MethodGet, "http://"+g.outbound+path, nil)
	if err != nil {
		return "error", nil, err
	}
	req.Host = host
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := c.Do(req)
	if err != nil {
		return "error", nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if err != nil {
		return "error", resp, err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Sprintf("HTTP %d", resp.StatusCode), resp, nil
	}
	switch strings.TrimSpace(string(body)) {
	case "Hi, I am v1!":
		return "v1", resp, nil
	case "Hi, I am v2!":
		return "v2", resp, nil
	}
	return "bad body", resp, nil
}

// expectAll sends n requests and fails unless every answer is want.
func (g *gateway) expectAll(t testing.TB, n int, host, path string, headers map[string]string, want string) {
	t.Helper()
	c := noRedirects(newClient(4))
	got := map[string]int{}
	for range n {
		out, _, err := g.sendHTTP(c, host, path, headers)
		if err != nil {
			t.Fatalf("%s%s: %v", host, path, err)
		}
		got[out]++
	}
	if got[want] != n {
		t.Errorf("GET %s%s %v: answers %v, want all %d %s", host, path, headers, got, n, want)
	}
}

func noRedirects(c *http.Client) *http.Client {
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return c
}

// TestGatewayAPI runs Gateway API HTTPRoutes through a real Envoy gateway
// started as `weir bootstrap --role gateway --labels
// gateway.networking.k8s.io/gateway-name=edge,gateway.envoyproxy.io/owning-gateway-namespace=default`.
func TestGatewayAPI(t *testing.T) {
	dir := t.TempDir()
	var mirrored atomic.Int64
	sink := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("x-mirror-test") == "yes" {
			mirrored.Add(1)
		}
		_, _ = io.WriteString(w, "sink")
	}))
	t.Cleanup(sink.Close)
	_, sinkPort, err := net.SplitHostPort(sink.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(dir, "backends.yaml"), versionBackends(t, "default", "web")+"---\n"+fmt.Sprintf(`apiVersion: v1
kind: Service
metadata: {name: sink, namespace: default}
spec:
  ports: [{name: http, port: 80, targetPort: %[1]s}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: sink-abcde, namespace: default, labels: {kubernetes.io/service-name: sink}}
addressType: IPv4
ports: [{name: http, port: %[1]s, protocol: TCP}]
endpoints: [{addresses: [127.0.0.1], conditions: {ready: true}}]
`, sinkPort))
	writeFile(t, filepath.Join(dir, "gateway.yaml"), gwapiGateway)
	writeFile(t, filepath.Join(dir, "split.yaml"), gwapiRoute("default", "split", "split.example.test", weightedRules(90, 10)))
	weir := startWeir(t, dir)
	gw := startGateway(t, weir, map[string]string{gatewayapi.GatewayNameLabel: "edge", gatewayapi.GatewayNamespaceLabel: "default"})
	acked := ackedVersions(t, weir.XDS(), gw.nodeID, nil, xdsTypes...)
	wait := func(what string, cond func(weirStatus) error) weirStatus { return waitStatus(t, weir, what, cond) }
	waitParent(t, wait, "default", "split", "Accepted", status.True, "Accepted")
	// change writes a manifest and waits for the gateway to ACK routes
	// built from it.
	change := func(name, content string) {
		t.Helper()
		writeFile(t, filepath.Join(dir, name), content)
		acked = gw.waitRoute(t, acked)
	}

	t.Run("weights 90/10, then 0/100 through a live edit with no failed request", func(t *testing.T) {
		r := request{Method: http.MethodGet, Host: "split.example.test", Path: "/"}
		gw.expectShare(t, 2000, r, 0.1)
		l := gw.startLoad(8, r, math.MaxInt64)
		waitFor(t, 5*time.Second, "load to flow", func() error {
			if l.total.Load() < 200 {
				return errNotYet
			}
			return nil
		})
		edited := time.Now()
		change("split.yaml", gwapiRoute("default", "split", "split.example.test", weightedRules(0, 100)))
		t.Logf("0/100 ACKed by the gateway %v after the edit", time.Since(edited).Round(time.Millisecond))
		gw.expectOnly(t, 2000, r, "v2")
		tl := l.finish()
		t.Logf("load across the edit: %v", tl)
		if tl.counts["v1"]+tl.counts["v2"] != tl.n {
			t.Errorf("failed requests across the edit: %v", tl)
		}
	})

	t.Run("header-matched canary", func(t *testing.T) {
		change("canary.yaml", gwapiRoute("default", "canary", "canary.example.test", `  - matches: [{headers: [{name: x-canary, value: "true"}]}]
    backendRefs: [{name: web-v2, port: 80}]
  - backendRefs: [{name: web-v1, port: 80}]
`))
		gw.expectAll(t, 200, "canary.example.test", "/", map[string]string{"x-canary": "true"}, "v2")
		gw.expectAll(t, 200, "canary.example.test", "/", map[string]string{"x-canary": "false"}, "v1")
		gw.expectAll(t, 200, "canary.example.test", "/", nil, "v1")
	})

	t.Run("precedence between overlapping routes", func(t *testing.T) {
		// Created a month apart: the older route wins ties.
		aged := func(route, created string) string {
			return strings.Replace(route, "namespace: default}", "namespace: default, creationTimestamp: \""+created+"\"}", 1)
		}
		writeFile(t, filepath.Join(dir, "api-older.yaml"), aged(gwapiRoute("default", "api-older", "api.example.test", `  - matches: [{path: {type: PathPrefix, value: /api}}]
    backendRefs: [{name: web-v1, port: 80}]
  - matches: [{path: {type: PathPrefix, value: /api}, headers: [{name: x-beta, value: "1"}]}]
    backendRefs: [{name: web-v2, port: 80}]
`), "2024-01-01T00:00:00Z"))
		change("api-newer.yaml", aged(gwapiRoute("default", "api-newer", "api.example.test", `  - matches: [{path: {type: Exact, value: /api/v2}}, {path: {type: PathPrefix, value: /api/v2/}}]
    backendRefs: [{name: web-v2, port: 80}]
  - matches: [{path: {type: PathPrefix, value: /api}}]
    backendRefs: [{name: web-v2, port: 80}]
`), "2024-02-01T00:00:00Z"))
		for _, tc := range []struct {
			path    string
			headers map[string]string
			want    string
		}{
			{"/api/v2", nil, "v2"},       // exact beats every prefix
			{"/api/v2/users", nil, "v2"}, // the longer prefix wins
			{"/api/v2x", nil, "v1"},      // /api/v2 is no prefix of it; api-older is older than api-newer
			{"/api", nil, "v1"},
			{"/api/users", map[string]string{"x-beta": "1"}, "v2"}, // more header matches win
			{"/apix", nil, "HTTP 404"},                             // prefixes match whole path elements
		} {
			gw.expectAll(t, 20, "api.example.test", tc.path, tc.headers, tc.want)
		}
	})

	t.Run("request mirror", func(t *testing.T) {
		change("mirror.yaml", gwapiRoute("default", "mirror", "mirror.example.test", `  - filters:
    - type: RequestMirror
      requestMirror: {backendRef: {name: sink, port: 80}}
    backendRefs: [{name: web-v1, port: 80}]
`))
		before := mirrored.Load()
		gw.expectAll(t, 100, "mirror.example.test", "/", map[string]string{"x-mirror-test": "yes"}, "v1")
		waitFor(t, 5*time.Second, "100 mirrored requests at the sink", func() error {
			if got := mirrored.Load() - before; got != 100 {
				return fmt.Errorf("%d mirrored", got)
			}
			return nil
		})
	})

	t.Run("redirect", func(t *testing.T) {
		change("redirect.yaml", gwapiRoute("default", "redirect", "old.example.test", `  - filters:
    - type: RequestRedirect
      requestRedirect: {scheme: https, hostname: new.example.test, statusCode: 301}
`))
		out, resp, err := gw.sendHTTP(noRedirects(newClient(1)), "old.example.test", "/docs?page=2", nil)
		if err != nil {
			t.Fatal(err)
		}
		if loc := resp.Header.Get("Location"); out != "HTTP 301" || loc != "https://new.example.test/docs?page=2" {
			t.Errorf("got %s Location %q, want 301 to https://new.example.test/docs?page=2", out, loc)
		}
	})

	t.Run("cross-namespace backend refused without a ReferenceGrant, accepted with one", func(t *testing.T) {
		change("team.yaml", gwapiRoute("team", "xns", "xns.example.test", `  - backendRefs: [{name: web-v2, namespace: default, port: 80}]
`))
		waitParent(t, wait, "team", "xns", "ResolvedRefs", status.False, "RefNotPermitted")
		gw.expectAll(t, 50, "xns.example.test", "/", nil, "HTTP 500")
		change("grant.yaml", `apiVersion: gateway.networking.k8s.io/v1beta1
kind: ReferenceGrant
metadata: {name: team-routes, namespace: default}
spec:
  from: [{group: gateway.networking.k8s.io, kind: HTTPRoute, namespace: team}]
  to: [{group: "", kind: Service, name: web-v2}]
`)
		waitParent(t, wait, "team", "xns", "ResolvedRefs", status.True, "ResolvedRefs")
		gw.expectAll(t, 50, "xns.example.test", "/", nil, "v2")
	})

	ws, err := fetchStatus(weir)
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range ws.Status {
		if o.Group == "gateway.networking.k8s.io" && o.Kind == "Gateway" {
			for _, l := range o.Listeners {
				if l.AttachedRoutes != 7 {
					t.Errorf("listener %s attachedRoutes %d, want 7", l.Name, l.AttachedRoutes)
				}
			}
		}
	}
}

// meshServices are Services mesh (selecting both versions, its endpoints
// v1's), mesh-v1 and mesh-v2 in namespace default.
func meshServices(t testing.TB) string {
	backends := versionBackends(t, "default", "mesh")
	v1 := backends[strings.Index(backends, "targetPort: ")+len("targetPort: "):]
	v1 = v1[:strings.Index(v1, "}")]
	return backends + "---\n" + fmt.Sprintf(`apiVersion: v1
kind: Service
metadata: {name: mesh, namespace: default}
spec:
  ports: [{name: http, port: 80, targetPort: %[1]s}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: mesh-abcde, namespace: default, labels: {kubernetes.io/service-name: mesh}}
addressType: IPv4
ports: [{name: http, port: %[1]s, protocol: TCP}]
endpoints: [{addresses: [127.0.0.1], conditions: {ready: true}}]
`, v1)
}

// TestGatewayAPIMeshSidecar: a GAMMA HTTPRoute (parentRef the Service
// mesh) steers a sidecar's requests to mesh: a header canary and 80/20.
func TestGatewayAPIMeshSidecar(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "services.yaml"), meshServices(t))
	writeFile(t, filepath.Join(dir, "route.yaml"), `apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: mesh, namespace: default}
spec:
  parentRefs: [{group: "", kind: Service, name: mesh, port: 80}]
  rules:
  - matches: [{headers: [{name: x-canary, value: "true"}]}]
    backendRefs: [{name: mesh-v2, port: 80}]
  - backendRefs:
    - {name: mesh-v1, port: 80, weight: 80}
    - {name: mesh-v2, port: 80, weight: 20}
`)
	weir := startWeir(t, dir)
	sc := startSidecar(t, weir, "default")
	waitParent(t, func(what string, cond func(weirStatus) error) weirStatus { return waitStatus(t, weir, what, cond) },
		"default", "mesh", "Accepted", status.True, "Accepted")
	sc.expectShare(t, 2000, request{Method: http.MethodGet, Host: "mesh.default.svc.cluster.local", Path: "/"}, 0.2)
	c := newClient(4)
	for range 200 {
		req, err := http.NewRequest(http.MethodGet, "http://"+sc.outbound+"/", nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Host = "mesh"
		req.Header.Set("x-canary", "true")
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if strings.TrimSpace(string(body)) != "Hi, I am v2!" {
			t.Fatalf("x-canary: true answered %q, want v2", body)
		}
	}
}

// TestGatewayAPIMeshGRPC: the same kind of GAMMA route on the Service echo
// steers a proxyless gRPC client.
func TestGatewayAPIMeshGRPC(t *testing.T) {
	b := startEchoBackends(t)
	c, _ := startGRPCCase(t, map[string]string{
		"services.yaml": echoManifests(b),
		"route.yaml": `apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: echo, namespace: grpcdemo}
spec:
  parentRefs: [{group: "", kind: Service, name: echo, port: 50051}]
  rules:
  - matches: [{headers: [{name: x-canary, value: "yes"}]}]
    backendRefs: [{name: echo-v2, port: 50051}]
  - backendRefs:
    - {name: echo-v1, port: 50051, weight: 75}
    - {name: echo-v2, port: 50051, weight: 25}
`,
	})
	check := healthgrpc.Health_Check_FullMethodName
	got := b.tally(t, c.cc, 2000, check, "")
	checkShare(t, "v2", got["v2"], 2000, 0.25)
	t.Logf("no header: %v", got)
	if canary := b.tally(t, c.cc, 300, check, "yes"); canary["v2"] != 300 {
		t.Errorf("x-canary: yes answered %v, want all 300 by v2", canary)
	}
}
