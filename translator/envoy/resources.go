// Package envoy builds Envoy v3 resources from the IR for one kind of proxy.
// It is pure: the same IR and proxy give the same resources, sorted by name.
package envoy

import (
	"fmt"
	"slices"
	"sort"
	"strings"

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
	// ScopedRoutes makes a sidecar pick a route configuration per host by
	// the request's authority, over SRDS (see scoped.go); without it, one
	// route configuration holds every host.
	ScopedRoutes bool
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
	// Scopes are a sidecar's: they pick a route configuration by a
	// request's authority. In host order, not sorted.
	Scopes []*routev3.ScopedRouteConfiguration
	// SecretRefs are the names of the secrets the listeners use, sorted;
	// those absent from IR.Secrets (invalid now) are not in Secrets.
	SecretRefs []string
}

// Build returns the resources for proxy p, each list sorted by name. Only
// clusters some route uses are included. It is NewBuilder(in).Build(p):
// nothing is shared with another call, but resources of one call may share
// messages (see Builder), so a caller changing one message should
// proto.Clone it first.
func Build(in *ir.IR, p Proxy) (*Resources, error) {
	return NewBuilder(in).Build(p)
}

// referencedClusters returns the clusters the hosts' routes send or mirror
// to, and their standby clusters.
func referencedClusters(hosts []ir.Host) map[string]bool {
	n := 0
	for _, h := range hosts {
		n += len(h.Standby)
		for _, r := range h.Routes {
			n += len(r.Backends) + len(r.Mirrors)
		}
	}
	used := make(map[string]bool, n)
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

// sort sorts every list of r by name; they must not be shared.
func (r *Resources) sort() {
	slices.SortFunc(r.Listeners, func(a, b *listenerv3.Listener) int { return strings.Compare(a.Name, b.Name) })
	sortRouteConfigs(r.Routes)
	sortClusters(r.Clusters, r.Endpoints)
	slices.SortFunc(r.Secrets, func(a, b *tlsv3.Secret) int { return strings.Compare(a.Name, b.Name) })
}

// sortRouteConfigs sorts rcs by name.
func sortRouteConfigs(rcs []*routev3.RouteConfiguration) {
	byName := func(a, b *routev3.RouteConfiguration) int { return strings.Compare(a.Name, b.Name) }
	if !slices.IsSortedFunc(rcs, byName) {
		slices.SortFunc(rcs, byName)
	}
}

// adsConfigSource points a resource at the ADS stream it arrived on.
func adsConfigSource() *corev3.ConfigSource {
	return &corev3.ConfigSource{
		ResourceApiVersion:    corev3.ApiVersion_V3,
		ConfigSourceSpecifier: &corev3.ConfigSource_Ads{Ads: &corev3.AggregatedConfigSource{}},
	}
}
