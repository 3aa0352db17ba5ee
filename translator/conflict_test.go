package translator_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/weir-mesh/weir/translator"
	"github.com/weir-mesh/weir/translator/ir"
	"github.com/weir-mesh/weir/translator/status"
	"github.com/weir-mesh/weir/watcher"
)

// translateFile translates a golden input to the IR and status.
func translateFile(t *testing.T, path string) translator.Result {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	objs, _, err := watcher.DecodeFile(path, data)
	if err != nil {
		t.Fatal(err)
	}
	store, err := watcher.NewStore()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := store.ReplaceSource(path, objs); err != nil {
		t.Fatal(err)
	}
	return translator.Translate(store.Snapshot(), translator.Options{})
}

func hostRoutes(in *ir.IR, name string) []ir.Route {
	for _, h := range in.Hosts {
		if h.Name == name {
			return h.Routes
		}
	}
	return nil
}

// TestVirtualServiceVersusTrafficSplit: the older object routes a host both
// name, and all four objects say so.
func TestVirtualServiceVersusTrafficSplit(t *testing.T) {
	res := translateFile(t, "testdata/istio-conflict-smi.in.yaml")
	for host, cluster := range map[string]string{
		"reviews.books.svc.cluster.local:9080": "outbound|9080|v1|reviews.books.svc.cluster.local",
		"ratings.books.svc.cluster.local:9080": "outbound|9080||ratings-v2.books.svc.cluster.local",
	} {
		r := hostRoutes(res.IR, host)
		if len(r) != 1 || len(r[0].Backends) != 1 || r[0].Backends[0].Cluster != cluster {
			t.Errorf("%s: want every request to %s, got %+v", host, cluster, r)
		}
	}
	want := map[string]struct{ accepted, other string }{
		"VirtualService/reviews": {status.True, "TrafficSplit books/reviews"},
		"TrafficSplit/reviews":   {status.False, "VirtualService books/reviews, which is older"},
		"TrafficSplit/ratings":   {status.True, "VirtualService books/ratings"},
		"VirtualService/ratings": {status.False, "TrafficSplit books/ratings, which is older"},
	}
	for _, o := range res.Status {
		w, ok := want[o.Kind+"/"+o.Name]
		if !ok {
			continue
		}
		delete(want, o.Kind+"/"+o.Name)
		if c := o.Get("Conflicted"); c == nil || c.Status != status.True || !strings.Contains(c.Message, w.other) {
			t.Errorf("%s %s: Conflicted %+v, want it to name %s", o.Kind, o.Name, c, w.other)
		}
		if c := o.Get(status.Accepted); c == nil || c.Status != w.accepted {
			t.Errorf("%s %s: Accepted %+v, want %s", o.Kind, o.Name, c, w.accepted)
		}
	}
	if len(want) > 0 {
		t.Errorf("no status for %v", want)
	}
}

// TestIstioHostAnswers404Unmatched: as with istiod, a VirtualService without
// a catch-all leaves unmatched requests unrouted (404) instead of falling
// back to every version; a Service no VirtualService names keeps its
// default route.
func TestIstioHostAnswers404Unmatched(t *testing.T) {
	path := filepath.Join(t.TempDir(), "vs.yaml")
	manifests := `apiVersion: v1
kind: Service
metadata: {name: a, namespace: ns}
spec: {ports: [{port: 80}]}
---
apiVersion: v1
kind: Service
metadata: {name: b, namespace: ns}
spec: {ports: [{port: 80}]}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: a, namespace: ns}
spec:
  hosts: [a]
  http:
  - match: [{headers: {x-user: {exact: tester}}}]
    route: [{destination: {host: b}}]
`
	if err := os.WriteFile(path, []byte(manifests), 0o644); err != nil {
		t.Fatal(err)
	}
	res := translateFile(t, path)
	if r := hostRoutes(res.IR, "a.ns.svc.cluster.local:80"); len(r) != 1 || r[0].Name != "VirtualService/ns/a/0" {
		t.Errorf("a: want only the VirtualService's route, got %+v", r)
	}
	if r := hostRoutes(res.IR, "b.ns.svc.cluster.local:80"); len(r) != 1 || r[0].Name != "Service/ns/b" {
		t.Errorf("b: want its default route, got %+v", r)
	}
}
