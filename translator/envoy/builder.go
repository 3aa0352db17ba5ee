package envoy

import (
	"fmt"
	"slices"
	"strings"
	"sync"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"

	"github.com/weir-mesh/weir/translator/ir"
)

// Builder builds the resources of many proxies from one IR, building each
// resource that does not depend on the proxy (clusters, load assignments,
// the gRPC role's listeners and route configurations, the sidecar route
// configuration of a namespace) at most once and returning the same
// pointers, and the same slices of them, to every caller. Resources also
// share messages that are equal in many of them (a catch-all route match, a
// cluster's EDS settings). Callers must not modify returned resources or
// slices; proto.Clone one to change it.
//
// A Builder is safe for concurrent use by many goroutines. It reads the IR
// it was made with, which must not change while the Builder is in use.
type Builder struct {
	in *ir.IR

	// prev is what this Builder takes from the Builder of the IR before
	// it (see Next); nil when it builds everything.
	prev *carried
	// base is the number of hosts and clusters of the last Builder that
	// built everything, rebuilt how many of them Builders made since then.
	base, rebuilt int

	// clusterMu guards clusters and assignments, indexed like in.Clusters
	// and nil until built.
	clusterMu   sync.Mutex
	clusters    []*clusterv3.Cluster
	assignments []*endpointv3.ClusterLoadAssignment

	meshOnce        sync.Once
	meshClusters    []*clusterv3.Cluster
	meshAssignments []*endpointv3.ClusterLoadAssignment

	hostRoutesOnce sync.Once
	hostRoutes     [][]*routev3.Route // by index in in.Hosts

	grpcOnce      sync.Once
	grpcListeners []*listenerv3.Listener
	grpcRoutes    []*routev3.RouteConfiguration
	// grpcHostListeners and grpcHostRoutes are by index in in.Hosts; a
	// host without standby clusters has no route configuration of its own
	// (nil).
	grpcHostListeners []*listenerv3.Listener
	grpcHostRoutes    []*routev3.RouteConfiguration

	uniqueOnce sync.Once
	unique     bool // see uniqueDomains

	hostConfigsOnce sync.Once
	hostConfigs     []*routev3.RouteConfiguration // sidecars', by index in in.Hosts

	foreignOnce sync.Once
	foreign     []*routev3.VirtualHost // see foreignVirtualHosts

	sharedOnce sync.Once
	shared     *sharedScopes // when uniqueDomains()

	sidecarScopes byKey[string, sidecarScopes]
	sidecarRoutes byKey[string, []*routev3.RouteConfiguration]
	outbound      byKey[Proxy, []*listenerv3.Listener]

	valid validCache
}

// byKey holds a value per key (a proxy namespace, a proxy), each built
// once, on first use. Safe for concurrent use; the zero value is ready.
type byKey[K comparable, T any] struct {
	mu     sync.Mutex
	values map[K]*lazy[T]
}

type lazy[T any] struct {
	once  sync.Once
	value T
}

// get returns k's value, calling build to make it the first time.
func (m *byKey[K, T]) get(k K, build func() T) T {
	m.mu.Lock()
	l := m.values[k]
	if l == nil {
		l = &lazy[T]{}
		if m.values == nil {
			m.values = map[K]*lazy[T]{}
		}
		m.values[k] = l
	}
	m.mu.Unlock()
	l.once.Do(func() { l.value = build() })
	return l.value
}

// built returns the values built so far, by key. Only call it once no
// get is under way.
func (m *byKey[K, T]) built() map[K]T {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make(map[K]T, len(m.values))
	for k, l := range m.values {
		out[k] = l.value
	}
	return out
}

// NewBuilder returns a Builder for in. It builds nothing until asked.
func NewBuilder(in *ir.IR) *Builder {
	return &Builder{
		in:          in,
		base:        len(in.Hosts) + len(in.Clusters),
		clusters:    make([]*clusterv3.Cluster, len(in.Clusters)),
		assignments: make([]*endpointv3.ClusterLoadAssignment, len(in.Clusters)),
	}
}

// Build returns the resources for proxy p, each list sorted by name. Only
// clusters some route uses are included. Resources shared with other
// proxies are the same pointers for every caller: see Builder.
func (b *Builder) Build(p Proxy) (*Resources, error) {
	var res Resources
	switch p.Role {
	case Sidecar:
		res.Listeners = b.outboundListener(p)
		if p.ScopedRoutes {
			res.Scopes, res.Routes = b.sidecar(p.Namespace)
		} else {
			res.Routes = b.sidecarRouteConfig(p.Namespace)
		}
		res.Clusters, res.Endpoints = b.mesh()
	case GRPC:
		b.grpcOnce.Do(b.buildGRPC)
		res.Listeners, res.Routes = b.grpcListeners, b.grpcRoutes
		res.Clusters, res.Endpoints = b.mesh()
	case Gateway:
		res.Listeners, res.Routes = buildGateway(b.in.Servers, p)
		res.SecretRefs, res.Secrets = gatewaySecrets(res.Listeners, b.in.Secrets)
		res.Clusters, res.Endpoints = b.clustersNamed(routeConfigsClusters(res.Routes))
		res.sort()
	default:
		return nil, fmt.Errorf("build resources: unknown proxy role %q", p.Role)
	}
	return &res, nil
}

// mesh returns the clusters and load assignments of the mesh roles: those
// some host's routes or standby list name, sorted.
func (b *Builder) mesh() ([]*clusterv3.Cluster, []*endpointv3.ClusterLoadAssignment) {
	b.meshOnce.Do(func() {
		cls, eps := b.clustersNamed(referencedClusters(b.in.Hosts))
		sortClusters(cls, eps)
		b.meshClusters = sameList(slices.Clip(cls), b.prev.old().meshClusters)
		b.meshAssignments = sameList(slices.Clip(eps), b.prev.old().meshAssignments)
	})
	return b.meshClusters, b.meshAssignments
}

// clustersNamed returns the clusters of the IR in used and their load
// assignments, in IR order, building those not built yet.
func (b *Builder) clustersNamed(used map[string]bool) ([]*clusterv3.Cluster, []*endpointv3.ClusterLoadAssignment) {
	cls := make([]*clusterv3.Cluster, 0, len(used))
	eps := make([]*endpointv3.ClusterLoadAssignment, 0, len(used))
	var freshClusters []*clusterv3.Cluster
	var freshAssignments []*endpointv3.ClusterLoadAssignment
	b.clusterMu.Lock()
	defer b.clusterMu.Unlock()
	var clusterAlloc clusterAllocator
	var endpointAlloc endpointAllocator
	for i := range b.in.Clusters {
		c := &b.in.Clusters[i]
		if !used[c.Name] {
			continue
		}
		if b.clusters[i] == nil {
			b.clusters[i] = clusterAlloc.cluster(c)
			freshClusters = append(freshClusters, b.clusters[i])
		}
		if b.assignments[i] == nil {
			b.assignments[i] = endpointAlloc.loadAssignment(c)
			freshAssignments = append(freshAssignments, b.assignments[i])
		}
		cls, eps = append(cls, b.clusters[i]), append(eps, b.assignments[i])
	}
	if len(freshClusters) > 0 {
		own(&b.valid, freshClusters)
	}
	if len(freshAssignments) > 0 {
		own(&b.valid, freshAssignments)
	}
	return cls, eps
}

// sortClusters sorts both lists by name; the IR's order usually is that
// already.
func sortClusters(cls []*clusterv3.Cluster, eps []*endpointv3.ClusterLoadAssignment) {
	byName := func(a, b *clusterv3.Cluster) int { return strings.Compare(a.Name, b.Name) }
	if !slices.IsSortedFunc(cls, byName) {
		slices.SortFunc(cls, byName)
	}
	byClusterName := func(a, b *endpointv3.ClusterLoadAssignment) int { return strings.Compare(a.ClusterName, b.ClusterName) }
	if !slices.IsSortedFunc(eps, byClusterName) {
		slices.SortFunc(eps, byClusterName)
	}
}

// routesOf returns the Envoy routes of every host, built once.
func (b *Builder) routesOf() [][]*routev3.Route {
	b.hostRoutesOnce.Do(func() {
		b.hostRoutes = make([][]*routev3.Route, len(b.in.Hosts))
		var alloc routeAllocator
		for i, h := range b.in.Hosts {
			if routes := b.prev.routesOf(i); routes != nil {
				b.hostRoutes[i] = routes
				continue
			}
			b.hostRoutes[i] = buildRoutes(&alloc, h.Routes)
		}
	})
	return b.hostRoutes
}

// buildGRPC builds an API listener and a route configuration per host; a
// host without standby clusters has the route configuration sidecars with
// scoped routes get, which is the same message.
func (b *Builder) buildGRPC() {
	routes, shared := b.routesOf(), b.hostRouteConfigs()
	alloc := newGRPCAllocator()
	b.grpcHostListeners = make([]*listenerv3.Listener, len(b.in.Hosts))
	b.grpcHostRoutes = make([]*routev3.RouteConfiguration, len(b.in.Hosts))
	listeners := make([]*listenerv3.Listener, len(b.in.Hosts))
	configs := make([]*routev3.RouteConfiguration, len(b.in.Hosts))
	var fresh []*routev3.RouteConfiguration
	var freshListeners []*listenerv3.Listener
	for i, h := range b.in.Hosts {
		l, rc := b.prev.grpcHost(i)
		if l == nil {
			l = alloc.apiListener(h)
			freshListeners = append(freshListeners, l)
		}
		b.grpcHostListeners[i], listeners[i] = l, l
		if len(h.Standby) == 0 {
			configs[i] = shared[i]
			continue
		}
		if rc == nil {
			rc = alloc.apiRouteConfig(h, routes[i])
			fresh = append(fresh, rc)
		}
		b.grpcHostRoutes[i], configs[i] = rc, rc
	}
	slices.SortFunc(listeners, func(a, b *listenerv3.Listener) int { return strings.Compare(a.Name, b.Name) })
	sortRouteConfigs(configs)
	b.grpcListeners = sameList(listeners, b.prev.old().grpcListeners)
	b.grpcRoutes = sameList(configs, b.prev.old().grpcRoutes)
	own(&b.valid, freshListeners)
	own(&b.valid, fresh)
}

// uniqueDomains reports sidecarDomainsUnique(in.Hosts), worked out once.
func (b *Builder) uniqueDomains() bool {
	b.uniqueOnce.Do(func() { b.unique = sidecarDomainsUnique(b.in.Hosts) })
	return b.unique
}

// outboundListener returns the outbound listener of sidecar p, as a list
// of one, built once per proxy.
func (b *Builder) outboundListener(p Proxy) []*listenerv3.Listener {
	return b.outbound.get(p, func() []*listenerv3.Listener {
		if l := b.prev.old().outbound[p]; l != nil {
			return l
		}
		hcm := singleRouteHCM
		if p.ScopedRoutes {
			hcm = outboundHCM
		}
		l := []*listenerv3.Listener{buildOutboundListener(p, hcm)}
		own(&b.valid, l)
		return l
	})
}

// sidecar returns the scopes of scoped sidecars in namespace ns and the
// route configurations they name; both are built once per namespace, and
// shared by namespaces when they can be.
func (b *Builder) sidecar(ns string) ([]*routev3.ScopedRouteConfiguration, []*routev3.RouteConfiguration) {
	scopes := b.sidecarScopes.get(ns, func() sidecarScopes {
		if !b.uniqueDomains() {
			sc := buildSidecarScopes(b.in.Hosts, b.hostRouteConfigs(), ns)
			own(&b.valid, sc.scopes)
			return sc
		}
		b.sharedOnce.Do(b.buildSharedScopes)
		scopes := b.shared.forNamespace(b.in.Hosts, ns)
		return sidecarScopes{scopes: sameList(scopes, b.prev.old().namespaceScopes[ns]), routes: b.hostRouteConfigs()}
	})
	return scopes.scopes, scopes.routes
}

// buildSharedScopes builds the scopes every namespace's sidecars share,
// taking those of hosts that did not change from the previous Builder.
func (b *Builder) buildSharedScopes() {
	b.shared = buildSharedScopes(b.in.Hosts, b.prev.scopesOf)
	for i := range b.in.Hosts {
		if anyNamespace, short := b.prev.scopesOf(i); anyNamespace == nil && short == nil {
			own(&b.valid, b.shared.anyNamespace[i])
			own(&b.valid, b.shared.short[i])
		}
	}
}

// sidecarRouteConfig returns the outbound route configuration of sidecars
// without scoped routes in namespace ns, as a list of one, built once per
// namespace.
func (b *Builder) sidecarRouteConfig(ns string) []*routev3.RouteConfiguration {
	return b.sidecarRoutes.get(ns, func() []*routev3.RouteConfiguration {
		if rc := b.prev.old().sidecarRoutes[ns]; rc != nil {
			return rc
		}
		rc := []*routev3.RouteConfiguration{buildOutboundRouteConfig(b.in.Hosts, b.routesOf(), ns, b.foreignVirtualHosts())}
		own(&b.valid, rc)
		return rc
	})
}

// foreignVirtualHosts returns, when uniqueDomains(), every host's virtual
// host as sidecars outside its namespace see it, built once and shared by
// every namespace's outbound route configuration; nil otherwise.
func (b *Builder) foreignVirtualHosts() []*routev3.VirtualHost {
	b.foreignOnce.Do(func() {
		if b.uniqueDomains() {
			b.foreign = buildForeignVirtualHosts(b.in.Hosts, b.routesOf())
		}
	})
	return b.foreign
}

// hostRouteConfigs returns every host's sidecar route configuration, built
// once, indexed like in.Hosts (so in name order when hosts are).
func (b *Builder) hostRouteConfigs() []*routev3.RouteConfiguration {
	b.hostConfigsOnce.Do(func() {
		routes := b.routesOf()
		var alloc hostConfigAllocator
		configs := make([]*routev3.RouteConfiguration, len(b.in.Hosts))
		var fresh []*routev3.RouteConfiguration
		for i, h := range b.in.Hosts {
			if rc := b.prev.hostConfigOf(i); rc != nil {
				configs[i] = rc
				continue
			}
			configs[i] = alloc.routeConfig(h, routes[i])
			fresh = append(fresh, configs[i])
		}
		own(&b.valid, fresh)
		b.hostConfigs = sameList(configs, b.prev.old().hostConfigs)
	})
	return b.hostConfigs
}
