package main

import (
	"bytes"
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/weir-mesh/weir/cmd/weir/serve"
)

// pausedRollout is a Deployment paused mid-way behind Service micro-api:
// three Pods of the old template (track: stable), two of the new one
// (track: canary), one of them not ready, and the EndpointSlice the
// controller writes for them.
func pausedRollout() string {
	var b strings.Builder
	b.WriteString(`apiVersion: v1
kind: Service
metadata: {name: micro-api, namespace: shop}
spec:
  selector: {app: micro-api}
  ports: [{name: http, port: 80, targetPort: 8080}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: micro-api-abcde
  namespace: shop
  labels: {kubernetes.io/service-name: micro-api}
addressType: IPv4
ports: [{name: http, port: 8080}]
endpoints:
`)
	for i := 1; i <= 5; i++ {
		fmt.Fprintf(&b, "- addresses: [10.0.0.%d]\n  conditions: {ready: %t}\n  targetRef: {kind: Pod, namespace: shop, name: micro-api-%d}\n", i, i != 5, i)
	}
	for i := 1; i <= 5; i++ {
		track := "stable"
		if i > 3 {
			track = "canary"
		}
		fmt.Fprintf(&b, "---\napiVersion: v1\nkind: Pod\nmetadata:\n  name: micro-api-%d\n  namespace: shop\n  labels: {app: micro-api, track: %s, version: v%d}\n", i, track, min(i/4+1, 2))
	}
	return b.String()
}

func TestTranslateServicesByVersion(t *testing.T) {
	dir := t.TempDir()
	writeTestFile(t, filepath.Join(dir, "rollout.yaml"), pausedRollout())
	for name, tc := range map[string]struct {
		args []string
		want string
	}{
		"track first": {[]string{"--version-label", "track", "--version-label", "version"}, "service shop/micro-api: canary 1 ready, stable 3 ready\n"},
		"default":     {nil, "service shop/micro-api: v1 3 ready, v2 1 ready\n"},
		"absent":      {[]string{"--version-label", "app.kubernetes.io/version"}, "service shop/micro-api: unversioned 4 ready\n"},
	} {
		t.Run(name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			args := append([]string{"translate", "-f", dir, "--services"}, tc.args...)
			if err := run(context.Background(), args, &stdout, &stderr); err != nil {
				t.Fatalf("translate: %v\n%s", err, stderr.String())
			}
			if diff := cmp.Diff(tc.want, stdout.String()); diff != "" {
				t.Errorf("output (-want +got):\n%s", diff)
			}
		})
	}
}

func TestChooseSource(t *testing.T) {
	kubeconfig := filepath.Join(t.TempDir(), "kubeconfig")
	writeTestFile(t, kubeconfig, `apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://10.1.2.3:6443"}}]
users: [{name: u, user: {token: t0k3n}}]
contexts: [{name: x, context: {cluster: c, user: u}}]
current-context: x
`)
	for name, tc := range map[string]struct {
		dir, kubeconfig, env string
		wantDir, wantHost    string
		wantErr              string
	}{
		"nothing: the example directory": {wantDir: defaultDir},
		"dir":                            {dir: "/manifests", wantDir: "/manifests"},
		"dir wins over $KUBECONFIG":      {dir: "/manifests", env: kubeconfig, wantDir: "/manifests"},
		"kubeconfig alone":               {kubeconfig: kubeconfig, wantHost: "https://10.1.2.3:6443"},
		"$KUBECONFIG":                    {env: kubeconfig, wantHost: "https://10.1.2.3:6443"},
		"both flags":                     {dir: "/manifests", kubeconfig: kubeconfig, wantErr: "give one source"},
		"missing kubeconfig":             {kubeconfig: kubeconfig + ".nope", wantErr: "--kubeconfig"},
	} {
		t.Run(name, func(t *testing.T) {
			t.Setenv("KUBECONFIG", tc.env)
			t.Setenv("KUBERNETES_SERVICE_HOST", "") // not in a Pod
			cfg := serve.Config{Dir: tc.dir}
			err := chooseSource(&cfg, tc.kubeconfig)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			host := ""
			if cfg.Kube != nil {
				host = cfg.Kube.Host
				if !strings.HasPrefix(cfg.Kube.UserAgent, "weir/") {
					t.Errorf("user agent = %q", cfg.Kube.UserAgent)
				}
			}
			if cfg.Dir != tc.wantDir || host != tc.wantHost {
				t.Errorf("dir %q, host %q; want dir %q, host %q", cfg.Dir, host, tc.wantDir, tc.wantHost)
			}
		})
	}
}

func TestRepeatableFlagsReachConfig(t *testing.T) {
	var l stringList
	for _, v := range []string{"track", "version"} {
		if err := l.Set(v); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.Set(""); err == nil {
		t.Error("an empty value was accepted")
	}
	if diff := cmp.Diff(stringList{"track", "version"}, l); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}
