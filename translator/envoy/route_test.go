package envoy

import (
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	faultcommonv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/common/fault/v3"
	faultv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/fault/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/testing/protocmp"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/weir-mesh/weir/translator/ir"
)

var toV1 = []ir.Backend{{Cluster: "v1", Weight: 1}}

func toCluster(c string) *routev3.Route_Route {
	return &routev3.Route_Route{Route: &routev3.RouteAction{ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: c}}}
}

func prefixMatch(p string) *routev3.RouteMatch {
	return &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: p}}
}

func exactString(s string) *routev3.HeaderMatcher_StringMatch {
	return &routev3.HeaderMatcher_StringMatch{StringMatch: &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: s}}}
}

func TestBuildRouteMatch(t *testing.T) {
	tests := map[string]struct {
		in   ir.Match
		want *routev3.RouteMatch
	}{
		"zero": {want: prefixMatch("/")},
		"regex path and header keep their form": {
			in: ir.Match{PathRegex: "/a.*", Headers: []ir.HeaderMatch{{Name: "x", ValueRegex: "b+"}}},
			want: &routev3.RouteMatch{
				PathSpecifier: &routev3.RouteMatch_SafeRegex{SafeRegex: &matcherv3.RegexMatcher{Regex: "/a.*"}},
				Headers: []*routev3.HeaderMatcher{{Name: "x", HeaderMatchSpecifier: &routev3.HeaderMatcher_StringMatch{StringMatch: &matcherv3.StringMatcher{
					MatchPattern: &matcherv3.StringMatcher_SafeRegex{SafeRegex: &matcherv3.RegexMatcher{Regex: "b+"}},
				}}}},
			},
		},
		"exact path ignoring case": {
			in:   ir.Match{PathExact: "/Login", PathIgnoreCase: true},
			want: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Path{Path: "/Login"}, CaseSensitive: wrapperspb.Bool(false)},
		},
		"prefix": {in: ir.Match{PathPrefix: "/api"}, want: prefixMatch("/api")},
		"headers": {
			in: ir.Match{Headers: []ir.HeaderMatch{
				{Name: "a", Exact: "1"},
				{Name: "b", Prefix: "pre"},
				{Name: "c", Present: true},
				{Name: "d", Present: true, Invert: true},
				{Name: "e", Exact: "2", Invert: true},
			}},
			want: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}, Headers: []*routev3.HeaderMatcher{
				{Name: "a", HeaderMatchSpecifier: exactString("1")},
				{Name: "b", HeaderMatchSpecifier: &routev3.HeaderMatcher_StringMatch{StringMatch: &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Prefix{Prefix: "pre"}}}},
				{Name: "c", HeaderMatchSpecifier: &routev3.HeaderMatcher_PresentMatch{PresentMatch: true}},
				{Name: "d", HeaderMatchSpecifier: &routev3.HeaderMatcher_PresentMatch{PresentMatch: true}, InvertMatch: true},
				{Name: "e", HeaderMatchSpecifier: exactString("2"), InvertMatch: true},
			}},
		},
		"query parameters": {
			in: ir.Match{QueryParams: []ir.QueryMatch{{Name: "a", Exact: "1"}, {Name: "b", Regex: "[0-9]+"}, {Name: "c", Present: true}}},
			want: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}, QueryParameters: []*routev3.QueryParameterMatcher{
				{Name: "a", QueryParameterMatchSpecifier: &routev3.QueryParameterMatcher_StringMatch{StringMatch: &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: "1"}}}},
				{Name: "b", QueryParameterMatchSpecifier: &routev3.QueryParameterMatcher_StringMatch{StringMatch: &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_SafeRegex{SafeRegex: &matcherv3.RegexMatcher{Regex: "[0-9]+"}}}}},
				{Name: "c", QueryParameterMatchSpecifier: &routev3.QueryParameterMatcher_PresentMatch{PresentMatch: true}},
			}},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got := buildRouteMatch(tc.in)
			if diff := cmp.Diff(tc.want, got, protocmp.Transform()); diff != "" {
				t.Errorf("buildRouteMatch (-want +got):\n%s", diff)
			}
			if err := got.ValidateAll(); err != nil {
				t.Errorf("ValidateAll: %v", err)
			}
		})
	}
}

func TestBuildRoute(t *testing.T) {
	tests := map[string]struct {
		in   ir.Route
		want *routev3.Route
	}{
		"redirect defaults to 301": {
			in:   ir.Route{Redirect: &ir.Redirect{Scheme: "https"}},
			want: &routev3.Route{Match: prefixMatch("/"), Action: &routev3.Route_Redirect{Redirect: &routev3.RedirectAction{SchemeRewriteSpecifier: &routev3.RedirectAction_HttpsRedirect{HttpsRedirect: true}}}},
		},
		"redirect with every field": {
			in: ir.Route{Redirect: &ir.Redirect{Scheme: "http", Host: "b.example", Port: 8080, Path: "/new", StatusCode: 308}},
			want: &routev3.Route{Match: prefixMatch("/"), Action: &routev3.Route_Redirect{Redirect: &routev3.RedirectAction{
				SchemeRewriteSpecifier: &routev3.RedirectAction_SchemeRedirect{SchemeRedirect: "http"},
				HostRedirect:           "b.example",
				PortRedirect:           8080,
				PathRewriteSpecifier:   &routev3.RedirectAction_PathRedirect{PathRedirect: "/new"},
				ResponseCode:           routev3.RedirectAction_PERMANENT_REDIRECT,
			}}},
		},
		"redirect replacing a prefix": {
			in: ir.Route{Match: ir.Match{PathPrefix: "/old"}, Redirect: &ir.Redirect{PathPrefix: "/new", StatusCode: 302}},
			want: &routev3.Route{Match: prefixMatch("/old"), Action: &routev3.Route_Redirect{Redirect: &routev3.RedirectAction{
				PathRewriteSpecifier: &routev3.RedirectAction_PrefixRewrite{PrefixRewrite: "/new"},
				ResponseCode:         routev3.RedirectAction_FOUND,
			}}},
		},
		"direct response": {
			in: ir.Route{DirectResponse: &ir.DirectResponse{Status: 503, Body: "down"}},
			want: &routev3.Route{Match: prefixMatch("/"), Action: &routev3.Route_DirectResponse{DirectResponse: &routev3.DirectResponseAction{
				Status: 503, Body: &corev3.DataSource{Specifier: &corev3.DataSource_InlineString{InlineString: "down"}},
			}}},
		},
		"rewrites, timeout and retry": {
			in: ir.Route{
				Backends: toV1,
				Rewrite:  &ir.Rewrite{PathPrefix: "/v2", PathRegex: "^/a/(.*)$", PathSubstitution: `/b/\1`, Host: "up.example"},
				Timeout:  ir.Duration(3 * time.Second),
				Retry:    &ir.Retry{Attempts: 2, PerTryTimeout: ir.Duration(time.Second), RetryOn: "5xx, 503,connect-failure,429"},
			},
			want: &routev3.Route{Match: prefixMatch("/"), Action: &routev3.Route_Route{Route: &routev3.RouteAction{
				ClusterSpecifier:     &routev3.RouteAction_Cluster{Cluster: "v1"},
				PrefixRewrite:        "/v2",
				RegexRewrite:         &matcherv3.RegexMatchAndSubstitute{Pattern: &matcherv3.RegexMatcher{Regex: "^/a/(.*)$"}, Substitution: `/b/\1`},
				HostRewriteSpecifier: &routev3.RouteAction_HostRewriteLiteral{HostRewriteLiteral: "up.example"},
				Timeout:              durationpb.New(3 * time.Second),
				RetryPolicy: &routev3.RetryPolicy{
					RetryOn:              "5xx,connect-failure,retriable-status-codes",
					NumRetries:           wrapperspb.UInt32(2),
					PerTryTimeout:        durationpb.New(time.Second),
					RetriableStatusCodes: []uint32{503, 429},
				},
			}}},
		},
		"disabled timeout and no retries": {
			in: ir.Route{Backends: toV1, Timeout: ir.Disabled, Retry: &ir.Retry{}},
			want: &routev3.Route{Match: prefixMatch("/"), Action: &routev3.Route_Route{Route: &routev3.RouteAction{
				ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: "v1"},
				Timeout:          durationpb.New(0),
				RetryPolicy:      &routev3.RetryPolicy{NumRetries: wrapperspb.UInt32(0)},
			}}},
		},
		"mirrors": {
			in: ir.Route{Backends: toV1, Mirrors: []ir.Mirror{{Cluster: "m1", Percent: 100}, {Cluster: "m2", Percent: 12.5}, {Cluster: "m3", Percent: 0.0001}}},
			want: &routev3.Route{Match: prefixMatch("/"), Action: &routev3.Route_Route{Route: &routev3.RouteAction{
				ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: "v1"},
				RequestMirrorPolicies: []*routev3.RouteAction_RequestMirrorPolicy{
					{Cluster: "m1"},
					{Cluster: "m2", RuntimeFraction: &corev3.RuntimeFractionalPercent{DefaultValue: &typev3.FractionalPercent{Numerator: 125000, Denominator: typev3.FractionalPercent_MILLION}}},
					{Cluster: "m3", RuntimeFraction: &corev3.RuntimeFractionalPercent{DefaultValue: &typev3.FractionalPercent{Numerator: 1, Denominator: typev3.FractionalPercent_MILLION}}},
				},
			}}},
		},
		"header modifications": {
			in: ir.Route{
				Backends:        toV1,
				RequestHeaders:  ir.HeaderMods{Set: []ir.Header{{Name: "x-a", Value: "1"}}, Add: []ir.Header{{Name: "x-b", Value: "2"}}, Remove: []string{"x-c"}},
				ResponseHeaders: ir.HeaderMods{Add: []ir.Header{{Name: "x-d", Value: "3"}}, Remove: []string{"server"}},
			},
			want: &routev3.Route{
				Match:  prefixMatch("/"),
				Action: toCluster("v1"),
				RequestHeadersToAdd: []*corev3.HeaderValueOption{
					{Header: &corev3.HeaderValue{Key: "x-a", Value: "1"}, AppendAction: corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD},
					{Header: &corev3.HeaderValue{Key: "x-b", Value: "2"}, AppendAction: corev3.HeaderValueOption_APPEND_IF_EXISTS_OR_ADD},
				},
				RequestHeadersToRemove:  []string{"x-c"},
				ResponseHeadersToAdd:    []*corev3.HeaderValueOption{{Header: &corev3.HeaderValue{Key: "x-d", Value: "3"}, AppendAction: corev3.HeaderValueOption_APPEND_IF_EXISTS_OR_ADD}},
				ResponseHeadersToRemove: []string{"server"},
			},
		},
		"hash policies pick versions": {
			in: ir.Route{
				Backends:     []ir.Backend{{Cluster: "v1", Weight: 90}, {Cluster: "v2", Weight: 10}},
				HashPolicy:   []ir.HashPolicy{{Header: "x-user"}, {Cookie: &ir.HashCookie{Name: "c", TTL: ir.Duration(time.Hour), Path: "/"}}, {SourceIP: true}},
				HashVersions: true,
			},
			want: &routev3.Route{Match: prefixMatch("/"), Action: &routev3.Route_Route{Route: &routev3.RouteAction{
				ClusterSpecifier: &routev3.RouteAction_WeightedClusters{WeightedClusters: &routev3.WeightedCluster{
					Clusters: []*routev3.WeightedCluster_ClusterWeight{
						{Name: "v1", Weight: wrapperspb.UInt32(90)},
						{Name: "v2", Weight: wrapperspb.UInt32(10)},
					},
					RandomValueSpecifier: &routev3.WeightedCluster_UseHashPolicy{UseHashPolicy: wrapperspb.Bool(true)},
				}},
				HashPolicy: []*routev3.RouteAction_HashPolicy{
					{PolicySpecifier: &routev3.RouteAction_HashPolicy_Header_{Header: &routev3.RouteAction_HashPolicy_Header{HeaderName: "x-user"}}},
					{PolicySpecifier: &routev3.RouteAction_HashPolicy_Cookie_{Cookie: &routev3.RouteAction_HashPolicy_Cookie{Name: "c", Ttl: durationpb.New(time.Hour), Path: "/"}}},
					{PolicySpecifier: &routev3.RouteAction_HashPolicy_ConnectionProperties_{ConnectionProperties: &routev3.RouteAction_HashPolicy_ConnectionProperties{SourceIp: true}}},
				},
			}}},
		},
		"hash versions with one backend": {
			in: ir.Route{Backends: toV1, HashPolicy: []ir.HashPolicy{{SourceIP: true}}, HashVersions: true},
			want: &routev3.Route{Match: prefixMatch("/"), Action: &routev3.Route_Route{Route: &routev3.RouteAction{
				ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: "v1"},
				HashPolicy: []*routev3.RouteAction_HashPolicy{
					{PolicySpecifier: &routev3.RouteAction_HashPolicy_ConnectionProperties_{ConnectionProperties: &routev3.RouteAction_HashPolicy_ConnectionProperties{SourceIp: true}}},
				},
			}}},
		},
		"fault": {
			in: ir.Route{Backends: toV1, Fault: &ir.Fault{DelayPercent: 50, Delay: ir.Duration(2 * time.Second), AbortPercent: 0.5, AbortStatus: 503}},
			want: &routev3.Route{Match: prefixMatch("/"), Action: toCluster("v1"), TypedPerFilterConfig: map[string]*anypb.Any{
				"envoy.filters.http.fault": mustAny(&faultv3.HTTPFault{
					Delay: &faultcommonv3.FaultDelay{
						FaultDelaySecifier: &faultcommonv3.FaultDelay_FixedDelay{FixedDelay: durationpb.New(2 * time.Second)},
						Percentage:         &typev3.FractionalPercent{Numerator: 500000, Denominator: typev3.FractionalPercent_MILLION},
					},
					Abort: &faultv3.FaultAbort{ErrorType: &faultv3.FaultAbort_HttpStatus{HttpStatus: 503}, Percentage: &typev3.FractionalPercent{Numerator: 5000, Denominator: typev3.FractionalPercent_MILLION}},
				}),
			}},
		},
		"grpc abort": {
			in: ir.Route{Backends: toV1, Fault: &ir.Fault{AbortPercent: 100, GRPCStatus: 14}},
			want: &routev3.Route{Match: prefixMatch("/"), Action: toCluster("v1"), TypedPerFilterConfig: map[string]*anypb.Any{
				"envoy.filters.http.fault": mustAny(&faultv3.HTTPFault{
					Abort: &faultv3.FaultAbort{ErrorType: &faultv3.FaultAbort_GrpcStatus{GrpcStatus: 14}, Percentage: &typev3.FractionalPercent{Numerator: 1000000, Denominator: typev3.FractionalPercent_MILLION}},
				}),
			}},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got := buildRoute(tc.in)
			if diff := cmp.Diff(tc.want, got, protocmp.Transform()); diff != "" {
				t.Errorf("buildRoute (-want +got):\n%s", diff)
			}
			if err := got.ValidateAll(); err != nil {
				t.Errorf("ValidateAll: %v", err)
			}
			for k, a := range got.TypedPerFilterConfig {
				var f faultv3.HTTPFault
				if err := a.UnmarshalTo(&f); err != nil {
					t.Fatalf("%s: %v", k, err)
				}
				if err := f.ValidateAll(); err != nil {
					t.Errorf("%s: ValidateAll: %v", k, err)
				}
			}
		})
	}
}

func TestFaultFilter(t *testing.T) {
	f := FaultFilter()
	if err := f.ValidateAll(); err != nil {
		t.Fatalf("ValidateAll: %v", err)
	}
	if f.Name != "envoy.filters.http.fault" {
		t.Errorf("name %q, want envoy.filters.http.fault", f.Name)
	}
	var cfg faultv3.HTTPFault
	if err := f.GetTypedConfig().UnmarshalTo(&cfg); err != nil {
		t.Fatalf("typed config: %v", err)
	}
	if !proto.Equal(&cfg, &faultv3.HTTPFault{}) {
		t.Errorf("typed config %v, want empty (faults are configured per route)", &cfg)
	}
	hcm := buildHCM("s", "r")
	hcm.HttpFilters = append([]*hcmv3.HttpFilter{f}, hcm.HttpFilters...)
	if err := hcm.ValidateAll(); err != nil {
		t.Errorf("HCM with fault filter: %v", err)
	}
}

// TestBuildMirrorClusters checks that clusters only mirrored to are built
// and pass the reference check.
func TestBuildMirrorClusters(t *testing.T) {
	in := &ir.IR{
		Hosts: []ir.Host{{Name: "a.ns.svc.cluster.local:80", Service: "a", Namespace: "ns", Port: 80, Routes: []ir.Route{{
			Name: "r", Backends: toV1, Mirrors: []ir.Mirror{{Cluster: "shadow", Percent: 10}},
		}}}},
		Clusters: []ir.Cluster{{Name: "shadow"}, {Name: "unused"}, {Name: "v1"}},
	}
	for _, role := range []Role{Sidecar, GRPC} {
		res, err := Build(in, Proxy{Role: role, Namespace: "ns", OutboundAddress: "127.0.0.1", OutboundPort: DefaultOutboundPort})
		if err != nil {
			t.Fatalf("%s: Build: %v", role, err)
		}
		var names []string
		for _, c := range res.Clusters {
			names = append(names, c.Name)
		}
		if diff := cmp.Diff([]string{"shadow", "v1"}, names); diff != "" {
			t.Errorf("%s: clusters (-want +got):\n%s", role, diff)
		}
		if err := Validate(res); err != nil {
			t.Errorf("%s: Validate: %v", role, err)
		}
		res.Clusters = res.Clusters[1:]
		if err := Validate(res); err == nil {
			t.Errorf("%s: Validate accepts a missing mirror cluster", role)
		}
	}
}
