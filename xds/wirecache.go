package xds

import (
	"context"
	"hash/maphash"
	"maps"
	"slices"
	"sync"

	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	cachev3 "github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	"google.golang.org/protobuf/types/known/anypb"
)

// wireCache is go-control-plane's snapshot cache whose state-of-the-world
// responses wrap the shared encodings (wireAny) instead of encoding every
// resource again for every response: a sidecar's first response is the
// whole mesh, and a hundred sidecars connecting at once would otherwise
// each hold a copy of it.
//
// The snapshot cache answers a watch only inside CreateWatch or SetSnapshot
// (of the watch's node). A watch is given a channel of its own, which both
// drain into the server's channel, with the response wrapped.
type wireCache struct {
	cachev3.SnapshotCache
	returned *returnedMaps

	mu      sync.Mutex
	pending map[string]map[*wireWatch]struct{} // guarded by mu: open watches by node
}

// wireWatch is a watch's own channel and the server's, and its node.
type wireWatch struct {
	own, server chan cachev3.Response
	node        string
}

func newWireCache(inner cachev3.SnapshotCache) *wireCache {
	return &wireCache{SnapshotCache: inner, returned: newReturnedMaps(sharedReturnedMin), pending: map[string]map[*wireWatch]struct{}{}}
}

// CreateWatch is the snapshot cache's, the response wrapped.
func (c *wireCache) CreateWatch(req *cachev3.Request, sub cachev3.Subscription, server chan cachev3.Response) (func(), error) {
	node := req.GetNode().GetId()
	w := &wireWatch{own: make(chan cachev3.Response, 1), server: server, node: node}
	c.mu.Lock()
	if c.pending[node] == nil {
		c.pending[node] = map[*wireWatch]struct{}{}
	}
	c.pending[node][w] = struct{}{}
	c.mu.Unlock()
	cancel, err := c.SnapshotCache.CreateWatch(req, sub, w.own)
	c.mu.Lock()
	answered := w.answered()
	if answered || err != nil {
		c.dropLocked(node, w)
	}
	c.mu.Unlock()
	if answered {
		c.forward(w)
	}
	return func() {
		c.mu.Lock()
		c.dropLocked(node, w)
		c.mu.Unlock()
		if cancel != nil {
			cancel()
		}
	}, err
}

// SetSnapshot is the snapshot cache's; the watches it answered get their
// responses.
func (c *wireCache) SetSnapshot(ctx context.Context, node string, snap cachev3.ResourceSnapshot) error {
	err := c.SnapshotCache.SetSnapshot(ctx, node, snap)
	var answered []*wireWatch
	c.mu.Lock()
	for w := range c.pending[node] {
		if w.answered() {
			answered = append(answered, w)
			c.dropLocked(node, w)
		}
	}
	c.mu.Unlock()
	for _, w := range answered {
		c.forward(w)
	}
	return err
}

// ClearSnapshot is the snapshot cache's; the node's open watches are
// forgotten with it (the server cancels them when their stream closes).
func (c *wireCache) ClearSnapshot(node string) {
	c.SnapshotCache.ClearSnapshot(node)
	c.mu.Lock()
	delete(c.pending, node)
	c.mu.Unlock()
	c.returned.forget(node)
}

// answered reports whether the snapshot cache gave w its response (once
// it has, the watch is dropped from pending, so only one caller forwards
// it).
func (w *wireWatch) answered() bool { return len(w.own) > 0 }

// forward hands w's response, wrapped, to the server's channel, which has
// room for a response of each type, as the snapshot cache (which sends
// while it answers) relies on.
func (c *wireCache) forward(w *wireWatch) {
	r := <-w.own
	if raw, ok := r.(*cachev3.RawResponse); ok {
		r = wireResponse{RawResponse: raw, returned: c.returned.share(w.node, raw)}
	}
	w.server <- r
}

func (c *wireCache) dropLocked(node string, w *wireWatch) {
	delete(c.pending[node], w)
	if len(c.pending[node]) == 0 {
		delete(c.pending, node)
	}
}

// wireResponse is a snapshot cache response whose resources are sent as
// Anys over their shared encodings.
type wireResponse struct {
	*cachev3.RawResponse
	returned map[string]string // shared with other streams (nil: the RawResponse's)
}

// GetReturnedResources is what the stream keeps of the response: the
// versions of the resources it returned, by name.
func (r wireResponse) GetReturnedResources() map[string]string {
	if r.returned != nil {
		return r.returned
	}
	return r.RawResponse.GetReturnedResources()
}

// GetDiscoveryResponse is the RawResponse's, without encoding again; with
// TTLs (which weir does not set) or as a heartbeat it is the RawResponse's.
func (r wireResponse) GetDiscoveryResponse() (*discoveryv3.DiscoveryResponse, error) {
	typeURL := r.GetRequest().GetTypeUrl()
	raw := r.GetRawResources()
	anys := make([]*anypb.Any, len(raw))
	for i, res := range raw {
		if res.TTL != nil || r.Heartbeat {
			return r.RawResponse.GetDiscoveryResponse()
		}
		anys[i] = wireAny(typeURL, res)
	}
	return &discoveryv3.DiscoveryResponse{VersionInfo: r.Version, Resources: anys, TypeUrl: typeURL}, nil
}

// returnedMaps shares the maps of returned resources that go-control-plane
// keeps for each stream and type (a SotW stream's Subscription holds the
// last response's): a sidecar's holds every cluster and load assignment
// of the mesh, and the sidecars of a key hold equal maps. It hands out one
// map for equal contents, and keeps it while a node's last response of
// the type has it (go-control-plane only reads these maps).
//
// Maps of fewer than min entries (a change's trimmed responses, a gRPC
// client's few names) are left alone.
type returnedMaps struct {
	min  int
	seed maphash.Seed

	mu     sync.Mutex
	byHash map[returnedKey][]*returnedEntry     // guarded by mu
	held   map[string]map[string]*returnedEntry // guarded by mu: by node and type
}

// returnedKey is what equal maps have in common: the response's type and
// version (every value), their size and a sum of their names' hashes.
type returnedKey struct {
	typeURL, version string
	n                int
	sum              uint64
}

type returnedEntry struct {
	key     returnedKey
	m       map[string]string
	holders int
}

// sharedReturnedMin is the size from which returned maps are shared.
const sharedReturnedMin = 64

func newReturnedMaps(min int) *returnedMaps {
	return &returnedMaps{min: min, seed: maphash.MakeSeed(), byHash: map[returnedKey][]*returnedEntry{}, held: map[string]map[string]*returnedEntry{}}
}

// share returns the map to keep for raw, a response to node: a map equal
// to raw's that another stream holds, or raw's itself, held from now on
// in place of the node's last one of the type. nil: raw's map, unshared.
func (t *returnedMaps) share(node string, raw *cachev3.RawResponse) map[string]string {
	m := raw.GetReturnedResources()
	if len(m) < t.min {
		return nil
	}
	k := returnedKey{typeURL: raw.GetRequest().GetTypeUrl(), version: raw.Version, n: len(m)}
	for name := range m {
		k.sum += maphash.String(t.seed, name)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	var e *returnedEntry
	for _, c := range t.byHash[k] {
		if maps.Equal(c.m, m) {
			e = c
			break
		}
	}
	if e == nil {
		e = &returnedEntry{key: k, m: m}
		t.byHash[k] = append(t.byHash[k], e)
	}
	held := t.held[node]
	if held == nil {
		held = map[string]*returnedEntry{}
		t.held[node] = held
	}
	if old := held[k.typeURL]; old != e {
		e.holders++
		held[k.typeURL] = e
		t.releaseLocked(old)
	}
	return e.m
}

// forget releases what node's streams held.
func (t *returnedMaps) forget(node string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, e := range t.held[node] {
		t.releaseLocked(e)
	}
	delete(t.held, node)
}

func (t *returnedMaps) releaseLocked(e *returnedEntry) {
	if e == nil {
		return
	}
	if e.holders--; e.holders > 0 {
		return
	}
	list := slices.DeleteFunc(t.byHash[e.key], func(c *returnedEntry) bool { return c == e })
	if len(list) == 0 {
		delete(t.byHash, e.key)
	} else {
		t.byHash[e.key] = list
	}
}
