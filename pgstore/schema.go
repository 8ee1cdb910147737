package pgstore

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"strings"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// schemaVersion is the version of the schema this package writes, kept in
// the table schema_version. migrations[v] takes a schema from version v to
// v+1; {s} stands for the quoted schema name.
const schemaVersion = 5

// The schema. Times of runs, tasks and events are unix nanoseconds (NULL
// for the zero time): timestamptz keeps microseconds, and a store gives
// times back to the nanosecond. Leases are timestamptz, compared with the
// database's clock. Errors are bytea: a handler's error may hold any
// bytes, and text refuses NUL and invalid UTF-8.
//
// A run's row holds its own fields, set as each batch is appended, and its
// lease. Its tasks' rows hold their state as of the run's first `folded`
// events; a reader folds the later events into them with RunStatus.Apply.
// Appending a batch thus writes its events and, only when a run event is
// among them, the run's row: no task row is rewritten while the run goes
// on, and the statement joins no table, so that PostgreSQL plans it once.
// The tasks' rows are brought up to date (folded = every event) when a
// batch leaves the run ended or interrupted, so that reading a finished
// run folds nothing.
//
// An event names its task by position (events.task, NULL for an event of
// the run); its payload is the task's output on task_succeeded, or what a
// task that did not succeed kept on its end (a failed Map task's items'
// outputs), which the task's row holds as of `folded` (tasks.output); the
// run's input is on the run's row; events.run_id is NULL when it is the
// run's own ID.
//
// Tables and columns added by later versions join the same schema through
// the next entries of migrations: version 2 adds the schedules of
// workflow.ScheduleStore (see schedule.go); version 3 adds events.item,
// Event.Item, NULL for 0 as most events have it, so that their rows do not
// grow; version 4 adds the fire a Scheduler is starting and the function
// claim_fire (see schedule.go); version 5 adds runs.parent_run_id,
// RunStatus.ParentRunID, NULL for "" as most runs have it.
var migrations = []string{
	0: `
CREATE TABLE {s}.runs (
	seq          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	workflow     text COLLATE "C" NOT NULL,
	run_id       text COLLATE "C" NOT NULL,
	state        text   NOT NULL,
	trigger      text   NOT NULL,
	scheduled_at bigint,
	started_at   bigint,
	ended_at     bigint,
	error        bytea  NOT NULL,
	input        bytea,
	folded       integer NOT NULL,
	owner        text,
	lease_until  timestamptz,
	lease_ttl    interval,
	UNIQUE (workflow, run_id)
);
CREATE INDEX runs_by_workflow ON {s}.runs (workflow, seq);
CREATE INDEX runs_under_way ON {s}.runs (workflow, seq) WHERE state IN ('pending', 'running', 'interrupted');
CREATE INDEX runs_ended ON {s}.runs (workflow, ended_at) WHERE state IN ` + endedStates + `;
CREATE TABLE {s}.tasks (
	run_seq    bigint  NOT NULL,
	pos        integer NOT NULL,
	name       text    NOT NULL,
	state      text    NOT NULL,
	attempts   integer NOT NULL,
	started_at bigint,
	ended_at   bigint,
	error      bytea   NOT NULL,
	output     bytea,
	PRIMARY KEY (run_seq, pos)
);
CREATE TABLE {s}.events (
	run_seq  bigint  NOT NULL,
	n        integer NOT NULL,
	time     bigint,
	task     integer,
	type     text    NOT NULL,
	attempt  integer NOT NULL,
	error    bytea   NOT NULL,
	run_id   text,
	pass     integer NOT NULL,
	retry_at bigint,
	payload  bytea,
	PRIMARY KEY (run_seq, n)
);
-- fence is the first statement of every batch a Recorder appends: it
-- refuses the batch (and so rolls back the whole of it) unless the
-- recorder still holds the run, and locks the run's row against a claim
-- until the batch is committed. held: the recorder holds the lease; a
-- recorder that released it may go on only while nobody took it.
CREATE FUNCTION {s}.fence(run bigint, holder text, held boolean) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
	o text;
BEGIN
	SELECT owner INTO o FROM {s}.runs WHERE seq = run FOR SHARE;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'the run is no longer in the store' USING ERRCODE = 'PW002';
	END IF;
	IF held AND o IS NOT DISTINCT FROM holder OR NOT held AND o IS NULL THEN
		RETURN;
	END IF;
	IF o IS NULL THEN
		RAISE EXCEPTION 'the run has no owner' USING ERRCODE = 'PW001';
	END IF;
	RAISE EXCEPTION 'the run is now owned by %', o USING ERRCODE = 'PW001';
END
$$;
`,
	// A workflow's schedule, as the Schedulers of every replica share it:
	// whether it is paused, and the latest fire claimed (unix ns), by
	// which claim (the claiming Store's owner ID and a number of its own,
	// so that a claim retried after a lost answer knows its own) and when,
	// by the database's clock. One row per workflow, made by the first
	// claim or pause.
	1: `
CREATE TABLE {s}.schedules (
	workflow   text COLLATE "C" PRIMARY KEY,
	paused     boolean NOT NULL DEFAULT false,
	last_fire  bigint,
	claim      text,
	claimed_at timestamptz
);
`,
	// Event.Item. Without a default, adding the column rewrites no row.
	2: `
ALTER TABLE {s}.events ADD COLUMN item bigint;
`,
	// The fire whose run a Scheduler is starting (unix ns), granted not
	// busy by claim_fire, until the Scheduler says the run started
	// (FireStarted) or, should it die first, until starting_until.
	//
	// claim_fire claims a fire (ClaimFire, ClaimFireAlone) in one call: it
	// locks the workflow's row, then, for alone, looks for a scheduled run
	// under way in a statement of its own, whose snapshot is taken after
	// the lock: a run created before the fire that was starting it was
	// ended is then seen, or that fire is.
	3: `
ALTER TABLE {s}.schedules ADD COLUMN IF NOT EXISTS starting bigint, ADD COLUMN IF NOT EXISTS starting_until timestamptz;
CREATE OR REPLACE FUNCTION {s}.claim_fire(wf text, at bigint, claim_id text, alone boolean, ttl_us bigint,
	OUT granted boolean, OUT busy boolean) LANGUAGE plpgsql AS $$
DECLARE
	r {s}.schedules%ROWTYPE;
BEGIN
	granted := false;
	busy := false;
	INSERT INTO {s}.schedules (workflow) VALUES (wf) ON CONFLICT (workflow) DO NOTHING;
	SELECT * INTO r FROM {s}.schedules WHERE workflow = wf FOR UPDATE;
	IF r.last_fire = at AND r.claim = claim_id THEN
		-- Sent again after a lost answer: the same answer.
		granted := true;
		busy := alone AND r.starting IS DISTINCT FROM at;
		RETURN;
	END IF;
	IF r.last_fire IS NOT NULL AND r.last_fire >= at THEN
		RETURN;
	END IF;
	granted := true;
	IF alone THEN
		busy := r.starting IS NOT NULL AND r.starting_until > clock_timestamp() OR EXISTS (
			SELECT 1 FROM {s}.runs
			WHERE workflow = wf AND state IN ('pending', 'running') AND trigger = 'schedule'
				AND lease_until > clock_timestamp());
	END IF;
	IF alone AND NOT busy THEN
		UPDATE {s}.schedules SET last_fire = at, claim = claim_id, claimed_at = clock_timestamp(),
			starting = at, starting_until = clock_timestamp() + ttl_us * interval '1 microsecond'
		WHERE workflow = wf;
	ELSE
		UPDATE {s}.schedules SET last_fire = at, claim = claim_id, claimed_at = clock_timestamp()
		WHERE workflow = wf;
	END IF;
END
$$;
`,
	// RunStatus.ParentRunID. Without a default, adding the column rewrites
	// no row.
	4: `
ALTER TABLE {s}.runs ADD COLUMN parent_run_id text;
`,
}

// The SQLSTATEs that fence raises.
const (
	codeLeaseLost = "PW001"
	codeRunGone   = "PW002"
)

// endedStates is the SQL list of the states State.Ended reports.
const endedStates = `('succeeded', 'failed', 'timed_out', 'cancelled', 'skipped')`

// checkSchemaName refuses a name PostgreSQL would not keep as it is: it
// cuts identifiers at 63 bytes.
func checkSchemaName(name string) error {
	switch {
	case name == "":
		return errors.New("the schema name is empty")
	case len(name) > 63:
		return fmt.Errorf("the schema name %q is longer than 63 bytes", name)
	case !storable(name):
		return fmt.Errorf("the schema name %q is not valid UTF-8 without NUL", name)
	}
	return nil
}

// storable reports whether s can be kept in a text column: valid UTF-8
// without NUL.
func storable(s string) bool {
	return utf8.ValidString(s) && !strings.ContainsRune(s, 0)
}

// lockKey is the advisory lock that serializes the migrations of one
// schema, whatever the process.
func lockKey(schema string) int64 {
	h := fnv.New64a()
	h.Write([]byte("github.com/b3b01171/workflow/pgstore\x00" + schema))
	return int64(h.Sum64())
}

// migrate brings the schema to schemaVersion, creating it if need be, in
// one transaction under an advisory lock, so that replicas starting
// together wait for each other; it refuses a newer schema, and a schema
// holding tables of the same names that this package did not create.
func migrate(ctx context.Context, pool *pgxpool.Pool, schema string) error {
	q := pgx.Identifier{schema}.Sanitize()
	return pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, lockKey(schema)); err != nil {
			return err
		}
		var known bool
		if err := tx.QueryRow(ctx, `SELECT to_regclass($1) IS NOT NULL`, q+".schema_version").Scan(&known); err != nil {
			return err
		}
		version := 0
		if !known {
			rows, _ := tx.Query(ctx, `SELECT tablename FROM pg_tables WHERE schemaname = $1 AND tablename IN ('runs', 'tasks', 'events', 'schedules') ORDER BY 1`, schema)
			others, err := pgx.CollectRows(rows, pgx.RowTo[string])
			if err != nil {
				return err
			}
			if len(others) > 0 {
				return fmt.Errorf("schema %q holds tables %s that this package did not create (it has no schema_version table): choose another schema with pgstore.Schema",
					schema, strings.Join(others, ", "))
			}
			if _, err := tx.Exec(ctx, `CREATE SCHEMA IF NOT EXISTS `+q+`;
CREATE TABLE `+q+`.schema_version (version integer NOT NULL);
INSERT INTO `+q+`.schema_version VALUES (0)`); err != nil {
				return fmt.Errorf("create schema %q: %w", schema, err)
			}
		} else if err := tx.QueryRow(ctx, `SELECT version FROM `+q+`.schema_version`).Scan(&version); err != nil {
			return fmt.Errorf("read the version of schema %q: %w", schema, err)
		}
		switch {
		case version > schemaVersion:
			return fmt.Errorf("schema %q is at version %d, newer than this package's %d: use a newer github.com/b3b01171/workflow/pgstore",
				schema, version, schemaVersion)
		case version < 0:
			return fmt.Errorf("schema %q is at an unknown version %d", schema, version)
		case version == schemaVersion:
			return nil
		}
		for v := version; v < schemaVersion; v++ {
			if _, err := tx.Exec(ctx, strings.ReplaceAll(migrations[v], "{s}", q)); err != nil {
				return fmt.Errorf("migrate schema %q from version %d: %w", schema, v, err)
			}
		}
		_, err := tx.Exec(ctx, `UPDATE `+q+`.schema_version SET version = `+fmt.Sprint(schemaVersion))
		return err
	})
}
