package istio_test

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/weir-mesh/weir/translator/ir"
	"github.com/weir-mesh/weir/translator/kube/testcert"
	"github.com/weir-mesh/weir/translator/status"
)

// tlsSecret is a kubernetes.io/tls Secret with a fresh self-signed
// certificate for host.
func tlsSecret(t *testing.T, namespace, name, host string) string {
	t.Helper()
	return testcert.New(t, host).Secret(namespace, name)
}

func TestGatewayServers(t *testing.T) {
	res := translate(t, golden(t, "istio-gateway")+"---\n"+tlsSecret(t, "istio-system", "canary-cert", "canary.example.test"))
	routes := []ir.Route{{
		Name: "VirtualService/canary/canary/0",
		Backends: []ir.Backend{
			{Cluster: "outbound|8000|v1|httpbin.canary.svc.cluster.local", Weight: 80},
			{Cluster: "outbound|8000|v2|httpbin.canary.svc.cluster.local", Weight: 20},
		},
		Timeout: ir.Disabled,
		Retry:   &ir.Retry{Attempts: 2, RetryOn: "connect-failure,refused-stream,unavailable,cancelled,503"},
	}}
	vhosts := []ir.VirtualHost{{Name: "VirtualService/canary/canary", Domains: []string{"canary.example.test"}, Routes: routes}}
	sel := map[string]string{"istio": "ingressgateway"}
	want := []ir.Server{
		{Name: "Gateway/istio-system/public/0", Selector: sel, Port: 443, Hostnames: []string{"canary.example.test"},
			TLS: &ir.ServerTLS{SecretName: "istio-system/canary-cert"}, VirtualHosts: vhosts},
		{Name: "Gateway/istio-system/public/1", Selector: sel, Port: 80, Hostnames: []string{"canary.example.test"},
			HTTPSRedirect: true, VirtualHosts: vhosts},
	}
	if diff := cmp.Diff(want, res.Servers); diff != "" {
		t.Errorf("servers (-want +got):\n%s", diff)
	}
	if len(res.Secrets) != 1 || res.Secrets[0].Name != "istio-system/canary-cert" || len(res.Secrets[0].KeyPEM) == 0 {
		t.Errorf("secrets: %d, first %q", len(res.Secrets), res.Secrets[0].Name)
	}
	for _, o := range res.Status {
		if o.Kind == "Gateway" {
			if o.Group != "networking.istio.io" {
				t.Errorf("Gateway status group: %q", o.Group)
			}
			if c := o.Get(status.ResolvedRefs); c == nil || c.Status != status.True {
				t.Errorf("Gateway ResolvedRefs: %+v", c)
			}
		}
	}
	if c := cond(t, res, "VirtualService", "canary", "waits", status.ResolvedRefs); c.Status != status.False || c.Reason != "GatewayNotFound" || !strings.Contains(c.Message, "canary/not-yet") {
		t.Errorf("waiting VirtualService: %+v", c)
	}
	if c := cond(t, res, "VirtualService", "canary", "waits", status.Accepted); c.Status != status.True {
		t.Errorf("waiting VirtualService: %+v", c)
	}
	if len(res.Routes) != 0 {
		t.Errorf("gateway-only VirtualServices routed the mesh: %v", res.Routes)
	}
}

func TestGatewayMissingSecret(t *testing.T) {
	res := translate(t, golden(t, "istio-gateway"))
	var gw *status.Object
	for i, o := range res.Status {
		if o.Kind == "Gateway" {
			gw = &res.Status[i]
		}
	}
	if gw == nil {
		t.Fatal("no Gateway status")
	}
	c := gw.Get(status.ResolvedRefs)
	if c == nil || c.Status != status.False || c.Reason != "InvalidCertificateRef" || !strings.Contains(c.Message, "spec.servers[0].tls.credentialName") {
		t.Errorf("ResolvedRefs: %+v", c)
	}
	if len(res.Secrets) != 0 || res.Servers[0].TLS == nil || res.Servers[0].TLS.SecretName != "istio-system/canary-cert" {
		t.Errorf("a missing Secret: want the server to keep naming it and no secret, got %+v and %d secrets", res.Servers[0].TLS, len(res.Secrets))
	}
}

func TestGatewayHosts(t *testing.T) {
	tests := map[string]struct {
		serverHost string
		vsHosts    string
		want       []string
	}{
		"any namespace":           {"*/canary.example.test", "[canary.example.test]", []string{"canary.example.test"}},
		"bare host":               {"canary.example.test", "[canary.example.test]", []string{"canary.example.test"}},
		"other namespace":         {"other/canary.example.test", "[canary.example.test]", nil},
		"gateway's namespace":     {"./canary.example.test", "[canary.example.test]", nil},
		"wildcard server":         {"*/*.example.test", "[a.example.test, b.other.test]", []string{"a.example.test"}},
		"wildcard VirtualService": {"*/a.example.test", "[\"*.example.test\"]", []string{"a.example.test"}},
		"star":                    {"*", "[x.test, y.test]", []string{"x.test", "y.test"}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			res := translate(t, `apiVersion: v1
kind: Service
metadata: {name: web, namespace: canary}
spec: {ports: [{port: 80}]}
---
apiVersion: networking.istio.io/v1beta1
kind: Gateway
metadata: {name: gw, namespace: istio-system}
spec:
  servers:
  - port: {number: 80, protocol: HTTP}
    hosts: ["`+tc.serverHost+`"]
---
apiVersion: networking.istio.io/v1beta1
kind: VirtualService
metadata: {name: web, namespace: canary}
spec:
  hosts: `+tc.vsHosts+`
  gateways: [istio-system/gw]
  http:
  - route: [{destination: {host: web}}]
`)
			var got []string
			for _, vh := range res.Servers[0].VirtualHosts {
				got = append(got, vh.Domains...)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("domains (-want +got):\n%s", diff)
			}
		})
	}
}
