package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/weir-mesh/weir/translator/kube/testcert"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/restmapper"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

const (
	// kubeStartTimeout bounds the wait for etcd, then for kube-apiserver,
	// to be ready: generous, since the machine's cores are shared with
	// whatever else runs.
	kubeStartTimeout = 2 * time.Minute
	// kubeOpTimeout bounds one API call.
	kubeOpTimeout = 30 * time.Second
	// kubeWeirUser is who weir runs as: ServiceAccount weir in weir-system,
	// with the rights deploy/rbac.yaml grants.
	kubeWeirUser = "system:serviceaccount:weir-system:weir"
	// kubeFieldManager owns what the harness applies.
	kubeFieldManager = "weir-bench"
)

// kubeCluster is etcd and kube-apiserver, run from binaries on loopback
// with their files in one directory: the API server weir reads on the
// Kubernetes path. Clients authenticate with static tokens: an admin one
// (system:masters) for the harness and one for weir's identity,
// kubeWeirUser, subject to RBAC. No controller runs: the harness writes
// EndpointSlices itself. Its methods are safe for concurrent use except
// stop.
type kubeCluster struct {
	// Admin is the harness's client configuration, with a high rate limit
	// (QPS 500, burst 1000) so that thousands of objects go in seconds.
	Admin   *rest.Config
	Client  kubernetes.Interface
	Dynamic dynamic.Interface

	dir, bin  string
	apiURL    string
	caPEM     []byte
	weirToken string
	procs     []*kubeProc // in start order
}

// kubeBinaries are the programs a kubeCluster runs, from the bin
// directory given to startKubeCluster.
var kubeBinaries = []string{"etcd", "kube-apiserver"}

// startKubeCluster starts etcd and kube-apiserver from the binaries in
// bin, with their files in dir (emptied first: the cluster starts with
// nothing stored), and returns once the API server is ready (/readyz).
// On error nothing it started is left running.
func startKubeCluster(dir, bin string) (*kubeCluster, error) {
	for _, name := range kubeBinaries {
		if _, err := os.Stat(filepath.Join(bin, name)); err != nil {
			return nil, fmt.Errorf("no %s in %s (%w): `make k8sbins` builds it, or set WEIR_K8S_BIN", name, bin, err)
		}
	}
	if err := os.RemoveAll(dir); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	k := &kubeCluster{dir: dir, bin: bin}
	if err := k.start(); err != nil {
		k.stop()
		return nil, err
	}
	return k, nil
}

func (k *kubeCluster) start() error {
	adminToken, err := randomToken()
	if err != nil {
		return err
	}
	if k.weirToken, err = randomToken(); err != nil {
		return err
	}
	if err := k.writeCredentials(adminToken); err != nil {
		return err
	}
	etcdURL, err := k.startEtcd()
	if err != nil {
		return err
	}
	port, err := freePort()
	if err != nil {
		return err
	}
	k.apiURL = "https://" + net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	k.Admin = k.restConfig(adminToken)
	k.Admin.QPS, k.Admin.Burst = 500, 1000
	if err := k.startAPIServer(etcdURL, port); err != nil {
		return err
	}
	if k.Client, err = kubernetes.NewForConfig(k.Admin); err != nil {
		return err
	}
	k.Dynamic, err = dynamic.NewForConfig(k.Admin)
	return err
}

func (k *kubeCluster) restConfig(token string) *rest.Config {
	return &rest.Config{Host: k.apiURL, BearerToken: token, TLSClientConfig: rest.TLSClientConfig{CAData: k.caPEM}}
}

func (k *kubeCluster) path(name string) string { return filepath.Join(k.dir, name) }

// writeCredentials writes the API server's serving certificate (the
// clients' CA too), its service-account key pair and its token file.
func (k *kubeCluster) writeCredentials(adminToken string) error {
	cert, err := testcert.Make("localhost", "127.0.0.1")
	if err != nil {
		return err
	}
	k.caPEM = cert.CertPEM
	saKeyPEM, saPubPEM, err := ecdsaKeyPair()
	if err != nil {
		return err
	}
	tokens := fmt.Sprintf("%s,weir-bench-admin,weir-bench-admin,\"system:masters,system:authenticated\"\n"+
		"%s,%s,weir-uid,\"system:serviceaccounts,system:serviceaccounts:weir-system,system:authenticated\"\n",
		adminToken, k.weirToken, kubeWeirUser)
	for name, content := range map[string][]byte{
		"serving.crt": cert.CertPEM, "serving.key": cert.KeyPEM,
		"sa.key": saKeyPEM, "sa.pub": saPubPEM,
		"tokens.csv": []byte(tokens),
	} {
		if err := os.WriteFile(k.path(name), content, 0o600); err != nil {
			return err
		}
	}
	return nil
}

// startEtcd starts etcd on free loopback ports, waits until it is
// healthy, and returns its client URL.
func (k *kubeCluster) startEtcd() (string, error) {
	clientPort, err := freePort()
	if err != nil {
		return "", err
	}
	peerPort, err := freePort()
	if err != nil {
		return "", err
	}
	client := "http://" + net.JoinHostPort("127.0.0.1", strconv.Itoa(clientPort))
	peer := "http://" + net.JoinHostPort("127.0.0.1", strconv.Itoa(peerPort))
	p, err := startKubeProc(k.bin, "etcd", k.path("etcd.log"),
		"--name=weir-bench", "--data-dir="+k.path("etcd"),
		"--listen-client-urls="+client, "--advertise-client-urls="+client,
		"--listen-peer-urls="+peer, "--initial-advertise-peer-urls="+peer,
		"--initial-cluster=weir-bench="+peer,
		"--unsafe-no-fsync", "--log-level=warn")
	if err != nil {
		return "", err
	}
	k.procs = append(k.procs, p)
	c := &http.Client{Timeout: 5 * time.Second}
	defer c.CloseIdleConnections()
	return client, p.waitUntil(kubeStartTimeout, "etcd to be healthy", func() error { return getOK(c, client+"/health") })
}

// startAPIServer starts kube-apiserver on port and waits for /readyz.
func (k *kubeCluster) startAPIServer(etcdURL string, port int) error {
	p, err := startKubeProc(k.bin, "kube-apiserver", k.path("kube-apiserver.log"),
		"--etcd-servers="+etcdURL,
		"--bind-address=127.0.0.1",
		"--advertise-address=127.0.0.1",
		"--secure-port="+strconv.Itoa(port),
		// The advertised 127.0.0.1 is valid only with no endpoint reconciler.
		"--endpoint-reconciler-type=none",
		"--cert-dir="+k.path("apiserver-certs"),
		"--tls-cert-file="+k.path("serving.crt"),
		"--tls-private-key-file="+k.path("serving.key"),
		"--token-auth-file="+k.path("tokens.csv"),
		"--authorization-mode=RBAC",
		"--service-account-key-file="+k.path("sa.pub"),
		"--service-account-signing-key-file="+k.path("sa.key"),
		"--service-account-issuer=https://kubernetes.default.svc.cluster.local",
		// Holds the generated Services' cluster IPs, 10.96-98.x.y, and
		// starts below them: the API server's own Service takes the first.
		"--service-cluster-ip-range=10.64.0.0/10",
		"--enable-priority-and-fairness=false",
		"--profiling=false",
		"--v=1")
	if err != nil {
		return err
	}
	k.procs = append(k.procs, p)
	rt, err := rest.TransportFor(k.Admin)
	if err != nil {
		return err
	}
	c := &http.Client{Transport: rt, Timeout: 5 * time.Second}
	defer c.CloseIdleConnections()
	return p.waitUntil(kubeStartTimeout, "kube-apiserver to be ready", func() error { return getOK(c, k.apiURL+"/readyz") })
}

// getOK returns nil if GET url answers 200, else what it answered.
func getOK(c *http.Client, url string) error {
	resp, err := c.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 2048)) // for the message only
		return fmt.Errorf("%s: %s", resp.Status, body)
	}
	return nil
}

// stop kills the API server, then etcd; later calls do nothing.
func (k *kubeCluster) stop() {
	for i := len(k.procs) - 1; i >= 0; i-- {
		k.procs[i].stop()
	}
	k.procs = nil
}

// writeWeirKubeconfig writes a kubeconfig for weir's identity to path.
func (k *kubeCluster) writeWeirKubeconfig(path string) error {
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["bench"] = &clientcmdapi.Cluster{Server: k.apiURL, CertificateAuthorityData: k.caPEM}
	cfg.AuthInfos["weir"] = &clientcmdapi.AuthInfo{Token: k.weirToken}
	cfg.Contexts["bench"] = &clientcmdapi.Context{Cluster: "bench", AuthInfo: "weir"}
	cfg.CurrentContext = "bench"
	return clientcmd.WriteToFile(*cfg, path)
}

// version returns the API server's version, as /version gives it.
func (k *kubeCluster) version() (string, error) {
	v, err := k.Client.Discovery().ServerVersion()
	if err != nil {
		return "", err
	}
	return v.GitVersion, nil
}

// applyFiles applies every document of the YAML files, in order, as
// `kubectl apply --server-side --force-conflicts` does, and waits until
// each CustomResourceDefinition among them is Established. The files may
// hold only kinds the API server serves before they are applied.
func (k *kubeCluster) applyFiles(ctx context.Context, paths ...string) (int, error) {
	mapper := restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(k.Client.Discovery()))
	applied := 0
	for _, path := range paths {
		b, err := os.ReadFile(path)
		if err != nil {
			return applied, err
		}
		objs, err := decodeDocuments(b)
		if err != nil {
			return applied, fmt.Errorf("%s: %w", path, err)
		}
		for _, obj := range objs {
			if err := k.apply(ctx, mapper, obj); err != nil {
				return applied, fmt.Errorf("%s: apply %s %s: %w", path, obj.GetKind(), obj.GetName(), err)
			}
			applied++
		}
	}
	return applied, nil
}

func (k *kubeCluster) apply(ctx context.Context, mapper meta.RESTMapper, obj *unstructured.Unstructured) error {
	gvk := obj.GroupVersionKind()
	mapping, err := mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
	if err != nil {
		return err
	}
	var ri dynamic.ResourceInterface = k.Dynamic.Resource(mapping.Resource)
	if mapping.Scope.Name() == meta.RESTScopeNameNamespace {
		ri = k.Dynamic.Resource(mapping.Resource).Namespace(obj.GetNamespace())
	}
	data, err := runtime.Encode(unstructured.UnstructuredJSONScheme, obj)
	if err != nil {
		return err
	}
	opCtx, cancel := context.WithTimeout(ctx, kubeOpTimeout)
	defer cancel()
	force := true
	got, err := ri.Patch(opCtx, obj.GetName(), types.ApplyPatchType, data, metav1.PatchOptions{FieldManager: kubeFieldManager, Force: &force})
	if err != nil {
		return err
	}
	if gvk.Group == "apiextensions.k8s.io" && gvk.Kind == "CustomResourceDefinition" {
		return waitEstablished(ctx, ri, got.GetName())
	}
	return nil
}

// waitEstablished polls CustomResourceDefinition name until its
// Established condition is True: then the API server serves its kind.
func waitEstablished(ctx context.Context, crds dynamic.ResourceInterface, name string) error {
	deadline := time.Now().Add(kubeOpTimeout)
	for {
		opCtx, cancel := context.WithTimeout(ctx, kubeOpTimeout)
		crd, err := crds.Get(opCtx, name, metav1.GetOptions{})
		cancel()
		if err != nil {
			return err
		}
		conds, _, _ := unstructured.NestedSlice(crd.Object, "status", "conditions")
		for _, c := range conds {
			if c, _ := c.(map[string]any); c["type"] == "Established" && c["status"] == "True" {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("CustomResourceDefinition %s not Established after %v: %v", name, kubeOpTimeout, conds)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// decodeDocuments splits multi-document YAML into objects, skipping
// empty documents.
func decodeDocuments(b []byte) ([]*unstructured.Unstructured, error) {
	var out []*unstructured.Unstructured
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(b), 4096)
	for {
		var m map[string]any
		err := dec.Decode(&m)
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, err
		}
		if len(m) > 0 {
			out = append(out, &unstructured.Unstructured{Object: m})
		}
	}
}

// kubeProc is one control-plane process.
type kubeProc struct {
	name, logPath string
	cmd           *exec.Cmd
	exited        chan struct{}
	waitErr       error // set before exited is closed
}

// startKubeProc starts bin/name with args, its output going to logPath.
// It is one of the run's children (killed on an interrupt) and dies with
// the harness (Pdeathsig), so no stray keeps a port or etcd's files.
func startKubeProc(bin, name, logPath string, args ...string) (*kubeProc, error) {
	logFile, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(filepath.Join(bin, name), args...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	children.add(cmd)
	p := &kubeProc{name: name, logPath: logPath, cmd: cmd, exited: make(chan struct{})}
	go func() {
		p.waitErr = cmd.Wait()
		children.remove(cmd)
		logFile.Close()
		close(p.exited)
	}()
	return p, nil
}

// alive returns an error holding the end of the process's log if it
// exited.
func (p *kubeProc) alive() error {
	select {
	case <-p.exited:
		return fmt.Errorf("%s exited (%v); its log %s ends:\n%s", p.name, p.waitErr, p.logPath, logTail(p.logPath, 20))
	default:
		return nil
	}
}

// waitUntil polls probe every 50 ms until it returns nil, and fails at
// once if the process exits, or after timeout with probe's last error.
func (p *kubeProc) waitUntil(timeout time.Duration, what string, probe func() error) error {
	deadline := time.Now().Add(timeout)
	for {
		if err := p.alive(); err != nil {
			return err
		}
		err := probe()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("waited %v for %s: %w; see %s", timeout, what, err, p.logPath)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// stop kills the process and waits until it exited.
func (p *kubeProc) stop() {
	_ = p.cmd.Process.Kill() // fails only if it already exited
	<-p.exited
}

// logTail returns the last n lines of the file at path.
func logTail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

func randomToken() (string, error) {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return hex.EncodeToString(b), nil
}

// ecdsaKeyPair returns a new P-256 key's private and public PEM.
func ecdsaKeyPair() (private, public []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	der, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, nil, err
	}
	pub, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		return nil, nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pub}), nil
}
