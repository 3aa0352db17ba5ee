package main

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/util/retry"
)

// The mesh's objects as the API server holds them: the same Services,
// EndpointSlices and TrafficSplits that gen.go writes as files.

var trafficSplitGVR = schema.GroupVersionResource{Group: "split.smi-spec.io", Version: "v1alpha4", Resource: "trafficsplits"}

// versionName is the Service of version v (0: the root) of service i.
func versionName(i, v int) string {
	if v == 0 {
		return svcName(i)
	}
	return fmt.Sprintf("%s-v%d", svcName(i), v)
}

// kubeNamespace is namespace n.
func kubeNamespace(n int) *corev1.Namespace {
	return &corev1.Namespace{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Namespace"}, ObjectMeta: metav1.ObjectMeta{Name: nsName(n)}}
}

// kubeService is the Service of version v (0: the root) of service i as
// its file has it (the API server fills in the port's protocol and
// target port).
func (m *mesh) kubeService(i, v int) *corev1.Service {
	return &corev1.Service{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Service"},
		ObjectMeta: metav1.ObjectMeta{Name: versionName(i, v), Namespace: m.nsOf(i)},
		Spec: corev1.ServiceSpec{
			ClusterIP: fmt.Sprintf("10.%d.%d.%d", 96+v, i/256%256, i%256),
			Ports:     []corev1.ServicePort{{Name: "http", Port: 8080}},
		},
	}
}

// kubeSlice is the EndpointSlice of version v of service i; that of the
// root (v 0) holds every endpoint of both versions. Every endpoint of one
// slice has the port of the first (the mesh's backends share one).
func (m *mesh) kubeSlice(i, v int) (*discoveryv1.EndpointSlice, error) {
	var eps []string
	for _, ver := range []int{1, 2} {
		if v == 0 || v == ver {
			eps = append(eps, m.endpoints(i, ver)...)
		}
	}
	s := &discoveryv1.EndpointSlice{
		TypeMeta: metav1.TypeMeta{APIVersion: "discovery.k8s.io/v1", Kind: "EndpointSlice"},
		ObjectMeta: metav1.ObjectMeta{Name: versionName(i, v) + "-0", Namespace: m.nsOf(i),
			Labels: map[string]string{discoveryv1.LabelServiceName: versionName(i, v)}},
		AddressType: discoveryv1.AddressTypeIPv4,
	}
	ready := true
	for k, ep := range eps {
		host, port, err := net.SplitHostPort(ep)
		if err != nil {
			return nil, err
		}
		if k == 0 {
			p, err := strconv.ParseInt(port, 10, 32)
			if err != nil {
				return nil, err
			}
			name, proto, p32 := "http", corev1.ProtocolTCP, int32(p)
			s.Ports = []discoveryv1.EndpointPort{{Name: &name, Protocol: &proto, Port: &p32}}
		}
		s.Endpoints = append(s.Endpoints, discoveryv1.Endpoint{Addresses: []string{host}, Conditions: discoveryv1.EndpointConditions{Ready: &ready}})
	}
	return s, nil
}

// kubeSplit is the TrafficSplit of service i with its current weights.
func (m *mesh) kubeSplit(i int) *unstructured.Unstructured {
	ts := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": trafficSplitGVR.GroupVersion().String(),
		"kind":       "TrafficSplit",
		"metadata":   map[string]any{"name": svcName(i), "namespace": m.nsOf(i)},
		"spec":       map[string]any{"service": svcName(i), "backends": m.splitBackends(i)},
	}}
	return ts
}

// splitBackends is spec.backends of service i's TrafficSplit.
func (m *mesh) splitBackends(i int) []any {
	w, ok := m.weights[i]
	if !ok {
		w = [2]int{90, 10}
	}
	return []any{
		map[string]any{"service": versionName(i, 1), "weight": int64(w[0])},
		map[string]any{"service": versionName(i, 2), "weight": int64(w[1])},
	}
}

// kubeMesh is a mesh held by an API server. Its changes are API writes:
// a weight change updates a TrafficSplit, an added endpoint updates the
// version's EndpointSlice (one write; the root's slice keeps the
// endpoints it was created with). It is a meshWriter safe for concurrent
// use; writes of one slice land in the order they were called.
type kubeMesh struct {
	m      *mesh
	client kubernetes.Interface
	splits dynamic.NamespaceableResourceInterface

	mu         sync.Mutex             // guards m's weights and extra, versions and sliceLocks
	versions   map[string]string      // resourceVersion of each slice ("ns/name") as last written
	sliceLocks map[string]*sync.Mutex // held over a slice's build and write
}

func newKubeMesh(m *mesh, client kubernetes.Interface, dyn dynamic.Interface) *kubeMesh {
	return &kubeMesh{m: m, client: client, splits: dyn.Resource(trafficSplitGVR),
		versions: map[string]string{}, sliceLocks: map[string]*sync.Mutex{}}
}

// kubeMeshWriters is how many writes the harness has in flight at once,
// creating the mesh or in a burst.
const kubeMeshWriters = 32

func (k *kubeMesh) inFlight() int { return kubeMeshWriters }

// create creates every namespace and object of the mesh, the objects
// kubeMeshWriters at a time, and returns how many objects it created.
// The TrafficSplit CRD must be Established.
func (k *kubeMesh) create(ctx context.Context) (int, error) {
	for n := range k.m.namespaces() {
		if err := k.call(ctx, func(ctx context.Context) error {
			_, err := k.client.CoreV1().Namespaces().Create(ctx, kubeNamespace(n), metav1.CreateOptions{})
			return err
		}); err != nil {
			return 0, fmt.Errorf("create namespace %s: %w", nsName(n), err)
		}
	}
	jobs := make(chan func(context.Context) error)
	errs := make(chan error, kubeMeshWriters)
	var wg sync.WaitGroup
	for range kubeMeshWriters {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var first error
			for job := range jobs {
				if first == nil {
					first = k.call(ctx, job)
				}
			}
			errs <- first
		}()
	}
	created := 0
	for i := range k.m.services {
		for _, job := range k.serviceJobs(i) {
			jobs <- job
			created++
		}
	}
	close(jobs)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			return created, err
		}
	}
	return created, nil
}

// serviceJobs are the creations of service i's objects: three Services,
// their slices and the TrafficSplit.
func (k *kubeMesh) serviceJobs(i int) []func(context.Context) error {
	ns := k.m.nsOf(i)
	var jobs []func(context.Context) error
	for v := range 3 {
		jobs = append(jobs,
			func(ctx context.Context) error {
				_, err := k.client.CoreV1().Services(ns).Create(ctx, k.m.kubeService(i, v), metav1.CreateOptions{})
				return wrapObject(err, "create Service", ns, versionName(i, v))
			},
			func(ctx context.Context) error {
				s, err := k.slice(i, v)
				if err != nil {
					return err
				}
				got, err := k.client.DiscoveryV1().EndpointSlices(ns).Create(ctx, s, metav1.CreateOptions{})
				if err != nil {
					return wrapObject(err, "create EndpointSlice", ns, s.Name)
				}
				k.setVersion(got)
				return nil
			})
	}
	return append(jobs, func(ctx context.Context) error {
		k.mu.Lock()
		ts := k.m.kubeSplit(i)
		k.mu.Unlock()
		_, err := k.splits.Namespace(ns).Create(ctx, ts, metav1.CreateOptions{})
		return wrapObject(err, "create TrafficSplit", ns, svcName(i))
	})
}

func wrapObject(err error, what, ns, name string) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("%s %s/%s: %w", what, ns, name, err)
}

// call runs op with a context bounded by kubeOpTimeout.
func (k *kubeMesh) call(ctx context.Context, op func(context.Context) error) error {
	ctx, cancel := context.WithTimeout(ctx, kubeOpTimeout)
	defer cancel()
	return op(ctx)
}

// slice builds the slice of version v of service i as it now is, with
// the resourceVersion last written.
func (k *kubeMesh) slice(i, v int) (*discoveryv1.EndpointSlice, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	s, err := k.m.kubeSlice(i, v)
	if err != nil {
		return nil, err
	}
	s.ResourceVersion = k.versions[s.Namespace+"/"+s.Name]
	return s, nil
}

func (k *kubeMesh) setVersion(s *discoveryv1.EndpointSlice) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.versions[s.Namespace+"/"+s.Name] = s.ResourceVersion
}

func (k *kubeMesh) sliceLock(i, v int) *sync.Mutex {
	key := k.m.nsOf(i) + "/" + versionName(i, v)
	k.mu.Lock()
	defer k.mu.Unlock()
	l := k.sliceLocks[key]
	if l == nil {
		l = &sync.Mutex{}
		k.sliceLocks[key] = l
	}
	return l
}

// setWeights updates service i's TrafficSplit: a read, then an Update
// (again if weir's status write came in between). The time returned is
// taken just before the Update that succeeded.
func (k *kubeMesh) setWeights(i, v1, v2 int) (time.Time, error) {
	k.mu.Lock()
	k.m.weights[i] = [2]int{v1, v2}
	backends := k.m.splitBackends(i)
	k.mu.Unlock()
	splits := k.splits.Namespace(k.m.nsOf(i))
	var t0 time.Time
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		return k.call(context.Background(), func(ctx context.Context) error {
			ts, err := splits.Get(ctx, svcName(i), metav1.GetOptions{})
			if err != nil {
				return err
			}
			if err := unstructured.SetNestedSlice(ts.Object, backends, "spec", "backends"); err != nil {
				return err
			}
			t0 = time.Now()
			_, err = splits.Update(ctx, ts, metav1.UpdateOptions{})
			return err
		})
	})
	return t0, wrapObject(err, "update TrafficSplit", k.m.nsOf(i), svcName(i))
}

// addEndpoint updates the EndpointSlice of version v of service i with
// one more endpoint.
func (k *kubeMesh) addEndpoint(i, v int) error {
	l := k.sliceLock(i, v)
	l.Lock()
	defer l.Unlock()
	k.mu.Lock()
	k.m.extra[[2]int{i, v}]++
	k.mu.Unlock()
	s, err := k.slice(i, v)
	if err != nil {
		return err
	}
	return k.call(context.Background(), func(ctx context.Context) error {
		got, err := k.client.DiscoveryV1().EndpointSlices(s.Namespace).Update(ctx, s, metav1.UpdateOptions{})
		if err != nil {
			return wrapObject(err, "update EndpointSlice", s.Namespace, s.Name)
		}
		k.setVersion(got)
		return nil
	})
}
