package serve

import (
	"context"
	"time"
)

// coalescer decides when the store is translated. A change seen when no
// translation ended within the last window is translated at once. Changes
// seen while a translation runs, or within the window after one ended, are
// translated together, once, when that window ends. Under a stream of
// changes the window doubles with each translation that such changes
// started, up to maxWindow, and is back to window once a change finds the
// store quiet. So a single change waits for nothing, and a long stream of
// changes is translated about once per maxWindow.
//
// Its methods take the current time; it is not safe for concurrent use.
type coalescer struct {
	window    time.Duration
	maxWindow time.Duration // zero: the window never grows
	current   time.Duration // the window after the last translation
	pending   bool          // a change is not yet translated
	since     time.Time     // when the earliest such change was seen
	running   bool          // a translation started and has not ended
	lastEnd   time.Time     // when the last translation ended; zero if none
}

// changed records a change of the store seen at now.
func (c *coalescer) changed(now time.Time) {
	if !c.pending {
		c.pending, c.since = true, now
	}
}

// ended records that the running translation ended at now.
func (c *coalescer) ended(now time.Time) { c.running, c.lastEnd = false, now }

// next reports whether a translation starts at now, and if so the time of
// the earliest change it takes in; the caller runs it and calls ended. If
// none starts but changes wait for the window to end, wake is when to call
// next again; otherwise it is zero.
func (c *coalescer) next(now time.Time) (start bool, changedAt, wake time.Time) {
	if !c.pending || c.running {
		return false, time.Time{}, time.Time{}
	}
	c.current = max(c.current, c.window)
	end := c.lastEnd.Add(c.current)
	if !c.lastEnd.IsZero() && now.Before(end) {
		return false, time.Time{}, end
	}
	if !c.lastEnd.IsZero() && c.since.Before(end) {
		c.current = min(2*c.current, max(c.maxWindow, c.window)) // still changing
	} else {
		c.current = c.window // the store was quiet for a window
	}
	c.pending, c.running = false, true
	return true, c.since, time.Time{}
}

// translateOnChange calls translate as a coalescer with window decides,
// from the signals of changed, until ctx is done. translate gets the time of
// the earliest change it takes in; calls never overlap. It returns once ctx
// is done and no call runs. lastEnd is when the last translation before it
// ended; zero if none.
func translateOnChange(ctx context.Context, changed <-chan struct{}, window, maxWindow time.Duration, lastEnd time.Time,
	translate func(ctx context.Context, changedAt time.Time)) {
	c := &coalescer{window: window, maxWindow: maxWindow, lastEnd: lastEnd}
	ended := make(chan time.Time, 1)
	var wake <-chan time.Time // armed while changes wait for the window to end
	for {
		if wake == nil {
			start, changedAt, at := c.next(time.Now())
			switch {
			case start:
				// Run aside, so that changes during it are seen when they come.
				go func() {
					translate(ctx, changedAt)
					ended <- time.Now()
				}()
			case !at.IsZero():
				wake = time.After(time.Until(at))
			}
		}
		select {
		case <-ctx.Done():
			if c.running {
				<-ended
			}
			return
		case <-changed:
			c.changed(time.Now())
		case <-wake:
			wake = nil
		case at := <-ended:
			c.ended(at)
		}
	}
}
