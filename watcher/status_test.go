package watcher

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	runtimeschema "k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	dynamicfake "k8s.io/client-go/dynamic/fake"
	kubefake "k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	"github.com/weir-mesh/weir/api/smi"
	"github.com/weir-mesh/weir/translator/status"
)

var (
	splitGVR   = runtimeschema.GroupVersionResource{Group: smi.SplitGroup, Version: "v1alpha4", Resource: "trafficsplits"}
	groupGVR   = runtimeschema.GroupVersionResource{Group: smi.SpecsGroup, Version: "v1alpha4", Resource: "httproutegroups"}
	ingressGVR = runtimeschema.GroupVersionResource{Group: "networking.k8s.io", Version: "v1", Resource: "ingresses"}
)

// statusFixture is a StatusWriter on fake clients with a settable clock.
type statusFixture struct {
	w    *StatusWriter
	dyn  *dynamicfake.FakeDynamicClient
	core *kubefake.Clientset
	now  time.Time
}

func newStatusFixture(t *testing.T, objs ...runtime.Object) *statusFixture {
	t.Helper()
	dyn := dynamicfake.NewSimpleDynamicClientWithCustomListKinds(runtime.NewScheme(), map[runtimeschema.GroupVersionResource]string{
		splitGVR: "TrafficSplitList", groupGVR: "HTTPRouteGroupList", ingressGVR: "IngressList",
	}, objs...)
	f := &statusFixture{dyn: dyn, core: kubefake.NewClientset(), now: time.Date(2026, 5, 1, 10, 0, 0, 0, time.UTC)}
	f.w = f.newWriter()
	return f
}

// newWriter is a fresh StatusWriter on the same clients, as after a restart.
func (f *statusFixture) newWriter() *StatusWriter {
	w := NewStatusWriter(f.dyn, f.core, slog.New(slog.NewTextHandler(io.Discard, nil)))
	w.now = func() time.Time { return f.now }
	w.Register("Ingress", StatusResource{Resource: ingressGVR, HasStatus: false})
	return w
}

func liveObject(apiVersion, kind, name string, generation int64) *unstructured.Unstructured {
	u := &unstructured.Unstructured{}
	u.SetAPIVersion(apiVersion)
	u.SetKind(kind)
	u.SetNamespace("shop")
	u.SetName(name)
	u.SetGeneration(generation)
	u.SetUID(types.UID("uid-" + name))
	return u
}

func liveSplit(name string, generation int64) *unstructured.Unstructured {
	return liveObject(smi.SplitGroup+"/v1alpha4", smi.TrafficSplitKind, name, generation)
}

func (f *statusFixture) conditions(t *testing.T, gvr runtimeschema.GroupVersionResource, name string) []metav1.Condition {
	t.Helper()
	u, err := f.dyn.Resource(gvr).Namespace("shop").Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return liveConditions(u)
}

// countActions counts the fake dynamic client's actions of verb since the
// last clear.
func (f *statusFixture) countActions(verb string) int {
	n := 0
	for _, a := range f.dyn.Actions() {
		if a.GetVerb() == verb {
			n++
		}
	}
	return n
}

func splitStatus(name string, generation int64, conds ...status.Condition) status.Object {
	return status.Object{Kind: smi.TrafficSplitKind, Namespace: "shop", Name: name, Generation: generation, Conditions: conds}
}

var (
	accepted  = status.Condition{Type: status.Accepted, Status: status.True, Reason: "Accepted", Message: "2 backends"}
	badWeight = status.Condition{Type: status.Accepted, Status: status.False, Reason: "InvalidWeight",
		Message: "spec.backends[0].weight: -5 is negative; weights must be >= 0"}
	resolved = status.Condition{Type: status.ResolvedRefs, Status: status.True, Reason: "ResolvedRefs", Message: "all refs resolved"}
)

func TestStatusWriteConditions(t *testing.T) {
	f := newStatusFixture(t, liveSplit("split", 3),
		liveObject(smi.SpecsGroup+"/v1alpha4", smi.HTTPRouteGroupKind, "routes", 2))
	objs := []status.Object{
		splitStatus("split", 3, resolved, badWeight),
		{Kind: smi.HTTPRouteGroupKind, Namespace: "shop", Name: "routes", Generation: 2, Conditions: []status.Condition{accepted}},
	}
	if err := f.w.Write(context.Background(), objs); err != nil {
		t.Fatal(err)
	}
	at := metav1.NewTime(f.now)
	want := []metav1.Condition{
		{Type: status.Accepted, Status: metav1.ConditionFalse, Reason: badWeight.Reason, Message: badWeight.Message, ObservedGeneration: 3, LastTransitionTime: at},
		{Type: status.ResolvedRefs, Status: metav1.ConditionTrue, Reason: resolved.Reason, Message: resolved.Message, ObservedGeneration: 3, LastTransitionTime: at},
	}
	if diff := cmp.Diff(want, f.conditions(t, splitGVR, "split")); diff != "" {
		t.Errorf("TrafficSplit conditions (-want +got):\n%s", diff)
	}
	wantGroup := []metav1.Condition{
		{Type: status.Accepted, Status: metav1.ConditionTrue, Reason: accepted.Reason, Message: accepted.Message, ObservedGeneration: 2, LastTransitionTime: at},
	}
	if diff := cmp.Diff(wantGroup, f.conditions(t, groupGVR, "routes")); diff != "" {
		t.Errorf("HTTPRouteGroup conditions (-want +got):\n%s", diff)
	}
	for _, a := range f.dyn.Actions() {
		if a.GetVerb() == "patch" && a.GetSubresource() != "status" {
			t.Errorf("patch of subresource %q, want status", a.GetSubresource())
		}
	}
}

func TestStatusWriteOnlyWhenChanged(t *testing.T) {
	f := newStatusFixture(t, liveSplit("split", 1))
	objs := []status.Object{splitStatus("split", 1, badWeight)}
	if err := f.w.Write(context.Background(), objs); err != nil {
		t.Fatal(err)
	}
	if n := f.countActions("patch"); n != 1 {
		t.Fatalf("first Write: %d patches, want 1", n)
	}

	f.dyn.ClearActions()
	f.now = f.now.Add(time.Minute)
	if err := f.w.Write(context.Background(), objs); err != nil {
		t.Fatal(err)
	}
	if n := len(f.dyn.Actions()); n != 0 {
		t.Errorf("identical Write: %d API calls, want 0: %v", n, f.dyn.Actions())
	}

	// A restart (or a new leader) reads the live status and finds it right.
	f.dyn.ClearActions()
	if err := f.newWriter().Write(context.Background(), objs); err != nil {
		t.Fatal(err)
	}
	if n := f.countActions("patch"); n != 0 {
		t.Errorf("Write after restart: %d patches, want 0", n)
	}

	// Reset makes the next Write compare with the live object again.
	f.dyn.ClearActions()
	f.w.Reset()
	if err := f.w.Write(context.Background(), objs); err != nil {
		t.Fatal(err)
	}
	if g, p := f.countActions("get"), f.countActions("patch"); g != 1 || p != 0 {
		t.Errorf("Write after Reset: %d gets, %d patches; want 1, 0", g, p)
	}

	// A new generation with the same conditions is written.
	f.dyn.ClearActions()
	if err := f.w.Write(context.Background(), []status.Object{splitStatus("split", 2, badWeight)}); err != nil {
		t.Fatal(err)
	}
	if n := f.countActions("patch"); n != 1 {
		t.Errorf("new generation: %d patches, want 1", n)
	}
	if got := f.conditions(t, splitGVR, "split")[0].ObservedGeneration; got != 2 {
		t.Errorf("observedGeneration %d, want 2", got)
	}
}

func TestStatusLastTransitionTime(t *testing.T) {
	f := newStatusFixture(t, liveSplit("split", 1))
	t0 := f.now
	write := func(c status.Condition) metav1.Condition {
		t.Helper()
		if err := f.w.Write(context.Background(), []status.Object{splitStatus("split", 1, c)}); err != nil {
			t.Fatal(err)
		}
		got := f.conditions(t, splitGVR, "split")
		if len(got) != 1 {
			t.Fatalf("conditions: %v", got)
		}
		return got[0]
	}
	write(accepted)

	f.now = t0.Add(time.Minute)
	changedMessage := accepted
	changedMessage.Message = "3 backends"
	if got := write(changedMessage); !got.LastTransitionTime.Time.Equal(t0) || got.Message != "3 backends" {
		t.Errorf("same status, new message: lastTransitionTime %v message %q; want %v, the new message", got.LastTransitionTime, got.Message, t0)
	}

	t2 := t0.Add(2 * time.Minute)
	f.now = t2
	if got := write(badWeight); !got.LastTransitionTime.Time.Equal(t2) {
		t.Errorf("status flipped: lastTransitionTime %v, want %v", got.LastTransitionTime, t2)
	}
}

func TestStatusObjectGone(t *testing.T) {
	f := newStatusFixture(t, liveSplit("split", 1))
	objs := []status.Object{splitStatus("split", 1, accepted), splitStatus("deleted", 1, badWeight)}
	if err := f.w.Write(context.Background(), objs); err != nil {
		t.Fatalf("Write with a deleted object: %v", err)
	}
	if n := len(f.conditions(t, splitGVR, "split")); n != 1 {
		t.Errorf("live object: %d conditions, want 1", n)
	}

	// Deleted after the write: its conditions vanish from the next Write and
	// it is forgotten; if it comes back, it is written again.
	if err := f.dyn.Resource(splitGVR).Namespace("shop").Delete(context.Background(), "split", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := f.w.Write(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	if _, err := f.dyn.Resource(splitGVR).Namespace("shop").Create(context.Background(), liveSplit("split", 1), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	f.dyn.ClearActions()
	if err := f.w.Write(context.Background(), objs[:1]); err != nil {
		t.Fatal(err)
	}
	if n := f.countActions("patch"); n != 1 {
		t.Errorf("recreated object: %d patches, want 1", n)
	}
}

func TestStatusAPIErrors(t *testing.T) {
	f := newStatusFixture(t, liveSplit("a", 1), liveSplit("b", 1))
	failA := true
	f.dyn.PrependReactor("patch", "trafficsplits", func(a k8stesting.Action) (bool, runtime.Object, error) {
		if name := a.(k8stesting.PatchAction).GetName(); name == "a" && failA {
			return true, nil, apierrors.NewForbidden(splitGVR.GroupResource(), name, nil)
		}
		return false, nil, nil
	})
	objs := []status.Object{splitStatus("a", 1, accepted), splitStatus("b", 1, accepted)}
	err := f.w.Write(context.Background(), objs)
	if !apierrors.IsForbidden(err) {
		t.Fatalf("Write: %v, want a Forbidden error", err)
	}
	if n := len(f.conditions(t, splitGVR, "b")); n != 1 {
		t.Errorf("b after a failed: %d conditions, want 1", n)
	}

	// The failed object is retried by the next Write, though unchanged.
	failA = false
	if err := f.w.Write(context.Background(), objs); err != nil {
		t.Fatal(err)
	}
	if n := len(f.conditions(t, splitGVR, "a")); n != 1 {
		t.Errorf("a after retry: %d conditions, want 1", n)
	}
}

func TestStatusRetriesConflict(t *testing.T) {
	f := newStatusFixture(t, liveSplit("split", 1))
	conflicts := 1
	f.dyn.PrependReactor("patch", "trafficsplits", func(a k8stesting.Action) (bool, runtime.Object, error) {
		if conflicts > 0 {
			conflicts--
			return true, nil, apierrors.NewConflict(splitGVR.GroupResource(), "split", nil)
		}
		return false, nil, nil
	})
	if err := f.w.Write(context.Background(), []status.Object{splitStatus("split", 1, accepted)}); err != nil {
		t.Fatal(err)
	}
	if n := f.countActions("patch"); n != 2 {
		t.Errorf("%d patches, want 2 (one conflict, one retry)", n)
	}
	if n := len(f.conditions(t, splitGVR, "split")); n != 1 {
		t.Errorf("%d conditions, want 1", n)
	}
}

func TestStatusNoStatusSubresource(t *testing.T) {
	f := newStatusFixture(t, liveSplit("split", 1))
	f.dyn.PrependReactor("patch", "trafficsplits", func(a k8stesting.Action) (bool, runtime.Object, error) {
		return true, nil, apierrors.NewNotFound(splitGVR.GroupResource(), "split")
	})
	err := f.w.Write(context.Background(), []status.Object{splitStatus("split", 1, accepted)})
	if err == nil || apierrors.IsNotFound(err) {
		t.Errorf("Write: %v, want an error other than NotFound", err)
	}
}

func TestStatusUnknownKindSkipped(t *testing.T) {
	f := newStatusFixture(t)
	obj := status.Object{Kind: "Widget", Namespace: "shop", Name: "w", Conditions: []status.Condition{badWeight}}
	if err := f.w.Write(context.Background(), []status.Object{obj}); err != nil {
		t.Fatal(err)
	}
	if n := len(f.dyn.Actions()); n != 0 {
		t.Errorf("%d API calls, want 0", n)
	}
}

func ingressStatus(generation int64, conds ...status.Condition) status.Object {
	return status.Object{Kind: "Ingress", Namespace: "shop", Name: "web", Generation: generation, Conditions: conds}
}

func (f *statusFixture) events(t *testing.T) []eventsv1.Event {
	t.Helper()
	list, err := f.core.EventsV1().Events("shop").List(context.Background(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return list.Items
}

func TestStatusEventForKindWithoutStatus(t *testing.T) {
	f := newStatusFixture(t, liveObject("networking.k8s.io/v1", "Ingress", "web", 1))
	ctx := context.Background()
	write := func(o status.Object) {
		t.Helper()
		if err := f.w.Write(ctx, []status.Object{o}); err != nil {
			t.Fatal(err)
		}
	}

	write(ingressStatus(1, accepted))
	if evs := f.events(t); len(evs) != 0 {
		t.Fatalf("accepted object: %d events, want 0", len(evs))
	}

	write(ingressStatus(1, badWeight))
	evs := f.events(t)
	if len(evs) != 1 {
		t.Fatalf("rejected object: %d events, want 1", len(evs))
	}
	ev := evs[0]
	wantRegarding := corev1.ObjectReference{APIVersion: "networking.k8s.io/v1", Kind: "Ingress", Namespace: "shop", Name: "web", UID: "uid-web", ResourceVersion: ev.Regarding.ResourceVersion}
	if diff := cmp.Diff(wantRegarding, ev.Regarding); diff != "" {
		t.Errorf("regarding (-want +got):\n%s", diff)
	}
	if ev.Type != corev1.EventTypeWarning || ev.Reason != badWeight.Reason || ev.Note != badWeight.Message ||
		ev.ReportingController == "" || ev.ReportingInstance == "" || ev.Action == "" || ev.EventTime.IsZero() {
		t.Errorf("event: %+v", ev)
	}
	if len(f.dyn.Actions()) == 0 || f.countActions("patch") != 0 {
		t.Errorf("dynamic actions %v: want a get and no patch", f.dyn.Actions())
	}

	// Unchanged: no event; a restart or new leader: no duplicate.
	write(ingressStatus(1, badWeight))
	if err := f.newWriter().Write(ctx, []status.Object{ingressStatus(1, badWeight)}); err != nil {
		t.Fatal(err)
	}
	if n := len(f.events(t)); n != 1 {
		t.Errorf("unchanged rejection: %d events, want 1", n)
	}

	// A changed rejection is a new event.
	changed := badWeight
	changed.Message = "spec.backends[1].weight: -1 is negative"
	write(ingressStatus(1, changed))
	if n := len(f.events(t)); n != 2 {
		t.Errorf("changed rejection: %d events, want 2", n)
	}

	// Gone: not an error.
	if err := f.dyn.Resource(ingressGVR).Namespace("shop").Delete(ctx, "web", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	write(ingressStatus(2, badWeight))
}

func TestTruncateUTF8(t *testing.T) {
	tests := map[string]struct {
		in    string
		limit int
		want  string
	}{
		"short":        {in: "abc", limit: 5, want: "abc"},
		"ascii":        {in: "abcdef", limit: 3, want: "abc"},
		"mid-rune":     {in: "aé", limit: 2, want: "a"},
		"rune at edge": {in: "éa", limit: 2, want: "é"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if got := truncateUTF8(tc.in, tc.limit); got != tc.want {
				t.Errorf("truncateUTF8(%q, %d) = %q, want %q", tc.in, tc.limit, got, tc.want)
			}
		})
	}
}

func TestStatusIngressLoadBalancerAddress(t *testing.T) {
	f := newStatusFixture(t, liveObject("networking.k8s.io/v1", "Ingress", "web", 1))
	f.w.Register("Ingress", StatusResource{Resource: ingressGVR, LoadBalancer: true})
	f.w.SetLoadBalancerAddress("192.0.2.10")
	for range 2 {
		if err := f.w.Write(context.Background(), []status.Object{ingressStatus(1, accepted)}); err != nil {
			t.Fatal(err)
		}
	}
	var patches []string
	for _, a := range f.dyn.Actions() {
		if p, ok := a.(k8stesting.PatchAction); ok {
			patches = append(patches, a.GetSubresource()+" "+string(p.GetPatch()))
		}
	}
	want := []string{`status {"status":{"loadBalancer":{"ingress":[{"ip":"192.0.2.10"}]}}}`}
	if diff := cmp.Diff(want, patches); diff != "" {
		t.Errorf("patches (-want +got):\n%s", diff)
	}
	// A rejected Ingress is not given the address.
	f2 := newStatusFixture(t, liveObject("networking.k8s.io/v1", "Ingress", "web", 1))
	f2.w.Register("Ingress", StatusResource{Resource: ingressGVR, LoadBalancer: true})
	f2.w.SetLoadBalancerAddress("gw.example.test")
	if err := f2.w.Write(context.Background(), []status.Object{ingressStatus(1, badWeight)}); err != nil {
		t.Fatal(err)
	}
	for _, a := range f2.dyn.Actions() {
		if _, ok := a.(k8stesting.PatchAction); ok {
			t.Errorf("rejected Ingress patched: %v", a)
		}
	}
}
