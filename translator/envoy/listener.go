package envoy

import (
	"fmt"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routerv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"github.com/envoyproxy/go-control-plane/pkg/wellknown"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
)

// OutboundRouteConfigName is the sidecar's single route configuration.
const OutboundRouteConfigName = "outbound"

func outboundListenerName(p Proxy) string {
	return fmt.Sprintf("outbound_%s_%d", p.OutboundAddress, p.OutboundPort)
}

func buildOutboundListener(p Proxy) *listenerv3.Listener {
	return &listenerv3.Listener{
		Name:    outboundListenerName(p),
		Address: socketAddress(p.OutboundAddress, p.OutboundPort),
		FilterChains: []*listenerv3.FilterChain{{
			Filters: []*listenerv3.Filter{{
				Name:       wellknown.HTTPConnectionManager,
				ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: mustAny(buildHCM("outbound", OutboundRouteConfigName))},
			}},
		}},
	}
}

// hcmEncoder makes the Any of buildHCM(statPrefix, routeConfig), the same
// bytes as mustAny would, for many names: the connection manager is made
// once and its encodings share large buffers. Not safe for concurrent use.
type hcmEncoder struct {
	hcm     *hcmv3.HttpConnectionManager
	rds     *hcmv3.Rds
	typeURL string
	buf     []byte
	anys    slab[anypb.Any]
}

// hcmBufferSize is the size of the buffers encodings are cut from.
const hcmBufferSize = 64 << 10

func newHCMEncoder() *hcmEncoder {
	hcm := buildHCM("", "")
	return &hcmEncoder{hcm: hcm, rds: hcm.GetRds(), typeURL: mustAny(hcm).TypeUrl}
}

func (e *hcmEncoder) any(statPrefix, routeConfig string) *anypb.Any {
	e.hcm.StatPrefix, e.rds.RouteConfigName = statPrefix, routeConfig
	opts := proto.MarshalOptions{Deterministic: true}
	size := opts.Size(e.hcm)
	if cap(e.buf)-len(e.buf) < size {
		e.buf = make([]byte, 0, max(size, hcmBufferSize))
	}
	opts.UseCachedSize = true
	out, err := opts.MarshalAppend(e.buf, e.hcm)
	if err != nil {
		panic(fmt.Sprintf("marshal %T: %v", e.hcm, err))
	}
	value := out[len(e.buf):len(out):len(out)]
	e.buf = out
	a := e.anys.new()
	a.TypeUrl, a.Value = e.typeURL, value
	return a
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
