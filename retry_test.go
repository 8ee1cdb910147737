package workflow_test

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/b3b01171/workflow"
)

// attemptLog is a handler that records when each attempt starts, measured
// from the log's creation, and fails every attempt before succeedOn (0:
// every attempt fails).
type attemptLog struct {
	start     time.Time
	succeedOn int
	err       error
	at        []time.Duration
}

func newAttemptLog(succeedOn int) *attemptLog {
	return &attemptLog{start: time.Now(), succeedOn: succeedOn, err: errBoom}
}

func (l *attemptLog) handle(_ context.Context, in int) (int, error) {
	l.at = append(l.at, time.Since(l.start))
	if len(l.at) == l.succeedOn {
		return in, nil
	}
	return 0, l.err
}

// waits returns the pauses between attempts.
func (l *attemptLog) waits() []time.Duration {
	var w []time.Duration
	for i := 1; i < len(l.at); i++ {
		w = append(w, l.at[i]-l.at[i-1])
	}
	return w
}

func retryWorkflow(t *testing.T, policy workflow.RetryPolicy, h func(context.Context, int) (int, error)) *workflow.Workflow[int, int] {
	t.Helper()
	return newWorkflow[int, int](t, "retry", workflow.Tasks{
		workflow.Task[int, int]{Name: "flaky", Retry: policy, Handler: h},
	})
}

func TestRetryWaitsFollowBackoff(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		log := newAttemptLog(3)
		w := retryWorkflow(t, workflow.RetryPolicy{Attempts: 3, Delay: time.Minute, Backoff: 2}, log.handle)

		out, err := w.Run(t.Context(), 9)

		require.NoError(t, err)
		assert.Equal(t, 9, out)
		assert.Equal(t, []time.Duration{0, time.Minute, 3 * time.Minute}, log.at)
		assert.Equal(t, 3*time.Minute, time.Since(log.start), "one minute, then two")
	})
}

func TestRetryWaitsStayConstantWhenBackoffIsZeroOrOne(t *testing.T) {
	for _, backoff := range []float64{0, 1} {
		t.Run(fmt.Sprintf("Backoff%v", backoff), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				log := newAttemptLog(0)
				w := retryWorkflow(t, workflow.RetryPolicy{Attempts: 4, Delay: 30 * time.Second, Backoff: backoff}, log.handle)

				_, err := w.Run(t.Context(), 1)

				require.ErrorIs(t, err, errBoom)
				assert.Equal(t, []time.Duration{30 * time.Second, 30 * time.Second, 30 * time.Second}, log.waits())
			})
		})
	}
}

func TestRetryWaitsAreCappedByMaxDelay(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		log := newAttemptLog(0)
		w := retryWorkflow(t, workflow.RetryPolicy{Attempts: 5, Delay: time.Minute, Backoff: 3, MaxDelay: 5 * time.Minute}, log.handle)

		_, err := w.Run(t.Context(), 1)

		require.ErrorIs(t, err, errBoom)
		// 1, 3, 9 → 5, 27 → 5 minutes.
		assert.Equal(t, []time.Duration{time.Minute, 3 * time.Minute, 5 * time.Minute, 5 * time.Minute}, log.waits())
	})
}

func TestRetryJitterKeepsEachWaitWithinItsBounds(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		log := newAttemptLog(0)
		w := retryWorkflow(t, workflow.RetryPolicy{Attempts: 41, Delay: time.Minute, Jitter: 0.5}, log.handle)

		_, err := w.Run(t.Context(), 1)

		require.ErrorIs(t, err, errBoom)
		waits := log.waits()
		require.Len(t, waits, 40)
		distinct := map[time.Duration]bool{}
		for _, d := range waits {
			assert.GreaterOrEqual(t, d, 30*time.Second)
			assert.LessOrEqual(t, d, 90*time.Second)
			distinct[d] = true
		}
		assert.Greater(t, len(distinct), 1, "jitter randomises the waits: %v", waits)
	})
}

func TestRetryJitterFollowsBackoff(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		log := newAttemptLog(0)
		w := retryWorkflow(t, workflow.RetryPolicy{Attempts: 4, Delay: time.Minute, Backoff: 10, Jitter: 0.1}, log.handle)

		_, err := w.Run(t.Context(), 1)

		require.ErrorIs(t, err, errBoom)
		waits := log.waits()
		require.Len(t, waits, 3)
		for i, base := range []time.Duration{time.Minute, 10 * time.Minute, 100 * time.Minute} {
			assert.InDelta(t, float64(base), float64(waits[i]), 0.1*float64(base), "wait %d", i+1)
		}
	})
}

func TestRetryJitterNeverExceedsMaxDelay(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		log := newAttemptLog(0)
		w := retryWorkflow(t, workflow.RetryPolicy{Attempts: 30, Delay: time.Minute, Jitter: 1, MaxDelay: time.Minute}, log.handle)

		_, err := w.Run(t.Context(), 1)

		require.ErrorIs(t, err, errBoom)
		for _, d := range log.waits() {
			assert.GreaterOrEqual(t, d, time.Duration(0))
			assert.LessOrEqual(t, d, time.Minute)
		}
	})
}

func TestZeroRetryPolicyMakesOneAttempt(t *testing.T) {
	for _, attempts := range []int{0, 1} {
		t.Run(fmt.Sprintf("Attempts%d", attempts), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				log := newAttemptLog(0)
				w := retryWorkflow(t, workflow.RetryPolicy{Attempts: attempts, Delay: time.Minute}, log.handle)

				_, err := w.Run(t.Context(), 1)

				require.ErrorIs(t, err, errBoom)
				assert.Len(t, log.at, 1)
				assert.Equal(t, 1, asWorkflowError(t, err).Attempts)
				assert.Zero(t, time.Since(log.start))
			})
		})
	}
}

func TestRetryStopsAtTheFirstSuccess(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		log := newAttemptLog(2)
		w := retryWorkflow(t, workflow.RetryPolicy{Attempts: 5, Delay: time.Second}, log.handle)

		out, err := w.Run(t.Context(), 3)

		require.NoError(t, err)
		assert.Equal(t, 3, out)
		assert.Len(t, log.at, 2)
		ts, err := w.TaskStatus(t.Context(), "flaky")
		require.NoError(t, err)
		assert.Equal(t, workflow.StateSucceeded, ts.State)
		assert.Equal(t, 2, ts.Attempts)
		assert.Empty(t, ts.Error)
	})
}

func TestRetryMakesEveryAttemptAndReportsTheLastCause(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		errFirst, errLast := errors.New("first cause"), errors.New("last cause")
		var n atomic.Int32
		w := retryWorkflow(t, workflow.RetryPolicy{Attempts: 3, Delay: time.Second}, func(context.Context, int) (int, error) {
			if n.Add(1) < 3 {
				return 0, errFirst
			}
			return 0, errLast
		})

		_, err := w.Run(t.Context(), 1)

		require.ErrorIs(t, err, errLast)
		assert.NotErrorIs(t, err, errFirst)
		werr := asWorkflowError(t, err)
		assert.Equal(t, "flaky", werr.Task)
		assert.Equal(t, 3, werr.Attempts)
		ts, err := w.TaskStatus(t.Context(), "flaky")
		require.NoError(t, err)
		assert.Equal(t, 3, ts.Attempts)
		assert.Equal(t, workflow.StateFailed, ts.State)
		assert.Contains(t, ts.Error, "last cause")
	})
}

func TestRetryIfDecidesWhichErrorsAreRetried(t *testing.T) {
	errTransient, errFatal := errors.New("transient"), errors.New("fatal")
	retryIf := func(err error) bool { return errors.Is(err, errTransient) }
	tests := []struct {
		name  string
		err   error
		calls int32
	}{
		{"Retried", errTransient, 3},
		{"NotRetried", errFatal, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var calls atomic.Int32
			w := retryWorkflow(t, workflow.RetryPolicy{Attempts: 3, RetryIf: retryIf}, func(context.Context, int) (int, error) {
				calls.Add(1)
				return 0, fmt.Errorf("wrapped: %w", tt.err)
			})

			_, err := w.Run(t.Context(), 1)

			require.ErrorIs(t, err, tt.err)
			assert.Equal(t, tt.calls, calls.Load())
		})
	}
}

// codeError is an error type that tasks return, to check errors.As.
type codeError struct{ code int }

func (e *codeError) Error() string { return fmt.Sprintf("code %d", e.code) }

func TestPermanentErrorsAreNeverRetried(t *testing.T) {
	var calls, retryIfCalls atomic.Int32
	w := retryWorkflow(t, workflow.RetryPolicy{
		Attempts: 5,
		RetryIf:  func(error) bool { retryIfCalls.Add(1); return true },
	}, func(context.Context, int) (int, error) {
		calls.Add(1)
		return 0, workflow.Permanent(fmt.Errorf("bad request: %w", &codeError{code: 400}))
	})

	_, err := w.Run(t.Context(), 1)

	require.Error(t, err)
	assert.Equal(t, int32(1), calls.Load())
	assert.Zero(t, retryIfCalls.Load(), "RetryIf is not asked about a Permanent error")
	var ce *codeError
	require.ErrorAs(t, err, &ce, "errors.As reaches the error inside Permanent")
	assert.Equal(t, 400, ce.code)
	assert.Equal(t, 1, asWorkflowError(t, err).Attempts)
}

func TestCancellationIsNeverRetried(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var calls atomic.Int32
		w := retryWorkflow(t, workflow.RetryPolicy{Attempts: 5}, func(ctx context.Context, in int) (int, error) {
			calls.Add(1)
			return waitForCtx(ctx, in)
		})
		ctx, cancel := context.WithCancel(t.Context())
		x, err := w.Start(ctx, 1)
		require.NoError(t, err)
		synctest.Wait()

		cancel()
		_, err = x.Wait(t.Context())
		synctest.Wait()

		require.ErrorIs(t, err, workflow.ErrCancelled)
		assert.Equal(t, int32(1), calls.Load())
	})
}

func TestTaskCancelledByAnotherTasksFailureIsNotRetried(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var calls atomic.Int32
		w := newWorkflow[int, int](t, "sibling", workflow.Tasks{
			workflow.Task[int, int]{Name: "waits", Retry: workflow.RetryPolicy{Attempts: 5}, Handler: func(ctx context.Context, in int) (int, error) {
				calls.Add(1)
				return waitForCtx(ctx, in)
			}},
			workflow.Task[int, int]{Name: "fails", Handler: func(context.Context, int) (int, error) {
				time.Sleep(time.Second)
				return 0, errBoom
			}},
		}, workflow.WithOutput("waits"))

		_, err := w.Run(t.Context(), 1)

		require.ErrorIs(t, err, errBoom)
		assert.Equal(t, "fails", asWorkflowError(t, err).Task)
		assert.Equal(t, int32(1), calls.Load())
		rs, err := w.Status(t.Context())
		require.NoError(t, err)
		assert.Equal(t, workflow.StateCancelled, taskState(t, rs, "waits"))
	})
}

func TestRetryWaitEndsEarlyWhenTheCallerCancels(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		log := newAttemptLog(0)
		w := retryWorkflow(t, workflow.RetryPolicy{Attempts: 3, Delay: time.Hour}, log.handle)
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		time.AfterFunc(time.Minute, cancel)

		_, err := w.Run(ctx, 1)

		require.ErrorIs(t, err, workflow.ErrCancelled)
		assert.Equal(t, time.Minute, time.Since(log.start), "the run ends in the wait, not after it")
		assert.Len(t, log.at, 1)
		rs, err := w.Status(t.Context())
		require.NoError(t, err)
		assert.Equal(t, workflow.StateCancelled, rs.State)
		assert.Equal(t, workflow.StateCancelled, taskState(t, rs, "flaky"))
		requireCompleteEvents(t, rs)
	})
}

func TestRetryWaitEndsEarlyAtTheRunTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		log := newAttemptLog(0)
		w := retryWorkflow(t, workflow.RetryPolicy{Attempts: 3, Delay: time.Hour}, log.handle)

		_, err := w.Run(t.Context(), 1, workflow.RunTimeout(10*time.Minute))

		require.ErrorIs(t, err, workflow.ErrTimeout)
		assert.Equal(t, 10*time.Minute, time.Since(log.start))
		rs, err := w.Status(t.Context())
		require.NoError(t, err)
		assert.Equal(t, workflow.StateTimedOut, rs.State)
		requireCompleteEvents(t, rs)
	})
}

func TestRetryWaitEndsEarlyWhenAnotherTaskFails(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		log := newAttemptLog(0)
		w := newWorkflow[int, int](t, "sibling-fails", workflow.Tasks{
			workflow.Task[int, int]{Name: "flaky", Retry: workflow.RetryPolicy{Attempts: 3, Delay: time.Hour}, Handler: log.handle},
			workflow.Task[int, int]{Name: "fails", Handler: func(context.Context, int) (int, error) {
				time.Sleep(time.Minute)
				return 0, errors.New("other failure")
			}},
		}, workflow.WithOutput("flaky"))

		_, err := w.Run(t.Context(), 1)

		require.Error(t, err)
		assert.Equal(t, "fails", asWorkflowError(t, err).Task)
		assert.Equal(t, time.Minute, time.Since(log.start))
		assert.Len(t, log.at, 1)
		rs, err := w.Status(t.Context())
		require.NoError(t, err)
		assert.Equal(t, workflow.StateCancelled, taskState(t, rs, "flaky"))
		requireCompleteEvents(t, rs)
	})
}

func TestRetriesAreRecordedAsEvents(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		log := newAttemptLog(3)
		w := retryWorkflow(t, workflow.RetryPolicy{Attempts: 3, Delay: time.Second}, log.handle)

		_, err := w.Run(t.Context(), 1)

		require.NoError(t, err)
		rs, err := w.Status(t.Context())
		require.NoError(t, err)
		var types []string
		for _, ev := range rs.Events {
			if ev.Task == "flaky" {
				types = append(types, fmt.Sprintf("%s#%d", ev.Type, ev.Attempt))
			}
		}
		assert.Equal(t, []string{
			"task_started#1", "task_retrying#1", "task_started#2", "task_retrying#2", "task_started#3", "task_succeeded#3",
		}, types)
		for _, ev := range rs.Events {
			if ev.Type == workflow.EventTaskRetrying {
				assert.Contains(t, ev.Error, "boom")
			}
		}
	})
}

func TestPermanentOfNilIsNil(t *testing.T) {
	assert.NoError(t, workflow.Permanent(nil))
}

func TestPermanentKeepsTheMessageAndTheCause(t *testing.T) {
	err := workflow.Permanent(errBoom)

	assert.Equal(t, "boom", err.Error())
	require.ErrorIs(t, err, errBoom)
}
