package watcher

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"
)

// scriptedTransport answers from a list of outcomes, then 200.
type scriptedTransport struct {
	outcomes []error // nil: 503
	calls    int
}

func (s *scriptedTransport) RoundTrip(*http.Request) (*http.Response, error) {
	s.calls++
	if s.calls <= len(s.outcomes) {
		if err := s.outcomes[s.calls-1]; err != nil {
			return nil, err
		}
		return &http.Response{StatusCode: http.StatusServiceUnavailable, Body: io.NopCloser(strings.NewReader(""))}, nil
	}
	return &http.Response{StatusCode: http.StatusOK, Body: io.NopCloser(strings.NewReader("ok"))}, nil
}

func TestServerWait(t *testing.T) {
	refused := &net.OpError{Op: "dial", Err: syscall.ECONNREFUSED}
	tests := map[string]struct {
		method    string
		outcomes  []error
		wantCalls int
		wantErr   bool
	}{
		"GET waits through refusals and 503": {method: http.MethodGet, outcomes: []error{refused, nil, refused}, wantCalls: 4},
		"GET that works is sent once":        {method: http.MethodGet, wantCalls: 1},
		"other errors are not retried":       {method: http.MethodGet, outcomes: []error{errors.New("tls: bad certificate")}, wantCalls: 1, wantErr: true},
		"writes are never retried":           {method: http.MethodPatch, outcomes: []error{refused}, wantCalls: 1, wantErr: true},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			next := &scriptedTransport{outcomes: tc.outcomes}
			w := &serverWait{next: next, interval: time.Millisecond, maxWait: time.Minute}
			req, err := http.NewRequest(tc.method, "https://127.0.0.1:1/api", nil)
			if err != nil {
				t.Fatal(err)
			}
			resp, err := w.RoundTrip(req)
			if (err != nil) != tc.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tc.wantErr)
			}
			if err == nil && resp.StatusCode != http.StatusOK {
				t.Errorf("status %d, want 200", resp.StatusCode)
			}
			if next.calls != tc.wantCalls {
				t.Errorf("%d round trips, want %d", next.calls, tc.wantCalls)
			}
		})
	}
}

func TestServerWaitStopsWithTheRequest(t *testing.T) {
	refused := &net.OpError{Op: "dial", Err: syscall.ECONNREFUSED}
	next := &scriptedTransport{outcomes: []error{refused, refused, refused, refused}}
	w := &serverWait{next: next, interval: time.Hour, maxWait: time.Hour}
	ctx, cancel := context.WithCancel(context.Background())
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "https://127.0.0.1:1/api", nil)
	if err != nil {
		t.Fatal(err)
	}
	cancel()
	if _, err := w.RoundTrip(req); err == nil {
		t.Fatal("a cancelled request returned no error")
	}
	if next.calls != 1 {
		t.Errorf("%d round trips after cancel, want 1", next.calls)
	}
}
