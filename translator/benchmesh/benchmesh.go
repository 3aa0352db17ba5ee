// Package benchmesh generates the mesh weir's benchmarks translate: n
// services, each a root and two versions with three endpoints, and a 90/10
// TrafficSplit, spread over 100 namespaces.
package benchmesh

import (
	"fmt"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/weir-mesh/weir/api/smi"
	"github.com/weir-mesh/weir/watcher"
)

// Store returns a store holding the mesh of n services.
func Store(n int) (*watcher.Store, error) {
	store, err := watcher.NewStore()
	if err != nil {
		return nil, err
	}
	if _, err := store.ReplaceSource("bench", Objects(n)); err != nil {
		return nil, err
	}
	return store, nil
}

// Objects returns the mesh of n services as store objects.
func Objects(n int) []watcher.Object {
	objs := make([]watcher.Object, 0, 7*n)
	for i := range n {
		ns, name := fmt.Sprintf("ns%d", i%100), fmt.Sprintf("svc%d", i)
		for v, svc := range []string{name, name + "-v1", name + "-v2"} {
			objs = append(objs,
				watcher.Object{Kind: watcher.KindService, Namespace: ns, Name: svc, Value: service(ns, svc, i, v)},
				watcher.Object{Kind: watcher.KindEndpointSlice, Namespace: ns, Name: svc + "-1", Value: slice(ns, svc, i, v)})
		}
		objs = append(objs, watcher.Object{Kind: watcher.KindTrafficSplit, Namespace: ns, Name: name, Value: &smi.TrafficSplit{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
			Spec: smi.TrafficSplitSpec{Service: name, Backends: []smi.TrafficSplitBackend{
				{Service: name + "-v1", Weight: 90}, {Service: name + "-v2", Weight: 10}}},
		}})
	}
	return objs
}

// service is Service ns/name, the v-th of service i (0: the root).
func service(ns, name string, i, v int) *corev1.Service {
	return &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: corev1.ServiceSpec{
			ClusterIP: fmt.Sprintf("10.%d.%d.%d", 96+v, i/256%256, i%256),
			Ports:     []corev1.ServicePort{{Name: "http", Port: 8080}},
		},
	}
}

// slice is the EndpointSlice of Service ns/svc, the v-th of service i:
// three endpoints on port 8080.
func slice(ns, svc string, i, v int) *discoveryv1.EndpointSlice {
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
