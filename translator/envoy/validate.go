package envoy

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"sync"
	"unsafe"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	"google.golang.org/protobuf/proto"
)

// validator is what every generated Envoy message implements.
type validator interface{ ValidateAll() error }

// Validate checks every resource with its ValidateAll and then the references
// between them: each listener's route configuration exists (API listeners
// included), each scope's route configuration exists and no two scopes
// share a key, each route's clusters exist, each EDS cluster has a load
// assignment, names are unique per type, and no domain appears twice in one
// route configuration. It returns all problems found, joined.
func Validate(r *Resources) error { return validate(r, nil) }

// Validate returns what Validate(r) returns. A resource of r that b built
// is checked with ValidateAll once per Builder, however many calls and
// proxies it appears in; what depends on the other resources of r (names
// unique, references resolved) is checked on every call. Safe for
// concurrent use.
func (b *Builder) Validate(r *Resources) error { return validate(r, &b.valid) }

// validate is Validate remembering, in cache (nil: none), what is known of
// the resources a Builder built, and of the lists it handed out.
func validate(r *Resources, cache *validCache) error {
	var errs []error
	errs = append(errs, checkList(cache, "listener", r.Listeners, func(l *listenerv3.Listener) string { return l.Name })...)
	errs = append(errs, checkList(cache, "route configuration", r.Routes, func(rc *routev3.RouteConfiguration) string { return rc.Name })...)
	errs = append(errs, checkList(cache, "cluster", r.Clusters, func(c *clusterv3.Cluster) string { return c.Name })...)
	errs = append(errs, checkList(cache, "load assignment", r.Endpoints, func(e *endpointv3.ClusterLoadAssignment) string { return e.ClusterName })...)
	errs = append(errs, checkList(cache, "secret", r.Secrets, func(s *tlsv3.Secret) string { return s.Name })...)
	errs = append(errs, validateScopes(cache, r.Scopes, r.Routes)...)
	errs = append(errs, checkRefs(cache, r)...)
	return errors.Join(errs...)
}

// checkList is validateEach of items, worked out once per list with a
// cache.
func checkList[T validator](cache *validCache, kind string, items []T, name func(T) string) []error {
	if cache == nil || len(items) == 0 {
		return validateEach(kind, items, nil, name)
	}
	c := memoEntry(cache, &cache.lists, idOf(items))
	c.once.Do(func() { c.errs = validateEach(kind, items, lookupAll(cache, items), name) })
	return c.errs
}

// checkRefs checks the references between r's lists: listeners name
// route configurations, routes name clusters, EDS clusters name load
// assignments. With a cache, each is worked out once per pair of lists:
// proxy keys whose listeners differ share the check of the same routes
// against the same clusters.
func checkRefs(cache *validCache, r *Resources) []error {
	if cache == nil {
		return slices.Concat(listenerRefs(r.Listeners, r.Routes, nil), routeRefsIn(r.Routes, r.Clusters, nil), endpointRefs(r.Clusters, r.Endpoints))
	}
	pair := func(kind refsKind, a, b listID, check func() []error) []error {
		c := memoEntry(cache, &cache.refs, refsKey{kind, a, b})
		c.once.Do(func() { c.errs = check() })
		return c.errs
	}
	routes, clusters := idOf(r.Routes), idOf(r.Clusters)
	return slices.Concat(
		pair(listenersToRoutes, idOf(r.Listeners), routes, func() []error {
			return listenerRefs(r.Listeners, r.Routes, lookupAll(cache, r.Listeners))
		}),
		pair(routesToClusters, routes, clusters, func() []error {
			return routeRefsIn(r.Routes, r.Clusters, lookupAll(cache, r.Routes))
		}),
		pair(clustersToEndpoints, clusters, idOf(r.Endpoints), func() []error { return endpointRefs(r.Clusters, r.Endpoints) }))
}

// validateEach checks items[i] with known[i] when there is one (a nil or
// short known means none).
func validateEach[T validator](kind string, items []T, known []*validation, name func(T) string) []error {
	var errs []error
	seen := make(map[string]bool, len(items))
	for i, it := range items {
		n := name(it)
		if seen[n] {
			errs = append(errs, fmt.Errorf("%s %q: defined twice", kind, n))
		}
		seen[n] = true
		if err := knownAt(known, i).validateAll(it); err != nil {
			errs = append(errs, fmt.Errorf("%s %q: %w", kind, n, err))
		}
	}
	return errs
}

// listenerRefs checks that the route configurations listeners name are
// among routes; known[i], if any, is what is known of listeners[i].
func listenerRefs(listeners []*listenerv3.Listener, routes []*routev3.RouteConfiguration, known []*validation) []error {
	if len(listeners) == 0 {
		return nil
	}
	var errs []error
	routeNames := namesOf(routes, (*routev3.RouteConfiguration).GetName)
	for i, l := range listeners {
		for _, name := range knownAt(known, i).listenerRouteNames(l) {
			if !routeNames[name] {
				errs = append(errs, fmt.Errorf("listener %q: route configuration %q does not exist", l.Name, name))
			}
		}
	}
	return errs
}

// routeRefsIn checks that the clusters routes use are among clusters, and
// that no route configuration claims a domain twice; known[i], if any, is
// what is known of routes[i].
func routeRefsIn(routes []*routev3.RouteConfiguration, clusters []*clusterv3.Cluster, known []*validation) []error {
	if len(routes) == 0 {
		return nil
	}
	var errs []error
	names := namesOf(clusters, (*clusterv3.Cluster).GetName)
	for i, rc := range routes {
		errs = append(errs, checkRouteRefs(rc, knownAt(known, i).routeRefs(rc), names)...)
	}
	return errs
}

// namesOf returns the set of the names of items.
func namesOf[T any](items []T, name func(T) string) map[string]bool {
	set := make(map[string]bool, len(items))
	for _, it := range items {
		set[name(it)] = true
	}
	return set
}

// endpointRefs checks that every EDS cluster has its load assignment.
func endpointRefs(clusters []*clusterv3.Cluster, endpoints []*endpointv3.ClusterLoadAssignment) []error {
	if len(clusters) == 0 {
		return nil
	}
	var errs []error
	assignments := namesOf(endpoints, (*endpointv3.ClusterLoadAssignment).GetClusterName)
	for _, c := range clusters {
		if c.GetType() == clusterv3.Cluster_EDS && !assignments[edsName(c)] {
			errs = append(errs, fmt.Errorf("cluster %q: no load assignment %q", c.Name, edsName(c)))
		}
	}
	return errs
}

func edsName(c *clusterv3.Cluster) string {
	if n := c.GetEdsClusterConfig().GetServiceName(); n != "" {
		return n
	}
	return c.Name
}

// validateScopes checks each scope, that its route configuration is one of
// routes, and that no two scopes have one name or one key. With a cache,
// what depends on the scopes alone is worked out once per list (a
// namespace's sidecars share theirs, of a hundred thousand scopes in a
// large mesh).
func validateScopes(cache *validCache, scopes []*routev3.ScopedRouteConfiguration, routes []*routev3.RouteConfiguration) []error {
	if len(scopes) == 0 {
		return nil
	}
	c := &scopeListCheck{}
	if cache != nil {
		c = memoEntry(cache, &cache.scopeLists, idOf(scopes))
	}
	c.once.Do(func() { c.errs, c.routes = checkScopes(cache, scopes) })
	errs := slices.Clip(c.errs)
	routeNames := namesOf(routes, (*routev3.RouteConfiguration).GetName)
	for _, ref := range c.routes {
		if !routeNames[ref.route] {
			errs = append(errs, fmt.Errorf("scope %q: route configuration %q does not exist", ref.scope, ref.route))
		}
	}
	return errs
}

// scopeListCheck is what is known of a list of scopes: the problems of the
// list itself, and the route configurations it names.
type scopeListCheck struct {
	once   sync.Once
	errs   []error
	routes []scopeRef
}

// scopeRef is a route configuration a list of scopes names, and the first
// scope that names it.
type scopeRef struct{ scope, route string }

// checkScopes returns the problems of scopes and the route configurations
// they name.
func checkScopes(cache *validCache, scopes []*routev3.ScopedRouteConfiguration) (errs []error, routes []scopeRef) {
	errs = validateEach("scope", scopes, lookupAll(cache, scopes), func(s *routev3.ScopedRouteConfiguration) string { return s.Name })
	named := map[string]bool{}
	keys := make(map[string]string, len(scopes))
	for _, sc := range scopes {
		if !named[sc.RouteConfigurationName] {
			named[sc.RouteConfigurationName] = true
			routes = append(routes, scopeRef{sc.Name, sc.RouteConfigurationName})
		}
		fragments := sc.GetKey().GetFragments()
		key := ""
		if len(fragments) == 1 {
			key = fragments[0].GetStringKey()
		} else {
			for _, f := range fragments {
				key += f.GetStringKey() + "\x00"
			}
		}
		if other, ok := keys[key]; ok {
			errs = append(errs, fmt.Errorf("scopes %q and %q: same key", other, sc.Name))
		}
		keys[key] = sc.Name
	}
	return errs, routes
}

// listenerRouteNames returns the RDS names used by a listener's HTTP
// connection managers, in filter chains and in an API listener.
func listenerRouteNames(l *listenerv3.Listener) []string {
	var names []string
	add := func(h *hcmv3.HttpConnectionManager) {
		if n := h.GetRds().GetRouteConfigName(); n != "" {
			names = append(names, n)
		}
	}
	if al := l.GetApiListener().GetApiListener(); al != nil {
		h := &hcmv3.HttpConnectionManager{}
		if al.UnmarshalTo(h) == nil {
			add(h)
		}
	}
	for _, fc := range l.FilterChains {
		for _, f := range fc.Filters {
			h := &hcmv3.HttpConnectionManager{}
			if tc := f.GetTypedConfig(); tc != nil && tc.UnmarshalTo(h) == nil {
				add(h)
			}
		}
	}
	return names
}

// routeRefs are the findings of a route configuration's check, in the
// order found: the clusters its routes use, which the resources must
// define, and the domains it claims twice.
type routeRefs struct {
	refs []routeRef
	dups []error // the errors of the refs whose route is -1, in order
}

// routeRef is a cluster that route (an index in the virtual host's Routes)
// of virtual host vhost (an index in the configuration's VirtualHosts)
// uses; route -1 stands for the next of routeRefs.dups.
type routeRef struct {
	cluster      string
	vhost, route int32
}

// routeConfigRefs lists, virtual host by virtual host, the domains rc
// repeats and the clusters its routes use.
func routeConfigRefs(rc *routev3.RouteConfiguration) routeRefs {
	var out routeRefs
	n := 0
	for _, vh := range rc.VirtualHosts {
		n += len(vh.Domains)
	}
	domains := make(map[string]string, n)
	for i, vh := range rc.VirtualHosts {
		for _, d := range vh.Domains {
			if other, ok := domains[d]; ok {
				out.dups = append(out.dups, fmt.Errorf("route configuration %q: domain %q in virtual hosts %q and %q", rc.Name, d, other, vh.Name))
				out.refs = append(out.refs, routeRef{route: -1})
			}
			domains[d] = vh.Name
		}
		for j, rt := range vh.Routes {
			for _, c := range RouteClusters(rt) {
				out.refs = append(out.refs, routeRef{cluster: c, vhost: int32(i), route: int32(j)})
			}
		}
	}
	out.refs = slices.Clip(out.refs)
	return out
}

func checkRouteRefs(rc *routev3.RouteConfiguration, refs routeRefs, clusters map[string]bool) []error {
	var errs []error
	dups := refs.dups
	for _, ref := range refs.refs {
		switch {
		case ref.route < 0:
			errs, dups = append(errs, dups[0]), dups[1:]
		case !clusters[ref.cluster]:
			vh := rc.VirtualHosts[ref.vhost]
			errs = append(errs, fmt.Errorf("route configuration %q, virtual host %q, route %q: cluster %q does not exist", rc.Name, vh.Name, vh.Routes[ref.route].Name, ref.cluster))
		}
	}
	return errs
}

// RouteClusters returns the clusters a route sends to, then those it mirrors
// to; nil for none.
func RouteClusters(rt *routev3.Route) []string {
	a := rt.GetRoute()
	if a == nil {
		return nil
	}
	var out []string
	if c := a.GetCluster(); c != "" {
		out = append(out, c)
	}
	for _, wc := range a.GetWeightedClusters().GetClusters() {
		out = append(out, wc.Name)
	}
	for _, m := range a.GetRequestMirrorPolicies() {
		out = append(out, m.Cluster)
	}
	return out
}

// validation is what is known of one resource a Builder built; it is
// worked out on first use. A nil *validation knows nothing: its methods
// work it out on every call.
type validation struct {
	once   sync.Once
	err    error    // from ValidateAll
	routes []string // a listener's listenerRouteNames

	refsOnce sync.Once
	refs     routeRefs // a route configuration's routeConfigRefs

	encodeOnce sync.Once
	encoding   Encoding
	encodeErr  error
}

func (v *validation) validateAll(it validator) error {
	if v == nil {
		return it.ValidateAll()
	}
	v.once.Do(func() {
		v.err = it.ValidateAll()
		if l, ok := it.(*listenerv3.Listener); ok {
			v.routes = listenerRouteNames(l)
		}
	})
	return v.err
}

// listenerRouteNames is listenerRouteNames(l); v must be l's.
func (v *validation) listenerRouteNames(l *listenerv3.Listener) []string {
	if v == nil {
		return listenerRouteNames(l)
	}
	_ = v.validateAll(l) // done already: only makes v.routes safe to read
	return v.routes
}

func (v *validation) routeRefs(rc *routev3.RouteConfiguration) routeRefs {
	if v == nil {
		return routeConfigRefs(rc)
	}
	v.refsOnce.Do(func() { v.refs = routeConfigRefs(rc) })
	return v.refs
}

func knownAt(known []*validation, i int) *validation {
	if i < len(known) {
		return known[i]
	}
	return nil
}

// validCache holds a validation for every resource a Builder built, by
// pointer, and what is known of the lists it handed out. Safe for
// concurrent use.
type validCache struct {
	mu sync.RWMutex
	// pending are resources built since the last lookup, registered then:
	// building stays free of the map's cost.
	pending []func(register func(validator, *validation))
	known   map[validator]*validation
	// lists memoizes checkList, refs checkRefs and scopeLists
	// validateScopes. A list's identity is not reused while its entry
	// holds it.
	lists      map[listID]*listCheck
	refs       map[refsKey]*listCheck
	scopeLists map[listID]*scopeListCheck
}

// listID is the identity of a list.
type listID struct {
	first unsafe.Pointer
	n     int
}

func idOf[T any](items []T) listID {
	return listID{unsafe.Pointer(unsafe.SliceData(items)), len(items)}
}

// refsKey is the identity of a pair of lists checkRefs checks, the first
// referring to the second.
type refsKey struct {
	kind     refsKind
	from, to listID
}

type refsKind uint8

const (
	listenersToRoutes refsKind = iota
	routesToClusters
	clustersToEndpoints
)

type listCheck struct {
	once sync.Once
	errs []error
}

// memoEntry returns the entry of k in *m, one of c's memos, making it
// (and the map) the first time.
func memoEntry[K comparable, V any](c *validCache, m *map[K]*V, k K) *V {
	c.mu.Lock()
	defer c.mu.Unlock()
	if *m == nil {
		*m = map[K]*V{}
	}
	e := (*m)[k]
	if e == nil {
		e = new(V)
		(*m)[k] = e
	}
	return e
}

// adopt takes what from knows of it, a resource from's Builder built.
// Only for a cache no other goroutine uses yet.
func (c *validCache) adopt(from *validCache, it validator) {
	if v := from.known[it]; v != nil {
		c.known[it] = v
	}
}

// adoptLists takes what from knows of the lists in ids, and of the pairs
// of them checkRefs checked. Only for a cache no other goroutine uses yet;
// from must be done.
func (c *validCache) adoptLists(from *validCache, ids map[listID]bool) {
	adoptEntries(&c.lists, from.lists, func(id listID) bool { return ids[id] })
	adoptEntries(&c.refs, from.refs, func(k refsKey) bool { return ids[k.from] && ids[k.to] })
	adoptEntries(&c.scopeLists, from.scopeLists, func(id listID) bool { return ids[id] })
}

// adoptEntries copies the entries of from whose key keep accepts into *to.
func adoptEntries[K comparable, V any](to *map[K]V, from map[K]V, keep func(K) bool) {
	for k, v := range from {
		if keep(k) {
			if *to == nil {
				*to = map[K]V{}
			}
			(*to)[k] = v
		}
	}
}

// own registers items as built by the cache's Builder.
func own[T validator](c *validCache, items []T) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.pending = append(c.pending, func(register func(validator, *validation)) {
		vs := make([]validation, len(items))
		for i, it := range items {
			register(it, &vs[i])
		}
	})
}

// lookupAll returns the validation of each of items, nil for those the
// Builder did not build; nil for a nil c.
func lookupAll[T validator](c *validCache, items []T) []*validation {
	if c == nil || len(items) == 0 {
		return nil
	}
	c.registerPending()
	out := make([]*validation, len(items))
	c.mu.RLock()
	defer c.mu.RUnlock()
	for i, it := range items {
		out[i] = c.known[it]
	}
	return out
}

// lookup returns the validation of it, nil if the Builder did not build it.
func (c *validCache) lookup(it validator) *validation {
	c.registerPending()
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.known[it]
}

func (c *validCache) registerPending() {
	c.mu.RLock()
	n := len(c.pending)
	c.mu.RUnlock()
	if n == 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.known == nil {
		c.known = map[validator]*validation{}
	}
	for _, p := range c.pending {
		p(func(it validator, v *validation) { c.known[it] = v })
	}
	c.pending = nil
}

// Encoding is a resource's deterministic encoding and a hash of it.
type Encoding struct {
	Bytes []byte
	Hash  string
}

// Encoding returns the Encoding of m, a resource b built or carried from
// a Builder before it (see Next), made once per resource; built is false,
// and nothing made, for any other m and for a nil b. Safe for concurrent use.
func (b *Builder) Encoding(m proto.Message) (enc Encoding, built bool, err error) {
	it, ok := m.(validator)
	if b == nil || !ok {
		return Encoding{}, false, nil
	}
	v := b.valid.lookup(it)
	if v == nil {
		return Encoding{}, false, nil
	}
	v.encodeOnce.Do(func() { v.encoding, v.encodeErr = EncodingOf(m) })
	return v.encoding, true, v.encodeErr
}

// EncodingOf returns m's deterministic encoding and its hash: the first 8
// bytes of its SHA-256, in hex.
func EncodingOf(m proto.Message) (Encoding, error) {
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(m)
	if err != nil {
		return Encoding{}, fmt.Errorf("encode %T: %w", m, err)
	}
	sum := sha256.Sum256(b)
	return Encoding{Bytes: b, Hash: hex.EncodeToString(sum[:8])}, nil
}
