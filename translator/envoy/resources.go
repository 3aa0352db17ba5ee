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
)

// Roles lists the supported roles in a fixed order.
var Roles = []Role{Sidecar, GRPC}

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
}

// Resources are the Envoy resources for one proxy, each list sorted by name.
type Resources struct {
	Listeners []*listenerv3.Listener
	Routes    []*routev3.RouteConfiguration
	Clusters  []*clusterv3.Cluster
	Endpoints []*endpointv3.ClusterLoadAssignment
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
	default:
		return nil, fmt.Errorf("build resources: unknown proxy role %q", p.Role)
	}
	used := referencedClusters(in.Hosts)
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

func (r *Resources) sort() {
	sort.Slice(r.Listeners, func(i, j int) bool { return r.Listeners[i].Name < r.Listeners[j].Name })
	sort.Slice(r.Routes, func(i, j int) bool { return r.Routes[i].Name < r.Routes[j].Name })
	sort.Slice(r.Clusters, func(i, j int) bool { return r.Clusters[i].Name < r.Clusters[j].Name })
	sort.Slice(r.Endpoints, func(i, j int) bool { return r.Endpoints[i].ClusterName < r.Endpoints[j].ClusterName })
}

// adsConfigSource points a resource at the ADS stream it arrived on.
func adsConfigSource() *corev3.ConfigSource {
	return &corev3.ConfigSource{
		ResourceApiVersion:    corev3.ApiVersion_V3,
		ConfigSourceSpecifier: &corev3.ConfigSource_Ads{Ads: &corev3.AggregatedConfigSource{}},
	}
}
