package envoy

import (
	"reflect"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/testing/protocmp"

	"github.com/weir-mesh/weir/translator/ir"
)

var carryProxies = []Proxy{sidecar("a", 15001), scopedSidecar("a", 15001), scopedSidecar("b", 15001), {Role: GRPC}}

// buildAll builds every proxy of carryProxies from b, validated.
func buildAll(t *testing.T, b *Builder) []*Resources {
	t.Helper()
	out := make([]*Resources, len(carryProxies))
	for i, p := range carryProxies {
		r, err := b.Build(p)
		if err != nil {
			t.Fatal(err)
		}
		if err := b.Validate(r); err != nil {
			t.Fatalf("%s %s: %v", p.Role, p.Namespace, err)
		}
		out[i] = r
	}
	return out
}

// sameSlice reports whether a and b are one list.
func sameSlice[T any](a, b []T) bool {
	return len(a) == len(b) && (len(a) == 0 || &a[0] == &b[0])
}

// TestNextCarriesWhatDidNotChange changes one host's weights and one
// cluster's endpoints, and checks that the next Builder builds what a new
// Builder would, handing out again the messages and lists that did not
// change and new ones for what did.
func TestNextCarriesWhatDidNotChange(t *testing.T) {
	in := meshIR()
	b := NewBuilder(in)
	before := buildAll(t, b)

	next := meshIR()
	next.Hosts[0].Routes[0].Backends[0].Weight, next.Hosts[0].Routes[0].Backends[1].Weight = 50, 50 // api
	next.Clusters[4].Endpoints[0].Address = "10.0.0.9"                                              // web
	nb := b.Next(next)
	after := buildAll(t, nb)

	for i, p := range carryProxies {
		want, err := Build(next, p)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(want, after[i], protocmp.Transform()); diff != "" {
			t.Errorf("%s %s: the next Builder built other resources than a new one (-new +next):\n%s", p.Role, p.Namespace, diff)
		}
	}
	scoped, grpc := 1, 3
	if !sameSlice(before[scoped].Clusters, after[scoped].Clusters) {
		t.Error("clusters: unchanged, yet a new list")
	}
	if sameSlice(before[scoped].Endpoints, after[scoped].Endpoints) {
		t.Error("load assignments: web's changed, yet the same list")
	}
	for i := range after[scoped].Endpoints {
		changed := after[scoped].Endpoints[i].ClusterName == "web"
		if same := before[scoped].Endpoints[i] == after[scoped].Endpoints[i]; same == changed {
			t.Errorf("load assignment %s: carried %v", after[scoped].Endpoints[i].ClusterName, same)
		}
	}
	for _, i := range []int{0, 1, 2} {
		if !sameSlice(before[i].Listeners, after[i].Listeners) {
			t.Errorf("%s: outbound listener not carried", carryProxies[i].Namespace)
		}
	}
	if !sameSlice(before[scoped].Scopes, after[scoped].Scopes) {
		t.Error("scopes: the hosts' names did not change, yet a new list")
	}
	if !sameSlice(before[grpc].Listeners, after[grpc].Listeners) {
		t.Error("gRPC listeners: the hosts' names did not change, yet a new list")
	}
	for i, rc := range after[scoped].Routes {
		changed := strings.HasPrefix(rc.Name, "api.")
		if same := before[scoped].Routes[i] == rc; same == changed {
			t.Errorf("route configuration %s: carried %v", rc.Name, same)
		}
	}
	if before[0].Routes[0] == after[0].Routes[0] {
		t.Error("the route configuration of every host: api's routes changed, yet carried")
	}
	// The next Builder knows the validations of what it carried, and no
	// longer those of what it rebuilt.
	for _, rc := range before[scoped].Routes {
		carried := !strings.HasPrefix(rc.Name, "api.")
		if known := nb.valid.lookup(rc) != nil; known != carried {
			t.Errorf("route configuration %s: carried %v, known to the next Builder %v", rc.Name, carried, known)
		}
		if carried && nb.valid.lookup(rc).validateAll(rc) != nil {
			t.Errorf("route configuration %s: carried as invalid", rc.Name)
		}
	}
	if nb.valid.lookup(before[0].Routes[0]) != nil {
		t.Error("the previous route configuration of every host is still known")
	}
}

// TestNextStillValidates: what the next Builder carries does not hide a
// problem of what it builds.
func TestNextStillValidates(t *testing.T) {
	b := NewBuilder(meshIR())
	buildAll(t, b)
	next := meshIR()
	next.Hosts[1].Routes[0].Backends[0].Cluster = "gone"
	nb := b.Next(next)
	r, err := nb.Build(scopedSidecar("a", 15001))
	if err != nil {
		t.Fatal(err)
	}
	if err := nb.Validate(r); err == nil || !strings.Contains(err.Error(), `cluster "gone" does not exist`) {
		t.Errorf("validate: %v, want the missing cluster", err)
	}
}

// TestNextBuildsAfresh: after the mesh shrank to less than half, or after
// many changes, nothing is carried, so that carried messages do not keep
// the blocks of a larger mesh alive.
func TestNextBuildsAfresh(t *testing.T) {
	big := manyHostsIR(40)
	b := NewBuilder(big)
	before := buildAll(t, b)

	small := manyHostsIR(10)
	after := buildAll(t, b.Next(small))
	if after[1].Routes[0] == before[1].Routes[0] {
		t.Error("the mesh shrank to a quarter, yet a route configuration was carried")
	}

	nb := NewBuilder(big)
	first := buildAll(t, nb)
	for i := range 2 * (len(big.Hosts) + len(big.Clusters)) {
		in := manyHostsIR(40)
		in.Hosts[i%len(in.Hosts)].Routes[0].Name = "changed"
		nb = nb.Next(in)
		buildAll(t, nb)
	}
	last := buildAll(t, nb.Next(manyHostsIR(40)))
	for i, rc := range last[1].Routes {
		if rc == first[1].Routes[i] {
			t.Fatalf("route configuration %s: still the first Builder's after every host changed", rc.Name)
		}
	}
}

// manyHostsIR is n hosts of namespace a, each sending to a cluster of its
// own.
func manyHostsIR(n int) *ir.IR {
	in := &ir.IR{}
	for i := range n {
		svc := "s" + strings.Repeat("x", i)
		in.Hosts = append(in.Hosts, ir.Host{Name: svc + ".a.svc.cluster.local:80", Service: svc, Namespace: "a", Port: 80,
			Routes: []ir.Route{{Name: "r", Backends: []ir.Backend{{Cluster: svc, Weight: 1}}}}})
		in.Clusters = append(in.Clusters, ir.Cluster{Name: svc, Port: 80, Protocol: ir.HTTP1, Endpoints: []ir.Endpoint{{Address: "10.0.0.1", Port: 80}}})
	}
	return in
}

// TestSameNamesKnowsEveryHostField: Next carries a host's scopes and API
// listener when sameNames holds, and everything else of it only when
// Routes and Standby are equal too. A new field of ir.Host must be placed
// on one side or the other.
func TestSameNamesKnowsEveryHostField(t *testing.T) {
	var fields []string
	for f := range reflect.TypeFor[ir.Host]().Fields() {
		fields = append(fields, f.Name)
	}
	want := []string{"Name", "Service", "Namespace", "Port", "ClusterIP", "BareNames", "Routes", "Standby"}
	if diff := cmp.Diff(want, fields); diff != "" {
		t.Errorf("ir.Host's fields changed; update sameNames and Builder.Next (-known +now):\n%s", diff)
	}
}
