package xds

import (
	"fmt"

	"google.golang.org/grpc/encoding"
	protocodec "google.golang.org/grpc/encoding/proto"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/proto"
)

// wireCodec is gRPC's proto codec, but for large messages (a sidecar's
// whole-mesh responses, tens of megabytes at 10,000 services), which it
// encodes into a buffer of their own that the collector frees once gRPC
// has written it. gRPC's codec takes them from its default buffer pool,
// whose buffers over a megabyte live in a sync.Pool: that keeps what it
// is given through the next collection, so during a connection storm over
// a gigabyte of written responses counted as live, and the Go runtime
// lets the heap grow to twice what is live.
type wireCodec struct {
	encoding.CodecV2
}

// pooledMessageMax is the largest message encoded into a pooled buffer:
// the largest of the default pool's sized tiers.
const pooledMessageMax = 1 << 20

func newWireCodec() wireCodec {
	return wireCodec{encoding.GetCodecV2(protocodec.Name)}
}

// Marshal encodes v as gRPC's codec does, a message over
// pooledMessageMax into a buffer of its own.
func (c wireCodec) Marshal(v any) (mem.BufferSlice, error) {
	m, ok := v.(proto.Message)
	if !ok {
		return c.CodecV2.Marshal(v)
	}
	size := proto.Size(m)
	if size <= pooledMessageMax {
		return c.CodecV2.Marshal(v)
	}
	// UseCachedSize: Size just computed it, and the message is not
	// changed concurrently (gRPC's codec relies on the same).
	buf, err := proto.MarshalOptions{UseCachedSize: true}.MarshalAppend(make([]byte, 0, size), m)
	if err != nil {
		return nil, fmt.Errorf("xds: encode %T: %w", v, err)
	}
	return mem.BufferSlice{mem.SliceBuffer(buf)}, nil
}
