package xds

import (
	"reflect"
	"testing"

	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"

	"github.com/weir-mesh/weir/translator/envoy"
)

// TestSotWAndDeltaStreamsWithTheSameID checks that a delta stream is not
// taken for the SotW stream that go-control-plane gave the same number
// (delta streams are numbered apart, from 1, too).
func TestSotWAndDeltaStreamsWithTheSameID(t *testing.T) {
	s := quietServer(0)
	s.Update(twoVersions(90, 10))
	cb := s.callbacks()
	sotw := node(t, "sotw", map[string]any{MetaRole: string(envoy.Sidecar)})
	delta := node(t, "delta", map[string]any{MetaRole: string(envoy.Sidecar)})
	if err := cb.OnStreamRequest(1, &discoveryv3.DiscoveryRequest{Node: sotw, TypeUrl: resourcev3.ClusterType}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.onRequest(deltaStream(1), delta, request{typeURL: resourcev3.ClusterType, delta: true}); err != nil {
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
	s.onClosed(deltaStream(1))
	if len(s.Proxies()) != 1 || s.SnapshotVersions("sotw") == nil {
		t.Errorf("closing the delta stream: proxies %v, want the SotW node alone, with its snapshot", s.Proxies())
	}
}

// TestSotWSubscriptionsAreShared checks that proxies asking for the same
// names share one set, and that a proxy changing its names changes
// neither the others' nor what it ACKed before.
func TestSotWSubscriptionsAreShared(t *testing.T) {
	s := quietServer(0)
	s.Update(twoVersions(90, 10))
	cb := s.callbacks()
	eds := resourcev3.EndpointType
	ask := func(id int64, nodeID, nonce string, names ...string) {
		t.Helper()
		n := node(t, nodeID, map[string]any{MetaRole: string(envoy.Sidecar)})
		if err := cb.OnStreamRequest(id, &discoveryv3.DiscoveryRequest{Node: n, TypeUrl: eds, ResponseNonce: nonce, ResourceNames: names}); err != nil {
			t.Fatal(err)
		}
	}
	ask(1, "a", "", "a", "b")
	ask(2, "b", "", "a", "b")
	names := func(nodeID string) map[string]bool { return s.proxies.nodes[nodeID].subs[eds].names }
	if reflect.ValueOf(names("a")).UnsafePointer() != reflect.ValueOf(names("b")).UnsafePointer() {
		t.Error("two proxies asking for the same names hold two sets")
	}
	s.proxies.response(1, eds, "v1", "n1")
	ask(1, "a", "n1", "a", "b") // the ACK
	if !s.proxies.hasAcked("a", eds, "a") || s.proxies.hasAcked("b", eds, "a") {
		t.Fatal("ACKed names: want a's, not b's")
	}
	ask(1, "a", "n1", "a", "b", "c")
	if !s.proxies.hasAcked("a", eds, "a") || s.proxies.hasAcked("a", eds, "c") {
		t.Error("after asking for c too: want a still ACKed, c not yet")
	}
	if len(names("b")) != 2 || len(names("a")) != 3 {
		t.Errorf("names: a %v, b %v", names("a"), names("b"))
	}
}
