//go:build linux

package e2e

import (
	"fmt"
	"net/http"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/weir-mesh/weir/translator/kube/testcert"
)

// kubeIngress is Service shop/web (Pods app=web) behind an Ingress of class
// weir for shop.example.test, TLS from Secret web-cert, and an Opaque
// Secret weir must not need.
const kubeIngress = `apiVersion: v1
kind: Namespace
metadata: {name: shop}
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: shop}
spec:
  selector: {app: web}
  ports:
  - {name: http, port: 80, targetPort: http}
---
apiVersion: v1
kind: Secret
metadata: {name: db-password, namespace: shop}
type: Opaque
stringData: {password: not-for-weir}
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: web, namespace: shop}
spec:
  ingressClassName: weir
  tls:
  - hosts: [shop.example.test]
    secretName: web-cert
  rules:
  - host: shop.example.test
    http:
      paths:
      - path: /
        pathType: Prefix
        backend:
          service: {name: web, port: {number: 80}}
`

// TestKubeIngressTLS: from a real API server, weir serves an Ingress over
// TLS with the certificate of a kubernetes.io/tls Secret, writes the
// gateway address to the Ingress status, and a Secret updated in place
// reaches the gateway Envoy with no failed request.
func TestKubeIngressTLS(t *testing.T) {
	const host = "shop.example.test"
	k := kubeSetup(t)
	k.Apply(t, kubeIngress)
	first := testcert.New(t, host)
	k.Apply(t, first.Secret("shop", "web-cert"))
	port := int(freePort(t))
	startPod(t, k, "shop", "web-1", map[string]string{"app": "web"}, port, "Hi, I am v1!", true)

	w := startWeirProc(t, k, "weir-0", "--ingress-address", "192.0.2.10")
	g := launchGateway(t, w.xds, nil)
	w.waitConverged(t, kubeConvergeTimeout, g.nodeID, nil, w.statusAccepted("Ingress/shop/web"))
	k.WaitObject(t, kubeConvergeTimeout, "networking.k8s.io/v1", "Ingress", "shop", "web", func(u *unstructured.Unstructured) error {
		lb, _, _ := unstructured.NestedSlice(u.Object, "status", "loadBalancer", "ingress")
		if len(lb) != 1 || fmt.Sprint(lb[0]) != "map[ip:192.0.2.10]" {
			return fmt.Errorf("status.loadBalancer.ingress %v", lb)
		}
		return nil
	})

	c := g.httpsClient(first.Roots, 1)
	if out, err := doHTTPS(c, host, "/"); out != "v1" {
		t.Fatalf("https://%s/: %s %v", host, out, err)
	}

	second := testcert.New(t, host)
	roots := first.Roots.Clone()
	roots.AppendCertsFromPEM(second.CertPEM)
	do := func(c *http.Client) (string, error) { return doHTTPS(c, host, "/") }
	l := startLoadWith(4, 1_000_000, func() *http.Client { return g.httpsClient(roots, 1) }, do)
	defer l.finish()
	rotated := time.Now()
	k.Apply(t, second.Secret("shop", "web-cert"))
	waitFor(t, 5*time.Second, "the rotated certificate to be served", func() error {
		serial, err := g.servedCertificate(roots, host)
		if err != nil {
			return err
		}
		if serial.Cmp(second.Serial) != 0 {
			return errNotYet
		}
		return nil
	})
	t.Logf("Secret updated in the API server -> new certificate served in %v", time.Since(rotated).Round(time.Millisecond))
	if tl := l.finish(); failed(tl, "v1") != 0 || tl.n == 0 {
		t.Errorf("requests during the rotation: %v", tl)
	}
}
