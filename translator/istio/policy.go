package istio

import (
	istioapi "github.com/weir-mesh/weir/api/istio"
	"github.com/weir-mesh/weir/translator/ir"
)

// translatePolicy checks and translates a TrafficPolicy found at field; nil
// is the zero policy.
func translatePolicy(field string, tp *istioapi.TrafficPolicy) (policy, *invalid) {
	var p policy
	if tp == nil {
		return p, nil
	}
	var err *invalid
	if tp.LoadBalancer != nil {
		p.lbSet = true
		if p.lb, p.hash, err = translateLB(field+".loadBalancer", tp.LoadBalancer); err != nil {
			return p, err
		}
	}
	if tp.ConnectionPool != nil {
		p.poolSet = true
		if p.pool, err = translatePool(field+".connectionPool", tp.ConnectionPool); err != nil {
			return p, err
		}
	}
	if tp.OutlierDetection != nil {
		if p.outlier, err = translateOutlier(field+".outlierDetection", tp.OutlierDetection); err != nil {
			return p, err
		}
	}
	return p, nil
}

// simpleLB maps Istio's simple load balancers to the IR's.
var simpleLB = map[string]ir.LBPolicy{
	"":              "",
	"UNSPECIFIED":   "",
	"ROUND_ROBIN":   ir.RoundRobin,
	"LEAST_REQUEST": ir.LeastRequest,
	"LEAST_CONN":    ir.LeastRequest,
	"RANDOM":        ir.Random,
}

func translateLB(field string, lb *istioapi.LoadBalancerSettings) (ir.LBPolicy, []ir.HashPolicy, *invalid) {
	if lb.ConsistentHash != nil {
		if lb.Simple != "" {
			return "", nil, fieldError(ReasonInvalidField, field, "set simple or consistentHash, not both")
		}
		hash, err := translateHash(field+".consistentHash", lb.ConsistentHash)
		return ir.RingHash, hash, err
	}
	if lb.Simple == "PASSTHROUGH" {
		return "", nil, fieldError(ReasonUnsupported, field+".simple", "PASSTHROUGH is not supported")
	}
	p, ok := simpleLB[lb.Simple]
	if !ok {
		return "", nil, fieldError(ReasonInvalidField, field+".simple", "%q is not one of ROUND_ROBIN, LEAST_REQUEST, RANDOM", lb.Simple)
	}
	return p, nil, nil
}

// translateHash reads the one property a consistent hash uses.
func translateHash(field string, ch *istioapi.ConsistentHash) ([]ir.HashPolicy, *invalid) {
	set := 0
	var h ir.HashPolicy
	if ch.HTTPHeaderName != "" {
		set++
		h.Header = lower(ch.HTTPHeaderName)
	}
	if ch.UseSourceIP {
		set++
		h.SourceIP = true
	}
	if ch.HTTPCookie != nil {
		set++
		c, err := translateCookie(field+".httpCookie", ch.HTTPCookie)
		if err != nil {
			return nil, err
		}
		h.Cookie = c
	}
	if ch.HTTPQueryParameterName != "" {
		return nil, fieldError(ReasonUnsupported, field+".httpQueryParameterName", "hashing a query parameter is not supported; use httpHeaderName, httpCookie or useSourceIp")
	}
	if set != 1 {
		return nil, fieldError(ReasonInvalidField, field, "set exactly one of httpHeaderName, httpCookie and useSourceIp (%d set)", set)
	}
	return []ir.HashPolicy{h}, nil
}

func translateCookie(field string, c *istioapi.HTTPCookie) (*ir.HashCookie, *invalid) {
	if c.Name == "" {
		return nil, fieldError(ReasonInvalidField, field+".name", "must be set")
	}
	ttl, err := parseDuration(field+".ttl", c.TTL)
	if err != nil {
		return nil, err
	}
	return &ir.HashCookie{Name: c.Name, TTL: ttl, Path: c.Path}, nil
}

func translatePool(field string, cp *istioapi.ConnectionPool) (ir.ClusterPolicy, *invalid) {
	var p ir.ClusterPolicy
	if tcp := cp.TCP; tcp != nil {
		if err := nonNegative(field+".tcp.maxConnections", tcp.MaxConnections); err != nil {
			return p, err
		}
		p.MaxConnections = uint32(tcp.MaxConnections)
		d, err := parseDuration(field+".tcp.connectTimeout", tcp.ConnectTimeout)
		if err != nil {
			return p, err
		}
		p.ConnectTimeout = d
	}
	if h := cp.HTTP; h != nil {
		for _, f := range []struct {
			name string
			v    int32
			to   *uint32
		}{
			{"http1MaxPendingRequests", h.HTTP1MaxPendingRequests, &p.MaxPendingRequests},
			{"http2MaxRequests", h.HTTP2MaxRequests, &p.MaxRequests},
			{"maxRequestsPerConnection", h.MaxRequestsPerConnection, &p.MaxRequestsPerConnection},
			{"maxRetries", h.MaxRetries, &p.MaxRetries},
		} {
			if err := nonNegative(field+".http."+f.name, f.v); err != nil {
				return p, err
			}
			*f.to = uint32(f.v)
		}
	}
	return p, nil
}

func translateOutlier(field string, od *istioapi.OutlierDetection) (*ir.OutlierDetection, *invalid) {
	out := &ir.OutlierDetection{}
	if err := nonNegative(field+".consecutiveErrors", od.ConsecutiveErrors); err != nil {
		return nil, err
	}
	// As istiod does, the deprecated consecutiveErrors counts gateway errors.
	out.ConsecutiveGatewayErrors = uint32(od.ConsecutiveErrors)
	if od.ConsecutiveGatewayErrors != nil {
		out.ConsecutiveGatewayErrors = *od.ConsecutiveGatewayErrors
	}
	if od.Consecutive5xxErrors != nil {
		out.Consecutive5xx = *od.Consecutive5xxErrors
	}
	var err *invalid
	if out.Interval, err = parseDuration(field+".interval", od.Interval); err != nil {
		return nil, err
	}
	if out.BaseEjectionTime, err = parseDuration(field+".baseEjectionTime", od.BaseEjectionTime); err != nil {
		return nil, err
	}
	if od.MaxEjectionPercent < 0 || od.MaxEjectionPercent > 100 {
		return nil, fieldError(ReasonInvalidField, field+".maxEjectionPercent", "%d is not in [0, 100]", od.MaxEjectionPercent)
	}
	out.MaxEjectionPercent = uint32(od.MaxEjectionPercent)
	return out, nil
}

func nonNegative(field string, v int32) *invalid {
	if v < 0 {
		return fieldError(ReasonInvalidField, field, "%d is negative", v)
	}
	return nil
}

// percent checks a percentage at field; nil means 100.
func percent(field string, p *istioapi.Percent) (float64, *invalid) {
	if p == nil {
		return 100, nil
	}
	if p.Value < 0 || p.Value > 100 {
		return 0, fieldError(ReasonInvalidField, field+".value", "%v is not in [0, 100]", p.Value)
	}
	return p.Value, nil
}
