package watcher

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
	"k8s.io/klog/v2"
)

// KubeSourceName is the store source of every object KubeSource writes.
const KubeSourceName = "kubernetes"

// KubeSource keeps the store equal to the objects weir reads in a Kubernetes
// cluster: Services, EndpointSlices and Pods (stripped to what the
// translator reads), and the policy APIs whose CRDs are installed
// (TrafficSplit, HTTPRouteGroup). A policy API whose CRD is missing is
// disabled, with one log line, until the CRD appears; it is disabled again,
// and its objects leave the store, when the CRD is deleted.
//
// While the API server is unreachable the store keeps its last state;
// client-go relists on reconnect and the store then receives exactly what
// changed meanwhile (deletes only for objects that are gone).
//
// RBAC: list and watch of services, pods (core), endpointslices
// (discovery.k8s.io), trafficsplits (split.smi-spec.io) and httproutegroups
// (specs.smi-spec.io) in the watched namespaces, and list and watch of the
// customresourcedefinitions (apiextensions.k8s.io) named in PolicyCRDs
// (cluster scope; resourceNames may restrict the rule to them).
type KubeSource struct {
	Config *rest.Config
	// Namespaces limits what is watched; empty means every namespace.
	Namespaces []string
	Store      *Store
	Logger     *slog.Logger // nil means slog.Default()

	// clients, if set before Run, replace those built from Config (tests).
	clients *kubeClients

	policyMu sync.Mutex // serialises policy writes with their gates
	errc     chan error // first store failure; buffered, one slot
}

type kubeClients struct {
	core    kubernetes.Interface
	dynamic dynamic.Interface
}

func (k *KubeSource) logger() *slog.Logger {
	if k.Logger == nil {
		return slog.Default()
	}
	return k.Logger
}

// namespaces returns the namespaces to watch, sorted and unique; [""]
// (every namespace) if none are given or one of them is "".
func (k *KubeSource) namespaces() []string {
	if len(k.Namespaces) == 0 || slices.Contains(k.Namespaces, metav1.NamespaceAll) {
		return []string{metav1.NamespaceAll}
	}
	out := slices.Clone(k.Namespaces)
	slices.Sort(out)
	return slices.Compact(out)
}

// Run starts the informers, closes ready (if non-nil) once every started
// informer has synced and its objects are in the store, and then follows
// the cluster until ctx is done, when it returns nil after every informer
// has stopped. It waits, without closing ready, as long as the API server
// cannot be reached or refuses a list. It returns an error if the clients
// cannot be built, or if the store rejects a write (a bug). Run must be
// called once.
func (k *KubeSource) Run(ctx context.Context, ready chan<- struct{}) error {
	cl, err := k.clientsFor()
	if err != nil {
		return err
	}
	k.errc = make(chan error, 1)
	ctx = klog.NewContext(ctx, logr.FromSlogHandler(k.logger().Handler()))
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	factories, coreSynced, err := k.startCore(ctx, cl.core)
	if err != nil {
		return err
	}
	p := newPolicies(k, cl.dynamic)
	defer func() {
		cancel()
		for _, f := range factories {
			f.Shutdown()
		}
		p.wg.Wait()
	}()
	crdSynced, err := p.startCRDWatches(ctx)
	if err != nil {
		return err
	}
	if !cache.WaitForCacheSync(ctx.Done(), append(coreSynced, crdSynced...)...) {
		return k.failure()
	}
	if !p.reconcile(ctx) {
		return k.failure()
	}
	if ready != nil {
		close(ready)
	}
	for {
		select {
		case <-ctx.Done():
			return k.failure()
		case err := <-k.errc:
			return err
		case <-p.changed:
			if !p.reconcile(ctx) {
				return k.failure()
			}
		}
	}
}

// failure returns the store failure that stopped Run, if any.
func (k *KubeSource) failure() error {
	select {
	case err := <-k.errc:
		return err
	default:
		return nil
	}
}

// fail records a store failure for Run to return.
func (k *KubeSource) fail(err error) {
	select {
	case k.errc <- fmt.Errorf("kubernetes source: %w", err):
	default:
	}
}

func (k *KubeSource) clientsFor() (kubeClients, error) {
	if k.clients != nil {
		return *k.clients, nil
	}
	if k.Config == nil {
		return kubeClients{}, errors.New("kubernetes source: no client configuration")
	}
	// Core objects travel as protobuf: cheaper for both ends on big clusters.
	coreCfg := withServerWait(k.Config)
	coreCfg.ContentType = "application/vnd.kubernetes.protobuf"
	coreCfg.AcceptContentTypes = "application/vnd.kubernetes.protobuf,application/json"
	core, err := kubernetes.NewForConfig(coreCfg)
	if err != nil {
		return kubeClients{}, fmt.Errorf("kubernetes source: %w", err)
	}
	dyn, err := dynamic.NewForConfig(withServerWait(k.Config))
	if err != nil {
		return kubeClients{}, fmt.Errorf("kubernetes source: %w", err)
	}
	return kubeClients{core: core, dynamic: dyn}, nil
}

// startCore starts one informer factory per watched namespace for
// Services, EndpointSlices and Pods. It returns the factories and, per
// informer, whether its handler has received the initial list.
func (k *KubeSource) startCore(ctx context.Context, client kubernetes.Interface) ([]informers.SharedInformerFactory, []cache.InformerSynced, error) {
	var factories []informers.SharedInformerFactory
	var synced []cache.InformerSynced
	for _, ns := range k.namespaces() {
		f := informers.NewSharedInformerFactoryWithOptions(client, 0,
			informers.WithNamespace(ns), informers.WithTransform(stripObject))
		// Only TLS Secrets: weir never holds credentials it does not serve.
		tls := informers.NewSharedInformerFactoryWithOptions(client, 0,
			informers.WithNamespace(ns), informers.WithTransform(stripObject),
			informers.WithTweakListOptions(func(o *metav1.ListOptions) {
				o.FieldSelector = "type=" + string(corev1.SecretTypeTLS)
			}))
		for _, w := range []struct {
			inf  cache.SharedIndexInformer
			sink sink
		}{
			{f.Core().V1().Services().Informer(), sink{k: k, kind: KindService, convert: serviceObject}},
			{f.Discovery().V1().EndpointSlices().Informer(), sink{k: k, kind: KindEndpointSlice, convert: sliceObject}},
			{f.Core().V1().Pods().Informer(), sink{k: k, kind: KindPod, convert: podObject}},
			{f.Networking().V1().Ingresses().Informer(), sink{k: k, kind: KindIngress, convert: ingressObject}},
			{tls.Core().V1().Secrets().Informer(), sink{k: k, kind: KindSecret, convert: secretObject}},
		} {
			reg, err := w.inf.AddEventHandler(w.sink.handlers())
			if err != nil {
				return factories, nil, fmt.Errorf("kubernetes source: %s handler: %w", w.sink.kind, err)
			}
			synced = append(synced, reg.HasSynced)
		}
		f.StartWithContext(ctx)
		tls.StartWithContext(ctx)
		factories = append(factories, f, tls)
	}
	return factories, synced, nil
}

// sink writes the objects of one informer into the store.
type sink struct {
	k    *KubeSource
	kind Kind
	// convert turns an informer object (never a tombstone) into a store
	// object; an error is logged and leaves the store as it was.
	convert func(any) (Object, error)
	// gate, if set, drops every write while it is not active.
	gate *policyWatch
}

func (s sink) handlers() cache.ResourceEventHandler {
	return cache.ResourceEventHandlerDetailedFuncs{
		AddFunc: func(obj any, _ bool) { s.upsert(obj) },
		UpdateFunc: func(old, obj any) {
			if s.kind != KindPod && statusOnlyUpdate(old, obj) {
				return
			}
			s.upsert(obj)
		},
		DeleteFunc: s.delete,
	}
}

func (s sink) upsert(obj any) {
	o, err := s.convert(obj)
	if err != nil {
		s.k.logger().Error("cannot read object; keeping its last good state", "kind", s.kind, "error", err)
		return
	}
	s.write(func() error {
		_, err := s.k.Store.Upsert(KubeSourceName, o)
		return err
	})
}

func (s sink) delete(obj any) {
	key, err := cache.DeletionHandlingMetaNamespaceKeyFunc(obj)
	if err != nil {
		s.k.logger().Error("cannot key deleted object", "kind", s.kind, "error", err)
		return
	}
	ns, name, err := cache.SplitMetaNamespaceKey(key)
	if err != nil {
		s.k.logger().Error("cannot key deleted object", "kind", s.kind, "error", err)
		return
	}
	s.write(func() error {
		_, err := s.k.Store.Delete(s.kind, ns, name)
		return err
	})
}

func (s sink) write(op func() error) {
	if s.gate != nil {
		s.k.policyMu.Lock()
		defer s.k.policyMu.Unlock()
		if !s.gate.active {
			return
		}
	}
	if err := op(); err != nil {
		s.k.fail(err)
	}
}

func serviceObject(obj any) (Object, error) {
	svc, ok := obj.(*corev1.Service)
	if !ok {
		return Object{}, fmt.Errorf("want a Service, got %T", obj)
	}
	return Object{Kind: KindService, Namespace: svc.Namespace, Name: svc.Name, Value: svc}, nil
}

func sliceObject(obj any) (Object, error) {
	s, ok := obj.(*discoveryv1.EndpointSlice)
	if !ok {
		return Object{}, fmt.Errorf("want an EndpointSlice, got %T", obj)
	}
	return Object{Kind: KindEndpointSlice, Namespace: s.Namespace, Name: s.Name, Value: s}, nil
}

// podObject stores the stripped Pod without its resourceVersion, so that
// status updates the translator does not read (container restarts, probe
// times) leave the store unchanged and cause no translation.
func podObject(obj any) (Object, error) {
	pod, ok := obj.(*corev1.Pod)
	if !ok {
		return Object{}, fmt.Errorf("want a Pod, got %T", obj)
	}
	cp := *pod
	cp.ResourceVersion = ""
	return Object{Kind: KindPod, Namespace: pod.Namespace, Name: pod.Name, Value: &cp}, nil
}

func ingressObject(obj any) (Object, error) {
	in, ok := obj.(*networkingv1.Ingress)
	if !ok {
		return Object{}, fmt.Errorf("want an Ingress, got %T", obj)
	}
	return Object{Kind: KindIngress, Namespace: in.Namespace, Name: in.Name, Value: in}, nil
}

// secretObject stores a TLS Secret; the informer lists only those.
func secretObject(obj any) (Object, error) {
	s, ok := obj.(*corev1.Secret)
	if !ok || s.Type != corev1.SecretTypeTLS {
		return Object{}, fmt.Errorf("want a kubernetes.io/tls Secret, got %T", obj)
	}
	return Object{Kind: KindSecret, Namespace: s.Namespace, Name: s.Name, Value: s}, nil
}
