package xds

import (
	"context"
	"testing"
	"time"

	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"

	"github.com/weir-mesh/weir/translator/envoy"
)

// sendAsync calls b.send in a goroutine; the channel gets its result.
func sendAsync(b *pushBudget, id int64, nonce string, size int64) <-chan bool {
	done := make(chan bool, 1)
	go func() { done <- b.send(id, nonce, size) }()
	return done
}

// waitingBudget returns a budget of limit bytes gating responses of 10
// bytes or more, and a channel that gets the id of each stream that starts
// to wait.
func waitingBudget(limit int64, hold time.Duration) (*pushBudget, <-chan int64) {
	b := newPushBudget(limit, 10, hold)
	waits := make(chan int64, 10)
	b.waiting = func(id int64) { waits <- id }
	return b, waits
}

// waited returns the id of the next stream that starts to wait; it fails
// the test if none does within 10 s.
func waited(t *testing.T, waits <-chan int64) int64 {
	t.Helper()
	select {
	case id := <-waits:
		return id
	case <-time.After(10 * time.Second):
		t.Fatal("no stream waited for the budget")
		return 0
	}
}

func TestPushBudgetWaitsForAnswers(t *testing.T) {
	b, waits := waitingBudget(100, time.Hour)
	ctx := context.Background()
	b.open(1, ctx)
	b.open(2, ctx)
	b.open(3, ctx)

	if !b.send(1, "1", 80) {
		t.Fatal("the first response did not go")
	}
	if !b.send(3, "1", 9) {
		t.Fatal("a response under the gate did not go")
	}
	second := sendAsync(b, 2, "1", 50)
	if id := waited(t, waits); id != 2 {
		t.Fatalf("stream %d waits, want 2", id)
	}
	// Stream 1 has a response in flight: it never waits, even over the
	// budget and behind a waiter.
	if !b.send(1, "2", 80) {
		t.Fatal("a stream with a response in flight did not send")
	}
	select {
	case <-second:
		t.Fatal("stream 2 sent with 80 of 100 bytes unanswered")
	default:
	}
	b.answered(1, "1")
	if !<-second {
		t.Fatal("stream 2 did not send once stream 1 answered")
	}
	if got := b.inFlight(1); got != 1 {
		t.Errorf("stream 1 has %d responses in flight, want 1 (nonce 2)", got)
	}
	b.answered(1, "2")
	b.answered(2, "1")
	if !b.sem.TryAcquire(100) {
		t.Error("the budget did not get all its room back once every response was answered")
	}
}

func TestPushBudgetGivesBackRoomOfClosedStreams(t *testing.T) {
	b, waits := waitingBudget(100, time.Hour)
	ctx, cancel := context.WithCancel(context.Background())
	b.open(1, context.Background())
	b.open(2, ctx)
	b.open(3, context.Background())
	b.send(1, "1", 1000) // larger than the budget: takes all of it
	gone := sendAsync(b, 2, "1", 10)
	waited(t, waits)
	cancel()
	if <-gone {
		t.Error("a stream that ended while it waited was let send")
	}
	b.closed(2)

	third := sendAsync(b, 3, "1", 10)
	waited(t, waits)
	b.closed(1)
	if !<-third {
		t.Error("stream 3 did not send once stream 1 closed")
	}
}

func TestPushBudgetGivesBackRoomOfUnansweredResponses(t *testing.T) {
	b, waits := waitingBudget(100, 50*time.Millisecond)
	b.open(1, context.Background())
	b.open(2, context.Background())
	b.send(1, "1", 100)
	second := sendAsync(b, 2, "1", 100)
	waited(t, waits)
	if !<-second {
		t.Error("stream 2 did not send after stream 1's response went unanswered for the hold")
	}
	if got := b.inFlight(1); got != 0 {
		t.Errorf("stream 1 still has %d responses in flight", got)
	}
}

// TestPushBudgetHoldsLargeResponses serves two sidecars over loopback with
// a budget of one byte: the second one's clusters go out once the first
// one answered its own, and the first one's next response does not wait.
func TestPushBudgetHoldsLargeResponses(t *testing.T) {
	s := quietServer(0)
	waits := make(chan int64, 10)
	s.budget = newPushBudget(1, 1, time.Hour)
	s.budget.waiting = func(id int64) { waits <- id }
	s.Update(twoVersions(90, 10))
	conn := serveLoopback(t, s)
	cds, eds := resourcev3.ClusterType, resourcev3.EndpointType

	a := dialSotW(t, conn, "a", envoy.Sidecar)
	a.ask(cds, nil)
	aClusters := a.recv(cds)
	b := dialSotW(t, conn, "b", envoy.Sidecar)
	b.ask(cds, nil)
	waited(t, waits)

	a.ask(eds, nil, "a", "b")
	if got := names(t, a.recv(eds)); len(got) != 2 {
		t.Errorf("a got the load assignments of %v, want a and b", got)
	}
	a.ack(aClusters)
	if n := len(b.recv(cds).GetResources()); n == 0 {
		t.Error("b got no cluster")
	}
	select {
	case id := <-waits:
		t.Errorf("stream %d waited again", id)
	default:
	}
}
