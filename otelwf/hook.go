package otelwf

import (
	"context"

	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/b3b01171/workflow"
)

// hook follows each run's events, in order: it ends the spans of attempts
// and runs, times the retry waits, and keeps the metrics. Spans are ended
// after the run's state is unlocked, so that an exporter never holds up an
// attempt.
func (in *instrument) hook(ev workflow.Event) {
	if ev.Type == workflow.EventScheduleSkipped {
		guard(func() { in.m.skip(in.workflowName()) })
		return
	}
	if ev.RunID == "" {
		return
	}
	var e ending
	var after []func()
	guard(func() { e, after = in.apply(ev) })
	e.end()
	for _, f := range after {
		guard(f)
	}
}

// Every task_started is followed by one end of that attempt, in this order
// for each run: task_retrying or task_succeeded, task_failed,
// task_timed_out, task_cancelled (a cancellation during a retry wait ends
// the wait, the attempt having ended before). The run's own end comes
// last.
var (
	attemptEnds = map[string]workflow.State{
		workflow.EventTaskSucceeded: workflow.StateSucceeded,
		workflow.EventTaskFailed:    workflow.StateFailed,
		workflow.EventTaskTimedOut:  workflow.StateTimedOut,
		workflow.EventTaskCancelled: workflow.StateCancelled,
	}
	runEnds = map[string]workflow.State{
		workflow.EventRunSucceeded: workflow.StateSucceeded,
		workflow.EventRunFailed:    workflow.StateFailed,
		workflow.EventRunTimedOut:  workflow.StateTimedOut,
		workflow.EventRunCancelled: workflow.StateCancelled,
	}
)

// apply takes ev into the state of its run, and returns what to do once
// that state is unlocked: end an attempt's span (most events end one at
// most), and what else.
func (in *instrument) apply(ev workflow.Event) (e ending, after []func()) {
	rs := in.run(ev.RunID, nil)
	runEnd, ended := runEnds[ev.Type]
	if ended {
		rs.ended.Store(true) // before anything: see claim
		defer in.drop(rs)    // whatever happens below: no run is kept past its end
	}
	rs.mu.Lock()
	defer rs.mu.Unlock()
	if rs.name == "" {
		rs.name = in.workflowName()
	}
	if rs.uncounted && rs.name != "" {
		in.countStart(rs)
	}
	if ended {
		return e, in.endRun(rs, ev, runEnd, after)
	}
	if state, ok := attemptEnds[ev.Type]; ok {
		return in.endAttempt(rs, ev, state), rs.endWait(ev, after)
	}
	switch ev.Type {
	case workflow.EventRunStarted, workflow.EventRunResumed:
		rs.start = ev.Time
		if ev.Type == workflow.EventRunResumed {
			rs.resumed = true
			if run := rs.span.Load(); run != nil {
				run.SetAttributes(keyResumed.Bool(true))
			}
		}
		// The workflow's name is known from its first attempt on: a run
		// that starts before is counted once it is known, at the latest
		// when its own first attempt begins, so that each run is counted
		// under one name from its start to its end.
		rs.uncounted = true
		if rs.name != "" {
			in.countStart(rs)
		}
	case workflow.EventRunRetrying:
		if run := rs.span.Load(); run != nil {
			run.AddEvent("workflow.run.retrying", trace.WithTimestamp(ev.Time),
				trace.WithAttributes(keyError.String(ev.Error)))
		}
	case workflow.EventTaskStarted:
		after = rs.endWait(ev, after)
		a := rs.attempt(attemptKey{ev.Task, ev.Attempt})
		a.mu.Lock()
		a.start = ev.Time
		a.mu.Unlock()
	case workflow.EventTaskRetrying:
		e = in.endAttempt(rs, ev, "")
		if run := rs.span.Load(); run != nil {
			if rs.waits == nil {
				rs.waits = map[string]trace.Span{}
			}
			_, rs.waits[ev.Task] = in.tracer.Start(trace.ContextWithSpan(context.Background(), run.Span),
				"workflow.retry_wait "+ev.Task, trace.WithTimestamp(ev.Time),
				trace.WithAttributes(keyName.String(rs.name), keyRunID.String(rs.id),
					keyTask.String(ev.Task), keyAttempt.Int(ev.Attempt+1)))
		}
	}
	return e, after
}

// countStart counts the start of rs. The caller holds rs.mu.
func (in *instrument) countStart(rs *runState) {
	rs.uncounted, rs.counted = false, true
	in.m.runStart(rs.name)
}

// endAttempt records the end of the attempt of ev in state, once: the
// metrics, and the end of its span unless the middleware has not begun it
// (then it ends it, late). State "" is a retry's: the attempt timed out if
// its handler was abandoned at its deadline (it has not returned) or gave
// up at it, and failed otherwise. The caller holds rs.mu.
func (in *instrument) endAttempt(rs *runState, ev workflow.Event, state workflow.State) ending {
	key := attemptKey{ev.Task, ev.Attempt}
	a := rs.lookup(key)
	if a == nil {
		return ending{} // no attempt: an input refused before it
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.ended {
		return ending{} // a cancellation during the retry wait that followed it
	}
	if state == "" {
		state = workflow.StateFailed
		if !a.returned || a.deadline {
			state = workflow.StateTimedOut
		}
	}
	a.ended, a.state, a.err = true, state, ev.Error
	in.m.attemptEnd(in.task(ev.Task).attrs(state), ev.Time.Sub(a.start), !a.start.IsZero())
	if a.returned {
		rs.forget(key)
	}
	if !a.claimed {
		return ending{}
	}
	return a.endingAt(ev.Time)
}

// endWait ends the retry wait of ev's task, if one is under way. The
// caller holds rs.mu.
func (rs *runState) endWait(ev workflow.Event, after []func()) []func() {
	w := rs.waits[ev.Task]
	if w == nil {
		return after
	}
	delete(rs.waits, ev.Task)
	t := ev.Time
	return append(after, func() { w.End(trace.WithTimestamp(t)) })
}

// endRun ends the run span (made now, without a parent, for a run that
// ended before any attempt) and counts the run's end. The caller holds
// rs.mu.
func (in *instrument) endRun(rs *runState, ev workflow.Event, state workflow.State, after []func()) []func() {
	if !rs.counted {
		in.countStart(rs) // under the name known now, if any
	}
	in.m.runEnd(rs.name, state, ev.Time.Sub(rs.start), !rs.start.IsZero())
	// The engine ends every attempt before the run: this is for safety,
	// and for an attempt claimed as the run ended (see claim).
	for _, a := range rs.each() {
		a.mu.Lock()
		if a.claimed && !a.ended {
			a.ended, a.state = true, workflow.StateCancelled
			after = append(after, a.endingAt(ev.Time).end)
		}
		a.mu.Unlock()
	}
	for task, w := range rs.waits {
		delete(rs.waits, task)
		after = append(after, func() { w.End(trace.WithTimestamp(ev.Time)) })
	}
	if rs.span.Load() == nil {
		in.startRun(context.Background(), rs, ev.Time)
	}
	span := rs.span.Load().Span
	if state != workflow.StateSucceeded {
		in.mu.Lock()
		in.ended.add(rs.id, span.SpanContext())
		in.mu.Unlock()
	}
	return append(after, func() {
		span.SetAttributes(keyRunState.String(string(state)))
		if state != workflow.StateSucceeded {
			span.AddEvent("exception", trace.WithTimestamp(ev.Time), trace.WithAttributes(keyExceptionMessage.String(ev.Error)))
			span.SetStatus(codes.Error, ev.Error)
		}
		span.End(trace.WithTimestamp(ev.Time))
	})
}

// drop forgets rs, ended.
func (in *instrument) drop(rs *runState) {
	in.runs.CompareAndDelete(rs.id, rs)
}
