package watcher

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	kubefake "k8s.io/client-go/kubernetes/fake"
)

// candidate is one replica in a leader election test.
type candidate struct {
	l       *Leadership
	cancel  context.CancelFunc
	started chan string   // receives the identity when onStart runs
	stopped chan string   // receives the identity when onStop runs
	done    chan struct{} // closed when Run has returned
	err     error         // Run's result, set before done is closed
}

func startCandidate(t *testing.T, client *kubefake.Clientset, id string) *candidate {
	t.Helper()
	started := make(chan string, 4)
	c := startCandidateWith(t, client, id, func(ctx context.Context) { started <- id; <-ctx.Done() })
	c.started = started
	return c
}

// startCandidateWith runs a candidate whose onStart is work; its started
// channel is nil.
func startCandidateWith(t *testing.T, client *kubefake.Clientset, id string, work func(context.Context)) *candidate {
	t.Helper()
	l, err := NewLeadership(LeaderConfig{
		Client: client, Namespace: "weir-system", Name: "weir", Identity: id,
		LeaseDuration: time.Second, RenewDeadline: 500 * time.Millisecond, RetryPeriod: 100 * time.Millisecond,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	c := &candidate{l: l, cancel: cancel, stopped: make(chan string, 4), done: make(chan struct{})}
	go func() {
		defer close(c.done)
		c.err = l.Run(ctx, work, func() { c.stopped <- id })
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-c.done:
		case <-time.After(10 * time.Second):
			t.Errorf("%s: Run did not return", id)
		}
	})
	return c
}

func receive(t *testing.T, ch <-chan string, what string) string {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(10 * time.Second):
		t.Fatalf("timed out waiting for %s", what)
		return ""
	}
}

func TestLeaderElectionTakeover(t *testing.T) {
	client := kubefake.NewClientset()
	a := startCandidate(t, client, "a")
	receive(t, a.started, "a to lead")
	if !a.l.IsLeader() {
		t.Error("a leads but IsLeader is false")
	}
	b := startCandidate(t, client, "b")

	// b must not lead while a renews: give it several retry periods.
	select {
	case <-b.started:
		t.Fatal("b started leading while a holds the lease")
	case <-time.After(time.Second):
	}
	if b.l.IsLeader() {
		t.Error("b: IsLeader is true while a leads")
	}

	a.cancel()
	if got := receive(t, a.stopped, "a to stop"); got != "a" {
		t.Errorf("stopped %q", got)
	}
	select {
	case <-a.done:
		if a.err != nil {
			t.Errorf("a: Run: %v", a.err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a: Run did not return after cancel")
	}
	if a.l.IsLeader() {
		t.Error("a: IsLeader is true after cancel")
	}
	receive(t, b.started, "b to take over")
	if !b.l.IsLeader() {
		t.Error("b leads but IsLeader is false")
	}

	lease, err := client.CoordinationV1().Leases("weir-system").Get(context.Background(), "weir", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if h := lease.Spec.HolderIdentity; h == nil || *h != "b" {
		t.Errorf("lease holder %v, want b", h)
	}
}

// TestLeaderReleasesAfterWork: the lease is released only once the
// leader's onStart has returned, so the next leader never overlaps it.
func TestLeaderReleasesAfterWork(t *testing.T) {
	client := kubefake.NewClientset()
	order := make(chan string, 4)
	a := startCandidateWith(t, client, "a", func(ctx context.Context) {
		order <- "a started"
		<-ctx.Done()
		time.Sleep(300 * time.Millisecond) // winding down, longer than b's retry period
		order <- "a returned"
	})
	if got := receive(t, order, "a to lead"); got != "a started" {
		t.Fatalf("got %q, want a started", got)
	}
	startCandidateWith(t, client, "b", func(ctx context.Context) { order <- "b started"; <-ctx.Done() })
	a.cancel()
	for _, want := range []string{"a returned", "b started"} {
		if got := receive(t, order, want); got != want {
			t.Fatalf("got %q, want %q", got, want)
		}
	}
}

func TestLeaderElectionConfig(t *testing.T) {
	client := kubefake.NewClientset()
	tests := map[string]LeaderConfig{
		"no client":            {Namespace: "ns", Name: "n"},
		"no name":              {Client: client, Namespace: "ns"},
		"fractional lease":     {Client: client, Namespace: "ns", Name: "n", LeaseDuration: 1500 * time.Millisecond},
		"renew beyond lease":   {Client: client, Namespace: "ns", Name: "n", LeaseDuration: 2 * time.Second, RenewDeadline: 3 * time.Second},
		"retry beyond renewal": {Client: client, Namespace: "ns", Name: "n", RetryPeriod: 10 * time.Second},
	}
	for name, cfg := range tests {
		t.Run(name, func(t *testing.T) {
			if _, err := NewLeadership(cfg); err == nil {
				t.Error("NewLeadership: no error")
			}
		})
	}
	l, err := NewLeadership(LeaderConfig{Client: client, Namespace: "ns", Name: "n"})
	if err != nil {
		t.Fatal(err)
	}
	if l.Identity() == "" || l.cfg.LeaseDuration != DefaultLeaseDuration || l.cfg.RenewDeadline != DefaultRenewDeadline || l.cfg.RetryPeriod != DefaultRetryPeriod {
		t.Errorf("defaults: identity %q, %v/%v/%v", l.Identity(), l.cfg.LeaseDuration, l.cfg.RenewDeadline, l.cfg.RetryPeriod)
	}
}
