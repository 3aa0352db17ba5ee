package serve

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"

	"github.com/weir-mesh/weir/translator/status"
	"github.com/weir-mesh/weir/watcher"
)

// LeaderElection configures which Lease the replicas compete for; only the
// holder writes status back to Kubernetes. Zero durations mean client-go's
// defaults.
type LeaderElection struct {
	Namespace     string
	Name          string
	Identity      string
	LeaseDuration time.Duration
	RenewDeadline time.Duration
	RetryPeriod   time.Duration
}

// statusPublisher writes the latest translation's status to Kubernetes
// while this replica leads. offer is safe for concurrent use.
type statusPublisher struct {
	writer *watcher.StatusWriter
	lead   *watcher.Leadership
	log    *slog.Logger

	mu     sync.Mutex
	latest []status.Object
	have   bool
	kick   chan struct{}
}

func newStatusPublisher(cfg Config) (*statusPublisher, error) {
	dyn, err := dynamic.NewForConfig(cfg.Kube)
	if err != nil {
		return nil, fmt.Errorf("serve: status client: %w", err)
	}
	core, err := kubernetes.NewForConfig(cfg.Kube)
	if err != nil {
		return nil, fmt.Errorf("serve: status client: %w", err)
	}
	le := cfg.LeaderElection
	lead, err := watcher.NewLeadership(watcher.LeaderConfig{
		Client: core, Namespace: le.Namespace, Name: le.Name, Identity: le.Identity,
		LeaseDuration: le.LeaseDuration, RenewDeadline: le.RenewDeadline, RetryPeriod: le.RetryPeriod,
		Logger: cfg.Logger,
	})
	if err != nil {
		return nil, err
	}
	writer := watcher.NewStatusWriter(dyn, core, cfg.Logger)
	writer.SetLoadBalancerAddress(cfg.IngressAddress)
	return &statusPublisher{
		writer: writer,
		lead:   lead, log: cfg.Logger, kick: make(chan struct{}, 1),
	}, nil
}

// offer makes objs the status to write; older offers not yet written are
// dropped.
func (p *statusPublisher) offer(objs []status.Object) {
	p.mu.Lock()
	p.latest, p.have = objs, true
	p.mu.Unlock()
	select {
	case p.kick <- struct{}{}:
	default:
	}
}

// Run campaigns for leadership until ctx is done.
func (p *statusPublisher) Run(ctx context.Context) error {
	return p.lead.Run(ctx, p.whileLeading, func() {})
}

// whileLeading writes every new status, retrying failures with backoff
// (1 s doubling to 30 s) even if no new translation comes.
func (p *statusPublisher) whileLeading(ctx context.Context) {
	p.writer.Reset() // another replica may have written since our last term
	backoff := time.Duration(0)
	for {
		p.mu.Lock()
		objs, have := p.latest, p.have
		p.mu.Unlock()
		if have {
			if err := p.writer.Write(ctx, objs); err != nil && ctx.Err() == nil {
				backoff = min(max(2*backoff, time.Second), 30*time.Second)
				p.log.Warn("status write failed; retrying", "in", backoff, "err", err)
			} else {
				backoff = 0
			}
		}
		var retry <-chan time.Time
		var timer *time.Timer
		if backoff > 0 {
			timer = time.NewTimer(backoff)
			retry = timer.C
		}
		select {
		case <-ctx.Done():
			return
		case <-p.kick:
		case <-retry:
		}
		if timer != nil {
			timer.Stop()
		}
	}
}
