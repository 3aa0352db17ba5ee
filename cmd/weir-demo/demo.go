package main

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// Where things run. Ports 18081 and 18082 (the backends) are in backends.go.
const (
	demoDir        = ".cache/demo"
	xdsAddr        = "127.0.0.1:18000"
	weirAdminAddr  = "127.0.0.1:19000"
	envoyAdminPort = "15000"
	envoyAdminAddr = "127.0.0.1:" + envoyAdminPort
	sidecarAddr    = "127.0.0.1:15001"
	serviceHost    = "httpbin.httpbin:8080"
)

// demo runs the whole demo until ctx ends or a child exits.
func demo(ctx context.Context, cfg config) error {
	stopBackends, err := startBackends(demoBackends())
	if err != nil {
		return err
	}
	defer stopBackends()
	if cfg.backendsOnly {
		fmt.Println("demo backends: v1 on 127.0.0.1:18081, v2 on 127.0.0.1:18082. Ctrl-C to stop.")
		<-ctx.Done()
		return nil
	}
	if err := checkPortsFree(xdsAddr, weirAdminAddr, envoyAdminAddr, sidecarAddr); err != nil {
		return err
	}
	if err := os.MkdirAll(demoDir, 0o755); err != nil {
		return fmt.Errorf("demo directory: %w", err)
	}
	g := newGroup(ctx)
	defer func() {
		fmt.Println("stopping weir and envoy ...")
		g.stop()
	}()
	client := newClient()
	if err := startWeir(g, client, cfg); err != nil {
		return err
	}
	if err := startEnvoy(g, client, cfg); err != nil {
		return err
	}
	printBanner(cfg)
	return sendTraffic(g.ctx, client)
}

// startWeir starts the control plane and waits until it is ready.
func startWeir(g *group, client *http.Client, cfg config) error {
	logPath := filepath.Join(demoDir, "weir.log")
	fmt.Printf("starting weir (log: %s) ...\n", logPath)
	err := g.start("weir", logPath, cfg.weir, "serve", "--dir", cfg.dir,
		"--xds-addr", xdsAddr, "--admin-addr", weirAdminAddr)
	if err != nil {
		return err
	}
	url := "http://" + weirAdminAddr + "/readyz"
	err = waitFor(g.ctx, "weir", func(ctx context.Context) error { return expectGET(ctx, client, url, "") })
	if err != nil && g.ctx.Err() == nil {
		return fmt.Errorf("%w\n%s", err, logTail(logPath))
	}
	return err
}

// startEnvoy writes a sidecar bootstrap, starts Envoy with it, and waits
// until Envoy is live and routes a request to a backend.
func startEnvoy(g *group, client *http.Client, cfg config) error {
	bootstrap := filepath.Join(demoDir, "envoy.yaml")
	if err := writeBootstrap(g.ctx, cfg.weir, bootstrap); err != nil {
		return err
	}
	logPath := filepath.Join(demoDir, "envoy.log")
	fmt.Printf("starting envoy (log: %s) ...\n", logPath)
	err := g.start("envoy", logPath, cfg.envoy, "-c", bootstrap, "--log-level", "warn", "--use-dynamic-base-id")
	if err != nil {
		return err
	}
	err = waitFor(g.ctx, "envoy", func(ctx context.Context) error { return envoyServes(ctx, client) })
	if err != nil && g.ctx.Err() == nil {
		return fmt.Errorf("%w\n%s\n%s", err, logTail(logPath), logTail(filepath.Join(demoDir, "weir.log")))
	}
	return err
}

// envoyServes returns nil once Envoy's admin says LIVE and a request through
// the sidecar listener reaches a backend.
func envoyServes(ctx context.Context, client *http.Client) error {
	if err := expectGET(ctx, client, "http://"+envoyAdminAddr+"/ready", "LIVE"); err != nil {
		return err
	}
	_, err := sendOne(ctx, client, "http://"+sidecarAddr+"/", serviceHost)
	return err
}

// writeBootstrap writes the Envoy bootstrap that `weir bootstrap` prints for
// the demo sidecar to path.
func writeBootstrap(ctx context.Context, weir, path string) error {
	cmd := exec.CommandContext(ctx, weir, "bootstrap", "--node-id", "demo-sidecar", "--role", "sidecar",
		"--namespace", "httpbin", "--xds-addr", xdsAddr, "--admin-port", envoyAdminPort)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return fmt.Errorf("weir bootstrap: %w: %s", err, strings.TrimSpace(stderr.String()))
	}
	if err := os.WriteFile(path, out, 0o644); err != nil {
		return fmt.Errorf("write bootstrap: %w", err)
	}
	return nil
}

// sendTraffic prints the split of a round of requests every roundInterval
// until ctx ends, and then returns the context's cause.
func sendTraffic(ctx context.Context, client *http.Client) error {
	tick := time.NewTicker(roundInterval)
	defer tick.Stop()
	for {
		t := sendRound(ctx, client, "http://"+sidecarAddr+"/", serviceHost, roundSize)
		if ctx.Err() != nil {
			return context.Cause(ctx)
		}
		fmt.Println(t)
		select {
		case <-ctx.Done():
			return context.Cause(ctx)
		case <-tick.C:
		}
	}
}

func printBanner(cfg config) {
	fmt.Printf(`
weir demo is running:
  backends  httpbin-v1 on 127.0.0.1:18081, httpbin-v2 on 127.0.0.1:18082 (in this process)
  weir      xDS on %[1]s, admin on %[2]s, serving %[3]s  (log: %[4]s/weir.log)
  envoy     sidecar listener on %[5]s, admin on %[6]s  (log: %[4]s/envoy.log)

Every %[7]s, %[8]d requests for http://%[9]s/ go through Envoy.
The split comes from %[10]s:
edit the weights and save; the split changes within a second.
Ctrl-C to stop.

`, xdsAddr, weirAdminAddr, cfg.dir, demoDir, sidecarAddr, envoyAdminAddr,
		roundInterval, roundSize, serviceHost, filepath.Join(cfg.dir, "trafficsplit.yaml"))
}
