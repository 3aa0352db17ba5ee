package xds

import (
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/weir-mesh/weir/translator/envoy"
	"github.com/weir-mesh/weir/translator/ir"
)

// TestMemoryHandedBackAfterShrinking checks that weir hands memory back
// once the configuration shrank and every node has the smaller one, and
// not before.
func TestMemoryHandedBackAfterShrinking(t *testing.T) {
	many := func(n int) *ir.IR {
		in := &ir.IR{}
		for i := range n {
			c := fmt.Sprintf("c%03d", i)
			in.Hosts = append(in.Hosts, ir.Host{Name: fmt.Sprintf("h%03d.default.svc.cluster.local:80", i), Service: fmt.Sprintf("h%03d", i),
				Namespace: "default", Port: 80, Routes: []ir.Route{{Name: c, Backends: []ir.Backend{{Cluster: c, Weight: 1}}}}})
			in.Clusters = append(in.Clusters, ir.Cluster{Name: c, Endpoints: []ir.Endpoint{{Address: "127.0.0.1", Port: 8080}}})
		}
		return in
	}
	s := quietServer(time.Hour)
	clock := time.Unix(1000, 0)
	s.now = func() time.Time { return clock }
	var freed atomic.Int32
	done := make(chan struct{}, 10)
	s.freeMemory = func() { freed.Add(1); done <- struct{}{} }
	s.freeAfter = time.Millisecond
	s.Update(many(100))
	p := connect(t, s, "n1", envoy.Sidecar)
	s.Update(many(10))
	p.ackAll(t) // the switch; the unused clusters stay for the grace period
	if freed.Load() != 0 {
		t.Fatal("memory handed back while the node still held the larger configuration")
	}
	clock = clock.Add(time.Hour)
	s.tick() // the retire step
	p.ackAll(t)
	select {
	case <-done:
	case <-time.After(time.Minute):
		t.Fatal("memory not handed back once the node settled on the smaller configuration")
	}
	s.Update(many(9))
	p.ackAll(t)
	clock = clock.Add(time.Hour)
	s.tick()
	p.ackAll(t)
	s.mu.Lock()
	pending := s.freeTimer != nil
	s.mu.Unlock()
	if pending || freed.Load() != 1 {
		t.Errorf("memory handed back %d times, another pending: %v; want once, a small change is no shrink", freed.Load(), pending)
	}
}
