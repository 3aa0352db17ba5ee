package xds

import (
	"fmt"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/weir-mesh/weir/api/smi"
	"github.com/weir-mesh/weir/translator"
	"github.com/weir-mesh/weir/translator/benchmesh"
	"github.com/weir-mesh/weir/translator/ir"
	"github.com/weir-mesh/weir/watcher"
)

// BenchmarkWeightChange measures one update after a weight change of one
// TrafficSplit in the benchmark mesh of 1,000 services: rebuilding,
// validating, encoding and comparing the configuration of every key, as
// UpdateAt does on every change (translation to the IR not included). The
// keys are those of the scale harness: sidecars of 10 namespaces, with and
// without scoped routes, and the gRPC role.
func BenchmarkWeightChange(b *testing.B) {
	const services = 1000
	store, err := benchmesh.Store(services)
	if err != nil {
		b.Fatal(err)
	}
	irs := make([]*ir.IR, 2)
	for i, weight := range []int{90, 80} {
		split := &smi.TrafficSplit{
			ObjectMeta: metav1.ObjectMeta{Namespace: "ns0", Name: "svc0"},
			Spec: smi.TrafficSplitSpec{Service: "svc0", Backends: []smi.TrafficSplitBackend{
				{Service: "svc0-v1", Weight: weight}, {Service: "svc0-v2", Weight: 100 - weight}}},
		}
		if _, err := store.Upsert("bench", watcher.Object{Kind: watcher.KindTrafficSplit, Namespace: "ns0", Name: "svc0", Value: split}); err != nil {
			b.Fatal(err)
		}
		irs[i] = translator.Translate(store.Snapshot(), translator.Options{}).IR
	}
	for _, scoped := range []bool{false, true} {
		b.Run(fmt.Sprintf("scoped=%t", scoped), func(b *testing.B) {
			s := quietServer(0)
			s.Update(irs[0])
			for i := range 10 {
				n := node(b, fmt.Sprintf("sidecar-%d", i), map[string]any{
					MetaRole: "sidecar", MetaNamespace: fmt.Sprintf("ns%d", i), MetaScopedRoutes: scoped})
				key, err := proxyKey(n, s.opts)
				if err != nil {
					b.Fatal(err)
				}
				s.registerNode(n, key)
			}
			grpc := node(b, "grpc", map[string]any{MetaRole: "grpc"})
			key, err := proxyKey(grpc, s.opts)
			if err != nil {
				b.Fatal(err)
			}
			s.registerNode(grpc, key)
			s.Update(irs[1])
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				s.Update(irs[i%2])
				i++
			}
		})
	}
}
