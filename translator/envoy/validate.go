package envoy

import (
	"errors"
	"fmt"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
)

// validator is what every generated Envoy message implements.
type validator interface{ ValidateAll() error }

// Validate checks every resource with its ValidateAll and then the references
// between them: each listener's route configuration exists (API listeners
// included), each route's clusters exist, each EDS cluster has a load
// assignment, names are unique per type, and no domain appears twice in one
// route configuration. It returns all problems found, joined.
func Validate(r *Resources) error {
	var errs []error
	errs = append(errs, validateEach("listener", r.Listeners, func(l *listenerv3.Listener) string { return l.Name })...)
	errs = append(errs, validateEach("route configuration", r.Routes, func(rc *routev3.RouteConfiguration) string { return rc.Name })...)
	errs = append(errs, validateEach("cluster", r.Clusters, func(c *clusterv3.Cluster) string { return c.Name })...)
	errs = append(errs, validateEach("load assignment", r.Endpoints, func(e *endpointv3.ClusterLoadAssignment) string { return e.ClusterName })...)
	errs = append(errs, validateEach("secret", r.Secrets, func(s *tlsv3.Secret) string { return s.Name })...)
	errs = append(errs, validateRefs(r)...)
	return errors.Join(errs...)
}

func validateEach[T validator](kind string, items []T, name func(T) string) []error {
	var errs []error
	seen := map[string]bool{}
	for _, it := range items {
		n := name(it)
		if seen[n] {
			errs = append(errs, fmt.Errorf("%s %q: defined twice", kind, n))
		}
		seen[n] = true
		if err := it.ValidateAll(); err != nil {
			errs = append(errs, fmt.Errorf("%s %q: %w", kind, n, err))
		}
	}
	return errs
}

func validateRefs(r *Resources) []error {
	var errs []error
	routes := map[string]bool{}
	for _, rc := range r.Routes {
		routes[rc.Name] = true
	}
	for _, l := range r.Listeners {
		for _, name := range listenerRouteNames(l) {
			if !routes[name] {
				errs = append(errs, fmt.Errorf("listener %q: route configuration %q does not exist", l.Name, name))
			}
		}
	}
	clusters := map[string]bool{}
	for _, c := range r.Clusters {
		clusters[c.Name] = true
	}
	for _, rc := range r.Routes {
		errs = append(errs, validateRouteConfig(rc, clusters)...)
	}
	assignments := map[string]bool{}
	for _, e := range r.Endpoints {
		assignments[e.ClusterName] = true
	}
	for _, c := range r.Clusters {
		if c.GetType() == clusterv3.Cluster_EDS && !assignments[edsName(c)] {
			errs = append(errs, fmt.Errorf("cluster %q: no load assignment %q", c.Name, edsName(c)))
		}
	}
	return errs
}

func edsName(c *clusterv3.Cluster) string {
	if n := c.GetEdsClusterConfig().GetServiceName(); n != "" {
		return n
	}
	return c.Name
}

// listenerRouteNames returns the RDS names used by a listener's HTTP
// connection managers, in filter chains and in an API listener.
func listenerRouteNames(l *listenerv3.Listener) []string {
	var names []string
	add := func(h *hcmv3.HttpConnectionManager) {
		if n := h.GetRds().GetRouteConfigName(); n != "" {
			names = append(names, n)
		}
	}
	if al := l.GetApiListener().GetApiListener(); al != nil {
		h := &hcmv3.HttpConnectionManager{}
		if al.UnmarshalTo(h) == nil {
			add(h)
		}
	}
	for _, fc := range l.FilterChains {
		for _, f := range fc.Filters {
			h := &hcmv3.HttpConnectionManager{}
			if tc := f.GetTypedConfig(); tc != nil && tc.UnmarshalTo(h) == nil {
				add(h)
			}
		}
	}
	return names
}

func validateRouteConfig(rc *routev3.RouteConfiguration, clusters map[string]bool) []error {
	var errs []error
	domains := map[string]string{}
	for _, vh := range rc.VirtualHosts {
		for _, d := range vh.Domains {
			if other, ok := domains[d]; ok {
				errs = append(errs, fmt.Errorf("route configuration %q: domain %q in virtual hosts %q and %q", rc.Name, d, other, vh.Name))
			}
			domains[d] = vh.Name
		}
		for _, rt := range vh.Routes {
			for _, c := range RouteClusters(rt) {
				if !clusters[c] {
					errs = append(errs, fmt.Errorf("route configuration %q, virtual host %q, route %q: cluster %q does not exist", rc.Name, vh.Name, rt.Name, c))
				}
			}
		}
	}
	return errs
}

// RouteClusters returns the clusters a route sends to, then those it mirrors
// to; nil for none.
func RouteClusters(rt *routev3.Route) []string {
	a := rt.GetRoute()
	if a == nil {
		return nil
	}
	var out []string
	if c := a.GetCluster(); c != "" {
		out = append(out, c)
	}
	for _, wc := range a.GetWeightedClusters().GetClusters() {
		out = append(out, wc.Name)
	}
	for _, m := range a.GetRequestMirrorPolicies() {
		out = append(out, m.Cluster)
	}
	return out
}
