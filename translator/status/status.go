// Package status holds the user-facing conditions the translator computes for
// each input object.
package status

import (
	"slices"
	"strings"
)

// Condition types, statuses and reasons shared by every front-end.
const (
	Accepted     = "Accepted"
	ResolvedRefs = "ResolvedRefs"

	True  = "True"
	False = "False"
)

// Condition is one observation about an object, in the shape of
// metav1.Condition without times.
type Condition struct {
	Type    string `json:"type"`
	Status  string `json:"status"`
	Reason  string `json:"reason"`
	Message string `json:"message"`
}

// Object is the status of one input object.
type Object struct {
	// Group is the API group when Kind alone is ambiguous (Istio's and
	// Gateway API's Gateway); "" otherwise.
	Group      string      `json:"group,omitempty"`
	Kind       string      `json:"kind"`
	Namespace  string      `json:"namespace"`
	Name       string      `json:"name"`
	Conditions []Condition `json:"conditions"`
	// Generation is the object's metadata.generation the conditions were
	// computed for (observedGeneration when written back); 0 if unknown. It
	// is not part of `weir translate`'s output.
	Generation int64 `json:"-"`
	// Listeners is a Gateway API Gateway's status per listener, in spec
	// order; nil for other kinds.
	Listeners []Listener `json:"listeners,omitempty"`
	// Parents is a Gateway API route's status per parentRef that weir
	// serves, in spec order; nil for other kinds. Conditions is then empty.
	Parents []Parent `json:"parents,omitempty"`
}

// Listener is the status of one listener of a Gateway.
type Listener struct {
	Name           string `json:"name"`
	AttachedRoutes int32  `json:"attachedRoutes"`
	// SupportedKinds are route kinds of group gateway.networking.k8s.io.
	SupportedKinds []string    `json:"supportedKinds"`
	Conditions     []Condition `json:"conditions"`
}

// Parent is a route's status for one of its parentRefs.
type Parent struct {
	ParentRef      ParentRef   `json:"parentRef"`
	ControllerName string      `json:"controllerName"`
	Conditions     []Condition `json:"conditions"`
}

// ParentRef is a parentRef as the route wrote it; empty fields were not
// set.
type ParentRef struct {
	Group       *string `json:"group,omitempty"`
	Kind        *string `json:"kind,omitempty"`
	Namespace   *string `json:"namespace,omitempty"`
	Name        string  `json:"name"`
	SectionName *string `json:"sectionName,omitempty"`
	Port        *int32  `json:"port,omitempty"`
}

// Resource returns the object's kind, qualified by its group when it has
// one: "TrafficSplit", "Gateway.networking.istio.io".
func (o *Object) Resource() string {
	if o.Group == "" {
		return o.Kind
	}
	return o.Kind + "." + o.Group
}

// Set records c on o, replacing a condition of the same type.
func (o *Object) Set(c Condition) { o.Conditions = SetCondition(o.Conditions, c) }

// SetCondition returns conds with c in place of the condition of the same
// type, or appended.
func SetCondition(conds []Condition, c Condition) []Condition {
	for i := range conds {
		if conds[i].Type == c.Type {
			conds[i] = c
			return conds
		}
	}
	return append(conds, c)
}

// FindCondition returns the condition of type t in conds, or nil.
func FindCondition(conds []Condition, t string) *Condition {
	for i := range conds {
		if conds[i].Type == t {
			return &conds[i]
		}
	}
	return nil
}

// Get returns the condition of type t, or nil.
func (o *Object) Get(t string) *Condition {
	for i := range o.Conditions {
		if o.Conditions[i].Type == t {
			return &o.Conditions[i]
		}
	}
	return nil
}

// Sort orders objects by kind, namespace, name and each object's conditions
// by type, so that output is deterministic.
func Sort(objs []Object) {
	slices.SortFunc(objs, compareObjects)
	for i := range objs {
		sortConditions(objs[i].Conditions)
		for _, l := range objs[i].Listeners {
			sortConditions(l.Conditions)
		}
		for _, p := range objs[i].Parents {
			sortConditions(p.Conditions)
		}
	}
}

// compareObjects orders by kind, group, namespace and name.
func compareObjects(a, b Object) int {
	if c := strings.Compare(a.Kind, b.Kind); c != 0 {
		return c
	}
	if c := strings.Compare(a.Group, b.Group); c != 0 {
		return c
	}
	if c := strings.Compare(a.Namespace, b.Namespace); c != 0 {
		return c
	}
	return strings.Compare(a.Name, b.Name)
}

func sortConditions(c []Condition) {
	slices.SortFunc(c, func(a, b Condition) int { return strings.Compare(a.Type, b.Type) })
}
