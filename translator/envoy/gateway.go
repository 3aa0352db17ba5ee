package envoy

import (
	"fmt"
	"slices"
	"sort"
	"strings"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	tlsinspectorv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/listener/tls_inspector/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	"github.com/envoyproxy/go-control-plane/pkg/wellknown"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/weir-mesh/weir/translator/ir"
)

// DefaultGatewayAddress is where a gateway's listeners bind by default.
const DefaultGatewayAddress = "0.0.0.0"

// gatewayPort is the servers one gateway proxy serves on one port.
type gatewayPort struct {
	port    uint32
	plain   []ir.Server
	secured []ir.Server
}

// selectServers returns the servers whose selector labels (canonical
// "k=v,k=v") include, grouped by port in port order.
func selectServers(servers []ir.Server, labels string) []gatewayPort {
	have := parseLabels(labels)
	byPort := map[uint32]*gatewayPort{}
	for _, s := range servers {
		if !selects(s.Selector, have) {
			continue
		}
		gp := byPort[s.Port]
		if gp == nil {
			gp = &gatewayPort{port: s.Port}
			byPort[s.Port] = gp
		}
		if s.TLS != nil {
			gp.secured = append(gp.secured, s)
		} else {
			gp.plain = append(gp.plain, s)
		}
	}
	out := make([]gatewayPort, 0, len(byPort))
	for _, gp := range byPort {
		out = append(out, *gp)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].port < out[j].port })
	return out
}

func selects(selector, labels map[string]string) bool {
	for k, v := range selector {
		if labels[k] != v {
			return false
		}
	}
	return true
}

// CanonicalLabels returns labels as "k=v,k=v" sorted by key: the form of
// Proxy.Labels.
func CanonicalLabels(labels map[string]string) string {
	keys := make([]string, 0, len(labels))
	for k := range labels {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k + "=" + labels[k]
	}
	return strings.Join(parts, ",")
}

func parseLabels(s string) map[string]string {
	out := map[string]string{}
	for _, kv := range strings.Split(s, ",") {
		if k, v, ok := strings.Cut(kv, "="); ok {
			out[k] = v
		}
	}
	return out
}

// buildGateway returns the listeners and route configurations of a gateway
// proxy. A port with a TLS server serves TLS only: its plain servers are
// left out.
func buildGateway(servers []ir.Server, p Proxy) ([]*listenerv3.Listener, []*routev3.RouteConfiguration) {
	var listeners []*listenerv3.Listener
	var routes []*routev3.RouteConfiguration
	for _, gp := range selectServers(servers, p.Labels) {
		if len(gp.secured) > 0 {
			l, rcs := buildTLSListener(gp, p)
			listeners, routes = append(listeners, l), append(routes, rcs...)
			continue
		}
		name := fmt.Sprintf("http.%d", gp.port)
		listeners = append(listeners, buildPlainListener(gp.port, name, p))
		routes = append(routes, buildServersRouteConfig(name, gp.plain))
	}
	return listeners, routes
}

func gatewayListenerName(p Proxy, port uint32) string {
	return fmt.Sprintf("gateway_%s_%d", gatewayAddress(p), port)
}

func gatewayAddress(p Proxy) string {
	if p.GatewayAddress == "" {
		return DefaultGatewayAddress
	}
	return p.GatewayAddress
}

func buildPlainListener(port uint32, routeConfig string, p Proxy) *listenerv3.Listener {
	return &listenerv3.Listener{
		Name:    gatewayListenerName(p, port),
		Address: socketAddress(gatewayAddress(p), port),
		FilterChains: []*listenerv3.FilterChain{{
			Filters: []*listenerv3.Filter{hcmFilter(buildGatewayHCM(routeConfig))},
		}},
	}
}

// buildTLSListener has one filter chain per TLS server, chosen by SNI; two
// servers with the same server names keep the first in name order.
func buildTLSListener(gp gatewayPort, p Proxy) (*listenerv3.Listener, []*routev3.RouteConfiguration) {
	l := &listenerv3.Listener{
		Name:            gatewayListenerName(p, gp.port),
		Address:         socketAddress(gatewayAddress(p), gp.port),
		ListenerFilters: []*listenerv3.ListenerFilter{tlsInspector()},
	}
	var routes []*routev3.RouteConfiguration
	claimed := map[string]bool{}
	for _, s := range gp.secured {
		names := serverNames(s.Hostnames)
		key := strings.Join(names, ",")
		if claimed[key] {
			continue
		}
		claimed[key] = true
		rcName := fmt.Sprintf("https.%d.%s", gp.port, s.Name)
		l.FilterChains = append(l.FilterChains, buildTLSChain(s, names, rcName))
		routes = append(routes, buildServersRouteConfig(rcName, []ir.Server{s}))
	}
	return l, routes
}

// serverNames are the SNI names of a filter chain: none (any) when a
// hostname is "*".
func serverNames(hostnames []string) []string {
	var out []string
	for _, h := range hostnames {
		if h == "*" || h == "" {
			return nil
		}
		out = append(out, h)
	}
	sort.Strings(out)
	return out
}

func buildTLSChain(s ir.Server, names []string, routeConfig string) *listenerv3.FilterChain {
	return &listenerv3.FilterChain{
		Name:             s.Name,
		FilterChainMatch: &listenerv3.FilterChainMatch{ServerNames: names},
		Filters:          []*listenerv3.Filter{hcmFilter(buildGatewayHCM(routeConfig))},
		TransportSocket: &corev3.TransportSocket{
			Name:       wellknown.TransportSocketTLS,
			ConfigType: &corev3.TransportSocket_TypedConfig{TypedConfig: mustAny(downstreamTLS(s.TLS.SecretName))},
		},
	}
}

// downstreamTLS takes its certificate over SDS, by the IR secret name.
func downstreamTLS(secret string) *tlsv3.DownstreamTlsContext {
	return &tlsv3.DownstreamTlsContext{CommonTlsContext: &tlsv3.CommonTlsContext{
		AlpnProtocols: []string{"h2", "http/1.1"},
		TlsCertificateSdsSecretConfigs: []*tlsv3.SdsSecretConfig{{
			Name:      secret,
			SdsConfig: adsConfigSource(),
		}},
	}}
}

func tlsInspector() *listenerv3.ListenerFilter {
	return &listenerv3.ListenerFilter{
		Name:       wellknown.TlsInspector,
		ConfigType: &listenerv3.ListenerFilter_TypedConfig{TypedConfig: mustAny(&tlsinspectorv3.TlsInspector{})},
	}
}

func hcmFilter(hcm *hcmv3.HttpConnectionManager) *listenerv3.Filter {
	return &listenerv3.Filter{
		Name:       wellknown.HTTPConnectionManager,
		ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: mustAny(hcm)},
	}
}

// buildGatewayHCM is an edge connection manager: the Host port is ignored
// when matching domains, and the client address is the peer's.
func buildGatewayHCM(routeConfig string) *hcmv3.HttpConnectionManager {
	hcm := buildHCM(routeConfig, routeConfig)
	hcm.StripPortMode = &hcmv3.HttpConnectionManager_StripAnyHostPort{StripAnyHostPort: true}
	hcm.UseRemoteAddress = wrapperspb.Bool(true)
	return hcm
}

// buildServersRouteConfig merges the virtual hosts of servers; a domain
// claimed twice goes to the first. A server with HTTPSRedirect redirects
// all of its domains.
func buildServersRouteConfig(name string, servers []ir.Server) *routev3.RouteConfiguration {
	rc := &routev3.RouteConfiguration{Name: name}
	claimed := map[string]bool{}
	for _, s := range servers {
		for _, vh := range serverVirtualHosts(s) {
			domains := unclaimed(vh.Domains, claimed)
			if len(domains) == 0 {
				continue
			}
			out := &routev3.VirtualHost{Name: s.Name + "/" + vh.Name, Domains: domains}
			for _, r := range vh.Routes {
				out.Routes = append(out.Routes, buildRoute(r))
			}
			rc.VirtualHosts = append(rc.VirtualHosts, out)
		}
	}
	return rc
}

// serverVirtualHosts are s's virtual hosts, or, with HTTPSRedirect, one
// virtual host redirecting every domain of s (its virtual hosts' and its
// hostnames) to https.
func serverVirtualHosts(s ir.Server) []ir.VirtualHost {
	if !s.HTTPSRedirect {
		return s.VirtualHosts
	}
	seen := map[string]bool{}
	var domains []string
	add := func(d string) {
		if d == "" {
			d = "*"
		}
		if !seen[d] {
			seen[d] = true
			domains = append(domains, d)
		}
	}
	for _, h := range s.Hostnames {
		add(h)
	}
	for _, vh := range s.VirtualHosts {
		for _, d := range vh.Domains {
			add(d)
		}
	}
	if len(domains) == 0 {
		add("*")
	}
	redirect := ir.Route{Name: "https-redirect", Redirect: &ir.Redirect{Scheme: "https", StatusCode: 301}}
	return []ir.VirtualHost{{Name: "https-redirect", Domains: domains, Routes: []ir.Route{redirect}}}
}

func unclaimed(domains []string, claimed map[string]bool) []string {
	var out []string
	for _, d := range domains {
		if !claimed[d] {
			claimed[d] = true
			out = append(out, d)
		}
	}
	return out
}

// listenerSecrets returns the SDS secret names l's filter chains use.
func listenerSecrets(l *listenerv3.Listener) []string {
	var out []string
	for _, fc := range l.FilterChains {
		ts := fc.GetTransportSocket().GetTypedConfig()
		if ts == nil {
			continue
		}
		ctx := &tlsv3.DownstreamTlsContext{}
		if err := ts.UnmarshalTo(ctx); err != nil {
			continue
		}
		for _, sds := range ctx.GetCommonTlsContext().GetTlsCertificateSdsSecretConfigs() {
			out = append(out, sds.Name)
		}
	}
	return out
}

// WithoutSecrets returns r without the TLS filter chains that use one of
// the secrets in unavailable (a Secret that was never valid: Envoy would
// hold the listener waiting for it), and without listeners left with no
// chain. r is not modified; listeners that change are copies.
func WithoutSecrets(r *Resources, unavailable map[string]bool) *Resources {
	if len(unavailable) == 0 {
		return r
	}
	out := *r
	out.Listeners = nil
	for _, l := range r.Listeners {
		kept := keptChains(l, unavailable)
		if len(kept) == len(l.FilterChains) {
			out.Listeners = append(out.Listeners, l)
			continue
		}
		if len(kept) == 0 {
			continue
		}
		cp := proto.Clone(l).(*listenerv3.Listener)
		cp.FilterChains = kept
		out.Listeners = append(out.Listeners, cp)
	}
	out.SecretRefs = nil
	for _, n := range r.SecretRefs {
		if !unavailable[n] {
			out.SecretRefs = append(out.SecretRefs, n)
		}
	}
	return &out
}

func keptChains(l *listenerv3.Listener, unavailable map[string]bool) []*listenerv3.FilterChain {
	var kept []*listenerv3.FilterChain
	for _, fc := range l.FilterChains {
		one := &listenerv3.Listener{FilterChains: []*listenerv3.FilterChain{fc}}
		if !slices.ContainsFunc(listenerSecrets(one), func(n string) bool { return unavailable[n] }) {
			kept = append(kept, fc)
		}
	}
	return kept
}
