package istio

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"

	istioapi "github.com/weir-mesh/weir/api/istio"
	"github.com/weir-mesh/weir/translator/ir"
)

// httpRule is one validated rule of spec.http.
type httpRule struct {
	index int
	// matches are ORed; nil matches every request.
	matches []matchPlan
	// action is the route without Name, Match, Backends, Mirrors and
	// HashPolicy, which depend on where the rule is used.
	action  ir.Route
	dests   []dest
	mirrors []dest
}

// dest is a destination as written: resolved per context.
type dest struct {
	field  string
	host   string
	subset string
	port   uint32
	// weight is the relative weight; for mirrors, percent is the share.
	weight  uint32
	percent float64
}

// defaultRetryOn is what istiod retries when a rule sets no retryOn.
const defaultRetryOn = "connect-failure,refused-stream,unavailable,cancelled,503"

// retryConditions are the retryOn values Envoy accepts (HTTP and gRPC).
var retryConditions = map[string]bool{
	"5xx": true, "gateway-error": true, "reset": true, "reset-before-request": true, "connect-failure": true,
	"envoy-ratelimited": true, "retriable-4xx": true, "refused-stream": true, "retriable-status-codes": true,
	"retriable-headers": true, "http3-post-connect-failure": true, "cancelled": true, "deadline-exceeded": true,
	"internal": true, "resource-exhausted": true, "unavailable": true,
}

// translateRule checks and translates spec.http[i] of a VirtualService in
// namespace.
func translateRule(i int, namespace string, in istioapi.HTTPRoute) (httpRule, *invalid) {
	field := fmt.Sprintf("spec.http[%d]", i)
	r := httpRule{index: i}
	for j, m := range in.Match {
		mp, err := translateMatch(fmt.Sprintf("%s.match[%d]", field, j), namespace, m)
		if err != nil {
			return r, err
		}
		r.matches = append(r.matches, mp)
	}
	steps := []func(string, istioapi.HTTPRoute, *httpRule) *invalid{
		checkAction, translateDests, translateRedirect, translateDirectResponse, translateRewrite,
		translateTimeouts, translateFault, translateMirrors, translateHeaders,
	}
	for _, step := range steps {
		if err := step(field, in, &r); err != nil {
			return r, err
		}
	}
	return r, nil
}

// checkAction requires exactly one of route, redirect and directResponse.
func checkAction(field string, in istioapi.HTTPRoute, _ *httpRule) *invalid {
	if in.Delegate != nil {
		return fieldError(ReasonUnsupported, field+".delegate", "delegation is not supported")
	}
	set := 0
	for _, ok := range []bool{len(in.Route) > 0, in.Redirect != nil, in.DirectResponse != nil} {
		if ok {
			set++
		}
	}
	if set != 1 {
		return fieldError(ReasonInvalidField, field, "set exactly one of route, redirect and directResponse")
	}
	return nil
}

// translateDests reads route[]: weights are relative; a lone destination
// without a weight takes everything.
func translateDests(field string, in istioapi.HTTPRoute, r *httpRule) *invalid {
	var total int64
	for j, d := range in.Route {
		f := fmt.Sprintf("%s.route[%d]", field, j)
		w := int32(0)
		if d.Weight != nil {
			w = *d.Weight
		} else if len(in.Route) == 1 {
			w = 100
		}
		if w < 0 {
			return fieldError(ReasonInvalidWeight, f+".weight", "%d is negative; weights must be >= 0", w)
		}
		total += int64(w)
		ds, err := translateDest(f+".destination", d.Destination)
		if err != nil {
			return err
		}
		ds.weight = uint32(w)
		r.dests = append(r.dests, ds)
		if err := destHeaders(f+".headers", d.Headers, len(in.Route), &r.action); err != nil {
			return err
		}
	}
	if len(in.Route) > 0 && total == 0 {
		return fieldError(ReasonInvalidWeight, field+".route[*].weight", "all weights are zero; at least one must be > 0")
	}
	return nil
}

// destHeaders applies a lone destination's header edits to the route; weir
// cannot edit headers per weighted destination.
func destHeaders(field string, h *istioapi.Headers, dests int, out *ir.Route) *invalid {
	if h == nil {
		return nil
	}
	if dests > 1 {
		return fieldError(ReasonUnsupported, field, "header edits per destination are supported only for a lone destination; set them on the rule")
	}
	return addHeaders(field, h, out)
}

func translateDest(field string, d istioapi.Destination) (dest, *invalid) {
	if d.Host == "" {
		return dest{}, fieldError(ReasonInvalidField, field+".host", "must name a Service")
	}
	out := dest{field: field, host: d.Host, subset: d.Subset}
	if d.Port != nil {
		if d.Port.Number == 0 || d.Port.Number > 65535 {
			return out, fieldError(ReasonInvalidField, field+".port.number", "%d is not a port", d.Port.Number)
		}
		out.port = d.Port.Number
	}
	return out, nil
}

var redirectCodes = map[uint32]bool{0: true, 301: true, 302: true, 303: true, 307: true, 308: true}

func translateRedirect(field string, in istioapi.HTTPRoute, r *httpRule) *invalid {
	rd := in.Redirect
	if rd == nil {
		return nil
	}
	field += ".redirect"
	if !redirectCodes[rd.RedirectCode] {
		return fieldError(ReasonInvalidField, field+".redirectCode", "%d is not one of 301, 302, 303, 307, 308", rd.RedirectCode)
	}
	if rd.Port > 65535 {
		return fieldError(ReasonInvalidField, field+".port", "%d is not a port", rd.Port)
	}
	switch rd.DerivePort {
	case "", "FROM_PROTOCOL_DEFAULT", "FROM_REQUEST_PORT":
	default:
		return fieldError(ReasonInvalidField, field+".derivePort", "%q is not FROM_PROTOCOL_DEFAULT or FROM_REQUEST_PORT", rd.DerivePort)
	}
	if rd.Port != 0 && rd.DerivePort != "" {
		return fieldError(ReasonInvalidField, field, "set port or derivePort, not both")
	}
	code := rd.RedirectCode
	if code == 0 {
		code = 301
	}
	r.action.Redirect = &ir.Redirect{Scheme: rd.Scheme, Host: rd.Authority, Port: rd.Port, Path: rd.URI, StatusCode: code}
	return nil
}

func translateDirectResponse(field string, in istioapi.HTTPRoute, r *httpRule) *invalid {
	dr := in.DirectResponse
	if dr == nil {
		return nil
	}
	if dr.Status < 200 || dr.Status > 599 {
		return fieldError(ReasonInvalidField, field+".directResponse.status", "%d is not an HTTP status in [200, 599]", dr.Status)
	}
	out := &ir.DirectResponse{Status: dr.Status}
	if dr.Body != nil {
		out.Body = dr.Body.String
		if len(dr.Body.Bytes) > 0 {
			out.Body = string(dr.Body.Bytes)
		}
	}
	r.action.DirectResponse = out
	return nil
}

func translateRewrite(field string, in istioapi.HTTPRoute, r *httpRule) *invalid {
	rw := in.Rewrite
	if rw == nil {
		return nil
	}
	field += ".rewrite"
	out := &ir.Rewrite{PathPrefix: rw.URI, Host: rw.Authority}
	if rx := rw.URIRegexRewrite; rx != nil {
		if rw.URI != "" {
			return fieldError(ReasonInvalidField, field, "set uri or uriRegexRewrite, not both")
		}
		if err := checkRegex(field+".uriRegexRewrite.match", rx.Match); err != nil {
			return err
		}
		out.PathRegex, out.PathSubstitution = rx.Match, rx.Rewrite
	}
	r.action.Rewrite = out
	return nil
}

// translateTimeouts reads timeout and retries. As with istiod, a rule
// without a timeout has none, and one without retries retries twice on
// connection failures and 503.
func translateTimeouts(field string, in istioapi.HTTPRoute, r *httpRule) *invalid {
	r.action.Timeout = ir.Disabled
	if in.Timeout != "" {
		d, err := parseDuration(field+".timeout", in.Timeout)
		if err != nil {
			return err
		}
		if d != 0 {
			r.action.Timeout = d
		}
	}
	if in.DirectResponse != nil || in.Redirect != nil {
		return nil
	}
	rt := in.Retries
	if rt == nil {
		r.action.Retry = &ir.Retry{Attempts: 2, RetryOn: defaultRetryOn}
		return nil
	}
	if rt.Attempts < 0 {
		return fieldError(ReasonInvalidField, field+".retries.attempts", "%d is negative", rt.Attempts)
	}
	per, err := parseDuration(field+".retries.perTryTimeout", rt.PerTryTimeout)
	if err != nil {
		return err
	}
	on, err := retryOn(field+".retries.retryOn", rt.RetryOn)
	if err != nil {
		return err
	}
	r.action.Retry = &ir.Retry{Attempts: uint32(rt.Attempts), PerTryTimeout: per, RetryOn: on}
	return nil
}

// retryOn checks a comma-separated list of retry conditions and status
// codes; "" is istiod's default.
func retryOn(field, s string) (string, *invalid) {
	if strings.TrimSpace(s) == "" {
		return defaultRetryOn, nil
	}
	var out []string
	for _, c := range strings.Split(s, ",") {
		c = strings.TrimSpace(c)
		if n, err := strconv.Atoi(c); err == nil {
			if n < 100 || n > 599 {
				return "", fieldError(ReasonInvalidField, field, "%d is not an HTTP status", n)
			}
		} else if !retryConditions[c] {
			return "", fieldError(ReasonInvalidField, field, "%q is not a retry condition Envoy knows", c)
		}
		out = append(out, c)
	}
	return strings.Join(out, ","), nil
}

func translateFault(field string, in istioapi.HTTPRoute, r *httpRule) *invalid {
	f := in.Fault
	if f == nil {
		return nil
	}
	field += ".fault"
	out := &ir.Fault{}
	if d := f.Delay; d != nil {
		if err := faultDelay(field+".delay", d, out); err != nil {
			return err
		}
	}
	if a := f.Abort; a != nil {
		if err := faultAbort(field+".abort", a, out); err != nil {
			return err
		}
	}
	if f.Delay == nil && f.Abort == nil {
		return fieldError(ReasonInvalidField, field, "set delay, abort or both")
	}
	r.action.Fault = out
	return nil
}

func faultDelay(field string, d *istioapi.FaultDelay, out *ir.Fault) *invalid {
	if d.ExponentialDelay != "" {
		return fieldError(ReasonUnsupported, field+".exponentialDelay", "only fixedDelay is supported")
	}
	delay, err := parseDuration(field+".fixedDelay", d.FixedDelay)
	if err != nil {
		return err
	}
	if delay == 0 {
		return fieldError(ReasonInvalidField, field+".fixedDelay", "must be a positive duration")
	}
	p, err := percent(field+".percentage", d.Percentage)
	if err != nil {
		return err
	}
	if d.Percentage == nil && d.Percent != nil {
		if *d.Percent < 0 || *d.Percent > 100 {
			return fieldError(ReasonInvalidField, field+".percent", "%d is not in [0, 100]", *d.Percent)
		}
		p = float64(*d.Percent)
	}
	out.Delay, out.DelayPercent = delay, p
	return nil
}

func faultAbort(field string, a *istioapi.FaultAbort, out *ir.Fault) *invalid {
	if a.HTTP2Error != "" {
		return fieldError(ReasonUnsupported, field+".http2Error", "only httpStatus and grpcStatus are supported")
	}
	grpc, err := grpcStatus(field+".grpcStatus", a.GRPCStatus)
	if err != nil {
		return err
	}
	switch {
	case a.HTTPStatus != 0 && len(a.GRPCStatus) > 0:
		return fieldError(ReasonInvalidField, field, "set httpStatus or grpcStatus, not both")
	case a.HTTPStatus != 0 && (a.HTTPStatus < 200 || a.HTTPStatus > 599):
		return fieldError(ReasonInvalidField, field+".httpStatus", "%d is not an HTTP status in [200, 599]", a.HTTPStatus)
	case a.HTTPStatus == 0 && len(a.GRPCStatus) == 0:
		return fieldError(ReasonInvalidField, field, "set httpStatus or grpcStatus")
	}
	p, err := percent(field+".percentage", a.Percentage)
	if err != nil {
		return err
	}
	out.AbortStatus, out.GRPCStatus, out.AbortPercent = uint32(a.HTTPStatus), grpc, p
	return nil
}

// grpcCodes are the gRPC status codes by name.
var grpcCodes = map[string]uint32{
	"OK": 0, "CANCELLED": 1, "UNKNOWN": 2, "INVALID_ARGUMENT": 3, "DEADLINE_EXCEEDED": 4, "NOT_FOUND": 5,
	"ALREADY_EXISTS": 6, "PERMISSION_DENIED": 7, "RESOURCE_EXHAUSTED": 8, "FAILED_PRECONDITION": 9,
	"ABORTED": 10, "OUT_OF_RANGE": 11, "UNIMPLEMENTED": 12, "INTERNAL": 13, "UNAVAILABLE": 14,
	"DATA_LOSS": 15, "UNAUTHENTICATED": 16,
}

// grpcStatus reads a gRPC status given as a name (Istio v1) or a number
// (older Istio).
func grpcStatus(field string, raw json.RawMessage) (uint32, *invalid) {
	if len(raw) == 0 {
		return 0, nil
	}
	var n uint32
	if json.Unmarshal(raw, &n) == nil && n <= 16 {
		return n, nil
	}
	var name string
	if json.Unmarshal(raw, &name) == nil {
		if c, ok := grpcCodes[strings.ToUpper(name)]; ok {
			return c, nil
		}
		if v, err := strconv.ParseUint(name, 10, 32); err == nil && v <= 16 {
			return uint32(v), nil
		}
	}
	return 0, fieldError(ReasonInvalidField, field, "%s is not a gRPC status code (e.g. \"UNAVAILABLE\")", string(raw))
}

// translateMirrors reads mirror (with mirrorPercentage or mirrorPercent)
// and mirrors[].
func translateMirrors(field string, in istioapi.HTTPRoute, r *httpRule) *invalid {
	if in.Mirror != nil {
		d, err := translateDest(field+".mirror", *in.Mirror)
		if err != nil {
			return err
		}
		if d.percent, err = percent(field+".mirrorPercentage", in.MirrorPercentage); err != nil {
			return err
		}
		if in.MirrorPercentage == nil && in.MirrorPercent != nil {
			if *in.MirrorPercent > 100 {
				return fieldError(ReasonInvalidField, field+".mirrorPercent", "%d is not in [0, 100]", *in.MirrorPercent)
			}
			d.percent = float64(*in.MirrorPercent)
		}
		r.mirrors = append(r.mirrors, d)
	}
	for j, m := range in.Mirrors {
		f := fmt.Sprintf("%s.mirrors[%d]", field, j)
		d, err := translateDest(f+".destination", m.Destination)
		if err != nil {
			return err
		}
		if d.percent, err = percent(f+".percentage", m.Percentage); err != nil {
			return err
		}
		r.mirrors = append(r.mirrors, d)
	}
	return nil
}

func translateHeaders(field string, in istioapi.HTTPRoute, r *httpRule) *invalid {
	if in.Headers == nil {
		return nil
	}
	return addHeaders(field+".headers", in.Headers, &r.action)
}

// addHeaders appends header edits to a route, sorted by name.
func addHeaders(field string, h *istioapi.Headers, out *ir.Route) *invalid {
	if err := addOps(field+".request", h.Request, &out.RequestHeaders); err != nil {
		return err
	}
	return addOps(field+".response", h.Response, &out.ResponseHeaders)
}

func addOps(field string, ops *istioapi.HeaderOperations, out *ir.HeaderMods) *invalid {
	if ops == nil {
		return nil
	}
	for _, name := range slices.Sorted(maps.Keys(ops.Set)) {
		if err := headerName(field+".set", name); err != nil {
			return err
		}
		out.Set = append(out.Set, ir.Header{Name: lower(name), Value: ops.Set[name]})
	}
	for _, name := range slices.Sorted(maps.Keys(ops.Add)) {
		if err := headerName(field+".add", name); err != nil {
			return err
		}
		out.Add = append(out.Add, ir.Header{Name: lower(name), Value: ops.Add[name]})
	}
	for i, name := range ops.Remove {
		if err := headerName(fmt.Sprintf("%s.remove[%d]", field, i), name); err != nil {
			return err
		}
		out.Remove = append(out.Remove, lower(name))
	}
	return nil
}

// headerName refuses names Envoy does not let a route edit.
func headerName(field, name string) *invalid {
	if name == "" || strings.HasPrefix(name, ":") || strings.EqualFold(name, "host") {
		return fieldError(ReasonInvalidField, field, "%q cannot be edited (empty, a pseudo-header or host)", name)
	}
	if strings.ContainsAny(name, " \t\r\n:") {
		return fieldError(ReasonInvalidField, field, "%q is not a header name", name)
	}
	return nil
}
