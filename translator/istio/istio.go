// Package istio turns Istio VirtualServices, DestinationRules and Gateways
// into IR routes, subset clusters, gateway servers and status.
package istio

import (
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

// Result is what the Istio objects of one translation produce.
type Result struct {
	// Routes are the mesh routes per IR host name, in match order.
	Routes map[string][]ir.Route
	// Standby are clusters routes name with weight 0, per IR host name.
	Standby map[string][]string
	// Clusters are new clusters (subsets), and Service clusters with a
	// DestinationRule's policy, which replace the plain ones.
	Clusters []ir.Cluster
	// Servers are sorted by name.
	Servers []ir.Server
	// Secrets are the valid certificates the Servers use, sorted by name.
	Secrets []ir.Secret
	Status  []status.Object
}

// Translate reads every VirtualService, DestinationRule and Gateway.
func Translate(objs Objects, services *kube.Index) Result {
	return Result{}
}
