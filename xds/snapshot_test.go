package xds

import (
	"testing"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/protobuf/proto"

	"github.com/weir-mesh/weir/translator/envoy"
	"github.com/weir-mesh/weir/translator/ir"
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
		snaps[id] = rs.(*nodeView).snapshot
	}
	det := proto.MarshalOptions{Deterministic: true}
	for id, snap := range snaps {
		for _, typ := range typeURLs {
			msgs, wire := snap.Messages(typ), snap.GetResourcesAndTTL(typ)
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
	for name, e := range snaps["n1"].set[cds] {
		if other := snaps["n2"].set[cds][name]; other.res != e.res {
			t.Errorf("cluster %s: the sidecar and the gRPC key hold two copies", name)
		}
	}
	// The steps of a gRPC key read its route configurations; the rest is
	// held encoded, and read back decoded.
	for name, e := range snaps["n2"].set[resourcev3.RouteType] {
		if encodedOnly(e.res) {
			t.Errorf("gRPC route configuration %s is held encoded only", name)
		}
	}
	for name, m := range snaps["n1"].Messages(cds) {
		if encodedOnly(m) || m.(*clusterv3.Cluster).GetName() != name {
			t.Errorf("cluster %s is not read back decoded", name)
		}
	}
	// Delta responses marshal the shared encoded copies.
	for name, m := range snaps["n1"].GetResources(cds) {
		if m != snaps["n1"].GetResourcesAndTTL(cds)[name].Resource {
			t.Errorf("cluster %s: delta responses do not marshal the shared copy", name)
		}
	}
}

// TestEncodedResourcesHashLikeHashMessage guards the one place that
// hashes encodings it keeps against drifting from hashMessage, which the
// steps use on the messages they change.
func TestEncodedResourcesHashLikeHashMessage(t *testing.T) {
	res, err := envoy.Build(twoVersions(90, 10), envoy.Proxy{Role: envoy.Sidecar, OutboundAddress: "127.0.0.1", OutboundPort: 15001})
	if err != nil {
		t.Fatal(err)
	}
	memo := newEncodingMemo(nil, nil)
	got, err := encodedResources(res, memo, envoy.Sidecar, nil)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for typ, m := range got {
		for name, e := range m {
			n++
			if want, err := hashMessage(e.res); err != nil || e.hash != want {
				t.Errorf("%s %s: encodedResources hashes %s, hashMessage %s (%v)", typ, name, e.hash, want, err)
			}
		}
	}
	if n == 0 {
		t.Fatal("no resources")
	}
	if len(memo.m) != setSize(got) {
		t.Errorf("%d encodings for %d resources", len(memo.m), setSize(got))
	}
}

// TestNarrowSubscriptionVersions checks that a SotW proxy asking for some
// of the endpoints sees a new version only when one of those changes.
func TestNarrowSubscriptionVersions(t *testing.T) {
	mesh := func(addrA, addrC string) *ir.IR {
		in := twoVersions(90, 10)
		in.Hosts = append(in.Hosts, ir.Host{Name: "zz.default.svc.cluster.local:80", Service: "zz", Namespace: "default", Port: 80,
			Routes: []ir.Route{{Name: "zz", Backends: []ir.Backend{{Cluster: "c", Weight: 1}, {Cluster: "d", Weight: 1}}}}})
		in.Clusters[0].Endpoints[0].Address = addrA
		for _, c := range []string{"c", "d"} {
			in.Clusters = append(in.Clusters, ir.Cluster{Name: c, Endpoints: []ir.Endpoint{{Address: addrC, Port: 8080}}})
		}
		return in
	}
	s := quietServer(0)
	s.Update(mesh("10.0.0.1", "10.0.0.3"))
	cb := s.callbacks()
	n := node(t, "n1", map[string]any{MetaRole: string(envoy.GRPC)})
	eds := resourcev3.EndpointType
	if err := cb.OnStreamRequest(1, &discoveryv3.DiscoveryRequest{Node: n, TypeUrl: eds, ResourceNames: []string{"a", "b"}}); err != nil {
		t.Fatal(err)
	}
	before := s.SnapshotVersions("n1")[eds]
	s.Update(mesh("10.0.0.1", "10.0.0.4"))
	if got := s.SnapshotVersions("n1")[eds]; got != before {
		t.Error("endpoints the proxy did not ask for changed its version")
	}
	if got := s.DesiredVersions("n1")[eds]; got != before {
		t.Error("the desired version differs from the published one")
	}
	s.Update(mesh("10.0.0.2", "10.0.0.4"))
	if got := s.SnapshotVersions("n1")[eds]; got == before {
		t.Error("endpoints the proxy asked for changed and its version did not")
	}
}
