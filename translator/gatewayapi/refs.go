package gatewayapi

import (
	"fmt"

	gwapiv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/weir-mesh/weir/translator/kube"
	"github.com/weir-mesh/weir/translator/status"
)

// Reasons Envoy Gateway uses beyond the spec's, kept for the same
// meaning.
const (
	reasonPortNotSpecified = "PortNotSpecified"
	reasonPortNotFound     = "PortNotFound"
)

// backend resolves a backend reference from a route in routeNS to the
// cluster of a Service port, or returns the ResolvedRefs=False condition
// that says why not (checked in Envoy Gateway's order).
func (t *translator) backend(routeNS string, ref gwapiv1.BackendObjectReference) (string, *status.Condition) {
	fail := func(reason, format string, args ...any) (string, *status.Condition) {
		c := condition(condResolvedRefs, false, reason, fmt.Sprintf(format, args...))
		return "", &c
	}
	ns := routeNS
	if ref.Namespace != nil && *ref.Namespace != "" {
		ns = string(*ref.Namespace)
	}
	switch {
	case ref.Group != nil && *ref.Group != "":
		return fail(string(gwapiv1.RouteReasonInvalidKind), "Group is invalid, only the core API group (specified by omitting the group field or setting it to an empty string) is supported")
	case ref.Kind != nil && *ref.Kind != kindService:
		return fail(string(gwapiv1.RouteReasonInvalidKind), "Kind is invalid, only Service is supported")
	case ns != routeNS && !t.permits(kindHTTPRoute, routeNS, "", kindService, ns, string(ref.Name)):
		return fail(string(gwapiv1.RouteReasonRefNotPermitted), "Backend ref to Service %s/%s not permitted by any ReferenceGrant.", ns, ref.Name)
	case ref.Port == nil:
		return fail(reasonPortNotSpecified, "A valid port number corresponding to a port on the Service must be specified")
	}
	svc := t.services.Service(ns, string(ref.Name))
	if svc == nil {
		return fail(string(gwapiv1.RouteReasonBackendNotFound), "Service %s/%s not found", ns, ref.Name)
	}
	for _, p := range svc.Spec.Ports {
		if p.Port == *ref.Port {
			return kube.ClusterName(ns, svc.Name, uint32(p.Port)), nil
		}
	}
	return fail(reasonPortNotFound, "TCP Port %d not found on Service %s/%s", *ref.Port, ns, ref.Name)
}

// permits reports whether a ReferenceGrant in toNS lets objects of
// fromKind (group gateway.networking.k8s.io) in fromNS refer to the object
// toGroup/toKind toName.
func (t *translator) permits(fromKind, fromNS, toGroup, toKind, toNS, toName string) bool {
	for _, g := range t.grants {
		if g.Namespace != toNS {
			continue
		}
		from, to := false, false
		for _, f := range g.Spec.From {
			from = from || string(f.Group) == gwapiv1.GroupName && string(f.Kind) == fromKind && string(f.Namespace) == fromNS
		}
		for _, x := range g.Spec.To {
			to = to || string(x.Group) == toGroup && string(x.Kind) == toKind && (x.Name == nil || *x.Name == "" || string(*x.Name) == toName)
		}
		if from && to {
			return true
		}
	}
	return false
}
