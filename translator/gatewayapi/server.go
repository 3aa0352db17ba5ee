package gatewayapi

import (
	"fmt"
	"sort"
	"strings"

	gwapiv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/weir-mesh/weir/translator/ir"
)

// servers returns the IR servers of g's programmed listeners: one per
// port for plain HTTP, one per HTTPS listener (its SNI filter chain).
func (g *gateway) servers() []ir.Server {
	selector := map[string]string{GatewayNameLabel: g.gw.Name, GatewayNamespaceLabel: g.gw.Namespace}
	prefix := fmt.Sprintf("%s/%s/%s", gwapiv1.GroupName, g.gw.Namespace, g.gw.Name)
	plain := map[gwapiv1.PortNumber][]*listener{}
	var out []ir.Server
	for _, l := range g.listeners {
		if !l.programmed {
			continue
		}
		if l.spec.Protocol == gwapiv1.HTTPProtocolType {
			plain[l.spec.Port] = append(plain[l.spec.Port], l)
			continue
		}
		s := ir.Server{
			Name:         fmt.Sprintf("%s/%d/%s", prefix, l.spec.Port, l.spec.Name),
			Selector:     selector,
			Port:         uint32(l.spec.Port),
			TLS:          &ir.ServerTLS{SecretName: l.secret},
			VirtualHosts: virtualHosts([]*listener{l}),
		}
		if h := l.hostname(); h != "" {
			s.Hostnames = []string{h}
		}
		out = append(out, s)
	}
	for port, ls := range plain {
		out = append(out, ir.Server{
			Name:         fmt.Sprintf("%s/%d", prefix, port),
			Selector:     selector,
			Port:         uint32(port),
			VirtualHosts: virtualHosts(ls),
		})
	}
	return out
}

// virtualHosts gives every host name a listener or an attached route
// names its own virtual host, holding the routes of the listener that
// the spec picks for it (the most specific whose hostname matches), in
// precedence order. A listener's own hostname always has one, so that
// its requests never reach a less specific listener's routes.
func virtualHosts(ls []*listener) []ir.VirtualHost {
	domains := map[string]bool{}
	for _, l := range ls {
		domains[anyHost(l.hostname())] = true
		for _, a := range l.attached {
			for _, h := range a.hostnames {
				domains[h] = true
			}
		}
	}
	names := make([]string, 0, len(domains))
	for d := range domains {
		names = append(names, d)
	}
	sort.Strings(names)
	var out []ir.VirtualHost
	for _, d := range names {
		owner := mostSpecific(ls, d)
		var rules []ruleRoute
		for _, a := range owner.attached {
			if a.hostnames == nil || anyCovers(a.hostnames, d) {
				rules = append(rules, a.rules...)
			}
		}
		routes, _ := sortedRoutesOf(rules)
		out = append(out, ir.VirtualHost{Name: d, Domains: []string{d}, Routes: routes})
	}
	return withoutIdleHosts(out)
}

// withoutIdleHosts drops the virtual hosts with no route that no other
// virtual host's domain covers: Envoy answers their requests with 404
// anyway.
func withoutIdleHosts(vhs []ir.VirtualHost) []ir.VirtualHost {
	var out []ir.VirtualHost
	for _, vh := range vhs {
		if len(vh.Routes) > 0 || shadowed(vhs, vh.Name) {
			out = append(out, vh)
		}
	}
	return out
}

// shadowed reports whether a virtual host with routes, other than d's,
// would take d's requests.
func shadowed(vhs []ir.VirtualHost, d string) bool {
	for _, vh := range vhs {
		if vh.Name != d && len(vh.Routes) > 0 && hostCovers(vh.Name, d) {
			return true
		}
	}
	return false
}

func anyHost(h string) string {
	if h == "" {
		return "*"
	}
	return h
}

func anyCovers(hosts []string, d string) bool {
	for _, h := range hosts {
		if hostCovers(h, d) {
			return true
		}
	}
	return false
}

// mostSpecific returns the listener of ls whose hostname matches d most
// specifically: an exact name, then the longest wildcard, then none.
func mostSpecific(ls []*listener, d string) *listener {
	var best *listener
	bestScore := -1
	for _, l := range ls {
		h := l.hostname()
		if !hostCovers(h, d) {
			continue
		}
		score := len(h)
		if h != "" && !strings.HasPrefix(h, "*") {
			score = 1 << 20
		}
		if score > bestScore {
			best, bestScore = l, score
		}
	}
	return best
}

// sortedRoutesOf orders rules by precedence, drops repeats (a route
// attached twice) and returns their IR routes and standby clusters.
func sortedRoutesOf(rules []ruleRoute) ([]ir.Route, []string) {
	sorted := append([]ruleRoute(nil), rules...)
	sort.SliceStable(sorted, func(i, j int) bool { return sorted[i].key.less(sorted[j].key) })
	var routes []ir.Route
	var standby []string
	seen := map[string]bool{}
	for _, r := range sorted {
		if seen[r.route.Name] {
			continue
		}
		seen[r.route.Name] = true
		routes = append(routes, r.route)
		standby = append(standby, r.standby...)
	}
	return routes, standby
}

// meshRoutes returns a mesh host's routes and its sorted standby clusters.
func meshRoutes(rules []ruleRoute) ([]ir.Route, []string) {
	routes, standby := sortedRoutesOf(rules)
	sort.Strings(standby)
	return routes, dedupe(standby)
}
