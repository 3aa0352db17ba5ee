package gatewayapi

import (
	"fmt"
	"strings"

	gwapiv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/weir-mesh/weir/translator/kube"
	"github.com/weir-mesh/weir/translator/status"
)

// route attaches r to the listeners of the gateways and to the mesh hosts
// its parentRefs name, and returns its status. ok is false when no
// parentRef names a parent weir serves: the route is another controller's.
func (t *translator) route(r *gwapiv1.HTTPRoute, gateways map[string]*gateway, mesh map[string][]ruleRoute) (status.Object, bool) {
	st := status.Object{Group: gwapiv1.GroupName, Kind: kindHTTPRoute, Namespace: r.Namespace, Name: r.Name,
		Generation: r.Generation, Conditions: []status.Condition{}}
	var rules *builtRules
	for _, ref := range r.Spec.ParentRefs {
		group, kind, ns := parentGroupKind(ref, r.Namespace)
		var conds []status.Condition
		switch {
		case group == gwapiv1.GroupName && kind == kindGateway:
			g := gateways[ns+"/"+string(ref.Name)]
			if g == nil {
				continue // not a Gateway weir serves
			}
			if rules == nil {
				rules = t.rules(r)
			}
			conds = t.attachGateway(r, ref, g, rules)
		case group == "" && kind == kindService:
			if rules == nil {
				rules = t.rules(r)
			}
			conds = t.attachService(r, ref, ns, rules, mesh)
		default:
			continue
		}
		st.Parents = append(st.Parents, status.Parent{ParentRef: echoParentRef(ref), ControllerName: t.controller, Conditions: conds})
	}
	return st, len(st.Parents) > 0
}

// parentGroupKind returns a parentRef's group, kind and namespace with the
// spec's defaults.
func parentGroupKind(ref gwapiv1.ParentReference, routeNS string) (group, kind, ns string) {
	group, kind, ns = gwapiv1.GroupName, kindGateway, routeNS
	if ref.Group != nil {
		group = string(*ref.Group)
	}
	if ref.Kind != nil {
		kind = string(*ref.Kind)
	}
	if ref.Namespace != nil && *ref.Namespace != "" {
		ns = string(*ref.Namespace)
	}
	return group, kind, ns
}

func echoParentRef(ref gwapiv1.ParentReference) status.ParentRef {
	out := status.ParentRef{Name: string(ref.Name), Port: ref.Port}
	if ref.Group != nil {
		out.Group = new(string(*ref.Group))
	}
	if ref.Kind != nil {
		out.Kind = new(string(*ref.Kind))
	}
	if ref.Namespace != nil {
		out.Namespace = new(string(*ref.Namespace))
	}
	if ref.SectionName != nil {
		out.SectionName = new(string(*ref.SectionName))
	}
	return out
}

// attachGateway attaches r to the listeners of g that ref selects, allow
// it, and share a hostname with it; it returns the parent's conditions.
func (t *translator) attachGateway(r *gwapiv1.HTTPRoute, ref gwapiv1.ParentReference, g *gateway, rules *builtRules) []status.Condition {
	var selected []*listener
	for _, l := range g.listeners {
		if (ref.SectionName == nil || *ref.SectionName == l.spec.Name) && (ref.Port == nil || *ref.Port == l.spec.Port) {
			selected = append(selected, l)
		}
	}
	if len(selected) == 0 {
		return []status.Condition{
			condition(condAccepted, false, string(gwapiv1.RouteReasonNoMatchingParent), "No listeners match this parent ref"),
			rules.resolvedRefs(),
		}
	}
	var allowed []*listener
	for _, l := range selected {
		if contains(l.kinds, kindHTTPRoute) && l.namespaces(r.Namespace) {
			allowed = append(allowed, l)
		}
	}
	if len(allowed) == 0 {
		return []status.Condition{
			condition(condAccepted, false, string(gwapiv1.RouteReasonNotAllowedByListeners), "No listeners included by this parent ref allowed this attachment."),
			rules.resolvedRefs(),
		}
	}
	attached := 0
	for _, l := range allowed {
		hosts, ok := intersectHostnames(l.hostname(), r.Spec.Hostnames)
		if !ok {
			continue
		}
		attached++
		key := r.Namespace + "/" + r.Name
		if l.routes[key] {
			continue // attached by an earlier parentRef
		}
		if l.routes == nil {
			l.routes = map[string]bool{}
		}
		l.routes[key] = true
		l.attachedRoutes++ // attached, even if none of its rules is valid
		if !rules.allInvalid() {
			l.attached = append(l.attached, attachment{hostnames: hosts, rules: rules.routes})
		}
	}
	switch {
	case attached == 0:
		return []status.Condition{
			condition(condAccepted, false, string(gwapiv1.RouteReasonNoMatchingListenerHostname),
				"There were no hostname intersections between the HTTPRoute and this parent ref's Listener(s)."),
			rules.resolvedRefs(),
		}
	case rules.allInvalid():
		return []status.Condition{rules.accepted(), rules.resolvedRefs()}
	}
	return rules.conditions()
}

// attachService attaches r to the mesh hosts of the Service ref names
// (GAMMA): the port ref names, or every port. Hostnames do not apply in
// the mesh. Only producer routes, in the Service's own namespace, are
// served: weir's sidecars share one route table.
func (t *translator) attachService(r *gwapiv1.HTTPRoute, ref gwapiv1.ParentReference, ns string, rules *builtRules, mesh map[string][]ruleRoute) []status.Condition {
	svc := t.services.Service(ns, string(ref.Name))
	if svc == nil {
		return []status.Condition{
			condition(condAccepted, false, string(gwapiv1.RouteReasonNoMatchingParent), fmt.Sprintf("Service %s/%s not found", ns, ref.Name)),
			rules.resolvedRefs(),
		}
	}
	if ns != r.Namespace {
		return []status.Condition{
			condition(condAccepted, false, string(gwapiv1.RouteReasonUnsupportedValue),
				"Consumer routes (a parentRef to a Service in another namespace) are not supported: write the route in the Service's namespace"),
			rules.resolvedRefs(),
		}
	}
	var hosts []string
	for _, p := range svc.Spec.Ports {
		if (ref.Port == nil || *ref.Port == p.Port) && (ref.SectionName == nil || string(*ref.SectionName) == p.Name) {
			hosts = append(hosts, kube.HostName(svc.Namespace, svc.Name, uint32(p.Port)))
		}
	}
	if len(hosts) == 0 {
		return []status.Condition{
			condition(condAccepted, false, string(gwapiv1.RouteReasonNoMatchingParent), fmt.Sprintf("No port of Service %s/%s matches this parent ref", ns, ref.Name)),
			rules.resolvedRefs(),
		}
	}
	if rules.allInvalid() {
		return []status.Condition{rules.accepted(), rules.resolvedRefs()}
	}
	for _, h := range hosts {
		mesh[h] = append(mesh[h], rules.routes...)
	}
	return rules.conditions()
}

// intersectHostnames returns the hostnames requests must have to reach a
// route through a listener with hostname lh ("" for any): nil for any. ok
// is false when they share none.
func intersectHostnames(lh string, routeHosts []gwapiv1.Hostname) ([]string, bool) {
	if len(routeHosts) == 0 {
		if lh == "" {
			return nil, true
		}
		return []string{lh}, true
	}
	var out []string
	for _, h := range routeHosts {
		rh := string(h)
		switch {
		case lh == "" || rh == lh || hostCovers(lh, rh):
			out = append(out, rh)
		case hostCovers(rh, lh):
			out = append(out, lh)
		}
	}
	return dedupe(out), len(out) > 0
}

// hostCovers reports whether the host pattern h ("" or "*" for any,
// "*.suffix", or an exact name) matches every host the pattern d matches.
func hostCovers(h, d string) bool {
	switch {
	case h == "" || h == "*" || h == d:
		return true
	case strings.HasPrefix(h, "*."):
		return strings.HasSuffix(d, h[1:]) && len(d) > len(h)-1
	}
	return false
}

func dedupe(in []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, s := range in {
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	return out
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
