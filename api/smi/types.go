// Package smi holds the minimal Go types weir decodes for the Service Mesh
// Interface APIs (split.smi-spec.io TrafficSplit, specs.smi-spec.io
// HTTPRouteGroup), whose upstream Go module is archived.
//
// One type serves every accepted version: the v1alpha2, v1alpha3 and v1alpha4
// shapes of these objects differ only in fields that are absent from older ones.
package smi

import (
	"encoding/json"
	"fmt"
	"sort"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// API groups and kinds.
const (
	SplitGroup         = "split.smi-spec.io"
	SpecsGroup         = "specs.smi-spec.io"
	TrafficSplitKind   = "TrafficSplit"
	HTTPRouteGroupKind = "HTTPRouteGroup"
)

// SplitVersions are the accepted versions of split.smi-spec.io.
var SplitVersions = []string{"v1alpha2", "v1alpha3", "v1alpha4"}

// SpecsVersions are the accepted versions of specs.smi-spec.io.
var SpecsVersions = []string{"v1alpha1", "v1alpha2", "v1alpha3", "v1alpha4"}

// TrafficSplit sends the traffic addressed to a root Service to weighted
// backend Services.
type TrafficSplit struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec TrafficSplitSpec `json:"spec"`
}

// TrafficSplitSpec is the user's intent: which root, which backends, and
// optionally which requests (matches) the split applies to.
type TrafficSplitSpec struct {
	// Service is the name of the root Service, in the TrafficSplit's namespace.
	Service string `json:"service"`
	// Matches restricts the split to requests matching any of the referenced
	// HTTPRouteGroups. Empty means every request.
	Matches []TypedLocalObjectReference `json:"matches,omitempty"`
	// Backends are the per-version Services and their relative weights.
	Backends []TrafficSplitBackend `json:"backends"`
}

// TypedLocalObjectReference names an object in the same namespace.
type TypedLocalObjectReference struct {
	APIGroup *string `json:"apiGroup,omitempty"`
	Kind     string  `json:"kind"`
	Name     string  `json:"name"`
}

// TrafficSplitBackend is one weighted destination.
type TrafficSplitBackend struct {
	Service string `json:"service"`
	Weight  int    `json:"weight"`
}

// HTTPRouteGroup is a named set of HTTP request matches.
type HTTPRouteGroup struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec HTTPRouteGroupSpec `json:"spec"`
}

// HTTPRouteGroupSpec lists the matches; a request matches the group when it
// matches any one of them.
type HTTPRouteGroupSpec struct {
	Matches []HTTPMatch `json:"matches,omitempty"`
}

// HTTPMatch matches a request when all of its set fields match.
type HTTPMatch struct {
	Name string `json:"name,omitempty"`
	// PathRegex is an RE2 expression the whole request path must match.
	PathRegex string `json:"pathRegex,omitempty"`
	// Methods lists accepted HTTP methods; empty or "*" accepts any.
	Methods []string `json:"methods,omitempty"`
	// Headers maps a header name to an RE2 expression its value must match.
	Headers Headers `json:"headers,omitempty"`
}

// HeaderMatch is one header condition.
type HeaderMatch struct {
	Name       string
	ValueRegex string
}

// Headers decodes both shapes SMI versions used: a map of name to value
// regex, and a list of single-entry maps. It is kept sorted by name.
type Headers []HeaderMatch

// UnmarshalJSON accepts {"name": "regex"} and [{"name": "regex"}, ...].
func (h *Headers) UnmarshalJSON(data []byte) error {
	var asMap map[string]string
	if err := json.Unmarshal(data, &asMap); err == nil {
		*h = headersFromMap(asMap)
		return nil
	}
	var asList []map[string]string
	if err := json.Unmarshal(data, &asList); err != nil {
		return fmt.Errorf("headers: want a map of header name to value regex, or a list of such maps: %w", err)
	}
	merged := map[string]string{}
	for _, m := range asList {
		for k, v := range m {
			merged[k] = v
		}
	}
	*h = headersFromMap(merged)
	return nil
}

// MarshalJSON writes the map shape.
func (h Headers) MarshalJSON() ([]byte, error) {
	m := make(map[string]string, len(h))
	for _, hm := range h {
		m[hm.Name] = hm.ValueRegex
	}
	return json.Marshal(m)
}

func headersFromMap(m map[string]string) Headers {
	out := make(Headers, 0, len(m))
	for k, v := range m {
		out = append(out, HeaderMatch{Name: k, ValueRegex: v})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}
