package xds

import (
	"bytes"
	"context"
	"fmt"
	"maps"
	"slices"
	"testing"
	"unsafe"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	cachev3 "github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"github.com/envoyproxy/go-control-plane/pkg/server/stream/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
)

// TestWireCacheAnswersAsTheSnapshotCache: the wire cache answers the
// watches go-control-plane's snapshot cache answers, with the same
// resources, versions and returned names, when a watch is created and
// when a snapshot is set later; its Anys hold the shared encodings. A
// watch of the version the node has waits, and one that asks for a
// resource the stream was not sent does not. An open watch is forgotten
// once cancelled.
func TestWireCacheAnswersAsTheSnapshotCache(t *testing.T) {
	wire := newWireCache(cachev3.NewSnapshotCache(false, cachev3.IDHash{}, nil))
	plain := cachev3.NewSnapshotCache(false, cachev3.IDHash{}, nil)
	encs := map[string][]byte{}
	set := func(version string, names ...string) {
		t.Helper()
		// Shared copies hold only their encoding, so name them by hand.
		items := map[string]types.ResourceWithTTL{}
		for _, n := range names {
			enc, err := proto.MarshalOptions{Deterministic: true}.Marshal(&clusterv3.Cluster{Name: n})
			if err != nil {
				t.Fatal(err)
			}
			encs[n] = enc
			items[n] = types.ResourceWithTTL{Resource: unknownOnly(&clusterv3.Cluster{Name: n}, enc)}
		}
		snap := &cachev3.Snapshot{}
		snap.Resources[cachev3.GetResponseType(resourcev3.ClusterType)] = cachev3.Resources{Version: version, Items: items}
		for _, c := range []cachev3.SnapshotCache{wire, plain} {
			if err := c.SetSnapshot(context.Background(), "n", snap); err != nil {
				t.Fatal(err)
			}
		}
	}
	type pair struct{ wire, plain chan cachev3.Response }
	watch := func(version string, sub stream.Subscription, names ...string) (pair, func()) {
		t.Helper()
		p := pair{make(chan cachev3.Response, 1), make(chan cachev3.Response, 1)}
		req := &discoveryv3.DiscoveryRequest{Node: &corev3.Node{Id: "n"}, TypeUrl: resourcev3.ClusterType, VersionInfo: version, ResourceNames: names}
		cancelWire, err := wire.CreateWatch(req, sub, p.wire)
		if err != nil {
			t.Fatal(err)
		}
		cancelPlain, err := plain.CreateWatch(req, sub, p.plain)
		if err != nil {
			t.Fatal(err)
		}
		return p, func() { cancelWire(); cancelPlain() }
	}
	// check compares the caches' answers, and returns the wire cache's.
	check := func(when string, p pair, answered bool) cachev3.Response {
		t.Helper()
		var w, want cachev3.Response
		select {
		case w = <-p.wire:
		default:
		}
		select {
		case want = <-p.plain:
		default:
		}
		if (w == nil) != (want == nil) {
			t.Fatalf("%s: wire cache answered %v, snapshot cache %v", when, w != nil, want != nil)
		}
		if (w != nil) != answered {
			t.Fatalf("%s: answered %v, want %v", when, w != nil, answered)
		}
		if w == nil {
			return nil
		}
		got, err := w.GetDiscoveryResponse()
		if err != nil {
			t.Fatal(err)
		}
		wantResp, err := want.GetDiscoveryResponse()
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range []*discoveryv3.DiscoveryResponse{got, wantResp} {
			slices.SortFunc(r.Resources, func(a, b *anypb.Any) int { return bytes.Compare(a.Value, b.Value) })
		}
		if !proto.Equal(got, wantResp) {
			t.Errorf("%s: response\n%v\nwant the snapshot cache's\n%v", when, got, wantResp)
		}
		if !maps.Equal(w.GetReturnedResources(), want.GetReturnedResources()) {
			t.Errorf("%s: returned %v, want %v", when, w.GetReturnedResources(), want.GetReturnedResources())
		}
		for _, a := range got.Resources {
			var c clusterv3.Cluster
			if err := proto.Unmarshal(a.Value, &c); err != nil {
				t.Fatal(err)
			}
			if unsafe.SliceData(a.Value) != unsafe.SliceData(encs[c.GetName()]) {
				t.Errorf("%s: the Any of %s does not hold the shared encoding", when, c.GetName())
			}
		}
		return w
	}

	sub := stream.NewSotwSubscription(nil, false)
	p, cancel := watch("", sub)
	check("no snapshot yet", p, false)
	set("1", "a", "b")
	r := check("answered by the first snapshot", p, true)
	cancel()
	sub.SetReturnedResources(r.GetReturnedResources())

	p, cancel = watch("1", sub)
	check("the version the node has", p, false)
	set("2", "a", "c")
	r = check("answered by a new snapshot", p, true)
	cancel()
	sub.SetReturnedResources(r.GetReturnedResources())

	p, _ = watch("1", stream.NewSotwSubscription(nil, false))
	check("another version, answered at once", p, true)
	p, cancel = watch("2", sub)
	check("the version the node has again", p, false)
	cancel()

	named := stream.NewSotwSubscription([]string{"a"}, false)
	p, _ = watch("", named, "a", "a", "x")
	r = check("some names, answered at once", p, true)
	named.SetReturnedResources(r.GetReturnedResources())
	named.SetResourceSubscription([]string{"a", "c"})
	p, _ = watch("2", named, "a", "c")
	check("a name the stream was not sent, answered at once", p, true)

	wire.mu.Lock()
	open := len(wire.watches)
	wire.mu.Unlock()
	if open != 0 {
		t.Errorf("%d nodes with open watches after every watch was answered or cancelled", open)
	}
}

// TestReturnedMapsAreEachStreamsOwn: go-control-plane deletes from the map
// of returned resources it keeps per stream the names a later request no
// longer asks for, so streams sent the same resources must not share it.
func TestReturnedMapsAreEachStreamsOwn(t *testing.T) {
	c := newWireCache(cachev3.NewSnapshotCache(false, cachev3.IDHash{}, nil))
	// As many as a mesh has, should a size decide whether to share.
	var las []types.Resource
	var names []string
	for i := range 1000 {
		name := fmt.Sprintf("c%d", i)
		las = append(las, &endpointv3.ClusterLoadAssignment{ClusterName: name})
		names = append(names, name)
	}
	snap, err := cachev3.NewSnapshot("1", map[resourcev3.Type][]types.Resource{resourcev3.EndpointType: las})
	if err != nil {
		t.Fatal(err)
	}
	var subs []stream.Subscription
	for _, node := range []string{"n1", "n2"} {
		if err := c.SetSnapshot(context.Background(), node, snap); err != nil {
			t.Fatal(err)
		}
		server := make(chan cachev3.Response, 1)
		sub := stream.NewSotwSubscription(names, false)
		req := &discoveryv3.DiscoveryRequest{Node: &corev3.Node{Id: node}, TypeUrl: resourcev3.EndpointType, ResourceNames: names}
		if _, err := c.CreateWatch(req, sub, server); err != nil {
			t.Fatal(err)
		}
		sub.SetReturnedResources((<-server).GetReturnedResources())
		subs = append(subs, sub)
	}
	subs[0].SetResourceSubscription(names[:1]) // drops the others from its map
	if len(subs[1].ReturnedResources()) != len(names) {
		t.Error("a stream's request changed what another stream was returned")
	}
}
