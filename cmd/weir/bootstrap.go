package main

import (
	"fmt"
	"io"

	"github.com/weir-mesh/weir/translator/envoy"
	"github.com/weir-mesh/weir/xds"
)

func runBootstrap(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("bootstrap", stderr)
	var o xds.BootstrapOptions
	var role string
	var adminPort, outboundPort uint
	fs.StringVar(&o.NodeID, "node-id", "", "the node's id (required; unique per proxy)")
	fs.StringVar(&role, "role", string(envoy.Sidecar), "sidecar (Envoy YAML) or grpc (proxyless gRPC JSON)")
	fs.StringVar(&o.Namespace, "namespace", "default", "the proxy's namespace: services there answer to their short name")
	fs.StringVar(&o.XDSAddr, "xds-addr", "127.0.0.1:18000", "weir's ADS address")
	fs.StringVar(&o.AdminAddress, "admin-address", "127.0.0.1", "Envoy admin listener address")
	fs.UintVar(&adminPort, "admin-port", 15000, "Envoy admin listener port")
	fs.UintVar(&outboundPort, "outbound-port", 0, "sidecar outbound listener port (default: weir serve's --outbound-port)")
	fs.BoolVar(&o.Delta, "delta", false, "incremental xDS (DELTA_GRPC): only changed resources are sent (Envoy only)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	r, err := envoy.ParseRole(role)
	if err != nil {
		return fmt.Errorf("--role: %w", err)
	}
	if adminPort > 65535 || outboundPort > 65535 {
		return fmt.Errorf("--admin-port and --outbound-port must be port numbers")
	}
	o.Role, o.AdminPort, o.OutboundPort = r, uint32(adminPort), uint32(outboundPort)
	var out []byte
	if r == envoy.GRPC {
		out, err = xds.GRPCBootstrap(o)
	} else {
		out, err = xds.EnvoyBootstrap(o)
	}
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(stdout, "%s\n", out)
	return err
}
