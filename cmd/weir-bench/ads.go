package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"
)

// The raw ADS clients answer like Envoy (sidecar) or grpc-go (proxyless):
// they subscribe, ACK every response with its version and nonce, and
// follow the references (clusters -> endpoints, listeners -> routes, routes
// -> clusters). They decode only the few fields they follow, so that a
// thousand of them on the machine weir runs on cost little CPU.

// clientKind is how a raw client subscribes.
type clientKind int

const (
	// sidecarSotW is an Envoy sidecar on a state-of-the-world ADS stream:
	// wildcard clusters and listeners, then every cluster's endpoints and
	// the listeners' route configurations by name, or, for a listener with
	// scoped routes, every scope and the scopes' route configurations.
	sidecarSotW clientKind = iota
	// sidecarDelta is the same on a delta (incremental) ADS stream.
	sidecarDelta
	// grpcSotW is a proxyless gRPC client of one target: its API listener,
	// route configuration, and the clusters and endpoints its routes name.
	grpcSotW
)

func (k clientKind) String() string {
	return [...]string{"sidecar SotW", "sidecar delta", "gRPC SotW"}[k]
}

// received is one response as the client saw it.
type received struct {
	at        time.Time
	typeURL   string
	version   string
	bytes     int
	resources int
}

// adsClient is one raw ADS client with a connection of its own.
type adsClient struct {
	id        string
	kind      clientKind
	namespace string
	target    string // grpcSotW: the listener it dials
	conn      *grpc.ClientConn
	cancel    context.CancelFunc
	done      chan struct{}
	// scoped: its listener routes by scopes, which it receives too.
	scoped atomic.Bool

	mu     sync.Mutex
	log    []received
	acked  map[string]string // type URL -> version last ACKed (SotW)
	nacks  int
	err    error
	notify chan struct{} // receives a value after each response (buffer 1)
}

// rawFrame holds a message as it came off the wire.
type rawFrame struct{ b []byte }

// rawCodec sends requests as protobuf and keeps responses as bytes. It is
// named "proto" so that the server sees the usual content type.
type rawCodec struct{}

func (rawCodec) Marshal(v any) (mem.BufferSlice, error) {
	b, err := proto.Marshal(v.(proto.Message))
	if err != nil {
		return nil, err
	}
	return mem.BufferSlice{mem.SliceBuffer(b)}, nil
}

func (rawCodec) Unmarshal(data mem.BufferSlice, v any) error {
	v.(*rawFrame).b = data.Materialize()
	return nil
}

func (rawCodec) Name() string { return "proto" }

var (
	sotwDesc  = &grpc.StreamDesc{StreamName: "StreamAggregatedResources", ServerStreams: true, ClientStreams: true}
	deltaDesc = &grpc.StreamDesc{StreamName: "DeltaAggregatedResources", ServerStreams: true, ClientStreams: true}
)

const (
	sotwMethod  = "/envoy.service.discovery.v3.AggregatedDiscoveryService/StreamAggregatedResources"
	deltaMethod = "/envoy.service.discovery.v3.AggregatedDiscoveryService/DeltaAggregatedResources"
)

// startADSClient connects and starts subscribing; it does not wait for
// anything to arrive.
func startADSClient(addr, id string, kind clientKind, namespace, target string) (*adsClient, error) {
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(1<<30), grpc.ForceCodecV2(rawCodec{})))
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	c := &adsClient{id: id, kind: kind, namespace: namespace, target: target, conn: conn, cancel: cancel,
		done: make(chan struct{}), acked: map[string]string{}, notify: make(chan struct{}, 1)}
	desc, method := sotwDesc, sotwMethod
	if kind == sidecarDelta {
		desc, method = deltaDesc, deltaMethod
	}
	stream, err := conn.NewStream(ctx, desc, method)
	if err != nil {
		cancel()
		conn.Close()
		return nil, err
	}
	go func() {
		defer close(c.done)
		var err error
		if kind == sidecarDelta {
			err = c.runDelta(stream)
		} else {
			err = c.runSotW(stream)
		}
		if err != nil && ctx.Err() == nil {
			c.mu.Lock()
			c.err = err
			c.mu.Unlock()
		}
	}()
	return c, nil
}

// types are the types the client receives.
func (c *adsClient) types() []string {
	if c.scoped.Load() {
		return sidecarTypes
	}
	return allTypes
}

func (c *adsClient) node() *corev3.Node {
	role := "sidecar"
	agent := "envoy"
	// plainSotW, for a peer, passes as a sidecar too.
	if c.kind == grpcSotW {
		role, agent = "grpc", "gRPC Go"
	}
	md, _ := structpb.NewStruct(map[string]any{"weir.role": role, "weir.namespace": c.namespace}) // plain strings always convert
	return &corev3.Node{Id: c.id, Cluster: "bench", Metadata: md, UserAgentName: agent}
}

// close ends the stream and the connection.
func (c *adsClient) close() {
	c.cancel()
	<-c.done
	c.conn.Close()
}

// record notes a response.
func (c *adsClient) record(r received) {
	c.mu.Lock()
	c.log = append(c.log, r)
	c.mu.Unlock()
	select {
	case c.notify <- struct{}{}:
	default:
	}
}

// since returns the responses received at or after t.
func (c *adsClient) since(t time.Time) []received {
	c.mu.Lock()
	defer c.mu.Unlock()
	i := sort.Search(len(c.log), func(i int) bool { return !c.log[i].at.Before(t) })
	return append([]received(nil), c.log[i:]...)
}

// failure returns the stream's error, if it failed.
func (c *adsClient) failure() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// sotwState is what a SotW client follows per type.
type sotwState struct {
	names   []string // subscribed names; nil: wildcard
	version string
	nonce   string
	sent    bool // a request was sent for this type
}

func (c *adsClient) runSotW(stream grpc.ClientStream) error {
	st := map[string]*sotwState{}
	first := true
	send := func(typeURL string) error {
		s := st[typeURL]
		req := &discoveryv3.DiscoveryRequest{TypeUrl: typeURL, VersionInfo: s.version, ResponseNonce: s.nonce, ResourceNames: s.names}
		if first {
			req.Node, first = c.node(), false
		}
		s.sent = true
		return stream.SendMsg(req)
	}
	subscribe := func(typeURL string, names []string) error {
		s := st[typeURL]
		if s == nil {
			s = &sotwState{}
			st[typeURL] = s
		}
		if s.sent && equalStrings(s.names, names) {
			return nil
		}
		s.names = names
		return send(typeURL)
	}
	if c.kind != grpcSotW {
		for _, t := range initialTypes {
			st[t] = &sotwState{}
			if err := send(t); err != nil {
				return err
			}
		}
	} else if err := subscribe(resourcev3.ListenerType, []string{c.target}); err != nil {
		return err
	}
	for {
		var f rawFrame
		if err := stream.RecvMsg(&f); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
		resp, err := parseSotW(f.b)
		if err != nil {
			return err
		}
		s := st[resp.typeURL]
		if s == nil {
			return fmt.Errorf("response of %s, which was not asked for", resp.typeURL)
		}
		follow, err := c.follow(resp.typeURL, resp.resources)
		if err != nil {
			return err
		}
		s.version, s.nonce = resp.version, resp.nonce
		if err := send(resp.typeURL); err != nil { // the ACK
			return err
		}
		c.mu.Lock()
		c.acked[resp.typeURL] = resp.version
		c.mu.Unlock()
		for _, t := range []string{resourcev3.ClusterType, resourcev3.EndpointType, resourcev3.ScopedRouteType, resourcev3.RouteType} {
			if names, ok := follow[t]; ok {
				if err := subscribe(t, names); err != nil {
					return err
				}
			}
		}
		c.record(received{at: time.Now(), typeURL: resp.typeURL, version: resp.version, bytes: len(f.b), resources: len(resp.resources)})
	}
}

// initialTypes are what a sidecar asks for first, without names;
// fullStateTypes are those whose every response (SotW) or every resource
// held (delta) is the whole set.
var (
	initialTypes   = []string{resourcev3.ClusterType, resourcev3.ListenerType}
	fullStateTypes = []string{resourcev3.ClusterType, resourcev3.ListenerType, resourcev3.ScopedRouteType}
)

// follow returns, by type, the names the resources of typeURL refer to
// (nil names for scopes: all of them). A listener with scoped routes
// names scopes, which name route configurations.
func (c *adsClient) follow(typeURL string, resources [][]byte) (map[string][]string, error) {
	out := map[string][]string{}
	switch typeURL {
	case resourcev3.ClusterType:
		for _, r := range resources {
			out[resourcev3.EndpointType] = append(out[resourcev3.EndpointType], firstString(r, 1))
		}
		sort.Strings(out[resourcev3.EndpointType])
	case resourcev3.ListenerType:
		names, scoped, err := listenerRoutes(resources)
		if err != nil {
			return nil, err
		}
		if len(names) > 0 || !scoped {
			out[resourcev3.RouteType] = names
		}
		if scoped {
			c.scoped.Store(true)
			out[resourcev3.ScopedRouteType] = nil
		}
	case resourcev3.ScopedRouteType:
		set := map[string]bool{}
		for _, r := range resources {
			set[firstString(r, scopeRouteConfigField)] = true
		}
		out[resourcev3.RouteType] = sortedSet(set)
	case resourcev3.RouteType:
		if c.kind == grpcSotW {
			names, err := routeClusters(resources)
			if err != nil {
				return nil, err
			}
			out[resourcev3.ClusterType] = names
			out[resourcev3.EndpointType] = names
		}
	}
	return out, nil
}

// scopeRouteConfigField is route_configuration_name of a scope.
const scopeRouteConfigField = 2

// listenerRoutes returns the route configurations the listeners' HTTP
// connection managers name, sorted, and whether one has scoped routes.
func listenerRoutes(resources [][]byte) (names []string, scoped bool, err error) {
	set := map[string]bool{}
	for _, r := range resources {
		var l listenerv3.Listener
		if err := proto.Unmarshal(r, &l); err != nil {
			return nil, false, err
		}
		hcms := []*hcmv3.HttpConnectionManager{}
		if a := l.GetApiListener().GetApiListener(); a != nil {
			h := &hcmv3.HttpConnectionManager{}
			if err := a.UnmarshalTo(h); err != nil {
				return nil, false, err
			}
			hcms = append(hcms, h)
		}
		for _, fc := range l.FilterChains {
			for _, f := range fc.Filters {
				h := &hcmv3.HttpConnectionManager{}
				if tc := f.GetTypedConfig(); tc != nil && tc.UnmarshalTo(h) == nil {
					hcms = append(hcms, h)
				}
			}
		}
		for _, h := range hcms {
			scoped = scoped || h.GetScopedRoutes() != nil
			if n := h.GetRds().GetRouteConfigName(); n != "" {
				set[n] = true
			}
		}
	}
	return sortedSet(set), scoped, nil
}

// routeClusters returns the clusters the route configurations send to.
func routeClusters(resources [][]byte) ([]string, error) {
	set := map[string]bool{}
	for _, r := range resources {
		var rc routev3.RouteConfiguration
		if err := proto.Unmarshal(r, &rc); err != nil {
			return nil, err
		}
		for _, vh := range rc.VirtualHosts {
			for _, rt := range vh.Routes {
				a := rt.GetRoute()
				if c := a.GetCluster(); c != "" {
					set[c] = true
				}
				for _, wc := range a.GetWeightedClusters().GetClusters() {
					set[wc.Name] = true
				}
			}
		}
	}
	return sortedSet(set), nil
}

func (c *adsClient) runDelta(stream grpc.ClientStream) error {
	first := true
	send := func(req *discoveryv3.DeltaDiscoveryRequest) error {
		if first {
			req.Node, first = c.node(), false
		}
		return stream.SendMsg(req)
	}
	for _, t := range initialTypes {
		if err := send(&discoveryv3.DeltaDiscoveryRequest{TypeUrl: t}); err != nil {
			return err
		}
	}
	scopesAsked := false
	subscribed := map[string]map[string]bool{resourcev3.EndpointType: {}, resourcev3.RouteType: {}}
	known := map[string]map[string][]byte{} // type -> name -> resource, for follow
	for {
		var f rawFrame
		if err := stream.RecvMsg(&f); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
		resp, err := parseDelta(f.b)
		if err != nil {
			return err
		}
		if known[resp.typeURL] == nil {
			known[resp.typeURL] = map[string][]byte{}
		}
		for i, n := range resp.names {
			known[resp.typeURL][n] = resp.resources[i]
		}
		for _, n := range resp.removed {
			delete(known[resp.typeURL], n)
		}
		if err := send(&discoveryv3.DeltaDiscoveryRequest{TypeUrl: resp.typeURL, ResponseNonce: resp.nonce}); err != nil {
			return err
		}
		var all [][]byte
		if slices.Contains(fullStateTypes, resp.typeURL) {
			for _, r := range known[resp.typeURL] {
				all = append(all, r)
			}
		}
		follow, err := c.follow(resp.typeURL, all)
		if err != nil {
			return err
		}
		for t, names := range follow {
			if t == resourcev3.ScopedRouteType {
				if !scopesAsked {
					scopesAsked = true
					if err := send(&discoveryv3.DeltaDiscoveryRequest{TypeUrl: t}); err != nil {
						return err
					}
				}
				continue
			}
			sub, unsub := diffNames(subscribed[t], names)
			if len(sub)+len(unsub) == 0 {
				continue
			}
			if err := send(&discoveryv3.DeltaDiscoveryRequest{TypeUrl: t, ResourceNamesSubscribe: sub, ResourceNamesUnsubscribe: unsub}); err != nil {
				return err
			}
		}
		c.record(received{at: time.Now(), typeURL: resp.typeURL, version: resp.version, bytes: len(f.b), resources: len(resp.names) + len(resp.removed)})
	}
}

// diffNames updates have to want and returns what to subscribe to and
// unsubscribe from.
func diffNames(have map[string]bool, want []string) (sub, unsub []string) {
	w := map[string]bool{}
	for _, n := range want {
		w[n] = true
		if !have[n] {
			sub = append(sub, n)
			have[n] = true
		}
	}
	for n := range have {
		if !w[n] {
			unsub = append(unsub, n)
			delete(have, n)
		}
	}
	sort.Strings(unsub)
	return sub, unsub
}

// response is what the clients read of a response.
type response struct {
	typeURL, version, nonce string
	resources               [][]byte // the resources' encodings (Any values)
	names                   []string // delta: the resources' names
	removed                 []string // delta
}

// parseSotW reads a DiscoveryResponse.
func parseSotW(b []byte) (response, error) {
	var r response
	err := eachField(b, func(num protowire.Number, v []byte) error {
		switch num {
		case 1:
			r.version = string(v)
		case 2:
			r.resources = append(r.resources, firstBytes(v, 2))
		case 4:
			r.typeURL = string(v)
		case 5:
			r.nonce = string(v)
		}
		return nil
	})
	return r, err
}

// parseDelta reads a DeltaDiscoveryResponse.
func parseDelta(b []byte) (response, error) {
	var r response
	err := eachField(b, func(num protowire.Number, v []byte) error {
		switch num {
		case 1:
			r.version = string(v)
		case 2:
			r.names = append(r.names, firstString(v, 3))
			any := firstBytes(v, 2)
			r.resources = append(r.resources, firstBytes(any, 2))
		case 4:
			r.typeURL = string(v)
		case 5:
			r.nonce = string(v)
		case 6:
			r.removed = append(r.removed, string(v))
		}
		return nil
	})
	return r, err
}

// eachField calls f with every length-delimited field of a message.
func eachField(b []byte, f func(protowire.Number, []byte) error) error {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return protowire.ParseError(n)
		}
		b = b[n:]
		if typ != protowire.BytesType {
			n = protowire.ConsumeFieldValue(num, typ, b)
			if n < 0 {
				return protowire.ParseError(n)
			}
			b = b[n:]
			continue
		}
		v, n := protowire.ConsumeBytes(b)
		if n < 0 {
			return protowire.ParseError(n)
		}
		b = b[n:]
		if err := f(num, v); err != nil {
			return err
		}
	}
	return nil
}

// firstBytes returns the first length-delimited field num of message b.
func firstBytes(b []byte, num protowire.Number) []byte {
	var out []byte
	found := errors.New("found")
	_ = eachField(b, func(n protowire.Number, v []byte) error {
		if n == num {
			out = v
			return found
		}
		return nil
	})
	return out
}

func firstString(b []byte, num protowire.Number) string { return string(firstBytes(b, num)) }

func equalStrings(a, b []string) bool {
	if len(a) != len(b) || (a == nil) != (b == nil) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func sortedSet(set map[string]bool) []string {
	out := make([]string, 0, len(set))
	for n := range set {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}
