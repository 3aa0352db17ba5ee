package gatewayapi

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	gwapiv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/weir-mesh/weir/translator/kube"
	statuspkg "github.com/weir-mesh/weir/translator/status"
)

// objects is an in-memory Objects.
type objects struct {
	classes  []*gwapiv1.GatewayClass
	gateways []*gwapiv1.Gateway
	routes   []*gwapiv1.HTTPRoute
	services []*corev1.Service
}

func (o objects) GatewayClasses() []*gwapiv1.GatewayClass    { return o.classes }
func (o objects) Gateways() []*gwapiv1.Gateway               { return o.gateways }
func (o objects) HTTPRoutes() []*gwapiv1.HTTPRoute           { return o.routes }
func (o objects) ReferenceGrants() []*gwapiv1.ReferenceGrant { return nil }
func (o objects) Secret(string, string) *corev1.Secret       { return nil }
func (o objects) ServicesWithSlices() ([]*corev1.Service, [][]*discoveryv1.EndpointSlice) {
	return o.services, make([][]*discoveryv1.EndpointSlice, len(o.services))
}
func (o objects) PodsIn(string) []*corev1.Pod    { return nil }
func (o objects) Pod(string, string) *corev1.Pod { return nil }

// TestSparseObjects translates objects with the optional fields the
// API server would default left out, and filters without their
// configuration: nothing may panic, and status must say what is wrong.
func TestSparseObjects(t *testing.T) {
	objs := objects{
		classes: []*gwapiv1.GatewayClass{{ObjectMeta: metav1.ObjectMeta{Name: "weir"}, Spec: gwapiv1.GatewayClassSpec{ControllerName: DefaultControllerName}}},
		gateways: []*gwapiv1.Gateway{{ObjectMeta: metav1.ObjectMeta{Name: "gw", Namespace: "ns"}, Spec: gwapiv1.GatewaySpec{
			GatewayClassName: "weir",
			Listeners: []gwapiv1.Listener{
				{Name: "http", Protocol: gwapiv1.HTTPProtocolType, Port: 80},
				{Name: "https", Protocol: gwapiv1.HTTPSProtocolType, Port: 443},
				{Name: "sel", Protocol: gwapiv1.HTTPProtocolType, Port: 81, AllowedRoutes: &gwapiv1.AllowedRoutes{
					Namespaces: &gwapiv1.RouteNamespaces{From: new(gwapiv1.NamespacesFromSelector)}}},
			},
		}}},
		services: []*corev1.Service{{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "ns"},
			Spec: corev1.ServiceSpec{Ports: []corev1.ServicePort{{Name: "http", Port: 80}}}}},
		routes: []*gwapiv1.HTTPRoute{{ObjectMeta: metav1.ObjectMeta{Name: "r", Namespace: "ns"}, Spec: gwapiv1.HTTPRouteSpec{
			CommonRouteSpec: gwapiv1.CommonRouteSpec{ParentRefs: []gwapiv1.ParentReference{{Name: "gw"}, {Name: "web", Kind: new(gwapiv1.Kind("Service")), Group: new(gwapiv1.Group(""))}}},
			Rules: []gwapiv1.HTTPRouteRule{
				{Matches: []gwapiv1.HTTPRouteMatch{{Path: &gwapiv1.HTTPPathMatch{}}}},
				{Filters: []gwapiv1.HTTPRouteFilter{{Type: gwapiv1.HTTPRouteFilterRequestRedirect}, {Type: gwapiv1.HTTPRouteFilterRequestMirror}}},
				{Filters: []gwapiv1.HTTPRouteFilter{{Type: gwapiv1.HTTPRouteFilterURLRewrite, URLRewrite: &gwapiv1.HTTPURLRewriteFilter{Path: &gwapiv1.HTTPPathModifier{Type: gwapiv1.PrefixMatchHTTPPathModifier}}}},
					BackendRefs: []gwapiv1.HTTPBackendRef{{BackendRef: gwapiv1.BackendRef{BackendObjectReference: gwapiv1.BackendObjectReference{Name: "web"}}}}},
				{BackendRefs: []gwapiv1.HTTPBackendRef{{BackendRef: gwapiv1.BackendRef{BackendObjectReference: gwapiv1.BackendObjectReference{Name: "web", Port: new(gwapiv1.PortNumber(80))}, Weight: new(int32(0))}}}},
			},
		}}},
	}
	res := Translate(objs, kube.Build(objs, nil), Options{})
	if len(res.Status) != 3 {
		t.Fatalf("status of %d objects, want 3 (class, gateway, route): %+v", len(res.Status), res.Status)
	}
	route := res.Status[2]
	if len(route.Parents) != 2 {
		t.Fatalf("route parents %+v, want 2", route.Parents)
	}
	for _, p := range route.Parents {
		if c := p.Conditions[len(p.Conditions)-1]; c.Type != condResolvedRefs || c.Reason != reasonPortNotSpecified {
			t.Errorf("parent %s: last condition %+v, want ResolvedRefs PortNotSpecified", p.ParentRef.Name, c)
		}
	}
	gw := res.Status[1]
	for _, l := range gw.Listeners {
		if l.Name != "http" && condStatus(l.Conditions, condProgrammed) != "False" {
			t.Errorf("listener %s: Programmed %s, want False", l.Name, condStatus(l.Conditions, condProgrammed))
		}
	}
	if got := res.Standby["web.ns.svc.cluster.local:80"]; len(got) != 1 {
		t.Errorf("standby %v, want the weight-0 backend", got)
	}
}

func condStatus(conds []statuspkg.Condition, t string) string {
	for _, c := range conds {
		if c.Type == t {
			return c.Status
		}
	}
	return ""
}
