package xds

import (
	"errors"
	"io"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	serverv3 "github.com/envoyproxy/go-control-plane/pkg/server/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
)

// Delta ADS.
//
// weir answers delta streams itself; go-control-plane answers state of the
// world. Its snapshot cache finds what changed for a delta stream by
// walking every resource the stream subscribes to, on every response and
// every ACK, and keeps a map of all of them per stream: with thousands of
// route configurations and scopes per sidecar, a one-weight change cost
// each stream time and memory in proportion to the mesh. Here a stream
// remembers the configuration it last brought the proxy to (synced), and
// a change is the difference between two configurations, which the nodes
// of a key share (config.changedFrom): the work per stream is the
// resources that changed.
//
// What the proxy holds of a type is synced's resources of that type that
// it subscribes to. A name it subscribes to anew is sent as the node's
// published configuration has it; when
// the node's published configuration moves, every changed resource it
// subscribes to is sent, and every one it lost is removed. A NACKed
// response counts as held: the proxy keeps its last good resources, and
// the next change sends what changed since the rejected one, as
// go-control-plane does.

// adsServer serves ADS: state of the world through go-control-plane,
// delta through the Server.
type adsServer struct {
	serverv3.Server
	s *Server
}

// DeltaAggregatedResources serves one delta ADS stream.
func (a adsServer) DeltaAggregatedResources(st discoveryv3.AggregatedDiscoveryService_DeltaAggregatedResourcesServer) error {
	return a.s.serveDelta(st)
}

// lastDeltaStream numbers delta streams, from 1.
var lastDeltaStream atomic.Int64

// deltaConn is one delta stream's state. Only its goroutine changes it,
// its types under the Server's mutex (expectsLocked reads them).
type deltaConn struct {
	id     int64 // the tracker's id: see deltaStream
	nodeID string
	// notify is signalled when the node's published configuration changes.
	notify chan struct{}
	// synced is the configuration whose resources the proxy holds, of the
	// names it subscribes to (nil: nothing yet); types are the types it
	// asked for, with the names it asked for anew since the last response.
	synced *config
	types  map[string]*deltaType
	nonce  int64
}

// deltaType is what a stream asked of one type.
type deltaType struct {
	wildcard bool
	names    map[string]bool
	peak     int // names' largest size since it was made
	// fresh are names subscribed since the last response of the type,
	// which the proxy may not hold; first: no response of the type yet.
	fresh map[string]bool
	first bool
	// initial maps a name to the version the proxy says it holds, from
	// its first request (a reconnecting proxy).
	initial map[string]string
}

func (s *Server) serveDelta(st discoveryv3.AggregatedDiscoveryService_DeltaAggregatedResourcesServer) error {
	c := &deltaConn{id: deltaStream(lastDeltaStream.Add(1)), notify: make(chan struct{}, 1), types: map[string]*deltaType{}}
	reqs := make(chan *discoveryv3.DeltaDiscoveryRequest)
	errc := make(chan error, 1)
	go func() {
		defer close(reqs)
		for {
			req, err := st.Recv()
			if err != nil {
				if !errors.Is(err, io.EOF) {
					errc <- err
				}
				return
			}
			select {
			case reqs <- req:
			case <-st.Context().Done():
				return
			}
		}
	}()
	s.budget.open(c.id, st.Context())
	defer s.budget.closed(c.id)
	var node *corev3.Node
	defer func() {
		if node != nil {
			s.dropDeltaConn(c)
			s.onClosed(c.id)
		}
	}()
	for {
		select {
		case <-st.Context().Done():
			return nil
		case err := <-errc:
			return err
		case req, ok := <-reqs:
			if !ok {
				select {
				case err := <-errc:
					return err
				default:
					return nil
				}
			}
			if node == nil {
				if req.GetNode() == nil {
					return status.Error(codes.InvalidArgument, "the first request of a stream must name its node")
				}
				node = req.GetNode()
				c.nodeID = node.GetId()
				s.addDeltaConn(c)
			}
			if req.GetTypeUrl() == "" {
				return status.Error(codes.InvalidArgument, "type URL is required for ADS")
			}
			if err := s.deltaRequest(c, node, req); err != nil {
				return err
			}
		case <-c.notify:
		}
		if err := s.deltaSync(c, st); err != nil {
			return err
		}
		if s.deltaServed != nil {
			s.deltaServed()
		}
	}
}

// deltaRequest records a request in the tracker (which may publish the
// node's next step) and in the stream's subscriptions.
func (s *Server) deltaRequest(c *deltaConn, node *corev3.Node, req *discoveryv3.DeltaDiscoveryRequest) error {
	// The subscription first: the request may publish the node's next
	// step, whose expected answers depend on it.
	c.subscribe(s, req)
	s.budget.answered(c.id, req.GetResponseNonce())
	_, err := s.onRequest(c.id, node, request{typeURL: req.GetTypeUrl(), nonce: req.GetResponseNonce(),
		errDetail: req.GetErrorDetail().GetMessage(), delta: true})
	return err
}

// subscribe records what req asks for, under s's mutex (expectsLocked
// reads it).
func (c *deltaConn) subscribe(s *Server, req *discoveryv3.DeltaDiscoveryRequest) {
	s.mu.Lock()
	defer s.mu.Unlock()
	dt, ok := c.types[req.GetTypeUrl()]
	if !ok {
		// No name on the first request: every resource of the type (the
		// legacy wildcard, as Envoy asks for clusters and listeners).
		dt = &deltaType{wildcard: len(req.GetResourceNamesSubscribe()) == 0, names: map[string]bool{}, fresh: map[string]bool{},
			first: true, initial: req.GetInitialResourceVersions()}
		c.types[req.GetTypeUrl()] = dt
	}
	for _, n := range req.GetResourceNamesSubscribe() {
		if n == "*" {
			dt.wildcard = true
			continue
		}
		dt.names[n] = true
		dt.fresh[n] = true
	}
	for _, n := range req.GetResourceNamesUnsubscribe() {
		if n == "*" {
			dt.wildcard = false
			continue
		}
		delete(dt.names, n)
		delete(dt.fresh, n)
	}
	// A map keeps the memory of its largest size: once the proxy dropped
	// most names (a scale-down), they move to a map of their own size.
	if dt.peak = max(dt.peak, len(dt.names)); 4*len(dt.names) < dt.peak {
		names := make(map[string]bool, len(dt.names)) // maps.Clone keeps the table
		for n := range dt.names {
			names[n] = true
		}
		dt.names, dt.peak = names, len(names)
	}
}

// expectsLocked reports whether publishing a change to the resources
// changed of typeURL (nil: unknown) will make a node answer: it asked for
// the type, and on delta streams for one of the changed resources.
func (s *Server) expectsLocked(nodeID string, delta bool, typeURL string, changed map[string]bool) bool {
	if !delta {
		return s.proxies.expects(nodeID, typeURL)
	}
	for c := range s.deltaConns[nodeID] {
		dt := c.types[typeURL]
		if dt == nil {
			continue
		}
		if changed == nil || dt.wildcard {
			return true
		}
		for n := range changed {
			if dt.names[n] {
				return true
			}
		}
	}
	return false
}

func (s *Server) addDeltaConn(c *deltaConn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.deltaConns[c.nodeID] == nil {
		s.deltaConns[c.nodeID] = map[*deltaConn]bool{}
	}
	s.deltaConns[c.nodeID][c] = true
}

func (s *Server) dropDeltaConn(c *deltaConn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.deltaConns[c.nodeID], c)
	if len(s.deltaConns[c.nodeID]) == 0 {
		delete(s.deltaConns, c.nodeID)
	}
}

// notifyDeltaLocked wakes the delta streams of a node whose published
// configuration changed.
func (s *Server) notifyDeltaLocked(nodeID string) {
	for c := range s.deltaConns[nodeID] {
		select {
		case c.notify <- struct{}{}:
		default:
		}
	}
}

// deltaChange is what one response of a type must carry: the names changed
// from the synced configuration (nil: all of the type) and the
// configuration to take them from.
type deltaChange struct {
	typeURL string
	changed map[string]bool
}

// deltaSync sends the node's published configuration to the stream: for
// each type it asked for, in the order Envoy wants, the resources it
// subscribes to that changed since synced or that it asked for anew.
func (s *Server) deltaSync(c *deltaConn, st discoveryv3.AggregatedDiscoveryService_DeltaAggregatedResourcesServer) error {
	s.mu.Lock()
	var cur *config
	if ns := s.nodes[c.nodeID]; ns != nil {
		cur = ns.published
	}
	var changes []deltaChange
	if cur != nil {
		for _, t := range typeURLs {
			if _, ok := c.types[t]; !ok {
				continue
			}
			ch := deltaChange{typeURL: t}
			if c.synced != nil && c.synced != cur {
				ch.changed = cur.changedFrom(c.synced, t)
			}
			changes = append(changes, ch)
		}
	}
	s.mu.Unlock()
	if cur == nil {
		return nil
	}
	for _, ch := range changes {
		dt := c.types[ch.typeURL]
		resp := c.response(cur, ch, dt)
		if resp == nil {
			continue
		}
		c.nonce++
		resp.Nonce = strconv.FormatInt(c.nonce, 10)
		s.proxies.response(c.id, resp.GetTypeUrl(), resp.GetSystemVersionInfo(), resp.GetNonce())
		if !s.budget.send(c.id, resp.GetNonce(), resourceBytes(resp.GetResources())) {
			return st.Context().Err()
		}
		if err := st.Send(resp); err != nil {
			return err
		}
		dt.fresh, dt.first, dt.initial = map[string]bool{}, false, nil
	}
	c.synced = cur
	return nil
}

// response returns the response that brings the proxy from c.synced to
// cur for one type, nil if there is nothing to send.
func (c *deltaConn) response(cur *config, ch deltaChange, dt *deltaType) *discoveryv3.DeltaDiscoveryResponse {
	resp := &discoveryv3.DeltaDiscoveryResponse{TypeUrl: ch.typeURL, SystemVersionInfo: cur.versions[ch.typeURL]}
	have := cur.set[ch.typeURL]
	wire := cur.snap.wire[ch.typeURL]
	add := func(name string) {
		e, ok := have[name]
		if !ok {
			return
		}
		if v, ok := dt.initial[name]; ok && v == e.hash {
			return
		}
		resp.Resources = append(resp.Resources, &discoveryv3.Resource{Name: name, Version: e.hash, Resource: wireAny(ch.typeURL, wire[name])})
	}
	subscribed := func(name string) bool { return dt.wildcard || dt.names[name] }
	switch {
	case c.synced == nil || dt.first:
		// Everything it subscribes to.
		if dt.wildcard {
			for name := range have {
				add(name)
			}
		}
		for name := range dt.names {
			if !dt.wildcard {
				add(name)
			}
		}
		for name := range dt.initial {
			if _, ok := have[name]; !ok && subscribed(name) {
				resp.RemovedResources = append(resp.RemovedResources, name)
			}
		}
	default:
		for name := range ch.changed {
			if !subscribed(name) {
				continue
			}
			if _, ok := have[name]; ok {
				add(name)
			} else {
				resp.RemovedResources = append(resp.RemovedResources, name)
			}
		}
		for name := range dt.fresh {
			if !ch.changed[name] {
				add(name)
			}
		}
	}
	// A first wildcard response goes out even when empty: Envoy waits for
	// it to finish initializing.
	if len(resp.Resources) == 0 && len(resp.RemovedResources) == 0 && !(dt.first && dt.wildcard) {
		return nil
	}
	slices.SortFunc(resp.Resources, func(a, b *discoveryv3.Resource) int { return strings.Compare(a.Name, b.Name) })
	slices.Sort(resp.RemovedResources)
	return resp
}

// wireAny wraps a shared copy in an Any without copying its encoding:
// the copies hold only their encoding (see unknownOnly).
func wireAny(typeURL string, r types.ResourceWithTTL) *anypb.Any {
	m := r.Resource
	if encodedOnly(m) {
		return &anypb.Any{TypeUrl: typeURL, Value: m.ProtoReflect().GetUnknown()}
	}
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(m)
	if err != nil {
		return &anypb.Any{TypeUrl: typeURL}
	}
	return &anypb.Any{TypeUrl: typeURL, Value: b}
}
