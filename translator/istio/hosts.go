package istio

import (
	"fmt"
	"regexp"
	"sort"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/weir-mesh/weir/translator/ir"
)

// clusterDomain is the DNS suffix of Services.
const clusterDomain = "svc.cluster.local"

// serviceOf parses a host naming a Service, as Istio resolves it from an
// object in namespace: "name" (in namespace), "name.ns", "name.ns.svc" or
// "name.ns.svc.cluster.local". ok is false for any other name.
func serviceOf(host, namespace string) (ns, name string, ok bool) {
	if host == "" || strings.Contains(host, "*") {
		return "", "", false
	}
	parts := strings.Split(strings.TrimSuffix(host, "."+clusterDomain), ".")
	switch {
	case len(parts) == 1:
		return namespace, parts[0], true
	case len(parts) == 2:
		return parts[1], parts[0], true
	case len(parts) == 3 && parts[2] == "svc":
		return parts[1], parts[0], true
	}
	return "", "", false
}

// fqdn is a Service's full name.
func fqdn(namespace, name string) string {
	return name + "." + namespace + "." + clusterDomain
}

// subsetClusterName is the cluster of one subset of a Service port, named
// as istiod names it.
func subsetClusterName(namespace, service string, port uint32, subset string) string {
	return fmt.Sprintf("outbound|%d|%s|%s", port, subset, fqdn(namespace, service))
}

// parseDuration reads a duration such as "5s", "1.5s" or "1m"; "" is 0.
func parseDuration(field, s string) (ir.Duration, *invalid) {
	if s == "" {
		return 0, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fieldError(ReasonInvalidField, field, "%q is not a duration (e.g. \"5s\", \"1.5s\", \"1m\")", s)
	}
	if d < 0 {
		return 0, fieldError(ReasonInvalidField, field, "%q is negative", s)
	}
	return ir.Duration(d), nil
}

// checkRegex reports a regex that RE2 does not accept.
func checkRegex(field, re string) *invalid {
	if _, err := regexp.Compile(re); err != nil {
		return fieldError(ReasonInvalidField, field, "%q is not a valid RE2 expression: %v", re, err)
	}
	return nil
}

// aged is an object with a creation time and a name.
type aged interface {
	GetCreationTimestamp() metav1.Time
	GetNamespace() string
	GetName() string
}

// sortedByAge returns objs oldest first; ties by namespace, then name.
func sortedByAge[T aged](objs []T) []T {
	out := append([]T(nil), objs...)
	sort.SliceStable(out, func(i, j int) bool { return older(out[i], out[j]) })
	return out
}

// older reports whether a was created before b (namespace/name breaks ties).
func older(a, b aged) bool {
	ta, tb := a.GetCreationTimestamp(), b.GetCreationTimestamp()
	if !ta.Equal(&tb) {
		return ta.Before(&tb)
	}
	if a.GetNamespace() != b.GetNamespace() {
		return a.GetNamespace() < b.GetNamespace()
	}
	return a.GetName() < b.GetName()
}
