package e2e

import (
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/weir-mesh/weir/translator/istio"
	"github.com/weir-mesh/weir/translator/status"
)

// Istio's networking API as teams moving off Istio wrote it: the weather
// app, micro-api, the two-port httpbin canary, header routes, a mirror, an
// injected abort, cookie stickiness and sticky versions, through a real
// Envoy sidecar fed by weir from a directory of manifests.

// destinationRule gives Service name in namespace one subset per version,
// with trafficPolicy (YAML indented by two spaces under spec) if set.
func destinationRule(namespace, name, trafficPolicy string, versions ...string) string {
	s := fmt.Sprintf(`apiVersion: networking.istio.io/v1beta1
kind: DestinationRule
metadata: {name: %[1]s, namespace: %[2]s}
spec:
  host: %[1]s
%[3]s  subsets:
`, name, namespace, trafficPolicy)
	for _, v := range versions {
		s += fmt.Sprintf("  - name: %s\n    labels: {version: %s}\n", v, v)
	}
	return s
}

// weightedRoute is a VirtualService sending Service name's requests to
// subsets by weight ("v1", 80, "v2", 20); annotations are a YAML flow map
// or "".
func weightedRoute(namespace, name, annotations string, weights ...any) string {
	s := fmt.Sprintf(`apiVersion: networking.istio.io/v1beta1
kind: VirtualService
metadata: {name: %[1]s, namespace: %[2]s%[3]s}
spec:
  hosts: [%[1]s]
  http:
  - route:
`, name, namespace, annotations)
	for i := 0; i < len(weights); i += 2 {
		s += fmt.Sprintf("    - destination: {host: %s, subset: %s}\n      weight: %d\n", name, weights[i], weights[i+1])
	}
	return s
}

// weatherStep is the weather app's Istio objects at step 1, 2 or 3 of the
// canary of forecast; from step 2 on the recommendation app exists.
func weatherStep(step int, recommendation *meshApp) string {
	docs := []string{
		destinationRule("weather", "frontend", "", "v1"), weightedRoute("weather", "frontend", "", "v1", 100),
		destinationRule("weather", "advertisement", "", "v1"), weightedRoute("weather", "advertisement", "", "v1", 100),
	}
	switch step {
	case 1:
		docs = append(docs, destinationRule("weather", "forecast", "", "v1"), weightedRoute("weather", "forecast", "", "v1", 100))
	case 2:
		docs = append(docs, destinationRule("weather", "forecast", "", "v1", "v2"), weightedRoute("weather", "forecast", "", "v1", 50, "v2", 50))
	case 3:
		docs = append(docs, destinationRule("weather", "forecast", "", "v1", "v2"), weightedRoute("weather", "forecast", "", "v1", 0, "v2", 100))
	}
	if step >= 2 {
		docs = append(docs, recommendation.manifests(),
			destinationRule("weather", "recommendation", "", "v1"), weightedRoute("weather", "recommendation", "", "v1", 100))
	}
	return strings.Join(docs, "---\n")
}

// microAPIPolicy is micro-api-destination's traffic policy as written.
const microAPIPolicy = `  trafficPolicy:
    connectionPool:
      tcp: {maxConnections: 10}
      http: {http1MaxPendingRequests: 1, maxRequestsPerConnection: 1}
    loadBalancer: {simple: ROUND_ROBIN}
`

// microAPI is the micro-api DestinationRule and VirtualService, v1:v2.
func microAPI(v1, v2 int) string {
	return strings.Join([]string{
		strings.Replace(destinationRule("default", "micro-api", microAPIPolicy, "v1", "v2"), "{name: micro-api,", "{name: micro-api-destination,", 1),
		fmt.Sprintf(`apiVersion: networking.istio.io/v1alpha3
kind: VirtualService
metadata: {name: micro-api-route, namespace: default}
spec:
  hosts: [micro-api.default.svc.cluster.local]
  http:
  - route:
    - destination: {host: micro-api.default.svc.cluster.local, subset: v1}
      weight: %d
    - destination: {host: micro-api.default.svc.cluster.local, subset: v2}
      weight: %d
`, v1, v2),
	}, "---\n")
}

// httpbinTwoPorts is the httpbin canary: one Service whose port 8000 (-> 80)
// is served by v1 and 8001 (-> 8888) by v2, and a VirtualService sending
// 80% to v1 on 8000 and 20% to v2 on 8001.
func httpbinTwoPorts(v1, v2 *meshPod) string {
	pod := func(p *meshPod, portName string) string {
		return fmt.Sprintf(`apiVersion: v1
kind: Pod
metadata: {name: %[1]s, namespace: canary, labels: {app: httpbin, version: %[2]s}}
status:
  podIP: 127.0.0.1
  conditions: [{type: Ready, status: "True"}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: %[1]s
  namespace: canary
  labels: {kubernetes.io/service-name: httpbin}
addressType: IPv4
ports:
- {name: %[3]s, port: %[4]d, protocol: TCP}
endpoints:
- addresses: [127.0.0.1]
  conditions: {ready: true}
  targetRef: {kind: Pod, name: %[1]s}
`, p.name, p.version, portName, p.port)
	}
	return strings.Join([]string{`apiVersion: v1
kind: Service
metadata: {name: httpbin, namespace: canary}
spec:
  selector: {app: httpbin}
  ports:
  - {name: http-v1, port: 8000, targetPort: 80}
  - {name: http-v2, port: 8001, targetPort: 8888}
`, pod(v1, "http-v1"), pod(v2, "http-v2"), destinationRule("canary", "httpbin", "", "v1", "v2"), `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: httpbin, namespace: canary}
spec:
  hosts: [httpbin]
  http:
  - route:
    - destination:
        host: httpbin
        subset: v1
        port: {number: 8000}
      weight: 80
    - destination:
        host: httpbin
        subset: v2
        port: {number: 8001}
      weight: 20
`}, "---\n")
}

// reviewsRoutes sends user jason to v2, injects a 503 into 25% of /fault
// requests, and sends the rest to v1 with a copy of each to v3.
const reviewsRoutes = `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews, namespace: shop}
spec:
  hosts: [reviews]
  http:
  - match:
    - headers:
        end-user: {exact: jason}
    route:
    - destination: {host: reviews, subset: v2}
  - match:
    - uri: {prefix: /fault}
    fault:
      abort:
        httpStatus: 503
        percentage: {value: 25}
    route:
    - destination: {host: reviews, subset: v1}
  - route:
    - destination: {host: reviews, subset: v1}
    mirror: {host: reviews, subset: v3}
    mirrorPercentage: {value: 100}
`

// sticky is the annotation that lets the consistent hash pick the version.
const sticky = `, annotations: {` + istio.StickyVersionsAnnotation + `: "true"}`

// profileHash hashes a cookie Envoy generates; cartHash a user header.
const (
	profileHash = `  trafficPolicy:
    loadBalancer:
      consistentHash:
        httpCookie: {name: session, ttl: 60s}
`
	cartHash = `  trafficPolicy:
    loadBalancer:
      consistentHash: {httpHeaderName: x-user}
`
)

// Request counts: >= 2000 for weights; fewer where every answer must match.
const (
	istioSplitRequests = 2000
	istioAllRequests   = 200
	stickyUsers        = 200
	stickyPerUser      = 20
)

// TestIstio runs the cases in order against one weir and one sidecar; each
// edits the manifests and waits for Envoy to ACK the routes it leads to.
func TestIstio(t *testing.T) {
	start := time.Now()
	var scRef atomic.Pointer[sidecar]
	recommendation := newMeshApp(t, "weather", "recommendation", 3005, 1, nil, "v1")
	// forecast v2 calls recommendation through the sidecar, as in the app.
	callsRecommendation := func(p *meshPod, w io.Writer) {
		if p.version != "v2" {
			_, _ = io.WriteString(w, p.name)
			return
		}
		got, err := meshGet(scRef.Load(), newClient(1), recommendation.host(), "/", nil)
		if err != nil {
			got = "error"
		}
		_, _ = io.WriteString(w, p.name+"+"+got)
	}
	apps := map[string]*meshApp{
		"frontend":      newMeshApp(t, "weather", "frontend", 3000, 1, nil, "v1"),
		"advertisement": newMeshApp(t, "weather", "advertisement", 3003, 1, nil, "v1"),
		"forecast":      newMeshApp(t, "weather", "forecast", 3002, 1, callsRecommendation, "v1", "v2"),
		"micro-api":     newMeshApp(t, "default", "micro-api", 80, 1, nil, "v1", "v2"),
		"reviews":       newMeshApp(t, "shop", "reviews", 9080, 1, nil, "v1", "v2", "v3"),
		"profile":       newMeshApp(t, "shop", "profile", 8080, 2, nil, "v1", "v2"),
		"cart":          newMeshApp(t, "shop", "cart", 8080, 1, nil, "v1", "v2"),
	}
	httpbin := newMeshApp(t, "canary", "httpbin", 8000, 1, nil, "v1", "v2")
	var appDocs []string
	for _, a := range apps {
		appDocs = append(appDocs, a.manifests())
	}
	dir := t.TempDir()
	files := map[string]string{
		"apps.yaml":      strings.Join(appDocs, "---\n"),
		"weather.yaml":   weatherStep(1, recommendation),
		"micro-api.yaml": microAPI(70, 30),
		"httpbin.yaml":   httpbinTwoPorts(httpbin.pods[0], httpbin.pods[1]),
		"shop.yaml": strings.Join([]string{
			destinationRule("shop", "reviews", "", "v1", "v2", "v3"), reviewsRoutes,
			destinationRule("shop", "profile", profileHash, "v1", "v2"), weightedRoute("shop", "profile", sticky, "v1", 50, "v2", 50),
			destinationRule("shop", "cart", cartHash, "v1", "v2"), weightedRoute("shop", "cart", sticky, "v1", 80, "v2", 20),
		}, "---\n"),
	}
	for name, content := range files {
		writeFile(t, filepath.Join(dir, name), content)
	}
	weir := startWeir(t, dir)
	sc := startSidecar(t, weir, "weather")
	scRef.Store(sc)
	acked := ackedVersions(t, weir.XDS(), sc.nodeID, nil, xdsTypes...)
	t.Logf("weir and envoy ready in %v", time.Since(start).Round(time.Millisecond))
	write := func(t *testing.T, name, content string) {
		writeFile(t, filepath.Join(dir, name), content)
		acked = sc.waitRoute(t, acked)
	}

	cases := []struct {
		name string
		run  func(t *testing.T)
	}{
		{"weather-app-canary", func(t *testing.T) {
			for _, app := range []string{"frontend", "advertisement", "forecast"} {
				expectOnlyVersion(t, meshSend(t, sc, 8, istioAllRequests, apps[app].host(), "/", nil), "v1")
			}
			write(t, "weather.yaml", weatherStep(2, recommendation))
			tl := meshSend(t, sc, 8, istioSplitRequests, apps["forecast"].host(), "/", nil)
			v := expectVersionShare(t, tl, 0.5)
			if got := tl.counts["forecast-v2-0+recommendation-v1-0"]; got != v["v2"] {
				t.Errorf("every v2 answer must include recommendation's: %d of %d do (%v)", got, v["v2"], tl)
			}
			write(t, "weather.yaml", weatherStep(3, recommendation))
			tl = meshSend(t, sc, 8, istioAllRequests, apps["forecast"].host(), "/", nil)
			if got := tl.counts["forecast-v2-0+recommendation-v1-0"]; got != tl.n {
				t.Errorf("0/100: want every answer from v2 with recommendation's, got %v", tl)
			}
		}},
		{"micro-api-70-30", func(t *testing.T) {
			// One connection at a time: the rule allows one pending
			// request and one request per connection.
			expectVersionShare(t, meshSend(t, sc, 1, istioSplitRequests, apps["micro-api"].host(), "/", nil), 0.3)
			clusters, err := sc.adminGet("/clusters")
			if err != nil {
				t.Fatal(err)
			}
			for _, want := range []string{
				"outbound|80|v1|micro-api.default.svc.cluster.local::default_priority::max_connections::10",
				"outbound|80|v1|micro-api.default.svc.cluster.local::default_priority::max_pending_requests::1",
			} {
				if !strings.Contains(clusters, want) {
					t.Errorf("envoy /clusters has no %q", want)
				}
			}
			write(t, "micro-api.yaml", microAPI(0, 100))
			expectOnlyVersion(t, meshSend(t, sc, 1, istioAllRequests, apps["micro-api"].host(), "/", nil), "v2")
		}},
		{"httpbin-two-ports", func(t *testing.T) {
			for _, port := range []string{"8000", "8001"} {
				tl := meshSend(t, sc, 8, istioSplitRequests, "httpbin.canary.svc.cluster.local:"+port, "/", nil)
				expectVersionShare(t, tl, 0.2)
			}
		}},
		{"header-routes", func(t *testing.T) {
			jason := func(int) http.Header { return http.Header{"End-User": {"jason"}} }
			expectOnlyVersion(t, meshSend(t, sc, 8, istioAllRequests, apps["reviews"].host(), "/", jason), "v2")
			other := func(int) http.Header { return http.Header{"End-User": {"mallory"}} }
			expectOnlyVersion(t, meshSend(t, sc, 8, istioAllRequests, apps["reviews"].host(), "/", other), "v1")
		}},
		{"mirror", func(t *testing.T) {
			v3 := apps["reviews"].pods[2]
			before := v3.served.Load()
			expectOnlyVersion(t, meshSend(t, sc, 8, istioAllRequests, apps["reviews"].host(), "/", nil), "v1")
			waitFor(t, 5*time.Second, "v3 to receive a copy of every request", func() error {
				if got := v3.served.Load() - before; got != istioAllRequests {
					return fmt.Errorf("v3 received %d copies of %d requests", got, istioAllRequests)
				}
				return nil
			})
			shadow := apps["reviews"].host()
			shadow = strings.Replace(shadow, ":9080", "-shadow:9080", 1)
			if hosts := v3.hostsSeen(); hosts[shadow] != int(v3.served.Load()) {
				t.Errorf("v3 must see only mirrored requests (Host %s), saw %v", shadow, hosts)
			}
		}},
		{"abort", func(t *testing.T) {
			tl := meshSend(t, sc, 8, istioSplitRequests, apps["reviews"].host(), "/fault/demo", nil)
			if v := byVersion(tl); v["v1"]+tl.counts["HTTP 503"] != tl.n {
				t.Errorf("want only v1 answers and injected 503s, got %v", tl)
			}
			checkShare(t, "aborted with 503", tl.counts["HTTP 503"], tl.n, 0.25)
		}},
		{"cookie-keeps-client-on-one-version", func(t *testing.T) {
			host := apps["profile"].host()
			pods := map[string]bool{}
			for user := range 20 {
				jar, err := cookiejar.New(nil)
				if err != nil {
					t.Fatal(err)
				}
				c := newClient(1)
				c.Jar = jar
				// The first answer sets the cookie Envoy generated (the jar
				// keeps it for the Host the request named).
				if _, err := meshGet(sc, c, host, "/", nil); err != nil {
					t.Fatal(err)
				}
				if cs := jar.Cookies(&url.URL{Scheme: "http", Host: host}); len(cs) != 1 || cs[0].Name != "session" {
					t.Fatalf("user %d: want the session cookie Envoy generates, have %v", user, cs)
				}
				seen := map[string]int{}
				for range 100 {
					got, err := meshGet(sc, c, host, "/", nil)
					if err != nil {
						t.Fatal(err)
					}
					seen[got]++
				}
				if len(seen) != 1 {
					t.Fatalf("user %d: 100 requests with one cookie reached %s, want one Pod", user, sortedCounts(seen))
				}
				for p := range seen {
					pods[p] = true
				}
			}
			if len(pods) < 2 {
				t.Errorf("20 users all reached %v: the hash does not spread users", pods)
			}
			t.Logf("20 users, each on one Pod for 100 requests; Pods reached: %d", len(pods))
		}},
		{"sticky-versions-across-weight-change", func(t *testing.T) {
			host := apps["cart"].host()
			before := stickyRound(t, sc, host)
			onV2 := usersOn(before, "v2")
			checkShare(t, "users on v2 at 80/20", len(onV2), stickyUsers, 0.2)
			write(t, "shop.yaml", strings.Replace(files["shop.yaml"],
				weightedRoute("shop", "cart", sticky, "v1", 80, "v2", 20), weightedRoute("shop", "cart", sticky, "v1", 50, "v2", 50), 1))
			after := stickyRound(t, sc, host)
			nowV2 := usersOn(after, "v2")
			checkShare(t, "users on v2 at 50/50", len(nowV2), stickyUsers, 0.5)
			for u := range onV2 {
				if !nowV2[u] {
					t.Errorf("user %d was on v2 at 80/20 and is on %v at 50/50", u, after[u])
				}
			}
			t.Logf("users on v2: %d at 80/20, %d at 50/50; every one of the %d stayed", len(onV2), len(nowV2), len(onV2))
		}},
		{"status", func(t *testing.T) {
			// A broken VirtualService is reported and changes nothing.
			writeFile(t, filepath.Join(dir, "oops.yaml"), weightedRoute("weather", "forecast-oops", "", "v1", 0, "v2", 0))
			ws := waitStatus(t, weir, "the broken VirtualService to be judged", func(ws weirStatus) error {
				if ws.condition("VirtualService", "weather", "forecast-oops", status.Accepted) == nil {
					return errNotYet
				}
				return nil
			})
			c := ws.condition("VirtualService", "weather", "forecast-oops", status.Accepted)
			if c.Status != status.False || c.Reason != istio.ReasonInvalidWeight || !strings.Contains(c.Message, "spec.http[0].route[*].weight") {
				t.Errorf("forecast-oops: want Accepted=False %s naming the weights, got %+v", istio.ReasonInvalidWeight, c)
			}
			for _, o := range []struct{ kind, ns, name string }{
				{"VirtualService", "weather", "forecast"}, {"VirtualService", "default", "micro-api-route"},
				{"VirtualService", "canary", "httpbin"}, {"VirtualService", "shop", "cart"},
				{"DestinationRule", "default", "micro-api-destination"}, {"DestinationRule", "shop", "cart"},
			} {
				if c := ws.condition(o.kind, o.ns, o.name, status.Accepted); c == nil || c.Status != status.True {
					t.Errorf("%s %s/%s: want Accepted=True, got %+v", o.kind, o.ns, o.name, c)
				}
			}
			if c := ws.condition("VirtualService", "shop", "cart", istio.StickyVersions); c == nil || c.Status != status.True {
				t.Errorf("cart: want StickyVersions=True, got %+v", c)
			}
			tl := meshSend(t, sc, 8, istioAllRequests, apps["forecast"].host(), "/", nil)
			if got := tl.counts["forecast-v2-0+recommendation-v1-0"]; got != tl.n {
				t.Errorf("after bad input: want every answer from v2, got %v", tl)
			}
		}},
	}
	for _, c := range cases {
		if !t.Run(c.name, c.run) {
			break
		}
	}
	if ps := sc.status(t); ps.Nacks != 0 {
		t.Errorf("envoy NACKed %d times, last: %+v", ps.Nacks, ps.LastNack)
	}
	t.Logf("istio cases done in %v", time.Since(start).Round(time.Millisecond))
}

// stickyRound sends stickyPerUser requests for each of stickyUsers users
// (header x-user) and returns the version each user saw; it fails if a
// user saw two versions or a request failed.
func stickyRound(t *testing.T, sc *sidecar, host string) map[int]string {
	t.Helper()
	var mu sync.Mutex
	seen := map[int]map[string]int{}
	tl := meshSendUsers(t, sc, host, func(user int, answer string) {
		mu.Lock()
		defer mu.Unlock()
		if seen[user] == nil {
			seen[user] = map[string]int{}
		}
		seen[user][answer]++
	})
	if v := byVersion(tl); v["v1"]+v["v2"] != tl.n {
		t.Fatalf("want every answer from v1 or v2, got %v", tl)
	}
	out := map[int]string{}
	for u, answers := range seen {
		if len(answers) != 1 {
			t.Errorf("user %d saw %s, want one version on all %d requests", u, sortedCounts(answers), stickyPerUser)
		}
		for a := range answers {
			out[u] = versionOf(a)
		}
	}
	return out
}

// meshSendUsers sends stickyPerUser GETs to host for each of stickyUsers
// users, identified by header x-user, from 8 keep-alive clients, and calls
// record with each answer.
func meshSendUsers(t *testing.T, sc *sidecar, host string, record func(user int, answer string)) tally {
	t.Helper()
	var next atomic.Int64
	n := stickyUsers * stickyPerUser
	tl := sendAll(8, n, func() *http.Client { return newClient(1) }, func(c *http.Client) (string, error) {
		user := int(next.Add(1)-1) % stickyUsers
		got, err := meshGet(sc, c, host, "/", http.Header{"X-User": {fmt.Sprintf("user-%d", user)}})
		record(user, got)
		return got, err
	})
	t.Logf("GET %s as %d users: %v", host, stickyUsers, tl)
	return tl
}

// usersOn returns the users whose version is v.
func usersOn(versions map[int]string, v string) map[int]bool {
	out := map[int]bool{}
	for u, got := range versions {
		if got == v {
			out[u] = true
		}
	}
	return out
}
