// Package e2e drives weir with real parts: real Envoy, real grpc-go xDS
// clients, real HTTP and gRPC traffic on loopback.
package e2e

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/weir-mesh/weir/cmd/weir/serve"
	"github.com/weir-mesh/weir/xds"
)

// repoRoot is the repository's top directory.
func repoRoot(t testing.TB) string {
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		t.Fatal("cannot locate the e2e package")
	}
	return filepath.Dir(filepath.Dir(file))
}

// envoyBinary returns the Envoy that `make test` installs (or WEIR_ENVOY).
func envoyBinary(t testing.TB) string {
	p := os.Getenv("WEIR_ENVOY")
	if p == "" {
		p = filepath.Join(repoRoot(t), ".cache", "bin", "envoy")
	}
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("no Envoy at %s (%v): run `make test`, which installs it, or set WEIR_ENVOY", p, err)
	}
	return p
}

// testWriter sends log lines to t.Log until the test ends.
type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// startWeir runs the control plane in-process on free loopback ports,
// serving the manifests in dir, until the test ends.
func startWeir(t testing.TB, dir string) *serve.Server {
	t.Helper()
	var out io.Writer = testWriter{t}
	if os.Getenv("WEIR_E2E_QUIET") != "" {
		out = io.Discard
	}
	s, err := serve.New(serve.Config{
		Dir:             dir,
		XDSAddr:         "127.0.0.1:0",
		AdminAddr:       "127.0.0.1:0",
		OutboundAddress: "127.0.0.1",
		OutboundPort:    15001,
		ClusterGrace:    2 * time.Second,
		Debounce:        20 * time.Millisecond,
		DebounceMax:     200 * time.Millisecond,
		Logger:          slog.New(slog.NewTextHandler(out, &slog.HandlerOptions{Level: slog.LevelInfo})),
	})
	if err != nil {
		t.Fatalf("start weir: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("weir stopped with: %v", err)
		}
	})
	return s
}

// copyDir copies the manifests of src into a fresh temporary directory.
func copyDir(t testing.TB, src string) string {
	t.Helper()
	dst := t.TempDir()
	entries, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if e.IsDir() {
			continue
		}
		b, err := os.ReadFile(filepath.Join(src, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		writeFile(t, filepath.Join(dst, e.Name()), string(b))
	}
	return dst
}

// writeFile replaces path atomically, as editors do.
func writeFile(t testing.TB, path, content string) {
	t.Helper()
	tmp := filepath.Join(filepath.Dir(path), "."+filepath.Base(path)+".tmp")
	if err := os.WriteFile(tmp, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// waitFor polls cond every 10 ms until it holds or timeout passes. It is
// for state that offers no event to wait on.
func waitFor(t testing.TB, timeout time.Duration, what string, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("waited %v for %s: %v", timeout, what, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// proxyOf returns what srv knows of node nodeID, and whether it is connected.
func proxyOf(srv *xds.Server, nodeID string) (xds.ProxyStatus, bool) {
	for _, p := range srv.Proxies() {
		if p.NodeID == nodeID {
			return p, true
		}
	}
	return xds.ProxyStatus{}, false
}

// ackedVersions waits until node has ACKed, for every type, the version
// weir wants it to have (past any intermediate push step), and at least one
// version differs from prev (nil prev: any published configuration). It
// returns the ACKed versions and fails on a NACK.
func ackedVersions(t testing.TB, srv *xds.Server, nodeID string, prev map[string]string, types ...string) map[string]string {
	t.Helper()
	return waitDesired(t, srv, nodeID, prev, true, types...)
}

// waitDesired is ackedVersions; with failOnNack false it tolerates NACKs
// (an earlier one, or a new one, which then shows as a timeout).
func waitDesired(t testing.TB, srv *xds.Server, nodeID string, prev map[string]string, failOnNack bool, types ...string) map[string]string {
	t.Helper()
	var acked map[string]string
	waitFor(t, 10*time.Second, "node "+nodeID+" to ACK a new configuration", func() error {
		ps, ok := proxyOf(srv, nodeID)
		if !ok {
			return errors.New("not connected")
		}
		if failOnNack && ps.LastNack != nil {
			t.Fatalf("node %s NACKed %s: %s", nodeID, ps.LastNack.TypeURL, ps.LastNack.Message)
		}
		published, desired := srv.SnapshotVersions(nodeID), srv.DesiredVersions(nodeID)
		changed := prev == nil
		for _, typ := range types {
			if published[typ] == "" || published[typ] != desired[typ] || ps.Acked[typ] != published[typ] {
				return fmt.Errorf("%s: desired %q, published %q, acked %q", typ, desired[typ], published[typ], ps.Acked[typ])
			}
			changed = changed || prev[typ] != published[typ]
		}
		if !changed {
			return errors.New("no new version published yet")
		}
		acked = ps.Acked
		return nil
	})
	return acked
}

// binomialBounds returns the range [lo, hi] that k successes out of n trials
// with probability p fall in with overwhelming likelihood: p*n +- 5 sigma.
func binomialBounds(n int, p float64) (lo, hi int) {
	mean := float64(n) * p
	sigma := math.Sqrt(float64(n) * p * (1 - p))
	lo = int(math.Floor(mean - 5*sigma))
	hi = int(math.Ceil(mean + 5*sigma))
	return max(lo, 0), min(hi, n)
}

// checkShare fails unless k of n is a plausible draw with probability p.
func checkShare(t testing.TB, what string, k, n int, p float64) {
	t.Helper()
	lo, hi := binomialBounds(n, p)
	if k < lo || k > hi {
		t.Errorf("%s: %d of %d, want within [%d, %d] (p=%.2f +- 5 sigma)", what, k, n, lo, hi, p)
	}
}
