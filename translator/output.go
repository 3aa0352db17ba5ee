package translator

import (
	"encoding/json"
	"fmt"

	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/weir-mesh/weir/translator/envoy"
	"github.com/weir-mesh/weir/translator/status"
)

// Output is the document `weir translate` prints: the status of every
// object, and the Envoy resources per proxy role, each the protojson of its
// Envoy v3 message. Its JSON shape is a contract.
type Output struct {
	Status    []status.Object          `json:"status"`
	Resources map[string]RoleResources `json:"resources"`
}

// RoleResources are one role's resources.
type RoleResources struct {
	Listeners []json.RawMessage `json:"listeners"`
	// Scopes are a sidecar's: each picks a route configuration by a
	// request's authority.
	Scopes    []json.RawMessage `json:"scopes,omitempty"`
	Routes    []json.RawMessage `json:"routes"`
	Clusters  []json.RawMessage `json:"clusters"`
	Endpoints []json.RawMessage `json:"endpoints"`
	// Secrets are the gateway's certificates, private keys redacted.
	Secrets []json.RawMessage `json:"secrets,omitempty"`
}

// Render builds and validates the resources of each proxy and renders them
// with the status. An error means weir produced an invalid resource: a bug,
// never a user's mistake.
func Render(res Result, proxies []envoy.Proxy) (*Output, error) {
	out := &Output{Status: res.Status, Resources: map[string]RoleResources{}}
	if out.Status == nil {
		out.Status = []status.Object{}
	}
	for _, p := range proxies {
		r, err := envoy.Build(res.IR, p)
		if err != nil {
			return nil, err
		}
		if err := envoy.Validate(r); err != nil {
			return nil, fmt.Errorf("%s resources are invalid: %w", p.Role, err)
		}
		rr, err := renderRole(r)
		if err != nil {
			return nil, err
		}
		out.Resources[string(p.Role)] = rr
	}
	return out, nil
}

func renderRole(r *envoy.Resources) (RoleResources, error) {
	var rr RoleResources
	var err error
	if rr.Listeners, err = renderAll(r.Listeners); err != nil {
		return rr, err
	}
	if rr.Scopes, err = renderAll(r.Scopes); err != nil {
		return rr, err
	}
	if rr.Routes, err = renderAll(r.Routes); err != nil {
		return rr, err
	}
	if rr.Clusters, err = renderAll(r.Clusters); err != nil {
		return rr, err
	}
	if rr.Endpoints, err = renderAll(r.Endpoints); err != nil {
		return rr, err
	}
	redacted := make([]*tlsv3.Secret, len(r.Secrets))
	for i, s := range r.Secrets {
		redacted[i] = envoy.RedactSecret(s)
	}
	if len(redacted) > 0 {
		rr.Secrets, err = renderAll(redacted)
	}
	return rr, err
}

// renderAll returns compact protojson; re-encoding with encoding/json makes
// the bytes deterministic (protojson varies its whitespace on purpose).
func renderAll[T proto.Message](items []T) ([]json.RawMessage, error) {
	out := make([]json.RawMessage, 0, len(items))
	for _, it := range items {
		b, err := protojson.Marshal(it)
		if err != nil {
			return nil, fmt.Errorf("render %T: %w", it, err)
		}
		var v any
		if err := json.Unmarshal(b, &v); err != nil {
			return nil, fmt.Errorf("render %T: %w", it, err)
		}
		if b, err = json.Marshal(v); err != nil {
			return nil, fmt.Errorf("render %T: %w", it, err)
		}
		out = append(out, b)
	}
	return out, nil
}
