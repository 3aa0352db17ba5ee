package translator

import "testing"

func TestOwnerKey(t *testing.T) {
	tests := map[string]struct {
		want string
		ok   bool
	}{
		"TrafficSplit/ns/split/0":   {"TrafficSplit/ns/split", true},
		"TrafficSplit/ns/split":     {"TrafficSplit/ns/split", true},
		"VirtualService/ns/vs/1/2":  {"VirtualService/ns/vs", true},
		"Kind/ns/":                  {"Kind/ns/", true},
		"Service/ns":                {"", false},
		"Service":                   {"", false},
		"":                          {"", false},
		"HTTPRoute/ns/route/0/rule": {"HTTPRoute/ns/route", true},
	}
	for name, tc := range tests {
		got, ok := ownerKey(name)
		if ok != tc.ok || (ok && got != tc.want) {
			t.Errorf("ownerKey(%q) = %q, %v; want %q, %v", name, got, ok, tc.want, tc.ok)
		}
	}
}
