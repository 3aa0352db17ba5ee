package main

import (
	"context"
	"errors"
	"net"
	"testing"
)

func TestTallyString(t *testing.T) {
	tests := map[string]struct {
		in   tally
		want string
	}{
		"split": {
			in:   tally{v1: 151, v2: 49},
			want: "200 requests: v1 151 (75.5%)  v2 49 (24.5%)  failed 0",
		},
		"failures": {
			in:   tally{v1: 1, failed: 3, lastFailure: errors.New("503 Service Unavailable")},
			want: "4 requests: v1 1 (25.0%)  v2 0 (0.0%)  failed 3  (last: 503 Service Unavailable)",
		},
		"empty": {
			want: "0 requests: v1 0 (0.0%)  v2 0 (0.0%)  failed 0",
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if got := tc.in.String(); got != tc.want {
				t.Errorf("got  %q\nwant %q", got, tc.want)
			}
		})
	}
}

// testBackend serves the demo backend of version on a free loopback port
// and returns its base URL.
func testBackend(t *testing.T, version string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := serveBackend(ln, backendBody(version))
	t.Cleanup(func() { _ = srv.Close() })
	return "http://" + ln.Addr().String()
}

func TestSendRound(t *testing.T) {
	ctx := context.Background()
	client := newClient()
	tests := map[string]struct {
		url  string
		want tally
	}{
		"v1":   {url: testBackend(t, "v1") + "/any/path", want: tally{v1: 10}},
		"v2":   {url: testBackend(t, "v2") + "/", want: tally{v2: 10}},
		"else": {url: testBackend(t, "v3") + "/", want: tally{failed: 10}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got := sendRound(ctx, client, tc.url, "httpbin.httpbin:8080", 10)
			got.lastFailure = nil
			if got != tc.want {
				t.Errorf("got %v, want %v", got, tc.want)
			}
		})
	}
}

func TestExpectGET(t *testing.T) {
	ctx := context.Background()
	client := newClient()
	url := testBackend(t, "v1") + "/ready"
	if err := expectGET(ctx, client, url, "Hi, I am v1"); err != nil {
		t.Errorf("expectGET with the right body: %v", err)
	}
	if err := expectGET(ctx, client, url, "LIVE"); err == nil {
		t.Error("expectGET with the wrong body: nil error")
	}
}
