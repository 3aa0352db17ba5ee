// Package smi is the front-end for SMI TrafficSplit and HTTPRouteGroup: it
// turns them into IR routes on their root Service's hosts, plus status.
//
// Semantics follow osm-edge: spec.service is the root Service whose names are
// routed; backends are per-version Services with relative integer weights;
// a split with matches applies only to requests matching one of its
// HTTPRouteGroups' matches, and such routes come before the catch-all.
package smi

import (
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strings"

	smiapi "github.com/weir-mesh/weir/api/smi"
	"github.com/weir-mesh/weir/translator/internal/text"
	"github.com/weir-mesh/weir/translator/ir"
	"github.com/weir-mesh/weir/translator/kube"
	"github.com/weir-mesh/weir/translator/status"
)

// Objects is the read-only view of the store this front-end needs.
type Objects interface {
	TrafficSplits() []*smiapi.TrafficSplit
	HTTPRouteGroups() []*smiapi.HTTPRouteGroup
}

// Reasons in the conditions this front-end writes.
const (
	ReasonAccepted          = "Accepted"
	ReasonResolvedRefs      = "ResolvedRefs"
	ReasonInvalidWeight     = "InvalidWeight"
	ReasonNoBackends        = "NoBackends"
	ReasonRootNotFound      = "RootNotFound"
	ReasonBackendNotFound   = "BackendNotFound"
	ReasonPortNotFound      = "PortNotFound"
	ReasonInvalidKind       = "InvalidKind"
	ReasonRouteGroupMissing = "RouteGroupNotFound"
	ReasonInvalidRouteGroup = "InvalidRouteGroup"
	ReasonInvalidMatch      = "InvalidMatch"
	ReasonConflicted        = "Conflicted"
	ReasonNoReadyEndpoints  = "NoReadyEndpoints"

	// BackendsReady is False when a backend of an accepted split has no
	// ready endpoint: its share of requests fails with 503.
	BackendsReady = "BackendsReady"
)

// Result is what the front-end produced.
type Result struct {
	// Routes maps a host name to the split routes for it, in match order. A
	// host with no entry keeps its default route.
	Routes map[string][]ir.Route
	// Standby maps a host name to the clusters of its weight-0 backends.
	Standby map[string][]string
	// Status has one entry per TrafficSplit and HTTPRouteGroup.
	Status []status.Object
}

// arena holds what accepted splits' routes are taken from.
type arena struct {
	routes []ir.Route // not yet taken
	text   text.Slab
}

// Translate reads every TrafficSplit and HTTPRouteGroup. It is pure.
func Translate(objs Objects, services *kube.Index) Result {
	groups, groupStatus := translateGroups(objs.HTTPRouteGroups())
	splits := objs.TrafficSplits()
	plans := make([]splitPlan, len(splits))
	// An accepted split has three conditions: they come from one array.
	conds := make([]status.Condition, 3*len(splits))
	for i, ts := range splits {
		planSplit(&plans[i], ts, groups, services, conds[3*i:3*i:3*i+3])
	}
	resolveConflicts(plans)
	res := Result{Routes: make(map[string][]ir.Route, len(plans)), Standby: map[string][]string{},
		Status: slices.Grow(groupStatus, len(plans))}
	// The routes come from one array too.
	a := &arena{routes: make([]ir.Route, routeCount(plans))}
	for i := range plans {
		p := &plans[i]
		if p.failed() {
			res.Status = append(res.Status, p.status)
			continue
		}
		p.accept(services, &a.text)
		res.Status = append(res.Status, p.status)
		for _, h := range p.hosts {
			if len(h.backends) > 0 {
				if routes := res.Routes[h.host]; routes != nil {
					res.Routes[h.host] = append(routes, p.routes(h.backends, a)...)
				} else {
					res.Routes[h.host] = p.routes(h.backends, a)
				}
			}
			if len(h.standby) > 0 {
				res.Standby[h.host] = append(res.Standby[h.host], h.standby...)
			}
		}
	}
	for host, routes := range res.Routes {
		res.Routes[host] = orderRoutes(routes)
	}
	for host, clusters := range res.Standby {
		res.Standby[host] = slices.Compact(slices.Sorted(slices.Values(clusters)))
	}
	return res
}

func objectStatus(kind, namespace, name string, generation int64) status.Object {
	return status.Object{Kind: kind, Namespace: namespace, Name: name, Generation: generation}
}

func rejected(reason, format string, args ...any) status.Condition {
	return status.Condition{Type: status.Accepted, Status: status.False, Reason: reason, Message: fmt.Sprintf(format, args...)}
}

// group is a validated HTTPRouteGroup: its matches, or the condition that
// rejected it.
type group struct {
	matches []ir.Match
	invalid *status.Condition
}

func translateGroups(in []*smiapi.HTTPRouteGroup) (map[string]group, []status.Object) {
	out := map[string]group{}
	var st []status.Object
	for _, g := range in {
		s := objectStatus(smiapi.HTTPRouteGroupKind, g.Namespace, g.Name, g.Generation)
		matches, bad := translateMatches(g.Spec.Matches)
		if bad != nil {
			s.Set(*bad)
		} else {
			s.Set(status.Condition{Type: status.Accepted, Status: status.True, Reason: ReasonAccepted, Message: fmt.Sprintf("%d matches", len(matches))})
		}
		out[g.Namespace+"/"+g.Name] = group{matches: matches, invalid: bad}
		st = append(st, s)
	}
	return out, st
}

func translateMatches(in []smiapi.HTTPMatch) ([]ir.Match, *status.Condition) {
	if len(in) == 0 {
		c := rejected(ReasonInvalidMatch, "spec.matches: must list at least one match")
		return nil, &c
	}
	out := make([]ir.Match, 0, len(in))
	for i, m := range in {
		field := fmt.Sprintf("spec.matches[%d]", i)
		if m.PathRegex != "" {
			if _, err := regexp.Compile(m.PathRegex); err != nil {
				c := rejected(ReasonInvalidMatch, "%s.pathRegex: %q is not a valid RE2 expression: %v", field, m.PathRegex, err)
				return nil, &c
			}
		}
		match := ir.Match{PathRegex: m.PathRegex, Methods: normalizeMethods(m.Methods)}
		for _, h := range m.Headers {
			if _, err := regexp.Compile(h.ValueRegex); err != nil {
				c := rejected(ReasonInvalidMatch, "%s.headers[%s]: %q is not a valid RE2 expression: %v", field, h.Name, h.ValueRegex, err)
				return nil, &c
			}
			match.Headers = append(match.Headers, ir.HeaderMatch{Name: strings.ToLower(h.Name), ValueRegex: h.ValueRegex})
		}
		if isMatchAllRegex(match.PathRegex) {
			match.PathRegex = ""
		}
		out = append(out, match)
	}
	return out, nil
}

// normalizeMethods upper-cases and sorts methods; "*" accepts any (nil).
func normalizeMethods(in []string) []string {
	var out []string
	for _, m := range in {
		if m == "*" {
			return nil
		}
		out = append(out, strings.ToUpper(m))
	}
	sort.Strings(out)
	return out
}

// isMatchAllRegex reports whether a path regex accepts every path.
func isMatchAllRegex(re string) bool {
	switch re {
	case ".*", "^.*$", "/.*", "^/.*$", ".+", "/.+":
		return true
	}
	return false
}

// catchAllKey is the matchKey of a split without matches.
var catchAllKey = matchKey([]ir.Match{{}})

// matchKey is a canonical form of a list of matches, used to detect two
// splits claiming the same requests.
func matchKey(ms []ir.Match) string {
	keys := make([]string, len(ms))
	for i, m := range ms {
		keys[i] = fmt.Sprintf("%q %q %+v", m.PathRegex, m.Methods, m.Headers)
	}
	sort.Strings(keys)
	return strings.Join(keys, "|")
}
