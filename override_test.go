package workflow_test

import (
	"context"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/b3b01171/workflow"
)

func TestOverrideRetryAppliesToThatRunOnly(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var calls int
		w := newWorkflow[int, int](t, "override", workflow.Tasks{
			workflow.Task[int, int]{Name: "a", Retry: workflow.RetryPolicy{Attempts: 2, Delay: time.Hour},
				Handler: func(context.Context, int) (int, error) { calls++; return 0, errBoom }},
		})
		start := time.Now()
		_, err := w.Run(t.Context(), 1, workflow.OverrideRetry("a", workflow.RetryPolicy{Attempts: 4, Delay: time.Second}))
		require.ErrorIs(t, err, errBoom)
		assert.Equal(t, 4, calls)
		assert.Equal(t, 3*time.Second, time.Since(start))

		calls, start = 0, time.Now()
		_, err = w.Run(t.Context(), 1)
		require.ErrorIs(t, err, errBoom)
		assert.Equal(t, 2, calls, "the next run has the definition's policy")
		assert.Equal(t, time.Hour, time.Since(start))
	})
}

func TestOverrideTimeoutAppliesToThatRunOnly(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWorkflow[int, int](t, "override", workflow.Tasks{
			workflow.Task[int, int]{Name: "a", Timeout: time.Hour, Handler: func(ctx context.Context, in int) (int, error) {
				select {
				case <-time.After(time.Minute):
					return in, nil
				case <-ctx.Done():
					return 0, ctx.Err()
				}
			}},
		})
		_, err := w.Run(t.Context(), 1, workflow.OverrideTimeout("a", time.Second))
		require.ErrorIs(t, err, workflow.ErrTimeout)
		out, err := w.Run(t.Context(), 1)
		require.NoError(t, err)
		assert.Equal(t, 1, out)
	})
}

func TestOverrideOfAnUnknownTaskOrABadValueIsRefused(t *testing.T) {
	w := newWorkflow[int, int](t, "override", workflow.Tasks{intTask("a")})
	_, err := w.Run(t.Context(), 1, workflow.OverrideRetry("typo", workflow.RetryPolicy{}))
	require.ErrorIs(t, err, workflow.ErrNotFound)
	assert.Contains(t, err.Error(), `"typo"`)
	_, err = w.Run(t.Context(), 1, workflow.OverrideTimeout("typo", time.Second))
	require.ErrorIs(t, err, workflow.ErrNotFound)
	_, err = w.Run(t.Context(), 1, workflow.OverrideRetry("a", workflow.RetryPolicy{Attempts: -1}))
	require.ErrorIs(t, err, workflow.ErrInvalidInput)
	_, err = w.Run(t.Context(), 1, workflow.OverrideTimeout("a", -time.Second))
	require.ErrorIs(t, err, workflow.ErrInvalidInput)
}
