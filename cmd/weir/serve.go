package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"time"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/klog/v2"

	"github.com/weir-mesh/weir/cmd/weir/serve"
	"github.com/weir-mesh/weir/translator/envoy"
	"github.com/weir-mesh/weir/translator/gatewayapi"
	"github.com/weir-mesh/weir/translator/ingressnginx"
)

// defaultDir is served when no source is given.
const defaultDir = "examples/canary"

// defaultPushBudgetMiB is --push-budget's default.
const defaultPushBudgetMiB = 256

func runServe(ctx context.Context, args []string, stderr io.Writer) error {
	fs := newFlagSet("serve", stderr)
	var cfg serve.Config
	var outboundPort uint
	var otlpEndpoint string
	var otlpInsecure bool
	var logLevel, kubeconfig string
	var namespaces, versionLabels stringList
	fs.StringVar(&cfg.Dir, "dir", "", "directory of Kubernetes manifests to serve (watched for edits); default "+defaultDir+" when no cluster is configured")
	fs.StringVar(&kubeconfig, "kubeconfig", "", "kubeconfig of the cluster to read; without it and --dir, $KUBECONFIG, else the Pod's service account when in a cluster")
	fs.Var(&namespaces, "namespace", "namespace to read from the cluster (repeatable); default all")
	fs.Var(&versionLabels, "version-label", "Pod label naming an endpoint's version (repeatable, first set wins); default version")
	fs.StringVar(&cfg.IngressClass, "ingress-class", ingressnginx.DefaultClass, "ingressClassName (or kubernetes.io/ingress.class annotation) of the Ingresses served by gateways")
	fs.StringVar(&cfg.GatewayController, "gateway-controller", gatewayapi.DefaultControllerName, "controllerName of the Gateway API GatewayClasses whose Gateways weir serves")
	fs.StringVar(&cfg.IngressAddress, "ingress-address", "", "address (IP or host name) of the gateways, written to the status.loadBalancer of served Ingresses; default none")
	fs.StringVar(&cfg.XDSAddr, "xds-addr", "127.0.0.1:18000", "ADS gRPC listen address")
	fs.StringVar(&cfg.AdminAddr, "admin-addr", "127.0.0.1:19000", "admin HTTP listen address (/metrics, /readyz, /debug/proxies, /debug/status, /debug/services)")
	fs.BoolVar(&cfg.Pprof, "pprof", false, "also serve Go's profiles under /debug/pprof/ on the admin address")
	fs.StringVar(&cfg.OutboundAddress, "outbound-address", "127.0.0.1", "sidecar outbound listener address, unless the node's metadata sets weir.outbound_address")
	fs.UintVar(&outboundPort, "outbound-port", envoy.DefaultOutboundPort, "sidecar outbound listener port, unless the node's metadata sets weir.outbound_port")
	fs.BoolVar(&cfg.ScopedRoutes, "scoped-routes", false, "sidecars pick a route configuration per service port by Host, over SRDS, unless the node's metadata sets weir.scoped_routes: a weight change sends one small route configuration instead of the namespace's whole table, at the price of a scope per host name on every sidecar stream")
	var pushBudgetMiB int64
	fs.Int64Var(&pushBudgetMiB, "push-budget", defaultPushBudgetMiB, "MiB of large responses (256 KiB or more, such as a sidecar's first configuration) sent to proxies and not yet answered, across streams: a stream waits for room before it sends one, unless it has one in flight; 0 means no bound")
	fs.DurationVar(&cfg.ClusterGrace, "cluster-grace", 5*time.Second, "how long a cluster no route uses is still served")
	fs.DurationVar(&cfg.Debounce, "debounce", 100*time.Millisecond, "a change after this much quiet translates at once; changes closer together wait for this much quiet")
	fs.DurationVar(&cfg.DebounceMax, "debounce-max", time.Second, "longest wait before translating under a stream of changes")
	fs.StringVar(&otlpEndpoint, "otlp-endpoint", "", "OTLP/gRPC collector (host:port) to send a trace span per translation and per push to; default none")
	fs.BoolVar(&otlpInsecure, "otlp-insecure", false, "talk to the --otlp-endpoint in plaintext instead of TLS")
	fs.StringVar(&logLevel, "log-level", "info", "debug, info, warn or error")
	le := &cfg.LeaderElection
	fs.StringVar(&le.Namespace, "lease-namespace", envOr("POD_NAMESPACE", "weir-system"), "namespace of the Lease replicas compete for (only the leader writes status)")
	fs.StringVar(&le.Name, "lease-name", "weir", "name of that Lease")
	fs.StringVar(&le.Identity, "lease-identity", os.Getenv("POD_NAME"), "this replica's name in the Lease; default hostname plus a random suffix")
	fs.DurationVar(&le.LeaseDuration, "lease-duration", 15*time.Second, "how long other replicas wait after the leader's last renewal (whole seconds)")
	fs.DurationVar(&le.RenewDeadline, "lease-renew-deadline", 10*time.Second, "how long the leader tries to renew before giving up")
	fs.DurationVar(&le.RetryPeriod, "lease-retry-period", 2*time.Second, "time between leader election tries")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if outboundPort == 0 || outboundPort > 65535 {
		return fmt.Errorf("--outbound-port: %d is not a port number", outboundPort)
	}
	cfg.OutboundPort = uint32(outboundPort)
	switch {
	case pushBudgetMiB < 0:
		return fmt.Errorf("--push-budget: %d MiB is negative", pushBudgetMiB)
	case pushBudgetMiB == 0:
		cfg.PushBudget = -1
	default:
		cfg.PushBudget = pushBudgetMiB << 20
	}
	cfg.Namespaces, cfg.VersionLabels = namespaces, versionLabels
	var level slog.Level
	if err := level.UnmarshalText([]byte(logLevel)); err != nil {
		return fmt.Errorf("--log-level: %w", err)
	}
	cfg.Logger = slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	if otlpEndpoint != "" {
		tp, err := newTracerProvider(ctx, otlpEndpoint, otlpInsecure, cfg.Logger)
		if err != nil {
			return err
		}
		defer func() {
			flush, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if err := tp.Shutdown(flush); err != nil {
				cfg.Logger.Warn("some trace spans were not sent", "endpoint", otlpEndpoint, "err", err)
			}
		}()
		cfg.TracerProvider = tp
	}
	if err := chooseSource(&cfg, kubeconfig); err != nil {
		return err
	}
	if cfg.Kube != nil {
		klog.SetSlogLogger(cfg.Logger) // client-go's own log lines
	}
	s, err := serve.New(cfg)
	if err != nil {
		return err
	}
	cfg.Logger.Info("weir serving", "version", version, "source", sourceName(cfg), "xds", s.XDSAddr(), "admin", s.AdminAddr())
	return s.Run(ctx)
}

// chooseSource sets cfg.Dir or cfg.Kube: --dir if given, else the cluster
// of --kubeconfig, $KUBECONFIG or the Pod's service account, else the
// default directory.
func chooseSource(cfg *serve.Config, kubeconfig string) error {
	if cfg.Dir != "" && kubeconfig != "" {
		return errors.New("serve: --dir and --kubeconfig: give one source")
	}
	if cfg.Dir != "" {
		return nil
	}
	kube, err := kubeConfig(kubeconfig)
	if err != nil {
		return err
	}
	if kube == nil {
		cfg.Dir = defaultDir
		return nil
	}
	kube.UserAgent = "weir/" + version
	cfg.Kube = kube
	return nil
}

// kubeConfig returns the client configuration from the kubeconfig at path,
// else from $KUBECONFIG, else the Pod's service account; nil if none
// applies (not in a Pod).
func kubeConfig(path string) (*rest.Config, error) {
	if path != "" {
		cfg, err := clientcmd.BuildConfigFromFlags("", path)
		if err != nil {
			return nil, fmt.Errorf("--kubeconfig: %w", err)
		}
		return cfg, nil
	}
	if os.Getenv(clientcmd.RecommendedConfigPathEnvVar) != "" {
		rules := clientcmd.NewDefaultClientConfigLoadingRules()
		cfg, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{}).ClientConfig()
		if err != nil {
			return nil, fmt.Errorf("$%s: %w", clientcmd.RecommendedConfigPathEnvVar, err)
		}
		return cfg, nil
	}
	cfg, err := rest.InClusterConfig()
	if errors.Is(err, rest.ErrNotInCluster) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("in-cluster configuration: %w", err)
	}
	return cfg, nil
}

func sourceName(cfg serve.Config) string {
	if cfg.Dir != "" {
		return "dir " + cfg.Dir
	}
	if len(cfg.Namespaces) > 0 {
		return "cluster " + cfg.Kube.Host + ", namespaces " + strings.Join(cfg.Namespaces, ",")
	}
	return "cluster " + cfg.Kube.Host
}

// stringList is a repeatable string flag.
type stringList []string

func (l *stringList) String() string { return strings.Join(*l, ",") }

func (l *stringList) Set(v string) error {
	if v == "" {
		return errors.New("empty value")
	}
	*l = append(*l, v)
	return nil
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}
