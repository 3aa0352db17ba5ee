package main

import (
	"context"
	"fmt"
	"log"
	"path/filepath"
	"strings"
	"time"
)

// kubeRun is the Kubernetes path: weir reading a real kube-apiserver that
// holds the mesh of the latency run, with the latency run's proxies.
type kubeRun struct {
	services, proxies int
	objects           int    // created for the mesh: Services, EndpointSlices, TrafficSplits
	apiserver         string // kube-apiserver's version
	clusterStart      time.Duration
	create            time.Duration // every object of the mesh created
	ready             time.Duration // weir start -> /readyz
	acked             time.Duration // weir start -> every proxy had a complete configuration
	settled           usage
	live              liveSteps
	weights           weightResult
	endpoint          endpointResult
	burst             burstResult
}

// kubeManifests are the files of deployDir installed before the mesh:
// weir's CRDs and its RBAC.
func kubeManifests(deployDir string) ([]string, error) {
	crds, err := filepath.Glob(filepath.Join(deployDir, "crds", "*.yaml"))
	if err != nil {
		return nil, err
	}
	if len(crds) == 0 {
		return nil, fmt.Errorf("no CRDs in %s", filepath.Join(deployDir, "crds"))
	}
	return append(crds, filepath.Join(deployDir, "rbac.yaml")), nil
}

func runKube(ctx context.Context, c config, r *report) error {
	kr := &kubeRun{services: c.kubeServices}
	if kr.services == 0 {
		kr.services = c.latencyServices
	}
	dir := filepath.Join(c.work, "kube")
	start := time.Now()
	k, err := startKubeCluster(filepath.Join(dir, "cluster"), c.kubeBin)
	if err != nil {
		return err
	}
	defer k.stop()
	kr.clusterStart = time.Since(start)
	if kr.apiserver, err = k.version(); err != nil {
		return err
	}
	log.Printf("kube: kube-apiserver %s ready in %v", kr.apiserver, ms(kr.clusterStart))
	manifests, err := kubeManifests(c.deployDir)
	if err != nil {
		return err
	}
	if _, err := k.applyFiles(ctx, manifests...); err != nil {
		return err
	}
	km := newKubeMesh(newMesh("", kr.services, c.perNamespace), k.Client, k.Dynamic)
	start = time.Now()
	kr.objects, err = km.create(ctx)
	if err != nil {
		return err
	}
	kr.create = time.Since(start)
	log.Printf("kube: %d objects of %d services created in %v", kr.objects, kr.services, ms(kr.create))
	s, err := startKubeSession(c, k, km, dir)
	if err != nil {
		return err
	}
	defer s.close()
	return kr.measure(c, s, r)
}

// startKubeSession starts weir on the API server of k, as weir's own
// identity, for the mesh km holds.
func startKubeSession(c config, k *kubeCluster, km *kubeMesh, dir string) (*session, error) {
	kubeconfig := filepath.Join(dir, "weir.kubeconfig")
	if err := k.writeWeirKubeconfig(kubeconfig); err != nil {
		return nil, err
	}
	// An empty --dir is weir's default (none): --kubeconfig picks the source.
	args := append([]string{"--kubeconfig", kubeconfig, "--lease-identity", "weir-bench"}, c.weirArgs...)
	w, err := startWeir(c.weirBin, "", filepath.Join(dir, "weir.log"), args)
	if err != nil {
		return nil, err
	}
	return &session{name: "kube", dir: dir, mesh: km.m, writer: km, weir: w, fleet: &fleet{addr: w.xdsAddr}}, nil
}

// measure takes the figures of a session whose weir just started.
func (kr *kubeRun) measure(c config, s *session, r *report) error {
	start := time.Now()
	if err := s.weir.waitReady(5 * time.Minute); err != nil {
		return fmt.Errorf("%w; see %s", err, s.weir.logPath)
	}
	kr.ready = time.Since(start)
	var err error
	if _, kr.live, err = s.connect(c, latencyMix(c)); err != nil {
		return err
	}
	kr.acked = time.Since(start)
	kr.proxies = len(s.fleet.clients) + len(s.grpc)
	log.Printf("kube: weir ready %v after its start, %d proxies ACKed %v after it", ms(kr.ready), kr.proxies, ms(kr.acked))
	if err := s.fleet.quiet(2*time.Second, 5*time.Minute); err != nil {
		return err
	}
	if kr.settled, err = s.usage(); err != nil {
		return err
	}
	if kr.live.all, err = s.liveHeap(); err != nil {
		return err
	}
	r.kube = kr
	log.Printf("kube: settled RSS %s", mb(kr.settled.rss))
	if kr.weights, err = s.weightChanges(c, c.rounds); err != nil {
		return err
	}
	if kr.endpoint, err = s.endpointChange(); err != nil {
		return err
	}
	kr.burst, err = s.burst(c.burst)
	return err
}

// kubeBinDir is where the Kubernetes binaries are: WEIR_K8S_BIN, else
// .cache/k8s/bin (under the repository root, where make runs the harness).
func kubeBinDir() string { return envOr("WEIR_K8S_BIN", filepath.Join(".cache", "k8s", "bin")) }

// apiWrites says how the Kubernetes path wrote its changes.
var apiWrites = changeWords{weight: "each a read and an Update of the TrafficSplit through the API server",
	endpoint: fmt.Sprintf("each an Update of one version's EndpointSlice through the API server, up to %d at once", kubeMeshWriters),
	origin:   "the API write (the client's clock just before the Update call)"}

// writeKube writes the Kubernetes path's section.
func (r *report) writeKube(b *strings.Builder) {
	kr := r.kube
	if kr == nil {
		return
	}
	w := func(format string, args ...any) { fmt.Fprintf(b, format, args...) }
	w("## Kubernetes path at %s services\n\n", count(kr.services))
	w("weir ran as a separate process (`weir serve --kubeconfig`, as ServiceAccount weir with the rights of `deploy/rbac.yaml`) on a real\n")
	w("kube-apiserver %s with etcd, both on loopback on this machine (ready %s after their start; no controller ran). The API server\n", kr.apiserver, ms(kr.clusterStart))
	w("held weir's CRDs (`deploy/crds/`) and the mesh of the file runs: %s objects (per service a root and two version Services, an EndpointSlice\n", count(kr.objects))
	w("each with 3 endpoints a version, and a 90/10 TrafficSplit), created through the API in %s before weir started.\n\n", ms(kr.create))
	w("weir was ready (informers synced, first translation) %s after its start. The latency run's mix of %s proxies (%s raw sidecars on SotW,\n", ms(kr.ready), count(kr.proxies), count(r.cfg.proxies))
	w("%d on delta, %d raw proxyless gRPC clients, %d grpc-go), connected %d at a time once weir was ready, had all ACKed a complete configuration\n", r.cfg.deltaProxies, r.cfg.grpcRaw, r.cfg.grpcGo, r.cfg.batch)
	w("%s after weir's start (two live-heap samples, four collections, on the way, as in the file runs).\n", ms(kr.acked))
	w("Settled: RSS %s, live heap %s, %.0f goroutines, CPU %s since start%s.\n\n", mb(kr.settled.rss), mb(int64(kr.live.all)), kr.settled.goroutines, ms(kr.settled.cpu), r.fileRSSNote())
	writeWeights(b, kr.weights, apiWrites)
	writeEndpoint(b, kr.endpoint)
	writeBurst(b, kr.burst, apiWrites)
}

// fileRSSNote compares the Kubernetes path's settled RSS with the file
// latency run's, if it ran at the same size.
func (r *report) fileRSSNote() string {
	if r.latency == nil || r.kube == nil || r.latency.services != r.kube.services || r.latency.settled.rss == 0 {
		return ""
	}
	return fmt.Sprintf(" (the file path with the same mesh and proxies: %s, so %s here)", mb(r.latency.settled.rss), pct(r.kube.settled.rss, r.latency.settled.rss))
}

// kubeRows are the Kubernetes path's rows of the targets table.
func (r *report) kubeRows() []row {
	kr := r.kube
	if kr == nil {
		return nil
	}
	var rows []row
	if wr := kr.weights; len(wr.perProxy) > 0 {
		p99 := secs(wr.storeP99)
		rows = append(rows, row{fmt.Sprintf("Kubernetes path: one weight change (TrafficSplit Update through kube-apiserver) -> all %s connected proxies ACKed (%s services)", count(kr.proxies), count(kr.services)),
			"p99 < 200 ms from the store write to the last ACK",
			fmt.Sprintf("p99 %s from the store write (weir's histogram, p50 %s); from the API write to the sidecars' ACKs p50 %s, p90 %s, p99 %s, max %s%s",
				ms(p99), ms(secs(wr.storeP50)), ms(percentile(wr.perProxy, 50)), ms(percentile(wr.perProxy, 90)), ms(percentile(wr.perProxy, 99)), ms(percentile(wr.perProxy, 100)), missingNote(wr.missing)),
			verdict(wr.storeCount > 0 && p99 < 200*time.Millisecond && wr.missing == 0)})
	}
	if kr.burst.updates > 0 {
		// The API server may take longer than the second the writes are
		// spread over: the figure says how long they took.
		rows = append(rows, burstRow(fmt.Sprintf("Kubernetes path: %s EndpointSlice updates spread over one second, through kube-apiserver (all written after %s; %s services)",
			count(kr.burst.updates), ms(kr.burst.writing), count(kr.services)), kr.burst))
	}
	if kr.settled.rss > 0 {
		rows = append(rows, row{fmt.Sprintf("Kubernetes path: RSS with %s services and %s connected proxies", count(kr.services), count(kr.proxies)), "reported (the < 300 MB target is at 10,000 services)",
			fmt.Sprintf("%s settled; live heap %s%s", mb(kr.settled.rss), mb(int64(kr.live.all)), r.fileRSSNote()), ""})
	}
	if kr.acked > 0 {
		rows = append(rows, row{fmt.Sprintf("Kubernetes path: weir start -> all %s proxies ACKed (%s services)", count(kr.proxies), count(kr.services)), "reported",
			fmt.Sprintf("%s (ready after %s; proxies connected %d at a time from then)", ms(kr.acked), ms(kr.ready), r.cfg.batch), ""})
	}
	return rows
}
