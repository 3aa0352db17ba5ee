package main

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/resolver"
	grpcxds "google.golang.org/grpc/xds"

	"github.com/weir-mesh/weir/translator/envoy"
	"github.com/weir-mesh/weir/xds"
)

// clientSpec says how to start one raw client.
type clientSpec struct {
	kind      clientKind
	namespace string
	target    string // grpcSotW only
}

// fleet is every raw client of one weir.
type fleet struct {
	addr    string
	clients []*adsClient
}

// allTypes are what every client receives; sidecars also get scopes.
var (
	allTypes     = []string{resourcev3.ClusterType, resourcev3.EndpointType, resourcev3.ListenerType, resourcev3.RouteType}
	sidecarTypes = append(slices.Clip(allTypes), resourcev3.ScopedRouteType)
)

// connect starts the clients batch at a time, each batch once the one
// before received a complete configuration, and returns once every client
// did.
func (f *fleet) connect(prefix string, specs []clientSpec, batch int, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for start := 0; start < len(specs); start += batch {
		var added []*adsClient
		for i, s := range specs[start:min(start+batch, len(specs))] {
			c, err := startADSClient(f.addr, fmt.Sprintf("%s-%04d", prefix, start+i), s.kind, s.namespace, s.target)
			if err != nil {
				return err
			}
			f.clients = append(f.clients, c)
			added = append(added, c)
		}
		if err := waitComplete(added, time.Until(deadline)); err != nil {
			return err
		}
	}
	return nil
}

// waitComplete waits until every client received each type at least once.
func waitComplete(clients []*adsClient, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		waiting := 0
		var example string
		for _, c := range clients {
			if err := c.failure(); err != nil {
				return fmt.Errorf("client %s: %w", c.id, err)
			}
			if rs := c.since(time.Time{}); !hasAll(rs, c.types()) {
				waiting++
				if example == "" {
					example = fmt.Sprintf("; e.g. %s (%v) received", c.id, c.kind)
					for _, r := range rs {
						example += " " + typeShort(r.typeURL)
					}
				}
			}
		}
		if waiting == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%d of %d clients have no complete configuration after %v%s", waiting, len(clients), timeout, example)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func hasAll(rs []received, types []string) bool {
	seen := map[string]bool{}
	for _, r := range rs {
		seen[r.typeURL] = true
	}
	for _, t := range types {
		if !seen[t] {
			return false
		}
	}
	return true
}

// close ends every client.
func (f *fleet) close() {
	var wg sync.WaitGroup
	for _, c := range f.clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.close()
		}()
	}
	wg.Wait()
	f.clients = nil
}

// of returns the clients for which keep is true.
func (f *fleet) of(keep func(*adsClient) bool) []*adsClient {
	var out []*adsClient
	for _, c := range f.clients {
		if keep(c) {
			out = append(out, c)
		}
	}
	return out
}

func ofKind(k clientKind) func(*adsClient) bool {
	return func(c *adsClient) bool { return c.kind == k }
}

// firstAfter waits until each client received a response of typeURL at or
// after t0, and returns how long after t0 each did; clients that did not
// within timeout are left out and counted in missing.
func firstAfter(clients []*adsClient, typeURL string, t0 time.Time, timeout time.Duration) (lat []time.Duration, missing int) {
	deadline := time.Now().Add(timeout)
	got := make([]time.Duration, len(clients))
	for {
		missing = 0
		for i, c := range clients {
			if got[i] != 0 {
				continue
			}
			for _, r := range c.since(t0) {
				if r.typeURL == typeURL {
					got[i] = r.at.Sub(t0)
					break
				}
			}
			if got[i] == 0 {
				missing++
			}
		}
		if missing == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	for _, d := range got {
		if d != 0 {
			lat = append(lat, d)
		}
	}
	return lat, missing
}

// quiet waits until no client received anything for d, counting from the
// call at the earliest, at most timeout.
func (f *fleet) quiet(d, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	called := time.Now()
	for {
		last := called
		for _, c := range f.clients {
			c.mu.Lock()
			if n := len(c.log); n > 0 && c.log[n-1].at.After(last) {
				last = c.log[n-1].at
			}
			c.mu.Unlock()
		}
		if time.Since(last) >= d {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("clients still receiving after %v", timeout)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// failures returns the first stream failure of any client.
func (f *fleet) failures() error {
	for _, c := range f.clients {
		if err := c.failure(); err != nil {
			return fmt.Errorf("client %s: %w", c.id, err)
		}
	}
	return nil
}

// traffic is what a set of clients received from t0 on.
type traffic struct {
	clients   int
	receivers int   // clients that received anything
	messages  []int // per receiving client
	bytes     []int // per receiving client
	byType    map[string]int
}

func trafficSince(clients []*adsClient, t0 time.Time) traffic {
	tr := traffic{clients: len(clients), byType: map[string]int{}}
	for _, c := range clients {
		rs := c.since(t0)
		if len(rs) == 0 {
			continue
		}
		tr.receivers++
		b := 0
		for _, r := range rs {
			b += r.bytes
			tr.byType[typeShort(r.typeURL)]++
		}
		tr.messages = append(tr.messages, len(rs))
		tr.bytes = append(tr.bytes, b)
	}
	return tr
}

func typeShort(t string) string {
	switch t {
	case resourcev3.ClusterType:
		return "CDS"
	case resourcev3.EndpointType:
		return "EDS"
	case resourcev3.ListenerType:
		return "LDS"
	case resourcev3.RouteType:
		return "RDS"
	}
	return t
}

// grpcGo is a real grpc-go channel resolving a target through weir, which
// records when its channel applied a new resolver state.
type grpcGo struct {
	cc      *grpc.ClientConn
	mu      sync.Mutex
	applied []time.Time
	count   atomic.Int64
}

type appliedRecorder struct {
	resolver.Builder
	g *grpcGo
}

func (b *appliedRecorder) Build(t resolver.Target, cc resolver.ClientConn, o resolver.BuildOptions) (resolver.Resolver, error) {
	return b.Builder.Build(t, &recordingConn{ClientConn: cc, g: b.g}, o)
}

type recordingConn struct {
	resolver.ClientConn
	g *grpcGo
}

func (c *recordingConn) UpdateState(s resolver.State) error {
	err := c.ClientConn.UpdateState(s)
	c.g.mu.Lock()
	c.g.applied = append(c.g.applied, time.Now())
	c.g.mu.Unlock()
	c.g.count.Add(1)
	return err
}

// startGRPCGo dials xds:///target as node id of the weir at addr.
func startGRPCGo(addr, id, namespace, target string) (*grpcGo, error) {
	bootstrap, err := xds.GRPCBootstrap(xds.BootstrapOptions{NodeID: id, Role: envoy.GRPC, Namespace: namespace, XDSAddr: addr})
	if err != nil {
		return nil, err
	}
	builder, err := grpcxds.NewXDSResolverWithConfigForTesting(bootstrap)
	if err != nil {
		return nil, err
	}
	g := &grpcGo{}
	g.cc, err = grpc.NewClient("xds:///"+target, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithResolvers(&appliedRecorder{Builder: builder, g: g}))
	if err != nil {
		return nil, err
	}
	g.cc.Connect()
	return g, nil
}

// waitApplied waits until the channel applied a state after t0 and
// returns how long after t0 it did.
func (g *grpcGo) waitApplied(ctx context.Context, t0 time.Time) (time.Duration, error) {
	for {
		g.mu.Lock()
		for _, at := range g.applied {
			if !at.Before(t0) {
				g.mu.Unlock()
				return at.Sub(t0), nil
			}
		}
		g.mu.Unlock()
		select {
		case <-ctx.Done():
			return 0, errors.New("no resolver update")
		case <-time.After(5 * time.Millisecond):
		}
	}
}
