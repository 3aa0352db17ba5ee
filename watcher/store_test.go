package watcher

import (
	"fmt"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/weir-mesh/weir/api/smi"
)

func svcObj(ns, name string, port int32) Object {
	return Object{Kind: KindService, Namespace: ns, Name: name, Value: &corev1.Service{
		ObjectMeta: meta(ns, name),
		Spec:       corev1.ServiceSpec{Ports: []corev1.ServicePort{{Port: port}}},
	}}
}

func sliceObj(ns, name, service string) Object {
	return Object{Kind: KindEndpointSlice, Namespace: ns, Name: name, Value: &discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: map[string]string{discoveryv1.LabelServiceName: service}},
	}}
}

func podObj(ns, name string) Object {
	return Object{Kind: KindPod, Namespace: ns, Name: name, Value: &corev1.Pod{ObjectMeta: meta(ns, name)}}
}

func splitObj(ns, name, root string, weights ...int) Object {
	ts := &smi.TrafficSplit{ObjectMeta: meta(ns, name), Spec: smi.TrafficSplitSpec{Service: root}}
	for i, w := range weights {
		ts.Spec.Backends = append(ts.Spec.Backends, smi.TrafficSplitBackend{Service: fmt.Sprintf("%s-v%d", root, i+1), Weight: w})
	}
	return Object{Kind: KindTrafficSplit, Namespace: ns, Name: name, Value: ts}
}

func newStore(t *testing.T) *Store {
	t.Helper()
	s, err := NewStore()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func replace(t *testing.T, s *Store, source string, objs ...Object) bool {
	t.Helper()
	changed, err := s.ReplaceSource(source, objs)
	if err != nil {
		t.Fatalf("ReplaceSource(%s): %v", source, err)
	}
	return changed
}

// services lists the stored Services as "namespace/name:port source".
func services(s *Store) []string {
	sources := s.Sources(KindService)
	var out []string
	for _, svc := range s.Snapshot().Services() {
		key := svc.Namespace + "/" + svc.Name
		out = append(out, fmt.Sprintf("%s:%d %s", key, svc.Spec.Ports[0].Port, sources[key]))
	}
	return out
}

func TestReplaceSource(t *testing.T) {
	tests := map[string]struct {
		before  map[string][]Object // source -> objects, applied in sorted source order
		source  string
		objs    []Object
		changed bool
		want    []string
	}{
		"add": {
			source: "a.yaml", objs: []Object{svcObj("ns", "web", 80)}, changed: true,
			want: []string{"ns/web:80 a.yaml"},
		},
		"update": {
			before: map[string][]Object{"a.yaml": {svcObj("ns", "web", 80)}},
			source: "a.yaml", objs: []Object{svcObj("ns", "web", 81)}, changed: true,
			want: []string{"ns/web:81 a.yaml"},
		},
		"remove one": {
			before: map[string][]Object{"a.yaml": {svcObj("ns", "api", 80), svcObj("ns", "web", 80)}},
			source: "a.yaml", objs: []Object{svcObj("ns", "web", 80)}, changed: true,
			want: []string{"ns/web:80 a.yaml"},
		},
		"remove all": {
			before: map[string][]Object{"a.yaml": {svcObj("ns", "web", 80)}, "b.yaml": {svcObj("ns", "api", 80)}},
			source: "a.yaml", changed: true,
			want: []string{"ns/api:80 b.yaml"},
		},
		"no change": {
			before: map[string][]Object{"a.yaml": {svcObj("ns", "web", 80)}},
			source: "a.yaml", objs: []Object{svcObj("ns", "web", 80)},
			want: []string{"ns/web:80 a.yaml"},
		},
		"unknown source, nothing to remove": {
			before: map[string][]Object{"a.yaml": {svcObj("ns", "web", 80)}},
			source: "b.yaml",
			want:   []string{"ns/web:80 a.yaml"},
		},
		"take over from another source": {
			before: map[string][]Object{"a.yaml": {svcObj("ns", "web", 80)}},
			source: "b.yaml", objs: []Object{svcObj("ns", "web", 80)}, changed: true,
			want: []string{"ns/web:80 b.yaml"},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			s := newStore(t)
			for _, src := range sortedKeys(tc.before) {
				replace(t, s, src, tc.before[src]...)
			}
			drain(s)
			if got := replace(t, s, tc.source, tc.objs...); got != tc.changed {
				t.Errorf("changed = %v, want %v", got, tc.changed)
			}
			if got := signalled(s); got != tc.changed {
				t.Errorf("Changed() signalled = %v, want %v", got, tc.changed)
			}
			if diff := cmp.Diff(tc.want, services(s)); diff != "" {
				t.Errorf("services (-want +got):\n%s", diff)
			}
		})
	}
}

func drain(s *Store) {
	select {
	case <-s.Changed():
	default:
	}
}

func signalled(s *Store) bool {
	select {
	case <-s.Changed():
		return true
	default:
		return false
	}
}

func TestHoldSignalsOnceAtRelease(t *testing.T) {
	s := newStore(t)
	release := s.Hold()
	replace(t, s, "a.yaml", svcObj("ns", "web", 80))
	replace(t, s, "b.yaml", svcObj("ns", "api", 80))
	inner := s.Hold()
	inner()
	if signalled(s) {
		t.Fatal("the store signalled a change while a Hold was not released")
	}
	release()
	release() // a second call does nothing
	if !signalled(s) {
		t.Fatal("no signal after the last Hold was released")
	}
	empty := s.Hold()
	empty()
	if signalled(s) {
		t.Error("a Hold with no write in it signalled a change")
	}
	replace(t, s, "a.yaml", svcObj("ns", "web", 81))
	if !signalled(s) {
		t.Error("a write with no Hold did not signal")
	}
}

func TestSnapshotIsolation(t *testing.T) {
	s := newStore(t)
	replace(t, s, "a.yaml", svcObj("ns", "web", 80))
	before := s.Snapshot()
	replace(t, s, "a.yaml", svcObj("ns", "web", 81), svcObj("ns", "api", 80))
	if _, err := s.Delete(KindService, "ns", "web"); err != nil {
		t.Fatal(err)
	}
	if got := len(before.Services()); got != 1 {
		t.Errorf("old snapshot has %d Services, want 1", got)
	}
	if got := before.Service("ns", "web"); got == nil || got.Spec.Ports[0].Port != 80 {
		t.Errorf("old snapshot ns/web = %v, want port 80", got)
	}
	if got := s.Snapshot().Service("ns", "web"); got != nil {
		t.Errorf("new snapshot still has deleted ns/web")
	}
}

func TestSnapshotIndexes(t *testing.T) {
	s := newStore(t)
	replace(t, s, "a.yaml",
		sliceObj("ns", "web-2", "web"), sliceObj("ns", "web-1", "web"), sliceObj("ns", "api-1", "api"), sliceObj("other", "web-1", "web"),
		sliceObj("ns", "web2-1", "web2"), sliceObj("ns", "a-web-3", "web"), sliceObj("ns", "unlabelled", ""),
		splitObj("ns", "web-split", "web", 90, 10), splitObj("ns", "api-split", "api", 50, 50), splitObj("other", "web-split", "web"),
		podObj("ns", "web-a"), podObj("ns", "web-b"), podObj("ns2", "web-c"), podObj("other", "web-d"),
	)
	sn := s.Snapshot()
	names := func(objs []metav1.Object) []string {
		var out []string
		for _, o := range objs {
			out = append(out, o.GetNamespace()+"/"+o.GetName())
		}
		return out
	}
	tests := map[string]struct {
		got  []metav1.Object
		want []string
	}{
		"EndpointSlicesFor":          {got: asMeta(sn.EndpointSlicesFor("ns", "web")), want: []string{"ns/a-web-3", "ns/web-1", "ns/web-2"}},
		"EndpointSlicesFor, longer":  {got: asMeta(sn.EndpointSlicesFor("ns", "web2")), want: []string{"ns/web2-1"}},
		"EndpointSlicesFor, other":   {got: asMeta(sn.EndpointSlicesFor("other", "web")), want: []string{"other/web-1"}},
		"EndpointSlicesFor, none":    {got: asMeta(sn.EndpointSlicesFor("ns", "db"))},
		"EndpointSlicesFor, no name": {got: asMeta(sn.EndpointSlicesFor("ns", ""))},
		"TrafficSplitsFor":           {got: asMeta(sn.TrafficSplitsFor("ns", "web")), want: []string{"ns/web-split"}},
		"TrafficSplitsFor, other ns": {got: asMeta(sn.TrafficSplitsFor("other", "web")), want: []string{"other/web-split"}},
		"PodsIn":                     {got: asMeta(sn.PodsIn("ns")), want: []string{"ns/web-a", "ns/web-b"}},
		"PodsIn, no prefix leak":     {got: asMeta(sn.PodsIn("ns2")), want: []string{"ns2/web-c"}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, names(tc.got)); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

// TestSnapshotServicesWithSlices checks that each Service gets its own
// EndpointSlices, also where keys of other namespaces and Services sort
// between them ("a-b/web" before "a/web", "web-x" before "web2").
func TestSnapshotServicesWithSlices(t *testing.T) {
	s := newStore(t)
	replace(t, s, "a.yaml",
		svcObj("a", "web", 80), svcObj("a", "web-x", 80), svcObj("a", "web2", 80), svcObj("a", "db", 80), svcObj("a-b", "web", 80),
		sliceObj("a", "web-2", "web"), sliceObj("a", "web-1", "web"), sliceObj("a", "web-x-1", "web-x"), sliceObj("a", "web2-1", "web2"),
		sliceObj("a", "ghost-1", "ghost"), sliceObj("a-b", "web-1", "web"), sliceObj("a", "unlabelled", ""),
	)
	sn := s.Snapshot()
	services, slices := sn.ServicesWithSlices()
	got := map[string][]string{}
	for i, svc := range services {
		key := svc.Namespace + "/" + svc.Name
		for _, o := range asMeta(slices[i]) {
			got[key] = append(got[key], o.GetName())
		}
		if diff := cmp.Diff(sn.EndpointSlicesFor(svc.Namespace, svc.Name), slices[i]); diff != "" {
			t.Errorf("%s: ServicesWithSlices and EndpointSlicesFor differ (-For +With):\n%s", key, diff)
		}
	}
	want := map[string][]string{"a/web": {"web-1", "web-2"}, "a/web-x": {"web-x-1"}, "a/web2": {"web2-1"}, "a-b/web": {"web-1"}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("slices by Service (-want +got):\n%s", diff)
	}
	if len(services) != 5 {
		t.Errorf("%d Services, want 5", len(services))
	}
}

func asMeta[T any, P interface {
	*T
	metav1.Object
}](objs []*T) []metav1.Object {
	out := make([]metav1.Object, len(objs))
	for i, o := range objs {
		out[i] = P(o)
	}
	return out
}

// TestSnapshotEndpointSlicesLater checks that a snapshot's EndpointSlices are
// those of its instant even when first asked for after later writes, and
// that concurrent first calls agree.
func TestSnapshotEndpointSlicesLater(t *testing.T) {
	s := newStore(t)
	replace(t, s, "a.yaml", sliceObj("ns", "web-1", "web"))
	sn := s.Snapshot()
	replace(t, s, "a.yaml", sliceObj("ns", "web-1", "web"), sliceObj("ns", "web-2", "web"))
	counts := make(chan int, 4)
	for range cap(counts) {
		go func() { counts <- len(sn.EndpointSlicesFor("ns", "web")) }()
	}
	for range cap(counts) {
		if n := <-counts; n != 1 {
			t.Errorf("old snapshot has %d slices for ns/web, want 1", n)
		}
	}
	if n := len(s.Snapshot().EndpointSlicesFor("ns", "web")); n != 2 {
		t.Errorf("new snapshot has %d slices for ns/web, want 2", n)
	}
}
