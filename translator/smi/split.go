package smi

import (
	"fmt"
	"maps"
	"slices"
	"strconv"

	corev1 "k8s.io/api/core/v1"

	smiapi "github.com/weir-mesh/weir/api/smi"
	"github.com/weir-mesh/weir/translator/ir"
	"github.com/weir-mesh/weir/translator/kube"
	"github.com/weir-mesh/weir/translator/status"
)

// splitPlan is one TrafficSplit on its way to routes.
type splitPlan struct {
	ts     *smiapi.TrafficSplit
	status status.Object
	root   *corev1.Service
	// matches is nil for a split without matches (it takes every request).
	matches []ir.Match
	key     string
	// hostBackends maps each root host name to the resolved weighted backends.
	hostBackends map[string][]ir.Backend
	// backendIndex maps a cluster name to its index in spec.backends.
	backendIndex map[string]int
	// standby maps each root host name to the clusters of weight-0 backends;
	// nil if there are none.
	standby map[string][]string
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

func planSplit(ts *smiapi.TrafficSplit, groups map[string]group, services *kube.Index) *splitPlan {
	p := &splitPlan{
		ts:           ts,
		status:       objectStatus(smiapi.TrafficSplitKind, ts.Namespace, ts.Name, ts.Generation),
		hostBackends: map[string][]ir.Backend{},
		backendIndex: map[string]int{},
	}
	if !p.checkWeights() || !p.resolveMatches(groups) || !p.resolveRoot(services) {
		return p
	}
	p.resolveBackends(services)
	return p
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
	p.root = services.Service(p.ts.Namespace, p.ts.Spec.Service)
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
	for _, rp := range p.root.Spec.Ports {
		host := kube.HostName(p.root.Namespace, p.root.Name, uint32(rp.Port))
		for i, b := range p.ts.Spec.Backends {
			svc := services.Service(p.ts.Namespace, b.Service)
			if svc == nil {
				p.unresolved(ReasonBackendNotFound, "spec.backends[%d].service: Service %s/%s does not exist", i, p.ts.Namespace, b.Service)
				return
			}
			port, ok := backendPort(svc, rp)
			if !ok {
				p.unresolved(ReasonPortNotFound, "spec.backends[%d].service: Service %s/%s has no port matching root port %d (%q)", i, svc.Namespace, svc.Name, rp.Port, rp.Name)
				return
			}
			cluster := kube.ClusterName(svc.Namespace, svc.Name, port)
			if b.Weight == 0 {
				if p.standby == nil {
					p.standby = map[string][]string{}
				}
				p.standby[host] = append(p.standby[host], cluster)
				continue
			}
			p.backendIndex[cluster] = i
			p.hostBackends[host] = append(p.hostBackends[host], ir.Backend{Cluster: cluster, Weight: uint32(b.Weight)})
		}
	}
}

func backendPort(svc *corev1.Service, root corev1.ServicePort) (uint32, bool) {
	for _, sp := range svc.Spec.Ports {
		if sp.Port == root.Port {
			return uint32(sp.Port), true
		}
	}
	for _, sp := range svc.Spec.Ports {
		if root.Name != "" && sp.Name == root.Name {
			return uint32(sp.Port), true
		}
	}
	if len(svc.Spec.Ports) == 1 {
		return uint32(svc.Spec.Ports[0].Port), true
	}
	return 0, false
}

// accept records the positive conditions, and says which backends have no
// ready endpoint.
func (p *splitPlan) accept(services *kube.Index) {
	p.status.Set(status.Condition{Type: status.Accepted, Status: status.True, Reason: ReasonAccepted,
		Message: "routes " + p.root.Namespace + "/" + p.root.Name + " on " + strconv.Itoa(len(p.hostBackends)) + " port(s)"})
	p.status.Set(status.Condition{Type: status.ResolvedRefs, Status: status.True, Reason: ReasonResolvedRefs, Message: "all references resolved"})
	var empty, seen []string
	for _, host := range p.sortedHosts() {
		for _, b := range p.hostBackends[host] {
			if c := services.Clusters[b.Cluster]; c != nil && len(c.Endpoints) == 0 && !slices.Contains(seen, b.Cluster) {
				seen = append(seen, b.Cluster)
				empty = append(empty, fmt.Sprintf("spec.backends[%d] (%s)", p.backendIndex[b.Cluster], b.Cluster))
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

// sortedHosts returns the root host names, sorted.
func (p *splitPlan) sortedHosts() []string {
	if len(p.hostBackends) == 1 {
		for host := range p.hostBackends {
			return []string{host}
		}
	}
	return slices.Sorted(maps.Keys(p.hostBackends))
}

// routes returns this split's routes to backends (those of one host);
// matches are ORed, one route each.
func (p *splitPlan) routes(backends []ir.Backend) []ir.Route {
	if p.matches == nil {
		return []ir.Route{{Name: p.routeName(0), Backends: backends}}
	}
	out := make([]ir.Route, len(p.matches))
	for i, m := range p.matches {
		out[i] = ir.Route{Name: p.routeName(i), Match: m, Backends: backends}
	}
	return out
}

func (p *splitPlan) routeName(i int) string {
	return smiapi.TrafficSplitKind + "/" + p.ts.Namespace + "/" + p.ts.Name + "/" + strconv.Itoa(i)
}
