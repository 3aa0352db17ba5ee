// Command envoygateway drives Envoy Gateway's translation core as a library:
// Gateway API resources -> its IR (internal/gatewayapi) -> xDS resources
// (internal/xds/translator), with N weighted HTTPRoutes, each to two
// backends of three endpoints. It prints one JSON line: the median time of
// a full translation and the process's RSS.
//
// Its module path sits under github.com/envoyproxy/gateway/ so that Go lets
// it import Envoy Gateway's internal packages; it is a module of its own,
// never part of weir's build.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log"
	"os"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	gwapiv1 "sigs.k8s.io/gateway-api/apis/v1"

	egv1a1 "github.com/envoyproxy/gateway/api/v1alpha1"
	"github.com/envoyproxy/gateway/internal/gatewayapi"
	"github.com/envoyproxy/gateway/internal/gatewayapi/resource"
	"github.com/envoyproxy/gateway/internal/logging"
	"github.com/envoyproxy/gateway/internal/xds/translator"
)

const (
	controllerName      = "gateway.envoyproxy.io/gatewayclass-controller"
	controllerNamespace = "envoy-gateway-system"
)

type result struct {
	Peer       string  `json:"peer"`
	Routes     int     `json:"routes"`
	Iterations int     `json:"iterations"`
	MedianMS   float64 `json:"median_ms"`
	RSSBytes   int64   `json:"rss_bytes"`
	HWMBytes   int64   `json:"hwm_bytes"`
	Listeners  int     `json:"listeners"`
	Routes2    int     `json:"route_configurations"`
	Clusters   int     `json:"clusters"`
	Endpoints  int     `json:"load_assignments"`
}

func main() {
	routes := flag.Int("routes", 1000, "HTTPRoutes, each with two weighted backends of three endpoints")
	iterations := flag.Int("iterations", 5, "translations to time (after one warm-up)")
	flag.Parse()
	res, err := run(*routes, *iterations)
	if err != nil {
		log.Fatal(err)
	}
	if err := json.NewEncoder(os.Stdout).Encode(res); err != nil {
		log.Fatal(err)
	}
}

func run(n, iterations int) (result, error) {
	res := result{Peer: "envoy-gateway", Routes: n, Iterations: iterations}
	in := resources(n)
	var times []time.Duration
	for i := range iterations + 1 {
		start := time.Now()
		counts, err := translate(in)
		if err != nil {
			return res, err
		}
		if i > 0 {
			times = append(times, time.Since(start))
		}
		res.Listeners, res.Routes2, res.Clusters, res.Endpoints = counts[0], counts[1], counts[2], counts[3]
		runtime.KeepAlive(counts)
	}
	sort.Slice(times, func(i, j int) bool { return times[i] < times[j] })
	res.MedianMS = float64(times[len(times)/2].Microseconds()) / 1000
	res.RSSBytes, res.HWMBytes = memory()
	if res.Clusters < n {
		return res, fmt.Errorf("%d clusters for %d routes: the translation dropped routes", res.Clusters, n)
	}
	return res, nil
}

// translate runs both of Envoy Gateway's translators, as its controller
// does for each change, and counts the xDS resources.
func translate(in *resource.Resources) ([4]int, error) {
	var counts [4]int
	ctx := context.Background()
	logger := logging.DefaultLogger(io.Discard, egv1a1.LogLevelInfo)
	gt := &gatewayapi.Translator{
		GatewayControllerName: controllerName,
		GatewayClassName:      gwapiv1.ObjectName(in.GatewayClass.Name),
		ControllerNamespace:   controllerNamespace,
		Logger:                logger,
	}
	out, err := gt.Translate(ctx, in)
	if err != nil {
		return counts, fmt.Errorf("gateway API translation: %w", err)
	}
	for key, x := range out.XdsIR {
		xt := &translator.Translator{Logger: logger}
		table, err := xt.Translate(ctx, x)
		if err != nil {
			return counts, fmt.Errorf("xDS translation of %s: %w", key, err)
		}
		for typ, rs := range table.XdsResources {
			switch {
			case strings.HasSuffix(typ, "Listener"):
				counts[0] += len(rs)
			case strings.HasSuffix(typ, "RouteConfiguration"):
				counts[1] += len(rs)
			case strings.HasSuffix(typ, ".Cluster"):
				counts[2] += len(rs)
			case strings.HasSuffix(typ, "ClusterLoadAssignment"):
				counts[3] += len(rs)
			}
		}
	}
	return counts, nil
}

// resources are one GatewayClass and Gateway (an HTTP listener) and n
// HTTPRoutes route-<i> with hostname route-<i>.example.com, each sending
// 90/10 to Services svc-<i>-v1 and svc-<i>-v2 with three ready endpoints.
func resources(n int) *resource.Resources {
	r := resource.NewResources()
	r.GatewayClass = &gwapiv1.GatewayClass{
		ObjectMeta: metav1.ObjectMeta{Name: "eg"},
		Spec:       gwapiv1.GatewayClassSpec{ControllerName: controllerName},
	}
	r.Namespaces = []*corev1.Namespace{{ObjectMeta: metav1.ObjectMeta{Name: "default"}}, {ObjectMeta: metav1.ObjectMeta{Name: controllerNamespace}}}
	// The client certificate the controller installs for Envoy.
	r.Secrets = []*corev1.Secret{{
		ObjectMeta: metav1.ObjectMeta{Namespace: controllerNamespace, Name: "envoy"},
		Type:       corev1.SecretTypeTLS,
		Data:       map[string][]byte{corev1.TLSCertKey: []byte("cert"), corev1.TLSPrivateKeyKey: []byte("key")},
	}}
	r.Gateways = []*gwapiv1.Gateway{{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "gw"},
		Spec: gwapiv1.GatewaySpec{
			GatewayClassName: "eg",
			Listeners:        []gwapiv1.Listener{{Name: "http", Protocol: gwapiv1.HTTPProtocolType, Port: 80}},
		},
	}}
	for i := range n {
		name := "route-" + strconv.Itoa(i)
		var refs []gwapiv1.HTTPBackendRef
		for v, weight := range map[int]int32{1: 90, 2: 10} {
			svc := fmt.Sprintf("svc-%d-v%d", i, v)
			port := gwapiv1.PortNumber(8080)
			refs = append(refs, gwapiv1.HTTPBackendRef{BackendRef: gwapiv1.BackendRef{
				BackendObjectReference: gwapiv1.BackendObjectReference{Name: gwapiv1.ObjectName(svc), Port: &port},
				Weight:                 &weight,
			}})
			r.Services = append(r.Services, service(svc, i, v))
			r.EndpointSlices = append(r.EndpointSlices, slice(svc, i, v))
		}
		sort.Slice(refs, func(a, b int) bool { return refs[a].Name < refs[b].Name })
		r.HTTPRoutes = append(r.HTTPRoutes, &gwapiv1.HTTPRoute{
			ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: name},
			Spec: gwapiv1.HTTPRouteSpec{
				CommonRouteSpec: gwapiv1.CommonRouteSpec{ParentRefs: []gwapiv1.ParentReference{{Name: "gw"}}},
				Hostnames:       []gwapiv1.Hostname{gwapiv1.Hostname(name + ".example.com")},
				Rules:           []gwapiv1.HTTPRouteRule{{BackendRefs: refs}},
			},
		})
	}
	return r
}

func service(name string, i, v int) *corev1.Service {
	return &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: name},
		Spec: corev1.ServiceSpec{
			ClusterIP: fmt.Sprintf("10.%d.%d.%d", 96+v, i/256%256, i%256),
			Ports:     []corev1.ServicePort{{Name: "http", Port: 8080, Protocol: corev1.ProtocolTCP}},
		},
	}
}

func slice(svc string, i, v int) *discoveryv1.EndpointSlice {
	port, portName, proto := int32(8080), "http", corev1.ProtocolTCP
	ready := true
	s := &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Namespace: "default", Name: svc + "-1", Labels: map[string]string{discoveryv1.LabelServiceName: svc}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Ports:       []discoveryv1.EndpointPort{{Name: &portName, Port: &port, Protocol: &proto}},
	}
	for e := range 3 {
		s.Endpoints = append(s.Endpoints, discoveryv1.Endpoint{
			Addresses:  []string{fmt.Sprintf("10.%d.%d.%d", v*16+e, i/256%256, i%256)},
			Conditions: discoveryv1.EndpointConditions{Ready: &ready},
		})
	}
	return s
}

// memory returns this process's VmRSS and VmHWM.
func memory() (rss, hwm int64) {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0, 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		v, _ := strconv.ParseInt(f[1], 10, 64)
		switch f[0] {
		case "VmRSS:":
			rss = v << 10
		case "VmHWM:":
			hwm = v << 10
		}
	}
	return rss, hwm
}
