package main

import (
	"context"
	"errors"
	"net"
	"strings"
	"testing"
)

func TestWaitFor(t *testing.T) {
	tries := 0
	err := waitFor(context.Background(), "x", func(context.Context) error {
		if tries++; tries < 3 {
			return errors.New("not yet")
		}
		return nil
	})
	if err != nil || tries != 3 {
		t.Errorf("waitFor = %v after %d tries, want nil after 3", err, tries)
	}
}

func TestWaitForReturnsCause(t *testing.T) {
	ctx, cancel := context.WithCancelCause(context.Background())
	cause := errors.New("weir exited")
	err := waitFor(ctx, "x", func(context.Context) error {
		cancel(cause)
		return errors.New("not yet")
	})
	if err != cause {
		t.Errorf("waitFor = %v, want the context's cause", err)
	}
}

func TestCheckPortsFree(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	if err := checkPortsFree(ln.Addr().String()); err == nil || !strings.Contains(err.Error(), "taken") {
		t.Errorf("checkPortsFree(a port in use) = %v, want an error saying it is taken", err)
	}
}
