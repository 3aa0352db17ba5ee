package watcher

import (
	"context"
	"encoding/json"

	apiequality "k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	runtimeschema "k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/retry"
	gwapiv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/weir-mesh/weir/translator/status"
)

// gatewayAPIResources are the Gateway API kinds whose status weir writes,
// in the shapes the spec gives them.
func gatewayAPIResources() map[string]StatusResource {
	res := func(resource string) StatusResource {
		return StatusResource{Resource: runtimeschema.GroupVersionResource{Group: gwapiv1.GroupName, Version: "v1", Resource: resource},
			HasStatus: true, GatewayAPI: true}
	}
	return map[string]StatusResource{
		"GatewayClass." + gwapiv1.GroupName: res("gatewayclasses"),
		"Gateway." + gwapiv1.GroupName:      res("gateways"),
		"HTTPRoute." + gwapiv1.GroupName:    res("httproutes"),
	}
}

// gatewayAPIExtra is what a Gateway API status holds besides conditions,
// in a comparable form.
func gatewayAPIExtra(o status.Object) string {
	b, err := json.Marshal(struct {
		L []status.Listener
		P []status.Parent
	}{o.Listeners, o.Parents})
	if err != nil {
		return ""
	}
	return string(b)
}

// gatewayAPIStatus is the part of a Gateway API object's status weir
// owns: conditions and listeners for GatewayClasses and Gateways, the
// parents of its controller for routes.
type gatewayAPIStatus struct {
	Conditions []metav1.Condition          `json:"conditions,omitempty"`
	Listeners  []gwapiv1.ListenerStatus    `json:"listeners,omitempty"`
	Parents    []gwapiv1.RouteParentStatus `json:"parents,omitempty"`
}

// patchGatewayAPI brings the status of a Gateway API object up to date
// unless the live object already holds it; a route's parents written by
// other controllers are kept. It returns a NotFound error when the object
// is gone.
func (w *StatusWriter) patchGatewayAPI(ctx context.Context, gvr runtimeschema.GroupVersionResource, o status.Object) error {
	client := w.dyn.Resource(gvr).Namespace(o.Namespace)
	return retry.RetryOnConflict(retry.DefaultRetry, func() error {
		live, err := client.Get(ctx, o.Name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		have := liveGatewayAPIStatus(live)
		want := w.wantGatewayAPIStatus(o, have)
		body := map[string]any{}
		switch {
		case o.Parents != nil:
			if apiequality.Semantic.DeepEqual(have.Parents, want.Parents) {
				return nil
			}
			body["parents"] = want.Parents
		default:
			if conditionsEqual(have.Conditions, want.Conditions) && (o.Listeners == nil || apiequality.Semantic.DeepEqual(have.Listeners, want.Listeners)) {
				return nil
			}
			body["conditions"] = want.Conditions
			if o.Listeners != nil {
				body["listeners"] = want.Listeners
			}
		}
		patch, err := json.Marshal(map[string]any{
			"metadata": map[string]any{"resourceVersion": live.GetResourceVersion()},
			"status":   body,
		})
		if err != nil {
			return err
		}
		_, err = client.Patch(ctx, o.Name, types.MergePatchType, patch, metav1.PatchOptions{FieldManager: fieldManager}, "status")
		return err
	})
}

// liveGatewayAPIStatus decodes an object's status; what does not decode
// is overwritten.
func liveGatewayAPIStatus(obj *unstructured.Unstructured) gatewayAPIStatus {
	var st gatewayAPIStatus
	raw, ok, err := unstructured.NestedMap(obj.Object, "status")
	if err != nil || !ok {
		return st
	}
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(raw, &st); err != nil {
		return gatewayAPIStatus{}
	}
	return st
}

// wantGatewayAPIStatus is o's status as the API holds it, keeping the live
// lastTransitionTime of conditions that did not change.
func (w *StatusWriter) wantGatewayAPIStatus(o status.Object, have gatewayAPIStatus) gatewayAPIStatus {
	want := gatewayAPIStatus{Conditions: w.metaConditions(sortedConditions(o.Conditions), o.Generation, have.Conditions)}
	for _, l := range o.Listeners {
		ls := gwapiv1.ListenerStatus{Name: gwapiv1.SectionName(l.Name), AttachedRoutes: l.AttachedRoutes, SupportedKinds: []gwapiv1.RouteGroupKind{}}
		for _, k := range l.SupportedKinds {
			ls.SupportedKinds = append(ls.SupportedKinds, gwapiv1.RouteGroupKind{Group: new(gwapiv1.Group(gwapiv1.GroupName)), Kind: gwapiv1.Kind(k)})
		}
		var prev []metav1.Condition
		for _, h := range have.Listeners {
			if string(h.Name) == l.Name {
				prev = h.Conditions
			}
		}
		ls.Conditions = w.metaConditions(sortedConditions(l.Conditions), o.Generation, prev)
		want.Listeners = append(want.Listeners, ls)
	}
	if o.Parents == nil {
		return want
	}
	ours := map[string]bool{}
	for _, p := range o.Parents {
		ours[p.ControllerName] = true
	}
	for _, h := range have.Parents {
		if !ours[string(h.ControllerName)] {
			want.Parents = append(want.Parents, h)
		}
	}
	for _, p := range o.Parents {
		ref := parentReference(p.ParentRef)
		var prev []metav1.Condition
		for _, h := range have.Parents {
			if string(h.ControllerName) == p.ControllerName && apiequality.Semantic.DeepEqual(h.ParentRef, ref) {
				prev = h.Conditions
			}
		}
		want.Parents = append(want.Parents, gwapiv1.RouteParentStatus{
			ParentRef: ref, ControllerName: gwapiv1.GatewayController(p.ControllerName),
			Conditions: w.metaConditions(sortedConditions(p.Conditions), o.Generation, prev),
		})
	}
	return want
}

func parentReference(r status.ParentRef) gwapiv1.ParentReference {
	out := gwapiv1.ParentReference{Name: gwapiv1.ObjectName(r.Name), Port: r.Port}
	if r.Group != nil {
		out.Group = new(gwapiv1.Group(*r.Group))
	}
	if r.Kind != nil {
		out.Kind = new(gwapiv1.Kind(*r.Kind))
	}
	if r.Namespace != nil {
		out.Namespace = new(gwapiv1.Namespace(*r.Namespace))
	}
	if r.SectionName != nil {
		out.SectionName = new(gwapiv1.SectionName(*r.SectionName))
	}
	return out
}
