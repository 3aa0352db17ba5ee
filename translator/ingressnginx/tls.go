package ingressnginx

import (
	"fmt"
	"sort"
	"strings"

	"github.com/weir-mesh/weir/translator/ir"
	"github.com/weir-mesh/weir/translator/kube"
)

// tlsPlan is the TLS server of one Secret.
type tlsPlan struct {
	secret    string // namespace/name
	hostnames []string
	// err is why the Secret is not a valid certificate, "" if it is.
	err string
}

// addTLS gives each spec.tls entry of a main Ingress a TLS server on 443
// (one per Secret) for its hosts; an entry without hosts covers the
// Ingress's rule hosts. A host served by another Secret already is skipped.
func (t *translation) addTLS(in *ingress) {
	for i, entry := range in.obj.Spec.TLS {
		field := fmt.Sprintf("spec.tls[%d]", i)
		if entry.SecretName == "" {
			in.unresolved(ReasonInvalidCertificate, "%s.secretName: must name a %s Secret; its hosts are not served over TLS", field, "kubernetes.io/tls")
			continue
		}
		p := t.tlsPlanFor(in.obj.Namespace, entry.SecretName)
		if p.err != "" {
			in.unresolved(ReasonInvalidCertificate, "%s.secretName: %s; the server keeps the last valid certificate it was sent", field, p.err)
		}
		hosts := entry.Hosts
		if len(hosts) == 0 {
			hosts = ruleHosts(in)
		}
		for j, h := range hosts {
			t.claimSNI(in, p, fmt.Sprintf("%s.hosts[%d]", field, j), strings.ToLower(h))
		}
	}
}

func (t *translation) tlsPlanFor(namespace, name string) *tlsPlan {
	key := kube.SecretName(namespace, name)
	if p := t.tls[key]; p != nil {
		return p
	}
	p := &tlsPlan{secret: key}
	if s, err := kube.TLSSecret(t.objs, namespace, name); err != nil {
		p.err = err.Error()
	} else {
		t.secrets[key] = s
	}
	t.tls[key] = p
	return p
}

func (t *translation) claimSNI(in *ingress, p *tlsPlan, field, host string) {
	owner, taken := t.sni[host]
	switch {
	case taken && owner != p.secret:
		in.skip(ReasonConflicted, "%s: host %q is already served over TLS with Secret %s; this entry is ignored for it", field, host, owner)
	case !taken:
		t.sni[host] = p.secret
		p.hostnames = append(p.hostnames, host)
	}
}

func ruleHosts(in *ingress) []string {
	var out []string
	for _, r := range in.obj.Spec.Rules {
		if r.Host != "" {
			out = append(out, r.Host)
		}
	}
	return out
}

// hasTLS reports whether a TLS server covers host.
func (t *translation) hasTLS(host string) bool {
	for h := range t.sni {
		if covers(h, host) {
			return true
		}
	}
	return false
}

// covers reports whether the TLS host name tlsHost (maybe "*.example.com")
// covers the rule host (maybe itself a wildcard). A wildcard covers one
// label, as in certificates.
func covers(tlsHost, host string) bool {
	if tlsHost == host {
		return true
	}
	suffix, ok := strings.CutPrefix(tlsHost, "*")
	if !ok || !strings.HasSuffix(host, suffix) {
		return false
	}
	label := strings.TrimSuffix(host, suffix)
	return label != "" && !strings.Contains(label, ".")
}

// tlsServers renders a server per Secret with hosts: its virtual hosts are
// those of the hosts it covers, plus the "*" host.
func (t *translation) tlsServers(hosts []*hostPlan) []ir.Server {
	var out []ir.Server
	for _, p := range t.tls {
		if len(p.hostnames) == 0 {
			continue
		}
		s := ir.Server{Name: "Ingress/443/" + p.secret, Port: 443, TLS: &ir.ServerTLS{SecretName: p.secret}}
		s.Hostnames = append([]string(nil), p.hostnames...)
		sort.Strings(s.Hostnames)
		for _, h := range hosts {
			if h.name == anyHost || coveredByAny(p.hostnames, h.name) {
				s.VirtualHosts = append(s.VirtualHosts, t.virtualHost(h, false))
			}
		}
		out = append(out, s)
	}
	return out
}

func coveredByAny(tlsHosts []string, host string) bool {
	for _, h := range tlsHosts {
		if covers(h, host) {
			return true
		}
	}
	return false
}

// secretList returns the valid Secrets that a server uses, sorted by name.
func (t *translation) secretList() []ir.Secret {
	var out []ir.Secret
	for key, s := range t.secrets {
		if len(t.tls[key].hostnames) > 0 {
			out = append(out, s)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}
