// Package xds serves the translator's output to proxies over ADS: it keeps a
// snapshot per connected node, publishes only snapshots that pass validation,
// and tracks what every proxy ACKed or NACKed. It never reads Kubernetes types.
package xds

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	cachev3 "github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	serverv3 "github.com/envoyproxy/go-control-plane/pkg/server/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/keepalive"

	"github.com/weir-mesh/weir/translator/envoy"
	"github.com/weir-mesh/weir/translator/ir"
)

// Options configure a Server.
type Options struct {
	// OutboundAddress and OutboundPort are the sidecar listener's defaults,
	// used when a node's metadata does not set them.
	OutboundAddress string
	OutboundPort    uint32
	// ClusterGrace is how long a cluster no route uses any more is still
	// served, so that proxies switch routes before it disappears.
	ClusterGrace time.Duration
	Logger       *slog.Logger
}

// Server is weir's ADS server. Its methods are safe for concurrent use.
type Server struct {
	opts    Options
	log     *slog.Logger
	cache   cachev3.SnapshotCache
	proxies *proxyTracker

	mu      sync.Mutex
	ir      *ir.IR
	keys    map[envoy.Proxy]*keyState
	nodes   map[string]envoy.Proxy // node id -> proxy key
	timer   *time.Timer
	now     func() time.Time
	invalid map[envoy.Proxy]string // last validation error logged per key
}

// NewServer returns a Server with no configuration; proxies that connect
// before the first Update wait for it.
func NewServer(opts Options) *Server {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.OutboundPort == 0 {
		opts.OutboundPort = envoy.DefaultOutboundPort
	}
	if opts.OutboundAddress == "" {
		opts.OutboundAddress = "127.0.0.1"
	}
	s := &Server{
		opts:    opts,
		log:     opts.Logger,
		keys:    map[envoy.Proxy]*keyState{},
		nodes:   map[string]envoy.Proxy{},
		invalid: map[envoy.Proxy]string{},
		now:     time.Now,
	}
	// Non-ADS mode: answer each request with the resources it names, without
	// waiting for a request to name every resource of the snapshot.
	s.cache = cachev3.NewSnapshotCache(false, cachev3.IDHash{}, nil)
	s.proxies = newProxyTracker(s.log)
	return s
}

// Serve answers ADS (state of the world and delta) on lis until ctx is done.
func (s *Server) Serve(ctx context.Context, lis net.Listener) error {
	gs := grpc.NewServer(
		grpc.KeepaliveParams(keepalive.ServerParameters{Time: 30 * time.Second, Timeout: 10 * time.Second}),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 10 * time.Second, PermitWithoutStream: true}),
	)
	xs := serverv3.NewServer(ctx, s.cache, s.callbacks())
	discoveryv3.RegisterAggregatedDiscoveryServiceServer(gs, xs)
	errc := make(chan error, 1)
	go func() { errc <- gs.Serve(lis) }()
	select {
	case <-ctx.Done():
		gs.Stop()
		<-errc
		return nil
	case err := <-errc:
		return fmt.Errorf("xds: serve on %s: %w", lis.Addr(), err)
	}
}

// Update makes in the configuration every node receives from now on.
func (s *Server) Update(in *ir.IR) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ir = in
	for key := range s.keys {
		s.rebuildLocked(key)
	}
	s.publishAllLocked()
}

// Ready reports whether the first configuration has arrived.
func (s *Server) Ready() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ir != nil
}

// Proxies returns the state of every connected proxy, sorted by node id.
func (s *Server) Proxies() []ProxyStatus { return s.proxies.list() }

// SnapshotVersions returns the published version per type URL for a node,
// or nil if the node has no snapshot.
func (s *Server) SnapshotVersions(nodeID string) map[string]string {
	snap, err := s.cache.GetSnapshot(nodeID)
	if err != nil {
		return nil
	}
	out := map[string]string{}
	for _, t := range typeURLs {
		out[t] = snap.GetVersion(t)
	}
	return out
}

// registerNode makes sure node has a snapshot before its first watch.
func (s *Server) registerNode(node *corev3.Node) error {
	key, err := proxyKey(node, s.opts)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if old, ok := s.nodes[node.GetId()]; ok && old == key {
		return nil
	}
	s.nodes[node.GetId()] = key
	if _, ok := s.keys[key]; !ok {
		s.keys[key] = &keyState{retiring: map[string]retired{}}
		s.rebuildLocked(key)
	}
	s.publishNodeLocked(node.GetId(), key)
	return nil
}

// forgetNode drops a node's snapshot once its last stream closed.
func (s *Server) forgetNode(nodeID string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	key, ok := s.nodes[nodeID]
	if !ok {
		return
	}
	delete(s.nodes, nodeID)
	s.cache.ClearSnapshot(nodeID)
	for _, k := range s.nodes {
		if k == key {
			return
		}
	}
	delete(s.keys, key)
	delete(s.invalid, key)
}

func (s *Server) publishAllLocked() {
	for id, key := range s.nodes {
		s.publishNodeLocked(id, key)
	}
	s.scheduleRetirementLocked()
}

func (s *Server) publishNodeLocked(nodeID string, key envoy.Proxy) {
	ks := s.keys[key]
	if ks == nil || ks.snapshot == nil {
		return
	}
	if cur, err := s.cache.GetSnapshot(nodeID); err == nil && sameVersions(cur, ks.snapshot) {
		return
	}
	if err := s.cache.SetSnapshot(context.Background(), nodeID, ks.snapshot); err != nil {
		s.log.Error("xds: set snapshot", "node", nodeID, "err", err)
	}
}

func sameVersions(a cachev3.ResourceSnapshot, b *cachev3.Snapshot) bool {
	for _, t := range typeURLs {
		if a.GetVersion(t) != b.GetVersion(t) {
			return false
		}
	}
	return true
}
