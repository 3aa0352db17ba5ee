package e2e

import (
	"context"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthgrpc "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/resolver"
	grpcxds "google.golang.org/grpc/xds"

	"github.com/weir-mesh/weir/cmd/weir/serve"
	"github.com/weir-mesh/weir/translator/envoy"
	"github.com/weir-mesh/weir/xds"
)

// These tests run the whole pipeline with a real proxyless client: manifests
// in a directory -> weir in-process -> ADS on loopback -> grpc-go's xDS
// resolver and balancers -> real RPCs to two real gRPC servers.

const (
	grpcTarget = "xds:///echo.grpcdemo.svc.cluster.local:50051"
	rpcTimeout = 5 * time.Second
)

// grpcTypes are the resource types a proxyless gRPC client subscribes to.
var grpcTypes = []string{resourcev3.ListenerType, resourcev3.RouteType, resourcev3.ClusterType, resourcev3.EndpointType}

// echoBackends are two gRPC servers serving the standard health service,
// standing for the pods of echo-v1 and echo-v2.
type echoBackends struct {
	v1Port, v2Port int
	version        map[string]string // listener address -> "v1" or "v2"
}

func startEchoBackends(t testing.TB) *echoBackends {
	t.Helper()
	b := &echoBackends{version: map[string]string{}}
	b.v1Port = b.start(t, "v1")
	b.v2Port = b.start(t, "v2")
	return b
}

func (b *echoBackends) start(t testing.TB, version string) int {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := grpc.NewServer()
	hs := health.NewServer()
	hs.SetServingStatus("", healthgrpc.HealthCheckResponse_SERVING)
	healthgrpc.RegisterHealthServer(s, hs)
	done := make(chan error, 1)
	go func() { done <- s.Serve(lis) }()
	t.Cleanup(func() {
		s.Stop()
		if err := <-done; err != nil {
			t.Errorf("backend %s: %v", version, err)
		}
	})
	b.version[lis.Addr().String()] = version
	return lis.Addr().(*net.TCPAddr).Port
}

// call sends one RPC (Health/Check or Health/List) with a 5 s deadline,
// carrying metadata x-canary: canary unless canary is "", and returns the
// version of the backend that answered it.
func (b *echoBackends) call(cc *grpc.ClientConn, method, canary string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), rpcTimeout)
	defer cancel()
	if canary != "" {
		ctx = metadata.AppendToOutgoingContext(ctx, "x-canary", canary)
	}
	var p peer.Peer
	var err error
	client := healthgrpc.NewHealthClient(cc)
	switch method {
	case healthgrpc.Health_Check_FullMethodName:
		_, err = client.Check(ctx, &healthgrpc.HealthCheckRequest{}, grpc.Peer(&p))
	case healthgrpc.Health_List_FullMethodName:
		_, err = client.List(ctx, &healthgrpc.HealthListRequest{}, grpc.Peer(&p))
	default:
		return "", fmt.Errorf("no such method %s", method)
	}
	if err != nil {
		return "", err
	}
	if p.Addr == nil {
		return "", fmt.Errorf("%s: no peer address", method)
	}
	v, ok := b.version[p.Addr.String()]
	if !ok {
		return "", fmt.Errorf("%s answered by %s, which is neither backend", method, p.Addr)
	}
	return v, nil
}

// tally sends n RPCs one after another and counts the answers by version.
// A failed RPC fails the test.
func (b *echoBackends) tally(t testing.TB, cc *grpc.ClientConn, n int, method, canary string) map[string]int {
	t.Helper()
	got := map[string]int{}
	for i := 0; i < n; i++ {
		v, err := b.call(cc, method, canary)
		if err != nil {
			t.Fatalf("RPC %d of %d (%s, x-canary %q): %v", i+1, n, method, canary, err)
		}
		got[v]++
	}
	return got
}

// echoManifests are the Services of namespace grpcdemo: the root echo, which
// selects both backends, and echo-v1 and echo-v2, one each.
func echoManifests(b *echoBackends) string {
	var docs []string
	docs = append(docs, "apiVersion: v1\nkind: Namespace\nmetadata: {name: grpcdemo}\n")
	for _, svc := range []string{"echo", "echo-v1", "echo-v2"} {
		docs = append(docs, fmt.Sprintf(`apiVersion: v1
kind: Service
metadata: {name: %s, namespace: grpcdemo}
spec:
  ports:
  - {name: grpc, port: 50051, targetPort: 50051, appProtocol: grpc}
`, svc))
	}
	slice := func(name, svc string, port int) string {
		return fmt.Sprintf(`apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: %s
  namespace: grpcdemo
  labels: {kubernetes.io/service-name: %s}
addressType: IPv4
ports:
- {name: grpc, port: %d, protocol: TCP}
endpoints:
- addresses: [127.0.0.1]
  conditions: {ready: true}
`, name, svc, port)
	}
	docs = append(docs,
		slice("echo-v1", "echo-v1", b.v1Port),
		slice("echo-v2", "echo-v2", b.v2Port),
		slice("echo-root-v1", "echo", b.v1Port),
		slice("echo-root-v2", "echo", b.v2Port),
	)
	return strings.Join(docs, "---\n")
}

// trafficSplit returns a TrafficSplit on root echo; groups, if any, are the
// HTTPRouteGroups it is restricted to.
func trafficSplit(name string, v1, v2 int, groups ...string) string {
	var matches string
	if len(groups) > 0 {
		matches = "  matches:\n"
		for _, g := range groups {
			matches += fmt.Sprintf("  - {kind: HTTPRouteGroup, name: %s}\n", g)
		}
	}
	return fmt.Sprintf(`apiVersion: split.smi-spec.io/v1alpha4
kind: TrafficSplit
metadata: {name: %s, namespace: grpcdemo}
spec:
  service: echo
%s  backends:
  - {service: echo-v1, weight: %d}
  - {service: echo-v2, weight: %d}
`, name, matches, v1, v2)
}

// routeGroup returns an HTTPRouteGroup with one match, given as the YAML
// fields of that match (indented by four spaces).
func routeGroup(name, match string) string {
	return fmt.Sprintf(`apiVersion: specs.smi-spec.io/v1alpha4
kind: HTTPRouteGroup
metadata: {name: %s, namespace: grpcdemo}
spec:
  matches:
  - name: %s
%s`, name, name, match)
}

// grpcCase is a control plane serving a directory and one xDS client of it.
type grpcCase struct {
	dir      string
	srv      *serve.Server
	cc       *grpc.ClientConn
	nodeID   string
	resolver *appliedCounter
}

// appliedCounter wraps grpc-go's xDS resolver builder and counts the states
// the channel finished applying. grpc-go ACKs a resource as soon as it parsed
// it, before its resolver hands the new configuration to the channel, so an
// ACK alone does not mean that the next RPC is routed by it; a return from
// ClientConn.UpdateState does (the config selector is installed and the
// balancers updated by then).
type appliedCounter struct {
	resolver.Builder
	applied atomic.Int64
}

func (b *appliedCounter) Build(target resolver.Target, cc resolver.ClientConn, opts resolver.BuildOptions) (resolver.Resolver, error) {
	return b.Builder.Build(target, &countingClientConn{ClientConn: cc, applied: &b.applied}, opts)
}

type countingClientConn struct {
	resolver.ClientConn
	applied *atomic.Int64
}

func (c *countingClientConn) UpdateState(s resolver.State) error {
	err := c.ClientConn.UpdateState(s)
	c.applied.Add(1)
	return err
}

// startGRPCCase writes files (name -> content) into a fresh directory,
// starts weir on it and dials echo through grpc-go's xDS resolver with a
// node id unique to the test. It returns once the client ACKed a complete
// configuration; the ACKed versions are in the second result.
func startGRPCCase(t *testing.T, files map[string]string) (*grpcCase, map[string]string) {
	t.Helper()
	c := &grpcCase{dir: t.TempDir(), nodeID: "grpc-e2e-" + strings.ReplaceAll(t.Name(), "/", "-")}
	for name, content := range files {
		writeFile(t, filepath.Join(c.dir, name), content)
	}
	c.srv = startWeir(t, c.dir)
	bootstrap, err := xds.GRPCBootstrap(xds.BootstrapOptions{
		NodeID: c.nodeID, Role: envoy.GRPC, Namespace: "grpcdemo", XDSAddr: c.srv.XDSAddr(),
	})
	if err != nil {
		t.Fatal(err)
	}
	builder, err := grpcxds.NewXDSResolverWithConfigForTesting(bootstrap)
	if err != nil {
		t.Fatalf("xDS resolver: %v", err)
	}
	c.resolver = &appliedCounter{Builder: builder}
	c.cc, err = grpc.NewClient(grpcTarget, grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithResolvers(c.resolver))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := c.cc.Close(); err != nil {
			t.Errorf("close client: %v", err)
		}
	})
	c.cc.Connect() // leave idle mode: build the resolver, which opens the ADS stream
	return c, ackedVersions(t, c.srv.XDS(), c.nodeID, nil, grpcTypes...)
}

// change writes a manifest file and returns once the client ACKed the new
// configuration and its channel applied a resolver state produced after the
// write. prev are the versions ACKed before; it returns the new ones.
func (c *grpcCase) change(t *testing.T, name, content string, prev map[string]string) map[string]string {
	t.Helper()
	before := c.resolver.applied.Load()
	writeFile(t, filepath.Join(c.dir, name), content)
	acked := ackedVersions(t, c.srv.XDS(), c.nodeID, prev, grpcTypes...)
	waitFor(t, 10*time.Second, "the channel to apply the ACKed configuration", func() error {
		if c.resolver.applied.Load() == before {
			return errors.New("no resolver update since the write")
		}
		return nil
	})
	return acked
}

// TestGRPCSplit sends RPCs through a TrafficSplit on a fresh control plane
// per weighting and checks the share v2 answers against the binomial bounds.
func TestGRPCSplit(t *testing.T) {
	b := startEchoBackends(t)
	tests := map[string]struct {
		v1, v2 int
		n      int
	}{
		"75/25": {v1: 75, v2: 25, n: 2000},
		"100/0": {v1: 100, v2: 0, n: 2000},
		"0/100": {v1: 0, v2: 100, n: 500},
	}
	for name, tc := range tests {
		t.Run(strings.ReplaceAll(name, "/", "-"), func(t *testing.T) {
			start := time.Now()
			c, _ := startGRPCCase(t, map[string]string{
				"services.yaml": echoManifests(b),
				"split.yaml":    trafficSplit("echo-split", tc.v1, tc.v2),
			})
			ready := time.Since(start)
			got := b.tally(t, c.cc, tc.n, healthgrpc.Health_Check_FullMethodName, "")
			share := float64(tc.v2) / float64(tc.v1+tc.v2)
			checkShare(t, "v2", got["v2"], tc.n, share)
			if got["v1"]+got["v2"] != tc.n {
				t.Errorf("answers %v, want %d in all", got, tc.n)
			}
			t.Logf("split %s: v1=%d v2=%d of %d RPCs (v2 share %.4f, want %.2f); config ACKed after %v, total %v",
				name, got["v1"], got["v2"], tc.n, float64(got["v2"])/float64(tc.n), share, ready.Round(time.Millisecond), time.Since(start).Round(time.Millisecond))
		})
	}
}

// TestGRPCMatchedRoutes checks that a TrafficSplit restricted to an
// HTTPRouteGroup takes exactly the RPCs its match selects, and the catch-all
// TrafficSplit the others.
func TestGRPCMatchedRoutes(t *testing.T) {
	b := startEchoBackends(t)
	const n = 300
	check, list := healthgrpc.Health_Check_FullMethodName, healthgrpc.Health_List_FullMethodName
	type rpc struct {
		method string
		canary string // x-canary metadata, none if ""
		want   string
	}
	tests := map[string]struct {
		group string
		rpcs  []rpc
	}{
		// SMI header values are regular expressions over the whole value.
		"header": {
			group: routeGroup("canary", "    headers:\n      x-canary: \"yes\"\n"),
			rpcs: []rpc{
				{method: check, canary: "yes", want: "v2"},
				{method: check, want: "v1"},
				{method: check, canary: "yes-please", want: "v1"},
				{method: list, canary: "yes", want: "v2"},
			},
		},
		// gRPC's path is the full method name; the regex must match all of it.
		"pathRegex": {
			group: routeGroup("canary", "    pathRegex: /grpc\\.health\\.v1\\.Health/Check\n"),
			rpcs: []rpc{
				{method: check, want: "v2"},
				{method: check, canary: "yes", want: "v2"},
				{method: list, want: "v1"},
			},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			start := time.Now()
			c, _ := startGRPCCase(t, map[string]string{
				"services.yaml": echoManifests(b),
				"canary.yaml":   tc.group + "---\n" + trafficSplit("echo-canary", 0, 100, "canary"),
				"split.yaml":    trafficSplit("echo-split", 100, 0),
			})
			for _, r := range tc.rpcs {
				got := b.tally(t, c.cc, n, r.method, r.canary)
				if got[r.want] != n {
					t.Errorf("%s, x-canary %q: answers %v, want all %d from %s", r.method, r.canary, got, n, r.want)
				}
				t.Logf("%s, x-canary %q: %v", r.method, r.canary, got)
			}
			t.Logf("took %v", time.Since(start).Round(time.Millisecond))
		})
	}
}

// phaseCounts are the outcomes of the RPCs that started in one phase of a
// live change: answers by version, and failures.
type phaseCounts struct {
	v1, v2, failed atomic.Int64
}

func (p *phaseCounts) total() int64 {
	return p.v1.Load() + p.v2.Load() + p.failed.Load()
}

func (p *phaseCounts) String() string {
	return fmt.Sprintf("v1=%d v2=%d failed=%d", p.v1.Load(), p.v2.Load(), p.failed.Load())
}

// TestGRPCLiveWeightChange rewrites the TrafficSplit 100/0 -> 75/25 -> 0/100
// while four clients send RPCs back to back: every RPC must succeed.
//
// The 100/0 split lists echo-v2 with weight 0. grpc-go v1.85 fails the first
// RPCs a route sends to a cluster its previous configuration did not name
// (Unavailable "unknown cluster selected for RPC": the channel installs the
// new config selector before the cluster manager balancer has the child);
// weir's standby route names weight-0 backends so that grpc-go sets them up
// ahead of time, and this test fails if that stops working.
func TestGRPCLiveWeightChange(t *testing.T) {
	const (
		workers    = 4
		perPhase   = 300    // RPCs under each applied configuration before moving on
		finalRPCs  = 500    // RPCs once 0/100 is applied, all of which must reach v2
		maxRPCs    = 200000 // bounds the workers whatever happens
		phaseLimit = 30 * time.Second
	)
	start := time.Now()
	b := startEchoBackends(t)
	c, acked := startGRPCCase(t, map[string]string{
		"services.yaml": echoManifests(b),
		"split.yaml":    trafficSplit("echo-split", 100, 0),
	})

	// Phases: 0 = 100/0 applied; 1 = 75/25 written; 2 = 75/25 ACKed and
	// applied; 3 = 0/100 written; 4 = 0/100 ACKed and applied. An RPC counts
	// in the phase it started in.
	phaseNames := []string{"100/0 applied", "75/25 written", "75/25 applied", "0/100 written", "0/100 applied"}
	var phases [5]phaseCounts
	var phase atomic.Int32
	var stop atomic.Bool
	var sent atomic.Int64
	var errMu sync.Mutex
	var firstErrs []string
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !stop.Load() && sent.Add(1) <= maxRPCs {
				pc := &phases[phase.Load()]
				v, err := b.call(c.cc, healthgrpc.Health_Check_FullMethodName, "")
				switch {
				case err != nil:
					pc.failed.Add(1)
					errMu.Lock()
					if len(firstErrs) < 5 {
						firstErrs = append(firstErrs, err.Error())
					}
					errMu.Unlock()
				case v == "v1":
					pc.v1.Add(1)
				default:
					pc.v2.Add(1)
				}
			}
		}()
	}
	stopped := false
	stopWorkers := func() {
		if !stopped {
			stopped = true
			stop.Store(true)
			wg.Wait()
		}
	}
	defer stopWorkers()
	await := func(p int, n int64) {
		t.Helper()
		waitFor(t, phaseLimit, fmt.Sprintf("%d RPCs in phase %q", n, phaseNames[p]), func() error {
			if got := phases[p].total(); got < n {
				return fmt.Errorf("%d so far", got)
			}
			return nil
		})
	}
	await(0, perPhase)
	for _, step := range []struct{ v1, v2 int }{{75, 25}, {0, 100}} {
		p := int(phase.Load())
		changed := time.Now()
		phase.Store(int32(p + 1))
		acked = c.change(t, "split.yaml", trafficSplit("echo-split", step.v1, step.v2), acked)
		phase.Store(int32(p + 2))
		t.Logf("split %d/%d ACKed and applied %v after the write", step.v1, step.v2, time.Since(changed).Round(time.Millisecond))
		want := int64(perPhase)
		if p+2 == len(phases)-1 {
			want = finalRPCs
		}
		await(p+2, want)
	}
	stopWorkers()

	var total, failed int64
	for i := range phases {
		total += phases[i].total()
		failed += phases[i].failed.Load()
		t.Logf("phase %q: %v", phaseNames[i], &phases[i])
	}
	t.Logf("%d RPCs by %d workers in %v", total, workers, time.Since(start).Round(time.Millisecond))
	if failed != 0 {
		t.Errorf("%d of %d RPCs failed during the live change; first errors: %q", failed, total, firstErrs)
	}
	if got := phases[0].v2.Load(); got != 0 {
		t.Errorf("phase %q: %d RPCs reached v2, want none", phaseNames[0], got)
	}
	if mid := &phases[2]; mid.v1.Load() == 0 || mid.v2.Load() == 0 {
		t.Errorf("phase %q: %v, want both versions to answer", phaseNames[2], mid)
	}
	last := &phases[len(phases)-1]
	if last.v1.Load() != 0 || last.total() < finalRPCs || last.v2.Load() != last.total() {
		t.Errorf("phase %q: %v, want at least %d RPCs, all answered by v2", phaseNames[len(phases)-1], last, finalRPCs)
	}
}
