package workflow_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/b3b01171/workflow"
)

// upstream is how a dependency in the trigger-rule tables ends.
type upstream struct {
	state   workflow.State
	handler func(ctx context.Context, in int) (int, error)
	timeout time.Duration
}

var upstreams = []upstream{
	{state: workflow.StateSucceeded, handler: func(_ context.Context, in int) (int, error) { return in, nil }},
	{state: workflow.StateFailed, handler: fail},
	{state: workflow.StateTimedOut, handler: waitForCtx, timeout: time.Second},
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
var ruleStarts = map[workflow.TriggerRule]func(a, b workflow.State) bool{
	workflow.AllSucceeded: func(a, b workflow.State) bool {
		return a == workflow.StateSucceeded && b == workflow.StateSucceeded
	},
	workflow.AllDone: func(a, b workflow.State) bool { return true },
	workflow.NoneFailed: func(a, b workflow.State) bool {
		return !failedState(a) && !failedState(b) && (a == workflow.StateSucceeded || b == workflow.StateSucceeded)
	},
	workflow.OneSucceeded: func(a, b workflow.State) bool {
		return a == workflow.StateSucceeded || b == workflow.StateSucceeded
	},
}

// dependencyGetErrors is what Get of a dependency that ended in each state wraps.
var dependencyGetErrors = map[workflow.State]error{
	workflow.StateFailed: workflow.ErrDependencyFailed, workflow.StateTimedOut: workflow.ErrDependencyFailed,
	workflow.StateCancelled: workflow.ErrDependencyFailed, workflow.StateSkipped: workflow.ErrDependencySkipped,
}

func TestEveryTriggerRuleAgainstEveryPairOfUpstreamStates(t *testing.T) {
	stores := map[string]func() workflow.Store{
		"memory":     func() workflow.Store { return workflow.NewMemoryStore() },
		"persistent": func() workflow.Store { return newJSONStore() },
	}
	for storeName, newStore := range stores {
		for rule, starts := range ruleStarts {
			for _, a := range upstreams {
				for _, b := range upstreams {
					name := fmt.Sprintf("%s/%s/a_%s/b_%s", storeName, rule, a.state, b.state)
					t.Run(name, func(t *testing.T) {
						synctest.Test(t, func(t *testing.T) {
							checkRule(t, newStore(), rule, a, b, starts(a.state, b.state))
						})
					})
				}
			}
		}
	}
}

// checkRule runs a and b (no dependencies) into t (rule), and t into an
// AllDone cleanup, whose output says whether t ran.
func checkRule(t *testing.T, store workflow.Store, rule workflow.TriggerRule, a, b upstream, wantRun bool) {
	var mu sync.Mutex
	got := map[string]error{} // what t's Get gave, by dependency
	w := newWorkflow[int, bool](t, "rules", workflow.Tasks{
		workflow.Task[int, int]{Name: "a", Handler: a.handler, Timeout: a.timeout},
		workflow.Task[int, int]{Name: "b", Handler: b.handler, Timeout: b.timeout},
		workflow.Task[workflow.Inputs, int]{Name: "t", Dependencies: []string{"a", "b"}, Trigger: rule,
			Handler: func(ctx context.Context, in workflow.Inputs) (int, error) {
				mu.Lock()
				defer mu.Unlock()
				for _, d := range []string{"a", "b"} {
					_, got[d] = workflow.Get[int](in, d)
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
	}, workflow.WithStore(store))
	out, err := w.Run(t.Context(), 7)
	rs, ierr := w.Inspect(t.Context(), "")
	require.NoError(t, ierr)
	requireCompleteEvents(t, rs)

	for name, up := range map[string]upstream{"a": a, "b": b} {
		ts, _ := rs.Task(name)
		assert.Equal(t, up.state, ts.State, "task %q", name)
	}
	ts, _ := rs.Task("t")
	if wantRun {
		assert.Equal(t, workflow.StateSucceeded, ts.State, "t should run")
		mu.Lock()
		for name, up := range map[string]upstream{"a": a, "b": b} {
			if rule == workflow.OneSucceeded && errors.Is(got[name], workflow.ErrNotFound) {
				// t started as the other succeeded, maybe before this one ended.
				assert.ErrorContains(t, got[name], "has not ended")
				continue
			}
			if want := dependencyGetErrors[up.state]; want != nil {
				assert.ErrorIs(t, got[name], want, "Get(%q) of a %s dependency", name, up.state)
			} else {
				assert.NoError(t, got[name], "Get(%q) of a succeeded dependency", name)
			}
		}
		mu.Unlock()
	} else {
		assert.Equal(t, workflow.StateSkipped, ts.State, "t should be skipped")
		assert.Contains(t, ts.Error, "dependenc", "t's status says why it was skipped")
	}
	cl, _ := rs.Task("cleanup")
	assert.Equal(t, workflow.StateSucceeded, cl.State, "an AllDone cleanup always runs")

	if failedState(a.state) || failedState(b.state) {
		assert.Equal(t, workflow.StateFailed, rs.State)
		werr := asWorkflowError(t, err)
		var failed []string
		for name, up := range map[string]upstream{"a": a, "b": b} {
			if failedState(up.state) {
				failed = append(failed, name)
			}
		}
		assert.Contains(t, failed, werr.Task, "the run's error names a failed task")
		return
	}
	require.NoError(t, err)
	assert.Equal(t, workflow.StateSucceeded, rs.State)
	assert.Equal(t, wantRun, out, "the output says whether t ran")
}

func TestASkipPropagatesThroughAFiveLevelDiamond(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var calls sync.Map
		called := func(name string) func(context.Context, workflow.Inputs) (int, error) {
			return func(context.Context, workflow.Inputs) (int, error) {
				calls.Store(name, true)
				return 1, nil
			}
		}
		skipping := func(context.Context, int) (int, error) { return 0, workflow.Skip("no orders today") }
		tasks := workflow.Tasks{workflow.Task[int, int]{Name: "l0", Handler: skipping}}
		prev := []string{"l0"}
		var below []string
		for level := 1; level <= 4; level++ {
			left, right := fmt.Sprintf("l%d_left", level), fmt.Sprintf("l%d_right", level)
			for _, name := range []string{left, right} {
				tasks = append(tasks, workflow.Task[workflow.Inputs, int]{Name: name, Dependencies: prev, Handler: called(name)})
				below = append(below, name)
			}
			prev = []string{left, right}
		}
		tasks = append(tasks, workflow.Task[workflow.Inputs, int]{Name: "sink", Dependencies: prev, Handler: called("sink")})
		below = append(below, "sink")
		w := newWorkflow[int, int](t, "diamond", tasks)

		out, err := w.Run(t.Context(), 1)
		require.NoError(t, err, "a run whose tasks succeeded or were skipped succeeds")
		assert.Zero(t, out, "the output task was skipped: the zero Out")
		rs, err := w.Status(t.Context())
		require.NoError(t, err)
		requireCompleteEvents(t, rs)
		assert.Equal(t, workflow.StateSucceeded, rs.State)
		l0, _ := rs.Task("l0")
		assert.Equal(t, workflow.StateSkipped, l0.State)
		assert.Equal(t, "no orders today", l0.Error, "the handler's reason is in the status")
		assert.Equal(t, 1, l0.Attempts, "a skip is never retried")
		for _, name := range below {
			ts, _ := rs.Task(name)
			assert.Equal(t, workflow.StateSkipped, ts.State, name)
			assert.Regexp(t, `^dependency "l\d(_left|_right)?" was skipped$`, ts.Error, name)
			_, ran := calls.Load(name)
			assert.False(t, ran, "%s never runs", name)
		}
	})
}

func TestASkipInOneBranchLeavesTheOtherAndNoneFailedJoinsThem(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWorkflow[int, int](t, "branch", workflow.Tasks{
			workflow.Task[int, int]{Name: "express", Handler: func(_ context.Context, in int) (int, error) {
				if in < 100 {
					return 0, workflow.Skip("small order")
				}
				return in, nil
			}},
			workflow.Task[int, int]{Name: "standard", Handler: func(_ context.Context, in int) (int, error) { return in * 2, nil }},
			workflow.Task[int, int]{Name: "express_label", Dependencies: []string{"express"}, Handler: identity},
			workflow.Task[workflow.Inputs, int]{Name: "ship", Dependencies: []string{"express_label", "standard"}, Trigger: workflow.NoneFailed,
				Handler: func(_ context.Context, in workflow.Inputs) (int, error) {
					if v, err := workflow.Get[int](in, "express_label"); err == nil {
						return v, nil
					} else if !errors.Is(err, workflow.ErrDependencySkipped) {
						return 0, err
					}
					return workflow.Get[int](in, "standard")
				}},
		})
		out, err := w.Run(t.Context(), 10)
		require.NoError(t, err)
		assert.Equal(t, 20, out, "the standard branch")
		rs, _ := w.Status(t.Context())
		requireCompleteEvents(t, rs)
		for name, want := range map[string]workflow.State{"express": workflow.StateSkipped, "express_label": workflow.StateSkipped,
			"standard": workflow.StateSucceeded, "ship": workflow.StateSucceeded} {
			ts, _ := rs.Task(name)
			assert.Equal(t, want, ts.State, name)
		}
		out, err = w.Run(t.Context(), 500)
		require.NoError(t, err)
		assert.Equal(t, 500, out, "the express branch")
	})
}

func TestOneSucceededStartsWithoutWaitingForTheOtherDependencies(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		firstRan := make(chan struct{})
		var slowGet error
		w := newWorkflow[int, int](t, "race", workflow.Tasks{
			workflow.Task[int, int]{Name: "fast", Handler: func(_ context.Context, in int) (int, error) { return in + 1, nil }},
			workflow.Task[int, int]{Name: "slow", Handler: func(ctx context.Context, in int) (int, error) {
				<-firstRan // ends only once "first" has run
				return in + 2, nil
			}},
			workflow.Task[workflow.Inputs, int]{Name: "first", Dependencies: []string{"fast", "slow"}, Trigger: workflow.OneSucceeded,
				Handler: func(_ context.Context, in workflow.Inputs) (int, error) {
					defer close(firstRan)
					_, slowGet = workflow.Get[int](in, "slow")
					return workflow.Get[int](in, "fast")
				}},
		}, workflow.WithOutput("first"))
		out, err := w.Run(t.Context(), 1)
		require.NoError(t, err)
		assert.Equal(t, 2, out)
		require.ErrorIs(t, slowGet, workflow.ErrNotFound, "Get of a dependency still running")
		assert.Contains(t, slowGet.Error(), "has not ended")
		rs, _ := w.Status(t.Context())
		requireCompleteEvents(t, rs)
		slow, _ := rs.Task("slow")
		assert.Equal(t, workflow.StateSucceeded, slow.State, "the other dependency kept running, and its end is in history")
	})
}

func TestWithoutTriggerRulesAFailureCancelsTheTasksUnderWay(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		slowStarted := make(chan struct{})
		w := newWorkflow[int, int](t, "plain", workflow.Tasks{
			intTask("a"),
			workflow.Task[int, int]{Name: "bad", Handler: func(context.Context, int) (int, error) {
				<-slowStarted
				return 0, errBoom
			}},
			workflow.Task[int, int]{Name: "slow", Handler: func(ctx context.Context, in int) (int, error) {
				close(slowStarted)
				return waitForCtx(ctx, in)
			}},
			workflow.Task[workflow.Inputs, int]{Name: "join", Dependencies: []string{"a", "bad", "slow"},
				Handler: func(context.Context, workflow.Inputs) (int, error) { return 0, nil }},
		})
		_, err := w.Run(t.Context(), 1)
		require.Equal(t, "bad", asWorkflowError(t, err).Task)
		rs, _ := w.Status(t.Context())
		requireCompleteEvents(t, rs)
		slow, _ := rs.Task("slow")
		assert.Equal(t, workflow.StateCancelled, slow.State)
	})
}

func TestWithATriggerRuleAFailureCancelsNothingAndCleanupRuns(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		release := make(chan struct{})
		w := newWorkflow[int, int](t, "etl", workflow.Tasks{
			workflow.Task[int, int]{Name: "load", Handler: fail},
			workflow.Task[int, int]{Name: "score", Handler: func(ctx context.Context, in int) (int, error) {
				select {
				case <-release:
					return in, nil
				case <-ctx.Done():
					return 0, ctx.Err()
				}
			}},
			workflow.Task[workflow.Inputs, int]{Name: "report", Dependencies: []string{"load", "score"}, Trigger: workflow.AllDone,
				Handler: func(_ context.Context, in workflow.Inputs) (int, error) { return workflow.Get[int](in, "score") }},
		})
		x, err := w.Start(t.Context(), 3)
		require.NoError(t, err)
		synctest.Wait() // load has failed; score waits
		rs, _ := w.Inspect(t.Context(), x.ID())
		score, _ := rs.Task("score")
		require.Equal(t, workflow.StateRunning, score.State, "load's failure did not cancel score")
		close(release)
		_, err = x.Wait(t.Context())
		werr := asWorkflowError(t, err)
		assert.Equal(t, "load", werr.Task, "the run fails naming the first failed task")
		rs, _ = w.Inspect(t.Context(), x.ID())
		requireCompleteEvents(t, rs)
		report, _ := rs.Task("report")
		assert.Equal(t, workflow.StateSucceeded, report.State)
	})
}

func TestTriggerRulesAcrossRetryPassesAndResume(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var failing sync.Map // task → still failing
		failing.Store("b", true)
		flaky := func(name string) func(context.Context, int) (int, error) {
			return func(_ context.Context, in int) (int, error) {
				if v, _ := failing.Load(name); v == true {
					return 0, errBoom
				}
				return in, nil
			}
		}
		w := newWorkflow[int, int](t, "again", workflow.Tasks{
			workflow.Task[int, int]{Name: "a", Handler: flaky("a")},
			workflow.Task[int, int]{Name: "b", Handler: flaky("b")},
			workflow.Task[workflow.Inputs, int]{Name: "any", Dependencies: []string{"a", "b"}, Trigger: workflow.OneSucceeded,
				Handler: func(_ context.Context, in workflow.Inputs) (int, error) { return 5, nil }},
			workflow.Task[workflow.Inputs, int]{Name: "both", Dependencies: []string{"a", "b"},
				Handler: func(_ context.Context, in workflow.Inputs) (int, error) { return 6, nil }},
			workflow.Task[workflow.Inputs, int]{Name: "end", Dependencies: []string{"any", "both"}, Trigger: workflow.AllDone,
				Handler: func(_ context.Context, in workflow.Inputs) (int, error) {
					v, err := workflow.Get[int](in, "both")
					if errors.Is(err, workflow.ErrDependencySkipped) {
						return -1, nil
					}
					return v, err
				}},
		})
		x, err := w.Start(t.Context(), 1)
		require.NoError(t, err)
		_, err = x.Wait(t.Context())
		require.Equal(t, "b", asWorkflowError(t, err).Task)
		rs, _ := w.Inspect(t.Context(), x.ID())
		for name, want := range map[string]workflow.State{"a": workflow.StateSucceeded, "b": workflow.StateFailed,
			"any": workflow.StateSucceeded, "both": workflow.StateSkipped, "end": workflow.StateSucceeded} {
			ts, _ := rs.Task(name)
			assert.Equal(t, want, ts.State, name)
		}

		failing.Store("b", false)
		out, err := w.Resume(t.Context(), x.ID())
		require.NoError(t, err)
		assert.Equal(t, -1, out, "end succeeded in the first pass: it is not run again, and keeps its output")
		rs, _ = w.Inspect(t.Context(), x.ID())
		requireCompleteEvents(t, rs)
		for _, name := range []string{"a", "b", "any", "both", "end"} {
			ts, _ := rs.Task(name)
			assert.Equal(t, workflow.StateSucceeded, ts.State, name)
		}
	})
}

func TestTriggerRuleString(t *testing.T) {
	for rule, want := range map[workflow.TriggerRule]string{
		workflow.AllSucceeded: "all_succeeded", workflow.AllDone: "all_done", workflow.NoneFailed: "none_failed",
		workflow.OneSucceeded: "one_succeeded", workflow.TriggerRule(9): "TriggerRule(9)",
	} {
		assert.Equal(t, want, rule.String())
	}
}
