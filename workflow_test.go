package workflow_test

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/go-playground/validator/v10"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/b3b01171/workflow"
)

var errBoom = errors.New("boom")

// newWorkflow builds a workflow that the test expects to be valid.
func newWorkflow[In, Out any](t *testing.T, name string, tasks workflow.Tasks, opts ...workflow.Option) *workflow.Workflow[In, Out] {
	t.Helper()
	w, err := workflow.New[In, Out](name, tasks, opts...)
	require.NoError(t, err)
	return w
}

// asWorkflowError requires err to be (or wrap) a *WorkflowError.
func asWorkflowError(t *testing.T, err error) *workflow.WorkflowError {
	t.Helper()
	var werr *workflow.WorkflowError
	require.ErrorAs(t, err, &werr)
	return werr
}

// taskState returns the state of one task in a run.
func taskState(t *testing.T, rs workflow.RunStatus, task string) workflow.State {
	t.Helper()
	ts, ok := rs.Task(task)
	require.True(t, ok, "run has no task %q", task)
	return ts.State
}

// blocker is a handler that ignores its context: it returns only when the
// test releases it, so that goleak and synctest see it end.
type blocker struct {
	release chan struct{}
	once    sync.Once
}

func newBlocker() *blocker {
	return &blocker{release: make(chan struct{})}
}

func (b *blocker) handle(_ context.Context, in int) (int, error) {
	<-b.release
	return in, nil
}

func (b *blocker) Release() { b.once.Do(func() { close(b.release) }) }

// waitForCtx is a handler that honours its context and never ends by
// itself.
func waitForCtx(ctx context.Context, _ int) (int, error) {
	<-ctx.Done()
	return 0, ctx.Err()
}

func fail(context.Context, int) (int, error) { return 0, errBoom }

func TestIndependentTasksRunConcurrently(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const n = 6
		var arrived atomic.Int32
		all := make(chan struct{})
		barrier := func(ctx context.Context, in int) (int, error) {
			if arrived.Add(1) == n {
				close(all)
			}
			select {
			case <-all:
				return in, nil
			case <-ctx.Done():
				return 0, ctx.Err()
			}
		}
		var tasks workflow.Tasks
		var names []string
		for i := range n {
			name := fmt.Sprintf("t%d", i)
			names = append(names, name)
			tasks = append(tasks, workflow.Task[int, int]{Name: name, Handler: barrier})
		}
		tasks = append(tasks, workflow.Task[workflow.Inputs, int]{Name: "join", Dependencies: names,
			Handler: func(context.Context, workflow.Inputs) (int, error) { return n, nil }})
		w := newWorkflow[int, int](t, "barrier", tasks)

		// Each task waits until all have started: one at a time would hang
		// until the run timeout.
		out, err := w.Run(t.Context(), 1, workflow.RunTimeout(time.Hour))

		require.NoError(t, err, "the independent tasks did not all run at once")
		assert.Equal(t, n, out)
	})
}

func TestMaxConcurrencyBoundsTheTasksRunningAtOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const n, limit = 10, 3
		var peak atomic.Int32
		work := sleepCountingPeak(&peak)
		tasks := workflow.Tasks{intTask("root")}
		var names []string
		for i := range n {
			name := fmt.Sprintf("w%d", i)
			names = append(names, name)
			tasks = append(tasks, workflow.Task[int, int]{Name: name, Dependencies: []string{"root"}, Handler: work})
		}
		tasks = append(tasks, workflow.Task[workflow.Inputs, int]{Name: "join", Dependencies: names,
			Handler: func(context.Context, workflow.Inputs) (int, error) { return 0, nil }})
		w := newWorkflow[int, int](t, "bounded", tasks, workflow.WithMaxConcurrency(limit))
		start := time.Now()

		_, err := w.Run(t.Context(), 1)

		require.NoError(t, err)
		assert.Equal(t, int32(limit), peak.Load(), "at most %d tasks at once, and the bound used", limit)
		// Ten one-second tasks, three at a time: four rounds.
		assert.Equal(t, 4*time.Second, time.Since(start))
	})
}

func TestUnboundedConcurrencyStartsEveryReadyTask(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const n = 50
		var peak atomic.Int32
		work := sleepCountingPeak(&peak)
		var tasks workflow.Tasks
		for i := range n {
			tasks = append(tasks, workflow.Task[int, int]{Name: fmt.Sprintf("w%d", i), Handler: work})
		}
		w := newWorkflow[int, int](t, "unbounded", tasks, workflow.WithOutput("w0"))
		start := time.Now()

		_, err := w.Run(t.Context(), 1)

		require.NoError(t, err)
		assert.Equal(t, int32(n), peak.Load())
		assert.Equal(t, time.Second, time.Since(start))
	})
}

func TestFirstFailureCancelsRunningTasksAndSkipsTheRest(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		slowStarted := make(chan struct{})
		var slowSawCancel atomic.Bool
		w := newWorkflow[int, int](t, "fail-fast", workflow.Tasks{
			workflow.Task[int, int]{Name: "fails", Retry: workflow.RetryPolicy{Attempts: 2},
				Handler: func(context.Context, int) (int, error) {
					<-slowStarted
					return 0, errBoom
				}},
			workflow.Task[int, int]{Name: "slow", Handler: func(ctx context.Context, _ int) (int, error) {
				close(slowStarted)
				<-ctx.Done()
				slowSawCancel.Store(true)
				return 0, ctx.Err()
			}},
			intTask("after", "slow"),
			workflow.Task[workflow.Inputs, int]{Name: "join", Dependencies: []string{"fails", "after"},
				Handler: func(context.Context, workflow.Inputs) (int, error) { return 0, nil }},
		})

		_, err := w.Run(t.Context(), 1)

		werr := asWorkflowError(t, err)
		assert.Equal(t, "fail-fast", werr.Workflow)
		assert.Equal(t, "fails", werr.Task)
		assert.Equal(t, 2, werr.Attempts)
		assert.NotEmpty(t, werr.RunID)
		require.ErrorIs(t, err, errBoom)
		assert.True(t, slowSawCancel.Load(), "the running task's context was not cancelled")
		rs, err := w.Inspect(t.Context(), werr.RunID)
		require.NoError(t, err)
		assert.Equal(t, workflow.StateFailed, rs.State)
		assert.Equal(t, workflow.StateFailed, taskState(t, rs, "fails"))
		assert.Equal(t, workflow.StateCancelled, taskState(t, rs, "slow"))
		assert.Equal(t, workflow.StateSkipped, taskState(t, rs, "after"))
		assert.Equal(t, workflow.StateSkipped, taskState(t, rs, "join"))
		assert.Equal(t, werr.Error(), rs.Error)
		requireCompleteEvents(t, rs)
	})
}

func TestFailedTaskDoesNotStopTasksThatAlreadySucceeded(t *testing.T) {
	w := newWorkflow[int, int](t, "partial", workflow.Tasks{
		intTask("ok"),
		workflow.Task[int, int]{Name: "bad", Dependencies: []string{"ok"}, Handler: fail},
	})

	_, err := w.Run(t.Context(), 1)

	require.ErrorIs(t, err, errBoom)
	rs, err := w.Status(t.Context())
	require.NoError(t, err)
	assert.Equal(t, workflow.StateSucceeded, taskState(t, rs, "ok"))
	assert.Equal(t, workflow.StateFailed, taskState(t, rs, "bad"))
	ts, _ := rs.Task("bad")
	assert.Equal(t, 1, ts.Attempts)
	assert.Contains(t, ts.Error, "boom")
}

func TestPanicIsRecoveredIntoErrPanicWithTheStack(t *testing.T) {
	for _, timeout := range []time.Duration{0, time.Minute} {
		t.Run(fmt.Sprintf("Timeout%v", timeout), func(t *testing.T) {
			w := newWorkflow[int, int](t, "panics", workflow.Tasks{
				workflow.Task[int, int]{Name: "explode", Timeout: timeout, Handler: func(context.Context, int) (int, error) {
					panic("kaboom")
				}},
			})

			var err error
			require.NotPanics(t, func() { _, err = w.Run(t.Context(), 1) })

			require.ErrorIs(t, err, workflow.ErrPanic)
			werr := asWorkflowError(t, err)
			assert.Equal(t, "explode", werr.Task)
			assert.Equal(t, "kaboom", werr.Details["panic"])
			stack, ok := werr.Details["stack"].(string)
			require.True(t, ok, "Details[stack] is a string")
			assert.Contains(t, stack, "TestPanicIsRecoveredIntoErrPanicWithTheStack")
			assert.Contains(t, err.Error(), "kaboom")
			ts, err := w.TaskStatus(t.Context(), "explode")
			require.NoError(t, err)
			assert.Equal(t, workflow.StateFailed, ts.State)
		})
	}
}

func TestTaskTimeoutFailsAHandlerThatIgnoresItsContext(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newBlocker()
		defer b.Release()
		w := newWorkflow[int, int](t, "ignores-ctx", workflow.Tasks{
			workflow.Task[int, int]{Name: "stuck", Timeout: 10 * time.Second, Handler: b.handle},
			intTask("next", "stuck"),
		})
		start := time.Now()

		_, err := w.Run(t.Context(), 1)

		assert.Equal(t, 10*time.Second, time.Since(start), "the attempt ends at its deadline")
		require.ErrorIs(t, err, workflow.ErrTimeout)
		werr := asWorkflowError(t, err)
		assert.Equal(t, "stuck", werr.Task)
		assert.Equal(t, 1, werr.Attempts)
		rs, err := w.Status(t.Context())
		require.NoError(t, err)
		assert.Equal(t, workflow.StateFailed, rs.State, "a task's own timeout fails the run")
		assert.Equal(t, workflow.StateTimedOut, taskState(t, rs, "stuck"))
		assert.Equal(t, workflow.StateSkipped, taskState(t, rs, "next"))
		requireCompleteEvents(t, rs)
	})
}

func TestTaskTimeoutIsTheDeadlineOfEachAttemptsContext(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var mu sync.Mutex // the first attempt's goroutine is abandoned at its deadline
		var deadlines []time.Duration
		start := time.Now()
		w := newWorkflow[int, int](t, "deadline", workflow.Tasks{
			workflow.Task[int, int]{Name: "a", Timeout: 5 * time.Second,
				Retry: workflow.RetryPolicy{Attempts: 2, Delay: time.Second},
				Handler: func(ctx context.Context, in int) (int, error) {
					d, ok := ctx.Deadline()
					if !ok {
						return 0, errors.New("no deadline")
					}
					mu.Lock()
					deadlines = append(deadlines, d.Sub(start))
					first := len(deadlines) == 1
					mu.Unlock()
					if first {
						<-ctx.Done() // honours the deadline
						return 0, ctx.Err()
					}
					return in, nil
				}},
		})

		_, err := w.Run(t.Context(), 1)

		require.NoError(t, err)
		synctest.Wait()
		mu.Lock()
		defer mu.Unlock()
		// First attempt 0s–5s, one second's wait, second attempt from 6s.
		assert.Equal(t, []time.Duration{5 * time.Second, 11 * time.Second}, deadlines)
	})
}

func TestTimedOutAttemptsAreRetried(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newBlocker()
		defer b.Release()
		var calls atomic.Int32
		w := newWorkflow[int, int](t, "retry-timeout", workflow.Tasks{
			workflow.Task[int, int]{Name: "flaky", Timeout: 10 * time.Second,
				Retry: workflow.RetryPolicy{Attempts: 3, Delay: time.Second},
				Handler: func(ctx context.Context, in int) (int, error) {
					if calls.Add(1) < 3 {
						return b.handle(ctx, in) // hangs past its deadline
					}
					return in * 2, nil
				}},
		})
		start := time.Now()

		out, err := w.Run(t.Context(), 4)

		require.NoError(t, err)
		assert.Equal(t, 8, out)
		assert.Equal(t, int32(3), calls.Load())
		assert.Equal(t, 22*time.Second, time.Since(start), "10s + 1s + 10s + 1s")
		ts, err := w.TaskStatus(t.Context(), "flaky")
		require.NoError(t, err)
		assert.Equal(t, workflow.StateSucceeded, ts.State)
		assert.Equal(t, 3, ts.Attempts)
	})
}

func TestRunTimeoutEndsTheRunAsTimedOut(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newBlocker()
		defer b.Release()
		w := newWorkflow[int, int](t, "run-timeout", workflow.Tasks{
			intTask("first"),
			workflow.Task[int, int]{Name: "stuck", Dependencies: []string{"first"}, Handler: b.handle},
			intTask("last", "stuck"),
		})
		start := time.Now()

		_, err := w.Run(t.Context(), 1, workflow.RunTimeout(time.Minute))

		assert.Equal(t, time.Minute, time.Since(start))
		require.ErrorIs(t, err, workflow.ErrTimeout)
		werr := asWorkflowError(t, err)
		assert.Empty(t, werr.Task, "the run itself timed out, not a task")
		rs, err := w.Status(t.Context())
		require.NoError(t, err)
		assert.Equal(t, workflow.StateTimedOut, rs.State)
		assert.Equal(t, workflow.StateSucceeded, taskState(t, rs, "first"))
		assert.Equal(t, workflow.StateCancelled, taskState(t, rs, "stuck"))
		assert.Equal(t, workflow.StateSkipped, taskState(t, rs, "last"))
		requireCompleteEvents(t, rs)
	})
}

func TestCallerCancelEndsTheRunAsCancelled(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		w := newWorkflow[int, int](t, "caller-cancel", workflow.Tasks{
			workflow.Task[int, int]{Name: "wait", Handler: waitForCtx},
			intTask("after", "wait"),
		})
		x, err := w.Start(ctx, 1)
		require.NoError(t, err)
		synctest.Wait()
		rs, err := w.Inspect(t.Context(), x.ID())
		require.NoError(t, err)
		require.Equal(t, workflow.StateRunning, rs.State)

		cancel()
		_, err = x.Wait(t.Context())

		require.ErrorIs(t, err, workflow.ErrCancelled)
		require.ErrorIs(t, err, context.Canceled)
		werr := asWorkflowError(t, err)
		assert.Equal(t, x.ID(), werr.RunID)
		assert.Empty(t, werr.Task)
		rs, err = w.Inspect(t.Context(), x.ID())
		require.NoError(t, err)
		assert.Equal(t, workflow.StateCancelled, rs.State)
		assert.Equal(t, workflow.StateCancelled, taskState(t, rs, "wait"))
		assert.Equal(t, workflow.StateSkipped, taskState(t, rs, "after"))
		requireCompleteEvents(t, rs)
	})
}

func TestCallersDeadlineEndsTheRunAsTimedOut(t *testing.T) {
	errBudget := errors.New("budget spent")
	tests := map[string]func(ctx context.Context) (context.Context, context.CancelFunc){
		"WithTimeout": func(ctx context.Context) (context.Context, context.CancelFunc) {
			return context.WithTimeout(ctx, time.Minute)
		},
		"WithDeadlineCause": func(ctx context.Context) (context.Context, context.CancelFunc) {
			return context.WithDeadlineCause(ctx, time.Now().Add(time.Minute), errBudget)
		},
	}
	for name, withDeadline := range tests {
		t.Run(name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				w := newWorkflow[int, int](t, "deadline", workflow.Tasks{
					workflow.Task[int, int]{Name: "wait", Handler: waitForCtx},
					intTask("after", "wait"),
				})
				ctx, cancel := withDeadline(t.Context())
				defer cancel()
				start := time.Now()

				_, err := w.Run(ctx, 1, workflow.WithRunID("r1"))

				assert.Equal(t, time.Minute, time.Since(start))
				require.ErrorIs(t, err, workflow.ErrTimeout)
				require.ErrorIs(t, err, context.DeadlineExceeded)
				assert.NotErrorIs(t, err, workflow.ErrCancelled)
				if name == "WithDeadlineCause" {
					require.ErrorIs(t, err, errBudget)
					assert.Equal(t, `workflow "deadline" run r1: timed out: budget spent`, err.Error())
				} else {
					assert.Equal(t, `workflow "deadline" run r1: timed out: context deadline exceeded`, err.Error())
				}
				assert.Empty(t, asWorkflowError(t, err).Task, "the run timed out, not a task")
				rs, err := w.Status(t.Context())
				require.NoError(t, err)
				assert.Equal(t, workflow.StateTimedOut, rs.State)
				assert.Equal(t, workflow.EventRunTimedOut, rs.Events[len(rs.Events)-1].Type)
				assert.Equal(t, workflow.StateCancelled, taskState(t, rs, "wait"))
				assert.Equal(t, workflow.StateSkipped, taskState(t, rs, "after"))
				requireCompleteEvents(t, rs)
			})
		})
	}
}

func TestRunWithAnEndedContextIsCancelledBeforeAnyTask(t *testing.T) {
	var calls atomic.Int32
	w := newWorkflow[int, int](t, "dead-ctx", workflow.Tasks{
		workflow.Task[int, int]{Name: "a", Handler: func(_ context.Context, in int) (int, error) {
			calls.Add(1)
			return in, nil
		}},
	})
	ctx, cancel := context.WithCancel(t.Context())
	cancel()

	_, err := w.Run(ctx, 1)

	require.ErrorIs(t, err, workflow.ErrCancelled)
	assert.Zero(t, calls.Load())
	rs, err := w.Status(t.Context())
	require.NoError(t, err)
	assert.Equal(t, workflow.StateCancelled, rs.State)
	assert.Equal(t, workflow.StateSkipped, taskState(t, rs, "a"))
	requireCompleteEvents(t, rs)
}

func TestRunEndsInExactlyOneOfFourStates(t *testing.T) {
	tests := []struct {
		name    string
		handler func(context.Context, int) (int, error)
		opts    []workflow.RunOption
		cancel  bool
		state   workflow.State
		event   string
		err     error
	}{
		{name: "Succeeded", handler: identity, state: workflow.StateSucceeded, event: workflow.EventRunSucceeded},
		{name: "Failed", handler: fail, state: workflow.StateFailed, event: workflow.EventRunFailed, err: errBoom},
		{name: "TimedOut", handler: waitForCtx, state: workflow.StateTimedOut, event: workflow.EventRunTimedOut, err: workflow.ErrTimeout,
			opts: []workflow.RunOption{workflow.RunTimeout(time.Second)}},
		{name: "Cancelled", handler: waitForCtx, cancel: true, state: workflow.StateCancelled, event: workflow.EventRunCancelled, err: workflow.ErrCancelled},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				w := newWorkflow[int, int](t, "states", workflow.Tasks{workflow.Task[int, int]{Name: "a", Handler: tt.handler}})
				ctx, cancel := context.WithCancel(t.Context())
				defer cancel()
				x, err := w.Start(ctx, 1, tt.opts...)
				require.NoError(t, err)
				if tt.cancel {
					synctest.Wait()
					cancel()
				}

				_, err = x.Wait(t.Context())

				if tt.err == nil {
					require.NoError(t, err)
				} else {
					require.ErrorIs(t, err, tt.err)
				}
				rs, err := w.Inspect(t.Context(), x.ID())
				require.NoError(t, err)
				assert.Equal(t, tt.state, rs.State)
				requireCompleteEvents(t, rs)
				assert.Equal(t, tt.event, rs.Events[len(rs.Events)-1].Type)
			})
		})
	}
}

func TestRunStatusShowsRunningAndPendingTasksWhileUnderWay(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newBlocker()
		defer b.Release()
		w := newWorkflow[int, int](t, "under-way", workflow.Tasks{
			intTask("done"),
			workflow.Task[int, int]{Name: "busy", Dependencies: []string{"done"}, Handler: b.handle},
			intTask("waiting", "busy"),
		})
		x, err := w.Start(t.Context(), 1)
		require.NoError(t, err)
		synctest.Wait()

		rs, err := w.Status(t.Context())

		require.NoError(t, err)
		assert.Equal(t, x.ID(), rs.RunID)
		assert.Equal(t, workflow.StateRunning, rs.State)
		assert.Equal(t, workflow.StateSucceeded, taskState(t, rs, "done"))
		assert.Equal(t, workflow.StateRunning, taskState(t, rs, "busy"))
		assert.Equal(t, workflow.StatePending, taskState(t, rs, "waiting"))
		assert.True(t, rs.EndedAt.IsZero())
		b.Release()
		_, err = x.Wait(t.Context())
		require.NoError(t, err)
	})
}

func TestRetryOnFailureReusesTheOutputsOfSucceededTasks(t *testing.T) {
	var firstCalls, flakyCalls atomic.Int32
	w := newWorkflow[int, int](t, "rerun", workflow.Tasks{
		workflow.Task[int, int]{Name: "first", Handler: func(_ context.Context, in int) (int, error) {
			firstCalls.Add(1)
			return in + 1, nil
		}},
		workflow.Task[int, int]{Name: "flaky", Dependencies: []string{"first"}, Handler: func(_ context.Context, in int) (int, error) {
			if flakyCalls.Add(1) == 1 {
				return 0, errBoom
			}
			return in * 10, nil
		}},
	})

	out, err := w.Run(t.Context(), 1, workflow.RetryOnFailure(2))

	require.NoError(t, err)
	assert.Equal(t, 20, out)
	assert.Equal(t, int32(1), firstCalls.Load(), "the succeeded task is not run again")
	assert.Equal(t, int32(2), flakyCalls.Load())
	runs, err := w.History(t.Context())
	require.NoError(t, err)
	require.Len(t, runs, 1, "the retry continues the same run")
	rs := runs[0]
	assert.Equal(t, workflow.StateSucceeded, rs.State)
	assert.Equal(t, 1, countEvents(rs, workflow.EventRunRetrying))
	requireCompleteEvents(t, rs)
}

func TestRetryOnFailureGivesUpAfterNMoreTries(t *testing.T) {
	var calls atomic.Int32
	w := newWorkflow[int, int](t, "rerun-fails", workflow.Tasks{
		workflow.Task[int, int]{Name: "bad", Handler: func(context.Context, int) (int, error) {
			calls.Add(1)
			return 0, errBoom
		}},
	})

	_, err := w.Run(t.Context(), 1, workflow.RetryOnFailure(2))

	require.ErrorIs(t, err, errBoom)
	assert.Equal(t, int32(3), calls.Load(), "the first try and two more")
	rs, err := w.Status(t.Context())
	require.NoError(t, err)
	assert.Equal(t, workflow.StateFailed, rs.State)
	assert.Equal(t, 2, countEvents(rs, workflow.EventRunRetrying))
	requireCompleteEvents(t, rs)
}

func TestRetryOnFailureDoesNotRetryATimedOutOrCancelledRun(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var calls atomic.Int32
		w := newWorkflow[int, int](t, "rerun-timeout", workflow.Tasks{
			workflow.Task[int, int]{Name: "slow", Handler: func(ctx context.Context, in int) (int, error) {
				calls.Add(1)
				return waitForCtx(ctx, in)
			}},
		})

		_, err := w.Run(t.Context(), 1, workflow.RunTimeout(time.Minute), workflow.RetryOnFailure(3))
		require.ErrorIs(t, err, workflow.ErrTimeout)
		assert.Equal(t, int32(1), calls.Load())

		ctx, cancel := context.WithCancel(t.Context())
		x, err := w.Start(ctx, 1, workflow.RetryOnFailure(3))
		require.NoError(t, err)
		synctest.Wait()
		cancel()
		_, err = x.Wait(t.Context())
		require.ErrorIs(t, err, workflow.ErrCancelled)
		assert.Equal(t, int32(2), calls.Load())
	})
}

// flakyPipeline is first → second → third, where second fails while
// failing is set. It counts each task's calls.
type flakyPipeline struct {
	w       *workflow.Workflow[int, int]
	failing atomic.Bool
	calls   map[string]*atomic.Int32
}

func newFlakyPipeline(t *testing.T, second func(ctx context.Context, in int) (int, error), opts ...workflow.Option) *flakyPipeline {
	t.Helper()
	p := &flakyPipeline{calls: map[string]*atomic.Int32{"first": {}, "second": {}, "third": {}}}
	p.failing.Store(true)
	count := func(name string, h func(context.Context, int) (int, error)) func(context.Context, int) (int, error) {
		return func(ctx context.Context, in int) (int, error) {
			p.calls[name].Add(1)
			return h(ctx, in)
		}
	}
	if second == nil {
		second = func(_ context.Context, in int) (int, error) {
			if p.failing.Load() {
				return 0, errBoom
			}
			return in * 10, nil
		}
	}
	p.w = newWorkflow[int, int](t, "pipeline", workflow.Tasks{
		workflow.Task[int, int]{Name: "first", Handler: count("first", func(_ context.Context, in int) (int, error) { return in + 1, nil })},
		workflow.Task[int, int]{Name: "second", Dependencies: []string{"first"}, Handler: count("second", second)},
		workflow.Task[int, int]{Name: "third", Dependencies: []string{"second"}, Handler: count("third", func(_ context.Context, in int) (int, error) { return in + 3, nil })},
	}, opts...)
	return p
}

func (p *flakyPipeline) count(task string) int32 { return p.calls[task].Load() }

func TestResumeContinuesAFailedRunUnderTheSameRunID(t *testing.T) {
	p := newFlakyPipeline(t, nil)
	_, err := p.w.Run(t.Context(), 1)
	require.ErrorIs(t, err, errBoom)
	id := asWorkflowError(t, err).RunID
	before, err := p.w.Inspect(t.Context(), id)
	require.NoError(t, err)
	require.Equal(t, workflow.StateFailed, before.State)

	p.failing.Store(false)
	out, err := p.w.Resume(t.Context(), id)

	require.NoError(t, err)
	assert.Equal(t, 23, out)
	assert.Equal(t, int32(1), p.count("first"), "a succeeded task is not run again")
	assert.Equal(t, int32(2), p.count("second"))
	assert.Equal(t, int32(1), p.count("third"))
	after, err := p.w.Inspect(t.Context(), id)
	require.NoError(t, err)
	assert.Equal(t, workflow.StateSucceeded, after.State)
	assert.Empty(t, after.Error)
	require.Greater(t, len(after.Events), len(before.Events))
	assert.Equal(t, before.Events, after.Events[:len(before.Events)], "events are appended, not replaced")
	assert.Equal(t, workflow.EventRunResumed, after.Events[len(before.Events)].Type)
	for _, name := range []string{"first", "second", "third"} {
		assert.Equal(t, workflow.StateSucceeded, taskState(t, after, name))
	}
	runs, err := p.w.History(t.Context())
	require.NoError(t, err)
	assert.Len(t, runs, 1)
	requireCompleteEvents(t, after)
}

func TestResumeContinuesATimedOutOrCancelledRun(t *testing.T) {
	cases := []struct {
		name     string
		opts     []workflow.RunOption
		stop     func(t *testing.T, w *workflow.Workflow[int, int], x *workflow.Execution[int])
		endEvent string
	}{
		{
			name: "TimedOut",
			opts: []workflow.RunOption{workflow.RunTimeout(time.Minute)},
			stop: func(t *testing.T, _ *workflow.Workflow[int, int], x *workflow.Execution[int]) {
				_, err := x.Wait(t.Context())
				require.ErrorIs(t, err, workflow.ErrTimeout)
			},
			endEvent: workflow.EventRunTimedOut,
		},
		{
			name: "Cancelled",
			stop: func(t *testing.T, w *workflow.Workflow[int, int], x *workflow.Execution[int]) {
				synctest.Wait()
				require.NoError(t, w.Cancel(t.Context(), x.ID()))
			},
			endEvent: workflow.EventRunCancelled,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				var p *flakyPipeline
				p = newFlakyPipeline(t, func(ctx context.Context, in int) (int, error) {
					if p.failing.Load() {
						return waitForCtx(ctx, in)
					}
					return in * 10, nil
				})
				x, err := p.w.Start(t.Context(), 1, tc.opts...)
				require.NoError(t, err)
				tc.stop(t, p.w, x)

				p.failing.Store(false)
				out, err := p.w.Resume(t.Context(), x.ID())

				require.NoError(t, err)
				assert.Equal(t, 23, out)
				assert.Equal(t, int32(1), p.count("first"))
				assert.Equal(t, int32(2), p.count("second"))
				rs, err := p.w.Inspect(t.Context(), x.ID())
				require.NoError(t, err)
				assert.Equal(t, workflow.StateSucceeded, rs.State)
				assert.Equal(t, 1, countEvents(rs, tc.endEvent))
				requireCompleteEvents(t, rs)
			})
		})
	}
}

func TestResumedRunShowsAsRunningWhileUnderWay(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newBlocker()
		defer b.Release()
		var p *flakyPipeline
		p = newFlakyPipeline(t, func(ctx context.Context, in int) (int, error) {
			if p.failing.Load() {
				return 0, errBoom
			}
			return b.handle(ctx, in)
		})
		_, err := p.w.Run(t.Context(), 1)
		id := asWorkflowError(t, err).RunID
		p.failing.Store(false)
		done := make(chan error)
		go func() {
			_, err := p.w.Resume(t.Context(), id)
			done <- err
		}()
		synctest.Wait()

		rs, err := p.w.Inspect(t.Context(), id)

		require.NoError(t, err)
		assert.Equal(t, workflow.StateRunning, rs.State)
		assert.True(t, rs.EndedAt.IsZero(), "a resumed run has not ended")
		assert.Empty(t, rs.Error)
		assert.Equal(t, workflow.StateSucceeded, taskState(t, rs, "first"))
		second, _ := rs.Task("second")
		assert.Equal(t, workflow.StateRunning, second.State)
		assert.Equal(t, 2, second.Attempts, "its first attempt failed before the resume")
		assert.Empty(t, second.Error)
		third, _ := rs.Task("third")
		assert.Equal(t, workflow.TaskStatus{Name: "third", State: workflow.StatePending}, third, "the skipped task is pending again, never having started")
		b.Release()
		require.NoError(t, <-done)
	})
}

func TestResumeThatFailsAgainCanBeResumedAgain(t *testing.T) {
	p := newFlakyPipeline(t, nil)
	_, err := p.w.Run(t.Context(), 1)
	id := asWorkflowError(t, err).RunID

	_, err = p.w.Resume(t.Context(), id)
	require.ErrorIs(t, err, errBoom)
	assert.Equal(t, id, asWorkflowError(t, err).RunID)
	p.failing.Store(false)
	out, err := p.w.Resume(t.Context(), id)

	require.NoError(t, err)
	assert.Equal(t, 23, out)
	assert.Equal(t, int32(1), p.count("first"))
	assert.Equal(t, int32(3), p.count("second"))
	rs, err := p.w.Inspect(t.Context(), id)
	require.NoError(t, err)
	assert.Equal(t, 2, countEvents(rs, workflow.EventRunResumed))
	requireCompleteEvents(t, rs)
}

func TestResumeWorksForEveryRunTheStoreKeeps(t *testing.T) {
	// The outputs of an unsuccessful run live in the store, as long as the
	// store keeps the run: there is no other bound.
	p := newFlakyPipeline(t, nil, workflow.WithStore(workflow.NewMemoryStore(workflow.MaxRuns(150))))
	_, err := p.w.Run(t.Context(), 1)
	oldest := asWorkflowError(t, err).RunID
	for range 149 {
		_, err := p.w.Run(t.Context(), 1)
		require.ErrorIs(t, err, errBoom)
	}
	p.failing.Store(false)
	_, err = p.w.Resume(t.Context(), oldest)
	require.NoError(t, err, "the oldest of 150 kept runs is resumable")

	p.failing.Store(true)
	_, err = p.w.Run(t.Context(), 1)
	dropped := asWorkflowError(t, err).RunID
	for range 150 {
		_, err := p.w.Run(t.Context(), 1)
		require.ErrorIs(t, err, errBoom)
	}
	_, err = p.w.Resume(t.Context(), dropped)
	require.ErrorIs(t, err, workflow.ErrNotFound, "a run the store dropped is gone")
}

func TestResumeOfAnUnknownRunWrapsErrNotFound(t *testing.T) {
	p := newFlakyPipeline(t, nil)

	_, errUnknown := p.w.Resume(t.Context(), "no-such-run")
	_, errEmpty := p.w.Resume(t.Context(), "")

	require.ErrorIs(t, errUnknown, workflow.ErrNotFound)
	require.ErrorIs(t, errEmpty, workflow.ErrNotFound)
	assert.Zero(t, p.count("first"))
}

func TestResumeOfASucceededRunIsNotResumable(t *testing.T) {
	p := newFlakyPipeline(t, nil)
	p.failing.Store(false)
	x, err := p.w.Start(t.Context(), 1)
	require.NoError(t, err)
	_, err = x.Wait(t.Context())
	require.NoError(t, err)

	_, err = p.w.Resume(t.Context(), x.ID())

	require.ErrorIs(t, err, workflow.ErrNotResumable)
	assert.Contains(t, err.Error(), "succeeded")
	assert.Equal(t, int32(1), p.count("first"))
}

func TestResumeOfARunningRunIsNotResumable(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newBlocker()
		defer b.Release()
		w := newWorkflow[int, int](t, "busy", workflow.Tasks{workflow.Task[int, int]{Name: "a", Handler: b.handle}})
		x, err := w.Start(t.Context(), 1)
		require.NoError(t, err)
		synctest.Wait()

		_, err = w.Resume(t.Context(), x.ID())

		require.ErrorIs(t, err, workflow.ErrNotResumable)
		assert.Contains(t, err.Error(), "running")
		b.Release()
		_, err = x.Wait(t.Context())
		require.NoError(t, err)
	})
}

func TestCancelStopsARunUnderWay(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWorkflow[int, int](t, "cancel", workflow.Tasks{
			workflow.Task[int, int]{Name: "wait", Handler: waitForCtx},
			intTask("after", "wait"),
		})
		x, err := w.Start(t.Context(), 1)
		require.NoError(t, err)
		synctest.Wait()

		err = w.Cancel(t.Context(), x.ID())

		require.NoError(t, err)
		rs, err := w.Inspect(t.Context(), x.ID())
		require.NoError(t, err)
		assert.Equal(t, workflow.StateCancelled, rs.State, "Cancel returns once the run has ended")
		assert.Equal(t, workflow.StateCancelled, taskState(t, rs, "wait"))
		assert.Equal(t, workflow.StateSkipped, taskState(t, rs, "after"))
		_, err = x.Wait(t.Context())
		require.ErrorIs(t, err, workflow.ErrCancelled)
		requireCompleteEvents(t, rs)
	})
}

func TestCancelOfAHandlerThatIgnoresItsContextEndsTheRunAtOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newBlocker()
		defer b.Release()
		w := newWorkflow[int, int](t, "cancel-stuck", workflow.Tasks{workflow.Task[int, int]{Name: "stuck", Handler: b.handle}})
		x, err := w.Start(t.Context(), 1)
		require.NoError(t, err)
		synctest.Wait()

		require.NoError(t, w.Cancel(t.Context(), x.ID()))

		_, err = x.Wait(t.Context())
		require.ErrorIs(t, err, workflow.ErrCancelled)
		rs, err := w.Status(t.Context())
		require.NoError(t, err)
		assert.Equal(t, workflow.StateCancelled, rs.State)
		assert.Equal(t, workflow.StateCancelled, taskState(t, rs, "stuck"))
	})
}

func TestCancelOfAnUnknownRunWrapsErrNotFound(t *testing.T) {
	w := newWorkflow[int, int](t, "cancel-unknown", workflow.Tasks{intTask("a")})
	_, err := w.Run(t.Context(), 1)
	require.NoError(t, err)

	require.ErrorIs(t, w.Cancel(t.Context(), "no-such-run"), workflow.ErrNotFound)
	require.ErrorIs(t, w.Cancel(t.Context(), ""), workflow.ErrNotFound)
}

func TestCancelOfAnEndedRunSaysItHasEnded(t *testing.T) {
	w := newWorkflow[int, int](t, "cancel-ended", workflow.Tasks{intTask("a")})
	x, err := w.Start(t.Context(), 1)
	require.NoError(t, err)
	_, err = x.Wait(t.Context())
	require.NoError(t, err)

	err = w.Cancel(t.Context(), x.ID())

	require.ErrorIs(t, err, workflow.ErrRunEnded)
	assert.NotErrorIs(t, err, workflow.ErrNotFound)
	rs, err := w.Inspect(t.Context(), x.ID())
	require.NoError(t, err)
	assert.Equal(t, workflow.StateSucceeded, rs.State, "Cancel of an ended run changes nothing")
}

func TestCancelOfARunUnderWayInAnotherWorkflowValueDoesNotSayItEnded(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newBlocker()
		defer b.Release()
		store := workflow.NewMemoryStore()
		tasks := workflow.Tasks{workflow.Task[int, int]{Name: "a", Handler: b.handle}}
		owner := newWorkflow[int, int](t, "shared-cancel", tasks, workflow.WithStore(store))
		other := newWorkflow[int, int](t, "shared-cancel", tasks, workflow.WithStore(store))
		x, err := owner.Start(t.Context(), 1)
		require.NoError(t, err)
		synctest.Wait()

		err = other.Cancel(t.Context(), x.ID())

		require.Error(t, err)
		assert.NotErrorIs(t, err, workflow.ErrRunEnded)
		assert.NotErrorIs(t, err, workflow.ErrNotFound)
		b.Release()
		_, err = x.Wait(t.Context())
		require.NoError(t, err, "the run went on")
	})
}

// order has validate tags, so runs check it.
type order struct {
	UserID string `validate:"required"`
	Qty    int    `validate:"min=1"`
}

func TestInvalidWorkflowInputFailsTheRunBeforeAnyTask(t *testing.T) {
	var calls atomic.Int32
	w := newWorkflow[order, int](t, "validate-in", workflow.Tasks{
		workflow.Task[order, int]{Name: "use", Handler: func(_ context.Context, o order) (int, error) {
			calls.Add(1)
			return o.Qty, nil
		}},
	})

	_, err := w.Run(t.Context(), order{})

	require.ErrorIs(t, err, workflow.ErrInvalidInput)
	werr := asWorkflowError(t, err)
	assert.Empty(t, werr.Task)
	assert.NotEmpty(t, werr.RunID)
	assert.Equal(t, map[string]string{"order.UserID": "required", "order.Qty": "min=1"}, werr.Details["fields"])
	assert.Zero(t, calls.Load())
	rs, err := w.Inspect(t.Context(), werr.RunID)
	require.NoError(t, err, "the rejected run is recorded")
	assert.Equal(t, workflow.StateFailed, rs.State)
	assert.Equal(t, workflow.StateSkipped, taskState(t, rs, "use"))
	requireCompleteEvents(t, rs)

	out, err := w.Run(t.Context(), order{UserID: "u", Qty: 2})
	require.NoError(t, err)
	assert.Equal(t, 2, out)
}

func TestResumeOfARunWithInvalidInputStillRunsNoTask(t *testing.T) {
	var calls atomic.Int32
	w := newWorkflow[order, int](t, "validate-resume", workflow.Tasks{
		workflow.Task[order, int]{Name: "use", Handler: func(_ context.Context, o order) (int, error) {
			calls.Add(1)
			return o.Qty, nil
		}},
	})
	_, err := w.Run(t.Context(), order{})
	id := asWorkflowError(t, err).RunID

	_, err = w.Resume(t.Context(), id)

	require.ErrorIs(t, err, workflow.ErrInvalidInput)
	assert.Zero(t, calls.Load(), "a task ran on input that failed validation")
	rs, err := w.Inspect(t.Context(), id)
	require.NoError(t, err)
	assert.Equal(t, workflow.StateFailed, rs.State)
	requireCompleteEvents(t, rs)
}

func TestInvalidTaskOutputFailsTheTask(t *testing.T) {
	w := newWorkflow[int, string](t, "validate-out", workflow.Tasks{
		workflow.Task[int, order]{Name: "make", Handler: func(_ context.Context, in int) (order, error) {
			return order{Qty: in}, nil
		}},
		workflow.Task[order, string]{Name: "use", Dependencies: []string{"make"},
			Handler: func(_ context.Context, o order) (string, error) { return o.UserID, nil }},
	})

	_, err := w.Run(t.Context(), 0)

	require.ErrorIs(t, err, workflow.ErrInvalidInput)
	werr := asWorkflowError(t, err)
	assert.Equal(t, "make", werr.Task)
	assert.Equal(t, map[string]string{"order.UserID": "required", "order.Qty": "min=1"}, werr.Details["fields"])
	rs, err := w.Status(t.Context())
	require.NoError(t, err)
	assert.Equal(t, workflow.StateFailed, taskState(t, rs, "make"))
	assert.Equal(t, workflow.StateSkipped, taskState(t, rs, "use"))
}

func TestInvalidWorkflowOutputFailsTheRun(t *testing.T) {
	w := newWorkflow[int, order](t, "validate-result", workflow.Tasks{
		workflow.Task[int, order]{Name: "make", Handler: func(_ context.Context, in int) (order, error) {
			return order{UserID: "u", Qty: in}, nil
		}},
	})

	_, err := w.Run(t.Context(), 0)
	require.ErrorIs(t, err, workflow.ErrInvalidInput)
	assert.Equal(t, map[string]string{"order.Qty": "min=1"}, asWorkflowError(t, err).Details["fields"])

	out, err := w.Run(t.Context(), 3)
	require.NoError(t, err)
	assert.Equal(t, order{UserID: "u", Qty: 3}, out)
}

// evenInput is checked by a rule that only a custom validator knows.
type evenInput struct {
	N int `validate:"even"`
}

func TestWithValidatorChecksWithTheGivenValidator(t *testing.T) {
	v := validator.New()
	require.NoError(t, v.RegisterValidation("even", func(fl validator.FieldLevel) bool { return fl.Field().Int()%2 == 0 }))
	w := newWorkflow[evenInput, int](t, "custom-validator", workflow.Tasks{
		workflow.Task[evenInput, int]{Name: "a", Handler: func(_ context.Context, in evenInput) (int, error) { return in.N, nil }},
	}, workflow.WithValidator(v))

	_, err := w.Run(t.Context(), evenInput{N: 3})
	require.ErrorIs(t, err, workflow.ErrInvalidInput)
	assert.Equal(t, map[string]string{"evenInput.N": "even"}, asWorkflowError(t, err).Details["fields"])

	out, err := w.Run(t.Context(), evenInput{N: 4})
	require.NoError(t, err)
	assert.Equal(t, 4, out)
}

// untagged has no validate tags, so runs never validate it.
type untagged struct{ N int }

func TestTypesWithoutTagsAreNotValidated(t *testing.T) {
	v := validator.New()
	var checked atomic.Int32
	v.RegisterStructValidation(func(sl validator.StructLevel) {
		checked.Add(1)
		sl.ReportError(sl.Current().Interface(), "N", "N", "never", "")
	}, untagged{})
	w := newWorkflow[untagged, untagged](t, "untagged", workflow.Tasks{
		workflow.Task[untagged, untagged]{Name: "a", Handler: func(_ context.Context, in untagged) (untagged, error) { return in, nil }},
	}, workflow.WithValidator(v))

	out, err := w.Run(t.Context(), untagged{N: 1})

	require.NoError(t, err)
	assert.Equal(t, untagged{N: 1}, out)
	assert.Zero(t, checked.Load())
}

// typo has a validate tag that names no rule.
type typo struct {
	Name string `validate:"requird"`
}

func TestAnUnknownValidateRuleIsAnErrorNotAPanic(t *testing.T) {
	w, err := workflow.New[int, typo]("typo", workflow.Tasks{
		workflow.Task[int, typo]{Name: "make", Handler: func(context.Context, int) (typo, error) { return typo{Name: "x"}, nil }},
	})
	if err != nil {
		// Rejecting the definition is fine too.
		require.ErrorIs(t, err, workflow.ErrInvalidWorkflow)
		return
	}

	require.NotPanics(t, func() { _, err = w.Run(t.Context(), 1) })
	require.ErrorIs(t, err, workflow.ErrInvalidWorkflow)
	assert.NotErrorIs(t, err, workflow.ErrInvalidInput, "the value is not at fault")
	assert.Equal(t, "make", asWorkflowError(t, err).Task)
	assert.Contains(t, err.Error(), "requird")
}

func TestReplaceTaskSwapsAHandlerForOneRun(t *testing.T) {
	w := newWorkflow[int, int](t, "replace", workflow.Tasks{
		workflow.Task[int, int]{Name: "fetch", Handler: func(_ context.Context, in int) (int, error) { return in + 1, nil }},
		workflow.Task[int, int]{Name: "save", Dependencies: []string{"fetch"}, Handler: func(_ context.Context, in int) (int, error) { return in * 2, nil }},
	})

	stubbed, err := w.Run(t.Context(), 1, workflow.ReplaceTask("fetch", func(context.Context, int) (int, error) { return 100, nil }))
	require.NoError(t, err)
	real, err := w.Run(t.Context(), 1)
	require.NoError(t, err)

	assert.Equal(t, 200, stubbed)
	assert.Equal(t, 4, real)
}

func TestReplaceTaskWithOtherTypesWrapsErrTypeMismatch(t *testing.T) {
	var calls atomic.Int32
	w := newWorkflow[int, int](t, "replace-types", workflow.Tasks{
		workflow.Task[int, int]{Name: "a", Handler: func(_ context.Context, in int) (int, error) {
			calls.Add(1)
			return in, nil
		}},
	})

	var err error
	require.NotPanics(t, func() {
		_, err = w.Run(t.Context(), 1, workflow.ReplaceTask("a", func(context.Context, string) (int, error) { return 0, nil }))
	})
	require.ErrorIs(t, err, workflow.ErrTypeMismatch)
	assert.Contains(t, err.Error(), "string")

	_, err = w.Run(t.Context(), 1, workflow.ReplaceTask("a", func(context.Context, int) (string, error) { return "", nil }))
	require.ErrorIs(t, err, workflow.ErrTypeMismatch)
	assert.Zero(t, calls.Load())
}

func TestReplaceTaskOfAnUnknownTaskWrapsErrNotFound(t *testing.T) {
	w := newWorkflow[int, int](t, "replace-unknown", workflow.Tasks{intTask("a")})

	_, err := w.Run(t.Context(), 1, workflow.ReplaceTask("ghost", identity))

	require.ErrorIs(t, err, workflow.ErrNotFound)
}

func TestBadRunOptionsAreErrors(t *testing.T) {
	w := newWorkflow[int, int](t, "run-options", workflow.Tasks{intTask("a")})
	tests := map[string]workflow.RunOption{
		"NegativeRunTimeout":     workflow.RunTimeout(-time.Second),
		"NegativeRetryOnFailure": workflow.RetryOnFailure(-1),
		"EmptyRunID":             workflow.WithRunID(""),
		"NilReplacement":         workflow.ReplaceTask[int, int]("a", nil),
	}
	for name, opt := range tests {
		t.Run(name, func(t *testing.T) {
			var err error
			require.NotPanics(t, func() { _, err = w.Run(t.Context(), 1, opt) })
			require.ErrorIs(t, err, workflow.ErrInvalidInput)
		})
	}
	runs, err := w.History(t.Context())
	require.NoError(t, err)
	assert.Empty(t, runs, "a run with bad options is never started")
}

func TestWithRunIDNamesTheRunAndIsUniquePerWorkflow(t *testing.T) {
	w := newWorkflow[int, int](t, "run-id", workflow.Tasks{intTask("a")})

	x, err := w.Start(t.Context(), 1, workflow.WithRunID("nightly-1"))
	require.NoError(t, err)
	assert.Equal(t, "nightly-1", x.ID())
	_, err = x.Wait(t.Context())
	require.NoError(t, err)
	rs, err := w.Inspect(t.Context(), "nightly-1")
	require.NoError(t, err)
	assert.Equal(t, workflow.StateSucceeded, rs.State)

	_, err = w.Run(t.Context(), 1, workflow.WithRunID("nightly-1"))
	require.Error(t, err)
	runs, err := w.History(t.Context())
	require.NoError(t, err)
	assert.Len(t, runs, 1)
}

func TestRunsGetDistinctIDs(t *testing.T) {
	w := newWorkflow[int, int](t, "ids", workflow.Tasks{intTask("a")})
	seen := map[string]bool{}
	for range 100 {
		x, err := w.Start(t.Context(), 1)
		require.NoError(t, err)
		require.NotEmpty(t, x.ID())
		require.False(t, seen[x.ID()], "run ID %q given twice", x.ID())
		seen[x.ID()] = true
		_, err = x.Wait(t.Context())
		require.NoError(t, err)
	}
}

func TestWaitReturnsWhenItsContextEndsAndTheRunGoesOn(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newBlocker()
		defer b.Release()
		w := newWorkflow[int, int](t, "wait", workflow.Tasks{workflow.Task[int, int]{Name: "a", Handler: b.handle}})
		x, err := w.Start(t.Context(), 7)
		require.NoError(t, err)
		ctx, cancel := context.WithTimeout(t.Context(), time.Second)
		defer cancel()

		_, err = x.Wait(ctx)

		require.ErrorIs(t, err, context.DeadlineExceeded)
		rs, err := w.Status(t.Context())
		require.NoError(t, err)
		assert.Equal(t, workflow.StateRunning, rs.State)
		b.Release()
		out, err := x.Wait(t.Context())
		require.NoError(t, err)
		assert.Equal(t, 7, out)
	})
}

func TestWaitGivesTheSameResultEveryTime(t *testing.T) {
	w := newWorkflow[int, int](t, "wait-twice", workflow.Tasks{
		workflow.Task[int, int]{Name: "a", Handler: func(_ context.Context, in int) (int, error) {
			if in < 0 {
				return 0, errBoom
			}
			return in, nil
		}},
	})
	good, err := w.Start(t.Context(), 3)
	require.NoError(t, err)
	bad, err := w.Start(t.Context(), -1)
	require.NoError(t, err)

	for range 2 {
		out, err := good.Wait(t.Context())
		require.NoError(t, err)
		assert.Equal(t, 3, out)
		_, err = bad.Wait(t.Context())
		require.ErrorIs(t, err, errBoom)
	}
}

func TestConcurrentRunsOfOneWorkflowDoNotDisturbEachOther(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const runs = 40
		w := newWorkflow[int, int](t, "concurrent", workflow.Tasks{
			workflow.Task[int, int]{Name: "a", Handler: func(_ context.Context, in int) (int, error) {
				time.Sleep(time.Duration(in%7) * time.Millisecond)
				if in%10 == 3 {
					return 0, fmt.Errorf("input %d: %w", in, errBoom)
				}
				return in * 2, nil
			}},
			workflow.Task[int, int]{Name: "b", Dependencies: []string{"a"}, Handler: func(_ context.Context, in int) (int, error) {
				time.Sleep(time.Duration(in%5) * time.Millisecond)
				return in + 1, nil
			}},
		})
		ids := make([]string, runs)
		outs := make([]int, runs)
		errs := make([]error, runs)
		var wg sync.WaitGroup
		for i := range runs {
			wg.Go(func() {
				x, err := w.Start(t.Context(), i)
				if err != nil {
					errs[i] = err
					return
				}
				ids[i] = x.ID()
				outs[i], errs[i] = x.Wait(t.Context())
			})
		}
		wg.Wait()

		seen := map[string]bool{}
		for i := range runs {
			require.NotEmpty(t, ids[i])
			require.False(t, seen[ids[i]])
			seen[ids[i]] = true
			rs, err := w.Inspect(t.Context(), ids[i])
			require.NoError(t, err)
			if i%10 == 3 {
				require.ErrorIs(t, errs[i], errBoom)
				assert.Contains(t, errs[i].Error(), fmt.Sprintf("input %d:", i))
				assert.Equal(t, ids[i], asWorkflowError(t, errs[i]).RunID)
				assert.Equal(t, workflow.StateFailed, rs.State)
			} else {
				require.NoError(t, errs[i])
				assert.Equal(t, i*2+1, outs[i])
				assert.Equal(t, workflow.StateSucceeded, rs.State)
			}
			requireCompleteEvents(t, rs)
		}
		all, err := w.History(t.Context())
		require.NoError(t, err)
		assert.Len(t, all, runs)
	})
}

func TestNilContextIsAnErrorNotAPanic(t *testing.T) {
	w := newWorkflow[int, int](t, "nil-ctx", workflow.Tasks{intTask("a")})
	x, err := w.Start(t.Context(), 1)
	require.NoError(t, err)
	_, err = x.Wait(t.Context())
	require.NoError(t, err)
	var nilCtx context.Context

	calls := map[string]func() error{
		"Run":        func() error { _, err := w.Run(nilCtx, 1); return err },
		"Start":      func() error { _, err := w.Start(nilCtx, 1); return err },
		"Resume":     func() error { _, err := w.Resume(nilCtx, x.ID()); return err },
		"Cancel":     func() error { return w.Cancel(nilCtx, x.ID()) },
		"Status":     func() error { _, err := w.Status(nilCtx); return err },
		"TaskStatus": func() error { _, err := w.TaskStatus(nilCtx, "a"); return err },
		"Inspect":    func() error { _, err := w.Inspect(nilCtx, x.ID()); return err },
		"History":    func() error { _, err := w.History(nilCtx); return err },
		"Wait":       func() error { _, err := x.Wait(nilCtx); return err },
	}
	for name, call := range calls {
		t.Run(name, func(t *testing.T) {
			var err error
			require.NotPanics(t, func() { err = call() })
			require.ErrorIs(t, err, workflow.ErrInvalidInput)
		})
	}
}

func TestZeroWorkflowIsAnErrorNotAPanic(t *testing.T) {
	for name, w := range map[string]*workflow.Workflow[int, int]{"Zero": {}, "Nil": nil} {
		t.Run(name, func(t *testing.T) {
			ctx := t.Context()
			calls := map[string]func() error{
				"Run":        func() error { _, err := w.Run(ctx, 1); return err },
				"Start":      func() error { _, err := w.Start(ctx, 1); return err },
				"Resume":     func() error { _, err := w.Resume(ctx, "x"); return err },
				"Cancel":     func() error { return w.Cancel(ctx, "x") },
				"Status":     func() error { _, err := w.Status(ctx); return err },
				"TaskStatus": func() error { _, err := w.TaskStatus(ctx, "a"); return err },
				"Inspect":    func() error { _, err := w.Inspect(ctx, "x"); return err },
				"History":    func() error { _, err := w.History(ctx); return err },
			}
			for method, call := range calls {
				var err error
				require.NotPanics(t, func() { err = call() }, method)
				require.ErrorIs(t, err, workflow.ErrInvalidWorkflow, method)
			}
			require.NotPanics(t, func() { assert.Empty(t, w.Name()) })
		})
	}
}

func TestNameReturnsTheWorkflowsName(t *testing.T) {
	w := newWorkflow[int, int](t, "named", workflow.Tasks{intTask("a")})

	assert.Equal(t, "named", w.Name())
}

func TestAHandlerCallingGoexitFailsItsTaskInsteadOfHangingTheRun(t *testing.T) {
	for _, timeout := range []time.Duration{0, time.Minute} {
		t.Run(fmt.Sprint("Timeout", timeout), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				after := 0
				wf := workflow.MustNew[int, int]("goexit", workflow.Tasks{
					workflow.Task[int, int]{Name: "exits", Timeout: timeout, Retry: workflow.RetryPolicy{Attempts: 3},
						Handler: func(ctx context.Context, n int) (int, error) {
							runtime.Goexit()
							return n, nil
						}},
					workflow.Task[int, int]{Name: "after", Dependencies: []string{"exits"},
						Handler: func(ctx context.Context, n int) (int, error) { after++; return n, nil }},
				})
				_, err := wf.Run(t.Context(), 1)
				require.ErrorIs(t, err, workflow.ErrPanic)
				var werr *workflow.WorkflowError
				require.ErrorAs(t, err, &werr)
				require.Equal(t, "exits", werr.Task)
				require.Equal(t, 1, werr.Attempts, "Goexit is not retried")
				require.Equal(t, 0, after)
				st, err := wf.TaskStatus(t.Context(), "after")
				require.NoError(t, err)
				require.Equal(t, workflow.StateSkipped, st.State)
			})
		})
	}
}

// sleepCountingPeak returns a handler that sleeps one second and records in
// peak the most handlers that were ever running at once.
func sleepCountingPeak(peak *atomic.Int32) func(context.Context, int) (int, error) {
	var running atomic.Int32
	return func(_ context.Context, in int) (int, error) {
		now := running.Add(1)
		for {
			p := peak.Load()
			if now <= p || peak.CompareAndSwap(p, now) {
				break
			}
		}
		time.Sleep(time.Second)
		running.Add(-1)
		return in, nil
	}
}
