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
	cla := &endpointv3.ClusterLoadAssignment{ClusterName: c.Name}
	var cur *endpointv3.LocalityLbEndpoints
	for i, ep := range c.Endpoints {
		if i == 0 || ep.Zone != c.Endpoints[i-1].Zone {
			cur = &endpointv3.LocalityLbEndpoints{
				Locality:            &corev3.Locality{Zone: ep.Zone},
				LoadBalancingWeight: wrapperspb.UInt32(1),
			}
			cla.Endpoints = append(cla.Endpoints, cur)
		}
		cur.LbEndpoints = append(cur.LbEndpoints, buildLbEndpoint(ep))
	}
	return cla
}

func buildLbEndpoint(ep ir.Endpoint) *endpointv3.LbEndpoint {
	return &endpointv3.LbEndpoint{
		HostIdentifier: &endpointv3.LbEndpoint_Endpoint{Endpoint: &endpointv3.Endpoint{
			Address: socketAddress(ep.Address, ep.Port),
		}},
		HealthStatus: corev3.HealthStatus_HEALTHY,
	}
}
