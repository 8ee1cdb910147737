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
	"go.opentelemetry.io/otel/trace"

	"github.com/b3b01171/workflow"
)

func TestFanOutFanInIsATreeUnderTheCallersSpan(t *testing.T) {
	instrument, b := setup(t)
	w := newWorkflow[int, int](t, "fan", workflow.Tasks{
		step("root"), step("a", "root"), step("b", "root"), step("c", "root"), sum("join", "a", "b", "c"),
	}, instrument)
	ctx, caller := b.caller(t.Context())
	out, err := w.Run(ctx, 1, workflow.WithRunID("r1"))
	caller.End()
	require.NoError(t, err)
	assert.Equal(t, 9, out)

	assert.Equal(t, `caller
  workflow.run fan
    workflow.task a #1
    workflow.task b #1
    workflow.task c #1
    workflow.task join #1
    workflow.task root #1
`, b.tree())
	run := b.one(t, "workflow.run fan")
	assert.Equal(t, caller.SpanContext().TraceID(), run.SpanContext().TraceID())
	assert.Equal(t, "fan", attr(run, "workflow.name").AsString())
	assert.Equal(t, "r1", attr(run, "workflow.run_id").AsString())
	assert.Equal(t, "succeeded", attr(run, "workflow.run.state").AsString())
	assert.Equal(t, codes.Unset, run.Status().Code)
	for _, s := range b.ended() {
		if !strings.HasPrefix(s.Name(), "workflow.task ") {
			continue
		}
		task := strings.TrimPrefix(s.Name(), "workflow.task ")
		assert.Equal(t, "fan", attr(s, "workflow.name").AsString())
		assert.Equal(t, "r1", attr(s, "workflow.run_id").AsString())
		assert.Equal(t, task, attr(s, "workflow.task").AsString())
		assert.Equal(t, int64(1), attr(s, "workflow.attempt").AsInt64())
		assert.Equal(t, "succeeded", attr(s, "workflow.task.state").AsString())
		assert.False(t, s.StartTime().Before(run.StartTime()), "%s starts within the run", s.Name())
		assert.False(t, s.EndTime().After(run.EndTime()), "%s ends within the run", s.Name())
	}
	join, root := b.one(t, "workflow.task join"), b.one(t, "workflow.task root")
	for _, name := range []string{"a", "b", "c"} {
		s := b.one(t, "workflow.task "+name)
		assert.False(t, s.StartTime().Before(root.EndTime()), "%s starts after root ends", name)
		assert.False(t, join.StartTime().Before(s.EndTime()), "join starts after %s ends", name)
	}
}

func TestAUserSpanInAHandlerNestsUnderItsTaskSpan(t *testing.T) {
	instrument, b := setup(t)
	var info workflow.RunInfo
	w := newWorkflow[int, int](t, "user", workflow.Tasks{
		step("first"),
		workflow.Task[int, int]{Name: "query", Dependencies: []string{"first"},
			Handler: func(ctx context.Context, in int) (int, error) {
				info, _ = workflow.Info(ctx) // the attempt's context, traced
				_, span := b.tp.Tracer("db").Start(ctx, "SELECT orders")
				span.End()
				return in, nil
			}},
	}, instrument)
	_, err := w.Run(t.Context(), 1)
	require.NoError(t, err)
	assert.Equal(t, `workflow.run user
  workflow.task first #1
  workflow.task query #1
    SELECT orders
`, b.tree())
	assert.Equal(t, "query", info.Task)
}

func TestARetriedTaskHasOneSpanPerAttemptAndOnePerWait(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		instrument, b := setup(t)
		calls := 0
		w := newWorkflow[int, int](t, "retry", workflow.Tasks{
			workflow.Task[int, int]{Name: "flaky", Retry: workflow.RetryPolicy{Attempts: 3, Delay: time.Second, Backoff: 2},
				Handler: func(_ context.Context, in int) (int, error) {
					time.Sleep(100 * time.Millisecond)
					if calls++; calls < 3 {
						return 0, errBoom
					}
					return in, nil
				}},
		}, instrument)
		_, err := w.Run(t.Context(), 1)
		require.NoError(t, err)
		assert.Equal(t, `workflow.run retry
  workflow.retry_wait flaky #2
  workflow.retry_wait flaky #3
  workflow.task flaky #1 !
  workflow.task flaky #2 !
  workflow.task flaky #3
`, b.tree())
		attempts := b.named("workflow.task flaky")
		waits := b.named("workflow.retry_wait flaky")
		require.Len(t, attempts, 3)
		require.Len(t, waits, 2)
		for k, s := range attempts[:2] {
			assert.Equal(t, "failed", attr(s, "workflow.task.state").AsString(), "attempt %d", k+1)
			assert.Equal(t, "boom", s.Status().Description)
			assert.Equal(t, []string{"boom"}, exceptions(s), "the error is recorded once")
		}
		assert.Equal(t, "succeeded", attr(attempts[2], "workflow.task.state").AsString())
		// Time is fake: each wait lasts exactly its delay, between the
		// attempts it separates.
		for k, d := range []time.Duration{time.Second, 2 * time.Second} {
			wait := waits[k]
			assert.Equal(t, d, wait.EndTime().Sub(wait.StartTime()), "wait %d", k+1)
			assert.WithinDuration(t, attempts[k].EndTime(), wait.StartTime(), 0)
			assert.WithinDuration(t, attempts[k+1].StartTime(), wait.EndTime(), 0)
			assert.Equal(t, 100*time.Millisecond, attempts[k].EndTime().Sub(attempts[k].StartTime()))
		}
	})
}

func TestFailedTimedOutAndPanickedAttemptsHaveErrorStatus(t *testing.T) {
	cases := []struct {
		name    string
		handler func(ctx context.Context, in int) (int, error)
		state   string
		// status is the span's status; exception, what its one exception
		// event says: either of two for a handler that gives up at its
		// deadline, as the engine's timer or its return comes first.
		status    string
		exception []string
	}{
		{"Failed", func(context.Context, int) (int, error) { return 0, errBoom }, "failed", "boom", []string{"boom"}},
		{"TimedOutGivingUp", func(ctx context.Context, _ int) (int, error) {
			<-ctx.Done()
			return 0, ctx.Err()
		}, "timed_out", "attempt exceeded 1s", []string{"context deadline exceeded", "attempt exceeded 1s"}},
		{"TimedOutIgnoringItsContext", func(context.Context, int) (int, error) {
			time.Sleep(5 * time.Second) // abandoned at 1s, left to finish
			return 1, nil
		}, "timed_out", "attempt exceeded 1s", []string{"attempt exceeded 1s"}},
		{"Panicked", func(context.Context, int) (int, error) { panic("boom") }, "failed", "boom", []string{"panic: boom"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				instrument, b := setup(t)
				w := newWorkflow[int, int](t, "bad", workflow.Tasks{
					workflow.Task[int, int]{Name: "t", Timeout: time.Second, Handler: c.handler},
				}, instrument)
				_, err := w.Run(t.Context(), 1)
				require.Error(t, err)
				time.Sleep(10 * time.Second) // an abandoned handler returns
				s := b.one(t, "workflow.task t")
				assert.Equal(t, c.state, attr(s, "workflow.task.state").AsString())
				assert.Equal(t, codes.Error, s.Status().Code)
				assert.Contains(t, s.Status().Description, c.status)
				require.Len(t, exceptions(s), 1)
				assert.Contains(t, c.exception, exceptions(s)[0])
				if c.state == "timed_out" {
					assert.Equal(t, time.Second, s.EndTime().Sub(s.StartTime()), "ends at the attempt's deadline")
				}
				run := b.one(t, "workflow.run bad")
				assert.Equal(t, codes.Error, run.Status().Code)
				assert.Equal(t, "failed", attr(run, "workflow.run.state").AsString())
			})
		})
	}
}

func TestAPanicIsRecordedWithItsStack(t *testing.T) {
	instrument, b := setup(t)
	w := newWorkflow[int, int](t, "panic", workflow.Tasks{
		workflow.Task[int, int]{Name: "t", Handler: func(context.Context, int) (int, error) { panic("boom") }},
	}, instrument)
	_, err := w.Run(t.Context(), 1)
	require.ErrorIs(t, err, workflow.ErrPanic, "the panic is the handler's still")
	s := b.one(t, "workflow.task t")
	var stack string
	for _, e := range s.Events() {
		for _, kv := range e.Attributes {
			if kv.Key == "exception.stacktrace" {
				stack = kv.Value.AsString()
			}
		}
	}
	assert.Contains(t, stack, "TestAPanicIsRecordedWithItsStack")
}

func TestARetriedTimeoutIsCountedAsTimedOut(t *testing.T) {
	for _, ignore := range []bool{false, true} {
		name := map[bool]string{false: "GivingUp", true: "IgnoringItsContext"}[ignore]
		t.Run(name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				instrument, b := setup(t)
				var calls atomic.Int32
				w := newWorkflow[int, int](t, "slow", workflow.Tasks{
					workflow.Task[int, int]{Name: "t", Timeout: time.Second, Retry: workflow.RetryPolicy{Attempts: 2},
						Handler: func(ctx context.Context, in int) (int, error) {
							if calls.Add(1) > 1 {
								return in, nil
							}
							if ignore {
								time.Sleep(2 * time.Second)
								return in, nil
							}
							<-ctx.Done()
							return 0, ctx.Err()
						}},
				}, instrument)
				_, err := w.Run(t.Context(), 1)
				require.NoError(t, err)
				time.Sleep(10 * time.Second) // an abandoned handler returns
				spans := b.named("workflow.task t")
				require.Len(t, spans, 2)
				assert.Equal(t, "timed_out", attr(spans[0], "workflow.task.state").AsString())
				assert.Equal(t, codes.Error, spans[0].Status().Code)
				assert.Equal(t, "succeeded", attr(spans[1], "workflow.task.state").AsString())
				assert.Equal(t, 1.0, b.metrics(t)["workflow.task.attempt.ended{workflow.name=slow,workflow.task=t,workflow.task.state=timed_out}"])
			})
		})
	}
}

func TestACancelledAttemptEndsWithItsRun(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		instrument, b := setup(t)
		started := make(chan struct{})
		w := newWorkflow[int, int](t, "cancel", workflow.Tasks{
			workflow.Task[int, int]{Name: "t", Handler: func(ctx context.Context, in int) (int, error) {
				close(started)
				<-ctx.Done()
				return 0, ctx.Err()
			}},
		}, instrument)
		ctx, cancel := context.WithCancel(t.Context())
		x, err := w.Start(ctx, 1)
		require.NoError(t, err)
		<-started
		cancel()
		_, err = x.Wait(t.Context())
		require.ErrorIs(t, err, workflow.ErrCancelled)
		synctest.Wait()
		s := b.one(t, "workflow.task t")
		assert.Equal(t, "cancelled", attr(s, "workflow.task.state").AsString())
		assert.Equal(t, codes.Unset, s.Status().Code, "a cancelled attempt is not where the run failed")
		run := b.one(t, "workflow.run cancel")
		assert.Equal(t, codes.Error, run.Status().Code)
		assert.Equal(t, "cancelled", attr(run, "workflow.run.state").AsString())
		assert.Equal(t, run.SpanContext().SpanID(), s.Parent().SpanID())
	})
}

func TestTaskSpansAreInTheHandlersContext(t *testing.T) {
	instrument, b := setup(t)
	var inHandler trace.SpanContext
	w := newWorkflow[int, int](t, "ctx", workflow.Tasks{
		workflow.Task[int, int]{Name: "t", Handler: func(ctx context.Context, in int) (int, error) {
			inHandler = trace.SpanContextFromContext(ctx)
			return in, nil
		}},
	}, instrument)
	_, err := w.Run(t.Context(), 1)
	require.NoError(t, err)
	assert.Equal(t, b.one(t, "workflow.task t").SpanContext(), inHandler)
}
