package ingressnginx

import (
	"fmt"
	"regexp"
	"strings"

	"github.com/weir-mesh/weir/translator/ir"
)

// canaryRule is a canary Ingress's backend for one main location.
type canaryRule struct {
	ing     *ingress
	name    string // route name prefix
	cluster string
}

// addCanary attaches a canary Ingress's paths to the main locations with
// the same host, path and path type; each main location takes at most one
// canary. Its defaultBackend is the canary of the "*" host's catch-all.
func (t *translation) addCanary(in *ingress) {
	spec := in.obj.Spec
	if spec.DefaultBackend != nil {
		t.attachCanary(in, anyHost, "/", false, "spec.defaultBackend", "defaultBackend", func() (string, string, string) {
			return t.resolve(in.obj.Namespace, *spec.DefaultBackend)
		})
	}
	for i, rule := range spec.Rules {
		if rule.HTTP == nil {
			continue
		}
		for j, p := range rule.HTTP.Paths {
			path, exact := normalizePath(p)
			field := fmt.Sprintf("spec.rules[%d].http.paths[%d]", i, j)
			t.attachCanary(in, hostName(rule.Host), path, exact, field, fmt.Sprintf("%d/%d", i, j), func() (string, string, string) {
				return t.resolve(in.obj.Namespace, p.Backend)
			})
		}
	}
	if in.served == 0 && len(in.problems) == 0 && len(in.refProblems) == 0 {
		in.skip(ReasonNoMainIngress, "the canary Ingress has no paths and no defaultBackend")
	}
}

func (t *translation) attachCanary(in *ingress, host, path string, exact bool, field, id string, resolve func() (string, string, string)) {
	var main *location
	if h := t.hosts[host]; h != nil {
		main = h.find(path, exact)
	}
	if main == nil {
		in.skip(ReasonNoMainIngress, "%s: no main Ingress routes host %q path %q (%s)", field, host, path, pathTypeName(exact))
		return
	}
	if main.canary != nil {
		in.skip(ReasonConflicted, "%s: host %q path %q (%s) of Ingress %s already has canary Ingress %s; a location takes one canary",
			field, host, path, pathTypeName(exact), main.ing.key(), main.canary.ing.key())
		return
	}
	cluster, reason, msg := resolve()
	if reason != "" {
		in.unresolved(reason, "%s.backend: %s; no request goes to the canary", field, msg)
		return
	}
	if len(main.target.Backends) == 1 && main.target.Backends[0].Cluster == cluster {
		in.skip(ReasonConflicted, "%s.backend: %s is also the main backend of host %q path %q", field, cluster, host, path)
		return
	}
	main.canary = &canaryRule{ing: in, name: routeName(in, id), cluster: cluster}
	in.served++
}

// describe says how the canary picks requests, for status messages.
func (c canaryConfig) describe() string {
	var parts []string
	switch {
	case c.header != "" && c.headerValue != "":
		parts = append(parts, fmt.Sprintf("header %s: %q", c.header, c.headerValue))
	case c.header != "" && c.headerPattern != "":
		parts = append(parts, fmt.Sprintf("header %s matching %q", c.header, c.headerPattern))
	case c.header != "":
		parts = append(parts, fmt.Sprintf("header %s: always/never", c.header))
	}
	if c.cookie != "" {
		parts = append(parts, fmt.Sprintf("cookie %s=always/never", c.cookie))
	}
	parts = append(parts, fmt.Sprintf("weight %d/%d", min(c.weight, c.weightTotal), c.weightTotal))
	return strings.Join(parts, ", then ")
}

// routes are the entry's routes: a canary's header and cookie rules first,
// then the route that splits the rest by weight (or sends it all to the
// main backend).
func (e entry) routes() []ir.Route {
	main := e.loc.target
	main.Match, main.Rewrite = e.match, e.rewrite
	c := e.loc.canary
	if c == nil || main.DirectResponse != nil {
		return []ir.Route{main}
	}
	cfg := c.ing.ann.canaryCfg
	toCanary := []ir.Backend{{Cluster: c.cluster, Weight: 1}}
	weighted := canaryWeights(main.Backends[0].Cluster, c.cluster, cfg)
	// A "never" rule is only needed when a later one could pick the canary.
	cookieOrWeight := cfg.cookie != "" || len(weighted) > 1 || weighted[0].Cluster == c.cluster
	var out []ir.Route
	add := func(suffix string, hm ir.HeaderMatch, backends []ir.Backend) {
		r := main
		r.Name = c.name + "/" + suffix
		r.Match.Headers = append(append([]ir.HeaderMatch(nil), main.Match.Headers...), hm)
		r.Backends = backends
		out = append(out, r)
	}
	if cfg.header != "" {
		name := strings.ToLower(cfg.header)
		switch {
		case cfg.headerValue != "":
			add("header", ir.HeaderMatch{Name: name, Exact: cfg.headerValue}, toCanary)
		case cfg.headerPattern != "":
			add("header", ir.HeaderMatch{Name: name, ValueRegex: ".*(?:" + cfg.headerPattern + ").*"}, toCanary)
		default:
			add("header", ir.HeaderMatch{Name: name, Exact: "always"}, toCanary)
			if cookieOrWeight {
				add("header-never", ir.HeaderMatch{Name: name, Exact: "never"}, main.Backends)
			}
		}
	}
	if cfg.cookie != "" {
		add("cookie", ir.HeaderMatch{Name: "cookie", ValueRegex: cookieRegex(cfg.cookie, "always")}, toCanary)
		if len(weighted) > 1 || weighted[0].Cluster == c.cluster {
			add("cookie-never", ir.HeaderMatch{Name: "cookie", ValueRegex: cookieRegex(cfg.cookie, "never")}, main.Backends)
		}
	}
	main.Backends = weighted
	return append(out, main)
}

// canaryWeights splits requests as ingress-nginx does: weight out of
// weightTotal go to the canary; 0 sends none, weightTotal or more all.
func canaryWeights(main, canary string, cfg canaryConfig) []ir.Backend {
	switch {
	case cfg.weight <= 0:
		return []ir.Backend{{Cluster: main, Weight: 1}}
	case cfg.weight >= cfg.weightTotal:
		return []ir.Backend{{Cluster: canary, Weight: 1}}
	}
	return []ir.Backend{
		{Cluster: main, Weight: uint32(cfg.weightTotal - cfg.weight)},
		{Cluster: canary, Weight: uint32(cfg.weight)},
	}
}

// cookieRegex matches a Cookie header in which cookie name has value.
func cookieRegex(name, value string) string {
	return `(?:.*;)?\s*` + regexp.QuoteMeta(name) + `=` + regexp.QuoteMeta(value) + `\s*(?:;.*)?`
}
