package serve

import (
	"log/slog"

	"github.com/weir-mesh/weir/translator/status"
)

// rejectionLog logs the objects a translation did not accept (Accepted is
// False): at WARN when an object is first rejected or its reason or message
// changes, and at INFO once when it is accepted again. An object that is
// gone is forgotten without a word. It is not safe for concurrent use.
type rejectionLog struct {
	log  *slog.Logger
	last map[objectRef]status.Condition // rejections as last logged
}

// objectRef names an object in the status of a translation.
type objectRef struct{ group, kind, namespace, name string }

// observe logs what changed in the rejections of objs, the status of one
// translation, since the last call.
func (r *rejectionLog) observe(objs []status.Object) {
	now := map[objectRef]status.Condition{}
	for _, o := range objs {
		ref := objectRef{o.Group, o.Kind, o.Namespace, o.Name}
		old, was := r.last[ref]
		c := o.Get(status.Accepted)
		if c == nil || c.Status != status.False {
			if was {
				r.log.Info("object accepted again", "kind", o.Kind, "namespace", o.Namespace, "name", o.Name)
			}
			continue
		}
		now[ref] = *c
		if !was || old.Reason != c.Reason || old.Message != c.Message {
			r.log.Warn("object not accepted", "kind", o.Kind, "namespace", o.Namespace, "name", o.Name, "reason", c.Reason, "message", c.Message)
		}
	}
	r.last = now
}
