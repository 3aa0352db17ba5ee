package main

import (
	"context"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"slices"
	"time"
)

// weightRun is a session's fleet connected, settled, and its weight
// changes with weir's CPU profile during them.
type weightRun struct {
	services, proxies int
	connect           time.Duration
	settled           usage
	weights           weightResult
	cpuProfile        string // weir during the weight changes
}

// latencyRun is the weight-change latency run at latency-services.
type latencyRun struct {
	*weightRun
	endpoint endpointResult
	burst    burstResult
	down     *downResult
}

// changeWeights connects m's clients to s, waits until they are quiet,
// and makes c.rounds weight changes under a CPU profile. The run is
// published through publish once the fleet settled, so that a failure of
// the weight changes still reports the connection figures.
func (s *session) changeWeights(ctx context.Context, c config, m mix, publish func(*weightRun)) (*weightRun, error) {
	wr := &weightRun{services: s.mesh.services}
	var err error
	if wr.connect, _, err = s.connect(c, m); err != nil {
		return nil, err
	}
	wr.proxies = len(s.fleet.clients) + len(s.grpc)
	log.Printf("%s: %d proxies connected in %v", s.name, wr.proxies, ms(wr.connect))
	if err := s.fleet.quiet(2*time.Second, 5*time.Minute); err != nil {
		return nil, err
	}
	if wr.settled, err = s.usage(); err != nil {
		return nil, err
	}
	publish(wr)
	wr.cpuProfile = filepath.Join(s.dir, "cpu.pprof")
	profDone := make(chan error, 1)
	go func() { profDone <- s.weir.saveProfile(ctx, "profile?seconds=10", wr.cpuProfile) }()
	wr.weights, err = s.weightChanges(c, c.rounds)
	if perr := <-profDone; perr != nil {
		wr.cpuProfile = ""
	}
	return wr, err
}

func runLatency(ctx context.Context, c config, r *report) error {
	s, err := startSession(c, "latency", c.latencyServices)
	if err != nil {
		return err
	}
	defer s.close()
	lr := &latencyRun{}
	if _, err := s.changeWeights(ctx, c, latencyMix(c), func(wr *weightRun) { lr.weightRun, r.latency = wr, lr }); err != nil {
		return err
	}
	if lr.endpoint, err = s.endpointChange(); err != nil {
		return err
	}
	if lr.burst, err = s.burst(c.burst); err != nil {
		return err
	}
	if lr.down, err = scaleDown(ctx, s, c, 3*time.Minute); err != nil {
		return err
	}
	s.close()
	return freshSmall(c, lr.down, latencyMix(c))
}

// scopedMix is the scoped run's: -proxies sidecars on delta xDS, and the
// raw gRPC clients.
func scopedMix(c config) mix {
	return mix{delta: c.proxies, grpc: c.grpcRaw}
}

// runScoped is the weight-change run with weir's sidecar configuration
// for large meshes: every sidecar on delta xDS with scoped routes.
func runScoped(ctx context.Context, c config, r *report) error {
	c.weirArgs = append(slices.Clone(c.weirArgs), "--scoped-routes")
	s, err := startSession(c, "scoped", c.latencyServices)
	if err != nil {
		return err
	}
	defer s.close()
	_, err = s.changeWeights(ctx, c, scopedMix(c), func(wr *weightRun) { r.scoped = wr })
	return err
}

// scaleRun is the run at services with every proxy connected.
type scaleRun struct {
	services, proxies int
	load              time.Duration // weir start to ready
	loaded            usage         // ready, no proxy
	connect           time.Duration
	connectPeak       int64
	settled           usage
	weights           weightResult
	endpoint          endpointResult
	burst             burstResult
	cpuProfile        string
	heapProfile       string
	down              *downResult
	mix               mix
	// live heap (after a collection): loaded with no proxy, with the
	// proxyless clients, and with every proxy.
	liveLoaded float64
	live       liveSteps
}

type rssSample struct {
	after  time.Duration
	rss    int64
	heap   float64
	window bool // the median over the 20 s before after
}

func runScale(ctx context.Context, c config, r *report) error {
	sr := &scaleRun{services: c.services}
	start := time.Now()
	s, err := startSession(c, "scale", c.services)
	if err != nil {
		return err
	}
	defer func() {
		if s != nil {
			s.close()
		}
	}()
	sr.load = time.Since(start)
	if sr.loaded, err = s.usage(); err != nil {
		return err
	}
	log.Printf("scale: %d services loaded in %v, RSS %s", c.services, ms(sr.load), mb(sr.loaded.rss))
	if sr.liveLoaded, err = s.liveHeap(); err != nil {
		return err
	}
	sr.mix = scaleMix(c)
	peak := sampleRSS(s.weir.pid(), 100*time.Millisecond)
	sr.connect, sr.live, err = s.connect(c, sr.mix)
	sr.connectPeak = peak.finish()
	if err != nil {
		return err
	}
	sr.proxies = len(s.fleet.clients) + len(s.grpc)
	log.Printf("scale: %d proxies connected in %v, peak RSS %s", sr.proxies, ms(sr.connect), mb(sr.connectPeak))
	if err := s.fleet.quiet(3*time.Second, 5*time.Minute); err != nil {
		return err
	}
	if sr.settled, err = s.usage(); err != nil {
		return err
	}
	if sr.live.all, err = s.liveHeap(); err != nil {
		return err
	}
	r.scale = sr
	log.Printf("scale: settled RSS %s, %v goroutines", mb(sr.settled.rss), sr.settled.goroutines)
	sr.heapProfile = filepath.Join(s.dir, "heap.pprof")
	if err := s.weir.saveProfile(ctx, "heap", sr.heapProfile); err != nil {
		return err
	}
	// A CPU profile over the weight changes: where a change's time goes.
	sr.cpuProfile = filepath.Join(s.dir, "cpu.pprof")
	profDone := make(chan error, 1)
	go func() { profDone <- s.weir.saveProfile(ctx, "profile?seconds=10", sr.cpuProfile) }()
	sr.weights, err = s.weightChanges(c, min(c.rounds, 3))
	if perr := <-profDone; perr != nil {
		log.Printf("scale: CPU profile: %v", perr)
		sr.cpuProfile = ""
	}
	if err != nil {
		return err
	}
	if sr.endpoint, err = s.endpointChange(); err != nil {
		return err
	}
	if sr.burst, err = s.burst(c.burst); err != nil {
		return err
	}
	if sr.down, err = scaleDown(ctx, s, c, c.scaleDownTimeout); err != nil {
		return err
	}
	s.close()
	s = nil
	if !sr.down.finished {
		return nil
	}
	return freshSmall(c, sr.down, sr.mix)
}

// downResult is a scale-down to the first namespace and how RSS followed,
// beside a fresh start at that size with the same proxies.
type downResult struct {
	from, to     int
	finished     bool          // the translation reached the small size
	took         time.Duration // removal -> translation at the small size, proxies quiet
	samples      []rssSample
	cpuProfile   string // weir while it took the removal in
	heapProfile  string // once sampled
	fresh        usage
	freshProxies int
	live         float64 // live heap once sampled
	freshLive    float64
}

// scaleDown removes every namespace but the first, waits at most timeout
// for weir to translate what is left, and samples RSS.
func scaleDown(ctx context.Context, s *session, c config, timeout time.Duration) (*downResult, error) {
	small := min(c.perNamespace, s.mesh.services)
	d := &downResult{from: s.mesh.services, to: small, cpuProfile: filepath.Join(s.dir, "scale-down-cpu.pprof")}
	t0 := time.Now()
	for n := 1; n < s.mesh.namespaces(); n++ {
		if err := os.RemoveAll(filepath.Join(s.mesh.dir, nsName(n))); err != nil {
			return nil, err
		}
	}
	profDone := make(chan error, 1)
	go func() { profDone <- s.weir.saveProfile(ctx, "profile?seconds=20", d.cpuProfile) }()
	err := s.waitHosts(3*small, timeout) // a root and two versions each
	if perr := <-profDone; perr != nil {
		d.cpuProfile = ""
	}
	if err != nil {
		log.Printf("%s: scaling down: %v", s.name, err)
		d.took = time.Since(t0)
		return d, nil
	}
	if err := s.fleet.quiet(2*time.Second, 5*time.Minute); err != nil {
		return nil, err
	}
	d.finished, d.took = true, time.Since(t0)
	time.Sleep(time.Until(t0.Add(d.took + 10*time.Second)))
	u, err := s.usage()
	if err != nil {
		return nil, err
	}
	d.samples = append(d.samples, rssSample{after: time.Since(t0), rss: u.rss, heap: u.heapInuse})
	// RSS moves with each collection: the last figure is the median of a
	// window, as for the fresh start.
	time.Sleep(time.Until(t0.Add(d.took + 30*time.Second)))
	if u, err = s.medianUsage(20 * time.Second); err != nil {
		return nil, err
	}
	d.samples = append(d.samples, rssSample{after: time.Since(t0), rss: u.rss, heap: u.heapInuse, window: true})
	log.Printf("%s: %v after scaling down: RSS %s", s.name, ms(time.Since(t0)), mb(u.rss))
	// After the samples: a collection is no part of them.
	d.heapProfile = filepath.Join(s.dir, "scale-down-heap.pprof")
	if err := s.weir.saveProfile(ctx, "heap?gc=1", d.heapProfile); err != nil {
		return nil, err
	}
	var err2 error
	if d.live, err2 = s.liveHeap(); err2 != nil {
		return nil, err2
	}
	return d, nil
}

// freshSmall starts a fresh weir at the small size with the same clients,
// and samples it as long after its start as the scaled-down one was
// sampled after the scale-down translated.
func freshSmall(c config, d *downResult, m mix) error {
	s, err := startSession(c, "fresh", d.to)
	if err != nil {
		return err
	}
	defer s.close()
	start := time.Now()
	if _, _, err := s.connect(c, m); err != nil {
		return err
	}
	d.freshProxies = len(s.fleet.clients) + len(s.grpc)
	if err := s.fleet.quiet(2*time.Second, 5*time.Minute); err != nil {
		return err
	}
	time.Sleep(time.Until(start.Add(30 * time.Second)))
	if d.fresh, err = s.medianUsage(20 * time.Second); err != nil {
		return err
	}
	if d.freshLive, err = s.liveHeap(); err != nil {
		return err
	}
	log.Printf("fresh: RSS %s with %d proxies", mb(d.fresh.rss), d.freshProxies)
	return nil
}

func pct(a, b int64) string {
	if b == 0 {
		return "n/a"
	}
	return fmt.Sprintf("%+.0f%%", 100*(float64(a)/float64(b)-1))
}
