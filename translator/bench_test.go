package translator_test

import (
	"fmt"
	"testing"

	"github.com/weir-mesh/weir/translator"
	"github.com/weir-mesh/weir/translator/benchmesh"
	"github.com/weir-mesh/weir/translator/envoy"
	"github.com/weir-mesh/weir/watcher"
)

// scaleStore holds the benchmark mesh of n services (see benchmesh).
func scaleStore(b *testing.B, n int) *watcher.Store {
	store, err := benchmesh.Store(n)
	if err != nil {
		b.Fatal(err)
	}
	return store
}

// benchProxies are the mesh roles: every cluster of the scale store is
// theirs, unlike a gateway's (it has no servers).
var benchProxies = []envoy.Proxy{
	{Role: envoy.Sidecar, Namespace: "default", OutboundAddress: "127.0.0.1", OutboundPort: envoy.DefaultOutboundPort},
	{Role: envoy.GRPC},
}

// BenchmarkTranslate measures a full translation to the IR and the Envoy
// resources of both mesh roles, from one Builder as the server does.
func BenchmarkTranslate(b *testing.B) {
	for _, n := range []int{100, 1000, 10000} {
		b.Run(fmt.Sprintf("services=%d", n), func(b *testing.B) {
			store := scaleStore(b, n)
			warmUp(func() { translateMesh(b, store, n) })
			b.ReportAllocs()
			for b.Loop() {
				translateMesh(b, store, n)
			}
		})
	}
}

// translateMesh translates store, the mesh of n services, once: the IR, then
// the Envoy resources of both mesh roles from one Builder, as the server
// does on every change.
func translateMesh(b *testing.B, store *watcher.Store, n int) {
	res := translator.Translate(store.Snapshot(), translator.Options{})
	builder := envoy.NewBuilder(res.IR)
	for _, p := range benchProxies {
		r, err := builder.Build(p)
		if err != nil {
			b.Fatal(err)
		}
		if len(r.Clusters) != 2*n {
			b.Fatalf("%d clusters, want %d", len(r.Clusters), 2*n)
		}
	}
}

// warmUp runs translate twice before the timer starts. The first
// translations grow the heap to its working size and fault in its fresh
// pages (at 10,000 services, two translations of some 600 ms instead of
// some 400 ms, ~120,000 minor page faults); a running server pays that once,
// not on every change.
func warmUp(translate func()) {
	for range 2 {
		translate()
	}
}

// BenchmarkTranslateIR measures the front-ends alone at 10,000 services: the
// store to the IR and status, without Envoy resources.
func BenchmarkTranslateIR(b *testing.B) {
	store := scaleStore(b, 10000)
	translate := func() {
		res := translator.Translate(store.Snapshot(), translator.Options{})
		if len(res.IR.Clusters) != 30000 {
			b.Fatalf("%d clusters", len(res.IR.Clusters))
		}
	}
	warmUp(translate)
	b.ReportAllocs()
	for b.Loop() {
		translate()
	}
}

// BenchmarkValidate measures validating the resources of both mesh roles at
// 10,000 services: Validate, and the Builder's Validate on resources it has
// validated once already (another proxy's, or an earlier call's).
func BenchmarkValidate(b *testing.B) {
	res := translator.Translate(scaleStore(b, 10000).Snapshot(), translator.Options{})
	// build returns a new Builder's resources for every benchmark proxy:
	// a Builder validates each message once, so each timed validation
	// needs one that has validated nothing yet.
	build := func() (*envoy.Builder, []*envoy.Resources) {
		builder := envoy.NewBuilder(res.IR)
		var all []*envoy.Resources
		for _, p := range benchProxies {
			r, err := builder.Build(p)
			if err != nil {
				b.Fatal(err)
			}
			all = append(all, r)
		}
		return builder, all
	}
	for _, name := range []string{"Validate", "Builder.Validate"} {
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				builder, all := build()
				validate := builder.Validate
				if name == "Validate" {
					validate = envoy.Validate
				}
				b.StartTimer()
				for _, r := range all {
					if err := validate(r); err != nil {
						b.Fatal(err)
					}
				}
			}
		})
	}
}
