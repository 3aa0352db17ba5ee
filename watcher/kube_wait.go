package watcher

import (
	"errors"
	"net"
	"net/http"
	"syscall"
	"time"

	"k8s.io/client-go/rest"
)

// Waiting for an unreachable API server: how often to try, and for how long.
const (
	serverPollInterval = 250 * time.Millisecond
	serverMaxWait      = time.Minute
)

// withServerWait returns a copy of cfg whose reads (GET, which includes
// list and watch) wait for an unreachable or unready API server, trying
// every serverPollInterval for up to serverMaxWait, instead of failing.
// client-go's reflectors back off exponentially after each failed list or
// watch (0.8 s doubling to 30 s, with jitter), so after an outage of ten
// seconds they would notice the server's return only tens of seconds
// later; a read that waits notices it within serverPollInterval.
func withServerWait(cfg *rest.Config) *rest.Config {
	out := rest.CopyConfig(cfg)
	out.Wrap(func(next http.RoundTripper) http.RoundTripper {
		return &serverWait{next: next, interval: serverPollInterval, maxWait: serverMaxWait}
	})
	return out
}

// serverWait is the RoundTripper behind withServerWait.
type serverWait struct {
	next     http.RoundTripper
	interval time.Duration
	maxWait  time.Duration
}

// RoundTrip retries a GET while the server refuses connections or answers
// 503 (starting up), until it answers otherwise, maxWait passes, or the
// request's context ends; the last outcome is returned.
func (w *serverWait) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := w.next.RoundTrip(req)
	if req.Method != http.MethodGet || req.Body != nil && req.Body != http.NoBody {
		return resp, err
	}
	deadline := time.Now().Add(w.maxWait)
	for notThereYet(resp, err) && time.Now().Before(deadline) {
		t := time.NewTimer(w.interval)
		select {
		case <-req.Context().Done():
			t.Stop()
			return resp, err
		case <-t.C:
		}
		if resp != nil {
			resp.Body.Close()
		}
		resp, err = w.next.RoundTrip(req)
	}
	return resp, err
}

// notThereYet reports whether a round trip failed because the server is
// not listening or not ready yet.
func notThereYet(resp *http.Response, err error) bool {
	if err != nil {
		var op *net.OpError
		return errors.Is(err, syscall.ECONNREFUSED) || errors.As(err, &op) && op.Op == "dial"
	}
	return resp.StatusCode == http.StatusServiceUnavailable
}
