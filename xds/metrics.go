package xds

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/metric/noop"
)

// The server's metrics, named as Prometheus shows them: the admin
// endpoint's exporter adds no suffix, so these are the names users query.
const (
	metricPushes      = "weir_xds_pushes_total"
	metricNacks       = "weir_xds_nacks_total"
	metricConnected   = "weir_xds_connected_proxies"
	metricPushLatency = "weir_xds_push_latency_seconds"
	metricResources   = "weir_snapshot_resources"
)

// meterName is the instrumentation scope of the server's metrics.
const meterName = "github.com/weir-mesh/weir/xds"

// latencyBuckets span a local push (milliseconds) to a proxy that answered
// only after the ACK timeout.
// They are finer around 200 ms, the push latency weir aims under.
var latencyBuckets = []float64{0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.125, 0.15, 0.175, 0.2, 0.25, 0.3, 0.4, 0.5, 0.75, 1, 1.5, 2, 2.5, 3, 4, 5, 7.5, 10, 15, 20, 30, 60}

// resourceBuckets span one service to a large mesh.
var resourceBuckets = []float64{1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000, 20000, 50000, 100000}

// metrics records what the server does. Its methods are safe for
// concurrent use.
type metrics struct {
	pushes    metric.Int64Counter
	nacks     metric.Int64Counter
	latency   metric.Float64Histogram
	resources metric.Int64Histogram
	// attrs holds the attribute set of each (type URL, role), made once:
	// making one sorts and hashes it, on every push otherwise.
	attrs sync.Map // attrKey -> metric.MeasurementOption
}

type attrKey struct{ typeURL, role string }

// with returns the attributes of role and, unless "", typeURL. Only the
// sets of the types weir serves are kept.
func (m *metrics) with(typeURL, role string) metric.MeasurementOption {
	k := attrKey{typeURL, role}
	if o, ok := m.attrs.Load(k); ok {
		return o.(metric.MeasurementOption)
	}
	kvs := []attribute.KeyValue{attribute.String("role", role)}
	if typeURL != "" {
		kvs = append(kvs, typeAttr(typeURL))
	}
	o := metric.WithAttributeSet(attribute.NewSet(kvs...))
	if _, known := typeNames[typeURL]; known || typeURL == "" {
		m.attrs.Store(k, o)
	}
	return o
}

// newMetrics creates the server's instruments from mp (nil: a noop
// provider); connected returns the number of connected proxies by role
// whenever the gauge is read. An error means an instrument could not be
// created; the others still work.
func newMetrics(mp metric.MeterProvider, connected func() map[string]int) (*metrics, error) {
	if mp == nil {
		mp = noop.NewMeterProvider()
	}
	meter := mp.Meter(meterName)
	m := &metrics{}
	var errs [5]error
	m.pushes, errs[0] = meter.Int64Counter(metricPushes,
		metric.WithDescription("Responses sent to proxies, by resource type and proxy role."))
	m.nacks, errs[1] = meter.Int64Counter(metricNacks,
		metric.WithDescription("Responses proxies rejected (NACK), by resource type and proxy role."))
	m.latency, errs[2] = meter.Float64Histogram(metricPushLatency, metric.WithUnit("s"),
		metric.WithDescription("Time from the store change to the proxy's ACK of the routes it led to, by proxy role."),
		metric.WithExplicitBucketBoundaries(latencyBuckets...))
	m.resources, errs[3] = meter.Int64Histogram(metricResources, metric.WithUnit("{resource}"),
		metric.WithDescription("Resources in each snapshot published to a proxy, by proxy role."),
		metric.WithExplicitBucketBoundaries(resourceBuckets...))
	_, errs[4] = meter.Int64ObservableGauge(metricConnected,
		metric.WithDescription("Proxies connected, by role."),
		metric.WithInt64Callback(func(_ context.Context, o metric.Int64Observer) error {
			for role, n := range connected() {
				o.Observe(int64(n), metric.WithAttributes(attribute.String("role", role)))
			}
			return nil
		}))
	if err := errors.Join(errs[:]...); err != nil {
		return m, fmt.Errorf("xds: metrics: %w", err)
	}
	return m, nil
}

// pushed counts a response of typeURL sent to a proxy of role.
func (m *metrics) pushed(typeURL, role string) {
	m.pushes.Add(context.Background(), 1, m.with(typeURL, role))
}

// nacked counts a response of typeURL a proxy of role rejected.
func (m *metrics) nacked(typeURL, role string) {
	m.nacks.Add(context.Background(), 1, m.with(typeURL, role))
}

// published records the size of a snapshot published to a proxy of role.
func (m *metrics) published(role string, resources int) {
	m.resources.Record(context.Background(), int64(resources), m.with("", role))
}

// acked records how long a change took to reach a proxy of role.
func (m *metrics) acked(role string, d time.Duration) {
	m.latency.Record(context.Background(), d.Seconds(), m.with("", role))
}

// setSize is the number of resources in s.
func setSize(s resourceSet) int {
	n := 0
	for _, m := range s {
		n += len(m)
	}
	return n
}

// typeNames are the short names of the types weir serves, as the "type"
// attribute shows them.
var typeNames = map[string]string{
	resourcev3.ClusterType:     "cluster",
	resourcev3.EndpointType:    "endpoint",
	resourcev3.ListenerType:    "listener",
	resourcev3.RouteType:       "route",
	resourcev3.ScopedRouteType: "scoped-route",
	resourcev3.SecretType:      "secret",
}

// typeAttr is the "type" attribute of typeURL: its short name, or the URL
// for a type weir does not serve.
func typeAttr(typeURL string) attribute.KeyValue {
	if n, ok := typeNames[typeURL]; ok {
		return attribute.String("type", n)
	}
	return attribute.String("type", typeURL)
}
