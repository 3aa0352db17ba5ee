// Command weir is an Envoy xDS control plane for canary releases.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

const usage = `weir: an Envoy xDS control plane for canary releases

Usage:
  weir serve      --dir DIR [--xds-addr ADDR] [--admin-addr ADDR]
  weir bootstrap  --node-id ID --role sidecar|grpc [--xds-addr ADDR] [--namespace NS]
  weir translate  -f PATH [-o json|yaml] [--proxy-namespace NS]
  weir version

Run "weir COMMAND -h" for a command's flags.
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(0)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "weir:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return errors.New("no command given")
	}
	switch args[0] {
	case "serve":
		return runServe(ctx, args[1:], stderr)
	case "bootstrap":
		return runBootstrap(args[1:], stdout, stderr)
	case "translate":
		return runTranslate(args[1:], stdout, stderr)
	case "version", "--version":
		fmt.Fprintf(stdout, "weir %s (Envoy API v3, for Envoy 1.40)\n", version)
		return nil
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	}
	fmt.Fprint(stderr, usage)
	return fmt.Errorf("unknown command %q", args[0])
}

func newFlagSet(name string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("weir "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	return fs
}
