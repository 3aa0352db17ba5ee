package main

import (
	"bytes"
	"context"
	"io"
	"net"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/grpc"
)

// TestServeExportsTraces runs `weir serve --otlp-endpoint` against an OTLP
// collector in the test: the span of the first translation must arrive,
// flushed when weir stops, under the service name weir.
func TestServeExportsTraces(t *testing.T) {
	col := &otlpCollector{}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gs := grpc.NewServer()
	coltracepb.RegisterTraceServiceServer(gs, col)
	go func() { _ = gs.Serve(lis) }() // returns when Stop closes lis
	defer gs.Stop()

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stderr := &lockedBuffer{}
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"serve", "--dir", "../../examples/canary", "--xds-addr", "127.0.0.1:0", "--admin-addr", "127.0.0.1:0",
			"--otlp-endpoint", lis.Addr().String(), "--otlp-insecure"}, io.Discard, stderr)
	}()
	for deadline := time.Now().Add(10 * time.Second); !strings.Contains(stderr.String(), "msg=translated"); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("weir did not translate within 10 s:\n%s", stderr.String())
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("serve: %v\n%s", err, stderr.String())
	}
	// One translation, or more if someone edits the examples meanwhile.
	got := col.spans()
	if len(got) == 0 || slices.ContainsFunc(got, func(s string) bool { return s != "weir translate" }) {
		t.Errorf("spans received: %q, want only \"weir translate\" (service, span name)\nweir's log:\n%s", got, stderr.String())
	}
}

// otlpCollector receives spans over OTLP/gRPC.
type otlpCollector struct {
	coltracepb.UnimplementedTraceServiceServer
	mu  sync.Mutex
	got []string // "service span", sorted
}

func (c *otlpCollector) Export(_ context.Context, req *coltracepb.ExportTraceServiceRequest) (*coltracepb.ExportTraceServiceResponse, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, rs := range req.GetResourceSpans() {
		service := ""
		for _, kv := range rs.GetResource().GetAttributes() {
			if kv.GetKey() == "service.name" {
				service = kv.GetValue().GetStringValue()
			}
		}
		for _, ss := range rs.GetScopeSpans() {
			for _, sp := range ss.GetSpans() {
				c.got = append(c.got, service+" "+sp.GetName())
			}
		}
	}
	sort.Strings(c.got)
	return &coltracepb.ExportTraceServiceResponse{}, nil
}

func (c *otlpCollector) spans() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.got...)
}

// lockedBuffer is a bytes.Buffer safe for one writer and other readers.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
