package translator_test

import (
	"fmt"
	"testing"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/weir-mesh/weir/api/smi"
	"github.com/weir-mesh/weir/translator"
	"github.com/weir-mesh/weir/translator/envoy"
	"github.com/weir-mesh/weir/watcher"
)

// scaleStore holds n services, each with a root and two versions (three
// endpoints each) and a 90/10 TrafficSplit.
func scaleStore(b *testing.B, n int) *watcher.Store {
	store, err := watcher.NewStore()
	if err != nil {
		b.Fatal(err)
	}
	var objs []watcher.Object
	for i := range n {
		ns, name := fmt.Sprintf("ns%d", i%100), fmt.Sprintf("svc%d", i)
		for v, svc := range []string{name, name + "-v1", name + "-v2"} {
			objs = append(objs,
				watcher.Object{Kind: watcher.KindService, Namespace: ns, Name: svc, Value: benchService(ns, svc, i, v)},
				watcher.Object{Kind: watcher.KindEndpointSlice, Namespace: ns, Name: svc + "-1", Value: benchSlice(ns, svc, i, v)})
		}
		objs = append(objs, watcher.Object{Kind: watcher.KindTrafficSplit, Namespace: ns, Name: name, Value: &smi.TrafficSplit{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
			Spec: smi.TrafficSplitSpec{Service: name, Backends: []smi.TrafficSplitBackend{
				{Service: name + "-v1", Weight: 90}, {Service: name + "-v2", Weight: 10}}},
		}})
	}
	if _, err := store.ReplaceSource("bench", objs); err != nil {
		b.Fatal(err)
	}
	return store
}

func benchService(ns, name string, i, v int) *corev1.Service {
	return &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: corev1.ServiceSpec{
			ClusterIP: fmt.Sprintf("10.%d.%d.%d", 96+v, i/256%256, i%256),
			Ports:     []corev1.ServicePort{{Name: "http", Port: 8080}},
		},
	}
}

func benchSlice(ns, svc string, i, v int) *discoveryv1.EndpointSlice {
	port, portName := int32(8080), "http"
	s := &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Namespace: ns, Name: svc + "-1", Labels: map[string]string{discoveryv1.LabelServiceName: svc}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Ports:       []discoveryv1.EndpointPort{{Name: &portName, Port: &port}},
	}
	for e := range 3 {
		s.Endpoints = append(s.Endpoints, discoveryv1.Endpoint{Addresses: []string{fmt.Sprintf("10.%d.%d.%d", v+1, i/64%256, (i%64)*4+e)}})
	}
	return s
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
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
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
		})
	}
}

// BenchmarkTranslateIR measures the front-ends alone at 10,000 services: the
// store to the IR and status, without Envoy resources.
func BenchmarkTranslateIR(b *testing.B) {
	store := scaleStore(b, 10000)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		res := translator.Translate(store.Snapshot(), translator.Options{})
		if len(res.IR.Clusters) != 30000 {
			b.Fatalf("%d clusters", len(res.IR.Clusters))
		}
	}
}

// BenchmarkValidate measures validating the resources of both mesh roles at
// 10,000 services: Validate, and the Builder's Validate on resources it has
// validated once already (another proxy's, or an earlier call's).
func BenchmarkValidate(b *testing.B) {
	res := translator.Translate(scaleStore(b, 10000).Snapshot(), translator.Options{})
	builder := envoy.NewBuilder(res.IR)
	var all []*envoy.Resources
	for _, p := range benchProxies {
		r, err := builder.Build(p)
		if err != nil {
			b.Fatal(err)
		}
		if err := builder.Validate(r); err != nil {
			b.Fatal(err)
		}
		all = append(all, r)
	}
	for name, validate := range map[string]func(*envoy.Resources) error{"Validate": envoy.Validate, "Builder.Validate": builder.Validate} {
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				for _, r := range all {
					if err := validate(r); err != nil {
						b.Fatal(err)
					}
				}
			}
		})
	}
}
