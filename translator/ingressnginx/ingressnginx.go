// Package ingressnginx turns networking.k8s.io/v1 Ingresses, with
// ingress-nginx's canary annotations, into gateway servers and status.
package ingressnginx

import (
	networkingv1 "k8s.io/api/networking/v1"

	"github.com/weir-mesh/weir/translator/ir"
	"github.com/weir-mesh/weir/translator/kube"
	"github.com/weir-mesh/weir/translator/status"
)

// Objects is the read-only view of the store this front-end needs.
type Objects interface {
	kube.SecretObjects
	Ingresses() []*networkingv1.Ingress
}

// DefaultClass is the ingress class weir serves when none is configured.
const DefaultClass = "weir"

// Options tune the front-end.
type Options struct {
	// Class is the ingressClassName (or legacy kubernetes.io/ingress.class
	// annotation) of the Ingresses served; "" means DefaultClass.
	Class string
}

// Result is what the Ingresses of one translation produce.
type Result struct {
	// Servers are sorted by name.
	Servers []ir.Server
	// Secrets are the valid certificates the Servers use, sorted by name.
	Secrets []ir.Secret
	Status  []status.Object
}

// Translate reads every Ingress of the configured class.
func Translate(objs Objects, services *kube.Index, opts Options) Result {
	return Result{}
}
