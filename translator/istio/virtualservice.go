package istio

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"

	istioapi "github.com/weir-mesh/weir/api/istio"
	"github.com/weir-mesh/weir/translator/ir"
	"github.com/weir-mesh/weir/translator/kube"
	"github.com/weir-mesh/weir/translator/status"
)

// meshGateway is the gateway name of the sidecars.
const meshGateway = "mesh"

// context is where a VirtualService's rules are used: the sidecars
// ("mesh") on a Service port, or a gateway ("namespace/name") on a server
// port.
type context struct {
	gateway string
	port    uint32
}

// vsPlan is one VirtualService on its way to routes.
type vsPlan struct {
	vs       *istioapi.VirtualService
	status   status.Object
	rejected bool
	sticky   bool
	mesh     bool
	// gateways are the keys of the Istio Gateways named, in spec order.
	gateways []string
	rules    []httpRule
	// meshHosts are the Service ports its hosts name, on the mesh.
	meshHosts []meshHost

	// Found while routes are made.
	routed   int             // mesh hosts routed
	attached map[string]bool // gateway keys it is attached to
	// refProblems maps a message about a reference to its reason.
	refProblems map[string]string
	notReady    map[string]bool
	noHash      bool
	conflicts   map[string]bool
	lostHosts   int
}

type meshHost struct {
	name string
	port uint32
}

func gatewayKey(ref, namespace string) string {
	if ref == meshGateway || strings.Contains(ref, "/") {
		return ref
	}
	return namespace + "/" + ref
}

// planVirtualService validates vs and finds the Service ports its hosts
// name. A mistake rejects the whole object.
func (t *translation) planVirtualService(vs *istioapi.VirtualService) *vsPlan {
	p := &vsPlan{vs: vs, status: objectStatus("", istioapi.VirtualServiceKind, vs.Namespace, vs.Name, vs.Generation),
		attached: map[string]bool{}, refProblems: map[string]string{}, notReady: map[string]bool{}, conflicts: map[string]bool{}}
	steps := []func(*vsPlan) *invalid{t.readHeader, t.readHTTP, t.checkServices}
	for _, step := range steps {
		if err := step(p); err != nil {
			p.rejected = true
			if err.reason == ReasonBackendNotFound || err.reason == ReasonPortNotFound {
				unresolved(&p.status, err)
			} else {
				p.status.Set(rejected(err))
			}
			return p
		}
	}
	if p.mesh {
		t.findMeshHosts(p)
	}
	return p
}

// readHeader reads the annotation, hosts and gateways.
func (t *translation) readHeader(p *vsPlan) *invalid {
	switch v := p.vs.Annotations[StickyVersionsAnnotation]; v {
	case "true":
		p.sticky = true
	case "", "false":
	default:
		return fieldError(ReasonInvalidField, "metadata.annotations["+StickyVersionsAnnotation+"]", "%q is not \"true\" or \"false\"", v)
	}
	if len(p.vs.Spec.Hosts) == 0 {
		return fieldError(ReasonInvalidField, "spec.hosts", "must list at least one host")
	}
	for i, h := range p.vs.Spec.Hosts {
		if h == "" {
			return fieldError(ReasonInvalidField, fmt.Sprintf("spec.hosts[%d]", i), "must not be empty")
		}
	}
	gws := p.vs.Spec.Gateways
	if len(gws) == 0 {
		gws = []string{meshGateway}
	}
	for i, g := range gws {
		if g == "" {
			return fieldError(ReasonInvalidField, fmt.Sprintf("spec.gateways[%d]", i), "must not be empty")
		}
		if g == meshGateway {
			p.mesh = true
			continue
		}
		p.gateways = append(p.gateways, gatewayKey(g, p.vs.Namespace))
	}
	return nil
}

func (t *translation) readHTTP(p *vsPlan) *invalid {
	for i, h := range p.vs.Spec.HTTP {
		r, err := translateRule(i, p.vs.Namespace, h)
		if err != nil {
			return err
		}
		p.rules = append(p.rules, r)
	}
	return nil
}

// checkServices requires every destination and mirror to name a Service,
// and an explicit port to be one of its ports.
func (t *translation) checkServices(p *vsPlan) *invalid {
	for _, r := range p.rules {
		for _, d := range append(append([]dest(nil), r.dests...), r.mirrors...) {
			ns, name, ok := serviceOf(d.host, p.vs.Namespace)
			if !ok {
				return fieldError(ReasonBackendNotFound, d.field+".host", "%q is not a Service name (name, name.namespace or name.namespace.svc.cluster.local)", d.host)
			}
			svc := t.services.Service(ns, name)
			if svc == nil {
				return fieldError(ReasonBackendNotFound, d.field+".host", "Service %s/%s does not exist", ns, name)
			}
			if d.port != 0 && !hasPort(svc.Spec.Ports, d.port) {
				return fieldError(ReasonPortNotFound, d.field+".port.number", "Service %s/%s has no port %d", ns, name, d.port)
			}
		}
	}
	return nil
}

// findMeshHosts lists the Service ports the VirtualService's hosts name.
func (t *translation) findMeshHosts(p *vsPlan) {
	seen := map[string]bool{}
	for i, h := range p.vs.Spec.Hosts {
		ns, name, ok := serviceOf(h, p.vs.Namespace)
		svc := t.services.Service(ns, name)
		if !ok || svc == nil {
			p.refProblems[fmt.Sprintf("spec.hosts[%d]: %q is not a Service in the cluster, so the mesh does not route it", i, h)] = ReasonHostNotFound
			continue
		}
		for _, sp := range svc.Spec.Ports {
			hn := kube.HostName(ns, name, uint32(sp.Port))
			if !seen[hn] {
				seen[hn] = true
				p.meshHosts = append(p.meshHosts, meshHost{name: hn, port: uint32(sp.Port)})
			}
		}
	}
}

// meshRoutes routes every Service port the accepted VirtualServices name;
// the oldest VirtualService naming a port wins it.
func (t *translation) meshRoutes(plans []*vsPlan, res *Result) {
	owner := map[string]*vsPlan{}
	for _, p := range plans {
		if p.rejected {
			continue
		}
		for _, h := range p.meshHosts {
			if o := owner[h.name]; o != nil {
				o.conflicts[fmt.Sprintf("host %s is also routed by VirtualService %s/%s, which is newer: this one wins", h.name, p.vs.Namespace, p.vs.Name)] = true
				p.conflicts[fmt.Sprintf("host %s is routed by VirtualService %s/%s, which is older: this one is ignored there", h.name, o.vs.Namespace, o.vs.Name)] = true
				p.lostHosts++
				continue
			}
			owner[h.name] = p
			routes, standby := t.instantiate(p, context{gateway: meshGateway, port: h.port})
			if len(routes) == 0 {
				continue
			}
			p.routed++
			res.Routes[h.name] = routes
			if len(standby) > 0 {
				res.Standby[h.name] = standby
			}
		}
	}
}

// instantiate makes the routes of p's rules that apply in c, in order, and
// lists the clusters they name with weight 0.
func (t *translation) instantiate(p *vsPlan, c context) ([]ir.Route, []string) {
	var routes []ir.Route
	standby := map[string]bool{}
	for _, r := range p.rules {
		matches := r.matches
		if matches == nil {
			matches = []matchPlan{{}}
		}
		var base *ir.Route
		for j, m := range matches {
			if !m.appliesTo(c) {
				continue
			}
			if base == nil {
				b, ok := t.routeAction(p, r, c, standby)
				if !ok {
					break
				}
				base = &b
			}
			route := *base
			route.Name = routeName(p.vs, r.index, j, len(matches))
			route.Match = m.match
			routes = append(routes, route)
		}
	}
	return routes, slices.Sorted(maps.Keys(standby))
}

func routeName(vs *istioapi.VirtualService, rule, match, matches int) string {
	name := fmt.Sprintf("%s/%s/%s/%d", istioapi.VirtualServiceKind, vs.Namespace, vs.Name, rule)
	if matches > 1 {
		name += fmt.Sprintf(".%d", match)
	}
	return name
}

// routeAction resolves a rule's destinations and mirrors in c; ok is false
// when a destination cannot be resolved there (recorded in p).
func (t *translation) routeAction(p *vsPlan, r httpRule, c context, standby map[string]bool) (ir.Route, bool) {
	route := r.action
	var versions []string
	for _, d := range r.dests {
		rd, ok := t.resolveDest(p, d, c)
		if !ok {
			return route, false
		}
		if d.weight == 0 {
			standby[rd.cluster] = true
			continue
		}
		route.Backends = append(route.Backends, ir.Backend{Cluster: rd.cluster, Weight: d.weight})
		versions = append(versions, rd.version)
		if route.HashPolicy == nil {
			route.HashPolicy = t.hashOf(rd.namespace, rd.service, d.subset)
		}
	}
	for _, m := range r.mirrors {
		if rd, ok := t.resolveDest(p, m, c); ok {
			route.Mirrors = append(route.Mirrors, ir.Mirror{Cluster: rd.cluster, Percent: m.percent})
		}
	}
	if p.sticky && len(route.Backends) > 1 {
		if route.HashPolicy == nil {
			p.noHash = true
		} else {
			route.Backends = stickyBackends(route.Backends, versions)
			route.HashVersions = true
		}
	}
	return route, true
}

// resolved is a destination resolved to a cluster.
type resolved struct {
	cluster, namespace, service string
	// version orders sticky backends: the subset, else the Service name.
	version string
}

// resolveDest finds the cluster of d in c; its Service exists (checked by
// checkServices). A subset no DestinationRule defines gets a cluster with
// no endpoints, as requests to it fail with istiod too.
func (t *translation) resolveDest(p *vsPlan, d dest, c context) (resolved, bool) {
	ns, name, _ := serviceOf(d.host, p.vs.Namespace)
	svc := t.services.Service(ns, name)
	port, ok := destPort(svc.Spec.Ports, d.port, c.port)
	if !ok {
		p.refProblems[fmt.Sprintf("%s.port: Service %s/%s has several ports and no port %d; set port.number", d.field, ns, name, c.port)] = ReasonPortNotFound
		return resolved{}, false
	}
	rd := resolved{cluster: kube.ClusterName(ns, name, port), namespace: ns, service: name, version: name}
	if d.subset != "" {
		rd.version = d.subset
		rd.cluster = subsetClusterName(ns, name, port, d.subset)
		if t.clusters[rd.cluster] == nil {
			t.missingSubset(p, d, ns, name, port, rd.cluster)
		}
	}
	if cl := t.cluster(rd.cluster); cl == nil || len(cl.Endpoints) == 0 {
		p.notReady[fmt.Sprintf("%s (%s)", d.field, rd.cluster)] = true
	}
	return rd, true
}

// missingSubset records a subset no DestinationRule in force defines, and
// gives it an empty cluster.
func (t *translation) missingSubset(p *vsPlan, d dest, ns, name string, port uint32, cluster string) {
	why := fmt.Sprintf("no DestinationRule applies to Service %s/%s", ns, name)
	if r := t.rules[ns+"/"+name]; r != nil {
		why = fmt.Sprintf("DestinationRule %s/%s defines no subset %q", r.dr.Namespace, r.dr.Name, d.subset)
	}
	p.refProblems[fmt.Sprintf("%s.subset: %s; requests to it fail with 503", d.field, why)] = ReasonSubsetNotFound
	base := t.services.Clusters[kube.ClusterName(ns, name, port)]
	c := ir.Cluster{Name: cluster, Service: name, Namespace: ns, Port: port}
	if base != nil {
		c.Protocol = base.Protocol
	}
	t.clusters[cluster] = &c
}

// destPort is the explicit port, else the Service's only port, else the
// port being routed if the Service has it.
func destPort(ports []corev1.ServicePort, explicit, routed uint32) (uint32, bool) {
	switch {
	case explicit != 0:
		return explicit, true
	case len(ports) == 1:
		return uint32(ports[0].Port), true
	case hasPort(ports, routed):
		return routed, true
	}
	return 0, false
}

func hasPort(ports []corev1.ServicePort, port uint32) bool {
	for _, sp := range ports {
		if uint32(sp.Port) == port {
			return true
		}
	}
	return false
}

// finish writes the conditions of an accepted VirtualService.
func (p *vsPlan) finish(t *translation) {
	if p.rejected {
		return
	}
	for _, g := range p.gateways {
		if !t.gatewayKeys[g] {
			p.refProblems[fmt.Sprintf("spec.gateways: Gateway %s does not exist; the rules apply to it once it does", g)] = ReasonGatewayNotFound
		}
	}
	p.setAccepted()
	setRefs(&p.status, p.refProblems)
	if len(p.notReady) > 0 {
		p.status.Set(status.Condition{Type: BackendsReady, Status: status.False, Reason: ReasonNoReadyEndpoints,
			Message: fmt.Sprintf("no ready endpoints for %s: their share of requests fails with 503", strings.Join(slices.Sorted(maps.Keys(p.notReady)), ", "))})
	} else {
		p.status.Set(status.Condition{Type: BackendsReady, Status: status.True, Reason: ReasonAccepted, Message: "every destination has ready endpoints"})
	}
	if len(p.conflicts) > 0 {
		p.status.Set(status.Condition{Type: Conflicted, Status: status.True, Reason: ReasonConflicted, Message: strings.Join(slices.Sorted(maps.Keys(p.conflicts)), "; ")})
	}
	p.setSticky()
}

func (p *vsPlan) setAccepted() {
	if p.lostHosts > 0 && p.routed == 0 && len(p.gateways) == 0 {
		p.status.Set(status.Condition{Type: status.Accepted, Status: status.False, Reason: ReasonConflicted,
			Message: "spec.hosts: every host is routed by an older VirtualService: " + strings.Join(slices.Sorted(maps.Keys(p.conflicts)), "; ")})
		return
	}
	var parts []string
	if p.mesh {
		parts = append(parts, fmt.Sprintf("routes %d Service port(s) on the mesh", p.routed))
	}
	if len(p.gateways) > 0 {
		parts = append(parts, fmt.Sprintf("attached to %d of %d gateway(s)", len(p.attached), len(p.gateways)))
	}
	if len(p.vs.Spec.TCP) > 0 || len(p.vs.Spec.TLS) > 0 {
		parts = append(parts, "spec.tcp and spec.tls are not supported and are ignored")
	}
	p.status.Set(status.Condition{Type: status.Accepted, Status: status.True, Reason: ReasonAccepted, Message: strings.Join(parts, "; ")})
}

func (p *vsPlan) setSticky() {
	if !p.sticky {
		return
	}
	if p.noHash {
		p.status.Set(status.Condition{Type: StickyVersions, Status: status.False, Reason: ReasonNoHash,
			Message: "metadata.annotations[" + StickyVersionsAnnotation + "]: a rule with several destinations has no DestinationRule with loadBalancer.consistentHash, so versions are picked at random"})
		return
	}
	p.status.Set(status.Condition{Type: StickyVersions, Status: status.True, Reason: ReasonAccepted,
		Message: "the consistent hash of the destinations' DestinationRules picks the version"})
}

// setRefs sets ResolvedRefs: True without problems, else False with the
// reason of the first problem (in message order) and every message.
func setRefs(s *status.Object, problems map[string]string) {
	if len(problems) == 0 {
		s.Set(status.Condition{Type: status.ResolvedRefs, Status: status.True, Reason: ReasonResolvedRefs, Message: "all references resolved"})
		return
	}
	msgs := slices.Sorted(maps.Keys(problems))
	s.Set(status.Condition{Type: status.ResolvedRefs, Status: status.False, Reason: problems[msgs[0]], Message: strings.Join(msgs, "; ")})
}
