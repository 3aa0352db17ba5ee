package xds

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"unsafe"
	"weak"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	cachev3 "github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/protobuf/proto"

	"github.com/weir-mesh/weir/translator/envoy"
)

// step is where a proxy is on its way from what it has to what it should
// have. Make before break: new clusters (and their endpoints) first; then
// listeners and routes, keeping every old cluster and route configuration;
// then, after a grace period, the leftovers go. Each step is published only
// once the proxy answered the previous one (ACK or NACK).
type step int

const (
	// stepSettled: the proxy has the desired configuration.
	stepSettled step = iota
	// stepWarm adds the clusters the desired routes need.
	stepWarm
	// stepSwitch moves listeners, routes and endpoints to the desired ones.
	stepSwitch
	// stepRetire drops clusters and route configurations no longer used.
	stepRetire
)

func (s step) String() string {
	return [...]string{"settled", "warm", "switch", "retire"}[s]
}

// nextStep returns the configuration to publish after cur (nil: nothing
// published yet) on the way to want, and which step it is. For stepSettled
// the returned set is nil.
func nextStep(cur, want resourceSet, role envoy.Role) (resourceSet, step) {
	if cur == nil {
		return want, stepSwitch
	}
	if added := missing(cur, want, resourcev3.ClusterType); len(added) > 0 {
		return warm(cur, want, added, role), stepWarm
	}
	if added := missing(cur, want, resourcev3.SecretType); len(added) > 0 {
		return warmSecrets(cur, want, added), stepWarm
	}
	if role == envoy.GRPC {
		if next := standbyNewlyNamed(cur, want); !next.equal(cur) {
			return next, stepWarm
		}
	}
	if sw := switched(cur, want, role); !sw.equal(cur) {
		return sw, stepSwitch
	}
	if cur.equal(want) {
		return nil, stepSettled
	}
	return want, stepRetire
}

// missing returns the names of typeURL in want and not in cur, sorted.
func missing(cur, want resourceSet, typeURL string) []string {
	var out []string
	if sameMap(cur[typeURL], want[typeURL]) {
		return nil
	}
	for n := range want[typeURL] {
		if _, ok := cur[typeURL][n]; !ok {
			out = append(out, n)
		}
	}
	sort.Strings(out)
	return out
}

// warm is cur plus the added clusters and their endpoints. A proxyless gRPC
// client only sets up clusters its routes name, so its route configurations
// that will use them get them in their standby route.
func warm(cur, want resourceSet, added []string, role envoy.Role) resourceSet {
	next := cur.clone()
	for _, c := range added {
		next[resourcev3.ClusterType][c] = want[resourcev3.ClusterType][c]
		if e, ok := want[resourcev3.EndpointType][c]; ok {
			next[resourcev3.EndpointType][c] = e
		}
	}
	if role != envoy.GRPC {
		return next
	}
	isAdded := map[string]bool{}
	for _, c := range added {
		isAdded[c] = true
	}
	for name, e := range want[resourcev3.RouteType] {
		old, ok := cur[resourcev3.RouteType][name]
		if !ok {
			continue
		}
		needs := routeConfigClusters(e.res.(*routev3.RouteConfiguration), isAdded)
		if len(needs) == 0 {
			continue
		}
		rc := envoy.WithStandby(old.res.(*routev3.RouteConfiguration), needs)
		if h, err := hashMessage(rc); err == nil {
			next[resourcev3.RouteType][name] = entry{res: rc, hash: h}
		}
	}
	return next
}

// warmSecrets is cur plus the added secrets, so that listeners using them
// are not left waiting for a certificate.
func warmSecrets(cur, want resourceSet, added []string) resourceSet {
	next := cur.clone()
	for _, n := range added {
		next[resourcev3.SecretType][n] = want[resourcev3.SecretType][n]
	}
	return next
}

// routeConfigClusters returns the clusters of rc for which keep is true.
func routeConfigClusters(rc *routev3.RouteConfiguration, keep map[string]bool) []string {
	seen := map[string]bool{}
	var out []string
	for _, vh := range rc.VirtualHosts {
		for _, r := range vh.Routes {
			for _, c := range envoy.RouteClusters(r) {
				if (keep == nil || keep[c]) && !seen[c] {
					seen[c] = true
					out = append(out, c)
				}
			}
		}
	}
	sort.Strings(out)
	return out
}

// switched is want plus the clusters (with their last endpoints) and route
// configurations of cur that want dropped. A sidecar's route
// configurations go at once: only scopes name them, and want's scopes, in
// the same step, no longer do (a listener that still names one, for a
// gateway or a gRPC client, may be draining).
func switched(cur, want resourceSet, role envoy.Role) resourceSet {
	next := maps.Clone(want) // the types with nothing to keep share want's maps
	kept := []string{resourcev3.ClusterType, resourcev3.EndpointType, resourcev3.SecretType, resourcev3.RouteType}
	if role == envoy.Sidecar {
		kept = kept[:3]
	}
	for _, t := range kept {
		if sameMap(cur[t], want[t]) {
			continue
		}
		for n, e := range cur[t] {
			if _, ok := next[t][n]; !ok {
				if sameMap(next[t], want[t]) {
					next[t] = maps.Clone(want[t])
				}
				next[t][n] = e
			}
		}
	}
	return next
}

// standbyNewlyNamed is cur where each gRPC route configuration that want
// makes name clusters it did not name has them in its standby route.
func standbyNewlyNamed(cur, want resourceSet) resourceSet {
	if sameMap(cur[resourcev3.RouteType], want[resourcev3.RouteType]) {
		return cur
	}
	next := maps.Clone(cur) // sharing cur's maps but for route configurations
	next[resourcev3.RouteType] = maps.Clone(cur[resourcev3.RouteType])
	for name, e := range want[resourcev3.RouteType] {
		old, ok := cur[resourcev3.RouteType][name]
		if !ok {
			continue
		}
		needs := newlyNamedIn(old, e)
		if len(needs) == 0 {
			continue
		}
		rc := envoy.WithStandby(old.res.(*routev3.RouteConfiguration), needs)
		if h, err := hashMessage(rc); err == nil {
			next[resourcev3.RouteType][name] = entry{res: rc, hash: h}
		}
	}
	return next
}

// newlyNamedIn returns the clusters route configuration e names and old does not.
func newlyNamedIn(old, e entry) []string {
	named := map[string]bool{}
	for _, c := range routeConfigClusters(old.res.(*routev3.RouteConfiguration), nil) {
		named[c] = true
	}
	var out []string
	for _, c := range routeConfigClusters(e.res.(*routev3.RouteConfiguration), nil) {
		if !named[c] {
			out = append(out, c)
		}
	}
	return out
}

// newlyNamed returns the clusters the route configurations of next name
// that the same route configurations of cur did not.
func newlyNamed(cur, next resourceSet) []string {
	var out []string
	for name, e := range next[resourcev3.RouteType] {
		if old, ok := cur[resourcev3.RouteType][name]; ok {
			out = append(out, newlyNamedIn(old, e)...)
		}
	}
	sort.Strings(out)
	return out
}

// config is one immutable configuration, with what is derived from it
// computed once however many nodes it is published to: its versions, its
// snapshot, and the steps from the configurations nodes have towards it.
// Nodes of one key move in step, so a thousand of them share one config
// per step. Only the Server's goroutines holding its mutex touch steps and
// changed.
type config struct {
	set      resourceSet
	versions map[string]string
	snap     *snapshot
	// steps memoizes stepTo from a published config (nil: none yet) to
	// this one while it is a key's desired configuration; changed memoizes
	// changedNames from another config, by type.
	// Both are keyed weakly: a memo never keeps an older configuration
	// alive, which would chain every configuration a key ever had.
	steps   map[weak.Pointer[config]]stepMemo
	changed map[weak.Pointer[config]]map[string]map[string]bool
}

// stepMemo is one memoized nextStep.
type stepMemo struct {
	next    *config // nil when settled
	st      step
	warming []string // clusters a gRPC warm step newly names
}

// stepTo returns the configuration to publish after cur on the way to
// want, as nextStep does, memoized in want.
func (s *Server) stepTo(cur, want *config, role envoy.Role) stepMemo {
	if cur == want {
		return stepMemo{st: stepSettled}
	}
	if m, ok := want.steps[weak.Make(cur)]; ok {
		return m
	}
	var curSet resourceSet
	if cur != nil {
		curSet = cur.set
	}
	next, st := nextStep(curSet, want.set, role)
	m := stepMemo{st: st}
	switch {
	case st == stepSettled:
	case cur == nil || st == stepRetire || next.equal(want.set):
		m.next = want // nextStep returned want itself, or its equal
	default:
		m.next = s.newConfig(next, nil, role, true, want, cur)
		s.wireStale = true
	}
	if st == stepWarm && role == envoy.GRPC && cur != nil {
		m.warming = newlyNamed(cur.set, m.next.set)
	}
	if want.steps == nil {
		want.steps = map[weak.Pointer[config]]stepMemo{}
	}
	want.steps[weak.Make(cur)] = m
	return m
}

// changedFrom returns the names of typeURL added, changed or removed from
// old to c, memoized in c.
func (c *config) changedFrom(old *config, typeURL string) map[string]bool {
	if c.changed == nil {
		c.changed = map[weak.Pointer[config]]map[string]map[string]bool{}
	}
	byType := c.changed[weak.Make(old)]
	if byType == nil {
		byType = map[string]map[string]bool{}
		c.changed[weak.Make(old)] = byType
	}
	names, ok := byType[typeURL]
	if !ok {
		names = c.set.changedNames(old.set, typeURL)
		byType[typeURL] = names
	}
	return names
}

// forget drops the memoized steps and differences, which refer to older
// configurations, once c is no longer desired.
func (c *config) forget() {
	c.steps, c.changed = nil, nil
}

// wireKey names one resource content: type, name and content hash.
type wireKey struct{ typeURL, name, hash string }

// wireEntry is the one copy of a resource content that every configuration
// holding it shares, and its encoding for the wire.
type wireEntry struct {
	e    entry
	wire types.Resource
	// refs counts the live maps holding it; stepGen is the last update
	// whose steps towards the desired configurations use it.
	refs    int
	stepGen uint64
}

// liveMap is a map of a desired configuration: the last update whose
// desired configurations hold it, and the shared copies it counts in.
type liveMap struct {
	gen     uint64
	entries []*wireEntry
}

// newConfig wraps set, whose maps it may modify: each entry becomes the
// shared copy of the same content (so that keys and steps holding equal
// resources hold them once), and the snapshot is built. A map of set that
// a related configuration (or another of this update's) holds is taken
// as it is, with its wire map and version; any other must not be shared
// yet. memo (nil: none) holds encodings already made. step says set is
// a step towards a key's desired configuration, not one.
//
// A shared copy holds only the resource's encoding (as unknown fields of
// a message of its type), which takes a fraction of the message's memory
// and encodes to the same bytes; only the route configurations of gRPC
// keys stay messages, as their steps read them (see warm).
func (s *Server) newConfig(set resourceSet, memo *encodingMemo, role envoy.Role, step bool, related ...*config) *config {
	c := &config{set: set, versions: map[string]string{}}
	snap := &snapshot{versions: c.versions, wire: map[string]map[string]types.ResourceWithTTL{}, set: set}
	for _, t := range typeURLs {
		read := role == envoy.GRPC && t == resourcev3.RouteType
		w := s.wiredType(t, set[t], memo, read, step, related)
		snap.wire[t] = w.wire
		if reported(t, len(set[t])) {
			c.versions[t] = w.version
		}
	}
	c.snap = snap
	return c
}

// wiredType is what newConfig derives from one type's map.
type wiredType struct {
	wire    map[string]types.ResourceWithTTL
	version string
}

// wiredKey names a map newConfig derived a wiredType from this update.
type wiredKey struct {
	m    unsafe.Pointer
	read bool
}

// wiredType returns the wire map and version of m, of type t, wiring its
// entries to the shared copies unless a related configuration or an
// earlier call of this update did. read: keep route configurations as
// messages. step: m is a step's, whose copies are marked as only steps'
// (see sweepWireLocked); the maps a step takes from the configurations it
// goes between are not marked again.
func (s *Server) wiredType(t string, m map[string]entry, memo *encodingMemo, read, step bool, related []*config) wiredType {
	k := wiredKey{mapPointer(m), read}
	if w, ok := s.wired[k]; ok { // nil outside an update: no memo
		return w
	}
	for _, c := range related {
		if c != nil && sameMap(c.set[t], m) {
			v, ok := c.versions[t]
			if !ok {
				v = typeVersion(m)
			}
			if !step {
				s.markMapInUse(t, m)
			}
			return wiredType{wire: c.snap.wire[t], version: v}
		}
	}
	if w, ok := memo.derived(m); ok {
		s.markMapInUse(t, m)
		return w
	}
	wire := make(map[string]types.ResourceWithTTL, len(m))
	var live *liveMap
	if !step && s.live[mapPointer(m)] == nil {
		live = &liveMap{gen: s.gen, entries: make([]*wireEntry, 0, len(m))}
	}
	for name, e := range m {
		k := wireKey{t, name, e.hash}
		w := s.wire[k]
		if w == nil {
			b := memo.encoded(e.res)
			if b == nil {
				b = encode(e.res)
			}
			w = &wireEntry{wire: unknownOnly(e.res, b)}
			w.e = entry{res: w.wire, hash: e.hash}
			if read {
				// A copy of its own: the Builder's message shares an
				// allocation with every route of the mesh, which a
				// configuration kept after a scale-down would pin.
				w.e.res = proto.Clone(e.res)
			}
			s.wire[k] = w
		}
		if step {
			w.stepGen = s.gen
		} else if live != nil {
			w.refs++
			live.entries = append(live.entries, w)
		}
		if (!read || !encodedOnly(w.e.res) || encodedOnly(e.res)) && e != w.e {
			m[name] = w.e
		}
		wire[name] = types.ResourceWithTTL{Resource: w.wire}
	}
	if live != nil {
		s.live[mapPointer(m)] = live
	} else if !step {
		s.live[mapPointer(m)].gen = s.gen
	}
	out := wiredType{wire: wire, version: typeVersion(m)}
	if s.wired != nil {
		s.wired[k] = out
	}
	return out
}

// markInUse marks c's shared copies as used by this update.
func (s *Server) markInUse(c *config) {
	for t, m := range c.set {
		s.markMapInUse(t, m)
	}
}

// markMapInUse marks m, a map of type t, as held by a desired
// configuration of this update. A map marked by the update before costs
// nothing; one not, a walk of its entries, whose shared copies count it
// in until an update ends without marking it (see pruneWire).
func (s *Server) markMapInUse(t string, m map[string]entry) {
	p := mapPointer(m)
	if lm := s.live[p]; lm != nil {
		lm.gen = s.gen
		return
	}
	lm := &liveMap{gen: s.gen, entries: make([]*wireEntry, 0, len(m))}
	for name, e := range m {
		if w := s.wire[wireKey{t, name, e.hash}]; w != nil {
			w.refs++
			lm.entries = append(lm.entries, w)
		}
	}
	s.live[p] = lm
}

// pruneWire forgets the shared copies that no desired configuration of
// this update uses, nor, with steps, a step towards one; configurations
// that still hold one keep it.
func (s *Server) pruneWire(steps bool) {
	s.wirePeak = max(s.wirePeak, len(s.wire))
	for p, lm := range s.live {
		if lm.gen < s.gen {
			for _, w := range lm.entries {
				w.refs--
			}
			delete(s.live, p)
		}
	}
	for k, w := range s.wire {
		if w.refs == 0 && (!steps || w.stepGen < s.gen) {
			delete(s.wire, k)
		}
	}
	// A map keeps the memory of its largest size: once it shrank to a
	// fraction of it, its entries move to a map of their own size.
	if 4*len(s.wire) < s.wirePeak {
		wire := make(map[wireKey]*wireEntry, len(s.wire))
		for k, w := range s.wire {
			wire[k] = w
		}
		s.wire, s.wirePeak = wire, len(wire)
	}
}

// encode returns m's deterministic encoding, nil if it does not encode
// (never for generated Envoy types).
func encode(m types.Resource) []byte {
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(m)
	if err != nil {
		return nil
	}
	return b
}

// unknownOnly returns a message of m's type that holds b, m's
// deterministic encoding, as unknown fields: encoding it again is a copy,
// the same bytes go-control-plane would produce from m. With no encoding,
// m itself is returned.
func unknownOnly(m types.Resource, b []byte) types.Resource {
	if b == nil {
		return m
	}
	w := m.ProtoReflect().Type().New()
	w.SetUnknown(b)
	return w.Interface()
}

// encodedOnly reports whether m holds only an encoding (see unknownOnly).
func encodedOnly(m types.Resource) bool {
	return len(m.ProtoReflect().GetUnknown()) > 0
}

// encodingMemo holds the encodings of the resources the keys of one
// update share (a Builder hands every key the same pointers), so that each
// is encoded and hashed once: the Builder's own memo for resources it
// built (which outlives the update for those the next Builder carries),
// this one's for others. A nil memo holds nothing. Safe for concurrent
// use.
type encodingMemo struct {
	builder *envoy.Builder
	mu      sync.Mutex
	m       map[proto.Message]envoy.Encoding
	// lists are the maps built from the Builder's lists; canon maps one
	// of them to the older map with its content, and olds holds what was
	// derived from that (see sameAs). held are the maps the keys held
	// for the lists of the update before (see heldLists), reused are
	// those of them keys hold again.
	lists  map[listKey]*listMap
	canon  map[unsafe.Pointer]map[string]entry
	olds   map[unsafe.Pointer]wiredType
	held   map[listKey]map[string]entry
	reused map[listKey]map[string]entry
}

// newEncodingMemo returns a memo for an update from b (nil: none); held
// are the heldLists of the update before.
func newEncodingMemo(b *envoy.Builder, held map[listKey]map[string]entry) *encodingMemo {
	return &encodingMemo{builder: b, m: map[proto.Message]envoy.Encoding{}, lists: map[listKey]*listMap{},
		canon: map[unsafe.Pointer]map[string]entry{}, olds: map[unsafe.Pointer]wiredType{},
		held: held, reused: map[listKey]map[string]entry{}}
}

// encoded returns m's encoding if e or its Builder made it, else nil.
func (e *encodingMemo) encoded(m types.Resource) []byte {
	if e == nil {
		return nil
	}
	if enc, built, err := e.builder.Encoding(m); built && err == nil {
		return enc.Bytes
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.m[m].Bytes
}

// encode returns m's deterministic encoding and its hash.
func (e *encodingMemo) encode(m proto.Message) (envoy.Encoding, error) {
	if e != nil {
		if enc, built, err := e.builder.Encoding(m); built {
			return enc, err
		}
		e.mu.Lock()
		enc, ok := e.m[m]
		e.mu.Unlock()
		if ok {
			return enc, nil
		}
	}
	enc, err := envoy.EncodingOf(m)
	if err != nil {
		return envoy.Encoding{}, err
	}
	if e != nil {
		e.mu.Lock()
		e.m[m] = enc
		e.mu.Unlock()
	}
	return enc, nil
}

// heldLists returns, for each of the Builder's lists a map was built from
// this update or the one before, the map the keys hold for it: the map
// built, or the older one sameAs gave them in its place.
func (e *encodingMemo) heldLists() map[listKey]map[string]entry {
	out := make(map[listKey]map[string]entry, len(e.lists)+len(e.reused))
	for k, lm := range e.lists {
		if lm.m == nil {
			continue
		}
		if c, ok := e.canon[mapPointer(lm.m)]; ok {
			out[k] = c
		} else {
			out[k] = lm.m
		}
	}
	for k, m := range e.reused {
		out[k] = m
	}
	return out
}

// encodedResources returns r's resources by type and name with their
// content hashes; memo (nil: none) encodes each message once per update.
// A type's map built from a list of the Builder's that other keys of the
// update got too (clusters and load assignments of the mesh, a host's
// route configurations, shared scopes) is built once and shared by them;
// a gRPC key's route configurations, which newConfig keeps as messages,
// are its own.
func encodedResources(r *envoy.Resources, memo *encodingMemo, role envoy.Role, last resourceSet) (resourceSet, error) {
	s := resourceSet{}
	var errs [6]error
	s[resourcev3.ListenerType], errs[0] = typeMap(memo, true, resourcev3.ListenerType, r.Listeners, (*listenerv3.Listener).GetName, last)
	s[resourcev3.ScopedRouteType], errs[1] = typeMap(memo, true, resourcev3.ScopedRouteType, r.Scopes, (*routev3.ScopedRouteConfiguration).GetName, last)
	s[resourcev3.RouteType], errs[2] = typeMap(memo, role != envoy.GRPC, resourcev3.RouteType, r.Routes, (*routev3.RouteConfiguration).GetName, last)
	s[resourcev3.ClusterType], errs[3] = typeMap(memo, true, resourcev3.ClusterType, r.Clusters, (*clusterv3.Cluster).GetName, last)
	s[resourcev3.EndpointType], errs[4] = typeMap(memo, true, resourcev3.EndpointType, r.Endpoints, (*endpointv3.ClusterLoadAssignment).GetClusterName, last)
	s[resourcev3.SecretType], errs[5] = typeMap(memo, true, resourcev3.SecretType, r.Secrets, (*tlsv3.Secret).GetName, last)
	if err := errors.Join(errs[:]...); err != nil {
		return nil, err
	}
	return s, nil
}

// listKey names one list of the Builder's: its type, first element and
// length. A Builder never changes a list it handed out.
type listKey struct {
	typeURL string
	first   unsafe.Pointer
	n       int
}

// listMap is the map built from one list, once.
type listMap struct {
	once sync.Once
	m    map[string]entry
	err  error
}

// typeMap returns items by name with their hashes; shared, the same map
// for every call of one update with the same list, and the map the key
// holds in last (its last configuration, nil if none) if that is the one
// keys held for the same list after the update before.
func typeMap[T proto.Message](memo *encodingMemo, shared bool, typeURL string, items []T, name func(T) string, last resourceSet) (map[string]entry, error) {
	build := func() (map[string]entry, error) {
		m := make(map[string]entry, len(items))
		for _, it := range items {
			enc, err := memo.encode(it)
			if err != nil {
				return nil, err
			}
			m[name(it)] = entry{res: it, hash: enc.Hash}
		}
		return m, nil
	}
	if memo == nil || !shared || len(items) == 0 {
		return build()
	}
	k := listKey{typeURL, unsafe.Pointer(unsafe.SliceData(items)), len(items)}
	if h := memo.held[k]; h != nil && sameMap(h, last[typeURL]) {
		memo.mu.Lock()
		memo.reused[k] = h
		memo.mu.Unlock()
		return h, nil
	}
	memo.mu.Lock()
	lm := memo.lists[k]
	if lm == nil {
		lm = &listMap{}
		memo.lists[k] = lm
	}
	memo.mu.Unlock()
	lm.once.Do(func() { lm.m, lm.err = build() })
	return lm.m, lm.err
}

// sameAs returns the map of type t to hold in place of m, built this
// update: an older map with the same content if there is one, so that
// configurations of successive updates share what did not change
// (comparing them, deriving their snapshots and diffing them then costs
// nothing). The first older map found equal, last's (the key's last
// configuration), is the one every key holding m gets; newConfig takes
// what last derived from it (see derived).
func (e *encodingMemo) sameAs(t string, m map[string]entry, last *config) map[string]entry {
	if e == nil || last == nil || sameMap(m, last.set[t]) {
		return m
	}
	p := mapPointer(m)
	e.mu.Lock()
	c, ok := e.canon[p]
	e.mu.Unlock()
	if ok {
		return c
	}
	old := last.set[t]
	if !equalEntries(m, old) {
		return m
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if c, ok := e.canon[p]; ok {
		return c
	}
	e.canon[p] = old
	v, ok := last.versions[t]
	if !ok {
		v = typeVersion(old)
	}
	e.olds[mapPointer(old)] = wiredType{wire: last.snap.wire[t], version: v}
	return old
}

// derived returns what newConfig derived from m, a map sameAs handed out
// in place of a new one.
func (e *encodingMemo) derived(m map[string]entry) (wiredType, bool) {
	if e == nil {
		return wiredType{}, false
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	w, ok := e.olds[mapPointer(m)]
	return w, ok
}

// snapshot is a config as go-control-plane's cache serves it. State of the
// world responses are encoded from the pre-encoded copies (one encoding
// per resource, not one per resource per node); delta responses, the
// resources' names and tests read the config's entries, which are the
// same copies but for gRPC route configurations. Both encode to the same
// bytes. It is immutable but for what it computes once.
type snapshot struct {
	versions map[string]string
	wire     map[string]map[string]types.ResourceWithTTL
	set      resourceSet

	once       sync.Once
	versionMap map[string]map[string]string

	mu        sync.Mutex
	resources map[string]map[string]types.Resource // GetResources', by type
	// narrowed holds, by type and subscription, the encoded resources a
	// proxy asking for a few names gets, and their version (see nodeView).
	narrowed        map[narrowKey]map[string]types.ResourceWithTTL
	narrowedVersion map[narrowKey]string
	// ids name the maps the views hand out (see mapID); changed memoizes
	// changedSince by the ids of both maps.
	ids     map[narrowKey]uint64
	changed map[[2]uint64]wireResources
}

// lastMapID counts the maps named by mapID, in every snapshot.
var lastMapID atomic.Uint64

// mapID returns a number naming the map of typeURL's resources the view of
// a node asking for names gets (nil: the whole type), never another map's,
// so that a map can be remembered by it without being kept alive.
func (sn *snapshot) mapID(typeURL string, names *nameSet) uint64 {
	sn.mu.Lock()
	defer sn.mu.Unlock()
	k := keyOf(typeURL, names)
	id, ok := sn.ids[k]
	if !ok {
		id = lastMapID.Add(1)
		if sn.ids == nil {
			sn.ids = map[narrowKey]uint64{}
		}
		sn.ids[k] = id
	}
	return id
}

// changedSince returns the resources of full, the map named fullID, that
// the base h holds does not: those absent from it or another shared copy.
// Nodes holding the same base share the result.
func (sn *snapshot) changedSince(h holding, fullID uint64, full wireResources) wireResources {
	k := [2]uint64{h.baseID, fullID}
	sn.mu.Lock()
	out, ok := sn.changed[k]
	sn.mu.Unlock()
	if ok {
		return out
	}
	out = holding{base: h.base}.response("", full)
	sn.mu.Lock()
	defer sn.mu.Unlock()
	if sn.changed == nil {
		sn.changed = map[[2]uint64]wireResources{}
	}
	sn.changed[k] = out
	return out
}

// narrows reports whether a proxy asking for names (nil: all) of a type
// with total resources gets a narrowed view: few names, on a SotW stream.
func narrows(names *nameSet, total int) bool {
	return names != nil && 2*len(names.names) <= total
}

// versionFor returns the version of typeURL for a proxy asking for names
// (nil: all): a hash of the resources it names that the configuration
// has, so that a change to other resources is no change to it
// (state-of-the-world versions are per type, and an unchanged version
// sends nothing). Asking for every resource, it is the configuration's
// version: equal content and subscription, equal version.
func (sn *snapshot) versionFor(typeURL string, names *nameSet) string {
	if names == nil {
		return sn.versions[typeURL]
	}
	sn.mu.Lock()
	defer sn.mu.Unlock()
	k := keyOf(typeURL, names)
	if v, ok := sn.narrowedVersion[k]; ok {
		return v
	}
	sorted := slices.Clone(names.names)
	slices.Sort(sorted)
	h := sha256.New()
	for _, n := range slices.Compact(sorted) {
		if e, ok := sn.set[typeURL][n]; ok {
			fmt.Fprintf(h, "%s\x00%s\x00", n, e.hash)
		}
	}
	v := hex.EncodeToString(h.Sum(nil))[:16]
	if sn.narrowedVersion == nil {
		sn.narrowedVersion = map[narrowKey]string{}
	}
	sn.narrowedVersion[k] = v
	return v
}

// narrowKey names what a snapshot computed for the proxies asking for
// one set of names of a type. It holds the set weakly: a configuration
// kept after a scale-down does not keep the subscriptions of thousands
// of names its proxies had when it was published.
type narrowKey struct {
	typeURL string
	names   weak.Pointer[nameSet] // zero: all names
}

func keyOf(typeURL string, names *nameSet) narrowKey {
	switch {
	case names == nil:
		return narrowKey{typeURL: typeURL}
	case names.self == weak.Pointer[nameSet]{}: // not interned
		return narrowKey{typeURL, weak.Make(names)}
	}
	return narrowKey{typeURL, names.self}
}

// narrow returns the encoded resources of typeURL that names holds,
// computed once per subscription.
func (sn *snapshot) narrow(typeURL string, names *nameSet) map[string]types.ResourceWithTTL {
	sn.mu.Lock()
	defer sn.mu.Unlock()
	k := keyOf(typeURL, names)
	if m, ok := sn.narrowed[k]; ok {
		return m
	}
	all := sn.wire[typeURL]
	m := make(map[string]types.ResourceWithTTL, len(names.names))
	for _, n := range names.names {
		if r, ok := all[n]; ok {
			m[n] = r
		}
	}
	if sn.narrowed == nil {
		sn.narrowed = map[narrowKey]map[string]types.ResourceWithTTL{}
	}
	sn.narrowed[k] = m
	return m
}

// nodeView is one node's view of a snapshot. go-control-plane sizes what
// it keeps of each state-of-the-world response by every resource of the
// type, though the proxy asked for a few (a gRPC client of one service
// among thousands); the view hands it only the resources the node's
// current subscription names, which is all a response to it can hold.
// Of route configurations and load assignments it hands a SotW node only
// those that differ from what the node holds (see partial.go).
type nodeView struct {
	*snapshot
	node    string
	tracker *proxyTracker
}

// GetResourcesAndTTL returns the encoded resources the node asked for,
// but for the route configurations and load assignments it holds. Its
// version is GetVersion's. The map is shared: callers must not modify it.
func (v *nodeView) GetResourcesAndTTL(typeURL string) map[string]types.ResourceWithTTL {
	names, held := v.tracker.sotw(v.node, typeURL)
	full := v.snapshot.GetResourcesAndTTL(typeURL)
	fullNames := (*nameSet)(nil)
	if narrows(names, len(full)) {
		full, fullNames = v.snapshot.narrow(typeURL, names), names
	}
	if held.st == nil {
		return full
	}
	version := v.snapshot.versionFor(typeURL, names)
	fullID := v.snapshot.mapID(typeURL, fullNames)
	var resp wireResources
	if held.nacked == nil && held.baseID != 0 && len(held.again) == 0 {
		// What most nodes of a key get: the same change from the same base.
		resp = v.snapshot.changedSince(held, fullID, full)
	} else {
		resp = held.response(version, full)
	}
	v.tracker.offered(held, offer{version: version, full: full, fullID: fullID, resp: resp, asks: held.asks})
	return resp
}

// GetVersion returns the version of what the node asked for.
func (v *nodeView) GetVersion(typeURL string) string {
	return v.snapshot.versionFor(typeURL, v.tracker.subscription(v.node, typeURL))
}

var _ cachev3.ResourceSnapshot = (*snapshot)(nil)

// GetVersion returns the version of a type ("" for a type weir does not
// serve).
func (sn *snapshot) GetVersion(typeURL string) string { return sn.versions[typeURL] }

// GetResourcesAndTTL returns the pre-encoded resources, which go-control-plane
// marshals into state-of-the-world responses.
func (sn *snapshot) GetResourcesAndTTL(typeURL string) map[string]types.ResourceWithTTL {
	return sn.wire[typeURL]
}

// GetResources returns the resources by name as go-control-plane's delta
// responses marshal them: the shared copies, most holding only their
// encoding (see unknownOnly), made once per type. Read their fields with
// Messages.
func (sn *snapshot) GetResources(typeURL string) map[string]types.Resource {
	sn.mu.Lock()
	defer sn.mu.Unlock()
	if msgs, ok := sn.resources[typeURL]; ok {
		return msgs
	}
	wire := sn.wire[typeURL]
	msgs := make(map[string]types.Resource, len(wire))
	for name, r := range wire {
		msgs[name] = r.Resource
	}
	if sn.resources == nil {
		sn.resources = map[string]map[string]types.Resource{}
	}
	sn.resources[typeURL] = msgs
	return msgs
}

// Messages returns the resources by name as messages with their fields:
// those held encoded only are decoded, on every call.
func (sn *snapshot) Messages(typeURL string) map[string]types.Resource {
	m := sn.set[typeURL]
	msgs := make(map[string]types.Resource, len(m))
	for name, e := range m {
		msgs[name] = decoded(e.res)
	}
	return msgs
}

// decoded returns m as a message with its fields, decoding it if it holds
// only its encoding (see unknownOnly). Generated types always decode
// their own encoding; were one not to, m is returned as it is, which
// encodes the same.
func decoded(m types.Resource) types.Resource {
	if !encodedOnly(m) {
		return m
	}
	out := m.ProtoReflect().Type().New().Interface()
	if err := proto.Unmarshal(m.ProtoReflect().GetUnknown(), out); err != nil {
		return m
	}
	return out
}

// ConstructVersionMap does nothing: the versions are the content hashes.
func (sn *snapshot) ConstructVersionMap() error { return nil }

// GetVersionMap returns each resource's content hash, by name.
func (sn *snapshot) GetVersionMap(typeURL string) map[string]string {
	sn.init()
	return sn.versionMap[typeURL]
}

func (sn *snapshot) init() {
	sn.once.Do(func() {
		sn.versionMap = map[string]map[string]string{}
		for t, m := range sn.set {
			versions := make(map[string]string, len(m))
			for name, e := range m {
				versions[name] = e.hash
			}
			sn.versionMap[t] = versions
		}
	})
}
