package otelwf

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/b3b01171/workflow"
)

// middleware makes the span of each attempt, "workflow.task <task>", a
// child of the run span, and runs the attempt in its context, so that the
// handler's own spans nest under it. The run span is made here, at the
// run's first attempt: the attempt's context descends from the one given
// to Run or Start, whose span is the run span's parent. The hook ends the
// span when the engine records the attempt's end, which knows how it
// ended (a timeout, a failed output check) better than what the handler
// returned.
func (in *instrument) middleware(next workflow.TaskHandler) workflow.TaskHandler {
	return func(ctx context.Context, call workflow.TaskCall) (out any, err error) {
		rs, a, tctx := in.begin(ctx, call)
		if a == nil {
			return next(ctx, call)
		}
		returned := false
		defer func() {
			if returned {
				return
			}
			v := recover() // nil: runtime.Goexit
			in.finish(ctx, rs, a, call, nil, v, true)
			if v != nil {
				panic(v)
			}
		}()
		out, err = next(tctx, call)
		returned = true
		in.finish(ctx, rs, a, call, err, nil, false)
		return out, err
	}
}

// begin claims the attempt of call in its run, making the run span first
// if need be, and starts the attempt's span. It returns a nil attempt for
// an attempt to run untraced: its run has ended (the hook has seen its
// end), or making the span failed.
func (in *instrument) begin(ctx context.Context, call workflow.TaskCall) (rs *runState, a *attempt, tctx context.Context) {
	guard(func() { rs, a, tctx = in.claim(ctx, call) })
	if tctx == nil {
		return nil, nil, nil
	}
	return rs, a, tctx
}

func (in *instrument) claim(ctx context.Context, call workflow.TaskCall) (*runState, *attempt, context.Context) {
	if in.name.Load() == nil {
		name := call.Workflow
		in.name.CompareAndSwap(nil, &name)
	}
	rs := in.run(call.RunID, ctx)
	if rs == nil {
		return nil, nil, nil
	}
	run := rs.span.Load()
	if run == nil {
		if run = in.firstAttempt(ctx, rs, call); run == nil {
			return nil, nil, nil
		}
	}
	a := rs.attempt(attemptKey{call.Task, call.Attempt})
	a.mu.Lock()
	defer a.mu.Unlock()
	// The hook marks the run ended before it ends the attempts claimed,
	// each under its lock: checked here, under this one, no span is left
	// that nobody ends.
	if rs.ended.Load() {
		return nil, nil, nil
	}
	a.claimed, a.late = true, a.ended
	tctx, span := in.tracer.Start(trace.ContextWithSpan(ctx, run.Span), in.task(call.Task).spanName)
	if span.IsRecording() { // else the attributes would cost for nothing
		span.SetAttributes(keyName.String(call.Workflow), keyRunID.String(call.RunID),
			keyTask.String(call.Task), keyAttempt.Int(call.Attempt))
	}
	a.span = span
	return rs, a, tctx
}

// firstAttempt makes the run span of rs, at its first attempt (or the
// first that gets here), and counts the run's start if the hook could not
// for want of the workflow's name. It returns nil if the run has ended.
func (in *instrument) firstAttempt(ctx context.Context, rs *runState, call workflow.TaskCall) *spanRef {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	if rs.ended.Load() {
		return nil
	}
	if run := rs.span.Load(); run != nil {
		return run
	}
	rs.name = call.Workflow
	if rs.uncounted {
		in.countStart(rs)
	}
	in.startRun(ctx, rs, time.Time{})
	return rs.span.Load()
}

// startRun makes the run span of rs, a child of ctx's span, starting when
// the run started if the hook has seen that, else at now (zero: time.Now).
// A run this process saw end without success, resumed now, gets a link to
// that run's span. The caller holds rs.mu.
func (in *instrument) startRun(ctx context.Context, rs *runState, now time.Time) {
	start := rs.start
	if start.IsZero() {
		start = now
	}
	if start.IsZero() {
		start = time.Now()
	}
	name := "workflow.run"
	if rs.name != "" {
		name += " " + rs.name
	}
	opts := []trace.SpanStartOption{trace.WithTimestamp(start), trace.WithAttributes(keyRunID.String(rs.id))}
	if rs.name != "" {
		opts = append(opts, trace.WithAttributes(keyName.String(rs.name)))
	}
	if info, ok := workflow.Info(ctx); ok && info.Trigger != "" {
		opts = append(opts, trace.WithAttributes(keyTrigger.String(info.Trigger)))
	}
	in.mu.Lock()
	sc, resumed := in.ended.take(rs.id)
	in.mu.Unlock()
	if resumed {
		opts = append(opts, trace.WithLinks(trace.Link{SpanContext: sc}))
	}
	if resumed || rs.resumed {
		opts = append(opts, trace.WithAttributes(keyResumed.Bool(true)))
	}
	_, span := in.tracer.Start(ctx, name, opts...)
	rs.span.Store(&spanRef{span})
}

// finish records what the middleware saw of its attempt: an error, a
// panic (v) or a runtime.Goexit (exited with v nil, which the engine
// describes). The hook sets the span's status and ends it when the engine
// records the attempt's end, unless the engine had already given the
// attempt up when it began (late): then it is ended here.
func (in *instrument) finish(ctx context.Context, rs *runState, a *attempt, call workflow.TaskCall, err error, v any, exited bool) {
	var late ending
	guard(func() {
		a.mu.Lock()
		defer a.mu.Unlock()
		switch {
		case v != nil:
			a.span.RecordError(fmt.Errorf("panic: %v", v), trace.WithStackTrace(true))
			a.recorded = true
		case err != nil && !exited:
			a.span.RecordError(err)
			a.recorded = true
			a.deadline = errors.Is(ctx.Err(), context.DeadlineExceeded)
		}
		a.returned = true
		if !a.ended {
			return // the hook ends it
		}
		if a.late {
			late = a.endingAt(time.Now())
		}
		rs.forget(attemptKey{call.Task, call.Attempt})
	})
	late.end()
}

// ending is what ends an attempt's span, taken under the attempt's lock
// and used outside it, so that no exporter runs under a lock.
type ending struct {
	span     trace.Span
	state    workflow.State
	err      string
	recorded bool
	t        time.Time
}

// endingAt is how a's span ends, at t, as the engine ended the attempt. The
// caller holds a.mu.
func (a *attempt) endingAt(t time.Time) ending {
	return ending{span: a.span, state: a.state, err: a.err, recorded: a.recorded, t: t}
}

// end sets the span's state and status, and ends it.
func (e ending) end() {
	if e.span == nil {
		return
	}
	guard(func() {
		if !e.span.IsRecording() {
			e.span.End()
			return
		}
		e.span.SetAttributes(keyTaskState.String(string(e.state)))
		if e.state != workflow.StateSucceeded && e.state != workflow.StateCancelled {
			if !e.recorded && e.err != "" {
				e.span.AddEvent("exception", trace.WithTimestamp(e.t), trace.WithAttributes(keyExceptionMessage.String(e.err)))
			}
			e.span.SetStatus(codes.Error, e.err)
		}
		e.span.End(trace.WithTimestamp(e.t))
	})
}
