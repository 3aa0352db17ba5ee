//go:build linux

package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/weir-mesh/weir/translator/gatewayapi"
)

// kubeGatewayAPIRoute is HTTPRoute shop/web on the Gateway shop/edge,
// splitting web.example.test between Services web-v1 and web-v2.
func kubeGatewayAPIRoute(v1, v2 int) string {
	return fmt.Sprintf(`apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: web, namespace: shop}
spec:
  parentRefs: [{name: edge}]
  hostnames: [web.example.test]
  rules:
  - backendRefs:
    - {name: web-v1, port: 80, weight: %d}
    - {name: web-v2, port: 80, weight: %d}
`, v1, v2)
}

// TestGatewayAPIKube installs deploy/crds/gateway-api.yaml in a real
// cluster; weir, with only deploy/rbac.yaml's rights, serves a Gateway and
// an HTTPRoute to an Envoy gateway and writes their status back: the
// GatewayClass's and Gateway's conditions, the listeners' attachedRoutes,
// and the route's parents, each with the observedGeneration of the spec it
// was computed from.
func TestGatewayAPIKube(t *testing.T) {
	start := time.Now()
	k := kubeSetup(t)
	crds, err := os.ReadFile(filepath.Join(repoRoot(t), "deploy/crds/gateway-api.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	k.Apply(t, string(crds))
	port := int(freePort(t))
	k.Apply(t, fmt.Sprintf(`apiVersion: v1
kind: Namespace
metadata: {name: shop}
---
apiVersion: v1
kind: Service
metadata: {name: web-v1, namespace: shop}
spec:
  selector: {app: web, version: v1}
  ports: [{name: http, port: 80, targetPort: %[1]d}]
---
apiVersion: v1
kind: Service
metadata: {name: web-v2, namespace: shop}
spec:
  selector: {app: web, version: v2}
  ports: [{name: http, port: 80, targetPort: %[1]d}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: {name: weir}
spec:
  controllerName: weir.dev/gateway-controller
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: edge, namespace: shop}
spec:
  gatewayClassName: weir
  listeners:
  - {name: http, protocol: HTTP, port: 80}
`, port))
	for _, v := range []string{"v1", "v2"} {
		startPod(t, k, "shop", "web-"+v, map[string]string{"app": "web", "version": v}, port, v, true)
	}
	k.Apply(t, kubeGatewayAPIRoute(0, 100))
	w := startWeirProc(t, k, "weir-0")
	g := launchGateway(t, w.xds, map[string]string{gatewayapi.GatewayNameLabel: "edge", gatewayapi.GatewayNamespaceLabel: "shop"})
	acked := w.waitConverged(t, kubeConvergeTimeout, g.nodeID, nil, nil)
	web := request{"GET", "web.example.test", "/"}
	waitFor(t, kubeConvergeTimeout, "the route to reach the gateway", func() error {
		if out, err := g.answer(g.client, web); out != "v2" {
			return fmt.Errorf("%s %v", out, err)
		}
		return nil
	})
	t.Logf("cluster, weir and envoy ready in %v", time.Since(start).Round(time.Millisecond))
	expectAll(t, g.sidecar, 200, web, "v2")

	k.WaitObject(t, kubeConvergeTimeout, "gateway.networking.k8s.io/v1", "GatewayClass", "", "weir", acceptedCondition("True", "Accepted"))
	k.WaitObject(t, kubeConvergeTimeout, "gateway.networking.k8s.io/v1", "Gateway", "shop", "edge", func(u *unstructured.Unstructured) error {
		if err := gatewayAPICondition(u, "Programmed", "True", u.GetGeneration(), "status", "conditions"); err != nil {
			return err
		}
		listeners, _, _ := unstructured.NestedSlice(u.Object, "status", "listeners")
		if len(listeners) != 1 {
			return fmt.Errorf("status.listeners %v", listeners)
		}
		l := listeners[0].(map[string]any)
		if fmt.Sprint(l["attachedRoutes"]) != "1" || fmt.Sprint(l["supportedKinds"]) != "[map[group:gateway.networking.k8s.io kind:HTTPRoute]]" {
			return fmt.Errorf("listener status %v", l)
		}
		return gatewayAPICondition(&unstructured.Unstructured{Object: l}, "Programmed", "True", u.GetGeneration(), "conditions")
	})
	routeParent := func(gen int64) func(*unstructured.Unstructured) error {
		return func(u *unstructured.Unstructured) error {
			if u.GetGeneration() != gen {
				return fmt.Errorf("generation %d, want %d", u.GetGeneration(), gen)
			}
			parents, _, _ := unstructured.NestedSlice(u.Object, "status", "parents")
			if len(parents) != 1 {
				return fmt.Errorf("status.parents %v", parents)
			}
			p := parents[0].(map[string]any)
			if p["controllerName"] != "weir.dev/gateway-controller" {
				return fmt.Errorf("parent %v", p)
			}
			for _, typ := range []string{"Accepted", "ResolvedRefs"} {
				if err := gatewayAPICondition(&unstructured.Unstructured{Object: p}, typ, "True", gen, "conditions"); err != nil {
					return err
				}
			}
			return nil
		}
	}
	k.WaitObject(t, kubeConvergeTimeout, "gateway.networking.k8s.io/v1", "HTTPRoute", "shop", "web", routeParent(1))

	k.Apply(t, kubeGatewayAPIRoute(100, 0))
	w.waitConverged(t, kubeConvergeTimeout, g.nodeID, acked, nil, routeType)
	expectAll(t, g.sidecar, 200, web, "v1")
	k.WaitObject(t, kubeConvergeTimeout, "gateway.networking.k8s.io/v1", "HTTPRoute", "shop", "web", routeParent(2))
	t.Logf("done in %v", time.Since(start).Round(time.Millisecond))
}

// gatewayAPICondition checks that the conditions at path in u have typ
// with status and observedGeneration gen.
func gatewayAPICondition(u *unstructured.Unstructured, typ, status string, gen int64, path ...string) error {
	conds, _, _ := unstructured.NestedSlice(u.Object, path...)
	for _, c := range conds {
		m, _ := c.(map[string]any)
		if m["type"] != typ {
			continue
		}
		if m["status"] != status || fmt.Sprint(m["observedGeneration"]) != fmt.Sprint(gen) {
			return fmt.Errorf("%s: %v, want status %s observedGeneration %d", typ, m, status, gen)
		}
		return nil
	}
	return fmt.Errorf("no %s condition in %v", typ, conds)
}
