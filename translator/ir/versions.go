package ir

import (
	"fmt"
	"sort"
	"strings"
)

// Unversioned is how ServiceVersions names the endpoints without a version.
const Unversioned = "unversioned"

// VersionCount is how many ready endpoints of a service carry one version.
type VersionCount struct {
	// Version is the label value, or Unversioned.
	Version string
	Ready   int
}

// ServiceVersions is one service's ready endpoints grouped by version.
type ServiceVersions struct {
	Namespace string
	Service   string
	// Versions are sorted by name, Unversioned last; empty when the
	// service has no ready endpoint.
	Versions []VersionCount
}

// String returns "service NS/NAME: v1 3 ready, v2 1 ready", or
// "service NS/NAME: none ready".
func (sv ServiceVersions) String() string {
	if len(sv.Versions) == 0 {
		return fmt.Sprintf("service %s/%s: none ready", sv.Namespace, sv.Service)
	}
	parts := make([]string, len(sv.Versions))
	for i, v := range sv.Versions {
		parts[i] = fmt.Sprintf("%s %d ready", v.Version, v.Ready)
	}
	return fmt.Sprintf("service %s/%s: %s", sv.Namespace, sv.Service, strings.Join(parts, ", "))
}

// ServiceVersions groups the ready endpoints of every service by version,
// sorted by namespace then name. A service with several ports counts, per
// version, the endpoints of the port that has the most.
func (r *IR) ServiceVersions() []ServiceVersions {
	type key struct{ ns, name string }
	counts := map[key]map[string]int{} // service -> version -> endpoints
	for _, c := range r.Clusters {
		k := key{c.Namespace, c.Service}
		if counts[k] == nil {
			counts[k] = map[string]int{}
		}
		perPort := map[string]int{}
		for _, ep := range c.Endpoints {
			perPort[ep.Version]++
		}
		for v, n := range perPort {
			counts[k][v] = max(counts[k][v], n)
		}
	}
	out := make([]ServiceVersions, 0, len(counts))
	for k, byVersion := range counts {
		out = append(out, ServiceVersions{Namespace: k.ns, Service: k.name, Versions: sortedCounts(byVersion)})
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Namespace != out[j].Namespace {
			return out[i].Namespace < out[j].Namespace
		}
		return out[i].Service < out[j].Service
	})
	return out
}

// sortedCounts lists counts by version name, Unversioned last.
func sortedCounts(counts map[string]int) []VersionCount {
	out := make([]VersionCount, 0, len(counts))
	for v, n := range counts {
		out = append(out, VersionCount{Version: v, Ready: n})
	}
	sort.Slice(out, func(i, j int) bool {
		if (out[i].Version == "") != (out[j].Version == "") {
			return out[j].Version == ""
		}
		return out[i].Version < out[j].Version
	})
	for i := range out {
		if out[i].Version == "" {
			out[i].Version = Unversioned
		}
	}
	return out
}
