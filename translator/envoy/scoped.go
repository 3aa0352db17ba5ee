package envoy

import (
	"strconv"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/weir-mesh/weir/translator/ir"
)

// Scoped routes (Proxy.ScopedRoutes): a sidecar's outbound connection
// manager picks a route configuration per request by its authority (Host),
// through scopes it gets over SRDS: one
// scope per name a client in the proxy's namespace may use for a host (see
// sidecarDomains), each naming the host's route configuration. A host's
// route configuration and most of its scopes are the same for every
// namespace, so a change to one host's routes is a change to one small
// resource, not to a route configuration holding the whole mesh.

// OutboundScopesName names the sidecar's set of scopes.
const OutboundScopesName = "outbound"

// authorityHeader is the header whose whole value is a scope's key.
const authorityHeader = ":authority"

// outboundHCM is the sidecar's outbound connection manager, the same for
// every sidecar.
var outboundHCM = func() *anypb.Any {
	hcm := buildHCM("outbound", "")
	hcm.RouteSpecifier = &hcmv3.HttpConnectionManager_ScopedRoutes{ScopedRoutes: &hcmv3.ScopedRoutes{
		Name: OutboundScopesName,
		ScopeKeyBuilder: &hcmv3.ScopedRoutes_ScopeKeyBuilder{Fragments: []*hcmv3.ScopedRoutes_ScopeKeyBuilder_FragmentBuilder{{
			Type: &hcmv3.ScopedRoutes_ScopeKeyBuilder_FragmentBuilder_HeaderValueExtractor_{
				// No separator: index 0 is the whole value.
				HeaderValueExtractor: &hcmv3.ScopedRoutes_ScopeKeyBuilder_FragmentBuilder_HeaderValueExtractor{
					Name:        authorityHeader,
					ExtractType: &hcmv3.ScopedRoutes_ScopeKeyBuilder_FragmentBuilder_HeaderValueExtractor_Index{Index: 0},
				},
			},
		}}},
		RdsConfigSource: adsConfigSource(),
		ConfigSpecifier: &hcmv3.ScopedRoutes_ScopedRds{ScopedRds: &hcmv3.ScopedRds{ScopedRdsConfigSource: adsConfigSource()}},
	}}
	return mustAny(hcm)
}()

// buildHostRouteConfig is h's route configuration for sidecars: one
// virtual host, matching any authority (the scope matched it already).
func buildHostRouteConfig(h ir.Host, routes []*routev3.Route) *routev3.RouteConfiguration {
	var a hostConfigAllocator
	return a.routeConfig(h, routes)
}

// hostConfigAllocator builds buildHostRouteConfig's route configurations
// from slabs; they share their list of domains. Not safe for concurrent
// use; the zero value is ready.
type hostConfigAllocator struct {
	configs    slab[routev3.RouteConfiguration]
	vhosts     slab[routev3.VirtualHost]
	vhostLists slab[*routev3.VirtualHost]
	anyDomain  []string
}

func (a *hostConfigAllocator) routeConfig(h ir.Host, routes []*routev3.Route) *routev3.RouteConfiguration {
	if a.anyDomain == nil {
		a.anyDomain = []string{"*"}
	}
	vh := a.vhosts.new()
	vh.Name, vh.Domains, vh.Routes = h.Name, a.anyDomain, routes
	rc := a.configs.new()
	rc.Name, rc.VirtualHosts = h.Name, a.vhostLists.slice(1)
	rc.VirtualHosts[0] = vh
	return rc
}

// scopeAllocator builds scopes from slabs. Not safe for concurrent use; the
// zero value is ready.
type scopeAllocator struct {
	scopes    slab[routev3.ScopedRouteConfiguration]
	keys      slab[routev3.ScopedRouteConfiguration_Key]
	fragments slab[routev3.ScopedRouteConfiguration_Key_Fragment]
	lists     slab[*routev3.ScopedRouteConfiguration_Key_Fragment]
	strKeys   slab[routev3.ScopedRouteConfiguration_Key_Fragment_StringKey]
}

// scope is the scope of requests whose authority is domain: named by it,
// keyed by it, naming route configuration rc.
func (a *scopeAllocator) scope(domain, rc string) *routev3.ScopedRouteConfiguration {
	sk := a.strKeys.new()
	sk.StringKey = domain
	f := a.fragments.new()
	f.Type = sk
	k := a.keys.new()
	k.Fragments = a.lists.slice(1)
	k.Fragments[0] = f
	s := a.scopes.new()
	s.Name, s.RouteConfigurationName, s.Key = domain, rc, k
	return s
}

// scopesFor returns the scopes of domains, each naming route configuration rc.
func (a *scopeAllocator) scopesFor(domains []string, rc string) []*routev3.ScopedRouteConfiguration {
	out := make([]*routev3.ScopedRouteConfiguration, len(domains))
	for i, d := range domains {
		out[i] = a.scope(d, rc)
	}
	return out
}

// sidecarScopes is what the sidecars of one namespace share: their scopes,
// in host order, and the route configurations they name, in name order.
type sidecarScopes struct {
	scopes []*routev3.ScopedRouteConfiguration
	routes []*routev3.RouteConfiguration
}

// buildSidecarScopes gives every host of hosts a scope per sidecar domain in
// namespace ns, each naming configs[i], the route configuration of
// hosts[i]. A domain claimed by two hosts goes to the first in name order.
func buildSidecarScopes(hosts []ir.Host, configs []*routev3.RouteConfiguration, ns string) sidecarScopes {
	domains, total := claimedSidecarDomains(hosts, ns, false)
	var a scopeAllocator
	out := sidecarScopes{scopes: make([]*routev3.ScopedRouteConfiguration, 0, total)}
	for i, ds := range domains {
		if len(ds) == 0 {
			continue
		}
		out.scopes = append(out.scopes, a.scopesFor(ds, hosts[i].Name)...)
		out.routes = append(out.routes, configs[i])
	}
	sortRouteConfigs(out.routes)
	return out
}

// sharedScopes are the scopes of every namespace's sidecars when no two
// hosts can claim one domain (see sidecarDomainsUnique): each host's scopes
// for the names that work from any namespace, built once, and, for hosts
// of the proxy's namespace, those of its short names.
type sharedScopes struct {
	anyNamespace [][]*routev3.ScopedRouteConfiguration // by host
	short        [][]*routev3.ScopedRouteConfiguration // by host
}

// buildSharedScopes builds the shared scopes of hosts; built(i) returns
// those of hosts[i] if they are built already (both nil if not).
func buildSharedScopes(hosts []ir.Host, built func(i int) (anyNamespace, short []*routev3.ScopedRouteConfiguration)) *sharedScopes {
	var a scopeAllocator
	var da domainAllocator
	s := &sharedScopes{anyNamespace: make([][]*routev3.ScopedRouteConfiguration, len(hosts)), short: make([][]*routev3.ScopedRouteConfiguration, len(hosts))}
	for i, h := range hosts {
		if anyNamespace, short := built(i); anyNamespace != nil || short != nil {
			s.anyNamespace[i], s.short[i] = anyNamespace, short
			continue
		}
		s.anyNamespace[i] = a.scopesFor(sidecarDomainsIn(&da, h, ""), h.Name)
		s.short[i] = a.scopesFor(shortDomains(h), h.Name)
	}
	return s
}

// forNamespace returns the scopes of sidecars in ns.
func (s *sharedScopes) forNamespace(hosts []ir.Host, ns string) []*routev3.ScopedRouteConfiguration {
	n := 0
	for i, h := range hosts {
		n += len(s.anyNamespace[i])
		if h.Namespace == ns {
			n += len(s.short[i])
		}
	}
	out := make([]*routev3.ScopedRouteConfiguration, 0, n)
	for i, h := range hosts {
		out = append(out, s.anyNamespace[i]...)
		if h.Namespace == ns {
			out = append(out, s.short[i]...)
		}
	}
	return out
}

// shortDomains are the names of h that work only in its own namespace: its
// Service's name with ":port", and also without if h has bare names.
func shortDomains(h ir.Host) []string {
	withPort := h.Service + ":" + strconv.FormatUint(uint64(h.Port), 10)
	if h.BareNames {
		return []string{withPort, h.Service}
	}
	return []string{withPort}
}
