package watcher

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

func TestStatusOnlyUpdate(t *testing.T) {
	svc := func(rv, ip string, port int32, labels map[string]string) *corev1.Service {
		s := &corev1.Service{
			ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "web", ResourceVersion: rv, Labels: labels,
				ManagedFields: []metav1.ManagedFieldsEntry{{Manager: rv}}},
			Spec: corev1.ServiceSpec{Ports: []corev1.ServicePort{{Port: port}}},
		}
		if ip != "" {
			s.Status.LoadBalancer.Ingress = []corev1.LoadBalancerIngress{{IP: ip}}
		}
		return s
	}
	split := func(rv string, weight int64, accepted string) *unstructured.Unstructured {
		u := &unstructured.Unstructured{Object: map[string]any{
			"apiVersion": "split.smi-spec.io/v1alpha4", "kind": "TrafficSplit",
			"metadata": map[string]any{"name": "web", "namespace": "shop", "resourceVersion": rv},
			"spec":     map[string]any{"service": "web", "backends": []any{map[string]any{"service": "web-v1", "weight": weight}}},
		}}
		if accepted != "" {
			u.Object["status"] = map[string]any{"conditions": []any{map[string]any{"type": "Accepted", "status": accepted}}}
		}
		return u
	}
	tests := map[string]struct {
		old, cur any
		want     bool
	}{
		"status and resourceVersion":   {svc("1", "", 80, nil), svc("2", "10.0.0.1", 80, nil), true},
		"spec":                         {svc("1", "", 80, nil), svc("2", "", 81, nil), false},
		"labels":                       {svc("1", "", 80, nil), svc("2", "", 80, map[string]string{"a": "b"}), false},
		"nothing":                      {svc("1", "", 80, nil), svc("1", "", 80, nil), true},
		"unstructured status":          {split("1", 90, ""), split("2", 90, "True"), true},
		"unstructured spec":            {split("1", 90, "True"), split("2", 80, "True"), false},
		"different types":              {svc("1", "", 80, nil), split("1", 90, ""), false},
		"typed against unstructured":   {split("1", 90, ""), svc("1", "", 80, nil), false},
		"not a pointer to a struct":    {"a", "a", false},
		"nil pointers are no decision": {(*corev1.Service)(nil), (*corev1.Service)(nil), false},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if got := statusOnlyUpdate(tc.old, tc.cur); got != tc.want {
				t.Errorf("statusOnlyUpdate = %v, want %v", got, tc.want)
			}
		})
	}
}
