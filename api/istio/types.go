// Package istio holds the parts of Istio's networking.istio.io API that weir
// reads: VirtualService, DestinationRule and Gateway. Fields weir does not
// read are not decoded.
package istio

import (
	"encoding/json"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Group is Istio's networking API group.
const Group = "networking.istio.io"

// Versions are the served versions weir reads, oldest first; they share one
// schema.
var Versions = []string{"v1alpha3", "v1beta1", "v1"}

// Kinds of the API.
const (
	VirtualServiceKind  = "VirtualService"
	DestinationRuleKind = "DestinationRule"
	GatewayKind         = "Gateway"
)

// Status is the part of an Istio object's status weir writes.
type Status struct {
	Conditions         []metav1.Condition `json:"conditions,omitempty"`
	ObservedGeneration int64              `json:"observedGeneration,omitempty"`
}

// VirtualService routes requests for hosts.
type VirtualService struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Spec              VirtualServiceSpec `json:"spec"`
	Status            Status             `json:"status,omitempty"`
}

// VirtualServiceSpec is the routing of a VirtualService.
type VirtualServiceSpec struct {
	// Hosts are the names clients address: short names resolve in the
	// VirtualService's namespace.
	Hosts []string `json:"hosts,omitempty"`
	// Gateways are "mesh" (the sidecars, the default), "name" or
	// "namespace/name" of Istio Gateways.
	Gateways []string    `json:"gateways,omitempty"`
	ExportTo []string    `json:"exportTo,omitempty"`
	HTTP     []HTTPRoute `json:"http,omitempty"`
	// TCP and TLS routes are decoded only to say that they are ignored.
	TCP []json.RawMessage `json:"tcp,omitempty"`
	TLS []json.RawMessage `json:"tls,omitempty"`
}

// HTTPRoute is one rule of a VirtualService: requests matching any of
// Match (all requests if empty) get its actions.
type HTTPRoute struct {
	Name           string                 `json:"name,omitempty"`
	Match          []HTTPMatchRequest     `json:"match,omitempty"`
	Route          []HTTPRouteDestination `json:"route,omitempty"`
	Redirect       *HTTPRedirect          `json:"redirect,omitempty"`
	DirectResponse *HTTPDirectResponse    `json:"directResponse,omitempty"`
	Delegate       *json.RawMessage       `json:"delegate,omitempty"`
	Rewrite        *HTTPRewrite           `json:"rewrite,omitempty"`
	// Timeout is a duration such as "5s"; "0s" disables it.
	Timeout          string              `json:"timeout,omitempty"`
	Retries          *HTTPRetry          `json:"retries,omitempty"`
	Fault            *HTTPFaultInjection `json:"fault,omitempty"`
	Mirror           *Destination        `json:"mirror,omitempty"`
	MirrorPercentage *Percent            `json:"mirrorPercentage,omitempty"`
	// MirrorPercent is the deprecated integer form of MirrorPercentage.
	MirrorPercent *uint32            `json:"mirrorPercent,omitempty"`
	Mirrors       []HTTPMirrorPolicy `json:"mirrors,omitempty"`
	Headers       *Headers           `json:"headers,omitempty"`
}

// HTTPMatchRequest is a conjunction of conditions on a request.
type HTTPMatchRequest struct {
	Name           string                 `json:"name,omitempty"`
	URI            *StringMatch           `json:"uri,omitempty"`
	Scheme         *StringMatch           `json:"scheme,omitempty"`
	Method         *StringMatch           `json:"method,omitempty"`
	Authority      *StringMatch           `json:"authority,omitempty"`
	Headers        map[string]StringMatch `json:"headers,omitempty"`
	Port           uint32                 `json:"port,omitempty"`
	QueryParams    map[string]StringMatch `json:"queryParams,omitempty"`
	IgnoreURICase  bool                   `json:"ignoreUriCase,omitempty"`
	WithoutHeaders map[string]StringMatch `json:"withoutHeaders,omitempty"`
	// Gateways restricts the match to these gateways ("mesh" included).
	Gateways []string `json:"gateways,omitempty"`
	// SourceLabels and SourceNamespace select clients; weir's proxies
	// share routes between clients, so it refuses them.
	SourceLabels    map[string]string `json:"sourceLabels,omitempty"`
	SourceNamespace string            `json:"sourceNamespace,omitempty"`
}

// StringMatch sets at most one of Exact, Prefix and Regex (RE2); none set
// means "present" where Istio allows it.
type StringMatch struct {
	Exact  string `json:"exact,omitempty"`
	Prefix string `json:"prefix,omitempty"`
	Regex  string `json:"regex,omitempty"`
}

// HTTPRouteDestination is a weighted destination of a rule.
type HTTPRouteDestination struct {
	Destination Destination `json:"destination"`
	// Weight is relative to the sum of the rule's weights; nil is 0, or
	// everything for a lone destination.
	Weight  *int32   `json:"weight,omitempty"`
	Headers *Headers `json:"headers,omitempty"`
}

// Destination is a Service (host), optionally a subset of it and a port.
type Destination struct {
	Host   string        `json:"host"`
	Subset string        `json:"subset,omitempty"`
	Port   *PortSelector `json:"port,omitempty"`
}

// PortSelector picks a port by number.
type PortSelector struct {
	Number uint32 `json:"number,omitempty"`
}

// HTTPRedirect answers with a redirect.
type HTTPRedirect struct {
	URI          string `json:"uri,omitempty"`
	Authority    string `json:"authority,omitempty"`
	Port         uint32 `json:"port,omitempty"`
	DerivePort   string `json:"derivePort,omitempty"`
	Scheme       string `json:"scheme,omitempty"`
	RedirectCode uint32 `json:"redirectCode,omitempty"`
}

// HTTPDirectResponse answers with a fixed status and body.
type HTTPDirectResponse struct {
	Status uint32    `json:"status"`
	Body   *HTTPBody `json:"body,omitempty"`
}

// HTTPBody is a direct response's body: String, or Bytes (base64 in JSON).
type HTTPBody struct {
	String string `json:"string,omitempty"`
	Bytes  []byte `json:"bytes,omitempty"`
}

// HTTPRewrite changes a request before it is forwarded.
type HTTPRewrite struct {
	URI             string        `json:"uri,omitempty"`
	Authority       string        `json:"authority,omitempty"`
	URIRegexRewrite *RegexRewrite `json:"uriRegexRewrite,omitempty"`
}

// RegexRewrite replaces every match of Match (RE2) with Rewrite.
type RegexRewrite struct {
	Match   string `json:"match,omitempty"`
	Rewrite string `json:"rewrite,omitempty"`
}

// HTTPRetry is a rule's retry policy.
type HTTPRetry struct {
	Attempts      int32  `json:"attempts"`
	PerTryTimeout string `json:"perTryTimeout,omitempty"`
	RetryOn       string `json:"retryOn,omitempty"`
}

// HTTPFaultInjection delays or aborts a share of requests.
type HTTPFaultInjection struct {
	Delay *FaultDelay `json:"delay,omitempty"`
	Abort *FaultAbort `json:"abort,omitempty"`
}

// FaultDelay delays a share of requests by FixedDelay.
type FaultDelay struct {
	FixedDelay string   `json:"fixedDelay,omitempty"`
	Percentage *Percent `json:"percentage,omitempty"`
	// Percent is the deprecated integer form of Percentage.
	Percent *int32 `json:"percent,omitempty"`
	// ExponentialDelay is decoded only to be refused.
	ExponentialDelay string `json:"exponentialDelay,omitempty"`
}

// FaultAbort answers a share of requests with HTTPStatus, or with a gRPC
// status (a code name such as "UNAVAILABLE", or its number).
type FaultAbort struct {
	HTTPStatus int32           `json:"httpStatus,omitempty"`
	GRPCStatus json.RawMessage `json:"grpcStatus,omitempty"`
	HTTP2Error string          `json:"http2Error,omitempty"`
	Percentage *Percent        `json:"percentage,omitempty"`
}

// Percent is a percentage in [0, 100].
type Percent struct {
	Value float64 `json:"value"`
}

// HTTPMirrorPolicy copies a share of requests to a destination.
type HTTPMirrorPolicy struct {
	Destination Destination `json:"destination"`
	Percentage  *Percent    `json:"percentage,omitempty"`
}

// Headers edits request and response headers.
type Headers struct {
	Request  *HeaderOperations `json:"request,omitempty"`
	Response *HeaderOperations `json:"response,omitempty"`
}

// HeaderOperations sets, adds and removes headers.
type HeaderOperations struct {
	Set    map[string]string `json:"set,omitempty"`
	Add    map[string]string `json:"add,omitempty"`
	Remove []string          `json:"remove,omitempty"`
}

// DestinationRule defines subsets and traffic policy of a host.
type DestinationRule struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Spec              DestinationRuleSpec `json:"spec"`
	Status            Status              `json:"status,omitempty"`
}

// DestinationRuleSpec is the policy of a DestinationRule.
type DestinationRuleSpec struct {
	// Host is a Service; a short name resolves in the rule's namespace.
	Host          string         `json:"host"`
	TrafficPolicy *TrafficPolicy `json:"trafficPolicy,omitempty"`
	Subsets       []Subset       `json:"subsets,omitempty"`
	ExportTo      []string       `json:"exportTo,omitempty"`
}

// Subset is a version of a Service: its endpoints whose Pods have Labels.
type Subset struct {
	Name   string            `json:"name"`
	Labels map[string]string `json:"labels,omitempty"`
	// TrafficPolicy overrides the rule's, block by block.
	TrafficPolicy *TrafficPolicy `json:"trafficPolicy,omitempty"`
}

// TrafficPolicy is how proxies treat a Service or subset.
type TrafficPolicy struct {
	LoadBalancer     *LoadBalancerSettings `json:"loadBalancer,omitempty"`
	ConnectionPool   *ConnectionPool       `json:"connectionPool,omitempty"`
	OutlierDetection *OutlierDetection     `json:"outlierDetection,omitempty"`
}

// LoadBalancerSettings sets Simple or ConsistentHash.
type LoadBalancerSettings struct {
	// Simple is ROUND_ROBIN, LEAST_REQUEST (LEAST_CONN), RANDOM,
	// PASSTHROUGH or UNSPECIFIED.
	Simple         string          `json:"simple,omitempty"`
	ConsistentHash *ConsistentHash `json:"consistentHash,omitempty"`
}

// ConsistentHash hashes one property of a request to pick an endpoint.
type ConsistentHash struct {
	HTTPHeaderName         string      `json:"httpHeaderName,omitempty"`
	HTTPCookie             *HTTPCookie `json:"httpCookie,omitempty"`
	UseSourceIP            bool        `json:"useSourceIp,omitempty"`
	HTTPQueryParameterName string      `json:"httpQueryParameterName,omitempty"`
}

// HTTPCookie is a hashed cookie; with a TTL, proxies generate it.
type HTTPCookie struct {
	Name string `json:"name"`
	Path string `json:"path,omitempty"`
	TTL  string `json:"ttl,omitempty"`
}

// ConnectionPool limits connections and requests to a Service.
type ConnectionPool struct {
	TCP  *TCPSettings  `json:"tcp,omitempty"`
	HTTP *HTTPSettings `json:"http,omitempty"`
}

// TCPSettings are connection limits.
type TCPSettings struct {
	MaxConnections int32  `json:"maxConnections,omitempty"`
	ConnectTimeout string `json:"connectTimeout,omitempty"`
}

// HTTPSettings are request limits.
type HTTPSettings struct {
	HTTP1MaxPendingRequests  int32 `json:"http1MaxPendingRequests,omitempty"`
	HTTP2MaxRequests         int32 `json:"http2MaxRequests,omitempty"`
	MaxRequestsPerConnection int32 `json:"maxRequestsPerConnection,omitempty"`
	MaxRetries               int32 `json:"maxRetries,omitempty"`
}

// OutlierDetection ejects failing endpoints.
type OutlierDetection struct {
	// ConsecutiveErrors is deprecated; Istio counts gateway errors with it.
	ConsecutiveErrors        int32   `json:"consecutiveErrors,omitempty"`
	Consecutive5xxErrors     *uint32 `json:"consecutive5xxErrors,omitempty"`
	ConsecutiveGatewayErrors *uint32 `json:"consecutiveGatewayErrors,omitempty"`
	Interval                 string  `json:"interval,omitempty"`
	BaseEjectionTime         string  `json:"baseEjectionTime,omitempty"`
	MaxEjectionPercent       int32   `json:"maxEjectionPercent,omitempty"`
}

// Gateway describes ports, hosts and TLS of gateway proxies picked by labels.
type Gateway struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Spec              GatewaySpec `json:"spec"`
	Status            Status      `json:"status,omitempty"`
}

// GatewaySpec is a Gateway's servers and the proxies that serve them.
type GatewaySpec struct {
	// Selector picks gateway proxies by their labels.
	Selector map[string]string `json:"selector,omitempty"`
	Servers  []Server          `json:"servers,omitempty"`
}

// Server is one port with its hosts and TLS settings.
type Server struct {
	Port Port `json:"port"`
	// Hosts are "[namespace/]host" with "*" wildcards.
	Hosts []string   `json:"hosts,omitempty"`
	TLS   *ServerTLS `json:"tls,omitempty"`
	Name  string     `json:"name,omitempty"`
}

// Port is a server's port.
type Port struct {
	Number   uint32 `json:"number"`
	Protocol string `json:"protocol,omitempty"`
	Name     string `json:"name,omitempty"`
}

// ServerTLS is a server's TLS settings.
type ServerTLS struct {
	HTTPSRedirect bool `json:"httpsRedirect,omitempty"`
	// Mode is PASSTHROUGH, SIMPLE, MUTUAL, AUTO_PASSTHROUGH or ISTIO_MUTUAL.
	Mode string `json:"mode,omitempty"`
	// CredentialName names a kubernetes.io/tls Secret in the Gateway's
	// namespace.
	CredentialName string `json:"credentialName,omitempty"`
}
