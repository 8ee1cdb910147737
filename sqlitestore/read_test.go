package sqlitestore_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/b3b01171/workflow"
	"github.com/b3b01171/workflow/sqlitestore"
)

func TestListPagesThroughRunsWithACursor(t *testing.T) {
	t.Parallel()
	s := open(t, tempPath(t), sqlitestore.MaxRuns(0))
	ctx := context.Background()
	c := newClock()
	const runs = 250
	for i := range runs {
		id := fmt.Sprintf("r%03d", i)
		rec, err := s.Create(ctx, newRun("wf", id, "a"))
		require.NoError(t, err)
		require.NoError(t, rec.Append(ctx, []workflow.Entry{c.runEntry(id, workflow.EventRunStarted, "", []byte(`1`))}))
	}
	var seen []string
	before := ""
	for page := 0; ; page++ {
		got, err := s.List(ctx, "wf", workflow.HistoryQuery{Limit: 100, Before: before})
		require.NoError(t, err)
		if len(got) == 0 {
			break
		}
		require.LessOrEqual(t, len(got), 100)
		for _, rs := range got {
			seen = append(seen, rs.RunID)
			require.Len(t, rs.Events, 1)
			require.Equal(t, "1", string(rs.Input))
		}
		before = got[len(got)-1].RunID
	}
	require.Len(t, seen, runs)
	for i, id := range seen {
		require.Equal(t, fmt.Sprintf("r%03d", runs-1-i), id, "newest first")
	}

	_, err := s.List(ctx, "wf", workflow.HistoryQuery{Before: "nope"})
	require.ErrorIs(t, err, workflow.ErrNotFound)
	require.ErrorContains(t, err, `"nope"`)
	_, err = s.List(ctx, "other", workflow.HistoryQuery{Before: "r001"})
	require.ErrorIs(t, err, workflow.ErrNotFound)
}

func TestListFiltersByStateAndSummarizes(t *testing.T) {
	t.Parallel()
	s := open(t, tempPath(t))
	ctx := context.Background()
	c := newClock()
	for i, end := range []string{workflow.EventRunSucceeded, workflow.EventRunFailed, "", workflow.EventRunSucceeded} {
		id := fmt.Sprintf("r%d", i)
		rec, err := s.Create(ctx, newRun("wf", id, "a"))
		require.NoError(t, err)
		batch := []workflow.Entry{
			c.runEntry(id, workflow.EventRunStarted, "", []byte(`"in"`)),
			c.taskEntry(id, 0, "a", workflow.EventTaskStarted, 1, "", nil),
			c.taskEntry(id, 0, "a", workflow.EventTaskSucceeded, 0, "", []byte(`"out"`)),
		}
		if end != "" {
			batch = append(batch, c.runEntry(id, end, "", nil))
		}
		require.NoError(t, rec.Append(ctx, batch))
	}
	got, err := s.List(ctx, "wf", workflow.HistoryQuery{State: workflow.StateSucceeded})
	require.NoError(t, err)
	require.Equal(t, []string{"r3", "r0"}, ids(got))

	got, err = s.List(ctx, "wf", workflow.HistoryQuery{State: workflow.StateSucceeded, Limit: 1, Before: "r3"})
	require.NoError(t, err)
	require.Equal(t, []string{"r0"}, ids(got))

	got, err = s.List(ctx, "wf", workflow.HistoryQuery{Summary: true})
	require.NoError(t, err)
	require.Equal(t, []string{"r3", "r2", "r1", "r0"}, ids(got))
	for _, rs := range got {
		require.Nil(t, rs.Events)
		require.Nil(t, rs.Input)
		require.Len(t, rs.Tasks, 1)
		require.Equal(t, workflow.StateSucceeded, rs.Tasks[0].State, "folded from the events, for r2")
		require.Nil(t, rs.Tasks[0].Output)
	}
	full, err := s.List(ctx, "wf", workflow.HistoryQuery{})
	require.NoError(t, err)
	for i, rs := range full {
		require.NotEmpty(t, rs.Events)
		require.Equal(t, `"out"`, string(rs.Tasks[0].Output))
		require.Equal(t, got[i].State, rs.State)
	}

	none, err := s.List(ctx, "none", workflow.HistoryQuery{})
	require.NoError(t, err)
	require.Empty(t, none)
}

func ids(runs []workflow.RunStatus) []string {
	var out []string
	for _, rs := range runs {
		out = append(out, rs.RunID)
	}
	return out
}

func TestGetWithoutARunIDIsTheNewestRun(t *testing.T) {
	t.Parallel()
	s := open(t, tempPath(t))
	ctx := context.Background()
	_, err := s.Get(ctx, "wf", "")
	require.ErrorIs(t, err, workflow.ErrNotFound)
	require.ErrorContains(t, err, `"wf"`)
	for _, id := range []string{"b", "a", "c"} {
		_, err := s.Create(ctx, newRun("wf", id, "t"))
		require.NoError(t, err)
	}
	rs, err := s.Get(ctx, "wf", "")
	require.NoError(t, err)
	require.Equal(t, "c", rs.RunID)
	_, err = s.Get(ctx, "wf", "d")
	require.ErrorIs(t, err, workflow.ErrNotFound)
	require.ErrorContains(t, err, `workflow "wf" has no run "d"`)
	_, err = s.Payloads(ctx, "wf", "d")
	require.ErrorIs(t, err, workflow.ErrNotFound)
}
