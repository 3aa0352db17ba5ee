// Package envoy builds Envoy v3 resources from the IR for one kind of proxy.
// It is pure: the same IR and proxy give the same resources, sorted by name.
package envoy

import (
	"fmt"
	"sort"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"

	"github.com/weir-mesh/weir/translator/ir"
)

// Role is the kind of proxy resources are built for.
type Role string

// Proxy roles.
const (
	// Sidecar is an Envoy next to an application: one outbound HTTP listener
	// routing by Host to every service.
	Sidecar Role = "sidecar"
	// GRPC is a proxyless gRPC client: one API listener per service port.
	GRPC Role = "grpc"
	// Gateway is an edge Envoy: listeners on the ports of the servers whose
	// selector its labels match, terminating TLS with certificates over SDS.
	Gateway Role = "gateway"
)

// Roles lists the supported roles in a fixed order.
var Roles = []Role{Sidecar, GRPC, Gateway}

// ParseRole returns the Role named s, or an error naming the valid roles.
func ParseRole(s string) (Role, error) {
	for _, r := range Roles {
		if string(r) == s {
			return r, nil
		}
	}
	return "", fmt.Errorf("unknown proxy role %q: want one of %v", s, Roles)
}

// DefaultOutboundPort is the sidecar's outbound listener port.
const DefaultOutboundPort = 15001

// Proxy says what a proxy needs; proxies with equal Proxy values receive
// equal resources.
type Proxy struct {
	Role Role
	// Namespace is the proxy's own namespace: only there do services answer
	// to their short name.
	Namespace string
	// OutboundAddress and OutboundPort are where a sidecar's outbound
	// listener binds.
	OutboundAddress string
	OutboundPort    uint32
	// Labels are a gateway's labels, canonical (see CanonicalLabels); they
	// pick the servers it serves.
	Labels string
	// GatewayAddress is where a gateway's listeners bind; "" means
	// DefaultGatewayAddress.
	GatewayAddress string
}

// Resources are the Envoy resources for one proxy, each list sorted by name.
type Resources struct {
	Listeners []*listenerv3.Listener
	Routes    []*routev3.RouteConfiguration
	Clusters  []*clusterv3.Cluster
	Endpoints []*endpointv3.ClusterLoadAssignment
	Secrets   []*tlsv3.Secret
	// SecretRefs are the names of the secrets the listeners use, sorted;
	// those absent from IR.Secrets (invalid now) are not in Secrets.
	SecretRefs []string
}

// Build returns the resources for proxy p. Only clusters some route uses are
// included.
func Build(in *ir.IR, p Proxy) (*Resources, error) {
	var res Resources
	switch p.Role {
	case Sidecar:
		res.Listeners = []*listenerv3.Listener{buildOutboundListener(p)}
		res.Routes = []*routev3.RouteConfiguration{buildOutboundRouteConfig(in.Hosts, p.Namespace)}
	case GRPC:
		for _, h := range in.Hosts {
			res.Listeners = append(res.Listeners, buildAPIListener(h))
			res.Routes = append(res.Routes, buildAPIRouteConfig(h))
		}
	case Gateway:
		res.Listeners, res.Routes = buildGateway(in.Servers, p)
		res.SecretRefs, res.Secrets = gatewaySecrets(res.Listeners, in.Secrets)
	default:
		return nil, fmt.Errorf("build resources: unknown proxy role %q", p.Role)
	}
	used := referencedClusters(in.Hosts)
	if p.Role == Gateway {
		used = routeConfigsClusters(res.Routes)
	}
	for _, c := range in.Clusters {
		if used[c.Name] {
			res.Clusters = append(res.Clusters, buildCluster(c))
			res.Endpoints = append(res.Endpoints, buildLoadAssignment(c))
		}
	}
	res.sort()
	return &res, nil
}

func referencedClusters(hosts []ir.Host) map[string]bool {
	used := map[string]bool{}
	for _, h := range hosts {
		for _, r := range h.Routes {
			for _, b := range r.Backends {
				used[b.Cluster] = true
			}
			for _, m := range r.Mirrors {
				used[m.Cluster] = true
			}
		}
		for _, c := range h.Standby {
			used[c] = true
		}
	}
	return used
}

// routeConfigsClusters returns the clusters the route configurations use.
func routeConfigsClusters(rcs []*routev3.RouteConfiguration) map[string]bool {
	used := map[string]bool{}
	for _, rc := range rcs {
		for _, vh := range rc.VirtualHosts {
			for _, r := range vh.Routes {
				for _, c := range RouteClusters(r) {
					used[c] = true
				}
			}
		}
	}
	return used
}

// gatewaySecrets returns the secret names the listeners use, and those of
// them that secrets has.
func gatewaySecrets(listeners []*listenerv3.Listener, secrets []ir.Secret) ([]string, []*tlsv3.Secret) {
	refs := map[string]bool{}
	for _, l := range listeners {
		for _, n := range listenerSecrets(l) {
			refs[n] = true
		}
	}
	var names []string
	for n := range refs {
		names = append(names, n)
	}
	sort.Strings(names)
	var out []*tlsv3.Secret
	for _, s := range secrets {
		if refs[s.Name] {
			out = append(out, buildSecret(s))
		}
	}
	return names, out
}

func (r *Resources) sort() {
	sort.Slice(r.Listeners, func(i, j int) bool { return r.Listeners[i].Name < r.Listeners[j].Name })
	sort.Slice(r.Routes, func(i, j int) bool { return r.Routes[i].Name < r.Routes[j].Name })
	sort.Slice(r.Clusters, func(i, j int) bool { return r.Clusters[i].Name < r.Clusters[j].Name })
	sort.Slice(r.Endpoints, func(i, j int) bool { return r.Endpoints[i].ClusterName < r.Endpoints[j].ClusterName })
	sort.Slice(r.Secrets, func(i, j int) bool { return r.Secrets[i].Name < r.Secrets[j].Name })
}

// adsConfigSource points a resource at the ADS stream it arrived on.
func adsConfigSource() *corev3.ConfigSource {
	return &corev3.ConfigSource{
		ResourceApiVersion:    corev3.ApiVersion_V3,
		ConfigSourceSpecifier: &corev3.ConfigSource_Ads{Ads: &corev3.AggregatedConfigSource{}},
	}
}
