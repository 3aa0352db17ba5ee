package ingressnginx

import (
	"regexp"
	"sort"
	"strings"

	"github.com/weir-mesh/weir/translator/ir"
)

// entry is one location as a request match, with the path rewrite of its
// Ingress. A Prefix location may give two entries (exact and prefix).
type entry struct {
	loc     *location
	match   ir.Match
	rewrite *ir.Rewrite
}

// buildEntries orders the host's locations as nginx matches them. If any
// location of the host uses use-regex or rewrite-target, every path of the
// host is a case-insensitive regular expression anchored at the start, and
// the longest path is tried first; otherwise Exact paths match exactly and
// Prefix paths element-wise, the longest first. Paths that are not valid
// RE2 expressions are skipped, with a condition on their Ingress.
func buildEntries(h *hostPlan) []entry {
	for _, l := range h.locations {
		if l.wantsRegex() {
			return regexEntries(h, l)
		}
	}
	return plainEntries(h)
}

// regexEntries renders every location as a regex; why names the location
// that made the host use regular expressions.
func regexEntries(h *hostPlan, why *location) []entry {
	locs := append([]*location(nil), h.locations...)
	sort.SliceStable(locs, func(i, j int) bool {
		if len(locs[i].path) != len(locs[j].path) {
			return len(locs[i].path) > len(locs[j].path)
		}
		return locs[i].path > locs[j].path
	})
	var out []entry
	for _, l := range locs {
		re := "(?i)^(?:" + l.path + ").*"
		compiled, err := regexp.Compile(re)
		if err != nil {
			l.ing.skip(ReasonInvalidPath, "%s.path: %q is not a valid RE2 regular expression (paths of host %q are regular expressions because of %s in Ingress %s): %v",
				l.field, l.path, h.name, regexCause(why), why.ing.key(), err)
			l.ing.served--
			continue
		}
		e := entry{loc: l, match: ir.Match{PathRegex: re}}
		if l.path == "/" {
			e.match = ir.Match{PathPrefix: "/"}
		}
		if rt := l.rewrite(); rt != nil {
			e.rewrite = &ir.Rewrite{PathRegex: re, PathSubstitution: rt.substitution(compiled.NumSubexp())}
		}
		out = append(out, e)
	}
	return out
}

func regexCause(l *location) string {
	if l.ing.ann.useRegex {
		return AnnotationPrefix + annUseRegex
	}
	return AnnotationPrefix + annRewriteTarget
}

// plainEntries renders locations as nginx does without regular
// expressions: Exact paths first; a Prefix path /foo matches /foo exactly
// (unless an Exact location has it) and /foo/ as a prefix; the longest
// prefix wins.
func plainEntries(h *hostPlan) []entry {
	var exact, prefix []entry
	for _, l := range h.locations {
		switch {
		case l.exact:
			exact = append(exact, entry{loc: l, match: ir.Match{PathExact: l.path}})
		case strings.HasSuffix(l.path, "/"):
			prefix = append(prefix, entry{loc: l, match: ir.Match{PathPrefix: l.path}})
		default:
			if h.find(l.path, true) == nil {
				exact = append(exact, entry{loc: l, match: ir.Match{PathExact: l.path}})
			}
			prefix = append(prefix, entry{loc: l, match: ir.Match{PathPrefix: l.path + "/"}})
		}
	}
	sortByLength(exact, func(e entry) string { return e.match.PathExact })
	sortByLength(prefix, func(e entry) string { return e.match.PathPrefix })
	return append(exact, prefix...)
}

func sortByLength(es []entry, path func(entry) string) {
	sort.SliceStable(es, func(i, j int) bool {
		a, b := path(es[i]), path(es[j])
		if len(a) != len(b) {
			return len(a) > len(b)
		}
		return a > b
	})
}
