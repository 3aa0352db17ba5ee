package istio

import (
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"

	istioapi "github.com/weir-mesh/weir/api/istio"
	"github.com/weir-mesh/weir/translator/ir"
)

// matchPlan is one validated match of a rule.
type matchPlan struct {
	match ir.Match
	// port is the Service or gateway port the match is limited to; 0 is any.
	port uint32
	// gateways limits the match to these gateway keys ("mesh" or
	// "namespace/name"); nil is any.
	gateways []string
}

// appliesTo reports whether m applies in ctx.
func (m matchPlan) appliesTo(c context) bool {
	if m.port != 0 && m.port != c.port {
		return false
	}
	if m.gateways == nil {
		return true
	}
	for _, g := range m.gateways {
		if g == c.gateway {
			return true
		}
	}
	return false
}

// stringMatch is the one kind a StringMatch sets ("" for none) and its value.
func stringMatch(field string, sm *istioapi.StringMatch) (kind, value string, err *invalid) {
	if sm == nil {
		return "", "", nil
	}
	set := 0
	for k, v := range map[string]string{"exact": sm.Exact, "prefix": sm.Prefix, "regex": sm.Regex} {
		if v != "" {
			set++
			kind, value = k, v
		}
	}
	if set > 1 {
		return "", "", fieldError(ReasonInvalidField, field, "set one of exact, prefix and regex")
	}
	if kind == "regex" {
		if err := checkRegex(field+".regex", value); err != nil {
			return "", "", err
		}
	}
	return kind, value, nil
}

// translateMatch checks and translates one match of a rule; namespace
// qualifies its gateway names.
func translateMatch(field, namespace string, m istioapi.HTTPMatchRequest) (matchPlan, *invalid) {
	mp := matchPlan{port: m.Port}
	if len(m.SourceLabels) > 0 || m.SourceNamespace != "" {
		return mp, fieldError(ReasonUnsupported, field, "sourceLabels and sourceNamespace are not supported: weir's sidecars share routes between clients")
	}
	for i, g := range m.Gateways {
		mp.gateways = append(mp.gateways, gatewayKey(g, namespace))
		if g == "" {
			return mp, fieldError(ReasonInvalidField, fmt.Sprintf("%s.gateways[%d]", field, i), "must not be empty")
		}
	}
	if err := translateURI(field, m, &mp.match); err != nil {
		return mp, err
	}
	pseudo := []struct {
		name string
		sm   *istioapi.StringMatch
	}{{"method", m.Method}, {"authority", m.Authority}, {"scheme", m.Scheme}}
	for _, p := range pseudo {
		kind, v, err := stringMatch(field+"."+p.name, p.sm)
		if err != nil {
			return mp, err
		}
		if p.name == "method" && kind == "exact" {
			mp.match.Methods = []string{strings.ToUpper(v)}
			continue
		}
		if kind != "" {
			mp.match.Headers = append(mp.match.Headers, headerMatch(":"+p.name, kind, v, false))
		}
	}
	var err *invalid
	if mp.match.Headers, err = headerMatches(field+".headers", m.Headers, false, mp.match.Headers); err != nil {
		return mp, err
	}
	if mp.match.Headers, err = headerMatches(field+".withoutHeaders", m.WithoutHeaders, true, mp.match.Headers); err != nil {
		return mp, err
	}
	mp.match.QueryParams, err = queryMatches(field+".queryParams", m.QueryParams)
	return mp, err
}

func translateURI(field string, m istioapi.HTTPMatchRequest, out *ir.Match) *invalid {
	kind, v, err := stringMatch(field+".uri", m.URI)
	if err != nil {
		return err
	}
	switch kind {
	case "exact":
		out.PathExact = v
	case "prefix":
		out.PathPrefix = v
	case "regex":
		out.PathRegex = v
		if m.IgnoreURICase {
			out.PathRegex = "(?i)" + v
		}
		return nil
	}
	out.PathIgnoreCase = m.IgnoreURICase && kind != ""
	return nil
}

func headerMatch(name, kind, value string, invert bool) ir.HeaderMatch {
	h := ir.HeaderMatch{Name: name, Invert: invert}
	switch kind {
	case "exact":
		h.Exact = value
	case "prefix":
		h.Prefix = value
	case "regex":
		h.ValueRegex = value
	default:
		h.Present = true
	}
	return h
}

// headerMatches appends a match per header, sorted by name; an empty
// StringMatch means "present" (or, inverted, "absent").
func headerMatches(field string, in map[string]istioapi.StringMatch, invert bool, out []ir.HeaderMatch) ([]ir.HeaderMatch, *invalid) {
	for _, name := range slices.Sorted(maps.Keys(in)) {
		sm := in[name]
		kind, v, err := stringMatch(fmt.Sprintf("%s[%s]", field, name), &sm)
		if err != nil {
			return nil, err
		}
		if name == "" {
			return nil, fieldError(ReasonInvalidField, field, "a header name is empty")
		}
		out = append(out, headerMatch(lower(name), kind, v, invert))
	}
	return out, nil
}

func queryMatches(field string, in map[string]istioapi.StringMatch) ([]ir.QueryMatch, *invalid) {
	var out []ir.QueryMatch
	for _, name := range slices.Sorted(maps.Keys(in)) {
		sm := in[name]
		f := fmt.Sprintf("%s[%s]", field, name)
		kind, v, err := stringMatch(f, &sm)
		if err != nil {
			return nil, err
		}
		q := ir.QueryMatch{Name: name}
		switch kind {
		case "exact":
			q.Exact = v
		case "regex":
			q.Regex = v
		case "prefix":
			return nil, fieldError(ReasonUnsupported, f+".prefix", "query parameters match exact or regex, as in Istio")
		default:
			q.Present = true
		}
		out = append(out, q)
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

func lower(s string) string { return strings.ToLower(s) }
