package watcher

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	runtimeschema "k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/util/retry"

	"github.com/weir-mesh/weir/api/istio"
	"github.com/weir-mesh/weir/api/smi"
	"github.com/weir-mesh/weir/translator/status"
)

// StatusResource says where the conditions of one kind of object go.
type StatusResource struct {
	// Resource is the API resource the objects are read from.
	Resource runtimeschema.GroupVersionResource
	// HasStatus is true when the resource has a status subresource whose
	// status.conditions weir owns. When false, an Accepted=False condition is
	// reported as a Warning Event on the object instead.
	HasStatus bool
	// LoadBalancer is true for kinds whose status.loadBalancer weir fills
	// with the gateway address (see SetLoadBalancerAddress) while they are
	// accepted.
	LoadBalancer bool
	// GatewayAPI is true for Gateway API kinds: status.conditions and
	// status.listeners (GatewayClass, Gateway) or status.parents (routes)
	// in the spec's shapes, with observedGeneration.
	GatewayAPI bool
}

// statusResources are the kinds whose status weir writes back, by the
// Resource() of the status.Object a front-end writes.
func statusResources() map[string]StatusResource {
	istioResource := func(resource string) StatusResource {
		return StatusResource{Resource: runtimeschema.GroupVersionResource{Group: istio.Group, Version: "v1", Resource: resource}, HasStatus: true}
	}
	out := map[string]StatusResource{
		istio.VirtualServiceKind:              istioResource("virtualservices"),
		istio.DestinationRuleKind:             istioResource("destinationrules"),
		istio.GatewayKind + "." + istio.Group: istioResource("gateways"),
		"Ingress": {
			Resource:     runtimeschema.GroupVersionResource{Group: "networking.k8s.io", Version: "v1", Resource: "ingresses"},
			LoadBalancer: true,
		},
		smi.TrafficSplitKind: {
			Resource:  runtimeschema.GroupVersionResource{Group: smi.SplitGroup, Version: "v1alpha4", Resource: "trafficsplits"},
			HasStatus: true,
		},
		smi.HTTPRouteGroupKind: {
			Resource:  runtimeschema.GroupVersionResource{Group: smi.SpecsGroup, Version: "v1alpha4", Resource: "httproutegroups"},
			HasStatus: true,
		},
	}
	for k, v := range gatewayAPIResources() {
		out[k] = v
	}
	return out
}

// Fields of the Events and patches weir writes.
const (
	fieldManager        = "weir"
	reportingController = "weir"
	eventAction         = "Translate"
	eventNoteLimit      = 1024 // bytes; events.k8s.io/v1 rejects longer notes
	eventNameHashLen    = 16
)

// StatusWriter writes the conditions the translator computed back to the
// objects they are about. It is safe for concurrent use; calls to Write are
// serialized.
//
// It remembers what it last wrote for each object, so an unchanged object
// costs no API call; it also reads the live object before writing, so a new
// StatusWriter (a restart, a new leader) does not rewrite a status that is
// already right. Call Reset when this replica (re)gains leadership, since
// another replica may have written in the meantime.
type StatusWriter struct {
	dyn      dynamic.Interface
	core     kubernetes.Interface
	log      *slog.Logger
	instance string
	now      func() time.Time

	mu        sync.Mutex
	resources map[string]StatusResource  // guarded by mu
	address   string                     // guarded by mu; for status.loadBalancer
	written   map[objectKey]statusRecord // guarded by mu
	warned    map[string]bool            // guarded by mu; kinds without a StatusResource
}

type objectKey struct{ kind, namespace, name string }

func (k objectKey) String() string { return k.kind + " " + k.namespace + "/" + k.name }

// statusRecord is what the API holds for an object, as far as weir knows: the
// conditions (all of them for status subresources; only Accepted=False for
// Events) and the generation they were computed for.
type statusRecord struct {
	generation int64
	conditions []status.Condition
	// address is the status.loadBalancer address written; "" for none.
	address string
	// extra is the rest of a Gateway API status (listeners, parents).
	extra string
}

func (r statusRecord) equal(o statusRecord) bool {
	return r.generation == o.generation && slices.Equal(r.conditions, o.conditions) && r.address == o.address && r.extra == o.extra
}

// NewStatusWriter returns a writer for TrafficSplit and HTTPRouteGroup; more
// kinds are added with Register. dyn reads objects and patches their status;
// core creates Events. A nil logger means slog.Default().
func NewStatusWriter(dyn dynamic.Interface, core kubernetes.Interface, logger *slog.Logger) *StatusWriter {
	if logger == nil {
		logger = slog.Default()
	}
	instance, err := os.Hostname()
	if err != nil || instance == "" {
		instance = "weir"
	}
	return &StatusWriter{
		dyn: dyn, core: core, log: logger, instance: instance, now: time.Now,
		resources: statusResources(),
		written:   map[objectKey]statusRecord{},
		warned:    map[string]bool{},
	}
}

// Register sets where the conditions of kind go, replacing any previous
// entry (for example to write TrafficSplits through the version the cluster
// serves).
func (w *StatusWriter) Register(kind string, r StatusResource) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.resources[kind] = r
}

// SetLoadBalancerAddress sets the address (an IP or a host name) written to
// status.loadBalancer of accepted objects of LoadBalancer kinds (Ingress);
// "" writes none.
func (w *StatusWriter) SetLoadBalancerAddress(addr string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.address = addr
}

// Reset forgets what was written, so the next Write compares every object
// with its live state.
func (w *StatusWriter) Reset() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.written = map[objectKey]statusRecord{}
}

// Write brings the status of every object in objs up to date, one object
// after another. objs is the whole current set: objects absent from it are
// forgotten. An object that no longer exists is skipped. Kinds with no
// StatusResource are skipped with one WARN log line per kind.
//
// It returns the joined errors of the objects it could not write (wrapped API
// errors, or ctx's error); the others are written. The failed ones are
// retried by the next Write even if their conditions did not change.
func (w *StatusWriter) Write(ctx context.Context, objs []status.Object) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.forgetAbsent(objs)
	var errs []error
	for _, o := range objs {
		if err := ctx.Err(); err != nil {
			return errors.Join(append(errs, err)...)
		}
		if err := w.writeOne(ctx, o); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func (w *StatusWriter) forgetAbsent(objs []status.Object) {
	present := make(map[objectKey]bool, len(objs))
	for _, o := range objs {
		present[objectKey{o.Resource(), o.Namespace, o.Name}] = true
	}
	for k := range w.written {
		if !present[k] {
			delete(w.written, k)
		}
	}
}

func (w *StatusWriter) writeOne(ctx context.Context, o status.Object) error {
	key := objectKey{o.Resource(), o.Namespace, o.Name}
	res, ok := w.resources[o.Resource()]
	if !ok {
		if !w.warned[o.Resource()] {
			w.warned[o.Resource()] = true
			w.log.Warn("status of this kind is not written back", "kind", o.Resource())
		}
		return nil
	}
	want := statusRecord{generation: o.Generation, conditions: sortedConditions(o.Conditions)}
	if !res.HasStatus {
		want.conditions = rejection(want.conditions)
	}
	if res.LoadBalancer && len(rejection(o.Conditions)) == 0 {
		want.address = w.address
	}
	prev, known := w.written[key]
	if known && prev.equal(want) {
		return nil
	}
	var err error
	if res.GatewayAPI {
		want.extra = gatewayAPIExtra(o)
		if known && prev.equal(want) {
			return nil
		}
		err = w.patchGatewayAPI(ctx, res.Resource, o)
	} else if res.HasStatus {
		err = w.patchConditions(ctx, res.Resource, o, want.conditions)
	} else if len(want.conditions) > 0 && (!known || !slices.Equal(prev.conditions, want.conditions) || prev.generation != want.generation) {
		err = w.emitEvent(ctx, res.Resource, o, want.conditions[0])
	}
	if err == nil && want.address != "" && (!known || prev.address != want.address) {
		err = w.patchLoadBalancer(ctx, res.Resource, o, want.address)
	}
	switch {
	case apierrors.IsNotFound(err):
		delete(w.written, key)
		return nil
	case err != nil:
		delete(w.written, key)
		return fmt.Errorf("status of %s: %w", key, err)
	}
	w.written[key] = want
	return nil
}

// patchLoadBalancer sets status.loadBalancer.ingress to addr alone.
func (w *StatusWriter) patchLoadBalancer(ctx context.Context, gvr runtimeschema.GroupVersionResource, o status.Object, addr string) error {
	entry := map[string]string{"hostname": addr}
	if net.ParseIP(addr) != nil {
		entry = map[string]string{"ip": addr}
	}
	body, err := json.Marshal(map[string]any{"status": map[string]any{"loadBalancer": map[string]any{"ingress": []any{entry}}}})
	if err != nil {
		return err
	}
	_, err = w.dyn.Resource(gvr).Namespace(o.Namespace).Patch(ctx, o.Name, types.MergePatchType, body,
		metav1.PatchOptions{FieldManager: fieldManager}, "status")
	return err
}

func sortedConditions(in []status.Condition) []status.Condition {
	out := slices.Clone(in)
	sort.SliceStable(out, func(i, j int) bool { return out[i].Type < out[j].Type })
	return out
}

// rejection returns the Accepted=False condition alone, or nil.
func rejection(conds []status.Condition) []status.Condition {
	for _, c := range conds {
		if c.Type == status.Accepted && c.Status == status.False {
			return []status.Condition{c}
		}
	}
	return nil
}

// patchConditions sets status.conditions of the live object to conds unless
// it already holds them. It returns a NotFound error when the object is gone.
func (w *StatusWriter) patchConditions(ctx context.Context, gvr runtimeschema.GroupVersionResource, o status.Object, conds []status.Condition) error {
	client := w.dyn.Resource(gvr).Namespace(o.Namespace)
	return retry.RetryOnConflict(retry.DefaultRetry, func() error {
		live, err := client.Get(ctx, o.Name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		have := liveConditions(live)
		want := w.metaConditions(conds, o.Generation, have)
		if conditionsEqual(have, want) {
			return nil
		}
		patch, err := json.Marshal(map[string]any{
			"metadata": map[string]any{"resourceVersion": live.GetResourceVersion()},
			"status":   map[string]any{"conditions": want},
		})
		if err != nil {
			return err
		}
		_, err = client.Patch(ctx, o.Name, types.MergePatchType, patch, metav1.PatchOptions{FieldManager: fieldManager}, "status")
		if apierrors.IsNotFound(err) {
			return w.explainNotFound(ctx, gvr, o, err)
		}
		return err
	})
}

// explainNotFound tells "deleted meanwhile" (NotFound is returned) from "the
// resource has no status subresource" (another error, which must not wrap
// patchErr or it would read as NotFound).
func (w *StatusWriter) explainNotFound(ctx context.Context, gvr runtimeschema.GroupVersionResource, o status.Object, patchErr error) error {
	_, err := w.dyn.Resource(gvr).Namespace(o.Namespace).Get(ctx, o.Name, metav1.GetOptions{})
	if err != nil {
		return err
	}
	return fmt.Errorf("%s has no status subresource (is its CRD installed with subresources.status?): %s", gvr, patchErr.Error())
}

// liveConditions returns the object's status.conditions; nil when it has
// none or they do not decode (they are then overwritten).
func liveConditions(obj *unstructured.Unstructured) []metav1.Condition {
	raw, ok, err := unstructured.NestedFieldNoCopy(obj.Object, "status")
	if err != nil || !ok {
		return nil
	}
	m, ok := raw.(map[string]any)
	if !ok {
		return nil
	}
	var st struct {
		Conditions []metav1.Condition `json:"conditions"`
	}
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(m, &st); err != nil {
		return nil
	}
	return st.Conditions
}

// metaConditions turns conds into API conditions, keeping the live
// lastTransitionTime of a condition whose type and status did not change.
func (w *StatusWriter) metaConditions(conds []status.Condition, generation int64, have []metav1.Condition) []metav1.Condition {
	now := metav1.NewTime(w.now()).Rfc3339Copy()
	out := make([]metav1.Condition, 0, len(conds))
	for _, c := range conds {
		mc := metav1.Condition{
			Type: c.Type, Status: metav1.ConditionStatus(c.Status), Reason: c.Reason, Message: c.Message,
			ObservedGeneration: generation, LastTransitionTime: now,
		}
		if h := findCondition(have, c.Type); h != nil && h.Status == mc.Status && !h.LastTransitionTime.IsZero() {
			mc.LastTransitionTime = h.LastTransitionTime
		}
		out = append(out, mc)
	}
	return out
}

func findCondition(conds []metav1.Condition, t string) *metav1.Condition {
	for i := range conds {
		if conds[i].Type == t {
			return &conds[i]
		}
	}
	return nil
}

// conditionsEqual compares two sets of conditions regardless of order.
func conditionsEqual(have, want []metav1.Condition) bool {
	if len(have) != len(want) {
		return false
	}
	for _, c := range want {
		h := findCondition(have, c.Type)
		if h == nil || h.Status != c.Status || h.Reason != c.Reason || h.Message != c.Message ||
			h.ObservedGeneration != c.ObservedGeneration || !h.LastTransitionTime.Equal(&c.LastTransitionTime) {
			return false
		}
	}
	return true
}

// emitEvent reports a rejection as a Warning Event regarding the live object.
// The Event's name is derived from the object's UID, generation and the
// condition, so an Event that already exists (written before a restart or by
// a previous leader) is not emitted twice. It returns a NotFound error when
// the object is gone.
func (w *StatusWriter) emitEvent(ctx context.Context, gvr runtimeschema.GroupVersionResource, o status.Object, c status.Condition) error {
	live, err := w.dyn.Resource(gvr).Namespace(o.Namespace).Get(ctx, o.Name, metav1.GetOptions{})
	if err != nil {
		return err
	}
	ev := &eventsv1.Event{
		ObjectMeta:          metav1.ObjectMeta{Name: eventName(live, o.Generation, c), Namespace: o.Namespace},
		EventTime:           metav1.NewMicroTime(w.now()),
		ReportingController: reportingController,
		ReportingInstance:   w.instance,
		Action:              eventAction,
		Reason:              c.Reason,
		Note:                truncateUTF8(c.Message, eventNoteLimit),
		Type:                corev1.EventTypeWarning,
		Regarding: corev1.ObjectReference{
			APIVersion: gvr.GroupVersion().String(), Kind: o.Kind,
			Namespace: o.Namespace, Name: o.Name,
			UID: live.GetUID(), ResourceVersion: live.GetResourceVersion(),
		},
	}
	_, err = w.core.EventsV1().Events(o.Namespace).Create(ctx, ev, metav1.CreateOptions{FieldManager: fieldManager})
	if apierrors.IsAlreadyExists(err) {
		return nil
	}
	return err
}

func eventName(live *unstructured.Unstructured, generation int64, c status.Condition) string {
	sum := sha256.Sum256([]byte(strings.Join([]string{string(live.GetUID()), fmt.Sprint(generation), c.Type, c.Status, c.Reason, c.Message}, "\x00")))
	suffix := "." + hex.EncodeToString(sum[:])[:eventNameHashLen]
	name := live.GetName()
	if limit := 253 - len(suffix); len(name) > limit {
		name = strings.TrimRight(name[:limit], "-.")
	}
	return name + suffix
}

func truncateUTF8(s string, limit int) string {
	if len(s) <= limit {
		return s
	}
	for limit > 0 && !utf8.RuneStart(s[limit]) {
		limit--
	}
	return s[:limit]
}
