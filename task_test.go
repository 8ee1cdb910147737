package workflow_test

import (
	"context"
	"fmt"
	"strconv"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/b3b01171/workflow"
)

// item is a value that flows between tasks by pointer.
type item struct{ N int }

// label is an interface that a task may take in place of the concrete type
// its dependency gives.
type label interface{ Label() string }

type named string

func (n named) Label() string { return string(n) }

func TestRootTaskReceivesWorkflowInput(t *testing.T) {
	var got int
	w := newWorkflow[int, int](t, "root", workflow.Tasks{
		workflow.Task[int, int]{Name: "root", Handler: func(_ context.Context, in int) (int, error) {
			got = in
			return in, nil
		}},
	})

	_, err := w.Run(t.Context(), 42)

	require.NoError(t, err)
	assert.Equal(t, 42, got)
}

func TestTaskWithOneDependencyReceivesItsOutput(t *testing.T) {
	w := newWorkflow[int, string](t, "chain", workflow.Tasks{
		workflow.Task[int, int]{Name: "double", Handler: func(_ context.Context, in int) (int, error) { return in * 2, nil }},
		workflow.Task[int, string]{Name: "format", Dependencies: []string{"double"},
			Handler: func(_ context.Context, in int) (string, error) { return "n=" + strconv.Itoa(in), nil }},
	})

	out, err := w.Run(t.Context(), 21)

	require.NoError(t, err)
	assert.Equal(t, "n=42", out)
}

func TestTaskWithSeveralDependenciesReadsThemWithGet(t *testing.T) {
	w := newWorkflow[int, string](t, "join", workflow.Tasks{
		workflow.Task[int, int]{Name: "plus", Handler: func(_ context.Context, in int) (int, error) { return in + 1, nil }},
		workflow.Task[int, string]{Name: "text", Handler: func(_ context.Context, in int) (string, error) { return "x" + strconv.Itoa(in), nil }},
		workflow.Task[workflow.Inputs, string]{Name: "join", Dependencies: []string{"plus", "text"},
			Handler: func(_ context.Context, in workflow.Inputs) (string, error) {
				n, err := workflow.Get[int](in, "plus")
				if err != nil {
					return "", err
				}
				s, err := workflow.Get[string](in, "text")
				if err != nil {
					return "", err
				}
				return fmt.Sprintf("%d/%s", n, s), nil
			}},
	})

	out, err := w.Run(t.Context(), 1)

	require.NoError(t, err)
	assert.Equal(t, "2/x1", out)
}

func TestTaskMayTakeInputsFromASingleDependency(t *testing.T) {
	w := newWorkflow[int, int](t, "single-inputs", workflow.Tasks{
		workflow.Task[int, int]{Name: "a", Handler: func(_ context.Context, in int) (int, error) { return in + 1, nil }},
		workflow.Task[workflow.Inputs, int]{Name: "b", Dependencies: []string{"a"},
			Handler: func(_ context.Context, in workflow.Inputs) (int, error) { return workflow.Get[int](in, "a") }},
	})

	out, err := w.Run(t.Context(), 1)

	require.NoError(t, err)
	assert.Equal(t, 2, out)
}

// getErrors runs a join task whose Get calls are described by ask, and
// returns the error of each call.
func getErrors(t *testing.T, ask func(in workflow.Inputs) []error) []error {
	t.Helper()
	var errs []error
	w := newWorkflow[int, int](t, "get", workflow.Tasks{
		workflow.Task[int, int]{Name: "num", Handler: func(_ context.Context, in int) (int, error) { return in, nil }},
		workflow.Task[int, string]{Name: "str", Handler: func(_ context.Context, in int) (string, error) { return "s", nil }},
		workflow.Task[int, int]{Name: "other", Dependencies: []string{"num"},
			Handler: func(_ context.Context, in int) (int, error) { return in, nil }},
		workflow.Task[workflow.Inputs, int]{Name: "join", Dependencies: []string{"num", "str"},
			Handler: func(_ context.Context, in workflow.Inputs) (int, error) {
				errs = ask(in)
				return 0, nil
			}},
	}, workflow.WithOutput("join"))
	_, err := w.Run(t.Context(), 1)
	require.NoError(t, err)
	return errs
}

func TestGetOfAnUnknownTaskWrapsErrNotFound(t *testing.T) {
	errs := getErrors(t, func(in workflow.Inputs) []error {
		_, errUnknown := workflow.Get[int](in, "nope")
		_, errNotDep := workflow.Get[int](in, "other") // defined, but not a dependency of join
		return []error{errUnknown, errNotDep}
	})

	require.Len(t, errs, 2)
	require.ErrorIs(t, errs[0], workflow.ErrNotFound)
	assert.Contains(t, errs[0].Error(), `"nope"`)
	require.ErrorIs(t, errs[1], workflow.ErrNotFound)
	assert.Contains(t, errs[1].Error(), `"other"`)
}

func TestGetOfTheWrongTypeWrapsErrTypeMismatch(t *testing.T) {
	errs := getErrors(t, func(in workflow.Inputs) []error {
		_, err := workflow.Get[int](in, "str")
		return []error{err}
	})

	require.Len(t, errs, 1)
	require.ErrorIs(t, errs[0], workflow.ErrTypeMismatch)
	assert.Contains(t, errs[0].Error(), "int")
	assert.Contains(t, errs[0].Error(), "string")
	assert.Contains(t, errs[0].Error(), `"str"`)
}

func TestGetMistakesFailTheTaskAtOnceWhateverItsRetryPolicy(t *testing.T) {
	tests := map[string]struct {
		get      func(in workflow.Inputs) error
		sentinel error
		says     string
	}{
		"NotADependency": {func(in workflow.Inputs) error { _, err := workflow.Get[int](in, "fetc"); return err },
			workflow.ErrNotFound, `Get("fetc"): not a dependency of this task (did you mean "fetch"?)`},
		"WrongType": {func(in workflow.Inputs) error { _, err := workflow.Get[string](in, "fetch"); return err },
			workflow.ErrTypeMismatch, `Get[string]("fetch"): the task gives int`},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				var calls atomic.Int32
				w := newWorkflow[int, int](t, "report", workflow.Tasks{
					intTask("fetch"), intTask("price"),
					workflow.Task[workflow.Inputs, int]{Name: "report", Dependencies: []string{"fetch", "price"},
						Retry: workflow.RetryPolicy{Attempts: 5, Delay: time.Hour},
						Handler: func(_ context.Context, in workflow.Inputs) (int, error) {
							calls.Add(1)
							return 0, tt.get(in)
						}},
				})
				start := time.Now()

				_, err := w.Run(t.Context(), 1, workflow.WithRunID("r1"))

				require.ErrorIs(t, err, tt.sentinel)
				assert.Equal(t, `workflow "report" run r1: task "report" failed: `+tt.says, err.Error())
				assert.Equal(t, int32(1), calls.Load(), "a mistake in the code is not retried")
				assert.Equal(t, 1, asWorkflowError(t, err).Attempts)
				assert.Zero(t, time.Since(start), "no retry delay")
			})
		})
	}
}

func TestGetFromZeroInputsWrapsErrNotFound(t *testing.T) {
	_, err := workflow.Get[int](workflow.Inputs{}, "a")

	require.ErrorIs(t, err, workflow.ErrNotFound)
}

func TestEmptyStructInputAndOutputWork(t *testing.T) {
	var calls int
	w := newWorkflow[struct{}, struct{}](t, "nothing", workflow.Tasks{
		workflow.Task[struct{}, int]{Name: "make", Handler: func(context.Context, struct{}) (int, error) { calls++; return 7, nil }},
		workflow.Task[int, struct{}]{Name: "sink", Dependencies: []string{"make"},
			Handler: func(_ context.Context, in int) (struct{}, error) { calls += in; return struct{}{}, nil }},
	})

	out, err := w.Run(t.Context(), struct{}{})

	require.NoError(t, err)
	assert.Equal(t, struct{}{}, out)
	assert.Equal(t, 8, calls)
}

func TestWithOutputNamesTheTaskThatGivesTheOutput(t *testing.T) {
	w := newWorkflow[int, string](t, "two-sinks", workflow.Tasks{
		workflow.Task[int, int]{Name: "number", Handler: func(_ context.Context, in int) (int, error) { return in, nil }},
		workflow.Task[int, string]{Name: "text", Handler: func(_ context.Context, in int) (string, error) { return "t" + strconv.Itoa(in), nil }},
	}, workflow.WithOutput("text"))

	out, err := w.Run(t.Context(), 3)

	require.NoError(t, err)
	assert.Equal(t, "t3", out)
}

func TestWithOutputMayNameATaskThatHasDependents(t *testing.T) {
	w := newWorkflow[int, int](t, "inner-output", workflow.Tasks{
		workflow.Task[int, int]{Name: "a", Handler: func(_ context.Context, in int) (int, error) { return in + 1, nil }},
		workflow.Task[int, int]{Name: "b", Dependencies: []string{"a"}, Handler: func(_ context.Context, in int) (int, error) { return in * 100, nil }},
	}, workflow.WithOutput("a"))

	out, err := w.Run(t.Context(), 1)

	require.NoError(t, err)
	assert.Equal(t, 2, out)
}

func TestNilPointerOutputsFlowDownstream(t *testing.T) {
	var received *item
	receivedSet := false
	var fromGet *item
	var getErr error
	w := newWorkflow[int, *item](t, "nil-pointers", workflow.Tasks{
		workflow.Task[int, *item]{Name: "none", Handler: func(context.Context, int) (*item, error) { return nil, nil }},
		workflow.Task[*item, *item]{Name: "pass", Dependencies: []string{"none"},
			Handler: func(_ context.Context, in *item) (*item, error) {
				received, receivedSet = in, true
				return in, nil
			}},
		workflow.Task[*item, int]{Name: "count", Dependencies: []string{"none"},
			Handler: func(context.Context, *item) (int, error) { return 1, nil }},
		workflow.Task[workflow.Inputs, *item]{Name: "join", Dependencies: []string{"pass", "count"},
			Handler: func(_ context.Context, in workflow.Inputs) (*item, error) {
				fromGet, getErr = workflow.Get[*item](in, "pass")
				return fromGet, getErr
			}},
	})

	out, err := w.Run(t.Context(), 1)

	require.NoError(t, err)
	assert.Nil(t, out)
	assert.True(t, receivedSet)
	assert.Nil(t, received)
	require.NoError(t, getErr)
	assert.Nil(t, fromGet)
}

func TestNilInterfaceOutputsFlowDownstream(t *testing.T) {
	var fromGet label
	var getErr error
	gotNil := false
	w := newWorkflow[int, label](t, "nil-interfaces", workflow.Tasks{
		workflow.Task[int, label]{Name: "none", Handler: func(context.Context, int) (label, error) { return nil, nil }},
		workflow.Task[label, int]{Name: "check", Dependencies: []string{"none"},
			Handler: func(_ context.Context, in label) (int, error) {
				gotNil = in == nil
				return 0, nil
			}},
		workflow.Task[workflow.Inputs, label]{Name: "join", Dependencies: []string{"none", "check"},
			Handler: func(_ context.Context, in workflow.Inputs) (label, error) {
				fromGet, getErr = workflow.Get[label](in, "none")
				return fromGet, getErr
			}},
	})

	out, err := w.Run(t.Context(), 1)

	require.NoError(t, err)
	assert.Nil(t, out)
	assert.True(t, gotNil)
	require.NoError(t, getErr)
	assert.Nil(t, fromGet)
}

func TestTaskMayTakeAnInterfaceItsDependencyImplements(t *testing.T) {
	w := newWorkflow[string, label](t, "interfaces", workflow.Tasks{
		workflow.Task[string, named]{Name: "name", Handler: func(_ context.Context, in string) (named, error) { return named(in), nil }},
		workflow.Task[label, label]{Name: "upper", Dependencies: []string{"name"},
			Handler: func(_ context.Context, in label) (label, error) { return named("<" + in.Label() + ">"), nil }},
	})

	out, err := w.Run(t.Context(), "x")

	require.NoError(t, err)
	assert.Equal(t, "<x>", out.Label())
}

func TestTaskValuesAndPointersBothGoInTasks(t *testing.T) {
	ptr := &workflow.Task[int, int]{Name: "ptr", Dependencies: []string{"val"},
		Handler: func(_ context.Context, in int) (int, error) { return in * 10, nil }}
	w := newWorkflow[int, int](t, "mixed", workflow.Tasks{
		workflow.Task[int, int]{Name: "val", Handler: func(_ context.Context, in int) (int, error) { return in + 1, nil }},
		ptr,
	})

	out, err := w.Run(t.Context(), 1)

	require.NoError(t, err)
	assert.Equal(t, 20, out)
}

func TestChangingATaskAfterNewHasNoEffect(t *testing.T) {
	task := &workflow.Task[int, int]{Name: "a", Handler: func(_ context.Context, in int) (int, error) { return in + 1, nil }}
	w := newWorkflow[int, int](t, "frozen", workflow.Tasks{task})

	task.Name = "renamed"
	task.Handler = func(context.Context, int) (int, error) { return -1, nil }
	task.Dependencies = []string{"missing"}
	out, err := w.Run(t.Context(), 1)

	require.NoError(t, err)
	assert.Equal(t, 2, out)
	ts, err := w.TaskStatus(t.Context(), "a")
	require.NoError(t, err)
	assert.Equal(t, workflow.StateSucceeded, ts.State)
}

func TestDiamondRunsTheJoinOnceWithBothBranches(t *testing.T) {
	var joins int
	w := newWorkflow[int, int](t, "diamond", workflow.Tasks{
		workflow.Task[int, int]{Name: "top", Handler: func(_ context.Context, in int) (int, error) { return in, nil }},
		workflow.Task[int, int]{Name: "left", Dependencies: []string{"top"}, Handler: func(_ context.Context, in int) (int, error) { return in + 1, nil }},
		workflow.Task[int, int]{Name: "right", Dependencies: []string{"top"}, Handler: func(_ context.Context, in int) (int, error) { return in + 2, nil }},
		workflow.Task[workflow.Inputs, int]{Name: "bottom", Dependencies: []string{"left", "right"},
			Handler: func(_ context.Context, in workflow.Inputs) (int, error) {
				joins++
				l, err := workflow.Get[int](in, "left")
				if err != nil {
					return 0, err
				}
				r, err := workflow.Get[int](in, "right")
				return l * r, err
			}},
	})

	out, err := w.Run(t.Context(), 10)

	require.NoError(t, err)
	assert.Equal(t, 11*12, out)
	assert.Equal(t, 1, joins)
}
