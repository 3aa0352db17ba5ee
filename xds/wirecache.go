package xds

import (
	"context"
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

	mu      sync.Mutex
	pending map[string]map[*wireWatch]struct{} // guarded by mu: open watches by node
}

// wireWatch is a watch's own channel and the server's.
type wireWatch struct {
	own, server chan cachev3.Response
}

func newWireCache(inner cachev3.SnapshotCache) *wireCache {
	return &wireCache{SnapshotCache: inner, pending: map[string]map[*wireWatch]struct{}{}}
}

// CreateWatch is the snapshot cache's, the response wrapped.
func (c *wireCache) CreateWatch(req *cachev3.Request, sub cachev3.Subscription, server chan cachev3.Response) (func(), error) {
	node := req.GetNode().GetId()
	w := &wireWatch{own: make(chan cachev3.Response, 1), server: server}
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
		w.forward()
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
		w.forward()
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
}

// answered reports whether the snapshot cache gave w its response (once
// it has, the watch is dropped from pending, so only one caller forwards
// it).
func (w *wireWatch) answered() bool { return len(w.own) > 0 }

// forward hands w's response, wrapped, to the server's channel, which has
// room for a response of each type, as the snapshot cache (which sends
// while it answers) relies on.
func (w *wireWatch) forward() {
	r := <-w.own
	if raw, ok := r.(*cachev3.RawResponse); ok {
		r = wireResponse{raw}
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
