package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"
)

// stopGrace is how long a child has between SIGTERM and SIGKILL.
const stopGrace = 5 * time.Second

// group runs child processes that live and die together. When one exits on
// its own, the group's context is cancelled with an *exitError as its cause,
// which stops the others. A group is not safe for concurrent use.
type group struct {
	ctx      context.Context
	cancel   context.CancelCauseFunc
	children []*child
}

// child is one process of a group, its output going to logPath.
type child struct {
	name    string
	logPath string
	ctx     context.Context // cancelled when the child is to stop
	cancel  context.CancelFunc
	done    chan struct{} // closed once the process has been waited for
}

// exitError says that a child exited while nobody asked it to.
type exitError struct {
	name    string
	logPath string
	err     error // from exec.Cmd.Wait; nil for exit status 0
}

func (e *exitError) Error() string {
	status := "exit status 0"
	if e.err != nil {
		status = e.err.Error()
	}
	return fmt.Sprintf("%s exited unexpectedly (%s)\n%s", e.name, status, logTail(e.logPath))
}

func (e *exitError) Unwrap() error { return e.err }

func newGroup(parent context.Context) *group {
	ctx, cancel := context.WithCancelCause(parent)
	return &group{ctx: ctx, cancel: cancel}
}

// start starts name (binary path with args) in its own process group, with
// stdout and stderr prefixed by name and written to logPath.
func (g *group) start(name, logPath, path string, args ...string) error {
	logFile, err := os.Create(logPath)
	if err != nil {
		return fmt.Errorf("start %s: %w", name, err)
	}
	ctx, cancel := context.WithCancel(g.ctx)
	cmd := exec.CommandContext(ctx, path, args...)
	out := newPrefixWriter(logFile, name+" | ")
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return signalGroup(cmd.Process.Pid, syscall.SIGTERM) }
	cmd.WaitDelay = stopGrace // then exec sends SIGKILL
	if err := cmd.Start(); err != nil {
		_ = logFile.Close() // the start error says more
		cancel()
		return fmt.Errorf("start %s: %w", name, err)
	}
	c := &child{name: name, logPath: logPath, ctx: ctx, cancel: cancel, done: make(chan struct{})}
	g.children = append(g.children, c)
	go g.watch(c, cmd, logFile)
	return nil
}

// watch waits for c and cancels the group if c exited on its own.
func (g *group) watch(c *child, cmd *exec.Cmd, logFile *os.File) {
	defer close(c.done)
	err := cmd.Wait()
	_ = signalGroup(cmd.Process.Pid, syscall.SIGKILL) // leftovers of the child's group, if any
	_ = logFile.Close()                               // written by cmd only, and cmd is done
	if c.ctx.Err() == nil {
		g.cancel(&exitError{name: c.name, logPath: c.logPath, err: err})
	}
}

// stop stops the children one by one, the last started first (SIGTERM, then
// SIGKILL after stopGrace), and waits for them.
func (g *group) stop() {
	for _, c := range slices.Backward(g.children) {
		c.cancel()
		<-c.done
	}
	g.cancel(nil)
}

// signalGroup sends sig to the process group led by pid; a group already
// gone is not an error.
func signalGroup(pid int, sig syscall.Signal) error {
	err := syscall.Kill(-pid, sig)
	if errors.Is(err, syscall.ESRCH) {
		return os.ErrProcessDone
	}
	return err
}

// prefixWriter writes every line with a prefix. It is safe for concurrent use.
type prefixWriter struct {
	mu        sync.Mutex
	w         io.Writer
	prefix    []byte
	lineStart bool
}

func newPrefixWriter(w io.Writer, prefix string) *prefixWriter {
	return &prefixWriter{w: w, prefix: []byte(prefix), lineStart: true}
}

func (p *prefixWriter) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	var buf bytes.Buffer
	for _, line := range bytes.SplitAfter(b, []byte("\n")) {
		if len(line) == 0 {
			continue
		}
		if p.lineStart {
			buf.Write(p.prefix)
		}
		buf.Write(line)
		p.lineStart = line[len(line)-1] == '\n'
	}
	if _, err := p.w.Write(buf.Bytes()); err != nil {
		return 0, err
	}
	return len(b), nil
}

// tailLines is how many lines of a log logTail shows.
const tailLines = 20

// logTail returns the last lines of the log at path, under a heading, for
// an error message.
func logTail(path string) string {
	data, err := readEnd(path, 16<<10)
	if err != nil {
		return fmt.Sprintf("(cannot read %s: %v)", path, err)
	}
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(lines) > tailLines {
		lines = lines[len(lines)-tailLines:]
	}
	return fmt.Sprintf("--- last lines of %s ---\n%s", path, strings.Join(lines, "\n"))
}

// readEnd returns at most the last n bytes of the file at path.
func readEnd(path string, n int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return nil, err
	}
	off := max(info.Size()-n, 0)
	return io.ReadAll(io.NewSectionReader(f, off, info.Size()-off))
}
