// Package xds serves the translator's output to proxies over ADS: it keeps a
// snapshot per connected node, publishes only configurations that pass
// validation, orders each proxy's updates so that traffic never meets a
// missing cluster, and tracks what every proxy ACKed or NACKed. It never
// reads Kubernetes types.
//
// Cache design: one configuration per node, shared by the nodes of a
// proxy key. Resources differ per proxy (role, namespace, listener port),
// and the make-before-break steps are per proxy too, which rules out the
// linear cache (one resource set per type for everyone). State-of-the-world
// streams are served by go-control-plane's SotW server, its watches
// answered by weir's wireCache from snapshots kept in go-control-plane's
// snapshot cache: only the types whose version changed are sent, versions
// being content hashes, and of route configurations and load assignments
// only those that differ from what the proxy ACKed (partial.go). Delta streams weir serves itself
// (delta.go): a change sends the resources that differ between the
// configuration a stream has and the new one, found once per pair of
// configurations, not once per stream.
package xds

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"runtime"
	"runtime/debug"
	"sync"
	"time"
	"unsafe"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	cachev3 "github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	serverv3 "github.com/envoyproxy/go-control-plane/pkg/server/v3"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"
	tracenoop "go.opentelemetry.io/otel/trace/noop"
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
	// ScopedRoutes makes sidecars route by scopes (envoy.Proxy's
	// ScopedRoutes) unless their metadata says otherwise
	// (MetaScopedRoutes).
	ScopedRoutes bool
	// ClusterGrace is how long clusters and route configurations that no
	// route uses any more are still served after the routes moved away.
	ClusterGrace time.Duration
	// AckTimeout is how long a step waits for a proxy's answer before the
	// next step is published anyway. Zero means 5 s.
	AckTimeout time.Duration
	// MaxStreams bounds concurrent ADS streams per connection and
	// MaxMessageBytes the size of a message received; zero means 1,000 and
	// 4 MiB. A proxy past either limit gets a gRPC error saying so.
	MaxStreams      uint32
	MaxMessageBytes int
	// PushBudget bounds the bytes of large responses (256 KiB or more)
	// sent to proxies that have not answered them yet, across streams: a
	// stream waits for room before it sends one, unless it has one in
	// flight (see pushBudget). Zero means 256 MiB; negative, no bound.
	PushBudget int64
	Logger     *slog.Logger
	// Meter receives the server's metrics (pushes, NACKs, connected
	// proxies, push latency, snapshot sizes); nil records none.
	Meter metric.MeterProvider
	// Tracer receives a span per push; nil records none.
	Tracer trace.TracerProvider
}

// Server is weir's ADS server. Its methods are safe for concurrent use.
type Server struct {
	opts    Options
	log     *slog.Logger
	cache   cachev3.SnapshotCache
	proxies *proxyTracker
	metrics *metrics
	tracer  trace.Tracer
	budget  *pushBudget // nil: no bound

	mu sync.Mutex
	ir *ir.IR
	// builder is ir's, taking what did not change from the one before;
	// held are the maps the keys hold for its lists (see typeMap).
	builder *envoy.Builder
	held    map[listKey]map[string]entry
	keys    map[envoy.Proxy]*keyState
	nodes   map[string]*nodeState
	// deltaConns are the delta streams of each node (see delta.go).
	deltaConns map[string]map[*deltaConn]bool
	timer      *time.Timer
	timerAt    time.Time // the deadline timer is armed for
	now        func() time.Time
	testFix    func(envoy.Proxy, *envoy.Resources) // test-only hook, see SetTestMutator
	// deltaServed, if set, is called after a delta stream handled a
	// request (a test hook).
	deltaServed func()
	// wire holds one copy of each resource content in use, shared by every
	// key and step, with its encoding; gen counts updates, to prune it.
	wire     map[wireKey]*wireEntry
	gen      uint64
	wirePeak int // wire's largest size since it was made
	// live are the maps of the keys' desired configurations, by map (see
	// markMapInUse).
	live map[unsafe.Pointer]*liveMap
	// wired memoizes, during one update, what newConfig derived from each
	// map; nil between updates.
	wired map[wiredKey]wiredType
	// wireStale: wire may hold copies only steps use (see
	// sweepWireLocked).
	wireStale bool
	// size is the number of resources of the keys' desired configurations
	// and peak its largest since memory was last handed back; freeMemory
	// hands it back (debug.FreeOSMemory; tests count calls).
	size, peak int
	freeMemory func()
	freeAfter  time.Duration // freeDelay; tests shorten it
	freeTimer  *time.Timer   // pending freeMemory, postponed by updates
}

// keyState is the desired configuration of every node sharing one proxy key.
type keyState struct {
	desired *config // last configuration that passed validation
	invalid string  // last validation error logged
	// nodes counts the nodes of the key, and arrived those whose published
	// configuration is desired (joinKeyLocked, leaveKeyLocked,
	// setPublishedLocked and setDesired keep them), so that "has every
	// node of the key arrived" costs no scan.
	nodes, arrived int
}

// settled reports whether every node of the key has its desired
// configuration.
func (ks *keyState) settled() bool { return ks.arrived == ks.nodes }

// nodeState is where one node is on its way to its key's configuration.
type nodeState struct {
	key       envoy.Proxy
	published *config // what the cache holds for the node; nil: nothing yet
	step      step
	// pending maps a type URL to the version the node must answer before
	// the next step; publishedAt bounds the wait.
	pending     map[string]string
	publishedAt time.Time
	retireAt    time.Time
	timedOut    bool
	// answeredAll: the node answered every type of its last step (or the
	// wait timed out), so no ACK deadline is pending.
	answeredAll bool
	// warming are the clusters a gRPC warm step newly names: grpc-go sets
	// one up only once it has its cluster and endpoints, after ACKing the
	// route that names it.
	warming []string
	// changedAt is when the store changed to give the configuration the
	// node is moving to, until a step carrying its routes is published;
	// measureFrom is the changedAt of the last step, until the node ACKs
	// it (zero: nothing to measure). parent is the span of the translation
	// the node's pushes follow from.
	changedAt   time.Time
	measureFrom time.Time
	parent      trace.SpanContext
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
	if opts.AckTimeout == 0 {
		opts.AckTimeout = 5 * time.Second
	}
	if opts.MaxStreams == 0 {
		opts.MaxStreams = 1000
	}
	if opts.MaxMessageBytes == 0 {
		opts.MaxMessageBytes = 4 << 20
	}
	if opts.PushBudget == 0 {
		opts.PushBudget = defaultPushBudget
	}
	s := &Server{
		opts:       opts,
		log:        opts.Logger,
		keys:       map[envoy.Proxy]*keyState{},
		nodes:      map[string]*nodeState{},
		deltaConns: map[string]map[*deltaConn]bool{},
		now:        time.Now,
		wire:       map[wireKey]*wireEntry{},
		live:       map[unsafe.Pointer]*liveMap{},
		freeMemory: debug.FreeOSMemory,
		freeAfter:  freeDelay,
		budget:     newPushBudget(opts.PushBudget, gatedResponse, budgetHold),
	}
	// Non-ADS mode: answer each request with the resources it names, without
	// waiting for a request to name every resource of the snapshot.
	s.cache = newWireCache(cachev3.NewSnapshotCache(false, cachev3.IDHash{}, nil))
	s.proxies = newProxyTracker(s.log)
	m, err := newMetrics(opts.Meter, s.proxies.byRole)
	if err != nil {
		s.log.Error("xds: some metrics will be missing", "err", err)
	}
	s.metrics, s.proxies.metrics = m, m
	if opts.Tracer == nil {
		opts.Tracer = tracenoop.NewTracerProvider()
	}
	s.tracer = opts.Tracer.Tracer(meterName)
	return s
}

// Serve answers ADS (state of the world and delta) on lis until ctx is done.
func (s *Server) Serve(ctx context.Context, lis net.Listener) error {
	// Keepalive pings find half-dead proxies within Time+Timeout, so their
	// streams close and their state is dropped.
	gs := grpc.NewServer(
		grpc.KeepaliveParams(keepalive.ServerParameters{Time: 30 * time.Second, Timeout: 10 * time.Second}),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 10 * time.Second, PermitWithoutStream: true}),
		grpc.MaxConcurrentStreams(s.opts.MaxStreams),
		grpc.MaxRecvMsgSize(s.opts.MaxMessageBytes),
		grpc.ForceServerCodecV2(newWireCodec()),
	)
	xs := serverv3.NewServer(ctx, s.cache, s.callbacks())
	discoveryv3.RegisterAggregatedDiscoveryServiceServer(gs, adsServer{Server: xs, s: s})
	errc := make(chan error, 1)
	go func() { errc <- gs.Serve(lis) }()
	select {
	case <-ctx.Done():
		gs.Stop()
		<-errc
		s.stopTimer()
		return nil
	case err := <-errc:
		return fmt.Errorf("xds: serve on %s: %w", lis.Addr(), err)
	}
}

// Update makes in the configuration every node moves to from now on. It
// is UpdateAt with the current time and no parent span.
func (s *Server) Update(in *ir.IR) {
	s.UpdateAt(context.Background(), in, s.now())
}

// UpdateAt is Update for a configuration translated from the store as it
// was at changedAt: the push latency of a node whose configuration changes
// is measured from changedAt to its ACK. The push spans of those nodes
// are children of the span in ctx.
func (s *Server) UpdateAt(ctx context.Context, in *ir.IR, changedAt time.Time) {
	parent := trace.SpanContextFromContext(ctx)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ir = in
	if in == nil {
		s.builder = nil
	} else {
		s.builder = s.builder.Next(in)
	}
	s.gen++
	s.startUpdateLocked()
	defer s.endUpdateLocked()
	changed := s.rebuildAllLocked()
	for _, ns := range s.nodes {
		if changed[ns.key] {
			ns.changedAt, ns.parent = changedAt, parent
		}
	}
	s.sizeLocked()
	if s.freeTimer != nil {
		s.freeTimer.Reset(s.freeAfter) // the configuration is still moving
	}
	s.advanceAllLocked()
	s.pruneWire(true)
}

// startUpdateLocked starts the memos of one update; endUpdateLocked drops
// them, so that they never hold a configuration past its update.
func (s *Server) startUpdateLocked() {
	s.wired = map[wiredKey]wiredType{}
}

func (s *Server) endUpdateLocked() { s.wired = nil }

// sizeLocked updates size and peak from the keys' desired
// configurations.
func (s *Server) sizeLocked() {
	s.size = 0
	for _, ks := range s.keys {
		if ks.desired != nil {
			s.size += setSize(ks.desired.set)
		}
	}
	s.peak = max(s.peak, s.size)
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
		if reported(t, len(snap.GetResources(t))) {
			out[t] = snap.GetVersion(t)
		}
	}
	return out
}

// PublishedNames returns the names of the resources of typeURL published
// for a node, sorted; nil for an unknown node. A proxy asking for some
// names only gets those of them; the others are still served to it.
func (s *Server) PublishedNames(nodeID, typeURL string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	ns, ok := s.nodes[nodeID]
	if !ok || ns.published == nil {
		return nil
	}
	return ns.published.set.names(typeURL)
}

// DesiredVersions returns the versions a node is moving to (equal to
// SnapshotVersions once it settled), or nil for an unknown node.
func (s *Server) DesiredVersions(nodeID string) map[string]string {
	s.mu.Lock()
	defer s.mu.Unlock()
	ns, ok := s.nodes[nodeID]
	if !ok || s.keys[ns.key] == nil || s.keys[ns.key].desired == nil {
		return nil
	}
	desired := s.keys[ns.key].desired
	out := make(map[string]string, len(typeURLs))
	for _, t := range typeURLs {
		if reported(t, len(desired.set[t])) {
			out[t] = s.nodeVersion(nodeID, desired, t)
		}
	}
	return out
}

// nodeVersion is the version of typeURL node sees in c: c's, unless the
// node asks for a few names on a SotW stream (see snapshot.versionFor).
func (s *Server) nodeVersion(nodeID string, c *config, typeURL string) string {
	return c.snap.versionFor(typeURL, s.proxies.subscription(nodeID, typeURL))
}

// SetTestMutator installs a hook that may change every configuration after
// it is built and before it is validated: tests use it to push resources
// Envoy rejects. Never use it outside tests.
func (s *Server) SetTestMutator(f func(envoy.Proxy, *envoy.Resources)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.testFix = f
}

// rebuildAllLocked rebuilds the desired configuration of every key from
// the current IR, keys in parallel, and reports which keys' changed.
func (s *Server) rebuildAllLocked() map[envoy.Proxy]bool {
	keys := make([]envoy.Proxy, 0, len(s.keys))
	for key := range s.keys {
		keys = append(keys, key)
	}
	built := make([]resourceSet, len(keys))
	errs := make([]error, len(keys))
	lasts := make([]*config, len(keys))
	for i, key := range keys {
		lasts[i] = s.keys[key].desired
	}
	var hook sync.Mutex // the test mutator need not be safe for concurrent use
	b := s.builder
	memo := newEncodingMemo(b, s.held)
	work := make(chan int)
	var wg sync.WaitGroup
	for range min(len(keys), runtime.GOMAXPROCS(0)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				built[i], errs[i] = s.build(b, memo, keys[i], lasts[i], &hook)
			}
		}()
	}
	for i := range keys {
		work <- i
	}
	close(work)
	wg.Wait()
	s.held = memo.heldLists()
	changed := map[envoy.Proxy]bool{}
	for i, key := range keys {
		changed[key] = s.setDesiredLocked(key, built[i], memo, errs[i])
	}
	return changed
}

// rebuildLocked builds the desired configuration of key from the current
// IR.
func (s *Server) rebuildLocked(key envoy.Proxy) {
	var hook sync.Mutex
	memo := newEncodingMemo(s.builder, nil)
	set, err := s.build(s.builder, memo, key, s.keys[key].desired, &hook)
	s.setDesiredLocked(key, set, memo, err)
}

// build returns the resources of key from b (a Builder of the current IR,
// whose shared resources are built, validated and, with memo, encoded
// once for all keys), validated and hashed, and their encodings; secrets
// the listeners use that the IR lacks come from last, the key's last good
// configuration (nil if none). It only reads the Server, so keys build in
// parallel; hook guards the test mutator, which gets resources of its own.
func (s *Server) build(b *envoy.Builder, memo *encodingMemo, key envoy.Proxy, lastCfg *config, hook *sync.Mutex) (resourceSet, error) {
	var last resourceSet
	if lastCfg != nil {
		last = lastCfg.set
	}
	if b == nil {
		return nil, nil
	}
	var res *envoy.Resources
	var err error
	if s.testFix != nil {
		res, err = envoy.Build(s.ir, key)
	} else {
		res, err = b.Build(key)
	}
	if err == nil {
		res = envoy.WithoutSecrets(res, unavailableSecrets(res, last))
	}
	if err == nil && s.testFix != nil {
		hook.Lock()
		s.testFix(key, res)
		hook.Unlock()
	}
	if err == nil && s.testFix == nil {
		err = b.Validate(res)
	}
	if err != nil {
		return nil, err
	}
	set, err := encodedResources(res, memo, key.Role, last)
	if err != nil {
		return nil, err
	}
	if last != nil {
		set.withLastGoodSecrets(res.SecretRefs, last)
		for t, m := range set {
			set[t] = memo.sameAs(t, m, lastCfg)
		}
	}
	return set, nil
}

// setDesiredLocked makes set key's desired configuration and reports
// whether that changed it. A configuration that failed (err) is logged once
// and the key keeps its last good one; an unchanged one keeps its config,
// with what nodes share of it.
func (s *Server) setDesiredLocked(key envoy.Proxy, set resourceSet, memo *encodingMemo, err error) bool {
	ks := s.keys[key]
	if ks == nil || (set == nil && err == nil) {
		return false
	}
	if err != nil {
		if ks.invalid != err.Error() {
			ks.invalid = err.Error()
			s.log.Error("xds: configuration failed validation; proxies keep the last good one", "role", key.Role, "namespace", key.Namespace, "err", err)
		}
		return false
	}
	ks.invalid = ""
	if old := ks.desired; old != nil && old.set.equal(set) {
		s.markInUse(old)
		return false
	}
	if ks.desired != nil {
		ks.desired.forget()
	}
	ks.setDesired(s.newConfig(set, memo, key.Role, false, ks.desired))
	return true
}

// setDesired makes c, which no node has published yet, the key's desired
// configuration.
func (ks *keyState) setDesired(c *config) {
	ks.desired, ks.arrived = c, 0
}

// setPublishedLocked records that the cache holds c for ns.
func (s *Server) setPublishedLocked(ns *nodeState, c *config) {
	if ks := s.keys[ns.key]; ks != nil {
		if ns.published == ks.desired {
			ks.arrived--
		}
		if c == ks.desired {
			ks.arrived++
		}
	}
	ns.published = c
}

// joinKeyLocked counts ns, which has published nothing yet, in its key,
// creating the key if it is new; it reports whether it did.
func (s *Server) joinKeyLocked(ns *nodeState) bool {
	ks, ok := s.keys[ns.key]
	if !ok {
		ks = &keyState{}
		s.keys[ns.key] = ks
	}
	ks.nodes++
	if ns.published == ks.desired {
		ks.arrived++
	}
	return !ok
}

// leaveKeyLocked uncounts ns from its key, and drops the key when ns was its
// last node; it reports whether it did.
func (s *Server) leaveKeyLocked(ns *nodeState) bool {
	ks := s.keys[ns.key]
	if ks == nil {
		return false
	}
	ks.nodes--
	if ns.published == ks.desired {
		ks.arrived--
	}
	if ks.nodes > 0 {
		return false
	}
	delete(s.keys, ns.key)
	return true
}

// registerNode makes sure node has a snapshot before its first watch.
func (s *Server) registerNode(node *corev3.Node, key envoy.Proxy) {
	s.mu.Lock()
	defer s.mu.Unlock()
	id := node.GetId()
	old, ok := s.nodes[id]
	if ok && old.key == key {
		return
	}
	if ok && s.leaveKeyLocked(old) {
		s.sizeLocked()
	}
	ns := &nodeState{key: key}
	s.nodes[id] = ns
	s.cache.ClearSnapshot(id)
	if s.joinKeyLocked(ns) {
		s.rebuildLocked(key)
		s.sizeLocked()
	}
	s.advanceLocked(id)
	s.scheduleLocked()
}

// forgetNode drops a node's snapshot once its last stream closed.
func (s *Server) forgetNode(nodeID string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ns, ok := s.nodes[nodeID]
	if !ok {
		return
	}
	delete(s.nodes, nodeID)
	s.cache.ClearSnapshot(nodeID)
	if !s.leaveKeyLocked(ns) {
		return
	}
	s.sizeLocked()
	s.sweepWireLocked() // the node may have been the last one moving
}

// answered is called when a node ACKed or NACKed something.
func (s *Server) answered(nodeID string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if ns, ok := s.nodes[nodeID]; ok {
		s.measureLocked(nodeID, ns)
		s.advanceLocked(nodeID)
		s.scheduleNodeLocked(ns)
	}
}

// answeredLocked reports whether the node answered version v of typeURL,
// published in its last step, or the version of that step its current
// subscription makes: a sidecar asks for other route configurations once
// the scopes of the step arrive, and the version it ACKs is then theirs.
func (s *Server) answeredLocked(nodeID string, ns *nodeState, typeURL, v string) bool {
	return s.proxies.answered(nodeID, typeURL, v) || s.proxies.answered(nodeID, typeURL, s.nodeVersion(nodeID, ns.published, typeURL))
}

// measureLocked records the push latency of a node that ACKed every type
// of a step that carried the routes of a change.
func (s *Server) measureLocked(nodeID string, ns *nodeState) {
	if ns.measureFrom.IsZero() {
		return
	}
	for t, v := range ns.pending {
		if !s.proxies.acked(nodeID, t, v) && !s.proxies.acked(nodeID, t, s.nodeVersion(nodeID, ns.published, t)) {
			return
		}
	}
	s.metrics.acked(string(ns.key.Role), s.now().Sub(ns.measureFrom))
	ns.measureFrom = time.Time{}
}

func (s *Server) advanceAllLocked() {
	for id := range s.nodes {
		s.advanceLocked(id)
	}
	s.scheduleLocked()
}

// advanceLocked publishes a node's next steps, as long as it answered the
// last one (a step nobody must answer is followed by the next at once).
func (s *Server) advanceLocked(nodeID string) {
	ns := s.nodes[nodeID]
	ks := s.keys[ns.key]
	for range 4 { // warm, switch, retire: at most three steps, then settled
		if ks == nil || ks.desired == nil || !s.settledLocked(nodeID, ns) {
			return
		}
		ns.answeredAll = true
		m := s.stepTo(ns.published, ks.desired, ns.key.Role)
		if m.st == stepSettled {
			if ns.step != stepSettled {
				ns.step = stepSettled
				s.forgetStepsLocked(ns.key)
			}
			return
		}
		if m.st == stepRetire && ns.step == stepSwitch && s.now().Before(ns.retireAt) {
			return // the grace timer comes back
		}
		s.publishLocked(nodeID, ns, m.next, m.st)
		ns.warming = m.warming
	}
}

// forgetStepsLocked drops the memoized steps towards key's desired
// configuration once every node of the key has it: they hold the
// configurations the nodes came from, which would otherwise outlive them.
func (s *Server) forgetStepsLocked(key envoy.Proxy) {
	ks := s.keys[key]
	if ks == nil || ks.desired == nil || !ks.settled() {
		return
	}
	ks.desired.forget()
	s.sweepWireLocked()
	s.shrunkLocked()
}

// allSettledLocked reports whether every node has its key's desired
// configuration.
func (s *Server) allSettledLocked() bool {
	for _, ks := range s.keys {
		if !ks.settled() {
			return false
		}
	}
	return true
}

// sweepWireLocked forgets, once every node has its key's desired
// configuration, the shared copies only the steps towards them used. An
// update prunes those the next update does not use, but a mesh that
// settled may see no next update: the copies would stay, and with them
// the messages of configurations every node left (after a scale-down,
// most of the larger mesh).
func (s *Server) sweepWireLocked() {
	if !s.wireStale || !s.allSettledLocked() {
		return
	}
	s.wireStale = false
	s.pruneWire(false)
}

// freeDelay is how long the configuration must stay put after shrinking
// before memory is handed back: a mesh scaled down in many edits settles
// once, at the end.
const freeDelay = 10 * time.Second

// shrunkLocked hands memory back to the system freeDelay after the
// configuration shrank to less than half its peak and every node has the
// smaller one: the Go runtime would otherwise keep the larger heap's
// memory, collecting only when allocation reaches that heap's goal.
func (s *Server) shrunkLocked() {
	if 2*s.size >= s.peak || s.freeTimer != nil || !s.allSettledLocked() {
		return
	}
	s.freeTimer = time.AfterFunc(s.freeAfter, func() {
		s.mu.Lock()
		peak, size := s.peak, s.size
		s.freeTimer, s.peak = nil, s.size
		s.mu.Unlock()
		start := time.Now()
		s.freeMemory()
		s.log.Info("xds: configuration shrank; memory handed back to the system", "resources", size, "peak", peak, "took", time.Since(start).Round(time.Millisecond))
	})
}

// grpcWarmDwell is how long a gRPC warm step stays before the switch:
// grpc-go ACKs before its channel applies a configuration, and says nothing
// when it has.
const grpcWarmDwell = 100 * time.Millisecond

// settledLocked reports whether the node answered every type of its last
// step (for a gRPC warm step: ACKed clusters and endpoints naming what it
// newly routes to, and grpcWarmDwell passed), or the answer is overdue.
// Once it has, later answers (of versions a changed subscription makes)
// do not take that back.
func (s *Server) settledLocked(nodeID string, ns *nodeState) bool {
	if ns.answeredAll {
		return true
	}
	if len(ns.warming) > 0 && s.now().Before(ns.publishedAt.Add(grpcWarmDwell)) {
		return false
	}
	for _, c := range ns.warming {
		for _, t := range []string{resourcev3.ClusterType, resourcev3.EndpointType} {
			if !s.proxies.hasAcked(nodeID, t, c) && s.now().Sub(ns.publishedAt) < s.opts.AckTimeout {
				return false
			}
		}
	}
	for t, v := range ns.pending {
		if !s.answeredLocked(nodeID, ns, t, v) {
			if s.now().Sub(ns.publishedAt) < s.opts.AckTimeout {
				return false
			}
			if !ns.timedOut {
				ns.timedOut = true
				s.log.Warn("xds: proxy did not answer in time; publishing its next step anyway", "node", nodeID, "type", t, "version", v, "step", ns.step)
			}
		}
	}
	return true
}

func (s *Server) publishLocked(nodeID string, ns *nodeState, next *config, st step) {
	pending := map[string]string{}
	delta := s.proxies.delta(nodeID)
	for _, t := range typeURLs {
		v := s.nodeVersion(nodeID, next, t)
		if ns.published == nil || v != s.nodeVersion(nodeID, ns.published, t) {
			var changed map[string]bool
			if ns.published != nil && delta {
				changed = next.changedFrom(ns.published, t)
			}
			if s.expectsLocked(nodeID, delta, t, changed) {
				pending[t] = v
			}
		}
	}
	span := s.startPush(nodeID, ns, st, next.set)
	defer span.End()
	if err := s.cache.SetSnapshot(context.Background(), nodeID, &nodeView{snapshot: next.snap, node: nodeID, tracker: s.proxies}); err != nil {
		span.SetStatus(codes.Error, err.Error())
		s.log.Error("xds: set snapshot", "node", nodeID, "err", err)
		return
	}
	s.setPublishedLocked(ns, next)
	ns.step, ns.pending, ns.publishedAt, ns.timedOut, ns.answeredAll = st, pending, s.now(), false, false
	s.notifyDeltaLocked(nodeID)
	if st == stepSwitch {
		ns.retireAt = s.now().Add(s.opts.ClusterGrace)
	}
	// The latency of a change ends when the proxy ACKs the step that
	// carries its routes: the switch, or a retire with no switch before
	// it. A step nobody must answer ends nothing.
	ns.measureFrom = time.Time{}
	if st != stepWarm {
		if len(pending) > 0 {
			ns.measureFrom = ns.changedAt
		}
		ns.changedAt = time.Time{}
	}
	s.metrics.published(string(ns.key.Role), setSize(next.set))
	s.log.Debug("xds: published", "node", nodeID, "step", st)
}

// startPush starts the span of one push, a child of the translation that
// led to it. With tracing off it is a noop span and attributes are not
// built.
func (s *Server) startPush(nodeID string, ns *nodeState, st step, next resourceSet) trace.Span {
	ctx := context.Background()
	if ns.parent.IsValid() {
		ctx = trace.ContextWithSpanContext(ctx, ns.parent)
	}
	_, span := s.tracer.Start(ctx, "xds.push")
	if span.IsRecording() {
		span.SetAttributes(attribute.String("weir.node", nodeID), attribute.String("weir.role", string(ns.key.Role)),
			attribute.String("weir.step", st.String()), attribute.Int("weir.resources", setSize(next)))
	}
	return span
}

// deadlineLocked returns when ns must be looked at again though it says
// nothing: its ACK deadline, the end of its grace period, or of a gRPC
// warm step's dwell. Zero means never.
func (s *Server) deadlineLocked(ns *nodeState) time.Time {
	var next time.Time
	consider := func(t time.Time) {
		if next.IsZero() || t.Before(next) {
			next = t
		}
	}
	if len(ns.pending) > 0 && !ns.timedOut && !ns.answeredAll {
		consider(ns.publishedAt.Add(s.opts.AckTimeout))
	}
	if ns.step == stepSwitch {
		consider(ns.retireAt)
	}
	if len(ns.warming) > 0 && ns.step == stepWarm {
		consider(ns.publishedAt.Add(grpcWarmDwell))
	}
	return next
}

// timerSlack batches deadlines: the timer fires this long after the
// earliest, for every node due by then, so that a thousand nodes whose
// grace periods end a few milliseconds apart take one pass, not a
// thousand.
const timerSlack = 20 * time.Millisecond

// scheduleLocked arms the timer for the earliest deadline of any node.
func (s *Server) scheduleLocked() {
	var next time.Time
	for _, ns := range s.nodes {
		if d := s.deadlineLocked(ns); !d.IsZero() && (next.IsZero() || d.Before(next)) {
			next = d
		}
	}
	if s.timer != nil {
		s.timer.Stop()
		s.timer = nil
	}
	s.armLocked(next)
}

// scheduleNodeLocked makes sure the timer fires by ns's deadline, without
// looking at other nodes.
func (s *Server) scheduleNodeLocked(ns *nodeState) {
	if d := s.deadlineLocked(ns); !d.IsZero() && (s.timer == nil || d.Before(s.timerAt)) {
		if s.timer != nil {
			s.timer.Stop()
		}
		s.armLocked(d)
	}
}

func (s *Server) armLocked(at time.Time) {
	if at.IsZero() {
		s.timer = nil
		return
	}
	s.timerAt = at
	s.timer = time.AfterFunc(at.Sub(s.now())+timerSlack, s.tick)
}

// tick advances the nodes whose deadline passed.
func (s *Server) tick() {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	for id, ns := range s.nodes {
		if d := s.deadlineLocked(ns); !d.IsZero() && !d.After(now) {
			s.advanceLocked(id)
		}
	}
	s.scheduleLocked()
}

func (s *Server) stopTimer() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.timer != nil {
		s.timer.Stop()
		s.timer = nil
	}
	if s.freeTimer != nil {
		s.freeTimer.Stop()
		s.freeTimer = nil
	}
}
