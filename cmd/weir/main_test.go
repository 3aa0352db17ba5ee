package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"sort"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestTranslateJSONContract checks the shape `weir translate -o json` prints,
// which scripts depend on.
func TestTranslateJSONContract(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if err := run(context.Background(), []string{"translate", "-f", "../../examples/canary"}, &stdout, &stderr); err != nil {
		t.Fatalf("translate: %v\n%s", err, stderr.String())
	}
	var out struct {
		Status []struct {
			Kind, Namespace, Name string
			Conditions            []map[string]string
		} `json:"status"`
		Resources map[string]map[string][]map[string]any `json:"resources"`
	}
	if err := json.Unmarshal(stdout.Bytes(), &out); err != nil {
		t.Fatalf("output is not the JSON contract: %v", err)
	}
	if len(out.Status) != 1 || out.Status[0].Kind != "TrafficSplit" || out.Status[0].Name != "httpbin-split" {
		t.Fatalf("status = %+v, want the example TrafficSplit", out.Status)
	}
	for _, c := range out.Status[0].Conditions {
		if diff := cmp.Diff([]string{"message", "reason", "status", "type"}, keys(c)); diff != "" {
			t.Errorf("condition keys (-want +got):\n%s", diff)
		}
	}
	for _, role := range []string{"sidecar", "grpc"} {
		r, ok := out.Resources[role]
		if !ok {
			t.Fatalf("no resources for role %s", role)
		}
		if diff := cmp.Diff([]string{"clusters", "endpoints", "listeners", "routes"}, keys(r)); diff != "" {
			t.Errorf("%s resource lists (-want +got):\n%s", role, diff)
		}
		for _, l := range r["listeners"] {
			if _, ok := l["name"]; !ok {
				t.Errorf("%s listener without a name: %v", role, l)
			}
		}
	}
}

func TestTranslateReportsParseErrorsWithLine(t *testing.T) {
	dir := t.TempDir()
	bad := dir + "/bad.yaml"
	writeTestFile(t, bad, "apiVersion: v1\nkind: Service\nmetadata:\n  name: x\n spec: [\n")
	var stdout, stderr bytes.Buffer
	err := run(context.Background(), []string{"translate", "-f", dir}, &stdout, &stderr)
	if err == nil || !strings.Contains(err.Error(), "bad.yaml:") {
		t.Fatalf("err = %v, want one naming bad.yaml and a line", err)
	}
}

func TestBootstrapRoles(t *testing.T) {
	for _, tc := range []struct{ role, want string }{
		{"sidecar", "ads_config"},
		{"grpc", `"server_uri": "127.0.0.1:18000"`},
	} {
		var stdout, stderr bytes.Buffer
		if err := run(context.Background(), []string{"bootstrap", "--node-id", "n1", "--role", tc.role}, &stdout, &stderr); err != nil {
			t.Fatalf("%s: %v", tc.role, err)
		}
		if !strings.Contains(stdout.String(), tc.want) {
			t.Errorf("%s bootstrap lacks %q:\n%s", tc.role, tc.want, stdout.String())
		}
	}
	var stdout, stderr bytes.Buffer
	if err := run(context.Background(), []string{"bootstrap", "--node-id", "n1", "--role", "router"}, &stdout, &stderr); err == nil {
		t.Error("an unknown role was accepted")
	}
}

func keys[V any](m map[string]V) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func writeTestFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}
