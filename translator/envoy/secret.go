package envoy

import (
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"

	"github.com/weir-mesh/weir/translator/ir"
)

// buildSecret is the SDS resource of a certificate and its key.
func buildSecret(s ir.Secret) *tlsv3.Secret {
	return &tlsv3.Secret{
		Name: s.Name,
		Type: &tlsv3.Secret_TlsCertificate{TlsCertificate: &tlsv3.TlsCertificate{
			CertificateChain: &corev3.DataSource{Specifier: &corev3.DataSource_InlineBytes{InlineBytes: s.CertPEM}},
			PrivateKey:       &corev3.DataSource{Specifier: &corev3.DataSource_InlineBytes{InlineBytes: s.KeyPEM}},
		}},
	}
}

// Redacted is what replaces private keys in anything weir prints.
const Redacted = "[redacted]"

// RedactSecret returns a copy of s whose private key is replaced by
// Redacted; s is not modified.
func RedactSecret(s *tlsv3.Secret) *tlsv3.Secret {
	out := &tlsv3.Secret{Name: s.Name}
	if c := s.GetTlsCertificate(); c != nil {
		out.Type = &tlsv3.Secret_TlsCertificate{TlsCertificate: &tlsv3.TlsCertificate{
			CertificateChain: c.CertificateChain,
			PrivateKey:       &corev3.DataSource{Specifier: &corev3.DataSource_InlineString{InlineString: Redacted}},
		}}
	}
	return out
}
