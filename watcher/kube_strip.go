package watcher

import (
	"maps"
	"slices"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// lastApplied is kubectl's copy of the whole object: never read by weir.
const lastApplied = "kubectl.kubernetes.io/last-applied-configuration"

// stripObject is the transform of every informer of inputs: it drops what
// the translator never reads, so that memory stays flat on big clusters.
// Pods keep only what stripPod keeps; every object loses its managedFields
// and kubectl's last-applied annotation. Objects of other types, and
// tombstones, pass unchanged. It is idempotent, as client-go requires.
func stripObject(obj any) (any, error) {
	switch o := obj.(type) {
	case *corev1.Pod:
		return stripPod(o), nil
	case metav1.Object:
		o.SetManagedFields(nil)
		if _, ok := o.GetAnnotations()[lastApplied]; ok {
			o.SetAnnotations(without(o.GetAnnotations(), lastApplied))
		}
		return obj, nil
	}
	return obj, nil
}

// stripPod returns the fields of pod the translator reads: name,
// namespace, labels, owners, deletion, container ports, IPs, phase and
// the Ready condition (type and status only). The UID and resourceVersion
// stay, for the informer's own use.
func stripPod(pod *corev1.Pod) *corev1.Pod {
	out := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Name:              pod.Name,
			Namespace:         pod.Namespace,
			UID:               pod.UID,
			ResourceVersion:   pod.ResourceVersion,
			Labels:            pod.Labels,
			OwnerReferences:   pod.OwnerReferences,
			DeletionTimestamp: pod.DeletionTimestamp,
		},
		Status: corev1.PodStatus{
			Phase:  pod.Status.Phase,
			PodIP:  pod.Status.PodIP,
			PodIPs: pod.Status.PodIPs,
		},
	}
	for _, c := range pod.Spec.Containers {
		out.Spec.Containers = append(out.Spec.Containers, corev1.Container{Name: c.Name, Ports: c.Ports})
	}
	for _, c := range pod.Status.Conditions {
		if c.Type == corev1.PodReady {
			out.Status.Conditions = []corev1.PodCondition{{Type: c.Type, Status: c.Status}}
		}
	}
	return out
}

// stripCRD keeps of a CustomResourceDefinition its name, deletion,
// versions (name and served) and Established condition (type and status):
// what decides whether weir reads its API.
func stripCRD(obj any) (any, error) {
	crd, ok := obj.(*unstructured.Unstructured)
	if !ok {
		return obj, nil
	}
	out := &unstructured.Unstructured{Object: map[string]any{}}
	out.SetAPIVersion(crd.GetAPIVersion())
	out.SetKind(crd.GetKind())
	out.SetName(crd.GetName())
	out.SetUID(crd.GetUID())
	out.SetResourceVersion(crd.GetResourceVersion())
	out.SetDeletionTimestamp(crd.GetDeletionTimestamp())
	var versions []any
	for _, v := range slices.Sorted(maps.Keys(crdServedVersions(crd))) {
		versions = append(versions, map[string]any{"name": v, "served": true})
	}
	if len(versions) > 0 {
		out.Object["spec"] = map[string]any{"versions": versions}
	}
	if crdEstablished(crd) {
		out.Object["status"] = map[string]any{"conditions": []any{map[string]any{"type": "Established", "status": "True"}}}
	}
	return out, nil
}

// crdServedVersions returns the names of the versions a CRD serves.
func crdServedVersions(crd *unstructured.Unstructured) map[string]bool {
	versions, _, _ := unstructured.NestedSlice(crd.Object, "spec", "versions")
	out := map[string]bool{}
	for _, v := range versions {
		m, ok := v.(map[string]any)
		if !ok {
			continue
		}
		name, _ := m["name"].(string)
		served, _ := m["served"].(bool)
		if name != "" && served {
			out[name] = true
		}
	}
	return out
}

// crdEstablished reports whether a CRD's Established condition is True:
// its API is served.
func crdEstablished(crd *unstructured.Unstructured) bool {
	conds, _, _ := unstructured.NestedSlice(crd.Object, "status", "conditions")
	for _, c := range conds {
		m, ok := c.(map[string]any)
		if ok && m["type"] == "Established" {
			return m["status"] == "True"
		}
	}
	return false
}

// without returns a copy of m without key; nil if nothing is left.
func without(m map[string]string, key string) map[string]string {
	out := maps.Clone(m)
	delete(out, key)
	if len(out) == 0 {
		return nil
	}
	return out
}
