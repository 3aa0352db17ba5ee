package watcher

import (
	corev1 "k8s.io/api/core/v1"
	extensionsv1beta1 "k8s.io/api/extensions/v1beta1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// tlsSecretOnly keeps Secrets of type kubernetes.io/tls (folding stringData
// into data, as the API server does) and drops every other Secret: weir
// never holds credentials it does not serve.
func tlsSecretOnly(o metav1.Object) (metav1.Object, error) {
	s := o.(*corev1.Secret)
	if s.Type != corev1.SecretTypeTLS {
		return nil, nil
	}
	if len(s.StringData) > 0 {
		if s.Data == nil {
			s.Data = map[string][]byte{}
		}
		for k, v := range s.StringData {
			s.Data[k] = []byte(v)
		}
		s.StringData = nil
	}
	return s, nil
}

// clusterScoped clears the namespace a file's object got by default: the
// kind has none (GatewayClass).
func clusterScoped(o metav1.Object) (metav1.Object, error) {
	o.SetNamespace("")
	return o, nil
}

// legacyIngress converts an extensions/v1beta1 (or networking.k8s.io/v1beta1)
// Ingress to networking.k8s.io/v1, the shape weir stores.
func legacyIngress(o metav1.Object) (metav1.Object, error) {
	old := o.(*extensionsv1beta1.Ingress)
	in := &networkingv1.Ingress{ObjectMeta: old.ObjectMeta}
	in.APIVersion, in.Kind = "networking.k8s.io/v1", "Ingress"
	in.Spec.IngressClassName = old.Spec.IngressClassName
	if old.Spec.Backend != nil {
		in.Spec.DefaultBackend = legacyBackend(*old.Spec.Backend)
	}
	for _, t := range old.Spec.TLS {
		in.Spec.TLS = append(in.Spec.TLS, networkingv1.IngressTLS{Hosts: t.Hosts, SecretName: t.SecretName})
	}
	for _, r := range old.Spec.Rules {
		rule := networkingv1.IngressRule{Host: r.Host}
		if r.HTTP != nil {
			rule.HTTP = &networkingv1.HTTPIngressRuleValue{}
			for _, p := range r.HTTP.Paths {
				pt := networkingv1.PathTypeImplementationSpecific
				if p.PathType != nil {
					pt = networkingv1.PathType(*p.PathType)
				}
				rule.HTTP.Paths = append(rule.HTTP.Paths, networkingv1.HTTPIngressPath{
					Path: p.Path, PathType: &pt, Backend: *legacyBackend(p.Backend)})
			}
		}
		in.Spec.Rules = append(in.Spec.Rules, rule)
	}
	for _, lb := range old.Status.LoadBalancer.Ingress {
		in.Status.LoadBalancer.Ingress = append(in.Status.LoadBalancer.Ingress,
			networkingv1.IngressLoadBalancerIngress{IP: lb.IP, Hostname: lb.Hostname})
	}
	return in, nil
}

func legacyBackend(b extensionsv1beta1.IngressBackend) *networkingv1.IngressBackend {
	if b.Resource != nil {
		return &networkingv1.IngressBackend{Resource: b.Resource}
	}
	port := networkingv1.ServiceBackendPort{Number: b.ServicePort.IntVal}
	if b.ServicePort.Type == intstr.String {
		port = networkingv1.ServiceBackendPort{Name: b.ServicePort.StrVal}
	}
	return &networkingv1.IngressBackend{Service: &networkingv1.IngressServiceBackend{Name: b.ServiceName, Port: port}}
}
