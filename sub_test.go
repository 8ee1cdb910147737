package workflow_test

import (
	"context"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/b3b01171/workflow"
)

// enrichWorkflow is the child: double, then add one; add fails while
// failing is set, and waits for its context while block is.
func enrichWorkflow(t *testing.T, calls *[2]atomic.Int32, failing, block *atomic.Bool) *workflow.Workflow[int, int] {
	return newWorkflow[int, int](t, "enrich", workflow.Tasks{
		workflow.Task[int, int]{Name: "double", Handler: func(_ context.Context, in int) (int, error) {
			calls[0].Add(1)
			return 2 * in, nil
		}},
		workflow.Task[int, int]{Name: "add", Dependencies: []string{"double"}, Handler: func(ctx context.Context, in int) (int, error) {
			calls[1].Add(1)
			if block.Load() {
				<-ctx.Done()
				return 0, ctx.Err()
			}
			if failing.Load() {
				return 0, errBoom
			}
			return in + 1, nil
		}},
	})
}

func parentWorkflow(t *testing.T, child *workflow.Workflow[int, int]) *workflow.Workflow[int, int] {
	return newWorkflow[int, int](t, "orders", workflow.Tasks{
		workflow.Task[int, int]{Name: "fetch", Handler: func(_ context.Context, in int) (int, error) { return in + 10, nil }},
		workflow.Sub("enrich", child, "fetch"),
	})
}

func TestSubRunsTheChildAsARunOfItsOwnLinkedToTheParent(t *testing.T) {
	var calls [2]atomic.Int32
	var failing, block atomic.Bool
	child := enrichWorkflow(t, &calls, &failing, &block)
	parent := parentWorkflow(t, child)
	x, err := parent.Start(t.Context(), 1)
	require.NoError(t, err)
	out, err := x.Wait(t.Context())
	require.NoError(t, err)
	assert.Equal(t, 23, out, "(1+10)*2+1")

	runs, err := child.History(t.Context())
	require.NoError(t, err)
	require.Len(t, runs, 1)
	assert.Equal(t, x.ID()+".enrich", runs[0].RunID)
	assert.Equal(t, x.ID(), runs[0].ParentRunID)
	assert.Equal(t, workflow.TriggerParent, runs[0].Trigger)
	assert.Equal(t, workflow.StateSucceeded, runs[0].State)
	requireCompleteEvents(t, runs[0])
	prs, err := parent.Inspect(t.Context(), x.ID())
	require.NoError(t, err)
	assert.Empty(t, prs.ParentRunID)
	assert.Equal(t, workflow.TriggerManual, prs.Trigger)
}

func TestASubTasksChildFailureIsTheTasksAndResumeResumesTheChild(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var calls [2]atomic.Int32
		var failing, block atomic.Bool
		failing.Store(true)
		child := enrichWorkflow(t, &calls, &failing, &block)
		parent := parentWorkflow(t, child)
		x, err := parent.Start(t.Context(), 1)
		require.NoError(t, err)
		_, err = x.Wait(t.Context())
		require.ErrorIs(t, err, errBoom)
		werr := asWorkflowError(t, err)
		assert.Equal(t, "orders", werr.Workflow)
		assert.Equal(t, "enrich", werr.Task)
		assert.Equal(t, 1, werr.Attempts, "a Sub task has no retry of its own")
		var childErr *workflow.WorkflowError
		require.ErrorAs(t, werr.Err, &childErr, "the child's error is under the parent's")
		assert.Equal(t, "enrich", childErr.Workflow)
		assert.Equal(t, "add", childErr.Task)
		assert.Equal(t, x.ID()+".enrich", childErr.RunID)

		failing.Store(false)
		out, err := parent.Resume(t.Context(), x.ID())
		require.NoError(t, err)
		assert.Equal(t, 23, out)
		assert.Equal(t, int32(1), calls[0].Load(), "the child's succeeded task did not run again")
		assert.Equal(t, int32(2), calls[1].Load())
		runs, err := child.History(t.Context())
		require.NoError(t, err)
		require.Len(t, runs, 1, "the child run was resumed, not started again")
		requireCompleteEvents(t, runs[0])
		assert.Equal(t, 1, countEvents(runs[0], workflow.EventRunResumed))
	})
}

func TestCancellingOrTimingOutTheParentCancelsTheChild(t *testing.T) {
	for _, how := range []string{"Cancel", "RunTimeout"} {
		t.Run(how, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				var calls [2]atomic.Int32
				var failing, block atomic.Bool
				block.Store(true)
				child := enrichWorkflow(t, &calls, &failing, &block)
				parent := parentWorkflow(t, child)
				var opts []workflow.RunOption
				if how == "RunTimeout" {
					opts = append(opts, workflow.RunTimeout(time.Minute))
				}
				x, err := parent.Start(t.Context(), 1, opts...)
				require.NoError(t, err)
				synctest.Wait()
				if how == "Cancel" {
					require.NoError(t, parent.Cancel(t.Context(), x.ID()))
				}
				_, err = x.Wait(t.Context())
				require.Error(t, err)
				// The parent's end does not wait for its tasks' handlers:
				// the child run ends soon after.
				_, err = child.Wait(t.Context(), x.ID()+".enrich")
				require.ErrorIs(t, err, workflow.ErrCancelled)
				rs, err := child.Inspect(t.Context(), x.ID()+".enrich")
				require.NoError(t, err)
				requireCompleteEvents(t, rs)
				assert.Equal(t, workflow.StateCancelled, rs.State, "the child run ends cancelled")
				prs, _ := parent.Inspect(t.Context(), x.ID())
				sub, _ := prs.Task("enrich")
				assert.Equal(t, workflow.StateCancelled, sub.State)
			})
		})
	}
}

func TestNewChecksSubTasks(t *testing.T) {
	child := newWorkflow[string, int](t, "child", workflow.Tasks{
		workflow.Task[string, int]{Name: "len", Handler: func(_ context.Context, s string) (int, error) { return len(s), nil }},
	})
	_, err := workflow.New[int, int]("p", workflow.Tasks{intTask("a"), workflow.Sub("s", child, "a")}, workflow.WithOutput("s"))
	require.ErrorIs(t, err, workflow.ErrTypeMismatch)
	assert.Contains(t, err.Error(), `task "s" takes string, but its dependency "a" gives int`)

	_, err = workflow.New[int, int]("p", workflow.Tasks{intTask("a"), workflow.Sub[int, int]("s", nil, "a")}, workflow.WithOutput("s"))
	require.ErrorIs(t, err, workflow.ErrInvalidWorkflow)
	assert.Contains(t, err.Error(), `Sub task "s" has no child workflow`)

	direct, err := workflow.New[string, int]("p", workflow.Tasks{workflow.Sub("s", child)})
	require.NoError(t, err, "a Sub without dependencies takes the workflow input")
	out, err := direct.Run(t.Context(), "four")
	require.NoError(t, err)
	assert.Equal(t, 4, out)
	var zero workflow.Workflow[string, int]
	_, err = workflow.New[string, int]("p", workflow.Tasks{workflow.Sub("s", &zero)})
	require.ErrorIs(t, err, workflow.ErrInvalidWorkflow)
}
