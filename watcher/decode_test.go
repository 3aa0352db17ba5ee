package watcher

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	gwapiv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/weir-mesh/weir/api/smi"
)

func meta(ns, name string) metav1.ObjectMeta { return metav1.ObjectMeta{Namespace: ns, Name: name} }

func typeMeta(apiVersion, kind string) metav1.TypeMeta {
	return metav1.TypeMeta{APIVersion: apiVersion, Kind: kind}
}

func decodedService(ns, name string) Object {
	return Object{Kind: KindService, Namespace: ns, Name: name, Value: &corev1.Service{
		TypeMeta: typeMeta("v1", "Service"), ObjectMeta: meta(ns, name),
		Spec: corev1.ServiceSpec{Ports: []corev1.ServicePort{{Name: "http", Port: 80, TargetPort: intstr.FromInt32(8080)}}},
	}}
}

const serviceYAML = `apiVersion: v1
kind: Service
metadata: {name: web, namespace: shop}
spec:
  ports: [{name: http, port: 80, targetPort: 8080}]
`

func TestDecodeFile(t *testing.T) {
	ready := true
	tests := map[string]struct {
		data  string
		want  []Object
		warns []Warning
		err   string
	}{
		"service": {data: serviceYAML, want: []Object{decodedService("shop", "web")}},
		"default namespace": {
			data: "apiVersion: v1\nkind: Service\nmetadata: {name: web}\nspec:\n  ports: [{name: http, port: 80, targetPort: 8080}]\n",
			want: []Object{decodedService("default", "web")},
		},
		"endpoint slice": {
			data: `apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: web-1, namespace: shop, labels: {kubernetes.io/service-name: web}}
addressType: IPv4
endpoints: [{addresses: [10.0.0.1], conditions: {ready: true}}]
`,
			want: []Object{{Kind: KindEndpointSlice, Namespace: "shop", Name: "web-1", Value: &discoveryv1.EndpointSlice{
				TypeMeta:    typeMeta("discovery.k8s.io/v1", "EndpointSlice"),
				ObjectMeta:  metav1.ObjectMeta{Namespace: "shop", Name: "web-1", Labels: map[string]string{"kubernetes.io/service-name": "web"}},
				AddressType: discoveryv1.AddressTypeIPv4,
				Endpoints:   []discoveryv1.Endpoint{{Addresses: []string{"10.0.0.1"}, Conditions: discoveryv1.EndpointConditions{Ready: &ready}}},
			}}},
		},
		"pod, numeric label value kept as a string": {
			data: "apiVersion: v1\nkind: Pod\nmetadata: {name: web-1, namespace: shop, labels: {version: 2}}\nstatus: {podIP: 10.0.0.1}\n",
			want: []Object{{Kind: KindPod, Namespace: "shop", Name: "web-1", Value: &corev1.Pod{
				TypeMeta:   typeMeta("v1", "Pod"),
				ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "web-1", Labels: map[string]string{"version": "2"}},
				Status:     corev1.PodStatus{PodIP: "10.0.0.1"},
			}}},
		},
		"traffic split": {
			data: "apiVersion: split.smi-spec.io/v1alpha2\nkind: TrafficSplit\nmetadata: {name: web, namespace: shop}\n" +
				"spec:\n  service: web\n  matches: [{kind: HTTPRouteGroup, name: beta}]\n  backends: [{service: web-v2, weight: 10}]\n",
			want: []Object{{Kind: KindTrafficSplit, Namespace: "shop", Name: "web", Value: &smi.TrafficSplit{
				TypeMeta: typeMeta("split.smi-spec.io/v1alpha2", "TrafficSplit"), ObjectMeta: meta("shop", "web"),
				Spec: smi.TrafficSplitSpec{Service: "web",
					Matches:  []smi.TypedLocalObjectReference{{Kind: "HTTPRouteGroup", Name: "beta"}},
					Backends: []smi.TrafficSplitBackend{{Service: "web-v2", Weight: 10}}},
			}}},
		},
		"gateway class is cluster-scoped; v1beta1 decodes into v1": {
			data: "apiVersion: gateway.networking.k8s.io/v1beta1\nkind: GatewayClass\nmetadata: {name: weir}\n" +
				"spec: {controllerName: weir.dev/gateway-controller}\n",
			want: []Object{{Kind: KindGatewayClass, Name: "weir", Value: &gwapiv1.GatewayClass{
				TypeMeta: typeMeta("gateway.networking.k8s.io/v1beta1", "GatewayClass"), ObjectMeta: metav1.ObjectMeta{Name: "weir"},
				Spec: gwapiv1.GatewayClassSpec{ControllerName: "weir.dev/gateway-controller"},
			}}},
		},
		"http route in the default namespace": {
			data: "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {name: web}\n" +
				"spec: {parentRefs: [{name: gateway}]}\n",
			want: []Object{{Kind: KindHTTPRoute, Namespace: "default", Name: "web", Value: &gwapiv1.HTTPRoute{
				TypeMeta: typeMeta("gateway.networking.k8s.io/v1", "HTTPRoute"), ObjectMeta: meta("default", "web"),
				Spec: gwapiv1.HTTPRouteSpec{CommonRouteSpec: gwapiv1.CommonRouteSpec{ParentRefs: []gwapiv1.ParentReference{{Name: "gateway"}}}},
			}}},
		},
		"route group, headers as a map": {
			data: "apiVersion: specs.smi-spec.io/v1alpha4\nkind: HTTPRouteGroup\nmetadata: {name: beta}\n" +
				"spec:\n  matches:\n  - name: beta\n    pathRegex: /api/.*\n    methods: [GET]\n    headers: {x-user: beta, cookie: .*canary.*}\n",
			want: []Object{routeGroup("specs.smi-spec.io/v1alpha4")},
		},
		"route group, headers as a list of maps": {
			data: "apiVersion: specs.smi-spec.io/v1alpha1\nkind: HTTPRouteGroup\nmetadata: {name: beta}\n" +
				"spec:\n  matches:\n  - name: beta\n    pathRegex: /api/.*\n    methods: [GET]\n    headers:\n    - x-user: beta\n    - cookie: .*canary.*\n",
			want: []Object{routeGroup("specs.smi-spec.io/v1alpha1")},
		},
		"multi-document, with empty and comment-only documents": {
			data: "---\n# nothing here\n---\n" + serviceYAML + "---\n---\n" + serviceYAML + "...\n",
			want: []Object{decodedService("shop", "web"), decodedService("shop", "web")},
		},
		"List": {
			data: "apiVersion: v1\nkind: List\nitems:\n- " + indent(serviceYAML) + "- apiVersion: v1\n  kind: Namespace\n  metadata: {name: shop}\n",
			want: []Object{decodedService("shop", "web")},
		},
		"JSON": {
			data: "{\n\t\"apiVersion\": \"v1\", \"kind\": \"Service\",\n\t\"metadata\": {\"name\": \"web\", \"namespace\": \"shop\"},\n" +
				"\t\"spec\": {\"ports\": [{\"name\": \"http\", \"port\": 80, \"targetPort\": 8080}]}\n}\n",
			want: []Object{decodedService("shop", "web")},
		},
		"JSON List": {
			data: `{"apiVersion": "v1", "kind": "List", "items": [{"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"}, ` +
				`"spec": {"ports": [{"name": "http", "port": 80, "targetPort": 8080}]}}]}`,
			want: []Object{decodedService("default", "web")},
		},
		"skipped kinds": {
			data: "apiVersion: v1\nkind: Namespace\nmetadata: {name: shop}\n---\napiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\n" +
				"spec: {replicas: 2}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: web}\n",
		},
		"unknown kinds warn": {
			data: "# c\napiVersion: policy/v1\nkind: PodDisruptionBudget\nmetadata: {name: web}\n---\n" +
				"apiVersion: split.smi-spec.io/v1alpha1\nkind: TrafficSplit\nmetadata: {name: web}\n",
			warns: []Warning{
				{File: "m.yaml", Line: 2, APIVersion: "policy/v1", Kind: "PodDisruptionBudget", Message: "weir does not read policy/v1 PodDisruptionBudget; ignored"},
				{File: "m.yaml", Line: 6, APIVersion: "split.smi-spec.io/v1alpha1", Kind: "TrafficSplit",
					Message: "weir does not read split.smi-spec.io/v1alpha1 TrafficSplit (it reads split.smi-spec.io/v1alpha2, split.smi-spec.io/v1alpha3, split.smi-spec.io/v1alpha4); ignored"},
			},
		},
		"YAML syntax error in a later document": {
			data: serviceYAML + "---\n# comment\napiVersion: v1\nkind: Service\nmetadata:\n  name: web\n    namespace: shop\n",
			err:  "m.yaml:12: yaml: mapping values are not allowed in this context",
		},
		"YAML error on the first line of a document": {
			data: serviceYAML + "---\napiVersion: v1: Service\n",
			err:  "m.yaml:7: yaml: mapping values are not allowed in this context",
		},
		"wrong field type": {
			data: serviceYAML + "---\n\napiVersion: split.smi-spec.io/v1alpha4\nkind: TrafficSplit\nmetadata: {name: web}\nspec:\n  backends: [{service: a, weight: ten}]\n",
			err:  "m.yaml:8: split.smi-spec.io/v1alpha4 TrafficSplit web: cannot unmarshal string into Go struct field TrafficSplitBackend.spec.backends.weight of type int",
		},
		"missing name": {
			data: "apiVersion: v1\nkind: Service\nmetadata: {namespace: shop}\n",
			err:  "m.yaml:1: v1 Service: metadata.name is required",
		},
		"missing kind": {
			data: "apiVersion: v1\nmetadata: {name: web}\n",
			err:  "m.yaml:1: apiVersion and kind are required",
		},
		"not an object": {
			data: "- a\n- b\n",
			err:  "m.yaml:1: document is not a Kubernetes object (want a mapping with apiVersion and kind)",
		},
		"bad List item": {
			data: "apiVersion: v1\nkind: List\nitems:\n- " + indent(serviceYAML) + "- {apiVersion: v1, kind: Service, metadata: {name: [x]}}\n",
			err:  "m.yaml:1: items[1]: cannot unmarshal array into Go struct field .metadata.name of type string",
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			objs, warns, err := DecodeFile("m.yaml", []byte(tc.data))
			if got := errString(err); got != tc.err {
				t.Fatalf("error:\n got %q\nwant %q", got, tc.err)
			}
			if diff := cmp.Diff(tc.want, objs); diff != "" {
				t.Errorf("objects (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tc.warns, warns); diff != "" {
				t.Errorf("warnings (-want +got):\n%s", diff)
			}
		})
	}
}

func routeGroup(apiVersion string) Object {
	return Object{Kind: KindHTTPRouteGroup, Namespace: "default", Name: "beta", Value: &smi.HTTPRouteGroup{
		TypeMeta: typeMeta(apiVersion, "HTTPRouteGroup"), ObjectMeta: meta("default", "beta"),
		Spec: smi.HTTPRouteGroupSpec{Matches: []smi.HTTPMatch{{
			Name: "beta", PathRegex: "/api/.*", Methods: []string{"GET"},
			Headers: smi.Headers{{Name: "cookie", ValueRegex: ".*canary.*"}, {Name: "x-user", ValueRegex: "beta"}},
		}}},
	}}
}

// indent makes a YAML document the body of a list item.
func indent(doc string) string {
	out := ""
	for i, line := range splitLines(doc) {
		if i > 0 {
			out += "  "
		}
		out += line + "\n"
	}
	return out
}

func splitLines(s string) []string {
	var lines []string
	for len(s) > 0 {
		i := 0
		for i < len(s) && s[i] != '\n' {
			i++
		}
		lines = append(lines, s[:i])
		if i < len(s) {
			i++
		}
		s = s[i:]
	}
	return lines
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// summary names objects by kind and key, for tests that check what was
// loaded rather than how it was decoded.
func summary(objs []Object) []string {
	var out []string
	for _, o := range objs {
		out = append(out, string(o.Kind)+" "+o.Key())
	}
	return out
}

func TestLoadPath(t *testing.T) {
	tree := filepath.Join("testdata", "tree")
	tests := map[string]struct {
		path  string
		want  []string
		warns []string
		err   string
	}{
		"directory, recursive, sorted, hidden and non-manifest files skipped": {
			path:  tree,
			want:  []string{"Service shop/web", "Service shop/web-v2", "EndpointSlice shop/web-abc", "TrafficSplit shop/web"},
			warns: []string{filepath.Join(tree, "pdb.yaml") + ":2: weir does not read policy/v1 PodDisruptionBudget; ignored"},
		},
		"single file": {
			path: filepath.Join(tree, "sub", "split.yml"),
			want: []string{"TrafficSplit shop/web"},
		},
		"examples": {
			path: filepath.Join("..", "examples", "canary"),
			want: []string{
				"EndpointSlice httpbin/httpbin-v1-demo", "EndpointSlice httpbin/httpbin-v2-demo",
				"EndpointSlice httpbin/httpbin-v1-demo-root", "EndpointSlice httpbin/httpbin-v2-demo-root",
				"Service httpbin/httpbin", "Service httpbin/httpbin-v1", "Service httpbin/httpbin-v2",
				"TrafficSplit httpbin/httpbin-split",
			},
		},
		"bad file": {
			path: filepath.Join("testdata", "bad.yaml"),
			err:  "load: " + filepath.Join("testdata", "bad.yaml") + ":10: yaml: mapping values are not allowed in this context",
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			objs, warns, err := LoadPath(tc.path)
			if got := errString(err); got != tc.err {
				t.Fatalf("error:\n got %q\nwant %q", got, tc.err)
			}
			if diff := cmp.Diff(tc.want, summary(objs)); diff != "" {
				t.Errorf("objects (-want +got):\n%s", diff)
			}
			var gotWarns []string
			for _, w := range warns {
				gotWarns = append(gotWarns, w.String())
			}
			if diff := cmp.Diff(tc.warns, gotWarns); diff != "" {
				t.Errorf("warnings (-want +got):\n%s", diff)
			}
		})
	}
}

func TestLoadPathErrors(t *testing.T) {
	_, _, err := LoadPath(filepath.Join("testdata", "bad.yaml"))
	var de *DecodeError
	if !errors.As(err, &de) || de.File != filepath.Join("testdata", "bad.yaml") || de.Line != 10 {
		t.Errorf("LoadPath(bad.yaml) = %v, want a *DecodeError at bad.yaml:10", err)
	}
	if _, _, err := LoadPath(filepath.Join("testdata", "missing")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("LoadPath(missing) = %v, want fs.ErrNotExist", err)
	}
}

// FuzzDecodeFile checks that no input panics, that every error is a
// *DecodeError on a line of the file, and that every object has a name and
// namespace.
func FuzzDecodeFile(f *testing.F) {
	for _, root := range []string{filepath.Join("..", "examples", "canary"), "testdata"} {
		err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			data, err := os.ReadFile(path)
			f.Add(data)
			return err
		})
		if err != nil {
			f.Fatal(err)
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		objs, _, err := DecodeFile("f.yaml", data)
		if err != nil {
			var de *DecodeError
			lines := max(1, len(splitLines(string(data))))
			if !errors.As(err, &de) || de.File != "f.yaml" || de.Line < 1 || de.Line > lines {
				t.Fatalf("error %q: want a *DecodeError on a line in [1, %d]", err, lines)
			}
			return
		}
		for _, o := range objs {
			if o.Name == "" || o.Namespace == "" || o.Value == nil {
				t.Fatalf("incomplete object %+v", o)
			}
		}
	})
}
