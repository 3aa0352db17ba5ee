package translator_test

import (
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"sigs.k8s.io/yaml"

	"github.com/weir-mesh/weir/translator"
	"github.com/weir-mesh/weir/translator/envoy"
	"github.com/weir-mesh/weir/watcher"
)

var update = flag.Bool("update", false, "rewrite golden files and delete stale ones")

// goldenProxies are the proxies every golden case renders resources for.
var goldenProxies = []envoy.Proxy{
	{Role: envoy.Sidecar, Namespace: "default", OutboundAddress: "127.0.0.1", OutboundPort: envoy.DefaultOutboundPort},
	{Role: envoy.GRPC},
	// Also the proxy of the Gateway API Gateway default/gateway.
	{Role: envoy.Gateway, Labels: "gateway.envoyproxy.io/owning-gateway-namespace=default,gateway.networking.k8s.io/gateway-name=gateway,istio=ingressgateway"},
}

// translateManifests runs the whole translation offline, as `weir translate`.
func translateManifests(t testing.TB, name string, data []byte) ([]byte, error) {
	objs, _, err := watcher.DecodeFile(name, data)
	if err != nil {
		return nil, err
	}
	store, err := watcher.NewStore()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := store.ReplaceSource(name, objs); err != nil {
		t.Fatal(err)
	}
	out, err := translator.Render(translator.Translate(store.Snapshot(), translator.Options{}), goldenProxies)
	if err != nil {
		t.Fatalf("render: %v", err)
	}
	j, err := json.Marshal(out)
	if err != nil {
		t.Fatal(err)
	}
	return yaml.JSONToYAML(j)
}

// TestGolden translates testdata/<case>.in.yaml and compares the status
// conditions and Envoy resources with testdata/<case>.out.yaml.
func TestGolden(t *testing.T) {
	inputs, err := filepath.Glob("testdata/*.in.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if len(inputs) == 0 {
		t.Fatal("no golden inputs in testdata/")
	}
	for _, in := range inputs {
		name := strings.TrimSuffix(filepath.Base(in), ".in.yaml")
		t.Run(name, func(t *testing.T) {
			data, err := os.ReadFile(in)
			if err != nil {
				t.Fatal(err)
			}
			got, err := translateManifests(t, in, data)
			if err != nil {
				t.Fatalf("decode %s: %v", in, err)
			}
			golden := strings.TrimSuffix(in, ".in.yaml") + ".out.yaml"
			if *update {
				if err := os.WriteFile(golden, got, 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test ./translator -update to create it)", err)
			}
			if diff := cmp.Diff(string(want), string(got)); diff != "" {
				t.Errorf("%s differs from the golden file (-want +got; -update rewrites it):\n%s", name, diff)
			}
		})
	}
	if *update {
		deleteStaleGoldens(t, inputs)
	}
}

func deleteStaleGoldens(t *testing.T, inputs []string) {
	have := map[string]bool{}
	for _, in := range inputs {
		have[strings.TrimSuffix(in, ".in.yaml")+".out.yaml"] = true
	}
	outs, err := filepath.Glob("testdata/*.out.yaml")
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(outs)
	for _, out := range outs {
		if !have[out] {
			if err := os.Remove(out); err != nil {
				t.Fatal(err)
			}
			t.Logf("deleted stale %s", out)
		}
	}
}

// TestDeterministic translates every golden input twice through fresh stores
// and asks for byte-identical output.
func TestDeterministic(t *testing.T) {
	inputs, err := filepath.Glob("testdata/*.in.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, in := range inputs {
		data, err := os.ReadFile(in)
		if err != nil {
			t.Fatal(err)
		}
		a, errA := translateManifests(t, in, data)
		b, errB := translateManifests(t, in, data)
		if errA != nil || errB != nil {
			t.Fatalf("%s: %v %v", in, errA, errB)
		}
		if string(a) != string(b) {
			t.Errorf("%s: two translations differ", in)
		}
	}
}

// FuzzTranslate feeds arbitrary manifests through decoding, translation and
// rendering: nothing may panic, and every rendered resource set must pass
// validation (Render fails the test otherwise).
func FuzzTranslate(f *testing.F) {
	inputs, err := filepath.Glob("testdata/*.in.yaml")
	if err != nil {
		f.Fatal(err)
	}
	for _, in := range inputs {
		data, err := os.ReadFile(in)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		_, _ = translateManifests(t, "fuzz.yaml", data) // a decode error is a fine answer
	})
}
