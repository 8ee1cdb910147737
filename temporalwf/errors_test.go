package temporalwf_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/worker"

	"github.com/b3b01171/workflow"
	"github.com/b3b01171/workflow/temporalwf"
)

// oneTask is a workflow of one task, h, with policy p and timeout d.
func oneTask(name string, p workflow.RetryPolicy, d time.Duration, h func(context.Context, int) (int, error)) *workflow.Workflow[int, int] {
	return workflow.MustNew[int, int](name, workflow.Tasks{
		workflow.Task[int, int]{Name: "work", Retry: p, Timeout: d, Handler: h},
	})
}

func TestRetriesFollowTheTasksRetryPolicy(t *testing.T) {
	ctx := testContext(t)
	var flaky, always, permanent, refused, panicky atomic.Int32
	errBusy := errors.New("busy")
	quick := workflow.RetryPolicy{Attempts: 3, Delay: 10 * time.Millisecond, Backoff: 2}
	flakyWF := oneTask("flaky", quick, 0, func(ctx context.Context, n int) (int, error) {
		if flaky.Add(1) < 3 {
			return 0, errBusy
		}
		return n + 1, nil
	})
	alwaysWF := oneTask("always", quick, 0, func(ctx context.Context, n int) (int, error) {
		always.Add(1)
		return 0, errBusy
	})
	permanentWF := oneTask("permanent", quick, 0, func(ctx context.Context, n int) (int, error) {
		permanent.Add(1)
		return 0, workflow.Permanent(errBusy)
	})
	refusing := quick
	refusing.RetryIf = func(err error) bool { return !errors.Is(err, errBusy) }
	refusedWF := oneTask("refused", refusing, 0, func(ctx context.Context, n int) (int, error) {
		refused.Add(1)
		return 0, errBusy
	})
	panickyWF := oneTask("panicky", quick, 0, func(ctx context.Context, n int) (int, error) {
		panicky.Add(1)
		panic("out of cheese")
	})
	c, queue := setup(t, registers(flakyWF), registers(alwaysWF), registers(permanentWF), registers(refusedWF), registers(panickyWF))
	q := temporalwf.TaskQueue(queue)

	t.Run("AFlakyTaskIsAttemptedThreeTimes", func(t *testing.T) {
		out, err := temporalwf.Run(ctx, c, flakyWF, 1, q, temporalwf.RunID("flaky-1"))
		require.NoError(t, err)
		require.Equal(t, 2, out)
		require.EqualValues(t, 3, flaky.Load())
		rs, err := temporalwf.Inspect(ctx, c, flakyWF, "flaky-1")
		require.NoError(t, err)
		task, _ := rs.Task("work")
		require.Equal(t, 3, task.Attempts)
		require.Equal(t, workflow.StateSucceeded, task.State)
	})
	t.Run("ATaskThatAlwaysFailsNamesItselfAndItsAttempts", func(t *testing.T) {
		_, err := temporalwf.Run(ctx, c, alwaysWF, 1, q, temporalwf.RunID("always-1"))
		var werr *workflow.WorkflowError
		require.ErrorAs(t, err, &werr)
		require.Equal(t, "work", werr.Task)
		require.Equal(t, 3, werr.Attempts)
		require.EqualValues(t, 3, always.Load())
		require.Equal(t, "*errors.errorString", werr.Details["error_type"])
		require.Equal(t, `workflow "always" run always-1: task "work" failed after 3 attempts: busy`, err.Error())
	})
	t.Run("APermanentErrorIsAttemptedOnce", func(t *testing.T) {
		_, err := temporalwf.Run(ctx, c, permanentWF, 1, q)
		var werr *workflow.WorkflowError
		require.ErrorAs(t, err, &werr)
		require.Equal(t, 1, werr.Attempts)
		require.EqualValues(t, 1, permanent.Load())
	})
	t.Run("ARetryIfThatSaysNoIsAttemptedOnce", func(t *testing.T) {
		_, err := temporalwf.Run(ctx, c, refusedWF, 1, q)
		var werr *workflow.WorkflowError
		require.ErrorAs(t, err, &werr)
		require.Equal(t, 1, werr.Attempts)
		require.EqualValues(t, 1, refused.Load())
	})
	t.Run("APanicIsAFailedAttemptNotACrashedWorker", func(t *testing.T) {
		_, err := temporalwf.Run(ctx, c, panickyWF, 1, q)
		require.ErrorIs(t, err, workflow.ErrPanic)
		var werr *workflow.WorkflowError
		require.ErrorAs(t, err, &werr)
		require.Equal(t, 3, werr.Attempts)
		require.Equal(t, "out of cheese", werr.Details["panic"])
		require.Contains(t, err.Error(), `task "work" panicked after 3 attempts: out of cheese`)
		// The worker is still there: another run goes through it.
		_, err = temporalwf.Run(ctx, c, flakyWF, 1, q)
		require.NoError(t, err)
	})
}

func TestATimedOutTaskWrapsErrTimeout(t *testing.T) {
	ctx := testContext(t)
	var calls atomic.Int32
	wf := oneTask("slowpoke", workflow.RetryPolicy{Attempts: 2, Delay: 10 * time.Millisecond}, 500*time.Millisecond,
		func(ctx context.Context, n int) (int, error) {
			calls.Add(1)
			<-ctx.Done()
			return 0, ctx.Err()
		})
	c, queue := setup(t, registers(wf))
	_, err := temporalwf.Run(ctx, c, wf, 1, temporalwf.TaskQueue(queue), temporalwf.RunID("slowpoke-1"))
	require.ErrorIs(t, err, workflow.ErrTimeout)
	var werr *workflow.WorkflowError
	require.ErrorAs(t, err, &werr)
	require.Equal(t, "work", werr.Task)
	require.Equal(t, 2, werr.Attempts)
	require.Equal(t, workflow.StateTimedOut, werr.Details["state"])
	require.Equal(t, `workflow "slowpoke" run slowpoke-1: task "work" timed out after 2 attempts: attempt exceeded 500ms`, err.Error())
	require.EqualValues(t, 2, calls.Load())

	rs, err := temporalwf.Inspect(ctx, c, wf, "slowpoke-1")
	require.NoError(t, err)
	require.Equal(t, workflow.StateFailed, rs.State, "a task's own timeout fails the run, as in-process")
	task, _ := rs.Task("work")
	require.Equal(t, workflow.StateTimedOut, task.State)
	require.Equal(t, 2, task.Attempts)
}

func TestRegisterRefusesWhatTemporalCannotRun(t *testing.T) {
	w := worker.New(dial(t), "refused", worker.Options{})
	id := func(ctx context.Context, n int) (int, error) { return n, nil }
	shrinking := workflow.Tasks{
		workflow.Task[int, int]{Name: "a", Handler: id, Retry: workflow.RetryPolicy{Attempts: 3, Backoff: 0.5}},
	}
	for name, tasks := range map[string]workflow.Tasks{
		`Retry.Backoff 0.5`: shrinking,
		`task "s": temporalwf: workflow "shrinking": task "a": Retry.Backoff 0.5`: {
			workflow.Sub("s", workflow.MustNew[int, int]("shrinking", shrinking)),
		},
	} {
		err := temporalwf.Register(w, workflow.MustNew[int, int]("refused", tasks))
		require.ErrorIs(t, err, workflow.ErrInvalidWorkflow, name)
		require.ErrorContains(t, err, name)
	}
	ok := oneTask("twice", workflow.RetryPolicy{}, 0, id)
	require.NoError(t, temporalwf.Register(w, ok))
	err := temporalwf.Register(w, ok)
	require.ErrorIs(t, err, workflow.ErrInvalidWorkflow, "a name registered twice")
}
