// Package translator turns the objects weir reads into the IR and the status
// conditions of each object. It is pure: the same objects give the same
// result, byte for byte.
package translator

import (
	"sort"

	"github.com/weir-mesh/weir/translator/gatewayapi"
	"github.com/weir-mesh/weir/translator/ingressnginx"
	"github.com/weir-mesh/weir/translator/ir"
	"github.com/weir-mesh/weir/translator/istio"
	"github.com/weir-mesh/weir/translator/kube"
	"github.com/weir-mesh/weir/translator/smi"
	"github.com/weir-mesh/weir/translator/status"
)

// Objects is a consistent, read-only view of every input object. Lists are
// sorted by namespace/name. The store's snapshot implements it.
type Objects interface {
	kube.Objects
	smi.Objects
	istio.Objects
	ingressnginx.Objects
	gatewayapi.Objects
}

// Result is one translation: the IR, and the status of every policy object.
type Result struct {
	IR     *ir.IR
	Status []status.Object
}

// Options tune a translation; the zero value gives the defaults.
type Options struct {
	// VersionLabels are the Pod labels that name an endpoint's version, in
	// order of precedence: the first one set on a Pod wins. Empty means
	// kube.DefaultVersionLabels ("version").
	VersionLabels []string
	// IngressClass is the class of the Ingresses weir serves; "" means
	// ingressnginx.DefaultClass.
	IngressClass string
	// GatewayController is the controllerName of the Gateway API
	// GatewayClasses weir serves; "" means gatewayapi.DefaultControllerName.
	GatewayController string
}

// Translate reads objs and returns the IR and status. It never fails: a
// user's mistake is a condition in Status, and the rest still translates.
func Translate(objs Objects, opts Options) Result {
	services := kube.Build(objs, opts.VersionLabels)
	split := smi.Translate(objs, services)
	mesh := istio.Translate(objs, services)
	gwapi := gatewayapi.Translate(objs, services, gatewayapi.Options{ControllerName: opts.GatewayController})
	st := append(append([]status.Object(nil), split.Status...), mesh.Status...)
	policies := hostPolicies(objs, split, mesh, st)
	hosts := make([]ir.Host, len(services.Hosts))
	for i, h := range services.Hosts {
		p := policies[h.Name]
		hosts[i] = withPolicyRoutes(h, p.routes, p.fallback)
		// GAMMA routes come first; the host's other routes follow them.
		hosts[i] = withPolicyRoutes(hosts[i], gwapi.Routes[h.Name], true)
		hosts[i].Standby = withoutRouted(append(append([]string(nil), p.standby...), gwapi.Standby[h.Name]...), hosts[i].Routes)
	}
	ingress := ingressnginx.Translate(objs, services, ingressnginx.Options{Class: opts.IngressClass})
	st = append(append(st, ingress.Status...), gwapi.Status...)
	status.Sort(st)
	return Result{
		IR: &ir.IR{
			Hosts:    hosts,
			Clusters: withClusters(services.SortedClusters(), mesh.Clusters),
			Servers:  sortedServers(ingress.Servers, mesh.Servers, gwapi.Servers),
			Secrets:  uniqueSecrets(ingress.Secrets, mesh.Secrets, gwapi.Secrets),
		},
		Status: st,
	}
}

// sortedServers joins the servers of the front-ends, sorted by name.
func sortedServers(lists ...[]ir.Server) []ir.Server {
	var out []ir.Server
	for _, l := range lists {
		out = append(out, l...)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// uniqueSecrets joins the secrets of the front-ends, sorted by name, each
// once (front-ends read the same Secret the same way).
func uniqueSecrets(lists ...[]ir.Secret) []ir.Secret {
	byName := map[string]ir.Secret{}
	for _, l := range lists {
		for _, s := range l {
			byName[s.Name] = s
		}
	}
	out := make([]ir.Secret, 0, len(byName))
	for _, s := range byName {
		out = append(out, s)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// withPolicyRoutes replaces the host's default route with a policy's
// routes; with fallback, the default route stays after them unless the
// policy has its own catch-all. The host may share routes' array: route
// lists are not modified once a front-end has returned them.
func withPolicyRoutes(h ir.Host, routes []ir.Route, fallback bool) ir.Host {
	if len(routes) == 0 {
		return h
	}
	if !fallback || routes[len(routes)-1].Match.IsCatchAll() {
		h.Routes = routes
		return h
	}
	out := make([]ir.Route, 0, len(routes)+len(h.Routes))
	h.Routes = append(append(out, routes...), h.Routes...)
	return h
}

// withClusters returns base (sorted by name) with the clusters of extra
// (sorted by name) added, or replacing those of the same name.
func withClusters(base, extra []ir.Cluster) []ir.Cluster {
	if len(extra) == 0 {
		return base
	}
	byName := make(map[string]ir.Cluster, len(base)+len(extra))
	for _, c := range base {
		byName[c.Name] = c
	}
	for _, c := range extra {
		byName[c.Name] = c
	}
	out := make([]ir.Cluster, 0, len(byName))
	for _, c := range byName {
		out = append(out, c)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// withoutRouted drops the standby clusters some route already sends to.
func withoutRouted(standby []string, routes []ir.Route) []string {
	if len(standby) == 0 {
		return nil
	}
	routed := map[string]bool{}
	for _, r := range routes {
		for _, b := range r.Backends {
			routed[b.Cluster] = true
		}
	}
	var out []string
	for _, c := range standby {
		if !routed[c] {
			out = append(out, c)
		}
	}
	return out
}
