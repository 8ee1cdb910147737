package workflow_test

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/b3b01171/workflow"
)

func TestWorkflowErrorMessageNamesWorkflowRunTaskAttemptsAndCause(t *testing.T) {
	err := &workflow.WorkflowError{
		Workflow: "billing", RunID: "r42", Task: "charge", Attempts: 3,
		Message: "task failed", Err: errBoom,
	}

	assert.Equal(t, `workflow "billing" run r42: task "charge" (3 attempts): task failed: boom`, err.Error())
}

func TestWorkflowErrorMessageLeavesOutWhatItDoesNotKnow(t *testing.T) {
	tests := map[string]struct {
		err  *workflow.WorkflowError
		want string
	}{
		"RunError":        {&workflow.WorkflowError{Workflow: "w", RunID: "r1", Message: "run timed out", Err: workflow.ErrTimeout}, `workflow "w" run r1: run timed out: timeout`},
		"OneAttempt":      {&workflow.WorkflowError{Workflow: "w", RunID: "r1", Task: "a", Attempts: 1, Err: errBoom}, `workflow "w" run r1: task "a": boom`},
		"DefinitionError": {&workflow.WorkflowError{Workflow: "w", Message: "invalid definition"}, `workflow "w": invalid definition`},
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

func TestSentinelErrorsAreDistinct(t *testing.T) {
	sentinels := []error{
		workflow.ErrInvalidWorkflow, workflow.ErrCycle, workflow.ErrUnknownDependency, workflow.ErrDuplicateTask,
		workflow.ErrTypeMismatch, workflow.ErrInvalidInput, workflow.ErrTimeout, workflow.ErrPanic,
		workflow.ErrNotFound, workflow.ErrCancelled, workflow.ErrRunEnded, workflow.ErrNotResumable,
	}
	for i, a := range sentinels {
		for j, b := range sentinels {
			if i != j {
				assert.False(t, errors.Is(a, b), "%v is %v", a, b)
			}
		}
	}
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
