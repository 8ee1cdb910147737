package dashboard

import (
	"bytes"
	"encoding/json"
	"fmt"
	"html/template"
	"strconv"
	"strings"
	"time"

	"github.com/b3b01171/workflow"
)

// funcs are the templates' functions: formatting only.
var funcs = template.FuncMap{
	"stateClass": func(s workflow.State) string { return "state-" + string(s) },
	"stateLabel": stateLabel,
	"stateColor": workflow.StateColor,
	"states": func() []workflow.State {
		return append(states[:len(states):len(states)], workflow.StateSkipped)
	},
	"fmtTime": fmtTime,
	"iso":     func(t time.Time) string { return t.Format(time.RFC3339Nano) },
	"dur":     fmtDur,
	"pct": func(a, b int) string {
		if b == 0 {
			return "–"
		}
		return fmt.Sprintf("%.0f%%", 100*float64(a)/float64(b))
	},
	"f2": f2,
	"retry": func(p workflow.RetryPolicy) string {
		if p.Attempts <= 1 {
			return "–"
		}
		s := fmt.Sprintf("%d attempts", p.Attempts)
		if p.Delay > 0 {
			s += fmt.Sprintf(", %s apart", p.Delay)
			if p.Backoff > 1 {
				s += fmt.Sprintf(" ×%g", p.Backoff)
			}
		}
		return s
	},
	"prettyJSON": func(v any) string {
		var raw []byte
		switch v := v.(type) {
		case json.RawMessage:
			raw = v
		case string:
			raw = []byte(v)
		}
		var b bytes.Buffer
		if err := json.Indent(&b, raw, "", "  "); err != nil {
			return string(raw)
		}
		return b.String()
	},
}

func stateLabel(s workflow.State) string { return strings.ReplaceAll(string(s), "_", " ") }

func fmtTime(t time.Time) string {
	if t.IsZero() {
		return "–"
	}
	return t.Format("2006-01-02 15:04:05.000 MST")
}

func fmtDur(d time.Duration) string {
	if d <= 0 {
		return "–"
	}
	return roundDur(d).String()
}

func f2(f float64) string { return strconv.FormatFloat(f, 'f', 2, 64) }
