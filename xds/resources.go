package xds

import (
	"crypto/sha256"
	"encoding/hex"
	"maps"
	"reflect"
	"sort"
	"unsafe"

	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/protobuf/proto"

	"github.com/weir-mesh/weir/translator/envoy"
)

// typeURLs are the resource types weir serves, in the order Envoy's ADS
// documentation asks for: clusters, endpoints, listeners (with the secrets
// they use), scopes, routes.
var typeURLs = []string{resourcev3.ClusterType, resourcev3.EndpointType, resourcev3.SecretType, resourcev3.ListenerType, resourcev3.ScopedRouteType, resourcev3.RouteType}

// entry is one resource and the hash of its deterministic encoding.
type entry struct {
	res  types.Resource
	hash string
}

// resourceSet is a proxy's configuration by type URL and resource name. It
// is never modified after it is built; steps build new sets from old ones.
type resourceSet map[string]map[string]entry

func newResourceSet() resourceSet {
	s := resourceSet{}
	for _, t := range typeURLs {
		s[t] = map[string]entry{}
	}
	return s
}

func hashMessage(m proto.Message) (string, error) {
	enc, err := envoy.EncodingOf(m)
	return enc.Hash, err
}

// clone returns a shallow copy whose maps may be changed.
func (s resourceSet) clone() resourceSet {
	out := newResourceSet()
	for t, m := range s {
		for n, e := range m {
			out[t][n] = e
		}
	}
	return out
}

// typeVersion is the version of one type's resources: a hash of their
// names and hashes. Equal content, equal version, whatever process
// computed it.
func typeVersion(m map[string]entry) string {
	h := sha256.New()
	for _, n := range sortedNames(m) {
		h.Write([]byte(n))
		h.Write([]byte{0})
		h.Write([]byte(m[n].hash))
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil))[:16]
}

// mapPointer identifies a map: maps are shared by reference, and a map
// two sets share is one never modified since.
func mapPointer(m map[string]entry) unsafe.Pointer {
	return reflect.ValueOf(m).UnsafePointer()
}

// sameMap reports whether a and b are one map (both nil counts).
func sameMap(a, b map[string]entry) bool { return mapPointer(a) == mapPointer(b) }

// equalEntries reports whether two maps hold the same names and hashes.
func equalEntries(a, b map[string]entry) bool {
	if len(a) != len(b) {
		return false
	}
	if sameMap(a, b) {
		return true
	}
	for n, e := range a {
		if be, ok := b[n]; !ok || be.hash != e.hash {
			return false
		}
	}
	return true
}

func (s resourceSet) names(typeURL string) []string { return sortedNames(s[typeURL]) }

func sortedNames(m map[string]entry) []string {
	names := make([]string, 0, len(m))
	for n := range m {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// reported is false for secrets and scopes when there are none: a proxy
// asks for secrets only when a listener uses one, and for scopes only when
// it is a sidecar, so it never ACKs an empty set. (A sidecar of a mesh
// without a host waits for its scopes until Envoy's initial fetch timeout.)
func reported(typeURL string, n int) bool {
	return (typeURL != resourcev3.SecretType && typeURL != resourcev3.ScopedRouteType) || n > 0
}

// equal reports whether two sets have the same content.
func (s resourceSet) equal(o resourceSet) bool {
	for _, t := range typeURLs {
		if !equalEntries(s[t], o[t]) {
			return false
		}
	}
	return true
}

// changedNames returns, for one type, the names added, changed or removed
// from old to s.
func (s resourceSet) changedNames(old resourceSet, typeURL string) map[string]bool {
	out := map[string]bool{}
	if sameMap(s[typeURL], old[typeURL]) {
		return out
	}
	for n, e := range s[typeURL] {
		if oe, ok := old[typeURL][n]; !ok || oe.hash != e.hash {
			out[n] = true
		}
	}
	for n := range old[typeURL] {
		if _, ok := s[typeURL][n]; !ok {
			out[n] = true
		}
	}
	return out
}

// withLastGoodSecrets adds to s, from last, the secrets the listeners use
// that the new configuration lacks (a Secret turned invalid): a proxy keeps
// serving its last good certificate.
func (s resourceSet) withLastGoodSecrets(refs []string, last resourceSet) {
	own := false // the map may be shared: copy it before the first change
	for _, n := range refs {
		if _, ok := s[resourcev3.SecretType][n]; ok {
			continue
		}
		if e, ok := last[resourcev3.SecretType][n]; ok {
			if !own {
				s[resourcev3.SecretType], own = maps.Clone(s[resourcev3.SecretType]), true
			}
			s[resourcev3.SecretType][n] = e
		}
	}
}

// unavailableSecrets returns the secrets r's listeners use that neither r
// nor the last configuration last (nil for none) has.
func unavailableSecrets(r *envoy.Resources, last resourceSet) map[string]bool {
	have := map[string]bool{}
	for _, sec := range r.Secrets {
		have[sec.Name] = true
	}
	out := map[string]bool{}
	for _, n := range r.SecretRefs {
		if _, ok := last[resourcev3.SecretType][n]; !ok && !have[n] {
			out[n] = true
		}
	}
	return out
}
