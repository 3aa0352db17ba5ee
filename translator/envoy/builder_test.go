package envoy

import (
	"bytes"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"

	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/testing/protocmp"

	"github.com/weir-mesh/weir/translator/ir"
)

// meshIR has two services in two namespaces, one split between two
// versions; every cluster has an endpoint.
func meshIR() *ir.IR {
	host := func(svc, ns string, backends ...ir.Backend) ir.Host {
		return ir.Host{Name: svc + "." + ns + ".svc.cluster.local:80", Service: svc, Namespace: ns, Port: 80,
			ClusterIP: "10.96.0.1", BareNames: true, Routes: []ir.Route{{Name: "Service/" + ns + "/" + svc, Backends: backends}}}
	}
	cluster := func(name, addr string) ir.Cluster {
		return ir.Cluster{Name: name, Port: 80, Protocol: ir.HTTP1, Endpoints: []ir.Endpoint{{Address: addr, Port: 8080}}}
	}
	api := host("api", "a", ir.Backend{Cluster: "api-v1", Weight: 90}, ir.Backend{Cluster: "api-v2", Weight: 10})
	api.Standby = []string{"api-v3"}
	web := host("web", "b", ir.Backend{Cluster: "web", Weight: 1})
	web.ClusterIP = "fd00::1"
	return &ir.IR{
		Hosts:    []ir.Host{api, web},
		Clusters: []ir.Cluster{cluster("api-v1", "10.0.0.1"), cluster("api-v2", "10.0.0.2"), cluster("api-v3", "10.0.0.3"), cluster("unused", "10.0.0.4"), cluster("web", "10.0.0.5")},
	}
}

func sidecar(ns string, port uint32) Proxy {
	return Proxy{Role: Sidecar, Namespace: ns, OutboundAddress: "127.0.0.1", OutboundPort: port}
}

func scopedSidecar(ns string, port uint32) Proxy {
	p := sidecar(ns, port)
	p.ScopedRoutes = true
	return p
}

// TestBuilderSharesResources builds several proxies of one Builder at once
// and checks that they share what does not depend on the proxy, and that
// each gets what Build gives it.
func TestBuilderSharesResources(t *testing.T) {
	t.Run("single", func(t *testing.T) { testBuilderSharesResources(t, sidecar) })
	t.Run("scoped", func(t *testing.T) { testBuilderSharesResources(t, scopedSidecar) })
}

func testBuilderSharesResources(t *testing.T, sidecar func(string, uint32) Proxy) {
	in := meshIR()
	proxies := []Proxy{sidecar("a", DefaultOutboundPort), sidecar("a", 15002), sidecar("b", DefaultOutboundPort), {Role: GRPC}, {Role: GRPC}}
	b := NewBuilder(in)
	got := make([]*Resources, len(proxies))
	var wg sync.WaitGroup
	for i, p := range proxies {
		wg.Go(func() {
			res, err := b.Build(p)
			if err != nil {
				t.Errorf("%+v: Build: %v", p, err)
				return
			}
			if err := b.Validate(res); err != nil {
				t.Errorf("%+v: Validate: %v", p, err)
			}
			got[i] = res
		})
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	for i, p := range proxies {
		want, err := Build(in, p)
		if err != nil {
			t.Fatal(err)
		}
		if !equalResources(want, got[i]) {
			t.Errorf("%+v: Builder resources differ from Build's", p)
		}
		if len(got[i].Clusters) != 4 {
			t.Errorf("%+v: %d clusters, want 4", p, len(got[i].Clusters))
		}
		for j := range got[i].Clusters {
			if got[i].Clusters[j] != got[0].Clusters[j] || got[i].Endpoints[j] != got[0].Endpoints[j] {
				t.Errorf("%+v: cluster %s is not shared", p, got[i].Clusters[j].Name)
			}
		}
	}
	if proxies[0].ScopedRoutes {
		for _, i := range []int{1, 2} {
			if len(got[i].Routes) != 2 || got[0].Routes[0] != got[i].Routes[0] || got[0].Routes[1] != got[i].Routes[1] {
				t.Errorf("%+v: does not share the route configurations of the hosts with %+v", proxies[i], proxies[0])
			}
		}
		if equalScopeSets(got[0].Scopes, got[2].Scopes) {
			t.Errorf("sidecars of namespaces a and b have the same scopes; only a's answer to the short name api")
		}
		// web has no standby cluster: its gRPC route configuration is the
		// sidecars'; api's names api-v3 in a standby route.
		for j, rc := range got[0].Routes {
			if shared := rc == got[3].Routes[j]; shared != (rc.Name == in.Hosts[1].Name) {
				t.Errorf("route configuration %s: shared by sidecars and gRPC clients %v, want it only for the host without standby", rc.Name, shared)
			}
		}
	} else {
		if got[0].Routes[0] != got[1].Routes[0] {
			t.Errorf("two sidecars of namespace a have different route configurations")
		}
		if got[0].Routes[0] == got[2].Routes[0] {
			t.Errorf("sidecars of namespaces a and b share a route configuration")
		}
		if len(got[0].Scopes) > 0 {
			t.Errorf("a sidecar without scoped routes got %d scopes", len(got[0].Scopes))
		}
	}
	if got[0].Listeners[0] == got[1].Listeners[0] {
		t.Errorf("sidecars on two ports share a listener")
	}
	for i, v := range lookupAll(&b.valid, got[0].Clusters) {
		if v == nil {
			t.Errorf("cluster %s: Builder.Validate does not remember it", got[0].Clusters[i].Name)
		}
	}
	for j := range got[3].Listeners {
		if got[3].Listeners[j] != got[4].Listeners[j] || got[3].Routes[j] != got[4].Routes[j] {
			t.Errorf("gRPC resources of %s are not shared", got[3].Listeners[j].Name)
		}
	}
}

func equalResources(a, b *Resources) bool {
	return equalLists(a.Listeners, b.Listeners) && equalLists(a.Routes, b.Routes) && equalLists(a.Clusters, b.Clusters) &&
		equalLists(a.Endpoints, b.Endpoints) && equalLists(a.Secrets, b.Secrets) && slicesEqual(a.SecretRefs, b.SecretRefs)
}

func equalLists[T proto.Message](a, b []T) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !proto.Equal(a[i], b[i]) {
			return false
		}
	}
	return true
}

func slicesEqual(a, b []string) bool { return strings.Join(a, "\n") == strings.Join(b, "\n") }

// TestBuilderValidateReportsWhatValidateDoes breaks a set of resources in
// ways a resource's own rules and the references between resources catch,
// and checks that Builder.Validate says what Validate says, also when it
// has seen the resources before.
func TestBuilderValidateReportsWhatValidateDoes(t *testing.T) {
	in := meshIR()
	in.Clusters[0].Endpoints[0].Address = "" // a socket address needs one
	b := NewBuilder(in)
	for _, p := range []Proxy{sidecar("a", DefaultOutboundPort), {Role: GRPC}} {
		res, err := b.Build(p)
		if err != nil {
			t.Fatal(err)
		}
		broken := *res
		broken.Clusters = broken.Clusters[1:]                         // api-v1 is routed to
		broken.Listeners = append(broken.Listeners, res.Listeners[0]) // defined twice
		broken.Routes = broken.Routes[:len(broken.Routes)-1]
		want := Validate(&broken)
		if want == nil || !strings.Contains(want.Error(), "does not exist") || !strings.Contains(want.Error(), "defined twice") ||
			!strings.Contains(want.Error(), "load assignment \"api-v1\"") {
			t.Fatalf("%s: Validate finds %v, want a missing cluster, a missing route configuration, a listener defined twice and a bad load assignment", p.Role, want)
		}
		for i := range 3 {
			if diff := cmp.Diff(want.Error(), fmt.Sprint(b.Validate(&broken))); diff != "" {
				t.Errorf("%s: call %d: Builder.Validate (-Validate +Builder.Validate):\n%s", p.Role, i, diff)
			}
		}
		if err := b.Validate(res); err == nil || strings.Contains(err.Error(), "does not exist") {
			t.Errorf("%s: Builder.Validate of the unbroken set = %v, want only the bad load assignment", p.Role, err)
		}
	}
}

// TestBuilderValidateChecksForeignResources checks that a resource the
// Builder did not build is checked even when it has the name of one it did.
func TestBuilderValidateChecksForeignResources(t *testing.T) {
	b := NewBuilder(meshIR())
	res, err := b.Build(Proxy{Role: GRPC})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Validate(res); err != nil {
		t.Fatalf("Validate: %v", err)
	}
	changed := *res
	changed.Listeners = append([]*listenerv3.Listener(nil), res.Listeners...)
	changed.Listeners[0] = proto.Clone(res.Listeners[0]).(*listenerv3.Listener)
	changed.Listeners[0].ApiListener = nil
	changed.Listeners[0].Address = socketAddress("", 0)
	want := Validate(&changed)
	if want == nil {
		t.Fatal("Validate accepts a listener without an address")
	}
	if diff := cmp.Diff(want.Error(), fmt.Sprint(b.Validate(&changed))); diff != "" {
		t.Errorf("(-Validate +Builder.Validate):\n%s", diff)
	}
	if known := lookupAll(&b.valid, changed.Listeners); known[0] != nil || known[1] == nil {
		t.Errorf("Builder.Validate remembers the copy (%v) or forgets its own listener (%v)", known[0] != nil, known[1] == nil)
	}
}

func TestHCMEncoderMatchesMustAny(t *testing.T) {
	enc := newHCMEncoder()
	for i := range 3000 { // more than one buffer
		name := fmt.Sprintf("svc%d.ns%d.svc.cluster.local:%d", i, i%7, 8000+i)
		rc := name + "-rc"
		switch i {
		case 0:
			name, rc = "", "" // proto3 leaves empty strings out
		case 1:
			rc = strings.Repeat(name, 10) // a longer length
		}
		got, want := enc.any(name, rc), mustAny(buildHCM(name, rc))
		if got.TypeUrl != want.TypeUrl || !bytes.Equal(got.Value, want.Value) {
			t.Fatalf("%s: encoder gives %q, mustAny %q", name, got, want)
		}
		if cap(got.Value) != len(got.Value) {
			t.Fatalf("%s: value has spare capacity %d", name, cap(got.Value)-len(got.Value))
		}
	}
}

func TestSidecarDomains(t *testing.T) {
	tests := map[string]struct {
		host ir.Host
		ns   string
		want []string
	}{
		"other namespace": {
			host: ir.Host{Service: "web", Namespace: "shop", Port: 8080, ClusterIP: "10.0.0.1"}, ns: "default",
			want: []string{"web.shop.svc.cluster.local:8080", "web.shop.svc:8080", "web.shop:8080", "10.0.0.1:8080"},
		},
		"own namespace, bare": {
			host: ir.Host{Service: "web", Namespace: "shop", Port: 80, ClusterIP: "10.0.0.1", BareNames: true}, ns: "shop",
			want: []string{"web.shop.svc.cluster.local:80", "web.shop.svc:80", "web.shop:80", "web:80", "10.0.0.1:80",
				"web.shop.svc.cluster.local", "web.shop.svc", "web.shop", "web", "10.0.0.1"},
		},
		"IPv6, headless": {
			host: ir.Host{Service: "db", Namespace: "shop", Port: 5432, ClusterIP: "fd00::1"}, ns: "x",
			want: []string{"db.shop.svc.cluster.local:5432", "db.shop.svc:5432", "db.shop:5432", "[fd00::1]:5432"},
		},
		"no ClusterIP": {
			host: ir.Host{Service: "db", Namespace: "shop", Port: 5432, BareNames: true}, ns: "x",
			want: []string{"db.shop.svc.cluster.local:5432", "db.shop.svc:5432", "db.shop:5432", "db.shop.svc.cluster.local", "db.shop.svc", "db.shop"},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, sidecarDomains(tc.host, tc.ns)); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func TestSidecarDomainsUnique(t *testing.T) {
	host := func(svc, ns string, port uint32, ip string, bare bool) ir.Host {
		return ir.Host{Name: fmt.Sprintf("%s.%s.svc.cluster.local:%d", svc, ns, port), Service: svc, Namespace: ns, Port: port, ClusterIP: ip, BareNames: bare}
	}
	tests := map[string]struct {
		hosts []ir.Host
		want  bool
	}{
		"distinct": {hosts: []ir.Host{host("a", "x", 80, "10.0.0.1", true), host("a", "x", 81, "10.0.0.1", false),
			host("a", "y", 80, "", true), host("b", "x", 80, "fd00::1", true)}, want: true},
		"not sorted":                {hosts: []ir.Host{host("b", "x", 80, "", false), host("a", "x", 80, "", false)}},
		"not a host name":           {hosts: []ir.Host{{Name: "a", Service: "a", Namespace: "x", Port: 80}}},
		"shared ClusterIP and port": {hosts: []ir.Host{host("a", "x", 80, "10.0.0.1", false), host("b", "x", 80, "10.0.0.1", false)}},
		"shared ClusterIP":          {hosts: []ir.Host{host("a", "x", 80, "10.0.0.1", false), host("b", "x", 81, "10.0.0.1", false)}},
		"shared bare ClusterIP":     {hosts: []ir.Host{host("a", "x", 80, "10.0.0.1", true), host("b", "x", 81, "10.0.0.1", true)}},
		"two bare ports":            {hosts: []ir.Host{host("a", "x", 80, "", true), host("a", "x", 81, "", true)}},
		"same host twice":           {hosts: []ir.Host{host("a", "x", 80, "", false), host("a", "x", 80, "", false)}},
		"dotted name":               {hosts: []ir.Host{host("a.x", "svc", 80, "", false)}},
		"ClusterIP not an address":  {hosts: []ir.Host{host("a", "x", 80, "a.x.svc", false)}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if got := sidecarDomainsUnique(tc.hosts); got != tc.want {
				t.Fatalf("sidecarDomainsUnique = %v, want %v", got, tc.want)
			}
			configs := make([]*routev3.RouteConfiguration, len(tc.hosts))
			for i, h := range tc.hosts {
				configs[i] = buildHostRouteConfig(h, nil)
			}
			var shared *sharedScopes
			if tc.want {
				shared = buildSharedScopes(tc.hosts, (*carried)(nil).scopesOf)
			}
			routes := make([][]*routev3.Route, len(tc.hosts))
			for _, ns := range []string{"x", "y"} {
				single := buildOutboundRouteConfig(tc.hosts, routes, ns, nil)
				if err := validate(&Resources{Routes: []*routev3.RouteConfiguration{single}}, nil); err != nil {
					t.Errorf("%s: claimed domains still collide: %v", ns, err)
				}
				if tc.want && !proto.Equal(single, buildOutboundRouteConfig(tc.hosts, routes, ns, buildForeignVirtualHosts(tc.hosts, routes))) {
					t.Errorf("%s: shared virtual hosts differ from checked ones", ns)
				}
				checked := buildSidecarScopes(tc.hosts, configs, ns)
				if err := validate(&Resources{Scopes: checked.scopes, Routes: checked.routes}, nil); err != nil {
					t.Errorf("%s: claimed scopes still collide: %v", ns, err)
				}
				if shared != nil && !equalScopeSets(checked.scopes, shared.forNamespace(tc.hosts, ns)) {
					t.Errorf("%s: shared scopes differ from claimed ones", ns)
				}
			}
		})
	}
}

// equalScopeSets reports whether a and b hold equal scopes, in any order.
func equalScopeSets(a, b []*routev3.ScopedRouteConfiguration) bool {
	byName := func(x, y *routev3.ScopedRouteConfiguration) int { return strings.Compare(x.Name, y.Name) }
	a, b = slices.SortedFunc(slices.Values(a), byName), slices.SortedFunc(slices.Values(b), byName)
	return equalLists(a, b)
}

// TestRouteAllocatorBuildsWhatBuildRouteDoes sets each field of a plain
// forwarding route in turn (and each field of its match), so that a field
// added to ir.Route one day cannot be dropped by the allocator's shortcut.
func TestRouteAllocatorBuildsWhatBuildRouteDoes(t *testing.T) {
	plain := ir.Route{Name: "r", Backends: []ir.Backend{{Cluster: "a", Weight: 1}}}
	var routes []ir.Route
	for i := range reflect.TypeFor[ir.Route]().NumField() {
		r := plain
		setNonZero(t, reflect.ValueOf(&r).Elem().Field(i))
		routes = append(routes, r)
	}
	for i := range reflect.TypeFor[ir.Match]().NumField() {
		r := plain
		setNonZero(t, reflect.ValueOf(&r.Match).Elem().Field(i))
		routes = append(routes, r)
	}
	routes = append(routes, ir.Route{Name: "split", Backends: []ir.Backend{{Cluster: "a", Weight: 9}, {Cluster: "b", Weight: 1}}, HashVersions: true})
	var alloc routeAllocator
	for _, r := range routes {
		if diff := cmp.Diff(buildRoute(r), alloc.route(&r), protocmp.Transform()); diff != "" {
			t.Errorf("%+v: (-buildRoute +allocator):\n%s", r, diff)
		}
	}
}

// setNonZero sets v to a value other than its zero value.
func setNonZero(t *testing.T, v reflect.Value) {
	switch v.Kind() {
	case reflect.String:
		v.SetString("/x")
	case reflect.Bool:
		v.SetBool(true)
	case reflect.Int, reflect.Int64, reflect.Int32:
		v.SetInt(7)
	case reflect.Uint32, reflect.Uint64:
		v.SetUint(7)
	case reflect.Float64:
		v.SetFloat(50)
	case reflect.Pointer:
		v.Set(reflect.New(v.Type().Elem()))
	case reflect.Slice:
		s := reflect.MakeSlice(v.Type(), 1, 1)
		if s.Index(0).Kind() == reflect.Struct {
			setNonZero(t, s.Index(0).Field(0))
		} else {
			setNonZero(t, s.Index(0))
		}
		v.Set(s)
	case reflect.Struct:
		setNonZero(t, v.Field(0))
	default:
		t.Fatalf("no non-zero value for %s", v.Type())
	}
}

// TestOutboundConnectionManagerIsValid checks the sidecar's connection
// manager, which a listener carries encoded, where the listener's own
// validation does not look.
func TestOutboundConnectionManagerIsValid(t *testing.T) {
	hcm := &hcmv3.HttpConnectionManager{}
	if err := outboundHCM.UnmarshalTo(hcm); err != nil {
		t.Fatal(err)
	}
	if err := hcm.ValidateAll(); err != nil {
		t.Fatal(err)
	}
}

// TestRouteRefsNameWhatTheyFind: a route configuration's check names the
// virtual host and route of a missing cluster, and reports what it finds
// in the order found.
func TestRouteRefsNameWhatTheyFind(t *testing.T) {
	to := func(name, cluster string) *routev3.Route {
		return &routev3.Route{Name: name, Action: &routev3.Route_Route{Route: &routev3.RouteAction{
			ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: cluster}}}}
	}
	rc := &routev3.RouteConfiguration{Name: "rc", VirtualHosts: []*routev3.VirtualHost{
		{Name: "a", Domains: []string{"a"}, Routes: []*routev3.Route{to("a0", "here"), to("a1", "gone")}},
		{Name: "b", Domains: []string{"a", "b"}, Routes: []*routev3.Route{to("b0", "lost")}},
	}}
	got := fmt.Sprint(checkRouteRefs(rc, routeConfigRefs(rc), map[string]bool{"here": true}))
	want := fmt.Sprint([]error{
		errors.New(`route configuration "rc", virtual host "a", route "a1": cluster "gone" does not exist`),
		errors.New(`route configuration "rc": domain "a" in virtual hosts "a" and "b"`),
		errors.New(`route configuration "rc", virtual host "b", route "b0": cluster "lost" does not exist`),
	})
	if got != want {
		t.Errorf("found\n%s\nwant\n%s", got, want)
	}
}
