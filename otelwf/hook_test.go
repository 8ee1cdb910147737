package otelwf_test

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/b3b01171/workflow"
)

func TestARunThatFailedHasErrorStatusAndItsError(t *testing.T) {
	instrument, b := setup(t)
	w := newWorkflow[int, int](t, "fails", workflow.Tasks{
		step("a"),
		workflow.Task[int, int]{Name: "b", Dependencies: []string{"a"},
			Handler: func(context.Context, int) (int, error) { return 0, errBoom }},
		step("c", "b"),
	}, instrument)
	_, err := w.Run(t.Context(), 1)
	require.ErrorIs(t, err, errBoom)
	assert.Equal(t, `workflow.run fails !
  workflow.task a #1
  workflow.task b #1 !
`, b.tree(), "c never started: no span")
	run := b.one(t, "workflow.run fails")
	assert.Equal(t, "failed", attr(run, "workflow.run.state").AsString())
	assert.Equal(t, err.Error(), run.Status().Description)
	assert.Equal(t, []string{err.Error()}, exceptions(run))
}

type order struct {
	ID string `validate:"required"`
}

func TestARunEndedBeforeAnyAttemptStillHasASpan(t *testing.T) {
	instrument, b := setup(t)
	w := newWorkflow[order, order](t, "orders", workflow.Tasks{
		workflow.Task[order, order]{Name: "t", Handler: func(_ context.Context, o order) (order, error) { return o, nil }},
	}, instrument)
	ctx, caller := b.caller(t.Context())
	defer caller.End()

	// The hook learns the workflow's name from the middleware, at the
	// workflow's first attempt: before it, a run span has no name.
	_, err := w.Run(ctx, order{}, workflow.WithRunID("first"))
	require.ErrorIs(t, err, workflow.ErrInvalidInput)
	_, err = w.Run(ctx, order{ID: "1"})
	require.NoError(t, err)
	_, err = w.Run(ctx, order{}, workflow.WithRunID("refused"))
	require.ErrorIs(t, err, workflow.ErrInvalidInput)

	first, refused := b.run(t, "first"), b.run(t, "refused")
	assert.Equal(t, "workflow.run", first.Name())
	assert.Equal(t, "workflow.run orders", refused.Name())
	assert.Equal(t, "orders", attr(refused, "workflow.name").AsString())
	for _, span := range []sdktrace.ReadOnlySpan{first, refused} {
		assert.False(t, span.Parent().IsValid(), "the hook does not see the caller's context")
		assert.Equal(t, codes.Error, span.Status().Code)
		assert.Contains(t, span.Status().Description, "invalid input: ID is required")
	}
}

func TestAResumedRunHasANewSpanLinkedToTheOriginal(t *testing.T) {
	instrument, b := setup(t)
	var fail atomic.Bool
	fail.Store(true)
	w := newWorkflow[int, int](t, "resumed", workflow.Tasks{
		step("a"),
		workflow.Task[int, int]{Name: "b", Dependencies: []string{"a"}, Handler: func(_ context.Context, in int) (int, error) {
			if fail.Load() {
				return 0, errBoom
			}
			return in + 1, nil
		}},
	}, instrument)
	ctx, caller := b.caller(t.Context())
	_, err := w.Run(ctx, 1, workflow.WithRunID("r"))
	caller.End()
	require.ErrorIs(t, err, errBoom)
	fail.Store(false)
	rctx, resumer := b.tp.Tracer("test").Start(t.Context(), "resumer")
	out, err := w.Resume(rctx, "r")
	resumer.End()
	require.NoError(t, err)
	assert.Equal(t, 3, out)

	assert.Equal(t, `caller
  workflow.run resumed !
    workflow.task a #1
    workflow.task b #1 !
resumer
  workflow.run resumed
    workflow.task b #2
`, b.tree())
	runs := b.named("workflow.run resumed")
	require.Len(t, runs, 2)
	original, again := runs[0], runs[1]
	require.Len(t, again.Links(), 1)
	assert.Equal(t, original.SpanContext(), again.Links()[0].SpanContext)
	assert.True(t, attr(again, "workflow.resumed").AsBool())
	assert.Empty(t, original.Links())
	assert.Equal(t, "r", attr(again, "workflow.run_id").AsString())
}

func TestAPassOfRetryOnFailureIsAnEventOfTheRunSpan(t *testing.T) {
	instrument, b := setup(t)
	calls := 0
	w := newWorkflow[int, int](t, "passes", workflow.Tasks{
		step("a"),
		workflow.Task[int, int]{Name: "b", Dependencies: []string{"a"}, Handler: func(_ context.Context, in int) (int, error) {
			if calls++; calls == 1 {
				return 0, errBoom
			}
			return in, nil
		}},
	}, instrument)
	_, err := w.Run(t.Context(), 1, workflow.RetryOnFailure(1))
	require.NoError(t, err)
	assert.Equal(t, `workflow.run passes
  workflow.task a #1
  workflow.task b #1 !
  workflow.task b #2
`, b.tree())
	run := b.one(t, "workflow.run passes")
	var names []string
	for _, e := range run.Events() {
		names = append(names, e.Name)
	}
	assert.Equal(t, []string{"workflow.run.retrying"}, names)
}

func TestScheduledAndTriggeredRunsAreInstrumented(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		instrument, b := setup(t)
		w := newWorkflow[struct{}, struct{}](t, "sched", workflow.Tasks{
			workflow.Task[struct{}, struct{}]{Name: "work", Handler: func(context.Context, struct{}) (struct{}, error) {
				time.Sleep(90 * time.Second)
				return struct{}{}, nil
			}},
		}, workflow.WithSchedule(workflow.Schedule{Cron: "@every 1m"}), instrument)
		s := workflow.NewScheduler()
		require.NoError(t, s.Register(w))

		// Triggered under the caller's span: 0s to 90s.
		ctx, caller := b.caller(t.Context())
		id, err := s.Trigger(ctx, "sched")
		require.NoError(t, err)
		caller.End()
		time.Sleep(100 * time.Second)

		// Started at 100s: fires at 160s (runs to 250s), 220s (skipped).
		s.Start()
		time.Sleep(140 * time.Second)
		require.NoError(t, s.Stop(t.Context()))
		synctest.Wait() // the hooks have been given the last events

		runs := b.named("workflow.run sched")
		require.Len(t, runs, 2)
		triggered, scheduled := runs[0], runs[1]
		assert.Equal(t, id, attr(triggered, "workflow.run_id").AsString())
		assert.Equal(t, "manual", attr(triggered, "workflow.trigger").AsString())
		assert.Equal(t, "schedule", attr(scheduled, "workflow.trigger").AsString())
		assert.Equal(t, caller.SpanContext().SpanID(), triggered.Parent().SpanID())
		assert.False(t, scheduled.Parent().IsValid(), "a scheduled run starts a trace")
		assert.NotEqual(t, caller.SpanContext().TraceID(), scheduled.SpanContext().TraceID())
		assert.Empty(t, scheduled.Links())
		assert.Equal(t, scheduled.SpanContext().SpanID(), b.named("workflow.task work")[1].Parent().SpanID())
		assert.Equal(t, 90*time.Second, scheduled.EndTime().Sub(scheduled.StartTime()))

		m := b.metrics(t)
		assert.Equal(t, 2.0, m["workflow.run.started{workflow.name=sched}"])
		assert.Equal(t, 2.0, m["workflow.run.ended{workflow.name=sched,workflow.run.state=succeeded}"])
		assert.Equal(t, 0.0, m["workflow.run.active{workflow.name=sched}"])
		assert.Equal(t, 1.0, m["workflow.schedule.skipped{workflow.name=sched}"])
	})
}

func TestRunsCancelledAtOnceLeaveNoSpanOpenAndCountEveryAttempt(t *testing.T) {
	instrument, b := setup(t)
	var started atomic.Int64 // task_started events
	tasks := workflow.Tasks{step("root")}
	var deps []string
	for _, name := range []string{"a", "b", "c", "d", "e", "f", "g", "h"} {
		tasks = append(tasks, workflow.Task[int, int]{Name: name, Dependencies: []string{"root"}, Timeout: time.Second,
			Handler: func(ctx context.Context, in int) (int, error) {
				<-ctx.Done()
				return 0, ctx.Err()
			}})
		deps = append(deps, name)
	}
	tasks = append(tasks, sum("join", deps...))
	w := newWorkflow[int, int](t, "cancelled", tasks, instrument, workflow.WithHook(func(ev workflow.Event) {
		if ev.Type == workflow.EventTaskStarted {
			started.Add(1)
		}
	}))
	const runs = 200
	for i := range runs {
		ctx, cancel := context.WithCancel(t.Context())
		stop := time.AfterFunc(time.Duration(i%20)*10*time.Microsecond, cancel) // at all stages of a run
		_, err := w.Run(ctx, 1)
		require.Error(t, err)
		stop.Stop()
		cancel()
	}
	// A handler the run has left to finish ends its span when it returns.
	assert.Eventually(t, func() bool { return len(b.spans.Started()) == len(b.spans.Ended()) },
		5*time.Second, time.Millisecond, "every span started has ended")
	// Runs cancelled before the workflow's first attempt are counted
	// without its name, which the middleware tells: add up both.
	m := b.metrics(t)
	total := func(prefix string) float64 {
		n := 0.0
		for k, v := range m {
			if strings.HasPrefix(k, prefix) {
				n += v
			}
		}
		return n
	}
	assert.Equal(t, float64(runs), total("workflow.run.started{"))
	assert.Equal(t, float64(runs), total("workflow.run.ended{"))
	assert.Equal(t, 0.0, total("workflow.run.active{"))
	assert.Equal(t, float64(started.Load()), total("workflow.task.attempt.ended{"), "one attempt ended for each started")
	runsByID := map[string]sdktrace.ReadOnlySpan{}
	for _, s := range b.ended() {
		if s.Name() == "workflow.run" || s.Name() == "workflow.run cancelled" {
			runsByID[attr(s, "workflow.run_id").AsString()] = s
		}
	}
	assert.Len(t, runsByID, runs)
	for _, s := range b.ended() {
		if strings.HasPrefix(s.Name(), "workflow.task ") {
			run := runsByID[attr(s, "workflow.run_id").AsString()]
			require.NotNil(t, run)
			assert.Equal(t, run.SpanContext().SpanID(), s.Parent().SpanID())
		}
	}
}
