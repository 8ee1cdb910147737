package temporalwf_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/b3b01171/workflow"
	"github.com/b3b01171/workflow/temporalwf"
)

// shape is what Inspect must show alike on both engines: the run's state,
// each task's state and attempts, and the events' types, tasks and
// attempts in order.
func shape(rs workflow.RunStatus) []string {
	out := []string{"run " + string(rs.State)}
	for _, t := range rs.Tasks {
		out = append(out, fmt.Sprintf("task %s %s attempts=%d", t.Name, t.State, t.Attempts))
	}
	for _, ev := range rs.Events {
		out = append(out, fmt.Sprintf("event %s %s %d", ev.Type, ev.Task, ev.Attempt))
	}
	return out
}

func TestInspectMatchesInProcessInspect(t *testing.T) {
	ctx := testContext(t)
	local := dataProcessing()
	wf := dataProcessing()
	c, queue := setup(t, registers(wf))

	for _, tc := range []struct {
		name string
		in   Request
	}{
		{"Succeeded", goodRequest},
		{"Failed", Request{UserID: "nobody", StartDate: "2026-11-01", EndDate: "2026-11-03"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			id := "inspect-" + tc.name
			_, lerr := local.Run(ctx, tc.in, workflow.WithRunID(id))
			_, err := temporalwf.Run(ctx, c, wf, tc.in, temporalwf.TaskQueue(queue), temporalwf.RunID(id))
			require.Equal(t, lerr == nil, err == nil)
			want, err := local.Inspect(ctx, id)
			require.NoError(t, err)
			got, err := temporalwf.Inspect(ctx, c, wf, id)
			require.NoError(t, err)
			require.Equal(t, shape(want), shape(got))
			require.Equal(t, want.Error, got.Error)
			require.Equal(t, id, got.RunID)
			require.Equal(t, "dataProcessing", got.Workflow)
			require.Equal(t, workflow.TriggerManual, got.Trigger)
			require.False(t, got.StartedAt.IsZero())
			require.False(t, got.EndedAt.Before(got.StartedAt))
			for _, task := range got.Tasks {
				if task.State == workflow.StateSucceeded {
					require.False(t, task.EndedAt.Before(task.StartedAt), task.Name)
					require.NotEmpty(t, task.Output, "Temporal keeps each output as JSON")
				}
			}
		})
	}
	t.Run("RetriesAreRebuiltFromTheLastAttempt", func(t *testing.T) {
		got, err := temporalwf.Inspect(ctx, c, wf, "inspect-Succeeded")
		require.NoError(t, err)
		task, _ := got.Task("processData")
		require.Equal(t, 2, task.Attempts)
		var retry workflow.Event
		for _, ev := range got.Events {
			if ev.Type == workflow.EventTaskRetrying {
				retry = ev
			}
		}
		require.Equal(t, "worker busy, try again", retry.Error)
	})
	t.Run("AnUnknownRunIsNotFound", func(t *testing.T) {
		_, err := temporalwf.Inspect(ctx, c, wf, "no-such-run")
		require.ErrorIs(t, err, workflow.ErrNotFound)
		other := oneTask("other", workflow.RetryPolicy{}, 0, func(ctx context.Context, n int) (int, error) { return n, nil })
		_, err = temporalwf.Inspect(ctx, c, other, "inspect-Succeeded")
		require.ErrorIs(t, err, workflow.ErrNotFound, "a run of another workflow")
	})
}

// blocking is a workflow whose first task waits for its context to end
// (it says when it started on started), and whose second never starts.
func blocking(name string, started chan<- string) *workflow.Workflow[int, int] {
	return workflow.MustNew[int, int](name, workflow.Tasks{
		workflow.Task[int, int]{Name: "wait", Handler: func(ctx context.Context, n int) (int, error) {
			info, _ := workflow.Info(ctx)
			started <- info.RunID
			<-ctx.Done()
			return 0, ctx.Err()
		}},
		workflow.Task[int, int]{Name: "after", Dependencies: []string{"wait"}, Handler: func(ctx context.Context, n int) (int, error) {
			return n, nil
		}},
	})
}

func TestCancelEndsARunAsCancelled(t *testing.T) {
	ctx := testContext(t)
	started := make(chan string, 1)
	wf := blocking("cancelled", started)
	c, queue := setup(t, registers(wf))
	x, err := temporalwf.Start(ctx, c, wf, 1, temporalwf.TaskQueue(queue), temporalwf.RunID("cancel-1"))
	require.NoError(t, err)
	require.Equal(t, "cancel-1", x.ID())
	require.Equal(t, "cancel-1", <-started, "Info gives the handler the run ID")

	rs, err := temporalwf.Inspect(ctx, c, wf, "cancel-1")
	require.NoError(t, err)
	require.Equal(t, workflow.StateRunning, rs.State)
	wait, _ := rs.Task("wait")
	require.Equal(t, workflow.StateRunning, wait.State, "a task under way shows as running")
	require.Equal(t, 1, wait.Attempts)

	require.NoError(t, temporalwf.Cancel(ctx, c, wf, "cancel-1"))
	_, werr := x.Wait(ctx)
	require.ErrorIs(t, werr, workflow.ErrCancelled)
	require.Equal(t, `workflow "cancelled" run cancel-1: cancelled: Cancel called`, werr.Error())

	got, err := temporalwf.Inspect(ctx, c, wf, "cancel-1")
	require.NoError(t, err)
	require.Equal(t, workflow.StateCancelled, got.State)

	// The same on the in-process engine.
	lstarted := make(chan string, 1)
	local := blocking("cancelled", lstarted)
	lx, err := local.Start(ctx, 1, workflow.WithRunID("cancel-1"))
	require.NoError(t, err)
	<-lstarted
	require.NoError(t, local.Cancel(ctx, "cancel-1"))
	_, lerr := lx.Wait(ctx)
	require.Equal(t, lerr.Error(), werr.Error())
	want, err := local.Inspect(ctx, "cancel-1")
	require.NoError(t, err)
	require.Equal(t, shape(want), shape(got))

	err = temporalwf.Cancel(ctx, c, wf, "cancel-1")
	require.ErrorIs(t, err, workflow.ErrRunEnded)
	err = temporalwf.Cancel(ctx, c, wf, "no-such-run")
	require.ErrorIs(t, err, workflow.ErrNotFound)
}

func TestRunTimeoutEndsARunAsTimedOut(t *testing.T) {
	ctx := testContext(t)
	started := make(chan string, 1)
	wf := blocking("timedOut", started)
	c, queue := setup(t, registers(wf))
	_, err := temporalwf.Run(ctx, c, wf, 1, temporalwf.TaskQueue(queue), temporalwf.RunID("timeout-1"),
		temporalwf.RunTimeout(time.Second))
	require.ErrorIs(t, err, workflow.ErrTimeout)
	require.Equal(t, `workflow "timedOut" run timeout-1: timed out: the run exceeded its RunTimeout (1s)`, err.Error())
	<-started
	rs, ierr := temporalwf.Inspect(ctx, c, wf, "timeout-1")
	require.NoError(t, ierr)
	require.Equal(t, workflow.StateTimedOut, rs.State)
	require.Equal(t, err.Error(), rs.Error)
	wait, _ := rs.Task("wait")
	require.Equal(t, workflow.StateCancelled, wait.State)
	after, _ := rs.Task("after")
	require.Equal(t, workflow.StateSkipped, after.State)
}
