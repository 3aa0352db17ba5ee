package watcher

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	k8sschema "k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/dynamic/dynamicinformer"
	"k8s.io/client-go/tools/cache"
	gwapiv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/weir-mesh/weir/api/istio"
	"github.com/weir-mesh/weir/api/smi"
)

// crdResource is the API of CustomResourceDefinitions.
var crdResource = k8sschema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}

// policyAPI is an input API served by a CRD: weir reads it while the CRD is
// installed and serves one of its versions.
type policyAPI struct {
	kind     Kind
	group    string
	resource string
	// versions are the versions weir reads, preferred first.
	versions []string
	newValue func() metav1.Object
	// clusterScoped APIs are watched once, in every namespace, and stored
	// with namespace "".
	clusterScoped bool
}

// crdName is the name of the API's CustomResourceDefinition.
func (a policyAPI) crdName() string { return a.resource + "." + a.group }

// policyAPIs are the CRD-backed APIs KubeSource reads.
var policyAPIs = []policyAPI{
	{kind: KindTrafficSplit, group: smi.SplitGroup, resource: "trafficsplits",
		versions: newestFirst(smi.SplitVersions), newValue: func() metav1.Object { return &smi.TrafficSplit{} }},
	{kind: KindHTTPRouteGroup, group: smi.SpecsGroup, resource: "httproutegroups",
		versions: newestFirst(smi.SpecsVersions), newValue: func() metav1.Object { return &smi.HTTPRouteGroup{} }},
	{kind: KindVirtualService, group: istio.Group, resource: "virtualservices",
		versions: newestFirst(istio.Versions), newValue: func() metav1.Object { return &istio.VirtualService{} }},
	{kind: KindDestinationRule, group: istio.Group, resource: "destinationrules",
		versions: newestFirst(istio.Versions), newValue: func() metav1.Object { return &istio.DestinationRule{} }},
	{kind: KindIstioGateway, group: istio.Group, resource: "gateways",
		versions: newestFirst(istio.Versions), newValue: func() metav1.Object { return &istio.Gateway{} }},
	{kind: KindGatewayClass, group: gwapiv1.GroupName, resource: "gatewayclasses", clusterScoped: true,
		versions: gatewayAPIVersions, newValue: func() metav1.Object { return &gwapiv1.GatewayClass{} }},
	{kind: KindGateway, group: gwapiv1.GroupName, resource: "gateways",
		versions: gatewayAPIVersions, newValue: func() metav1.Object { return &gwapiv1.Gateway{} }},
	{kind: KindHTTPRoute, group: gwapiv1.GroupName, resource: "httproutes",
		versions: gatewayAPIVersions, newValue: func() metav1.Object { return &gwapiv1.HTTPRoute{} }},
	{kind: KindReferenceGrant, group: gwapiv1.GroupName, resource: "referencegrants",
		versions: gatewayAPIVersions, newValue: func() metav1.Object { return &gwapiv1.ReferenceGrant{} }},
}

// gatewayAPIVersions are the Gateway API versions weir reads, preferred
// first; both decode into the v1 types.
var gatewayAPIVersions = []string{"v1", "v1beta1"}

// PolicyCRDs returns the names of the CustomResourceDefinitions KubeSource
// watches (for RBAC resourceNames), sorted.
func PolicyCRDs() []string {
	out := make([]string, len(policyAPIs))
	for i, a := range policyAPIs {
		out[i] = a.crdName()
	}
	slices.Sort(out)
	return out
}

func newestFirst(versions []string) []string {
	out := slices.Clone(versions)
	slices.Reverse(out)
	return out
}

// policies runs, for each policy API, a watch of its CRD and, while the CRD
// serves a version weir reads, informers of its objects. Only Run's
// goroutine calls its methods.
type policies struct {
	k      *KubeSource
	client dynamic.Interface
	// changed receives a value after any CRD event.
	changed chan struct{}
	crds    map[Kind]cache.SharedIndexInformer
	active  map[Kind]*policyWatch
	// logged is the version last logged per API; "" is disabled.
	logged map[Kind]string
	wg     sync.WaitGroup // informer goroutines
}

// policyWatch is the informers (one per watched namespace) of one version
// of one policy API.
type policyWatch struct {
	api       policyAPI
	version   string
	informers []cache.SharedIndexInformer
	synced    []cache.InformerSynced
	cancel    context.CancelFunc
	// active is whether its events reach the store; guarded by
	// KubeSource.policyMu.
	active bool
}

func newPolicies(k *KubeSource, client dynamic.Interface) *policies {
	return &policies{k: k, client: client, changed: make(chan struct{}, 1),
		crds: map[Kind]cache.SharedIndexInformer{}, active: map[Kind]*policyWatch{}, logged: map[Kind]string{}}
}

func (p *policies) poke() {
	select {
	case p.changed <- struct{}{}:
	default:
	}
}

// run runs inf until ctx is done; Run waits for it before returning.
func (p *policies) run(ctx context.Context, inf cache.SharedIndexInformer) {
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		inf.RunWithContext(ctx)
	}()
}

// startCRDWatches starts one informer per policy API on its CRD alone
// (a field selector on its name), stripped to served versions and the
// Established condition.
func (p *policies) startCRDWatches(ctx context.Context) ([]cache.InformerSynced, error) {
	var synced []cache.InformerSynced
	for _, api := range policyAPIs {
		name := api.crdName()
		inf := dynamicinformer.NewFilteredDynamicInformer(p.client, crdResource, metav1.NamespaceAll, 0, cache.Indexers{},
			func(o *metav1.ListOptions) { o.FieldSelector = "metadata.name=" + name }).Informer()
		if err := inf.SetTransform(stripCRD); err != nil {
			return nil, fmt.Errorf("kubernetes source: CRD %s: %w", name, err)
		}
		poke := func(any) { p.poke() }
		reg, err := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
			AddFunc: poke, UpdateFunc: func(_, o any) { poke(o) }, DeleteFunc: poke,
		})
		if err != nil {
			return nil, fmt.Errorf("kubernetes source: CRD %s: %w", name, err)
		}
		p.crds[api.kind] = inf
		synced = append(synced, reg.HasSynced)
		p.run(ctx, inf)
	}
	return synced, nil
}

// servedVersion returns the version of api weir should read now: the
// preferred one its CRD serves, if the CRD is established and not being
// deleted; "" if none.
func (p *policies) servedVersion(api policyAPI) string {
	obj, ok, err := p.crds[api.kind].GetStore().GetByKey(api.crdName())
	if err != nil || !ok {
		return ""
	}
	crd, ok := obj.(*unstructured.Unstructured)
	if !ok || crd.GetName() != api.crdName() || crd.GetDeletionTimestamp() != nil || !crdEstablished(crd) {
		return ""
	}
	served := crdServedVersions(crd)
	for _, v := range api.versions {
		if served[v] {
			return v
		}
	}
	return ""
}

// reconcile makes the informers of every policy API follow its CRD. It
// returns false if ctx is done.
func (p *policies) reconcile(ctx context.Context) bool {
	for _, api := range policyAPIs {
		want := p.servedVersion(api)
		cur := p.active[api.kind]
		switch {
		case cur == nil && want == "":
			p.logDisabled(api)
		case cur != nil && cur.version == want:
		case want == "":
			p.disable(cur)
		default:
			if !p.enable(ctx, api, want, cur) && ctx.Err() != nil {
				return false
			}
		}
	}
	return true
}

func (p *policies) logDisabled(api policyAPI) {
	if v, ok := p.logged[api.kind]; ok && v == "" {
		return
	}
	p.logged[api.kind] = ""
	p.k.logger().Info(fmt.Sprintf("%s disabled: its CRD is not installed or serves none of the versions weir reads; watching for it", api.kind),
		"crd", api.crdName(), "versions", strings.Join(api.versions, ","))
}

// enable starts informers for version of api and, once they have synced,
// hands the store over to them from cur (if any) without removing objects
// both have. It reports false, keeping cur, if ctx is done or the CRD
// changed first.
func (p *policies) enable(ctx context.Context, api policyAPI, version string, cur *policyWatch) bool {
	pw, err := p.start(ctx, api, version)
	if err != nil {
		p.k.fail(err)
		return false
	}
	if !p.waitSynced(ctx, pw) {
		pw.cancel()
		return false
	}
	p.k.policyMu.Lock()
	pw.active = true
	if cur != nil {
		cur.active = false
	}
	err = p.handOver(cur, pw)
	p.k.policyMu.Unlock()
	if cur != nil {
		cur.cancel()
	}
	p.active[api.kind] = pw
	p.logged[api.kind] = version
	p.k.logger().Info(fmt.Sprintf("%s enabled", api.kind), "apiVersion", api.group+"/"+version)
	if err != nil {
		p.k.fail(err)
	}
	return true
}

// disable stops cur and removes its objects from the store: its CRD is gone.
func (p *policies) disable(cur *policyWatch) {
	p.k.policyMu.Lock()
	cur.active = false
	err := p.handOver(cur, nil)
	p.k.policyMu.Unlock()
	cur.cancel()
	delete(p.active, cur.api.kind)
	p.logged[cur.api.kind] = ""
	p.k.logger().Info(fmt.Sprintf("%s disabled: its CRD was removed or stopped serving the versions weir reads; watching for it", cur.api.kind),
		"crd", cur.api.crdName())
	if err != nil {
		p.k.fail(err)
	}
}

// start starts the informers of version of api, inactive.
func (p *policies) start(ctx context.Context, api policyAPI, version string) (*policyWatch, error) {
	wctx, cancel := context.WithCancel(ctx)
	pw := &policyWatch{api: api, version: version, cancel: cancel}
	gvr := k8sschema.GroupVersionResource{Group: api.group, Version: version, Resource: api.resource}
	s := sink{k: p.k, kind: api.kind, convert: func(obj any) (Object, error) { return policyObject(api, obj) }, gate: pw}
	namespaces := p.k.namespaces()
	if api.clusterScoped {
		namespaces = []string{metav1.NamespaceAll}
	}
	for _, ns := range namespaces {
		inf := dynamicinformer.NewFilteredDynamicInformer(p.client, gvr, ns, 0, cache.Indexers{}, nil).Informer()
		if err := inf.SetTransform(stripObject); err != nil {
			cancel()
			return nil, fmt.Errorf("kubernetes source: %s: %w", gvr, err)
		}
		if _, err := inf.AddEventHandler(s.handlers()); err != nil {
			cancel()
			return nil, fmt.Errorf("kubernetes source: %s: %w", gvr, err)
		}
		pw.informers = append(pw.informers, inf)
		pw.synced = append(pw.synced, inf.HasSynced)
	}
	for _, inf := range pw.informers {
		p.run(wctx, inf)
	}
	return pw, nil
}

// waitSynced waits until pw's informers have listed. It returns false if ctx
// is done or the CRD no longer serves pw's version. A CRD event that
// changes nothing for pw is passed on to the next reconcile.
func (p *policies) waitSynced(ctx context.Context, pw *policyWatch) bool {
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	poked := false
	defer func() {
		if poked {
			p.poke()
		}
	}()
	for {
		if allSynced(pw.synced) {
			return true
		}
		select {
		case <-ctx.Done():
			return false
		case <-p.changed:
			poked = true
			if p.servedVersion(pw.api) != pw.version {
				return false
			}
		case <-tick.C:
		}
	}
}

func allSynced(synced []cache.InformerSynced) bool {
	for _, s := range synced {
		if !s() {
			return false
		}
	}
	return true
}

// handOver makes the store hold exactly the objects in the caches of to
// (none if to is nil) in place of those of from (if any). The caller holds
// policyMu.
func (p *policies) handOver(from, to *policyWatch) error {
	keep := map[string]bool{}
	if to != nil {
		for _, inf := range to.informers {
			for _, obj := range inf.GetStore().List() {
				o, err := policyObject(to.api, obj)
				if err != nil {
					p.k.logger().Error("cannot read object; keeping its last good state", "kind", to.api.kind, "error", err)
				} else if _, err := p.k.Store.Upsert(KubeSourceName, o); err != nil {
					return err
				}
				if m, err := metaOf(obj); err == nil {
					keep[m.GetNamespace()+"/"+m.GetName()] = true
				}
			}
		}
	}
	if from == nil {
		return nil
	}
	for _, inf := range from.informers {
		for _, key := range inf.GetStore().ListKeys() {
			ns, name, err := cache.SplitMetaNamespaceKey(key)
			if err != nil || keep[ns+"/"+name] {
				continue
			}
			if _, err := p.k.Store.Delete(from.api.kind, ns, name); err != nil {
				return err
			}
		}
	}
	return nil
}

func metaOf(obj any) (metav1.Object, error) {
	m, ok := obj.(metav1.Object)
	if !ok {
		return nil, fmt.Errorf("want an object with metadata, got %T", obj)
	}
	return m, nil
}

// policyObject converts an informer's unstructured policy object to its
// typed form through JSON.
func policyObject(api policyAPI, obj any) (Object, error) {
	u, ok := obj.(*unstructured.Unstructured)
	if !ok {
		return Object{}, fmt.Errorf("want an unstructured %s, got %T", api.kind, obj)
	}
	j, err := u.MarshalJSON()
	if err != nil {
		return Object{}, fmt.Errorf("%s %s/%s: %w", api.kind, u.GetNamespace(), u.GetName(), err)
	}
	v := api.newValue()
	if err := json.Unmarshal(j, v); err != nil {
		return Object{}, fmt.Errorf("%s %s/%s: %w", api.kind, u.GetNamespace(), u.GetName(), err)
	}
	return Object{Kind: api.kind, Namespace: v.GetNamespace(), Name: v.GetName(), Value: v}, nil
}
