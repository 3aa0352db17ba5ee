//go:build linux

package e2e

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
	"maps"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/restmapper"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	watchtools "k8s.io/client-go/tools/watch"
	"k8s.io/client-go/util/retry"

	"github.com/weir-mesh/weir/translator/kube/testcert"
)

// The harness's fixed names.
const (
	// kubeNodeName is the Node startKube creates; CreatePod schedules on it.
	kubeNodeName = "e2e-node"
	// kubeWeirUser is the identity weir runs as: ServiceAccount weir in
	// weir-system, bound by deploy/rbac.yaml.
	kubeWeirUser = "system:serviceaccount:weir-system:weir"
	// kubeFieldManager owns what Apply writes (server-side apply).
	kubeFieldManager = "e2e"
	// kubeStartTimeout bounds each process's start; generous because the
	// two cores of a CI machine are shared with the tests' other processes.
	kubeStartTimeout = 60 * time.Second
	// kubeOpTimeout bounds one API call made by a helper.
	kubeOpTimeout = 30 * time.Second
)

// kubeIdentity selects whose credentials a client config carries.
type kubeIdentity int

const (
	kubeAdmin kubeIdentity = iota // system:masters, bypasses RBAC
	kubeWeir                      // kubeWeirUser, subject to deploy/rbac.yaml
)

// kubeEnv is a real Kubernetes control plane on loopback: etcd,
// kube-apiserver (RBAC, static tokens) and kube-controller-manager running
// only the endpointslice and serviceaccount controllers. There is no kubelet
// and no scheduler: tests create Pods on the Node kubeNodeName and set their
// IP and readiness themselves (CreatePod, SetPodReady), and the
// endpointslice controller turns them into EndpointSlices as it would in a
// cluster.
//
// Everything is torn down when the test ends. Methods take the calling
// test's t and fail it on error, so they must run on its goroutine. Apply,
// Delete and the Pod helpers are safe to call concurrently with each other;
// StopAPIServer and RestartAPIServer are not.
type kubeEnv struct {
	// AdminConfig authenticates as a cluster admin (system:masters).
	AdminConfig *rest.Config
	// WeirConfig authenticates as kubeWeirUser, with only the rights that
	// deploy/rbac.yaml grants once applied.
	WeirConfig *rest.Config
	// Client and Dynamic are admin clients.
	Client  kubernetes.Interface
	Dynamic dynamic.Interface

	mapper *restmapper.DeferredDiscoveryRESTMapper
	dir    string
	bin    string
	caPEM  []byte

	etcdURL string
	apiArgs []string
	apiURL  string

	serviceAccounts sync.Map // "ns/name" of ServiceAccounts seen to exist

	mu        sync.Mutex // guards the process fields
	etcd      *kubeProc
	apiserver *kubeProc
	kcm       *kubeProc
}

// kubeBinDir returns the directory holding kube-apiserver,
// kube-controller-manager and etcd: WEIR_K8S_BIN, or .cache/k8s/bin.
func kubeBinDir(t testing.TB) string {
	t.Helper()
	dir := os.Getenv("WEIR_K8S_BIN")
	if dir == "" {
		dir = filepath.Join(repoRoot(t), ".cache", "k8s", "bin")
	}
	for _, name := range []string{"etcd", "kube-apiserver", "kube-controller-manager"} {
		if _, err := os.Stat(filepath.Join(dir, name)); err != nil {
			t.Fatalf("no %s in %s (%v): run `make test` (builds them) or hack/k8sbins.sh", name, dir, err)
		}
	}
	return dir
}

// startKube starts etcd, kube-apiserver and kube-controller-manager on free
// loopback ports, waits until the API server is ready and the controllers
// run, and creates the Node kubeNodeName. The test's cleanup kills them and,
// if the test failed, logs the tail of each one's log.
func startKube(t testing.TB) *kubeEnv {
	t.Helper()
	k := &kubeEnv{dir: t.TempDir(), bin: kubeBinDir(t)}
	t.Cleanup(func() { k.stopAll(t) })

	adminToken, weirToken := randomToken(t), randomToken(t)
	k.writeCredentials(t, adminToken, weirToken)
	k.startEtcd(t)

	apiPort := int(freePort(t))
	k.apiURL = "https://" + net.JoinHostPort("127.0.0.1", strconv.Itoa(apiPort))
	k.AdminConfig = k.restConfig(adminToken)
	k.AdminConfig.QPS, k.AdminConfig.Burst = 500, 1000
	k.WeirConfig = k.restConfig(weirToken)
	k.apiArgs = k.apiserverArgs(apiPort)
	k.startAPIServer(t)

	k.Client = kubernetes.NewForConfigOrDie(k.AdminConfig)
	k.Dynamic = dynamic.NewForConfigOrDie(k.AdminConfig)
	k.mapper = restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(k.Client.Discovery()))

	k.startControllers(t, adminToken)
	k.CreateNode(t, kubeNodeName)
	return k
}

// restConfig returns a config for the API server with a bearer token.
func (k *kubeEnv) restConfig(token string) *rest.Config {
	return &rest.Config{
		Host:            k.apiURL,
		BearerToken:     token,
		TLSClientConfig: rest.TLSClientConfig{CAData: k.caPEM},
	}
}

// Config returns a fresh copy of the client config of who.
func (k *kubeEnv) Config(who kubeIdentity) *rest.Config {
	if who == kubeWeir {
		return rest.CopyConfig(k.WeirConfig)
	}
	return rest.CopyConfig(k.AdminConfig)
}

// Kubeconfig writes a kubeconfig file for who (to run weir, or a tool, as a
// separate process) and returns its path.
func (k *kubeEnv) Kubeconfig(t testing.TB, who kubeIdentity) string {
	t.Helper()
	name := map[kubeIdentity]string{kubeAdmin: "admin", kubeWeir: "weir"}[who]
	path := filepath.Join(t.TempDir(), name+".kubeconfig")
	k.writeKubeconfig(t, path, name, k.Config(who).BearerToken)
	return path
}

func (k *kubeEnv) writeKubeconfig(t testing.TB, path, user, token string) {
	t.Helper()
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["e2e"] = &clientcmdapi.Cluster{Server: k.apiURL, CertificateAuthorityData: k.caPEM}
	cfg.AuthInfos[user] = &clientcmdapi.AuthInfo{Token: token}
	cfg.Contexts["e2e"] = &clientcmdapi.Context{Cluster: "e2e", AuthInfo: user, Namespace: "default"}
	cfg.CurrentContext = "e2e"
	if err := clientcmd.WriteToFile(*cfg, path); err != nil {
		t.Fatalf("write kubeconfig: %v", err)
	}
}

// writeCredentials writes the API server's serving certificate, its
// service-account key pair and its static token file, and keeps the
// certificate as the clients' CA.
func (k *kubeEnv) writeCredentials(t testing.TB, adminToken, weirToken string) {
	t.Helper()
	serving := testcert.New(t, "localhost", "127.0.0.1")
	certPEM, keyPEM := serving.CertPEM, serving.KeyPEM
	k.caPEM = certPEM
	_, saKeyPEM, saPubPEM := ecdsaKeyPEM(t)
	tokens := fmt.Sprintf("%s,e2e-admin,e2e-admin,\"system:masters,system:authenticated\"\n"+
		"%s,%s,weir-uid,\"system:serviceaccounts,system:serviceaccounts:weir-system,system:authenticated\"\n",
		adminToken, weirToken, kubeWeirUser)
	for name, content := range map[string][]byte{
		"serving.crt": certPEM, "serving.key": keyPEM,
		"sa.key": saKeyPEM, "sa.pub": saPubPEM,
		"tokens.csv": []byte(tokens),
	} {
		if err := os.WriteFile(filepath.Join(k.dir, name), content, 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

func (k *kubeEnv) startEtcd(t testing.TB) {
	t.Helper()
	client := "http://" + net.JoinHostPort("127.0.0.1", strconv.Itoa(int(freePort(t))))
	peer := "http://" + net.JoinHostPort("127.0.0.1", strconv.Itoa(int(freePort(t))))
	p := startKubeProc(t, k.bin, "etcd", k.logPath("etcd"),
		"--name=e2e", "--data-dir="+filepath.Join(k.dir, "etcd"),
		"--listen-client-urls="+client, "--advertise-client-urls="+client,
		"--listen-peer-urls="+peer, "--initial-advertise-peer-urls="+peer,
		"--initial-cluster=e2e="+peer,
		"--unsafe-no-fsync", "--log-level=warn")
	k.setProc(&k.etcd, p)
	k.etcdURL = client
	c := &http.Client{Timeout: 5 * time.Second}
	defer c.CloseIdleConnections()
	waitFor(t, kubeStartTimeout, "etcd to be healthy", func() error {
		if err := p.alive(); err != nil {
			t.Fatal(err)
		}
		resp, err := c.Get(client + "/health")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return errors.New(resp.Status)
		}
		return nil
	})
}

func (k *kubeEnv) apiserverArgs(port int) []string {
	f := func(name string) string { return filepath.Join(k.dir, name) }
	return []string{
		"--etcd-servers=" + k.etcdURL,
		"--bind-address=127.0.0.1",
		"--advertise-address=127.0.0.1",
		"--secure-port=" + strconv.Itoa(port),
		// The advertised 127.0.0.1 is valid only with no endpoint reconciler.
		"--endpoint-reconciler-type=none",
		"--cert-dir=" + f("apiserver-certs"),
		"--tls-cert-file=" + f("serving.crt"),
		"--tls-private-key-file=" + f("serving.key"),
		"--token-auth-file=" + f("tokens.csv"),
		"--authorization-mode=RBAC",
		"--service-account-key-file=" + f("sa.pub"),
		"--service-account-signing-key-file=" + f("sa.key"),
		"--service-account-issuer=https://kubernetes.default.svc.cluster.local",
		"--service-cluster-ip-range=10.96.0.0/16",
		"--enable-priority-and-fairness=false",
		"--profiling=false",
		"--v=1",
	}
}

// startAPIServer starts kube-apiserver with k.apiArgs and waits for /readyz.
func (k *kubeEnv) startAPIServer(t testing.TB) {
	t.Helper()
	p := startKubeProc(t, k.bin, "kube-apiserver", k.logPath("kube-apiserver"), k.apiArgs...)
	k.setProc(&k.apiserver, p)
	rt, err := rest.TransportFor(k.AdminConfig)
	if err != nil {
		t.Fatal(err)
	}
	c := &http.Client{Transport: rt, Timeout: 5 * time.Second}
	defer c.CloseIdleConnections()
	waitFor(t, kubeStartTimeout, "kube-apiserver to be ready", func() error {
		if err := p.alive(); err != nil {
			t.Fatal(err)
		}
		resp, err := c.Get(k.apiURL + "/readyz")
		if err != nil {
			return err
		}
		body, _ := io.ReadAll(resp.Body) // best effort, for the message only
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("%s: %s", resp.Status, body)
		}
		return nil
	})
}

// startControllers starts kube-controller-manager and waits until the
// serviceaccount controller has made the default ServiceAccount, which
// Pods need to be admitted.
func (k *kubeEnv) startControllers(t testing.TB, adminToken string) {
	t.Helper()
	kubeconfig := filepath.Join(k.dir, "kube-controller-manager.kubeconfig")
	k.writeKubeconfig(t, kubeconfig, "admin", adminToken)
	p := startKubeProc(t, k.bin, "kube-controller-manager", k.logPath("kube-controller-manager"),
		"--kubeconfig="+kubeconfig,
		"--controllers=endpointslice-controller,serviceaccount-controller",
		"--leader-elect=false",
		"--secure-port=0",
		"--v=1")
	k.setProc(&k.kcm, p)
	k.WaitServiceAccount(t, metav1.NamespaceDefault, "default")
}

// WaitServiceAccount waits until the serviceaccount controller has created
// ServiceAccount ns/name (every namespace gets "default" after it appears).
func (k *kubeEnv) WaitServiceAccount(t testing.TB, ns, name string) {
	t.Helper()
	key := ns + "/" + name
	if _, ok := k.serviceAccounts.Load(key); ok {
		return
	}
	lw := cache.NewListWatchFromClient(k.Client.CoreV1().RESTClient(), "serviceaccounts", ns,
		fields.OneTermEqualSelector("metadata.name", name))
	waitKube(t, kubeStartTimeout, "ServiceAccount "+ns+"/"+name, lw, &corev1.ServiceAccount{},
		func(objs []any) error {
			if err := k.kcm.alive(); err != nil {
				t.Fatal(err)
			}
			if len(objs) == 0 {
				return errors.New("not created yet")
			}
			return nil
		})
	k.serviceAccounts.Store(key, true)
}

// StopAPIServer kills kube-apiserver (SIGKILL, as a crash would); etcd and
// the controllers keep running. Clients see connections refused until
// RestartAPIServer.
func (k *kubeEnv) StopAPIServer(t testing.TB) {
	t.Helper()
	k.mu.Lock()
	p := k.apiserver
	k.apiserver = nil
	k.mu.Unlock()
	if p != nil {
		p.stop()
	}
}

// RestartAPIServer stops kube-apiserver if it runs, then starts it again on
// the same port with the same etcd, and waits until it is ready.
func (k *kubeEnv) RestartAPIServer(t testing.TB) {
	t.Helper()
	k.StopAPIServer(t)
	k.startAPIServer(t)
}

func (k *kubeEnv) logPath(name string) string { return filepath.Join(k.dir, name+".log") }

func (k *kubeEnv) setProc(field **kubeProc, p *kubeProc) {
	k.mu.Lock()
	defer k.mu.Unlock()
	*field = p
}

// stopAll kills the controllers, the API server and etcd, in that order,
// and logs the tail of every log if the test failed.
func (k *kubeEnv) stopAll(t testing.TB) {
	k.mu.Lock()
	procs := []*kubeProc{k.kcm, k.apiserver, k.etcd}
	k.mu.Unlock()
	for _, p := range procs {
		if p != nil {
			p.stop()
		}
	}
	if !t.Failed() {
		return
	}
	for _, name := range []string{"kube-controller-manager", "kube-apiserver", "etcd"} {
		path := k.logPath(name)
		if _, err := os.Stat(path); err == nil {
			t.Logf("%s log (%s), last lines:\n%s", name, path, fileTail(path, 30))
		}
	}
}

// kubeProc is one running control-plane process.
type kubeProc struct {
	name    string
	logPath string
	cmd     *exec.Cmd
	exited  chan struct{}
	waitErr error // set before exited is closed
}

// startKubeProc starts bin/name with args, appending its output to
// logPath. The process is killed if the test binary dies (Pdeathsig), so a
// test timeout leaves no strays holding ports.
func startKubeProc(t testing.TB, bin, name, logPath string, args ...string) *kubeProc {
	t.Helper()
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(filepath.Join(bin, name), args...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logFile.Close()
		t.Fatalf("start %s: %v", name, err)
	}
	p := &kubeProc{name: name, logPath: logPath, cmd: cmd, exited: make(chan struct{})}
	go func() {
		p.waitErr = cmd.Wait()
		logFile.Close()
		close(p.exited)
	}()
	return p
}

// alive returns an error, with the end of the process's log, if it exited.
func (p *kubeProc) alive() error {
	select {
	case <-p.exited:
		return fmt.Errorf("%s exited (%v); log:\n%s", p.name, p.waitErr, fileTail(p.logPath, 30))
	default:
		return nil
	}
}

// stop kills the process and waits for it to exit.
func (p *kubeProc) stop() {
	select {
	case <-p.exited:
		return
	default:
	}
	if err := p.cmd.Process.Kill(); err != nil && !errors.Is(err, os.ErrProcessDone) {
		panic(fmt.Sprintf("kill %s: %v", p.name, err)) // cannot happen for a child we have not reaped
	}
	<-p.exited
}

// fileTail returns the last n lines of the file at path.
func fileTail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// Apply creates or updates every object in the multi-document YAML
// manifests (server-side apply, as `kubectl apply --server-side
// --force-conflicts` does), in order, and returns them as stored. A
// CustomResourceDefinition is waited on until Established, so later
// documents may be its objects. Namespaced objects without a namespace go
// to "default".
func (k *kubeEnv) Apply(t testing.TB, manifests string) []*unstructured.Unstructured {
	t.Helper()
	var out []*unstructured.Unstructured
	for _, obj := range decodeManifests(t, manifests) {
		ri := k.resourceFor(t, obj)
		data, err := runtime.Encode(unstructured.UnstructuredJSONScheme, obj)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), kubeOpTimeout)
		got, err := ri.Patch(ctx, obj.GetName(), types.ApplyPatchType, data,
			metav1.PatchOptions{FieldManager: kubeFieldManager, Force: new(true)})
		cancel()
		if err != nil {
			t.Fatalf("apply %s %s: %v", obj.GetKind(), objectKey(obj), err)
		}
		if got.GroupVersionKind().GroupKind() == (schema.GroupKind{Group: "apiextensions.k8s.io", Kind: "CustomResourceDefinition"}) {
			k.waitEstablished(t, got.GetName())
		}
		out = append(out, got)
	}
	return out
}

// Delete deletes every object in the multi-document YAML manifests, in
// reverse order; objects (or kinds) that do not exist are skipped. It does
// not wait for finalizers.
func (k *kubeEnv) Delete(t testing.TB, manifests string) {
	t.Helper()
	objs := decodeManifests(t, manifests)
	slices.Reverse(objs)
	for _, obj := range objs {
		mapping, err := k.mapper.RESTMapping(obj.GroupVersionKind().GroupKind(), obj.GroupVersionKind().Version)
		if meta.IsNoMatchError(err) {
			continue
		}
		if err != nil {
			t.Fatalf("delete %s %s: %v", obj.GetKind(), objectKey(obj), err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), kubeOpTimeout)
		err = k.resourceInterface(mapping, obj).Delete(ctx, obj.GetName(), metav1.DeleteOptions{})
		cancel()
		if err != nil && !apierrors.IsNotFound(err) {
			t.Fatalf("delete %s %s: %v", obj.GetKind(), objectKey(obj), err)
		}
	}
}

// Get returns the object of apiVersion and kind named ns/name (ns empty
// for cluster-scoped kinds), or nil if it does not exist.
func (k *kubeEnv) Get(t testing.TB, apiVersion, kind, ns, name string) *unstructured.Unstructured {
	t.Helper()
	obj := &unstructured.Unstructured{}
	obj.SetAPIVersion(apiVersion)
	obj.SetKind(kind)
	obj.SetNamespace(ns)
	obj.SetName(name)
	ctx, cancel := context.WithTimeout(context.Background(), kubeOpTimeout)
	defer cancel()
	got, err := k.resourceFor(t, obj).Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		t.Fatalf("get %s %s: %v", kind, objectKey(obj), err)
	}
	return got
}

// WaitObject watches the object of apiVersion and kind named ns/name until
// cond, given it (nil while it does not exist), returns nil. The watch
// survives API server restarts. It fails the test after timeout with
// cond's last error.
func (k *kubeEnv) WaitObject(t testing.TB, timeout time.Duration, apiVersion, kind, ns, name string, cond func(*unstructured.Unstructured) error) {
	t.Helper()
	obj := &unstructured.Unstructured{}
	obj.SetAPIVersion(apiVersion)
	obj.SetKind(kind)
	obj.SetNamespace(ns)
	ri := k.resourceFor(t, obj)
	sel := fields.OneTermEqualSelector("metadata.name", name).String()
	lw := &cache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
			o.FieldSelector = sel
			return ri.List(ctx, o)
		},
		WatchFuncWithContext: func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
			o.FieldSelector = sel
			return ri.Watch(ctx, o)
		},
	}
	waitKube(t, timeout, kind+" "+ns+"/"+name, lw, &unstructured.Unstructured{}, func(objs []any) error {
		if len(objs) == 0 {
			return cond(nil)
		}
		return cond(objs[0].(*unstructured.Unstructured))
	})
}

// WaitEndpointSlices watches the EndpointSlices of Service ns/service until
// cond, given all of them, returns nil. It fails the test after timeout.
func (k *kubeEnv) WaitEndpointSlices(t testing.TB, timeout time.Duration, ns, service string, cond func([]*discoveryv1.EndpointSlice) error) {
	t.Helper()
	sel := discoveryv1.LabelServiceName + "=" + service
	lw := cache.NewFilteredListWatchFromClient(k.Client.DiscoveryV1().RESTClient(), "endpointslices", ns,
		func(o *metav1.ListOptions) { o.LabelSelector = sel })
	waitKube(t, timeout, "EndpointSlices of Service "+ns+"/"+service, lw, &discoveryv1.EndpointSlice{}, func(objs []any) error {
		slices := make([]*discoveryv1.EndpointSlice, len(objs))
		for i, o := range objs {
			slices[i] = o.(*discoveryv1.EndpointSlice)
		}
		return cond(slices)
	})
}

// waitKube keeps the objects lw lists in an informer and calls cond with
// all of them after the initial list and after every change, until cond
// returns nil. It fails the test after timeout with cond's last error.
func waitKube(t testing.TB, timeout time.Duration, what string, lw cache.ListerWatcher, objType runtime.Object, cond func([]any) error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	store, informer, w, done := watchtools.NewIndexerInformerWatcher(lw, objType)
	defer func() { w.Stop(); <-done }()
	if !cache.WaitForCacheSync(ctx.Done(), informer.HasSynced) {
		t.Fatalf("waited %v for %s: could not list", timeout, what)
	}
	err := cond(store.List())
	for err != nil {
		select {
		case <-ctx.Done():
			t.Fatalf("waited %v for %s: %v", timeout, what, err)
		case _, ok := <-w.ResultChan():
			if !ok {
				t.Fatalf("waiting for %s: watch closed: %v", what, err)
			}
			err = cond(store.List())
		}
	}
}

// waitEstablished waits until CRD name is Established, and so served.
func (k *kubeEnv) waitEstablished(t testing.TB, name string) {
	t.Helper()
	k.WaitObject(t, kubeOpTimeout, "apiextensions.k8s.io/v1", "CustomResourceDefinition", "", name,
		func(crd *unstructured.Unstructured) error {
			if crd == nil {
				return errors.New("not found")
			}
			conds, _, _ := unstructured.NestedSlice(crd.Object, "status", "conditions")
			for _, c := range conds {
				c, _ := c.(map[string]any)
				if c["type"] == "Established" && c["status"] == "True" {
					return nil
				}
			}
			return fmt.Errorf("not Established: %v", conds)
		})
}

// resourceFor returns the dynamic client for obj's kind and namespace. A
// kind the API server does not serve yet (a CRD just created) is retried
// for a while: discovery offers no event to wait on.
func (k *kubeEnv) resourceFor(t testing.TB, obj *unstructured.Unstructured) dynamic.ResourceInterface {
	t.Helper()
	gvk := obj.GroupVersionKind()
	var mapping *meta.RESTMapping
	waitFor(t, kubeOpTimeout, "the API server to serve "+gvk.String(), func() error {
		var err error
		mapping, err = k.mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
		if meta.IsNoMatchError(err) {
			k.mapper.Reset()
			time.Sleep(90 * time.Millisecond) // waitFor's 10 ms would hammer discovery
			return err
		}
		if err != nil {
			t.Fatalf("map %s: %v", gvk, err)
		}
		return nil
	})
	return k.resourceInterface(mapping, obj)
}

func (k *kubeEnv) resourceInterface(mapping *meta.RESTMapping, obj *unstructured.Unstructured) dynamic.ResourceInterface {
	if mapping.Scope.Name() != meta.RESTScopeNameNamespace {
		return k.Dynamic.Resource(mapping.Resource)
	}
	if obj.GetNamespace() == "" {
		obj.SetNamespace(metav1.NamespaceDefault)
	}
	return k.Dynamic.Resource(mapping.Resource).Namespace(obj.GetNamespace())
}

// decodeManifests splits multi-document YAML into objects, skipping empty
// documents.
func decodeManifests(t testing.TB, manifests string) []*unstructured.Unstructured {
	t.Helper()
	var objs []*unstructured.Unstructured
	dec := utilyaml.NewYAMLOrJSONDecoder(strings.NewReader(manifests), 4096)
	for {
		var m map[string]any
		err := dec.Decode(&m)
		if errors.Is(err, io.EOF) {
			return objs
		}
		if err != nil {
			t.Fatalf("decode manifests: %v", err)
		}
		if len(m) == 0 {
			continue
		}
		objs = append(objs, &unstructured.Unstructured{Object: m})
	}
}

func objectKey(obj *unstructured.Unstructured) string {
	if obj.GetNamespace() == "" {
		return obj.GetName()
	}
	return obj.GetNamespace() + "/" + obj.GetName()
}

// CreateNode creates a Node named name. No kubelet runs on it; it only
// gives Pods somewhere to be, as the endpointslice controller requires.
func (k *kubeEnv) CreateNode(t testing.TB, name string) {
	t.Helper()
	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{
		corev1.LabelHostname: name,
	}}}
	ctx, cancel := context.WithTimeout(context.Background(), kubeOpTimeout)
	defer cancel()
	if _, err := k.Client.CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create node %s: %v", name, err)
	}
}

// CreatePod creates Pod ns/name with labels and container ports on the Node
// kubeNodeName. It stays Pending with no IP, and out of EndpointSlices,
// until SetPodReady. The namespace must exist.
func (k *kubeEnv) CreatePod(t testing.TB, ns, name string, labels map[string]string, ports ...corev1.ContainerPort) *corev1.Pod {
	t.Helper()
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: labels},
		Spec: corev1.PodSpec{
			NodeName:                      kubeNodeName,
			AutomountServiceAccountToken:  new(false),
			TerminationGracePeriodSeconds: new(int64(0)),
			Containers: []corev1.Container{{
				Name: "app", Image: "weir.invalid/e2e:none", Ports: ports,
			}},
		},
	}
	k.WaitServiceAccount(t, ns, "default") // admission refuses Pods until it exists
	ctx, cancel := context.WithTimeout(context.Background(), kubeOpTimeout)
	defer cancel()
	got, err := k.Client.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("create pod %s/%s: %v", ns, name, err)
	}
	return got
}

// SetPodReady does what a kubelet would: Pod ns/name becomes Running with
// IP ip, and its Ready condition becomes ready. A Pod's IP cannot change
// once set.
func (k *kubeEnv) SetPodReady(t testing.TB, ns, name, ip string, ready bool) {
	t.Helper()
	status := corev1.ConditionFalse
	if ready {
		status = corev1.ConditionTrue
	}
	pods := k.Client.CoreV1().Pods(ns)
	ctx, cancel := context.WithTimeout(context.Background(), kubeOpTimeout)
	defer cancel()
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		pod, err := pods.Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		now := metav1.Now()
		pod.Status.Phase = corev1.PodRunning
		pod.Status.HostIP, pod.Status.HostIPs = "127.0.0.1", []corev1.HostIP{{IP: "127.0.0.1"}}
		pod.Status.PodIP, pod.Status.PodIPs = ip, []corev1.PodIP{{IP: ip}}
		if pod.Status.StartTime == nil {
			pod.Status.StartTime = &now
		}
		pod.Status.Conditions = slices.DeleteFunc(pod.Status.Conditions, func(c corev1.PodCondition) bool {
			return c.Type == corev1.PodReady || c.Type == corev1.ContainersReady
		})
		for _, typ := range []corev1.PodConditionType{corev1.ContainersReady, corev1.PodReady} {
			pod.Status.Conditions = append(pod.Status.Conditions,
				corev1.PodCondition{Type: typ, Status: status, LastTransitionTime: now})
		}
		_, err = pods.UpdateStatus(ctx, pod, metav1.UpdateOptions{})
		return err
	})
	if err != nil {
		t.Fatalf("set pod %s/%s ready=%v ip=%s: %v", ns, name, ready, ip, err)
	}
}

// DeletePod deletes Pod ns/name at once: with no kubelet to finish a
// graceful deletion, a grace period would leave it Terminating forever.
func (k *kubeEnv) DeletePod(t testing.TB, ns, name string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), kubeOpTimeout)
	defer cancel()
	err := k.Client.CoreV1().Pods(ns).Delete(ctx, name, metav1.DeleteOptions{GracePeriodSeconds: new(int64(0))})
	if err != nil && !apierrors.IsNotFound(err) {
		t.Fatalf("delete pod %s/%s: %v", ns, name, err)
	}
}

// kubePodNet is routed to the loopback device (see localPodIP). It is
// 198.18.0.0/15, reserved for benchmarking (RFC 2544), so it collides with
// no real network.
const kubePodNet = "198.18.0.0/15"

var podNetOnce struct {
	sync.Once
	err error
}

// localPodIP returns the i-th (1 <= i < 65536) address of kubePodNet: an IP
// the API server accepts for a Pod in an EndpointSlice (it refuses
// 127.0.0.0/8 there) and that a test's server can listen on, so that Envoy
// reaches it through the endpoint weir publishes.
//
// The first call makes the whole range local with `ip route add local
// 198.18.0.0/15 dev lo` unless it already is; that needs root (or
// CAP_NET_ADMIN) and lasts until reboot. Without it the test fails with
// the command to run.
func localPodIP(t testing.TB, i int) string {
	t.Helper()
	if i < 1 || i >= 1<<16 {
		t.Fatalf("localPodIP(%d): want 1 <= i < 65536", i)
	}
	podNetOnce.Do(func() { podNetOnce.err = routePodNet() })
	if podNetOnce.err != nil {
		t.Fatalf("pod addresses %s are not local: %v; run `sudo ip route add local %s dev lo`",
			kubePodNet, podNetOnce.err, kubePodNet)
	}
	return fmt.Sprintf("198.18.%d.%d", i>>8, i&0xff)
}

// routePodNet makes kubePodNet local unless it already is.
func routePodNet() error {
	probe := func() error {
		l, err := net.Listen("tcp", "198.18.0.1:0")
		if err == nil {
			l.Close()
		}
		return err
	}
	if probe() == nil {
		return nil
	}
	var out bytes.Buffer
	cmd := exec.Command("ip", "route", "add", "local", kubePodNet, "dev", "lo")
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("ip route add: %v: %s", err, strings.TrimSpace(out.String()))
	}
	return probe()
}

// randomToken returns a fresh bearer token.
func randomToken(t testing.TB) string {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// ecdsaKeyPEM returns a new P-256 key and its private and public PEM.
func ecdsaKeyPEM(t testing.TB) (key *ecdsa.PrivateKey, private, public []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	return key, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pub})
}

// TestKubeHarness checks the harness itself: the CRDs and RBAC in deploy/
// install, Pods become EndpointSlices, the weir identity has exactly the
// rights deploy/rbac.yaml grants, and the API server comes back after being
// killed with what it stored.
func TestKubeHarness(t *testing.T) {
	start := time.Now()
	k := startKube(t)
	t.Logf("control plane ready in %v", time.Since(start).Round(time.Millisecond))
	for _, f := range []string{"deploy/crds/smi.yaml", "deploy/rbac.yaml"} {
		b, err := os.ReadFile(filepath.Join(repoRoot(t), f))
		if err != nil {
			t.Fatal(err)
		}
		k.Apply(t, string(b))
	}
	k.Apply(t, `
apiVersion: v1
kind: Namespace
metadata: {name: shop}
---
apiVersion: v1
kind: Service
metadata: {name: httpbin, namespace: shop}
spec:
  selector: {app: httpbin}
  ports: [{name: http, port: 80, targetPort: 8080}]
---
apiVersion: split.smi-spec.io/v1alpha2
kind: TrafficSplit
metadata: {name: httpbin, namespace: shop}
spec:
  service: httpbin
  backends: [{service: httpbin-v1, weight: 90}, {service: httpbin-v2, weight: -5}]
---
apiVersion: specs.smi-spec.io/v1alpha4
kind: HTTPRouteGroup
metadata: {name: canary-users, namespace: shop}
spec:
  matches:
  - name: canary
    pathRegex: "/.*"
    methods: [GET]
    headers: {cookie: "^(.*?;)?(canary=true)(;.*)?$"}
---
apiVersion: specs.smi-spec.io/v1alpha1
kind: HTTPRouteGroup
metadata: {name: old-shape, namespace: shop}
matches:
- name: all
  pathRegex: "/.*"
  headers: [{x-user: "alice"}]
`)
	old := k.Get(t, "specs.smi-spec.io/v1alpha4", "HTTPRouteGroup", "shop", "old-shape")
	if m, _, _ := unstructured.NestedSlice(old.Object, "matches"); len(m) != 1 {
		t.Errorf("v1alpha1 HTTPRouteGroup lost its top-level matches: %v", old.Object)
	}

	ready, unready := localPodIP(t, 1), localPodIP(t, 2)
	l, err := net.Listen("tcp", net.JoinHostPort(ready, "0"))
	if err != nil {
		t.Fatalf("listen on pod address %s: %v", ready, err)
	}
	l.Close()
	k.CreatePod(t, "shop", "httpbin-1", map[string]string{"app": "httpbin", "version": "v1"})
	k.CreatePod(t, "shop", "httpbin-2", map[string]string{"app": "httpbin", "version": "v2"})
	k.SetPodReady(t, "shop", "httpbin-1", ready, true)
	k.SetPodReady(t, "shop", "httpbin-2", unready, false)
	waitEndpoints(t, k, map[string]bool{ready: true, unready: false})
	k.SetPodReady(t, "shop", "httpbin-2", unready, true)
	waitEndpoints(t, k, map[string]bool{ready: true, unready: true})

	checkWeirRBAC(t, k)

	k.StopAPIServer(t)
	weir := kubernetes.NewForConfigOrDie(k.WeirConfig)
	if _, err := weir.CoreV1().Services("shop").List(context.Background(), metav1.ListOptions{}); err == nil {
		t.Fatal("listed Services with the API server stopped")
	}
	start = time.Now()
	k.RestartAPIServer(t)
	t.Logf("API server restarted in %v", time.Since(start).Round(time.Millisecond))
	cfg, err := clientcmd.BuildConfigFromFlags("", k.Kubeconfig(t, kubeWeir))
	if err != nil {
		t.Fatal(err)
	}
	svcs, err := kubernetes.NewForConfigOrDie(cfg).CoreV1().Services("shop").List(context.Background(), metav1.ListOptions{})
	if err != nil || len(svcs.Items) != 1 {
		t.Fatalf("after restart, weir's kubeconfig lists %v, %v; want Service httpbin", svcs, err)
	}
	k.Delete(t, "apiVersion: v1\nkind: Namespace\nmetadata: {name: shop}\n")
}

// waitEndpoints waits until Service shop/httpbin's EndpointSlices hold
// exactly the addresses of want, with readiness as in want.
func waitEndpoints(t *testing.T, k *kubeEnv, want map[string]bool) {
	t.Helper()
	k.WaitEndpointSlices(t, 10*time.Second, "shop", "httpbin", func(eps []*discoveryv1.EndpointSlice) error {
		got := map[string]bool{}
		for _, s := range eps {
			for _, e := range s.Endpoints {
				for _, a := range e.Addresses {
					got[a] = e.Conditions.Ready != nil && *e.Conditions.Ready
				}
			}
		}
		if !maps.Equal(got, want) {
			return fmt.Errorf("endpoints (address: ready) %v, want %v", got, want)
		}
		return nil
	})
}

// checkWeirRBAC checks that the weir identity may do what weir does and
// nothing else, and that the TrafficSplit written as v1alpha2 reads as the
// stored v1alpha4.
func checkWeirRBAC(t *testing.T, k *kubeEnv) {
	t.Helper()
	ctx := context.Background()
	weir := kubernetes.NewForConfigOrDie(k.WeirConfig)
	if _, err := weir.CoreV1().Services("shop").List(ctx, metav1.ListOptions{}); err != nil {
		t.Errorf("weir cannot list Services: %v", err)
	}
	if _, err := weir.DiscoveryV1().EndpointSlices("").List(ctx, metav1.ListOptions{}); err != nil {
		t.Errorf("weir cannot list EndpointSlices: %v", err)
	}
	err := weir.CoreV1().Services("shop").Delete(ctx, "httpbin", metav1.DeleteOptions{})
	if !apierrors.IsForbidden(err) {
		t.Errorf("weir deleting a Service: got %v, want Forbidden", err)
	}
	if _, err := weir.CoreV1().ConfigMaps("shop").List(ctx, metav1.ListOptions{}); !apierrors.IsForbidden(err) {
		t.Errorf("weir listing ConfigMaps: got %v, want Forbidden", err)
	}

	splits := dynamic.NewForConfigOrDie(k.WeirConfig).
		Resource(schema.GroupVersionResource{Group: "split.smi-spec.io", Version: "v1alpha4", Resource: "trafficsplits"}).
		Namespace("shop")
	ts, err := splits.Get(ctx, "httpbin", metav1.GetOptions{})
	if err != nil {
		t.Fatalf("weir cannot get the TrafficSplit as v1alpha4: %v", err)
	}
	if w, _, _ := unstructured.NestedSlice(ts.Object, "spec", "backends"); len(w) != 2 {
		t.Errorf("TrafficSplit backends %v, want both, the negative weight kept", w)
	}
	cond := map[string]any{"type": "Accepted", "status": "False", "reason": "Invalid",
		"message": "weight -5", "lastTransitionTime": "2026-01-01T00:00:00Z"}
	if err := unstructured.SetNestedSlice(ts.Object, []any{cond}, "status", "conditions"); err != nil {
		t.Fatal(err)
	}
	if _, err := splits.UpdateStatus(ctx, ts, metav1.UpdateOptions{}); err != nil {
		t.Errorf("weir cannot update TrafficSplit status: %v", err)
	}
	if _, err := splits.Update(ctx, ts, metav1.UpdateOptions{}); !apierrors.IsForbidden(err) {
		t.Errorf("weir updating a TrafficSplit's spec: got %v, want Forbidden", err)
	}
	got := k.Get(t, "split.smi-spec.io/v1alpha3", "TrafficSplit", "shop", "httpbin")
	if c, _, _ := unstructured.NestedSlice(got.Object, "status", "conditions"); len(c) != 1 {
		t.Errorf("TrafficSplit status conditions %v, want weir's one", c)
	}

	leases := weir.CoordinationV1().Leases("weir-system")
	if _, err := leases.Get(ctx, "weir", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("weir getting its Lease: got %v, want NotFound", err)
	}
	if _, err := weir.CoordinationV1().Leases("shop").Get(ctx, "weir", metav1.GetOptions{}); !apierrors.IsForbidden(err) {
		t.Errorf("weir getting a Lease outside weir-system: got %v, want Forbidden", err)
	}
}
