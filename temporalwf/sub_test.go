package temporalwf_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/b3b01171/workflow"
	"github.com/b3b01171/workflow/temporalwf"
)

// pricingTriggers holds the Trigger that pricing's handlers saw, by run ID.
var pricingTriggers sync.Map

// pricing is the child workflow of the Sub tests: n → (n+1)*3, failing
// for good on a negative n.
func pricing() *workflow.Workflow[int, int] {
	return workflow.MustNew[int, int]("pricing", workflow.Tasks{
		workflow.Task[int, int]{Name: "inc", Handler: func(ctx context.Context, n int) (int, error) {
			if n < 0 {
				return 0, workflow.Permanent(errors.New("no price for a negative quantity"))
			}
			return n + 1, nil
		}},
		workflow.Task[int, int]{Name: "triple", Dependencies: []string{"inc"}, Handler: func(ctx context.Context, n int) (int, error) {
			info, _ := workflow.Info(ctx)
			pricingTriggers.Store(info.RunID, info.Trigger)
			return n * 3, nil
		}},
	})
}

// order runs pricing as its Sub task "price", between two tasks, and an
// AllDone cleanup that says what became of it.
func order(child *workflow.Workflow[int, int]) *workflow.Workflow[int, string] {
	return workflow.MustNew[int, string]("order", workflow.Tasks{
		workflow.Task[int, int]{Name: "double", Handler: func(ctx context.Context, n int) (int, error) { return 2 * n, nil }},
		workflow.Sub("price", child, "double"),
		workflow.Task[workflow.Inputs, string]{Name: "summary", Dependencies: []string{"price"}, Trigger: workflow.AllDone,
			Handler: func(ctx context.Context, in workflow.Inputs) (string, error) {
				p, err := workflow.Get[int](in, "price")
				switch {
				case errors.Is(err, workflow.ErrDependencyFailed):
					return "no price", nil
				case err != nil:
					return "", err
				}
				return "price " + string(rune('0'+p/10)) + string(rune('0'+p%10)), nil
			}},
	})
}

func TestSubRunsTheChildAsATemporalChildWorkflow(t *testing.T) {
	ctx := testContext(t)
	wf := order(pricing())
	local := order(pricing())
	c, queue := setup(t, registers(wf)) // registers pricing too
	q := temporalwf.TaskQueue(queue)

	t.Run("Output", func(t *testing.T) {
		out, err := temporalwf.Run(ctx, c, wf, 5, q, temporalwf.RunID("order-5"))
		require.NoError(t, err)
		lout, err := local.Run(ctx, 5, workflow.WithRunID("order-5"))
		require.NoError(t, err)
		require.Equal(t, lout, out)
		require.Equal(t, "price 33", out, "(2*5+1)*3")

		got, err := temporalwf.Inspect(ctx, c, wf, "order-5")
		require.NoError(t, err)
		want, err := local.Inspect(ctx, "order-5")
		require.NoError(t, err)
		require.Equal(t, shape(want), shape(got))
		price, _ := got.Task("price")
		require.JSONEq(t, "33", string(price.Output))

		// The child run is a run of its own, ID parentRunID.task.
		child, err := temporalwf.Inspect(ctx, c, pricing(), "order-5.price")
		require.NoError(t, err)
		require.Equal(t, workflow.StateSucceeded, child.State)
		require.Equal(t, workflow.TriggerParent, child.Trigger)
		require.Equal(t, "order-5", child.ParentRunID)
		trigger, _ := pricingTriggers.Load("order-5.price")
		require.Equal(t, workflow.TriggerParent, trigger, "workflow.Info in the child's handlers says so too")
		tr, _ := child.Task("triple")
		require.JSONEq(t, "33", string(tr.Output))
	})

	t.Run("Failure", func(t *testing.T) {
		_, err := temporalwf.Run(ctx, c, wf, -3, q, temporalwf.RunID("order-neg"))
		_, lerr := local.Run(ctx, -3, workflow.WithRunID("order-neg"))
		require.Error(t, lerr)
		require.Equal(t, lerr.Error(), err.Error(), "the same error as in-process")
		require.Equal(t, `workflow "order" run order-neg: task "price" failed: workflow "pricing" run order-neg.price: task "inc" failed: no price for a negative quantity`, err.Error())
		var werr, cerr *workflow.WorkflowError
		require.ErrorAs(t, err, &werr)
		require.Equal(t, "price", werr.Task)
		require.ErrorAs(t, werr.Err, &cerr, "the child's error is reachable, as in-process")
		require.Equal(t, "inc", cerr.Task)
		require.Equal(t, "order-neg.price", cerr.RunID)
		require.Equal(t, "pricing", cerr.Workflow)

		got, err := temporalwf.Inspect(ctx, c, wf, "order-neg")
		require.NoError(t, err)
		want, err := local.Inspect(ctx, "order-neg")
		require.NoError(t, err)
		require.Equal(t, shape(want), shape(got))
		require.Equal(t, want.Error, got.Error)
		price, _ := got.Task("price")
		lprice, _ := want.Task("price")
		require.Equal(t, lprice.Error, price.Error)
		sum, _ := got.Task("summary")
		require.JSONEq(t, `"no price"`, string(sum.Output), "Get of the failed Sub wraps ErrDependencyFailed")
	})
}

func TestRegisterRegistersSubChildrenOnce(t *testing.T) {
	child := pricing()
	other := workflow.MustNew[int, int]("otherOrder", workflow.Tasks{
		workflow.Sub("price", child),
	})
	ctx := testContext(t)
	// Two parents sharing a child, and the child itself registered first:
	// each is registered once.
	c, queue := setup(t, registers(child), registers(order(child)), registers(other))
	out, err := temporalwf.Run(ctx, c, other, 1, temporalwf.TaskQueue(queue))
	require.NoError(t, err)
	require.Equal(t, 6, out)
	out, err = temporalwf.Run(ctx, c, child, 1, temporalwf.TaskQueue(queue))
	require.NoError(t, err)
	require.Equal(t, 6, out, "the child runs on its own too")
}

func TestCancellingTheParentCancelsTheChildRun(t *testing.T) {
	ctx := testContext(t)
	underway := make(chan string, 1)
	child := workflow.MustNew[int, int]("waiter", workflow.Tasks{
		workflow.Task[int, int]{Name: "wait", Handler: func(ctx context.Context, n int) (int, error) {
			info, _ := workflow.Info(ctx)
			underway <- info.RunID
			<-ctx.Done()
			return 0, ctx.Err()
		}},
	})
	wf := workflow.MustNew[int, int]("waitingParent", workflow.Tasks{
		workflow.Sub("child", child),
	})
	c, queue := setup(t, registers(wf))
	x, err := temporalwf.Start(ctx, c, wf, 1, temporalwf.TaskQueue(queue), temporalwf.RunID("parent-1"))
	require.NoError(t, err)
	select {
	case id := <-underway:
		require.Equal(t, "parent-1.child", id)
	case <-ctx.Done():
		t.Fatal("the child's task never started")
	}
	require.NoError(t, temporalwf.Cancel(ctx, c, wf, x.ID()))
	_, err = x.Wait(ctx)
	require.ErrorIs(t, err, workflow.ErrCancelled)
	rs, err := temporalwf.Inspect(ctx, c, wf, x.ID())
	require.NoError(t, err)
	sub, _ := rs.Task("child")
	require.Equal(t, workflow.StateCancelled, sub.State)
	require.Eventually(t, func() bool {
		crs, err := temporalwf.Inspect(ctx, c, child, "parent-1.child")
		return err == nil && crs.State == workflow.StateCancelled
	}, time.Minute, 20*time.Millisecond, "the child run ends cancelled")
}
