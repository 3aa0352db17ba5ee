package e2e

import (
	"fmt"
	"math"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"

	"github.com/weir-mesh/weir/translator/kube/testcert"
	"github.com/weir-mesh/weir/translator/status"
)

// gatewayTypes are the resource types a TLS gateway receives.
var gatewayTypes = []string{resourcev3.ClusterType, resourcev3.EndpointType, resourcev3.SecretType, resourcev3.ListenerType, resourcev3.RouteType}

// istioEdge is an Istio Gateway for canary.example.test on 443 (TLS from the
// Secret canary-cert) and 80 (redirect to https), and a VirtualService
// splitting it between web-v1 and web-v2.
func istioEdge(v1, v2 int) string {
	return fmt.Sprintf(`apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: public, namespace: edge}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: 443, name: https, protocol: HTTPS}
    hosts: [canary.example.test]
    tls: {mode: SIMPLE, credentialName: canary-cert}
  - port: {number: 80, name: http, protocol: HTTP}
    hosts: [canary.example.test]
    tls: {httpsRedirect: true}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: canary, namespace: edge}
spec:
  hosts: [canary.example.test]
  gateways: [public]
  http:
  - route:
    - destination: {host: web-v1, port: {number: 80}}
      weight: %d
    - destination: {host: web-v2, port: {number: 80}}
      weight: %d
`, v1, v2)
}

// TestGatewayIstioTLS: a real Envoy gateway terminates TLS with a
// certificate from a Secret, redirects plain HTTP, splits 80/20, and picks
// up a rotated certificate with no failed request; a broken Secret is
// reported and the last good certificate stays.
func TestGatewayIstioTLS(t *testing.T) {
	const host = "canary.example.test"
	dir := t.TempDir()
	first := testcert.New(t, host)
	writeFile(t, filepath.Join(dir, "backends.yaml"), versionBackends(t, "edge", "web"))
	writeFile(t, filepath.Join(dir, "secret.yaml"), first.Secret("edge", "canary-cert"))
	writeFile(t, filepath.Join(dir, "edge.yaml"), istioEdge(80, 20))
	weir := startWeir(t, dir)
	gw := startGateway(t, weir, map[string]string{"istio": "ingressgateway"})
	ackedVersions(t, weir.XDS(), gw.nodeID, nil, gatewayTypes...)

	t.Run("plain HTTP redirects to https", func(t *testing.T) {
		c := gw.httpsClient(first.Roots, 1)
		resp, err := c.Get("http://" + host + "/user?id=7")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if loc := resp.Header.Get("Location"); resp.StatusCode != http.StatusMovedPermanently || loc != "https://"+host+"/user?id=7" {
			t.Errorf("got %s Location %q, want 301 to https://%s/user?id=7", resp.Status, loc, host)
		}
	})

	t.Run("TLS verifies and splits 80/20", func(t *testing.T) {
		if serial, err := gw.servedCertificate(first.Roots, host); err != nil || serial.Cmp(first.Serial) != 0 {
			t.Fatalf("served certificate %v (%v), want serial %v", serial, err, first.Serial)
		}
		tl := sendAll(8, 2000, func() *http.Client { return gw.httpsClient(first.Roots, 1) },
			func(c *http.Client) (string, error) { return doHTTPS(c, host, "/") })
		t.Logf("https: %v", tl)
		if tl.counts["v1"]+tl.counts["v2"] != 2000 {
			t.Fatalf("want 2000 answers from v1 or v2, got %v", tl)
		}
		checkShare(t, "https answered by v2", tl.counts["v2"], 2000, 0.2)
	})

	second := testcert.New(t, host)
	roots := first.Roots.Clone()
	roots.AppendCertsFromPEM(second.CertPEM)

	t.Run("rotation reaches Envoy with no failed request", func(t *testing.T) {
		// Half the workers keep their connection, half make a new TLS
		// connection for every request.
		keep := func() *http.Client { return gw.httpsClient(roots, 1) }
		fresh := func() *http.Client {
			c := gw.httpsClient(roots, 1)
			c.Transport.(*http.Transport).DisableKeepAlives = true
			return c
		}
		do := func(c *http.Client) (string, error) { return doHTTPS(c, host, "/") }
		kept, renewed := startLoadWith(4, math.MaxInt64, keep, do), startLoadWith(4, math.MaxInt64, fresh, do)
		waitFor(t, 5*time.Second, "load to flow", func() error {
			if kept.total.Load() < 50 || renewed.total.Load() < 50 {
				return errNotYet
			}
			return nil
		})
		rotated := time.Now()
		writeFile(t, filepath.Join(dir, "secret.yaml"), second.Secret("edge", "canary-cert"))
		waitFor(t, 5*time.Second, "the rotated certificate to be served", func() error {
			serial, err := gw.servedCertificate(roots, host)
			if err != nil {
				return err
			}
			if serial.Cmp(second.Serial) != 0 {
				return errNotYet
			}
			return nil
		})
		t.Logf("new certificate served %v after the Secret was written", time.Since(rotated).Round(time.Millisecond))
		for name, l := range map[string]*load{"keep-alive": kept, "new connection each": renewed} {
			tl := l.finish()
			t.Logf("%s: %v", name, tl)
			if tl.counts["v1"]+tl.counts["v2"] != tl.n {
				t.Errorf("%s: failed requests during rotation: %v", name, tl)
			}
		}
	})

	t.Run("a broken Secret is reported and the last good certificate stays", func(t *testing.T) {
		writeFile(t, filepath.Join(dir, "secret.yaml"), strings.Replace(second.Secret("edge", "canary-cert"), "tls.key: ", "tls.key: AAAA", 1))
		ws := waitStatus(t, weir, "the Gateway to report the broken Secret", func(ws weirStatus) error {
			for _, o := range ws.Status {
				if o.Kind != "Gateway" || o.Name != "public" {
					continue
				}
				for _, c := range o.Conditions {
					if c.Status == status.False && strings.Contains(c.Message, "canary-cert") {
						return nil
					}
				}
			}
			return errNotYet
		})
		for _, o := range ws.Status {
			if o.Kind == "Gateway" {
				t.Logf("Gateway status: %+v", o.Conditions)
				for _, c := range o.Conditions {
					if strings.Contains(c.Message, "PRIVATE KEY") || strings.Contains(c.Message, string(second.KeyPEM[30:60])) {
						t.Errorf("condition shows key material: %q", c.Message)
					}
				}
			}
		}
		if serial, err := gw.servedCertificate(roots, host); err != nil || serial.Cmp(second.Serial) != 0 {
			t.Errorf("served certificate %v (%v), want the last good one %v", serial, err, second.Serial)
		}
		c := gw.httpsClient(roots, 1)
		if out, err := doHTTPS(c, host, "/"); err != nil {
			t.Errorf("request after the Secret broke: %s %v", out, err)
		}
	})
}
