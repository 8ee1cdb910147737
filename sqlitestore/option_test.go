package sqlitestore_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/b3b01171/workflow"
	"github.com/b3b01171/workflow/sqlitestore"
)

func TestMaxRunsKeepsTheNewestRunsAndEveryRunNotEnded(t *testing.T) {
	t.Parallel()
	s := open(t, tempPath(t), sqlitestore.MaxRuns(3))
	ctx := context.Background()
	c := newClock()
	recs := map[string]workflow.Recorder{}
	for i := range 6 {
		id := fmt.Sprintf("r%d", i)
		rec, err := s.Create(ctx, newRun("wf", id, "a"))
		require.NoError(t, err)
		recs[id] = rec
		if id != "r1" { // r1 goes on
			require.NoError(t, rec.Append(ctx, []workflow.Entry{c.runEntry(id, workflow.EventRunSucceeded, "", nil)}))
		}
	}
	got, err := s.List(ctx, "wf", workflow.HistoryQuery{})
	require.NoError(t, err)
	require.Equal(t, []string{"r5", "r4", "r3", "r1"}, ids(got), "r1 is not ended")

	require.NoError(t, recs["r1"].Append(ctx, []workflow.Entry{c.runEntry("r1", workflow.EventRunFailed, "", nil)}))
	got, err = s.List(ctx, "wf", workflow.HistoryQuery{})
	require.NoError(t, err)
	require.Equal(t, []string{"r5", "r4", "r3"}, ids(got), "r1 dropped once ended")

	// Other workflows are counted apart.
	_, err = s.Create(ctx, newRun("other", "x", "a"))
	require.NoError(t, err)
	got, err = s.List(ctx, "wf", workflow.HistoryQuery{})
	require.NoError(t, err)
	require.Len(t, got, 3)
}

func TestMaxRunsZeroKeepsEveryRun(t *testing.T) {
	t.Parallel()
	s := open(t, tempPath(t), sqlitestore.MaxRuns(0))
	ctx := context.Background()
	c := newClock()
	for i := range workflow.DefaultMaxRuns + 5 {
		id := fmt.Sprint(i)
		rec, err := s.Create(ctx, newRun("wf", id, "a"))
		require.NoError(t, err)
		require.NoError(t, rec.Append(ctx, []workflow.Entry{c.runEntry(id, workflow.EventRunSucceeded, "", nil)}))
	}
	got, err := s.List(ctx, "wf", workflow.HistoryQuery{Summary: true})
	require.NoError(t, err)
	require.Len(t, got, workflow.DefaultMaxRuns+5)
}

func TestMaxRunsDefaultsToDefaultMaxRuns(t *testing.T) {
	t.Parallel()
	s := open(t, tempPath(t))
	ctx := context.Background()
	c := newClock()
	for i := range workflow.DefaultMaxRuns + 2 {
		id := fmt.Sprint(i)
		rec, err := s.Create(ctx, newRun("wf", id, "a"))
		require.NoError(t, err)
		require.NoError(t, rec.Append(ctx, []workflow.Entry{c.runEntry(id, workflow.EventRunSucceeded, "", nil)}))
	}
	got, err := s.List(ctx, "wf", workflow.HistoryQuery{Summary: true})
	require.NoError(t, err)
	require.Len(t, got, workflow.DefaultMaxRuns)
	require.Equal(t, fmt.Sprint(workflow.DefaultMaxRuns+1), got[0].RunID)
}

func TestMaxAgeDropsRunsThatEndedLongAgo(t *testing.T) {
	t.Parallel()
	s := open(t, tempPath(t), sqlitestore.MaxAge(time.Hour))
	ctx := context.Background()
	old := time.Now().Add(-2 * time.Hour)
	for i, ended := range []time.Time{old, old, time.Now()} {
		rs := newRun("wf", fmt.Sprint(i), "a")
		rs.State, rs.StartedAt, rs.EndedAt = workflow.StateSucceeded, ended, ended
		if i == 1 {
			rs.State = workflow.StateRunning // under way, however old
		}
		_, err := s.Create(ctx, rs)
		require.NoError(t, err)
	}
	got, err := s.List(ctx, "wf", workflow.HistoryQuery{})
	require.NoError(t, err)
	require.Equal(t, []string{"2", "1"}, ids(got))
}

func TestLeaseTTLMustBePositive(t *testing.T) {
	t.Parallel()
	_, err := sqlitestore.Open(tempPath(t), sqlitestore.LeaseTTL(0))
	require.ErrorIs(t, err, workflow.ErrInvalidInput)
}
