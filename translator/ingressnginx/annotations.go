package ingressnginx

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// AnnotationPrefix is the prefix of every ingress-nginx annotation weir reads.
const AnnotationPrefix = "nginx.ingress.kubernetes.io/"

// The annotations weir reads, without AnnotationPrefix.
const (
	annCanary              = "canary"
	annCanaryByHeader      = "canary-by-header"
	annCanaryByHeaderValue = "canary-by-header-value"
	annCanaryByHeaderRegex = "canary-by-header-pattern"
	annCanaryByCookie      = "canary-by-cookie"
	annCanaryWeight        = "canary-weight"
	annCanaryWeightTotal   = "canary-weight-total"
	annRewriteTarget       = "rewrite-target"
	annUseRegex            = "use-regex"
	annSSLRedirect         = "ssl-redirect"
	annForceSSLRedirect    = "force-ssl-redirect"
)

// defaultWeightTotal is canary-weight-total when it is not set.
const defaultWeightTotal = 100

// annotations are an Ingress's parsed ingress-nginx annotations.
type annotations struct {
	canary bool
	// canaryCfg is meaningful only when canary is true.
	canaryCfg canaryConfig
	// rewrite is nil when rewrite-target is not set.
	rewrite          *rewriteTarget
	useRegex         bool
	sslRedirect      bool
	forceSSLRedirect bool
	// ignoredCanary lists canary-* annotations set on an Ingress that is
	// not a canary.
	ignoredCanary []string
}

// canaryConfig is how a canary Ingress picks requests. Empty strings are
// "not set".
type canaryConfig struct {
	header        string
	headerValue   string
	headerPattern string
	cookie        string
	weight        int
	weightTotal   int
}

// annotationError is an invalid annotation value; its message names the
// annotation.
type annotationError struct {
	name, value, problem string
}

func (e *annotationError) Error() string {
	return fmt.Sprintf("annotation %s%s: %q %s", AnnotationPrefix, e.name, e.value, e.problem)
}

// parseAnnotations reads the annotations weir supports; others are ignored.
func parseAnnotations(all map[string]string) (annotations, error) {
	a := annotations{sslRedirect: true}
	get := func(name string) (string, bool) {
		v, ok := all[AnnotationPrefix+name]
		return strings.TrimSpace(v), ok
	}
	var err error
	if a.canary, err = boolAnnotation(get, annCanary, false); err != nil {
		return a, err
	}
	if a.useRegex, err = boolAnnotation(get, annUseRegex, false); err != nil {
		return a, err
	}
	if a.sslRedirect, err = boolAnnotation(get, annSSLRedirect, true); err != nil {
		return a, err
	}
	if a.forceSSLRedirect, err = boolAnnotation(get, annForceSSLRedirect, false); err != nil {
		return a, err
	}
	if v, ok := get(annRewriteTarget); ok && v != "" {
		rt, err := parseRewriteTarget(v)
		if err != nil {
			return a, &annotationError{annRewriteTarget, v, err.Error()}
		}
		a.rewrite = &rt
	}
	if !a.canary {
		a.ignoredCanary = setCanaryAnnotations(get)
		return a, nil
	}
	a.canaryCfg, err = parseCanary(get)
	return a, err
}

type getter func(name string) (string, bool)

func boolAnnotation(get getter, name string, def bool) (bool, error) {
	v, ok := get(name)
	if !ok {
		return def, nil
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		return def, &annotationError{name, v, `is not a boolean; use "true" or "false"`}
	}
	return b, nil
}

func setCanaryAnnotations(get getter) []string {
	var out []string
	for _, n := range []string{annCanaryByHeader, annCanaryByHeaderValue, annCanaryByHeaderRegex, annCanaryByCookie, annCanaryWeight, annCanaryWeightTotal} {
		if _, ok := get(n); ok {
			out = append(out, AnnotationPrefix+n)
		}
	}
	return out
}

// tokenRE is an HTTP token (RFC 9110): a valid header or cookie name.
var tokenRE = regexp.MustCompile("^[A-Za-z0-9!#$%&'*+.^_`|~-]+$")

func parseCanary(get getter) (canaryConfig, error) {
	c := canaryConfig{weightTotal: defaultWeightTotal}
	var err error
	if c.header, err = tokenAnnotation(get, annCanaryByHeader, "an HTTP header name"); err != nil {
		return c, err
	}
	if c.cookie, err = tokenAnnotation(get, annCanaryByCookie, "a cookie name"); err != nil {
		return c, err
	}
	c.headerValue, _ = get(annCanaryByHeaderValue)
	if v, ok := get(annCanaryByHeaderRegex); ok && v != "" {
		if _, err := regexp.Compile(v); err != nil {
			return c, &annotationError{annCanaryByHeaderRegex, v, fmt.Sprintf("is not a valid RE2 regular expression: %v", err)}
		}
		c.headerPattern = v
	}
	if c.weight, err = intAnnotation(get, annCanaryWeight, 0, 0); err != nil {
		return c, err
	}
	if c.weightTotal, err = intAnnotation(get, annCanaryWeightTotal, defaultWeightTotal, 1); err != nil {
		return c, err
	}
	return c, nil
}

func tokenAnnotation(get getter, name, what string) (string, error) {
	v, ok := get(name)
	if !ok || v == "" {
		return "", nil
	}
	if !tokenRE.MatchString(v) {
		return "", &annotationError{name, v, "is not " + what}
	}
	return v, nil
}

func intAnnotation(get getter, name string, def, min int) (int, error) {
	v, ok := get(name)
	if !ok {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		return def, &annotationError{name, v, "is not an integer"}
	}
	if n < min {
		return def, &annotationError{name, v, fmt.Sprintf("must be >= %d", min)}
	}
	return n, nil
}

// rewriteTarget is a parsed rewrite-target: literal text and references to
// capture groups of the path ($1 .. $9, or ${1} .. ${9}).
type rewriteTarget struct {
	raw   string
	parts []rewritePart
}

// rewritePart is literal text, or capture group Group when Group > 0.
type rewritePart struct {
	Literal string
	Group   int
}

var groupRefRE = regexp.MustCompile(`^\$(?:([1-9])|\{([1-9])\})`)

// parseRewriteTarget accepts a path with $N capture references; nginx
// variables, redirects (a scheme) and query strings are not supported.
func parseRewriteTarget(s string) (rewriteTarget, error) {
	if strings.Contains(s, "://") {
		return rewriteTarget{}, fmt.Errorf("is a URL; weir supports path targets only")
	}
	if strings.Contains(s, "?") {
		return rewriteTarget{}, fmt.Errorf("has a query string, which weir does not support")
	}
	rt := rewriteTarget{raw: s}
	var lit strings.Builder
	for i := 0; i < len(s); {
		if s[i] != '$' {
			lit.WriteByte(s[i])
			i++
			continue
		}
		m := groupRefRE.FindStringSubmatch(s[i:])
		if m == nil {
			return rewriteTarget{}, fmt.Errorf("uses %q at offset %d; only capture groups $1..$9 are supported", s[i:], i)
		}
		if lit.Len() > 0 {
			rt.parts = append(rt.parts, rewritePart{Literal: lit.String()})
			lit.Reset()
		}
		n, _ := strconv.Atoi(m[1] + m[2])
		rt.parts = append(rt.parts, rewritePart{Group: n})
		i += len(m[0])
	}
	if lit.Len() > 0 {
		rt.parts = append(rt.parts, rewritePart{Literal: lit.String()})
	}
	return rt, nil
}

// substitution is the target as an RE2 rewrite string for a pattern with
// groups capture groups. Like nginx, a reference to a group the pattern
// does not have is empty.
func (rt rewriteTarget) substitution(groups int) string {
	var b strings.Builder
	for _, p := range rt.parts {
		switch {
		case p.Group == 0:
			b.WriteString(strings.ReplaceAll(p.Literal, `\`, `\\`))
		case p.Group <= groups:
			fmt.Fprintf(&b, `\%d`, p.Group)
		}
	}
	return b.String()
}
