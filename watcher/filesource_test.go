package watcher

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// applyDeadline is FileSource's contract: edits reach the store within it.
const applyDeadline = time.Second

// recorder is a slog.Handler keeping WARN and ERROR records, safe for
// concurrent use.
type recorder struct {
	mu   sync.Mutex
	recs []string // "LEVEL message key=value ..."
}

func (r *recorder) Enabled(context.Context, slog.Level) bool { return true }
func (r *recorder) WithAttrs([]slog.Attr) slog.Handler       { return r }
func (r *recorder) WithGroup(string) slog.Handler            { return r }

func (r *recorder) Handle(_ context.Context, rec slog.Record) error {
	if rec.Level < slog.LevelWarn {
		return nil
	}
	s := rec.Level.String() + " " + rec.Message
	rec.Attrs(func(a slog.Attr) bool {
		s += fmt.Sprintf(" %s=%v", a.Key, a.Value)
		return true
	})
	r.mu.Lock()
	defer r.mu.Unlock()
	r.recs = append(r.recs, s)
	return nil
}

func (r *recorder) records() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.recs...)
}

type running struct {
	dir    string
	store  *Store
	source *FileSource
	synced chan struct{}
	logs   *recorder
}

// startSource runs a FileSource on dir until the test ends, and waits until
// it is ready. The test fails if Run does not return nil on cancel.
func startSource(t *testing.T, dir string) *running {
	t.Helper()
	r := &running{dir: dir, store: newStore(t), synced: make(chan struct{}, 1), logs: &recorder{}}
	r.source = &FileSource{Dir: dir, Store: r.store, Logger: slog.New(r.logs), synced: r.synced}
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan struct{})
	done := make(chan error, 1)
	go func() { done <- r.source.Run(ctx, ready) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run returned %v after cancel, want nil", err)
		}
	})
	select {
	case <-ready:
	case err := <-done:
		t.Fatalf("Run returned %v before ready", err)
	case <-time.After(applyDeadline):
		t.Fatal("not ready in time")
	}
	return r
}

// waitFor waits until cond holds, checking it each time signal fires; it
// fails the test if cond does not hold within applyDeadline.
func waitFor(t *testing.T, signal <-chan struct{}, what string, cond func() bool) {
	t.Helper()
	deadline := time.After(applyDeadline)
	for !cond() {
		select {
		case <-signal:
		case <-deadline:
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

func writeFile(t *testing.T, path, data string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}

// renameOver writes path the way editors do: a temporary file renamed over it.
func renameOver(t *testing.T, path, data string) {
	t.Helper()
	tmp := filepath.Join(filepath.Dir(path), "."+filepath.Base(path)+".swp")
	writeFile(t, tmp, data)
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

func splitYAML(v1, v2 int) string {
	return fmt.Sprintf(`apiVersion: split.smi-spec.io/v1alpha4
kind: TrafficSplit
metadata: {name: web, namespace: shop}
spec:
  service: web
  backends:
  - {service: web-v1, weight: %d}
  - {service: web-v2, weight: %d}
`, v1, v2)
}

// weights returns the backend weights of TrafficSplit shop/web, or nil.
func (r *running) weights() []int {
	for _, ts := range r.store.Snapshot().TrafficSplitsFor("shop", "web") {
		var w []int
		for _, b := range ts.Spec.Backends {
			w = append(w, b.Weight)
		}
		return w
	}
	return nil
}

func (r *running) hasWeights(want ...int) func() bool {
	return func() bool { return cmp.Equal(want, r.weights()) }
}

func TestFileSourceEdits(t *testing.T) {
	tests := map[string]struct {
		edit func(t *testing.T, path, data string)
	}{
		"write in place": {edit: writeFile},
		"rename over":    {edit: renameOver},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "split.yaml")
			writeFile(t, path, splitYAML(90, 10))
			writeFile(t, filepath.Join(dir, "service.yaml"), serviceYAML)
			r := startSource(t, dir)
			if got := r.weights(); !cmp.Equal(got, []int{90, 10}) {
				t.Fatalf("after start: weights %v, want [90 10]", got)
			}

			tc.edit(t, path, splitYAML(50, 50))
			waitFor(t, r.store.Changed(), "edit applied", r.hasWeights(50, 50))

			tc.edit(t, path, "apiVersion: split.smi-spec.io/v1alpha4\nkind: TrafficSplit\nmetadata:\n  name: web\n    namespace: shop\n")
			waitFor(t, r.synced, "parse error", func() bool { return r.source.Errors()[path] != nil })
			var de *DecodeError
			if err := r.source.Errors()[path]; !errors.As(err, &de) || de.File != path || de.Line != 5 {
				t.Errorf("Errors()[%s] = %v, want a *DecodeError at %s:5", path, err, path)
			}
			if got := r.weights(); !cmp.Equal(got, []int{50, 50}) {
				t.Errorf("broken file: weights %v, want the last good [50 50]", got)
			}

			tc.edit(t, path, splitYAML(20, 80))
			waitFor(t, r.store.Changed(), "fix applied", r.hasWeights(20, 80))
			if errs := r.source.Errors(); len(errs) != 0 {
				t.Errorf("after fix: Errors() = %v, want none", errs)
			}

			if err := os.Remove(path); err != nil {
				t.Fatal(err)
			}
			waitFor(t, r.store.Changed(), "removal applied", r.hasWeights())
			if r.store.Snapshot().Service("shop", "web") == nil {
				t.Error("Service of an untouched file is gone")
			}
		})
	}
}

func TestFileSourceNewDirectories(t *testing.T) {
	dir := t.TempDir()
	r := startSource(t, dir)
	writeFile(t, filepath.Join(dir, "a", "b", "c", "split.yml"), splitYAML(1, 2))
	waitFor(t, r.store.Changed(), "file in new directories", r.hasWeights(1, 2))
	renameOver(t, filepath.Join(dir, "a", "b", "c", "split.yml"), splitYAML(3, 4))
	waitFor(t, r.store.Changed(), "edit in new directory", r.hasWeights(3, 4))
	if err := os.RemoveAll(filepath.Join(dir, "a")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, r.store.Changed(), "directory removal", r.hasWeights())
}

func TestFileSourceBrokenAtStart(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "split.json")
	writeFile(t, path, `{"apiVersion": "split.smi-spec.io/v1alpha4", "kind": "TrafficSplit", "metadata": {"name": "web"}, "spec": {"backends": "all"}}`)
	r := startSource(t, dir)
	want := map[string]string{path: path + ":1: split.smi-spec.io/v1alpha4 TrafficSplit web: " +
		"cannot unmarshal string into Go struct field TrafficSplitSpec.spec.backends of type []smi.TrafficSplitBackend"}
	got := map[string]string{}
	for p, err := range r.source.Errors() {
		got[p] = err.Error()
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Errors() (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"ERROR cannot load file; keeping its last good objects file=" + path + " error=" + want[path]}, r.logs.records()); diff != "" {
		t.Errorf("logs (-want +got):\n%s", diff)
	}
}

func TestFileSourceWarnings(t *testing.T) {
	dir := t.TempDir()
	ingress := "apiVersion: policy/v1\nkind: PodDisruptionBudget\nmetadata: {name: web}\n"
	writeFile(t, filepath.Join(dir, "a.yaml"), ingress+"---\n"+svcYAML(80))
	writeFile(t, filepath.Join(dir, "b.yaml"), ingress+"---\n"+svcYAML(81))
	r := startSource(t, dir)
	a, b := filepath.Join(dir, "a.yaml"), filepath.Join(dir, "b.yaml")
	want := []string{
		"WARN ignoring a kind weir does not read apiVersion=policy/v1 kind=PodDisruptionBudget at=" + a + ":1 " +
			"reason=weir does not read policy/v1 PodDisruptionBudget; ignored",
		"WARN object defined more than once; the file loaded last wins kind=Service object=shop/web files=" + a + ", " + b + " using=" + b,
	}
	if diff := cmp.Diff(want, r.logs.records()); diff != "" {
		t.Errorf("logs (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"shop/web:81 " + b}, services(r.store)); diff != "" {
		t.Errorf("services (-want +got):\n%s", diff)
	}

	// Without b.yaml, a.yaml's definition takes over again.
	if err := os.Remove(b); err != nil {
		t.Fatal(err)
	}
	waitFor(t, r.store.Changed(), "a.yaml's Service", func() bool {
		return cmp.Equal([]string{"shop/web:80 " + a}, services(r.store))
	})
}

// TestFileSourceDefinedTwice follows one Service defined in several files
// through edits and removals: the file loaded last wins, and an object a file
// drops goes to the last file, in path order, still defining it.
func TestFileSourceDefinedTwice(t *testing.T) {
	dir := t.TempDir()
	a, b, c := filepath.Join(dir, "a.yaml"), filepath.Join(dir, "b.yaml"), filepath.Join(dir, "c.yaml")
	writeFile(t, a, svcYAML(80))
	writeFile(t, b, svcYAML(81))
	writeFile(t, c, svcYAML(82))
	r := startSource(t, dir)
	if diff := cmp.Diff([]string{"shop/web:82 " + c}, services(r.store)); diff != "" {
		t.Fatalf("at start: services (-want +got):\n%s", diff)
	}
	remove := func(path string) func(t *testing.T) {
		return func(t *testing.T) {
			if err := os.Remove(path); err != nil {
				t.Fatal(err)
			}
		}
	}
	other := "apiVersion: v1\nkind: Service\nmetadata: {name: other, namespace: shop}\nspec:\n  ports: [{port: 85}]\n"
	steps := []struct {
		name string
		do   func(t *testing.T)
		want []string
	}{
		{"the winner removed: the last file in path order takes over", remove(c), []string{"shop/web:81 " + b}},
		{"an earlier file edited: loaded last, it wins", func(t *testing.T) { writeFile(t, a, svcYAML(83)) }, []string{"shop/web:83 " + a}},
		{"a file that does not win removed", remove(b), []string{"shop/web:83 " + a}},
		{"a file added: loaded last, it wins", func(t *testing.T) { writeFile(t, c, svcYAML(84)) }, []string{"shop/web:84 " + c}},
		{"the winner drops it: the other file takes over", func(t *testing.T) { writeFile(t, c, other) },
			[]string{"shop/other:85 " + c, "shop/web:83 " + a}},
		{"the last definer removed", remove(a), []string{"shop/other:85 " + c}},
	}
	marker := filepath.Join(dir, "z-marker.yaml")
	for i, step := range steps {
		step.do(t)
		// The rescan that reads the marker's new weights read the step too.
		writeFile(t, marker, splitYAML(i, 100-i))
		waitFor(t, r.synced, "step "+step.name, r.hasWeights(i, 100-i))
		if diff := cmp.Diff(step.want, services(r.store)); diff != "" {
			t.Errorf("%s: services (-want +got):\n%s", step.name, diff)
		}
	}
}

func svcYAML(port int) string {
	return fmt.Sprintf("apiVersion: v1\nkind: Service\nmetadata: {name: web, namespace: shop}\nspec:\n  ports: [{port: %d}]\n", port)
}

func TestFileSourceStartErrors(t *testing.T) {
	file := filepath.Join(t.TempDir(), "file.yaml")
	writeFile(t, file, serviceYAML)
	tests := map[string]struct {
		dir  string
		want error
	}{
		"missing":     {dir: filepath.Join(t.TempDir(), "missing"), want: fs.ErrNotExist},
		"not a dir":   {dir: file},
		"empty field": {dir: "", want: fs.ErrNotExist},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			ready := make(chan struct{})
			err := (&FileSource{Dir: tc.dir, Store: newStore(t)}).Run(context.Background(), ready)
			if err == nil || (tc.want != nil && !errors.Is(err, tc.want)) {
				t.Errorf("Run = %v, want an error wrapping %v", err, tc.want)
			}
			select {
			case <-ready:
				t.Error("ready closed on a failed start")
			default:
			}
		})
	}
}

// TestFileSourceBusyDirectory checks that a file changing every few
// milliseconds does not hold back other edits past the deadline.
func TestFileSourceBusyDirectory(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "split.yaml")
	writeFile(t, path, splitYAML(90, 10))
	r := startSource(t, dir)

	stop := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		for i := 0; ; i++ {
			select {
			case <-stop:
				done <- nil
				return
			case <-tick.C:
				if err := os.WriteFile(filepath.Join(dir, "noise.yaml"), fmt.Appendf(nil, "# %d\n", i), 0o644); err != nil {
					done <- err
					return
				}
			}
		}
	}()
	defer func() {
		close(stop)
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()

	renameOver(t, path, splitYAML(10, 90))
	waitFor(t, r.store.Changed(), "edit applied in a busy directory", r.hasWeights(10, 90))
}

// BenchmarkFileSourceRemove times a scale-down: from a directory of n files,
// each a Service and its EndpointSlice, 99% of the files are removed, until
// the store holds only the objects of the files left.
func BenchmarkFileSourceRemove(b *testing.B) {
	for _, n := range []int{1000, 10000} {
		b.Run(fmt.Sprintf("files=%d", n), func(b *testing.B) {
			for range b.N {
				b.StopTimer()
				dir := b.TempDir()
				for i := range n {
					writeServiceFile(b, dir, i)
				}
				store, synced, stop := runSource(b, dir)
				keep := n / 100
				b.StartTimer()
				for i := keep; i < n; i++ {
					if err := os.Remove(serviceFile(dir, i)); err != nil {
						b.Fatal(err)
					}
				}
				for len(store.Snapshot().Services()) != keep {
					<-synced
				}
				b.StopTimer()
				stop()
			}
		})
	}
}

func serviceFile(dir string, i int) string {
	return filepath.Join(dir, fmt.Sprintf("svc-%05d.yaml", i))
}

// writeServiceFile writes Service shop/svc-i and an EndpointSlice of it.
func writeServiceFile(tb testing.TB, dir string, i int) {
	tb.Helper()
	data := fmt.Sprintf(`apiVersion: v1
kind: Service
metadata: {name: svc-%[1]d, namespace: shop}
spec:
  ports: [{name: http, port: 80, targetPort: 8080}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: svc-%[1]d-1, namespace: shop, labels: {kubernetes.io/service-name: svc-%[1]d}}
addressType: IPv4
endpoints: [{addresses: [10.0.%[2]d.%[3]d], conditions: {ready: true}}]
`, i, i/256%256, i%256)
	if err := os.WriteFile(serviceFile(dir, i), []byte(data), 0o644); err != nil {
		tb.Fatal(err)
	}
}

// runSource runs a FileSource on dir until stop is called, and returns once
// it loaded the directory. synced receives a value after each rescan.
func runSource(tb testing.TB, dir string) (store *Store, synced <-chan struct{}, stop func()) {
	tb.Helper()
	store, err := NewStore()
	if err != nil {
		tb.Fatal(err)
	}
	sc := make(chan struct{}, 1)
	src := &FileSource{Dir: dir, Store: store, Logger: slog.New(&recorder{}), synced: sc}
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan struct{})
	done := make(chan error, 1)
	go func() { done <- src.Run(ctx, ready) }()
	select {
	case <-ready:
	case err := <-done:
		cancel()
		tb.Fatalf("Run returned %v before ready", err)
	}
	return store, sc, func() {
		cancel()
		if err := <-done; err != nil {
			tb.Errorf("Run returned %v after cancel, want nil", err)
		}
	}
}
