package ingressnginx

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/weir-mesh/weir/translator/ir"
	"github.com/weir-mesh/weir/translator/kube/testcert"
	"github.com/weir-mesh/weir/translator/status"
)

// tlsSecret is a kubernetes.io/tls Secret in namespace default holding a
// fresh self-signed certificate for hosts.
func tlsSecret(t *testing.T, name string, hosts ...string) string {
	t.Helper()
	return testcert.New(t, hosts...).Secret("default", name)
}

func TestTLSServers(t *testing.T) {
	shop := manifest("shop", nil, `
  tls:
  - {hosts: [shop.example.com, "*.shop.example.com", api.shop.example.com], secretName: shop-cert}
  rules:
  - host: shop.example.com
    http:
      paths:
      - {path: /, pathType: Prefix, `+backend("service-user-v1")+`}
  - host: api.shop.example.com
    http:
      paths:
      - {path: /, pathType: Prefix, `+backend("service-pay-v1")+`}
  - http:
      paths:
      - {path: /, pathType: Prefix, `+backend("service-user-v2")+`}`)
	// Plain HTTP stays allowed on this Ingress's paths; its TLS host
	// conflicts with shop's.
	open := manifest("open", map[string]string{"ssl-redirect": "false"}, `
  tls:
  - {hosts: [api.shop.example.com], secretName: other-cert}
  - {secretName: broken}
  rules:
  - host: api.shop.example.com
    http:
      paths:
      - {path: /open, pathType: Exact, `+backend("service-user-v1")+`}
  - host: plain.example.com
    http:
      paths:
      - {path: /, pathType: Prefix, `+backend("service-user-v1")+`}`)
	// shop is older, so it is merged first although "open" sorts before it.
	shop = strings.Replace(shop, "  name: shop\n", "  name: shop\n  creationTimestamp: \"2024-01-01T00:00:00Z\"\n", 1)
	open = strings.Replace(open, "  name: open\n", "  name: open\n  creationTimestamp: \"2024-06-01T00:00:00Z\"\n", 1)
	res := translate(t, shop, open, tlsSecret(t, "shop-cert", "shop.example.com"), tlsSecret(t, "other-cert", "api.shop.example.com"))

	if diff := cmp.Diff([]string{"Ingress/443/default/broken", "Ingress/443/default/shop-cert", "Ingress/80"}, serverNames(res)); diff != "" {
		t.Fatalf("servers (-want +got):\n%s", diff)
	}
	var names []string
	for _, s := range res.Secrets {
		names = append(names, s.Name)
	}
	if diff := cmp.Diff([]string{"default/shop-cert"}, names); diff != "" {
		t.Errorf("secrets (-want +got):\n%s", diff)
	}
	shopServer := res.Servers[1]
	wantShop := ir.Server{Name: "Ingress/443/default/shop-cert", Port: 443, Hostnames: []string{"*.shop.example.com", "api.shop.example.com", "shop.example.com"},
		TLS: &ir.ServerTLS{SecretName: "default/shop-cert"}}
	got := shopServer
	got.VirtualHosts = nil
	if diff := cmp.Diff(wantShop, got); diff != "" {
		t.Errorf("shop server (-want +got):\n%s", diff)
	}
	var domains []string
	for _, vh := range shopServer.VirtualHosts {
		domains = append(domains, vh.Domains...)
	}
	if diff := cmp.Diff([]string{"*", "api.shop.example.com", "shop.example.com"}, domains); diff != "" {
		t.Errorf("shop server domains (-want +got):\n%s", diff)
	}
	// The broken Secret covers open's rule hosts that no other Secret
	// serves; the server keeps its Secret's name so that proxies keep their
	// last good certificate.
	if diff := cmp.Diff([]string{"plain.example.com"}, res.Servers[0].Hostnames); diff != "" {
		t.Errorf("broken server hostnames (-want +got):\n%s", diff)
	}

	tests := map[string][]string{
		"shop.example.com":     {"/* -> redirect https 308"},
		"api.shop.example.com": {"=/open -> service-user-v1", "/* -> redirect https 308"},
		"plain.example.com":    {"/* -> service-user-v1"}, // ssl-redirect: "false"
		"*":                    {"/* -> service-user-v2"},
	}
	for host, want := range tests {
		if diff := cmp.Diff(want, vhostRoutes(t, res, "Ingress/80", host)); diff != "" {
			t.Errorf("port 80 %s (-want +got):\n%s", host, diff)
		}
	}
	if diff := cmp.Diff([]string{"/* -> service-user-v1"}, vhostRoutes(t, res, "Ingress/443/default/shop-cert", "shop.example.com")); diff != "" {
		t.Errorf("port 443 shop.example.com (-want +got):\n%s", diff)
	}

	c := condition(t, res, "open", status.Accepted)
	if c.Status != status.False || c.Reason != ReasonConflicted ||
		!strings.Contains(c.Message, `spec.tls[0].hosts[0]: host "api.shop.example.com" is already served over TLS with Secret default/shop-cert`) {
		t.Errorf("open Accepted = %+v", c)
	}
	c = condition(t, res, "open", status.ResolvedRefs)
	if c.Status != status.False || c.Reason != ReasonInvalidCertificate ||
		!strings.Contains(c.Message, "spec.tls[1].secretName: Secret default/broken not found") {
		t.Errorf("open ResolvedRefs = %+v", c)
	}
	if c := condition(t, res, "shop", status.ResolvedRefs); c.Status != status.True {
		t.Errorf("shop ResolvedRefs = %+v", c)
	}
}

func TestForceSSLRedirect(t *testing.T) {
	res := translate(t, manifest("web", map[string]string{"force-ssl-redirect": "true"}, `
  rules:
  - http:
      paths:
      - {path: /, pathType: Prefix, `+backend("service-user-v1")+`}`))
	if diff := cmp.Diff([]string{"/* -> redirect https 308"}, vhostRoutes(t, res, "Ingress/80", "*")); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

func TestCovers(t *testing.T) {
	tests := []struct {
		tlsHost, host string
		want          bool
	}{
		{"a.example.com", "a.example.com", true},
		{"*.example.com", "a.example.com", true},
		{"*.example.com", "*.example.com", true},
		{"*.example.com", "a.b.example.com", false},
		{"*.example.com", "example.com", false},
		{"a.example.com", "b.example.com", false},
	}
	for _, tc := range tests {
		if got := covers(tc.tlsHost, tc.host); got != tc.want {
			t.Errorf("covers(%q, %q) = %v, want %v", tc.tlsHost, tc.host, got, tc.want)
		}
	}
}
