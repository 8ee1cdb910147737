package workflow_test

import (
	"context"
	"math"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/b3b01171/workflow"
)

// identity is a handler for tasks whose work does not matter.
func identity(_ context.Context, in int) (int, error) { return in, nil }

// intTask is an int → int task with the given dependencies.
func intTask(name string, deps ...string) workflow.Task[int, int] {
	return workflow.Task[int, int]{Name: name, Dependencies: deps, Handler: identity}
}

// requireDefinitionError checks that err is New's error for an invalid
// definition, wrapping ErrInvalidWorkflow and each of sentinels.
func requireDefinitionError(t *testing.T, err error, sentinels ...error) *workflow.WorkflowError {
	t.Helper()
	require.Error(t, err)
	werr := asWorkflowError(t, err)
	require.ErrorIs(t, err, workflow.ErrInvalidWorkflow)
	for _, s := range sentinels {
		require.ErrorIs(t, err, s)
	}
	assert.Empty(t, werr.RunID)
	assert.Empty(t, werr.Task)
	require.Contains(t, werr.Details, "problems")
	return werr
}

func TestNewRejectsEachBadDefinition(t *testing.T) {
	negative := func(p workflow.RetryPolicy) error {
		_, err := workflow.New[int, int]("w", workflow.Tasks{workflow.Task[int, int]{Name: "a", Handler: identity, Retry: p}})
		return err
	}
	tests := []struct {
		name     string
		new      func() error
		sentinel error
		mentions []string
	}{
		{"EmptyWorkflowName", func() error {
			_, err := workflow.New[int, int]("", workflow.Tasks{intTask("a")})
			return err
		}, workflow.ErrInvalidWorkflow, []string{"empty name"}},
		{"NoTasks", func() error {
			_, err := workflow.New[int, int]("w", nil)
			return err
		}, workflow.ErrInvalidWorkflow, []string{"no tasks"}},
		{"EmptyTaskName", func() error {
			_, err := workflow.New[int, int]("w", workflow.Tasks{intTask("")})
			return err
		}, workflow.ErrInvalidWorkflow, []string{"empty name"}},
		{"DuplicateTaskName", func() error {
			_, err := workflow.New[int, int]("w", workflow.Tasks{intTask("a"), intTask("a")})
			return err
		}, workflow.ErrDuplicateTask, []string{`"a"`}},
		{"NilHandler", func() error {
			_, err := workflow.New[int, int]("w", workflow.Tasks{workflow.Task[int, int]{Name: "a"}})
			return err
		}, workflow.ErrInvalidWorkflow, []string{`"a"`, "nil Handler"}},
		{"NilTask", func() error {
			_, err := workflow.New[int, int]("w", workflow.Tasks{nil, intTask("a")})
			return err
		}, workflow.ErrInvalidWorkflow, []string{"task 0 is nil"}},
		{"NilTaskPointer", func() error {
			var p *workflow.Task[int, int]
			_, err := workflow.New[int, int]("w", workflow.Tasks{intTask("a"), p})
			return err
		}, workflow.ErrInvalidWorkflow, []string{"task 1 is nil"}},
		{"UnknownDependency", func() error {
			_, err := workflow.New[int, int]("w", workflow.Tasks{intTask("a", "ghost")})
			return err
		}, workflow.ErrUnknownDependency, []string{`"a"`, `"ghost"`}},
		{"RepeatedDependency", func() error {
			_, err := workflow.New[int, int]("w", workflow.Tasks{intTask("a"), intTask("b", "a", "a")})
			return err
		}, workflow.ErrInvalidWorkflow, []string{`"b"`, "more than once"}},
		{"Cycle", func() error {
			_, err := workflow.New[int, int]("w", workflow.Tasks{intTask("a", "c"), intTask("b", "a"), intTask("c", "b"), intTask("d", "c")})
			requireCycleNamed(t, err, "a", "b", "c")
			return err
		}, workflow.ErrCycle, []string{`"a"`, `"b"`, `"c"`, "→"}},
		{"SelfLoop", func() error {
			_, err := workflow.New[int, int]("w", workflow.Tasks{intTask("root"), intTask("self", "self")})
			return err
		}, workflow.ErrCycle, []string{`"self" → "self"`}},
		{"TypeMismatchWithDependency", func() error {
			_, err := workflow.New[int, int]("w", workflow.Tasks{
				workflow.Task[int, string]{Name: "text", Handler: func(context.Context, int) (string, error) { return "", nil }},
				intTask("num", "text"),
			})
			return err
		}, workflow.ErrTypeMismatch, []string{`"num"`, `"text"`, "int", "string"}},
		{"TypeMismatchWithWorkflowInput", func() error {
			_, err := workflow.New[string, int]("w", workflow.Tasks{intTask("a")})
			return err
		}, workflow.ErrTypeMismatch, []string{`"a"`, "int", "string", "workflow input"}},
		{"TypeMismatchWithWorkflowOutput", func() error {
			_, err := workflow.New[int, string]("w", workflow.Tasks{intTask("a")})
			return err
		}, workflow.ErrTypeMismatch, []string{`"a"`, "int", "string", "workflow output"}},
		{"SeveralDependenciesWithoutInputs", func() error {
			_, err := workflow.New[int, int]("w", workflow.Tasks{intTask("a"), intTask("b"), intTask("join", "a", "b")})
			return err
		}, workflow.ErrTypeMismatch, []string{`"join"`, "Inputs"}},
		{"SeveralSinksWithoutWithOutput", func() error {
			_, err := workflow.New[int, int]("w", workflow.Tasks{intTask("a"), intTask("b")})
			return err
		}, workflow.ErrInvalidWorkflow, []string{`"a"`, `"b"`, "WithOutput"}},
		{"WithOutputOfUnknownTask", func() error {
			_, err := workflow.New[int, int]("w", workflow.Tasks{intTask("a")}, workflow.WithOutput("ghost"))
			return err
		}, workflow.ErrInvalidWorkflow, []string{`"ghost"`}},
		{"NegativeTimeout", func() error {
			_, err := workflow.New[int, int]("w", workflow.Tasks{workflow.Task[int, int]{Name: "a", Handler: identity, Timeout: -time.Second}})
			return err
		}, workflow.ErrInvalidWorkflow, []string{`"a"`, "Timeout"}},
		{"NegativeAttempts", func() error { return negative(workflow.RetryPolicy{Attempts: -1}) },
			workflow.ErrInvalidWorkflow, []string{"Attempts"}},
		{"NegativeDelay", func() error { return negative(workflow.RetryPolicy{Attempts: 2, Delay: -time.Second}) },
			workflow.ErrInvalidWorkflow, []string{"Delay"}},
		{"NegativeBackoff", func() error { return negative(workflow.RetryPolicy{Attempts: 2, Backoff: -2}) },
			workflow.ErrInvalidWorkflow, []string{"Backoff"}},
		{"NaNBackoff", func() error { return negative(workflow.RetryPolicy{Attempts: 2, Backoff: math.NaN()}) },
			workflow.ErrInvalidWorkflow, []string{"Backoff"}},
		{"InfiniteBackoff", func() error { return negative(workflow.RetryPolicy{Attempts: 2, Backoff: math.Inf(1)}) },
			workflow.ErrInvalidWorkflow, []string{"Backoff"}},
		{"NegativeMaxDelay", func() error { return negative(workflow.RetryPolicy{Attempts: 2, MaxDelay: -time.Second}) },
			workflow.ErrInvalidWorkflow, []string{"MaxDelay"}},
		{"JitterAboveOne", func() error { return negative(workflow.RetryPolicy{Attempts: 2, Jitter: 1.5}) },
			workflow.ErrInvalidWorkflow, []string{"Jitter"}},
		{"NegativeJitter", func() error { return negative(workflow.RetryPolicy{Attempts: 2, Jitter: -0.1}) },
			workflow.ErrInvalidWorkflow, []string{"Jitter"}},
		{"NaNJitter", func() error { return negative(workflow.RetryPolicy{Attempts: 2, Jitter: math.NaN()}) },
			workflow.ErrInvalidWorkflow, []string{"Jitter"}},
		{"NilOption", func() error {
			_, err := workflow.New[int, int]("w", workflow.Tasks{intTask("a")}, nil)
			return err
		}, workflow.ErrInvalidWorkflow, []string{"nil Option"}},
		{"NegativeMaxConcurrency", func() error {
			_, err := workflow.New[int, int]("w", workflow.Tasks{intTask("a")}, workflow.WithMaxConcurrency(-1))
			return err
		}, workflow.ErrInvalidWorkflow, []string{"WithMaxConcurrency(-1)"}},
		{"NilStore", func() error {
			_, err := workflow.New[int, int]("w", workflow.Tasks{intTask("a")}, workflow.WithStore(nil))
			return err
		}, workflow.ErrInvalidWorkflow, []string{"WithStore(nil)"}},
		{"NilMemoryStorePointer", func() error {
			var s *workflow.MemoryStore
			_, err := workflow.New[int, int]("w", workflow.Tasks{intTask("a")}, workflow.WithStore(s))
			return err
		}, workflow.ErrInvalidWorkflow, []string{"WithStore(nil)"}},
		{"NilHook", func() error {
			_, err := workflow.New[int, int]("w", workflow.Tasks{intTask("a")}, workflow.WithHook(nil))
			return err
		}, workflow.ErrInvalidWorkflow, []string{"WithHook(nil)"}},
		{"NilValidator", func() error {
			_, err := workflow.New[int, int]("w", workflow.Tasks{intTask("a")}, workflow.WithValidator(nil))
			return err
		}, workflow.ErrInvalidWorkflow, []string{"WithValidator(nil)"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var err error
			require.NotPanics(t, func() { err = tt.new() })

			werr := requireDefinitionError(t, err, tt.sentinel)
			problems := werr.Details["problems"].([]string)
			// One problem says it all (others may follow from it).
			assert.True(t, slices.ContainsFunc(problems, func(p string) bool {
				for _, m := range tt.mentions {
					if !strings.Contains(p, m) {
						return false
					}
				}
				return true
			}), "no problem mentions all of %q: %q", tt.mentions, problems)
			assert.Len(t, problems, len(slices.Compact(slices.Sorted(slices.Values(problems)))), "a problem reported twice: %q", problems)
		})
	}
}

func TestNewReportsEveryProblemAtOnce(t *testing.T) {
	_, err := workflow.New[int, int]("",
		workflow.Tasks{
			intTask(""),                    // empty name
			intTask("dup"), intTask("dup"), // duplicate
			workflow.Task[int, int]{Name: "nil"}, // nil handler
			nil,                                  // nil task
			intTask("orphan", "ghost"),           // unknown dependency
			intTask("x", "y"), intTask("y", "x"), // cycle
			workflow.Task[string, int]{Name: "typed", Handler: func(context.Context, string) (int, error) { return 0, nil }}, // takes string, the input is int
			workflow.Task[int, int]{Name: "neg", Handler: identity, Timeout: -1, Retry: workflow.RetryPolicy{Jitter: 2}},
		},
		workflow.WithMaxConcurrency(-3),
	)

	werr := requireDefinitionError(t, err,
		workflow.ErrDuplicateTask, workflow.ErrUnknownDependency, workflow.ErrCycle, workflow.ErrTypeMismatch)
	problems, ok := werr.Details["problems"].([]string)
	require.True(t, ok, "Details[problems] is a []string")
	msg := err.Error()
	for _, m := range []string{
		"empty name", `"dup"`, "nil Handler", "is nil", `"ghost"`, `"typed"`,
		"Timeout", "Jitter", "WithMaxConcurrency(-3)",
	} {
		assert.Contains(t, msg, m)
	}
	assert.NotContains(t, msg, "WithOutput", "the extra sink is the unknown dependency's doing, reported already")
	// The workflow name, the task name, duplicate, nil handler, nil task,
	// unknown dependency, cycle, type, timeout, jitter, concurrency:
	// eleven problems at least.
	assert.GreaterOrEqual(t, len(problems), 11, "problems: %q", problems)
	requireCycleNamed(t, err, "x", "y")
}

func TestNewReportsEveryProblemOfARetryPolicy(t *testing.T) {
	bad := workflow.RetryPolicy{Attempts: -1, Jitter: 3}
	_, err := workflow.New[int, int]("w", workflow.Tasks{
		workflow.Task[int, int]{Name: "a", Handler: identity, Retry: bad},
	})

	werr := requireDefinitionError(t, err)
	assert.Equal(t, []string{
		`task "a": Retry.Attempts is negative (-1)`,
		`task "a": Retry.Jitter is 3; it must be between 0 and 1`,
	}, werr.Details["problems"])

	w := newWorkflow[int, int](t, "w", workflow.Tasks{intTask("a")})
	_, err = w.Run(t.Context(), 1, workflow.OverrideRetry("a", bad))
	require.ErrorIs(t, err, workflow.ErrInvalidInput)
	assert.Equal(t, `workflow "w": OverrideRetry("a"): Retry.Attempts is negative (-1); Retry.Jitter is 3; it must be between 0 and 1`, err.Error())
}

func TestNewReportsAnUnknownDependencyAloneAndSuggestsTheClosestName(t *testing.T) {
	tests := map[string]struct {
		dep  string
		want string
	}{
		"OneLetterMissing": {"fetc", `task "load" depends on "fetc", which is not defined (did you mean "fetch"?)`},
		"LettersSwapped":   {"fecth", `task "load" depends on "fecth", which is not defined (did you mean "fetch"?)`},
		"CaseDiffers":      {"Fetch", `task "load" depends on "Fetch", which is not defined (did you mean "fetch"?)`},
		"NothingClose":     {"warehouse", `task "load" depends on "warehouse", which is not defined`},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			// "load" loses its edge, so "transform" and "load" both look
			// like the output: a consequence of the typo, not reported.
			_, err := workflow.New[int, int]("etl", workflow.Tasks{
				intTask("fetch"), intTask("transform", "fetch"), intTask("load", tt.dep),
			})

			werr := requireDefinitionError(t, err, workflow.ErrUnknownDependency)
			assert.Equal(t, []string{tt.want}, werr.Details["problems"])
			assert.Equal(t, `workflow "etl": invalid definition: `+tt.want, err.Error())
		})
	}
}

func TestNewReportsSeveralSinksWhenNoDependencyIsUnknown(t *testing.T) {
	_, err := workflow.New[int, int]("etl", workflow.Tasks{intTask("fetch"), intTask("transform", "fetch"), intTask("load")})

	werr := requireDefinitionError(t, err)
	assert.Equal(t, []string{`2 tasks have no dependents ("transform", "load"); name the one that gives the output with WithOutput`},
		werr.Details["problems"])
}

// requireCycleNamed checks that err names the cycle of tasks, which lists
// in the order data flows, in some rotation: a → b → c → a or b → c → a → b.
func requireCycleNamed(t *testing.T, err error, tasks ...string) {
	t.Helper()
	var rotations []string
	for k := range tasks {
		var names []string
		for i := range len(tasks) + 1 {
			names = append(names, strconv.Quote(tasks[(k+i)%len(tasks)]))
		}
		rotations = append(rotations, strings.Join(names, " → "))
	}
	assert.True(t, slices.ContainsFunc(rotations, func(r string) bool { return strings.Contains(err.Error(), r) }),
		"error names none of %q: %v", rotations, err)
}

func TestNewNamesEveryTaskOnEachCycle(t *testing.T) {
	_, err := workflow.New[int, int]("cycles", workflow.Tasks{
		intTask("start"),
		workflow.Task[workflow.Inputs, int]{Name: "a", Dependencies: []string{"start", "c"}, // a → b → c → a
			Handler: func(context.Context, workflow.Inputs) (int, error) { return 0, nil }},
		intTask("b", "a"), intTask("c", "b"),
		intTask("p", "q"), intTask("q", "p"), // p → q → p
		intTask("behind", "c"), // on no cycle, but behind one
	}, workflow.WithOutput("start"))

	werr := requireDefinitionError(t, err, workflow.ErrCycle)
	problems := werr.Details["problems"].([]string)
	require.Len(t, problems, 2, "one problem per cycle: %q", problems)
	requireCycleNamed(t, err, "a", "b", "c")
	requireCycleNamed(t, err, "p", "q")
	assert.NotContains(t, err.Error(), `"behind" →`)
	assert.NotContains(t, err.Error(), `"start" →`)
}

func TestMustNewPanicsOnAnInvalidDefinition(t *testing.T) {
	defer func() {
		v := recover()
		require.NotNil(t, v, "MustNew did not panic")
		err, ok := v.(error)
		require.True(t, ok, "MustNew panicked with %T, not an error", v)
		require.ErrorIs(t, err, workflow.ErrDuplicateTask)
	}()
	workflow.MustNew[int, int]("w", workflow.Tasks{intTask("a"), intTask("a")})
}

func TestMustNewReturnsTheWorkflowOfAValidDefinition(t *testing.T) {
	w := workflow.MustNew[int, int]("valid", workflow.Tasks{intTask("a")})

	require.NotNil(t, w)
	assert.Equal(t, "valid", w.Name())
	out, err := w.Run(t.Context(), 5)
	require.NoError(t, err)
	assert.Equal(t, 5, out)
}

func TestStatusListsTasksInTopologicalOrder(t *testing.T) {
	// Declared backwards: each task before the one it depends on.
	w := newWorkflow[int, int](t, "topo", workflow.Tasks{
		intTask("d", "c"), intTask("c", "b"), intTask("b", "a"), intTask("a"),
	})
	_, err := w.Run(t.Context(), 1)
	require.NoError(t, err)

	rs, err := w.Status(t.Context())

	require.NoError(t, err)
	names := make([]string, len(rs.Tasks))
	for i, ts := range rs.Tasks {
		names[i] = ts.Name
	}
	assert.Equal(t, []string{"a", "b", "c", "d"}, names)
}

func TestDependentTaskStartsOnlyAfterAllItsDependenciesSucceeded(t *testing.T) {
	var order []string
	record := func(name string) func(context.Context, int) (int, error) {
		return func(_ context.Context, in int) (int, error) {
			order = append(order, name) // tasks here never overlap: each waits for the last
			return in, nil
		}
	}
	w := newWorkflow[int, int](t, "sequence", workflow.Tasks{
		workflow.Task[int, int]{Name: "third", Dependencies: []string{"second"}, Handler: record("third")},
		workflow.Task[int, int]{Name: "second", Dependencies: []string{"first"}, Handler: record("second")},
		workflow.Task[int, int]{Name: "first", Handler: record("first")},
	})

	_, err := w.Run(t.Context(), 1)

	require.NoError(t, err)
	assert.Equal(t, "first,second,third", strings.Join(order, ","))
}
