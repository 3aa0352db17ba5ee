package serve

import (
	"context"
	"testing"
	"time"
)

// A change after quiet is translated at once, however long the quiet wait.
func TestDebounceTranslatesAChangeAfterQuietAtOnce(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	changed := make(chan struct{}, 1)
	changed <- struct{}{}
	before := time.Now()
	at, ok := debounce(ctx, changed, before.Add(-time.Hour), time.Hour, time.Hour)
	if !ok {
		t.Fatal("debounce waited for more changes after a change that ended an hour of quiet")
	}
	if at.Before(before) {
		t.Errorf("first change at %v, before the change was made (%v)", at, before)
	}
}

// A change soon after the last translation waits for quiet, here until
// max: a further change keeps the burst open.
func TestDebounceGathersABurst(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	changed := make(chan struct{})
	done := make(chan time.Time)
	go func() {
		at, ok := debounce(ctx, changed, time.Now(), time.Hour, 200*time.Millisecond)
		if !ok {
			at = time.Time{}
		}
		done <- at
	}()
	first := time.Now()
	changed <- struct{}{}
	select {
	case changed <- struct{}{}: // still gathering: the burst did not end at its first change
	case <-done:
		t.Fatal("a change right after a translation was returned without waiting for quiet")
	}
	at := <-done
	if at.IsZero() {
		t.Fatal("debounce gave up before max")
	}
	if at.Before(first) {
		t.Errorf("burst reported as starting at %v, before its first change (%v)", at, first)
	}
}
