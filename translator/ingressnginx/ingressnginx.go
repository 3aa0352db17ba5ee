// Package ingressnginx turns networking.k8s.io/v1 Ingresses, with
// ingress-nginx's canary annotations, into gateway servers and status.
//
// Semantics follow ingress-nginx: Ingresses merge by host, the oldest
// first; a canary Ingress adds rules to the main Ingress location with the
// same host, path and path type; paths match as nginx locations do.
package ingressnginx

import (
	"sort"

	networkingv1 "k8s.io/api/networking/v1"

	"github.com/weir-mesh/weir/translator/ir"
	"github.com/weir-mesh/weir/translator/kube"
	"github.com/weir-mesh/weir/translator/status"
)

// Objects is the read-only view of the store this front-end needs.
type Objects interface {
	kube.SecretObjects
	Ingresses() []*networkingv1.Ingress
}

// DefaultClass is the ingress class weir serves when none is configured.
const DefaultClass = "weir"

// legacyClassAnnotation is the ingress class before spec.ingressClassName.
const legacyClassAnnotation = "kubernetes.io/ingress.class"

// Kind is the status.Object kind of an Ingress.
const Kind = "Ingress"

// Options tune the front-end.
type Options struct {
	// Class is the ingressClassName (or legacy kubernetes.io/ingress.class
	// annotation) of the Ingresses served; "" means DefaultClass.
	Class string
}

// Result is what the Ingresses of one translation produce.
type Result struct {
	// Servers are sorted by name.
	Servers []ir.Server
	// Secrets are the valid certificates the Servers use, sorted by name.
	Secrets []ir.Secret
	Status  []status.Object
}

// Translate reads every Ingress of the configured class. It is pure.
func Translate(objs Objects, services *kube.Index, opts Options) Result {
	class := opts.Class
	if class == "" {
		class = DefaultClass
	}
	t := newTranslation(objs, services)
	ings := served(objs.Ingresses(), class)
	for _, obj := range ings {
		t.parse(obj)
	}
	for _, in := range t.ingresses {
		if !in.rejected && !in.ann.canary {
			t.addMain(in)
		}
	}
	for _, in := range t.ingresses {
		if !in.rejected && in.ann.canary {
			t.addCanary(in)
		}
	}
	for _, in := range t.ingresses {
		if !in.rejected && !in.ann.canary {
			t.addTLS(in)
		}
	}
	res := Result{Servers: t.servers(), Secrets: t.secretList()}
	for _, in := range t.ingresses {
		res.Status = append(res.Status, in.finish())
	}
	return res
}

// served returns the Ingresses of class, oldest first (then by
// namespace/name), the order in which ingress-nginx merges them.
func served(all []*networkingv1.Ingress, class string) []*networkingv1.Ingress {
	var out []*networkingv1.Ingress
	for _, in := range all {
		if classOf(in) == class {
			out = append(out, in)
		}
	}
	sort.SliceStable(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if !a.CreationTimestamp.Equal(&b.CreationTimestamp) {
			return a.CreationTimestamp.Before(&b.CreationTimestamp)
		}
		if a.Namespace != b.Namespace {
			return a.Namespace < b.Namespace
		}
		return a.Name < b.Name
	})
	return out
}

// classOf is the legacy annotation if set, else spec.ingressClassName.
func classOf(in *networkingv1.Ingress) string {
	if c, ok := in.Annotations[legacyClassAnnotation]; ok {
		return c
	}
	if in.Spec.IngressClassName != nil {
		return *in.Spec.IngressClassName
	}
	return ""
}

// translation is the state of one Translate call.
type translation struct {
	objs      Objects
	services  *kube.Index
	ingresses []*ingress
	hosts     map[string]*hostPlan
	tls       map[string]*tlsPlan
	// sni maps a TLS host name to the Secret (namespace/name) serving it.
	sni     map[string]string
	secrets map[string]ir.Secret
}

func newTranslation(objs Objects, services *kube.Index) *translation {
	return &translation{
		objs:     objs,
		services: services,
		hosts:    map[string]*hostPlan{},
		tls:      map[string]*tlsPlan{},
		sni:      map[string]string{},
		secrets:  map[string]ir.Secret{},
	}
}

func (t *translation) parse(obj *networkingv1.Ingress) {
	in := newIngress(obj)
	t.ingresses = append(t.ingresses, in)
	ann, err := parseAnnotations(obj.Annotations)
	if err != nil {
		in.reject(ReasonInvalidAnnotation, "%v; the Ingress is not served", err)
		return
	}
	in.ann = ann
}

// servers returns the plain-HTTP server on port 80 and one TLS server per
// Secret, sorted by name.
func (t *translation) servers() []ir.Server {
	hosts := t.sortedHosts()
	var out []ir.Server
	if len(hosts) > 0 {
		plain := ir.Server{Name: "Ingress/80", Port: 80}
		for _, h := range hosts {
			plain.VirtualHosts = append(plain.VirtualHosts, t.virtualHost(h, true))
		}
		out = append(out, plain)
	}
	out = append(out, t.tlsServers(hosts)...)
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// sortedHosts returns the hosts by name, with their routes computed once.
func (t *translation) sortedHosts() []*hostPlan {
	names := make([]string, 0, len(t.hosts))
	for n := range t.hosts {
		names = append(names, n)
	}
	sort.Strings(names)
	out := make([]*hostPlan, len(names))
	for i, n := range names {
		out[i] = t.hosts[n]
		out[i].entries = buildEntries(out[i])
		for _, l := range out[i].locations {
			if l.isDefault {
				l.ing.servesDefault = true
			}
		}
	}
	return out
}

// virtualHost renders h; on the plain-HTTP server, locations that must be
// reached over TLS answer with a redirect to https.
func (t *translation) virtualHost(h *hostPlan, plain bool) ir.VirtualHost {
	vh := ir.VirtualHost{Name: h.name, Domains: []string{h.name}}
	tlsHost := plain && t.hasTLS(h.name)
	for _, e := range h.entries {
		if plain && (e.loc.ing.ann.forceSSLRedirect || (tlsHost && e.loc.ing.ann.sslRedirect)) {
			vh.Routes = append(vh.Routes, httpsRedirect(e))
			continue
		}
		vh.Routes = append(vh.Routes, e.routes()...)
	}
	return vh
}

// httpsRedirect answers like ingress-nginx's ssl-redirect: 308 to https.
func httpsRedirect(e entry) ir.Route {
	return ir.Route{Name: e.loc.name, Match: e.match, Redirect: &ir.Redirect{Scheme: "https", StatusCode: 308}}
}
