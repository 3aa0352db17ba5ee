package smi

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"

	smiapi "github.com/weir-mesh/weir/api/smi"
	"github.com/weir-mesh/weir/translator/internal/text"
	"github.com/weir-mesh/weir/translator/ir"
	"github.com/weir-mesh/weir/translator/kube"
	"github.com/weir-mesh/weir/translator/status"
)

// splitPlan is one TrafficSplit on its way to routes.
type splitPlan struct {
	ts     *smiapi.TrafficSplit
	status status.Object
	root   *corev1.Service
	// rootPorts are the names of the root's ports, in spec order.
	rootPorts []kube.PortNames
	// matches is nil for a split without matches (it takes every request).
	matches []ir.Match
	key     string
	// hosts are the root's hosts, each once, with what the split sends
	// them; in the order of the root's ports until accept sorts them.
	hosts []hostSplit
	// oneHost holds hosts for a root of one port.
	oneHost [1]hostSplit
}

// hostSplit is what a split sends to one root host.
type hostSplit struct {
	host string
	// backends are the resolved backends of weight > 0, in spec order
	// (once per root port of this host).
	backends []ir.Backend
	// standby are the clusters of weight-0 backends.
	standby []string
}

func (p *splitPlan) failed() bool {
	c := p.status.Get(status.Accepted)
	return c != nil && c.Status == status.False
}

func (p *splitPlan) fail(c status.Condition) { p.status.Set(c) }

func (p *splitPlan) unresolved(reason, format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	p.status.Set(status.Condition{Type: status.ResolvedRefs, Status: status.False, Reason: reason, Message: msg})
	p.status.Set(status.Condition{Type: status.Accepted, Status: status.False, Reason: reason, Message: msg})
}

// planSplit fills p with the plan of ts. Its status conditions are
// appended to conds, empty with room for those of an accepted split.
func planSplit(p *splitPlan, ts *smiapi.TrafficSplit, groups map[string]group, services *kube.Index, conds []status.Condition) {
	*p = splitPlan{ts: ts, status: objectStatus(smiapi.TrafficSplitKind, ts.Namespace, ts.Name, ts.Generation)}
	p.status.Conditions = conds
	if !p.checkWeights() || !p.resolveMatches(groups) || !p.resolveRoot(services) {
		return
	}
	p.resolveBackends(services)
}

func (p *splitPlan) checkWeights() bool {
	if len(p.ts.Spec.Backends) == 0 {
		p.fail(rejected(ReasonNoBackends, "spec.backends: must list at least one backend"))
		return false
	}
	total := 0
	for i, b := range p.ts.Spec.Backends {
		if b.Weight < 0 {
			p.fail(rejected(ReasonInvalidWeight, "spec.backends[%d].weight: %d is negative; weights must be >= 0", i, b.Weight))
			return false
		}
		if b.Service == "" {
			p.fail(rejected(ReasonBackendNotFound, "spec.backends[%d].service: must name a Service", i))
			return false
		}
		total += b.Weight
	}
	if total == 0 {
		p.fail(rejected(ReasonInvalidWeight, "spec.backends[*].weight: all weights are zero; at least one must be > 0"))
		return false
	}
	return true
}

func (p *splitPlan) resolveMatches(groups map[string]group) bool {
	if len(p.ts.Spec.Matches) == 0 {
		p.key = catchAllKey
		return true
	}
	for i, ref := range p.ts.Spec.Matches {
		field := fmt.Sprintf("spec.matches[%d]", i)
		if ref.Kind != smiapi.HTTPRouteGroupKind {
			p.unresolved(ReasonInvalidKind, "%s.kind: %q is not supported; use HTTPRouteGroup", field, ref.Kind)
			return false
		}
		g, ok := groups[p.ts.Namespace+"/"+ref.Name]
		if !ok {
			p.unresolved(ReasonRouteGroupMissing, "%s.name: HTTPRouteGroup %s/%s does not exist", field, p.ts.Namespace, ref.Name)
			return false
		}
		if g.invalid != nil {
			p.unresolved(ReasonInvalidRouteGroup, "%s.name: HTTPRouteGroup %s/%s is not accepted: %s", field, p.ts.Namespace, ref.Name, g.invalid.Message)
			return false
		}
		p.matches = append(p.matches, g.matches...)
	}
	p.key = matchKey(p.matches)
	return true
}

func (p *splitPlan) resolveRoot(services *kube.Index) bool {
	if p.ts.Spec.Service == "" {
		p.unresolved(ReasonRootNotFound, "spec.service: must name the root Service")
		return false
	}
	p.root, p.rootPorts = services.ServicePorts(p.ts.Namespace, p.ts.Spec.Service)
	if p.root == nil {
		p.unresolved(ReasonRootNotFound, "spec.service: Service %s/%s does not exist", p.ts.Namespace, p.ts.Spec.Service)
		return false
	}
	if len(p.root.Spec.Ports) == 0 {
		p.unresolved(ReasonPortNotFound, "spec.service: Service %s/%s has no ports", p.ts.Namespace, p.ts.Spec.Service)
		return false
	}
	return true
}

// resolveBackends maps every root port to a port of each backend Service:
// the same port number, else the same port name, else the backend's only port.
func (p *splitPlan) resolveBackends(services *kube.Index) {
	positive := 0
	for _, b := range p.ts.Spec.Backends {
		if b.Weight > 0 {
			positive++
		}
	}
	p.hosts = p.oneHost[:0]
	for j, rp := range p.root.Spec.Ports {
		h := p.hostSplit(p.rootPorts[j].Host, positive)
		for i, b := range p.ts.Spec.Backends {
			svc, ports := services.ServicePorts(p.ts.Namespace, b.Service)
			if svc == nil {
				p.unresolved(ReasonBackendNotFound, "spec.backends[%d].service: Service %s/%s does not exist", i, p.ts.Namespace, b.Service)
				return
			}
			port, ok := backendPort(svc, rp)
			if !ok {
				p.unresolved(ReasonPortNotFound, "spec.backends[%d].service: Service %s/%s has no port matching root port %d (%q)", i, svc.Namespace, svc.Name, rp.Port, rp.Name)
				return
			}
			cluster := ports[port].Cluster
			if b.Weight == 0 {
				h.standby = append(h.standby, cluster)
				continue
			}
			h.backends = append(h.backends, ir.Backend{Cluster: cluster, Weight: uint32(b.Weight)})
		}
	}
}

// hostSplit returns the entry of host in p.hosts, added with room for
// positive backends if new. It is valid until the next call.
func (p *splitPlan) hostSplit(host string, positive int) *hostSplit {
	for i := range p.hosts {
		if p.hosts[i].host == host {
			return &p.hosts[i]
		}
	}
	p.hosts = append(p.hosts, hostSplit{host: host, backends: make([]ir.Backend, 0, positive)})
	return &p.hosts[len(p.hosts)-1]
}

// backendPort returns the index in svc's ports of the port that root maps
// to.
func backendPort(svc *corev1.Service, root corev1.ServicePort) (int, bool) {
	for i, sp := range svc.Spec.Ports {
		if sp.Port == root.Port {
			return i, true
		}
	}
	for i, sp := range svc.Spec.Ports {
		if root.Name != "" && sp.Name == root.Name {
			return i, true
		}
	}
	if len(svc.Spec.Ports) == 1 {
		return 0, true
	}
	return 0, false
}

// accept records the positive conditions, and says which backends have no
// ready endpoint; messages are taken from strs. It sorts p.hosts by host
// name.
func (p *splitPlan) accept(services *kube.Index, strs *text.Slab) {
	routed := 0
	for _, h := range p.hosts {
		if len(h.backends) > 0 {
			routed++
		}
	}
	var buf [128]byte
	msg := append(append(append(append(buf[:0], "routes "...), p.root.Namespace...), '/'), p.root.Name...)
	msg = append(strconv.AppendInt(append(msg, " on "...), int64(routed), 10), " port(s)"...)
	p.status.Set(status.Condition{Type: status.Accepted, Status: status.True, Reason: ReasonAccepted, Message: strs.String(msg)})
	p.status.Set(status.Condition{Type: status.ResolvedRefs, Status: status.True, Reason: ReasonResolvedRefs, Message: "all references resolved"})
	if len(p.hosts) > 1 {
		slices.SortFunc(p.hosts, func(a, b hostSplit) int { return strings.Compare(a.host, b.host) })
	}
	var empty, seen []string
	for _, h := range p.hosts {
		for _, b := range h.backends {
			if c := services.Clusters[b.Cluster]; c != nil && len(c.Endpoints) == 0 && !slices.Contains(seen, b.Cluster) {
				seen = append(seen, b.Cluster)
				empty = append(empty, fmt.Sprintf("spec.backends[%d] (%s)", p.backendIndex(services, b.Cluster), b.Cluster))
			}
		}
	}
	if len(empty) > 0 {
		p.status.Set(status.Condition{Type: BackendsReady, Status: status.False, Reason: ReasonNoReadyEndpoints,
			Message: fmt.Sprintf("no ready endpoints for %v: their share of requests fails with 503", empty)})
		return
	}
	p.status.Set(status.Condition{Type: BackendsReady, Status: status.True, Reason: ReasonAccepted, Message: "every backend has ready endpoints"})
}

// backendIndex returns the index in spec.backends of the last backend of
// weight > 0 whose Service has cluster; -1 if none.
func (p *splitPlan) backendIndex(services *kube.Index, cluster string) int {
	for i := len(p.ts.Spec.Backends) - 1; i >= 0; i-- {
		b := p.ts.Spec.Backends[i]
		if b.Weight == 0 {
			continue
		}
		_, ports := services.ServicePorts(p.ts.Namespace, b.Service)
		for _, n := range ports {
			if n.Cluster == cluster {
				return i
			}
		}
	}
	return -1
}

// routes returns this split's routes to backends (those of one host);
// matches are ORed, one route each. The list and the route names are
// taken from a.
func (p *splitPlan) routes(backends []ir.Backend, a *arena) []ir.Route {
	n := max(1, len(p.matches))
	var out []ir.Route
	if len(a.routes) >= n {
		out, a.routes = a.routes[:n:n], a.routes[n:]
	} else {
		out = make([]ir.Route, n)
	}
	if p.matches == nil {
		out[0] = ir.Route{Name: p.routeName(0, &a.text), Backends: backends}
		return out
	}
	for i, m := range p.matches {
		out[i] = ir.Route{Name: p.routeName(i, &a.text), Match: m, Backends: backends}
	}
	return out
}

// routeCount is how many routes the accepted plans make.
func routeCount(plans []splitPlan) int {
	n := 0
	for i := range plans {
		if p := &plans[i]; !p.failed() {
			for _, h := range p.hosts {
				if len(h.backends) > 0 {
					n += max(1, len(p.matches))
				}
			}
		}
	}
	return n
}

func (p *splitPlan) routeName(i int, strs *text.Slab) string {
	var buf [128]byte
	b := append(append(buf[:0], smiapi.TrafficSplitKind+"/"...), p.ts.Namespace...)
	b = append(append(append(b, '/'), p.ts.Name...), '/')
	return strs.String(strconv.AppendInt(b, int64(i), 10))
}
