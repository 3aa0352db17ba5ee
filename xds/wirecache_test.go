package xds

import (
	"context"
	"fmt"
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
)

// TestWireCacheSendsTheSharedEncodings: a state-of-the-world response of the
// wire cache says what the snapshot cache's says, and its Anys hold the
// shared encodings themselves, whether the watch is answered at once or
// when a snapshot is set later. An open watch is forgotten once cancelled.
func TestWireCacheSendsTheSharedEncodings(t *testing.T) {
	c := newWireCache(cachev3.NewSnapshotCache(false, cachev3.IDHash{}, nil))
	snapshot := func(version, name string) (cachev3.ResourceSnapshot, []byte) {
		enc, err := proto.MarshalOptions{Deterministic: true}.Marshal(&clusterv3.Cluster{Name: name})
		if err != nil {
			t.Fatal(err)
		}
		snap, err := cachev3.NewSnapshot(version, map[resourcev3.Type][]types.Resource{
			resourcev3.ClusterType: {unknownOnly(&clusterv3.Cluster{Name: name}, enc)},
		})
		if err != nil {
			t.Fatal(err)
		}
		return snap, enc
	}
	check := func(when string, r cachev3.Response, enc []byte) {
		t.Helper()
		if _, ok := r.(wireResponse); !ok {
			t.Fatalf("%s: response of type %T, want a wireResponse", when, r)
		}
		got, err := r.GetDiscoveryResponse()
		if err != nil {
			t.Fatal(err)
		}
		want, err := r.(wireResponse).RawResponse.GetDiscoveryResponse()
		if err != nil {
			t.Fatal(err)
		}
		if !proto.Equal(got, want) {
			t.Errorf("%s: response\n%v\nwant the snapshot cache's\n%v", when, got, want)
		}
		if len(got.Resources) != 1 || unsafe.SliceData(got.Resources[0].Value) != unsafe.SliceData(enc) {
			t.Errorf("%s: the Any does not hold the shared encoding", when)
		}
	}
	node := &corev3.Node{Id: "n"}
	snap, enc := snapshot("1", "a")
	if err := c.SetSnapshot(context.Background(), "n", snap); err != nil {
		t.Fatal(err)
	}
	server := make(chan cachev3.Response, 1)
	req := &discoveryv3.DiscoveryRequest{Node: node, TypeUrl: resourcev3.ClusterType}
	sub := stream.NewSotwSubscription(nil, false)
	cancel, err := c.CreateWatch(req, sub, server)
	if err != nil {
		t.Fatal(err)
	}
	check("answered at once", <-server, enc)
	cancel()

	req = &discoveryv3.DiscoveryRequest{Node: node, TypeUrl: resourcev3.ClusterType, VersionInfo: "1"}
	if _, err := c.CreateWatch(req, sub, server); err != nil {
		t.Fatal(err)
	}
	select {
	case r := <-server:
		t.Fatalf("a watch of the version the node has was answered: %v", r)
	default:
	}
	snap, enc = snapshot("2", "b")
	if err := c.SetSnapshot(context.Background(), "n", snap); err != nil {
		t.Fatal(err)
	}
	check("answered by a new snapshot", <-server, enc)

	req = &discoveryv3.DiscoveryRequest{Node: node, TypeUrl: resourcev3.ClusterType, VersionInfo: "2"}
	cancel, err = c.CreateWatch(req, sub, server)
	if err != nil {
		t.Fatal(err)
	}
	cancel()
	c.mu.Lock()
	open := len(c.pending)
	c.mu.Unlock()
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
