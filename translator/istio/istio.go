// Package istio turns Istio VirtualServices, DestinationRules and Gateways
// into IR routes, subset clusters, gateway servers and status.
//
// Semantics follow istiod: DestinationRule subsets select endpoints by Pod
// labels; VirtualService rules match in order, weights are relative, and a
// host's requests that no rule matches get 404. A VirtualService with the
// annotation weir.dev/sticky-versions: "true" also lets the consistent hash
// of its destinations' DestinationRules pick the version (subset).
package istio

import (
	"fmt"
	"sort"

	istioapi "github.com/weir-mesh/weir/api/istio"
	"github.com/weir-mesh/weir/translator/ir"
	"github.com/weir-mesh/weir/translator/kube"
	"github.com/weir-mesh/weir/translator/status"
)

// Objects is the read-only view of the store this front-end needs.
type Objects interface {
	kube.SecretObjects
	VirtualServices() []*istioapi.VirtualService
	DestinationRules() []*istioapi.DestinationRule
	IstioGateways() []*istioapi.Gateway
}

// StickyVersionsAnnotation on a VirtualService, set to "true", makes the
// consistent hash of its destinations pick the version too.
const StickyVersionsAnnotation = "weir.dev/sticky-versions"

// Condition types this front-end writes besides Accepted and ResolvedRefs.
const (
	// BackendsReady is False when a destination has no ready endpoint: its
	// share of requests fails with 503.
	BackendsReady = "BackendsReady"
	// StickyVersions reports on the sticky-versions annotation.
	StickyVersions = "StickyVersions"
	// Conflicted is True when another object routes the same host.
	Conflicted = "Conflicted"
)

// Reasons in the conditions this front-end writes.
const (
	ReasonAccepted         = "Accepted"
	ReasonResolvedRefs     = "ResolvedRefs"
	ReasonInvalidField     = "InvalidField"
	ReasonUnsupported      = "Unsupported"
	ReasonInvalidWeight    = "InvalidWeight"
	ReasonHostNotFound     = "HostNotFound"
	ReasonBackendNotFound  = "BackendNotFound"
	ReasonPortNotFound     = "PortNotFound"
	ReasonSubsetNotFound   = "SubsetNotFound"
	ReasonGatewayNotFound  = "GatewayNotFound"
	ReasonInvalidSecret    = "InvalidCertificateRef"
	ReasonNoReadyEndpoints = "NoReadyEndpoints"
	ReasonConflicted       = "Conflicted"
	ReasonNoHash           = "NoConsistentHash"
)

// Result is what the Istio objects of one translation produce.
type Result struct {
	// Routes are the mesh routes per IR host name, in match order. A host
	// with routes answers 404 to requests none matches, as with istiod.
	Routes map[string][]ir.Route
	// Standby are clusters routes name with weight 0, per IR host name.
	Standby map[string][]string
	// Clusters are new clusters (subsets), and Service clusters with a
	// DestinationRule's policy, which replace the plain ones; sorted by
	// name.
	Clusters []ir.Cluster
	// Servers are sorted by name.
	Servers []ir.Server
	// Secrets are the valid certificates the Servers use, sorted by name.
	Secrets []ir.Secret
	Status  []status.Object
}

// Translate reads every VirtualService, DestinationRule and Gateway. It is
// pure; services is read, never modified.
func Translate(objs Objects, services *kube.Index) Result {
	t := newTranslation(services)
	t.readRules(objs.DestinationRules())
	vss := sortedByAge(objs.VirtualServices())
	plans := make([]*vsPlan, 0, len(vss))
	for _, vs := range vss {
		plans = append(plans, t.planVirtualService(vs))
	}
	res := Result{Routes: map[string][]ir.Route{}, Standby: map[string][]string{}}
	t.meshRoutes(plans, &res)
	gw := t.gatewayServers(objs, objs.IstioGateways(), plans)
	res.Servers, res.Secrets = gw.servers, gw.secrets
	for _, p := range plans {
		p.finish(t)
		res.Status = append(res.Status, p.status)
	}
	res.Status = append(res.Status, t.ruleStatus()...)
	res.Status = append(res.Status, gw.status...)
	res.Clusters = t.sortedClusters()
	return res
}

// translation holds the state of one Translate call.
type translation struct {
	services *kube.Index
	// rules maps "namespace/service" to the DestinationRule in force.
	rules    map[string]*rule
	allRules []*rule
	// clusters are the clusters this front-end made or changed, by name.
	clusters map[string]*ir.Cluster
	// gatewayKeys are the accepted Gateways, "namespace/name".
	gatewayKeys map[string]bool
}

func newTranslation(services *kube.Index) *translation {
	return &translation{services: services, rules: map[string]*rule{}, clusters: map[string]*ir.Cluster{}, gatewayKeys: map[string]bool{}}
}

// cluster returns the cluster name as this front-end sees it: its own
// version if it made one, else the Service index's, else nil.
func (t *translation) cluster(name string) *ir.Cluster {
	if c := t.clusters[name]; c != nil {
		return c
	}
	return t.services.Clusters[name]
}

func (t *translation) sortedClusters() []ir.Cluster {
	out := make([]ir.Cluster, 0, len(t.clusters))
	for _, c := range t.clusters {
		out = append(out, *c)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// objectStatus starts the status of an object.
func objectStatus(group, kind, namespace, name string, generation int64) status.Object {
	return status.Object{Group: group, Kind: kind, Namespace: namespace, Name: name, Generation: generation}
}

// invalid is a user's mistake that rejects the whole object.
type invalid struct {
	reason string
	msg    string
}

func (e *invalid) Error() string { return e.msg }

// fieldError returns an invalid naming field.
func fieldError(reason, field, format string, args ...any) *invalid {
	return &invalid{reason: reason, msg: field + ": " + fmt.Sprintf(format, args...)}
}

// rejected is the Accepted=False condition of err.
func rejected(err *invalid) status.Condition {
	return status.Condition{Type: status.Accepted, Status: status.False, Reason: err.reason, Message: err.msg}
}

// unresolved records err as both Accepted=False and ResolvedRefs=False.
func unresolved(s *status.Object, err *invalid) {
	s.Set(status.Condition{Type: status.ResolvedRefs, Status: status.False, Reason: err.reason, Message: err.msg})
	s.Set(rejected(err))
}
