package sqlitestore_test

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/b3b01171/workflow"
	"github.com/b3b01171/workflow/sqlitestore"
)

func TestCreateRefusesADuplicateOrAnUnnamedRun(t *testing.T) {
	t.Parallel()
	s := open(t, tempPath(t))
	ctx := context.Background()
	_, err := s.Create(ctx, newRun("wf", "r1", "a"))
	require.NoError(t, err)
	_, err = s.Create(ctx, newRun("wf", "r1", "a"))
	require.ErrorIs(t, err, workflow.ErrDuplicateRun)
	_, err = s.Create(ctx, newRun("other", "r1", "a"))
	require.NoError(t, err, "run IDs are per workflow")

	_, err = s.Create(ctx, newRun("", "r2", "a"))
	require.ErrorIs(t, err, workflow.ErrInvalidInput)
	_, err = s.Create(ctx, newRun("wf", "", "a"))
	require.ErrorIs(t, err, workflow.ErrInvalidInput)
}

func TestCreateRecordsARunAsGiven(t *testing.T) {
	t.Parallel()
	s := open(t, tempPath(t))
	ctx := context.Background()
	c := newClock()
	run := workflow.RunStatus{
		RunID: "r1", Workflow: "wf", State: workflow.StateFailed, Trigger: "schedule",
		ScheduledAt: c.next(), StartedAt: c.next(), EndedAt: c.next(), Error: "it failed",
		Input: []byte(`{"a":1}`),
		Tasks: []workflow.TaskStatus{
			{Name: "a", State: workflow.StateSucceeded, Attempts: 1, StartedAt: c.next(), EndedAt: c.next(), Output: []byte(`2`)},
			{Name: "b", State: workflow.StateFailed, Attempts: 3, StartedAt: c.next(), EndedAt: c.next(), Error: "no"},
		},
	}
	run.Events = []workflow.Event{
		{Time: run.StartedAt, RunID: "r1", Type: workflow.EventRunStarted},
		{Time: c.next(), RunID: "r1", Task: "b", Type: workflow.EventTaskFailed, Attempt: 3, Error: "no"},
		{Time: run.EndedAt, RunID: "r1", Type: workflow.EventRunFailed, Error: "it failed"},
	}
	_, err := s.Create(ctx, run)
	require.NoError(t, err)
	got, err := s.Get(ctx, "wf", "r1")
	require.NoError(t, err)
	require.Equal(t, normal(run), normal(got))
	require.Empty(t, orphans(t, s, "wf"))

	// Its events are history: they are not folded again.
	_, err = s.Reopen(ctx, "wf", "r1")
	require.NoError(t, err)
	got, err = s.Get(ctx, "wf", "r1")
	require.NoError(t, err)
	require.Equal(t, normal(run), normal(got))
}

func TestWorkflowsAreSorted(t *testing.T) {
	t.Parallel()
	s := open(t, tempPath(t))
	ctx := context.Background()
	names, err := s.Workflows(ctx)
	require.NoError(t, err)
	require.Empty(t, names)
	for i, wf := range []string{"b", "a", "c", "a"} {
		_, err := s.Create(ctx, newRun(wf, fmt.Sprint(i), "t"))
		require.NoError(t, err)
	}
	got, err := s.Workflows(ctx)
	require.NoError(t, err)
	require.Equal(t, []string{"a", "b", "c"}, got)
}

func TestTheStoreIsPersistent(t *testing.T) {
	t.Parallel()
	var s workflow.Store = open(t, tempPath(t))
	require.True(t, s.Persistent())
}

func TestEveryMethodAfterCloseFailsWithErrClosed(t *testing.T) {
	t.Parallel()
	s, err := sqlitestore.Open(tempPath(t))
	require.NoError(t, err)
	require.NoError(t, s.Close())
	ctx := context.Background()
	_, err = s.Create(ctx, newRun("wf", "r1", "a"))
	require.ErrorIs(t, err, sqlitestore.ErrClosed)
	_, err = s.Reopen(ctx, "wf", "r1")
	require.ErrorIs(t, err, sqlitestore.ErrClosed)
	_, err = s.Orphans(ctx, "wf")
	require.ErrorIs(t, err, sqlitestore.ErrClosed)
	_, err = s.Get(ctx, "wf", "r1")
	require.ErrorIs(t, err, sqlitestore.ErrClosed)
	_, err = s.List(ctx, "wf", workflow.HistoryQuery{})
	require.ErrorIs(t, err, sqlitestore.ErrClosed)
	_, err = s.Workflows(ctx)
	require.ErrorIs(t, err, sqlitestore.ErrClosed)
	_, err = s.Payloads(ctx, "wf", "r1")
	require.ErrorIs(t, err, sqlitestore.ErrClosed)
	require.ErrorIs(t, s.Close(), sqlitestore.ErrClosed)
}

func TestHandlesOpenAtOnceShareTheFile(t *testing.T) {
	t.Parallel()
	path := tempPath(t)
	ctx := context.Background()
	a := open(t, path)
	b := open(t, path)
	_, err := a.Create(ctx, newRun("wf", "r1", "a"))
	require.NoError(t, err)
	_, err = b.Create(ctx, newRun("wf", "r2", "a"))
	require.NoError(t, err)
	_, err = b.Create(ctx, newRun("wf", "r1", "a"))
	require.ErrorIs(t, err, workflow.ErrDuplicateRun)
	got, err := a.List(ctx, "wf", workflow.HistoryQuery{})
	require.NoError(t, err)
	require.Equal(t, []string{"r2", "r1"}, ids(got))
}

func TestOpenRefusesABadPath(t *testing.T) {
	t.Parallel()
	_, err := sqlitestore.Open("")
	require.ErrorIs(t, err, workflow.ErrInvalidInput)
	require.ErrorContains(t, err, "sqlitestore: open")
	_, err = sqlitestore.Open(":memory:")
	require.ErrorIs(t, err, workflow.ErrInvalidInput)
	_, err = sqlitestore.Open(t.TempDir())
	require.ErrorIs(t, err, workflow.ErrInvalidInput)
	_, err = sqlitestore.Open(filepath.Join(t.TempDir(), "no", "such", "dir", "runs.db"))
	require.ErrorContains(t, err, "sqlitestore: open ")
}

func TestRunsOutliveTheHandle(t *testing.T) {
	t.Parallel()
	path := tempPath(t)
	ctx := context.Background()
	c := newClock()
	s, err := sqlitestore.Open(path)
	require.NoError(t, err)
	tw := newTwin(t, s, newRun("wf", "r1", "a", "b"))
	tw.append(c.runEntry("r1", workflow.EventRunStarted, "", []byte(`1`)), c.taskEntry("r1", 0, "a", workflow.EventTaskStarted, 1, "", nil))
	tw.append(c.taskEntry("r1", 0, "a", workflow.EventTaskSucceeded, 0, "", []byte(`2`)))
	require.NoError(t, s.Close())

	tw.sql = open(t, path) // a new handle, as in the next process
	tw.check()
	names, err := tw.sql.Workflows(ctx)
	require.NoError(t, err)
	require.Equal(t, []string{"wf"}, names)
}
