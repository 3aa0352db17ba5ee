package xds

import (
	"runtime"
	"testing"
	"weak"

	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
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
