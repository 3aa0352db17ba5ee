package xds

import (
	"context"
	"strconv"
	"sync"
	"time"

	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"golang.org/x/sync/semaphore"
	"google.golang.org/protobuf/types/known/anypb"
)

// pushBudget bounds the bytes of large responses sent to proxies and not
// yet answered, across every stream. A sidecar's first response is the
// whole mesh (about 25 MB at 10,000 services): when a hundred sidecars
// connect at once, gRPC holds each one's encoding in a buffer of its own
// until the proxy has read it, and the process peaks at several times its
// live heap. With the budget, a stream about to send a response of at
// least gated bytes waits until the budget has room for it.
//
// A stream that has a gated response in flight never waits: it sends at
// once and takes what room there is. It cannot be waiting for its own
// answer, so the budget cannot deadlock. Room comes back when the proxy
// answers the response or a later one (an ACK or NACK names the nonce; a
// stream's nonces increase), when its stream closes, or hold after the
// send for a proxy that does not answer. A response larger than the whole
// budget waits for all of it.
//
// semaphore.Weighted queues waiters in order, so a large response is not
// passed over forever by small ones.
type pushBudget struct {
	sem   *semaphore.Weighted
	limit int64
	gated int64         // smaller responses pass without the budget
	hold  time.Duration // room of an unanswered response comes back after it
	// waiting, if set, is called when a stream starts to wait (a test
	// hook).
	waiting func(id int64)

	mu      sync.Mutex
	streams map[int64]*streamBudget // guarded by mu
}

// streamBudget is what one stream has in flight.
type streamBudget struct {
	ctx  context.Context // the stream's: its waits end with it
	sent []*sentResponse
}

// sentResponse is one gated response in flight: its nonce and the room it
// took (zero if the budget had none when the stream sent it without
// waiting).
type sentResponse struct {
	nonce int64
	took  int64
	timer *time.Timer
}

// Defaults of the budget: responses of 256 KiB or more share 256 MiB, and a
// proxy that does not answer gives its room back after 30 s.
const (
	defaultPushBudget = 256 << 20
	gatedResponse     = 256 << 10
	budgetHold        = 30 * time.Second
)

// newPushBudget returns a budget of limit bytes; nil (no bound) if limit is
// not positive.
func newPushBudget(limit, gated int64, hold time.Duration) *pushBudget {
	if limit <= 0 {
		return nil
	}
	return &pushBudget{sem: semaphore.NewWeighted(limit), limit: limit, gated: gated, hold: hold, streams: map[int64]*streamBudget{}}
}

// open registers stream id, whose waits end with ctx.
func (b *pushBudget) open(id int64, ctx context.Context) {
	if b == nil {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.streams[id] = &streamBudget{ctx: ctx}
}

// send is called before stream id sends a response of size bytes with
// nonce; it returns once the response may go. It returns false if the
// stream ended while it waited.
func (b *pushBudget) send(id int64, nonce string, size int64) bool {
	if b == nil || size < b.gated {
		return true
	}
	n, err := strconv.ParseInt(nonce, 10, 64)
	if err != nil {
		return true
	}
	want := min(size, b.limit)
	b.mu.Lock()
	sb := b.streams[id]
	if sb == nil {
		b.mu.Unlock()
		return true // closed, or never opened
	}
	busy := len(sb.sent) > 0
	b.mu.Unlock()

	var took int64
	switch {
	case b.sem.TryAcquire(want):
		took = want
	case busy:
		// It may not wait for its own answer; it sends over the budget.
	default:
		if b.waiting != nil {
			b.waiting(id)
		}
		if err := b.sem.Acquire(sb.ctx, want); err != nil {
			return false
		}
		took = want
	}
	r := &sentResponse{nonce: n, took: took}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.streams[id] != sb {
		// Closed meanwhile: nothing will answer.
		b.sem.Release(took)
		return true
	}
	sb.sent = append(sb.sent, r)
	r.timer = time.AfterFunc(b.hold, func() { b.expire(sb, r) })
	return true
}

// answered is called when stream id answers the response of nonce: that
// response and those before it give their room back.
func (b *pushBudget) answered(id int64, nonce string) {
	if b == nil || nonce == "" {
		return
	}
	n, err := strconv.ParseInt(nonce, 10, 64)
	if err != nil {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if sb := b.streams[id]; sb != nil {
		b.giveBackLocked(sb, func(r *sentResponse) bool { return r.nonce <= n })
	}
}

// closed forgets stream id; its responses give their room back.
func (b *pushBudget) closed(id int64) {
	if b == nil {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if sb := b.streams[id]; sb != nil {
		b.giveBackLocked(sb, nil)
		delete(b.streams, id)
	}
}

// giveBackLocked gives back the room of sb's responses that answered
// reports answered (nil: all of them).
func (b *pushBudget) giveBackLocked(sb *streamBudget, answered func(*sentResponse) bool) {
	kept := sb.sent[:0]
	for _, r := range sb.sent {
		if answered == nil || answered(r) {
			b.releaseLocked(r)
		} else {
			kept = append(kept, r)
		}
	}
	clear(sb.sent[len(kept):])
	sb.sent = kept
}

// expire gives back the room of a response its proxy did not answer in
// time.
func (b *pushBudget) expire(sb *streamBudget, r *sentResponse) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for i, s := range sb.sent {
		if s == r {
			b.releaseLocked(r)
			sb.sent = append(sb.sent[:i], sb.sent[i+1:]...)
			return
		}
	}
}

func (b *pushBudget) releaseLocked(r *sentResponse) {
	r.timer.Stop()
	if r.took > 0 {
		b.sem.Release(r.took)
		r.took = 0
	}
}

// inFlight returns the number of gated responses stream id has sent and
// that are not answered.
func (b *pushBudget) inFlight(id int64) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	if sb := b.streams[id]; sb != nil {
		return len(sb.sent)
	}
	return 0
}

// anyBytes is the size of the encoded resources of a state-of-the-world
// response.
func anyBytes(rs []*anypb.Any) int64 {
	var n int64
	for _, r := range rs {
		n += int64(len(r.GetValue()))
	}
	return n
}

// resourceBytes is the size of the encoded resources of a delta response.
func resourceBytes(rs []*discoveryv3.Resource) int64 {
	var n int64
	for _, r := range rs {
		n += int64(len(r.GetResource().GetValue()))
	}
	return n
}
