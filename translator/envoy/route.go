package envoy

import (
	"math"
	"net/netip"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	faultcommonv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/common/fault/v3"
	faultv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/fault/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"github.com/envoyproxy/go-control-plane/pkg/wellknown"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/weir-mesh/weir/translator/internal/text"
	"github.com/weir-mesh/weir/translator/ir"
)

// buildOutboundRouteConfig gives every host a virtual host with its routes
// (routes[i] are those of hosts[i]) as sidecars in proxyNamespace see it.
// With foreign nil, a domain claimed by two hosts goes to the first in name
// order. Non-nil, foreign holds each host's virtual host as sidecars of
// other namespaces see it (buildForeignVirtualHosts), which the
// configuration shares: only the hosts of proxyNamespace get one of their
// own. That needs domains no two hosts can claim (see
// sidecarDomainsUnique).
func buildOutboundRouteConfig(hosts []ir.Host, routes [][]*routev3.Route, proxyNamespace string, foreign []*routev3.VirtualHost) *routev3.RouteConfiguration {
	rc := &routev3.RouteConfiguration{Name: OutboundRouteConfigName, VirtualHosts: make([]*routev3.VirtualHost, 0, len(hosts))}
	if foreign != nil {
		var a domainAllocator
		var home slab[routev3.VirtualHost]
		for i, h := range hosts {
			if h.Namespace != proxyNamespace {
				rc.VirtualHosts = append(rc.VirtualHosts, foreign[i])
				continue
			}
			vh := home.new()
			vh.Name, vh.Domains, vh.Routes = h.Name, sidecarDomainsIn(&a, h, proxyNamespace), routes[i]
			rc.VirtualHosts = append(rc.VirtualHosts, vh)
		}
		return rc
	}
	domains, _ := claimedSidecarDomains(hosts, proxyNamespace, false)
	vhs := make([]routev3.VirtualHost, len(hosts))
	for i, h := range hosts {
		if len(domains[i]) > 0 {
			vh := &vhs[i]
			vh.Name, vh.Domains, vh.Routes = h.Name, domains[i], routes[i]
			rc.VirtualHosts = append(rc.VirtualHosts, vh)
		}
	}
	rc.VirtualHosts = slices.Clip(rc.VirtualHosts)
	return rc
}

// buildForeignVirtualHosts returns each host's virtual host as sidecars
// outside its namespace see it: the same in every such namespace.
func buildForeignVirtualHosts(hosts []ir.Host, routes [][]*routev3.Route) []*routev3.VirtualHost {
	var a domainAllocator
	vhs := make([]routev3.VirtualHost, len(hosts))
	out := make([]*routev3.VirtualHost, len(hosts))
	for i, h := range hosts {
		vh := &vhs[i]
		vh.Name, vh.Domains, vh.Routes = h.Name, sidecarDomainsIn(&a, h, ""), routes[i]
		out[i] = vh
	}
	return out
}

// claimedSidecarDomains returns the sidecar domains of each host in
// proxyNamespace, a domain claimed by two hosts kept by the first (unique
// says none can be: see sidecarDomainsUnique), and how many there are.
func claimedSidecarDomains(hosts []ir.Host, proxyNamespace string, unique bool) ([][]string, int) {
	domains := make([][]string, len(hosts))
	total := 0
	var a domainAllocator
	for i, h := range hosts {
		domains[i] = sidecarDomainsIn(&a, h, proxyNamespace)
		total += len(domains[i])
	}
	if !unique {
		claimDomains(domains, total)
	}
	return domains, total
}

// claimDomains removes from each list the domains of an earlier list, or
// earlier in the same list; total is their sum of lengths.
func claimDomains(domains [][]string, total int) {
	claimed := make(map[string]struct{}, total)
	for i, ds := range domains {
		unclaimed := ds[:0]
		for _, d := range ds {
			n := len(claimed)
			if claimed[d] = struct{}{}; len(claimed) > n {
				unclaimed = append(unclaimed, d)
			}
		}
		domains[i] = unclaimed
	}
}

// sidecarDomainsUnique reports whether no two sidecar domains of hosts can
// be equal, in any proxy namespace. It holds when Service and namespace
// names have no '.', ':', '[' or ']' and ClusterIPs are IP addresses (then
// each form of name, told apart by its dots, brackets and port, is a
// function of its parts), no two hosts share a Service, namespace and port,
// no two hosts with bare names share a Service and namespace, and no two
// Services share a ClusterIP. It is false for hosts not sorted by name or
// named otherwise than HostName would: the hosts of a Service are then
// adjacent, which is how the second and third conditions are checked.
func sidecarDomainsUnique(hosts []ir.Host) bool {
	ips := make(map[string]int, len(hosts)) // ClusterIP -> first host of its Service
	first := 0                              // first host of the current Service
	for i, h := range hosts {
		if strings.ContainsAny(h.Service, ".:[]") || strings.ContainsAny(h.Namespace, ".:[]") || !isHostName(h) {
			return false
		}
		if i > 0 && hosts[i-1].Name >= h.Name {
			return false
		}
		if i == 0 || h.Service != hosts[i-1].Service || h.Namespace != hosts[i-1].Namespace {
			first = i
		} else if h.BareNames && slices.ContainsFunc(hosts[first:i], func(o ir.Host) bool { return o.BareNames }) {
			return false
		}
		if h.ClusterIP == "" {
			continue
		}
		if _, err := netip.ParseAddr(h.ClusterIP); err != nil {
			return false
		}
		if owner, ok := ips[h.ClusterIP]; ok && owner != first {
			return false
		}
		ips[h.ClusterIP] = first
	}
	return true
}

// isHostName reports whether h.Name is
// "<service>.<namespace>.svc.cluster.local:<port>".
func isHostName(h ir.Host) bool {
	rest, ok := strings.CutPrefix(h.Name, h.Service)
	if ok {
		rest, ok = strings.CutPrefix(rest, ".")
	}
	if ok {
		rest, ok = strings.CutPrefix(rest, h.Namespace)
	}
	if ok {
		rest, ok = strings.CutPrefix(rest, ".svc.cluster.local:")
	}
	var portBuf [10]byte
	return ok && rest == string(strconv.AppendUint(portBuf[:0], uint64(h.Port), 10))
}

// sidecarDomains are the names a client may put in Host for h: the FQDN and
// its shorter forms, the ClusterIP, each with ":port"; the bare port also
// without it. The short name alone only works in the proxy's namespace.
// The names share one string.
func sidecarDomains(h ir.Host, proxyNamespace string) []string {
	var a domainAllocator
	return sidecarDomainsIn(&a, h, proxyNamespace)
}

// domainAllocator holds the lists and the text of many hosts' domains. Not
// safe for concurrent use; the zero value is ready.
type domainAllocator struct {
	lists slab[string]
	text  text.Slab
}

// sidecarDomainsIn is sidecarDomains, the list and its text taken from a.
func sidecarDomainsIn(a *domainAllocator, h ir.Host, proxyNamespace string) []string {
	var textBuf [256]byte
	var portBuf [10]byte
	w := domainWriter{text: textBuf[:0], port: strconv.AppendUint(portBuf[:0], uint64(h.Port), 10)}
	w = w.serviceName(h, ".svc.cluster.local")
	w = w.serviceName(h, ".svc")
	w = w.serviceName(h, "")
	if h.Namespace == proxyNamespace {
		w = w.name(h.Service, "", "")
	}
	if h.ClusterIP != "" {
		if strings.Contains(h.ClusterIP, ":") {
			w = w.name("[", h.ClusterIP, "]")
		} else {
			w = w.name(h.ClusterIP)
		}
	}
	return w.domains(a, h.BareNames)
}

// domainWriter writes up to five names, each followed by ":port", into
// text. Its methods return the updated writer, so that it and its buffers
// can stay on the caller's stack.
type domainWriter struct {
	text, port []byte
	// spans[i] are the start of name i, its end, and the end of its
	// ":port" form.
	spans [5][3]int
	n     int
}

func (w domainWriter) serviceName(h ir.Host, suffix string) domainWriter {
	return w.name(h.Service, ".", h.Namespace, suffix)
}

// name writes the concatenation of parts.
func (w domainWriter) name(parts ...string) domainWriter {
	start := len(w.text)
	for _, p := range parts {
		w.text = append(w.text, p...)
	}
	nameEnd := len(w.text)
	w.text = append(append(w.text, ':'), w.port...)
	w.spans[w.n] = [3]int{start, nameEnd, len(w.text)}
	w.n++
	return w
}

// domains returns the names with ":port", then, if bare, without; the list
// and the names' one string are taken from a.
func (w *domainWriter) domains(a *domainAllocator, bare bool) []string {
	s := a.text.String(w.text)
	size := w.n
	if bare {
		size *= 2
	}
	out := a.lists.slice(size)[:0]
	for _, sp := range w.spans[:w.n] {
		out = append(out, s[sp[0]:sp[2]])
	}
	if bare {
		for _, sp := range w.spans[:w.n] {
			out = append(out, s[sp[0]:sp[1]])
		}
	}
	return out
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

// buildRoutes returns nil for no routes.
func buildRoutes(a *routeAllocator, rs []ir.Route) []*routev3.Route {
	if len(rs) == 0 {
		return nil
	}
	out := a.lists.slice(len(rs))
	for i := range rs {
		out[i] = a.route(&rs[i])
	}
	return out
}

// routeAllocator builds the commonest route, one that forwards every
// request and does nothing else, from slabs; such routes share their match:
// callers must not modify them. Other routes are buildRoute's. Not safe for
// concurrent use; the zero value is ready.
type routeAllocator struct {
	routes   slab[routev3.Route]
	forwards slab[routev3.Route_Route]
	actions  slab[routev3.RouteAction]
	clusters slab[routev3.RouteAction_Cluster]
	lists    slab[*routev3.Route]
	// The parts of weighted cluster specifiers.
	specs        slab[routev3.RouteAction_WeightedClusters]
	weighted     slab[routev3.WeightedCluster]
	weightLists  slab[*routev3.WeightedCluster_ClusterWeight]
	weights      slab[routev3.WeightedCluster_ClusterWeight]
	weightValues slab[wrapperspb.UInt32Value]
	// catchAll is made on first use.
	catchAll *routev3.RouteMatch
}

// route is buildRoute(*r).
func (a *routeAllocator) route(r *ir.Route) *routev3.Route {
	if !isPlainForward(r) {
		return buildRoute(*r)
	}
	if a.catchAll == nil {
		a.catchAll = buildRouteMatch(ir.Match{})
	}
	action := a.actions.new()
	if len(r.Backends) == 1 {
		c := a.clusters.new()
		c.Cluster = r.Backends[0].Cluster
		action.ClusterSpecifier = c
	} else {
		action.ClusterSpecifier = a.weightedClusters(r.Backends, r.HashVersions)
	}
	forward := a.forwards.new()
	forward.Route = action
	rt := a.routes.new()
	rt.Name, rt.Match, rt.Action = r.Name, a.catchAll, forward
	return rt
}

// isPlainForward reports whether r matches every request and only forwards
// it: buildRoute sets nothing but its name, match and route action's
// clusters.
func isPlainForward(r *ir.Route) bool {
	return r.Match.IsCatchAll() && !r.Match.PathIgnoreCase && r.Redirect == nil && r.DirectResponse == nil &&
		r.Rewrite == nil && r.Timeout == 0 && r.Retry == nil && r.Fault == nil && len(r.Mirrors) == 0 &&
		r.RequestHeaders.IsEmpty() && r.ResponseHeaders.IsEmpty() && len(r.HashPolicy) == 0
}

// buildRoute forwards to r's backends, or answers itself when r redirects or
// responds directly.
func buildRoute(r ir.Route) *routev3.Route {
	rt := &routev3.Route{
		Name:                    r.Name,
		Match:                   buildRouteMatch(r.Match),
		RequestHeadersToAdd:     buildHeadersToAdd(r.RequestHeaders),
		RequestHeadersToRemove:  r.RequestHeaders.Remove,
		ResponseHeadersToAdd:    buildHeadersToAdd(r.ResponseHeaders),
		ResponseHeadersToRemove: r.ResponseHeaders.Remove,
	}
	switch {
	case r.Redirect != nil:
		rt.Action = &routev3.Route_Redirect{Redirect: buildRedirect(*r.Redirect)}
	case r.DirectResponse != nil:
		rt.Action = &routev3.Route_DirectResponse{DirectResponse: buildDirectResponse(*r.DirectResponse)}
	default:
		rt.Action = &routev3.Route_Route{Route: buildForward(r)}
	}
	if r.Fault != nil {
		rt.TypedPerFilterConfig = map[string]*anypb.Any{wellknown.Fault: mustAny(buildFault(*r.Fault))}
	}
	return rt
}

func buildRouteMatch(m ir.Match) *routev3.RouteMatch {
	rm := buildPathMatch(m)
	if m.PathIgnoreCase {
		rm.CaseSensitive = wrapperspb.Bool(false)
	}
	if len(m.Methods) > 0 {
		rm.Headers = append(rm.Headers, methodMatcher(m.Methods))
	}
	for _, h := range m.Headers {
		rm.Headers = append(rm.Headers, buildHeaderMatcher(h))
	}
	for _, q := range m.QueryParams {
		rm.QueryParameters = append(rm.QueryParameters, buildQueryMatcher(q))
	}
	return rm
}

// buildPathMatch matches PathPrefix as a plain string prefix ("/foo" also
// matches "/foobar"); a zero Match gets prefix "/".
func buildPathMatch(m ir.Match) *routev3.RouteMatch {
	switch {
	case m.PathRegex != "":
		return &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_SafeRegex{SafeRegex: regexMatcher(m.PathRegex)}}
	case m.PathExact != "":
		return &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Path{Path: m.PathExact}}
	case m.PathPrefix != "":
		return &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: m.PathPrefix}}
	}
	return &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}}
}

// buildHeaderMatcher matches h; Present with Invert matches an absent header.
func buildHeaderMatcher(h ir.HeaderMatch) *routev3.HeaderMatcher {
	hm := &routev3.HeaderMatcher{Name: h.Name, InvertMatch: h.Invert}
	if h.Present {
		hm.HeaderMatchSpecifier = &routev3.HeaderMatcher_PresentMatch{PresentMatch: true}
		return hm
	}
	hm.HeaderMatchSpecifier = &routev3.HeaderMatcher_StringMatch{StringMatch: stringMatcher(h.ValueRegex, h.Prefix, h.Exact)}
	return hm
}

func buildQueryMatcher(q ir.QueryMatch) *routev3.QueryParameterMatcher {
	qm := &routev3.QueryParameterMatcher{Name: q.Name}
	if q.Present {
		qm.QueryParameterMatchSpecifier = &routev3.QueryParameterMatcher_PresentMatch{PresentMatch: true}
		return qm
	}
	qm.QueryParameterMatchSpecifier = &routev3.QueryParameterMatcher_StringMatch{StringMatch: stringMatcher(q.Regex, "", q.Exact)}
	return qm
}

// stringMatcher uses the first non-empty of regex and prefix, else exact.
func stringMatcher(regex, prefix, exact string) *matcherv3.StringMatcher {
	switch {
	case regex != "":
		return &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_SafeRegex{SafeRegex: regexMatcher(regex)}}
	case prefix != "":
		return &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Prefix{Prefix: prefix}}
	}
	return &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: exact}}
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

// buildForward is the action of a route that forwards to its backends.
func buildForward(r ir.Route) *routev3.RouteAction {
	a := buildRouteAction(r.Backends, r.HashVersions)
	a.Timeout = buildDuration(r.Timeout)
	a.RetryPolicy = buildRetryPolicy(r.Retry)
	a.HashPolicy = buildHashPolicies(r.HashPolicy)
	for _, m := range r.Mirrors {
		a.RequestMirrorPolicies = append(a.RequestMirrorPolicies, buildMirror(m))
	}
	if r.Rewrite != nil {
		applyRewrite(a, *r.Rewrite)
	}
	return a
}

// buildRouteAction sends to one cluster, or to weighted clusters when there
// are several; with hashVersions the route's hash policy picks the cluster.
// Backends never have weight 0.
func buildRouteAction(backends []ir.Backend, hashVersions bool) *routev3.RouteAction {
	if len(backends) == 1 {
		return &routev3.RouteAction{ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: backends[0].Cluster}}
	}
	return &routev3.RouteAction{ClusterSpecifier: weightedClusters(backends, hashVersions)}
}

// weightedClusters allocates the messages of all the weights at once.
func weightedClusters(backends []ir.Backend, hashVersions bool) *routev3.RouteAction_WeightedClusters {
	wc := &routev3.WeightedCluster{Clusters: make([]*routev3.WeightedCluster_ClusterWeight, len(backends))}
	fillWeights(wc, make([]routev3.WeightedCluster_ClusterWeight, len(backends)), make([]wrapperspb.UInt32Value, len(backends)), backends, hashVersions)
	return &routev3.RouteAction_WeightedClusters{WeightedClusters: wc}
}

// weightedClusters is the function weightedClusters, its messages taken
// from slabs.
func (a *routeAllocator) weightedClusters(backends []ir.Backend, hashVersions bool) *routev3.RouteAction_WeightedClusters {
	wc := a.weighted.new()
	wc.Clusters = a.weightLists.slice(len(backends))
	fillWeights(wc, a.weights.slice(len(backends)), a.weightValues.slice(len(backends)), backends, hashVersions)
	spec := a.specs.new()
	spec.WeightedClusters = wc
	return spec
}

// fillWeights makes wc's clusters, a list as long as backends, weigh them,
// from weights and values (as long, zero), and with hashVersions lets the
// route's hash policy pick.
func fillWeights(wc *routev3.WeightedCluster, weights []routev3.WeightedCluster_ClusterWeight, values []wrapperspb.UInt32Value, backends []ir.Backend, hashVersions bool) {
	for i, b := range backends {
		values[i].Value = b.Weight
		weights[i].Name, weights[i].Weight = b.Cluster, &values[i]
		wc.Clusters[i] = &weights[i]
	}
	if hashVersions {
		wc.RandomValueSpecifier = &routev3.WeightedCluster_UseHashPolicy{UseHashPolicy: wrapperspb.Bool(true)}
	}
}

// buildDuration returns nil for 0 (not set) and 0s, which Envoy reads as
// "no timeout", for ir.Disabled.
func buildDuration(d ir.Duration) *durationpb.Duration {
	switch {
	case d == 0:
		return nil
	case d < 0:
		return durationpb.New(0)
	}
	return durationpb.New(time.Duration(d))
}

// applyRewrite sets a's path and host rewrites.
func applyRewrite(a *routev3.RouteAction, rw ir.Rewrite) {
	a.PrefixRewrite = rw.PathPrefix
	if rw.PathRegex != "" {
		a.RegexRewrite = &matcherv3.RegexMatchAndSubstitute{Pattern: regexMatcher(rw.PathRegex), Substitution: rw.PathSubstitution}
	}
	if rw.Host != "" {
		a.HostRewriteSpecifier = &routev3.RouteAction_HostRewriteLiteral{HostRewriteLiteral: rw.Host}
	}
}

// retriableStatusCodes is the retry condition that makes Envoy retry the
// codes in RetryPolicy.retriable_status_codes.
const retriableStatusCodes = "retriable-status-codes"

// buildRetryPolicy returns nil for nil. Numbers in RetryOn become
// retriable status codes.
func buildRetryPolicy(r *ir.Retry) *routev3.RetryPolicy {
	if r == nil {
		return nil
	}
	p := &routev3.RetryPolicy{NumRetries: wrapperspb.UInt32(r.Attempts), PerTryTimeout: buildDuration(r.PerTryTimeout)}
	var on []string
	for _, c := range strings.Split(r.RetryOn, ",") {
		c = strings.TrimSpace(c)
		if code, err := strconv.ParseUint(c, 10, 32); err == nil {
			p.RetriableStatusCodes = append(p.RetriableStatusCodes, uint32(code))
		} else if c != "" && c != retriableStatusCodes {
			on = append(on, c)
		}
	}
	if len(p.RetriableStatusCodes) > 0 {
		on = append(on, retriableStatusCodes)
	}
	p.RetryOn = strings.Join(on, ",")
	return p
}

func buildHashPolicies(hs []ir.HashPolicy) []*routev3.RouteAction_HashPolicy {
	var out []*routev3.RouteAction_HashPolicy
	for _, h := range hs {
		out = append(out, buildHashPolicy(h))
	}
	return out
}

func buildHashPolicy(h ir.HashPolicy) *routev3.RouteAction_HashPolicy {
	switch {
	case h.Cookie != nil:
		return &routev3.RouteAction_HashPolicy{PolicySpecifier: &routev3.RouteAction_HashPolicy_Cookie_{Cookie: &routev3.RouteAction_HashPolicy_Cookie{
			Name: h.Cookie.Name, Ttl: buildDuration(h.Cookie.TTL), Path: h.Cookie.Path,
		}}}
	case h.SourceIP:
		return &routev3.RouteAction_HashPolicy{PolicySpecifier: &routev3.RouteAction_HashPolicy_ConnectionProperties_{
			ConnectionProperties: &routev3.RouteAction_HashPolicy_ConnectionProperties{SourceIp: true},
		}}
	}
	return &routev3.RouteAction_HashPolicy{PolicySpecifier: &routev3.RouteAction_HashPolicy_Header_{
		Header: &routev3.RouteAction_HashPolicy_Header{HeaderName: h.Header},
	}}
}

// buildMirror copies every request when Percent is 100 or more.
func buildMirror(m ir.Mirror) *routev3.RouteAction_RequestMirrorPolicy {
	p := &routev3.RouteAction_RequestMirrorPolicy{Cluster: m.Cluster}
	if m.Percent < 100 {
		p.RuntimeFraction = &corev3.RuntimeFractionalPercent{DefaultValue: fractionalPercent(m.Percent)}
	}
	return p
}

// fractionalPercent is percent (up to four decimals) in millionths.
func fractionalPercent(percent float64) *typev3.FractionalPercent {
	return &typev3.FractionalPercent{
		Numerator:   uint32(math.Round(percent * 10000)),
		Denominator: typev3.FractionalPercent_MILLION,
	}
}

// buildHeadersToAdd overwrites for Set and appends for Add, Set first.
func buildHeadersToAdd(m ir.HeaderMods) []*corev3.HeaderValueOption {
	var out []*corev3.HeaderValueOption
	for _, h := range m.Set {
		out = append(out, headerValueOption(h, corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD))
	}
	for _, h := range m.Add {
		out = append(out, headerValueOption(h, corev3.HeaderValueOption_APPEND_IF_EXISTS_OR_ADD))
	}
	return out
}

func headerValueOption(h ir.Header, action corev3.HeaderValueOption_HeaderAppendAction) *corev3.HeaderValueOption {
	return &corev3.HeaderValueOption{
		Header:       &corev3.HeaderValue{Key: h.Name, Value: h.Value},
		AppendAction: action,
	}
}

// redirectCodes maps HTTP redirect statuses to Envoy's enum; any other
// status, 0 included, is 301.
var redirectCodes = map[uint32]routev3.RedirectAction_RedirectResponseCode{
	302: routev3.RedirectAction_FOUND,
	303: routev3.RedirectAction_SEE_OTHER,
	307: routev3.RedirectAction_TEMPORARY_REDIRECT,
	308: routev3.RedirectAction_PERMANENT_REDIRECT,
}

func buildRedirect(r ir.Redirect) *routev3.RedirectAction {
	a := &routev3.RedirectAction{
		HostRedirect: r.Host,
		PortRedirect: r.Port,
		ResponseCode: redirectCodes[r.StatusCode],
	}
	switch {
	case r.Scheme == "https":
		a.SchemeRewriteSpecifier = &routev3.RedirectAction_HttpsRedirect{HttpsRedirect: true}
	case r.Scheme != "":
		a.SchemeRewriteSpecifier = &routev3.RedirectAction_SchemeRedirect{SchemeRedirect: r.Scheme}
	}
	switch {
	case r.Path != "":
		a.PathRewriteSpecifier = &routev3.RedirectAction_PathRedirect{PathRedirect: r.Path}
	case r.PathPrefix != "":
		a.PathRewriteSpecifier = &routev3.RedirectAction_PrefixRewrite{PrefixRewrite: r.PathPrefix}
	}
	return a
}

func buildDirectResponse(d ir.DirectResponse) *routev3.DirectResponseAction {
	a := &routev3.DirectResponseAction{Status: d.Status}
	if d.Body != "" {
		a.Body = &corev3.DataSource{Specifier: &corev3.DataSource_InlineString{InlineString: d.Body}}
	}
	return a
}

// buildFault is a route's configuration of the fault filter (FaultFilter).
func buildFault(f ir.Fault) *faultv3.HTTPFault {
	hf := &faultv3.HTTPFault{}
	if f.Delay > 0 {
		hf.Delay = &faultcommonv3.FaultDelay{
			FaultDelaySecifier: &faultcommonv3.FaultDelay_FixedDelay{FixedDelay: durationpb.New(time.Duration(f.Delay))},
			Percentage:         fractionalPercent(f.DelayPercent),
		}
	}
	switch {
	case f.AbortStatus != 0:
		hf.Abort = &faultv3.FaultAbort{ErrorType: &faultv3.FaultAbort_HttpStatus{HttpStatus: f.AbortStatus}, Percentage: fractionalPercent(f.AbortPercent)}
	case f.GRPCStatus != 0:
		hf.Abort = &faultv3.FaultAbort{ErrorType: &faultv3.FaultAbort_GrpcStatus{GrpcStatus: f.GRPCStatus}, Percentage: fractionalPercent(f.AbortPercent)}
	}
	return hf
}

// FaultFilter returns the HTTP fault filter, configured per route (a route
// without fault configuration is not affected). It must come before the
// router in an HTTP connection manager's filters for routes' faults to apply.
func FaultFilter() *hcmv3.HttpFilter {
	return &hcmv3.HttpFilter{
		Name:       wellknown.Fault,
		ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: mustAny(&faultv3.HTTPFault{})},
	}
}
