// Command weir-demo is `make run`: it starts two demo backends, weir and an
// Envoy sidecar, then sends traffic through Envoy and prints the split.
package main

import (
	"context"
	"errors"
	"flag"
	"log"
	"os"
	"os/signal"
	"syscall"
)

// config holds the command-line flags.
type config struct {
	weir         string // path of the weir binary
	envoy        string // path of the envoy binary
	dir          string // directory of YAML that weir serves
	backendsOnly bool   // start only the demo backends
}

func parseFlags() config {
	var cfg config
	flag.StringVar(&cfg.weir, "weir", "bin/weir", "path of the weir binary")
	flag.StringVar(&cfg.envoy, "envoy", ".cache/bin/envoy", "path of the envoy binary")
	flag.StringVar(&cfg.dir, "dir", "examples/canary", "directory of YAML that weir serves")
	flag.BoolVar(&cfg.backendsOnly, "backends-only", false, "start only the demo backends (v1 on :18081, v2 on :18082)")
	flag.Parse()
	return cfg
}

func main() {
	log.SetFlags(0)
	log.SetPrefix("weir-demo: ")
	if err := run(parseFlags()); err != nil {
		log.Fatal(err)
	}
}

// run runs the demo until SIGINT or SIGTERM, which make it return nil, or
// until something fails, which it returns.
func run(cfg config) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := demo(ctx, cfg)
	var exited *exitError
	if ctx.Err() != nil && !errors.As(err, &exited) {
		return nil // stopped by a signal: whatever failed, failed because of it
	}
	return err
}
