package xds

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"sort"
	"strings"
	"testing"
	"time"

	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"github.com/google/go-cmp/cmp"
	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/weir-mesh/weir/translator/envoy"
)

// TestMetrics walks one sidecar through a connection, a new version (warm
// and switch steps, both ACKed), a weight change it NACKs, and its
// disconnection, and reads the counters after each.
func TestMetrics(t *testing.T) {
	reader := sdkmetric.NewManualReader()
	s := NewServer(Options{ClusterGrace: time.Hour, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Meter: sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))})
	clock := time.Unix(1000, 0)
	s.now = func() time.Time { return clock }
	s.Update(twoVersions(100, 0))
	p := connect(t, s, "n1", envoy.Sidecar)
	sizes := snapshotSize(t, s, "n1")
	want := map[string]float64{
		`weir_xds_pushes_total{role=sidecar,type=cluster}`:  1,
		`weir_xds_pushes_total{role=sidecar,type=endpoint}`: 1,
		`weir_xds_pushes_total{role=sidecar,type=listener}`: 1,
		`weir_xds_pushes_total{role=sidecar,type=route}`:    1,
		`weir_xds_connected_proxies{role=grpc}`:             0,
		`weir_xds_connected_proxies{role=gateway}`:          0,
		`weir_xds_connected_proxies{role=sidecar}`:          1,
		`weir_snapshot_resources_count{role=sidecar}`:       1,
		`weir_snapshot_resources_sum{role=sidecar}`:         float64(sizes),
	}
	if diff := cmp.Diff(want, collect(t, reader)); diff != "" {
		t.Fatalf("after the first connection (-want +got):\n%s", diff)
	}

	// A new version: the warm step, then the switch, each ACKed 0.3 s
	// after it was published. The latency runs from the change to the ACK
	// of the switch.
	changed := clock
	s.UpdateAt(context.Background(), twoVersions(50, 50), changed)
	sizes += snapshotSize(t, s, "n1")
	clock = clock.Add(300 * time.Millisecond)
	p.ackAll(t)
	sizes += snapshotSize(t, s, "n1")
	if got := collect(t, reader)[`weir_xds_push_latency_seconds_count{role=sidecar}`]; got != 0 {
		t.Errorf("push latency recorded when the proxy ACKed the warm step: %v samples", got)
	}
	clock = clock.Add(300 * time.Millisecond)
	p.ackAll(t)
	for _, typ := range []string{"cluster", "endpoint", "listener", "route"} {
		want[`weir_xds_pushes_total{role=sidecar,type=`+typ+`}`] = 3 // ackAll sends every type
	}
	want[`weir_snapshot_resources_count{role=sidecar}`] = 3
	want[`weir_snapshot_resources_sum{role=sidecar}`] = float64(sizes)
	want[`weir_xds_push_latency_seconds_count{role=sidecar}`] = 1
	want[`weir_xds_push_latency_seconds_sum{role=sidecar}`] = clock.Sub(changed).Seconds()
	if diff := cmp.Diff(want, collect(t, reader)); diff != "" {
		t.Fatalf("after a new version (-want +got):\n%s", diff)
	}

	// A weight change the proxy rejects: counted, and no latency.
	s.UpdateAt(context.Background(), twoVersions(10, 90), clock)
	sizes += snapshotSize(t, s, "n1")
	p.nack(t, resourcev3.RouteType)
	want[`weir_xds_pushes_total{role=sidecar,type=route}`] = 4
	want[`weir_xds_nacks_total{role=sidecar,type=route}`] = 1
	want[`weir_snapshot_resources_count{role=sidecar}`] = 4
	want[`weir_snapshot_resources_sum{role=sidecar}`] = float64(sizes)
	if diff := cmp.Diff(want, collect(t, reader)); diff != "" {
		t.Fatalf("after a NACK (-want +got):\n%s", diff)
	}

	if _, last := s.proxies.closed(p.stream); !last {
		t.Fatal("closing the proxy's only stream did not disconnect it")
	}
	s.forgetNode(p.node)
	want[`weir_xds_connected_proxies{role=sidecar}`] = 0
	if diff := cmp.Diff(want, collect(t, reader)); diff != "" {
		t.Errorf("after the proxy left (-want +got):\n%s", diff)
	}
}

// TestPushSpans checks that each step is a span whose parent is the span
// of the update that led to it.
func TestPushSpans(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	s := NewServer(Options{ClusterGrace: time.Hour, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Tracer: tp})
	s.Update(twoVersions(100, 0))
	p := connect(t, s, "n1", envoy.Sidecar)
	ctx, translation := tp.Tracer("test").Start(context.Background(), "translate")
	s.UpdateAt(ctx, twoVersions(50, 50), time.Now())
	translation.End()
	p.ackAll(t)

	var got []string
	for _, sp := range rec.Ended() {
		if sp.Name() != "xds.push" {
			continue
		}
		attrs := map[attribute.Key]string{}
		for _, kv := range sp.Attributes() {
			attrs[kv.Key] = kv.Value.Emit()
		}
		parent := "root"
		if sp.Parent().SpanID() == translation.SpanContext().SpanID() {
			parent = "translate"
		}
		got = append(got, fmt.Sprintf("%s %s %s under %s", attrs["weir.node"], attrs["weir.role"], attrs["weir.step"], parent))
	}
	want := []string{"n1 sidecar switch under root", "n1 sidecar warm under translate", "n1 sidecar switch under translate"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("push spans (-want +got):\n%s", diff)
	}
}

// nack sends the node's current version of typ and rejects it.
func (p *fakeProxy) nack(t *testing.T, typ string) {
	t.Helper()
	p.nonce++
	nonce := fmt.Sprint(p.nonce)
	p.s.proxies.response(p.stream, typ, p.s.SnapshotVersions(p.node)[typ], nonce)
	_, answered, nacked := p.s.proxies.request(p.stream, request{typeURL: typ, nonce: nonce, errDetail: "rejected"})
	if !answered || nacked == "" {
		t.Fatalf("the tracker did not take the NACK of %s", typ)
	}
	p.s.answered(p.node)
}

// snapshotSize is the number of resources of the node's snapshot.
func snapshotSize(t *testing.T, s *Server, nodeID string) int {
	t.Helper()
	snap, err := s.cache.GetSnapshot(nodeID)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, typ := range typeURLs {
		n += len(snap.GetResources(typ))
	}
	return n
}

// collect reads r's metrics, keyed like Prometheus samples:
// name{attr=value,...}; a histogram gives name_count and name_sum.
func collect(t *testing.T, r *sdkmetric.ManualReader) map[string]float64 {
	t.Helper()
	var rm metricdata.ResourceMetrics
	if err := r.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	key := func(name string, set attribute.Set) string {
		var kv []string
		for _, a := range set.ToSlice() {
			kv = append(kv, string(a.Key)+"="+a.Value.Emit())
		}
		sort.Strings(kv)
		return name + "{" + strings.Join(kv, ",") + "}"
	}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			switch d := m.Data.(type) {
			case metricdata.Sum[int64]:
				for _, dp := range d.DataPoints {
					out[key(m.Name, dp.Attributes)] = float64(dp.Value)
				}
			case metricdata.Gauge[int64]:
				for _, dp := range d.DataPoints {
					out[key(m.Name, dp.Attributes)] = float64(dp.Value)
				}
			case metricdata.Histogram[float64]:
				for _, dp := range d.DataPoints {
					out[key(m.Name+"_count", dp.Attributes)] = float64(dp.Count)
					out[key(m.Name+"_sum", dp.Attributes)] = dp.Sum
				}
			case metricdata.Histogram[int64]:
				for _, dp := range d.DataPoints {
					out[key(m.Name+"_count", dp.Attributes)] = float64(dp.Count)
					out[key(m.Name+"_sum", dp.Attributes)] = float64(dp.Sum)
				}
			default:
				t.Fatalf("metric %s: unexpected data %T", m.Name, m.Data)
			}
		}
	}
	return out
}
