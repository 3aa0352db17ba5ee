package xds

import (
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/weir-mesh/weir/translator/envoy"
)

// TestSnapshotEncodesLikeTheMessages checks that the pre-encoded copies
// state-of-the-world responses are made of encode to the same bytes as the
// resources themselves, and that equal resources are held once.
func TestSnapshotEncodesLikeTheMessages(t *testing.T) {
	s := quietServer(0)
	s.Update(twoVersions(90, 10))
	register(t, s, "n1", envoy.Sidecar)
	register(t, s, "n2", envoy.GRPC)
	snaps := map[string]*snapshot{}
	for _, id := range []string{"n1", "n2"} {
		rs, err := s.cache.GetSnapshot(id)
		if err != nil {
			t.Fatal(err)
		}
		snaps[id] = rs.(*snapshot)
	}
	det := proto.MarshalOptions{Deterministic: true}
	for id, snap := range snaps {
		for _, typ := range typeURLs {
			msgs, wire := snap.GetResources(typ), snap.GetResourcesAndTTL(typ)
			if len(msgs) != len(wire) {
				t.Fatalf("%s %s: %d resources, %d encoded", id, typ, len(msgs), len(wire))
			}
			for name, m := range msgs {
				want, err := det.Marshal(m)
				if err != nil {
					t.Fatal(err)
				}
				got, err := det.Marshal(wire[name].Resource)
				if err != nil {
					t.Fatal(err)
				}
				if string(got) != string(want) {
					t.Errorf("%s %s %s: the encoded copy differs from the resource", id, typ, name)
				}
			}
		}
	}
	const cds = "type.googleapis.com/envoy.config.cluster.v3.Cluster"
	for name, m := range snaps["n1"].GetResources(cds) {
		if other := snaps["n2"].GetResources(cds)[name]; other != m {
			t.Errorf("cluster %s: the sidecar and the gRPC key hold two copies", name)
		}
	}
}

// TestEncodedResourcesHashLikeFromResources guards the one place that
// hashes encodings it keeps against drifting from fromResources.
func TestEncodedResourcesHashLikeFromResources(t *testing.T) {
	res, err := envoy.Build(twoVersions(90, 10), envoy.Proxy{Role: envoy.Sidecar, OutboundAddress: "127.0.0.1", OutboundPort: 15001})
	if err != nil {
		t.Fatal(err)
	}
	want, err := fromResources(res)
	if err != nil {
		t.Fatal(err)
	}
	got, encodings, err := encodedResources(res)
	if err != nil {
		t.Fatal(err)
	}
	if !got.equal(want) || !want.equal(got) {
		t.Error("encodedResources and fromResources hash differently")
	}
	if len(encodings) != setSize(got) {
		t.Errorf("%d encodings for %d resources", len(encodings), setSize(got))
	}
}
