package envoy

import (
	"reflect"
	"slices"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"

	"github.com/weir-mesh/weir/translator/ir"
)

// carried is what a Builder takes from the Builder of the IR before it:
// the resources built from hosts and clusters that did not change, and the
// lists the previous Builder handed out, which the new one hands out again
// (the same slices) when their elements are the same. Lists keeping their
// identity is what lets callers that memoize by list (encodings,
// validation, the xDS server's maps) skip all the work for them.
type carried struct {
	// By index in the new IR's Hosts; nil where the host is new or
	// changed, or the previous Builder did not build it.
	hostRoutes    [][]*routev3.Route
	hostConfigs   []*routev3.RouteConfiguration
	grpcListeners []*listenerv3.Listener
	grpcRoutes    []*routev3.RouteConfiguration
	anyNamespace  [][]*routev3.ScopedRouteConfiguration
	short         [][]*routev3.ScopedRouteConfiguration

	lists previousLists
}

// previousLists are the lists a Builder handed out.
type previousLists struct {
	meshClusters    []*clusterv3.Cluster
	meshAssignments []*endpointv3.ClusterLoadAssignment
	hostConfigs     []*routev3.RouteConfiguration
	grpcListeners   []*listenerv3.Listener
	grpcRoutes      []*routev3.RouteConfiguration
	namespaceScopes map[string][]*routev3.ScopedRouteConfiguration
	// sidecarRoutes are only kept when every host is the same.
	sidecarRoutes map[string][]*routev3.RouteConfiguration
	outbound      map[Proxy][]*listenerv3.Listener
}

var noLists previousLists

// ids returns the identities of the lists.
func (l *previousLists) ids() map[listID]bool {
	ids := map[listID]bool{idOf(l.meshClusters): true, idOf(l.meshAssignments): true,
		idOf(l.hostConfigs): true, idOf(l.grpcListeners): true, idOf(l.grpcRoutes): true}
	for _, sc := range l.namespaceScopes {
		ids[idOf(sc)] = true
	}
	for _, rc := range l.sidecarRoutes {
		ids[idOf(rc)] = true
	}
	for _, ls := range l.outbound {
		ids[idOf(ls)] = true
	}
	return ids
}

// old returns the previous Builder's lists, none for a nil c.
func (c *carried) old() *previousLists {
	if c == nil {
		return &noLists
	}
	return &c.lists
}

func (c *carried) routesOf(i int) []*routev3.Route {
	if c == nil {
		return nil
	}
	return c.hostRoutes[i]
}

func (c *carried) hostConfigOf(i int) *routev3.RouteConfiguration {
	if c == nil {
		return nil
	}
	return c.hostConfigs[i]
}

// grpcHost returns the API listener and the route configuration of its own
// (nil for a host without standby clusters) of host i, nil if not carried.
func (c *carried) grpcHost(i int) (*listenerv3.Listener, *routev3.RouteConfiguration) {
	if c == nil {
		return nil, nil
	}
	return c.grpcListeners[i], c.grpcRoutes[i]
}

func (c *carried) scopesOf(i int) (anyNamespace, short []*routev3.ScopedRouteConfiguration) {
	if c == nil {
		return nil, nil
	}
	return c.anyNamespace[i], c.short[i]
}

// sameList returns old if it holds the same elements as list, else list.
func sameList[T comparable](list, old []T) []T {
	if old != nil && slices.Equal(list, old) {
		return old
	}
	return list
}

// Next returns a Builder for in, the IR translated after b's: it hands out
// the resources b built from hosts and clusters that are equal in both,
// with what b's validation knows of them, and b's lists whose elements are
// the same, so that one changed host costs the building, validation and
// encoding of its own resources. b must not be in use, and is not used
// again by the new Builder once that has built what it needs.
//
// Carried resources keep the blocks they were allocated from alive: when
// the mesh shrank to less than half of what the last Builder that built
// everything had, or Builders since then rebuilt as many hosts and
// clusters as it had, Next builds everything again, so that memory stays
// within about twice what the current mesh needs.
func (b *Builder) Next(in *ir.IR) *Builder {
	nb := NewBuilder(in)
	size := len(in.Hosts) + len(in.Clusters)
	if b == nil || 2*size < b.base || b.rebuilt > b.base {
		return nb
	}
	nb.base = b.base
	c := &carried{
		hostRoutes:    make([][]*routev3.Route, len(in.Hosts)),
		hostConfigs:   make([]*routev3.RouteConfiguration, len(in.Hosts)),
		grpcListeners: make([]*listenerv3.Listener, len(in.Hosts)),
		grpcRoutes:    make([]*routev3.RouteConfiguration, len(in.Hosts)),
		anyNamespace:  make([][]*routev3.ScopedRouteConfiguration, len(in.Hosts)),
		short:         make([][]*routev3.ScopedRouteConfiguration, len(in.Hosts)),
	}
	b.valid.registerPending()
	v := &nb.valid
	v.known = make(map[validator]*validation, len(b.valid.known))
	rebuilt := 0
	sameHosts := len(in.Hosts) == len(b.in.Hosts)
	matchByName(in.Hosts, b.in.Hosts, func(h *ir.Host) string { return h.Name }, func(i, j int) {
		if i != j {
			sameHosts = false
		}
		if j < 0 || !sameNames(&in.Hosts[i], &b.in.Hosts[j]) {
			rebuilt++
			sameHosts = false
			return
		}
		// A host's scopes and API listener depend on its names only.
		if b.grpcHostListeners != nil {
			c.grpcListeners[i] = b.grpcHostListeners[j]
			v.adopt(&b.valid, c.grpcListeners[i])
		}
		if b.shared != nil {
			c.anyNamespace[i], c.short[i] = b.shared.anyNamespace[j], b.shared.short[j]
			adoptAll(v, &b.valid, c.anyNamespace[i])
			adoptAll(v, &b.valid, c.short[i])
		}
		if !reflect.DeepEqual(in.Hosts[i].Routes, b.in.Hosts[j].Routes) || !slices.Equal(in.Hosts[i].Standby, b.in.Hosts[j].Standby) {
			rebuilt++
			sameHosts = false
			return
		}
		if b.hostRoutes != nil {
			c.hostRoutes[i] = b.hostRoutes[j]
		}
		if b.hostConfigs != nil {
			c.hostConfigs[i] = b.hostConfigs[j]
			v.adopt(&b.valid, b.hostConfigs[j])
		}
		if b.grpcHostRoutes != nil && b.grpcHostRoutes[j] != nil {
			c.grpcRoutes[i] = b.grpcHostRoutes[j]
			v.adopt(&b.valid, c.grpcRoutes[i])
		}
	})
	matchByName(in.Clusters, b.in.Clusters, func(c *ir.Cluster) string { return c.Name }, func(i, j int) {
		if j < 0 {
			rebuilt++
			return
		}
		if b.clusters[j] == nil {
			return // no proxy used it: nothing to carry
		}
		old, cur := &b.in.Clusters[j], &in.Clusters[i]
		if cur.Protocol == old.Protocol && reflect.DeepEqual(cur.Policy, old.Policy) {
			nb.clusters[i] = b.clusters[j]
			v.adopt(&b.valid, b.clusters[j])
		} else {
			rebuilt++
		}
		if sameEndpoints(cur.Endpoints, old.Endpoints) {
			nb.assignments[i] = b.assignments[j]
			v.adopt(&b.valid, b.assignments[j])
		} else {
			rebuilt++
		}
	})
	nb.rebuilt = b.rebuilt + rebuilt
	c.lists = previousLists{
		meshClusters:    b.meshClusters,
		meshAssignments: b.meshAssignments,
		hostConfigs:     b.hostConfigs,
		grpcListeners:   b.grpcListeners,
		grpcRoutes:      b.grpcRoutes,
		namespaceScopes: map[string][]*routev3.ScopedRouteConfiguration{},
		outbound:        b.outbound.built(),
	}
	if b.shared != nil {
		for ns, sc := range b.sidecarScopes.built() {
			c.lists.namespaceScopes[ns] = sc.scopes
		}
	}
	for _, l := range c.lists.outbound {
		adoptAll(v, &b.valid, l)
	}
	if sameHosts {
		c.lists.sidecarRoutes = b.sidecarRoutes.built()
		for _, rc := range c.lists.sidecarRoutes {
			adoptAll(v, &b.valid, rc)
		}
	}
	v.adoptLists(&b.valid, c.lists.ids())
	nb.prev = c
	return nb
}

// matchByName calls match(i, j) for every element i of cur, with j the
// index of the element of old with the same name, -1 if none. Both are
// sorted by name.
func matchByName[T any](cur, old []T, name func(*T) string, match func(i, j int)) {
	j := 0
	for i := range cur {
		n := name(&cur[i])
		for j < len(old) && name(&old[j]) < n {
			j++
		}
		if j < len(old) && name(&old[j]) == n {
			match(i, j)
			j++
			continue
		}
		match(i, -1)
	}
}

// sameNames reports whether a and b are the same host but for their
// routes and standby clusters.
func sameNames(a, b *ir.Host) bool {
	return a.Name == b.Name && a.Service == b.Service && a.Namespace == b.Namespace && a.Port == b.Port &&
		a.ClusterIP == b.ClusterIP && a.BareNames == b.BareNames
}

// sameEndpoints reports whether a and b make the same load assignment.
func sameEndpoints(a, b []ir.Endpoint) bool {
	return slices.EqualFunc(a, b, func(x, y ir.Endpoint) bool {
		return x.Address == y.Address && x.Port == y.Port && x.Zone == y.Zone
	})
}

// adoptAll is adopt for every item.
func adoptAll[T validator](c, from *validCache, items []T) {
	for _, it := range items {
		c.adopt(from, it)
	}
}
