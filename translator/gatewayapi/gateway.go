package gatewayapi

import (
	"fmt"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	gwapiv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/weir-mesh/weir/translator/kube"
	"github.com/weir-mesh/weir/translator/status"
)

// Condition types and reasons of Gateway API status.
const (
	condAccepted     = "Accepted"
	condProgrammed   = "Programmed"
	condResolvedRefs = "ResolvedRefs"
	condConflicted   = "Conflicted"

	kindGateway   = "Gateway"
	kindHTTPRoute = "HTTPRoute"
	kindService   = "Service"
	kindSecret    = "Secret"
)

// gateway is one Gateway of a GatewayClass weir serves.
type gateway struct {
	gw        *gwapiv1.Gateway
	conds     []status.Condition
	listeners []*listener
}

// listener is one listener of a gateway and the routes attached to it.
type listener struct {
	spec  gwapiv1.Listener
	gw    *gateway
	conds []status.Condition
	// kinds are the route kinds it supports.
	kinds []string
	// namespaces decides which routes' namespaces may attach.
	namespaces func(ns string) bool
	// secret is the IR name of an HTTPS listener's certificate.
	secret string
	// programmed listeners are served by gateway proxies.
	programmed bool
	attached   []attachment
	// routes are the namespace/name of the routes attached.
	routes map[string]bool
	// attachedRoutes counts the routes attached, served or not.
	attachedRoutes int32
}

// attachment is one route attached to a listener.
type attachment struct {
	// hostnames are the route's hostnames intersected with the
	// listener's; nil means any host.
	hostnames []string
	rules     []ruleRoute
}

// classes returns which GatewayClasses weir serves (by name: true when
// accepted) and their status.
func (t *translator) classes() (map[string]bool, []status.Object) {
	served := map[string]bool{}
	var out []status.Object
	for _, gc := range t.objs.GatewayClasses() {
		if string(gc.Spec.ControllerName) != t.controller {
			continue
		}
		st := status.Object{Group: gwapiv1.GroupName, Kind: "GatewayClass", Name: gc.Name, Generation: gc.Generation}
		if gc.Spec.ParametersRef != nil {
			st.Set(condition(condAccepted, false, string(gwapiv1.GatewayClassReasonInvalidParameters),
				"Invalid parametersRef: weir reads no parameters for a GatewayClass"))
		} else {
			st.Set(condition(condAccepted, true, string(gwapiv1.GatewayClassReasonAccepted), "Valid GatewayClass"))
		}
		served[gc.Name] = gc.Spec.ParametersRef == nil
		out = append(out, st)
	}
	return served, out
}

// gateways returns the Gateways of accepted classes weir serves, with
// their listeners validated, in namespace/name order.
func (t *translator) gateways(classes map[string]bool) map[string]*gateway {
	out := map[string]*gateway{}
	for _, gw := range t.objs.Gateways() {
		if !classes[string(gw.Spec.GatewayClassName)] {
			continue
		}
		g := &gateway{gw: gw}
		for _, l := range gw.Spec.Listeners {
			g.listeners = append(g.listeners, t.listener(g, l))
		}
		markConflicts(g.listeners)
		out[gw.Namespace+"/"+gw.Name] = g
	}
	return out
}

// listener validates one listener. A listener is programmed when it is
// accepted, its references resolve and it does not conflict.
func (t *translator) listener(g *gateway, spec gwapiv1.Listener) *listener {
	l := &listener{spec: spec, gw: g, namespaces: func(ns string) bool { return ns == g.gw.Namespace }}
	switch spec.Protocol {
	case gwapiv1.HTTPProtocolType:
	case gwapiv1.HTTPSProtocolType:
		t.listenerTLS(l)
	default:
		l.fail(condAccepted, string(gwapiv1.ListenerReasonUnsupportedProtocol),
			fmt.Sprintf("Protocol %s is unsupported, must be HTTP or HTTPS.", spec.Protocol))
		return l
	}
	l.allowedKinds()
	l.allowedNamespaces()
	return l
}

// fail records a failed condition; the listener is then not programmed.
func (l *listener) fail(t, reason, message string) {
	l.conds = status.SetCondition(l.conds, condition(t, false, reason, message))
}

// listenerTLS resolves an HTTPS listener's certificate: weir serves the
// first of certificateRefs.
func (t *translator) listenerTLS(l *listener) {
	tls := l.spec.TLS
	if tls == nil || len(tls.CertificateRefs) == 0 {
		l.fail(condResolvedRefs, string(gwapiv1.ListenerReasonInvalidCertificateRef),
			"Listener must have at least 1 TLS certificate ref")
		return
	}
	if tls.Mode != nil && *tls.Mode != gwapiv1.TLSModeTerminate {
		l.fail(condAccepted, string(gwapiv1.ListenerReasonUnsupportedValue),
			fmt.Sprintf("TLS mode %s is unsupported with protocol HTTPS, must be Terminate.", *tls.Mode))
		return
	}
	ref := tls.CertificateRefs[0]
	ns := l.gw.gw.Namespace
	if ref.Namespace != nil && *ref.Namespace != "" {
		ns = string(*ref.Namespace)
	}
	switch {
	case ref.Group != nil && *ref.Group != "" || ref.Kind != nil && *ref.Kind != kindSecret:
		l.fail(condResolvedRefs, string(gwapiv1.ListenerReasonInvalidCertificateRef),
			"Certificate ref must be a core Secret.")
		return
	case ns != l.gw.gw.Namespace && !t.permits(kindGateway, l.gw.gw.Namespace, "", kindSecret, ns, string(ref.Name)):
		l.fail(condResolvedRefs, string(gwapiv1.ListenerReasonRefNotPermitted),
			fmt.Sprintf("Certificate ref to secret %s/%s not permitted by any ReferenceGrant.", ns, ref.Name))
		return
	}
	secret, err := kube.TLSSecret(t.objs, ns, string(ref.Name))
	if err != nil {
		l.fail(condResolvedRefs, string(gwapiv1.ListenerReasonInvalidCertificateRef), err.Error())
		return
	}
	t.secrets[secret.Name] = secret
	l.secret = secret.Name
}

// allowedKinds keeps the route kinds of allowedRoutes.kinds that weir
// serves (HTTPRoute), and fails ResolvedRefs for the others.
func (l *listener) allowedKinds() {
	if l.spec.AllowedRoutes == nil || len(l.spec.AllowedRoutes.Kinds) == 0 {
		l.kinds = []string{kindHTTPRoute}
		return
	}
	for _, k := range l.spec.AllowedRoutes.Kinds {
		if (k.Group == nil || *k.Group == gwapiv1.GroupName) && k.Kind == kindHTTPRoute {
			l.kinds = append(l.kinds, kindHTTPRoute)
			continue
		}
		l.fail(condResolvedRefs, string(gwapiv1.ListenerReasonInvalidRouteKinds),
			fmt.Sprintf("%s is not supported, kind must be one of [%s]", k.Kind, kindHTTPRoute))
	}
}

// allowedNamespaces reads allowedRoutes.namespaces. A selector sees the
// only namespace label weir knows, kubernetes.io/metadata.name.
func (l *listener) allowedNamespaces() {
	rn := l.spec.AllowedRoutes
	if rn == nil || rn.Namespaces == nil || rn.Namespaces.From == nil {
		return
	}
	switch *rn.Namespaces.From {
	case gwapiv1.NamespacesFromAll:
		l.namespaces = func(string) bool { return true }
	case gwapiv1.NamespacesFromNone:
		l.namespaces = func(string) bool { return false }
	case gwapiv1.NamespacesFromSelector:
		if rn.Namespaces.Selector == nil {
			l.fail(condProgrammed, string(gwapiv1.ListenerReasonInvalid),
				"The allowedRoutes.namespaces.selector field must be specified when allowedRoutes.namespaces.from is set to \"Selector\".")
			return
		}
		sel, err := metav1.LabelSelectorAsSelector(rn.Namespaces.Selector)
		if err != nil {
			l.fail(condProgrammed, string(gwapiv1.ListenerReasonInvalid),
				fmt.Sprintf("The allowedRoutes.namespaces.selector could not be parsed: %v.", err))
			return
		}
		l.namespaces = func(ns string) bool {
			return sel.Matches(labels.Set{corev1.LabelMetadataName: ns})
		}
	}
}

// markConflicts sets Conflicted on listeners sharing a port with another
// protocol (all of them), or a port, protocol and hostname (all but the
// first), among listeners valid so far.
func markConflicts(ls []*listener) {
	protocols := map[gwapiv1.PortNumber]map[gwapiv1.ProtocolType]bool{}
	for _, l := range ls {
		if l.valid() {
			if protocols[l.spec.Port] == nil {
				protocols[l.spec.Port] = map[gwapiv1.ProtocolType]bool{}
			}
			protocols[l.spec.Port][l.spec.Protocol] = true
		}
	}
	seen := map[string]bool{}
	for _, l := range ls {
		if !l.valid() {
			continue
		}
		if len(protocols[l.spec.Port]) > 1 {
			l.conds = status.SetCondition(l.conds, condition(condConflicted, true, string(gwapiv1.ListenerReasonProtocolConflict),
				"All listeners for a given port must use a compatible protocol"))
			continue
		}
		key := fmt.Sprintf("%s:%s:%d", l.spec.Protocol, l.hostname(), l.spec.Port)
		if seen[key] {
			l.conds = status.SetCondition(l.conds, condition(condConflicted, true, string(gwapiv1.ListenerReasonHostnameConflict),
				"Port, protocol and hostname tuple must be unique for every listener"))
		}
		seen[key] = true
	}
}

// valid reports whether no condition failed so far.
func (l *listener) valid() bool {
	for _, c := range l.conds {
		if c.Status == status.False || c.Type == condConflicted && c.Status == status.True {
			return false
		}
	}
	return true
}

// hostname is the listener's hostname, "" for any.
func (l *listener) hostname() string {
	if l.spec.Hostname == nil {
		return ""
	}
	return string(*l.spec.Hostname)
}

// finish completes the listener's conditions once routes are attached, as
// Envoy Gateway does: a listener whose only failure is its certificate is
// accepted but not programmed.
func (l *listener) finish() {
	l.programmed = l.valid()
	if l.programmed {
		l.conds = []status.Condition{
			condition(condAccepted, true, string(gwapiv1.ListenerReasonAccepted), "Listener has been successfully translated"),
			condition(condConflicted, false, string(gwapiv1.ListenerReasonNoConflicts), "No conflicts detected"),
			condition(condProgrammed, true, string(gwapiv1.ListenerReasonProgrammed), "Sending translated listener configuration to the data plane"),
			condition(condResolvedRefs, true, string(gwapiv1.ListenerReasonResolvedRefs), "Listener references have been resolved"),
		}
		return
	}
	add := func(c status.Condition) {
		if status.FindCondition(l.conds, c.Type) == nil {
			l.conds = append(l.conds, c)
		}
	}
	add(condition(condProgrammed, false, string(gwapiv1.ListenerReasonInvalid), "Listener is invalid, see other Conditions for details."))
	add(condition(condResolvedRefs, true, string(gwapiv1.ListenerReasonResolvedRefs), "Listener references have been resolved"))
	add(condition(condConflicted, false, string(gwapiv1.ListenerReasonNoConflicts), "No conflicts detected"))
	certOnly := status.FindCondition(l.conds, condResolvedRefs).Status == status.False &&
		status.FindCondition(l.conds, condProgrammed).Reason == string(gwapiv1.ListenerReasonInvalid) &&
		status.FindCondition(l.conds, condConflicted).Status == status.False
	if certOnly {
		add(condition(condAccepted, true, string(gwapiv1.ListenerReasonAccepted), "Listener has been successfully translated"))
	} else {
		add(condition(condAccepted, false, string(gwapiv1.ListenerReasonInvalid), "Listener is invalid, see other Conditions for details."))
	}
}

// statusObject returns the Gateway's status, with its listeners'.
func (g *gateway) statusObject() status.Object {
	st := status.Object{Group: gwapiv1.GroupName, Kind: kindGateway, Namespace: g.gw.Namespace, Name: g.gw.Name,
		Generation: g.gw.Generation, Listeners: []status.Listener{}}
	var accepted, programmed, invalid []string
	for _, l := range g.listeners {
		l.finish()
		if l.programmed {
			programmed = append(programmed, string(l.spec.Name))
		}
		if status.FindCondition(l.conds, condAccepted).Status == status.True {
			accepted = append(accepted, string(l.spec.Name))
		} else {
			invalid = append(invalid, string(l.spec.Name))
		}
		kinds := l.kinds
		if kinds == nil {
			kinds = []string{}
		}
		st.Listeners = append(st.Listeners, status.Listener{Name: string(l.spec.Name), AttachedRoutes: l.attachedRoutes,
			SupportedKinds: kinds, Conditions: l.conds})
	}
	sort.Strings(invalid)
	switch {
	case len(g.gw.Spec.Addresses) > 0:
		st.Set(condition(condAccepted, false, string(gwapiv1.GatewayReasonUnsupportedAddress),
			"weir assigns no addresses: spec.addresses must be empty; gateway proxies are picked by their labels"))
	case len(invalid) == 0:
		st.Set(condition(condAccepted, true, string(gwapiv1.GatewayReasonAccepted), "The Gateway has been scheduled by weir"))
	case len(accepted) > 0:
		st.Set(condition(condAccepted, true, string(gwapiv1.GatewayReasonListenersNotValid),
			"Listeners not valid: "+strings.Join(invalid, ", ")))
	default:
		st.Set(condition(condAccepted, false, string(gwapiv1.GatewayReasonListenersNotValid),
			"No listeners are valid: "+strings.Join(invalid, ", ")))
	}
	if st.Get(condAccepted).Status == status.True && len(programmed) > 0 {
		st.Set(condition(condProgrammed, true, string(gwapiv1.GatewayReasonProgrammed),
			fmt.Sprintf("Sent to gateway proxies labelled %s=%s,%s=%s", GatewayNameLabel, g.gw.Name, GatewayNamespaceLabel, g.gw.Namespace)))
	} else {
		st.Set(condition(condProgrammed, false, string(gwapiv1.GatewayReasonInvalid), "No listener is programmed"))
	}
	return st
}
