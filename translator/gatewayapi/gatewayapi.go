// Package gatewayapi is the front-end for Gateway API v1
// (gateway.networking.k8s.io): GatewayClass, Gateway, HTTPRoute and
// ReferenceGrant. Gateways of weir's GatewayClasses become IR servers for
// gateway proxies; HTTPRoutes whose parent is a Service (GAMMA, the mesh)
// become routes of that Service's hosts, for sidecars and proxyless gRPC.
// Status follows the Gateway API specification; where it leaves a choice,
// weir chooses what Envoy Gateway chose.
package gatewayapi

import (
	"sort"

	gwapiv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/weir-mesh/weir/translator/ir"
	"github.com/weir-mesh/weir/translator/kube"
	"github.com/weir-mesh/weir/translator/status"
)

// DefaultControllerName is the spec.controllerName of the GatewayClasses
// weir serves when none is configured.
const DefaultControllerName = "weir.dev/gateway-controller"

// The labels that pick the gateway proxies serving a Gateway: a proxy whose
// labels hold both (as Envoy Gateway's gateway pods do) serves the Gateway
// NAMESPACE/NAME.
const (
	GatewayNameLabel      = "gateway.networking.k8s.io/gateway-name"
	GatewayNamespaceLabel = "gateway.envoyproxy.io/owning-gateway-namespace"
)

// Objects is the read-only view of the store this front-end needs.
type Objects interface {
	kube.SecretObjects
	GatewayClasses() []*gwapiv1.GatewayClass
	Gateways() []*gwapiv1.Gateway
	HTTPRoutes() []*gwapiv1.HTTPRoute
	ReferenceGrants() []*gwapiv1.ReferenceGrant
}

// Options tune the front-end; the zero value gives the defaults.
type Options struct {
	// ControllerName selects the GatewayClasses weir serves; "" means
	// DefaultControllerName.
	ControllerName string
}

// Result is what the front-end produced.
type Result struct {
	// Routes maps a mesh host name to the routes of the HTTPRoutes attached
	// to it (GAMMA), in match order. A host with no entry keeps its default
	// route.
	Routes map[string][]ir.Route
	// Standby maps a mesh host name to the clusters of its weight-0
	// backends.
	Standby map[string][]string
	// Servers are the gateway servers of every accepted Gateway, sorted by
	// name.
	Servers []ir.Server
	// Secrets are the valid certificates the servers use, sorted by name.
	Secrets []ir.Secret
	// Status has one entry per GatewayClass weir serves, per Gateway of
	// those classes and per HTTPRoute with a parentRef weir serves.
	Status []status.Object
}

// Translate reads the Gateway API objects of objs; services resolves
// backend references. It never fails: a user's mistake is a condition in
// Status and the rest still translates.
func Translate(objs Objects, services *kube.Index, opts Options) Result {
	t := &translator{
		objs:       objs,
		services:   services,
		controller: opts.ControllerName,
		grants:     objs.ReferenceGrants(),
		secrets:    map[string]ir.Secret{},
	}
	if t.controller == "" {
		t.controller = DefaultControllerName
	}
	res := Result{Routes: map[string][]ir.Route{}, Standby: map[string][]string{}}
	classes, classStatus := t.classes()
	gateways := t.gateways(classes)
	mesh := map[string][]ruleRoute{}
	var routeStatus []status.Object
	for _, r := range sortedRoutes(objs.HTTPRoutes()) {
		if st, ok := t.route(r, gateways, mesh); ok {
			routeStatus = append(routeStatus, st)
		}
	}
	for host, rules := range mesh {
		res.Routes[host], res.Standby[host] = meshRoutes(rules)
	}
	// Gateways' status comes after every route has attached.
	res.Status = append(res.Status, classStatus...)
	for _, key := range sortedKeys(gateways) {
		g := gateways[key]
		st := g.statusObject()
		if st.Get(condAccepted).Status == status.True {
			res.Servers = append(res.Servers, g.servers()...)
		}
		res.Status = append(res.Status, st)
	}
	res.Status = append(res.Status, routeStatus...)
	sort.Slice(res.Servers, func(i, j int) bool { return res.Servers[i].Name < res.Servers[j].Name })
	res.Secrets = sortedSecrets(t.secrets)
	return res
}

// translator holds one translation's inputs.
type translator struct {
	objs       Objects
	services   *kube.Index
	controller string
	grants     []*gwapiv1.ReferenceGrant
	// secrets are the valid certificates listeners use, by IR name.
	secrets map[string]ir.Secret
	// seq numbers matches in the order of the spec's tie-break.
	seq int
}

func sortedKeys[T any](m map[string]T) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func sortedSecrets(m map[string]ir.Secret) []ir.Secret {
	out := make([]ir.Secret, 0, len(m))
	for _, s := range m {
		out = append(out, s)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// sortedRoutes orders routes as the spec's tie-break does: oldest first,
// then by namespace/name.
func sortedRoutes(routes []*gwapiv1.HTTPRoute) []*gwapiv1.HTTPRoute {
	out := append([]*gwapiv1.HTTPRoute(nil), routes...)
	sort.SliceStable(out, func(i, j int) bool {
		a, b := out[i].CreationTimestamp, out[j].CreationTimestamp
		if !a.Equal(&b) {
			return a.Before(&b)
		}
		if out[i].Namespace != out[j].Namespace {
			return out[i].Namespace < out[j].Namespace
		}
		return out[i].Name < out[j].Name
	})
	return out
}

// condition builds a status condition.
func condition(t string, ok bool, reason, message string) status.Condition {
	s := status.False
	if ok {
		s = status.True
	}
	return status.Condition{Type: t, Status: s, Reason: reason, Message: message}
}
