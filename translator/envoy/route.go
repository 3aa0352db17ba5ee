package envoy

import (
	"fmt"
	"regexp"
	"sort"
	"strings"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/weir-mesh/weir/translator/ir"
)

// buildOutboundRouteConfig gives every host a virtual host. A domain claimed
// by two hosts goes to the first in name order.
func buildOutboundRouteConfig(hosts []ir.Host, proxyNamespace string) *routev3.RouteConfiguration {
	rc := &routev3.RouteConfiguration{Name: OutboundRouteConfigName}
	claimed := map[string]bool{}
	for _, h := range hosts {
		var domains []string
		for _, d := range sidecarDomains(h, proxyNamespace) {
			if !claimed[d] {
				claimed[d] = true
				domains = append(domains, d)
			}
		}
		if len(domains) > 0 {
			rc.VirtualHosts = append(rc.VirtualHosts, buildVirtualHost(h, domains))
		}
	}
	return rc
}

// sidecarDomains are the names a client may put in Host for h: the FQDN and
// its shorter forms, the ClusterIP, each with ":port"; the bare port also
// without it. The short name alone only works in the proxy's namespace.
func sidecarDomains(h ir.Host, proxyNamespace string) []string {
	names := []string{
		h.Service + "." + h.Namespace + ".svc.cluster.local",
		h.Service + "." + h.Namespace + ".svc",
		h.Service + "." + h.Namespace,
	}
	if h.Namespace == proxyNamespace {
		names = append(names, h.Service)
	}
	if h.ClusterIP != "" {
		names = append(names, hostPortName(h.ClusterIP))
	}
	var out []string
	for _, n := range names {
		out = append(out, fmt.Sprintf("%s:%d", n, h.Port))
	}
	if h.BareNames {
		out = append(out, names...)
	}
	return out
}

// hostPortName brackets IPv6 addresses.
func hostPortName(ip string) string {
	if strings.Contains(ip, ":") {
		return "[" + ip + "]"
	}
	return ip
}

// buildAPIRouteConfig is the route configuration of a gRPC API listener.
// grpc-go sets up a cluster only when a route names it, and fails the first
// RPCs a route sends to a cluster it has just set up; a standby route, which
// no request reaches, makes it set up weight-0 backends ahead of time.
func buildAPIRouteConfig(h ir.Host) *routev3.RouteConfiguration {
	vh := buildVirtualHost(h, []string{"*"})
	if len(h.Standby) > 0 {
		vh.Routes = append(vh.Routes, buildStandbyRoute(h.Standby))
	}
	return &routev3.RouteConfiguration{Name: h.Name, VirtualHosts: []*routev3.VirtualHost{vh}}
}

// WithStandby returns a copy of a gRPC route configuration whose standby
// route also names clusters, so that grpc-go sets them up before a route
// sends to them. rc is not modified.
func WithStandby(rc *routev3.RouteConfiguration, clusters []string) *routev3.RouteConfiguration {
	out := proto.Clone(rc).(*routev3.RouteConfiguration)
	for _, vh := range out.VirtualHosts {
		names := map[string]bool{}
		for _, c := range clusters {
			names[c] = true
		}
		routes := vh.Routes[:0]
		for _, r := range vh.Routes {
			if r.Name == standbyRouteName {
				for _, c := range RouteClusters(r) {
					names[c] = true
				}
				continue
			}
			routes = append(routes, r)
		}
		sorted := make([]string, 0, len(names))
		for c := range names {
			sorted = append(sorted, c)
		}
		sort.Strings(sorted)
		vh.Routes = append(routes, buildStandbyRoute(sorted))
	}
	return out
}

const standbyRouteName = "standby"

// standbyHeader is never sent; requiring it keeps the standby route
// unreachable even if it were not last.
const standbyHeader = "x-weir-standby-never-sent"

func buildStandbyRoute(clusters []string) *routev3.Route {
	backends := make([]ir.Backend, len(clusters))
	for i, c := range clusters {
		backends[i] = ir.Backend{Cluster: c, Weight: 1}
	}
	r := buildRoute(ir.Route{Name: standbyRouteName, Backends: backends})
	r.Match.Headers = []*routev3.HeaderMatcher{{
		Name:                 standbyHeader,
		HeaderMatchSpecifier: &routev3.HeaderMatcher_PresentMatch{PresentMatch: true},
	}}
	return r
}

func buildVirtualHost(h ir.Host, domains []string) *routev3.VirtualHost {
	vh := &routev3.VirtualHost{Name: h.Name, Domains: domains}
	for _, r := range h.Routes {
		vh.Routes = append(vh.Routes, buildRoute(r))
	}
	return vh
}

func buildRoute(r ir.Route) *routev3.Route {
	return &routev3.Route{
		Name:   r.Name,
		Match:  buildRouteMatch(r.Match),
		Action: &routev3.Route_Route{Route: buildRouteAction(r.Backends)},
	}
}

func buildRouteMatch(m ir.Match) *routev3.RouteMatch {
	rm := &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}}
	if m.PathRegex != "" {
		rm.PathSpecifier = &routev3.RouteMatch_SafeRegex{SafeRegex: regexMatcher(m.PathRegex)}
	}
	if len(m.Methods) > 0 {
		rm.Headers = append(rm.Headers, methodMatcher(m.Methods))
	}
	for _, h := range m.Headers {
		rm.Headers = append(rm.Headers, &routev3.HeaderMatcher{
			Name:                 h.Name,
			HeaderMatchSpecifier: &routev3.HeaderMatcher_StringMatch{StringMatch: &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_SafeRegex{SafeRegex: regexMatcher(h.ValueRegex)}}},
		})
	}
	return rm
}

func methodMatcher(methods []string) *routev3.HeaderMatcher {
	sm := &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: methods[0]}}
	if len(methods) > 1 {
		quoted := make([]string, len(methods))
		for i, m := range methods {
			quoted[i] = regexp.QuoteMeta(m)
		}
		sm.MatchPattern = &matcherv3.StringMatcher_SafeRegex{SafeRegex: regexMatcher(strings.Join(quoted, "|"))}
	}
	return &routev3.HeaderMatcher{Name: ":method", HeaderMatchSpecifier: &routev3.HeaderMatcher_StringMatch{StringMatch: sm}}
}

func regexMatcher(re string) *matcherv3.RegexMatcher {
	return &matcherv3.RegexMatcher{Regex: re}
}

// buildRouteAction sends to one cluster, or to weighted clusters when there
// are several. Backends never have weight 0.
func buildRouteAction(backends []ir.Backend) *routev3.RouteAction {
	if len(backends) == 1 {
		return &routev3.RouteAction{ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: backends[0].Cluster}}
	}
	wc := &routev3.WeightedCluster{}
	for _, b := range backends {
		wc.Clusters = append(wc.Clusters, &routev3.WeightedCluster_ClusterWeight{
			Name:   b.Cluster,
			Weight: wrapperspb.UInt32(b.Weight),
		})
	}
	return &routev3.RouteAction{ClusterSpecifier: &routev3.RouteAction_WeightedClusters{WeightedClusters: wc}}
}
