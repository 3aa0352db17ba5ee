package envoy

import (
	"slices"

	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"

	"github.com/weir-mesh/weir/translator/ir"
)

// grpcAllocator builds the gRPC role's resources, an API listener and a
// route configuration per host, from slabs. Their virtual hosts share one
// list of domains: callers must not modify them. Not safe for concurrent
// use.
type grpcAllocator struct {
	enc          *hcmEncoder
	listeners    slab[listenerv3.Listener]
	apiListeners slab[listenerv3.ApiListener]
	configs      hostConfigAllocator
}

func newGRPCAllocator() *grpcAllocator {
	return &grpcAllocator{enc: newHCMEncoder()}
}

// apiListener is what a proxyless gRPC client asks for when it dials
// xds:///<host name>.
func (a *grpcAllocator) apiListener(h ir.Host) *listenerv3.Listener {
	api := a.apiListeners.new()
	api.ApiListener = a.enc.any(h.Name, h.Name)
	l := a.listeners.new()
	l.Name, l.ApiListener = h.Name, api
	return l
}

// apiRouteConfig is the route configuration of a gRPC API listener; it
// shares routes, h's. grpc-go sets up a cluster only when a route names it,
// and fails the first RPCs a route sends to a cluster it has just set up; a
// standby route, which no request reaches, makes it set up weight-0 backends
// ahead of time.
func (a *grpcAllocator) apiRouteConfig(h ir.Host, routes []*routev3.Route) *routev3.RouteConfiguration {
	if len(h.Standby) > 0 {
		routes = append(slices.Clip(routes), buildStandbyRoute(h.Standby))
	}
	return a.configs.routeConfig(h, routes)
}
