package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"github.com/google/go-cmp/cmp"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"

	"github.com/weir-mesh/weir/translator"
	"github.com/weir-mesh/weir/watcher"
)

// translateFiles loads the YAML files under dir as weir's file source
// does and translates them.
func translateFiles(t *testing.T, dir string) translator.Result {
	t.Helper()
	store, err := watcher.NewStore()
	if err != nil {
		t.Fatal(err)
	}
	err = filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || filepath.Base(path)[0] == '.' {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		objs, warns, err := watcher.DecodeFile(path, b)
		if err != nil || len(warns) > 0 {
			t.Fatalf("%s: %v %v", path, err, warns)
		}
		_, err = store.ReplaceSource(path, objs)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return translator.Translate(store.Snapshot(), translator.Options{})
}

// TestKubeObjectsMatchFiles checks that the objects the Kubernetes path
// creates translate as the file scenario's files do.
func TestKubeObjectsMatchFiles(t *testing.T) {
	const services, perNS = 25, 10
	files := newMesh(filepath.Join(t.TempDir(), "files"), services, perNS)
	if err := files.writeAll(); err != nil {
		t.Fatal(err)
	}
	m := newMesh("", services, perNS)
	var docs []string
	add := func(obj any) {
		b, err := yaml.Marshal(obj)
		if err != nil {
			t.Fatal(err)
		}
		docs = append(docs, string(b))
	}
	for i := range services {
		for v := range 3 {
			add(m.kubeService(i, v))
			s, err := m.kubeSlice(i, v)
			if err != nil {
				t.Fatal(err)
			}
			add(s)
		}
		add(m.kubeSplit(i).Object)
	}
	dir := filepath.Join(t.TempDir(), "kube")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "all.yaml"), []byte(strings.Join(docs, "---\n")), 0o644); err != nil {
		t.Fatal(err)
	}
	want, got := translateFiles(t, files.dir), translateFiles(t, dir)
	if len(got.IR.Hosts) != 3*services {
		t.Fatalf("%d hosts, want %d", len(got.IR.Hosts), 3*services)
	}
	if diff := cmp.Diff(want.IR, got.IR); diff != "" {
		t.Errorf("IR of the Kubernetes objects differs from the files' (-files +kube):\n%s", diff)
	}
}

func TestKubeSplitWeights(t *testing.T) {
	m := newMesh("", 3, 10)
	m.weights[1] = [2]int{40, 60}
	for i, want := range map[int][]any{
		0: {map[string]any{"service": "svc-00000-v1", "weight": int64(90)}, map[string]any{"service": "svc-00000-v2", "weight": int64(10)}},
		1: {map[string]any{"service": "svc-00001-v1", "weight": int64(40)}, map[string]any{"service": "svc-00001-v2", "weight": int64(60)}},
	} {
		got, _, err := unstructured.NestedSlice(m.kubeSplit(i).Object, "spec", "backends")
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("service %d backends (-want +got):\n%s", i, diff)
		}
	}
}

// TestKubePath runs the Kubernetes path small: a cluster, weir's CRDs and
// RBAC, a mesh of three services, weir as its own identity and one client
// of each kind, and checks that a weight change and an added endpoint
// written through the API reach the clients.
func TestKubePath(t *testing.T) {
	if testing.Short() {
		t.Skip("starts etcd, kube-apiserver and weir")
	}
	bin, err := filepath.Abs(envOr("WEIR_K8S_BIN", filepath.Join("..", "..", ".cache", "k8s", "bin")))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(bin, "kube-apiserver")); err != nil {
		t.Skipf("no kube-apiserver in %s (make k8sbins): %v", bin, err)
	}
	dir := t.TempDir()
	weirBin := filepath.Join(dir, "weir")
	if out, err := exec.Command("go", "build", "-o", weirBin, "../weir").CombinedOutput(); err != nil {
		t.Fatalf("build weir: %v\n%s", err, out)
	}
	k, err := startKubeCluster(filepath.Join(dir, "cluster"), bin)
	if err != nil {
		t.Fatal(err)
	}
	defer k.stop()
	ctx := context.Background()
	manifests, err := kubeManifests(filepath.Join("..", "..", "deploy"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := k.applyFiles(ctx, manifests...); err != nil {
		t.Fatal(err)
	}
	km := newKubeMesh(newMesh("", 3, 10), k.Client, k.Dynamic)
	if n, err := km.create(ctx); err != nil || n != 21 {
		t.Fatalf("created %d objects (%v), want 21", n, err)
	}
	s, err := startKubeSession(config{weirBin: weirBin}, k, km, dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.close()
	if err := s.weir.waitReady(time.Minute); err != nil {
		t.Fatal(err)
	}
	specs := []clientSpec{{kind: sidecarSotW, namespace: nsName(0)}, {kind: sidecarDelta, namespace: nsName(0)}, {kind: grpcSotW, namespace: nsName(0), target: km.m.hostName(0)}}
	if err := s.fleet.connect("kube", specs, len(specs), time.Minute); err != nil {
		t.Fatalf("%v; weir's log ends:\n%s", err, logTail(s.weir.logPath, 20))
	}
	t0, err := km.setWeights(0, 30, 70)
	if err != nil {
		t.Fatal(err)
	}
	if _, missing := firstAfter(s.fleet.clients, resourcev3.RouteType, t0, time.Minute); missing > 0 {
		t.Errorf("%d clients got no routes after the weight change", missing)
	}
	ts, err := k.Dynamic.Resource(trafficSplitGVR).Namespace(nsName(0)).Get(ctx, svcName(0), metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if w, _, _ := unstructured.NestedSlice(ts.Object, "spec", "backends"); !cmp.Equal(w, km.m.splitBackends(0)) {
		t.Errorf("stored backends %v, want %v", w, km.m.splitBackends(0))
	}
	t0 = time.Now()
	for range 2 { // the second write needs the first's resourceVersion
		if err := km.addEndpoint(0, 2); err != nil {
			t.Fatal(err)
		}
	}
	if _, missing := firstAfter(s.fleet.clients, resourcev3.EndpointType, t0, time.Minute); missing > 0 {
		t.Errorf("%d clients got no endpoints after the added endpoint", missing)
	}
	if err := s.fleet.failures(); err != nil {
		t.Error(err)
	}
}
