package main

import (
	"encoding/json"
	"fmt"
	"os"
	"sort"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/weir-mesh/weir/api/smi"
	"github.com/weir-mesh/weir/translator"
	"github.com/weir-mesh/weir/translator/envoy"
	"github.com/weir-mesh/weir/watcher"
)

// translateResult is what -translate prints: weir's translation core
// driven as a library, as the Envoy Gateway peer drives its own.
type translateResult struct {
	Services   int     `json:"services"`
	Iterations int     `json:"iterations"`
	MedianMS   float64 `json:"median_ms"`
	RSSBytes   int64   `json:"rss_bytes"`
	HWMBytes   int64   `json:"hwm_bytes"`
}

// translateOnly stores n services (a root and two versions of three
// endpoints, and a 90/10 TrafficSplit, as the translator benchmark does),
// times full translations (the IR, and the Envoy resources of a sidecar and
// of a proxyless gRPC client) and prints the median and this process's RSS.
func translateOnly(n, iterations int) error {
	store, err := scaleStore(n)
	if err != nil {
		return err
	}
	proxies := []envoy.Proxy{
		{Role: envoy.Sidecar, Namespace: "default", OutboundAddress: "127.0.0.1", OutboundPort: envoy.DefaultOutboundPort},
		{Role: envoy.GRPC},
	}
	var times []time.Duration
	for i := range iterations + 1 {
		start := time.Now()
		res := translator.Translate(store.Snapshot(), translator.Options{})
		b := envoy.NewBuilder(res.IR) // as weir serve builds every proxy key of a translation
		for _, p := range proxies {
			r, err := b.Build(p)
			if err != nil {
				return err
			}
			if len(r.Clusters) != 2*n {
				return fmt.Errorf("%d clusters for %d services", len(r.Clusters), n)
			}
		}
		if i > 0 {
			times = append(times, time.Since(start))
		}
	}
	sort.Slice(times, func(i, j int) bool { return times[i] < times[j] })
	st, err := readProc(os.Getpid())
	if err != nil {
		return err
	}
	return json.NewEncoder(os.Stdout).Encode(translateResult{Services: n, Iterations: iterations,
		MedianMS: float64(times[len(times)/2].Microseconds()) / 1000, RSSBytes: st.rssBytes, HWMBytes: st.hwmBytes})
}

func scaleStore(n int) (*watcher.Store, error) {
	store, err := watcher.NewStore()
	if err != nil {
		return nil, err
	}
	var objs []watcher.Object
	for i := range n {
		ns, name := fmt.Sprintf("ns%d", i%100), fmt.Sprintf("svc%d", i)
		for v, svc := range []string{name, name + "-v1", name + "-v2"} {
			objs = append(objs,
				watcher.Object{Kind: watcher.KindService, Namespace: ns, Name: svc, Value: &corev1.Service{
					ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: svc},
					Spec: corev1.ServiceSpec{
						ClusterIP: fmt.Sprintf("10.%d.%d.%d", 96+v, i/256%256, i%256),
						Ports:     []corev1.ServicePort{{Name: "http", Port: 8080}},
					},
				}},
				watcher.Object{Kind: watcher.KindEndpointSlice, Namespace: ns, Name: svc + "-1", Value: benchSlice(ns, svc, i, v)})
		}
		objs = append(objs, watcher.Object{Kind: watcher.KindTrafficSplit, Namespace: ns, Name: name, Value: &smi.TrafficSplit{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
			Spec: smi.TrafficSplitSpec{Service: name, Backends: []smi.TrafficSplitBackend{
				{Service: name + "-v1", Weight: 90}, {Service: name + "-v2", Weight: 10}}},
		}})
	}
	if _, err := store.ReplaceSource("bench", objs); err != nil {
		return nil, err
	}
	return store, nil
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
