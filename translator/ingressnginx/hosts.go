package ingressnginx

import (
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"

	"github.com/weir-mesh/weir/translator/ir"
	"github.com/weir-mesh/weir/translator/kube"
)

// anyHost is the host of rules without one.
const anyHost = "*"

// hostPlan is one host (an nginx server) and its locations.
type hostPlan struct {
	name      string
	locations []*location
	// entries are the locations as matches, in match order; set by
	// sortedHosts.
	entries []entry
}

// location is one path of a main Ingress (an nginx location), or a host's
// catch-all from an Ingress's defaultBackend.
type location struct {
	ing   *ingress
	name  string // route name
	field string // where in the Ingress, for messages
	path  string
	exact bool
	// isDefault marks a catch-all from spec.defaultBackend, which a rule
	// with path "/" (type Prefix) replaces.
	isDefault bool
	// target is where requests go: Backends, or a DirectResponse.
	target ir.Route
	canary *canaryRule
}

// rewrite is the location's rewrite-target, nil when it has none or when it
// equals the path (nginx then does not rewrite).
func (l *location) rewrite() *rewriteTarget {
	rt := l.ing.ann.rewrite
	if rt == nil || l.isDefault || rt.raw == l.path {
		return nil
	}
	return rt
}

// wantsRegex reports whether the location makes its host's paths regular
// expressions: it uses use-regex or rewrites.
func (l *location) wantsRegex() bool {
	return !l.isDefault && (l.ing.ann.useRegex || l.rewrite() != nil)
}

func hostName(h string) string {
	if h == "" {
		return anyHost
	}
	return strings.ToLower(h)
}

func (t *translation) host(name string) (h *hostPlan, created bool) {
	if h = t.hosts[name]; h != nil {
		return h, false
	}
	h = &hostPlan{name: name}
	t.hosts[name] = h
	return h, true
}

// addMain adds the locations of a main Ingress. As in ingress-nginx, its
// defaultBackend is the catch-all of the hosts it is the first to define,
// and of the "*" host if no other Ingress gave that one a catch-all.
func (t *translation) addMain(in *ingress) {
	spec := in.obj.Spec
	var def *location
	if spec.DefaultBackend != nil {
		def = &location{ing: in, name: routeName(in, "defaultBackend"), field: "spec.defaultBackend", path: "/", isDefault: true}
		def.target = t.backendRoute(in, def.field, *spec.DefaultBackend)
		def.target.Name = def.name
	}
	for i, rule := range spec.Rules {
		h, created := t.host(hostName(rule.Host))
		if created && def != nil && h.name != anyHost {
			h.addDefault(def)
		}
		if rule.HTTP == nil {
			continue
		}
		for j, p := range rule.HTTP.Paths {
			t.addPath(in, h, fmt.Sprintf("spec.rules[%d].http.paths[%d]", i, j), fmt.Sprintf("%d/%d", i, j), p)
		}
	}
	if def != nil {
		if h, _ := t.host(anyHost); h.find("/", false) == nil {
			h.addDefault(def)
		}
	}
}

func (t *translation) addPath(in *ingress, h *hostPlan, field, id string, p networkingv1.HTTPIngressPath) {
	path, exact := normalizePath(p)
	if !strings.HasPrefix(path, "/") {
		in.skip(ReasonInvalidPath, "%s.path: %q must begin with \"/\"", field, path)
		return
	}
	loc := &location{ing: in, name: routeName(in, id), field: field, path: path, exact: exact}
	if old := h.find(path, exact); old != nil {
		if !old.isDefault {
			in.skip(ReasonConflicted, "%s: host %q path %q (%s) is already routed by Ingress %s", field, h.name, path, pathTypeName(exact), old.ing.key())
			return
		}
		h.remove(old)
	}
	loc.target = t.backendRoute(in, field+".backend", p.Backend)
	loc.target.Name = loc.name
	h.locations = append(h.locations, loc)
	in.served++
}

// normalizePath returns the path ("/" if empty) and whether it is exact;
// ingress-nginx treats ImplementationSpecific (and no type) as Prefix.
func normalizePath(p networkingv1.HTTPIngressPath) (string, bool) {
	path := p.Path
	if path == "" {
		path = "/"
	}
	return path, p.PathType != nil && *p.PathType == networkingv1.PathTypeExact
}

func pathTypeName(exact bool) string {
	if exact {
		return string(networkingv1.PathTypeExact)
	}
	return string(networkingv1.PathTypePrefix)
}

func routeName(in *ingress, id string) string {
	return fmt.Sprintf("%s/%s/%s/%s", Kind, in.obj.Namespace, in.obj.Name, id)
}

// addDefault adds a copy of def, so that a canary of one host's catch-all
// does not reach another's.
func (h *hostPlan) addDefault(def *location) {
	d := *def
	h.locations = append(h.locations, &d)
}

// find returns the location with path and type, or nil.
func (h *hostPlan) find(path string, exact bool) *location {
	for _, l := range h.locations {
		if l.path == path && l.exact == exact {
			return l
		}
	}
	return nil
}

func (h *hostPlan) remove(old *location) {
	for i, l := range h.locations {
		if l == old {
			h.locations = append(h.locations[:i], h.locations[i+1:]...)
			return
		}
	}
}

// backendRoute is a route to the backend's Service port, or, when it does
// not resolve, a 503 answer as nginx gives, with the reason in status.
func (t *translation) backendRoute(in *ingress, field string, b networkingv1.IngressBackend) ir.Route {
	cluster, reason, msg := t.resolve(in.obj.Namespace, b)
	if reason != "" {
		in.unresolved(reason, "%s: %s; requests there get 503", field, msg)
		return ir.Route{DirectResponse: &ir.DirectResponse{Status: 503}}
	}
	return ir.Route{Backends: []ir.Backend{{Cluster: cluster, Weight: 1}}}
}

// resolve returns the cluster of a backend's Service port, or a reason and
// message saying why there is none.
func (t *translation) resolve(namespace string, b networkingv1.IngressBackend) (cluster, reason, msg string) {
	if b.Service == nil {
		return "", ReasonUnsupportedBackend, "only Service backends are supported"
	}
	svc := t.services.Service(namespace, b.Service.Name)
	if svc == nil {
		return "", ReasonBackendNotFound, fmt.Sprintf("Service %s/%s does not exist", namespace, b.Service.Name)
	}
	port, ok := servicePort(svc, b.Service.Port)
	if !ok {
		return "", ReasonPortNotFound, fmt.Sprintf("Service %s/%s has no port %s", namespace, svc.Name, portName(b.Service.Port))
	}
	return kube.ClusterName(namespace, svc.Name, port), "", ""
}

func servicePort(svc *corev1.Service, p networkingv1.ServiceBackendPort) (uint32, bool) {
	for _, sp := range svc.Spec.Ports {
		if (p.Name != "" && sp.Name == p.Name) || (p.Name == "" && sp.Port == p.Number) {
			return uint32(sp.Port), true
		}
	}
	return 0, false
}

func portName(p networkingv1.ServiceBackendPort) string {
	if p.Name != "" {
		return fmt.Sprintf("named %q", p.Name)
	}
	return fmt.Sprint(p.Number)
}
