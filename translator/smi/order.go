package smi

import (
	"fmt"
	"regexp"
	"sort"

	smiapi "github.com/weir-mesh/weir/api/smi"
	"github.com/weir-mesh/weir/translator/ir"
	"github.com/weir-mesh/weir/translator/status"
)

// resolveConflicts rejects every split that claims the same root and the
// same matches as an older one (creation time, then name, decides).
func resolveConflicts(plans []splitPlan) {
	// Splits that claim the same requests share a namespace, so names
	// order them fully; a winner is the oldest of its claim.
	type claim struct{ namespace, root, matches string }
	winners := make(map[claim]*splitPlan, len(plans))
	claims := 0
	for i := range plans {
		p := &plans[i]
		if p.failed() {
			continue
		}
		claims++
		k := claim{p.ts.Namespace, p.ts.Spec.Service, p.key}
		if w, ok := winners[k]; !ok || olderThan(p.ts, w.ts) {
			winners[k] = p
		}
	}
	if len(winners) == claims {
		return
	}
	for i := range plans {
		p := &plans[i]
		if p.failed() {
			continue
		}
		if w := winners[claim{p.ts.Namespace, p.ts.Spec.Service, p.key}]; w != p {
			p.fail(status.Condition{Type: status.Accepted, Status: status.False, Reason: ReasonConflicted,
				Message: fmt.Sprintf("spec.matches: TrafficSplit %s/%s, which is older, already splits the same requests to Service %s", w.ts.Namespace, w.ts.Name, p.ts.Spec.Service)})
		}
	}
}

// olderThan orders splits by creation time, then name.
func olderThan(a, b *smiapi.TrafficSplit) bool {
	if !a.CreationTimestamp.Equal(&b.CreationTimestamp) {
		return a.CreationTimestamp.Before(&b.CreationTimestamp)
	}
	return a.Name < b.Name
}

// orderRoutes puts the most specific matches first and a catch-all last:
// an exact path before a path regex, a longer literal path prefix first, more
// header conditions first, a method restriction first. Ties keep the order
// in which splits were listed (namespace/name) and matches were written.
// It sorts routes in place and returns it.
func orderRoutes(routes []ir.Route) []ir.Route {
	out := routes
	if len(out) < 2 {
		return out
	}
	sort.SliceStable(out, func(i, j int) bool {
		return specificity(out[i].Match).moreThan(specificity(out[j].Match))
	})
	return out
}

type spec struct {
	catchAll    bool
	exactPath   bool
	prefixLen   int
	headers     int
	hasMethods  bool
	anyPathOnly bool
}

func specificity(m ir.Match) spec {
	s := spec{catchAll: m.IsCatchAll(), headers: len(m.Headers), hasMethods: len(m.Methods) > 0, anyPathOnly: m.PathRegex == ""}
	if m.PathRegex != "" {
		if re, err := regexp.Compile(m.PathRegex); err == nil {
			prefix, complete := re.LiteralPrefix()
			s.prefixLen, s.exactPath = len(prefix), complete
		}
	}
	return s
}

func (a spec) moreThan(b spec) bool {
	switch {
	case a.catchAll != b.catchAll:
		return b.catchAll
	case a.anyPathOnly != b.anyPathOnly:
		return b.anyPathOnly
	case a.exactPath != b.exactPath:
		return a.exactPath
	case a.prefixLen != b.prefixLen:
		return a.prefixLen > b.prefixLen
	case a.headers != b.headers:
		return a.headers > b.headers
	case a.hasMethods != b.hasMethods:
		return a.hasMethods
	}
	return false
}
