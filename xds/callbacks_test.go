package xds

import (
	"testing"

	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"

	"github.com/weir-mesh/weir/translator/envoy"
)

// TestSotWAndDeltaStreamsWithTheSameID checks that a delta stream is not
// taken for the SotW stream that go-control-plane gave the same number.
func TestSotWAndDeltaStreamsWithTheSameID(t *testing.T) {
	s := quietServer(0)
	s.Update(twoVersions(90, 10))
	cb := s.callbacks()
	sotw := node(t, "sotw", map[string]any{MetaRole: string(envoy.Sidecar)})
	delta := node(t, "delta", map[string]any{MetaRole: string(envoy.Sidecar)})
	if err := cb.OnStreamRequest(1, &discoveryv3.DiscoveryRequest{Node: sotw, TypeUrl: resourcev3.ClusterType}); err != nil {
		t.Fatal(err)
	}
	if err := cb.OnStreamDeltaRequest(1, &discoveryv3.DeltaDiscoveryRequest{Node: delta, TypeUrl: resourcev3.ClusterType}); err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	for _, p := range s.Proxies() {
		got[p.NodeID] = p.Delta
	}
	if len(got) != 2 || got["sotw"] || !got["delta"] {
		t.Errorf("proxies (node -> delta) %v, want sotw false and delta true", got)
	}
	if s.SnapshotVersions("delta") == nil {
		t.Error("the delta node has no snapshot")
	}
	cb.OnDeltaStreamClosed(1, delta)
	if len(s.Proxies()) != 1 || s.SnapshotVersions("sotw") == nil {
		t.Errorf("closing the delta stream: proxies %v, want the SotW node alone, with its snapshot", s.Proxies())
	}
}
