//go:build linux

package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestIstioKube installs deploy/crds/istio.yaml in a real cluster, applies
// a DestinationRule (v1beta1) and a VirtualService (v1alpha3, later edited
// as v1), and checks where Envoy sends requests and that weir writes the
// objects' status back through the status subresource.
func TestIstioKube(t *testing.T) {
	start := time.Now()
	k := kubeSetup(t)
	crds, err := os.ReadFile(filepath.Join(repoRoot(t), "deploy/crds/istio.yaml"))
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
metadata: {name: reviews, namespace: shop}
spec:
  selector: {app: reviews}
  ports: [{name: http, port: 9080, targetPort: %d}]
---
apiVersion: networking.istio.io/v1beta1
kind: DestinationRule
metadata: {name: reviews, namespace: shop}
spec:
  host: reviews
  subsets:
  - {name: v1, labels: {version: v1}}
  - {name: v2, labels: {version: v2}}
`, port))
	for _, v := range []string{"v1", "v2"} {
		startPod(t, k, "shop", "reviews-"+v, map[string]string{"app": "reviews", "version": v}, port, v, true)
	}
	k.Apply(t, weightedRouteAt("v1alpha3", 0, 100))
	w := startWeirProc(t, k, "weir-0")
	sc, acked := startKubeSidecar(t, w, "shop")
	// Converged on both Pods' endpoints too: the EndpointSlice controller
	// may add them after the routes are accepted.
	accepted, ready := w.statusAccepted("VirtualService/shop/reviews", "DestinationRule/shop/reviews"), w.servicesHas("service shop/reviews: v1 1 ready, v2 1 ready")
	acked = w.waitConverged(t, kubeConvergeTimeout, sc.nodeID, acked, func() error {
		if err := accepted(); err != nil {
			return err
		}
		return ready()
	})
	t.Logf("cluster, weir and envoy ready in %v", time.Since(start).Round(time.Millisecond))
	reviews := request{"GET", "reviews.shop.svc.cluster.local:9080", "/"}
	expectAll(t, sc, 200, reviews, "v2")
	for _, kind := range []string{"VirtualService", "DestinationRule"} {
		k.WaitObject(t, kubeConvergeTimeout, "networking.istio.io/v1", kind, "shop", "reviews", acceptedCondition("True", "Accepted"))
	}

	k.Apply(t, weightedRouteAt("v1", 100, 0))
	w.waitConverged(t, kubeConvergeTimeout, sc.nodeID, acked, nil, routeType)
	expectAll(t, sc, 200, reviews, "v1")
	k.WaitObject(t, kubeConvergeTimeout, "networking.istio.io/v1beta1", "VirtualService", "shop", "reviews", acceptedCondition("True", "Accepted"))
	t.Logf("done in %v", time.Since(start).Round(time.Millisecond))
}

// weightedRouteAt is the reviews VirtualService in apiVersion version.
func weightedRouteAt(version string, v1, v2 int) string {
	return fmt.Sprintf(`apiVersion: networking.istio.io/%s
kind: VirtualService
metadata: {name: reviews, namespace: shop}
spec:
  hosts: [reviews]
  http:
  - route:
    - destination: {host: reviews, subset: v1}
      weight: %d
    - destination: {host: reviews, subset: v2}
      weight: %d
`, version, v1, v2)
}
