package e2e

import (
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"

	"github.com/weir-mesh/weir/translator/smi"
	"github.com/weir-mesh/weir/translator/status"
)

// The osm-edge canary tutorial, step by step, with weir driving a real Envoy
// sidecar in namespace httpbin that routes real HTTP to two backends.

// tutorialServices are the tutorial's Services: a root Service selecting
// every version, and one Service per version.
const tutorialServices = `apiVersion: v1
kind: Service
metadata: {name: httpbin, namespace: httpbin}
spec:
  selector: {app: pipy}
  ports:
  - {name: http, port: 8080, targetPort: 8080}
---
apiVersion: v1
kind: Service
metadata: {name: httpbin-v1, namespace: httpbin}
spec:
  selector: {app: pipy, version: v1}
  ports:
  - {name: http, port: 8080, targetPort: 8080}
---
apiVersion: v1
kind: Service
metadata: {name: httpbin-v2, namespace: httpbin}
spec:
  selector: {app: pipy, version: v2}
  ports:
  - {name: http, port: 8080, targetPort: 8080}
`

// endpointSlice is the slice of Service service holding 127.0.0.1:port.
func endpointSlice(name, service string, port uint32) string {
	return fmt.Sprintf(`apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: %s
  namespace: httpbin
  labels: {kubernetes.io/service-name: %s}
addressType: IPv4
ports:
- {name: http, port: %d, protocol: TCP}
endpoints:
- addresses: [127.0.0.1]
  conditions: {ready: true}
`, name, service, port)
}

// tutorialEndpoints puts each version on its backend; the root Service has
// both (one slice per port, as a slice has one port list).
func tutorialEndpoints(v1, v2 uint32) string {
	return strings.Join([]string{
		endpointSlice("httpbin-v1-abcde", "httpbin-v1", v1),
		endpointSlice("httpbin-v2-abcde", "httpbin-v2", v2),
		endpointSlice("httpbin-abcde", "httpbin", v1),
		endpointSlice("httpbin-fghij", "httpbin", v2),
	}, "---\n")
}

// rootSplit is step 1 and 2: the root Service split between the versions; a
// weight of 0 leaves the backend out, as the tutorial's step 1 does.
func rootSplit(v1, v2 int) string {
	s := `apiVersion: split.smi-spec.io/v1alpha4
kind: TrafficSplit
metadata: {name: httpbin-split, namespace: httpbin}
spec:
  service: httpbin
  backends:
`
	if v1 != 0 {
		s += fmt.Sprintf("  - {service: httpbin-v1, weight: %d}\n", v1)
	}
	if v2 != 0 {
		s += fmt.Sprintf("  - {service: httpbin-v2, weight: %d}\n", v2)
	}
	return s
}

// tutorialRouteGroups is step 3: /test is split, every other GET is not.
// The catch-all split's weights are what step 4 moves; the tutorial has
// httpbin-v1 at 100 alone.
func tutorialRouteGroups(allV1, allV2 int) string {
	s := `apiVersion: specs.smi-spec.io/v1alpha4
kind: HTTPRouteGroup
metadata: {name: httpbin-test, namespace: httpbin}
spec:
  matches:
  - {name: test, pathRegex: "/test", methods: [GET]}
---
apiVersion: specs.smi-spec.io/v1alpha4
kind: HTTPRouteGroup
metadata: {name: httpbin-all, namespace: httpbin}
spec:
  matches:
  - {name: test, pathRegex: ".*", methods: [GET]}
---
apiVersion: split.smi-spec.io/v1alpha4
kind: TrafficSplit
metadata: {name: httpbin-split, namespace: httpbin}
spec:
  service: httpbin
  matches: [{name: httpbin-test, kind: HTTPRouteGroup}]
  backends:
  - {service: httpbin-v1, weight: 75}
  - {service: httpbin-v2, weight: 25}
---
apiVersion: split.smi-spec.io/v1alpha4
kind: TrafficSplit
metadata: {name: httpbin-all, namespace: httpbin}
spec:
  service: httpbin
  matches: [{name: httpbin-all, kind: HTTPRouteGroup}]
  backends:
`
	if allV2 == 0 {
		return s + fmt.Sprintf("  - {service: httpbin-v1, weight: %d}\n", allV1)
	}
	return s + fmt.Sprintf("  - {service: httpbin-v1, weight: %d}\n  - {service: httpbin-v2, weight: %d}\n", allV1, allV2)
}

// negativeSplit is a user's mistake on another root: were it accepted,
// requests to httpbin-v1 would reach v2.
const negativeSplit = `apiVersion: split.smi-spec.io/v1alpha4
kind: TrafficSplit
metadata: {name: httpbin-v1-oops, namespace: httpbin}
spec:
  service: httpbin-v1
  backends:
  - {service: httpbin-v1, weight: 10}
  - {service: httpbin-v2, weight: -5}
`

// brokenYAML is the step-4 file cut short, with a flow mapping left open
// on line 10.
const brokenYAML = `apiVersion: specs.smi-spec.io/v1alpha4
kind: HTTPRouteGroup
metadata: {name: httpbin-test, namespace: httpbin}
spec:
  matches:
  - {name: test, pathRegex: "/test", methods: [GET]}
---
apiVersion: split.smi-spec.io/v1alpha4
kind: TrafficSplit
metadata: {name: httpbin-all, namespace: httpbin
spec:
  service: httpbin
`

// Requests as the tutorial's curl client sends them, through the sidecar.
var (
	fqdn     = "httpbin.httpbin.svc.cluster.local:8080"
	getDemo  = request{http.MethodGet, fqdn, "/demo"}
	getTest  = request{http.MethodGet, fqdn, "/test"}
	postDemo = request{http.MethodPost, fqdn, "/demo"}
	getV1    = request{http.MethodGet, "httpbin-v1.httpbin.svc.cluster.local:8080", "/"}
)

// Request counts: enough for +-5 sigma bounds to be tight at p=0.25.
const (
	splitRequests  = 2000
	singleRequests = 500
)

// TestEnvoyCanaryTutorial follows the osm-edge canary tutorial: each step
// edits the manifests weir reads, waits for Envoy to ACK the new routes and
// checks where real requests go.
func TestEnvoyCanaryTutorial(t *testing.T) {
	start := time.Now()
	v1, v2 := startBackend(t, "Hi, I am v1!"), startBackend(t, "Hi, I am v2!")
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "services.yaml"), tutorialServices)
	writeFile(t, filepath.Join(dir, "endpoints.yaml"), tutorialEndpoints(v1, v2))
	weir := startWeir(t, dir)
	sc := startSidecar(t, weir, "httpbin")
	acked := ackedVersions(t, weir.XDS(), sc.nodeID, nil, xdsTypes...)
	t.Logf("weir and envoy ready in %v", time.Since(start).Round(time.Millisecond))
	splitFile := filepath.Join(dir, "trafficsplit.yaml")

	steps := []struct {
		name string
		run  func(t *testing.T)
	}{
		{"0-no-split-root-balances", func(t *testing.T) {
			tl := sc.send(t, 100, getDemo)
			if tl.counts["v1"] == 0 || tl.counts["v2"] == 0 || tl.counts["v1"]+tl.counts["v2"] != 100 {
				t.Errorf("root Service without a split: want both versions to answer, got %v", tl)
			}
		}},
		{"1-all-to-v1", func(t *testing.T) {
			writeFile(t, splitFile, rootSplit(100, 0))
			acked = sc.waitRoute(t, acked)
			sc.expectOnly(t, singleRequests, getDemo, "v1")
			sc.expectOnly(t, 100, request{http.MethodGet, "httpbin:8080", "/"}, "v1")
			sc.expectOnly(t, 100, request{http.MethodGet, "httpbin.httpbin:8080", "/"}, "v1")
			if tl := sc.send(t, 20, request{http.MethodGet, "nosuch.httpbin.svc.cluster.local:8080", "/"}); tl.counts["HTTP 404"] != 20 {
				t.Errorf("unknown host: want 404 for all 20, got %v", tl)
			}
		}},
		{"2-split-75-25", func(t *testing.T) {
			writeFile(t, splitFile, rootSplit(75, 25))
			acked = sc.waitRoute(t, acked)
			sc.expectShare(t, splitRequests, getDemo, 0.25)
		}},
		{"3-split-only-test-path", func(t *testing.T) {
			writeFile(t, splitFile, tutorialRouteGroups(100, 0))
			acked = sc.waitRoute(t, acked)
			sc.expectShare(t, splitRequests, getTest, 0.25)
			sc.expectOnly(t, singleRequests, getDemo, "v1")
			// A POST matches neither group: the root Service's own route
			// takes it, balanced over both versions.
			if tl := sc.send(t, 100, postDemo); tl.counts["v1"] == 0 || tl.counts["v2"] == 0 || tl.counts["v1"]+tl.counts["v2"] != 100 {
				t.Errorf("%s: want both versions to answer, got %v", postDemo, tl)
			}
		}},
		{"4-shift-without-errors", func(t *testing.T) {
			l := sc.startLoad(4, getDemo, 1_000_000)
			defer l.finish() // also on a failed wait
			stepStart := time.Now()
			for v1w := 100; v1w >= 0; v1w -= 10 {
				writeFile(t, splitFile, tutorialRouteGroups(v1w, 100-v1w))
				if v1w == 100 {
					// A weight of 0 leaves httpbin-v2 out: the same
					// routes as step 3, so there is nothing to wait for;
					// the next write supersedes this one.
					continue
				}
				wait := time.Now()
				acked = sc.waitRoute(t, acked)
				t.Logf("%d/%d ACKed after %v; so far %v", v1w, 100-v1w, time.Since(wait).Round(time.Millisecond), l.snapshot())
			}
			tl := l.finish()
			t.Logf("during the shift (%v): %v", time.Since(stepStart).Round(time.Millisecond), tl)
			if tl.counts["v1"]+tl.counts["v2"] != tl.n {
				t.Errorf("requests failed while weights moved: %v", tl)
			}
			if tl.counts["v1"] == 0 || tl.counts["v2"] == 0 {
				t.Errorf("the load did not span the shift: %v", tl)
			}
			sc.expectOnly(t, singleRequests, getDemo, "v2")
			sc.expectShare(t, splitRequests, getTest, 0.25)
		}},
		{"5-bad-input-keeps-last-good", func(t *testing.T) {
			// A TrafficSplit with a negative weight is rejected.
			writeFile(t, filepath.Join(dir, "oops.yaml"), negativeSplit)
			waitStatus(t, weir, "the negative weight to be judged", func(ws weirStatus) error {
				if ws.condition("TrafficSplit", "httpbin", "httpbin-v1-oops", status.Accepted) == nil {
					return errNotYet
				}
				return nil
			})
			// A broken file keeps its last good objects.
			writeFile(t, splitFile, brokenYAML)
			waitStatus(t, weir, "the broken file to be reported", func(ws weirStatus) error {
				if _, ok := ws.FileErrors[splitFile]; !ok {
					return fmt.Errorf("file errors: %v", ws.FileErrors)
				}
				return nil
			})
			sc.expectOnly(t, 300, getDemo, "v2")
			sc.expectOnly(t, 300, getV1, "v1")
			sc.expectShare(t, splitRequests, getTest, 0.25)

			// Checked after the traffic, so that a wrong translation the
			// bad input might have caused had time to happen.
			if got := weir.XDS().SnapshotVersions(sc.nodeID)[resourcev3.RouteType]; got != acked[resourcev3.RouteType] {
				t.Errorf("route version changed from %s to %s after bad input", acked[resourcev3.RouteType], got)
			}
			ws, err := fetchStatus(weir)
			if err != nil {
				t.Fatal(err)
			}
			checkRejected(t, ws, "TrafficSplit", "httpbin-v1-oops", smi.ReasonInvalidWeight, "spec.backends[1].weight")
			for _, o := range []struct{ kind, name string }{
				{"TrafficSplit", "httpbin-split"}, {"TrafficSplit", "httpbin-all"},
				{"HTTPRouteGroup", "httpbin-test"}, {"HTTPRouteGroup", "httpbin-all"},
			} {
				if c := ws.condition(o.kind, "httpbin", o.name, status.Accepted); c == nil || c.Status != status.True {
					t.Errorf("%s httpbin/%s: want Accepted=True, got %+v", o.kind, o.name, c)
				}
			}
			if want := splitFile + ":10: yaml: "; !strings.HasPrefix(ws.FileErrors[splitFile], want) {
				t.Errorf("file error: want %q..., got %q", want, ws.FileErrors[splitFile])
			}
			t.Logf("file error: %s", ws.FileErrors[splitFile])
		}},
	}
	for _, st := range steps {
		if !t.Run(st.name, st.run) {
			break
		}
	}
	if ps := sc.status(t); ps.Nacks != 0 {
		t.Errorf("envoy NACKed %d times, last: %+v", ps.Nacks, ps.LastNack)
	}
	t.Logf("tutorial done in %v", time.Since(start).Round(time.Millisecond))
}

// checkRejected fails unless kind httpbin/name is Accepted=False for reason,
// with a message naming field.
func checkRejected(t *testing.T, ws weirStatus, kind, name, reason, field string) {
	t.Helper()
	c := ws.condition(kind, "httpbin", name, status.Accepted)
	switch {
	case c == nil:
		t.Errorf("%s httpbin/%s: no Accepted condition in /debug/status", kind, name)
	case c.Status != status.False || c.Reason != reason || !strings.Contains(c.Message, field):
		t.Errorf("%s httpbin/%s: want Accepted=False %s naming %s, got %s %s: %s", kind, name, reason, field, c.Status, c.Reason, c.Message)
	}
}
