package ingressnginx

import (
	"regexp"
	"testing"
)

// TestCookieRegex checks the whole-value match of the Cookie header that
// stands for nginx's $cookie_<name> == value.
func TestCookieRegex(t *testing.T) {
	re := regexp.MustCompile("^(?:" + cookieRegex("vip_user", "always") + ")$")
	tests := map[string]bool{
		"vip_user=always":                  true,
		"a=1; vip_user=always":             true,
		"a=1;vip_user=always; b=2":         true,
		"vip_user=always;b=2":              true,
		"vip_user=never":                   false,
		"vip_user=alwaysx":                 false,
		"xvip_user=always":                 false,
		"a=vip_user=always":                false,
		"vip_user_2=always":                false,
		"a=1; vip_userXalways":             false,
		"a=1; b=2":                         false,
		"":                                 false,
		"vip.user=always; vip_user=always": true,
	}
	for cookie, want := range tests {
		if got := re.MatchString(cookie); got != want {
			t.Errorf("%q: match = %v, want %v", cookie, got, want)
		}
	}
	if dot := regexp.MustCompile("^(?:" + cookieRegex("vip.user", "always") + ")$"); dot.MatchString("vipXuser=always") {
		t.Error("cookie names are literal")
	}
}

func TestRewriteSubstitution(t *testing.T) {
	tests := []struct {
		target string
		groups int
		want   string
	}{
		{"/", 0, "/"},
		{"/$1", 0, "/"},
		{"/$2/x", 2, `/\2/x`},
		{"/${1}0", 1, `/\10`},
		{`/a\b`, 0, `/a\\b`},
	}
	for _, tc := range tests {
		rt, err := parseRewriteTarget(tc.target)
		if err != nil {
			t.Fatalf("%q: %v", tc.target, err)
		}
		if got := rt.substitution(tc.groups); got != tc.want {
			t.Errorf("%q with %d groups = %q, want %q", tc.target, tc.groups, got, tc.want)
		}
	}
}
