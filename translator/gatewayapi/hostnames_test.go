package gatewayapi

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	gwapiv1 "sigs.k8s.io/gateway-api/apis/v1"
)

func TestIntersectHostnames(t *testing.T) {
	tests := map[string]struct {
		listener string
		route    []gwapiv1.Hostname
		want     []string
		ok       bool
	}{
		"both any":                   {"", nil, nil, true},
		"listener only":              {"foo.example.com", nil, []string{"foo.example.com"}, true},
		"route only":                 {"", []gwapiv1.Hostname{"a.com", "b.com"}, []string{"a.com", "b.com"}, true},
		"wildcard listener":          {"*.example.com", []gwapiv1.Hostname{"foo.example.com", "example.com", "x.org"}, []string{"foo.example.com"}, true},
		"wildcard route":             {"foo.example.com", []gwapiv1.Hostname{"*.example.com"}, []string{"foo.example.com"}, true},
		"narrower wildcard route":    {"*.example.com", []gwapiv1.Hostname{"*.a.example.com"}, []string{"*.a.example.com"}, true},
		"wildcard needs a label":     {"*.example.com", []gwapiv1.Hostname{"example.com"}, nil, false},
		"exact mismatch":             {"foo.example.com", []gwapiv1.Hostname{"bar.example.com"}, nil, false},
		"repeats are dropped":        {"*.example.com", []gwapiv1.Hostname{"*.example.com", "*.example.com"}, []string{"*.example.com"}, true},
		"wildcard covers deep names": {"*.example.com", []gwapiv1.Hostname{"a.b.example.com"}, []string{"a.b.example.com"}, true},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got, ok := intersectHostnames(tc.listener, tc.route)
			if ok != tc.ok {
				t.Fatalf("ok = %v, want %v", ok, tc.ok)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("hostnames (-want +got):\n%s", diff)
			}
		})
	}
}

func TestReplacePrefix(t *testing.T) {
	tests := map[string]struct{ replacement, matched, want string }{
		"path itself":        {"/one", "/prefix/one", "/one"},
		"under the prefix":   {"/one", "/prefix/one/", "/one/"},
		"strip to root":      {"/", "/strip", "/"},
		"strip under prefix": {"/", "/strip/", "/"},
		"trailing slash":     {"/new/", "/old/", "/new/"},
		"empty":              {"", "/old", "/"},
	}
	for name, tc := range tests {
		if got := replacePrefix(tc.replacement, tc.matched); got != tc.want {
			t.Errorf("%s: replacePrefix(%q, %q) = %q, want %q", name, tc.replacement, tc.matched, got, tc.want)
		}
	}
}
