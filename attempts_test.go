package workflow_test

import (
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/b3b01171/workflow"
)

func TestAttemptsAreNumberedAcrossPassesAndResumes(t *testing.T) {
	w := newWorkflow[int, int](t, "always-fails", workflow.Tasks{workflow.Task[int, int]{Name: "a", Handler: fail}})
	_, err := w.Run(t.Context(), 1, workflow.WithRunID("r"), workflow.RetryOnFailure(3))
	require.ErrorIs(t, err, errBoom)
	assert.Equal(t, 4, asWorkflowError(t, err).Attempts)
	rs, err := w.Inspect(t.Context(), "r")
	require.NoError(t, err)
	a, _ := rs.Task("a")
	assert.Equal(t, 4, a.Attempts)
	var attempts, passes []int
	for _, ev := range rs.Events {
		if ev.Type == workflow.EventTaskStarted {
			attempts, passes = append(attempts, ev.Attempt), append(passes, ev.Pass)
		}
	}
	assert.Equal(t, []int{1, 2, 3, 4}, attempts)
	assert.Equal(t, []int{1, 2, 3, 4}, passes, "one pass for the run and one for each RetryOnFailure")

	_, err = w.Resume(t.Context(), "r")
	require.ErrorIs(t, err, errBoom)
	assert.Equal(t, 5, asWorkflowError(t, err).Attempts, "a resume goes on counting")
	rs, err = w.Inspect(t.Context(), "r")
	require.NoError(t, err)
	last := rs.Events[len(rs.Events)-1]
	assert.Equal(t, workflow.EventRunFailed, last.Type)
	assert.Equal(t, 5, last.Pass)
	requireCompleteEvents(t, rs)
}

func TestTaskRetryingSaysWhenTheNextAttemptStarts(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWorkflow[int, int](t, "retrying", workflow.Tasks{
			workflow.Task[int, int]{Name: "a", Handler: fail, Retry: workflow.RetryPolicy{Attempts: 3, Delay: time.Minute, Backoff: 2}},
		})
		_, err := w.Run(t.Context(), 1)
		require.ErrorIs(t, err, errBoom)
		rs, err := w.Status(t.Context())
		require.NoError(t, err)
		var retries []workflow.Event
		starts := map[int]time.Time{}
		for _, ev := range rs.Events {
			switch ev.Type {
			case workflow.EventTaskRetrying:
				retries = append(retries, ev)
			case workflow.EventTaskStarted:
				starts[ev.Attempt] = ev.Time
			}
		}
		require.Len(t, retries, 2)
		assert.Equal(t, time.Minute, retries[0].RetryAt.Sub(retries[0].Time))
		assert.Equal(t, 2*time.Minute, retries[1].RetryAt.Sub(retries[1].Time))
		assert.True(t, retries[0].RetryAt.Equal(starts[2]), "attempt 2 starts when announced")
		assert.True(t, retries[1].RetryAt.Equal(starts[3]), "attempt 3 starts when announced")
	})
}

func TestTimesAreInUTC(t *testing.T) {
	w := newWorkflow[int, int](t, "utc", workflow.Tasks{intTask("a")})
	_, err := w.Run(t.Context(), 1)
	require.NoError(t, err)
	rs, err := w.Status(t.Context())
	require.NoError(t, err)
	assert.Equal(t, time.UTC, rs.StartedAt.Location())
	assert.Equal(t, time.UTC, rs.EndedAt.Location())
	assert.Equal(t, time.UTC, rs.Tasks[0].StartedAt.Location())
	for _, ev := range rs.Events {
		assert.Equal(t, time.UTC, ev.Time.Location(), ev.Type)
	}
}
