package envoy

import (
	"slices"
	"testing"

	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"google.golang.org/protobuf/proto"

	"github.com/weir-mesh/weir/translator/ir"
)

const testCluster = "outbound|80||web.shop.svc.cluster.local"

func gatewayIR() *ir.IR {
	route := ir.Route{Name: "web", Backends: []ir.Backend{{Cluster: testCluster, Weight: 1}}}
	vh := func(d string) []ir.VirtualHost {
		return []ir.VirtualHost{{Name: d, Domains: []string{d}, Routes: []ir.Route{route}}}
	}
	return &ir.IR{
		Clusters: []ir.Cluster{{Name: testCluster, Service: "web", Namespace: "shop", Port: 80, Protocol: ir.HTTP1,
			Endpoints: []ir.Endpoint{{Address: "10.0.0.1", Port: 8080}}}},
		Servers: []ir.Server{
			{Name: "Ingress/80", Port: 80, VirtualHosts: vh("shop.example.test")},
			{Name: "Gateway/edge/public/0", Selector: map[string]string{"istio": "ingressgateway"}, Port: 443,
				Hostnames: []string{"canary.example.test"}, TLS: &ir.ServerTLS{SecretName: "edge/cert"}, VirtualHosts: vh("canary.example.test")},
			{Name: "Gateway/edge/public/1", Selector: map[string]string{"istio": "ingressgateway"}, Port: 80,
				Hostnames: []string{"canary.example.test"}, HTTPSRedirect: true},
			{Name: "Gateway/edge/other/0", Selector: map[string]string{"app": "other"}, Port: 8443,
				TLS: &ir.ServerTLS{SecretName: "edge/other"}, VirtualHosts: vh("other.example.test")},
		},
		Secrets: []ir.Secret{
			{Name: "edge/cert", CertPEM: []byte("cert"), KeyPEM: []byte("key")},
			{Name: "edge/other", CertPEM: []byte("cert2"), KeyPEM: []byte("key2")},
		},
	}
}

func TestGatewaySelectsServersByLabels(t *testing.T) {
	res, err := Build(gatewayIR(), Proxy{Role: Gateway, Labels: "istio=ingressgateway,zone=a", GatewayAddress: "127.0.0.5"})
	if err != nil {
		t.Fatal(err)
	}
	if err := Validate(res); err != nil {
		t.Fatal(err)
	}
	var listeners []string
	for _, l := range res.Listeners {
		listeners = append(listeners, l.Name)
	}
	if want := []string{"gateway_127.0.0.5_443", "gateway_127.0.0.5_80"}; !slices.Equal(listeners, want) {
		t.Errorf("listeners %v, want %v", listeners, want)
	}
	if len(res.Secrets) != 1 || res.Secrets[0].Name != "edge/cert" || !slices.Equal(res.SecretRefs, []string{"edge/cert"}) {
		t.Errorf("secrets %v refs %v, want only edge/cert", res.Secrets, res.SecretRefs)
	}
	tls := res.Listeners[0]
	if len(tls.ListenerFilters) != 1 || len(tls.FilterChains) != 1 ||
		!slices.Equal(tls.FilterChains[0].FilterChainMatch.ServerNames, []string{"canary.example.test"}) {
		t.Errorf("TLS listener: %v", tls)
	}
	plain := routeConfig(t, res.Routes, "http.80")
	if got := domainsOf(plain); !slices.Equal(got, []string{"shop.example.test", "canary.example.test"}) {
		t.Errorf("http.80 domains %v", got)
	}
	redirect := plain.VirtualHosts[1].Routes[0].GetRedirect()
	if !redirect.GetHttpsRedirect() || redirect.GetResponseCode() != routev3.RedirectAction_MOVED_PERMANENTLY {
		t.Errorf("httpsRedirect route: %v", plain.VirtualHosts[1].Routes[0])
	}
	if len(res.Clusters) != 1 || len(res.Endpoints) != 1 {
		t.Errorf("clusters %d endpoints %d, want 1 each", len(res.Clusters), len(res.Endpoints))
	}
}

func TestGatewayWithoutLabelsServesUnselectedServersOnly(t *testing.T) {
	res, err := Build(gatewayIR(), Proxy{Role: Gateway})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Listeners) != 1 || res.Listeners[0].Name != "gateway_0.0.0.0_80" || len(res.Secrets) != 0 {
		t.Errorf("listeners %v secrets %v", res.Listeners, res.Secrets)
	}
}

func TestSidecarNeverGetsSecrets(t *testing.T) {
	res, err := Build(gatewayIR(), Proxy{Role: Sidecar, OutboundAddress: "127.0.0.1", OutboundPort: DefaultOutboundPort})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Secrets)+len(res.SecretRefs) != 0 {
		t.Errorf("sidecar secrets %v refs %v", res.Secrets, res.SecretRefs)
	}
}

func TestInvalidSecretIsReferencedNotSent(t *testing.T) {
	in := gatewayIR()
	in.Secrets = nil
	res, err := Build(in, Proxy{Role: Gateway, Labels: "istio=ingressgateway"})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Secrets) != 0 || !slices.Equal(res.SecretRefs, []string{"edge/cert"}) {
		t.Errorf("secrets %v refs %v", res.Secrets, res.SecretRefs)
	}
}

func TestRedactSecret(t *testing.T) {
	s := buildSecret(ir.Secret{Name: "a/b", CertPEM: []byte("cert"), KeyPEM: []byte("key")})
	r := RedactSecret(s)
	if r.GetTlsCertificate().GetPrivateKey().GetInlineString() != Redacted || string(r.GetTlsCertificate().GetCertificateChain().GetInlineBytes()) != "cert" {
		t.Errorf("redacted: %v", r)
	}
	if string(s.GetTlsCertificate().GetPrivateKey().GetInlineBytes()) != "key" {
		t.Error("RedactSecret modified its argument")
	}
}

func TestTwoTLSServersWithSameNamesKeepTheFirst(t *testing.T) {
	servers := []ir.Server{
		{Name: "a", Port: 443, Hostnames: []string{"x.test"}, TLS: &ir.ServerTLS{SecretName: "ns/a"}},
		{Name: "b", Port: 443, Hostnames: []string{"x.test"}, TLS: &ir.ServerTLS{SecretName: "ns/b"}},
		{Name: "c", Port: 443, Hostnames: []string{"*"}, TLS: &ir.ServerTLS{SecretName: "ns/c"}},
	}
	ls, rcs := buildGateway(servers, Proxy{Role: Gateway})
	if len(ls) != 1 || len(ls[0].FilterChains) != 2 || len(rcs) != 2 {
		t.Fatalf("listeners %v routes %v", ls, rcs)
	}
	if got := chainNames(ls[0]); !slices.Equal(got, []string{"a", "c"}) {
		t.Errorf("chains %v, want [a c]", got)
	}
}

func chainNames(l *listenerv3.Listener) []string {
	var out []string
	for _, fc := range l.FilterChains {
		out = append(out, fc.Name)
	}
	return out
}

func routeConfig(t *testing.T, rcs []*routev3.RouteConfiguration, name string) *routev3.RouteConfiguration {
	t.Helper()
	for _, rc := range rcs {
		if rc.Name == name {
			return rc
		}
	}
	t.Fatalf("no route configuration %q", name)
	return nil
}

func domainsOf(rc *routev3.RouteConfiguration) []string {
	var out []string
	for _, vh := range rc.VirtualHosts {
		out = append(out, vh.Domains...)
	}
	return out
}

func TestWithoutSecretsDropsChainsAndEmptyListeners(t *testing.T) {
	in := gatewayIR()
	in.Secrets = nil
	in.Servers = append(in.Servers, ir.Server{Name: "Gateway/edge/public/2", Selector: map[string]string{"istio": "ingressgateway"},
		Port: 443, Hostnames: []string{"b.example.test"}, TLS: &ir.ServerTLS{SecretName: "edge/b"}})
	in.Secrets = []ir.Secret{{Name: "edge/b", CertPEM: []byte("c"), KeyPEM: []byte("k")}}
	res, err := Build(in, Proxy{Role: Gateway, Labels: "istio=ingressgateway"})
	if err != nil {
		t.Fatal(err)
	}
	before := proto.Clone(res.Listeners[0])
	out := WithoutSecrets(res, map[string]bool{"edge/cert": true})
	if got := chainNames(out.Listeners[0]); !slices.Equal(got, []string{"Gateway/edge/public/2"}) {
		t.Errorf("chains %v, want only the one with a valid secret", got)
	}
	if !proto.Equal(before, res.Listeners[0]) {
		t.Error("WithoutSecrets modified its argument")
	}
	if !slices.Equal(out.SecretRefs, []string{"edge/b"}) {
		t.Errorf("refs %v", out.SecretRefs)
	}
	all := WithoutSecrets(res, map[string]bool{"edge/cert": true, "edge/b": true})
	if len(all.Listeners) != 1 || all.Listeners[0].Name != "gateway_0.0.0.0_80" {
		t.Errorf("listeners %v, want only the plain one", all.Listeners)
	}
	if err := Validate(all); err != nil {
		t.Error(err)
	}
}
