package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
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
