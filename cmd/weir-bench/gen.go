package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// mesh is a generated set of manifests in a directory: services services,
// each a root Service and two versions (v1, v2) with their EndpointSlices,
// and a TrafficSplit of the root, spread over namespaces of perNS services.
//
// Layout per namespace: services.yaml, splits.yaml, and endpoints-K.yaml
// holding the slices of slicesPerFile services, so that a weight change or
// an endpoint change rewrites one small file.
type mesh struct {
	dir      string
	services int
	perNS    int
	// weights are the (v1, v2) weights by service index; missing: 90/10.
	weights map[int][2]int
	// extra are added endpoints (beyond the first three) of a version's
	// slice, by service index and version.
	extra map[[2]int]int
	// backend returns the address and port of endpoint e of version v
	// (1 or 2) of service i.
	backend func(i, v, e int) (string, int)
}

const slicesPerFile = 10

func newMesh(dir string, services, perNS int) *mesh {
	return &mesh{dir: dir, services: services, perNS: perNS, weights: map[int][2]int{}, extra: map[[2]int]int{},
		backend: fakeBackend}
}

// fakeBackend gives each endpoint a distinct address; nothing listens there.
func fakeBackend(i, v, e int) (string, int) {
	return fmt.Sprintf("10.%d.%d.%d", v*16+e%16, i/256%256, i%256), 8080
}

func (m *mesh) namespaces() int { return (m.services + m.perNS - 1) / m.perNS }

func nsName(n int) string { return fmt.Sprintf("bench-%03d", n) }

func svcName(i int) string { return fmt.Sprintf("svc-%05d", i) }

// nsOf returns the namespace of service i.
func (m *mesh) nsOf(i int) string { return nsName(i / m.perNS) }

// services of namespace n, as service indexes.
func (m *mesh) servicesIn(n int) []int {
	var out []int
	for i := n * m.perNS; i < min((n+1)*m.perNS, m.services); i++ {
		out = append(out, i)
	}
	return out
}

// writeAll writes every file of the mesh, after removing what dir held.
func (m *mesh) writeAll() error {
	if err := os.RemoveAll(m.dir); err != nil {
		return err
	}
	for n := range m.namespaces() {
		if err := m.writeNamespace(n); err != nil {
			return err
		}
	}
	return nil
}

func (m *mesh) writeNamespace(n int) error {
	if err := os.MkdirAll(filepath.Join(m.dir, nsName(n)), 0o755); err != nil {
		return err
	}
	if err := m.writeServices(n); err != nil {
		return err
	}
	if err := m.writeSplits(n); err != nil {
		return err
	}
	svcs := m.servicesIn(n)
	for k := 0; k*slicesPerFile < len(svcs); k++ {
		if err := m.writeEndpoints(n, k); err != nil {
			return err
		}
	}
	return nil
}

func (m *mesh) writeServices(n int) error {
	var b strings.Builder
	for _, i := range m.servicesIn(n) {
		for v, name := range []string{svcName(i), svcName(i) + "-v1", svcName(i) + "-v2"} {
			fmt.Fprintf(&b, "apiVersion: v1\nkind: Service\nmetadata: {name: %s, namespace: %s}\nspec:\n  clusterIP: 10.%d.%d.%d\n  ports:\n  - {name: http, port: 8080}\n---\n",
				name, m.nsOf(i), 96+v, i/256%256, i%256)
		}
	}
	return writeAtomic(filepath.Join(m.dir, nsName(n), "services.yaml"), b.String())
}

// writeSplits rewrites the TrafficSplits of namespace n.
func (m *mesh) writeSplits(n int) error {
	var b strings.Builder
	for _, i := range m.servicesIn(n) {
		w, ok := m.weights[i]
		if !ok {
			w = [2]int{90, 10}
		}
		fmt.Fprintf(&b, "apiVersion: split.smi-spec.io/v1alpha4\nkind: TrafficSplit\nmetadata: {name: %s, namespace: %s}\nspec:\n  service: %s\n  backends:\n  - {service: %s-v1, weight: %d}\n  - {service: %s-v2, weight: %d}\n---\n",
			svcName(i), m.nsOf(i), svcName(i), svcName(i), w[0], svcName(i), w[1])
	}
	return writeAtomic(filepath.Join(m.dir, nsName(n), "splits.yaml"), b.String())
}

// endpointsFile returns the namespace and file number of service i's slices.
func (m *mesh) endpointsFile(i int) (int, int) {
	n := i / m.perNS
	return n, (i - n*m.perNS) / slicesPerFile
}

// writeEndpoints rewrites file k of namespace n: the slices of the root
// (every endpoint of both versions) and of each version.
func (m *mesh) writeEndpoints(n, k int) error {
	var b strings.Builder
	svcs := m.servicesIn(n)
	for _, i := range svcs[k*slicesPerFile : min((k+1)*slicesPerFile, len(svcs))] {
		var root []string
		for v := 1; v <= 2; v++ {
			eps := m.endpoints(i, v)
			root = append(root, eps...)
			m.writeSlice(&b, i, fmt.Sprintf("%s-v%d", svcName(i), v), eps)
		}
		m.writeSlice(&b, i, svcName(i), root)
	}
	return writeAtomic(filepath.Join(m.dir, nsName(n), fmt.Sprintf("endpoints-%03d.yaml", k)), b.String())
}

// endpoints returns "address:port" of each endpoint of version v of service i.
func (m *mesh) endpoints(i, v int) []string {
	var out []string
	for e := range 3 + m.extra[[2]int{i, v}] {
		a, p := m.backend(i, v, e)
		out = append(out, fmt.Sprintf("%s:%d", a, p))
	}
	return out
}

// writeSlice writes one slice per distinct port of eps.
func (m *mesh) writeSlice(b *strings.Builder, i int, svc string, eps []string) {
	byPort := map[string][]string{}
	var ports []string
	for _, ep := range eps {
		a, p, _ := strings.Cut(ep, ":")
		if byPort[p] == nil {
			ports = append(ports, p)
		}
		byPort[p] = append(byPort[p], a)
	}
	for s, p := range ports {
		fmt.Fprintf(b, "apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata:\n  name: %s-%d\n  namespace: %s\n  labels: {kubernetes.io/service-name: %s}\naddressType: IPv4\nports:\n- {name: http, port: %s, protocol: TCP}\nendpoints:\n",
			svc, s, m.nsOf(i), svc, p)
		for _, a := range byPort[p] {
			fmt.Fprintf(b, "- addresses: [%s]\n  conditions: {ready: true}\n", a)
		}
		b.WriteString("---\n")
	}
}

// setWeights changes service i's split and rewrites its namespace's splits.
func (m *mesh) setWeights(i, v1, v2 int) error {
	m.weights[i] = [2]int{v1, v2}
	return m.writeSplits(i / m.perNS)
}

// addEndpoint gives version v of service i one more endpoint and rewrites
// the file holding its slices.
func (m *mesh) addEndpoint(i, v int) error {
	m.extra[[2]int{i, v}]++
	return m.writeEndpoints(m.endpointsFile(i))
}

// clusterName is weir's cluster for version v (0: the root) of service i.
func (m *mesh) clusterName(i, v int) string {
	name := svcName(i)
	if v > 0 {
		name = fmt.Sprintf("%s-v%d", name, v)
	}
	return fmt.Sprintf("outbound|8080||%s.%s.svc.cluster.local", name, m.nsOf(i))
}

// hostName is weir's API listener name for service i.
func (m *mesh) hostName(i int) string {
	return fmt.Sprintf("%s.%s.svc.cluster.local:8080", svcName(i), m.nsOf(i))
}

// writeAtomic replaces path in one rename, as editors and kubectl-like
// tools do, so the watcher never reads half a file.
func writeAtomic(path, content string) error {
	tmp := filepath.Join(filepath.Dir(path), "."+filepath.Base(path)+".tmp")
	if err := os.WriteFile(tmp, []byte(content), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
