package watcher

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
)

func TestLegacyIngressIsStoredAsV1(t *testing.T) {
	data := `apiVersion: extensions/v1beta1
kind: Ingress
metadata:
  name: web
  namespace: shop
  annotations: {kubernetes.io/ingress.class: weir, nginx.ingress.kubernetes.io/rewrite-target: /}
spec:
  backend: {serviceName: web-v1, servicePort: 80}
  tls:
  - hosts: [shop.example.test]
    secretName: shop-cert
  rules:
  - host: shop.example.test
    http:
      paths:
      - path: /user
        backend: {serviceName: user, servicePort: http}
`
	objs, _, err := DecodeFile("legacy.yaml", []byte(data))
	if err != nil {
		t.Fatal(err)
	}
	if len(objs) != 1 || objs[0].Kind != KindIngress {
		t.Fatalf("objects %v, want one Ingress", objs)
	}
	got := objs[0].Value.(*networkingv1.Ingress)
	impl := networkingv1.PathTypeImplementationSpecific
	want := networkingv1.IngressSpec{
		DefaultBackend: &networkingv1.IngressBackend{Service: &networkingv1.IngressServiceBackend{Name: "web-v1", Port: networkingv1.ServiceBackendPort{Number: 80}}},
		TLS:            []networkingv1.IngressTLS{{Hosts: []string{"shop.example.test"}, SecretName: "shop-cert"}},
		Rules: []networkingv1.IngressRule{{Host: "shop.example.test", IngressRuleValue: networkingv1.IngressRuleValue{HTTP: &networkingv1.HTTPIngressRuleValue{
			Paths: []networkingv1.HTTPIngressPath{{Path: "/user", PathType: &impl, Backend: networkingv1.IngressBackend{
				Service: &networkingv1.IngressServiceBackend{Name: "user", Port: networkingv1.ServiceBackendPort{Name: "http"}}}}},
		}}}},
	}
	if diff := cmp.Diff(want, got.Spec); diff != "" {
		t.Errorf("spec (-want +got):\n%s", diff)
	}
	if got.APIVersion != "networking.k8s.io/v1" || got.Annotations["nginx.ingress.kubernetes.io/rewrite-target"] != "/" {
		t.Errorf("apiVersion %q annotations %v", got.APIVersion, got.Annotations)
	}
}

func TestOnlyTLSSecretsAreStored(t *testing.T) {
	data := `apiVersion: v1
kind: Secret
metadata: {name: db, namespace: shop}
type: Opaque
stringData: {password: hunter2}
---
apiVersion: v1
kind: Secret
metadata: {name: cert, namespace: shop}
type: kubernetes.io/tls
stringData: {tls.crt: CERT, tls.key: KEY}
`
	objs, warns, err := DecodeFile("secrets.yaml", []byte(data))
	if err != nil || len(warns) != 0 {
		t.Fatalf("err %v warnings %v", err, warns)
	}
	if len(objs) != 1 || objs[0].Name != "cert" {
		t.Fatalf("objects %v, want only the TLS Secret", objs)
	}
	s := objs[0].Value.(*corev1.Secret)
	want := map[string][]byte{"tls.crt": []byte("CERT"), "tls.key": []byte("KEY")}
	if diff := cmp.Diff(want, s.Data); diff != "" || s.StringData != nil || s.ObjectMeta.Namespace != "shop" {
		t.Errorf("secret data (-want +got):\n%s; stringData %v", diff, s.StringData)
	}
}
