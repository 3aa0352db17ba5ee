package serve

import (
	"bufio"
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"github.com/google/go-cmp/cmp"
	statuspb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/weir-mesh/weir/translator/envoy"
	"github.com/weir-mesh/weir/xds"
)

// TestMetricsEndpoint serves a copy of the example directory to an ADS
// client that ACKs the first weight change and NACKs the second, and reads
// the counters back from /metrics.
func TestMetricsEndpoint(t *testing.T) {
	dir := copyDir(t, "../../../examples/canary")
	s, ctx := runTestServer(t, dir)
	metrics := "http://" + s.AdminAddr() + "/metrics"
	waitFor(t, metrics, `weir_translation_duration_seconds_count`, func(v float64) bool { return v >= 1 })

	c := dialADS(t, ctx, s.XDSAddr())
	c.ack(t, c.ask(t, resourcev3.ClusterType))
	c.ack(t, c.ask(t, resourcev3.RouteType, envoy.OutboundRouteConfigName))
	waitFor(t, metrics, `weir_xds_connected_proxies{role="sidecar"}`, func(v float64) bool { return v == 1 })

	split := filepath.Join(dir, "trafficsplit.yaml")
	replace(t, split, "weight: 75", "weight: 50", "weight: 25", "weight: 50")
	c.ack(t, c.recv(t, resourcev3.RouteType))
	waitFor(t, metrics, `weir_xds_push_latency_seconds_count{role="sidecar"}`, func(v float64) bool { return v == 1 })

	replace(t, split, "weight: 50}", "weight: 10}", "weight: 50}", "weight: 90}")
	c.nack(t, c.recv(t, resourcev3.RouteType))
	waitFor(t, metrics, `weir_xds_nacks_total{role="sidecar",type="route"}`, func(v float64) bool { return v == 1 })

	body := scrape(t, metrics)
	want := map[string]float64{
		`weir_xds_pushes_total{role="sidecar",type="cluster"}`: 1,
		`weir_xds_pushes_total{role="sidecar",type="route"}`:   3,
		`weir_xds_nacks_total{role="sidecar",type="route"}`:    1,
		`weir_xds_connected_proxies{role="grpc"}`:              0,
		`weir_xds_connected_proxies{role="sidecar"}`:           1,
		`weir_xds_push_latency_seconds_count{role="sidecar"}`:  1,
		`weir_snapshot_resources_count{role="sidecar"}`:        3, // connection, two weight changes
	}
	got := map[string]float64{}
	for series := range want {
		got[series], _ = sample(body, series)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("/metrics (-want +got):\n%s", diff)
	}
	for _, series := range []string{`weir_translation_duration_seconds_count`, `weir_xds_push_latency_seconds_bucket{role="sidecar",le="60"}`, `go_goroutines`} {
		if _, ok := sample(body, series); !ok {
			t.Errorf("/metrics has no %s", series)
		}
	}
	for _, unwanted := range []string{"otel_scope", "target_info", "_seconds_seconds", "_total_total"} {
		if strings.Contains(body, unwanted) {
			t.Errorf("/metrics has %q:\n%s", unwanted, body)
		}
	}

	c.close()
	waitFor(t, metrics, `weir_xds_connected_proxies{role="sidecar"}`, func(v float64) bool { return v == 0 })
}

// adsClient is a sidecar speaking state-of-the-world ADS by hand.
type adsClient struct {
	conn   *grpc.ClientConn
	stream discoveryv3.AggregatedDiscoveryService_StreamAggregatedResourcesClient
	node   *corev3.Node
	acked  map[string]string // type URL -> version
}

func dialADS(t *testing.T, ctx context.Context, addr string) *adsClient {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	stream, err := discoveryv3.NewAggregatedDiscoveryServiceClient(conn).StreamAggregatedResources(ctx)
	if err != nil {
		t.Fatal(err)
	}
	md, err := structpb.NewStruct(map[string]any{xds.MetaRole: "sidecar", xds.MetaNamespace: "httpbin"})
	if err != nil {
		t.Fatal(err)
	}
	return &adsClient{conn: conn, stream: stream, node: &corev3.Node{Id: "metrics-test", Metadata: md}, acked: map[string]string{}}
}

// ask subscribes to typeURL (names: none for all) and returns the answer.
func (c *adsClient) ask(t *testing.T, typeURL string, names ...string) *discoveryv3.DiscoveryResponse {
	t.Helper()
	c.send(t, &discoveryv3.DiscoveryRequest{Node: c.node, TypeUrl: typeURL, ResourceNames: names})
	return c.recv(t, typeURL)
}

func (c *adsClient) ack(t *testing.T, r *discoveryv3.DiscoveryResponse) {
	t.Helper()
	c.acked[r.TypeUrl] = r.VersionInfo
	c.send(t, &discoveryv3.DiscoveryRequest{TypeUrl: r.TypeUrl, VersionInfo: r.VersionInfo, ResponseNonce: r.Nonce, ResourceNames: names(r)})
}

func (c *adsClient) nack(t *testing.T, r *discoveryv3.DiscoveryResponse) {
	t.Helper()
	c.send(t, &discoveryv3.DiscoveryRequest{TypeUrl: r.TypeUrl, VersionInfo: c.acked[r.TypeUrl], ResponseNonce: r.Nonce,
		ResourceNames: names(r), ErrorDetail: &statuspb.Status{Code: 3, Message: "rejected by the test"}})
}

func (c *adsClient) send(t *testing.T, r *discoveryv3.DiscoveryRequest) {
	t.Helper()
	if err := c.stream.Send(r); err != nil {
		t.Fatal(err)
	}
}

// recv returns the next response, which must be of typeURL.
func (c *adsClient) recv(t *testing.T, typeURL string) *discoveryv3.DiscoveryResponse {
	t.Helper()
	got := make(chan *discoveryv3.DiscoveryResponse, 1)
	errc := make(chan error, 1)
	go func() {
		r, err := c.stream.Recv()
		if err != nil {
			errc <- err
			return
		}
		got <- r
	}()
	select {
	case r := <-got:
		if r.TypeUrl != typeURL {
			t.Fatalf("got a response of %s, want %s", r.TypeUrl, typeURL)
		}
		return r
	case err := <-errc:
		t.Fatal(err)
	case <-time.After(10 * time.Second):
		t.Fatalf("no response of %s within 10 s", typeURL)
	}
	return nil
}

func (c *adsClient) close() {
	_ = c.stream.CloseSend() // the connection closes next
	c.conn.Close()
}

// names lists the route configurations of a route response, which a
// client names again in its ACK; nil for other types (a wildcard).
func names(r *discoveryv3.DiscoveryResponse) []string {
	if r.TypeUrl != resourcev3.RouteType {
		return nil
	}
	return []string{envoy.OutboundRouteConfigName}
}

// copyDir copies the files of dir into a new temporary directory.
func copyDir(t *testing.T, dir string) string {
	t.Helper()
	out := t.TempDir()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(out, e.Name()), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return out
}

// replace rewrites path with each old string (pairs: old, new) replaced
// once, by renaming a new file over it so that the watcher never reads it
// half-written.
func replace(t *testing.T, path string, oldNew ...string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	text := string(b)
	for i := 0; i < len(oldNew); i += 2 {
		if !strings.Contains(text, oldNew[i]) {
			t.Fatalf("%s has no %q", path, oldNew[i])
		}
		text = strings.Replace(text, oldNew[i], oldNew[i+1], 1)
	}
	tmp := filepath.Join(t.TempDir(), filepath.Base(path))
	if err := os.WriteFile(tmp, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// waitFor polls url until the sample series satisfies ok.
func waitFor(t *testing.T, url, series string, ok func(float64) bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		body := scrape(t, url)
		v, found := sample(body, series)
		if found && ok(v) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %s never reached the value wanted (found %v, last %v):\n%s", url, series, found, v, body)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func scrape(t *testing.T, url string) string {
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
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("%s: %s\n%s", url, resp.Status, b)
	}
	return string(b)
}

// sample returns the value of series (a name and its labels as the text
// format prints them) in a Prometheus text exposition.
func sample(body, series string) (float64, bool) {
	sc := bufio.NewScanner(strings.NewReader(body))
	for sc.Scan() {
		rest, ok := strings.CutPrefix(sc.Text(), series+" ")
		if !ok {
			continue
		}
		v, err := strconv.ParseFloat(strings.TrimSpace(rest), 64)
		return v, err == nil
	}
	return 0, false
}
