package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestPrefixWriter(t *testing.T) {
	var buf bytes.Buffer
	w := newPrefixWriter(&buf, "x | ")
	for _, s := range []string{"a\nb", "c\n", "\n", "d\ne\n"} {
		if n, err := w.Write([]byte(s)); n != len(s) || err != nil {
			t.Fatalf("Write(%q) = %d, %v", s, n, err)
		}
	}
	want := "x | a\nx | bc\nx | \nx | d\nx | e\n"
	if got := buf.String(); got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestLogTail(t *testing.T) {
	path := filepath.Join(t.TempDir(), "x.log")
	var lines []string
	for i := range 100 {
		lines = append(lines, strings.Repeat("x", i))
	}
	if err := os.WriteFile(path, []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	got := strings.Split(logTail(path), "\n")
	if len(got) != tailLines+1 || got[len(got)-1] != lines[99] || got[1] != lines[100-tailLines] {
		t.Errorf("logTail: got %d lines %q ... %q", len(got), got[1], got[len(got)-1])
	}
}

func TestGroupChildExits(t *testing.T) {
	g := newGroup(context.Background())
	defer g.stop()
	logPath := filepath.Join(t.TempDir(), "sh.log")
	if err := g.start("sh", logPath, "/bin/sh", "-c", "echo boom; exit 3"); err != nil {
		t.Fatal(err)
	}
	select {
	case <-g.ctx.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("group not cancelled after its child exited")
	}
	var exited *exitError
	if err := context.Cause(g.ctx); !errors.As(err, &exited) || !strings.Contains(err.Error(), "sh | boom") {
		t.Errorf("cause = %v, want an exitError with the log tail", err)
	}
}

func TestGroupStop(t *testing.T) {
	g := newGroup(context.Background())
	dir := t.TempDir()
	for _, name := range []string{"a", "b"} {
		if err := g.start(name, filepath.Join(dir, name+".log"), "sleep", "100"); err != nil {
			t.Fatal(err)
		}
	}
	start := time.Now()
	g.stop()
	if d := time.Since(start); d > stopGrace {
		t.Errorf("stop took %s; SIGTERM should end sleep at once", d)
	}
	if err := context.Cause(g.ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("cause = %v, want context.Canceled", err)
	}
}
