// Package kube turns Kubernetes Services, EndpointSlices and Pods into IR
// hosts and clusters: every port of every Service, with its ready endpoints.
package kube

import (
	"cmp"
	"slices"
	"sort"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/weir-mesh/weir/translator/internal/text"
	"github.com/weir-mesh/weir/translator/ir"
)

// Objects is the read-only view of the store this package needs.
type Objects interface {
	// ServicesWithSlices returns every Service, sorted by namespace/name,
	// and at the same index the EndpointSlices labelled for it.
	ServicesWithSlices() ([]*corev1.Service, [][]*discoveryv1.EndpointSlice)
	PodsIn(namespace string) []*corev1.Pod
	// Pod returns the Pod namespace/name, or nil.
	Pod(namespace, name string) *corev1.Pod
}

// DefaultVersionLabels are the Pod labels that name a version when none are
// configured.
var DefaultVersionLabels = []string{"version"}

// ClusterName returns the IR/Envoy name of a Service port's cluster.
func ClusterName(namespace, service string, port uint32) string {
	var buf [128]byte
	return string(appendClusterName(buf[:0], namespace, service, port))
}

// HostName returns the IR name of a Service port.
func HostName(namespace, service string, port uint32) string {
	var buf [128]byte
	return string(appendHostName(buf[:0], namespace, service, port))
}

// appendClusterName appends ClusterName(namespace, service, port) to b.
func appendClusterName(b []byte, namespace, service string, port uint32) []byte {
	b = strconv.AppendUint(append(b, "outbound|"...), uint64(port), 10)
	return append(appendFQDN(append(b, "||"...), namespace, service), ".svc.cluster.local"...)
}

// appendHostName appends HostName(namespace, service, port) to b.
func appendHostName(b []byte, namespace, service string, port uint32) []byte {
	b = append(appendFQDN(b, namespace, service), ".svc.cluster.local:"...)
	return strconv.AppendUint(b, uint64(port), 10)
}

// appendFQDN appends "<service>.<namespace>" to b.
func appendFQDN(b []byte, namespace, service string) []byte {
	return append(append(append(b, service...), '.'), namespace...)
}

// Index holds every Service port as a host with a default route to its own
// cluster, and lets front-ends resolve Service references.
type Index struct {
	Hosts []ir.Host
	// Clusters points into the list SortedClusters returns.
	Clusters map[string]*ir.Cluster
	clusters []ir.Cluster // sorted by name
	services map[serviceKey]indexed
}

// indexed is a Service and the names of its ports.
type indexed struct {
	svc   *corev1.Service
	ports []PortNames
}

// PortNames are the names of the host and of the cluster of a Service port:
// HostName and ClusterName of its namespace, name and port number.
type PortNames struct {
	Host, Cluster string
}

// serviceKey is a Service's namespace and name.
type serviceKey struct{ namespace, name string }

// Build reads every Service of objs. An endpoint's version is the value of
// the first of versionLabels set on its Pod (DefaultVersionLabels if empty).
// The result is deterministic.
func Build(objs Objects, versionLabels []string) *Index {
	if len(versionLabels) == 0 {
		versionLabels = DefaultVersionLabels
	}
	v := versions{objs: objs, labels: versionLabels}
	services, slices := objs.ServicesWithSlices()
	ports := 0
	for _, svc := range services {
		ports += len(svc.Spec.Ports)
	}
	idx := &Index{
		Hosts:    make([]ir.Host, 0, ports),
		Clusters: make(map[string]*ir.Cluster, ports),
		services: make(map[serviceKey]indexed, len(services)),
	}
	// Every port has a cluster, and a host with one route to one backend:
	// they are allocated together.
	clusters := make([]ir.Cluster, ports)
	routes, backends := make([]ir.Route, ports), make([]ir.Backend, ports)
	names := make([]PortNames, ports)
	// Names are written into buf, then copied into strs.
	var strs text.Slab
	var eps endpointSlab
	var buf [256]byte
	for s, svc := range services {
		if svc.Spec.Type == corev1.ServiceTypeExternalName {
			continue
		}
		first := len(idx.Hosts)
		bare := barePortIndex(svc.Spec.Ports)
		routeName := strs.String(append(append(append(append(buf[:0], "Service/"...), svc.Namespace...), '/'), svc.Name...))
		for i, sp := range svc.Spec.Ports {
			n := len(idx.Hosts)
			port := uint32(sp.Port)
			names[n] = PortNames{
				Host:    strs.String(appendHostName(buf[:0], svc.Namespace, svc.Name, port)),
				Cluster: strs.String(appendClusterName(buf[:0], svc.Namespace, svc.Name, port)),
			}
			c := &clusters[n]
			buildCluster(c, names[n].Cluster, v, &eps, svc, slices[s], sp)
			backends[n] = ir.Backend{Cluster: c.Name, Weight: 1}
			routes[n] = ir.Route{Name: routeName, Backends: backends[n : n+1 : n+1]}
			idx.Hosts = append(idx.Hosts, buildHost(svc, sp, names[n].Host, i == bare, routes[n:n+1:n+1]))
		}
		idx.services[serviceKey{svc.Namespace, svc.Name}] = indexed{svc, names[first:len(idx.Hosts):len(idx.Hosts)]}
	}
	sortHosts(idx.Hosts)
	idx.clusters = uniqueClusters(clusters[:len(idx.Hosts)])
	for i := range idx.clusters {
		idx.Clusters[idx.clusters[i].Name] = &idx.clusters[i]
	}
	return idx
}

// sortHosts sorts hosts by name. Host names are unique (a Service's
// namespace, name and port).
func sortHosts(hosts []ir.Host) {
	sortByName(hosts, func(h *ir.Host) string { return h.Name })
}

// uniqueClusters sorts clusters by name and keeps the last of those of one
// name (two ports of one number, TCP and UDP, have one cluster name).
func uniqueClusters(clusters []ir.Cluster) []ir.Cluster {
	sortByName(clusters, func(c *ir.Cluster) string { return c.Name })
	out := clusters[:0]
	for i := range clusters {
		if i+1 < len(clusters) && clusters[i+1].Name == clusters[i].Name {
			continue
		}
		out = append(out, clusters[i])
	}
	return out
}

// sortByName sorts items by name, those of one name in the order they had.
// It sorts indexes, cheaper to move than items, then moves each item once.
func sortByName[T any](items []T, name func(*T) string) {
	order := make([]named, len(items))
	for i := range items {
		order[i] = named{name(&items[i]), i}
	}
	slices.SortFunc(order, func(a, b named) int {
		if c := strings.Compare(a.name, b.name); c != 0 {
			return c
		}
		return cmp.Compare(a.index, b.index)
	})
	// items[j] takes items[order[j].index], cycle by cycle; -1 marks done.
	for i := range items {
		first := items[i]
		for j := i; order[j].index >= 0; {
			from := order[j].index
			order[j].index = -1
			if from == i {
				items[j] = first
				break
			}
			items[j], j = items[from], from
		}
	}
}

// named is an index of something sorted by name; the name is beside it, as
// comparing reaches it with one load fewer.
type named struct {
	name  string
	index int
}

// Service returns the Service namespace/name, or nil.
func (idx *Index) Service(namespace, name string) *corev1.Service {
	return idx.services[serviceKey{namespace, name}].svc
}

// ServicePorts returns the Service namespace/name and the names of its
// ports, in the order of its spec; nil and nil if there is no such Service.
func (idx *Index) ServicePorts(namespace, name string) (*corev1.Service, []PortNames) {
	s := idx.services[serviceKey{namespace, name}]
	return s.svc, s.ports
}

// SortedClusters returns the clusters sorted by name. The list is the
// Index's own: callers must not modify it.
func (idx *Index) SortedClusters() []ir.Cluster { return idx.clusters }

// barePortIndex picks the port that also answers to names without ":port":
// port 80 if the Service has it, else its first port.
func barePortIndex(ports []corev1.ServicePort) int {
	for i, p := range ports {
		if p.Port == 80 {
			return i
		}
	}
	return 0
}

// buildHost returns the host of a Service port, named name (HostName of
// the port); routes is its default route, to the port's own cluster.
func buildHost(svc *corev1.Service, sp corev1.ServicePort, name string, bare bool, routes []ir.Route) ir.Host {
	clusterIP := svc.Spec.ClusterIP
	if clusterIP == corev1.ClusterIPNone {
		clusterIP = ""
	}
	return ir.Host{
		Name:      name,
		Service:   svc.Name,
		Namespace: svc.Namespace,
		Port:      uint32(sp.Port),
		ClusterIP: clusterIP,
		BareNames: bare,
		Routes:    routes,
	}
}

// buildCluster fills c with the cluster of a Service port, named name
// (ClusterName of the port); slices are the Service's EndpointSlices.
// Endpoints read from slices are taken from eps.
func buildCluster(c *ir.Cluster, name string, v versions, eps *endpointSlab, svc *corev1.Service, slices []*discoveryv1.EndpointSlice, sp corev1.ServicePort) {
	*c = ir.Cluster{
		Name:      name,
		Service:   svc.Name,
		Namespace: svc.Namespace,
		Port:      uint32(sp.Port),
		Protocol:  protocolOf(sp),
	}
	if len(slices) > 0 {
		c.Endpoints = endpointsFromSlices(v, eps, slices, sp.Name)
	} else if len(svc.Spec.Selector) > 0 {
		c.Endpoints = endpointsFromPods(v, v.objs.PodsIn(svc.Namespace), svc.Spec.Selector, sp)
	}
	c.Endpoints = sortedUnique(c.Endpoints)
}

// protocolOf reads appProtocol, then the Istio port-name convention.
func protocolOf(sp corev1.ServicePort) ir.Protocol {
	if sp.AppProtocol != nil {
		switch strings.ToLower(*sp.AppProtocol) {
		case "grpc", "http2", "h2c", "kubernetes.io/h2c":
			return ir.HTTP2
		}
	}
	name := strings.ToLower(sp.Name)
	for _, prefix := range []string{"grpc", "http2", "h2c"} {
		if name == prefix || strings.HasPrefix(name, prefix+"-") {
			return ir.HTTP2
		}
	}
	return ir.HTTP1
}

// endpointsFromSlices returns the ready endpoints of the slices' port named
// portName, in a list taken from eps. A nil ready condition counts as
// ready, as the API documents.
func endpointsFromSlices(v versions, eps *endpointSlab, slices []*discoveryv1.EndpointSlice, portName string) []ir.Endpoint {
	n := 0
	for _, s := range slices {
		for _, ep := range s.Endpoints {
			n += len(ep.Addresses)
		}
	}
	out := eps.take(n)
	for _, s := range slices {
		if s.AddressType == discoveryv1.AddressTypeFQDN {
			continue
		}
		port, ok := slicePort(s.Ports, portName)
		if !ok {
			continue
		}
		for _, ep := range s.Endpoints {
			if ep.Conditions.Ready != nil && !*ep.Conditions.Ready {
				continue
			}
			zone := ""
			if ep.Zone != nil {
				zone = *ep.Zone
			}
			pod := podOf(v.objs, s.Namespace, ep.TargetRef)
			version, labels := v.ofPod(pod), podLabels(pod)
			for _, addr := range ep.Addresses {
				out = append(out, ir.Endpoint{Address: addr, Port: port, Zone: zone, Version: version, Labels: labels})
			}
		}
	}
	return out
}

func slicePort(ports []discoveryv1.EndpointPort, name string) (uint32, bool) {
	for _, p := range ports {
		pn := ""
		if p.Name != nil {
			pn = *p.Name
		}
		if pn == name && p.Port != nil {
			return uint32(*p.Port), true
		}
	}
	return 0, false
}

// endpointsFromPods selects ready Pods with an IP, for Services without
// EndpointSlices (hand-written files).
func endpointsFromPods(v versions, pods []*corev1.Pod, selector map[string]string, sp corev1.ServicePort) []ir.Endpoint {
	sel := labels.SelectorFromSet(selector)
	var out []ir.Endpoint
	for _, pod := range pods {
		if pod.Status.PodIP == "" || !podReady(pod) || !sel.Matches(labels.Set(pod.Labels)) {
			continue
		}
		if port, ok := podTargetPort(pod, sp); ok {
			out = append(out, ir.Endpoint{Address: pod.Status.PodIP, Port: port, Version: v.ofPod(pod), Labels: podLabels(pod)})
		}
	}
	return out
}

// endpointSlab hands out endpoint lists carved from larger blocks: one
// allocation for many lists. A block stays alive while any list from it
// does. The zero value is ready.
type endpointSlab struct{ block []ir.Endpoint }

// endpointBlock is how many endpoints a block holds.
const endpointBlock = 1024

// take returns an empty, non-nil list with room for n endpoints.
func (s *endpointSlab) take(n int) []ir.Endpoint {
	if n == 0 || n > endpointBlock {
		return make([]ir.Endpoint, 0, n)
	}
	if len(s.block) < n {
		s.block = make([]ir.Endpoint, endpointBlock)
	}
	out := s.block[:0:n]
	s.block = s.block[n:]
	return out
}

// versions finds the version of an endpoint's Pod.
type versions struct {
	objs   Objects
	labels []string // in order of precedence
}

// podOf returns the Pod an EndpointSlice endpoint targets (its namespace
// defaults to the slice's), or nil if the target is not a known Pod.
func podOf(objs Objects, namespace string, ref *corev1.ObjectReference) *corev1.Pod {
	if ref == nil || ref.Kind != "Pod" || ref.Name == "" {
		return nil
	}
	if ref.Namespace != "" {
		namespace = ref.Namespace
	}
	return objs.Pod(namespace, ref.Name)
}

// podLabels returns pod's labels, or nil for a nil pod.
func podLabels(pod *corev1.Pod) map[string]string {
	if pod == nil {
		return nil
	}
	return pod.Labels
}

// ofPod returns the value of the first version label set to a non-empty
// value on pod, or "" (also for a nil pod).
func (v versions) ofPod(pod *corev1.Pod) string {
	if pod == nil {
		return ""
	}
	for _, l := range v.labels {
		if val := pod.Labels[l]; val != "" {
			return val
		}
	}
	return ""
}

// podReady is false for finished Pods and Pods whose Ready condition is False.
func podReady(pod *corev1.Pod) bool {
	if pod.Status.Phase == corev1.PodSucceeded || pod.Status.Phase == corev1.PodFailed || pod.DeletionTimestamp != nil {
		return false
	}
	for _, c := range pod.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return true
}

func podTargetPort(pod *corev1.Pod, sp corev1.ServicePort) (uint32, bool) {
	tp := sp.TargetPort
	if tp.StrVal == "" {
		if tp.IntVal != 0 {
			return uint32(tp.IntVal), true
		}
		return uint32(sp.Port), true
	}
	for _, c := range pod.Spec.Containers {
		for _, cp := range c.Ports {
			if cp.Name == tp.StrVal {
				return uint32(cp.ContainerPort), true
			}
		}
	}
	return 0, false
}

// sortedUnique sorts endpoints by zone, address and port, and drops
// duplicates (an address listed by two slices while they are rebalanced).
func sortedUnique(eps []ir.Endpoint) []ir.Endpoint {
	less := func(i, j int) bool {
		if eps[i].Zone != eps[j].Zone {
			return eps[i].Zone < eps[j].Zone
		}
		if eps[i].Address != eps[j].Address {
			return eps[i].Address < eps[j].Address
		}
		return eps[i].Port < eps[j].Port
	}
	// Endpoints in strictly increasing order (the usual case) are what the
	// sort would give; with ties, the sort decides which duplicate stays.
	strict := true
	for i := 1; i < len(eps) && strict; i++ {
		strict = less(i-1, i)
	}
	if !strict {
		sort.Slice(eps, less)
	}
	out := eps[:0]
	for _, ep := range eps {
		if n := len(out); n > 0 && ep.Address == out[n-1].Address && ep.Port == out[n-1].Port {
			continue
		}
		out = append(out, ep)
	}
	return out
}
