package istio

import (
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"

	istioapi "github.com/weir-mesh/weir/api/istio"
	"github.com/weir-mesh/weir/translator/ir"
	"github.com/weir-mesh/weir/translator/kube"
	"github.com/weir-mesh/weir/translator/status"
)

// gwResult is what the Istio Gateways produce.
type gwResult struct {
	servers []ir.Server
	secrets []ir.Secret
	status  []status.Object
}

// serverHost is one entry of a server's hosts: "namespace/host", where the
// namespace "*" is any and "." the Gateway's own.
type serverHost struct {
	namespace string
	host      string
}

// gatewayServers turns every Gateway's servers into IR servers, each with
// a virtual host per VirtualService bound to it whose hosts it serves.
func (t *translation) gatewayServers(secrets kube.SecretObjects, gws []*istioapi.Gateway, plans []*vsPlan) gwResult {
	var res gwResult
	byName := map[string]ir.Secret{}
	for _, gw := range gws {
		key := gw.Namespace + "/" + gw.Name
		st := objectStatus(istioapi.Group, istioapi.GatewayKind, gw.Namespace, gw.Name, gw.Generation)
		servers, err := translateServers(gw)
		if err != nil {
			st.Set(rejected(err))
			res.status = append(res.status, st)
			continue
		}
		t.gatewayKeys[key] = true
		problems := map[string]string{}
		for i := range servers {
			s := &servers[i]
			if s.TLS != nil {
				t.serverSecret(secrets, gw, i, s, byName, problems)
			}
			s.VirtualHosts = t.virtualHosts(plans, key, gw.Spec.Servers[i], s.Port, gw.Namespace)
		}
		res.servers = append(res.servers, servers...)
		st.Set(status.Condition{Type: status.Accepted, Status: status.True, Reason: ReasonAccepted, Message: fmt.Sprintf("%d server(s)", len(servers))})
		setRefs(&st, problems)
		res.status = append(res.status, st)
	}
	for _, name := range slices.Sorted(maps.Keys(byName)) {
		res.secrets = append(res.secrets, byName[name])
	}
	sort.Slice(res.servers, func(i, j int) bool { return res.servers[i].Name < res.servers[j].Name })
	return res
}

// serverSecret reads the certificate of server i; a bad one is a problem,
// and the server keeps naming it so that proxies keep the last good one.
func (t *translation) serverSecret(secrets kube.SecretObjects, gw *istioapi.Gateway, i int, s *ir.Server, out map[string]ir.Secret, problems map[string]string) {
	name := gw.Spec.Servers[i].TLS.CredentialName
	sec, err := kube.TLSSecret(secrets, gw.Namespace, name)
	if err != nil {
		problems[fmt.Sprintf("spec.servers[%d].tls.credentialName: %v", i, err)] = ReasonInvalidSecret
		return
	}
	out[sec.Name] = sec
}

// translateServers checks a Gateway's servers and makes their IR servers
// without virtual hosts.
func translateServers(gw *istioapi.Gateway) ([]ir.Server, *invalid) {
	if len(gw.Spec.Servers) == 0 {
		return nil, fieldError(ReasonInvalidField, "spec.servers", "must list at least one server")
	}
	if err := validLabels("spec.selector", gw.Spec.Selector); err != nil {
		return nil, err
	}
	var out []ir.Server
	for i, s := range gw.Spec.Servers {
		srv, err := translateServer(fmt.Sprintf("spec.servers[%d]", i), gw, s)
		if err != nil {
			return nil, err
		}
		srv.Name = fmt.Sprintf("%s/%s/%s/%d", istioapi.GatewayKind, gw.Namespace, gw.Name, i)
		out = append(out, srv)
	}
	return out, nil
}

func translateServer(field string, gw *istioapi.Gateway, s istioapi.Server) (ir.Server, *invalid) {
	srv := ir.Server{Selector: gw.Spec.Selector, Port: s.Port.Number}
	if s.Port.Number == 0 || s.Port.Number > 65535 {
		return srv, fieldError(ReasonInvalidField, field+".port.number", "%d is not a port", s.Port.Number)
	}
	proto := strings.ToUpper(s.Port.Protocol)
	switch proto {
	case "HTTP", "HTTPS", "HTTP2", "GRPC":
	default:
		return srv, fieldError(ReasonUnsupported, field+".port.protocol", "%q is not supported; use HTTP, HTTPS, HTTP2 or GRPC", s.Port.Protocol)
	}
	hosts, err := serverHosts(field+".hosts", s.Hosts)
	if err != nil {
		return srv, err
	}
	for _, h := range hosts {
		srv.Hostnames = append(srv.Hostnames, h.host)
	}
	srv.Hostnames = slices.Compact(slices.Sorted(slices.Values(srv.Hostnames)))
	if s.TLS == nil {
		if proto == "HTTPS" {
			return srv, fieldError(ReasonInvalidField, field+".tls", "an HTTPS server needs tls")
		}
		return srv, nil
	}
	return srv, serverTLS(field+".tls", proto, gw.Namespace, s.TLS, &srv)
}

func serverTLS(field, proto, namespace string, tls *istioapi.ServerTLS, srv *ir.Server) *invalid {
	srv.HTTPSRedirect = tls.HTTPSRedirect
	if proto != "HTTPS" {
		if tls.Mode != "" || tls.CredentialName != "" {
			return fieldError(ReasonInvalidField, field+".mode", "TLS settings need port.protocol HTTPS")
		}
		return nil
	}
	if tls.Mode != "SIMPLE" {
		return fieldError(ReasonUnsupported, field+".mode", "%q is not supported; use SIMPLE with credentialName", tls.Mode)
	}
	if tls.CredentialName == "" {
		return fieldError(ReasonUnsupported, field+".credentialName", "must name a kubernetes.io/tls Secret in the Gateway's namespace (certificate files are not supported)")
	}
	srv.TLS = &ir.ServerTLS{SecretName: kube.SecretName(namespace, tls.CredentialName)}
	return nil
}

// serverHosts parses "[namespace/]host" entries.
func serverHosts(field string, in []string) ([]serverHost, *invalid) {
	if len(in) == 0 {
		return nil, fieldError(ReasonInvalidField, field, "must list at least one host")
	}
	var out []serverHost
	for i, h := range in {
		ns, host := "*", h
		if k := strings.Index(h, "/"); k >= 0 {
			ns, host = h[:k], h[k+1:]
		}
		if ns == "" || host == "" || strings.Contains(host, "/") || (strings.Contains(host, "*") && host != "*" && !strings.HasPrefix(host, "*.")) {
			return nil, fieldError(ReasonInvalidField, fmt.Sprintf("%s[%d]", field, i), "%q is not [namespace/]host with an optional leading \"*.\"", h)
		}
		out = append(out, serverHost{namespace: ns, host: lower(host)})
	}
	return out, nil
}

// virtualHosts are the virtual hosts of one server: one per VirtualService
// bound to the gateway whose hosts the server serves. A domain goes to the
// oldest VirtualService that names it.
func (t *translation) virtualHosts(plans []*vsPlan, gwKey string, s istioapi.Server, port uint32, gwNamespace string) []ir.VirtualHost {
	hosts, _ := serverHosts("", s.Hosts)
	claimed := map[string]string{}
	var out []ir.VirtualHost
	for _, p := range plans {
		if p.rejected || !bound(p, gwKey) {
			continue
		}
		var domains []string
		for _, vh := range p.vs.Spec.Hosts {
			for _, d := range servedDomains(gwHostName(vh, p.vs.Namespace), p.vs.Namespace, gwNamespace, hosts) {
				if o, ok := claimed[d]; ok && o != p.vs.Namespace+"/"+p.vs.Name {
					p.conflicts[fmt.Sprintf("host %s on Gateway %s is routed by VirtualService %s, which is older: this one is ignored there", d, gwKey, o)] = true
					continue
				}
				claimed[d] = p.vs.Namespace + "/" + p.vs.Name
				domains = append(domains, d)
			}
		}
		if len(domains) == 0 {
			continue
		}
		routes, _ := t.instantiate(p, context{gateway: gwKey, port: port})
		p.attached[gwKey] = true
		out = append(out, ir.VirtualHost{
			Name:    fmt.Sprintf("%s/%s/%s", istioapi.VirtualServiceKind, p.vs.Namespace, p.vs.Name),
			Domains: slices.Compact(slices.Sorted(slices.Values(domains))),
			Routes:  routes,
		})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

func bound(p *vsPlan, gwKey string) bool {
	for _, g := range p.gateways {
		if g == gwKey {
			return true
		}
	}
	return false
}

// gwHostName is how Istio reads a VirtualService host on a gateway: a
// short name is a Service in the VirtualService's namespace.
func gwHostName(h, namespace string) string {
	h = lower(h)
	if h != "*" && !strings.Contains(h, ".") {
		return fqdn(namespace, h)
	}
	return h
}

// servedDomains returns the domains of vsHost that a server with hosts
// serves to a VirtualService in vsNamespace.
func servedDomains(vsHost, vsNamespace, gwNamespace string, hosts []serverHost) []string {
	var out []string
	for _, h := range hosts {
		ns := h.namespace
		if ns == "." {
			ns = gwNamespace
		}
		if ns != "*" && ns != vsNamespace {
			continue
		}
		if d, ok := intersect(vsHost, h.host); ok {
			out = append(out, d)
		}
	}
	return out
}

// intersect returns the more specific of two host patterns if one covers
// the other ("*" covers all; "*.a.b" covers "x.a.b" and "*.x.a.b").
func intersect(a, b string) (string, bool) {
	switch {
	case a == b:
		return a, true
	case covers(b, a):
		return a, true
	case covers(a, b):
		return b, true
	}
	return "", false
}

func covers(pattern, host string) bool {
	if pattern == "*" {
		return true
	}
	return strings.HasPrefix(pattern, "*.") && strings.HasSuffix(host, pattern[1:]) && len(host) > len(pattern)-1
}
