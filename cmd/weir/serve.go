package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/weir-mesh/weir/cmd/weir/serve"
	"github.com/weir-mesh/weir/translator/envoy"
)

func runServe(ctx context.Context, args []string, stderr io.Writer) error {
	fs := newFlagSet("serve", stderr)
	var cfg serve.Config
	var outboundPort uint
	var logLevel string
	fs.StringVar(&cfg.Dir, "dir", "examples/canary", "directory of Kubernetes manifests to serve (watched for edits)")
	fs.StringVar(&cfg.XDSAddr, "xds-addr", "127.0.0.1:18000", "ADS gRPC listen address")
	fs.StringVar(&cfg.AdminAddr, "admin-addr", "127.0.0.1:19000", "admin HTTP listen address (/readyz, /debug/proxies, /debug/status)")
	fs.StringVar(&cfg.OutboundAddress, "outbound-address", "127.0.0.1", "sidecar outbound listener address, unless the node's metadata sets weir.outbound_address")
	fs.UintVar(&outboundPort, "outbound-port", envoy.DefaultOutboundPort, "sidecar outbound listener port, unless the node's metadata sets weir.outbound_port")
	fs.DurationVar(&cfg.ClusterGrace, "cluster-grace", 5*time.Second, "how long a cluster no route uses is still served")
	fs.DurationVar(&cfg.Debounce, "debounce", 100*time.Millisecond, "quiet time after a change before translating")
	fs.DurationVar(&cfg.DebounceMax, "debounce-max", time.Second, "longest wait before translating under a stream of changes")
	fs.StringVar(&logLevel, "log-level", "info", "debug, info, warn or error")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if outboundPort == 0 || outboundPort > 65535 {
		return fmt.Errorf("--outbound-port: %d is not a port number", outboundPort)
	}
	cfg.OutboundPort = uint32(outboundPort)
	var level slog.Level
	if err := level.UnmarshalText([]byte(logLevel)); err != nil {
		return fmt.Errorf("--log-level: %w", err)
	}
	cfg.Logger = slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	s, err := serve.New(cfg)
	if err != nil {
		return err
	}
	cfg.Logger.Info("weir serving", "version", version, "dir", cfg.Dir, "xds", s.XDSAddr(), "admin", s.AdminAddr())
	return s.Run(ctx)
}
