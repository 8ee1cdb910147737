package pgstore

import (
	"fmt"
	"math"
	"strings"
)

// noTime stands for the zero time.Time in the statements' parameters and
// results, and NULL in the tables: arrays of bigint carry it without a
// pointer per element.
const noTime = math.MinInt64

// statements are the SQL statements of a Store, with its schema's name in
// them. Each batch a Store sends runs as one implicit transaction: all of
// it or none of it.
type statements struct {
	create    string // see createSQL
	append    string // see appendSQL
	fold      string // see foldSQL
	claim     string // owner, TTL µs, workflow, run ID
	claimRun  string // the same, for a run under way only (ClaimOrphan)
	leaseOf   string // workflow, run ID: seq, owner, lease, whether it is live, state
	renew     string // owner, seq[]
	orphans   string // workflow
	workflows string
	retain    string // workflow, then the parameters queueRetain gives; "" when every run is kept
	runByID   string // payloads?, workflow, run ID
	runNewest string // payloads?, workflow
	runBySeq  string // payloads?, seq
	list      string // payloads?, workflow, state or "", before seq, limit or NULL
	seqOf     string // workflow, run ID
	tasks     string // seq[], outputs?
	events    string // seq[], folded[], every event?, payloads?
	pending   string // seq: the events not folded, without payloads

	claimFire, claimMissed, fireStarted, setPaused, paused, lastFire string // see schedule.go
}

// The lease changes of appendSQL.
const (
	leaseKeep = iota
	leaseRelease
	leaseTake
)

// micros turns a TTL parameter (microseconds) into an interval.
const micros = `::bigint * interval '1 microsecond'`

// eventsFrom is the SELECT of the events' columns from unnest, with their
// run's seq: number, time, task position (-1: none), type, attempt,
// error, run ID, whether the run ID is the run's own (then NULL), pass,
// retry time, item (0: NULL), payload.
// The arrays are the parameters from $first on.
func eventsFrom(seq string, first int) string {
	types := []string{"integer", "bigint", "integer", "text", "integer", "bytea", "text", "boolean", "integer", "bigint", "bigint", "bytea"}
	params := make([]string, len(types))
	for k, typ := range types {
		params[k] = fmt.Sprintf("$%d::%s[]", first+k, typ)
	}
	return `SELECT ` + seq + `, u.n, NULLIF(u.time, {nt}), NULLIF(u.task, -1), u.type, u.attempt, u.error,
		CASE WHEN u.own THEN NULL ELSE u.run_id END, u.pass, NULLIF(u.retry_at, {nt}), NULLIF(u.item, 0), u.payload
	FROM unnest(` + strings.Join(params, ", ") + `) AS u(n, time, task, type, attempt, error, run_id, own, pass, retry_at, item, payload)`
}

const eventCols = `run_seq, n, time, task, type, attempt, error, run_id, pass, retry_at, item, payload`

// createSQL inserts a run, its tasks and its events (history, folded
// already) in one statement, unless the workflow has a run of that ID: $1
// workflow, $2 run ID, $3 state, $4 trigger, $5 scheduled, $6 started, $7
// ended, $8 error, $9 input, $10 owner or NULL (no lease), $11 TTL µs, $12
// folded, $13 parent run ID ("": NULL); $14–$20 the tasks (name, state,
// attempts, started, ended, error, output); $21–$32 the events. It returns
// the run's seq, or no row.
func createSQL() string {
	return `WITH r AS (
	INSERT INTO {s}.runs (workflow, run_id, state, trigger, scheduled_at, started_at, ended_at, error, input, folded,
		owner, lease_until, lease_ttl, parent_run_id)
	VALUES ($1, $2, $3, $4, NULLIF($5::bigint, {nt}), NULLIF($6::bigint, {nt}), NULLIF($7::bigint, {nt}), $8, $9, $12,
		$10::text, CASE WHEN $10::text IS NOT NULL THEN clock_timestamp() + $11` + micros + ` END,
		CASE WHEN $10::text IS NOT NULL THEN $11` + micros + ` END, NULLIF($13::text, ''))
	ON CONFLICT (workflow, run_id) DO NOTHING
	RETURNING seq
), t AS (
	INSERT INTO {s}.tasks (run_seq, pos, name, state, attempts, started_at, ended_at, error, output)
	SELECT r.seq, u.pos - 1, u.name, u.state, u.attempts, NULLIF(u.started, {nt}), NULLIF(u.ended, {nt}), u.error, u.output
	FROM r, unnest($14::text[], $15::text[], $16::integer[], $17::bigint[], $18::bigint[], $19::bytea[], $20::bytea[])
		WITH ORDINALITY AS u(name, state, attempts, started, ended, error, output, pos)
), e AS (
	INSERT INTO {s}.events (` + eventCols + `)
	` + eventsFrom("r.seq", 21) + `, r
)
SELECT seq FROM r`
}

// appendSQL is the one statement that writes a batch of a Recorder: the
// fence ($1 seq, $2 owner, $3 held), which refuses the whole statement
// unless the recorder still holds the run and locks the run's row against
// a claim until the statement is committed; the events ($4–$15); and,
// for a batch with a run event ($16), the run's row ($17 state, $18
// started, $19 ended, $20 error, $21 input or NULL to keep it, $22 the
// lease change, $23 the TTL in µs). It joins no table: PostgreSQL plans it
// once per connection, and a chain commits once per task.
func appendSQL() string {
	return `WITH f AS (
	SELECT {s}.fence($1, $2, $3) AS fenced
), e AS (
	INSERT INTO {s}.events (` + eventCols + `)
	` + eventsFrom("$1::bigint", 4) + `
), r AS (
	UPDATE {s}.runs SET state = $17, started_at = NULLIF($18::bigint, {nt}), ended_at = NULLIF($19::bigint, {nt}), error = $20,
		input = COALESCE($21::bytea, input),
		owner = CASE $22::integer WHEN 0 THEN owner WHEN 1 THEN NULL ELSE $2 END,
		lease_until = CASE $22::integer WHEN 0 THEN lease_until WHEN 1 THEN NULL ELSE clock_timestamp() + $23` + micros + ` END,
		lease_ttl = CASE $22::integer WHEN 0 THEN lease_ttl WHEN 1 THEN NULL ELSE $23` + micros + ` END
	WHERE seq = $1 AND $16::boolean
)
SELECT fenced FROM f`
}

// foldSQL brings the rows of the tasks that changed since the last fold
// up to date, and notes that the run's first $9 events are folded: $1
// seq; $2–$8 the tasks (position, state, attempts, started, ended, error,
// and where the output is: an event's number, -1 none, -2 the row's).
// It follows appendSQL in the batch that stops a run.
func foldSQL() string {
	return `WITH t AS (
	UPDATE {s}.tasks AS t SET state = u.state, attempts = u.attempts,
		started_at = NULLIF(u.started, {nt}), ended_at = NULLIF(u.ended, {nt}), error = u.error,
		output = CASE u.outn WHEN -1 THEN NULL WHEN -2 THEN t.output
			ELSE (SELECT payload FROM {s}.events WHERE run_seq = $1 AND n = u.outn) END
	FROM unnest($2::integer[], $3::text[], $4::integer[], $5::bigint[], $6::bigint[], $7::bytea[], $8::integer[])
		AS u(pos, state, attempts, started, ended, error, outn)
	WHERE t.run_seq = $1 AND t.pos = u.pos
)
UPDATE {s}.runs SET folded = $9 WHERE seq = $1`
}

func newStatements(schema string, cfg config) statements {
	s := statements{
		create: createSQL(),
		append: appendSQL(),
		fold:   foldSQL(),
		// SKIP LOCKED: a run another replica is claiming, or its owner
		// writing, is not this one's to take now.
		claim: `UPDATE {s}.runs SET owner = $1, lease_until = clock_timestamp() + $2` + micros + `, lease_ttl = $2` + micros + `
WHERE seq = (SELECT seq FROM {s}.runs WHERE workflow = $3 AND run_id = $4
	AND (owner IS NULL OR lease_until < clock_timestamp() OR owner = $1) FOR UPDATE SKIP LOCKED)
RETURNING seq`,
		claimRun: `UPDATE {s}.runs SET owner = $1, lease_until = clock_timestamp() + $2` + micros + `, lease_ttl = $2` + micros + `
WHERE seq = (SELECT seq FROM {s}.runs WHERE workflow = $3 AND run_id = $4 AND state IN ('pending', 'running', 'interrupted')
	AND (owner IS NULL OR lease_until < clock_timestamp() OR owner = $1) FOR UPDATE SKIP LOCKED)
RETURNING seq`,
		leaseOf: `SELECT seq, owner, lease_until, COALESCE(lease_until > clock_timestamp(), false), state
FROM {s}.runs WHERE workflow = $1 AND run_id = $2`,
		renew: `UPDATE {s}.runs SET lease_until = clock_timestamp() + lease_ttl WHERE owner = $1 AND seq = ANY($2::bigint[])`,
		orphans: `SELECT run_id FROM {s}.runs
WHERE workflow = $1 AND state IN ('pending', 'running', 'interrupted') AND (owner IS NULL OR lease_until < clock_timestamp())
ORDER BY seq`,
		// A loose index scan: one probe of the index per workflow.
		workflows: `WITH RECURSIVE w AS (
	(SELECT workflow FROM {s}.runs ORDER BY workflow LIMIT 1)
	UNION ALL
	SELECT (SELECT workflow FROM {s}.runs WHERE workflow > w.workflow ORDER BY workflow LIMIT 1) FROM w WHERE w.workflow IS NOT NULL
)
SELECT workflow FROM w WHERE workflow IS NOT NULL`,
		runByID:   `SELECT ` + runCols + ` FROM {s}.runs WHERE workflow = $2 AND run_id = $3`,
		runNewest: `SELECT ` + runCols + ` FROM {s}.runs WHERE workflow = $2 ORDER BY seq DESC LIMIT 1`,
		runBySeq:  `SELECT ` + runCols + ` FROM {s}.runs WHERE seq = $2`,
		list: `SELECT ` + runCols + ` FROM {s}.runs
WHERE workflow = $2 AND ($3 = '' OR state = $3) AND seq < $4 ORDER BY seq DESC LIMIT $5::bigint`,
		seqOf: `SELECT seq FROM {s}.runs WHERE workflow = $1 AND run_id = $2`,
		tasks: `SELECT run_seq, name, state, attempts, COALESCE(started_at, {nt}), COALESCE(ended_at, {nt}), error,
	output IS NOT NULL, CASE WHEN $2 THEN output END
FROM {s}.tasks WHERE run_seq = ANY($1::bigint[]) ORDER BY run_seq, pos`,
		// The events of each run: every one, or only those not folded
		// ($3); the payloads of those not folded ($4).
		events: `SELECT e.run_seq, e.n, COALESCE(e.time, {nt}), COALESCE(e.task, -1), e.type, e.attempt, e.error, e.run_id,
	e.pass, COALESCE(e.retry_at, {nt}), COALESCE(e.item, 0), e.payload IS NOT NULL, CASE WHEN $4 AND e.n >= q.folded THEN e.payload END
FROM unnest($1::bigint[], $2::integer[]) AS q(seq, folded)
JOIN {s}.events e ON e.run_seq = q.seq AND ($3 OR e.n >= q.folded)
ORDER BY e.run_seq, e.n`,
		pending: `SELECT e.run_seq, e.n, COALESCE(e.time, {nt}), COALESCE(e.task, -1), e.type, e.attempt, e.error, e.run_id,
	e.pass, COALESCE(e.retry_at, {nt}), COALESCE(e.item, 0), e.payload IS NOT NULL, NULL::bytea
FROM {s}.events e JOIN {s}.runs r ON r.seq = e.run_seq
WHERE e.run_seq = $1 AND e.n >= r.folded ORDER BY e.n`,
		retain:      retainSQL(cfg),
		claimFire:   claimFireSQL,
		claimMissed: claimMissedSQL,
		fireStarted: fireStartedSQL,
		setPaused:   setPausedSQL,
		paused:      pausedSQL,
		lastFire:    lastFireSQL,
	}
	r := strings.NewReplacer("{s}", schema, "{nt}", fmt.Sprint(int64(noTime)))
	for _, p := range []*string{&s.create, &s.append, &s.fold, &s.claim, &s.claimRun, &s.leaseOf, &s.renew, &s.orphans, &s.workflows,
		&s.retain, &s.runByID, &s.runNewest, &s.runBySeq, &s.list, &s.seqOf, &s.tasks, &s.events, &s.pending,
		&s.claimFire, &s.claimMissed, &s.fireStarted, &s.setPaused, &s.paused, &s.lastFire} {
		*p = r.Replace(*p)
	}
	return s
}

// runCols are the columns scanRun reads; $1 says whether to read the input
// bytes.
const runCols = `seq, workflow, run_id, state, trigger, COALESCE(parent_run_id, ''), COALESCE(scheduled_at, {nt}),
	COALESCE(started_at, {nt}), COALESCE(ended_at, {nt}), error, input IS NOT NULL, CASE WHEN $1 THEN input END, folded, owner`

// retainSQL is the statement that drops the runs of a workflow ($1) that
// MaxRuns and MaxAge leave out: ended, not reopened by a live owner, and
// older than the newest MaxRuns ($2: MaxRuns − 1) or ended before $3 (or
// $2 alone, without MaxRuns). SKIP LOCKED: a run another replica is
// dropping, or taking, is left to it.
func retainSQL(cfg config) string {
	var conds []string
	if cfg.maxRuns > 0 {
		conds = append(conds, `seq < (SELECT seq FROM {s}.runs WHERE workflow = $1 ORDER BY seq DESC OFFSET $2::bigint LIMIT 1)`)
	}
	if cfg.maxAge > 0 {
		conds = append(conds, fmt.Sprintf(`(ended_at IS NULL OR ended_at < $%d::bigint)`, len(conds)+2))
	}
	if len(conds) == 0 {
		return ""
	}
	return `WITH d AS (
	DELETE FROM {s}.runs WHERE seq IN (
		SELECT seq FROM {s}.runs WHERE workflow = $1 AND state IN ` + endedStates + `
		AND (owner IS NULL OR lease_until < clock_timestamp()) AND (` + strings.Join(conds, " OR ") + `)
		FOR UPDATE SKIP LOCKED)
	RETURNING seq
), t AS (
	DELETE FROM {s}.tasks WHERE run_seq IN (SELECT seq FROM d)
), e AS (
	DELETE FROM {s}.events WHERE run_seq IN (SELECT seq FROM d)
)
SELECT count(*) FROM d`
}
