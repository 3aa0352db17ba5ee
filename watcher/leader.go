package watcher

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/leaderelection"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
	"k8s.io/klog/v2"
)

// Default leader election timing (client-go's usual values).
const (
	DefaultLeaseDuration = 15 * time.Second
	DefaultRenewDeadline = 10 * time.Second
	DefaultRetryPeriod   = 2 * time.Second
)

// LeaderConfig configures leader election on a coordination.k8s.io Lease.
type LeaderConfig struct {
	Client kubernetes.Interface
	// Namespace and Name name the Lease.
	Namespace string
	Name      string
	// Identity names this replica in the Lease; "" means the hostname plus
	// a random suffix.
	Identity string
	// LeaseDuration is how long others wait after the last renewal before
	// taking over (whole seconds, at least 1s: the Lease stores seconds).
	// RenewDeadline is how long the leader keeps trying to renew before it
	// gives up; RetryPeriod is the time between tries. Zero means the
	// defaults above.
	LeaseDuration time.Duration
	RenewDeadline time.Duration
	RetryPeriod   time.Duration
	// Logger receives weir's and client-go's messages; nil means
	// slog.Default().
	Logger *slog.Logger
}

// Leadership campaigns for a Lease and tells whether this replica holds it.
// IsLeader and Identity are safe for concurrent use.
type Leadership struct {
	cfg     LeaderConfig
	log     *slog.Logger
	leading atomic.Bool
}

// NewLeadership checks cfg and fills in its defaults.
func NewLeadership(cfg LeaderConfig) (*Leadership, error) {
	if cfg.Client == nil || cfg.Namespace == "" || cfg.Name == "" {
		return nil, errors.New("leader election: Client, Namespace and Name are required")
	}
	cfg.LeaseDuration = orDefault(cfg.LeaseDuration, DefaultLeaseDuration)
	cfg.RenewDeadline = orDefault(cfg.RenewDeadline, DefaultRenewDeadline)
	cfg.RetryPeriod = orDefault(cfg.RetryPeriod, DefaultRetryPeriod)
	if cfg.LeaseDuration < time.Second || cfg.LeaseDuration%time.Second != 0 {
		return nil, fmt.Errorf("leader election: lease duration %v must be a whole number of seconds", cfg.LeaseDuration)
	}
	if cfg.Identity == "" {
		id, err := defaultIdentity()
		if err != nil {
			return nil, err
		}
		cfg.Identity = id
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	l := &Leadership{cfg: cfg, log: cfg.Logger.With("lease", cfg.Namespace+"/"+cfg.Name, "identity", cfg.Identity)}
	if _, err := leaderelection.NewLeaderElector(l.electionConfig(&term{})); err != nil {
		return nil, fmt.Errorf("leader election: %w", err)
	}
	return l, nil
}

func orDefault(d, def time.Duration) time.Duration {
	if d == 0 {
		return def
	}
	return d
}

func defaultIdentity() (string, error) {
	host, err := os.Hostname()
	if err != nil {
		return "", fmt.Errorf("leader election: identity: %w", err)
	}
	suffix := make([]byte, 4)
	if _, err := rand.Read(suffix); err != nil {
		return "", fmt.Errorf("leader election: identity: %w", err)
	}
	return host + "_" + hex.EncodeToString(suffix), nil
}

// Identity is this replica's name in the Lease.
func (l *Leadership) Identity() string { return l.cfg.Identity }

// IsLeader reports whether this replica holds the Lease and its onStart
// has not been told to stop.
func (l *Leadership) IsLeader() bool { return l.leading.Load() }

// Run campaigns for the Lease until ctx is done, then returns nil.
//
// While this replica leads, onStart runs (in its own goroutine) with a
// context that is cancelled when leadership ends; it must return promptly
// then. After it has returned, onStop is called; onStop is not called for
// a term that never started. When leadership is lost (renewal failed), Run
// campaigns again. On ctx's end the Lease is released once onStart has
// returned, so that two replicas never act as leader at once; if onStart
// takes longer than RenewDeadline, the Lease is left to expire instead.
func (l *Leadership) Run(ctx context.Context, onStart func(context.Context), onStop func()) error {
	kctx := klog.NewContext(ctx, logr.FromSlogHandler(l.log.Handler()))
	for {
		t := &term{l: l, onStart: onStart, onStop: onStop}
		le, err := leaderelection.NewLeaderElector(l.electionConfig(t))
		if err != nil {
			return fmt.Errorf("leader election: %w", err)
		}
		le.Run(kctx)
		if ctx.Err() != nil {
			return nil
		}
		l.log.Warn("lost leadership; campaigning again")
	}
}

func (l *Leadership) electionConfig(t *term) leaderelection.LeaderElectionConfig {
	lock := &resourcelock.LeaseLock{
		LeaseMeta:  metav1.ObjectMeta{Namespace: l.cfg.Namespace, Name: l.cfg.Name},
		Client:     l.cfg.Client.CoordinationV1(),
		LockConfig: resourcelock.ResourceLockConfig{Identity: l.cfg.Identity},
	}
	return leaderelection.LeaderElectionConfig{
		Lock:            &gatedLock{Interface: lock, beforeRelease: t.stop},
		LeaseDuration:   l.cfg.LeaseDuration,
		RenewDeadline:   l.cfg.RenewDeadline,
		RetryPeriod:     l.cfg.RetryPeriod,
		ReleaseOnCancel: true,
		Name:            l.cfg.Namespace + "/" + l.cfg.Name,
		Callbacks: leaderelection.LeaderCallbacks{
			OnStartedLeading: t.start,
			OnStoppedLeading: t.stopped,
		},
	}
}

// RunLeaderElection is NewLeadership(cfg) then Run.
func RunLeaderElection(ctx context.Context, cfg LeaderConfig, onStart func(context.Context), onStop func()) error {
	l, err := NewLeadership(cfg)
	if err != nil {
		return err
	}
	return l.Run(ctx, onStart, onStop)
}

// term is one leader elector's run: at most one call of onStart.
type term struct {
	l       *Leadership
	onStart func(context.Context)
	onStop  func()

	mu      sync.Mutex
	ended   bool               // guarded by mu; once set, onStart is not called
	cancel  context.CancelFunc // guarded by mu; nil until onStart is called
	running chan struct{}      // guarded by mu; closed when onStart returns
}

// start is client-go's OnStartedLeading, called in its own goroutine.
func (t *term) start(ctx context.Context) {
	t.mu.Lock()
	if t.ended {
		t.mu.Unlock()
		return
	}
	ctx, t.cancel = context.WithCancel(ctx)
	t.running = make(chan struct{})
	t.l.leading.Store(true)
	t.mu.Unlock()
	t.l.log.Info("started leading")
	defer close(t.running)
	t.onStart(ctx)
}

// stop ends the term and waits until onStart has returned or ctx is done;
// it reports whether onStart has returned (or never ran).
func (t *term) stop(ctx context.Context) bool {
	t.mu.Lock()
	t.ended = true
	t.l.leading.Store(false)
	cancel, running := t.cancel, t.running
	t.mu.Unlock()
	if running == nil {
		return true
	}
	cancel()
	select {
	case <-running:
		return true
	case <-ctx.Done():
		return false
	}
}

// stopped is client-go's OnStoppedLeading, called when its Run returns.
func (t *term) stopped() {
	t.stop(context.Background()) // client-go has cancelled onStart's context
	t.mu.Lock()
	started := t.running != nil
	t.mu.Unlock()
	if started {
		t.l.log.Info("stopped leading")
		t.onStop()
	}
}

// gatedLock is a Lease lock that stops the leader's work before it releases
// the Lease, as ReleaseOnCancel requires.
type gatedLock struct {
	resourcelock.Interface
	beforeRelease func(context.Context) bool
}

// Update releases the Lease (a record with no holder) only after
// beforeRelease reports the leader's work done; otherwise it fails, and the
// Lease expires on its own.
func (g *gatedLock) Update(ctx context.Context, r resourcelock.LeaderElectionRecord) error {
	if r.HolderIdentity == "" && !g.beforeRelease(ctx) {
		return errors.New("leader's work has not stopped; leaving the lease to expire")
	}
	return g.Interface.Update(ctx, r)
}
