package watcher

import (
	"reflect"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// statusOnlyUpdate reports whether an informer update from old to cur
// changed nothing but the object's status, resourceVersion and
// managedFields. The translator reads the status of Pods only, so for
// other kinds such an update (weir's own status writes come back as them)
// is no change of the store.
func statusOnlyUpdate(old, cur any) bool {
	if ou, ok := old.(*unstructured.Unstructured); ok {
		cu, ok := cur.(*unstructured.Unstructured)
		return ok && reflect.DeepEqual(withoutStatus(ou.Object), withoutStatus(cu.Object))
	}
	ov, cv := reflect.ValueOf(old), reflect.ValueOf(cur)
	if ov.Kind() != reflect.Pointer || ov.Type() != cv.Type() || ov.IsNil() || cv.IsNil() || ov.Elem().Kind() != reflect.Struct {
		return false
	}
	ov, cv = ov.Elem(), cv.Elem()
	for i := range ov.NumField() {
		f := ov.Type().Field(i)
		switch {
		case !f.IsExported():
			return false
		case f.Name == "Status" || f.Name == "TypeMeta":
			continue
		case f.Name == "ObjectMeta":
			om, ok1 := ov.Field(i).Interface().(metav1.ObjectMeta)
			cm, ok2 := cv.Field(i).Interface().(metav1.ObjectMeta)
			if !ok1 || !ok2 {
				return false
			}
			om.ResourceVersion, om.ManagedFields = "", nil
			cm.ResourceVersion, cm.ManagedFields = "", nil
			if !reflect.DeepEqual(om, cm) {
				return false
			}
		case !reflect.DeepEqual(ov.Field(i).Interface(), cv.Field(i).Interface()):
			return false
		}
	}
	return true
}

// withoutStatus returns a shallow copy of an unstructured object without
// its status, resourceVersion and managedFields.
func withoutStatus(obj map[string]any) map[string]any {
	out := make(map[string]any, len(obj))
	for k, v := range obj {
		if k != "status" {
			out[k] = v
		}
	}
	if meta, ok := obj["metadata"].(map[string]any); ok {
		m := make(map[string]any, len(meta))
		for k, v := range meta {
			if k != "resourceVersion" && k != "managedFields" {
				m[k] = v
			}
		}
		out["metadata"] = m
	}
	return out
}
