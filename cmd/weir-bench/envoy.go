package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/weir-mesh/weir/translator/envoy"
	"github.com/weir-mesh/weir/xds"
)

// envoyRun is one real Envoy sidecar with the configuration of every
// service, and how long a weight change took to move its traffic.
type envoyRun struct {
	services int
	ready    time.Duration   // Envoy start -> first request routed
	follow   []time.Duration // file write -> traffic follows the new weights
}

// backendServer answers every request with its version.
func backendServer(version string) (int, func(), error) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, nil, err
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, version) }),
		ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(lis) }()
	return lis.Addr().(*net.TCPAddr).Port, func() { srv.Close() }, nil
}

func freePort() (int, error) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer lis.Close()
	return lis.Addr().(*net.TCPAddr).Port, nil
}

func runEnvoy(ctx context.Context, c config, r *report) error {
	bin, err := filepath.Abs(c.envoyBin)
	if err != nil {
		return err
	}
	if _, err := os.Stat(bin); err != nil {
		return fmt.Errorf("no Envoy at %s (set WEIR_ENVOY or run `make envoy`): %w", bin, err)
	}
	v1, stop1, err := backendServer("v1")
	if err != nil {
		return err
	}
	defer stop1()
	v2, stop2, err := backendServer("v2")
	if err != nil {
		return err
	}
	defer stop2()
	dir := filepath.Join(c.work, "envoy")
	m := newMesh(filepath.Join(dir, "manifests"), c.envoyServices, c.perNamespace)
	m.backend = func(_, v, _ int) (string, int) {
		if v == 1 {
			return "127.0.0.1", v1
		}
		return "127.0.0.1", v2
	}
	m.weights[0] = [2]int{100, 0}
	if err := m.writeAll(); err != nil {
		return err
	}
	w, err := startWeir(c.weirBin, m.dir, filepath.Join(dir, "weir.log"), c.weirArgs)
	if err != nil {
		return err
	}
	defer w.stop()
	if err := w.waitReady(5 * time.Minute); err != nil {
		return err
	}
	outbound, err := freePort()
	if err != nil {
		return err
	}
	bootstrap, err := xds.EnvoyBootstrap(xds.BootstrapOptions{NodeID: "bench-envoy", Role: envoy.Sidecar, Namespace: m.nsOf(0),
		XDSAddr: w.xdsAddr, AdminAddress: "127.0.0.1", OutboundPort: uint32(outbound)})
	if err != nil {
		return err
	}
	config, adminPath := filepath.Join(dir, "envoy.yaml"), filepath.Join(dir, "envoy-admin")
	if err := os.WriteFile(config, bootstrap, 0o644); err != nil {
		return err
	}
	logf, err := os.Create(filepath.Join(dir, "envoy.log"))
	if err != nil {
		return err
	}
	defer logf.Close()
	ectx, cancel := context.WithCancel(ctx)
	defer cancel()
	start := time.Now()
	cmd := exec.CommandContext(ectx, bin, "-c", config, "--use-dynamic-base-id", "--log-level", "warn", "--concurrency", "1",
		"--admin-address-path", adminPath)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		return err
	}
	children.add(cmd)
	defer func() {
		cancel()
		_ = cmd.Wait()
		children.remove(cmd)
	}()
	er := &envoyRun{services: c.envoyServices}
	client := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 4}}
	url := fmt.Sprintf("http://127.0.0.1:%d/", outbound)
	host := fmt.Sprintf("%s.%s:8080", svcName(0), m.nsOf(0))
	get := func() (string, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return "", err
		}
		req.Host = host
		resp, err := client.Do(req)
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK {
			return "", fmt.Errorf("%s: %.100s", resp.Status, b)
		}
		return string(b), err
	}
	if err := until(ctx, 3*time.Minute, func() bool { v, err := get(); return err == nil && v == "v1" }); err != nil {
		return fmt.Errorf("envoy never routed %s to v1 (log in %s): %w", host, dir, err)
	}
	er.ready = time.Since(start)
	r.envoy = er
	log.Printf("envoy: routing after %v", ms(er.ready))
	want := []string{"v2", "v1"}
	for round := range c.rounds {
		to := want[round%2]
		if to == "v2" {
			err = m.setWeights(0, 0, 100)
		} else {
			err = m.setWeights(0, 100, 0)
		}
		if err != nil {
			return err
		}
		t0 := time.Now()
		// Traffic follows once 20 requests in a row reach the new version;
		// the time is that of the first of them.
		var first time.Time
		run := 0
		err := until(ctx, time.Minute, func() bool {
			at := time.Now()
			v, err := get()
			if err != nil || v != to {
				run = 0
				return false
			}
			if run == 0 {
				first = at
			}
			run++
			return run >= 20
		})
		if err != nil {
			return fmt.Errorf("traffic did not move to %s: %w", to, err)
		}
		er.follow = append(er.follow, first.Sub(t0))
		log.Printf("envoy: traffic moved to %s %v after the write", to, ms(first.Sub(t0)))
		time.Sleep(500 * time.Millisecond)
	}

	return nil
}

// until calls cond until it holds, every millisecond at most.
func until(ctx context.Context, timeout time.Duration, cond func() bool) error {
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			return errors.New("timed out")
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		time.Sleep(time.Millisecond)
	}
	return nil
}

func (r *report) writeEnvoy(b *strings.Builder) {
	er := r.envoy
	if er == nil {
		return
	}
	fmt.Fprintf(b, "## A real Envoy\n\nOne Envoy sidecar (`--concurrency 1`, SotW ADS) with the configuration of %s services; requests to one\n", count(er.services))
	fmt.Fprintf(b, "service through its outbound listener. It routed its first request %s after it started. Weight changes 100/0 <-> 0/100\n", ms(er.ready))
	fmt.Fprintf(b, "(file write -> the first of 20 requests in a row answered by the new version): ")
	var parts []string
	for _, d := range er.follow {
		parts = append(parts, ms(d))
	}
	fmt.Fprintf(b, "%s; p50 %s.\n\n", strings.Join(parts, ", "), ms(percentile(er.follow, 50)))
}
