package istio_test

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/weir-mesh/weir/translator/ir"
	"github.com/weir-mesh/weir/translator/istio"
	"github.com/weir-mesh/weir/translator/kube"
	"github.com/weir-mesh/weir/translator/status"
	"github.com/weir-mesh/weir/watcher"
)

// translate runs the front-end on manifests.
func translate(t *testing.T, manifests string) istio.Result {
	t.Helper()
	objs, _, err := watcher.DecodeFile("test.yaml", []byte(manifests))
	if err != nil {
		t.Fatal(err)
	}
	store, err := watcher.NewStore()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := store.ReplaceSource("test", objs); err != nil {
		t.Fatal(err)
	}
	snap := store.Snapshot()
	return istio.Translate(snap, kube.Build(snap, nil))
}

// golden reads a golden input of the translator package.
func golden(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "testdata", name+".in.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func cond(t *testing.T, res istio.Result, kind, ns, name, typ string) status.Condition {
	t.Helper()
	for _, o := range res.Status {
		if o.Kind == kind && o.Namespace == ns && o.Name == name {
			if c := o.Get(typ); c != nil {
				return *c
			}
			t.Fatalf("%s %s/%s has no %s condition: %+v", kind, ns, name, typ, o.Conditions)
		}
	}
	t.Fatalf("no status for %s %s/%s", kind, ns, name)
	return status.Condition{}
}

func cluster(t *testing.T, res istio.Result, name string) ir.Cluster {
	t.Helper()
	for _, c := range res.Clusters {
		if c.Name == name {
			return c
		}
	}
	t.Fatalf("no cluster %s among %d", name, len(res.Clusters))
	return ir.Cluster{}
}

func addresses(c ir.Cluster) []string {
	var out []string
	for _, ep := range c.Endpoints {
		out = append(out, ep.Address)
	}
	return out
}

func TestWeatherCanary(t *testing.T) {
	res := translate(t, golden(t, "istio-weather-2-canary"))
	routes := res.Routes["forecast.weather.svc.cluster.local:3002"]
	if len(routes) != 1 {
		t.Fatalf("forecast: want 1 route, got %+v", routes)
	}
	want := []ir.Backend{
		{Cluster: "outbound|3002|v1|forecast.weather.svc.cluster.local", Weight: 50},
		{Cluster: "outbound|3002|v2|forecast.weather.svc.cluster.local", Weight: 50},
	}
	if diff := cmp.Diff(want, routes[0].Backends); diff != "" {
		t.Errorf("forecast backends (-want +got):\n%s", diff)
	}
	if got := addresses(cluster(t, res, "outbound|3002|v2|forecast.weather.svc.cluster.local")); !cmp.Equal(got, []string{"10.1.2.2"}) {
		t.Errorf("subset v2 endpoints: %v", got)
	}
	if got := addresses(cluster(t, res, "outbound|3002|v1|forecast.weather.svc.cluster.local")); !cmp.Equal(got, []string{"10.1.2.1"}) {
		t.Errorf("subset v1 endpoints: %v", got)
	}
	// As with istiod: no timeout, two retries on connection failures.
	if routes[0].Timeout != ir.Disabled || routes[0].Retry == nil || routes[0].Retry.Attempts != 2 {
		t.Errorf("defaults: timeout %v retry %+v", routes[0].Timeout, routes[0].Retry)
	}
	for _, name := range []string{"frontend", "advertisement", "forecast", "recommendation"} {
		if c := cond(t, res, "VirtualService", "weather", name+"-route", status.Accepted); c.Status != status.True {
			t.Errorf("%s-route: %+v", name, c)
		}
	}
}

func TestWeatherAllToV2KeepsV1OnStandby(t *testing.T) {
	res := translate(t, golden(t, "istio-weather-3-v2"))
	host := "forecast.weather.svc.cluster.local:3002"
	r := res.Routes[host]
	if len(r) != 1 || len(r[0].Backends) != 1 || r[0].Backends[0].Cluster != "outbound|3002|v2|forecast.weather.svc.cluster.local" {
		t.Fatalf("forecast routes: %+v", r)
	}
	if want := []string{"outbound|3002|v1|forecast.weather.svc.cluster.local"}; !cmp.Equal(res.Standby[host], want) {
		t.Errorf("standby: got %v, want %v", res.Standby[host], want)
	}
}

func TestMicroAPIPolicy(t *testing.T) {
	res := translate(t, golden(t, "istio-micro-api"))
	want := ir.ClusterPolicy{LB: ir.RoundRobin, MaxConnections: 10, MaxPendingRequests: 1, MaxRequestsPerConnection: 1}
	for _, name := range []string{
		"outbound|80||micro-api.default.svc.cluster.local",
		"outbound|80|v1|micro-api.default.svc.cluster.local",
		"outbound|80|v2|micro-api.default.svc.cluster.local",
	} {
		if diff := cmp.Diff(want, cluster(t, res, name).Policy); diff != "" {
			t.Errorf("%s policy (-want +got):\n%s", name, diff)
		}
	}
	if got := addresses(cluster(t, res, "outbound|80|v1|micro-api.default.svc.cluster.local")); len(got) != 2 {
		t.Errorf("v1 endpoints: %v", got)
	}
	b := res.Routes["micro-api.default.svc.cluster.local:80"][0].Backends
	if len(b) != 2 || b[0].Weight != 70 || b[1].Weight != 30 {
		t.Errorf("backends: %+v", b)
	}
}

func TestHTTPBinTwoPorts(t *testing.T) {
	res := translate(t, golden(t, "istio-httpbin-two-port"))
	want := []ir.Backend{
		{Cluster: "outbound|8000|v1|httpbin.canary.svc.cluster.local", Weight: 80},
		{Cluster: "outbound|8001|v2|httpbin.canary.svc.cluster.local", Weight: 20},
	}
	for _, host := range []string{"httpbin.canary.svc.cluster.local:8000", "httpbin.canary.svc.cluster.local:8001"} {
		r := res.Routes[host]
		if len(r) != 1 {
			t.Fatalf("%s: %+v", host, r)
		}
		if diff := cmp.Diff(want, r[0].Backends); diff != "" {
			t.Errorf("%s backends (-want +got):\n%s", host, diff)
		}
	}
	v1 := cluster(t, res, "outbound|8000|v1|httpbin.canary.svc.cluster.local")
	v2 := cluster(t, res, "outbound|8001|v2|httpbin.canary.svc.cluster.local")
	if len(v1.Endpoints) != 1 || v1.Endpoints[0].Port != 80 || len(v2.Endpoints) != 1 || v2.Endpoints[0].Port != 8888 {
		t.Errorf("endpoints: v1 %+v, v2 %+v", v1.Endpoints, v2.Endpoints)
	}
}

func TestFeatures(t *testing.T) {
	res := translate(t, golden(t, "istio-features"))
	if c := cond(t, res, "VirtualService", "shop", "shop", status.Accepted); c.Status != status.True {
		t.Fatalf("shop: %+v", c)
	}
	routes := res.Routes["shop.shop.svc.cluster.local:80"]
	names := make([]string, len(routes))
	for i, r := range routes {
		names[i] = r.Name
	}
	wantNames := []string{
		"VirtualService/shop/shop/0.0", "VirtualService/shop/shop/0.1", "VirtualService/shop/shop/1",
		"VirtualService/shop/shop/2", "VirtualService/shop/shop/3", "VirtualService/shop/shop/4", "VirtualService/shop/shop/5",
	}
	if diff := cmp.Diff(wantNames, names); diff != "" {
		t.Fatalf("route order (-want +got):\n%s", diff)
	}
	v2 := "outbound|80|v2|shop.shop.svc.cluster.local"
	checks := map[string]struct {
		got, want any
	}{
		"header match": {routes[0].Match, ir.Match{Headers: []ir.HeaderMatch{
			{Name: "end-user", Exact: "jason"}, {Name: "x-debug", Present: true}, {Name: "x-canary-opt-out", Present: true, Invert: true}}}},
		"uri, method and query match": {routes[1].Match, ir.Match{PathPrefix: "/API/", PathIgnoreCase: true, Methods: []string{"GET"},
			QueryParams: []ir.QueryMatch{{Name: "canary", Exact: "yes"}, {Name: "trace", Present: true}}}},
		"hash of the v2 subset": {routes[0].HashPolicy, []ir.HashPolicy{{Cookie: &ir.HashCookie{Name: "shop-session", TTL: ir.Duration(3600e9), Path: "/"}}}},
		"direct response":       {routes[2].DirectResponse, &ir.DirectResponse{Status: 418, Body: "I'm a teapot"}},
		"redirect":              {routes[3].Redirect, &ir.Redirect{Path: "/new/", StatusCode: 302}},
		"rewrite":               {routes[4].Rewrite, &ir.Rewrite{PathPrefix: "/", Host: "shop-internal"}},
		"timeout":               {routes[4].Timeout, ir.Duration(3e9)},
		"retry":                 {routes[4].Retry, &ir.Retry{Attempts: 3, PerTryTimeout: ir.Duration(1e9), RetryOn: "5xx,gateway-error,429"}},
		"request headers":       {routes[4].RequestHeaders, ir.HeaderMods{Set: []ir.Header{{Name: "x-shop-version", Value: "v1"}}, Remove: []string{"x-internal"}}},
		"response headers":      {routes[4].ResponseHeaders, ir.HeaderMods{Add: []ir.Header{{Name: "x-served-by", Value: "weir"}}}},
		"fault":                 {routes[5].Fault, &ir.Fault{DelayPercent: 5, Delay: ir.Duration(1.5e9), AbortPercent: 10.5, AbortStatus: 503}},
		"regex match":           {routes[5].Match, ir.Match{PathRegex: "^/fault/.*"}},
		"weights":               {routes[6].Backends, []ir.Backend{{Cluster: "outbound|80|v1|shop.shop.svc.cluster.local", Weight: 9}, {Cluster: v2, Weight: 1}}},
		"mirror":                {routes[6].Mirrors, []ir.Mirror{{Cluster: "outbound|80|v3|shop.shop.svc.cluster.local", Percent: 50}}},
		"subset policy merged": {cluster(t, res, v2).Policy, ir.ClusterPolicy{LB: ir.RingHash, MaxRequests: 100, MaxRetries: 3,
			Outlier: &ir.OutlierDetection{Consecutive5xx: 5, Interval: ir.Duration(10e9), BaseEjectionTime: ir.Duration(30e9), MaxEjectionPercent: 50}}},
		"no retries on a direct response": {routes[2].Retry, (*ir.Retry)(nil)},
	}
	for name, c := range checks {
		if diff := cmp.Diff(c.want, c.got); diff != "" {
			t.Errorf("%s (-want +got):\n%s", name, diff)
		}
	}
}

func TestStickyVersions(t *testing.T) {
	res := translate(t, golden(t, "istio-sticky"))
	r := res.Routes["cart.shop.svc.cluster.local:8080"][0]
	want := []ir.Backend{
		{Cluster: "outbound|8080|v2|cart.shop.svc.cluster.local", Weight: 2000},
		{Cluster: "outbound|8080|v1|cart.shop.svc.cluster.local", Weight: 8000},
	}
	if diff := cmp.Diff(want, r.Backends); diff != "" {
		t.Errorf("backends (-want +got):\n%s", diff)
	}
	if !r.HashVersions || len(r.HashPolicy) != 1 || r.HashPolicy[0].Cookie == nil || r.HashPolicy[0].Cookie.TTL != ir.Duration(3600e9) {
		t.Errorf("hash: versions %v, policy %+v", r.HashVersions, r.HashPolicy)
	}
	if c := cond(t, res, "VirtualService", "shop", "cart", istio.StickyVersions); c.Status != status.True {
		t.Errorf("StickyVersions: %+v", c)
	}
}

// pick is Envoy's choice among weighted clusters for a hash value.
func pick(backends []ir.Backend, hash uint64) string {
	var total uint64
	for _, b := range backends {
		total += uint64(b.Weight)
	}
	v := hash % total
	for _, b := range backends {
		if v < uint64(b.Weight) {
			return b.Cluster
		}
		v -= uint64(b.Weight)
	}
	return ""
}

// TestStickyGrowthOnlyMovesForward moves weight step by step towards the
// newest of three versions and checks, for many hash values, that a user
// only ever moves to a newer version.
func TestStickyGrowthOnlyMovesForward(t *testing.T) {
	steps := [][3]int32{{100, 0, 0}, {90, 10, 0}, {80, 15, 5}, {50, 30, 20}, {20, 30, 50}, {20, 10, 70}, {0, 10, 90}, {0, 0, 100}}
	rank := map[string]int{}
	var prev map[uint64]string
	for _, w := range steps {
		http := ""
		for i, v := range []string{"v1", "v2", "v10"} {
			rank["outbound|8080|"+v+"|cart.shop.svc.cluster.local"] = i + 1
			http += "    - destination: {host: cart, subset: " + v + "}\n      weight: " + itoa(w[i]) + "\n"
		}
		m := strings.Replace(golden(t, "istio-sticky"), "  - {name: v2, labels: {version: v2}}\n", "  - {name: v2, labels: {version: v2}}\n  - {name: v10, labels: {version: v10}}\n", 1)
		m = m[:strings.Index(m, "    - destination: {host: cart, subset: v1}")] + http
		res := translate(t, m)
		backends := res.Routes["cart.shop.svc.cluster.local:8080"][0].Backends
		cur := map[uint64]string{}
		for h := uint64(0); h < 20000; h += 7 {
			cur[h] = pick(backends, h*0x9E3779B97F4A7C15)
			if rank[cur[h]] == 0 {
				t.Fatalf("unknown cluster %q", cur[h])
			}
			if prev != nil && rank[cur[h]] < rank[prev[h]] {
				t.Fatalf("weights %v: hash %d moved back from %s to %s", w, h, prev[h], cur[h])
			}
		}
		prev = cur
	}
}

func itoa(v int32) string { return strconv.Itoa(int(v)) }
