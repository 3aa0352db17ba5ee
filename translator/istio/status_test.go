package istio_test

import (
	"strings"
	"testing"

	"github.com/weir-mesh/weir/translator/status"
)

func TestBadInput(t *testing.T) {
	res := translate(t, golden(t, "istio-bad-input"))
	tests := map[string]struct {
		kind, name, typ, status, reason, field string
	}{
		"all weights zero":   {"VirtualService", "web-zero", status.Accepted, status.False, "InvalidWeight", "spec.http[0].route[*].weight"},
		"negative weight":    {"VirtualService", "api-negative", status.Accepted, status.False, "InvalidWeight", "spec.http[0].route[1].weight"},
		"bad timeout":        {"VirtualService", "cache-timeout", status.Accepted, status.False, "InvalidField", "spec.http[0].timeout"},
		"missing Service":    {"VirtualService", "search-missing", status.ResolvedRefs, status.False, "BackendNotFound", "spec.http[0].route[0].destination.host"},
		"missing subset":     {"VirtualService", "users-subset", status.ResolvedRefs, status.False, "SubsetNotFound", "spec.http[0].route[1].destination.subset"},
		"subset not ready":   {"VirtualService", "users-subset", "BackendsReady", status.False, "NoReadyEndpoints", "spec.http[0].route[1].destination"},
		"still accepted":     {"VirtualService", "users-subset", status.Accepted, status.True, "Accepted", ""},
		"bad regex":          {"VirtualService", "orders-regex", status.Accepted, status.False, "InvalidField", "spec.http[0].match[0].uri.regex"},
		"source labels":      {"VirtualService", "orders-source", status.Accepted, status.False, "Unsupported", "spec.http[0].match[0]"},
		"sticky, no hash":    {"VirtualService", "search-sticky", "StickyVersions", status.False, "NoConsistentHash", "weir.dev/sticky-versions"},
		"older VS wins":      {"VirtualService", "search-sticky", "Conflicted", status.True, "Conflicted", "bad/search-newer"},
		"newer VS loses":     {"VirtualService", "search-newer", status.Accepted, status.False, "Conflicted", "bad/search-sticky"},
		"no ready endpoints": {"VirtualService", "empty", "BackendsReady", status.False, "NoReadyEndpoints", "spec.http[0].route[0].destination"},
		"bad LB":             {"DestinationRule", "web-lb", status.Accepted, status.False, "InvalidField", "spec.trafficPolicy.loadBalancer.simple"},
		"bad cookie TTL":     {"DestinationRule", "api-ttl", status.Accepted, status.False, "InvalidField", "spec.trafficPolicy.loadBalancer.consistentHash.httpCookie.ttl"},
		"second rule":        {"DestinationRule", "cache-again", status.Accepted, status.False, "Conflicted", "spec.host"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			c := cond(t, res, tc.kind, "bad", tc.name, tc.typ)
			if c.Status != tc.status || c.Reason != tc.reason || !strings.Contains(c.Message, tc.field) {
				t.Errorf("want %s=%s %s naming %q, got %s %s: %s", tc.typ, tc.status, tc.reason, tc.field, c.Status, c.Reason, c.Message)
			}
		})
	}
	// The rejected objects route nothing; the accepted ones keep routing.
	for _, host := range []string{"web", "api", "cache", "orders"} {
		if r := res.Routes[host+".bad.svc.cluster.local:80"]; r != nil {
			t.Errorf("%s: a rejected VirtualService produced routes %+v", host, r)
		}
	}
	for _, host := range []string{"users", "search", "empty"} {
		if r := res.Routes[host+".bad.svc.cluster.local:80"]; r == nil {
			t.Errorf("%s: no routes", host)
		}
	}
	if c := cluster(t, res, "outbound|80|v3|users.bad.svc.cluster.local"); len(c.Endpoints) != 0 {
		t.Errorf("undefined subset: want an empty cluster, got %+v", c)
	}
}

// TestDurations checks the duration fields' parsing and their messages.
func TestDurations(t *testing.T) {
	tests := map[string]struct {
		timeout string
		ok      bool
	}{
		"seconds":  {"5s", true},
		"fraction": {"0.25s", true},
		"minutes":  {"1m", true},
		"zero":     {"0s", true},
		"negative": {"-1s", false},
		"no unit":  {"5", false},
		"words":    {"five", false},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			res := translate(t, `apiVersion: v1
kind: Service
metadata: {name: a, namespace: ns}
spec: {ports: [{port: 80}]}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: a, namespace: ns}
spec:
  hosts: [a]
  http:
  - timeout: "`+tc.timeout+`"
    retries: {attempts: 1, perTryTimeout: "`+tc.timeout+`"}
    route: [{destination: {host: a}}]
`)
			c := cond(t, res, "VirtualService", "ns", "a", status.Accepted)
			if got := c.Status == status.True; got != tc.ok {
				t.Errorf("timeout %q: want accepted %v, got %+v", tc.timeout, tc.ok, c)
			}
			if !tc.ok && !strings.Contains(c.Message, "spec.http[0].timeout") {
				t.Errorf("message does not name the field: %s", c.Message)
			}
		})
	}
}
