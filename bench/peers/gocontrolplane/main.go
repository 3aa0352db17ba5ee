// Command gocontrolplane is a plain go-control-plane snapshot server, the
// way its examples build one: on every change it rebuilds every resource
// under one new version and sets that snapshot for every node it knows. It
// serves N services, each a route with two weighted EDS clusters of three
// endpoints, on one listener, to state-of-the-world ADS clients.
//
// It prints {"xds": ADDR, "admin": ADDR} on its first line, then serves
// until killed. POST /weight?service=I&v1=W1&v2=W2 on the admin address
// changes a split and returns once every node's snapshot is set.
//
// It is a module of its own, never part of weir's build.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"strconv"
	"sync"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	routerv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	cachev3 "github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	serverv3 "github.com/envoyproxy/go-control-plane/pkg/server/v3"
	"github.com/envoyproxy/go-control-plane/pkg/wellknown"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

func main() {
	services := flag.Int("services", 1000, "services, each routed 90/10 to two clusters")
	flag.Parse()
	if err := run(*services); err != nil {
		log.Fatal(err)
	}
}

// plane is the control plane: the weights, the cache and the nodes seen.
type plane struct {
	services int
	cache    cachev3.SnapshotCache

	mu      sync.Mutex
	weights map[int][2]uint32
	version int
	snap    *cachev3.Snapshot
	nodes   map[string]bool
}

func run(services int) error {
	p := &plane{services: services, cache: cachev3.NewSnapshotCache(false, cachev3.IDHash{}, nil),
		weights: map[int][2]uint32{}, nodes: map[string]bool{}}
	if err := p.rebuild(); err != nil {
		return err
	}
	ctx := context.Background()
	cb := serverv3.CallbackFuncs{StreamRequestFunc: func(_ int64, req *discoveryv3.DiscoveryRequest) error {
		if id := req.GetNode().GetId(); id != "" {
			p.mu.Lock()
			defer p.mu.Unlock()
			if !p.nodes[id] {
				p.nodes[id] = true
				return p.cache.SetSnapshot(ctx, id, p.snap)
			}
		}
		return nil
	}}
	gs := grpc.NewServer(grpc.MaxConcurrentStreams(1000))
	discoveryv3.RegisterAggregatedDiscoveryServiceServer(gs, serverv3.NewServer(ctx, p.cache, cb))
	xl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	al, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/weight", p.setWeight)
	go func() { log.Fatal(http.Serve(al, mux)) }()
	if err := json.NewEncoder(os.Stdout).Encode(map[string]string{"xds": xl.Addr().String(), "admin": al.Addr().String()}); err != nil {
		return err
	}
	return gs.Serve(xl)
}

func (p *plane) setWeight(w http.ResponseWriter, r *http.Request) {
	i, err1 := strconv.Atoi(r.FormValue("service"))
	v1, err2 := strconv.Atoi(r.FormValue("v1"))
	v2, err3 := strconv.Atoi(r.FormValue("v2"))
	if err1 != nil || err2 != nil || err3 != nil {
		http.Error(w, "want service, v1 and v2 as integers", http.StatusBadRequest)
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.weights[i] = [2]uint32{uint32(v1), uint32(v2)}
	if err := p.rebuild(); err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	for id := range p.nodes {
		if err := p.cache.SetSnapshot(r.Context(), id, p.snap); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
	}
}

// rebuild makes every resource anew under the next version.
func (p *plane) rebuild() error {
	p.version++
	var clusters, endpoints []types.Resource
	rc := &routev3.RouteConfiguration{Name: "outbound"}
	for i := range p.services {
		w, ok := p.weights[i]
		if !ok {
			w = [2]uint32{90, 10}
		}
		wc := &routev3.WeightedCluster{}
		for v := 1; v <= 2; v++ {
			name := fmt.Sprintf("outbound|8080||svc-%05d-v%d.bench.svc.cluster.local", i, v)
			clusters = append(clusters, cluster(name))
			endpoints = append(endpoints, assignment(name, i, v))
			wc.Clusters = append(wc.Clusters, &routev3.WeightedCluster_ClusterWeight{Name: name, Weight: wrapperspb.UInt32(w[v-1])})
		}
		host := fmt.Sprintf("svc-%05d.bench.svc.cluster.local", i)
		rc.VirtualHosts = append(rc.VirtualHosts, &routev3.VirtualHost{
			Name:    host + ":8080",
			Domains: []string{host + ":8080", host, fmt.Sprintf("svc-%05d.bench:8080", i)},
			Routes: []*routev3.Route{{
				Match:  &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}},
				Action: &routev3.Route_Route{Route: &routev3.RouteAction{ClusterSpecifier: &routev3.RouteAction_WeightedClusters{WeightedClusters: wc}}},
			}},
		})
	}
	l, err := listener()
	if err != nil {
		return err
	}
	snap, err := cachev3.NewSnapshot(strconv.Itoa(p.version), map[resourcev3.Type][]types.Resource{
		resourcev3.ClusterType:  clusters,
		resourcev3.EndpointType: endpoints,
		resourcev3.ListenerType: {l},
		resourcev3.RouteType:    {rc},
	})
	if err != nil {
		return err
	}
	if err := snap.Consistent(); err != nil {
		return err
	}
	p.snap = snap
	return nil
}

func ads() *corev3.ConfigSource {
	return &corev3.ConfigSource{ResourceApiVersion: corev3.ApiVersion_V3, ConfigSourceSpecifier: &corev3.ConfigSource_Ads{Ads: &corev3.AggregatedConfigSource{}}}
}

func cluster(name string) *clusterv3.Cluster {
	return &clusterv3.Cluster{
		Name:                 name,
		ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_EDS},
		EdsClusterConfig:     &clusterv3.Cluster_EdsClusterConfig{EdsConfig: ads()},
		ConnectTimeout:       durationpb.New(time.Second),
	}
}

func assignment(name string, i, v int) *endpointv3.ClusterLoadAssignment {
	la := &endpointv3.LocalityLbEndpoints{}
	for e := range 3 {
		la.LbEndpoints = append(la.LbEndpoints, &endpointv3.LbEndpoint{HostIdentifier: &endpointv3.LbEndpoint_Endpoint{Endpoint: &endpointv3.Endpoint{
			Address: &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
				Address: fmt.Sprintf("10.%d.%d.%d", v*16+e, i/256%256, i%256), PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: 8080},
			}}},
		}}})
	}
	return &endpointv3.ClusterLoadAssignment{ClusterName: name, Endpoints: []*endpointv3.LocalityLbEndpoints{la}}
}

func listener() (*listenerv3.Listener, error) {
	router, err := anypb.New(&routerv3.Router{})
	if err != nil {
		return nil, err
	}
	hcm, err := anypb.New(&hcmv3.HttpConnectionManager{
		StatPrefix:     "outbound",
		RouteSpecifier: &hcmv3.HttpConnectionManager_Rds{Rds: &hcmv3.Rds{ConfigSource: ads(), RouteConfigName: "outbound"}},
		HttpFilters:    []*hcmv3.HttpFilter{{Name: wellknown.Router, ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: router}}},
	})
	if err != nil {
		return nil, err
	}
	return &listenerv3.Listener{
		Name:         "outbound",
		Address:      &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{Address: "127.0.0.1", PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: 15001}}}},
		FilterChains: []*listenerv3.FilterChain{{Filters: []*listenerv3.Filter{{Name: wellknown.HTTPConnectionManager, ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: hcm}}}}},
	}, nil
}
