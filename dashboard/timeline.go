package dashboard

import (
	"fmt"
	"html/template"
	"time"

	"github.com/b3b01171/workflow"
)

// timeline is a run drawn as a Gantt chart: a row per task, a bar per
// attempt and per wait between attempts, placed in percent of the run's
// span.
type timeline struct {
	Start, End time.Time
	Span       time.Duration
	Rows       []timelineRow
	Ticks      []tick
}

type timelineRow struct {
	Task     string
	State    workflow.State
	Critical bool // on the chain of tasks that decided when the run ended
	Bars     []bar
}

type bar struct {
	Class string // "wait", or "attempt outcome-X" for an attempt that ended X: a state, "retried", or "running"
	Style template.CSS
	Title string
}

type tick struct {
	Left  float64
	Label string
}

// span is one attempt or wait, before it is placed.
type span struct {
	wait       bool
	attempt    int
	outcome    string
	start, end time.Time
	err        string
}

// buildTimeline reads rs's events into a timeline. A run under way is
// drawn up to now; attempts still going end there.
func buildTimeline(rs *workflow.RunStatus, g workflow.Graph, now time.Time) timeline {
	tl := timeline{Start: rs.StartedAt, End: rs.EndedAt}
	if tl.Start.IsZero() && len(rs.Events) > 0 {
		tl.Start = rs.Events[0].Time
	}
	if tl.End.IsZero() || underWay(rs.State) {
		tl.End = now
		if !underWay(rs.State) && len(rs.Events) > 0 {
			tl.End = rs.Events[len(rs.Events)-1].Time
		}
	}
	if tl.End.Before(tl.Start) {
		tl.End = tl.Start
	}
	tl.Span = tl.End.Sub(tl.Start)

	pos := make(map[string]int, len(rs.Tasks))
	spans := make([][]span, len(rs.Tasks))
	open := make([]int, len(rs.Tasks)) // index+1 of the task's open span in spans; 0: none
	for i, t := range rs.Tasks {
		pos[t.Name] = i
	}
	closeOpen := func(i int, at time.Time, outcome, err string) {
		if open[i] == 0 {
			return
		}
		sp := &spans[i][open[i]-1]
		sp.end, open[i] = at, 0
		if !sp.wait {
			sp.outcome, sp.err = outcome, err
		}
	}
	for _, e := range rs.Events {
		if e.Task == "" {
			if e.Type == workflow.EventRunInterrupted {
				for i := range open {
					closeOpen(i, e.Time, string(workflow.StateInterrupted), e.Error)
				}
			}
			continue
		}
		i, ok := pos[e.Task]
		if !ok {
			continue
		}
		switch e.Type {
		case workflow.EventTaskStarted:
			closeOpen(i, e.Time, "", "") // the wait before this attempt
			spans[i] = append(spans[i], span{attempt: e.Attempt, start: e.Time, outcome: "running"})
			open[i] = len(spans[i])
		case workflow.EventTaskRetrying:
			closeOpen(i, e.Time, "retried", e.Error)
			spans[i] = append(spans[i], span{wait: true, attempt: e.Attempt, start: e.Time})
			open[i] = len(spans[i])
		case workflow.EventTaskSucceeded:
			closeOpen(i, e.Time, string(workflow.StateSucceeded), e.Error)
		case workflow.EventTaskFailed:
			closeOpen(i, e.Time, string(workflow.StateFailed), e.Error)
		case workflow.EventTaskTimedOut:
			closeOpen(i, e.Time, string(workflow.StateTimedOut), e.Error)
		case workflow.EventTaskCancelled:
			closeOpen(i, e.Time, string(workflow.StateCancelled), e.Error)
		}
	}

	pct := func(t time.Time) float64 {
		if tl.Span <= 0 {
			return 0
		}
		return 100 * float64(t.Sub(tl.Start)) / float64(tl.Span)
	}
	critical := criticalPath(rs, g)
	for i, t := range rs.Tasks {
		row := timelineRow{Task: t.Name, State: t.State, Critical: critical[t.Name]}
		for _, sp := range spans[i] {
			if sp.end.IsZero() {
				sp.end = tl.End
			}
			left := min(max(pct(sp.start), 0), 100)
			width := min(max(pct(sp.end)-left, 0.25), 100-left)
			// Built from two numbers: safe as CSS.
			b := bar{Class: "wait", Style: template.CSS("left:" + f2(left) + "%;width:" + f2(width) + "%")}
			if !sp.wait {
				b.Class = "attempt outcome-" + sp.outcome
			}
			if sp.wait {
				b.Title = fmt.Sprintf("%s: waited %s before attempt %d", t.Name, roundDur(sp.end.Sub(sp.start)), sp.attempt+1)
			} else {
				b.Title = fmt.Sprintf("%s: attempt %d, %s, %s", t.Name, sp.attempt, sp.outcome, roundDur(sp.end.Sub(sp.start)))
				if sp.err != "" {
					b.Title += ": " + sp.err
				}
			}
			row.Bars = append(row.Bars, b)
		}
		tl.Rows = append(tl.Rows, row)
	}
	if tl.Span > 0 {
		for k := range 5 {
			tl.Ticks = append(tl.Ticks, tick{Left: float64(k) * 25, Label: "+" + roundDur(tl.Span*time.Duration(k)/4).String()})
		}
	}
	return tl
}

// criticalPath names the tasks that decided when rs ended: the task that
// ended last, the dependency of it that ended last, and so on back to a
// task without dependencies. Tasks that never ended are not on it.
func criticalPath(rs *workflow.RunStatus, g workflow.Graph) map[string]bool {
	ended := make(map[string]time.Time, len(rs.Tasks))
	var last string
	for _, t := range rs.Tasks {
		if t.EndedAt.IsZero() || t.StartedAt.IsZero() {
			continue
		}
		ended[t.Name] = t.EndedAt
		if last == "" || t.EndedAt.After(ended[last]) {
			last = t.Name
		}
	}
	deps := make(map[string][]string, len(g.Tasks))
	for _, t := range g.Tasks {
		deps[t.Name] = t.Dependencies
	}
	path := map[string]bool{}
	for cur := last; cur != "" && !path[cur]; {
		path[cur] = true
		next := ""
		for _, d := range deps[cur] {
			if at, ok := ended[d]; ok && (next == "" || at.After(ended[next])) {
				next = d
			}
		}
		cur = next
	}
	return path
}

// roundDur rounds d for reading: to the millisecond below a minute, to
// the second above.
func roundDur(d time.Duration) time.Duration {
	switch {
	case d >= time.Minute:
		return d.Round(time.Second)
	case d >= time.Second:
		return d.Round(time.Millisecond)
	case d >= time.Millisecond:
		return d.Round(10 * time.Microsecond)
	}
	return d.Round(time.Microsecond)
}
