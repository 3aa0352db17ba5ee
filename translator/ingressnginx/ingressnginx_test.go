package ingressnginx

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/weir-mesh/weir/translator/status"
)

func backend(svc string) string {
	return "backend: {service: {name: " + svc + ", port: {number: 80}}}"
}

// tutorialMain is the main Ingress of the gray-release tutorial.
var tutorialMain = manifest("main", map[string]string{"rewrite-target": "/"}, `
  defaultBackend: {service: {name: service-user-v1, port: {number: 80}}}
  rules:
  - http:
      paths:
      - {path: /user, pathType: Prefix, `+backend("service-user-v1")+`}
      - {path: /pay, pathType: Prefix, `+backend("service-pay-v1")+`}`)

func userCanary(annotations map[string]string) string {
	if _, ok := annotations["canary"]; !ok {
		annotations["canary"] = "true"
	}
	return manifest("user-canary", annotations, `
  rules:
  - http:
      paths:
      - {path: /user, pathType: Prefix, `+backend("service-user-v2")+`}`)
}

const (
	userRE    = "~(?i)^(?:/user).*"
	payRE     = "~(?i)^(?:/pay).*"
	toRoot    = " rewrite (?i)^(?:/user).* => /"
	payToRoot = " rewrite (?i)^(?:/pay).* => /"
	vipAlways = `cookie~(?:.*;)?\s*vip_user=always\s*(?:;.*)?`
	vipNever  = `cookie~(?:.*;)?\s*vip_user=never\s*(?:;.*)?`
)

func TestCanaryRules(t *testing.T) {
	tests := map[string]struct {
		annotations map[string]string
		want        []string // routes of /user
	}{
		"cookie": {
			annotations: map[string]string{"canary-by-cookie": "vip_user"},
			want:        []string{userRE + " " + vipAlways + " -> service-user-v2" + toRoot, userRE + " -> service-user-v1" + toRoot},
		},
		"header with value": {
			annotations: map[string]string{"canary-by-header": "Role", "canary-by-header-value": "test"},
			want:        []string{userRE + " role=test -> service-user-v2" + toRoot, userRE + " -> service-user-v1" + toRoot},
		},
		"header always/never, weight": {
			annotations: map[string]string{"canary-by-header": "x-canary", "canary-weight": "10"},
			want: []string{
				userRE + " x-canary=always -> service-user-v2" + toRoot,
				userRE + " x-canary=never -> service-user-v1" + toRoot,
				userRE + " -> service-user-v1:90,service-user-v2:10" + toRoot,
			},
		},
		"header pattern is a search": {
			annotations: map[string]string{"canary-by-header": "role", "canary-by-header-pattern": "^te|qa"},
			want:        []string{userRE + " role~.*(?:^te|qa).* -> service-user-v2" + toRoot, userRE + " -> service-user-v1" + toRoot},
		},
		"value wins over pattern": {
			annotations: map[string]string{"canary-by-header": "role", "canary-by-header-value": "test", "canary-by-header-pattern": "qa"},
			want:        []string{userRE + " role=test -> service-user-v2" + toRoot, userRE + " -> service-user-v1" + toRoot},
		},
		"weight 50": {
			annotations: map[string]string{"canary-weight": "50"},
			want:        []string{userRE + " -> service-user-v1:50,service-user-v2:50" + toRoot},
		},
		"weight 0": {
			annotations: map[string]string{"canary-weight": "0"},
			want:        []string{userRE + " -> service-user-v1" + toRoot},
		},
		"weight 100": {
			annotations: map[string]string{"canary-weight": "100"},
			want:        []string{userRE + " -> service-user-v2" + toRoot},
		},
		"weight of a total": {
			annotations: map[string]string{"canary-weight": "3", "canary-weight-total": "1000"},
			want:        []string{userRE + " -> service-user-v1:997,service-user-v2:3" + toRoot},
		},
		"weight above the total": {
			annotations: map[string]string{"canary-weight": "30", "canary-weight-total": "20"},
			want:        []string{userRE + " -> service-user-v2" + toRoot},
		},
		"precedence header > cookie > weight": {
			annotations: map[string]string{"canary-by-header": "role", "canary-by-header-value": "test", "canary-by-cookie": "vip_user", "canary-weight": "50"},
			want: []string{
				userRE + " role=test -> service-user-v2" + toRoot,
				userRE + " " + vipAlways + " -> service-user-v2" + toRoot,
				userRE + " " + vipNever + " -> service-user-v1" + toRoot,
				userRE + " -> service-user-v1:50,service-user-v2:50" + toRoot,
			},
		},
		"header never beats cookie always": {
			annotations: map[string]string{"canary-by-header": "role", "canary-by-cookie": "vip_user"},
			want: []string{
				userRE + " role=always -> service-user-v2" + toRoot,
				userRE + " role=never -> service-user-v1" + toRoot,
				userRE + " " + vipAlways + " -> service-user-v2" + toRoot,
				userRE + " -> service-user-v1" + toRoot,
			},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			res := translate(t, tutorialMain, userCanary(tc.annotations))
			want := append(tc.want, payRE+" -> service-pay-v1"+payToRoot, "/* -> service-user-v1")
			if diff := cmp.Diff(want, vhostRoutes(t, res, "Ingress/80", "*")); diff != "" {
				t.Errorf("routes (-want +got):\n%s", diff)
			}
			for _, ing := range []string{"main", "user-canary"} {
				if c := condition(t, res, ing, status.Accepted); c.Status != status.True {
					t.Errorf("%s: %+v", ing, c)
				}
			}
		})
	}
}

func TestCanaryRejected(t *testing.T) {
	tests := map[string]struct {
		manifests []string
		reason    string
		message   string
	}{
		"weight not an integer": {
			manifests: []string{tutorialMain, userCanary(map[string]string{"canary-weight": "abc"})},
			reason:    ReasonInvalidAnnotation,
			message:   `annotation nginx.ingress.kubernetes.io/canary-weight: "abc" is not an integer`,
		},
		"negative weight": {
			manifests: []string{tutorialMain, userCanary(map[string]string{"canary-weight": "-5"})},
			reason:    ReasonInvalidAnnotation,
			message:   "canary-weight: \"-5\" must be >= 0",
		},
		"bad pattern": {
			manifests: []string{tutorialMain, userCanary(map[string]string{"canary-by-header": "role", "canary-by-header-pattern": "(a"})},
			reason:    ReasonInvalidAnnotation,
			message:   "canary-by-header-pattern: \"(a\" is not a valid RE2 regular expression",
		},
		"canary not a boolean": {
			manifests: []string{tutorialMain, userCanary(map[string]string{"canary": "yes"})},
			reason:    ReasonInvalidAnnotation,
		},
		"no main": {
			manifests: []string{userCanary(map[string]string{"canary-weight": "50"})},
			reason:    ReasonNoMainIngress,
			message:   `spec.rules[0].http.paths[0]: no main Ingress routes host "*" path "/user" (Prefix); nothing of the Ingress is served`,
		},
		"path type differs": {
			manifests: []string{tutorialMain, strings.Replace(userCanary(map[string]string{"canary-weight": "50"}), "Prefix", "Exact", 1)},
			reason:    ReasonNoMainIngress,
			message:   `path "/user" (Exact)`,
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			res := translate(t, tc.manifests...)
			c := condition(t, res, "user-canary", status.Accepted)
			if c.Status != status.False || c.Reason != tc.reason || !strings.Contains(c.Message, tc.message) {
				t.Errorf("user-canary Accepted = %+v, want False/%s containing %q", c, tc.reason, tc.message)
			}
			if len(tc.manifests) > 1 {
				want := []string{userRE + " -> service-user-v1" + toRoot, payRE + " -> service-pay-v1" + payToRoot, "/* -> service-user-v1"}
				if diff := cmp.Diff(want, vhostRoutes(t, res, "Ingress/80", "*")); diff != "" {
					t.Errorf("the main Ingress must keep working (-want +got):\n%s", diff)
				}
			}
		})
	}
}

func TestSecondCanaryRejected(t *testing.T) {
	second := strings.Replace(userCanary(map[string]string{"canary-weight": "100"}), "name: user-canary", "name: user-canary-2", 1)
	res := translate(t, tutorialMain, userCanary(map[string]string{"canary-by-cookie": "vip_user"}), second)
	c := condition(t, res, "user-canary-2", status.Accepted)
	if c.Status != status.False || c.Reason != ReasonConflicted || !strings.Contains(c.Message, "already has canary Ingress default/user-canary") {
		t.Errorf("second canary: %+v", c)
	}
	if c := condition(t, res, "user-canary", status.Accepted); c.Status != status.True {
		t.Errorf("first canary: %+v", c)
	}
	want := []string{userRE + " " + vipAlways + " -> service-user-v2" + toRoot, userRE + " -> service-user-v1" + toRoot}
	if diff := cmp.Diff(want, vhostRoutes(t, res, "Ingress/80", "*")[:2]); diff != "" {
		t.Errorf("routes (-want +got):\n%s", diff)
	}
}

func TestInvalidMainAnnotation(t *testing.T) {
	res := translate(t, manifest("web", map[string]string{"ssl-redirect": "maybe"}, `
  rules:
  - http:
      paths:
      - {path: /, pathType: Prefix, `+backend("service-user-v1")+`}`))
	c := condition(t, res, "web", status.Accepted)
	if c.Status != status.False || !strings.Contains(c.Message, "nginx.ingress.kubernetes.io/ssl-redirect") {
		t.Errorf("Accepted = %+v", c)
	}
	if len(res.Servers) != 0 {
		t.Errorf("a rejected Ingress gives no server: %v", serverNames(res))
	}
}

func TestMissingBackends(t *testing.T) {
	res := translate(t, manifest("web", nil, `
  rules:
  - host: shop.example.com
    http:
      paths:
      - {path: /gone, pathType: Prefix, `+backend("no-such-service")+`}
      - {path: /port, pathType: Prefix, backend: {service: {name: service-pay-v1, port: {name: grpc}}}}
      - {path: /admin, pathType: Prefix, backend: {service: {name: service-pay-v1, port: {name: admin}}}}`),
		userCanary(map[string]string{"canary-weight": "10"}))
	want := []string{
		"=/admin -> service-pay-v1", "=/port -> 503", "=/gone -> 503",
		"/admin/* -> service-pay-v1", "/port/* -> 503", "/gone/* -> 503",
	}
	if diff := cmp.Diff(want, vhostRoutes(t, res, "Ingress/80", "shop.example.com")); diff != "" {
		t.Errorf("routes (-want +got):\n%s", diff)
	}
	c := condition(t, res, "web", status.ResolvedRefs)
	for _, s := range []string{
		"spec.rules[0].http.paths[0].backend: Service default/no-such-service does not exist",
		`spec.rules[0].http.paths[1].backend: Service default/service-pay-v1 has no port named "grpc"`,
	} {
		if c.Status != status.False || c.Reason != ReasonBackendNotFound || !strings.Contains(c.Message, s) {
			t.Errorf("ResolvedRefs = %+v, want False with %q", c, s)
		}
	}
	if c := condition(t, res, "web", status.Accepted); c.Status != status.True {
		t.Errorf("Accepted = %+v", c)
	}
}

func TestPathMatching(t *testing.T) {
	res := translate(t, manifest("a", nil, `
  rules:
  - host: Shop.Example.com
    http:
      paths:
      - {path: /foo, pathType: Prefix, `+backend("service-user-v1")+`}
      - {path: /foo/bar, pathType: ImplementationSpecific, `+backend("service-user-v2")+`}
      - {path: /exact, pathType: Exact, `+backend("service-pay-v1")+`}
      - {path: /dir/, pathType: Prefix, `+backend("service-pay-v1")+`}`),
		manifest("b", nil, `
  defaultBackend: {service: {name: service-pay-v1, port: {number: 80}}}
  rules:
  - host: shop.example.com
    http:
      paths:
      - {path: /foo, pathType: Prefix, `+backend("service-pay-v1")+`}
      - {path: /foo, pathType: Exact, `+backend("service-pay-v1")+`}
  - host: "*.example.com"
    http:
      paths:
      - {path: /, pathType: Prefix, `+backend("service-user-v1")+`}`))
	want := []string{
		"=/foo/bar -> service-user-v2", "=/exact -> service-pay-v1", "=/foo -> service-pay-v1",
		"/foo/bar/* -> service-user-v2", "/foo/* -> service-user-v1", "/dir/* -> service-pay-v1",
	}
	if diff := cmp.Diff(want, vhostRoutes(t, res, "Ingress/80", "shop.example.com")); diff != "" {
		t.Errorf("shop.example.com (-want +got):\n%s", diff)
	}
	// b did not create shop.example.com, so its defaultBackend is not that
	// host's catch-all; it is "*"'s, and that of the host b created.
	if diff := cmp.Diff([]string{"/* -> service-user-v1"}, vhostRoutes(t, res, "Ingress/80", "*.example.com")); diff != "" {
		t.Errorf("*.example.com (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"/* -> service-pay-v1"}, vhostRoutes(t, res, "Ingress/80", "*")); diff != "" {
		t.Errorf("* (-want +got):\n%s", diff)
	}
	c := condition(t, res, "b", status.Accepted)
	if c.Status != status.False || c.Reason != ReasonConflicted ||
		c.Message != `spec.rules[0].http.paths[0]: host "shop.example.com" path "/foo" (Prefix) is already routed by Ingress default/a; the rest of the Ingress is served` {
		t.Errorf("b Accepted = %+v", c)
	}
}

func TestRewriteTarget(t *testing.T) {
	tests := map[string]struct {
		annotations map[string]string
		path        string
		want        []string
	}{
		"capture groups": {
			annotations: map[string]string{"rewrite-target": "/$2"},
			path:        "/something(/|$)(.*)",
			want:        []string{`~(?i)^(?:/something(/|$)(.*)).* -> service-user-v1 rewrite (?i)^(?:/something(/|$)(.*)).* => /\2`},
		},
		"braces and a missing group": {
			annotations: map[string]string{"rewrite-target": `/a\${1}/$3`},
			path:        "/api/(v[0-9])",
			want:        []string{`~(?i)^(?:/api/(v[0-9])).* -> service-user-v1 rewrite (?i)^(?:/api/(v[0-9])).* => /a\\\1/`},
		},
		"use-regex without rewrite": {
			annotations: map[string]string{"use-regex": "true"},
			path:        "/v[0-9]+/items",
			want:        []string{`~(?i)^(?:/v[0-9]+/items).* -> service-user-v1`},
		},
		"target equal to the path": {
			annotations: map[string]string{"rewrite-target": "/app"},
			path:        "/app",
			want:        []string{"=/app -> service-user-v1", "/app/* -> service-user-v1"},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			res := translate(t, manifest("web", tc.annotations, `
  rules:
  - host: a.example.com
    http:
      paths:
      - {path: "`+tc.path+`", pathType: ImplementationSpecific, `+backend("service-user-v1")+`}`))
			if diff := cmp.Diff(tc.want, vhostRoutes(t, res, "Ingress/80", "a.example.com")); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

// TestRegexHost checks that one Ingress using regular expressions makes
// every path of its host one, as ingress-nginx does, longest first.
func TestRegexHost(t *testing.T) {
	res := translate(t,
		manifest("plain", nil, `
  rules:
  - host: a.example.com
    http:
      paths:
      - {path: /api, pathType: Exact, `+backend("service-user-v1")+`}
      - {path: "/bad(", pathType: Prefix, `+backend("service-user-v1")+`}`),
		manifest("regex", map[string]string{"use-regex": "true"}, `
  rules:
  - host: a.example.com
    http:
      paths:
      - {path: "/api/v[12]", pathType: ImplementationSpecific, `+backend("service-user-v2")+`}`))
	want := []string{"~(?i)^(?:/api/v[12]).* -> service-user-v2", "~(?i)^(?:/api).* -> service-user-v1"}
	if diff := cmp.Diff(want, vhostRoutes(t, res, "Ingress/80", "a.example.com")); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	c := condition(t, res, "plain", status.Accepted)
	if c.Status != status.False || c.Reason != ReasonInvalidPath || !strings.Contains(c.Message, "because of nginx.ingress.kubernetes.io/use-regex in Ingress default/regex") {
		t.Errorf("plain Accepted = %+v", c)
	}
}

func TestInvalidRewriteTarget(t *testing.T) {
	for _, target := range []string{"/$host", "https://example.com/", "/a?b=c", "/$0"} {
		res := translate(t, manifest("web", map[string]string{"rewrite-target": target}, `
  rules:
  - http:
      paths:
      - {path: /, pathType: Prefix, `+backend("service-user-v1")+`}`))
		c := condition(t, res, "web", status.Accepted)
		if c.Status != status.False || c.Reason != ReasonInvalidAnnotation || !strings.Contains(c.Message, "rewrite-target") {
			t.Errorf("%s: Accepted = %+v", target, c)
		}
	}
}

func TestClass(t *testing.T) {
	spec := `
  rules:
  - http:
      paths:
      - {path: /, pathType: Prefix, ` + backend("service-user-v1") + `}`
	other := strings.Replace(manifest("other", nil, spec), "ingressClassName: weir", "ingressClassName: nginx", 1)
	legacy := strings.Replace(manifest("legacy", map[string]string{"kubernetes.io/ingress.class": "nginx"}, spec), "  ingressClassName: weir\n", "", 1)
	none := strings.Replace(manifest("none", nil, spec), "  ingressClassName: weir\n", "", 1)
	tests := map[string]struct {
		class string
		want  []string
	}{
		"default class": {class: "", want: nil},
		"nginx":         {class: "nginx", want: []string{"legacy", "other"}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			res := translateClass(t, tc.class, other, legacy, none)
			var got []string
			for _, o := range res.Status {
				got = append(got, o.Name)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("served Ingresses (-want +got):\n%s", diff)
			}
		})
	}
}
