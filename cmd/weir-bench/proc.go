package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// children are the processes this run started, to kill on an interrupt.
var children = &procSet{cmds: map[*exec.Cmd]bool{}}

type procSet struct {
	mu   sync.Mutex
	cmds map[*exec.Cmd]bool
}

func (p *procSet) add(c *exec.Cmd) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cmds[c] = true
}

func (p *procSet) remove(c *exec.Cmd) {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.cmds, c)
}

// killAll kills every child still running.
func (p *procSet) killAll() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for c := range p.cmds {
		_ = c.Process.Kill()
	}
}

// loadAverage returns /proc/loadavg's first three fields.
func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

// adminClient bounds every call to an admin endpoint: a wedged weir fails
// the run instead of hanging it.
var adminClient = &http.Client{Timeout: 3 * time.Minute}

// weirProc is a `weir serve` running as a child process.
type weirProc struct {
	cmd     *exec.Cmd
	xdsAddr string
	admin   string
	logPath string
	exited  chan error

	stopOnce sync.Once
}

var servingLine = regexp.MustCompile(`msg="weir serving".* xds=(\S+) admin=(\S+)`)

// startWeir runs `weir serve --dir dir` on free loopback ports with the
// admin profiles on, logging to logPath, and returns once it printed its
// addresses.
func startWeir(bin, dir, logPath string, extra []string) (*weirProc, error) {
	args := append([]string{"serve", "--dir", dir, "--xds-addr", "127.0.0.1:0", "--admin-addr", "127.0.0.1:0", "--pprof"}, extra...)
	cmd := exec.Command(bin, args...)
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	pr, pw := io.Pipe()
	cmd.Stdout, cmd.Stderr = logf, io.MultiWriter(logf, pw)
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("start %s: %w", bin, err)
	}
	children.add(cmd)
	w := &weirProc{cmd: cmd, logPath: logPath, exited: make(chan error, 1)}
	go func() {
		err := cmd.Wait()
		children.remove(cmd)
		pw.Close()
		logf.Close()
		w.exited <- err
	}()
	found := make(chan [2]string, 1)
	go func() {
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		sent := false
		for sc.Scan() {
			if m := servingLine.FindStringSubmatch(sc.Text()); m != nil && !sent {
				found <- [2]string{m[1], m[2]}
				sent = true
			}
		}
		_, _ = io.Copy(io.Discard, pr) // keep the child writing
	}()
	select {
	case a := <-found:
		w.xdsAddr, w.admin = a[0], a[1]
	case err := <-w.exited:
		return nil, fmt.Errorf("weir exited before serving (%v); see %s", err, logPath)
	case <-time.After(60 * time.Second):
		w.stop()
		return nil, fmt.Errorf("weir did not start in 60 s; see %s", logPath)
	}
	return w, nil
}

func (w *weirProc) pid() int { return w.cmd.Process.Pid }

// stop sends SIGTERM and waits for the process to exit; later calls do
// nothing.
func (w *weirProc) stop() {
	w.stopOnce.Do(func() {
		_ = w.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-w.exited:
		case <-time.After(20 * time.Second):
			_ = w.cmd.Process.Kill()
			<-w.exited
		}
	})
}

// waitReady polls /readyz.
func (w *weirProc) waitReady(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		resp, err := adminClient.Get("http://" + w.admin + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("weir not ready after %v", timeout)
}

// get fetches an admin path.
func (w *weirProc) get(path string) ([]byte, error) {
	resp, err := adminClient.Get("http://" + w.admin + path)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s: %.200s", path, resp.Status, b)
	}
	return b, nil
}

// saveProfile writes /debug/pprof/<name> to path.
func (w *weirProc) saveProfile(ctx context.Context, name, path string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+w.admin+"/debug/pprof/"+name, nil)
	if err != nil {
		return err
	}
	resp, err := adminClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("profile %s: %s", name, resp.Status)
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// metrics is one scrape of /metrics: sample (name with labels, as written)
// -> value.
type metrics map[string]float64

func (w *weirProc) metrics() (metrics, error) {
	b, err := w.get("/metrics")
	if err != nil {
		return nil, err
	}
	out := metrics{}
	for _, line := range strings.Split(string(b), "\n") {
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			continue
		}
		out[line[:i]] = v
	}
	return out, nil
}

// histogram returns the cumulative buckets (le -> count) of a histogram
// whose samples carry exactly the labels given (besides le).
func (m metrics) histogram(name, labels string) map[float64]float64 {
	out := map[float64]float64{}
	prefix := name + "_bucket{"
	for k, v := range m {
		if !strings.HasPrefix(k, prefix) {
			continue
		}
		inner := strings.TrimSuffix(strings.TrimPrefix(k, prefix), "}")
		var le string
		var rest []string
		for _, kv := range splitLabels(inner) {
			if strings.HasPrefix(kv, "le=") {
				le = strings.Trim(kv[3:], `"`)
			} else {
				rest = append(rest, kv)
			}
		}
		if strings.Join(rest, ",") != labels {
			continue
		}
		bound, err := strconv.ParseFloat(le, 64)
		if le == "+Inf" {
			bound, err = inf, nil
		}
		if err == nil {
			out[bound] = v
		}
	}
	return out
}

func splitLabels(s string) []string {
	var out []string
	inQuote := false
	start := 0
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '"':
			inQuote = !inQuote
		case ',':
			if !inQuote {
				out = append(out, s[start:i])
				start = i + 1
			}
		}
	}
	if start < len(s) {
		out = append(out, s[start:])
	}
	return out
}

// procStats are a process's figures from /proc.
type procStats struct {
	rssBytes, hwmBytes int64
	cpu                time.Duration // user + system since start
	threads            int
}

// readProc reads /proc/PID/status and /proc/PID/stat.
func readProc(pid int) (procStats, error) {
	var st procStats
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "status"))
	if err != nil {
		return st, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		n, _ := strconv.ParseInt(f[1], 10, 64)
		switch f[0] {
		case "VmRSS:":
			st.rssBytes = n << 10
		case "VmHWM:":
			st.hwmBytes = n << 10
		case "Threads:":
			st.threads = int(n)
		}
	}
	b, err = os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return st, err
	}
	// Fields after the command (which may hold spaces) in parentheses.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return st, errors.New("unreadable /proc stat")
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 13 {
		return st, errors.New("short /proc stat")
	}
	utime, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	st.cpu = time.Duration(utime+stime) * time.Second / clockTicks
	return st, nil
}

// clockTicks is USER_HZ, 100 on every Linux this runs on.
const clockTicks = 100

// rssSampler records the largest RSS of a process while it runs.
type rssSampler struct {
	mu   sync.Mutex
	peak int64
	stop chan struct{}
	done chan struct{}
}

func sampleRSS(pid int, every time.Duration) *rssSampler {
	s := &rssSampler{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(s.done)
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			if st, err := readProc(pid); err == nil {
				s.mu.Lock()
				s.peak = max(s.peak, st.rssBytes)
				s.mu.Unlock()
			}
			select {
			case <-s.stop:
				return
			case <-t.C:
			}
		}
	}()
	return s
}

func (s *rssSampler) finish() int64 {
	close(s.stop)
	<-s.done
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.peak
}
