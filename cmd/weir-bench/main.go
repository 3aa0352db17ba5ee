// Command weir-bench measures weir serve at scale: it generates a mesh of
// services with versions and TrafficSplits, runs weir as a separate process
// on the file source and on a kube-apiserver it starts, connects raw ADS clients (answering like Envoy
// sidecars and proxyless gRPC clients), real grpc-go xDS clients and a real
// Envoy, and writes what it measured to a Markdown file, side by side with
// peer control planes measured in the same run.
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"strings"
	"syscall"
	"time"
)

// config is what the flags set.
type config struct {
	weirBin, envoyBin string
	kubeBin           string // directory of etcd and kube-apiserver
	deployDir         string // weir's CRDs and RBAC, for the Kubernetes path
	out, work         string
	goBench           string // file holding `go test -bench` output to include
	peersDir          string
	findings          string // hand-written profile notes to include

	services        int // the scale run
	latencyServices int // the weight-change latency run
	kubeServices    int // the Kubernetes path; 0: latencyServices
	envoyServices   int
	perNamespace    int
	proxies         int // raw sidecars (SotW) in the latency run; all proxies in the scale run
	scaleSidecars   int // full sidecars among the scale run's proxies
	proxyNamespaces int // namespaces the sidecars are spread over
	deltaProxies    int
	grpcRaw         int
	grpcGo          int
	rounds          int
	burst           int
	batch           int
	// scaleDownTimeout bounds the wait for the scale run's scale-down.
	scaleDownTimeout time.Duration
	connectTimeout   time.Duration
	peerSizes        string
	peerClients      int
	skip             map[string]bool
	weirArgs         []string
	command          string
}

func main() {
	log.SetFlags(log.Ltime)
	var c config
	var skip, weirArgs string
	var translateN, iterations int
	flag.IntVar(&translateN, "translate", 0, "only time weir's translation of this many services in this process and print JSON (the side-by-side runs use it)")
	flag.IntVar(&iterations, "iterations", 3, "translations timed with -translate")
	flag.StringVar(&c.weirBin, "weir", "bin/weir", "weir binary to run")
	flag.StringVar(&c.envoyBin, "envoy", envOr("WEIR_ENVOY", ".cache/bin/envoy"), "Envoy binary for the real-Envoy run")
	flag.StringVar(&c.kubeBin, "k8s-bin", kubeBinDir(), "directory of etcd and kube-apiserver for the Kubernetes path (`make k8sbins` builds them)")
	flag.StringVar(&c.deployDir, "deploy", "deploy", "directory of weir's CRDs (crds/) and RBAC (rbac.yaml), installed on the Kubernetes path")
	flag.StringVar(&c.out, "out", "BENCHMARKS.md", "Markdown file to write")
	flag.StringVar(&c.work, "work", "", "directory for manifests, logs and profiles (default: a new temporary one)")
	flag.StringVar(&c.goBench, "gobench", "", "file with `go test -bench` output to include")
	flag.StringVar(&c.peersDir, "peers", "bench/peers", "directory of the peer modules")
	flag.StringVar(&c.findings, "findings", "bench/findings.md", "Markdown notes on the profiles to include")
	flag.IntVar(&c.services, "services", 10000, "services in the scale run")
	flag.IntVar(&c.latencyServices, "latency-services", 1000, "services in the weight-change latency run")
	flag.IntVar(&c.kubeServices, "kube-services", 0, "services in the Kubernetes path's run (default: -latency-services)")
	flag.DurationVar(&c.scaleDownTimeout, "scale-down-timeout", 90*time.Second, "longest wait for the scale run's scale-down to the first namespace")
	flag.IntVar(&c.envoyServices, "envoy-services", 1000, "services in the real-Envoy run")
	flag.IntVar(&c.perNamespace, "per-namespace", 100, "services per namespace")
	flag.IntVar(&c.proxies, "proxies", 1000, "raw sidecar clients (state of the world) in the latency run; proxies in all in the scale run")
	flag.IntVar(&c.scaleSidecars, "scale-sidecars", 100, "full SotW sidecars among the scale run's proxies; the others are proxyless clients of one service each")
	flag.IntVar(&c.proxyNamespaces, "proxy-namespaces", 10, "namespaces the sidecars are spread over")
	flag.IntVar(&c.deltaProxies, "delta-proxies", 20, "raw sidecar clients on delta xDS")
	flag.IntVar(&c.grpcRaw, "grpc-raw", 50, "raw proxyless gRPC clients, each of one service")
	flag.IntVar(&c.grpcGo, "grpc-go", 3, "real grpc-go xDS clients")
	flag.IntVar(&c.rounds, "rounds", 5, "weight changes measured per run")
	flag.IntVar(&c.burst, "burst", 1000, "EndpointSlice updates written in one second")
	flag.IntVar(&c.batch, "batch", 100, "clients connected at a time")
	flag.DurationVar(&c.connectTimeout, "connect-timeout", 5*time.Minute, "longest wait for every client to have a configuration")
	flag.StringVar(&c.peerSizes, "peer-sizes", "1000,5000,10000", "route counts for the Envoy Gateway translator")
	flag.IntVar(&c.peerClients, "peer-clients", 100, "SotW clients of the go-control-plane peer")
	flag.StringVar(&skip, "skip", "", "comma-separated runs to skip: latency, scoped, kube, scale, envoy, peers")
	flag.StringVar(&weirArgs, "weir-args", "", "extra flags for weir serve, space-separated")
	flag.Parse()
	if translateN > 0 {
		if err := translateOnly(translateN, iterations); err != nil {
			log.Fatal(err)
		}
		return
	}
	c.skip = map[string]bool{}
	for _, s := range strings.Split(skip, ",") {
		if s != "" {
			c.skip[s] = true
		}
	}
	c.weirArgs = strings.Fields(weirArgs)
	c.command = "go run ./cmd/weir-bench " + strings.Join(os.Args[1:], " ")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	go func() {
		<-sigs
		log.Print("interrupted: stopping what this run started")
		cancel()
		children.killAll()
		os.Exit(130)
	}()
	if err := run(ctx, c); err != nil {
		children.killAll()
		log.Fatal(err)
	}
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

func run(ctx context.Context, c config) error {
	if c.work == "" {
		dir, err := os.MkdirTemp("", "weir-bench-")
		if err != nil {
			return err
		}
		c.work = dir
	}
	log.Printf("work directory %s", c.work)
	var err error
	if c.weirBin, err = filepath.Abs(c.weirBin); err != nil {
		return err
	}
	r := &report{cfg: c, started: time.Now(), loadBefore: loadAverage()}
	steps := []struct {
		name string
		run  func(context.Context, config, *report) error
	}{
		{"latency", runLatency},
		{"scoped", runScoped},
		{"kube", runKube},
		{"scale", runScale},
		{"envoy", runEnvoy},
		{"peers", runPeers},
	}
	for _, s := range steps {
		if c.skip[s.name] {
			continue
		}
		start := time.Now()
		log.Printf("== %s", s.name)
		if err := s.run(ctx, c, r); err != nil {
			r.failed = append(r.failed, fmt.Sprintf("%s: %v", s.name, err))
			log.Printf("%s failed: %v", s.name, err)
		}
		log.Printf("== %s took %v", s.name, time.Since(start).Round(time.Second))
		// A run's clients hold what they received (about 16 GB for a
		// thousand scoped sidecars); hand it back before the next run
		// starts a kube-apiserver, etcd and weir beside this process.
		debug.FreeOSMemory()
		if ctx.Err() != nil {
			break
		}
	}
	r.took, r.loadAfter = time.Since(r.started), loadAverage()
	if err := r.write(c.out); err != nil {
		return err
	}
	log.Printf("wrote %s in %v", c.out, r.took.Round(time.Second))
	return nil
}
