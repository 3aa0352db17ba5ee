package main

import (
	"fmt"
	"io"
	"strings"

	"github.com/weir-mesh/weir/translator/envoy"
	"github.com/weir-mesh/weir/xds"
)

func runBootstrap(args []string, stdout, stderr io.Writer) (err error) {
	fs := newFlagSet("bootstrap", stderr)
	var o xds.BootstrapOptions
	var role string
	var adminPort, outboundPort uint
	fs.StringVar(&o.NodeID, "node-id", "", "the node's id (required; unique per proxy)")
	fs.StringVar(&role, "role", string(envoy.Sidecar), "sidecar or gateway (Envoy YAML), or grpc (proxyless gRPC JSON)")
	fs.StringVar(&o.Namespace, "namespace", "default", "the proxy's namespace: services there answer to their short name")
	fs.StringVar(&o.XDSAddr, "xds-addr", "127.0.0.1:18000", "weir's ADS address")
	fs.StringVar(&o.AdminAddress, "admin-address", "127.0.0.1", "Envoy admin listener address")
	fs.UintVar(&adminPort, "admin-port", 15000, "Envoy admin listener port")
	fs.UintVar(&outboundPort, "outbound-port", 0, "sidecar outbound listener port (default: weir serve's --outbound-port)")
	fs.BoolVar(&o.ScopedRoutes, "scoped-routes", false, "sidecar: route by scopes, one route configuration per service port (default: weir serve's --scoped-routes)")
	fs.BoolVar(&o.Delta, "delta", false, "incremental xDS (DELTA_GRPC): only changed resources are sent (Envoy only)")
	var labels string
	fs.StringVar(&labels, "labels", "", "gateway labels k=v,k=v: they pick the Istio Gateways (by selector) and Gateway API Gateways (gateway.networking.k8s.io/gateway-name and gateway.envoyproxy.io/owning-gateway-namespace) served")
	fs.StringVar(&o.GatewayAddress, "gateway-address", "", "where a gateway's listeners bind (default 0.0.0.0)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if o.Labels, err = parseLabels(labels); err != nil {
		return fmt.Errorf("--labels: %w", err)
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

// parseLabels reads "k=v,k=v"; "" is no labels.
func parseLabels(s string) (map[string]string, error) {
	out := map[string]string{}
	for _, kv := range strings.Split(s, ",") {
		if kv = strings.TrimSpace(kv); kv == "" {
			continue
		}
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("%q is not key=value", kv)
		}
		out[k] = v
	}
	return out, nil
}
