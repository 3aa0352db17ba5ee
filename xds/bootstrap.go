package xds

import (
	"encoding/json"
	"fmt"
	"net"
	"strconv"
	"time"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	httpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/structpb"
	"sigs.k8s.io/yaml"

	"github.com/weir-mesh/weir/translator/envoy"
)

// xdsClusterName is the static cluster an Envoy reaches weir through.
const xdsClusterName = "weir-xds"

// BootstrapOptions describe the node a bootstrap is for.
type BootstrapOptions struct {
	NodeID    string
	Role      envoy.Role
	Namespace string
	// XDSAddr is weir's ADS address, host:port.
	XDSAddr string
	// AdminAddress and AdminPort are Envoy's admin listener.
	AdminAddress string
	AdminPort    uint32
	// OutboundPort, if set, is sent as weir.outbound_port.
	OutboundPort uint32
	// ScopedRoutes, for a sidecar, is sent as weir.scoped_routes: true.
	ScopedRoutes bool
	// Delta makes Envoy use incremental xDS (DELTA_GRPC): only changed
	// resources go on the wire.
	Delta bool
	// Labels, for a gateway, pick the servers (Istio Gateway selectors) it
	// serves; sent as weir.labels.
	Labels map[string]string
	// GatewayAddress, if set, is where a gateway's listeners bind; sent as
	// weir.gateway_address.
	GatewayAddress string
}

func (o BootstrapOptions) metadata() map[string]any {
	md := map[string]any{MetaRole: string(o.Role)}
	if o.Namespace != "" {
		md[MetaNamespace] = o.Namespace
	}
	if o.OutboundPort != 0 {
		md[MetaOutboundPort] = strconv.Itoa(int(o.OutboundPort))
	}
	if len(o.Labels) > 0 {
		labels := map[string]any{}
		for k, v := range o.Labels {
			labels[k] = v
		}
		md[MetaLabels] = labels
	}
	if o.GatewayAddress != "" {
		md[MetaGatewayAddress] = o.GatewayAddress
	}
	if o.ScopedRoutes {
		md[MetaScopedRoutes] = "true"
	}
	return md
}

func (o BootstrapOptions) check() (string, uint32, error) {
	if o.NodeID == "" {
		return "", 0, fmt.Errorf("bootstrap: node id is empty")
	}
	host, portStr, err := net.SplitHostPort(o.XDSAddr)
	if err != nil {
		return "", 0, fmt.Errorf("bootstrap: xds address %q: %w", o.XDSAddr, err)
	}
	port, err := strconv.ParseUint(portStr, 10, 16)
	if err != nil {
		return "", 0, fmt.Errorf("bootstrap: xds address %q: bad port", o.XDSAddr)
	}
	return host, uint32(port), nil
}

// EnvoyBootstrap returns a YAML bootstrap that makes an Envoy fetch all of
// its listeners and clusters from weir over ADS.
func EnvoyBootstrap(o BootstrapOptions) ([]byte, error) {
	host, port, err := o.check()
	if err != nil {
		return nil, err
	}
	md, err := structpb.NewStruct(o.metadata())
	if err != nil {
		return nil, fmt.Errorf("bootstrap: metadata: %w", err)
	}
	apiType := corev3.ApiConfigSource_GRPC
	if o.Delta {
		apiType = corev3.ApiConfigSource_DELTA_GRPC
	}
	b := &bootstrapv3.Bootstrap{
		Node: &corev3.Node{Id: o.NodeID, Cluster: "weir-" + string(o.Role), Metadata: md},
		Admin: &bootstrapv3.Admin{Address: &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
			Address: o.AdminAddress, PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: o.AdminPort},
		}}}},
		DynamicResources: &bootstrapv3.Bootstrap_DynamicResources{
			AdsConfig: &corev3.ApiConfigSource{
				ApiType:                   apiType,
				TransportApiVersion:       corev3.ApiVersion_V3,
				SetNodeOnFirstMessageOnly: true,
				GrpcServices: []*corev3.GrpcService{{TargetSpecifier: &corev3.GrpcService_EnvoyGrpc_{
					EnvoyGrpc: &corev3.GrpcService_EnvoyGrpc{ClusterName: xdsClusterName},
				}}},
			},
			CdsConfig: adsSource(),
			LdsConfig: adsSource(),
		},
		StaticResources: &bootstrapv3.Bootstrap_StaticResources{Clusters: []*clusterv3.Cluster{xdsCluster(host, port)}},
	}
	if err := b.ValidateAll(); err != nil {
		return nil, fmt.Errorf("bootstrap: %w", err)
	}
	j, err := protojson.MarshalOptions{UseProtoNames: true}.Marshal(b)
	if err != nil {
		return nil, fmt.Errorf("bootstrap: marshal: %w", err)
	}
	return yaml.JSONToYAML(j)
}

func adsSource() *corev3.ConfigSource {
	return &corev3.ConfigSource{
		ResourceApiVersion:    corev3.ApiVersion_V3,
		ConfigSourceSpecifier: &corev3.ConfigSource_Ads{Ads: &corev3.AggregatedConfigSource{}},
	}
}

// xdsCluster reaches weir over HTTP/2; a host name is resolved by DNS.
func xdsCluster(host string, port uint32) *clusterv3.Cluster {
	discovery := clusterv3.Cluster_STATIC
	if net.ParseIP(host) == nil {
		discovery = clusterv3.Cluster_STRICT_DNS
	}
	h2 := &httpv3.HttpProtocolOptions{UpstreamProtocolOptions: &httpv3.HttpProtocolOptions_ExplicitHttpConfig_{
		ExplicitHttpConfig: &httpv3.HttpProtocolOptions_ExplicitHttpConfig{
			ProtocolConfig: &httpv3.HttpProtocolOptions_ExplicitHttpConfig_Http2ProtocolOptions{Http2ProtocolOptions: &corev3.Http2ProtocolOptions{}},
		},
	}}
	opts, _ := anypb.New(h2) // a registered message type always marshals
	return &clusterv3.Cluster{
		Name:                          xdsClusterName,
		ClusterDiscoveryType:          &clusterv3.Cluster_Type{Type: discovery},
		ConnectTimeout:                durationpb.New(time.Second),
		TypedExtensionProtocolOptions: map[string]*anypb.Any{"envoy.extensions.upstreams.http.v3.HttpProtocolOptions": opts},
		LoadAssignment: &endpointv3.ClusterLoadAssignment{
			ClusterName: xdsClusterName,
			Endpoints: []*endpointv3.LocalityLbEndpoints{{LbEndpoints: []*endpointv3.LbEndpoint{{
				HostIdentifier: &endpointv3.LbEndpoint_Endpoint{Endpoint: &endpointv3.Endpoint{
					Address: &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
						Address: host, PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: port},
					}}},
				}},
			}}}},
		},
	}
}

// GRPCBootstrap returns the JSON bootstrap grpc-go reads (GRPC_XDS_BOOTSTRAP
// or GRPC_XDS_BOOTSTRAP_CONFIG) to fetch its configuration from weir.
func GRPCBootstrap(o BootstrapOptions) ([]byte, error) {
	if _, _, err := o.check(); err != nil {
		return nil, err
	}
	type creds struct {
		Type string `json:"type"`
	}
	type server struct {
		ServerURI      string   `json:"server_uri"`
		ChannelCreds   []creds  `json:"channel_creds"`
		ServerFeatures []string `json:"server_features"`
	}
	type node struct {
		ID       string         `json:"id"`
		Cluster  string         `json:"cluster"`
		Metadata map[string]any `json:"metadata"`
	}
	doc := struct {
		XDSServers []server `json:"xds_servers"`
		Node       node     `json:"node"`
	}{
		XDSServers: []server{{ServerURI: o.XDSAddr, ChannelCreds: []creds{{Type: "insecure"}}, ServerFeatures: []string{"xds_v3"}}},
		Node:       node{ID: o.NodeID, Cluster: "weir-" + string(o.Role), Metadata: o.metadata()},
	}
	return json.MarshalIndent(doc, "", "  ")
}
