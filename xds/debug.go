package xds

import (
	"encoding/json"
	"net/http"
)

// ProxiesHandler serves Proxies() as JSON, with each node's published
// snapshot versions under "published".
func (s *Server) ProxiesHandler() http.Handler {
	type entry struct {
		ProxyStatus
		Published map[string]string `json:"published"`
	}
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		var out []entry
		for _, p := range s.Proxies() {
			out = append(out, entry{ProxyStatus: p, Published: s.SnapshotVersions(p.NodeID)})
		}
		w.Header().Set("Content-Type", "application/json")
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		_ = enc.Encode(out) // a write error means the client went away
	})
}
