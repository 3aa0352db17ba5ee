package watcher

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	k8sschema "k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	dynamicfake "k8s.io/client-go/dynamic/fake"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	"github.com/weir-mesh/weir/api/smi"
)

// kubeDeadline bounds how long a change may take to reach the store
// through the fake clients.
const kubeDeadline = 10 * time.Second

// lockedBuffer collects log output from several goroutines.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) count(s string) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return strings.Count(b.buf.String(), s)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// kubeRig is a KubeSource running on fake clients.
type kubeRig struct {
	store *Store
	core  *fake.Clientset
	dyn   *dynamicfake.FakeDynamicClient
	logs  *lockedBuffer
}

var (
	tsV4  = k8sschema.GroupVersionResource{Group: smi.SplitGroup, Version: "v1alpha4", Resource: "trafficsplits"}
	tsV3  = k8sschema.GroupVersionResource{Group: smi.SplitGroup, Version: "v1alpha3", Resource: "trafficsplits"}
	hrgV4 = k8sschema.GroupVersionResource{Group: smi.SpecsGroup, Version: "v1alpha4", Resource: "httproutegroups"}
)

func newDynamicFake(objs ...runtime.Object) *dynamicfake.FakeDynamicClient {
	lists := map[k8sschema.GroupVersionResource]string{crdResource: "CustomResourceDefinitionList"}
	for _, api := range policyAPIs {
		for _, v := range api.versions {
			lists[k8sschema.GroupVersionResource{Group: api.group, Version: v, Resource: api.resource}] = string(api.kind) + "List"
		}
	}
	return dynamicfake.NewSimpleDynamicClientWithCustomListKinds(runtime.NewScheme(), lists, objs...)
}

// startKube runs a KubeSource on fake clients until the test ends and waits
// for it to be ready.
func startKube(t *testing.T, namespaces []string, core *fake.Clientset, dyn *dynamicfake.FakeDynamicClient) *kubeRig {
	t.Helper()
	store, err := NewStore()
	if err != nil {
		t.Fatal(err)
	}
	logs := &lockedBuffer{}
	k := &KubeSource{Namespaces: namespaces, Store: store,
		Logger:  slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelInfo})),
		clients: &kubeClients{core: core, dynamic: dyn}}
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan struct{})
	done := make(chan error, 1)
	go func() { done <- k.Run(ctx, ready) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
		if t.Failed() {
			t.Logf("logs:\n%s", logs)
		}
	})
	select {
	case <-ready:
	case err := <-done:
		t.Fatalf("Run returned before ready: %v", err)
	case <-time.After(kubeDeadline):
		t.Fatal("not ready")
	}
	return &kubeRig{store: store, core: core, dyn: dyn, logs: logs}
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(kubeDeadline)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func keysOf[T metav1.Object](objs []T) []string {
	out := []string{}
	for _, o := range objs {
		out = append(out, o.GetNamespace()+"/"+o.GetName())
	}
	return out
}

func kubeService(ns, name string) *corev1.Service {
	return &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name,
			ManagedFields: []metav1.ManagedFieldsEntry{{Manager: "kubectl"}},
			Annotations:   map[string]string{lastApplied: `{"big":"copy"}`, "keep": "me"}},
		Spec: corev1.ServiceSpec{Selector: map[string]string{"app": name}, Ports: []corev1.ServicePort{{Name: "http", Port: 80}}},
	}
}

func kubeSlice(ns, svc, addr string) *discoveryv1.EndpointSlice {
	return &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Namespace: ns, Name: svc + "-x", Labels: map[string]string{discoveryv1.LabelServiceName: svc}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Endpoints:   []discoveryv1.Endpoint{{Addresses: []string{addr}}},
	}
}

// fullPod is a Pod as the API server returns it, with much weir never reads.
func fullPod(ns, name string) *corev1.Pod {
	now := metav1.Now()
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, UID: types.UID("uid-" + name),
			Labels:          map[string]string{"app": "web", "track": "canary"},
			Annotations:     map[string]string{"prometheus.io/scrape": "true"},
			OwnerReferences: []metav1.OwnerReference{{Kind: "ReplicaSet", Name: "web-abc", APIVersion: "apps/v1"}},
			ManagedFields:   []metav1.ManagedFieldsEntry{{Manager: "kubelet", Operation: metav1.ManagedFieldsOperationUpdate}},
		},
		Spec: corev1.PodSpec{
			NodeName: "node-1",
			Volumes:  []corev1.Volume{{Name: "data", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}},
			Containers: []corev1.Container{{
				Name: "web", Image: "web:2", Args: []string{"--serve"},
				Env:          []corev1.EnvVar{{Name: "SECRET", Value: "x"}},
				Ports:        []corev1.ContainerPort{{Name: "http", ContainerPort: 8080}},
				VolumeMounts: []corev1.VolumeMount{{Name: "data", MountPath: "/data"}},
			}},
		},
		Status: corev1.PodStatus{
			Phase: corev1.PodRunning, PodIP: "10.0.0.7", PodIPs: []corev1.PodIP{{IP: "10.0.0.7"}}, HostIP: "192.168.0.1",
			Conditions: []corev1.PodCondition{
				{Type: corev1.PodScheduled, Status: corev1.ConditionTrue, LastTransitionTime: now},
				{Type: corev1.PodReady, Status: corev1.ConditionTrue, LastTransitionTime: now, Reason: "r"},
			},
			ContainerStatuses: []corev1.ContainerStatus{{Name: "web", Ready: true, RestartCount: 1}},
		},
	}
}

func TestKubeSourceCoreObjects(t *testing.T) {
	ctx := context.Background()
	core := fake.NewClientset(kubeService("default", "web"), kubeSlice("default", "web", "10.0.0.7"), fullPod("default", "web-1"))
	r := startKube(t, nil, core, newDynamicFake())

	sn := r.store.Snapshot()
	if got := keysOf(sn.Services()); !cmp.Equal(got, []string{"default/web"}) {
		t.Fatalf("services at ready = %v", got)
	}
	if got := keysOf(sn.EndpointSlicesFor("default", "web")); !cmp.Equal(got, []string{"default/web-x"}) {
		t.Fatalf("slices at ready = %v", got)
	}
	if got := sn.Pod("default", "web-1"); got == nil {
		t.Fatal("pod missing at ready")
	}
	if src := r.store.Sources(KindService)["default/web"]; src != KubeSourceName {
		t.Errorf("source = %q, want %q", src, KubeSourceName)
	}
	svc := sn.Service("default", "web")
	if svc.ManagedFields != nil || svc.Annotations[lastApplied] != "" || svc.Annotations["keep"] != "me" {
		t.Errorf("service not stripped of managedFields and last-applied only: %+v", svc.ObjectMeta)
	}

	// Updates, adds and deletes reach the store.
	upd := kubeService("default", "web")
	upd.Spec.Ports[0].Port = 8080
	if _, err := core.CoreV1().Services("default").Update(ctx, upd, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "service update", func() bool {
		s := r.store.Snapshot().Service("default", "web")
		return s != nil && s.Spec.Ports[0].Port == 8080
	})
	if _, err := core.CoreV1().Services("other").Create(ctx, kubeService("other", "api"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "service add", func() bool { return r.store.Snapshot().Service("other", "api") != nil })
	if err := core.DiscoveryV1().EndpointSlices("default").Delete(ctx, "web-x", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "slice delete", func() bool { return len(r.store.Snapshot().EndpointSlicesFor("default", "web")) == 0 })
	if err := core.CoreV1().Pods("default").Delete(ctx, "web-1", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "pod delete", func() bool { return r.store.Snapshot().Pod("default", "web-1") == nil })
}

func TestKubeSourceStripsPods(t *testing.T) {
	r := startKube(t, nil, fake.NewClientset(fullPod("default", "web-1")), newDynamicFake())
	got := r.store.Snapshot().Pod("default", "web-1")
	full := fullPod("default", "web-1")
	want := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "web-1", UID: full.UID,
			Labels: full.Labels, OwnerReferences: full.OwnerReferences},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "web", Ports: full.Spec.Containers[0].Ports}}},
		Status: corev1.PodStatus{Phase: corev1.PodRunning, PodIP: "10.0.0.7", PodIPs: full.Status.PodIPs,
			Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}}},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("stored pod (-want +got):\n%s", diff)
	}
}

// TestKubeSourceIgnoresUnreadPodChanges checks that a Pod status update the
// translator does not read leaves the stored Pod untouched.
func TestKubeSourceIgnoresUnreadPodChanges(t *testing.T) {
	ctx := context.Background()
	core := fake.NewClientset(fullPod("default", "a"), fullPod("default", "b"))
	r := startKube(t, nil, core, newDynamicFake())
	before := r.store.Snapshot().Pod("default", "a")

	// The fake keeps resourceVersions as given; the API server bumps them.
	a := fullPod("default", "a")
	a.ResourceVersion = "2"
	a.Status.ContainerStatuses[0].RestartCount = 7
	a.Status.Conditions[1].LastTransitionTime = metav1.NewTime(time.Now().Add(time.Hour))
	if _, err := core.CoreV1().Pods("default").UpdateStatus(ctx, a, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	// The same informer delivers b's change after a's: once it is stored,
	// a's update has been handled.
	b := fullPod("default", "b")
	b.Labels["track"] = "stable"
	if _, err := core.CoreV1().Pods("default").Update(ctx, b, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "pod b update", func() bool { return r.store.Snapshot().Pod("default", "b").Labels["track"] == "stable" })
	if after := r.store.Snapshot().Pod("default", "a"); after != before {
		t.Errorf("pod a was rewritten by a change weir does not read: %+v", after)
	}
}

func TestKubeSourceNamespaces(t *testing.T) {
	core := fake.NewClientset(kubeService("a", "web"), kubeService("b", "web"), kubeService("c", "web"))
	r := startKube(t, []string{"c", "a", "a"}, core, newDynamicFake())
	if got := keysOf(r.store.Snapshot().Services()); !cmp.Equal(got, []string{"a/web", "c/web"}) {
		t.Errorf("services = %v, want a/web and c/web only", got)
	}
	if _, err := core.CoreV1().Services("b").Create(context.Background(), kubeService("b", "api"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := core.CoreV1().Services("a").Create(context.Background(), kubeService("a", "api"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "a/api", func() bool { return r.store.Snapshot().Service("a", "api") != nil })
	if r.store.Snapshot().Service("b", "api") != nil {
		t.Error("an object of an unwatched namespace reached the store")
	}
}

// flakyAPI makes the fake API server of core refuse lists and watches of
// resource while down, and lets a test end the current watch.
type flakyAPI struct {
	mu      sync.Mutex
	down    bool
	watches []watch.Interface
}

func newFlakyAPI(core *fake.Clientset, resource string) *flakyAPI {
	f := &flakyAPI{}
	core.PrependReactor("list", resource, func(k8stesting.Action) (bool, runtime.Object, error) {
		f.mu.Lock()
		defer f.mu.Unlock()
		if f.down {
			return true, nil, apierrors.NewServiceUnavailable("down")
		}
		return false, nil, nil
	})
	core.PrependWatchReactor(resource, func(action k8stesting.Action) (bool, watch.Interface, error) {
		f.mu.Lock()
		defer f.mu.Unlock()
		if f.down {
			return true, nil, apierrors.NewServiceUnavailable("down")
		}
		wa := action.(k8stesting.WatchActionImpl)
		w, err := core.Tracker().Watch(action.GetResource(), action.GetNamespace(), wa.ListOptions)
		if err == nil {
			f.watches = append(f.watches, w)
		}
		return true, w, err
	})
	return f
}

// goDown refuses every list and watch from now on and ends open watches.
func (f *flakyAPI) goDown() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.down = true
	for _, w := range f.watches {
		w.Stop()
	}
	f.watches = nil
}

func (f *flakyAPI) comeBack() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.down = false
}

// TestKubeSourceKeepsStateWhileAPIServerIsAway checks the last-known-good
// promise: while lists and watches fail nothing leaves the store, and the
// relist after reconnecting applies exactly what changed meanwhile.
func TestKubeSourceKeepsStateWhileAPIServerIsAway(t *testing.T) {
	core := fake.NewClientset(kubeService("default", "a"), kubeService("default", "b"), kubeService("default", "c"))
	api := newFlakyAPI(core, "services")
	r := startKube(t, nil, core, newDynamicFake())

	api.goDown()
	// Meanwhile, in the cluster: b is deleted, c changes, d is created.
	gvr := corev1.SchemeGroupVersion.WithResource("services")
	if err := core.Tracker().Delete(gvr, "default", "b"); err != nil {
		t.Fatal(err)
	}
	c := kubeService("default", "c")
	c.Spec.Ports[0].Port = 9999
	if err := core.Tracker().Update(gvr, c, "default"); err != nil {
		t.Fatal(err)
	}
	if err := core.Tracker().Create(gvr, kubeService("default", "d"), "default"); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second) // the reflector retries and fails meanwhile
	if got := keysOf(r.store.Snapshot().Services()); !cmp.Equal(got, []string{"default/a", "default/b", "default/c"}) {
		t.Fatalf("services while the API server is away = %v, want the last state", got)
	}

	api.comeBack()
	eventually(t, "relist", func() bool {
		sn := r.store.Snapshot()
		return cmp.Equal(keysOf(sn.Services()), []string{"default/a", "default/c", "default/d"}) &&
			sn.Service("default", "c").Spec.Ports[0].Port == 9999
	})
}

func crd(api policyAPI, established bool, served ...string) *unstructured.Unstructured {
	var versions []any
	for _, v := range served {
		versions = append(versions, map[string]any{"name": v, "served": true, "storage": v == served[0]})
	}
	versions = append(versions, map[string]any{"name": "v0", "served": false, "storage": false})
	status := "False"
	if established {
		status = "True"
	}
	u := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
		"metadata": map[string]any{"name": api.crdName()},
		"spec":     map[string]any{"group": api.group, "versions": versions, "names": map[string]any{"plural": api.resource}},
		"status":   map[string]any{"conditions": []any{map[string]any{"type": "Established", "status": status}}},
	}}
	return u
}

func trafficSplit(version, name string, weights ...int64) *unstructured.Unstructured {
	var backends []any
	for i, w := range weights {
		backends = append(backends, map[string]any{"service": fmt.Sprintf("web-v%d", i+1), "weight": w})
	}
	return &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": smi.SplitGroup + "/" + version, "kind": smi.TrafficSplitKind,
		"metadata": map[string]any{"namespace": "default", "name": name,
			"managedFields": []any{map[string]any{"manager": "kubectl"}}},
		"spec": map[string]any{"service": "web", "backends": backends},
	}}
}

func splitWeights(sn *Snapshot, name string) []int {
	for _, ts := range sn.TrafficSplits() {
		if ts.Name == name {
			var out []int
			for _, b := range ts.Spec.Backends {
				out = append(out, b.Weight)
			}
			return out
		}
	}
	return nil
}

// TestKubeSourcePolicyCRDLifecycle follows the SMI CRDs: absent (disabled,
// one log line), installed (enabled without a restart), a bad object
// (keeps its last good state), a newer version served (switched without
// losing objects), and removed (disabled, objects gone).
func TestKubeSourcePolicyCRDLifecycle(t *testing.T) {
	ctx := context.Background()
	ts, hrg := policyAPIs[0], policyAPIs[1]
	dyn := newDynamicFake()
	r := startKube(t, nil, fake.NewClientset(), dyn)
	if n := r.logs.count("TrafficSplit disabled"); n != 1 {
		t.Fatalf("%d log lines say TrafficSplit is disabled, want 1", n)
	}
	crds := dyn.Resource(crdResource)

	// A CRD not yet established, then HTTPRouteGroup's: still disabled, and
	// no second log line.
	if _, err := crds.Create(ctx, crd(ts, false, "v1alpha3"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := crds.Create(ctx, crd(hrg, true, "v1alpha4"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "HTTPRouteGroup enabled", func() bool { return r.logs.count("HTTPRouteGroup enabled") == 1 })
	if n := r.logs.count("TrafficSplit disabled"); n != 1 {
		t.Errorf("%d log lines say TrafficSplit is disabled, want 1", n)
	}

	// Objects exist before their CRD is established (as after kubectl apply).
	if _, err := dyn.Resource(tsV3).Namespace("default").Create(ctx, trafficSplit("v1alpha3", "split", 90, 10), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := dyn.Resource(tsV3).Namespace("default").Create(ctx, trafficSplit("v1alpha3", "old-only", 1), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := crds.Update(ctx, crd(ts, true, "v1alpha3"), metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "TrafficSplit enabled", func() bool { return cmp.Equal(splitWeights(r.store.Snapshot(), "split"), []int{90, 10}) })
	stored := r.store.Snapshot().TrafficSplits()[1]
	if stored.APIVersion != smi.SplitGroup+"/v1alpha3" || stored.ManagedFields != nil {
		t.Errorf("stored TrafficSplit: apiVersion %q, managedFields %v", stored.APIVersion, stored.ManagedFields)
	}

	// A live edit, then one weir cannot decode: the last good one stays.
	if _, err := dyn.Resource(tsV3).Namespace("default").Update(ctx, trafficSplit("v1alpha3", "split", 50, 50), metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "edit", func() bool { return cmp.Equal(splitWeights(r.store.Snapshot(), "split"), []int{50, 50}) })
	bad := trafficSplit("v1alpha3", "split", 50, 50)
	bad.Object["spec"].(map[string]any)["backends"] = "not a list"
	if _, err := dyn.Resource(tsV3).Namespace("default").Update(ctx, bad, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "decode error logged", func() bool { return r.logs.count("cannot read object") > 0 })
	if got := splitWeights(r.store.Snapshot(), "split"); !cmp.Equal(got, []int{50, 50}) {
		t.Errorf("weights after a bad edit = %v, want the last good 50/50", got)
	}

	// The CRD now serves v1alpha4 too: weir switches to it. The fake has no
	// conversion, so the objects are created at v1alpha4 by hand.
	if _, err := dyn.Resource(tsV4).Namespace("default").Create(ctx, trafficSplit("v1alpha4", "split", 20, 80), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := crds.Update(ctx, crd(ts, true, "v1alpha4", "v1alpha3"), metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "switch to v1alpha4", func() bool {
		sn := r.store.Snapshot()
		return cmp.Equal(keysOf(sn.TrafficSplits()), []string{"default/split"}) && cmp.Equal(splitWeights(sn, "split"), []int{20, 80})
	})
	if got := r.store.Snapshot().TrafficSplits()[0].APIVersion; got != smi.SplitGroup+"/v1alpha4" {
		t.Errorf("apiVersion after the switch = %q", got)
	}

	// HTTPRouteGroups flow too.
	hg := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": smi.SpecsGroup + "/v1alpha4", "kind": smi.HTTPRouteGroupKind,
		"metadata": map[string]any{"namespace": "default", "name": "routes"},
		"spec":     map[string]any{"matches": []any{map[string]any{"name": "api", "pathRegex": "/api/.*"}}},
	}}
	if _, err := dyn.Resource(hrgV4).Namespace("default").Create(ctx, hg, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "HTTPRouteGroup", func() bool {
		g := r.store.Snapshot().HTTPRouteGroup("default", "routes")
		return g != nil && len(g.Spec.Matches) == 1 && g.Spec.Matches[0].PathRegex == "/api/.*"
	})

	// The CRD is deleted: disabled again, and its objects leave the store.
	if err := crds.Delete(ctx, ts.crdName(), metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "TrafficSplit disabled", func() bool { return len(r.store.Snapshot().TrafficSplits()) == 0 })
	if n := r.logs.count("TrafficSplit disabled"); n != 2 {
		t.Errorf("%d log lines say TrafficSplit is disabled, want 2", n)
	}
	if r.store.Snapshot().HTTPRouteGroup("default", "routes") == nil {
		t.Error("removing one CRD dropped another API's objects")
	}
}

// TestKubeSourcePolicyAtStart checks that objects of an installed CRD are
// in the store when Run reports ready.
func TestKubeSourcePolicyAtStart(t *testing.T) {
	dyn := newDynamicFake(crd(policyAPIs[0], true, "v1alpha2", "v1alpha3"), trafficSplit("v1alpha3", "split", 1, 2), trafficSplit("v1alpha2", "old", 1))
	r := startKube(t, nil, fake.NewClientset(), dyn)
	if got := splitWeights(r.store.Snapshot(), "split"); !cmp.Equal(got, []int{1, 2}) {
		t.Errorf("weights at ready = %v, want [1 2] read at v1alpha3", got)
	}
	if got := keysOf(r.store.Snapshot().TrafficSplits()); !cmp.Equal(got, []string{"default/split"}) {
		t.Errorf("TrafficSplits at ready = %v, want only the v1alpha3 ones", got)
	}
}
