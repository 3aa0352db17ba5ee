package serve

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/weir-mesh/weir/translator/status"
)

func splitStatus(name, accepted, message string) status.Object {
	return status.Object{Kind: "TrafficSplit", Namespace: "shop", Name: name, Conditions: []status.Condition{
		{Type: status.Accepted, Status: accepted, Reason: "Invalid", Message: message},
	}}
}

// TestRejectionLog feeds the status of successive translations and checks
// what each one logs.
func TestRejectionLog(t *testing.T) {
	bad := splitStatus("web", status.False, "weight -5 is negative")
	steps := []struct {
		name   string
		status []status.Object
		want   []string
	}{
		{"a rejection is logged", []status.Object{bad, splitStatus("api", status.True, "")},
			[]string{`level=WARN msg="object not accepted" kind=TrafficSplit namespace=shop name=web reason=Invalid message="weight -5 is negative"`}},
		{"the same rejection again is not", []status.Object{bad, splitStatus("api", status.True, "")}, nil},
		{"a new message is", []status.Object{splitStatus("web", status.False, "weight -6 is negative")},
			[]string{`level=WARN msg="object not accepted" kind=TrafficSplit namespace=shop name=web reason=Invalid message="weight -6 is negative"`}},
		{"accepted again, once", []status.Object{splitStatus("web", status.True, "")},
			[]string{`level=INFO msg="object accepted again" kind=TrafficSplit namespace=shop name=web`}},
		{"accepted still", []status.Object{splitStatus("web", status.True, "")}, nil},
		{"rejected anew", []status.Object{bad},
			[]string{`level=WARN msg="object not accepted" kind=TrafficSplit namespace=shop name=web reason=Invalid message="weight -5 is negative"`}},
		{"gone, silently", nil, nil},
		{"back, rejected", []status.Object{bad},
			[]string{`level=WARN msg="object not accepted" kind=TrafficSplit namespace=shop name=web reason=Invalid message="weight -5 is negative"`}},
	}
	var buf bytes.Buffer
	r := &rejectionLog{log: slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{
		ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
			if a.Key == slog.TimeKey {
				return slog.Attr{}
			}
			return a
		},
	}))}
	for _, step := range steps {
		buf.Reset()
		r.observe(step.status)
		var got []string
		if buf.Len() > 0 {
			got = strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n")
		}
		if diff := cmp.Diff(step.want, got); diff != "" {
			t.Errorf("%s: logs (-want +got):\n%s", step.name, diff)
		}
	}
}
