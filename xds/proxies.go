package xds

import (
	"context"
	"fmt"
	"hash/maphash"
	"log/slog"
	"maps"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
	"weak"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	serverv3 "github.com/envoyproxy/go-control-plane/pkg/server/v3"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/weir-mesh/weir/translator/envoy"
)

// Node metadata keys weir reads from a proxy's bootstrap.
const (
	MetaRole            = "weir.role"
	MetaNamespace       = "weir.namespace"
	MetaOutboundPort    = "weir.outbound_port"
	MetaOutboundAddress = "weir.outbound_address"
	// MetaLabels are a gateway's labels: a map, or "k=v,k=v".
	MetaLabels = "weir.labels"
	// MetaGatewayAddress is where a gateway's listeners bind.
	MetaGatewayAddress = "weir.gateway_address"
	// MetaScopedRoutes, true or false (a bool or a string), says whether a
	// sidecar routes by scopes (see envoy.Proxy).
	MetaScopedRoutes = "weir.scoped_routes"
)

// proxyKey reads what a node needs from its metadata. A node without a role
// is a sidecar, unless its user agent is gRPC.
func proxyKey(node *corev3.Node, opts Options) (envoy.Proxy, error) {
	if node.GetId() == "" {
		return envoy.Proxy{}, fmt.Errorf("node has no id")
	}
	fields := node.GetMetadata().GetFields()
	str := func(k string) string { return fields[k].GetStringValue() }
	p := envoy.Proxy{Namespace: str(MetaNamespace), OutboundAddress: opts.OutboundAddress, OutboundPort: opts.OutboundPort}
	role := str(MetaRole)
	if role == "" {
		role = string(envoy.Sidecar)
		if strings.Contains(strings.ToLower(node.GetUserAgentName()), "grpc") {
			role = string(envoy.GRPC)
		}
	}
	r, err := envoy.ParseRole(role)
	if err != nil {
		return envoy.Proxy{}, fmt.Errorf("node %q metadata %s: %w", node.GetId(), MetaRole, err)
	}
	p.Role = r
	if p.Role != envoy.Sidecar {
		// Only a sidecar's resources depend on these: proxies of other
		// roles share one key, and one build, whatever their namespace.
		p.Namespace, p.OutboundAddress, p.OutboundPort = "", "", 0
	}
	if p.Role == envoy.Gateway {
		p.GatewayAddress = str(MetaGatewayAddress)
		labels, err := metaLabels(fields[MetaLabels])
		if err != nil {
			return envoy.Proxy{}, fmt.Errorf("node %q metadata %s: %w", node.GetId(), MetaLabels, err)
		}
		p.Labels = envoy.CanonicalLabels(labels)
	}
	if p.Role != envoy.Sidecar {
		return p, nil
	}
	if a := str(MetaOutboundAddress); a != "" {
		p.OutboundAddress = a
	}
	if v, ok := fields[MetaOutboundPort]; ok {
		port, err := metaPort(v.GetStringValue(), v.GetNumberValue())
		if err != nil {
			return envoy.Proxy{}, fmt.Errorf("node %q metadata %s: %w", node.GetId(), MetaOutboundPort, err)
		}
		p.OutboundPort = port
	}
	p.ScopedRoutes = opts.ScopedRoutes
	if v, ok := fields[MetaScopedRoutes]; ok {
		scoped, err := metaBool(v)
		if err != nil {
			return envoy.Proxy{}, fmt.Errorf("node %q metadata %s: %w", node.GetId(), MetaScopedRoutes, err)
		}
		p.ScopedRoutes = scoped
	}
	return p, nil
}

// metaBool reads a bool given as a bool or as "true" or "false".
func metaBool(v *structpb.Value) (bool, error) {
	switch k := v.GetKind().(type) {
	case *structpb.Value_BoolValue:
		return k.BoolValue, nil
	case *structpb.Value_StringValue:
		if b, err := strconv.ParseBool(k.StringValue); err == nil {
			return b, nil
		}
	}
	return false, fmt.Errorf("want true or false, got %v", v.AsInterface())
}

// metaLabels reads labels given as a struct of strings or as "k=v,k=v".
func metaLabels(v *structpb.Value) (map[string]string, error) {
	out := map[string]string{}
	if v == nil {
		return out, nil
	}
	if st := v.GetStructValue(); st != nil {
		for k, val := range st.GetFields() {
			sv, ok := val.GetKind().(*structpb.Value_StringValue)
			if !ok {
				return nil, fmt.Errorf("label %q: want a string value", k)
			}
			out[k] = sv.StringValue
		}
		return out, nil
	}
	for _, kv := range strings.Split(v.GetStringValue(), ",") {
		if kv = strings.TrimSpace(kv); kv == "" {
			continue
		}
		k, val, ok := strings.Cut(kv, "=")
		if !ok || k == "" || strings.ContainsAny(k+val, ",=") {
			return nil, fmt.Errorf("%q is not key=value", kv)
		}
		out[k] = val
	}
	return out, nil
}

func metaPort(s string, n float64) (uint32, error) {
	if s != "" {
		v, err := strconv.ParseUint(s, 10, 16)
		if err != nil || v == 0 {
			return 0, fmt.Errorf("%q is not a port number", s)
		}
		return uint32(v), nil
	}
	if n < 1 || n > 65535 || n != float64(uint32(n)) {
		return 0, fmt.Errorf("%v is not a port number", n)
	}
	return uint32(n), nil
}

// ProxyStatus is what weir knows of one connected proxy.
type ProxyStatus struct {
	NodeID         string    `json:"nodeId"`
	Role           string    `json:"role"`
	Namespace      string    `json:"namespace,omitempty"`
	Delta          bool      `json:"delta"`
	ConnectedSince time.Time `json:"connectedSince"`
	Streams        int       `json:"streams"`
	// Sent and Acked map a type URL to a version.
	Sent     map[string]string `json:"sent"`
	Acked    map[string]string `json:"acked"`
	Nacks    int               `json:"nacks"`
	LastNack *Nack             `json:"lastNack,omitempty"`
	// Pushes counts responses sent, by type URL.
	Pushes map[string]int `json:"pushes"`
	// Subscribed counts the names a state-of-the-world proxy asks for, by
	// type URL; a type it asks all of (or any type on a delta stream) is
	// absent.
	Subscribed map[string]int `json:"subscribed,omitempty"`
}

// Nack is a rejected push.
type Nack struct {
	TypeURL string    `json:"typeUrl"`
	Version string    `json:"version"`
	Message string    `json:"message"`
	At      time.Time `json:"at"`
}

// subscription is what a proxy asked for of one type.
type subscription struct {
	wildcard bool
	names    map[string]bool
	// shared is the interned set names is, kept alive (see nameSets); nil
	// if names is the proxy's own.
	shared *nameSet
}

// proxyState is the tracker's record of one node.
type proxyState struct {
	status ProxyStatus
	// nonces maps a response nonce to the version it carried, per type.
	nonces map[string]map[string]string
	// sentNames maps a response nonce to the names subscribed when it was
	// sent (nil: wildcard), per type; ackedNames holds those of the last
	// ACKed response.
	sentNames  map[string]map[string]map[string]bool
	ackedNames map[string]map[string]bool
	ackedAll   map[string]bool
	// nacked maps a type URL to the last version the proxy rejected.
	nacked map[string]string
	subs   map[string]*subscription
	// partial is what the node holds of the types whose SotW responses
	// may leave resources out, by type URL (see partial.go).
	partial map[string]*partialState
}

// proxyTracker records what every node asked for, was sent, ACKed and
// NACKed, and counts pushes and NACKs in metrics. Safe for concurrent use.
type proxyTracker struct {
	log     *slog.Logger
	metrics *metrics // set once, before the first stream
	mu      sync.Mutex
	nodes   map[string]*proxyState
	streams map[int64]string
	sets    *nameSets
}

func newProxyTracker(log *slog.Logger) *proxyTracker {
	return &proxyTracker{log: log, nodes: map[string]*proxyState{}, streams: map[int64]string{}, sets: newNameSets()}
}

// known reports whether stream id is bound to a node.
func (t *proxyTracker) known(id int64) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	_, ok := t.streams[id]
	return ok
}

// stream binds a new stream to its node.
func (t *proxyTracker) stream(id int64, node *corev3.Node, key envoy.Proxy, delta bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.streams[id] = node.GetId()
	ps, ok := t.nodes[node.GetId()]
	if !ok {
		ps = &proxyState{
			status: ProxyStatus{NodeID: node.GetId(), Role: string(key.Role), Namespace: node.GetMetadata().GetFields()[MetaNamespace].GetStringValue(), Delta: delta,
				ConnectedSince: time.Now().UTC(), Sent: map[string]string{}, Acked: map[string]string{}, Pushes: map[string]int{}},
			nonces: map[string]map[string]string{}, nacked: map[string]string{}, subs: map[string]*subscription{},
			sentNames: map[string]map[string]map[string]bool{}, ackedNames: map[string]map[string]bool{}, ackedAll: map[string]bool{},
		}
		t.nodes[node.GetId()] = ps
	}
	ps.status.Streams++
	ps.forgetHeld()
}

// closed unbinds a stream; it returns the node id when its last stream closed.
func (t *proxyTracker) closed(id int64) (string, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	nodeID, ok := t.streams[id]
	if !ok {
		return "", false
	}
	delete(t.streams, id)
	ps := t.nodes[nodeID]
	ps.status.Streams--
	if ps.status.Streams > 0 {
		ps.forgetHeld()
		return nodeID, false
	}
	delete(t.nodes, nodeID)
	return nodeID, true
}

// request records one request. It returns the node id, whether the
// request answered a response (ACK or NACK), and for a NACK the version
// that was rejected.
func (t *proxyTracker) request(id int64, r request) (nodeID string, answered bool, nackedVersion string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	nodeID = t.streams[id]
	ps := t.nodes[nodeID]
	if ps == nil {
		return nodeID, false, ""
	}
	ps.subscribe(r, t.sets)
	if r.nonce == "" {
		return nodeID, false, ""
	}
	if !r.delta {
		ps.answeredPartial(id, r.typeURL, r.nonce, r.errDetail != "")
	}
	version, ok := ps.nonces[r.typeURL][r.nonce]
	if !ok {
		return nodeID, false, "" // a nonce from an older response or process
	}
	delete(ps.nonces[r.typeURL], r.nonce)
	names := ps.sentNames[r.typeURL][r.nonce]
	delete(ps.sentNames[r.typeURL], r.nonce)
	if r.errDetail == "" {
		ps.status.Acked[r.typeURL] = version
		ps.ackedNames[r.typeURL], ps.ackedAll[r.typeURL] = names, names == nil
		if sub := ps.subs[r.typeURL]; sub != nil && len(names) > len(sub.names) {
			ps.keepAcked(r.typeURL, sub) // the subscription shrank since
		}
		return nodeID, true, ""
	}
	ps.nacked[r.typeURL] = version
	ps.status.Nacks++
	t.metrics.nacked(r.typeURL, ps.status.Role)
	ps.status.LastNack = &Nack{TypeURL: r.typeURL, Version: version, Message: r.errDetail, At: time.Now().UTC()}
	t.log.Warn("xds: proxy rejected configuration (NACK); it keeps its last good one", "node", nodeID, "type", r.typeURL, "version", version, "error", r.errDetail)
	return nodeID, true, version
}

// request is what the tracker reads of a SotW or delta request; names
// are a SotW request's (a delta stream keeps its own: see deltaConn).
type request struct {
	typeURL, nonce, errDetail string
	delta                     bool
	names                     []string
}

// subscribe records that a request asks for its type and, on a SotW
// stream, the names it asks for. Name sets are never modified once made (a
// change makes a new one), so responses and ACKs share them, and SotW
// proxies asking for the same names share one set.
func (ps *proxyState) subscribe(r request, sets *nameSets) {
	sub, ok := ps.subs[r.typeURL]
	if !ok {
		sub = &subscription{names: map[string]bool{}}
		ps.subs[r.typeURL] = sub
	}
	if !r.delta {
		prev := sub.names
		sub.wildcard = len(r.names) == 0
		if sub.shared != nil && slices.Equal(sub.shared.names, r.names) {
			return // an ACK repeating its names, in the same order: nothing new
		}
		if !sameNames(prev, r.names) {
			sub.shared = sets.intern(r.names)
			sub.names = sub.shared.set
			ps.keepAcked(r.typeURL, sub)
		}
		var again []string // must be ACKed again
		for _, n := range r.names {
			if !prev[n] {
				again = append(again, n)
			}
		}
		ps.forgetAcked(r.typeURL, again)
		ps.askedAgain(r.typeURL, again)
	}
	// A delta stream's names are its own (see deltaConn): the tracker only
	// knows it asked for the type.
}

// keepAcked drops from the ACKed names of typeURL those sub no longer
// names: the proxy dropped those resources, and asks for them anew (see
// forgetAcked) before it holds them again. The ACKed set, often the
// subscription a response was sent for, is not kept for them.
func (ps *proxyState) keepAcked(typeURL string, sub *subscription) {
	acked := ps.ackedNames[typeURL]
	if sub.wildcard {
		return
	}
	for n := range acked {
		if sub.names[n] {
			continue
		}
		kept := map[string]bool{}
		for n := range acked {
			if sub.names[n] {
				kept[n] = true
			}
		}
		ps.ackedNames[typeURL] = kept
		return
	}
}

// forgetAcked drops names from the ACKed names of typeURL, copying the set
// if it holds any of them.
func (ps *proxyState) forgetAcked(typeURL string, names []string) {
	acked := ps.ackedNames[typeURL]
	for i, n := range names {
		if acked[n] {
			acked = maps.Clone(acked)
			for _, n := range names[i:] {
				delete(acked, n)
			}
			ps.ackedNames[typeURL] = acked
			return
		}
	}
}

// sameNames reports whether set holds exactly names.
func sameNames(set map[string]bool, names []string) bool {
	if len(set) != len(names) {
		return false
	}
	for _, n := range names {
		if !set[n] {
			return false
		}
	}
	return true
}

// nameSets interns SotW subscriptions: a thousand sidecars ask for the
// same thousands of endpoint names, and weir holds them once. A set lives
// as long as a proxy holds it. Safe for concurrent use.
type nameSets struct {
	mu   sync.Mutex
	seed maphash.Seed
	sets map[uint64]weak.Pointer[nameSet]
}

// nameSet is one interned subscription: the names as asked for, and as a
// set. Neither is ever modified.
type nameSet struct {
	names []string
	set   map[string]bool
	self  weak.Pointer[nameSet] // to name it in memos (see narrowKey)
}

func newNameSets() *nameSets {
	return &nameSets{seed: maphash.MakeSeed(), sets: map[uint64]weak.Pointer[nameSet]{}}
}

// intern returns a set holding exactly names, shared with every proxy that
// asked for the same names in the same order. It stays shared while a
// holder keeps the returned pointer.
func (s *nameSets) intern(names []string) *nameSet {
	if len(names) == 0 {
		ns := &nameSet{set: map[string]bool{}}
		ns.self = weak.Make(ns)
		return ns
	}
	var h maphash.Hash
	h.SetSeed(s.seed)
	for _, n := range names {
		h.WriteString(n)
		h.WriteByte(0)
	}
	key := h.Sum64()
	s.mu.Lock()
	defer s.mu.Unlock()
	if p := s.sets[key].Value(); p != nil && slices.Equal(p.names, names) {
		return p
	}
	ns := &nameSet{names: slices.Clone(names), set: make(map[string]bool, len(names))}
	for _, n := range ns.names {
		ns.set[n] = true
	}
	if len(s.sets) > 1024 {
		for k, wp := range s.sets {
			if wp.Value() == nil {
				delete(s.sets, k)
			}
		}
	}
	ns.self = weak.Make(ns)
	s.sets[key] = ns.self
	return ns
}

// subscription returns the interned names node asks for of typeURL on a
// SotW stream; nil if it asks for all (wildcard), is on a delta stream, or
// is unknown.
func (t *proxyTracker) subscription(nodeID, typeURL string) *nameSet {
	t.mu.Lock()
	defer t.mu.Unlock()
	ps := t.nodes[nodeID]
	if ps == nil || ps.status.Delta || ps.subs[typeURL] == nil || ps.subs[typeURL].wildcard {
		return nil
	}
	return ps.subs[typeURL].shared
}

// sharedNames returns the interned names stream id's node subscribes to
// for typeURL if they equal names (so that the request can hold them
// instead of its own copy), else nil.
func (t *proxyTracker) sharedNames(id int64, typeURL string, names []string) []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	ps := t.nodes[t.streams[id]]
	if ps == nil || ps.subs[typeURL] == nil || ps.subs[typeURL].shared == nil {
		return nil
	}
	if shared := ps.subs[typeURL].shared.names; slices.Equal(shared, names) {
		return shared
	}
	return nil
}

// response records one response sent to stream id.
func (t *proxyTracker) response(id int64, typeURL, version, nonce string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	ps := t.nodes[t.streams[id]]
	if ps == nil {
		return
	}
	ps.status.Sent[typeURL] = version
	ps.status.Pushes[typeURL]++
	t.metrics.pushed(typeURL, ps.status.Role)
	if ps.nonces[typeURL] == nil {
		ps.nonces[typeURL] = map[string]string{}
	}
	ps.nonces[typeURL][nonce] = version
	if ps.sentNames[typeURL] == nil {
		ps.sentNames[typeURL] = map[string]map[string]bool{}
	}
	var names map[string]bool // nil: every name, as for a delta stream
	if sub := ps.subs[typeURL]; sub != nil && !sub.wildcard && !ps.status.Delta {
		names = sub.names // never modified: see subscribe
	}
	ps.sentNames[typeURL][nonce] = names
	if id > 0 { // a SotW stream: see deltaStream
		ps.sentPartial(id, typeURL, version, nonce)
	}
}

// hasAcked reports whether node ACKed a response of typeURL sent while it
// was subscribed to name.
func (t *proxyTracker) hasAcked(nodeID, typeURL, name string) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	ps := t.nodes[nodeID]
	return ps == nil || ps.ackedAll[typeURL] || ps.ackedNames[typeURL][name]
}

// answered reports whether node ACKed or NACKed version of typeURL.
func (t *proxyTracker) answered(nodeID, typeURL, version string) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	ps := t.nodes[nodeID]
	return ps == nil || ps.status.Acked[typeURL] == version || ps.nacked[typeURL] == version
}

// acked reports whether node ACKed version of typeURL.
func (t *proxyTracker) acked(nodeID, typeURL, version string) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	ps := t.nodes[nodeID]
	return ps != nil && ps.status.Acked[typeURL] == version
}

// byRole returns the number of connected nodes by role, with every role
// weir knows present.
func (t *proxyTracker) byRole() map[string]int {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make(map[string]int, len(envoy.Roles))
	for _, r := range envoy.Roles {
		out[string(r)] = 0
	}
	for _, ps := range t.nodes {
		out[ps.status.Role]++
	}
	return out
}

// delta reports whether node is on a delta stream.
func (t *proxyTracker) delta(nodeID string) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	ps := t.nodes[nodeID]
	return ps != nil && ps.status.Delta
}

// expects reports whether publishing a change to the resources changed of
// typeURL will make a SotW node answer: it has asked for the type. (A delta
// node answers only changes to names it asks for: see
// Server.expectsLocked.)
func (t *proxyTracker) expects(nodeID, typeURL string) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	ps := t.nodes[nodeID]
	if ps == nil {
		return false
	}
	_, ok := ps.subs[typeURL]
	return ok
}

func (t *proxyTracker) list() []ProxyStatus {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make([]ProxyStatus, 0, len(t.nodes))
	for _, ps := range t.nodes {
		c := ps.status
		c.Sent, c.Acked = copyMap(ps.status.Sent), copyMap(ps.status.Acked)
		c.Pushes = make(map[string]int, len(ps.status.Pushes))
		for k, v := range ps.status.Pushes {
			c.Pushes[k] = v
		}
		if ps.status.LastNack != nil {
			n := *ps.status.LastNack
			c.LastNack = &n
		}
		for typeURL, sub := range ps.subs {
			if !sub.wildcard && !ps.status.Delta {
				if c.Subscribed == nil {
					c.Subscribed = map[string]int{}
				}
				c.Subscribed[typeURL] = len(sub.names)
			}
		}
		out = append(out, c)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].NodeID < out[j].NodeID })
	return out
}

func copyMap(m map[string]string) map[string]string {
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// deltaStream is the tracker's id of delta stream id: go-control-plane
// numbers SotW and delta streams apart, both from 1, so delta streams take
// the negative ids.
func deltaStream(id int64) int64 { return -id }

// onRequest records a request of stream id (a tracker id) from node,
// binding the stream to its node on its first request. It returns the
// version a NACK rejected.
func (s *Server) onRequest(id int64, node *corev3.Node, r request) (string, error) {
	if !s.proxies.known(id) {
		key, err := proxyKey(node, s.opts)
		if err != nil {
			s.log.Warn("xds: refusing proxy", "err", err)
			return "", err
		}
		s.proxies.stream(id, node, key, r.delta)
		s.registerNode(node, key)
	}
	nodeID, answered, nacked := s.proxies.request(id, r)
	if answered {
		s.answered(nodeID)
	}
	return nacked, nil
}

// publishedTo reports whether the node of SotW stream id has a
// configuration published.
func (s *Server) publishedTo(id int64) bool {
	s.proxies.mu.Lock()
	nodeID := s.proxies.streams[id]
	s.proxies.mu.Unlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	ns := s.nodes[nodeID]
	return ns != nil && ns.published != nil
}

// onClosed unbinds stream id (a tracker id), and forgets its node once
// its last stream closed.
func (s *Server) onClosed(id int64) {
	if nodeID, last := s.proxies.closed(id); last {
		s.forgetNode(nodeID)
	}
}

// callbacks wires go-control-plane's stream events to the tracker and the
// push steps, and makes sure a node has a snapshot before its first watch.
// Delta streams, which weir serves itself (see delta.go), call onRequest
// and onClosed directly.
func (s *Server) callbacks() serverv3.Callbacks {
	return serverv3.CallbackFuncs{
		StreamOpenFunc: func(ctx context.Context, id int64, _ string) error {
			s.budget.open(id, ctx)
			return nil
		},
		StreamRequestFunc: func(id int64, req *discoveryv3.DiscoveryRequest) error {
			s.budget.answered(id, req.GetResponseNonce())
			// Only a stream's first request is sure to carry the node.
			nacked, err := s.onRequest(id, req.GetNode(), request{typeURL: req.GetTypeUrl(), nonce: req.GetResponseNonce(),
				errDetail: req.GetErrorDetail().GetMessage(), names: req.GetResourceNames()})
			// The stream keeps its last request: hold the names once for
			// every proxy that asks for the same ones.
			if shared := s.proxies.sharedNames(id, req.GetTypeUrl(), req.GetResourceNames()); shared != nil {
				req.ResourceNames = shared
			}
			if err == nil && !s.publishedTo(id) {
				// A proxy that reconnects before weir has a configuration
				// for it (a restarted weir not done translating) names the
				// version it holds, and the cache answers a later snapshot
				// of that version with nothing, where a stream that found
				// the snapshot is answered with everything. The proxy
				// would be fine; the step would wait for an answer that
				// never comes. Forgetting the version makes both alike.
				req.VersionInfo = ""
			}
			if nacked != "" {
				// The request carries the last version the proxy accepted, and
				// the cache would answer it with the rejected one at once, in a
				// loop. Claiming the rejected version holds the watch until the
				// configuration changes.
				req.VersionInfo = nacked
			}
			return err
		},
		StreamResponseFunc: func(_ context.Context, id int64, _ *discoveryv3.DiscoveryRequest, resp *discoveryv3.DiscoveryResponse) {
			s.proxies.response(id, resp.GetTypeUrl(), resp.GetVersionInfo(), resp.GetNonce())
			// go-control-plane sends the response when this returns; a
			// stream that ended while it waited fails its send.
			s.budget.send(id, resp.GetNonce(), anyBytes(resp.GetResources()))
		},
		StreamClosedFunc: func(id int64, _ *corev3.Node) {
			s.budget.closed(id)
			s.onClosed(id)
		},
	}
}
