package main

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"time"
)

// report collects every run's results and writes them as Markdown.
type report struct {
	cfg     config
	started time.Time
	took    time.Duration
	// loadBefore and loadAfter are the machine's load averages: other work
	// on it slows every figure.
	loadBefore, loadAfter string
	failed                []string
	latency               *latencyRun
	scoped                *weightRun
	scale                 *scaleRun
	envoy                 *envoyRun
	kube                  *kubeRun
	peers                 *peerResults
}

// goBench is one line of `go test -bench` output.
type goBench struct {
	name           string
	services       int
	nsPerOp        float64
	bytesPerOp     float64
	allocsPerOp    float64
	iterations     int
	seconds, bytes string
}

var benchLine = regexp.MustCompile(`^(Benchmark\S+?)(?:-\d+)?\s+(\d+)\s+([\d.]+) ns/op\s+([\d.]+) B/op\s+([\d.]+) allocs/op`)
var servicesIn = regexp.MustCompile(`services=(\d+)`)

func readGoBench(path string) ([]goBench, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []goBench
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		m := benchLine.FindStringSubmatch(sc.Text())
		if m == nil {
			continue
		}
		b := goBench{name: m[1]}
		b.iterations, _ = strconv.Atoi(m[2])
		b.nsPerOp, _ = strconv.ParseFloat(m[3], 64)
		b.bytesPerOp, _ = strconv.ParseFloat(m[4], 64)
		b.allocsPerOp, _ = strconv.ParseFloat(m[5], 64)
		if s := servicesIn.FindStringSubmatch(b.name); s != nil {
			b.services, _ = strconv.Atoi(s[1])
		}
		out = append(out, b)
	}
	return out, sc.Err()
}

// machine describes where this ran.
func machine() string {
	model := "unknown CPU"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				model = strings.TrimSpace(v)
				break
			}
		}
	}
	mem := "unknown"
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if f := strings.Fields(line); len(f) >= 2 && f[0] == "MemTotal:" {
				kb, _ := strconv.ParseInt(f[1], 10, 64)
				mem = fmt.Sprintf("%.1f GB", float64(kb)/1e6*1.024)
			}
		}
	}
	return fmt.Sprintf("%d cores (%s), %s memory, Linux %s, %s", runtime.NumCPU(), model, mem, kernel(), runtime.Version())
}

func kernel() string {
	out, err := exec.Command("uname", "-r").Output()
	if err != nil {
		return "?"
	}
	return strings.TrimSpace(string(out))
}

type row struct{ figure, target, measured, verdict string }

// changeWords say how a run wrote its changes, for the report's sentences.
type changeWords struct {
	weight, endpoint string
	origin           string // where the clients' latencies count from
}

var fileWrites = changeWords{weight: "each rewrites the namespace's splits file", endpoint: "each rewrites one endpoints file", origin: "the file write"}

func verdict(ok bool) string {
	if ok {
		return "pass"
	}
	return "**miss**"
}

func (r *report) write(path string) error {
	var b strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	w("# weir benchmarks\n\n")
	w("Written by `make bench` (`cmd/weir-bench`); do not edit by hand: the notes on profiles come from\n")
	w("`bench/findings.md`. Measured %s on %s.\n\n", r.started.UTC().Format("2006-01-02 15:04 MST"), machine())
	w("Command: `make bench`, which runs the translator and xds benchmarks and then\n\n    %s\n\n", r.cfg.command)
	w("The whole run took %v; the load average (1, 5, 15 min) was %s before it and %s after. weir ran as a separate process (`weir serve --dir`, default flags, `--pprof`) on\n", r.took.Round(time.Second), r.loadBefore, r.loadAfter)
	w("the file source; its clients, Envoy and the peers ran on the same machine.%s\n\n", r.kubeNote())
	if len(r.failed) > 0 {
		w("**Runs that failed:**\n\n")
		for _, f := range r.failed {
			w("- %s\n", f)
		}
		w("\n")
	}
	var benches []goBench
	if r.cfg.goBench != "" {
		var err error
		if benches, err = readGoBench(r.cfg.goBench); err != nil {
			w("Go benchmark output unreadable: %v\n\n", err)
		}
	}
	w("## Targets\n\n| figure | target | measured | |\n|---|---|---|---|\n")
	for _, row := range r.targetRows(benches) {
		w("| %s | %s | %s | %s |\n", row.figure, row.target, row.measured, row.verdict)
	}
	w("\n")
	r.writePeers(&b)
	r.writeTranslator(&b, benches)
	r.writeLatency(&b)
	r.writeScoped(&b)
	r.writeKube(&b)
	r.writeScale(&b)
	r.writeEnvoy(&b)
	if notes, err := os.ReadFile(r.cfg.findings); err == nil {
		w("%s", notes)
	}
	return os.WriteFile(path, []byte(b.String()), 0o644)
}

func (r *report) targetRows(benches []goBench) []row {
	var rows []row
	for _, gb := range benches {
		if gb.services == 10000 && strings.Contains(gb.name, "Translate/") {
			d := time.Duration(gb.nsPerOp)
			rows = append(rows, row{"full translation, 10,000 services x 2 versions, each with a TrafficSplit", "< 500 ms, allocations reported",
				fmt.Sprintf("%s, %s and %s allocations per translation", ms(d), mb(int64(gb.bytesPerOp)), count(int(gb.allocsPerOp))), verdict(d < 500*time.Millisecond)})
		}
	}
	if lr := r.latency; lr != nil && len(lr.weights.perProxy) > 0 {
		rows = append(rows, weightRow(fmt.Sprintf("one weight change -> all %s connected proxies ACKed (%s services)", count(lr.proxies), count(lr.services)),
			"p99 < 200 ms from the store write to the last ACK", lr.weights))
	}
	if sr := r.scoped; sr != nil && len(sr.weights.perProxy) > 0 {
		rows = append(rows, weightRow(fmt.Sprintf("the same with every sidecar on delta xDS and `--scoped-routes` (%s proxies)", count(sr.proxies)), "(same)", sr.weights))
	}
	if sr := r.scale; sr != nil && len(sr.weights.perProxy) > 0 {
		rows = append(rows, weightRow(fmt.Sprintf("the same at %s services", count(sr.services)), "(same)", sr.weights))
	}
	if lr := r.latency; lr != nil && lr.endpoint.byKind != nil {
		rows = append(rows, endpointRow(lr.services, lr.endpoint))
	}
	if sr := r.scale; sr != nil && sr.endpoint.byKind != nil {
		rows = append(rows, endpointRow(sr.services, sr.endpoint))
	}
	if sr := r.scale; sr != nil && sr.settled.rss > 0 {
		rows = append(rows, row{fmt.Sprintf("RSS with %s services and %s connected proxies (%s)", count(sr.services), count(sr.proxies), sr.mixString(r.cfg)), "< 300 MB",
			fmt.Sprintf("%s settled (peak %s while they connected); live heap %s, of which %s with no proxy", mb(sr.settled.rss), mb(sr.connectPeak), mb(int64(sr.live.all)), mb(int64(sr.liveLoaded))),
			verdict(sr.settled.rss < 300e6)})
		if per := sr.perSidecar(r.cfg); per > 0 {
			need := sr.live.keys + per*float64(r.cfg.proxies-min(r.cfg.proxyNamespaces, sr.mix.sidecars+sr.mix.delta))
			rows = append(rows, row{fmt.Sprintf("the same with %s full sidecars", count(r.cfg.proxies)), "< 300 MB",
				fmt.Sprintf("each full sidecar beyond one per namespace adds %s of live heap at %s services: %s sidecars need about %s of live heap (RSS about twice that)",
					mb(int64(per)), count(sr.services), count(r.cfg.proxies), mb(int64(need))),
				verdict(need < 150e6)})
		}
	}
	for _, d := range []*downResult{scaleDownOf(r), latencyDownOf(r)} {
		if d != nil {
			rows = append(rows, downRow(d))
		}
	}
	for _, br := range []struct {
		services int
		b        burstResult
	}{{latencyServices(r), latencyBurst(r)}, {scaleServices(r), scaleBurst(r)}} {
		if br.b.updates == 0 {
			continue
		}
		rows = append(rows, burstRow(fmt.Sprintf("%s EndpointSlice updates in one second (%s services)", count(br.b.updates), count(br.services)), br.b))
	}
	rows = append(rows, r.kubeRows()...)
	rows = append(rows, r.peerRows()...)
	return rows
}

func burstRow(figure string, br burstResult) row {
	return row{figure, "<= 10 translations, no proxy receives more than 10 pushes",
		fmt.Sprintf("%.0f translations, at most %d responses to one proxy", br.translations, br.maxPushes),
		verdict(br.translations <= 10 && br.maxPushes <= 10)}
}

// kubeNote says where weir ran on the Kubernetes path, if it ran.
func (r *report) kubeNote() string {
	if r.kube == nil {
		return ""
	}
	return " On the Kubernetes path\n(its own section) weir ran with `--kubeconfig` on a kube-apiserver started by the harness."
}

// mixString says what the scale run's proxies were.
func (sr *scaleRun) mixString(c config) string {
	return fmt.Sprintf("%d full SotW sidecars, %d delta sidecars, %d raw proxyless gRPC clients, %d grpc-go", sr.mix.sidecars, sr.mix.delta, sr.mix.grpc, c.grpcGo)
}

// perSidecar is the live heap each full sidecar (SotW or delta) added
// once every sidecar key existed.
func (sr *scaleRun) perSidecar(c config) float64 {
	n := sr.mix.sidecars + sr.mix.delta - min(c.proxyNamespaces, sr.mix.sidecars+sr.mix.delta)
	if n <= 0 || sr.live.all <= sr.live.keys {
		return 0
	}
	return (sr.live.all - sr.live.keys) / float64(n)
}

func latencyServices(r *report) int {
	if r.latency == nil {
		return 0
	}
	return r.latency.services
}

func latencyBurst(r *report) burstResult {
	if r.latency == nil {
		return burstResult{}
	}
	return r.latency.burst
}

func scaleServices(r *report) int {
	if r.scale == nil {
		return 0
	}
	return r.scale.services
}

func scaleBurst(r *report) burstResult {
	if r.scale == nil {
		return burstResult{}
	}
	return r.scale.burst
}

// weightRow judges by weir's own histogram (store write -> the ACK as weir
// processed it), and shows the clients' view from the file write too.
func weightRow(figure, target string, wr weightResult) row {
	p99 := secs(wr.storeP99)
	return row{figure, target,
		fmt.Sprintf("p99 %s from the store write (weir's histogram); from the file write to the clients' ACKs p99 %s, last ACK of a change at most %s%s",
			ms(p99), ms(percentile(wr.perProxy, 99)), ms(percentile(wr.lastAck, 100)), missingNote(wr.missing)),
		verdict(wr.storeCount > 0 && p99 < 200*time.Millisecond && wr.missing == 0)}
}

func scaleDownOf(r *report) *downResult {
	if r.scale == nil {
		return nil
	}
	return r.scale.down
}

func latencyDownOf(r *report) *downResult {
	if r.latency == nil {
		return nil
	}
	return r.latency.down
}

func downRow(d *downResult) row {
	figure := fmt.Sprintf("after scaling %s -> %s services", count(d.from), count(d.to))
	const target = "RSS within 20% of a fresh start"
	if !d.finished {
		return row{figure, target, fmt.Sprintf("not measured: weir had not taken the removal in after %s (file source; see the profile notes)", ms(d.took)), "**miss**"}
	}
	if len(d.samples) == 0 || d.fresh.rss == 0 {
		return row{figure, target, "not measured", "**miss**"}
	}
	last := d.samples[len(d.samples)-1]
	return row{figure, target,
		fmt.Sprintf("%s (median, %v to %v after the removal, which translated after %s), fresh start %s with the same %s proxies: %s; live heap %s vs %s",
			mb(last.rss), (last.after - 20*time.Second).Round(time.Second), last.after.Round(time.Second), ms(d.took), mb(d.fresh.rss), count(d.freshProxies), pct(last.rss, d.fresh.rss), mb(int64(d.live)), mb(int64(d.freshLive))),
		verdict(float64(last.rss) <= 1.2*float64(d.fresh.rss))}
}

func missingNote(n int) string {
	if n == 0 {
		return ""
	}
	return fmt.Sprintf("; %d proxies never got it", n)
}

func endpointRow(services int, er endpointResult) row {
	others := er.others.receivers
	sc := er.byKind[sidecarSotW]
	dl := er.byKind[sidecarDelta]
	measured := fmt.Sprintf("sidecars, which all hold every cluster: %d/%d SotW received %s each, %d/%d delta %s each; gRPC clients of the service %d/%d (%s each), of other services %d/%d",
		sc.receivers, sc.clients, bytesStr(medianInt(sc.bytes)), dl.receivers, dl.clients, bytesStr(medianInt(dl.bytes)),
		er.users.receivers, er.users.clients, bytesStr(medianInt(er.users.bytes)), others, er.others.clients)
	return row{fmt.Sprintf("one endpoint change (%s services)", count(services)), "only the proxies that use that cluster receive anything", measured,
		verdict(others == 0)}
}

func (r *report) writeTranslator(b *strings.Builder, benches []goBench) {
	if len(benches) == 0 {
		return
	}
	fmt.Fprintf(b, "## Translator and xds (Go benchmarks)\n\n`go test -run '^$' -bench . -benchmem -benchtime 3x ./translator/...`: N services, each a root and two versions\n")
	fmt.Fprintf(b, "with three endpoints, and a 90/10 TrafficSplit. `go test -run '^$' -bench . -benchmem -benchtime 50x ./xds/`: `BenchmarkWeightChange`\n")
	fmt.Fprintf(b, "is one update of the xDS server after one TrafficSplit's weights changed, at 1,000 services, for sidecar keys of ten namespaces\n")
	fmt.Fprintf(b, "and the gRPC key (rebuilding, validating, encoding and comparing every key's resources; no proxy connected).\n\n")
	fmt.Fprintf(b, "| benchmark | time | allocated | allocations |\n|---|---|---|---|\n")
	for _, gb := range benches {
		fmt.Fprintf(b, "| %s | %s | %s | %s |\n", gb.name, ms(time.Duration(gb.nsPerOp)), mb(int64(gb.bytesPerOp)), count(int(gb.allocsPerOp)))
	}
	fmt.Fprintln(b)
}

func (r *report) writeLatency(b *strings.Builder) {
	lr := r.latency
	if lr == nil {
		return
	}
	fmt.Fprintf(b, "## Weight changes at %s services\n\n", count(lr.services))
	fmt.Fprintf(b, "%s proxies: %s raw sidecars on SotW ADS (spread over %d namespaces), %d on delta ADS, %d raw proxyless\n",
		count(lr.proxies), count(r.cfg.proxies), r.sidecarNamespaces(lr.services), r.cfg.deltaProxies, r.cfg.grpcRaw)
	fmt.Fprintf(b, "gRPC clients (each of one of 10 services) and %d real grpc-go xDS clients. %s\n\n", r.cfg.grpcGo, lr.connected())
	writeWeights(b, lr.weights, fileWrites)
	writeEndpoint(b, lr.endpoint)
	writeBurst(b, lr.burst, fileWrites)
	if lr.down != nil && len(lr.down.samples) > 0 {
		fmt.Fprintf(b, "| | RSS | goroutines | CPU since start |\n|---|---|---|---|\n")
		fmt.Fprintf(b, "| settled at %s services | %s | %.0f | %s |\n", count(lr.services), mb(lr.settled.rss), lr.settled.goroutines, ms(lr.settled.cpu))
		writeDownRows(b, lr.down)
		fmt.Fprintln(b)
	}
	r.writeProfile(b, "CPU during the weight changes", lr.cpuProfile, "-top -cum -nodecount=30")
	if lr.down != nil {
		r.writeProfile(b, "CPU in the first 20 s of the scale-down", lr.down.cpuProfile, "-top -cum -nodecount=30")
	}
}

// sidecarNamespaces is how many namespaces a run of services spreads its
// sidecars over.
func (r *report) sidecarNamespaces(services int) int {
	return min(r.cfg.proxyNamespaces, (services+r.cfg.perNamespace-1)/r.cfg.perNamespace)
}

// connected says how long the fleet took to connect and what weir used
// once it settled.
func (wr *weightRun) connected() string {
	return fmt.Sprintf("They connected in %s. Settled: RSS %s, %.0f goroutines, CPU %s since start.",
		ms(wr.connect), mb(wr.settled.rss), wr.settled.goroutines, ms(wr.settled.cpu))
}

func (r *report) writeScoped(b *strings.Builder) {
	sr := r.scoped
	if sr == nil {
		return
	}
	fmt.Fprintf(b, "## Weight changes at %s services, delta xDS and scoped routes\n\n", count(sr.services))
	fmt.Fprintf(b, "weir with `--scoped-routes`; %s proxies: %s raw sidecars on delta ADS (spread over %d namespaces), %d raw proxyless gRPC clients and %d real grpc-go xDS clients. %s\n\n",
		count(sr.proxies), count(r.cfg.proxies), r.sidecarNamespaces(sr.services), r.cfg.grpcRaw, r.cfg.grpcGo, sr.connected())
	writeWeights(b, sr.weights, fileWrites)
	r.writeProfile(b, "CPU during the weight changes (delta, scoped routes)", sr.cpuProfile, "-top -cum -nodecount=30")
}

// writeProfile includes the top of a profile of weir.
func (r *report) writeProfile(b *strings.Builder, name, path, args string) {
	if path == "" {
		return
	}
	out, err := exec.Command("go", append([]string{"tool", "pprof"}, append(strings.Fields(args), r.cfg.weirBin, path)...)...).Output()
	if err != nil {
		return
	}
	fmt.Fprintf(b, "<details><summary>Profile: %s (<code>go tool pprof %s</code>)</summary>\n\n```\n%s```\n\n</details>\n\n", name, args, trimProfile(string(out)))
}

func writeDownRows(b *strings.Builder, d *downResult) {
	if d == nil {
		return
	}
	for _, s := range d.samples {
		when := fmt.Sprintf("%v after scaling down", s.after.Round(time.Second))
		if s.window {
			when = fmt.Sprintf("%v to %v after scaling down (median)", (s.after - 20*time.Second).Round(time.Second), s.after.Round(time.Second))
		}
		fmt.Fprintf(b, "| %s to %s services | %s (heap in use %s) | | |\n", when, count(d.to), mb(s.rss), mb(int64(s.heap)))
	}
	if d.fresh.rss > 0 {
		fmt.Fprintf(b, "| fresh start at %s services, %s proxies, 30 s to 50 s after its start (median) | %s (heap in use %s) | %.0f | |\n", count(d.to), count(d.freshProxies), mb(d.fresh.rss), mb(int64(d.fresh.heapInuse)), d.fresh.goroutines)
	}
}

func writeWeights(b *strings.Builder, wr weightResult, how changeWords) {
	fmt.Fprintf(b, "%d weight changes of one TrafficSplit (%s). Time from %s to each proxy's ACK of the new routes:\n\n", len(wr.lastAck), how.weight, how.origin)
	fmt.Fprintf(b, "| proxies | n | p50 | p90 | p99 | max |\n|---|---|---|---|---|---|\n")
	line := func(name string, ds []time.Duration) {
		if len(ds) == 0 {
			return
		}
		fmt.Fprintf(b, "| %s | %d | %s | %s | %s | %s |\n", name, len(ds), ms(percentile(ds, 50)), ms(percentile(ds, 90)), ms(percentile(ds, 99)), ms(percentile(ds, 100)))
	}
	line("sidecars (raw, SotW and delta)", wr.perProxy)
	line("raw gRPC clients of the service", wr.grpcRaw)
	line("grpc-go channels of the service (resolver state applied)", wr.grpcGo)
	fmt.Fprintf(b, "\nweir's own histogram (`weir_xds_push_latency_seconds`, role sidecar, store write -> ACK): %.0f observations, mean %s, p50 ~%s, p99 ~%s (bucket interpolation).\n",
		wr.storeCount, ms(secs(wr.storeMean)), ms(secs(wr.storeP50)), ms(secs(wr.storeP99)))
	fmt.Fprintf(b, "RDS bytes per sidecar per change: median %s.\n\n", bytesStr(medianInt(wr.rdsBytes)))
}

func secs(s float64) time.Duration { return time.Duration(s * float64(time.Second)) }

func writeEndpoint(b *strings.Builder, er endpointResult) {
	fmt.Fprintf(b, "One endpoint added to `%s`; what each kind of proxy received until quiet:\n\n", er.cluster)
	fmt.Fprintf(b, "| proxies | received anything | messages each (median) | bytes each (median / max) | messages by type |\n|---|---|---|---|---|\n")
	line := func(name string, t traffic) {
		fmt.Fprintf(b, "| %s | %d of %d | %d | %s / %s | %v |\n", name, t.receivers, t.clients, medianInt(t.messages), bytesStr(medianInt(t.bytes)), bytesStr(maxInt(t.bytes)), t.byType)
	}
	line("sidecars, SotW", er.byKind[sidecarSotW])
	line("sidecars, delta", er.byKind[sidecarDelta])
	line("gRPC clients of the service", er.users)
	line("gRPC clients of other services", er.others)
	fmt.Fprintln(b)
}

func writeBurst(b *strings.Builder, br burstResult, how changeWords) {
	fmt.Fprintf(b, "%s EndpointSlice updates written over %s (%s): %.0f translations; responses to one proxy at most %d (sidecar SotW %d, delta %d, gRPC %d).\n\n",
		count(br.updates), ms(br.writing), how.endpoint, br.translations, br.maxPushes, br.maxByKind[sidecarSotW], br.maxByKind[sidecarDelta], br.maxByKind[grpcSotW])
}

func (r *report) writeScale(b *strings.Builder) {
	sr := r.scale
	if sr == nil {
		return
	}
	fmt.Fprintf(b, "## %s services, %s proxies\n\n", count(sr.services), count(sr.proxies))
	fmt.Fprintf(b, "Proxies: %s, the sidecars spread over %d namespaces, the proxyless clients each of one of 10 services.\n", sr.mixString(r.cfg), r.cfg.proxyNamespaces)
	fmt.Fprintf(b, "Live heap after two collections: %s loaded, %s with the proxyless clients, %s with one sidecar per namespace (every sidecar key built), %s with every proxy (%s per further full sidecar).\n\n",
		mb(int64(sr.liveLoaded)), mb(int64(sr.live.proxyless)), mb(int64(sr.live.keys)), mb(int64(sr.live.all)), mb(int64(sr.perSidecar(r.cfg))))
	fmt.Fprintf(b, "| | RSS | goroutines | CPU since start |\n|---|---|---|---|\n")
	fmt.Fprintf(b, "| loaded (%s to ready), no proxy | %s | %.0f | %s |\n", ms(sr.load), mb(sr.loaded.rss), sr.loaded.goroutines, ms(sr.loaded.cpu))
	fmt.Fprintf(b, "| peak while %s proxies connected (in %s) | %s | | |\n", count(sr.proxies), ms(sr.connect), mb(sr.connectPeak))
	fmt.Fprintf(b, "| settled | %s | %.0f | %s |\n", mb(sr.settled.rss), sr.settled.goroutines, ms(sr.settled.cpu))
	writeDownRows(b, sr.down)
	fmt.Fprintln(b)
	if len(sr.weights.lastAck) > 0 {
		writeWeights(b, sr.weights, fileWrites)
	}
	if sr.endpoint.byKind != nil {
		writeEndpoint(b, sr.endpoint)
	}
	if sr.burst.updates > 0 {
		writeBurst(b, sr.burst, fileWrites)
	}
	r.writeProfile(b, "CPU during the weight changes", sr.cpuProfile, "-top -cum -nodecount=30")
	r.writeProfile(b, "heap in use, settled", sr.heapProfile, "-top -nodecount=25 -sample_index=inuse_space")
	if sr.down != nil {
		r.writeProfile(b, "CPU in the first 20 s of the scale-down", sr.down.cpuProfile, "-top -cum -nodecount=30")
	}
}

// trimProfile drops pprof's header lines that name local files.
func trimProfile(s string) string {
	var out []string
	for _, line := range strings.Split(s, "\n") {
		if strings.HasPrefix(line, "File:") || strings.HasPrefix(line, "Build ID:") {
			continue
		}
		out = append(out, line)
	}
	return strings.Join(out, "\n")
}
