package xds

import (
	"sort"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"

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
	if sw := switched(cur, want); !sw.equal(cur) {
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
// configurations of cur that want dropped.
func switched(cur, want resourceSet) resourceSet {
	next := want.clone()
	for _, t := range []string{resourcev3.ClusterType, resourcev3.EndpointType, resourcev3.SecretType, resourcev3.RouteType} {
		for n, e := range cur[t] {
			if _, ok := next[t][n]; !ok {
				next[t][n] = e
			}
		}
	}
	return next
}

// standbyNewlyNamed is cur where each gRPC route configuration that want
// makes name clusters it did not name has them in its standby route.
func standbyNewlyNamed(cur, want resourceSet) resourceSet {
	next := cur.clone()
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
