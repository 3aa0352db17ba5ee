package serve

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestNewNeedsASource(t *testing.T) {
	if _, err := New(Config{XDSAddr: "127.0.0.1:0", AdminAddr: "127.0.0.1:0"}); err == nil {
		t.Fatal("New accepted a configuration with no source")
	}
}

// TestDebugServices serves the example directory and reads each Service's
// versions from the admin endpoint.
func TestDebugServices(t *testing.T) {
	s, _ := runTestServer(t, "../../../examples/canary")
	url := "http://" + s.AdminAddr() + "/debug/services"
	deadline := time.Now().Add(10 * time.Second)
	for {
		code, body := get(t, url)
		if code == http.StatusOK {
			want := "service httpbin/httpbin: unversioned 2 ready\n" +
				"service httpbin/httpbin-v1: unversioned 1 ready\n" +
				"service httpbin/httpbin-v2: unversioned 1 ready\n"
			if diff := cmp.Diff(want, body); diff != "" {
				t.Errorf("/debug/services (-want +got):\n%s", diff)
			}
			return
		}
		if code != http.StatusServiceUnavailable || time.Now().After(deadline) {
			t.Fatalf("/debug/services: %d %s", code, body)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

// runTestServer serves dir on free loopback ports until the test ends, and
// returns the server and a context that ends with it.
func runTestServer(t *testing.T, dir string) (*Server, context.Context) {
	t.Helper()
	s, err := New(Config{
		Dir: dir, XDSAddr: "127.0.0.1:0", AdminAddr: "127.0.0.1:0",
		OutboundAddress: "127.0.0.1", OutboundPort: 15001, Debounce: 10 * time.Millisecond, DebounceMax: 50 * time.Millisecond,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	return s, ctx
}

// TestPprof checks that Go's profiles are on the admin address only when
// asked for.
func TestPprof(t *testing.T) {
	for name, on := range map[string]bool{"off": false, "on": true} {
		t.Run(name, func(t *testing.T) {
			s, err := New(Config{
				Dir: "../../../examples/canary", XDSAddr: "127.0.0.1:0", AdminAddr: "127.0.0.1:0", Pprof: on,
				Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
			})
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- s.Run(ctx) }()
			defer func() {
				cancel()
				if err := <-done; err != nil {
					t.Errorf("Run: %v", err)
				}
			}()
			want := http.StatusNotFound
			if on {
				want = http.StatusOK
			}
			if code, body := get(t, "http://"+s.AdminAddr()+"/debug/pprof/goroutine?debug=1"); code != want {
				t.Errorf("/debug/pprof/goroutine: %d, want %d: %.200s", code, want, body)
			}
		})
	}
}
