package gatewayapi

import (
	"fmt"
	"math"
	"regexp"
	"strings"
	"time"

	gwapiv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/weir-mesh/weir/translator/ir"
	"github.com/weir-mesh/weir/translator/status"
)

// ruleRoute is one IR route made from one match of one rule, with what
// orders it among the routes of a host.
type ruleRoute struct {
	route ir.Route
	key   precedence
	// standby are the clusters of the rule's weight-0 backends.
	standby []string
}

// precedence is the spec's order between matches: exact path before
// regular expression (Envoy Gateway's choice) before prefix, longer path,
// a method, more headers, more query parameters; then the older route,
// its namespace/name, the rule's and match's index (seq).
type precedence struct {
	pathKind int
	pathLen  int
	method   bool
	headers  int
	queries  int
	seq      int
}

const (
	pathExact = iota
	pathRegex
	pathPrefix
)

func (a precedence) less(b precedence) bool {
	switch {
	case a.pathKind != b.pathKind:
		return a.pathKind < b.pathKind
	case a.pathLen != b.pathLen:
		return a.pathLen > b.pathLen
	case a.method != b.method:
		return a.method
	case a.headers != b.headers:
		return a.headers > b.headers
	case a.queries != b.queries:
		return a.queries > b.queries
	}
	return a.seq < b.seq
}

// builtRules are a route's rules as IR routes, and what went wrong.
type builtRules struct {
	routes  []ruleRoute
	total   int
	invalid []int
	// notAccepted is the first reason a rule was dropped.
	notAccepted *status.Condition
	// unresolved is the first backend reference that did not resolve.
	unresolved *status.Condition
}

func (b *builtRules) allInvalid() bool { return b.total > 0 && len(b.invalid) == b.total }

func (b *builtRules) accepted() status.Condition { return *b.notAccepted }

func (b *builtRules) resolvedRefs() status.Condition {
	if b.unresolved != nil {
		return *b.unresolved
	}
	return condition(condResolvedRefs, true, string(gwapiv1.RouteReasonResolvedRefs), "Resolved all the Object references for the Route")
}

// conditions are an attached route's: Accepted, PartiallyInvalid when some
// rules were dropped, and ResolvedRefs.
func (b *builtRules) conditions() []status.Condition {
	out := []status.Condition{condition(condAccepted, true, string(gwapiv1.RouteReasonAccepted), "Route is accepted")}
	if len(b.invalid) > 0 {
		out = append(out, condition(string(gwapiv1.RouteConditionPartiallyInvalid), true, b.notAccepted.Reason,
			fmt.Sprintf("Dropped Rule(s) %v: %s", b.invalid, b.notAccepted.Message)))
	}
	return append(out, b.resolvedRefs())
}

func (b *builtRules) reject(rule int, reason, message string) {
	b.invalid = append(b.invalid, rule)
	if b.notAccepted == nil {
		c := condition(condAccepted, false, reason, message)
		b.notAccepted = &c
	}
}

func (b *builtRules) unresolvedRef(c status.Condition) {
	if b.unresolved == nil {
		b.unresolved = &c
	}
}

// rules builds r's rules once, whatever the parent: weir's routes do not
// depend on the listener.
func (t *translator) rules(r *gwapiv1.HTTPRoute) *builtRules {
	b := &builtRules{}
	rules := r.Spec.Rules
	if len(rules) == 0 {
		rules = []gwapiv1.HTTPRouteRule{{}}
	}
	b.total = len(rules)
	for i, rule := range rules {
		t.rule(r, i, rule, b)
	}
	return b
}

// ruleAction is what a rule does with a matching request, whatever the
// match.
type ruleAction struct {
	base     ir.Route
	redirect *gwapiv1.HTTPRequestRedirectFilter
	rewrite  *gwapiv1.HTTPURLRewriteFilter
	standby  []string
}

func (t *translator) rule(r *gwapiv1.HTTPRoute, i int, rule gwapiv1.HTTPRouteRule, b *builtRules) {
	act, msg := t.filters(r, rule, b)
	if msg != "" {
		b.reject(i, string(gwapiv1.RouteReasonUnsupportedValue), msg)
		return
	}
	if act.redirect == nil {
		t.backends(r, rule, &act, b)
	}
	if rule.Timeouts != nil && rule.Timeouts.Request != nil {
		d, err := parseDuration(string(*rule.Timeouts.Request))
		if err != nil {
			b.reject(i, string(gwapiv1.RouteReasonUnsupportedValue), fmt.Sprintf("timeouts.request: %v", err))
			return
		}
		act.base.Timeout = d
	}
	matches := rule.Matches
	if len(matches) == 0 {
		matches = []gwapiv1.HTTPRouteMatch{{}}
	}
	var routes []ruleRoute
	for j, m := range matches {
		rs, msg := t.match(fmt.Sprintf("HTTPRoute/%s/%s/rule/%d/match/%d", r.Namespace, r.Name, i, j), m, act)
		if msg != "" {
			b.reject(i, string(gwapiv1.RouteReasonUnsupportedValue), msg)
			return
		}
		routes = append(routes, rs...)
	}
	b.routes = append(b.routes, routes...)
}

// filters reads a rule's filters into act; msg explains an unsupported one.
func (t *translator) filters(r *gwapiv1.HTTPRoute, rule gwapiv1.HTTPRouteRule, b *builtRules) (act ruleAction, msg string) {
	for _, f := range rule.Filters {
		switch f.Type {
		case gwapiv1.HTTPRouteFilterRequestHeaderModifier:
			act.base.RequestHeaders = headerMods(f.RequestHeaderModifier)
		case gwapiv1.HTTPRouteFilterResponseHeaderModifier:
			act.base.ResponseHeaders = headerMods(f.ResponseHeaderModifier)
		case gwapiv1.HTTPRouteFilterRequestRedirect:
			act.redirect = f.RequestRedirect
		case gwapiv1.HTTPRouteFilterURLRewrite:
			act.rewrite = f.URLRewrite
		case gwapiv1.HTTPRouteFilterRequestMirror:
			if m, ok := t.mirror(r, f.RequestMirror, b); ok {
				act.base.Mirrors = append(act.base.Mirrors, m)
			}
		default:
			return act, fmt.Sprintf("Unsupported filter type: %s", f.Type)
		}
	}
	if act.redirect != nil && act.rewrite != nil {
		return act, "Cannot configure both RequestRedirect and URLRewrite filters in the same rule"
	}
	return act, ""
}

func headerMods(f *gwapiv1.HTTPHeaderFilter) ir.HeaderMods {
	var m ir.HeaderMods
	if f == nil {
		return m
	}
	for _, h := range f.Set {
		m.Set = append(m.Set, ir.Header{Name: strings.ToLower(string(h.Name)), Value: h.Value})
	}
	for _, h := range f.Add {
		m.Add = append(m.Add, ir.Header{Name: strings.ToLower(string(h.Name)), Value: h.Value})
	}
	for _, h := range f.Remove {
		m.Remove = append(m.Remove, strings.ToLower(h))
	}
	return m
}

// mirror resolves a RequestMirror filter; a reference that does not
// resolve is left out and reported.
func (t *translator) mirror(r *gwapiv1.HTTPRoute, f *gwapiv1.HTTPRequestMirrorFilter, b *builtRules) (ir.Mirror, bool) {
	if f == nil {
		return ir.Mirror{}, false
	}
	cluster, bad := t.backend(r.Namespace, f.BackendRef)
	if bad != nil {
		b.unresolvedRef(*bad)
		return ir.Mirror{}, false
	}
	percent := 100.0
	switch {
	case f.Percent != nil:
		percent = float64(*f.Percent)
	case f.Fraction != nil:
		den := int32(100)
		if f.Fraction.Denominator != nil && *f.Fraction.Denominator > 0 {
			den = *f.Fraction.Denominator
		}
		percent = math.Round(float64(f.Fraction.Numerator)/float64(den)*1e6) / 1e4
	}
	return ir.Mirror{Cluster: cluster, Percent: min(max(percent, 0), 100)}, true
}

// backends resolves a rule's backendRefs into weighted IR backends. The
// share of requests of references that do not resolve gets a 500, as the
// spec asks: by an abort fault when some backends resolve, by a direct
// response when none does (or the rule has none).
func (t *translator) backends(r *gwapiv1.HTTPRoute, rule gwapiv1.HTTPRouteRule, act *ruleAction, b *builtRules) {
	var valid, invalid uint64
	for _, ref := range rule.BackendRefs {
		weight := uint32(1)
		if ref.Weight != nil {
			weight = uint32(max(*ref.Weight, 0))
		}
		if len(ref.Filters) > 0 {
			b.unresolvedRef(condition(condResolvedRefs, false, "UnsupportedRefValue", "Filters on backendRefs are not supported"))
			invalid += uint64(weight)
			continue
		}
		cluster, bad := t.backend(r.Namespace, ref.BackendObjectReference)
		if bad != nil {
			b.unresolvedRef(*bad)
			invalid += uint64(weight)
			continue
		}
		if weight == 0 {
			act.standby = append(act.standby, cluster)
			continue
		}
		valid += uint64(weight)
		act.base.Backends = append(act.base.Backends, ir.Backend{Cluster: cluster, Weight: weight})
	}
	switch {
	case valid == 0:
		act.base.Backends = nil
		act.base.DirectResponse = &ir.DirectResponse{Status: 500}
	case invalid > 0:
		pct := math.Round(float64(invalid)/float64(valid+invalid)*1e6) / 1e4
		act.base.Fault = &ir.Fault{AbortPercent: pct, AbortStatus: 500}
	}
}

// match builds the IR routes of one match: two for a PathPrefix other
// than "/" (the path itself, and the path followed by "/"), since a
// Gateway API prefix matches whole path elements.
func (t *translator) match(name string, m gwapiv1.HTTPRouteMatch, act ruleAction) ([]ruleRoute, string) {
	t.seq++
	key := precedence{pathKind: pathPrefix, pathLen: 1, seq: t.seq}
	var match ir.Match
	pathType, value := gwapiv1.PathMatchPathPrefix, "/"
	if m.Path != nil {
		if m.Path.Type != nil {
			pathType = *m.Path.Type
		}
		if m.Path.Value != nil {
			value = *m.Path.Value
		}
	}
	if !strings.HasPrefix(value, "/") {
		return nil, fmt.Sprintf("path %q must start with /", value)
	}
	key.pathLen = len(value)
	switch pathType {
	case gwapiv1.PathMatchPathPrefix:
		key.pathLen = max(len(strings.TrimRight(value, "/")), 1) // a trailing "/" is ignored
	case gwapiv1.PathMatchExact:
		key.pathKind, match.PathExact = pathExact, value
	case gwapiv1.PathMatchRegularExpression:
		if _, err := regexp.Compile(value); err != nil {
			return nil, fmt.Sprintf("path regular expression %q: %v", value, err)
		}
		key.pathKind, match.PathRegex = pathRegex, value
	default:
		return nil, fmt.Sprintf("path match type %s is not supported", pathType)
	}
	if msg := headerMatches(m, &match, &key); msg != "" {
		return nil, msg
	}
	if act.rewrite != nil && act.rewrite.Path != nil || act.redirect != nil && act.redirect.Path != nil {
		if p := pathModifier(act); p.Type == gwapiv1.PrefixMatchHTTPPathModifier && pathType != gwapiv1.PathMatchPathPrefix {
			return nil, "ReplacePrefixMatch is only compatible with a PathPrefix match"
		}
	}
	if pathType != gwapiv1.PathMatchPathPrefix {
		return []ruleRoute{act.build(name, match, key, "")}, ""
	}
	prefix := strings.TrimRight(value, "/")
	if prefix == "" {
		match.PathPrefix = "/"
		return []ruleRoute{act.build(name, match, key, "/")}, ""
	}
	exact, sub := match, match
	exact.PathExact, sub.PathPrefix = prefix, prefix+"/"
	return []ruleRoute{act.build(name+"/exact", exact, key, prefix), act.build(name+"/prefix", sub, key, prefix+"/")}, ""
}

// headerMatches adds m's method, headers and query parameters to match.
func headerMatches(m gwapiv1.HTTPRouteMatch, match *ir.Match, key *precedence) string {
	if m.Method != nil {
		match.Methods = []string{string(*m.Method)}
		key.method = true
	}
	seen := map[string]bool{}
	for _, h := range m.Headers {
		name := strings.ToLower(string(h.Name))
		if seen[name] {
			continue // the spec: the first match of a name wins
		}
		seen[name] = true
		hm := ir.HeaderMatch{Name: name, Exact: h.Value}
		if h.Type != nil && *h.Type == gwapiv1.HeaderMatchRegularExpression {
			if _, err := regexp.Compile(h.Value); err != nil {
				return fmt.Sprintf("header %s regular expression: %v", h.Name, err)
			}
			hm = ir.HeaderMatch{Name: name, ValueRegex: h.Value}
		}
		match.Headers = append(match.Headers, hm)
	}
	seen = map[string]bool{}
	for _, q := range m.QueryParams {
		if seen[string(q.Name)] {
			continue
		}
		seen[string(q.Name)] = true
		qm := ir.QueryMatch{Name: string(q.Name), Exact: q.Value}
		if q.Type != nil && *q.Type == gwapiv1.QueryParamMatchRegularExpression {
			if _, err := regexp.Compile(q.Value); err != nil {
				return fmt.Sprintf("query parameter %s regular expression: %v", q.Name, err)
			}
			qm = ir.QueryMatch{Name: string(q.Name), Regex: q.Value}
		}
		match.QueryParams = append(match.QueryParams, qm)
	}
	key.headers, key.queries = len(match.Headers), len(match.QueryParams)
	return ""
}

func pathModifier(act ruleAction) gwapiv1.HTTPPathModifier {
	if act.rewrite != nil && act.rewrite.Path != nil {
		return *act.rewrite.Path
	}
	return *act.redirect.Path
}

// build returns the IR route of one match; matched is the path or prefix
// the IR match holds, which a ReplacePrefixMatch replaces.
func (act ruleAction) build(name string, m ir.Match, key precedence, matched string) ruleRoute {
	r := act.base
	r.Name, r.Match = name, m
	if act.redirect != nil {
		r.Backends, r.DirectResponse, r.Fault, r.Mirrors = nil, nil, nil, nil
		r.Redirect = redirect(act.redirect, matched)
	}
	if act.rewrite != nil && r.DirectResponse == nil {
		r.Rewrite = rewrite(act.rewrite, matched)
	}
	return ruleRoute{route: r, key: key, standby: act.standby}
}

// replacePrefix is what replaces the matched path or prefix: a prefix
// ending in "/" keeps its "/", so that path elements stay separate.
func replacePrefix(replacement, matched string) string {
	if strings.HasSuffix(matched, "/") {
		return strings.TrimRight(replacement, "/") + "/"
	}
	if replacement == "" {
		return "/"
	}
	return replacement
}

func redirect(f *gwapiv1.HTTPRequestRedirectFilter, matched string) *ir.Redirect {
	out := &ir.Redirect{StatusCode: 302}
	if f.StatusCode != nil {
		out.StatusCode = uint32(*f.StatusCode)
	}
	if f.Scheme != nil {
		out.Scheme = *f.Scheme
	}
	if f.Hostname != nil {
		out.Host = string(*f.Hostname)
	}
	if f.Port != nil {
		out.Port = uint32(*f.Port)
	}
	if f.Path != nil {
		switch {
		case f.Path.Type == gwapiv1.FullPathHTTPPathModifier && f.Path.ReplaceFullPath != nil:
			out.Path = *f.Path.ReplaceFullPath
		case f.Path.Type == gwapiv1.PrefixMatchHTTPPathModifier && f.Path.ReplacePrefixMatch != nil:
			out.PathPrefix = replacePrefix(*f.Path.ReplacePrefixMatch, matched)
		}
	}
	return out
}

func rewrite(f *gwapiv1.HTTPURLRewriteFilter, matched string) *ir.Rewrite {
	out := &ir.Rewrite{}
	if f.Hostname != nil {
		out.Host = string(*f.Hostname)
	}
	if f.Path != nil {
		switch {
		case f.Path.Type == gwapiv1.FullPathHTTPPathModifier && f.Path.ReplaceFullPath != nil:
			out.PathRegex, out.PathSubstitution = "^/.*$", *f.Path.ReplaceFullPath
		case f.Path.Type == gwapiv1.PrefixMatchHTTPPathModifier && f.Path.ReplacePrefixMatch != nil:
			out.PathPrefix = replacePrefix(*f.Path.ReplacePrefixMatch, matched)
		}
	}
	return out
}

// parseDuration reads a Gateway API duration ("10s", "1h30m", "500ms");
// zero disables the timeout.
func parseDuration(s string) (ir.Duration, error) {
	d, err := time.ParseDuration(s)
	switch {
	case err != nil:
		return 0, err
	case d < 0:
		return 0, fmt.Errorf("%q is negative", s)
	case d == 0:
		return ir.Disabled, nil
	}
	return ir.Duration(d), nil
}
