package workflow_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/b3b01171/workflow"
)

// trace is a middleware that records, under name, each call it wraps.
type trace struct {
	mu    sync.Mutex
	lines []string
}

func (tr *trace) mw(name string) func(workflow.TaskHandler) workflow.TaskHandler {
	return func(next workflow.TaskHandler) workflow.TaskHandler {
		return func(ctx context.Context, call workflow.TaskCall) (any, error) {
			tr.add(fmt.Sprintf("%s>%s#%d", name, call.Task, call.Attempt))
			out, err := next(ctx, call)
			tr.add(fmt.Sprintf("%s<%s#%d", name, call.Task, call.Attempt))
			return out, err
		}
	}
}

func (tr *trace) add(s string) {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	tr.lines = append(tr.lines, s)
}

func TestMiddlewareWrapsEveryAttemptFirstGivenOutermost(t *testing.T) {
	var tr trace
	calls := 0
	w := newWorkflow[int, int](t, "mw", workflow.Tasks{
		workflow.Task[int, int]{Name: "a", Retry: workflow.RetryPolicy{Attempts: 2}, Handler: func(_ context.Context, in int) (int, error) {
			calls++
			tr.add("handler")
			if calls == 1 {
				return 0, errBoom
			}
			return in * 2, nil
		}},
	}, workflow.WithMiddleware(tr.mw("outer"), tr.mw("middle")), workflow.WithMiddleware(tr.mw("inner")))
	out, err := w.Run(t.Context(), 21)
	require.NoError(t, err)
	assert.Equal(t, 42, out)
	assert.Equal(t, []string{
		"outer>a#1", "middle>a#1", "inner>a#1", "handler", "inner<a#1", "middle<a#1", "outer<a#1",
		"outer>a#2", "middle>a#2", "inner>a#2", "handler", "inner<a#2", "middle<a#2", "outer<a#2",
	}, tr.lines)
}

func TestMiddlewareSeesTheCallAndMayChangeItsInput(t *testing.T) {
	var seen []workflow.TaskCall
	var infos []workflow.RunInfo
	w := newWorkflow[int, int](t, "mw-call", workflow.Tasks{intTask("a"), intTask("b", "a")},
		workflow.WithMiddleware(func(next workflow.TaskHandler) workflow.TaskHandler {
			return func(ctx context.Context, call workflow.TaskCall) (any, error) {
				seen = append(seen, call)
				info, _ := workflow.Info(ctx)
				infos = append(infos, info)
				call.Input = call.Input.(int) + 1
				return next(ctx, call)
			}
		}))
	out, err := w.Run(t.Context(), 1, workflow.WithRunID("r"))
	require.NoError(t, err)
	assert.Equal(t, 3, out, "each task's input was incremented on its way in")
	assert.Equal(t, []workflow.TaskCall{
		{Workflow: "mw-call", RunID: "r", Task: "a", Attempt: 1, Input: 1},
		{Workflow: "mw-call", RunID: "r", Task: "b", Attempt: 1, Input: 2},
	}, seen)
	assert.Equal(t, []workflow.RunInfo{
		{Workflow: "mw-call", RunID: "r", Task: "a", Trigger: "manual", Attempt: 1},
		{Workflow: "mw-call", RunID: "r", Task: "b", Trigger: "manual", Attempt: 1},
	}, infos)
}

func TestMiddlewareErrorsAndPanicsAreTheAttemptsOwn(t *testing.T) {
	attempts := 0
	failing := func(next workflow.TaskHandler) workflow.TaskHandler {
		return func(ctx context.Context, call workflow.TaskCall) (any, error) {
			attempts++
			switch call.Attempt {
			case 1:
				return nil, errBoom // retried like the handler's error
			case 2:
				panic("middleware bug") // recovered like the handler's panic
			}
			return next(ctx, call)
		}
	}
	w := newWorkflow[int, int](t, "mw-fail", workflow.Tasks{
		workflow.Task[int, int]{Name: "a", Retry: workflow.RetryPolicy{Attempts: 3}, Handler: identity},
	}, workflow.WithMiddleware(failing))
	out, err := w.Run(t.Context(), 5)
	require.NoError(t, err)
	assert.Equal(t, 5, out)
	assert.Equal(t, 3, attempts)

	attempts = 0
	w = newWorkflow[int, int](t, "mw-fail", workflow.Tasks{
		workflow.Task[int, int]{Name: "a", Retry: workflow.RetryPolicy{Attempts: 2}, Handler: identity},
	}, workflow.WithMiddleware(failing))
	_, err = w.Run(t.Context(), 5)
	require.ErrorIs(t, err, workflow.ErrPanic)
	assert.Contains(t, err.Error(), "middleware bug")
	assert.Equal(t, 2, asWorkflowError(t, err).Attempts)
}

func TestMiddlewareRunsInsideTheAttemptsTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWorkflow[int, int](t, "mw-timeout", workflow.Tasks{
			workflow.Task[int, int]{Name: "a", Timeout: time.Second, Handler: identity},
		}, workflow.WithMiddleware(func(next workflow.TaskHandler) workflow.TaskHandler {
			return func(ctx context.Context, call workflow.TaskCall) (any, error) {
				<-ctx.Done() // a middleware that waits for its context
				return nil, ctx.Err()
			}
		}))
		start := time.Now()
		_, err := w.Run(t.Context(), 1)
		require.ErrorIs(t, err, workflow.ErrTimeout)
		assert.Equal(t, time.Second, time.Since(start))
	})
}

func TestMiddlewareReachesAReplacedHandler(t *testing.T) {
	var tr trace
	w := newWorkflow[int, int](t, "mw-replace", workflow.Tasks{intTask("a")}, workflow.WithMiddleware(tr.mw("m")))
	out, err := w.Run(t.Context(), 1, workflow.ReplaceTask("a", func(context.Context, int) (int, error) {
		tr.add("stub")
		return 7, nil
	}))
	require.NoError(t, err)
	assert.Equal(t, 7, out)
	assert.Equal(t, []string{"m>a#1", "stub", "m<a#1"}, tr.lines)
}

func TestMiddlewareThatDropsTheContextFailsTheTaskSayingWhy(t *testing.T) {
	w := newWorkflow[int, int](t, "mw-forge", workflow.Tasks{
		workflow.Task[int, int]{Name: "a", Retry: workflow.RetryPolicy{Attempts: 3}, Handler: identity},
	}, workflow.WithMiddleware(func(next workflow.TaskHandler) workflow.TaskHandler {
		return func(ctx context.Context, call workflow.TaskCall) (any, error) {
			return next(context.Background(), call)
		}
	}))
	_, err := w.Run(t.Context(), 1)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "not derived from the attempt's")
	assert.Equal(t, 1, asWorkflowError(t, err).Attempts, "not retried")
}

func TestNewRejectsBadMiddleware(t *testing.T) {
	for name, opt := range map[string]workflow.Option{
		"nil":        workflow.WithMiddleware(nil),
		"nil result": workflow.WithMiddleware(func(workflow.TaskHandler) workflow.TaskHandler { return nil }),
		"panics":     workflow.WithMiddleware(func(workflow.TaskHandler) workflow.TaskHandler { panic("bad") }),
	} {
		_, err := workflow.New[int, int]("mw", workflow.Tasks{intTask("a")}, opt)
		require.ErrorIs(t, err, workflow.ErrInvalidWorkflow, name)
		assert.Contains(t, err.Error(), "WithMiddleware", name)
	}
}
