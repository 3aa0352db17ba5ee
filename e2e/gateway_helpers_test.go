package e2e

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"hash/fnv"
	"math/big"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"

	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"

	"github.com/weir-mesh/weir/cmd/weir/serve"
	"github.com/weir-mesh/weir/translator/envoy"
	"github.com/weir-mesh/weir/xds"
)

// gateway is a real Envoy in the gateway role. Its listeners bind on a
// loopback address of its own, on the ports the servers ask for; the
// embedded sidecar's outbound address is its port 80, so the sidecar's
// request helpers send plain HTTP through it.
type gateway struct {
	*sidecar
	address string // the loopback IP its listeners bind to
}

// gatewayAddress is a loopback IP derived from the test's name, so that
// gateways of different tests never share a port.
func gatewayAddress(t testing.TB) string {
	h := fnv.New32a()
	h.Write([]byte(t.Name()))
	v := h.Sum32()
	return fmt.Sprintf("127.%d.%d.%d", 1+v%250, (v>>8)%256, 1+(v>>16)%250)
}

// startGateway runs Envoy as a gateway with labels for weir until the test
// ends; it returns once Envoy is LIVE and has ACKed clusters and listeners.
func startGateway(t testing.TB, weir *serve.Server, labels map[string]string) *gateway {
	t.Helper()
	g := launchGateway(t, weir.XDSAddr(), labels)
	g.weir = weir
	ackedVersions(t, weir.XDS(), g.nodeID, nil, resourcev3.ClusterType, resourcev3.ListenerType)
	return g
}

// launchGateway runs Envoy with the bootstrap `weir bootstrap --role
// gateway` gives for labels and the weir at xdsAddr, until the test ends;
// it returns once Envoy is LIVE.
func launchGateway(t testing.TB, xdsAddr string, labels map[string]string) *gateway {
	t.Helper()
	dir := t.TempDir()
	g := &gateway{address: gatewayAddress(t)}
	g.sidecar = &sidecar{
		nodeID:   "gateway-" + strings.NewReplacer("/", "-", " ", "_").Replace(t.Name()),
		outbound: net.JoinHostPort(g.address, "80"),
		logPath:  filepath.Join(dir, "envoy.log"),
		exited:   make(chan struct{}),
		client:   newClient(16),
	}
	bootstrap, err := xds.EnvoyBootstrap(xds.BootstrapOptions{
		NodeID: g.nodeID, Role: envoy.Gateway, XDSAddr: xdsAddr,
		AdminAddress: "127.0.0.1", AdminPort: 0, Labels: labels, GatewayAddress: g.address,
	})
	if err != nil {
		t.Fatal(err)
	}
	config := filepath.Join(dir, "envoy.yaml")
	adminPath := filepath.Join(dir, "admin-address")
	writeFile(t, config, string(bootstrap))
	g.run(t, config, adminPath)
	g.waitLive(t, adminPath)
	return g
}

// httpsClient returns a client that reaches host:443 on the gateway,
// verifying the certificate chain against roots and the name host.
func (g *gateway) httpsClient(roots *x509.CertPool, conns int) *http.Client {
	dialer := &net.Dialer{Timeout: requestTimeout}
	return &http.Client{
		Transport: &http.Transport{
			MaxIdleConnsPerHost: conns,
			DisableCompression:  true,
			TLSClientConfig:     &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12},
			DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
				_, port, err := net.SplitHostPort(addr)
				if err != nil {
					return nil, err
				}
				return dialer.DialContext(ctx, network, net.JoinHostPort(g.address, port))
			},
		},
		Timeout: requestTimeout,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
}

// doHTTPS sends GET https://host/path through c and returns "v1" or "v2"
// for a 200 from that backend, else "HTTP <code>", "bad body" or "error".
func doHTTPS(c *http.Client, host, path string) (string, error) {
	body, err := readAnswer(c.Get("https://" + host + path))
	if err != nil {
		return body, err
	}
	switch body {
	case "Hi, I am v1!":
		return "v1", nil
	case "Hi, I am v2!":
		return "v2", nil
	}
	return "bad body", fmt.Errorf("https://%s%s: body %q", host, path, body)
}

// servedCertificate returns the serial number of the leaf certificate the
// gateway presents for server name host on port 443, verified against
// roots.
func (g *gateway) servedCertificate(roots *x509.CertPool, host string) (*big.Int, error) {
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: requestTimeout}, "tcp", net.JoinHostPort(g.address, "443"),
		&tls.Config{RootCAs: roots, ServerName: host, MinVersion: tls.VersionTLS12})
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	return conn.ConnectionState().PeerCertificates[0].SerialNumber, nil
}

// versionBackends are Services <prefix>-v1 and <prefix>-v2 in namespace,
// port 80, each with one endpoint on a backend answering "Hi, I am vN!".
func versionBackends(t testing.TB, namespace, prefix string) string {
	t.Helper()
	var docs []string
	for _, v := range []string{"v1", "v2"} {
		port := startBackend(t, "Hi, I am "+v+"!")
		name := prefix + "-" + v
		docs = append(docs, fmt.Sprintf(`apiVersion: v1
kind: Service
metadata: {name: %[1]s, namespace: %[2]s}
spec:
  ports:
  - {name: http, port: 80, targetPort: %[3]d}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: %[1]s-abcde
  namespace: %[2]s
  labels: {kubernetes.io/service-name: %[1]s}
addressType: IPv4
ports:
- {name: http, port: %[3]d, protocol: TCP}
endpoints:
- addresses: [127.0.0.1]
  conditions: {ready: true}
`, name, namespace, port))
	}
	return strings.Join(docs, "---\n")
}
