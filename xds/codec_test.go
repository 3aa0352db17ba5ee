package xds

import (
	"bytes"
	"strings"
	"testing"

	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
)

// TestWireCodecEncodesLargeMessagesUnpooled: the codec's encoding is
// gRPC's, and a message over pooledMessageMax is in a buffer of its own
// (a SliceBuffer, which gives nothing back to a pool when freed).
func TestWireCodecEncodesLargeMessagesUnpooled(t *testing.T) {
	c := newWireCodec()
	if c.Name() != "proto" {
		t.Errorf("codec %q, want proto", c.Name())
	}
	for _, size := range []int{100, pooledMessageMax + 1, 4 * pooledMessageMax} {
		msg := &discoveryv3.DiscoveryResponse{VersionInfo: "1", Resources: []*anypb.Any{{TypeUrl: "t", Value: []byte(strings.Repeat("x", size))}}}
		want, err := proto.Marshal(msg)
		if err != nil {
			t.Fatal(err)
		}
		got, err := c.Marshal(msg)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got.Materialize(), want) {
			t.Errorf("%d bytes: the encoding differs from proto.Marshal's", size)
		}
		if _, own := got[0].(mem.SliceBuffer); size > pooledMessageMax && (len(got) != 1 || !own) {
			t.Errorf("%d bytes: encoded into %T, want one buffer of its own", size, got[0])
		}
		var back discoveryv3.DiscoveryResponse
		if err := c.Unmarshal(got, &back); err != nil || !proto.Equal(&back, msg) {
			t.Errorf("%d bytes: decoding gives %v, %v", size, err, &back)
		}
		got.Free()
	}
}
