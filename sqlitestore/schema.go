package sqlitestore

import (
	"context"
	"database/sql"
	"fmt"
)

// schemaVersion is the version of the schema this package writes, kept in
// PRAGMA user_version. migrations[v] takes a file from version v to v+1.
const schemaVersion = 4

// applicationID marks the file as a workflow store (PRAGMA application_id),
// so that Open refuses another application's SQLite database.
const applicationID = 0x77666c77 // "wflw"

// The schema. Times are unix nanoseconds, NULL for the zero time.
//
// A run's row holds its current state, set as each batch is appended. Its
// tasks' rows hold their state as of the run's first `folded` events; a
// reader folds the later events into them with RunStatus.Apply. Appending
// a batch thus writes its events and, only when a run event is among them,
// the run's row: no task row is rewritten while the run goes on. The
// tasks' rows are brought up to date (folded = every event) when a batch
// leaves the run ended or interrupted, so that reading a finished run
// folds nothing.
//
// An event names its task by position (events.task); its payload is the
// task's output on task_succeeded, or what a task that did not succeed
// kept on its end (a failed Map task's items' outputs); the run's input is
// on the run's row. A task's row holds the payload of its last end as of
// `folded` (tasks.output).
// events.run_id is NULL when it is the run's own ID.
var migrations = []string{
	0: `
CREATE TABLE runs (
	seq          INTEGER PRIMARY KEY AUTOINCREMENT,
	workflow     TEXT    NOT NULL,
	run_id       TEXT    NOT NULL,
	state        TEXT    NOT NULL,
	trigger      TEXT    NOT NULL,
	scheduled_at INTEGER,
	started_at   INTEGER,
	ended_at     INTEGER,
	error        TEXT    NOT NULL,
	input        BLOB,
	folded       INTEGER NOT NULL,
	owner        TEXT,
	lease_until  INTEGER,
	lease_ttl    INTEGER,
	UNIQUE (workflow, run_id)
);
CREATE INDEX runs_by_workflow ON runs (workflow, seq);
CREATE INDEX runs_ended ON runs (workflow, ended_at)
	WHERE state IN ('succeeded', 'failed', 'timed_out', 'cancelled', 'skipped');
CREATE INDEX runs_by_owner ON runs (owner) WHERE owner IS NOT NULL;
CREATE TABLE tasks (
	run_seq    INTEGER NOT NULL,
	pos        INTEGER NOT NULL,
	name       TEXT    NOT NULL,
	state      TEXT    NOT NULL,
	attempts   INTEGER NOT NULL,
	started_at INTEGER,
	ended_at   INTEGER,
	error      TEXT    NOT NULL,
	output     BLOB,
	PRIMARY KEY (run_seq, pos)
) WITHOUT ROWID;
CREATE TABLE events (
	run_seq INTEGER NOT NULL,
	n       INTEGER NOT NULL,
	time    INTEGER,
	task    INTEGER,
	type    TEXT    NOT NULL,
	attempt INTEGER NOT NULL,
	error   TEXT    NOT NULL,
	run_id  TEXT,
	payload BLOB,
	PRIMARY KEY (run_seq, n)
) WITHOUT ROWID;
`,
	// Version 2: Event.Pass and Event.RetryAt.
	1: `
ALTER TABLE events ADD COLUMN pass INTEGER NOT NULL DEFAULT 0;
ALTER TABLE events ADD COLUMN retry_at INTEGER;
`,
	// Version 3: Event.Item.
	2: `
ALTER TABLE events ADD COLUMN item INTEGER NOT NULL DEFAULT 0;
`,
	// Version 4: RunStatus.ParentRunID, '' for a run no Sub task started.
	3: `
ALTER TABLE runs ADD COLUMN parent_run_id TEXT NOT NULL DEFAULT '';
`,
}

// endedStates is the SQL list of the states State.Ended reports.
const endedStates = `('succeeded', 'failed', 'timed_out', 'cancelled', 'skipped')`

// migrate brings the file to schemaVersion, in one transaction that waits
// for other processes doing the same; it refuses a newer file or another
// application's database.
func migrate(ctx context.Context, conn *sql.Conn) (err error) {
	if _, err := conn.ExecContext(ctx, "BEGIN IMMEDIATE"); err != nil {
		return err
	}
	defer func() {
		if err != nil {
			conn.ExecContext(context.Background(), "ROLLBACK")
		}
	}()
	var version, app int64
	if err := conn.QueryRowContext(ctx, "PRAGMA user_version").Scan(&version); err != nil {
		return err
	}
	if err := conn.QueryRowContext(ctx, "PRAGMA application_id").Scan(&app); err != nil {
		return err
	}
	switch {
	case app != 0 && app != applicationID:
		return fmt.Errorf("not a workflow store (application_id %#x)", app)
	case version > schemaVersion:
		return fmt.Errorf("schema version %d is newer than this package's %d", version, schemaVersion)
	case version < 0:
		return fmt.Errorf("unknown schema version %d", version)
	}
	for v := version; v < schemaVersion; v++ {
		if _, err := conn.ExecContext(ctx, migrations[v]); err != nil {
			return fmt.Errorf("migrate schema from version %d: %w", v, err)
		}
	}
	if version != schemaVersion {
		if _, err := conn.ExecContext(ctx, fmt.Sprintf("PRAGMA user_version = %d", schemaVersion)); err != nil {
			return err
		}
	}
	if app == 0 {
		if _, err := conn.ExecContext(ctx, fmt.Sprintf("PRAGMA application_id = %d", applicationID)); err != nil {
			return err
		}
	}
	_, err = conn.ExecContext(ctx, "COMMIT")
	return err
}
