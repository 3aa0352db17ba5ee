package main

import (
	"cmp"
	"context"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"sync"
	"time"

	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
)

// session is one weir process with its clients.
type session struct {
	name   string
	mesh   *mesh
	writer meshWriter // where the mesh's changes are written for weir to read
	weir   *weirProc
	fleet  *fleet
	grpc   []*grpcGo
	dir    string // this session's work directory

	closed bool
}

// startSession generates a mesh of n services and starts weir on it.
func startSession(c config, name string, n int) (*session, error) {
	dir := filepath.Join(c.work, name)
	s := &session{name: name, dir: dir, mesh: newMesh(filepath.Join(dir, "manifests"), n, c.perNamespace)}
	s.writer = fileWriter{s.mesh}
	if err := s.mesh.writeAll(); err != nil {
		return nil, err
	}
	var err error
	if s.weir, err = startWeir(c.weirBin, s.mesh.dir, filepath.Join(dir, "weir.log"), c.weirArgs); err != nil {
		return nil, err
	}
	if err := s.weir.waitReady(5 * time.Minute); err != nil {
		s.weir.stop()
		return nil, err
	}
	s.fleet = &fleet{addr: s.weir.xdsAddr}
	return s, nil
}

// meshWriter changes a mesh where weir reads it.
type meshWriter interface {
	// setWeights sets service i's split to (v1, v2) and returns once it is
	// written, with the time the write was issued: the time weight-change
	// latencies count from.
	setWeights(i, v1, v2 int) (time.Time, error)
	// addEndpoint gives version v of service i one more endpoint and
	// returns once it is written.
	addEndpoint(i, v int) error
	// inFlight is how many addEndpoint calls may run at once; with 1 they
	// run one after another.
	inFlight() int
}

// fileWriter writes a mesh's changes to its files, one at a time: a
// change rewrites a whole file.
type fileWriter struct{ m *mesh }

func (f fileWriter) setWeights(i, v1, v2 int) (time.Time, error) {
	t0 := time.Now()
	return t0, f.m.setWeights(i, v1, v2)
}

func (f fileWriter) addEndpoint(i, v int) error { return f.m.addEndpoint(i, v) }

func (fileWriter) inFlight() int { return 1 }

// mix is how many raw clients of each kind a session connects.
type mix struct{ sidecars, delta, grpc int }

// latencyMix is the weight-change run's: -proxies sidecars and the extras.
func latencyMix(c config) mix {
	return mix{sidecars: c.proxies, delta: c.deltaProxies, grpc: c.grpcRaw}
}

// scaleMix is the scale run's: -proxies proxies in all, -scale-sidecars of
// them full sidecars, the rest proxyless clients of one service each.
func scaleMix(c config) mix {
	sidecars := min(c.scaleSidecars, c.proxies)
	return mix{sidecars: sidecars, delta: c.deltaProxies, grpc: max(0, c.proxies-sidecars-c.deltaProxies-c.grpcGo)}
}

// sidecarSpecs are the sidecars of m, spread over namespaces.
func (s *session) sidecarSpecs(c config, m mix) []clientSpec {
	var out []clientSpec
	nsCount := max(1, min(c.proxyNamespaces, s.mesh.namespaces()))
	for k := range m.sidecars {
		out = append(out, clientSpec{kind: sidecarSotW, namespace: nsName(k % nsCount)})
	}
	for k := range m.delta {
		out = append(out, clientSpec{kind: sidecarDelta, namespace: nsName(k % nsCount)})
	}
	return out
}

// grpcSpecs are the proxyless clients of m, each of one of services 0..9.
func (s *session) grpcSpecs(m mix) []clientSpec {
	var out []clientSpec
	for k := range m.grpc {
		i := k % min(10, s.mesh.services)
		out = append(out, clientSpec{kind: grpcSotW, namespace: s.mesh.nsOf(i), target: s.mesh.hostName(i)})
	}
	return out
}

// liveSteps is weir's live heap as a session's proxies came in: with the
// proxyless clients, then with one sidecar per namespace (so every sidecar
// key exists), then with every proxy.
type liveSteps struct{ proxyless, keys, all float64 }

// connect starts every client of m, proxyless ones first, and returns how
// long it took and weir's live heap along the way (all is left 0).
func (s *session) connect(c config, m mix) (time.Duration, liveSteps, error) {
	var live liveSteps
	start := time.Now()
	if err := s.fleet.connect(s.name+"-grpc", s.grpcSpecs(m), c.batch, c.connectTimeout); err != nil {
		return 0, live, err
	}
	for k := range c.grpcGo {
		g, err := startGRPCGo(s.weir.xdsAddr, fmt.Sprintf("%s-grpc-go-%d", s.name, k), s.mesh.nsOf(0), s.mesh.hostName(0))
		if err != nil {
			return 0, live, err
		}
		s.grpc = append(s.grpc, g)
	}
	for _, g := range s.grpc {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		_, err := g.waitApplied(ctx, start)
		cancel()
		if err != nil {
			return 0, live, fmt.Errorf("grpc-go client: %w", err)
		}
	}
	var err error
	if live.proxyless, err = s.liveHeap(); err != nil {
		return 0, live, err
	}
	sidecars := s.sidecarSpecs(c, m)
	first := min(len(sidecars), c.proxyNamespaces)
	if err := s.fleet.connect(s.name+"-first", sidecars[:first], c.batch, c.connectTimeout); err != nil {
		return 0, live, err
	}
	if live.keys, err = s.liveHeap(); err != nil {
		return 0, live, err
	}
	if err := s.fleet.connect(s.name, sidecars[first:], c.batch, c.connectTimeout); err != nil {
		return 0, live, err
	}
	return time.Since(start), live, nil
}

// medianUsage samples usage every second over window and returns the
// median RSS and heap in use (and the last sample's other figures).
func (s *session) medianUsage(window time.Duration) (usage, error) {
	var rss []int
	var heap []int
	var last usage
	for end := time.Now().Add(window); time.Now().Before(end); time.Sleep(time.Second) {
		u, err := s.usage()
		if err != nil {
			return usage{}, err
		}
		rss, heap, last = append(rss, int(u.rss)), append(heap, int(u.heapInuse)), u
	}
	last.rss, last.heapInuse = int64(medianInt(rss)), float64(medianInt(heap))
	return last, nil
}

// liveHeap has weir collect garbage twice (the second empties the pools
// the first only set aside) and returns the bytes still allocated.
func (s *session) liveHeap() (float64, error) {
	for range 2 {
		if _, err := s.weir.get("/debug/pprof/heap?gc=1"); err != nil {
			return 0, err
		}
	}
	m, err := s.weir.metrics()
	if err != nil {
		return 0, err
	}
	return m["go_memstats_heap_alloc_bytes"], nil
}

// close stops the clients and weir; later calls do nothing.
func (s *session) close() {
	if s.closed {
		return
	}
	s.closed = true
	for _, g := range s.grpc {
		g.cc.Close()
	}
	s.fleet.close()
	s.weir.stop()
}

// usage is the weir process's resources at one moment.
type usage struct {
	rss, hwm   int64
	cpu        time.Duration
	goroutines float64
	heapInuse  float64
}

func (s *session) usage() (usage, error) {
	st, err := readProc(s.weir.pid())
	if err != nil {
		return usage{}, err
	}
	m, err := s.weir.metrics()
	if err != nil {
		return usage{}, err
	}
	return usage{rss: st.rssBytes, hwm: st.hwmBytes, cpu: st.cpu, goroutines: m["go_goroutines"], heapInuse: m["go_memstats_heap_inuse_bytes"]}, nil
}

// weightResult is what one run of weight changes measured.
type weightResult struct {
	services, proxies int
	perProxy          []time.Duration // file write -> ACK, every proxy of every round (sidecars)
	lastAck           []time.Duration // file write -> last sidecar ACK, per round
	grpcRaw           []time.Duration // file write -> ACK, raw gRPC clients of the service
	grpcGo            []time.Duration // file write -> channel applied
	missing           int
	storeP50          float64 // weir's histogram, store write -> ACK (sidecars), seconds
	storeP99          float64
	storeMean         float64
	storeCount        float64
	rdsBytes          []int // RDS bytes per sidecar per change
}

// weightChanges changes the split of service 0 rounds times and measures
// when each proxy got the new routes.
func (s *session) weightChanges(c config, rounds int) (weightResult, error) {
	res := weightResult{services: s.mesh.services, proxies: len(s.fleet.clients) + len(s.grpc)}
	sidecars := s.fleet.of(func(a *adsClient) bool { return a.kind != grpcSotW })
	target := s.mesh.hostName(0)
	grpcs := s.fleet.of(func(a *adsClient) bool { return a.kind == grpcSotW && a.target == target })
	before, err := s.weir.metrics()
	if err != nil {
		return res, err
	}
	weights := [][2]int{{50, 50}, {10, 90}, {90, 10}, {1, 99}, {99, 1}}
	for r := range rounds {
		w := weights[r%len(weights)]
		t0, err := s.writer.setWeights(0, w[0], w[1])
		if err != nil {
			return res, err
		}
		lat, missing := firstAfter(sidecars, resourcev3.RouteType, t0, 2*time.Minute)
		res.perProxy = append(res.perProxy, lat...)
		res.missing += missing
		res.lastAck = append(res.lastAck, percentile(lat, 100))
		glat, gmiss := firstAfter(grpcs, resourcev3.RouteType, t0, time.Minute)
		res.grpcRaw = append(res.grpcRaw, glat...)
		res.missing += gmiss
		for _, g := range s.grpc {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			d, err := g.waitApplied(ctx, t0)
			cancel()
			if err != nil {
				res.missing++
				continue
			}
			res.grpcGo = append(res.grpcGo, d)
		}
		if err := s.fleet.quiet(time.Second, 2*time.Minute); err != nil {
			return res, err
		}
		for _, a := range sidecars {
			b := 0
			for _, rc := range a.since(t0) {
				if rc.typeURL == resourcev3.RouteType {
					b += rc.bytes
				}
			}
			res.rdsBytes = append(res.rdsBytes, b)
		}
		log.Printf("%s: weight change %d: last sidecar ACK %v after the write (%d missing)", s.name, r+1, ms(percentile(lat, 100)), missing)
	}
	after, err := s.weir.metrics()
	if err != nil {
		return res, err
	}
	const h, labels = "weir_xds_push_latency_seconds", `role="sidecar"`
	hb, ha := before.histogram(h, labels), after.histogram(h, labels)
	res.storeP50, res.storeCount = histQuantile(hb, ha, 0.5)
	res.storeP99, _ = histQuantile(hb, ha, 0.99)
	if res.storeCount > 0 {
		res.storeMean = (after[h+"_sum{"+labels+"}"] - before[h+"_sum{"+labels+"}"]) / res.storeCount
	}
	return res, s.fleet.failures()
}

// endpointResult is what one endpoint change sent.
type endpointResult struct {
	byKind  map[clientKind]traffic
	users   traffic // gRPC clients of the changed service
	others  traffic // gRPC clients of other services
	cluster string
}

// endpointChange adds an endpoint to version 1 of service 1 and records
// what every client received.
func (s *session) endpointChange() (endpointResult, error) {
	res := endpointResult{byKind: map[clientKind]traffic{}, cluster: s.mesh.clusterName(1, 1)}
	if err := s.fleet.quiet(time.Second, time.Minute); err != nil {
		return res, err
	}
	t0 := time.Now()
	if err := s.writer.addEndpoint(1, 1); err != nil {
		return res, err
	}
	if _, missing := firstAfter(s.fleet.of(ofKind(sidecarSotW)), resourcev3.EndpointType, t0, 2*time.Minute); missing > 0 {
		log.Printf("%s: %d sidecars got no endpoints after the change", s.name, missing)
	}
	if err := s.fleet.quiet(2*time.Second, 2*time.Minute); err != nil {
		return res, err
	}
	for _, k := range []clientKind{sidecarSotW, sidecarDelta} {
		res.byKind[k] = trafficSince(s.fleet.of(ofKind(k)), t0)
	}
	target := s.mesh.hostName(1)
	res.users = trafficSince(s.fleet.of(func(a *adsClient) bool { return a.kind == grpcSotW && a.target == target }), t0)
	res.others = trafficSince(s.fleet.of(func(a *adsClient) bool { return a.kind == grpcSotW && a.target != target }), t0)
	return res, s.fleet.failures()
}

// burstResult is what a burst of EndpointSlice updates caused.
type burstResult struct {
	updates      int
	writing      time.Duration
	translations float64
	maxPushes    int // responses to one proxy
	maxByKind    map[clientKind]int
}

// burst writes n EndpointSlice updates, spread evenly over one second, to
// services across the mesh.
func (s *session) burst(n int) (burstResult, error) {
	res := burstResult{updates: n, maxByKind: map[clientKind]int{}}
	if err := s.fleet.quiet(time.Second, time.Minute); err != nil {
		return res, err
	}
	before, err := s.weir.metrics()
	if err != nil {
		return res, err
	}
	t0 := time.Now()
	if err := s.writeBurst(n, t0); err != nil {
		return res, err
	}
	res.writing = time.Since(t0)
	// The last write changes every sidecar's endpoints: once each got them,
	// and nothing more came for a while, the burst is over.
	last := time.Now()
	if _, missing := firstAfter(s.fleet.of(ofKind(sidecarSotW)), resourcev3.EndpointType, last, 3*time.Minute); missing > 0 {
		log.Printf("%s: %d sidecars got no endpoints after the burst", s.name, missing)
	}
	if err := s.fleet.quiet(3*time.Second, 3*time.Minute); err != nil {
		return res, err
	}
	after, err := s.weir.metrics()
	if err != nil {
		return res, err
	}
	const tc = "weir_translation_duration_seconds_count"
	res.translations = after[tc] - before[tc]
	for _, a := range s.fleet.clients {
		got := len(a.since(t0))
		res.maxPushes = max(res.maxPushes, got)
		res.maxByKind[a.kind] = max(res.maxByKind[a.kind], got)
	}
	return res, s.fleet.failures()
}

// writeBurst starts update k of n at t0 + k/n s, as many at once as the
// writer allows (when none may start, a slow write delays the ones after
// it), and returns the first error once every started one finished.
func (s *session) writeBurst(n int, t0 time.Time) error {
	slots := make(chan struct{}, s.writer.inFlight())
	var wg sync.WaitGroup
	var mu sync.Mutex
	var first error
	for k := range n {
		time.Sleep(time.Until(t0.Add(time.Duration(k) * time.Second / time.Duration(n))))
		slots <- struct{}{}
		mu.Lock()
		failed := first != nil
		mu.Unlock()
		if failed {
			break
		}
		i := (k*7919 + 3) % s.mesh.services
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-slots }()
			if err := s.writer.addEndpoint(i, 2); err != nil {
				mu.Lock()
				first = cmp.Or(first, err)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return first
}

var translatedLine = regexp.MustCompile(`msg=translated hosts=(\d+)`)

// waitHosts waits until weir logged a translation with n hosts.
func (s *session) waitHosts(n int, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		b, err := os.ReadFile(s.weir.logPath)
		if err != nil {
			return err
		}
		ms := translatedLine.FindAllSubmatch(b, -1)
		if len(ms) > 0 {
			if got, _ := strconv.Atoi(string(ms[len(ms)-1][1])); got == n {
				return nil
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("no translation with %d hosts after %v", n, timeout)
}
