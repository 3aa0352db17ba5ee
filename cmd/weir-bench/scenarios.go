package main

import (
	"context"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"time"
)

// latencyRun is the weight-change latency run at latency-services.
type latencyRun struct {
	services, proxies int
	connect           time.Duration
	settled           usage
	weights           weightResult
	endpoint          endpointResult
	burst             burstResult
}

func runLatency(ctx context.Context, c config, r *report) error {
	s, err := startSession(c, "latency", c.latencyServices)
	if err != nil {
		return err
	}
	defer s.close()
	lr := &latencyRun{services: c.latencyServices}
	if lr.connect, err = s.connect(c); err != nil {
		return err
	}
	lr.proxies = len(s.fleet.clients) + len(s.grpc)
	log.Printf("latency: %d proxies connected in %v", lr.proxies, ms(lr.connect))
	if err := s.fleet.quiet(2*time.Second, 5*time.Minute); err != nil {
		return err
	}
	if lr.settled, err = s.usage(); err != nil {
		return err
	}
	r.latency = lr
	if lr.weights, err = s.weightChanges(c, c.rounds); err != nil {
		return err
	}
	if lr.endpoint, err = s.endpointChange(); err != nil {
		return err
	}
	lr.burst, err = s.burst(c.burst)
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
	smallServices     int
	downSamples       []rssSample // after scaling down
	downHosts         time.Duration
	fresh             usage // fresh start at smallServices with the same proxies
	freshProxies      int
}

type rssSample struct {
	after time.Duration
	rss   int64
	heap  float64
}

func runScale(ctx context.Context, c config, r *report) error {
	sr := &scaleRun{services: c.services, smallServices: c.smallServices}
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
	peak := sampleRSS(s.weir.pid(), 100*time.Millisecond)
	sr.connect, err = s.connect(c)
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
	if err := scaleDown(s, sr, c); err != nil {
		return err
	}
	s.close()
	s = nil
	return freshSmall(c, sr)
}

// scaleDown removes every namespace but the first and samples RSS.
func scaleDown(s *session, sr *scaleRun, c config) error {
	t0 := time.Now()
	for n := 1; n < s.mesh.namespaces(); n++ {
		if err := os.RemoveAll(filepath.Join(s.mesh.dir, nsName(n))); err != nil {
			return err
		}
	}
	small := min(c.perNamespace, c.services)
	if err := s.waitHosts(3*small, 2*time.Minute); err != nil { // a root and two versions each
		return err
	}
	if err := s.fleet.quiet(2*time.Second, 5*time.Minute); err != nil {
		return err
	}
	sr.downHosts = time.Since(t0)
	for _, at := range []time.Duration{10 * time.Second, 30 * time.Second, 60 * time.Second} {
		time.Sleep(time.Until(t0.Add(at)))
		u, err := s.usage()
		if err != nil {
			return err
		}
		sr.downSamples = append(sr.downSamples, rssSample{after: time.Since(t0), rss: u.rss, heap: u.heapInuse})
		log.Printf("scale: %v after scaling down: RSS %s", ms(time.Since(t0)), mb(u.rss))
	}
	return nil
}

// freshSmall starts a fresh weir at the small size with the same clients.
func freshSmall(c config, sr *scaleRun) error {
	s, err := startSession(c, "fresh", min(c.perNamespace, c.services))
	if err != nil {
		return err
	}
	defer s.close()
	if _, err := s.connect(c); err != nil {
		return err
	}
	sr.freshProxies = len(s.fleet.clients) + len(s.grpc)
	if err := s.fleet.quiet(2*time.Second, 5*time.Minute); err != nil {
		return err
	}
	// As long after the start as the last sample after scaling down.
	time.Sleep(10 * time.Second)
	if sr.fresh, err = s.usage(); err != nil {
		return err
	}
	log.Printf("fresh: RSS %s with %d proxies", mb(sr.fresh.rss), sr.freshProxies)
	return nil
}

func pct(a, b int64) string {
	if b == 0 {
		return "n/a"
	}
	return fmt.Sprintf("%+.0f%%", 100*(float64(a)/float64(b)-1))
}
