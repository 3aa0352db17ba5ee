package xds

import (
	"testing"

	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"

	"github.com/weir-mesh/weir/translator/envoy"
	"github.com/weir-mesh/weir/translator/ir"
)

// tlsGateway is one TLS server on 443 using Secret edge/cert, which secret
// (nil: invalid) holds.
func tlsGateway(secret *ir.Secret) *ir.IR {
	in := twoVersions(100, 0)
	in.Servers = []ir.Server{{Name: "tls", Port: 443, TLS: &ir.ServerTLS{SecretName: "edge/cert"},
		VirtualHosts: []ir.VirtualHost{{Name: "web", Domains: []string{"*"}, Routes: in.Hosts[0].Routes}}}}
	if secret != nil {
		in.Secrets = []ir.Secret{*secret}
	}
	return in
}

func gatewaySnapshot(t *testing.T, s *Server, nodeID string) (listeners int, cert string) {
	t.Helper()
	snap, err := s.cache.GetSnapshot(nodeID)
	if err != nil {
		t.Fatal(err)
	}
	msgs := snap.(*nodeView).Messages
	for _, l := range msgs(resourcev3.ListenerType) {
		listeners += len(l.(*listenerv3.Listener).FilterChains)
	}
	for _, r := range msgs(resourcev3.SecretType) {
		cert = string(r.(*tlsv3.Secret).GetTlsCertificate().GetCertificateChain().GetInlineBytes())
	}
	return listeners, cert
}

// TestGatewaySecretLastGood: a Secret never valid leaves its TLS chain out;
// once valid, the chain and the certificate are served; invalid again, the
// last good certificate stays; rotated, the new one is served.
func TestGatewaySecretLastGood(t *testing.T) {
	s := quietServer(0)
	s.Update(tlsGateway(nil))
	register(t, s, "gw", envoy.Gateway)
	if chains, cert := gatewaySnapshot(t, s, "gw"); chains != 0 || cert != "" {
		t.Fatalf("never-valid secret: %d chains, cert %q; want none", chains, cert)
	}
	steps := []struct {
		secret *ir.Secret
		want   string
	}{
		{&ir.Secret{Name: "edge/cert", CertPEM: []byte("one"), KeyPEM: []byte("k1")}, "one"},
		{nil, "one"},
		{&ir.Secret{Name: "edge/cert", CertPEM: []byte("two"), KeyPEM: []byte("k2")}, "two"},
	}
	for i, st := range steps {
		s.Update(tlsGateway(st.secret))
		for range 3 { // warm, switch, retire
			s.answered("gw")
		}
		if chains, cert := gatewaySnapshot(t, s, "gw"); chains != 1 || cert != st.want {
			t.Errorf("step %d: %d chains, cert %q; want 1 chain, cert %q", i, chains, cert, st.want)
		}
	}
}
