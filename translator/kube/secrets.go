package kube

import (
	"crypto/tls"
	"fmt"

	corev1 "k8s.io/api/core/v1"

	"github.com/weir-mesh/weir/translator/ir"
)

// SecretObjects is the view of the store that TLS certificate lookups need.
type SecretObjects interface {
	// Secret returns the kubernetes.io/tls Secret namespace/name, or nil.
	Secret(namespace, name string) *corev1.Secret
}

// SecretName is the IR name of the Secret namespace/name.
func SecretName(namespace, name string) string { return namespace + "/" + name }

// TLSSecret returns the certificate of the kubernetes.io/tls Secret
// namespace/name, checked to be a PEM certificate chain with its matching
// private key. A user's mistake (no such Secret, a bad key) is an error whose
// message names the Secret and the field, fit for a status condition; it
// never contains key material.
func TLSSecret(objs SecretObjects, namespace, name string) (ir.Secret, error) {
	s := objs.Secret(namespace, name)
	if s == nil {
		return ir.Secret{}, fmt.Errorf("Secret %s/%s not found (it must exist and have type %s)", namespace, name, corev1.SecretTypeTLS)
	}
	cert, key := s.Data[corev1.TLSCertKey], s.Data[corev1.TLSPrivateKeyKey]
	if len(cert) == 0 || len(key) == 0 {
		return ir.Secret{}, fmt.Errorf("Secret %s/%s: data[%q] and data[%q] must both be set", namespace, name, corev1.TLSCertKey, corev1.TLSPrivateKeyKey)
	}
	if _, err := tls.X509KeyPair(cert, key); err != nil {
		// crypto/tls errors describe the problem, never the key bytes.
		return ir.Secret{}, fmt.Errorf("Secret %s/%s: data[%q]/data[%q] are not a valid PEM certificate and key: %v", namespace, name, corev1.TLSCertKey, corev1.TLSPrivateKeyKey, err)
	}
	return ir.Secret{Name: SecretName(namespace, name), CertPEM: cert, KeyPEM: key}, nil
}
