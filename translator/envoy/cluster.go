package envoy

import (
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	httpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/weir-mesh/weir/translator/ir"
)

const (
	connectTimeout = time.Second
	// httpProtocolOptionsName is the extension key Envoy reads upstream HTTP
	// protocol options from.
	httpProtocolOptionsName = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"
)

// buildCluster returns an EDS cluster fed over ADS, shaped by c.Policy.
func buildCluster(c ir.Cluster) *clusterv3.Cluster {
	cl := &clusterv3.Cluster{
		ClusterDiscoveryType: edsType(),
		EdsClusterConfig:     adsEDSConfig(),
		ConnectTimeout:       buildConnectTimeout(c.Policy.ConnectTimeout),
	}
	applyClusterPolicy(cl, &c)
	return cl
}

func edsType() *clusterv3.Cluster_Type {
	return &clusterv3.Cluster_Type{Type: clusterv3.Cluster_EDS}
}

func adsEDSConfig() *clusterv3.Cluster_EdsClusterConfig {
	return &clusterv3.Cluster_EdsClusterConfig{EdsConfig: adsConfigSource()}
}

// applyClusterPolicy sets cl's name and what c's protocol and policy shape,
// but its connect timeout.
func applyClusterPolicy(cl *clusterv3.Cluster, c *ir.Cluster) {
	p := &c.Policy
	cl.Name = c.Name
	cl.CircuitBreakers = buildCircuitBreakers(*p)
	cl.OutlierDetection = buildOutlierDetection(p.Outlier)
	applyLBPolicy(cl, p.LB)
	if opts := buildHTTPProtocolOptions(c.Protocol, p.MaxRequestsPerConnection); opts != nil {
		cl.TypedExtensionProtocolOptions = map[string]*anypb.Any{httpProtocolOptionsName: mustAny(opts)}
	}
}

// clusterAllocator builds clusters from a slab. The clusters it builds share
// their discovery type, EDS configuration and (when it is the default) their
// connect timeout: callers must not modify them. Not safe for concurrent
// use; the zero value is ready.
type clusterAllocator struct {
	clusters slab[clusterv3.Cluster]
	// Shared messages, made on first use.
	edsType        *clusterv3.Cluster_Type
	edsConfig      *clusterv3.Cluster_EdsClusterConfig
	defaultTimeout *durationpb.Duration
}

// cluster is buildCluster(*c).
func (a *clusterAllocator) cluster(c *ir.Cluster) *clusterv3.Cluster {
	if a.edsType == nil {
		a.edsType, a.edsConfig, a.defaultTimeout = edsType(), adsEDSConfig(), buildConnectTimeout(0)
	}
	cl := a.clusters.new()
	cl.ClusterDiscoveryType, cl.EdsClusterConfig = a.edsType, a.edsConfig
	cl.ConnectTimeout = a.defaultTimeout
	if c.Policy.ConnectTimeout > 0 {
		cl.ConnectTimeout = buildConnectTimeout(c.Policy.ConnectTimeout)
	}
	applyClusterPolicy(cl, c)
	return cl
}

// buildConnectTimeout is d, or connectTimeout when d is not a positive
// duration.
func buildConnectTimeout(d ir.Duration) *durationpb.Duration {
	if d <= 0 {
		return durationpb.New(connectTimeout)
	}
	return durationpb.New(time.Duration(d))
}

// applyLBPolicy sets cl's load balancer; ring hash uses Envoy's default
// ring sizes. Unknown policies are round robin.
func applyLBPolicy(cl *clusterv3.Cluster, lb ir.LBPolicy) {
	switch lb {
	case ir.LeastRequest:
		cl.LbPolicy = clusterv3.Cluster_LEAST_REQUEST
	case ir.Random:
		cl.LbPolicy = clusterv3.Cluster_RANDOM
	case ir.RingHash:
		cl.LbPolicy = clusterv3.Cluster_RING_HASH
		cl.LbConfig = &clusterv3.Cluster_RingHashLbConfig_{RingHashLbConfig: &clusterv3.Cluster_RingHashLbConfig{}}
	default:
		cl.LbPolicy = clusterv3.Cluster_ROUND_ROBIN
	}
}

// buildCircuitBreakers returns default-priority thresholds with the
// policy's non-zero limits, or nil when none is set.
func buildCircuitBreakers(p ir.ClusterPolicy) *clusterv3.CircuitBreakers {
	if p.MaxConnections+p.MaxPendingRequests+p.MaxRequests+p.MaxRetries == 0 {
		return nil
	}
	return &clusterv3.CircuitBreakers{Thresholds: []*clusterv3.CircuitBreakers_Thresholds{{
		Priority:           corev3.RoutingPriority_DEFAULT,
		MaxConnections:     optionalUInt32(p.MaxConnections),
		MaxPendingRequests: optionalUInt32(p.MaxPendingRequests),
		MaxRequests:        optionalUInt32(p.MaxRequests),
		MaxRetries:         optionalUInt32(p.MaxRetries),
	}}}
}

// optionalUInt32 is nil for 0 (not set).
func optionalUInt32(v uint32) *wrapperspb.UInt32Value {
	if v == 0 {
		return nil
	}
	return wrapperspb.UInt32(v)
}

// buildOutlierDetection returns nil for nil. Envoy does not eject on
// gateway errors unless told to enforce it, so a set threshold is enforced
// on every ejection.
func buildOutlierDetection(o *ir.OutlierDetection) *clusterv3.OutlierDetection {
	if o == nil {
		return nil
	}
	od := &clusterv3.OutlierDetection{
		Consecutive_5Xx:           optionalUInt32(o.Consecutive5xx),
		ConsecutiveGatewayFailure: optionalUInt32(o.ConsecutiveGatewayErrors),
		Interval:                  buildDuration(o.Interval),
		BaseEjectionTime:          buildDuration(o.BaseEjectionTime),
		MaxEjectionPercent:        optionalUInt32(o.MaxEjectionPercent),
	}
	if o.ConsecutiveGatewayErrors > 0 {
		od.EnforcingConsecutiveGatewayFailure = wrapperspb.UInt32(100)
	}
	return od
}

// buildHTTPProtocolOptions returns nil when Envoy's defaults (HTTP/1.1,
// unlimited requests per connection) apply.
func buildHTTPProtocolOptions(proto ir.Protocol, maxRequestsPerConnection uint32) *httpv3.HttpProtocolOptions {
	if proto != ir.HTTP2 && maxRequestsPerConnection == 0 {
		return nil
	}
	opts := http1Options()
	if proto == ir.HTTP2 {
		opts = http2Options()
	}
	if maxRequestsPerConnection > 0 {
		opts.CommonHttpProtocolOptions = &corev3.HttpProtocolOptions{MaxRequestsPerConnection: wrapperspb.UInt32(maxRequestsPerConnection)}
	}
	return opts
}

func http1Options() *httpv3.HttpProtocolOptions {
	return &httpv3.HttpProtocolOptions{
		UpstreamProtocolOptions: &httpv3.HttpProtocolOptions_ExplicitHttpConfig_{ExplicitHttpConfig: &httpv3.HttpProtocolOptions_ExplicitHttpConfig{
			ProtocolConfig: &httpv3.HttpProtocolOptions_ExplicitHttpConfig_HttpProtocolOptions{HttpProtocolOptions: &corev3.Http1ProtocolOptions{}},
		}},
	}
}

func http2Options() *httpv3.HttpProtocolOptions {
	return &httpv3.HttpProtocolOptions{
		UpstreamProtocolOptions: &httpv3.HttpProtocolOptions_ExplicitHttpConfig_{ExplicitHttpConfig: &httpv3.HttpProtocolOptions_ExplicitHttpConfig{
			ProtocolConfig: &httpv3.HttpProtocolOptions_ExplicitHttpConfig_Http2ProtocolOptions{Http2ProtocolOptions: &corev3.Http2ProtocolOptions{}},
		}},
	}
}
