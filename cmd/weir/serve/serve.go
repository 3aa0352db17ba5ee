// Package serve runs weir's control plane: a source feeding the store, the
// translation loop, the ADS server and the admin endpoints.
package serve

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"sync"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"
	tracenoop "go.opentelemetry.io/otel/trace/noop"
	"k8s.io/client-go/rest"

	"github.com/weir-mesh/weir/translator"
	"github.com/weir-mesh/weir/translator/ir"
	"github.com/weir-mesh/weir/translator/status"
	"github.com/weir-mesh/weir/watcher"
	"github.com/weir-mesh/weir/xds"
)

// Config is what `weir serve` takes. Exactly one source is used: the
// directory Dir if set, else the cluster Kube points at.
type Config struct {
	// Dir is the directory of manifests the file source reads.
	Dir string
	// Kube is the client configuration of the cluster to read, used when
	// Dir is "".
	Kube *rest.Config
	// Namespaces limits what is read from the cluster; empty means all.
	Namespaces []string
	// VersionLabels are the Pod labels that name an endpoint's version, in
	// order of precedence; empty means "version".
	VersionLabels []string
	// IngressClass is the class of the Ingresses served; "" means "weir".
	IngressClass string
	// GatewayController is the controllerName of the Gateway API
	// GatewayClasses served; "" means weir.dev/gateway-controller.
	GatewayController string
	// IngressAddress, if set, is written to the status.loadBalancer of the
	// Ingresses served (the gateways' address).
	IngressAddress string
	// XDSAddr and AdminAddr are listen addresses; port 0 picks a free one.
	XDSAddr   string
	AdminAddr string
	// OutboundAddress and OutboundPort are the sidecar listener defaults.
	OutboundAddress string
	OutboundPort    uint32
	// ScopedRoutes is the sidecars' default for scoped routes (see
	// xds.Options).
	ScopedRoutes bool
	// ClusterGrace is how long an unused cluster is still served.
	ClusterGrace time.Duration
	// PushBudget bounds the bytes of large responses in flight to proxies
	// (see xds.Options); zero means xds's default, negative no bound.
	PushBudget int64
	// Debounce is the quiet that makes a change translate at once; a
	// change sooner after the last translation waits for that much quiet,
	// and DebounceMax bounds the wait under a steady stream of changes.
	Debounce    time.Duration
	DebounceMax time.Duration
	// Pprof serves Go's profiles under /debug/pprof/ on the admin address.
	Pprof bool
	// LeaderElection is used with Kube: the leader writes status back.
	LeaderElection LeaderElection
	Logger         *slog.Logger
	// TracerProvider receives a span per translation and per push; nil
	// records none.
	TracerProvider trace.TracerProvider
}

// Server is a running control plane. Create it with New, then Run it.
type Server struct {
	cfg      Config
	log      *slog.Logger
	store    *watcher.Store
	source   source
	files    *watcher.FileSource // nil unless the source is a directory
	status   *statusPublisher    // nil unless the source is a cluster
	xds      *xds.Server
	tel      *telemetry
	tracer   trace.Tracer
	xdsLis   net.Listener
	adminLis net.Listener

	mu         sync.Mutex
	lastStatus []status.Object
	ir         *ir.IR // last translation; nil before the first
	ready      bool

	rejections *rejectionLog // only translate uses it
}

// source fills the store; see watcher.FileSource and watcher.KubeSource.
type source interface {
	Run(ctx context.Context, ready chan<- struct{}) error
}

// New binds the listeners; nothing is served until Run.
func New(cfg Config) (*Server, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Dir == "" && cfg.Kube == nil {
		return nil, errors.New("serve: no source: give a directory of manifests or a cluster")
	}
	store, err := watcher.NewStore()
	if err != nil {
		return nil, err
	}
	s := &Server{cfg: cfg, log: cfg.Logger, store: store, rejections: &rejectionLog{log: cfg.Logger}}
	if cfg.Dir != "" {
		s.files = &watcher.FileSource{Dir: cfg.Dir, Store: store, Logger: cfg.Logger}
		s.source = s.files
	} else {
		s.source = &watcher.KubeSource{Config: cfg.Kube, Namespaces: cfg.Namespaces, Store: store, Logger: cfg.Logger}
		if s.status, err = newStatusPublisher(cfg); err != nil {
			return nil, err
		}
	}
	if s.tel, err = newTelemetry(); err != nil {
		return nil, err
	}
	if cfg.TracerProvider == nil {
		cfg.TracerProvider = tracenoop.NewTracerProvider()
	}
	s.tracer = cfg.TracerProvider.Tracer("github.com/weir-mesh/weir/cmd/weir/serve")
	s.xds = xds.NewServer(xds.Options{
		OutboundAddress: cfg.OutboundAddress, OutboundPort: cfg.OutboundPort, ScopedRoutes: cfg.ScopedRoutes,
		ClusterGrace: cfg.ClusterGrace, PushBudget: cfg.PushBudget, Logger: cfg.Logger,
		Meter: s.tel.provider, Tracer: cfg.TracerProvider,
	})
	if s.xdsLis, err = net.Listen("tcp", cfg.XDSAddr); err != nil {
		return nil, fmt.Errorf("serve: xds listener: %w", err)
	}
	if s.adminLis, err = net.Listen("tcp", cfg.AdminAddr); err != nil {
		s.xdsLis.Close()
		return nil, fmt.Errorf("serve: admin listener: %w", err)
	}
	return s, nil
}

// XDSAddr is the address the ADS server listens on.
func (s *Server) XDSAddr() string { return s.xdsLis.Addr().String() }

// AdminAddr is the address of the admin HTTP endpoints.
func (s *Server) AdminAddr() string { return s.adminLis.Addr().String() }

// XDS is the ADS server, for tests that inspect proxy state.
func (s *Server) XDS() *xds.Server { return s.xds }

// Run serves until ctx is done, then returns nil; it returns an error if a
// part fails to start or stops on its own.
func (s *Server) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	parts := 4
	errc := make(chan error, parts+1)
	loaded := make(chan struct{})
	go func() { errc <- s.source.Run(ctx, loaded) }()
	if s.status != nil {
		parts++
		go func() { errc <- s.status.Run(ctx) }()
	}
	go func() { errc <- s.xds.Serve(ctx, s.xdsLis) }()
	go func() { errc <- s.serveAdmin(ctx) }()
	go func() {
		select {
		case <-loaded:
			errc <- s.translateLoop(ctx)
		case <-ctx.Done():
			errc <- nil
		}
	}()
	var first error
	for i := 0; i < parts; i++ {
		err := <-errc
		if first == nil && (err != nil || ctx.Err() == nil) {
			first = err
			if first == nil {
				first = errors.New("serve: a component stopped unexpectedly")
			}
		}
		cancel()
	}
	return first
}

// translateLoop translates once now and again after every burst of changes.
func (s *Server) translateLoop(ctx context.Context) error {
	s.translate(ctx, time.Now())
	for {
		changedAt, ok := debounce(ctx, s.store.Changed(), time.Now(), s.cfg.Debounce, s.cfg.DebounceMax)
		if !ok {
			return nil
		}
		s.translate(ctx, changedAt)
	}
}

// translate translates the store and hands the result to the ADS server,
// which measures push latency from changedAt. It is one span, parent of
// the pushes it causes.
func (s *Server) translate(ctx context.Context, changedAt time.Time) {
	ctx, span := s.tracer.Start(ctx, "translate")
	defer span.End()
	start := time.Now()
	res := translator.Translate(s.store.Snapshot(), translator.Options{VersionLabels: s.cfg.VersionLabels, IngressClass: s.cfg.IngressClass,
		GatewayController: s.cfg.GatewayController})
	s.tel.translation.Record(ctx, time.Since(start).Seconds())
	if span.IsRecording() {
		span.SetAttributes(attribute.Int("weir.hosts", len(res.IR.Hosts)), attribute.Int("weir.clusters", len(res.IR.Clusters)))
	}
	s.xds.UpdateAt(ctx, res.IR, changedAt)
	s.mu.Lock()
	s.lastStatus, s.ir, s.ready = res.Status, res.IR, true
	s.mu.Unlock()
	if s.status != nil {
		s.status.offer(res.Status)
	}
	s.rejections.observe(res.Status)
	s.log.Info("translated", "hosts", len(res.IR.Hosts), "clusters", len(res.IR.Clusters), "took", time.Since(start).Round(time.Microsecond))
}

// debounce waits for a change. A change that comes wait or more after
// quietSince (the end of the last translation) is returned at once: a single
// edit pays no wait. A change that comes sooner starts a burst, which ends
// after quiet lasting wait, never longer than max after its first change.
// It returns when it saw the first change, and false when ctx is done.
func debounce(ctx context.Context, changed <-chan struct{}, quietSince time.Time, wait, max time.Duration) (time.Time, bool) {
	select {
	case <-ctx.Done():
		return time.Time{}, false
	case <-changed:
	}
	first := time.Now()
	if first.Sub(quietSince) >= wait {
		return first, true
	}
	deadline := time.NewTimer(max)
	defer deadline.Stop()
	for {
		quiet := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			quiet.Stop()
			return time.Time{}, false
		case <-changed:
			quiet.Stop()
		case <-quiet.C:
			return first, true
		case <-deadline.C:
			quiet.Stop()
			return first, true
		}
	}
}

func (s *Server) serveAdmin(ctx context.Context) error {
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })
	mux.HandleFunc("/readyz", s.readyz)
	mux.Handle("/metrics", s.tel.handler)
	mux.Handle("/debug/proxies", s.xds.ProxiesHandler())
	mux.HandleFunc("/debug/status", s.debugStatus)
	mux.HandleFunc("/debug/services", s.debugServices)
	if s.cfg.Pprof {
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		<-ctx.Done()
		shutdown, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = srv.Shutdown(shutdown) // best effort: the process is stopping
	}()
	if err := srv.Serve(s.adminLis); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serve: admin: %w", err)
	}
	return nil
}

func (s *Server) readyz(w http.ResponseWriter, _ *http.Request) {
	s.mu.Lock()
	ready := s.ready
	s.mu.Unlock()
	if !ready {
		http.Error(w, "not ready: first translation pending", http.StatusServiceUnavailable)
		return
	}
	fmt.Fprintln(w, "ok")
}

func (s *Server) debugStatus(w http.ResponseWriter, _ *http.Request) {
	s.mu.Lock()
	st := s.lastStatus
	s.mu.Unlock()
	errs := map[string]string{}
	if s.files != nil {
		for file, err := range s.files.Errors() {
			errs[file] = err.Error()
		}
	}
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(map[string]any{"status": st, "fileErrors": errs}) // client gone
}

// debugServices prints one line per Service of the last translation: its
// ready endpoints grouped by version ("service NS/NAME: v1 3 ready, v2 1
// ready"), sorted.
func (s *Server) debugServices(w http.ResponseWriter, _ *http.Request) {
	s.mu.Lock()
	last := s.ir
	s.mu.Unlock()
	if last == nil {
		http.Error(w, "not ready: first translation pending", http.StatusServiceUnavailable)
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	for _, sv := range last.ServiceVersions() {
		fmt.Fprintln(w, sv)
	}
}
