package main

import (
	"encoding/json"
	"fmt"
	"os"
	"sort"
	"time"

	"github.com/weir-mesh/weir/translator"
	"github.com/weir-mesh/weir/translator/benchmesh"
	"github.com/weir-mesh/weir/translator/envoy"
)

// translateResult is what -translate prints: weir's translation core
// driven as a library, as the Envoy Gateway peer drives its own.
type translateResult struct {
	Services   int     `json:"services"`
	Iterations int     `json:"iterations"`
	MedianMS   float64 `json:"median_ms"`
	RSSBytes   int64   `json:"rss_bytes"`
	HWMBytes   int64   `json:"hwm_bytes"`
}

// translateOnly stores n services (a root and two versions of three
// endpoints, and a 90/10 TrafficSplit, as the translator benchmark does),
// times full translations (the IR, and the Envoy resources of a sidecar and
// of a proxyless gRPC client) and prints the median and this process's RSS.
func translateOnly(n, iterations int) error {
	store, err := benchmesh.Store(n)
	if err != nil {
		return err
	}
	proxies := []envoy.Proxy{
		{Role: envoy.Sidecar, Namespace: "default", OutboundAddress: "127.0.0.1", OutboundPort: envoy.DefaultOutboundPort},
		{Role: envoy.GRPC},
	}
	var times []time.Duration
	for i := range iterations + 1 {
		start := time.Now()
		res := translator.Translate(store.Snapshot(), translator.Options{})
		b := envoy.NewBuilder(res.IR) // as weir serve builds every proxy key of a translation
		for _, p := range proxies {
			r, err := b.Build(p)
			if err != nil {
				return err
			}
			if len(r.Clusters) != 2*n {
				return fmt.Errorf("%d clusters for %d services", len(r.Clusters), n)
			}
		}
		if i > 0 {
			times = append(times, time.Since(start))
		}
	}
	sort.Slice(times, func(i, j int) bool { return times[i] < times[j] })
	st, err := readProc(os.Getpid())
	if err != nil {
		return err
	}
	return json.NewEncoder(os.Stdout).Encode(translateResult{Services: n, Iterations: iterations,
		MedianMS: float64(times[len(times)/2].Microseconds()) / 1000, RSSBytes: st.rssBytes, HWMBytes: st.hwmBytes})
}
