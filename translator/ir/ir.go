// Package ir is weir's intermediate representation: the routing intent of every
// input API, as plain data with no Kubernetes or Envoy types.
package ir

// IR is everything one translation produced. Hosts and Clusters are sorted by
// name; the order of a Host's Routes is the order in which they match.
type IR struct {
	Hosts    []Host
	Clusters []Cluster
	// Servers are what gateway proxies serve, sorted by Name.
	Servers []Server
	// Secrets are the valid TLS certificates some Server uses, sorted by Name.
	Secrets []Secret
}

// Host is one port of one Service: the thing a client addresses.
type Host struct {
	// Name is "<service>.<namespace>.svc.cluster.local:<port>".
	Name      string
	Service   string
	Namespace string
	Port      uint32
	// ClusterIP is "" for headless or unknown.
	ClusterIP string
	// BareNames is true for the one port of the Service that also answers to
	// the Service's names without ":port" (port 80, else the first port).
	BareNames bool
	Routes    []Route
	// Standby lists, sorted, clusters that policies name with weight 0: no
	// request goes there now, but a weight change may send some soon, so
	// proxies that set clusters up lazily (proxyless gRPC) should prepare
	// them.
	Standby []string
}

// Route sends requests matching Match to weighted Backends, or answers
// them itself with Redirect or DirectResponse (then Backends is empty).
// Every other field is optional; the zero value of each means "not set".
type Route struct {
	// Name identifies the route's origin, e.g. "TrafficSplit/httpbin/httpbin-split/0".
	Name     string
	Match    Match
	Backends []Backend

	Redirect       *Redirect
	DirectResponse *DirectResponse

	// Rewrite changes the request before it is forwarded.
	Rewrite *Rewrite
	// Timeout bounds the whole request, retries included; 0 means Envoy's
	// default, Disabled turns it off.
	Timeout Duration
	Retry   *Retry
	Fault   *Fault
	// Mirrors receive a copy of matching requests; their answers are dropped.
	Mirrors         []Mirror
	RequestHeaders  HeaderMods
	ResponseHeaders HeaderMods
	// HashPolicy picks an endpoint by a hash of the request (consistent
	// hashing); with HashVersions the same hash also picks the backend.
	HashPolicy   []HashPolicy
	HashVersions bool
}

// Duration is a length of time in nanoseconds, like time.Duration, kept as
// its own type so that 0 can mean "not set".
type Duration int64

// Disabled is a Duration that turns a timeout off.
const Disabled Duration = -1

// Match is a conjunction; a zero Match matches every request.
type Match struct {
	// At most one of PathRegex, PathExact and PathPrefix is set. PathRegex
	// is an RE2 expression the whole path (without query) must match.
	PathRegex  string
	PathExact  string
	PathPrefix string
	// PathIgnoreCase makes PathExact and PathPrefix case-insensitive.
	PathIgnoreCase bool
	// Methods accepted; empty accepts any.
	Methods []string
	// Headers that must all match.
	Headers []HeaderMatch
	// QueryParams that must all match.
	QueryParams []QueryMatch
}

// IsCatchAll reports whether m matches every request.
func (m Match) IsCatchAll() bool {
	return m.PathRegex == "" && m.PathExact == "" && (m.PathPrefix == "" || m.PathPrefix == "/") &&
		len(m.Methods) == 0 && len(m.Headers) == 0 && len(m.QueryParams) == 0
}

// HeaderMatch requires header Name (lower case) to match. Exactly one of
// ValueRegex (an RE2 expression the whole value must match), Exact, Prefix
// and Present is set. Invert negates the result; with Present it means
// "the header is absent".
type HeaderMatch struct {
	Name       string
	ValueRegex string
	Exact      string
	Prefix     string
	Present    bool
	Invert     bool
}

// QueryMatch requires query parameter Name to match; exactly one of Exact,
// Regex (RE2, whole value) and Present is set.
type QueryMatch struct {
	Name    string
	Exact   string
	Regex   string
	Present bool
}

// Backend is a weighted cluster. Weight is > 0.
type Backend struct {
	Cluster string
	Weight  uint32
}

// Redirect answers with a redirect. Empty fields keep the request's value.
type Redirect struct {
	Scheme string
	Host   string
	// Port 0 keeps the port, unless Scheme changes it to the scheme's default.
	Port uint32
	// Path replaces the whole path; PathPrefix replaces the matched prefix.
	Path       string
	PathPrefix string
	// StatusCode is 301, 302, 303, 307 or 308; 0 means 301.
	StatusCode uint32
}

// DirectResponse answers with Status and Body without forwarding.
type DirectResponse struct {
	Status uint32
	Body   string
}

// Rewrite changes a forwarded request. Empty fields keep the request's value.
type Rewrite struct {
	// PathPrefix replaces the prefix the route matched (Match.PathPrefix or
	// Match.PathExact).
	PathPrefix string
	// PathRegex and PathSubstitution rewrite the path: every match of the
	// RE2 expression is replaced; \1 refers to a capture group.
	PathRegex        string
	PathSubstitution string
	// Host replaces the Host/:authority header.
	Host string
}

// Retry retries failed attempts.
type Retry struct {
	// Attempts is the number of retries (not counting the first try); 0
	// disables retries.
	Attempts      uint32
	PerTryTimeout Duration
	// RetryOn is Envoy's comma-separated retry conditions, e.g.
	// "5xx,connect-failure"; retriable status codes are given as numbers.
	RetryOn string
}

// Fault injects delays and aborts into a share of requests. Percentages
// are in [0, 100] with up to four decimals.
type Fault struct {
	DelayPercent float64
	Delay        Duration
	AbortPercent float64
	// AbortStatus is the HTTP status of an abort; 0 with GRPCStatus set
	// aborts with a gRPC status instead.
	AbortStatus uint32
	GRPCStatus  uint32
}

// Mirror copies a share of requests to Cluster.
type Mirror struct {
	Cluster string
	// Percent in [0, 100]; 100 copies every request.
	Percent float64
}

// HeaderMods edits headers. Names are lower case.
type HeaderMods struct {
	// Set overwrites (or adds) a header; Add appends a value.
	Set    []Header
	Add    []Header
	Remove []string
}

// IsEmpty reports whether m changes nothing.
func (m HeaderMods) IsEmpty() bool { return len(m.Set)+len(m.Add)+len(m.Remove) == 0 }

// Header is one header value.
type Header struct {
	Name  string
	Value string
}

// HashPolicy is one input of a consistent hash; exactly one of Header,
// Cookie and SourceIP is set.
type HashPolicy struct {
	Header   string
	Cookie   *HashCookie
	SourceIP bool
}

// HashCookie hashes a cookie. With TTL > 0 Envoy sets the cookie on
// responses to requests that lack it.
type HashCookie struct {
	Name string
	TTL  Duration
	Path string
}

// Protocol is what a cluster's endpoints speak.
type Protocol string

// Cluster protocols.
const (
	HTTP1 Protocol = "http1"
	HTTP2 Protocol = "http2"
)

// Cluster is one port of one Service and its ready endpoints.
type Cluster struct {
	// Name is "outbound|<port>||<service>.<namespace>.svc.cluster.local".
	Name      string
	Service   string
	Namespace string
	Port      uint32
	Protocol  Protocol
	// Endpoints are sorted by address then port. Empty means no ready endpoint.
	Endpoints []Endpoint
	// Policy is how a proxy treats the cluster; the zero value is Envoy's
	// defaults.
	Policy ClusterPolicy
}

// LBPolicy is a load balancing algorithm.
type LBPolicy string

// Load balancing algorithms; "" means round robin.
const (
	RoundRobin   LBPolicy = "round_robin"
	LeastRequest LBPolicy = "least_request"
	Random       LBPolicy = "random"
	// RingHash is used with a route's HashPolicy.
	RingHash LBPolicy = "ring_hash"
)

// ClusterPolicy holds a cluster's load balancing, circuit breaking and
// outlier detection. Zero fields are not set.
type ClusterPolicy struct {
	LB LBPolicy
	// Circuit breaker thresholds (Envoy defaults apply where 0).
	MaxConnections     uint32
	MaxPendingRequests uint32
	MaxRequests        uint32
	MaxRetries         uint32
	// MaxRequestsPerConnection 1 disables keep-alive to the endpoints.
	MaxRequestsPerConnection uint32
	ConnectTimeout           Duration
	Outlier                  *OutlierDetection
}

// OutlierDetection ejects endpoints that keep failing.
type OutlierDetection struct {
	Consecutive5xx           uint32
	ConsecutiveGatewayErrors uint32
	Interval                 Duration
	BaseEjectionTime         Duration
	MaxEjectionPercent       uint32
}

// Endpoint is one ready address.
type Endpoint struct {
	Address string
	Port    uint32
	// Zone is the endpoint's zone, "" if unknown.
	Zone string
	// Version is the value of the first configured version label found on
	// the endpoint's Pod; "" if none is set or the Pod is unknown. It is not
	// part of any Envoy resource.
	Version string
	// Labels are the labels of the endpoint's Pod, nil if the Pod is
	// unknown. Shared with the store: never modify. Not part of any Envoy
	// resource.
	Labels map[string]string
}

// Server is one port (and, for TLS, one set of server names) that gateway
// proxies listen on, with the virtual hosts it serves.
type Server struct {
	// Name is unique, e.g. "Gateway/istio-system/public/0" or "Ingress/80".
	Name string
	// Selector picks the gateway proxies that serve it: every label must be
	// in the proxy's labels. Empty selects every gateway proxy.
	Selector map[string]string
	Port     uint32
	// Hostnames are the server names for TLS SNI matching ("*" or empty:
	// any). They do not restrict VirtualHosts.
	Hostnames []string
	// TLS terminates TLS with a certificate; nil serves plain HTTP.
	TLS *ServerTLS
	// HTTPSRedirect answers every plain-HTTP request with a 301 to https.
	HTTPSRedirect bool
	// VirtualHosts are sorted by Name; a domain appears in at most one.
	VirtualHosts []VirtualHost
}

// ServerTLS is a TLS-terminating server's certificate.
type ServerTLS struct {
	// SecretName names an ir.Secret ("<namespace>/<name>"). The Secret may be
	// missing from IR.Secrets when it is invalid: proxies keep the last good
	// one they were sent.
	SecretName string
}

// VirtualHost routes requests whose Host is one of Domains ("*",
// "*.example.com", or an exact name, each without port).
type VirtualHost struct {
	Name    string
	Domains []string
	Routes  []Route
}

// Secret is a TLS certificate chain and its private key, both PEM. The key
// must never be logged or printed.
type Secret struct {
	// Name is "<namespace>/<name>" of the Kubernetes Secret.
	Name    string
	CertPEM []byte
	KeyPEM  []byte
}
