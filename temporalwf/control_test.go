package temporalwf_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/worker"

	"github.com/b3b01171/workflow"
	"github.com/b3b01171/workflow/temporalwf"
)

// upstream is how a dependency in the trigger-rule table ends, as in the
// core's control_test.go.
type upstream struct {
	state   workflow.State
	handler func(ctx context.Context, in int) (int, error)
	timeout time.Duration
}

var upstreams = []upstream{
	{state: workflow.StateSucceeded, handler: func(_ context.Context, in int) (int, error) { return in, nil }},
	{state: workflow.StateFailed, handler: func(context.Context, int) (int, error) {
		return 0, workflow.Permanent(errors.New("broken"))
	}},
	{state: workflow.StateTimedOut, timeout: time.Second, handler: func(ctx context.Context, _ int) (int, error) {
		<-ctx.Done()
		return 0, ctx.Err()
	}},
	{state: workflow.StateCancelled, handler: func(context.Context, int) (int, error) {
		return 0, fmt.Errorf("the child run: %w", workflow.ErrCancelled)
	}},
	{state: workflow.StateSkipped, handler: func(context.Context, int) (int, error) { return 0, workflow.Skip("not today") }},
}

func failedState(s workflow.State) bool {
	return s == workflow.StateFailed || s == workflow.StateTimedOut || s == workflow.StateCancelled
}

// ruleStarts is what each rule does, given the end states of the
// dependencies: start the task, or skip it.
var ruleStarts = []struct {
	rule   workflow.TriggerRule
	starts func(a, b workflow.State) bool
}{
	{workflow.AllSucceeded, func(a, b workflow.State) bool {
		return a == workflow.StateSucceeded && b == workflow.StateSucceeded
	}},
	{workflow.AllDone, func(a, b workflow.State) bool { return true }},
	{workflow.NoneFailed, func(a, b workflow.State) bool {
		return !failedState(a) && !failedState(b) && (a == workflow.StateSucceeded || b == workflow.StateSucceeded)
	}},
	{workflow.OneSucceeded, func(a, b workflow.State) bool {
		return a == workflow.StateSucceeded || b == workflow.StateSucceeded
	}},
}

// dependencyGetErrors is what Get of a dependency that ended in each state wraps.
var dependencyGetErrors = map[workflow.State]error{
	workflow.StateFailed: workflow.ErrDependencyFailed, workflow.StateTimedOut: workflow.ErrDependencyFailed,
	workflow.StateCancelled: workflow.ErrDependencyFailed, workflow.StateSkipped: workflow.ErrDependencySkipped,
}

// ruleCase is one line of the table: a and b (no dependencies) into t
// (rule), and t into an AllDone cleanup whose output says whether t ran.
type ruleCase struct {
	name    string
	rule    workflow.TriggerRule
	a, b    upstream
	wantRun bool
	wf      *workflow.Workflow[int, bool]
	mu      sync.Mutex
	got     map[string]error // what t's Get gave, by dependency
}

func (rc *ruleCase) build() {
	rc.got = map[string]error{}
	rc.wf = workflow.MustNew[int, bool]("rules-"+rc.name, workflow.Tasks{
		workflow.Task[int, int]{Name: "a", Handler: rc.a.handler, Timeout: rc.a.timeout},
		workflow.Task[int, int]{Name: "b", Handler: rc.b.handler, Timeout: rc.b.timeout},
		workflow.Task[workflow.Inputs, int]{Name: "t", Dependencies: []string{"a", "b"}, Trigger: rc.rule,
			Handler: func(ctx context.Context, in workflow.Inputs) (int, error) {
				rc.mu.Lock()
				defer rc.mu.Unlock()
				for _, d := range []string{"a", "b"} {
					_, rc.got[d] = workflow.Get[int](in, d)
				}
				return 1, nil
			}},
		workflow.Task[workflow.Inputs, bool]{Name: "cleanup", Dependencies: []string{"t"}, Trigger: workflow.AllDone,
			Handler: func(ctx context.Context, in workflow.Inputs) (bool, error) {
				_, err := workflow.Get[int](in, "t")
				if err != nil && !errors.Is(err, workflow.ErrDependencySkipped) {
					return false, err
				}
				return err == nil, nil
			}},
	})
}

func TestEveryTriggerRuleAgainstEveryPairOfUpstreamStates(t *testing.T) {
	ctx := testContext(t)
	var cases []*ruleCase
	for _, r := range ruleStarts {
		for _, a := range upstreams {
			for _, b := range upstreams {
				rc := &ruleCase{name: fmt.Sprintf("%s-a_%s-b_%s", r.rule, a.state, b.state), rule: r.rule, a: a, b: b,
					wantRun: r.starts(a.state, b.state)}
				rc.build()
				cases = append(cases, rc)
			}
		}
	}
	c, queue := setup(t, func(r worker.Registry) error {
		for _, rc := range cases {
			if err := temporalwf.Register(r, rc.wf); err != nil {
				return err
			}
		}
		return nil
	})
	// Every run at once, then each checked in turn.
	xs := make([]*temporalwf.Execution[bool], len(cases))
	for k, rc := range cases {
		x, err := temporalwf.Start(ctx, c, rc.wf, 7, temporalwf.TaskQueue(queue), temporalwf.RunID(rc.name))
		require.NoError(t, err)
		xs[k] = x
	}
	for k, rc := range cases {
		t.Run(rc.name, func(t *testing.T) {
			out, err := xs[k].Wait(ctx)
			rs, ierr := temporalwf.Inspect(ctx, c, rc.wf, rc.name)
			require.NoError(t, ierr)
			require.True(t, rs.State.Ended())
			for name, up := range map[string]upstream{"a": rc.a, "b": rc.b} {
				ts, _ := rs.Task(name)
				assert.Equal(t, up.state, ts.State, "task %q", name)
				if up.state == workflow.StateSkipped {
					assert.Equal(t, "not today", ts.Error, "a handler's Skip keeps its reason")
				}
				if up.state != workflow.StateTimedOut {
					assert.Equal(t, 1, ts.Attempts, "task %q: Skip, Permanent and a cancelled handler are not retried", name)
				}
			}
			ts, _ := rs.Task("t")
			if rc.wantRun {
				assert.Equal(t, workflow.StateSucceeded, ts.State, "t should run")
				rc.mu.Lock()
				for name, up := range map[string]upstream{"a": rc.a, "b": rc.b} {
					if rc.rule == workflow.OneSucceeded && errors.Is(rc.got[name], workflow.ErrNotFound) {
						// t started as the other succeeded, maybe before this one ended.
						assert.ErrorContains(t, rc.got[name], "has not ended")
						continue
					}
					if want := dependencyGetErrors[up.state]; want != nil {
						assert.ErrorIs(t, rc.got[name], want, "Get(%q) of a %s dependency", name, up.state)
					} else {
						assert.NoError(t, rc.got[name], "Get(%q) of a succeeded dependency", name)
					}
				}
				rc.mu.Unlock()
			} else {
				assert.Equal(t, workflow.StateSkipped, ts.State, "t should be skipped")
				assert.Contains(t, ts.Error, "dependenc", "t's status says why it was skipped")
			}
			cl, _ := rs.Task("cleanup")
			assert.Equal(t, workflow.StateSucceeded, cl.State, "an AllDone cleanup always runs, after a failure too")

			if failedState(rc.a.state) || failedState(rc.b.state) {
				assert.Equal(t, workflow.StateFailed, rs.State)
				var werr *workflow.WorkflowError
				require.ErrorAs(t, err, &werr)
				var failed []string
				for name, up := range map[string]upstream{"a": rc.a, "b": rc.b} {
					if failedState(up.state) {
						failed = append(failed, name)
					}
				}
				assert.Contains(t, failed, werr.Task, "the run's error names a failed task")
				return
			}
			require.NoError(t, err)
			assert.Equal(t, workflow.StateSucceeded, rs.State)
			assert.Equal(t, rc.wantRun, out, "the output says whether t ran")
		})
	}
}

// chain is a workflow of rules whose events come in one order only (each
// task depends on the one before), so that its Inspect can be compared
// event for event with in-process Inspect.
func chain(name string) *workflow.Workflow[int, int] {
	id := func(ctx context.Context, n int) (int, error) { return n + 1, nil }
	return workflow.MustNew[int, int](name, workflow.Tasks{
		workflow.Task[int, int]{Name: "load", Handler: func(context.Context, int) (int, error) {
			return 0, workflow.Permanent(errors.New("the source is down"))
		}},
		workflow.Task[int, int]{Name: "transform", Dependencies: []string{"load"}, Handler: id},
		workflow.Task[int, int]{Name: "report", Dependencies: []string{"transform"}, Trigger: workflow.AllDone, Handler: id},
		workflow.Task[int, int]{Name: "notify", Dependencies: []string{"report"}, Handler: func(context.Context, int) (int, error) {
			return 0, workflow.Skip("quiet hours")
		}},
		workflow.Task[int, int]{Name: "archive", Dependencies: []string{"notify"}, Handler: id},
		workflow.Task[int, int]{Name: "tidy", Dependencies: []string{"archive"}, Trigger: workflow.NoneFailed, Handler: id},
		workflow.Task[workflow.Inputs, int]{Name: "final", Dependencies: []string{"tidy"}, Trigger: workflow.AllDone,
			Handler: func(ctx context.Context, in workflow.Inputs) (int, error) {
				_, err := workflow.Get[int](in, "tidy")
				if errors.Is(err, workflow.ErrDependencySkipped) {
					return 42, nil
				}
				return 0, err
			}},
	})
}

func TestInspectOfARulesRunMatchesInProcessInspect(t *testing.T) {
	ctx := testContext(t)
	local, wf := chain("chain"), chain("chain")
	c, queue := setup(t, registers(wf))
	_, lerr := local.Run(ctx, 1, workflow.WithRunID("chain-1"))
	_, err := temporalwf.Run(ctx, c, wf, 1, temporalwf.TaskQueue(queue), temporalwf.RunID("chain-1"))
	require.Error(t, lerr)
	require.Error(t, err)
	require.Equal(t, lerr.Error(), err.Error(), "the run fails naming the first failed task")
	var werr *workflow.WorkflowError
	require.ErrorAs(t, err, &werr)
	require.Equal(t, "load", werr.Task)

	want, err := local.Inspect(ctx, "chain-1")
	require.NoError(t, err)
	got, err := temporalwf.Inspect(ctx, c, wf, "chain-1")
	require.NoError(t, err)
	require.Equal(t, shape(want), shape(got))
	require.Equal(t, want.Error, got.Error)
	reasons := func(rs workflow.RunStatus) map[string]string {
		m := map[string]string{}
		for _, ts := range rs.Tasks {
			m[ts.Name] = string(ts.State) + ": " + ts.Error
		}
		return m
	}
	require.Equal(t, reasons(want), reasons(got))
	require.Equal(t, map[string]string{
		"load":      "failed: the source is down",
		"transform": `skipped: dependency "load" failed`,
		"report":    "succeeded: ",
		"notify":    "skipped: quiet hours",
		"archive":   `skipped: dependency "notify" was skipped`,
		"tidy":      "skipped: every dependency was skipped",
		"final":     "succeeded: ",
	}, reasons(got))
	fin, _ := got.Task("final")
	require.JSONEq(t, "42", string(fin.Output))
}

func TestASkipPropagatesThroughADiamond(t *testing.T) {
	ctx := testContext(t)
	var mu sync.Mutex
	var called []string
	joined := func(name string) func(context.Context, workflow.Inputs) (int, error) {
		return func(context.Context, workflow.Inputs) (int, error) {
			mu.Lock()
			called = append(called, name)
			mu.Unlock()
			return 1, nil
		}
	}
	// No trigger rule anywhere: a Skip still propagates, and the run
	// succeeds with the zero output.
	wf := workflow.MustNew[int, int]("diamond", workflow.Tasks{
		workflow.Task[int, int]{Name: "top", Retry: workflow.RetryPolicy{Attempts: 5}, Handler: func(context.Context, int) (int, error) {
			return 0, workflow.Skip("no orders today")
		}},
		workflow.Task[workflow.Inputs, int]{Name: "left", Dependencies: []string{"top"}, Handler: joined("left")},
		workflow.Task[workflow.Inputs, int]{Name: "right", Dependencies: []string{"top"}, Handler: joined("right")},
		workflow.Task[workflow.Inputs, int]{Name: "bottom", Dependencies: []string{"left", "right"}, Handler: joined("bottom")},
	})
	local := workflow.MustNew[int, int]("diamond", workflow.Tasks{
		workflow.Task[int, int]{Name: "top", Handler: func(context.Context, int) (int, error) { return 0, workflow.Skip("no orders today") }},
		workflow.Task[workflow.Inputs, int]{Name: "left", Dependencies: []string{"top"}, Handler: joined("x")},
		workflow.Task[workflow.Inputs, int]{Name: "right", Dependencies: []string{"top"}, Handler: joined("x")},
		workflow.Task[workflow.Inputs, int]{Name: "bottom", Dependencies: []string{"left", "right"}, Handler: joined("x")},
	})
	c, queue := setup(t, registers(wf))
	out, err := temporalwf.Run(ctx, c, wf, 1, temporalwf.TaskQueue(queue), temporalwf.RunID("diamond-1"))
	require.NoError(t, err, "a run whose tasks all succeeded or were skipped succeeds")
	require.Zero(t, out, "the output task was skipped: the zero Out")
	_, err = local.Run(ctx, 1, workflow.WithRunID("diamond-1"))
	require.NoError(t, err)
	mu.Lock()
	require.Empty(t, called, "no task below a skip ran")
	mu.Unlock()

	got, err := temporalwf.Inspect(ctx, c, wf, "diamond-1")
	require.NoError(t, err)
	want, err := local.Inspect(ctx, "diamond-1")
	require.NoError(t, err)
	require.Equal(t, shape(want), shape(got))
	for _, tc := range []struct{ task, why string }{
		{"top", "no orders today"},
		{"left", `dependency "top" was skipped`},
		{"right", `dependency "top" was skipped`},
		{"bottom", `dependency "right" was skipped`}, // the last skipped first, as in-process
	} {
		ts, _ := got.Task(tc.task)
		require.Equal(t, workflow.StateSkipped, ts.State, tc.task)
		require.Equal(t, tc.why, ts.Error, tc.task)
		lts, _ := want.Task(tc.task)
		require.Equal(t, lts.Error, ts.Error, tc.task)
	}
	top, _ := got.Task("top")
	require.Equal(t, 1, top.Attempts, "a Skip is never retried")
}
