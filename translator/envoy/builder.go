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

	uniqueOnce sync.Once
	unique     bool // see uniqueDomains

	hostConfigsOnce sync.Once
	hostConfigs     []*routev3.RouteConfiguration // sidecars', by index in in.Hosts

	sharedOnce sync.Once
	shared     *sharedScopes // when uniqueDomains()

	sidecarScopes byNamespace[sidecarScopes]
	sidecarRoutes byNamespace[*routev3.RouteConfiguration]

	valid validCache
}

// byNamespace holds a value per proxy namespace, each built once, on first
// use. Safe for concurrent use; the zero value is ready.
type byNamespace[T any] struct {
	mu     sync.Mutex
	values map[string]*lazy[T]
}

type lazy[T any] struct {
	once  sync.Once
	value T
}

// get returns ns's value, calling build to make it the first time.
func (m *byNamespace[T]) get(ns string, build func() T) T {
	m.mu.Lock()
	l := m.values[ns]
	if l == nil {
		l = &lazy[T]{}
		if m.values == nil {
			m.values = map[string]*lazy[T]{}
		}
		m.values[ns] = l
	}
	m.mu.Unlock()
	l.once.Do(func() { l.value = build() })
	return l.value
}

// NewBuilder returns a Builder for in. It builds nothing until asked.
func NewBuilder(in *ir.IR) *Builder {
	return &Builder{
		in:          in,
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
		if p.ScopedRoutes {
			res = *b.sidecar(p)
		} else {
			res.Listeners = []*listenerv3.Listener{buildOutboundListener(p, singleRouteHCM)}
			res.Routes = []*routev3.RouteConfiguration{b.sidecarRouteConfig(p.Namespace)}
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
		b.meshClusters, b.meshAssignments = b.clustersNamed(referencedClusters(b.in.Hosts))
		sortClusters(b.meshClusters, b.meshAssignments)
		b.meshClusters, b.meshAssignments = slices.Clip(b.meshClusters), slices.Clip(b.meshAssignments)
	})
	return b.meshClusters, b.meshAssignments
}

// clustersNamed returns the clusters of the IR in used and their load
// assignments, in IR order, building those not built yet.
func (b *Builder) clustersNamed(used map[string]bool) ([]*clusterv3.Cluster, []*endpointv3.ClusterLoadAssignment) {
	cls := make([]*clusterv3.Cluster, 0, len(used))
	eps := make([]*endpointv3.ClusterLoadAssignment, 0, len(used))
	var fresh []int
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
			b.clusters[i], b.assignments[i] = clusterAlloc.cluster(c), endpointAlloc.loadAssignment(c)
			fresh = append(fresh, i)
		}
		cls, eps = append(cls, b.clusters[i]), append(eps, b.assignments[i])
	}
	if len(fresh) > 0 {
		own(&b.valid, pick(b.clusters, fresh))
		own(&b.valid, pick(b.assignments, fresh))
	}
	return cls, eps
}

func pick[T any](items []T, indexes []int) []T {
	out := make([]T, len(indexes))
	for i, j := range indexes {
		out[i] = items[j]
	}
	return out
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
	b.grpcListeners = make([]*listenerv3.Listener, len(b.in.Hosts))
	b.grpcRoutes = make([]*routev3.RouteConfiguration, len(b.in.Hosts))
	var fresh []*routev3.RouteConfiguration
	for i, h := range b.in.Hosts {
		b.grpcListeners[i] = alloc.apiListener(h)
		if len(h.Standby) == 0 {
			b.grpcRoutes[i] = shared[i]
			continue
		}
		b.grpcRoutes[i] = alloc.apiRouteConfig(h, routes[i])
		fresh = append(fresh, b.grpcRoutes[i])
	}
	slices.SortFunc(b.grpcListeners, func(a, b *listenerv3.Listener) int { return strings.Compare(a.Name, b.Name) })
	sortRouteConfigs(b.grpcRoutes)
	own(&b.valid, b.grpcListeners)
	own(&b.valid, fresh)
}

// uniqueDomains reports sidecarDomainsUnique(in.Hosts), worked out once.
func (b *Builder) uniqueDomains() bool {
	b.uniqueOnce.Do(func() { b.unique = sidecarDomainsUnique(b.in.Hosts) })
	return b.unique
}

// sidecar returns the outbound listener of scoped sidecar p, its scopes
// and the route configurations they name; scopes and route configurations
// are built once per namespace, and shared by namespaces when they can be.
func (b *Builder) sidecar(p Proxy) *Resources {
	scopes := b.sidecarScopes.get(p.Namespace, func() sidecarScopes {
		if !b.uniqueDomains() {
			sc := buildSidecarScopes(b.in.Hosts, b.hostRouteConfigs(), p.Namespace)
			own(&b.valid, sc.scopes)
			return sc
		}
		b.sharedOnce.Do(func() {
			b.shared = buildSharedScopes(b.in.Hosts)
			for i := range b.in.Hosts {
				own(&b.valid, b.shared.anyNamespace[i])
				own(&b.valid, b.shared.short[i])
			}
		})
		return sidecarScopes{scopes: b.shared.forNamespace(b.in.Hosts, p.Namespace), routes: b.hostRouteConfigs()}
	})
	return &Resources{
		Listeners: []*listenerv3.Listener{buildOutboundListener(p, outboundHCM)},
		Scopes:    scopes.scopes,
		Routes:    scopes.routes,
	}
}

// sidecarRouteConfig returns the outbound route configuration of sidecars
// without scoped routes in namespace ns, built once per namespace.
func (b *Builder) sidecarRouteConfig(ns string) *routev3.RouteConfiguration {
	return b.sidecarRoutes.get(ns, func() *routev3.RouteConfiguration {
		rc := buildOutboundRouteConfig(b.in.Hosts, b.routesOf(), ns, b.uniqueDomains())
		own(&b.valid, []*routev3.RouteConfiguration{rc})
		return rc
	})
}

// hostRouteConfigs returns every host's sidecar route configuration, built
// once, indexed like in.Hosts (so in name order when hosts are).
func (b *Builder) hostRouteConfigs() []*routev3.RouteConfiguration {
	b.hostConfigsOnce.Do(func() {
		routes := b.routesOf()
		var alloc hostConfigAllocator
		b.hostConfigs = make([]*routev3.RouteConfiguration, len(b.in.Hosts))
		for i, h := range b.in.Hosts {
			b.hostConfigs[i] = alloc.routeConfig(h, routes[i])
		}
		own(&b.valid, b.hostConfigs)
	})
	return b.hostConfigs
}
