package translator

import (
	"fmt"
	"slices"
	"sort"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	istioapi "github.com/weir-mesh/weir/api/istio"
	smiapi "github.com/weir-mesh/weir/api/smi"
	"github.com/weir-mesh/weir/translator/ir"
	"github.com/weir-mesh/weir/translator/istio"
	"github.com/weir-mesh/weir/translator/smi"
	"github.com/weir-mesh/weir/translator/status"
)

// hostPolicy is the routes a policy front-end gives one host.
type hostPolicy struct {
	routes  []ir.Route
	standby []string
	// fallback keeps the Service's default route after routes that do not
	// catch every request (SMI); Istio answers such requests with 404.
	fallback bool
}

// owner is an object that routes hosts, for the conflict rule.
type owner struct {
	kind, namespace, name string
	created               metav1.Time
}

func (o owner) String() string { return fmt.Sprintf("%s %s/%s", o.kind, o.namespace, o.name) }

// olderThan orders owners by creation time, then namespace/name.
func (o owner) olderThan(b owner) bool {
	if !o.created.Equal(&b.created) {
		return o.created.Before(&b.created)
	}
	if o.namespace != b.namespace {
		return o.namespace < b.namespace
	}
	return o.name < b.name
}

// hostPolicies joins the SMI and Istio routes of every host. A host that
// both a TrafficSplit and a VirtualService route goes to the oldest object
// of the two (creation time, then namespace/name); the conflict is reported
// on every object involved as Conflicted=True, and a loser left with no
// host is Accepted=False.
func hostPolicies(objs Objects, split smi.Result, mesh istio.Result, st []status.Object) map[string]hostPolicy {
	out := make(map[string]hostPolicy, len(split.Routes)+len(mesh.Routes))
	for host, routes := range split.Routes {
		out[host] = hostPolicy{routes: routes, standby: split.Standby[host], fallback: true}
	}
	var shared []string
	for host, routes := range mesh.Routes {
		if _, both := split.Routes[host]; both {
			shared = append(shared, host)
			continue
		}
		out[host] = hostPolicy{routes: routes, standby: mesh.Standby[host]}
	}
	if len(shared) > 0 {
		resolveShared(objs, split, mesh, st, shared, out)
	}
	return out
}

// resolveShared gives each of the shared hosts, which both SMI and Istio
// route, to the oldest object, and reports the conflicts.
func resolveShared(objs Objects, split smi.Result, mesh istio.Result, st []status.Object, shared []string, out map[string]hostPolicy) {
	ages := ownerAges(objs)
	notes := map[owner][]string{}
	routed, lost := map[owner]int{}, map[owner]int{}
	for _, policy := range []map[string][]ir.Route{split.Routes, mesh.Routes} {
		for _, routes := range policy {
			for _, o := range ownersOf(routes, ages) {
				routed[o]++
			}
		}
	}
	for _, host := range shared {
		splits, vsOwner := ownersOf(split.Routes[host], ages), ownersOf(mesh.Routes[host], ages)
		winners, losers := splits, vsOwner
		if vsOwner[0].olderThan(splits[0]) {
			winners, losers = vsOwner, splits
			out[host] = hostPolicy{routes: mesh.Routes[host], standby: mesh.Standby[host]}
		}
		for _, w := range winners {
			notes[w] = append(notes[w], fmt.Sprintf("host %s is also routed by %s: this object is older and wins", host, list(losers)))
		}
		for _, l := range losers {
			lost[l]++
			notes[l] = append(notes[l], fmt.Sprintf("host %s is also routed by %s, which is older: this object is ignored there", host, list(winners)))
		}
	}
	reportConflicts(objs, st, notes, routed, lost)
}

// reportConflicts writes the Conflicted conditions. A loser that routes
// no host any more (and, for a VirtualService, no gateway) is also
// Accepted=False.
func reportConflicts(objs Objects, st []status.Object, notes map[owner][]string, routed, lost map[owner]int) {
	meshOnly := meshOnlyServices(objs)
	for o, msgs := range notes {
		s := findStatus(st, o)
		if s == nil {
			continue
		}
		sort.Strings(msgs)
		msg := strings.Join(msgs, "; ")
		s.Set(status.Condition{Type: istio.Conflicted, Status: status.True, Reason: istio.ReasonConflicted, Message: msg})
		gateways := o.kind == istioapi.VirtualServiceKind && !meshOnly[o.namespace+"/"+o.name]
		if lost[o] == routed[o] && !gateways {
			s.Set(status.Condition{Type: status.Accepted, Status: status.False, Reason: istio.ReasonConflicted, Message: msg})
		}
	}
}

// meshOnlyServices lists VirtualServices that do not name a gateway.
func meshOnlyServices(objs Objects) map[string]bool {
	out := map[string]bool{}
	for _, vs := range objs.VirtualServices() {
		only := true
		for _, g := range vs.Spec.Gateways {
			only = only && g == "mesh"
		}
		out[vs.Namespace+"/"+vs.Name] = only
	}
	return out
}

func findStatus(st []status.Object, o owner) *status.Object {
	for i := range st {
		if st[i].Kind == o.kind && st[i].Namespace == o.namespace && st[i].Name == o.name {
			return &st[i]
		}
	}
	return nil
}

// ownerAges maps "Kind/namespace/name" to the object's owner record.
func ownerAges(objs Objects) map[string]owner {
	out := map[string]owner{}
	for _, ts := range objs.TrafficSplits() {
		o := owner{smiapi.TrafficSplitKind, ts.Namespace, ts.Name, ts.CreationTimestamp}
		out[o.kind+"/"+o.namespace+"/"+o.name] = o
	}
	for _, vs := range objs.VirtualServices() {
		o := owner{istioapi.VirtualServiceKind, vs.Namespace, vs.Name, vs.CreationTimestamp}
		out[o.kind+"/"+o.namespace+"/"+o.name] = o
	}
	return out
}

// ownersOf returns the objects whose routes these are, oldest first. Route
// names start with "Kind/namespace/name/".
func ownersOf(routes []ir.Route, ages map[string]owner) []owner {
	var out []owner
	for _, r := range routes {
		key, ok := ownerKey(r.Name)
		if !ok {
			continue
		}
		if o, ok := ages[key]; ok && !slices.Contains(out, o) {
			out = append(out, o)
		}
	}
	slices.SortFunc(out, func(a, b owner) int {
		switch {
		case a.olderThan(b):
			return -1
		case b.olderThan(a):
			return 1
		}
		return 0
	})
	return out
}

// ownerKey returns "Kind/namespace/name" of a route named
// "Kind/namespace/name[/...]"; false for fewer parts.
func ownerKey(route string) (string, bool) {
	end := 0
	for range 3 {
		i := strings.IndexByte(route[end:], '/')
		if i < 0 {
			return route, strings.Count(route, "/") == 2
		}
		end += i + 1
	}
	return route[:end-1], true
}

func list(os []owner) string {
	names := make([]string, len(os))
	for i, o := range os {
		names[i] = o.String()
	}
	return strings.Join(names, ", ")
}
