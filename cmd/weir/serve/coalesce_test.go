package serve

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// run is one translation in a simulation, as offsets from its start.
type run struct{ start, changedAt time.Duration }

// simulate feeds a coalescer changes seen at the given offsets (ascending)
// when each translation takes took, as translateOnChange drives it, and
// returns the translations. Events of one instant are taken in before
// next is asked.
func simulate(window, maxWindow, took time.Duration, changes []time.Duration) []run {
	t0 := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	c := &coalescer{window: window, maxWindow: maxWindow}
	var out []run
	const never = time.Duration(1<<63 - 1)
	ends, wake := never, never
	for now := time.Duration(0); ; {
		if ends == now {
			c.ended(t0.Add(now))
			ends = never
		}
		for len(changes) > 0 && changes[0] == now {
			c.changed(t0.Add(now))
			changes = changes[1:]
		}
		if wake == now {
			wake = never
		}
		if wake == never {
			if start, changedAt, at := c.next(t0.Add(now)); start {
				out = append(out, run{start: now, changedAt: changedAt.Sub(t0)})
				ends = now + took
			} else if !at.IsZero() {
				wake = at.Sub(t0)
			}
		}
		now = min(ends, wake)
		if len(changes) > 0 {
			now = min(now, changes[0])
		}
		if now == never {
			return out
		}
	}
}

func ms(n int) time.Duration { return time.Duration(n) * time.Millisecond }

func TestCoalescer(t *testing.T) {
	tests := map[string]struct {
		took    time.Duration
		changes []time.Duration
		want    []run
	}{
		"a single change is translated at once": {took: ms(10), changes: []time.Duration{ms(5000)},
			want: []run{{ms(5000), ms(5000)}}},
		"changes apart by more than translation and window each at once": {took: ms(10), changes: []time.Duration{0, ms(110), ms(500)},
			want: []run{{0, 0}, {ms(110), ms(110)}, {ms(500), ms(500)}}},
		"a change within the window waits for its end": {took: ms(10), changes: []time.Duration{0, ms(50)},
			want: []run{{0, 0}, {ms(110), ms(50)}}},
		"changes during a translation and its window make one more": {took: ms(50), changes: []time.Duration{0, ms(10), ms(20), ms(120), ms(149)},
			want: []run{{0, 0}, {ms(150), ms(10)}}},
		"a change as the window ends is taken in": {took: 0, changes: []time.Duration{0, ms(30), ms(100)},
			want: []run{{0, 0}, {ms(100), ms(30)}}},
		"a change during the trailing translation makes another": {took: ms(10), changes: []time.Duration{0, ms(50), ms(115)},
			want: []run{{0, 0}, {ms(110), ms(50)}, {ms(220), ms(115)}}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, simulate(ms(100), 0, tc.took, tc.changes), cmp.AllowUnexported(run{})); diff != "" {
				t.Errorf("translations (-want +got):\n%s", diff)
			}
		})
	}
}

// TestCoalescerBurst spreads 1,000 changes evenly over one second and checks
// that every change is translated within a translation and a window of being
// seen, as the earliest change of its translation or after it, and that the
// burst makes one translation at its start plus at most one a window and
// translation.
func TestCoalescerBurst(t *testing.T) {
	window := ms(100)
	var changes []time.Duration
	for k := range 1000 {
		changes = append(changes, time.Duration(k)*time.Second/1000)
	}
	for _, took := range []time.Duration{0, ms(1), ms(20), ms(250), ms(2000)} {
		t.Run(fmt.Sprintf("translation %v", took), func(t *testing.T) {
			runs := simulate(window, 0, took, changes)
			limit := 1 + int((time.Second+window+took-1)/(window+took))
			if len(runs) > limit {
				t.Errorf("%d translations, want at most %d", len(runs), limit)
			}
			next := 0 // first change not yet taken in
			for i, r := range runs {
				if next == len(changes) || r.changedAt != changes[next] {
					t.Fatalf("translation %d at %v: changedAt %v, want the earliest change not taken in, %v", i, r.start, r.changedAt, changes[next:min(next+1, len(changes))])
				}
				if wait := r.start - r.changedAt; wait > window+took {
					t.Errorf("translation %d at %v: its earliest change waited %v, more than a translation and a window", i, r.start, wait)
				}
				for next < len(changes) && changes[next] <= r.start {
					next++
				}
			}
			if next != len(changes) {
				t.Errorf("changes from %v on never translated", changes[next])
			}
		})
	}
}

// translateCall is one call to the translate function of translateOnChange.
type translateCall struct {
	changedAt time.Time
	release   chan struct{} // closing it ends the call
}

// startTranslateOnChange runs translateOnChange until the test ends or
// cancel; each call of translate is sent on calls and lasts until released.
// wait waits until translateOnChange returned and reports whether no call
// ran then.
func startTranslateOnChange(t *testing.T, window time.Duration) (changed chan struct{}, calls chan translateCall, cancel func(), wait func() bool) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	changed, calls = make(chan struct{}), make(chan translateCall)
	returned := make(chan bool, 1)
	running := make(chan struct{}, 1)
	translate := func(_ context.Context, changedAt time.Time) {
		select {
		case running <- struct{}{}:
		default:
			t.Error("translate called while a call ran")
		}
		c := translateCall{changedAt: changedAt, release: make(chan struct{})}
		calls <- c
		<-c.release
		<-running
	}
	go func() {
		translateOnChange(ctx, changed, window, 0, time.Time{}, translate)
		returned <- len(running) == 0
	}()
	wait = sync.OnceValue(func() bool { return <-returned })
	t.Cleanup(func() {
		cancel()
		if !wait() {
			t.Error("translateOnChange returned while a translation ran")
		}
	})
	return changed, calls, cancel, wait
}

// TestTranslateOnChangeAtOnce checks that a change after a quiet spell is
// translated without waiting for the window, an hour here.
func TestTranslateOnChangeAtOnce(t *testing.T) {
	changed, calls, _, _ := startTranslateOnChange(t, time.Hour)
	before := time.Now()
	changed <- struct{}{}
	c := <-calls
	after := time.Now()
	if c.changedAt.Before(before) || c.changedAt.After(after) {
		t.Errorf("changedAt %v, want the time the change was seen, in [%v, %v]", c.changedAt, before, after)
	}
	close(c.release)
}

// TestTranslateOnChangeDuringTranslation checks that changes seen while a
// translation runs make one more after it, with the time of the first.
func TestTranslateOnChangeDuringTranslation(t *testing.T) {
	changed, calls, _, _ := startTranslateOnChange(t, 0)
	changed <- struct{}{}
	first := <-calls
	before := time.Now()
	changed <- struct{}{}
	changed <- struct{}{} // taken once the first is recorded
	after := time.Now()
	close(first.release)
	second := <-calls
	if second.changedAt.Before(before) || second.changedAt.After(after) {
		t.Errorf("changedAt %v, want the time the first change during the translation was seen, in [%v, %v]", second.changedAt, before, after)
	}
	close(second.release)
}

// TestTranslateOnChangeCancel checks that cancelling waits for the running
// translation to end.
func TestTranslateOnChangeCancel(t *testing.T) {
	changed, calls, cancel, wait := startTranslateOnChange(t, 0)
	changed <- struct{}{}
	c := <-calls
	cancel()
	close(c.release)
	if !wait() {
		t.Error("translateOnChange returned while a translation ran")
	}
}

// TestCoalescerGrowingWindow: under a stream of changes the window doubles
// up to its maximum, so a long burst makes few translations, and a change
// that finds the store quiet is translated at once again.
func TestCoalescerGrowingWindow(t *testing.T) {
	var changes []time.Duration
	for k := range 1000 {
		changes = append(changes, time.Duration(k)*time.Second/1000)
	}
	changes = append(changes, ms(5000))
	got := simulate(ms(100), ms(1000), ms(10), changes)
	want := []run{{0, 0}, {ms(110), ms(1)}, {ms(320), ms(111)}, {ms(730), ms(321)}, {ms(1540), ms(731)}, {ms(5000), ms(5000)}}
	if diff := cmp.Diff(want, got, cmp.AllowUnexported(run{})); diff != "" {
		t.Errorf("translations (-want +got):\n%s", diff)
	}
	for _, took := range []time.Duration{0, ms(1), ms(20), ms(250)} {
		if runs := simulate(ms(100), ms(1000), took, changes[:1000]); len(runs) > 10 {
			t.Errorf("translation %v: %d translations of 1,000 changes in one second, want at most 10", took, len(runs))
		}
	}
}
