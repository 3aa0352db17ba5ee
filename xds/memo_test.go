package xds

import (
	"runtime"
	"testing"
	"weak"

	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"

	"github.com/weir-mesh/weir/translator/envoy"
)

// TestMemoKeepsNoOlderConfig: a configuration's memoized differences from
// an older one do not keep the older one alive.
func TestMemoKeepsNoOlderConfig(t *testing.T) {
	want := &config{set: newResourceSet()}
	old := &config{set: newResourceSet()}
	old.set[resourcev3.ClusterType]["a"] = entry{hash: "1"}
	if got := want.changedFrom(old, resourcev3.ClusterType); !got["a"] {
		t.Fatalf("changed names %v, want a", got)
	}
	gone := weak.Make(old)
	old = nil
	runtime.GC()
	if gone.Value() != nil {
		t.Error("the memo keeps the older configuration alive")
	}
	runtime.KeepAlive(want)
}

// TestUnchangedTypesShareMaps checks that the keys of an update share the
// maps of resources they have in common, and keep those of the previous
// update that did not change: one weight change then costs no key a walk
// of every cluster to compare, diff or publish them.
func TestUnchangedTypesShareMaps(t *testing.T) {
	s := quietServer(0)
	s.Update(manyHosts(20, nil))
	keys := map[string]envoy.Proxy{}
	for _, ns := range []string{"a", "b"} {
		n := node(t, "sidecar-"+ns, map[string]any{MetaRole: string(envoy.Sidecar), MetaNamespace: ns})
		key, err := proxyKey(n, s.opts)
		if err != nil {
			t.Fatal(err)
		}
		s.registerNode(n, key)
		keys[ns] = key
	}
	s.Update(manyHosts(20, []int{3})) // both keys built by one update now
	desired := func(ns string) *config { return s.keys[keys[ns]].desired }
	before := desired("a")
	if !sameMap(desired("a").set[resourcev3.ClusterType], desired("b").set[resourcev3.ClusterType]) {
		t.Error("two sidecar keys of one update hold two cluster maps")
	}
	s.Update(manyHosts(20, []int{3, 4}))
	after := desired("a")
	if after == before {
		t.Fatal("a weight change left the configuration as it was")
	}
	for _, typeURL := range []string{resourcev3.ClusterType, resourcev3.EndpointType, resourcev3.ListenerType} {
		if !sameMap(before.set[typeURL], after.set[typeURL]) {
			t.Errorf("%s: unchanged by the weight change, yet a new map", typeURL)
		}
	}
	if sameMap(before.set[resourcev3.RouteType], after.set[resourcev3.RouteType]) {
		t.Error("route configurations: changed, yet the same map")
	}
	if got := after.changedFrom(before, resourcev3.ClusterType); len(got) != 0 {
		t.Errorf("clusters changed: %v", got)
	}
}
