package workflow_test

import (
	"bytes"
	"context"
	"log/slog"
	"runtime"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/b3b01171/workflow"
)

// Callbacks — hooks, the logger's handler — may panic, call runtime.Goexit
// or wait for their own run: the run ends exactly once, with one terminal
// event last, Wait and Cancel return, and the process does not crash. The
// tests run in a synctest bubble, so that a run that never ends is a
// deadlock the test reports, not a hang.

// misbehaviours are what a callback may do instead of returning.
var misbehaviours = map[string]func(){
	"panics":  func() { panic("callback bug") },
	"Goexits": runtime.Goexit,
}

func TestAHookThatPanicsOrGoexitsOnAnyEventLeavesTheRunIntact(t *testing.T) {
	events := []string{
		"run_started", "task_started:a", "task_succeeded:a", "task_started:b",
		"task_succeeded:b", "run_succeeded",
	}
	for how, misbehave := range misbehaviours {
		for _, on := range events {
			t.Run(how+" on "+on, func(t *testing.T) {
				synctest.Test(t, func(t *testing.T) {
					w := newWorkflow[int, int](t, "hooked", workflow.Tasks{intTask("a"), intTask("b", "a")},
						workflow.WithHook(func(ev workflow.Event) {
							if eventTypes([]workflow.Event{ev})[0] == on {
								misbehave()
							}
						}),
						workflow.WithLogger(slog.New(slog.DiscardHandler)))
					out, err := w.Run(t.Context(), 7)
					require.NoError(t, err)
					assert.Equal(t, 7, out)
					rs, err := w.Status(t.Context())
					require.NoError(t, err)
					requireCompleteEvents(t, rs)
					assert.Equal(t, []string{
						"run_started", "task_started:a", "task_succeeded:a", "task_started:b",
						"task_succeeded:b", "run_succeeded",
					}, eventTypes(rs.Events))
				})
			})
		}
	}
}

func TestAHookThatGoexitsOnRunCancelledLetsCancelAndWaitReturn(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWorkflow[int, int](t, "hooked", workflow.Tasks{
			workflow.Task[int, int]{Name: "a", Handler: func(ctx context.Context, in int) (int, error) {
				<-ctx.Done()
				return 0, ctx.Err()
			}},
		}, workflow.WithHook(func(ev workflow.Event) {
			if ev.Type == workflow.EventRunCancelled {
				runtime.Goexit()
			}
		}))
		x, err := w.Start(t.Context(), 1)
		require.NoError(t, err)
		synctest.Wait()
		require.NoError(t, w.Cancel(t.Context(), x.ID()))
		_, err = x.Wait(t.Context())
		require.ErrorIs(t, err, workflow.ErrCancelled)
		rs, err := w.Inspect(t.Context(), x.ID())
		require.NoError(t, err)
		requireCompleteEvents(t, rs)
		assert.Equal(t, workflow.StateCancelled, rs.State)
	})
}

func TestAHookMayCancelOrWaitForItsOwnRun(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var w *workflow.Workflow[int, int]
		var mu sync.Mutex
		var cancelErr, waitErr error
		waitOut := -1
		w = newWorkflow[int, int](t, "self", workflow.Tasks{
			intTask("a"),
			workflow.Task[int, int]{Name: "b", Dependencies: []string{"a"}, Handler: func(ctx context.Context, in int) (int, error) {
				<-ctx.Done()
				return 0, ctx.Err()
			}},
		}, workflow.WithHook(func(ev workflow.Event) {
			if ev.Type == workflow.EventTaskStarted && ev.Task == "b" {
				err := w.Cancel(context.Background(), ev.RunID)
				mu.Lock()
				cancelErr = err
				mu.Unlock()
			}
		}))
		_, err := w.Run(t.Context(), 1)
		require.ErrorIs(t, err, workflow.ErrCancelled)
		mu.Lock()
		require.NoError(t, cancelErr, "Cancel from a hook of the run")
		mu.Unlock()

		var x *workflow.Execution[int]
		started, hookDone := make(chan struct{}), make(chan struct{})
		w = newWorkflow[int, int](t, "self-wait", workflow.Tasks{intTask("a")},
			workflow.WithHook(func(ev workflow.Event) {
				if ev.Type == workflow.EventRunSucceeded {
					defer close(hookDone)
					<-started
					out, err := x.Wait(context.Background())
					mu.Lock()
					waitOut, waitErr = out, err
					mu.Unlock()
				}
			}))
		x, err = w.Start(t.Context(), 5)
		close(started)
		require.NoError(t, err)
		out, err := x.Wait(t.Context())
		require.NoError(t, err)
		assert.Equal(t, 5, out)
		// The caller's Wait may return before the hook's: the hook runs on
		// the run's delivering goroutine, after the run ended.
		<-hookDone
		mu.Lock()
		defer mu.Unlock()
		require.NoError(t, waitErr, "Wait from a hook of the run")
		assert.Equal(t, 5, waitOut)
	})
}

// handlerFunc is a slog.Handler made of one function.
type handlerFunc func(context.Context, slog.Record) error

func (h handlerFunc) Enabled(context.Context, slog.Level) bool        { return true }
func (h handlerFunc) Handle(ctx context.Context, r slog.Record) error { return h(ctx, r) }
func (h handlerFunc) WithAttrs([]slog.Attr) slog.Handler              { return h }
func (h handlerFunc) WithGroup(string) slog.Handler                   { return h }

func TestALogHandlerThatPanicsOrGoexitsLosesItsLineAndNothingElse(t *testing.T) {
	for how, misbehave := range misbehaviours {
		t.Run(how, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				logger := slog.New(handlerFunc(func(context.Context, slog.Record) error {
					misbehave()
					return nil
				}))
				w := newWorkflow[int, int](t, "logged", workflow.Tasks{
					intTask("a"),
					workflow.Task[int, int]{Name: "b", Dependencies: []string{"a"}, Handler: fail},
				}, workflow.WithLogger(logger))
				_, err := w.Run(t.Context(), 1)
				require.ErrorIs(t, err, errBoom)
				rs, err := w.Status(t.Context())
				require.NoError(t, err)
				requireCompleteEvents(t, rs)
				assert.Equal(t, workflow.StateFailed, rs.State)
			})
		})
	}
}

func TestAPanickingHookIsLoggedToTheDefaultLoggerWithoutOne(t *testing.T) {
	var buf bytes.Buffer
	var mu sync.Mutex
	prev := slog.Default()
	slog.SetDefault(slog.New(handlerFunc(func(_ context.Context, r slog.Record) error {
		mu.Lock()
		defer mu.Unlock()
		buf.WriteString(r.Message + "\n")
		return nil
	})))
	defer slog.SetDefault(prev)

	w := newWorkflow[int, int](t, "hook-panics", workflow.Tasks{intTask("a")},
		workflow.WithHook(func(workflow.Event) { panic("hook bug") }))
	_, err := w.Run(t.Context(), 1)
	require.NoError(t, err)
	mu.Lock()
	defer mu.Unlock()
	assert.Contains(t, buf.String(), "workflow: a hook panicked")
}

func TestAScheduleInputThatGoexitsFailsItsRunAndStopStillReturns(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := schedFlow(t, "goexit-input", workflow.Schedule{Cron: "@every 1h"}, schedNoop,
			workflow.WithLogger(slog.New(slog.DiscardHandler)),
			workflow.WithScheduleInput(func(context.Context, time.Time) (nothing, error) {
				runtime.Goexit()
				return nothing{}, nil
			}))
		s := workflow.NewScheduler()
		require.NoError(t, s.Register(w))
		id, err := s.Trigger(t.Context(), "goexit-input")
		require.ErrorIs(t, err, workflow.ErrPanic)
		require.NotEmpty(t, id, "the failed run is recorded")
		require.NoError(t, s.Stop(t.Context()))
		rs, err := w.Inspect(t.Context(), id)
		require.NoError(t, err)
		assert.Equal(t, workflow.StateFailed, rs.State)
	})
}

func TestStopReturnsWhenItsContextEndsWhateverAScheduleInputDoes(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		never := make(chan struct{})
		defer close(never)
		w := schedFlow(t, "deaf-input", workflow.Schedule{Cron: "@every 1h"}, schedNoop,
			workflow.WithLogger(slog.New(slog.DiscardHandler)),
			workflow.WithScheduleInput(func(context.Context, time.Time) (nothing, error) {
				<-never // ignores its context
				return nothing{}, nil
			}))
		s := schedStarted(t, nil, w)
		time.Sleep(time.Hour + time.Second) // the fire is waiting for its input
		synctest.Wait()

		ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
		defer cancel()
		start := time.Now()
		err := s.Stop(ctx)
		require.ErrorIs(t, err, context.DeadlineExceeded)
		assert.Equal(t, time.Minute, time.Since(start), "Stop returns when its context ends")
		runs, err := w.History(t.Context())
		require.NoError(t, err)
		require.Len(t, runs, 1)
		assert.Equal(t, workflow.StateFailed, runs[0].State, "the run whose input never came fails")
	})
}

func TestAHookThatGoexitsOnAScheduleSkippedFireKeepsTheScheduleFiring(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := schedFlow(t, "skipper", workflow.Schedule{Cron: "@every 1s", Overlap: workflow.OverlapSkip},
			schedSlow(1500*time.Millisecond),
			workflow.WithHook(func(ev workflow.Event) {
				if ev.Type == workflow.EventScheduleSkipped {
					runtime.Goexit()
				}
			}),
			workflow.WithLogger(slog.New(slog.DiscardHandler)))
		s := schedStarted(t, nil, w)
		time.Sleep(60*time.Second + 100*time.Millisecond)
		synctest.Wait()
		require.NoError(t, s.Stop(t.Context()))
		runs, err := w.History(t.Context())
		require.NoError(t, err)
		// Fires at 1s, 3s, 5s, …, 59s start runs; those in between are skipped.
		assert.Len(t, runs, 30)
	})
}

func TestAWaitWhileAHookRunsStillWaitsForEveryHook(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		entered, release := make(chan struct{}), make(chan struct{})
		var mu sync.Mutex
		var seen []string
		w := newWorkflow[int, int](t, "observed", workflow.Tasks{intTask("a")},
			workflow.WithHook(func(ev workflow.Event) {
				if ev.Type == workflow.EventTaskStarted {
					close(entered)
					<-release // the run ends while this hook blocks
				}
				mu.Lock()
				seen = append(seen, ev.Type)
				mu.Unlock()
			}))
		x, err := w.Start(t.Context(), 1)
		require.NoError(t, err)
		<-entered
		returned := make(chan struct{})
		go func() {
			defer close(returned)
			_, err := x.Wait(t.Context()) // another goroutine than the hook's
			assert.NoError(t, err)
		}()
		synctest.Wait()
		select {
		case <-returned:
			t.Fatal("Wait returned before the hooks were given the run's end")
		default:
		}
		close(release)
		<-returned
		mu.Lock()
		defer mu.Unlock()
		assert.Equal(t, workflow.EventRunSucceeded, seen[len(seen)-1], "the hook saw the end before Wait returned")
	})
}
