package kube

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/weir-mesh/weir/translator/ir"
)

// objects is an in-memory Objects.
type objects struct {
	services []*corev1.Service
	slices   []*discoveryv1.EndpointSlice
	pods     []*corev1.Pod
}

func (o objects) ServicesWithSlices() ([]*corev1.Service, [][]*discoveryv1.EndpointSlice) {
	slices := make([][]*discoveryv1.EndpointSlice, len(o.services))
	for i, svc := range o.services {
		for _, s := range o.slices {
			if s.Namespace == svc.Namespace && s.Labels[discoveryv1.LabelServiceName] == svc.Name {
				slices[i] = append(slices[i], s)
			}
		}
	}
	return o.services, slices
}

func (o objects) PodsIn(namespace string) []*corev1.Pod {
	var out []*corev1.Pod
	for _, p := range o.pods {
		if p.Namespace == namespace {
			out = append(out, p)
		}
	}
	return out
}

func (o objects) Pod(namespace, name string) *corev1.Pod {
	for _, p := range o.pods {
		if p.Namespace == namespace && p.Name == name {
			return p
		}
	}
	return nil
}

func service(name string, selector map[string]string) *corev1.Service {
	return &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: name},
		Spec: corev1.ServiceSpec{Selector: selector, ClusterIP: "10.96.0.10",
			Ports: []corev1.ServicePort{{Name: "http", Port: 80}, {Name: "metrics", Port: 9090}}},
	}
}

// pod is a ready Pod of micro-api at 10.0.0.<i>, with labels.
func pod(i int, labels map[string]string, ready bool) *corev1.Pod {
	status := corev1.ConditionTrue
	if !ready {
		status = corev1.ConditionFalse
	}
	all := map[string]string{"app": "micro-api"}
	for k, v := range labels {
		all[k] = v
	}
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: fmt.Sprintf("micro-api-%d", i), Labels: all},
		Status: corev1.PodStatus{Phase: corev1.PodRunning, PodIP: fmt.Sprintf("10.0.0.%d", i),
			Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: status}}},
	}
}

// sliceOf lists pods as the endpointslice controller would, with both ports.
func sliceOf(svc string, pods ...*corev1.Pod) *discoveryv1.EndpointSlice {
	http, metrics := "http", "metrics"
	p80, p9090 := int32(8080), int32(9090)
	s := &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Namespace: "default", Name: svc + "-abcde", Labels: map[string]string{discoveryv1.LabelServiceName: svc}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Ports:       []discoveryv1.EndpointPort{{Name: &http, Port: &p80}, {Name: &metrics, Port: &p9090}},
	}
	for _, p := range pods {
		ready := podReady(p)
		s.Endpoints = append(s.Endpoints, discoveryv1.Endpoint{
			Addresses:  []string{p.Status.PodIP},
			Conditions: discoveryv1.EndpointConditions{Ready: &ready},
			TargetRef:  &corev1.ObjectReference{Kind: "Pod", Namespace: p.Namespace, Name: p.Name},
		})
	}
	return s
}

// pausedRollout is a Deployment paused mid-way: three Pods of the old
// template, two of the new one labelled track: canary.
func pausedRollout(oldLabels map[string]string) []*corev1.Pod {
	return []*corev1.Pod{
		pod(1, oldLabels, true), pod(2, oldLabels, true), pod(3, oldLabels, true),
		pod(4, map[string]string{"track": "canary", "version": "v2"}, true),
		pod(5, map[string]string{"track": "canary", "version": "v2"}, true),
	}
}

func TestServiceVersions(t *testing.T) {
	stable := map[string]string{"track": "stable", "version": "v1"}
	for name, tc := range map[string]struct {
		objs   func(pods []*corev1.Pod) objects
		pods   []*corev1.Pod
		labels []string
		want   []string
	}{
		"paused rollout, track then version": {
			objs:   withSlices,
			pods:   pausedRollout(stable),
			labels: []string{"track", "version"},
			want:   []string{"service default/micro-api: canary 2 ready, stable 3 ready"},
		},
		"paused rollout, old pods without track": {
			objs:   withSlices,
			pods:   pausedRollout(nil),
			labels: []string{"track"},
			want:   []string{"service default/micro-api: canary 2 ready, unversioned 3 ready"},
		},
		"second label used when the first is missing": {
			objs:   withSlices,
			pods:   pausedRollout(map[string]string{"version": "v1"}),
			labels: []string{"track", "version"},
			want:   []string{"service default/micro-api: canary 2 ready, v1 3 ready"},
		},
		"default label is version": {
			objs: withSlices,
			pods: pausedRollout(stable),
			want: []string{"service default/micro-api: v1 3 ready, v2 2 ready"},
		},
		"unready canary leaves the count": {
			objs: withSlices,
			pods: append(pausedRollout(stable)[:4],
				pod(5, map[string]string{"track": "canary"}, false)),
			labels: []string{"track"},
			want:   []string{"service default/micro-api: canary 1 ready, stable 3 ready"},
		},
		"pod fallback without slices": {
			objs:   withoutSlices,
			pods:   pausedRollout(stable),
			labels: []string{"track"},
			want:   []string{"service default/micro-api: canary 2 ready, stable 3 ready"},
		},
		"endpoint whose Pod is unknown is unversioned": {
			objs: func(pods []*corev1.Pod) objects {
				o := withSlices(pods)
				o.pods = o.pods[1:]
				return o
			},
			pods:   pausedRollout(stable),
			labels: []string{"track"},
			want:   []string{"service default/micro-api: canary 2 ready, stable 2 ready, unversioned 1 ready"},
		},
		"targetRef without namespace is the slice's": {
			objs: func(pods []*corev1.Pod) objects {
				o := withSlices(pods)
				for i := range o.slices[0].Endpoints {
					o.slices[0].Endpoints[i].TargetRef.Namespace = ""
				}
				return o
			},
			pods:   pausedRollout(stable),
			labels: []string{"track"},
			want:   []string{"service default/micro-api: canary 2 ready, stable 3 ready"},
		},
		"no ready endpoint": {
			objs: withSlices,
			pods: []*corev1.Pod{pod(1, stable, false)},
			want: []string{"service default/micro-api: none ready"},
		},
	} {
		t.Run(name, func(t *testing.T) {
			idx := Build(tc.objs(tc.pods), tc.labels)
			var got []string
			for _, sv := range irOf(idx).ServiceVersions() {
				got = append(got, sv.String())
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("versions (-want +got):\n%s", diff)
			}
		})
	}
}

func withSlices(pods []*corev1.Pod) objects {
	return objects{
		services: []*corev1.Service{service("micro-api", map[string]string{"app": "micro-api"})},
		slices:   []*discoveryv1.EndpointSlice{sliceOf("micro-api", pods...)},
		pods:     pods,
	}
}

func withoutSlices(pods []*corev1.Pod) objects {
	return objects{services: []*corev1.Service{service("micro-api", map[string]string{"app": "micro-api"})}, pods: pods}
}

func irOf(idx *Index) *ir.IR { return &ir.IR{Hosts: idx.Hosts, Clusters: idx.SortedClusters()} }

// TestEndpointVersion checks that every port's endpoints carry the version,
// which later front-ends (Istio subsets) select on.
func TestEndpointVersion(t *testing.T) {
	pods := pausedRollout(map[string]string{"track": "stable"})
	idx := Build(withSlices(pods), []string{"track"})
	for _, c := range idx.SortedClusters() {
		got := map[string]string{}
		for _, ep := range c.Endpoints {
			got[ep.Address] = ep.Version
		}
		want := map[string]string{"10.0.0.1": "stable", "10.0.0.2": "stable", "10.0.0.3": "stable", "10.0.0.4": "canary", "10.0.0.5": "canary"}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("%s versions (-want +got):\n%s", c.Name, diff)
		}
	}
}

func TestSortHosts(t *testing.T) {
	for n := range 50 {
		hosts := make([]ir.Host, n)
		for i, j := range rand.Perm(n) {
			hosts[i] = ir.Host{Name: fmt.Sprintf("h%03d", j), Port: uint32(j)}
		}
		sortHosts(hosts)
		for i, h := range hosts {
			if h.Name != fmt.Sprintf("h%03d", i) || h.Port != uint32(i) {
				t.Fatalf("%d hosts: position %d holds %+v", n, i, h)
			}
		}
	}
}

// TestSharedPortNumber checks a Service with a TCP and a UDP port of one
// number: both ports are hosts, and their one cluster is the last port's,
// in SortedClusters and Clusters alike.
func TestSharedPortNumber(t *testing.T) {
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "dns"},
		Spec: corev1.ServiceSpec{Ports: []corev1.ServicePort{
			{Name: "dns-tcp", Port: 53, Protocol: corev1.ProtocolTCP},
			{Name: "grpc", Port: 53, Protocol: corev1.ProtocolUDP},
			{Name: "metrics", Port: 9153},
		}},
	}
	idx := Build(objects{services: []*corev1.Service{svc}}, nil)
	if len(idx.Hosts) != 3 {
		t.Errorf("%d hosts, want 3", len(idx.Hosts))
	}
	var got []string
	for _, c := range idx.SortedClusters() {
		got = append(got, fmt.Sprintf("%s %v", c.Name, c.Protocol))
	}
	want := []string{
		fmt.Sprintf("%s %v", ClusterName("default", "dns", 53), ir.HTTP2),
		fmt.Sprintf("%s %v", ClusterName("default", "dns", 9153), ir.HTTP1),
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("clusters (-want +got):\n%s", diff)
	}
	if c := idx.Clusters[ClusterName("default", "dns", 53)]; c == nil || c.Protocol != ir.HTTP2 {
		t.Errorf("Clusters holds %+v for port 53, want the grpc port's", c)
	}
}
