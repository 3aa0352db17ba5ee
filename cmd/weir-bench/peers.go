package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
)

// peerResults are the peers measured in this run, and weir measured the
// same way beside them.
type peerResults struct {
	egErr   string
	eg      []egResult
	weirTr  []translateResult
	gcpErr  string
	gcp     *sideBySide
	gcpWeir *sideBySide
}

type egResult struct {
	Routes   int     `json:"routes"`
	MedianMS float64 `json:"median_ms"`
	RSSBytes int64   `json:"rss_bytes"`
	HWMBytes int64   `json:"hwm_bytes"`
	Clusters int     `json:"clusters"`
}

// sideBySide is one control plane with N services and the peer's number of
// SotW sidecars, and its weight changes.
type sideBySide struct {
	services, clients int
	fromChange        []time.Duration // change (API call, or file write) -> client ACK
	storeP50          float64         // weir only: its histogram, from the store write
	rss               int64
	buildTook         time.Duration
}

func runPeers(ctx context.Context, c config, r *report) error {
	pr := &peerResults{}
	r.peers = pr
	dir := filepath.Join(c.work, "peers")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	var sizes []int
	for _, s := range strings.Split(c.peerSizes, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil {
			return fmt.Errorf("-peer-sizes: %w", err)
		}
		sizes = append(sizes, n)
	}
	eg := filepath.Join(dir, "envoygateway")
	if err := buildPeer(ctx, filepath.Join(c.peersDir, "envoygateway"), eg); err != nil {
		pr.egErr = err.Error()
		log.Printf("peers: Envoy Gateway: %v", err)
	} else {
		for _, n := range sizes {
			var er egResult
			if err := runJSON(ctx, &er, eg, "-routes", strconv.Itoa(n), "-iterations", "3"); err != nil {
				pr.egErr = err.Error()
				break
			}
			pr.eg = append(pr.eg, er)
			var wr translateResult
			if err := runJSON(ctx, &wr, self, "-translate", strconv.Itoa(n), "-iterations", "3"); err != nil {
				return err
			}
			pr.weirTr = append(pr.weirTr, wr)
			log.Printf("peers: %d routes: Envoy Gateway %.0f ms %s, weir %.0f ms %s", n, er.MedianMS, mb(er.HWMBytes), wr.MedianMS, mb(wr.HWMBytes))
		}
	}
	gcp := filepath.Join(dir, "gocontrolplane")
	if err := buildPeer(ctx, filepath.Join(c.peersDir, "gocontrolplane"), gcp); err != nil {
		pr.gcpErr = err.Error()
		log.Printf("peers: go-control-plane: %v", err)
		return nil
	}
	if pr.gcp, err = runGCPPeer(c, gcp); err != nil {
		pr.gcpErr = err.Error()
		return nil
	}
	pr.gcpWeir, err = weirLikeGCPPeer(c)
	return err
}

// buildPeer builds the module in dir; its first build downloads and
// compiles its dependencies.
func buildPeer(ctx context.Context, dir, out string) error {
	start := time.Now()
	cmd := exec.CommandContext(ctx, "go", "build", "-o", out, ".")
	cmd.Dir = dir
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("build %s: %v: %s", dir, err, bytes.TrimSpace(b))
	}
	log.Printf("peers: built %s in %v", dir, time.Since(start).Round(time.Second))
	return nil
}

// runJSON runs a program and decodes the JSON line it prints.
func runJSON(ctx context.Context, v any, bin string, args ...string) error {
	cmd := exec.CommandContext(ctx, bin, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return fmt.Errorf("%s %s: %v: %s", filepath.Base(bin), strings.Join(args, " "), err, bytes.TrimSpace(stderr.Bytes()))
	}
	return json.Unmarshal(out, v)
}

// runGCPPeer starts the go-control-plane peer, connects its SotW clients
// and changes weights through its admin API.
func runGCPPeer(c config, bin string) (*sideBySide, error) {
	sb := &sideBySide{services: c.latencyServices, clients: c.peerClients}
	cmd := exec.Command(bin, "-services", strconv.Itoa(c.latencyServices))
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	children.add(cmd)
	defer func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		children.remove(cmd)
	}()
	var addrs struct{ XDS, Admin string }
	line, err := bufio.NewReader(stdout).ReadBytes('\n')
	if err != nil {
		return nil, fmt.Errorf("go-control-plane peer: %w", err)
	}
	if err := json.Unmarshal(line, &addrs); err != nil {
		return nil, err
	}
	f := &fleet{addr: addrs.XDS}
	defer f.close()
	specs := make([]clientSpec, c.peerClients)
	for i := range specs {
		specs[i] = clientSpec{kind: sidecarSotW, namespace: "bench"}
	}
	if err := f.connect("gcp", specs, c.batch, c.connectTimeout); err != nil {
		return nil, err
	}
	if err := f.quiet(time.Second, time.Minute); err != nil {
		return nil, err
	}
	weights := [][2]int{{50, 50}, {10, 90}, {90, 10}, {1, 99}, {99, 1}}
	for round := range c.rounds {
		w := weights[round%len(weights)]
		t0 := time.Now()
		resp, err := http.PostForm("http://"+addrs.Admin+"/weight", map[string][]string{
			"service": {"0"}, "v1": {strconv.Itoa(w[0])}, "v2": {strconv.Itoa(w[1])}})
		if err != nil {
			return nil, err
		}
		resp.Body.Close()
		lat, missing := firstAfter(f.clients, resourcev3.RouteType, t0, 2*time.Minute)
		if missing > 0 {
			return nil, fmt.Errorf("%d go-control-plane clients never got the change", missing)
		}
		sb.fromChange = append(sb.fromChange, lat...)
		if err := f.quiet(time.Second, 2*time.Minute); err != nil {
			return nil, err
		}
	}
	st, err := readProc(cmd.Process.Pid)
	if err != nil {
		return nil, err
	}
	sb.rss = st.rssBytes
	log.Printf("peers: go-control-plane: weight change p50 %s, RSS %s", ms(percentile(sb.fromChange, 50)), mb(sb.rss))
	return sb, f.failures()
}

// weirLikeGCPPeer measures weir with the go-control-plane peer's load: the
// same services, the same number of SotW sidecars (in one namespace).
func weirLikeGCPPeer(c config) (*sideBySide, error) {
	s, err := startSession(c, "peer-weir", c.latencyServices)
	if err != nil {
		return nil, err
	}
	defer s.close()
	specs := make([]clientSpec, c.peerClients)
	for i := range specs {
		specs[i] = clientSpec{kind: sidecarSotW, namespace: nsName(0)}
	}
	if err := s.fleet.connect("peer-weir", specs, c.batch, c.connectTimeout); err != nil {
		return nil, err
	}
	if err := s.fleet.quiet(time.Second, time.Minute); err != nil {
		return nil, err
	}
	wr, err := s.weightChanges(c, c.rounds)
	if err != nil {
		return nil, err
	}
	u, err := s.usage()
	if err != nil {
		return nil, err
	}
	sb := &sideBySide{services: c.latencyServices, clients: c.peerClients, fromChange: wr.perProxy, storeP50: wr.storeP50, rss: u.rss}
	log.Printf("peers: weir beside go-control-plane: p50 %s from the file write, %s from the store write, RSS %s",
		ms(percentile(sb.fromChange, 50)), ms(secs(sb.storeP50)), mb(sb.rss))
	return sb, nil
}

func ratio(a, b float64) string {
	if b == 0 {
		return "n/a"
	}
	return fmt.Sprintf("%.2fx", a/b)
}

func (r *report) peerRows() []row {
	pr := r.peers
	if pr == nil {
		return nil
	}
	var rows []row
	for i, eg := range pr.eg {
		if i >= len(pr.weirTr) || eg.Routes != 10000 {
			continue
		}
		w := pr.weirTr[i]
		tr, mr := w.MedianMS/eg.MedianMS, float64(w.HWMBytes)/float64(eg.HWMBytes)
		rows = append(rows, row{"translation beside Envoy Gateway v1.9.1, 10,000 routes/services", "<= 1/3 of its time, <= 1/2 of its memory",
			fmt.Sprintf("weir %.0f ms / %s, Envoy Gateway %.0f ms / %s: %.2fx the time, %.2fx the memory", w.MedianMS, mb(w.HWMBytes), eg.MedianMS, mb(eg.HWMBytes), tr, mr),
			verdict(tr <= 1.0/3 && mr <= 0.5)})
	}
	if pr.gcp != nil && pr.gcpWeir != nil {
		p, w := percentile(pr.gcp.fromChange, 50), secs(pr.gcpWeir.storeP50)
		rows = append(rows, row{fmt.Sprintf("weight change beside a plain go-control-plane server, %s services, %d SotW clients", count(pr.gcp.services), pr.gcp.clients),
			"(none; for scale)",
			fmt.Sprintf("p50 weir %s from the store write (%s from the file write), go-control-plane %s from its API call: %s; RSS %s vs %s: %s",
				ms(w), ms(percentile(pr.gcpWeir.fromChange, 50)), ms(p), ratio(w.Seconds(), p.Seconds()), mb(pr.gcpWeir.rss), mb(pr.gcp.rss), ratio(float64(pr.gcpWeir.rss), float64(pr.gcp.rss))),
			""})
	}
	return rows
}

func (r *report) writePeers(b *strings.Builder) {
	pr := r.peers
	if pr == nil {
		return
	}
	fmt.Fprintf(b, "## Side by side\n\n")
	if len(pr.eg) > 0 {
		fmt.Fprintf(b, "Translation cores driven as libraries, each in a process of its own (`bench/peers/envoygateway` drives Envoy Gateway\n")
		fmt.Fprintf(b, "v1.9.1's `internal/gatewayapi` and `internal/xds/translator`: N weighted HTTPRoutes x 2 backends x 3 endpoints;\n")
		fmt.Fprintf(b, "`weir-bench -translate N`: N services x 2 versions x 3 endpoints with a TrafficSplit, the IR and both roles'\n")
		fmt.Fprintf(b, "resources). Median of 3 translations after one warm-up; memory is the process's peak RSS (VmHWM).\n\n")
		fmt.Fprintf(b, "| N | Envoy Gateway | weir | weir / Envoy Gateway |\n|---|---|---|---|\n")
		for i, eg := range pr.eg {
			if i >= len(pr.weirTr) {
				break
			}
			w := pr.weirTr[i]
			fmt.Fprintf(b, "| %s | %.0f ms, %s | %.0f ms, %s | time %s, memory %s |\n", count(eg.Routes), eg.MedianMS, mb(eg.HWMBytes), w.MedianMS, mb(w.HWMBytes),
				ratio(w.MedianMS, eg.MedianMS), ratio(float64(w.HWMBytes), float64(eg.HWMBytes)))
		}
		fmt.Fprintln(b)
	}
	if pr.egErr != "" {
		fmt.Fprintf(b, "Envoy Gateway peer failed: `%s`\n\n", pr.egErr)
	}
	if pr.gcp != nil && pr.gcpWeir != nil {
		fmt.Fprintf(b, "`bench/peers/gocontrolplane`: a plain go-control-plane v0.14 snapshot server (one snapshot with one version for all\n")
		fmt.Fprintf(b, "types, rebuilt and set for every node on a change), %s services x 2 weighted clusters, %d raw SotW sidecars;\n", count(pr.gcp.services), pr.gcp.clients)
		fmt.Fprintf(b, "weir with the same services and the same clients. Weight change -> each client's ACK of the new routes:\n\n")
		fmt.Fprintf(b, "| | p50 | p99 | RSS |\n|---|---|---|---|\n")
		fmt.Fprintf(b, "| go-control-plane, from the API call | %s | %s | %s |\n", ms(percentile(pr.gcp.fromChange, 50)), ms(percentile(pr.gcp.fromChange, 99)), mb(pr.gcp.rss))
		fmt.Fprintf(b, "| weir, from the file write (includes its debounce) | %s | %s | %s |\n", ms(percentile(pr.gcpWeir.fromChange, 50)), ms(percentile(pr.gcpWeir.fromChange, 99)), mb(pr.gcpWeir.rss))
		fmt.Fprintf(b, "| weir, from the store write (its histogram) | %s | | |\n\n", ms(secs(pr.gcpWeir.storeP50)))
	}
	if pr.gcpErr != "" {
		fmt.Fprintf(b, "go-control-plane peer failed: `%s`\n\n", pr.gcpErr)
	}
}
