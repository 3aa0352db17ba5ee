package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"time"
)

// backend is one demo version of the httpbin service.
type backend struct {
	version string // "v1" or "v2"
	addr    string // fixed by examples/canary/endpoints.yaml
}

// demoBackends returns the backends that examples/canary/endpoints.yaml names.
func demoBackends() []backend {
	return []backend{
		{version: "v1", addr: "127.0.0.1:18081"},
		{version: "v2", addr: "127.0.0.1:18082"},
	}
}

// backendBody is what the backend of a version answers on every path.
func backendBody(version string) string {
	return "Hi, I am " + version + "!\n"
}

// startBackends listens on the address of every backend and serves it until
// the returned function is called. On error nothing is left listening.
func startBackends(backends []backend) (shutdown func(), err error) {
	var servers []*http.Server
	shutdown = func() {
		for _, srv := range servers {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			_ = srv.Shutdown(ctx) // best effort at exit: the process ends next
			cancel()
		}
	}
	for _, b := range backends {
		srv, err := startBackend(b.addr, backendBody(b.version))
		if err != nil {
			shutdown()
			return nil, err
		}
		servers = append(servers, srv)
	}
	return shutdown, nil
}

// startBackend serves body on every path at addr, in a new goroutine.
func startBackend(addr, body string) (*http.Server, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("demo backend: %w", err)
	}
	return serveBackend(ln, body), nil
}

// serveBackend serves body on every path from ln, in a new goroutine, until
// the returned server is shut down.
func serveBackend(ln net.Listener, body string) *http.Server {
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			_, _ = io.WriteString(w, body) // a client gone away is its own business
		}),
		ReadHeaderTimeout: 5 * time.Second,
	}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Printf("demo backend %s stopped: %v", ln.Addr(), err) // the traffic lines will show it
		}
	}()
	return srv
}
