package workflow_test

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/go-playground/validator/v10"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/b3b01171/workflow"
)

func TestWorkflowErrorMessageNamesWorkflowRunTaskAttemptsAndCause(t *testing.T) {
	err := &workflow.WorkflowError{
		Workflow: "billing", RunID: "r42", Task: "charge", Attempts: 3,
		Message: "charging card 4242: declined", Err: errBoom,
	}

	assert.Equal(t, `workflow "billing" run r42: task "charge" failed after 3 attempts: charging card 4242: declined`, err.Error(),
		"Message is the cause, said once; Err is for errors.Is and errors.As")
}

func TestWorkflowErrorMessageLeavesOutWhatItDoesNotKnow(t *testing.T) {
	tests := map[string]struct {
		err  *workflow.WorkflowError
		want string
	}{
		"RunError":        {&workflow.WorkflowError{Workflow: "w", RunID: "r1", Message: "the run exceeded 1s", Err: workflow.ErrTimeout}, `workflow "w" run r1: the run exceeded 1s`},
		"OneAttempt":      {&workflow.WorkflowError{Workflow: "w", RunID: "r1", Task: "a", Attempts: 1, Err: errBoom}, `workflow "w" run r1: task "a" failed: boom`},
		"DefinitionError": {&workflow.WorkflowError{Workflow: "w", Message: "task 0 has an empty name"}, `workflow "w": task 0 has an empty name`},
		"NoWorkflow":      {&workflow.WorkflowError{Err: errBoom}, `workflow: boom`},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			assert.Equal(t, tt.want, tt.err.Error())
		})
	}
}

func TestWorkflowErrorUnwrapsToItsCause(t *testing.T) {
	cause := &codeError{code: 503}
	var err error = &workflow.WorkflowError{Workflow: "w", Task: "a", Err: fmt.Errorf("%w: %w", workflow.ErrTimeout, cause)}
	wrapped := fmt.Errorf("calling: %w", err)

	require.ErrorIs(t, wrapped, workflow.ErrTimeout)
	var ce *codeError
	require.ErrorAs(t, wrapped, &ce)
	assert.Equal(t, 503, ce.code)
	var werr *workflow.WorkflowError
	require.ErrorAs(t, wrapped, &werr)
	assert.Equal(t, "a", werr.Task)
	assert.Nil(t, (&workflow.WorkflowError{}).Unwrap())
}

func TestDefinitionErrorListsEachProblemInDetails(t *testing.T) {
	_, err := workflow.New[int, int]("w", workflow.Tasks{intTask("a", "ghost"), intTask("a")}, workflow.WithOutput("a"))

	werr := asWorkflowError(t, err)
	assert.Equal(t, "w", werr.Workflow)
	problems, ok := werr.Details["problems"].([]string)
	require.True(t, ok)
	require.Len(t, problems, 2)
	for _, p := range problems {
		assert.Contains(t, err.Error(), p, "the message includes every problem")
	}
	assert.Contains(t, problems[0]+problems[1], "ghost")
	assert.Contains(t, problems[0]+problems[1], "more than once")
}

func TestTaskErrorIsAWorkflowErrorThatReachesTheHandlersError(t *testing.T) {
	cause := &codeError{code: 418}
	w := newWorkflow[int, int](t, "teapot", workflow.Tasks{
		workflow.Task[int, int]{Name: "brew", Handler: func(_ context.Context, _ int) (int, error) {
			return 0, fmt.Errorf("brewing: %w", cause)
		}},
	})

	_, err := w.Run(t.Context(), 1)

	werr := asWorkflowError(t, err)
	assert.Equal(t, "teapot", werr.Workflow)
	assert.Equal(t, "brew", werr.Task)
	assert.Equal(t, 1, werr.Attempts)
	var ce *codeError
	require.ErrorAs(t, err, &ce)
	assert.Same(t, cause, ce)
	assert.Contains(t, err.Error(), "brewing: code 418")
}

// mailRequest has two required fields, to see both in one message.
type mailRequest struct {
	UserID string `validate:"required"`
	To     string `validate:"required"`
}

// person has a rule with a parameter and a nested struct.
type person struct {
	Age     int `validate:"gte=18"`
	Address struct {
		City string `validate:"required"`
	}
}

// summary is a task output with a rule.
type summary struct {
	Lines int `validate:"min=1"`
}

func TestTaskFailureMessageIsTheCauseAndItsDetailsSayWhatHappened(t *testing.T) {
	// Its Error() is "writing summary of u-42: disk full".
	diskFull := &fs.PathError{Op: "writing summary of", Path: "u-42", Err: errors.New("disk full")}
	tests := map[string]struct {
		task      workflow.AnyTask
		message   string
		error     string // err.Error(), after `workflow "etl" run r1: `
		attempts  int
		state     workflow.State
		errorType string
		details   []string // further keys
	}{
		"HandlerError": {
			task: workflow.Task[int, int]{Name: "save", Retry: workflow.RetryPolicy{Attempts: 3, Delay: time.Second},
				Handler: func(context.Context, int) (int, error) { return 0, diskFull }},
			message:  "writing summary of u-42: disk full",
			error:    `task "save" failed after 3 attempts: writing summary of u-42: disk full`,
			attempts: 3, state: workflow.StateFailed, errorType: "*fs.PathError",
		},
		"Permanent": {
			task: workflow.Task[int, int]{Name: "save", Retry: workflow.RetryPolicy{Attempts: 3},
				Handler: func(context.Context, int) (int, error) { return 0, workflow.Permanent(diskFull) }},
			message:  "writing summary of u-42: disk full",
			error:    `task "save" failed: writing summary of u-42: disk full`,
			attempts: 1, state: workflow.StateFailed, errorType: "*fs.PathError",
		},
		"Timeout": {
			task: workflow.Task[int, int]{Name: "save", Timeout: 50 * time.Millisecond, Retry: workflow.RetryPolicy{Attempts: 2},
				Handler: func(context.Context, int) (int, error) { time.Sleep(time.Hour); return 0, nil }},
			message:  "attempt exceeded 50ms",
			error:    `task "save" timed out after 2 attempts: attempt exceeded 50ms`,
			attempts: 2, state: workflow.StateTimedOut, errorType: "<nil>",
		},
		"Panic": {
			task:     workflow.Task[int, int]{Name: "save", Handler: func(context.Context, int) (int, error) { panic("kaboom") }},
			message:  "kaboom",
			error:    `task "save" panicked: kaboom`,
			attempts: 1, state: workflow.StateFailed, errorType: "<nil>", details: []string{"panic", "stack"},
		},
		"InvalidOutput": {
			task:     workflow.Task[int, summary]{Name: "save", Handler: func(context.Context, int) (summary, error) { return summary{}, nil }},
			message:  "Lines must be min=1",
			error:    `task "save" gave invalid output: Lines must be min=1`,
			attempts: 1, state: workflow.StateFailed, errorType: "<nil>", details: []string{"fields", "stage"},
		},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				w, err := workflow.New[int, any]("etl", workflow.Tasks{tt.task})
				require.NoError(t, err)

				_, err = w.Run(t.Context(), 1, workflow.WithRunID("r1"))

				werr := asWorkflowError(t, err)
				assert.Equal(t, tt.message, werr.Message)
				assert.Equal(t, `workflow "etl" run r1: `+tt.error, err.Error())
				assert.Equal(t, tt.attempts, werr.Attempts)
				assert.Equal(t, tt.attempts, werr.Details["attempts"])
				assert.Equal(t, tt.state, werr.Details["state"])
				assert.Equal(t, tt.errorType, werr.Details["error_type"])
				for _, k := range tt.details {
					assert.Contains(t, werr.Details, k)
				}
				ts, err := w.TaskStatus(t.Context(), "save")
				require.NoError(t, err)
				assert.Equal(t, tt.state, ts.State, "Details[state] is the task's end state")
				time.Sleep(2 * time.Hour) // handlers left at their deadline end
			})
		})
	}
}

func TestEveryErrorIsOneLineAndSaysEachThingOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := t.Context()
		mail := newWorkflow[mailRequest, int](t, "mail", workflow.Tasks{
			workflow.Task[mailRequest, int]{Name: "send", Handler: func(context.Context, mailRequest) (int, error) { return 1, nil }},
		})
		people := newWorkflow[person, int](t, "people", workflow.Tasks{
			workflow.Task[person, int]{Name: "greet", Handler: func(context.Context, person) (int, error) { return 1, nil }},
		})
		b := newBlocker()
		defer b.Release()
		slow := newWorkflow[int, int](t, "w", workflow.Tasks{
			workflow.Task[int, int]{Name: "slow", Timeout: 50 * time.Millisecond, Handler: b.handle},
		})
		waits := newWorkflow[int, int](t, "w", workflow.Tasks{workflow.Task[int, int]{Name: "wait", Handler: waitForCtx}})
		cancelled := func() error {
			x, err := waits.Start(ctx, 1, workflow.WithRunID("r1"))
			require.NoError(t, err)
			require.NoError(t, waits.Cancel(ctx, x.ID()))
			_, err = x.Wait(ctx)
			return err
		}

		tests := map[string]struct {
			err  error
			want string // "" when only the general rules are checked
		}{
			"InvalidInput": {errOf(mail.Run(ctx, mailRequest{}, workflow.WithRunID("r1"))),
				`workflow "mail" run r1: invalid input: UserID is required; To is required`},
			"NestedFieldAndRuleParameter": {errOf(people.Run(ctx, person{Age: 17}, workflow.WithRunID("r1"))),
				`workflow "people" run r1: invalid input: Age must be gte=18; Address.City is required`},
			"Cancelled": {cancelled(), `workflow "w" run r1: cancelled: Cancel called`},
			"TaskTimeout": {errOf(slow.Run(ctx, 1, workflow.WithRunID("r1"))),
				`workflow "w" run r1: task "slow" timed out: attempt exceeded 50ms`},
			"RunTimeout": {errOf(waits.Run(ctx, 1, workflow.WithRunID("r2"), workflow.RunTimeout(time.Minute))),
				`workflow "w" run r2: timed out: the run exceeded its RunTimeout (1m0s)`},
			"InvalidDefinition": {errOf(workflow.New[int, int]("etl", workflow.Tasks{intTask(""), workflow.Task[int, int]{Name: "load", Dependencies: []string{""}}})),
				`workflow "etl": invalid definition: task 0 has an empty name; task "load" has a nil Handler; task "load" depends on "", which is not defined`},
			"BadRunOptions": {errOf(waits.Run(ctx, 1, workflow.RunTimeout(-time.Second), workflow.RetryOnFailure(-1))),
				`workflow "w": RunTimeout(-1s): the timeout must be ≥ 0; RetryOnFailure(-1): the count must be ≥ 0`},
			"UnknownRun": {waits.Cancel(ctx, "nope"), `workflow "w" run nope: Cancel: no such run`},
			"ReplaceTask": {errOf(waits.Run(ctx, 1, workflow.ReplaceTask("wiat", identity))),
				`workflow "w": ReplaceTask: no task "wiat" (did you mean "wait"?)`},
			"HistoryOption": {errOf(waits.History(ctx, workflow.HistoryLimit(-1))),
				`workflow "w": History: HistoryLimit(-1): the limit must be ≥ 0`},
			"NilContext": {errOf(waits.Run(nil, 1)), `workflow "w": Run: nil context`}, //nolint:staticcheck // on purpose
		}
		sentinels := []error{
			workflow.ErrInvalidWorkflow, workflow.ErrCycle, workflow.ErrUnknownDependency, workflow.ErrDuplicateTask,
			workflow.ErrTypeMismatch, workflow.ErrInvalidInput, workflow.ErrTimeout, workflow.ErrPanic,
			workflow.ErrNotFound, workflow.ErrCancelled, workflow.ErrRunEnded, workflow.ErrNotResumable,
			workflow.ErrDuplicateRun, workflow.ErrRunElsewhere, workflow.ErrInvalidSchedule, workflow.ErrDuplicateWorkflow,
		}
		for name, tt := range tests { // no t.Run in a bubble
			require.Error(t, tt.err, name)
			msg := tt.err.Error()
			if tt.want != "" {
				assert.Equal(t, tt.want, msg, name)
			}
			assert.NotContains(t, msg, "\n", name)
			assert.True(t, strings.HasPrefix(msg, "workflow "), "%s: one shape: %q", name, msg)
			assert.Equal(t, 1, strings.Count(msg, "workflow "), "%s: the workflow is named once: %q", name, msg)
			for _, s := range sentinels {
				assert.LessOrEqual(t, strings.Count(msg, s.Error()), 1, "%s: %q says %q twice", name, msg, s)
			}
		}
	})
}

// errOf is the error of a call that returns a value and an error.
func errOf[T any](_ T, err error) error { return err }

func TestEveryErrorStillWrapsItsSentinel(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := t.Context()
		mail := newWorkflow[mailRequest, int](t, "mail", workflow.Tasks{
			workflow.Task[mailRequest, int]{Name: "send", Handler: func(context.Context, mailRequest) (int, error) { return 1, nil }},
		})
		_, err := mail.Run(ctx, mailRequest{})
		require.ErrorIs(t, err, workflow.ErrInvalidInput)
		var verrs validator.ValidationErrors
		require.ErrorAs(t, err, &verrs, "the validator's errors are reachable")
		assert.Len(t, verrs, 2)

		b := newBlocker()
		defer b.Release()
		w := newWorkflow[int, int](t, "w", workflow.Tasks{
			workflow.Task[int, int]{Name: "slow", Timeout: time.Second, Handler: b.handle},
		})
		_, err = w.Run(ctx, 1)
		require.ErrorIs(t, err, workflow.ErrTimeout)

		x, err := w.Start(ctx, 1, workflow.RunTimeout(time.Hour))
		require.NoError(t, err)
		require.NoError(t, w.Cancel(ctx, x.ID()))
		_, err = x.Wait(ctx)
		require.ErrorIs(t, err, workflow.ErrCancelled)
		assert.NotErrorIs(t, err, workflow.ErrTimeout)

		_, err = workflow.New[int, int]("etl", workflow.Tasks{intTask(""), intTask("a", "b")})
		require.ErrorIs(t, err, workflow.ErrInvalidWorkflow)
		require.ErrorIs(t, err, workflow.ErrUnknownDependency)

		_, err = w.Run(ctx, 1, workflow.RunTimeout(-1))
		require.ErrorIs(t, err, workflow.ErrInvalidInput)
	})
}
