package serve

import (
	"fmt"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/otlptranslator"
	otelprom "go.opentelemetry.io/otel/exporters/prometheus"
	"go.opentelemetry.io/otel/metric"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
)

// translationBuckets span a handful of services (a millisecond) to tens of
// thousands (seconds).
var translationBuckets = []float64{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10}

// telemetry is the control plane's metrics: an OpenTelemetry meter
// provider read by a Prometheus exporter with a registry of its own (so
// that two control planes in one process, as in tests, count apart).
type telemetry struct {
	provider *sdkmetric.MeterProvider
	// handler serves the registry in the Prometheus text format.
	handler http.Handler
	// translation records how long each translation took.
	translation metric.Float64Histogram
}

func newTelemetry() (*telemetry, error) {
	reg := prometheus.NewRegistry()
	// The Go runtime and process metrics (go_goroutines,
	// process_resident_memory_bytes) tell whether proxies that left left
	// anything behind.
	for _, c := range []prometheus.Collector{collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{})} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("serve: metrics: %w", err)
		}
	}
	exp, err := otelprom.New(
		otelprom.WithRegisterer(reg),
		// Instruments carry their Prometheus names (weir_xds_pushes_total):
		// no unit or _total suffix is added, no otel_scope_* label or
		// target_info series either.
		otelprom.WithTranslationStrategy(otlptranslator.UnderscoreEscapingWithoutSuffixes),
		otelprom.WithoutScopeInfo(),
		otelprom.WithoutTargetInfo(),
	)
	if err != nil {
		return nil, fmt.Errorf("serve: metrics: %w", err)
	}
	provider := sdkmetric.NewMeterProvider(sdkmetric.WithReader(exp))
	translation, err := provider.Meter("github.com/weir-mesh/weir/cmd/weir/serve").Float64Histogram(
		"weir_translation_duration_seconds", metric.WithUnit("s"),
		metric.WithDescription("Time to translate the store into the IR and status."),
		metric.WithExplicitBucketBoundaries(translationBuckets...))
	if err != nil {
		return nil, fmt.Errorf("serve: metrics: %w", err)
	}
	return &telemetry{provider: provider, handler: promhttp.HandlerFor(reg, promhttp.HandlerOpts{}), translation: translation}, nil
}
