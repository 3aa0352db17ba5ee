//go:build linux

package e2e

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/weir-mesh/weir/translator/smi"
)

// The e2e cases on a real cluster: weir runs as its own process with the
// identity deploy/rbac.yaml binds, reads a real kube-apiserver, and feeds a
// real Envoy that sends real HTTP to servers listening on the Pods' IPs.

// kubeConvergeTimeout bounds a wait for weir and Envoy to agree on a change
// that has no stated deadline of its own.
const kubeConvergeTimeout = 15 * time.Second

// statusDeadline is how soon after an apply a change must be ACKed by
// Envoy or written to an object's status.
const statusDeadline = 2 * time.Second

// applyTutorial creates namespace httpbin with the tutorial's Services
// (pods serve on port) and perVersion ready Pods of v1 and of v2, labelled
// app: pipy and version, each answering its version's name.
func applyTutorial(t *testing.T, k *kubeEnv, port, perVersion int) map[string][]*kubePod {
	t.Helper()
	k.Apply(t, "apiVersion: v1\nkind: Namespace\nmetadata: {name: httpbin}\n---\n"+
		strings.ReplaceAll(tutorialServices, "targetPort: 8080", "targetPort: "+strconv.Itoa(port)))
	pods := map[string][]*kubePod{}
	for _, v := range []string{"v1", "v2"} {
		for i := range perVersion {
			name := fmt.Sprintf("httpbin-%s-%d", v, i)
			pods[v] = append(pods[v], startPod(t, k, "httpbin", name,
				map[string]string{"app": "pipy", "version": v}, port, v, true))
		}
	}
	return pods
}

// tutorialReady is /debug/services' line for the root Service with n
// ready Pods of each version.
func tutorialReady(v1, v2 int) string {
	switch {
	case v1 == 0 && v2 == 0:
		return "service httpbin/httpbin: none ready"
	case v2 == 0:
		return fmt.Sprintf("service httpbin/httpbin: v1 %d ready", v1)
	case v1 == 0:
		return fmt.Sprintf("service httpbin/httpbin: v2 %d ready", v2)
	}
	return fmt.Sprintf("service httpbin/httpbin: v1 %d ready, v2 %d ready", v1, v2)
}

// expectAll fails unless all n requests r were answered by name.
func expectAll(t *testing.T, sc *sidecar, n int, r request, name string) {
	t.Helper()
	if tl := kubeSend(t, sc, n, r); tl.counts[name] != n {
		t.Errorf("%s: want all %d answered by %s, got %v", r, n, name, tl)
	}
}

// expectV2Share fails unless n requests r all reach v1 or v2 and v2's share
// is plausible for probability p.
func expectV2Share(t *testing.T, sc *sidecar, n int, r request, p float64) {
	t.Helper()
	tl := kubeSend(t, sc, n, r)
	if f := failed(tl, "v1", "v2"); f != 0 {
		t.Errorf("%s: %d of %d not answered by v1 or v2: %v", r, f, n, tl)
	}
	checkShare(t, r.String()+" answered by v2", tl.counts["v2"], n, p)
}

// TestKubeSMITutorial applies the SMI canary tutorial to the cluster step
// by step under steady traffic: each step's routes are ACKed by Envoy
// within 2 s of the apply, traffic follows, and no request fails.
func TestKubeSMITutorial(t *testing.T) {
	start := time.Now()
	k := kubeSetup(t)
	applyTutorial(t, k, int(freePort(t)), 2)
	w := startWeirProc(t, k, "weir-0")
	sc, acked := startKubeSidecar(t, w, "httpbin")
	acked = w.waitConverged(t, kubeConvergeTimeout, sc.nodeID, acked, w.servicesHas(tutorialReady(2, 2)))
	t.Logf("cluster, weir and envoy ready in %v", time.Since(start).Round(time.Millisecond))

	tl := kubeSend(t, sc, 200, getDemo)
	if tl.counts["v1"] == 0 || tl.counts["v2"] == 0 || failed(tl, "v1", "v2") != 0 {
		t.Fatalf("root Service without a split: want both versions to answer, got %v", tl)
	}

	l := kubeStartLoad(sc, 2, getDemo, 1_000_000)
	defer l.finish() // also on a failed step
	split := "TrafficSplit/httpbin/httpbin-split"
	steps := []struct {
		name      string
		manifests string
		objs      []string // what weir must have accepted
		check     func(t *testing.T)
	}{
		{"1-all-to-v1", rootSplit(100, 0), []string{split}, func(t *testing.T) {
			expectAll(t, sc, singleRequests, getDemo, "v1")
		}},
		{"2-split-75-25", rootSplit(75, 25), []string{split}, func(t *testing.T) {
			expectV2Share(t, sc, splitRequests, getDemo, 0.25)
		}},
		{"3-route-groups", tutorialRouteGroups(100, 0), []string{split, "TrafficSplit/httpbin/httpbin-all",
			"HTTPRouteGroup/httpbin/httpbin-test", "HTTPRouteGroup/httpbin/httpbin-all"}, func(t *testing.T) {
			expectV2Share(t, sc, splitRequests, getTest, 0.25)
			expectAll(t, sc, singleRequests, getDemo, "v1")
		}},
	}
	var took []string
	for _, st := range steps {
		ok := t.Run(st.name, func(t *testing.T) {
			applied := time.Now()
			k.Apply(t, st.manifests)
			acked = w.waitConverged(t, kubeConvergeTimeout, sc.nodeID, acked, w.statusAccepted(st.objs...), routeType)
			d := time.Since(applied)
			took = append(took, fmt.Sprintf("%s %v", st.name, d.Round(time.Millisecond)))
			t.Logf("apply to ACK of the new routes: %v (load so far %v)", d.Round(time.Millisecond), l.snapshot())
			if d > statusDeadline {
				t.Errorf("routes ACKed %v after the apply, want <= %v", d.Round(time.Millisecond), statusDeadline)
			}
			st.check(t)
		})
		if !ok {
			break
		}
	}
	tl = l.finish()
	t.Logf("apply to ACK: %s; steady load over all steps: %v", strings.Join(took, ", "), tl)
	if f := failed(tl, "v1", "v2"); f != 0 || tl.n == 0 {
		t.Errorf("steady load: %d of %d requests failed while the steps moved traffic: %v", f, tl.n, tl)
	}
	checkNoNacks(t, w, sc)
}

// checkNoNacks fails if the sidecar ever NACKed weir.
func checkNoNacks(t *testing.T, w *weirProc, sc *sidecar) {
	t.Helper()
	p, err := w.proxy(sc.nodeID)
	if err != nil || p == nil {
		t.Fatalf("weir %s does not know node %s (%v)", w.id, sc.nodeID, err)
	}
	if p.Nacks != 0 {
		t.Errorf("envoy NACKed %d times, last: %+v", p.Nacks, p.LastNack)
	}
}

// TestKubePausedRollout is a Deployment paused mid-rollout: Service
// micro-api has 3 Pods of the old template (track: stable) and 2 of the new
// one (track: canary). Traffic spreads over all 5; weir shows two versions;
// a canary Pod that turns unready leaves the rotation.
func TestKubePausedRollout(t *testing.T) {
	k := kubeSetup(t)
	port := int(freePort(t))
	k.Apply(t, fmt.Sprintf(`apiVersion: v1
kind: Namespace
metadata: {name: micro}
---
apiVersion: v1
kind: Service
metadata: {name: micro-api, namespace: micro}
spec:
  selector: {app: micro-api}
  ports: [{name: http, port: 8080, targetPort: %d}]
`, port))
	var names []string
	pods := map[string]*kubePod{}
	for _, p := range []struct {
		track string
		n     int
	}{{"stable", 3}, {"canary", 2}} {
		for i := range p.n {
			name := fmt.Sprintf("micro-api-%s-%d", p.track, i)
			names = append(names, name)
			pods[name] = startPod(t, k, "micro", name, map[string]string{"app": "micro-api", "track": p.track}, port, name, true)
		}
	}
	w := startWeirProc(t, k, "weir-0", "--version-label", "track")
	sc, acked := startKubeSidecar(t, w, "micro")
	acked = w.waitConverged(t, kubeConvergeTimeout, sc.nodeID, acked,
		w.servicesHas("service micro/micro-api: canary 2 ready, stable 3 ready"))

	r := request{http.MethodGet, "micro-api.micro.svc.cluster.local:8080", "/"}
	const n = 2500
	tl := kubeSend(t, sc, n, r)
	if f := failed(tl, names...); f != 0 {
		t.Errorf("%d of %d requests not answered by a Pod: %v", f, n, tl)
	}
	for _, name := range names {
		checkShare(t, name+"'s share", tl.counts[name], n, 1.0/float64(len(names)))
	}

	gone := "micro-api-canary-0"
	k.SetPodReady(t, "micro", gone, pods[gone].ip, false)
	w.waitConverged(t, kubeConvergeTimeout, sc.nodeID, acked,
		w.servicesHas("service micro/micro-api: canary 1 ready, stable 3 ready"), resourcev3.EndpointType)
	tl = kubeSend(t, sc, 1000, r)
	if tl.counts[gone] != 0 {
		t.Errorf("unready %s still got %d requests after the ACK: %v", gone, tl.counts[gone], tl)
	}
	rest := names[:0:0]
	for _, name := range names {
		if name != gone {
			rest = append(rest, name)
			if tl.counts[name] == 0 {
				t.Errorf("ready %s got no request: %v", name, tl)
			}
		}
	}
	if f := failed(tl, rest...); f != 0 {
		t.Errorf("%d of %d requests not answered by a ready Pod: %v", f, tl.n, tl)
	}
	checkNoNacks(t, w, sc)
}

// TestKubePodChurn scales v2 3 -> 0 -> 3 under steady traffic to the root
// Service while v1 keeps 3 ready Pods: no request fails. A Pod leaves as
// under a graceful rollout: unready first, deleted and stopped once Envoy
// ACKed the endpoints without it; a new one serves before it is ready.
func TestKubePodChurn(t *testing.T) {
	k := kubeSetup(t)
	port := int(freePort(t))
	pods := applyTutorial(t, k, port, 3)
	w := startWeirProc(t, k, "weir-0")
	sc, acked := startKubeSidecar(t, w, "httpbin")
	acked = w.waitConverged(t, kubeConvergeTimeout, sc.nodeID, acked, w.servicesHas(tutorialReady(3, 3)))

	l := kubeStartLoad(sc, 4, getDemo, 1_000_000)
	defer l.finish()
	start := time.Now()
	for _, p := range pods["v2"] {
		k.SetPodReady(t, p.ns, p.name, p.ip, false)
	}
	acked = w.waitConverged(t, kubeConvergeTimeout, sc.nodeID, acked, w.servicesHas(tutorialReady(3, 0)), resourcev3.EndpointType)
	t.Logf("v2 unready to ACK: %v; load so far %v", time.Since(start).Round(time.Millisecond), l.snapshot())
	for _, p := range pods["v2"] {
		k.DeletePod(t, p.ns, p.name)
		p.backend.stop()
	}
	before := l.snapshot()
	k.WaitEndpointSlices(t, kubeConvergeTimeout, "httpbin", "httpbin-v2", func(eps []*discoveryv1.EndpointSlice) error {
		for _, s := range eps {
			if len(s.Endpoints) != 0 {
				return fmt.Errorf("slice %s still has %d endpoints", s.Name, len(s.Endpoints))
			}
		}
		return nil
	})
	acked = w.waitConverged(t, kubeConvergeTimeout, sc.nodeID, acked, nil)
	if after := l.snapshot(); after["v1"] == before["v1"] {
		t.Errorf("no request answered while v2 had no Pod: %v", after)
	}

	start = time.Now()
	for i := range 3 {
		startPod(t, k, "httpbin", fmt.Sprintf("httpbin-v2-new-%d", i),
			map[string]string{"app": "pipy", "version": "v2"}, port, "v2", true)
	}
	w.waitConverged(t, kubeConvergeTimeout, sc.nodeID, acked, w.servicesHas(tutorialReady(3, 3)), resourcev3.EndpointType)
	t.Logf("v2 back to ACK: %v", time.Since(start).Round(time.Millisecond))
	before = l.snapshot()
	waitFor(t, 5*time.Second, "the load to reach the new v2 Pods", func() error {
		if l.snapshot()["v2"] == before["v2"] {
			return errNotYet
		}
		return nil
	})
	tl := l.finish()
	t.Logf("steady load through the churn: %v", tl)
	if f := failed(tl, "v1", "v2"); f != 0 {
		t.Errorf("%d of %d requests failed while v2 churned: %v", f, tl.n, tl)
	}
	checkNoNacks(t, w, sc)
}

// TestKubeAPIServerDown kills the API server for 10 s under traffic: weir
// keeps serving the last configuration, no request fails, and an edit made
// as soon as the API server is back takes effect.
func TestKubeAPIServerDown(t *testing.T) {
	k := kubeSetup(t)
	applyTutorial(t, k, int(freePort(t)), 2)
	k.Apply(t, rootSplit(75, 25))
	w := startWeirProc(t, k, "weir-0")
	sc, acked := startKubeSidecar(t, w, "httpbin")
	acked = w.waitConverged(t, kubeConvergeTimeout, sc.nodeID, acked,
		w.statusAccepted("TrafficSplit/httpbin/httpbin-split"))
	if err := w.servicesHas(tutorialReady(2, 2))(); err != nil {
		t.Fatal(err)
	}

	l := kubeStartLoad(sc, 4, getDemo, 1_000_000)
	defer l.finish()
	k.StopAPIServer(t)
	time.Sleep(10 * time.Second) // the outage itself, not a wait for a state
	if err := w.readyz(); err != nil {
		t.Errorf("weir not ready with the API server down: %v", err)
	}
	if err := w.servicesHas(tutorialReady(2, 2))(); err != nil {
		t.Errorf("weir's view shrank with the API server down: %v", err)
	}
	during := l.snapshot()
	k.RestartAPIServer(t)
	edited := time.Now()
	k.Apply(t, rootSplit(50, 50))
	// weir's reads wait for the API server instead of failing into
	// client-go's growing backoff, so the watch resumes at once: 5 s is
	// generous (measured: about 150 ms).
	w.waitConverged(t, 5*time.Second, sc.nodeID, acked, nil, routeType)
	t.Logf("edit after restart to ACK of the new routes: %v", time.Since(edited).Round(time.Millisecond))
	tl := l.finish()
	t.Logf("load during the outage: %v; in all: %v", during, tl)
	if f := failed(tl, "v1", "v2"); f != 0 {
		t.Errorf("%d of %d requests failed around the outage: %v", f, tl.n, tl)
	}
	if during["v1"]+during["v2"] == 0 {
		t.Errorf("no request answered during the outage: %v", during)
	}
	expectV2Share(t, sc, splitRequests, getDemo, 0.5)
	checkNoNacks(t, w, sc)
}

// badSplit is the tutorial's split with v2's weight -5.
var badSplit = strings.Replace(rootSplit(75, 25), "weight: 25", "weight: -5", 1)

// applyServicesOnly creates namespace httpbin and the tutorial's Services,
// with no Pods: enough for a TrafficSplit to be judged.
func applyServicesOnly(t *testing.T, k *kubeEnv) {
	t.Helper()
	k.Apply(t, "apiVersion: v1\nkind: Namespace\nmetadata: {name: httpbin}\n---\n"+tutorialServices)
}

// TestKubeLeaderFailover runs two weir replicas on one Lease, kills the
// leader, and checks that the other takes the Lease and writes status.
func TestKubeLeaderFailover(t *testing.T) {
	k := kubeSetup(t)
	applyServicesOnly(t, k)
	replicas := map[string]*weirProc{}
	for _, id := range []string{"weir-a", "weir-b"} {
		replicas[id] = startWeirProc(t, k, id)
	}
	leader := waitLeaseHolder(t, k, kubeConvergeTimeout, func(h string) error {
		if replicas[h] == nil {
			return fmt.Errorf("holder %q", h)
		}
		return nil
	})
	survivor := replicas["weir-a"]
	if leader == "weir-a" {
		survivor = replicas["weir-b"]
	}
	t.Logf("leader %s, survivor %s", leader, survivor.id)
	k.Apply(t, rootSplit(75, 25))
	k.WaitObject(t, kubeConvergeTimeout, "split.smi-spec.io/v1alpha4", "TrafficSplit", "httpbin", "httpbin-split",
		acceptedCondition("True", ""))
	for id, w := range replicas {
		if err := w.readyz(); err != nil {
			t.Errorf("replica %s: %v", id, err)
		}
	}

	killed := time.Now()
	replicas[leader].kill()
	waitLeaseHolder(t, k, kubeConvergeTimeout, func(h string) error {
		if h != survivor.id {
			return fmt.Errorf("holder %q", h)
		}
		return nil
	})
	t.Logf("kill of the leader to the survivor holding the Lease: %v", time.Since(killed).Round(time.Millisecond))

	edited := time.Now()
	k.Apply(t, badSplit)
	k.WaitObject(t, kubeConvergeTimeout, "split.smi-spec.io/v1alpha4", "TrafficSplit", "httpbin", "httpbin-split",
		acceptedCondition("False", smi.ReasonInvalidWeight))
	t.Logf("bad weight to Accepted=False written by the new leader: %v", time.Since(edited).Round(time.Millisecond))

	if err := survivor.readyz(); err != nil {
		t.Errorf("survivor %s: %v", survivor.id, err)
	}
	sc, _ := startKubeSidecar(t, survivor, "httpbin") // ACKs every type, or fails
	checkNoNacks(t, survivor, sc)
}

// TestKubeBadWeightStatus checks that a TrafficSplit with a negative weight
// gets Accepted=False (InvalidWeight, at its generation) in its status
// within 2 s of the apply.
func TestKubeBadWeightStatus(t *testing.T) {
	k := kubeSetup(t)
	applyServicesOnly(t, k)
	w := startWeirProc(t, k, "weir-0")
	waitLeaseHolder(t, k, kubeConvergeTimeout, func(h string) error {
		if h != w.id {
			return fmt.Errorf("holder %q", h)
		}
		return nil
	})
	applied := time.Now()
	k.Apply(t, badSplit)
	k.WaitObject(t, kubeConvergeTimeout, "split.smi-spec.io/v1alpha4", "TrafficSplit", "httpbin", "httpbin-split",
		acceptedCondition("False", smi.ReasonInvalidWeight))
	d := time.Since(applied)
	t.Logf("apply to Accepted=False in status: %v", d.Round(time.Millisecond))
	if d > statusDeadline {
		t.Errorf("Accepted=False written %v after the apply, want <= %v", d.Round(time.Millisecond), statusDeadline)
	}
	ts := k.Get(t, "split.smi-spec.io/v1alpha4", "TrafficSplit", "httpbin", "httpbin-split")
	conds, _, _ := unstructured.NestedSlice(ts.Object, "status", "conditions")
	t.Logf("status conditions: %v", conds)
}
