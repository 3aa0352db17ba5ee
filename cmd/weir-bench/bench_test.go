package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/weir-mesh/weir/translator"
	"github.com/weir-mesh/weir/watcher"
)

// TestMeshTranslates loads the generated manifests as weir's file source
// does and checks what they translate to.
func TestMeshTranslates(t *testing.T) {
	m := newMesh(filepath.Join(t.TempDir(), "m"), 25, 10)
	if err := m.writeAll(); err != nil {
		t.Fatal(err)
	}
	if err := m.setWeights(3, 40, 60); err != nil {
		t.Fatal(err)
	}
	if err := m.addEndpoint(3, 2); err != nil {
		t.Fatal(err)
	}
	store, err := watcher.NewStore()
	if err != nil {
		t.Fatal(err)
	}
	err = filepath.WalkDir(m.dir, func(path string, d os.DirEntry, err error) error {
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
	res := translator.Translate(store.Snapshot(), translator.Options{})
	if len(res.IR.Hosts) != 75 || len(res.IR.Clusters) != 75 {
		t.Fatalf("%d hosts and %d clusters, want 75 of each", len(res.IR.Hosts), len(res.IR.Clusters))
	}
	for _, st := range res.Status {
		if c := st.Get("Accepted"); c == nil || c.Status != "True" {
			t.Errorf("%s %s/%s not accepted: %+v", st.Kind, st.Namespace, st.Name, c)
		}
	}
	for _, h := range res.IR.Hosts {
		if h.Name != m.hostName(3) {
			continue
		}
		got := map[string]uint32{}
		for _, b := range h.Routes[0].Backends {
			got[b.Cluster] = b.Weight
		}
		want := map[string]uint32{m.clusterName(3, 1): 40, m.clusterName(3, 2): 60}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("weights of service 3 (-want +got):\n%s", diff)
		}
	}
	for _, c := range res.IR.Clusters {
		if c.Name == m.clusterName(3, 2) && len(c.Endpoints) != 4 {
			t.Errorf("%s: %d endpoints, want 4", c.Name, len(c.Endpoints))
		}
	}
}

func TestPercentile(t *testing.T) {
	ds := []time.Duration{5, 1, 4, 2, 3, 10, 9, 8, 7, 6}
	for p, want := range map[float64]time.Duration{50: 5, 90: 9, 99: 10, 100: 10, 10: 1} {
		if got := percentile(ds, p); got != want {
			t.Errorf("p%v = %v, want %v", p, got, want)
		}
	}
	if percentile(nil, 50) != 0 {
		t.Error("percentile of nothing is not 0")
	}
}

func TestHistQuantile(t *testing.T) {
	before := map[float64]float64{0.1: 10, 0.2: 10, 0.5: 10, inf: 10}
	after := map[float64]float64{0.1: 10, 0.2: 60, 0.5: 110, inf: 110} // 50 in (0.1, 0.2], 50 in (0.2, 0.5]
	if got, n := histQuantile(before, after, 0.5); n != 100 || got < 0.199 || got > 0.201 {
		t.Errorf("median %v of %v observations, want 0.2 of 100", got, n)
	}
	if got, _ := histQuantile(before, after, 0.99); got < 0.49 || got > 0.5 {
		t.Errorf("p99 %v, want just under 0.5", got)
	}
}

func TestParseResponses(t *testing.T) {
	res, err := anypb.New(&discoveryv3.Resource{Name: "x"})
	if err != nil {
		t.Fatal(err)
	}
	b, err := proto.Marshal(&discoveryv3.DiscoveryResponse{VersionInfo: "v1", TypeUrl: resourcev3.ClusterType, Nonce: "7", Resources: []*anypb.Any{res, res}})
	if err != nil {
		t.Fatal(err)
	}
	got, err := parseSotW(b)
	if err != nil {
		t.Fatal(err)
	}
	if got.version != "v1" || got.typeURL != resourcev3.ClusterType || got.nonce != "7" || len(got.resources) != 2 || string(got.resources[0]) != string(res.Value) {
		t.Errorf("parsed %+v", got)
	}
	b, err = proto.Marshal(&discoveryv3.DeltaDiscoveryResponse{SystemVersionInfo: "v2", TypeUrl: resourcev3.RouteType, Nonce: "8",
		Resources: []*discoveryv3.Resource{{Name: "r", Resource: res}}, RemovedResources: []string{"gone"}})
	if err != nil {
		t.Fatal(err)
	}
	got, err = parseDelta(b)
	if err != nil {
		t.Fatal(err)
	}
	if got.version != "v2" || got.nonce != "8" || !cmp.Equal(got.names, []string{"r"}) || !cmp.Equal(got.removed, []string{"gone"}) || string(got.resources[0]) != string(res.Value) {
		t.Errorf("parsed %+v", got)
	}
}

// TestClientsAgainstWeir runs weir and one client of each kind, each
// alone and then all at once, and checks each gets a complete
// configuration.
func TestClientsAgainstWeir(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs weir")
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "weir")
	if out, err := exec.Command("go", "build", "-o", bin, "../weir").CombinedOutput(); err != nil {
		t.Fatalf("build weir: %v\n%s", err, out)
	}
	m := newMesh(filepath.Join(dir, "m"), 20, 10)
	if err := m.writeAll(); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{nil, {"--scoped-routes"}} {
		t.Run(strings.Join(append([]string{"weir"}, args...), " "), func(t *testing.T) {
			clientsAgainstWeir(t, bin, m, args)
		})
	}
}

// clientsAgainstWeir connects a client of each kind to weir started with
// args, one alone and then all at once.
func clientsAgainstWeir(t *testing.T, bin string, m *mesh, args []string) {
	dir := t.TempDir()
	w, err := startWeir(bin, m.dir, filepath.Join(dir, "weir.log"), args)
	if err != nil {
		t.Fatal(err)
	}
	defer w.stop()
	if err := w.waitReady(time.Minute); err != nil {
		t.Fatal(err)
	}
	f := &fleet{addr: w.xdsAddr}
	defer f.close()
	specs := []clientSpec{{kind: sidecarSotW, namespace: nsName(0)}, {kind: sidecarDelta, namespace: nsName(0)}, {kind: grpcSotW, namespace: nsName(0), target: m.hostName(0)}}
	if err := f.connect("one", specs, 1, time.Minute); err != nil {
		t.Fatal(err)
	}
	if err := f.connect("all", specs, len(specs), time.Minute); err != nil {
		t.Fatal(err)
	}
	for _, c := range f.clients {
		if scoped := len(args) > 0; c.kind != grpcSotW && c.scoped.Load() != scoped {
			t.Errorf("sidecar %s: scoped routes %v, want %v", c.id, c.scoped.Load(), scoped)
		}
		tr := trafficSince([]*adsClient{c}, time.Time{})
		if c.kind == grpcSotW && tr.byType["CDS"] > 0 && maxInt(tr.bytes) > 10000 {
			t.Errorf("gRPC client %s received %d bytes: more than its one service", c.id, maxInt(tr.bytes))
		}
	}
}
