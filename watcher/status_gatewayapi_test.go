package watcher

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	runtimeschema "k8s.io/apimachinery/pkg/runtime/schema"
	dynamicfake "k8s.io/client-go/dynamic/fake"
	kubefake "k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
	gwapiv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/weir-mesh/weir/translator/status"
)

var (
	gatewayGVR = runtimeschema.GroupVersionResource{Group: gwapiv1.GroupName, Version: "v1", Resource: "gateways"}
	routeGVR   = runtimeschema.GroupVersionResource{Group: gwapiv1.GroupName, Version: "v1", Resource: "httproutes"}
)

func TestStatusGatewayAPIShapes(t *testing.T) {
	route := liveObject(gwapiv1.GroupName+"/v1", "HTTPRoute", "web", 3)
	other := map[string]any{"controllerName": "example.net/other", "parentRef": map[string]any{"name": "theirs"},
		"conditions": []any{map[string]any{"type": "Accepted", "status": "True", "reason": "Accepted", "message": "",
			"lastTransitionTime": "2020-01-01T00:00:00Z"}}}
	if err := unstructured.SetNestedSlice(route.Object, []any{other}, "status", "parents"); err != nil {
		t.Fatal(err)
	}
	dyn := dynamicfake.NewSimpleDynamicClientWithCustomListKinds(runtime.NewScheme(), map[runtimeschema.GroupVersionResource]string{
		gatewayGVR: "GatewayList", routeGVR: "HTTPRouteList",
	})
	// Created through the client: the fake's constructor would guess the
	// resource "gatewaies".
	for gvr, obj := range map[runtimeschema.GroupVersionResource]*unstructured.Unstructured{
		gatewayGVR: liveObject(gwapiv1.GroupName+"/v1", "Gateway", "gw", 2), routeGVR: route,
	} {
		if _, err := dyn.Resource(gvr).Namespace("shop").Create(context.Background(), obj, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	w := NewStatusWriter(dyn, kubefake.NewClientset(), slog.New(slog.NewTextHandler(io.Discard, nil)))
	now := time.Date(2026, 5, 1, 10, 0, 0, 0, time.UTC)
	w.now = func() time.Time { return now }
	accepted := []status.Condition{{Type: "Accepted", Status: "True", Reason: "Accepted", Message: "ok"}}
	objs := []status.Object{
		{Group: gwapiv1.GroupName, Kind: "Gateway", Namespace: "shop", Name: "gw", Generation: 2, Conditions: accepted,
			Listeners: []status.Listener{{Name: "http", AttachedRoutes: 1, SupportedKinds: []string{"HTTPRoute"}, Conditions: accepted}}},
		{Group: gwapiv1.GroupName, Kind: "HTTPRoute", Namespace: "shop", Name: "web", Generation: 3, Conditions: []status.Condition{},
			Parents: []status.Parent{{ParentRef: status.ParentRef{Name: "gw"}, ControllerName: "weir.dev/gateway-controller", Conditions: accepted}}},
	}
	if err := w.Write(context.Background(), objs); err != nil {
		t.Fatal(err)
	}
	cond := metav1.Condition{Type: "Accepted", Status: "True", Reason: "Accepted", Message: "ok",
		LastTransitionTime: metav1.NewTime(now), ObservedGeneration: 2}
	gw, err := dyn.Resource(gatewayGVR).Namespace("shop").Get(context.Background(), "gw", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	got := liveGatewayAPIStatus(gw)
	want := gatewayAPIStatus{Conditions: []metav1.Condition{cond}, Listeners: []gwapiv1.ListenerStatus{{
		Name: "http", AttachedRoutes: 1, Conditions: []metav1.Condition{cond},
		SupportedKinds: []gwapiv1.RouteGroupKind{{Group: new(gwapiv1.Group(gwapiv1.GroupName)), Kind: "HTTPRoute"}},
	}}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Gateway status (-want +got):\n%s", diff)
	}
	rt, err := dyn.Resource(routeGVR).Namespace("shop").Get(context.Background(), "web", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	parents := liveGatewayAPIStatus(rt).Parents
	if len(parents) != 2 || parents[0].ControllerName != "example.net/other" || parents[1].ControllerName != "weir.dev/gateway-controller" ||
		parents[1].Conditions[0].ObservedGeneration != 3 {
		t.Errorf("route parents = %+v, want the other controller's kept and weir's with observedGeneration 3", parents)
	}

	// A new writer (a restart) finds the status right and patches nothing.
	dyn.ClearActions()
	w2 := NewStatusWriter(dyn, kubefake.NewClientset(), slog.New(slog.NewTextHandler(io.Discard, nil)))
	w2.now = func() time.Time { return now.Add(time.Hour) }
	if err := w2.Write(context.Background(), objs); err != nil {
		t.Fatal(err)
	}
	for _, a := range dyn.Actions() {
		if _, ok := a.(k8stesting.PatchAction); ok {
			t.Errorf("unexpected patch after restart: %v", a)
		}
	}
}
