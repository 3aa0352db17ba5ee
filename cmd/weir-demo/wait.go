package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"
)

const (
	readyTimeout = 30 * time.Second
	pollInterval = 200 * time.Millisecond
)

// waitFor calls check every pollInterval until it returns nil, for at most
// readyTimeout. On timeout it returns an error naming what and wrapping the
// last error of check; if ctx ends first, the context's cause.
func waitFor(ctx context.Context, what string, check func(context.Context) error) error {
	deadline := time.Now().Add(readyTimeout)
	tick := time.NewTicker(pollInterval)
	defer tick.Stop()
	for {
		err := check(ctx)
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s not ready after %s: %w", what, readyTimeout, err)
		}
		select {
		case <-ctx.Done():
			return context.Cause(ctx)
		case <-tick.C:
		}
	}
}

// expectGET fetches url and returns nil if the answer has status 200 and a
// body that starts with wantBody.
func expectGET(ctx context.Context, client *http.Client, url, wantBody string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return fmt.Errorf("GET %s: %w", url, err)
	}
	resp, err := client.Do(req)
	if err != nil {
		return err // already names the method and the URL
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
	if err != nil {
		return fmt.Errorf("GET %s: %w", url, err)
	}
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(string(body), wantBody) {
		return fmt.Errorf("GET %s: %s %q", url, resp.Status, firstLine(body))
	}
	return nil
}

// checkPortsFree returns an error naming the first of addrs that something
// already listens on (another demo, most likely).
func checkPortsFree(addrs ...string) error {
	for _, addr := range addrs {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			return fmt.Errorf("%s is taken; is another demo or Envoy running? %w", addr, err)
		}
		if err := ln.Close(); err != nil {
			return fmt.Errorf("free %s: %w", addr, err)
		}
	}
	return nil
}

func firstLine(b []byte) string {
	s, _, _ := strings.Cut(strings.TrimSpace(string(b)), "\n")
	return s
}
