package envoy

import (
	"fmt"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routerv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"github.com/envoyproxy/go-control-plane/pkg/wellknown"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
)

func outboundListenerName(p Proxy) string {
	return fmt.Sprintf("outbound_%s_%d", p.OutboundAddress, p.OutboundPort)
}

// OutboundRouteConfigName is the route configuration of a sidecar without
// scoped routes.
const OutboundRouteConfigName = "outbound"

// singleRouteHCM is the outbound connection manager of a sidecar without
// scoped routes.
var singleRouteHCM = mustAny(buildHCM("outbound", OutboundRouteConfigName))

// buildOutboundListener is sidecar p's outbound listener, with connection
// manager hcm.
func buildOutboundListener(p Proxy, hcm *anypb.Any) *listenerv3.Listener {
	return &listenerv3.Listener{
		Name:    outboundListenerName(p),
		Address: socketAddress(p.OutboundAddress, p.OutboundPort),
		FilterChains: []*listenerv3.FilterChain{{
			Filters: []*listenerv3.Filter{{
				Name:       wellknown.HTTPConnectionManager,
				ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: hcm},
			}},
		}},
	}
}

// hcmEncoder makes the Any of buildHCM(statPrefix, routeConfig), the same
// bytes as mustAny would, for many names, without marshalling each: it
// encodes the names into pieces of the encoding of a connection manager
// with placeholder names, kept in the order Go's encoder gave them.
// Encodings share large buffers. Not safe for concurrent use.
type hcmEncoder struct {
	typeURL string
	// statPrefix, rds and routeConfigName are field numbers.
	statPrefix, rds, routeConfigName protowire.Number
	// pieces are the encoded fields of the connection manager: raw bytes,
	// or stat_prefix or rds to encode.
	pieces []encodedPiece
	// rdsHead and rdsTail are the fields of rds before and after
	// route_config_name.
	rdsHead, rdsTail []byte
	buf              []byte
	anys             slab[anypb.Any]
}

// encodedPiece is raw bytes when field is 0.
type encodedPiece struct {
	raw   []byte
	field protowire.Number
}

// hcmBufferSize is the size of the buffers encodings are cut from.
const hcmBufferSize = 64 << 10

func newHCMEncoder() *hcmEncoder {
	const placeholder = "-"
	template := mustAny(buildHCM(placeholder, placeholder))
	hcmFields := (&hcmv3.HttpConnectionManager{}).ProtoReflect().Descriptor().Fields()
	e := &hcmEncoder{
		typeURL:         template.TypeUrl,
		statPrefix:      hcmFields.ByName("stat_prefix").Number(),
		rds:             hcmFields.ByName("rds").Number(),
		routeConfigName: (&hcmv3.Rds{}).ProtoReflect().Descriptor().Fields().ByName("route_config_name").Number(),
	}
	for _, f := range encodedFields(template.Value) {
		switch f.field {
		case e.statPrefix:
			e.pieces = append(e.pieces, encodedPiece{field: e.statPrefix})
		case e.rds:
			e.pieces = append(e.pieces, encodedPiece{field: e.rds})
			rds, _ := protowire.ConsumeBytes(f.raw[protowire.SizeTag(e.rds):])
			e.rdsHead, e.rdsTail = splitAround(rds, e.routeConfigName)
		default:
			e.pieces = append(e.pieces, encodedPiece{raw: f.raw})
		}
	}
	return e
}

// encodedFields splits an encoded message into its fields, each raw with
// its tag. It panics on a bad encoding: the input is Go's own.
func encodedFields(b []byte) []encodedPiece {
	var out []encodedPiece
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			panic("encoded fields: bad tag")
		}
		m := protowire.ConsumeFieldValue(num, typ, b[n:])
		if m < 0 {
			panic("encoded fields: bad value")
		}
		out = append(out, encodedPiece{raw: b[:n+m], field: num})
		b = b[n+m:]
	}
	return out
}

// splitAround returns the fields of an encoded message before and after
// field num, which it has once.
func splitAround(b []byte, num protowire.Number) (head, tail []byte) {
	var found bool
	for _, f := range encodedFields(b) {
		switch {
		case f.field == num:
			found = true
		case found:
			tail = append(tail, f.raw...)
		default:
			head = append(head, f.raw...)
		}
	}
	return head, tail
}

func (e *hcmEncoder) any(statPrefix, routeConfig string) *anypb.Any {
	rdsLen := len(e.rdsHead) + stringFieldSize(e.routeConfigName, routeConfig) + len(e.rdsTail)
	size := stringFieldSize(e.statPrefix, statPrefix) + protowire.SizeTag(e.rds) + protowire.SizeBytes(rdsLen)
	for _, p := range e.pieces {
		size += len(p.raw)
	}
	if cap(e.buf)-len(e.buf) < size {
		e.buf = make([]byte, 0, max(size, hcmBufferSize))
	}
	b := e.buf
	for _, p := range e.pieces {
		switch p.field {
		case 0:
			b = append(b, p.raw...)
		case e.statPrefix:
			b = appendStringField(b, e.statPrefix, statPrefix)
		case e.rds:
			b = protowire.AppendTag(b, e.rds, protowire.BytesType)
			b = protowire.AppendVarint(b, uint64(rdsLen))
			b = append(b, e.rdsHead...)
			b = appendStringField(b, e.routeConfigName, routeConfig)
			b = append(b, e.rdsTail...)
		}
	}
	value := b[len(e.buf):len(b):len(b)]
	e.buf = b
	a := e.anys.new()
	a.TypeUrl, a.Value = e.typeURL, value
	return a
}

// appendStringField encodes a proto3 string field: nothing when s is "".
func appendStringField(b []byte, num protowire.Number, s string) []byte {
	if s == "" {
		return b
	}
	return protowire.AppendString(protowire.AppendTag(b, num, protowire.BytesType), s)
}

func stringFieldSize(num protowire.Number, s string) int {
	if s == "" {
		return 0
	}
	return protowire.SizeTag(num) + protowire.SizeBytes(len(s))
}

// buildHCM returns an HTTP connection manager that takes its routes over RDS;
// its filters are the fault filter (idle unless a route configures it) and
// the router.
func buildHCM(statPrefix, routeConfig string) *hcmv3.HttpConnectionManager {
	return &hcmv3.HttpConnectionManager{
		StatPrefix: statPrefix,
		CodecType:  hcmv3.HttpConnectionManager_AUTO,
		RouteSpecifier: &hcmv3.HttpConnectionManager_Rds{Rds: &hcmv3.Rds{
			ConfigSource:    adsConfigSource(),
			RouteConfigName: routeConfig,
		}},
		HttpFilters: []*hcmv3.HttpFilter{FaultFilter(), {
			Name:       wellknown.Router,
			ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: mustAny(&routerv3.Router{})},
		}},
	}
}

func socketAddress(address string, port uint32) *corev3.Address {
	return &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
		Address:       address,
		PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: port},
	}}}
}

// mustAny wraps m. It panics only if m is not a registered message type,
// which is a programming error.
func mustAny(m proto.Message) *anypb.Any {
	a := &anypb.Any{}
	if err := anypb.MarshalFrom(a, m, proto.MarshalOptions{Deterministic: true}); err != nil {
		panic(fmt.Sprintf("marshal %T: %v", m, err))
	}
	return a
}
