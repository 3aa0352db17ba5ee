package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"time"
)

const (
	roundSize     = 200
	roundInterval = 2 * time.Second
)

// newClient returns a keep-alive HTTP client with a short timeout that never
// uses a proxy.
func newClient() *http.Client {
	return &http.Client{
		Transport: &http.Transport{MaxIdleConnsPerHost: 4, IdleConnTimeout: 30 * time.Second},
		Timeout:   time.Second,
	}
}

// tally counts the answers of one round by version.
type tally struct {
	v1, v2, failed int
	lastFailure    error // nil if failed == 0
}

func (t tally) total() int { return t.v1 + t.v2 + t.failed }

// String returns e.g. "200 requests: v1 151 (75.5%)  v2 49 (24.5%)  failed 0".
func (t tally) String() string {
	n := t.total()
	pct := func(k int) float64 {
		if n == 0 {
			return 0
		}
		return 100 * float64(k) / float64(n)
	}
	s := fmt.Sprintf("%d requests: v1 %d (%.1f%%)  v2 %d (%.1f%%)  failed %d",
		n, t.v1, pct(t.v1), t.v2, pct(t.v2), t.failed)
	if t.lastFailure != nil {
		s += fmt.Sprintf("  (last: %v)", t.lastFailure)
	}
	return s
}

// sendRound sends n requests for host to url one after another and counts
// the answers. It stops early, with a partial tally, if ctx ends.
func sendRound(ctx context.Context, client *http.Client, url, host string, n int) tally {
	var t tally
	for range n {
		if ctx.Err() != nil {
			break
		}
		switch version, err := sendOne(ctx, client, url, host); {
		case err != nil:
			t.failed++
			t.lastFailure = err
		case version == "v1":
			t.v1++
		default:
			t.v2++
		}
	}
	return t
}

// sendOne sends one GET for host to url and returns which version answered.
func sendOne(ctx context.Context, client *http.Client, url, host string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return "", fmt.Errorf("GET %s: %w", url, err)
	}
	req.Host = host
	resp, err := client.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
	if err != nil {
		return "", fmt.Errorf("GET %s: %w", url, err)
	}
	for _, version := range []string{"v1", "v2"} {
		if resp.StatusCode == http.StatusOK && string(body) == backendBody(version) {
			return version, nil
		}
	}
	return "", fmt.Errorf("%s %q", resp.Status, firstLine(body))
}
