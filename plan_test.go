package workflow_test

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/b3b01171/workflow"
	"github.com/b3b01171/workflow/internal/plan"
)

type planRequest struct {
	Name string `validate:"required"`
}

func planDiamond(t *testing.T, opts ...workflow.Option) *workflow.Workflow[int, string] {
	t.Helper()
	return workflow.MustNew[int, string]("diamond", workflow.Tasks{
		workflow.Task[int, int]{Name: "a", Handler: func(ctx context.Context, n int) (int, error) { return n + 1, nil }},
		workflow.Task[int, int]{
			Name: "b", Dependencies: []string{"a"}, Timeout: time.Second,
			Retry: workflow.RetryPolicy{Attempts: 3, Delay: time.Minute, Backoff: 2,
				RetryIf: func(err error) bool { return err.Error() != "no" }},
			Handler: func(ctx context.Context, n int) (int, error) {
				info, _ := workflow.Info(ctx)
				return n*10 + info.Attempt, nil
			},
		},
		workflow.Task[int, string]{Name: "c", Dependencies: []string{"a"}, Handler: func(ctx context.Context, n int) (string, error) {
			panic("c is broken")
		}},
		workflow.Task[workflow.Inputs, string]{Name: "d", Dependencies: []string{"c", "b"}, Handler: func(ctx context.Context, in workflow.Inputs) (string, error) {
			b, err := workflow.Get[int](in, "b")
			if err != nil {
				return "", err
			}
			c, err := workflow.Get[string](in, "c")
			return fmt.Sprintf("%s:%d", c, b), err
		}},
	}, opts...)
}

func TestPlanDescribesTasksInTopologicalOrder(t *testing.T) {
	p, err := plan.Of(planDiamond(t, workflow.WithMaxConcurrency(3),
		workflow.WithSchedule(workflow.Schedule{Cron: "@every 1s", Timezone: "Europe/Paris", Overlap: workflow.OverlapQueue}),
		workflow.WithScheduleInput(func(ctx context.Context, fired time.Time) (int, error) { return 7, nil })))
	require.NoError(t, err)
	require.Equal(t, "diamond", p.Workflow)
	require.Equal(t, reflect.TypeFor[int](), p.In)
	require.Equal(t, reflect.TypeFor[string](), p.Out)
	require.Equal(t, "d", p.Output)
	require.Equal(t, 3, p.MaxConcurrency)
	require.Equal(t, &plan.Schedule{Cron: "@every 1s", Timezone: "Europe/Paris", Overlap: plan.OverlapQueue}, p.Schedule)
	v, err := p.ScheduleInput(context.Background(), time.Now())
	require.NoError(t, err)
	require.Equal(t, 7, v)
	var names []string
	for _, task := range p.Tasks {
		names = append(names, task.Name)
	}
	require.Equal(t, []string{"a", "b", "c", "d"}, names)

	b, ok := p.Task("b")
	require.True(t, ok)
	require.Equal(t, []string{"a"}, b.Dependencies)
	require.Equal(t, time.Second, b.Timeout)
	require.Equal(t, 3, b.Retry.Attempts)
	require.Equal(t, time.Minute, b.Retry.Delay)
	require.Equal(t, 2.0, b.Retry.Backoff)
	require.Equal(t, reflect.TypeFor[int](), b.In)
	_, ok = p.Task("nope")
	require.False(t, ok)
}

func TestPlanRetryableFollowsPermanentAndRetryIf(t *testing.T) {
	p, err := plan.Of(planDiamond(t))
	require.NoError(t, err)
	b, _ := p.Task("b")
	again, _ := b.Retryable(errors.New("busy"))
	require.True(t, again)
	again, _ = b.Retryable(errors.New("no"))
	require.False(t, again, "RetryIf says no")
	again, _ = b.Retryable(workflow.Permanent(errors.New("busy")))
	require.False(t, again, "Permanent is never retried")
	require.True(t, plan.FailureOf(workflow.Permanent(errors.New("x"))).Permanent)
	require.False(t, plan.FailureOf(errors.New("x")).Permanent)
}

func TestPlanCallRunsOneHandlerByName(t *testing.T) {
	p, err := plan.Of(planDiamond(t))
	require.NoError(t, err)
	ctx := context.Background()
	outputs := map[string]any{}
	for _, name := range []string{"a", "b"} {
		task, _ := p.Task(name)
		in, err := p.Input(name, 4, outputs, nil)
		require.NoError(t, err)
		outputs[name], err = task.Call(ctx, plan.Call{RunID: "r1", Attempt: 2}, in)
		require.NoError(t, err)
	}
	require.Equal(t, 5, outputs["a"])
	require.Equal(t, 52, outputs["b"], "Info gives the handler the attempt of the call")

	c, _ := p.Task("c")
	_, err = c.Call(ctx, plan.Call{RunID: "r1", Attempt: 1}, 5)
	require.ErrorIs(t, err, workflow.ErrPanic, "Call recovers panics into errors")
	f := plan.FailureOf(err)
	require.Equal(t, "panicked", f.What)
	require.Equal(t, "c is broken", f.Panic)
	require.Contains(t, f.Sentinels, "panic")

	outputs["c"] = "x"
	in, err := p.Input("d", 4, outputs, nil)
	require.NoError(t, err)
	d, _ := p.Task("d")
	out, err := d.Call(ctx, plan.Call{RunID: "r1", Attempt: 1}, in)
	require.NoError(t, err)
	require.Equal(t, "x:52", out)
}

func TestPlanCallGoesThroughMiddleware(t *testing.T) {
	var seen []string
	wf := planDiamond(t, workflow.WithMiddleware(func(next workflow.TaskHandler) workflow.TaskHandler {
		return func(ctx context.Context, call workflow.TaskCall) (any, error) {
			seen = append(seen, fmt.Sprintf("%s/%s/%d", call.RunID, call.Task, call.Attempt))
			return next(ctx, call)
		}
	}))
	p, err := plan.Of(wf)
	require.NoError(t, err)
	a, _ := p.Task("a")
	out, err := a.Call(context.Background(), plan.Call{RunID: "r9", Attempt: 3}, 1)
	require.NoError(t, err)
	require.Equal(t, 2, out)
	require.Equal(t, []string{"r9/a/3"}, seen)
}

func TestPlanInputNamesWhatIsMissing(t *testing.T) {
	p, err := plan.Of(planDiamond(t))
	require.NoError(t, err)
	_, err = p.Input("d", 4, map[string]any{"b": 1}, nil)
	require.ErrorIs(t, err, workflow.ErrNotFound)
	require.ErrorContains(t, err, `"c"`)
	_, err = p.Input("zzz", 4, nil, nil)
	require.ErrorIs(t, err, workflow.ErrNotFound)
}

func TestPlanCheckValidatesAtTheEngineBoundaries(t *testing.T) {
	wf := workflow.MustNew[planRequest, planRequest]("check", workflow.Tasks{
		workflow.Task[planRequest, planRequest]{Name: "echo", Handler: func(ctx context.Context, r planRequest) (planRequest, error) { return r, nil }},
	})
	p, err := plan.Of(wf)
	require.NoError(t, err)
	require.NoError(t, p.Check(planRequest{Name: "x"}, plan.Boundary{RunID: "r", Stage: plan.StageWorkflowInput}))
	err = p.Check(planRequest{}, plan.Boundary{RunID: "r", Stage: plan.StageWorkflowInput})
	require.ErrorIs(t, err, workflow.ErrInvalidInput)
	require.Equal(t, `workflow "check" run r: invalid input: Name is required`, err.Error())

	err = p.Check(planRequest{}, plan.Boundary{RunID: "r", Task: "echo", Stage: plan.StageTaskOutput})
	require.ErrorIs(t, err, workflow.ErrInvalidInput)
	f := plan.FailureOf(err)
	require.True(t, f.Permanent, "a task's invalid value is not retried")
	require.Equal(t, "gave invalid output", f.What)
	require.Equal(t, map[string]string{"planRequest.Name": "required"}, f.Fields)
	require.NoError(t, p.Check(nil, plan.Boundary{Stage: plan.StageWorkflowOutput}), "the output task's check covers it")
}

func TestPlanErrorRebuildsAWorkflowError(t *testing.T) {
	err := plan.Error(plan.Failure{Workflow: "w", RunID: "r", Task: "t", What: "timed out", State: "timed_out",
		Attempts: 3, Message: "attempt exceeded 1s", Sentinels: []string{"timeout"}})
	var werr *workflow.WorkflowError
	require.ErrorAs(t, err, &werr)
	require.ErrorIs(t, err, workflow.ErrTimeout)
	require.Equal(t, `workflow "w" run r: task "t" timed out after 3 attempts: attempt exceeded 1s`, err.Error())
	require.Equal(t, 3, werr.Attempts)
	require.Equal(t, workflow.StateTimedOut, werr.Details["state"])
	require.Equal(t, "<nil>", werr.Details["error_type"])

	child := plan.Failure{Workflow: "c", RunID: "r.s", Task: "x", State: "failed", Attempts: 1, Message: "boom"}
	err = plan.Error(plan.Failure{Workflow: "w", RunID: "r", Task: "s", State: "failed", Attempts: 1,
		Message: `workflow "c" run r.s: task "x" failed: boom`, Cause: &child})
	require.ErrorAs(t, err, &werr)
	var cerr *workflow.WorkflowError
	require.ErrorAs(t, werr.Err, &cerr, "a Sub's error wraps its child run's")
	require.Equal(t, "x", cerr.Task)
	require.Equal(t, "r.s", cerr.RunID)

	err = plan.Error(plan.Failure{Workflow: "w", RunID: "r", What: "cancelled", Message: "Cancel called", Sentinels: []string{"cancelled"}})
	require.ErrorIs(t, err, workflow.ErrCancelled)
	require.Equal(t, `workflow "w" run r: cancelled: Cancel called`, err.Error())
	s, ok := plan.Sentinel("invalid_input")
	require.True(t, ok)
	require.Equal(t, workflow.ErrInvalidInput, s)
}

func TestPlanDescribesRulesMapsAndSubs(t *testing.T) {
	p, err := plan.Of(planDiamond(t))
	require.NoError(t, err)
	require.False(t, p.Rules)
	a, _ := p.Task("a")
	require.Equal(t, "all_succeeded", a.Trigger)
	require.Nil(t, a.Map)
	require.Nil(t, a.Child)

	id := func(ctx context.Context, n int) (int, error) { return n, nil }
	child := workflow.MustNew[int, int]("child", workflow.Tasks{workflow.Task[int, int]{Name: "x", Handler: id}})
	wf := workflow.MustNew[int, int]("rules", workflow.Tasks{
		workflow.Task[int, int]{Name: "a", Handler: id},
		workflow.Task[int, []int]{Name: "b", Dependencies: []string{"a"}, Handler: func(ctx context.Context, n int) ([]int, error) { return []int{n}, nil }},
		workflow.Map[int, int]{Name: "m", Dependencies: []string{"b"}, MaxConcurrency: 3, Handler: func(ctx context.Context, n int) (int, error) {
			if n < 0 {
				return 0, workflow.Skip("negative")
			}
			info, _ := workflow.Info(ctx)
			return n*10 + info.Attempt, nil
		}},
		workflow.Sub("s", child, "a"),
		workflow.Task[workflow.Inputs, int]{Name: "c", Dependencies: []string{"a", "s"}, Trigger: workflow.AllDone,
			Handler: func(ctx context.Context, in workflow.Inputs) (int, error) {
				_, err := workflow.Get[int](in, "s")
				return 0, err
			}},
		workflow.Task[int, int]{Name: "d", Dependencies: []string{"s"}, Trigger: workflow.AllDone, Handler: id},
	}, workflow.WithOutput("d"))
	p, err = plan.Of(wf)
	require.NoError(t, err)
	require.True(t, p.Rules)
	c, _ := p.Task("c")
	require.Equal(t, "all_done", c.Trigger)
	m, _ := p.Task("m")
	require.NotNil(t, m.Map)
	require.Equal(t, 3, m.Map.MaxConcurrency)
	out, err := m.Map.Call(context.Background(), plan.Call{RunID: "r", Attempt: 2}, 4)
	require.NoError(t, err)
	require.Equal(t, 42, out, "one item, with Info")
	_, err = m.Map.Call(context.Background(), plan.Call{RunID: "r", Attempt: 1}, -1)
	require.Equal(t, "negative", plan.FailureOf(err).Skip)
	s, _ := p.Task("s")
	require.Same(t, child, s.Child)

	// Inputs of a task a rule started: Get says what became of each dependency.
	for _, tc := range []struct {
		state, sentinel string
		err             error
	}{
		{"failed", "dependency_failed", workflow.ErrDependencyFailed},
		{"timed_out", "dependency_failed", workflow.ErrDependencyFailed},
		{"cancelled", "dependency_failed", workflow.ErrDependencyFailed},
		{"skipped", "dependency_skipped", workflow.ErrDependencySkipped},
	} {
		in, err := p.Input("c", 4, map[string]any{"a": 4}, map[string]string{"s": tc.state})
		require.NoError(t, err)
		_, err = c.Call(context.Background(), plan.Call{RunID: "r", Attempt: 1}, in)
		require.ErrorIs(t, err, tc.err, tc.state)
		require.Contains(t, plan.FailureOf(err).Sentinels, tc.sentinel, "the sentinel crosses as a name")
		require.ErrorIs(t, plan.Error(plan.FailureOf(err)), tc.err)
	}
	in, err := p.Input("c", 4, map[string]any{"a": 4}, map[string]string{})
	require.NoError(t, err)
	_, err = c.Call(context.Background(), plan.Call{RunID: "r", Attempt: 1}, in)
	require.ErrorIs(t, err, workflow.ErrNotFound, "a dependency in neither map has not ended")
	in, err = p.Input("d", 4, map[string]any{}, map[string]string{"s": "failed"})
	require.NoError(t, err)
	require.Nil(t, in, "a task taking its dependency's output gets nothing from a failed one")
	require.Equal(t, "not today", plan.FailureOf(fmt.Errorf("wrapped: %w", workflow.Skip("not today"))).Skip)
}

func TestPlanOfRejectsWhatIsNotAWorkflow(t *testing.T) {
	for _, v := range []any{nil, 42, (*workflow.Workflow[int, int])(nil), &workflow.Workflow[int, int]{}} {
		_, err := plan.Of(v)
		require.True(t, errors.Is(err, plan.ErrNotWorkflow), "%T", v)
	}
}
