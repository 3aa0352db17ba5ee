// Package ir is weir's intermediate representation: the routing intent of every
// input API, as plain data with no Kubernetes or Envoy types.
package ir

// IR is everything one translation produced. Hosts and Clusters are sorted by
// name; the order of a Host's Routes is the order in which they match.
type IR struct {
	Hosts    []Host
	Clusters []Cluster
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

// Route sends requests matching Match to weighted Backends.
type Route struct {
	// Name identifies the route's origin, e.g. "TrafficSplit/httpbin/httpbin-split/0".
	Name     string
	Match    Match
	Backends []Backend
}

// Match is a conjunction; a zero Match matches every request.
type Match struct {
	// PathRegex is an RE2 expression the whole path (without query) must match.
	PathRegex string
	// Methods accepted; empty accepts any.
	Methods []string
	// Headers that must all match.
	Headers []HeaderMatch
}

// IsCatchAll reports whether m matches every request.
func (m Match) IsCatchAll() bool {
	return m.PathRegex == "" && len(m.Methods) == 0 && len(m.Headers) == 0
}

// HeaderMatch requires header Name to match the RE2 expression ValueRegex
// in full.
type HeaderMatch struct {
	Name       string
	ValueRegex string
}

// Backend is a weighted cluster. Weight is > 0.
type Backend struct {
	Cluster string
	Weight  uint32
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
}
