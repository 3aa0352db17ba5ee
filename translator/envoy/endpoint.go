package envoy

import (
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/weir-mesh/weir/translator/ir"
)

// buildLoadAssignment groups a cluster's endpoints by zone. Every locality
// has weight 1: proxyless gRPC drops localities without a weight.
func buildLoadAssignment(c ir.Cluster) *endpointv3.ClusterLoadAssignment {
	var alloc endpointAllocator
	return alloc.loadAssignment(&c)
}

// endpointAllocator builds load assignments, taking their many small
// messages (seven per endpoint) and lists from slabs. Their localities share one
// weight message. Not safe for concurrent use; the zero value is ready.
type endpointAllocator struct {
	assignments slab[endpointv3.ClusterLoadAssignment]
	localities  slab[endpointv3.LocalityLbEndpoints]
	lbEndpoints slab[endpointv3.LbEndpoint]
	hosts       slab[endpointv3.LbEndpoint_Endpoint]
	endpoints   slab[endpointv3.Endpoint]
	addresses   slab[corev3.Address]
	sockets     slab[corev3.Address_SocketAddress]
	socketAddrs slab[corev3.SocketAddress]
	ports       slab[corev3.SocketAddress_PortValue]
	zones       slab[corev3.Locality]
	// Lists of localities and of endpoints.
	localityLists slab[*endpointv3.LocalityLbEndpoints]
	lbLists       slab[*endpointv3.LbEndpoint]
	// localityWeight is the weight of every locality, made on first use and
	// shared: callers must not modify it.
	localityWeight *wrapperspb.UInt32Value
}

// loadAssignment is buildLoadAssignment(*c).
func (a *endpointAllocator) loadAssignment(c *ir.Cluster) *endpointv3.ClusterLoadAssignment {
	cla := a.assignments.new()
	cla.ClusterName = c.Name
	if zones := zoneCount(c.Endpoints); zones > 0 {
		cla.Endpoints = a.localityLists.slice(zones)[:0]
	}
	var cur *endpointv3.LocalityLbEndpoints
	for i := range c.Endpoints {
		ep := &c.Endpoints[i]
		if i == 0 || ep.Zone != c.Endpoints[i-1].Zone {
			cur = a.locality(ep.Zone, zoneSize(c.Endpoints[i:]))
			cla.Endpoints = append(cla.Endpoints, cur)
		}
		cur.LbEndpoints = append(cur.LbEndpoints, a.lbEndpoint(ep))
	}
	return cla
}

// zoneCount is how many runs of endpoints of one zone eps has.
func zoneCount(eps []ir.Endpoint) int {
	n := 0
	for i := range eps {
		if i == 0 || eps[i].Zone != eps[i-1].Zone {
			n++
		}
	}
	return n
}

// zoneSize is how many of eps, from the first, share its zone.
func zoneSize(eps []ir.Endpoint) int {
	n := 1
	for n < len(eps) && eps[n].Zone == eps[0].Zone {
		n++
	}
	return n
}

func (a *endpointAllocator) locality(zone string, size int) *endpointv3.LocalityLbEndpoints {
	l := a.localities.new()
	l.Locality = a.zones.new()
	l.Locality.Zone = zone
	if a.localityWeight == nil {
		a.localityWeight = wrapperspb.UInt32(1)
	}
	l.LoadBalancingWeight = a.localityWeight
	l.LbEndpoints = a.lbLists.slice(size)[:0]
	return l
}

func (a *endpointAllocator) lbEndpoint(ep *ir.Endpoint) *endpointv3.LbEndpoint {
	port := a.ports.new()
	port.PortValue = ep.Port
	sa := a.socketAddrs.new()
	sa.Address, sa.PortSpecifier = ep.Address, port
	sock := a.sockets.new()
	sock.SocketAddress = sa
	addr := a.addresses.new()
	addr.Address = sock
	e := a.endpoints.new()
	e.Address = addr
	host := a.hosts.new()
	host.Endpoint = e
	lb := a.lbEndpoints.new()
	lb.HostIdentifier, lb.HealthStatus = host, corev3.HealthStatus_HEALTHY
	return lb
}
