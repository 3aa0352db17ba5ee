package ingressnginx

import (
	"fmt"
	"strings"

	networkingv1 "k8s.io/api/networking/v1"

	"github.com/weir-mesh/weir/translator/status"
)

// Reasons in the conditions this front-end writes.
const (
	ReasonAccepted           = "Accepted"
	ReasonResolvedRefs       = "ResolvedRefs"
	ReasonInvalidAnnotation  = "InvalidAnnotation"
	ReasonInvalidPath        = "InvalidPath"
	ReasonConflicted         = "Conflicted"
	ReasonNoMainIngress      = "NoMainIngress"
	ReasonBackendNotFound    = "BackendNotFound"
	ReasonPortNotFound       = "PortNotFound"
	ReasonUnsupportedBackend = "UnsupportedBackend"
	ReasonInvalidCertificate = "InvalidCertificate"
)

// ingress is one Ingress of the served class on its way to routes, and what
// went wrong with it.
type ingress struct {
	obj    *networkingv1.Ingress
	ann    annotations
	status status.Object
	// rejected is true when nothing of the Ingress is served.
	rejected bool
	// problems are parts of the Ingress that are not served.
	problems []problem
	// refProblems are references that did not resolve.
	refProblems []problem
	// served counts the paths (or canary rules) that are served.
	served int
	// servesDefault is true when spec.defaultBackend is some host's
	// catch-all.
	servesDefault bool
}

type problem struct{ reason, message string }

func newIngress(obj *networkingv1.Ingress) *ingress {
	return &ingress{obj: obj, status: status.Object{Kind: Kind, Namespace: obj.Namespace, Name: obj.Name, Generation: obj.Generation}}
}

func (in *ingress) key() string { return in.obj.Namespace + "/" + in.obj.Name }

func (in *ingress) reject(reason, format string, args ...any) {
	in.rejected = true
	in.status.Set(status.Condition{Type: status.Accepted, Status: status.False, Reason: reason, Message: fmt.Sprintf(format, args...)})
}

// skip records that a part of the Ingress is not served.
func (in *ingress) skip(reason, format string, args ...any) {
	in.problems = append(in.problems, problem{reason, fmt.Sprintf(format, args...)})
}

// unresolved records a reference that did not resolve.
func (in *ingress) unresolved(reason, format string, args ...any) {
	in.refProblems = append(in.refProblems, problem{reason, fmt.Sprintf(format, args...)})
}

// finish sets the Accepted and ResolvedRefs conditions and returns the
// status.
func (in *ingress) finish() status.Object {
	if in.rejected {
		return in.status
	}
	switch {
	case len(in.problems) > 0:
		rest := "the rest of the Ingress is served"
		if in.served == 0 && !in.servesDefault {
			rest = "nothing of the Ingress is served"
		}
		in.status.Set(status.Condition{Type: status.Accepted, Status: status.False, Reason: in.problems[0].reason,
			Message: joinProblems(in.problems) + "; " + rest})
	default:
		in.status.Set(status.Condition{Type: status.Accepted, Status: status.True, Reason: ReasonAccepted, Message: in.acceptedMessage()})
	}
	if len(in.refProblems) > 0 {
		in.status.Set(status.Condition{Type: status.ResolvedRefs, Status: status.False, Reason: in.refProblems[0].reason,
			Message: joinProblems(in.refProblems)})
	} else {
		in.status.Set(status.Condition{Type: status.ResolvedRefs, Status: status.True, Reason: ReasonResolvedRefs, Message: "all references resolved"})
	}
	return in.status
}

func (in *ingress) acceptedMessage() string {
	var msg string
	if in.ann.canary {
		msg = fmt.Sprintf("canary (%s) for %d path(s)", in.ann.canaryCfg.describe(), in.served)
	} else {
		msg = fmt.Sprintf("serves %d path(s)", in.served)
		if in.servesDefault {
			msg += " and its defaultBackend"
		}
	}
	if len(in.ann.ignoredCanary) > 0 {
		msg += fmt.Sprintf("; %s ignored: %s%s is not \"true\"", strings.Join(in.ann.ignoredCanary, ", "), AnnotationPrefix, annCanary)
	}
	return msg
}

func joinProblems(ps []problem) string {
	msgs := make([]string, len(ps))
	for i, p := range ps {
		msgs[i] = p.message
	}
	return strings.Join(msgs, "; ")
}
