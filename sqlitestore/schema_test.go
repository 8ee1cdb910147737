package sqlitestore_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/b3b01171/workflow"
	"github.com/b3b01171/workflow/sqlitestore"
)

func TestOpenRefusesAFileOfANewerSchema(t *testing.T) {
	t.Parallel()
	path := tempPath(t)
	s, err := sqlitestore.Open(path)
	require.NoError(t, err)
	require.NoError(t, s.Close())
	_, err = rawDB(t, path).Exec("PRAGMA user_version = 7")
	require.NoError(t, err)

	_, err = sqlitestore.Open(path)
	require.EqualError(t, err, "sqlitestore: open "+path+": schema version 7 is newer than this package's 4")
}

func TestOpenRefusesAFileThatIsNotADatabase(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "notes.txt")
	require.NoError(t, os.WriteFile(path, []byte("these are not the runs you are looking for\n"), 0o600))
	_, err := sqlitestore.Open(path)
	require.ErrorContains(t, err, "sqlitestore: open "+path+": ")
	require.ErrorContains(t, err, "not a database")
}

func TestOpenRefusesAnotherApplicationsDatabase(t *testing.T) {
	t.Parallel()
	path := tempPath(t)
	_, err := rawDB(t, path).Exec("PRAGMA application_id = 42; CREATE TABLE x (a)")
	require.NoError(t, err)
	_, err = sqlitestore.Open(path)
	require.ErrorContains(t, err, "not a workflow store")
}

func TestOpenCreatesTheSchemaInAnEmptyDatabase(t *testing.T) {
	t.Parallel()
	path := tempPath(t)
	db := rawDB(t, path)
	_, err := db.Exec("PRAGMA journal_mode = WAL")
	require.NoError(t, err)
	s := open(t, path)
	_, err = s.Create(context.Background(), newRun("wf", "r1", "a"))
	require.NoError(t, err)
	var version, app int64
	require.NoError(t, db.QueryRow("PRAGMA user_version").Scan(&version))
	require.NoError(t, db.QueryRow("PRAGMA application_id").Scan(&app))
	require.Equal(t, int64(4), version)
	require.NotZero(t, app)
}

func TestOpenMigratesAVersion1File(t *testing.T) {
	t.Parallel()
	path := tempPath(t)
	s, err := sqlitestore.Open(path)
	require.NoError(t, err)
	rec, err := s.Create(context.Background(), newRun("wf", "r1", "a"))
	require.NoError(t, err)
	at := time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)
	require.NoError(t, rec.Append(context.Background(), []workflow.Entry{
		{Event: workflow.Event{Time: at, RunID: "r1", Type: workflow.EventRunStarted, Pass: 1}, Index: -1},
	}))
	require.NoError(t, s.Close())
	// Back to version 1: events had neither pass nor retry_at (nor item,
	// nor runs parent_run_id).
	_, err = rawDB(t, path).Exec(`ALTER TABLE events DROP COLUMN pass; ALTER TABLE events DROP COLUMN retry_at;
		ALTER TABLE events DROP COLUMN item; ALTER TABLE runs DROP COLUMN parent_run_id; PRAGMA user_version = 1`)
	require.NoError(t, err)

	s = open(t, path)
	rs, err := s.Get(context.Background(), "wf", "r1")
	require.NoError(t, err)
	require.Equal(t, []workflow.Event{{Time: at, RunID: "r1", Type: workflow.EventRunStarted}}, rs.Events, "an event of version 1 has no pass")
	var version int64
	require.NoError(t, rawDB(t, path).QueryRow("PRAGMA user_version").Scan(&version))
	require.Equal(t, int64(4), version)
}

func TestOpenMigratesAVersion2File(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	path := tempPath(t)
	s, err := sqlitestore.Open(path)
	require.NoError(t, err)
	rec, err := s.Create(ctx, newRun("wf", "r1", "resize"))
	require.NoError(t, err)
	at := time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)
	started := workflow.Event{Time: at, RunID: "r1", Task: "resize", Type: workflow.EventTaskStarted, Attempt: 1, Pass: 1}
	require.NoError(t, rec.Append(ctx, []workflow.Entry{{Event: started, Index: 0}}))
	require.NoError(t, s.Close())
	// Back to version 2: events had no item (nor runs parent_run_id).
	_, err = rawDB(t, path).Exec(`ALTER TABLE events DROP COLUMN item; ALTER TABLE runs DROP COLUMN parent_run_id;
		PRAGMA user_version = 2`)
	require.NoError(t, err)

	s = open(t, path)
	rs, err := s.Get(ctx, "wf", "r1")
	require.NoError(t, err)
	require.Equal(t, []workflow.Event{started}, rs.Events, "an event of version 2 has Item 0")
	rec, err = s.Create(ctx, newRun("wf", "r2", "resize"))
	require.NoError(t, err)
	items := workflow.Event{Time: at, RunID: "r2", Task: "resize", Type: workflow.EventItemsStarted, Attempt: 1, Pass: 1, Item: 100_000}
	require.NoError(t, rec.Append(ctx, []workflow.Entry{{Event: items, Index: 0}}))
	rs, err = s.Get(ctx, "wf", "r2")
	require.NoError(t, err)
	require.Equal(t, []workflow.Event{items}, rs.Events, "an event written since keeps its Item")
	var version int64
	require.NoError(t, rawDB(t, path).QueryRow("PRAGMA user_version").Scan(&version))
	require.Equal(t, int64(4), version)
}

func TestOpenMigratesAVersion3File(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	path := tempPath(t)
	s, err := sqlitestore.Open(path)
	require.NoError(t, err)
	_, err = s.Create(ctx, newRun("wf", "r1", "sub"))
	require.NoError(t, err)
	require.NoError(t, s.Close())
	// Back to version 3: runs had no parent_run_id.
	_, err = rawDB(t, path).Exec(`ALTER TABLE runs DROP COLUMN parent_run_id; PRAGMA user_version = 3`)
	require.NoError(t, err)

	s = open(t, path)
	rs, err := s.Get(ctx, "wf", "r1")
	require.NoError(t, err)
	require.Equal(t, "r1", rs.RunID)
	require.Empty(t, rs.ParentRunID, "a run of version 3 has no parent")
	child := newRun("child", "r1.sub", "a")
	child.Trigger, child.ParentRunID = workflow.TriggerParent, "r1"
	_, err = s.Create(ctx, child)
	require.NoError(t, err)
	rs, err = s.Get(ctx, "child", "r1.sub")
	require.NoError(t, err)
	require.Equal(t, "r1", rs.ParentRunID, "a run created since keeps its ParentRunID")
	require.Equal(t, workflow.TriggerParent, rs.Trigger)
	runs, err := s.List(ctx, "child", workflow.HistoryQuery{Summary: true})
	require.NoError(t, err)
	require.Len(t, runs, 1)
	require.Equal(t, "r1", runs[0].ParentRunID, "a summary keeps the ParentRunID")
	var version int64
	require.NoError(t, rawDB(t, path).QueryRow("PRAGMA user_version").Scan(&version))
	require.Equal(t, int64(4), version)
}
