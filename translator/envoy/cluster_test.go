package envoy

import (
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	httpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/testing/protocmp"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/weir-mesh/weir/translator/ir"
)

// edsCluster is what a zero ClusterPolicy gives.
func edsCluster(name string) *clusterv3.Cluster {
	return &clusterv3.Cluster{
		Name:                 name,
		ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_EDS},
		EdsClusterConfig:     &clusterv3.Cluster_EdsClusterConfig{EdsConfig: adsConfigSource()},
		ConnectTimeout:       durationpb.New(time.Second),
		LbPolicy:             clusterv3.Cluster_ROUND_ROBIN,
	}
}

func withOptions(c *clusterv3.Cluster, o *httpv3.HttpProtocolOptions) *clusterv3.Cluster {
	c.TypedExtensionProtocolOptions = map[string]*anypb.Any{"envoy.extensions.upstreams.http.v3.HttpProtocolOptions": mustAny(o)}
	return c
}

func TestBuildCluster(t *testing.T) {
	tests := map[string]struct {
		in   ir.Cluster
		want *clusterv3.Cluster
	}{
		"zero policy": {in: ir.Cluster{Name: "c", Protocol: ir.HTTP1}, want: edsCluster("c")},
		"http2":       {in: ir.Cluster{Name: "c", Protocol: ir.HTTP2}, want: withOptions(edsCluster("c"), http2Options())},
		"least request and connect timeout": {
			in: ir.Cluster{Name: "c", Policy: ir.ClusterPolicy{LB: ir.LeastRequest, ConnectTimeout: ir.Duration(250 * time.Millisecond)}},
			want: func() *clusterv3.Cluster {
				c := edsCluster("c")
				c.LbPolicy = clusterv3.Cluster_LEAST_REQUEST
				c.ConnectTimeout = durationpb.New(250 * time.Millisecond)
				return c
			}(),
		},
		"random": {
			in:   ir.Cluster{Name: "c", Policy: ir.ClusterPolicy{LB: ir.Random}},
			want: func() *clusterv3.Cluster { c := edsCluster("c"); c.LbPolicy = clusterv3.Cluster_RANDOM; return c }(),
		},
		"ring hash": {
			in: ir.Cluster{Name: "c", Policy: ir.ClusterPolicy{LB: ir.RingHash}},
			want: func() *clusterv3.Cluster {
				c := edsCluster("c")
				c.LbPolicy = clusterv3.Cluster_RING_HASH
				c.LbConfig = &clusterv3.Cluster_RingHashLbConfig_{RingHashLbConfig: &clusterv3.Cluster_RingHashLbConfig{}}
				return c
			}(),
		},
		"circuit breakers set only what is given": {
			in: ir.Cluster{Name: "c", Policy: ir.ClusterPolicy{MaxConnections: 10, MaxRetries: 3}},
			want: func() *clusterv3.Cluster {
				c := edsCluster("c")
				c.CircuitBreakers = &clusterv3.CircuitBreakers{Thresholds: []*clusterv3.CircuitBreakers_Thresholds{{
					MaxConnections: wrapperspb.UInt32(10),
					MaxRetries:     wrapperspb.UInt32(3),
				}}}
				return c
			}(),
		},
		"max requests per connection over http1": {
			in: ir.Cluster{Name: "c", Policy: ir.ClusterPolicy{MaxRequestsPerConnection: 1}},
			want: withOptions(edsCluster("c"), &httpv3.HttpProtocolOptions{
				CommonHttpProtocolOptions: &corev3.HttpProtocolOptions{MaxRequestsPerConnection: wrapperspb.UInt32(1)},
				UpstreamProtocolOptions: &httpv3.HttpProtocolOptions_ExplicitHttpConfig_{ExplicitHttpConfig: &httpv3.HttpProtocolOptions_ExplicitHttpConfig{
					ProtocolConfig: &httpv3.HttpProtocolOptions_ExplicitHttpConfig_HttpProtocolOptions{HttpProtocolOptions: &corev3.Http1ProtocolOptions{}},
				}},
			}),
		},
		"max requests per connection keeps http2": {
			in: ir.Cluster{Name: "c", Protocol: ir.HTTP2, Policy: ir.ClusterPolicy{MaxRequestsPerConnection: 100}},
			want: withOptions(edsCluster("c"), &httpv3.HttpProtocolOptions{
				CommonHttpProtocolOptions: &corev3.HttpProtocolOptions{MaxRequestsPerConnection: wrapperspb.UInt32(100)},
				UpstreamProtocolOptions: &httpv3.HttpProtocolOptions_ExplicitHttpConfig_{ExplicitHttpConfig: &httpv3.HttpProtocolOptions_ExplicitHttpConfig{
					ProtocolConfig: &httpv3.HttpProtocolOptions_ExplicitHttpConfig_Http2ProtocolOptions{Http2ProtocolOptions: &corev3.Http2ProtocolOptions{}},
				}},
			}),
		},
		"outlier detection": {
			in: ir.Cluster{Name: "c", Policy: ir.ClusterPolicy{Outlier: &ir.OutlierDetection{
				Consecutive5xx: 5, ConsecutiveGatewayErrors: 3, Interval: ir.Duration(10 * time.Second),
				BaseEjectionTime: ir.Duration(30 * time.Second), MaxEjectionPercent: 50,
			}}},
			want: func() *clusterv3.Cluster {
				c := edsCluster("c")
				c.OutlierDetection = &clusterv3.OutlierDetection{
					Consecutive_5Xx:                    wrapperspb.UInt32(5),
					ConsecutiveGatewayFailure:          wrapperspb.UInt32(3),
					EnforcingConsecutiveGatewayFailure: wrapperspb.UInt32(100),
					Interval:                           durationpb.New(10 * time.Second),
					BaseEjectionTime:                   durationpb.New(30 * time.Second),
					MaxEjectionPercent:                 wrapperspb.UInt32(50),
				}
				return c
			}(),
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got := buildCluster(tc.in)
			if diff := cmp.Diff(tc.want, got, protocmp.Transform()); diff != "" {
				t.Errorf("buildCluster (-want +got):\n%s", diff)
			}
			if err := got.ValidateAll(); err != nil {
				t.Errorf("ValidateAll: %v", err)
			}
			for k, a := range got.TypedExtensionProtocolOptions {
				var o httpv3.HttpProtocolOptions
				if err := a.UnmarshalTo(&o); err != nil {
					t.Fatalf("%s: %v", k, err)
				}
				if err := o.ValidateAll(); err != nil {
					t.Errorf("%s: ValidateAll: %v", k, err)
				}
			}
		})
	}
}
