package workflow_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/b3b01171/workflow"
)

type misspelledTag struct {
	UserID string `validate:"requird"`
}

func TestNewRejectsAValidateTagThatNamesNoRule(t *testing.T) {
	for name, tasks := range map[string]workflow.Tasks{
		"workflow input": {workflow.Task[misspelledTag, int]{Name: "a", Handler: func(context.Context, misspelledTag) (int, error) { return 0, nil }}},
		"task output": {
			workflow.Task[int, misspelledTag]{Name: "a", Handler: func(context.Context, int) (misspelledTag, error) { return misspelledTag{}, nil }},
			workflow.Task[misspelledTag, int]{Name: "b", Dependencies: []string{"a"}, Handler: func(context.Context, misspelledTag) (int, error) { return 0, nil }},
		},
	} {
		t.Run(name, func(t *testing.T) {
			var err error
			if name == "workflow input" {
				_, err = workflow.New[misspelledTag, int]("tags", tasks)
			} else {
				_, err = workflow.New[int, int]("tags", tasks)
			}
			require.ErrorIs(t, err, workflow.ErrInvalidWorkflow)
			assert.Contains(t, err.Error(), "requird")
			assert.Contains(t, err.Error(), "misspelledTag")
		})
	}
}

func TestNewRejectsNamesThatAreNotValidUTF8(t *testing.T) {
	_, err := workflow.New[int, int]("w", workflow.Tasks{intTask("a\xff"), intTask("a\xfe")}, workflow.WithOutput("a\xff"))
	require.ErrorIs(t, err, workflow.ErrInvalidWorkflow)
	assert.Contains(t, err.Error(), `"a\xff" is not valid UTF-8`)
	assert.Contains(t, err.Error(), `"a\xfe" is not valid UTF-8`)

	_, err = workflow.New[int, int]("w\xff", workflow.Tasks{intTask("a")})
	require.ErrorIs(t, err, workflow.ErrInvalidWorkflow)
	assert.Contains(t, err.Error(), "not valid UTF-8")
}
