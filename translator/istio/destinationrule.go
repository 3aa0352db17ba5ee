package istio

import (
	"fmt"
	"maps"
	"slices"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"

	istioapi "github.com/weir-mesh/weir/api/istio"
	"github.com/weir-mesh/weir/translator/ir"
	"github.com/weir-mesh/weir/translator/kube"
	"github.com/weir-mesh/weir/translator/status"
)

// rule is one DestinationRule on its way to clusters.
type rule struct {
	dr      *istioapi.DestinationRule
	status  status.Object
	svc     *corev1.Service // nil until resolved
	top     policy
	subsets map[string]subset
}

// subset is a validated subset: its selector and its policy merged with the
// rule's.
type subset struct {
	labels map[string]string
	policy policy
}

// policy is a translated TrafficPolicy; each block is set or not, as a
// subset's block replaces the rule's whole.
type policy struct {
	lbSet   bool
	lb      ir.LBPolicy
	hash    []ir.HashPolicy
	poolSet bool
	pool    ir.ClusterPolicy // connection pool fields only
	outlier *ir.OutlierDetection
}

func (p policy) isZero() bool { return !p.lbSet && !p.poolSet && p.outlier == nil }

// merge returns p with the blocks that over sets replaced.
func (p policy) merge(over policy) policy {
	if over.lbSet {
		p.lbSet, p.lb, p.hash = true, over.lb, over.hash
	}
	if over.poolSet {
		p.poolSet, p.pool = true, over.pool
	}
	if over.outlier != nil {
		p.outlier = over.outlier
	}
	return p
}

func (p policy) cluster() ir.ClusterPolicy {
	c := p.pool
	c.LB = p.lb
	c.Outlier = p.outlier
	return c
}

// readRules validates every DestinationRule; the oldest rule of a Service
// is in force, and makes the Service's clusters and its subsets' clusters.
func (t *translation) readRules(drs []*istioapi.DestinationRule) {
	for _, dr := range sortedByAge(drs) {
		r := &rule{dr: dr, status: objectStatus("", istioapi.DestinationRuleKind, dr.Namespace, dr.Name, dr.Generation)}
		t.allRules = append(t.allRules, r)
		if err := r.validate(); err != nil {
			r.status.Set(rejected(err))
			continue
		}
		if !t.resolveRule(r) {
			continue
		}
		t.rules[r.svc.Namespace+"/"+r.svc.Name] = r
		t.ruleClusters(r)
		r.status.Set(status.Condition{Type: status.Accepted, Status: status.True, Reason: ReasonAccepted,
			Message: fmt.Sprintf("applies to Service %s/%s with %d subset(s)", r.svc.Namespace, r.svc.Name, len(r.subsets))})
	}
}

// resolveRule finds the rule's Service; a rule for a Service another rule
// already has is rejected.
func (t *translation) resolveRule(r *rule) bool {
	ns, name, ok := serviceOf(r.dr.Spec.Host, r.dr.Namespace)
	if !ok {
		r.status.Set(rejected(fieldError(ReasonUnsupported, "spec.host", "%q is not a Service name (name, name.namespace or name.namespace.svc.cluster.local)", r.dr.Spec.Host)))
		return false
	}
	if other := t.rules[ns+"/"+name]; other != nil {
		r.status.Set(rejected(fieldError(ReasonConflicted, "spec.host", "DestinationRule %s/%s, which is older, already applies to Service %s/%s",
			other.dr.Namespace, other.dr.Name, ns, name)))
		return false
	}
	r.svc = t.services.Service(ns, name)
	if r.svc == nil {
		r.status.Set(status.Condition{Type: status.ResolvedRefs, Status: status.False, Reason: ReasonHostNotFound,
			Message: fmt.Sprintf("spec.host: Service %s/%s does not exist; the rule applies once it does", ns, name)})
		r.status.Set(status.Condition{Type: status.Accepted, Status: status.True, Reason: ReasonAccepted, Message: "waits for its Service"})
		return false
	}
	r.status.Set(status.Condition{Type: status.ResolvedRefs, Status: status.True, Reason: ReasonResolvedRefs, Message: "all references resolved"})
	return true
}

// ruleClusters gives every port of the rule's Service the rule's policy,
// and adds a cluster per subset and port.
func (t *translation) ruleClusters(r *rule) {
	for _, sp := range r.svc.Spec.Ports {
		port := uint32(sp.Port)
		base := t.services.Clusters[kube.ClusterName(r.svc.Namespace, r.svc.Name, port)]
		if base == nil {
			continue
		}
		if !r.top.isZero() {
			c := *base
			c.Policy = r.top.cluster()
			t.clusters[c.Name] = &c
		}
		for _, name := range slices.Sorted(maps.Keys(r.subsets)) {
			s := r.subsets[name]
			c := *base
			c.Name = subsetClusterName(r.svc.Namespace, r.svc.Name, port, name)
			c.Endpoints = selectEndpoints(base.Endpoints, s.labels)
			c.Policy = s.policy.cluster()
			t.clusters[c.Name] = &c
		}
	}
}

// selectEndpoints returns the endpoints whose Pod has every label of sel.
func selectEndpoints(eps []ir.Endpoint, sel map[string]string) []ir.Endpoint {
	selector := labels.SelectorFromSet(sel)
	var out []ir.Endpoint
	for _, ep := range eps {
		if ep.Labels == nil && len(sel) > 0 {
			continue
		}
		if selector.Matches(labels.Set(ep.Labels)) {
			out = append(out, ep)
		}
	}
	return out
}

// hashOf returns the hash policy of the destination cluster of Service
// ns/name subset ("" for the Service itself), or nil.
func (t *translation) hashOf(ns, name, subsetName string) []ir.HashPolicy {
	r := t.rules[ns+"/"+name]
	if r == nil {
		return nil
	}
	if subsetName == "" {
		return r.top.hash
	}
	return r.subsets[subsetName].policy.hash
}

func (t *translation) ruleStatus() []status.Object {
	out := make([]status.Object, len(t.allRules))
	for i, r := range t.allRules {
		out[i] = r.status
	}
	return out
}

// validate translates the rule's policies and subsets.
func (r *rule) validate() *invalid {
	if r.dr.Spec.Host == "" {
		return fieldError(ReasonInvalidField, "spec.host", "must name a Service")
	}
	top, err := translatePolicy("spec.trafficPolicy", r.dr.Spec.TrafficPolicy)
	if err != nil {
		return err
	}
	r.top = top
	r.subsets = map[string]subset{}
	for i, s := range r.dr.Spec.Subsets {
		field := fmt.Sprintf("spec.subsets[%d]", i)
		if s.Name == "" {
			return fieldError(ReasonInvalidField, field+".name", "must be set")
		}
		if _, dup := r.subsets[s.Name]; dup {
			return fieldError(ReasonInvalidField, field+".name", "subset %q is defined twice", s.Name)
		}
		if err := validLabels(field+".labels", s.Labels); err != nil {
			return err
		}
		p, err := translatePolicy(field+".trafficPolicy", s.TrafficPolicy)
		if err != nil {
			return err
		}
		r.subsets[s.Name] = subset{labels: s.Labels, policy: top.merge(p)}
	}
	return nil
}

func validLabels(field string, in map[string]string) *invalid {
	if _, err := labels.ValidatedSelectorFromSet(in); err != nil {
		return fieldError(ReasonInvalidField, field, "%v", err)
	}
	return nil
}
