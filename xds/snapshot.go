package xds

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"sort"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	cachev3 "github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/protobuf/proto"

	"github.com/weir-mesh/weir/translator/envoy"
)

// typeURLs are the resource types weir serves, in push order.
var typeURLs = []string{resourcev3.ClusterType, resourcev3.EndpointType, resourcev3.ListenerType, resourcev3.RouteType}

// keyState is the configuration of every node sharing one proxy key.
type keyState struct {
	// published is the last resources that passed validation.
	published *envoy.Resources
	snapshot  *cachev3.Snapshot
	// retiring holds clusters no route uses any more, still served until
	// their grace period ends.
	retiring map[string]retired
}

type retired struct {
	cluster    *clusterv3.Cluster
	assignment *endpointv3.ClusterLoadAssignment
	until      time.Time
}

// rebuildLocked builds the resources of key from the current IR. A build
// that fails validation is logged once and the key keeps its last good
// snapshot.
func (s *Server) rebuildLocked(key envoy.Proxy) {
	ks := s.keys[key]
	if s.ir == nil || ks == nil {
		return
	}
	res, err := envoy.Build(s.ir, key)
	if err == nil {
		res = ks.withRetiring(res, s.now(), s.opts.ClusterGrace)
		err = envoy.Validate(res)
	}
	if err != nil {
		if s.invalid[key] != err.Error() {
			s.invalid[key] = err.Error()
			s.log.Error("xds: configuration failed validation; proxies keep the last good one", "role", key.Role, "namespace", key.Namespace, "err", err)
		}
		return
	}
	delete(s.invalid, key)
	snap, err := newSnapshot(res)
	if err != nil {
		s.log.Error("xds: build snapshot", "role", key.Role, "err", err)
		return
	}
	ks.published, ks.snapshot = res, snap
}

// withRetiring adds to res the clusters that the last published resources
// had and res dropped, until their grace period ends.
func (ks *keyState) withRetiring(res *envoy.Resources, now time.Time, grace time.Duration) *envoy.Resources {
	current := map[string]bool{}
	for _, c := range res.Clusters {
		current[c.Name] = true
		delete(ks.retiring, c.Name)
	}
	if ks.published != nil && grace > 0 {
		assignments := assignmentsByName(ks.published.Endpoints)
		for _, c := range ks.published.Clusters {
			if _, ok := ks.retiring[c.Name]; !ok && !current[c.Name] {
				ks.retiring[c.Name] = retired{cluster: c, assignment: assignments[c.Name], until: now.Add(grace)}
			}
		}
	}
	for name, r := range ks.retiring {
		if !now.Before(r.until) || r.assignment == nil {
			delete(ks.retiring, name)
			continue
		}
		res.Clusters = append(res.Clusters, r.cluster)
		res.Endpoints = append(res.Endpoints, r.assignment)
	}
	sort.Slice(res.Clusters, func(i, j int) bool { return res.Clusters[i].Name < res.Clusters[j].Name })
	sort.Slice(res.Endpoints, func(i, j int) bool { return res.Endpoints[i].ClusterName < res.Endpoints[j].ClusterName })
	return res
}

func assignmentsByName(in []*endpointv3.ClusterLoadAssignment) map[string]*endpointv3.ClusterLoadAssignment {
	out := make(map[string]*endpointv3.ClusterLoadAssignment, len(in))
	for _, a := range in {
		out[a.ClusterName] = a
	}
	return out
}

// scheduleRetirementLocked arms a timer for the earliest retiring cluster.
func (s *Server) scheduleRetirementLocked() {
	var next time.Time
	for _, ks := range s.keys {
		for _, r := range ks.retiring {
			if next.IsZero() || r.until.Before(next) {
				next = r.until
			}
		}
	}
	if s.timer != nil {
		s.timer.Stop()
		s.timer = nil
	}
	if next.IsZero() {
		return
	}
	s.timer = time.AfterFunc(next.Sub(s.now())+time.Millisecond, s.retire)
}

func (s *Server) retire() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for key := range s.keys {
		s.rebuildLocked(key)
	}
	s.publishAllLocked()
}

// newSnapshot versions each resource type by a hash of its content, so that
// unchanged types are not pushed again and restarts change nothing.
func newSnapshot(res *envoy.Resources) (*cachev3.Snapshot, error) {
	byType := map[string][]types.Resource{
		resourcev3.ClusterType:  toResources(res.Clusters),
		resourcev3.EndpointType: toResources(res.Endpoints),
		resourcev3.ListenerType: toResources(res.Listeners),
		resourcev3.RouteType:    toResources(res.Routes),
	}
	snap := &cachev3.Snapshot{}
	for t, items := range byType {
		version, err := contentHash(items)
		if err != nil {
			return nil, err
		}
		idx, ok := snapshotIndex(t)
		if !ok {
			return nil, fmt.Errorf("snapshot: no index for type %s", t)
		}
		snap.Resources[idx] = cachev3.NewResources(version, items)
	}
	return snap, nil
}

func snapshotIndex(typeURL string) (types.ResponseType, bool) {
	switch typeURL {
	case resourcev3.ClusterType:
		return types.Cluster, true
	case resourcev3.EndpointType:
		return types.Endpoint, true
	case resourcev3.ListenerType:
		return types.Listener, true
	case resourcev3.RouteType:
		return types.Route, true
	}
	return 0, false
}

func toResources[T types.Resource](in []T) []types.Resource {
	out := make([]types.Resource, len(in))
	for i, r := range in {
		out[i] = r
	}
	return out
}

// contentHash is the first 16 hex digits of the SHA-256 of the resources'
// deterministic encoding, in order.
func contentHash(items []types.Resource) (string, error) {
	h := sha256.New()
	opts := proto.MarshalOptions{Deterministic: true}
	for _, it := range items {
		b, err := opts.Marshal(it)
		if err != nil {
			return "", fmt.Errorf("snapshot: marshal %T: %w", it, err)
		}
		fmt.Fprintf(h, "%d:", len(b))
		h.Write(b)
	}
	return hex.EncodeToString(h.Sum(nil))[:16], nil
}
