package ingressnginx

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/weir-mesh/weir/translator/ir"
	"github.com/weir-mesh/weir/translator/kube"
	"github.com/weir-mesh/weir/translator/status"
	"github.com/weir-mesh/weir/watcher"
)

// services are the tutorial's backends, in namespace default, port 80.
const services = `
apiVersion: v1
kind: Service
metadata: {name: service-user-v1, namespace: default}
spec: {ports: [{name: http, port: 80}]}
---
apiVersion: v1
kind: Service
metadata: {name: service-user-v2, namespace: default}
spec: {ports: [{name: http, port: 80}]}
---
apiVersion: v1
kind: Service
metadata: {name: service-pay-v1, namespace: default}
spec: {ports: [{name: http, port: 80}, {name: admin, port: 9000}]}
`

// translate decodes manifests (plus services) and runs Translate with the
// default options.
func translate(t *testing.T, manifests ...string) Result {
	t.Helper()
	return translateClass(t, "", manifests...)
}

func translateClass(t *testing.T, class string, manifests ...string) Result {
	t.Helper()
	objs, _, err := watcher.DecodeFile("test.yaml", []byte(services+"\n---\n"+strings.Join(manifests, "\n---\n")))
	if err != nil {
		t.Fatal(err)
	}
	store, err := watcher.NewStore()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := store.ReplaceSource("test.yaml", objs); err != nil {
		t.Fatal(err)
	}
	snap := store.Snapshot()
	return Translate(snap, kube.Build(snap, nil), Options{Class: class})
}

// manifest is an Ingress of class weir in namespace default.
func manifest(name string, annotations map[string]string, spec string) string {
	ann := " {}"
	if len(annotations) > 0 {
		ann = ""
		for _, k := range slices.Sorted(maps.Keys(annotations)) {
			name := k
			if !strings.Contains(k, "/") {
				name = AnnotationPrefix + k
			}
			ann += fmt.Sprintf("\n    %s: %q", name, annotations[k])
		}
	}
	return fmt.Sprintf(`apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: %s
  namespace: default
  annotations:%s
spec:
  ingressClassName: weir
%s`, name, ann, spec)
}

// vhostRoutes describes the routes of the virtual host of host on the server
// named server, one line each.
func vhostRoutes(t *testing.T, res Result, server, host string) []string {
	t.Helper()
	for _, s := range res.Servers {
		if s.Name != server {
			continue
		}
		for _, vh := range s.VirtualHosts {
			if len(vh.Domains) == 1 && vh.Domains[0] == host {
				var out []string
				for _, r := range vh.Routes {
					out = append(out, describe(r))
				}
				return out
			}
		}
		t.Fatalf("server %s has no virtual host %q", server, host)
	}
	t.Fatalf("no server %s in %v", server, serverNames(res))
	return nil
}

func serverNames(res Result) []string {
	var out []string
	for _, s := range res.Servers {
		out = append(out, s.Name)
	}
	return out
}

// describe renders a route as "<match> [headers] -> <action>".
func describe(r ir.Route) string {
	var b strings.Builder
	m := r.Match
	switch {
	case m.PathExact != "":
		b.WriteString("=" + m.PathExact)
	case m.PathRegex != "":
		b.WriteString("~" + m.PathRegex)
	default:
		b.WriteString(m.PathPrefix + "*")
	}
	for _, h := range m.Headers {
		switch {
		case h.Exact != "":
			fmt.Fprintf(&b, " %s=%s", h.Name, h.Exact)
		case h.ValueRegex != "":
			fmt.Fprintf(&b, " %s~%s", h.Name, h.ValueRegex)
		}
	}
	b.WriteString(" -> ")
	switch {
	case r.DirectResponse != nil:
		fmt.Fprint(&b, r.DirectResponse.Status)
	case r.Redirect != nil:
		fmt.Fprintf(&b, "redirect %s %d", r.Redirect.Scheme, r.Redirect.StatusCode)
	default:
		var bs []string
		for _, be := range r.Backends {
			name := strings.TrimSuffix(be.Cluster[strings.LastIndex(be.Cluster, "|")+1:], ".default.svc.cluster.local")
			if len(r.Backends) > 1 {
				name += fmt.Sprintf(":%d", be.Weight)
			}
			bs = append(bs, name)
		}
		b.WriteString(strings.Join(bs, ","))
	}
	if r.Rewrite != nil {
		fmt.Fprintf(&b, " rewrite %s => %s", r.Rewrite.PathRegex, r.Rewrite.PathSubstitution)
	}
	return b.String()
}

// condition returns the condition typ of Ingress default/name.
func condition(t *testing.T, res Result, name, typ string) status.Condition {
	t.Helper()
	for _, o := range res.Status {
		if o.Kind == Kind && o.Namespace == "default" && o.Name == name {
			if c := o.Get(typ); c != nil {
				return *c
			}
			t.Fatalf("Ingress %s has no %s condition: %+v", name, typ, o.Conditions)
		}
	}
	t.Fatalf("no status for Ingress %s", name)
	return status.Condition{}
}
