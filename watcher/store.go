// Package watcher reads the world (a directory of YAML, or Kubernetes) into a
// go-memdb store and signals when it changed. It never builds Envoy resources.
package watcher

import (
	"fmt"
	"reflect"
	"slices"
	"strings"
	"sync"

	memdb "github.com/hashicorp/go-memdb"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	networkingv1 "k8s.io/api/networking/v1"
	gwapiv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/weir-mesh/weir/api/istio"
	"github.com/weir-mesh/weir/api/smi"
)

// Kind names a table of the store.
type Kind string

// The kinds weir stores.
const (
	KindService        Kind = "Service"
	KindEndpointSlice  Kind = "EndpointSlice"
	KindPod            Kind = "Pod"
	KindTrafficSplit   Kind = "TrafficSplit"
	KindHTTPRouteGroup Kind = "HTTPRouteGroup"
	KindSecret         Kind = "Secret"
	KindIngress        Kind = "Ingress"
	KindVirtualService Kind = "VirtualService"
	// KindDestinationRule and KindIstioGateway are Istio's networking kinds.
	KindDestinationRule Kind = "DestinationRule"
	KindIstioGateway    Kind = "IstioGateway"
	// Gateway API kinds (gateway.networking.k8s.io). GatewayClasses are
	// cluster-scoped: their namespace is "".
	KindGatewayClass   Kind = "GatewayClass"
	KindGateway        Kind = "Gateway"
	KindHTTPRoute      Kind = "HTTPRoute"
	KindReferenceGrant Kind = "ReferenceGrant"
)

// Kinds lists every stored kind in a fixed order.
var Kinds = []Kind{KindService, KindEndpointSlice, KindPod, KindTrafficSplit, KindHTTPRouteGroup,
	KindSecret, KindIngress, KindVirtualService, KindDestinationRule, KindIstioGateway,
	KindGatewayClass, KindGateway, KindHTTPRoute, KindReferenceGrant}

// Object is one decoded object ready for the store. Value is a pointer to the
// typed object: *corev1.Service, *discoveryv1.EndpointSlice, *corev1.Pod,
// *smi.TrafficSplit, *smi.HTTPRouteGroup, *corev1.Secret (only type
// kubernetes.io/tls), *networkingv1.Ingress, *istio.VirtualService,
// *istio.DestinationRule, *istio.Gateway, *gwapiv1.GatewayClass,
// *gwapiv1.Gateway, *gwapiv1.HTTPRoute or *gwapiv1.ReferenceGrant.
type Object struct {
	Kind      Kind
	Namespace string
	Name      string
	Value     any
}

// Key returns "namespace/name".
func (o Object) Key() string { return o.Namespace + "/" + o.Name }

// record is the row stored in every table.
type record struct {
	Key    string // namespace/name
	Ref    string // namespace/name of the object this one points at; "" if none
	Source string // where it came from (a file path, or "kubernetes")
	Value  any
}

func schema() *memdb.DBSchema {
	tables := map[string]*memdb.TableSchema{}
	for _, k := range Kinds {
		tables[string(k)] = &memdb.TableSchema{
			Name: string(k),
			Indexes: map[string]*memdb.IndexSchema{
				"id":     {Name: "id", Unique: true, Indexer: &memdb.StringFieldIndex{Field: "Key"}},
				"ref":    {Name: "ref", AllowMissing: true, Indexer: &memdb.StringFieldIndex{Field: "Ref"}},
				"source": {Name: "source", Indexer: &memdb.StringFieldIndex{Field: "Source"}},
			},
		}
	}
	return &memdb.DBSchema{Tables: tables}
}

// refOf returns the reference the translator follows from an object: an
// EndpointSlice's Service and a TrafficSplit's root Service.
func refOf(o Object) string {
	switch v := o.Value.(type) {
	case *discoveryv1.EndpointSlice:
		if svc := v.Labels[discoveryv1.LabelServiceName]; svc != "" {
			return o.Namespace + "/" + svc
		}
	case *smi.TrafficSplit:
		return o.Namespace + "/" + v.Spec.Service
	}
	return ""
}

// Store holds the objects weir reads. It is safe for concurrent use; readers
// get consistent, immutable snapshots.
type Store struct {
	db      *memdb.MemDB
	changed chan struct{}

	holdMu  sync.Mutex
	holds   int  // guarded by holdMu: Holds not yet released
	pending bool // guarded by holdMu: a write was made while held
}

// NewStore returns an empty store.
func NewStore() (*Store, error) {
	db, err := memdb.NewMemDB(schema())
	if err != nil {
		return nil, fmt.Errorf("store schema: %w", err)
	}
	return &Store{db: db, changed: make(chan struct{}, 1)}, nil
}

// Changed receives a value after one or more writes; several writes between
// two reads coalesce into one signal.
func (s *Store) Changed() <-chan struct{} { return s.changed }

// Hold defers the change signal until the returned release is called
// (once); the writes made in between signal once, at the release. A writer
// holds around writes that belong together (a rescan of a directory of
// manifests), so that a translation the signal starts sees all of them.
func (s *Store) Hold() (release func()) {
	s.holdMu.Lock()
	s.holds++
	s.holdMu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			s.holdMu.Lock()
			s.holds--
			signal := s.holds == 0 && s.pending
			if signal {
				s.pending = false
			}
			s.holdMu.Unlock()
			if signal {
				s.signal()
			}
		})
	}
}

func (s *Store) notify() {
	s.holdMu.Lock()
	held := s.holds > 0
	if held {
		s.pending = true
	}
	s.holdMu.Unlock()
	if !held {
		s.signal()
	}
}

func (s *Store) signal() {
	select {
	case s.changed <- struct{}{}:
	default:
	}
}

// ReplaceSource makes the objects of source exactly objs, in one transaction:
// objects the source held before and no longer holds are deleted. An object
// already stored under the same kind and key by another source is taken over.
// It reports whether anything changed.
func (s *Store) ReplaceSource(source string, objs []Object) (bool, error) {
	txn := s.db.Txn(true)
	defer txn.Abort()
	keep := map[string]bool{}
	changed := false
	for _, o := range objs {
		keep[string(o.Kind)+"\x00"+o.Key()] = true
		c, err := upsert(txn, source, o)
		if err != nil {
			return false, err
		}
		changed = changed || c
	}
	for _, k := range Kinds {
		it, err := txn.Get(string(k), "source", source)
		if err != nil {
			return false, fmt.Errorf("store: list %s of %s: %w", k, source, err)
		}
		var stale []*record
		for raw := it.Next(); raw != nil; raw = it.Next() {
			r := raw.(*record)
			if !keep[string(k)+"\x00"+r.Key] {
				stale = append(stale, r)
			}
		}
		for _, r := range stale {
			if err := txn.Delete(string(k), r); err != nil {
				return false, fmt.Errorf("store: delete %s %s: %w", k, r.Key, err)
			}
			changed = true
		}
	}
	if changed {
		txn.Commit()
		s.notify()
	}
	return changed, nil
}

// Upsert stores one object from source. It reports whether anything changed.
func (s *Store) Upsert(source string, o Object) (bool, error) {
	txn := s.db.Txn(true)
	defer txn.Abort()
	changed, err := upsert(txn, source, o)
	if err != nil || !changed {
		return false, err
	}
	txn.Commit()
	s.notify()
	return true, nil
}

// Delete removes one object. It reports whether it was there.
func (s *Store) Delete(kind Kind, namespace, name string) (bool, error) {
	txn := s.db.Txn(true)
	defer txn.Abort()
	raw, err := txn.First(string(kind), "id", namespace+"/"+name)
	if err != nil {
		return false, fmt.Errorf("store: get %s %s/%s: %w", kind, namespace, name, err)
	}
	if raw == nil {
		return false, nil
	}
	if err := txn.Delete(string(kind), raw); err != nil {
		return false, fmt.Errorf("store: delete %s %s/%s: %w", kind, namespace, name, err)
	}
	txn.Commit()
	s.notify()
	return true, nil
}

// Sources returns the source of every stored object of kind, by key.
func (s *Store) Sources(kind Kind) map[string]string {
	txn := s.db.Txn(false)
	it, err := txn.Get(string(kind), "id")
	if err != nil {
		return nil
	}
	out := map[string]string{}
	for raw := it.Next(); raw != nil; raw = it.Next() {
		r := raw.(*record)
		out[r.Key] = r.Source
	}
	return out
}

func upsert(txn *memdb.Txn, source string, o Object) (bool, error) {
	if o.Value == nil {
		return false, fmt.Errorf("store: %s %s has no value", o.Kind, o.Key())
	}
	r := &record{Key: o.Key(), Ref: refOf(o), Source: source, Value: o.Value}
	old, err := txn.First(string(o.Kind), "id", r.Key)
	if err != nil {
		return false, fmt.Errorf("store: get %s %s: %w", o.Kind, r.Key, err)
	}
	if old != nil && sameRecord(old.(*record), r) {
		return false, nil
	}
	if err := txn.Insert(string(o.Kind), r); err != nil {
		return false, fmt.Errorf("store: insert %s %s: %w", o.Kind, r.Key, err)
	}
	return true, nil
}

// equalValues compares stored objects; the store only holds plain data.
func equalValues(a, b any) bool { return reflect.DeepEqual(a, b) }

func sameRecord(a, b *record) bool {
	return a.Source == b.Source && a.Ref == b.Ref && equalValues(a.Value, b.Value)
}

// Snapshot returns a consistent read-only view of the store at this instant.
// It is never affected by later writes.
func (s *Store) Snapshot() *Snapshot { return &Snapshot{txn: s.db.Txn(false)} }

// Snapshot is an immutable view of the store. Lists are sorted by
// namespace/name. Callers must not modify returned objects or slices. It is
// safe for concurrent use.
type Snapshot struct {
	txn *memdb.Txn

	slicesOnce sync.Once
	// sliceGroups holds the EndpointSlices of each Service that has some,
	// sorted by the Service's key, each list sorted; built on first use.
	sliceGroups []sliceGroup
}

// sliceGroup is the EndpointSlices labelled for one Service.
type sliceGroup struct {
	ref    string // the Service's key, namespace/name
	slices []*discoveryv1.EndpointSlice
}

func (sn *Snapshot) records(kind Kind, index string, args ...any) []*record {
	it, err := sn.txn.Get(string(kind), index, args...)
	if err != nil {
		// Only an unknown table or index fails here: a programming error.
		panic(fmt.Sprintf("store: list %s by %s: %v", kind, index, err))
	}
	var out []*record
	for raw := it.Next(); raw != nil; raw = it.Next() {
		out = append(out, raw.(*record))
	}
	return out
}

// list returns the values of kind found by index and args, sorted by key.
// A value not a *T is a programming error: it panics.
func list[T any](sn *Snapshot, kind Kind, index string, args ...any) []*T {
	rs := sn.records(kind, index, args...)
	sortRecords(rs)
	out := make([]*T, len(rs))
	for i, r := range rs {
		out[i] = r.Value.(*T)
	}
	return out
}

// sortRecords sorts by Key. Most lists come from the "id" index, already in
// order, which the check finds in one pass.
func sortRecords(rs []*record) {
	byKey := func(a, b *record) int { return strings.Compare(a.Key, b.Key) }
	if !slices.IsSortedFunc(rs, byKey) {
		slices.SortFunc(rs, byKey)
	}
}

func (sn *Snapshot) get(kind Kind, namespace, name string) any {
	raw, err := sn.txn.First(string(kind), "id", namespace+"/"+name)
	if err != nil {
		panic(fmt.Sprintf("store: get %s: %v", kind, err))
	}
	if raw == nil {
		return nil
	}
	return raw.(*record).Value
}

// Services returns every Service.
func (sn *Snapshot) Services() []*corev1.Service {
	return list[corev1.Service](sn, KindService, "id")
}

// Service returns the Service namespace/name, or nil.
func (sn *Snapshot) Service(namespace, name string) *corev1.Service {
	v, _ := sn.get(KindService, namespace, name).(*corev1.Service)
	return v
}

// EndpointSlicesFor returns the EndpointSlices labelled for Service
// namespace/name. The first call of it or of ServicesWithSlices groups
// every EndpointSlice by Service in one scan.
func (sn *Snapshot) EndpointSlicesFor(namespace, service string) []*discoveryv1.EndpointSlice {
	groups := sn.endpointSliceGroups()
	i, ok := slices.BinarySearchFunc(groups, namespace+"/"+service, func(g sliceGroup, ref string) int { return strings.Compare(g.ref, ref) })
	if !ok {
		return nil
	}
	return groups[i].slices
}

// ServicesWithSlices returns every Service (as Services does) and, at the
// same index, the EndpointSlices labelled for it (as EndpointSlicesFor
// does). It is cheaper than asking for each Service's slices.
func (sn *Snapshot) ServicesWithSlices() ([]*corev1.Service, [][]*discoveryv1.EndpointSlice) {
	rs := sn.records(KindService, "id")
	sortRecords(rs)
	groups := sn.endpointSliceGroups()
	services, slices := make([]*corev1.Service, len(rs)), make([][]*discoveryv1.EndpointSlice, len(rs))
	g := 0
	for i, r := range rs {
		services[i] = r.Value.(*corev1.Service)
		// Both lists are sorted by key: one pass joins them.
		for g < len(groups) && groups[g].ref < r.Key {
			g++
		}
		if g < len(groups) && groups[g].ref == r.Key {
			slices[i] = groups[g].slices
		}
	}
	return services, slices
}

func (sn *Snapshot) endpointSliceGroups() []sliceGroup {
	sn.slicesOnce.Do(sn.groupEndpointSlices)
	return sn.sliceGroups
}

// groupEndpointSlices fills sliceGroups from the "ref" index, which leaves
// out slices without a Service label. Each list's capacity is its length,
// so that a caller's append cannot write into another's.
func (sn *Snapshot) groupEndpointSlices() {
	rs := sn.records(KindEndpointSlice, "ref")
	all := make([]*discoveryv1.EndpointSlice, len(rs))
	sn.sliceGroups = make([]sliceGroup, 0, len(rs))
	for start := 0; start < len(rs); {
		end := start + 1
		for end < len(rs) && rs[end].Ref == rs[start].Ref {
			end++
		}
		// The index lists a Service's slices together, ordered by key;
		// the sort here does not depend on that order.
		group := rs[start:end]
		sortRecords(group)
		for i, r := range group {
			all[start+i] = r.Value.(*discoveryv1.EndpointSlice)
		}
		sn.sliceGroups = append(sn.sliceGroups, sliceGroup{ref: rs[start].Ref, slices: all[start:end:end]})
		start = end
	}
	byRef := func(a, b sliceGroup) int { return strings.Compare(a.ref, b.ref) }
	if !slices.IsSortedFunc(sn.sliceGroups, byRef) {
		slices.SortFunc(sn.sliceGroups, byRef)
	}
}

// PodsIn returns the Pods of a namespace.
func (sn *Snapshot) PodsIn(namespace string) []*corev1.Pod {
	return list[corev1.Pod](sn, KindPod, "id_prefix", namespace+"/")
}

// Pod returns the Pod namespace/name, or nil.
func (sn *Snapshot) Pod(namespace, name string) *corev1.Pod {
	v, _ := sn.get(KindPod, namespace, name).(*corev1.Pod)
	return v
}

// TrafficSplits returns every TrafficSplit.
func (sn *Snapshot) TrafficSplits() []*smi.TrafficSplit {
	return list[smi.TrafficSplit](sn, KindTrafficSplit, "id")
}

// TrafficSplitsFor returns the TrafficSplits whose root is Service namespace/name.
func (sn *Snapshot) TrafficSplitsFor(namespace, root string) []*smi.TrafficSplit {
	return list[smi.TrafficSplit](sn, KindTrafficSplit, "ref", namespace+"/"+root)
}

// HTTPRouteGroups returns every HTTPRouteGroup.
func (sn *Snapshot) HTTPRouteGroups() []*smi.HTTPRouteGroup {
	return list[smi.HTTPRouteGroup](sn, KindHTTPRouteGroup, "id")
}

// HTTPRouteGroup returns the HTTPRouteGroup namespace/name, or nil.
func (sn *Snapshot) HTTPRouteGroup(namespace, name string) *smi.HTTPRouteGroup {
	v, _ := sn.get(KindHTTPRouteGroup, namespace, name).(*smi.HTTPRouteGroup)
	return v
}

// Secret returns the TLS Secret namespace/name, or nil.
func (sn *Snapshot) Secret(namespace, name string) *corev1.Secret {
	v, _ := sn.get(KindSecret, namespace, name).(*corev1.Secret)
	return v
}

// Ingresses returns every Ingress.
func (sn *Snapshot) Ingresses() []*networkingv1.Ingress {
	return list[networkingv1.Ingress](sn, KindIngress, "id")
}

// VirtualServices returns every Istio VirtualService.
func (sn *Snapshot) VirtualServices() []*istio.VirtualService {
	return list[istio.VirtualService](sn, KindVirtualService, "id")
}

// DestinationRules returns every Istio DestinationRule.
func (sn *Snapshot) DestinationRules() []*istio.DestinationRule {
	return list[istio.DestinationRule](sn, KindDestinationRule, "id")
}

// IstioGateways returns every Istio Gateway.
func (sn *Snapshot) IstioGateways() []*istio.Gateway {
	return list[istio.Gateway](sn, KindIstioGateway, "id")
}

// GatewayClasses returns every Gateway API GatewayClass.
func (sn *Snapshot) GatewayClasses() []*gwapiv1.GatewayClass {
	return list[gwapiv1.GatewayClass](sn, KindGatewayClass, "id")
}

// Gateways returns every Gateway API Gateway.
func (sn *Snapshot) Gateways() []*gwapiv1.Gateway {
	return list[gwapiv1.Gateway](sn, KindGateway, "id")
}

// HTTPRoutes returns every Gateway API HTTPRoute.
func (sn *Snapshot) HTTPRoutes() []*gwapiv1.HTTPRoute {
	return list[gwapiv1.HTTPRoute](sn, KindHTTPRoute, "id")
}

// ReferenceGrants returns every Gateway API ReferenceGrant.
func (sn *Snapshot) ReferenceGrants() []*gwapiv1.ReferenceGrant {
	return list[gwapiv1.ReferenceGrant](sn, KindReferenceGrant, "id")
}
