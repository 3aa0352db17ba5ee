package xds

import (
	"context"
	"fmt"
	"log/slog"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	serverv3 "github.com/envoyproxy/go-control-plane/pkg/server/v3"

	"github.com/weir-mesh/weir/translator/envoy"
)

// Node metadata keys weir reads from a proxy's bootstrap.
const (
	MetaRole            = "weir.role"
	MetaNamespace       = "weir.namespace"
	MetaOutboundPort    = "weir.outbound_port"
	MetaOutboundAddress = "weir.outbound_address"
)

// proxyKey reads what a node needs from its metadata. A node without a role
// is a sidecar, unless its user agent is gRPC.
func proxyKey(node *corev3.Node, opts Options) (envoy.Proxy, error) {
	if node.GetId() == "" {
		return envoy.Proxy{}, fmt.Errorf("node has no id")
	}
	fields := node.GetMetadata().GetFields()
	str := func(k string) string { return fields[k].GetStringValue() }
	p := envoy.Proxy{Namespace: str(MetaNamespace), OutboundAddress: opts.OutboundAddress, OutboundPort: opts.OutboundPort}
	role := str(MetaRole)
	if role == "" {
		role = string(envoy.Sidecar)
		if strings.Contains(strings.ToLower(node.GetUserAgentName()), "grpc") {
			role = string(envoy.GRPC)
		}
	}
	r, err := envoy.ParseRole(role)
	if err != nil {
		return envoy.Proxy{}, fmt.Errorf("node %q metadata %s: %w", node.GetId(), MetaRole, err)
	}
	p.Role = r
	if p.Role != envoy.Sidecar {
		p.OutboundAddress, p.OutboundPort = "", 0
		return p, nil
	}
	if a := str(MetaOutboundAddress); a != "" {
		p.OutboundAddress = a
	}
	if v, ok := fields[MetaOutboundPort]; ok {
		port, err := metaPort(v.GetStringValue(), v.GetNumberValue())
		if err != nil {
			return envoy.Proxy{}, fmt.Errorf("node %q metadata %s: %w", node.GetId(), MetaOutboundPort, err)
		}
		p.OutboundPort = port
	}
	return p, nil
}

func metaPort(s string, n float64) (uint32, error) {
	if s != "" {
		v, err := strconv.ParseUint(s, 10, 16)
		if err != nil || v == 0 {
			return 0, fmt.Errorf("%q is not a port number", s)
		}
		return uint32(v), nil
	}
	if n < 1 || n > 65535 || n != float64(uint32(n)) {
		return 0, fmt.Errorf("%v is not a port number", n)
	}
	return uint32(n), nil
}

// ProxyStatus is what weir knows of one connected proxy.
type ProxyStatus struct {
	NodeID         string    `json:"nodeId"`
	Role           string    `json:"role"`
	Namespace      string    `json:"namespace,omitempty"`
	ConnectedSince time.Time `json:"connectedSince"`
	Streams        int       `json:"streams"`
	// Sent and Acked map a type URL to a version.
	Sent     map[string]string `json:"sent"`
	Acked    map[string]string `json:"acked"`
	Nacks    int               `json:"nacks"`
	LastNack *Nack             `json:"lastNack,omitempty"`
}

// Nack is a rejected push.
type Nack struct {
	TypeURL string    `json:"typeUrl"`
	Version string    `json:"version"`
	Message string    `json:"message"`
	At      time.Time `json:"at"`
}

// proxyTracker records ACKs and NACKs per node. Safe for concurrent use.
type proxyTracker struct {
	log     *slog.Logger
	mu      sync.Mutex
	nodes   map[string]*ProxyStatus
	streams map[int64]string
}

func newProxyTracker(log *slog.Logger) *proxyTracker {
	return &proxyTracker{log: log, nodes: map[string]*ProxyStatus{}, streams: map[int64]string{}}
}

// known reports whether stream id is bound to a node.
func (t *proxyTracker) known(id int64) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	_, ok := t.streams[id]
	return ok
}

// stream binds a new stream to its node.
func (t *proxyTracker) stream(id int64, node *corev3.Node, key envoy.Proxy) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.streams[id] = node.GetId()
	ps, ok := t.nodes[node.GetId()]
	if !ok {
		ps = &ProxyStatus{NodeID: node.GetId(), Role: string(key.Role), Namespace: key.Namespace,
			ConnectedSince: time.Now().UTC(), Sent: map[string]string{}, Acked: map[string]string{}}
		t.nodes[node.GetId()] = ps
	}
	ps.Streams++
}

// closed unbinds a stream; it returns the node id when its last stream closed.
func (t *proxyTracker) closed(id int64) (string, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	nodeID, ok := t.streams[id]
	if !ok {
		return "", false
	}
	delete(t.streams, id)
	ps := t.nodes[nodeID]
	ps.Streams--
	if ps.Streams > 0 {
		return nodeID, false
	}
	delete(t.nodes, nodeID)
	return nodeID, true
}

func (t *proxyTracker) request(id int64, typeURL, version, nonce string, errDetail string) {
	if nonce == "" {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	ps := t.nodes[t.streams[id]]
	if ps == nil {
		return
	}
	if errDetail == "" {
		ps.Acked[typeURL] = version
		return
	}
	ps.Nacks++
	ps.LastNack = &Nack{TypeURL: typeURL, Version: ps.Sent[typeURL], Message: errDetail, At: time.Now().UTC()}
	t.log.Warn("xds: proxy rejected configuration (NACK)", "node", ps.NodeID, "type", typeURL, "version", ps.Sent[typeURL], "error", errDetail)
}

func (t *proxyTracker) response(id int64, typeURL, version string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if ps := t.nodes[t.streams[id]]; ps != nil {
		ps.Sent[typeURL] = version
	}
}

func (t *proxyTracker) list() []ProxyStatus {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make([]ProxyStatus, 0, len(t.nodes))
	for _, ps := range t.nodes {
		c := *ps
		c.Sent, c.Acked = copyMap(ps.Sent), copyMap(ps.Acked)
		if ps.LastNack != nil {
			n := *ps.LastNack
			c.LastNack = &n
		}
		out = append(out, c)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].NodeID < out[j].NodeID })
	return out
}

func copyMap(m map[string]string) map[string]string {
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// callbacks wires go-control-plane's stream events to the tracker and makes
// sure a node has a snapshot before its first watch is created.
func (s *Server) callbacks() serverv3.Callbacks {
	// Only a stream's first request is sure to carry the node: the delta
	// server calls back before filling it in on later ones.
	onRequest := func(id int64, node *corev3.Node, typeURL, version, nonce, errDetail string) error {
		if !s.proxies.known(id) {
			key, err := proxyKey(node, s.opts)
			if err != nil {
				s.log.Warn("xds: refusing proxy", "err", err)
				return err
			}
			s.proxies.stream(id, node, key)
			if err := s.registerNode(node); err != nil {
				return err
			}
		}
		s.proxies.request(id, typeURL, version, nonce, errDetail)
		return nil
	}
	closed := func(id int64, _ *corev3.Node) {
		if nodeID, last := s.proxies.closed(id); last {
			s.forgetNode(nodeID)
		}
	}
	return serverv3.CallbackFuncs{
		StreamRequestFunc: func(id int64, req *discoveryv3.DiscoveryRequest) error {
			return onRequest(id, req.GetNode(), req.GetTypeUrl(), req.GetVersionInfo(), req.GetResponseNonce(), req.GetErrorDetail().GetMessage())
		},
		StreamDeltaRequestFunc: func(id int64, req *discoveryv3.DeltaDiscoveryRequest) error {
			return onRequest(id, req.GetNode(), req.GetTypeUrl(), "", req.GetResponseNonce(), req.GetErrorDetail().GetMessage())
		},
		StreamResponseFunc: func(_ context.Context, id int64, _ *discoveryv3.DiscoveryRequest, resp *discoveryv3.DiscoveryResponse) {
			s.proxies.response(id, resp.GetTypeUrl(), resp.GetVersionInfo())
		},
		StreamClosedFunc:      closed,
		DeltaStreamClosedFunc: closed,
	}
}
