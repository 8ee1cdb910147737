package sqlitestore

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
)

// runCols are the columns scanRun reads; ?1 says whether to read the input
// bytes.
const runCols = `seq, workflow, run_id, state, trigger, parent_run_id, scheduled_at, started_at, ended_at, error,
	input IS NOT NULL, CASE WHEN ?1 THEN input END, folded, owner, lease_until`

// readStmts are the statements that read runs. They are prepared on the
// read pool, for the methods that read, and on the write connection, for
// loading a run into a Recorder inside a write transaction.
type readStmts struct {
	runByID   *sql.Stmt // payloads?, workflow, run ID
	runNewest *sql.Stmt // payloads?, workflow
	runBySeq  *sql.Stmt // payloads?, seq
	list      *sql.Stmt // payloads?, workflow, state or "", before seq, limit
	seqOf     *sql.Stmt // workflow, run ID
	tasks     *sql.Stmt // seq, outputs?
	events    *sql.Stmt // seq, folded, payloads?, from n
	orphans   *sql.Stmt // workflow, now
	workflows *sql.Stmt
}

func (r *readStmts) defs() []stmtDef {
	return []stmtDef{
		{&r.runByID, `SELECT ` + runCols + ` FROM runs WHERE workflow = ?2 AND run_id = ?3`},
		{&r.runNewest, `SELECT ` + runCols + ` FROM runs WHERE workflow = ?2 ORDER BY seq DESC LIMIT 1`},
		{&r.runBySeq, `SELECT ` + runCols + ` FROM runs WHERE seq = ?2`},
		{&r.list, `SELECT ` + runCols + ` FROM runs
		WHERE workflow = ?2 AND (?3 = '' OR state = ?3) AND seq < ?4 ORDER BY seq DESC LIMIT ?5`},
		{&r.seqOf, `SELECT seq FROM runs WHERE workflow = ? AND run_id = ?`},
		{&r.tasks, `SELECT name, state, attempts, started_at, ended_at, error, output IS NOT NULL, CASE WHEN ?2 THEN output END
		FROM tasks WHERE run_seq = ?1 ORDER BY pos`},
		{&r.events, `SELECT n, time, task, type, attempt, error, run_id, pass, retry_at, item, payload IS NOT NULL, CASE WHEN ?3 AND n >= ?2 THEN payload END
		FROM events WHERE run_seq = ?1 AND n >= ?4 ORDER BY n`},
		{&r.orphans, `SELECT run_id FROM runs
		WHERE workflow = ? AND state IN ('pending', 'running', 'interrupted') AND (owner IS NULL OR lease_until < ?)
		ORDER BY seq`},
		{&r.workflows, `SELECT DISTINCT workflow FROM runs ORDER BY workflow`},
	}
}

// writeStmts are the statements of the write connection.
type writeStmts struct {
	begin, commit, rollback        *sql.Stmt
	savepoint, release, rollbackTo *sql.Stmt

	insRun      *sql.Stmt
	insTask     *sql.Stmt
	insPending  *sql.Stmt                   // seq, JSON array of the names of tasks all pending
	insEvents   [maxEventRows + 1]*sql.Stmt // insEvents[k] inserts k events (k ≥ 1)
	exists      *sql.Stmt                   // workflow, run ID
	updRun      *sql.Stmt                   // state, started, ended, error, seq
	setInput    *sql.Stmt                   // input, seq
	setLease    *sql.Stmt                   // owner, until, ttl, seq
	setFold     *sql.Stmt                   // folded, seq
	updTask     *sql.Stmt                   // state, attempts, started, ended, error, output event (-1 none, -2 kept), seq, pos
	fence       *sql.Stmt                   // seq
	claim       *sql.Stmt                   // owner, until, ttl, workflow, run ID, now
	claimOrphan *sql.Stmt                   // the same, for a run under way only
	leaseOf     *sql.Stmt                   // workflow, run ID
	renew       *sql.Stmt                   // until, owner
	maxSeq      *sql.Stmt                   // seq
	keepFrom    *sql.Stmt                   // workflow, offset
	tooMany     *sql.Stmt                   // workflow, bound seq, now
	tooOld      *sql.Stmt                   // workflow, cutoff, now
	delEvent    *sql.Stmt                   // seq
	delTask     *sql.Stmt                   // seq
	delRun      *sql.Stmt                   // seq

	load readStmts
}

// maxEventRows is the most events one INSERT writes: a batch of more
// is written in several.
const maxEventRows = 16

// insertEvents is the INSERT of k events.
func insertEvents(k int) string {
	rows := strings.Repeat(", (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", k)[2:]
	return `INSERT INTO events (run_seq, n, time, task, type, attempt, error, run_id, pass, retry_at, item, payload) VALUES ` + rows
}

func (w *writeStmts) defs() []stmtDef {
	defs := make([]stmtDef, 0, 32+maxEventRows)
	for k := 1; k <= maxEventRows; k++ {
		defs = append(defs, stmtDef{&w.insEvents[k], insertEvents(k)})
	}
	return append(defs, []stmtDef{
		{&w.begin, `BEGIN IMMEDIATE`},
		{&w.commit, `COMMIT`},
		{&w.rollback, `ROLLBACK`},
		{&w.insRun, `INSERT INTO runs (workflow, run_id, state, trigger, parent_run_id, scheduled_at, started_at, ended_at, error,
		input, folded, owner, lease_until, lease_ttl) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`},
		{&w.insTask, `INSERT INTO tasks (run_seq, pos, name, state, attempts, started_at, ended_at, error, output) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`},
		{&w.insPending, `INSERT INTO tasks (run_seq, pos, name, state, attempts, error)
		SELECT ?1, key, value, 'pending', 0, '' FROM json_each(?2)`},
		{&w.exists, `SELECT 1 FROM runs WHERE workflow = ? AND run_id = ?`},
		{&w.updRun, `UPDATE runs SET state = ?, started_at = ?, ended_at = ?, error = ? WHERE seq = ?`},
		{&w.setInput, `UPDATE runs SET input = ? WHERE seq = ?`},
		{&w.setLease, `UPDATE runs SET owner = ?, lease_until = ?, lease_ttl = ? WHERE seq = ?`},
		{&w.setFold, `UPDATE runs SET folded = ? WHERE seq = ?`},
		{&w.updTask, `UPDATE tasks SET state = ?1, attempts = ?2, started_at = ?3, ended_at = ?4, error = ?5,
		output = CASE ?6 WHEN -1 THEN NULL WHEN -2 THEN output ELSE (SELECT payload FROM events WHERE run_seq = ?7 AND n = ?6) END
		WHERE run_seq = ?7 AND pos = ?8`},
		{&w.fence, `SELECT owner, lease_until FROM runs WHERE seq = ?`},
		{&w.claim, `UPDATE runs SET owner = ?1, lease_until = ?2, lease_ttl = ?3
		WHERE workflow = ?4 AND run_id = ?5 AND (owner IS NULL OR lease_until < ?6 OR owner = ?1) RETURNING seq`},
		{&w.claimOrphan, `UPDATE runs SET owner = ?1, lease_until = ?2, lease_ttl = ?3
		WHERE workflow = ?4 AND run_id = ?5 AND state IN ('pending', 'running', 'interrupted')
		AND (owner IS NULL OR lease_until < ?6 OR owner = ?1) RETURNING seq`},
		{&w.leaseOf, `SELECT owner, lease_until, state FROM runs WHERE workflow = ? AND run_id = ?`},
		{&w.renew, `UPDATE runs SET lease_until = ? WHERE owner = ? RETURNING seq`},
		{&w.maxSeq, `SELECT IFNULL(MAX(n) + 1, 0) FROM events WHERE run_seq = ?`},
		{&w.keepFrom, `SELECT seq FROM runs WHERE workflow = ? ORDER BY seq DESC LIMIT 1 OFFSET ?`},
		{&w.tooMany, `SELECT seq FROM runs WHERE workflow = ?1 AND seq < ?2 AND state IN ` + endedStates + `
		AND (owner IS NULL OR lease_until < ?3)`},
		{&w.tooOld, `SELECT seq FROM runs WHERE workflow = ?1 AND state IN ` + endedStates + `
		AND (ended_at IS NULL OR ended_at < ?2) AND (owner IS NULL OR lease_until < ?3)`},
		{&w.delEvent, `DELETE FROM events WHERE run_seq = ?`},
		{&w.delTask, `DELETE FROM tasks WHERE run_seq = ?`},
		{&w.delRun, `DELETE FROM runs WHERE seq = ?`},
	}...)
}

type preparer interface {
	PrepareContext(ctx context.Context, query string) (*sql.Stmt, error)
}

// stmtDef is a statement to prepare, and where to keep it.
type stmtDef struct {
	dst  **sql.Stmt
	text string
}

func prepareAll(ctx context.Context, p preparer, defs []stmtDef) error {
	for _, d := range defs {
		st, err := p.PrepareContext(ctx, d.text)
		if err != nil {
			return fmt.Errorf("prepare %q: %w", strings.Fields(d.text)[:3], err)
		}
		*d.dst = st
	}
	return nil
}

func closeAll(defs []stmtDef) {
	for _, d := range defs {
		if *d.dst != nil {
			(*d.dst).Close()
		}
	}
}

func (r *readStmts) prepare(ctx context.Context, p preparer) error {
	return prepareAll(ctx, p, r.defs())
}

func (r *readStmts) close() { closeAll(r.defs()) }

func (w *writeStmts) prepare(ctx context.Context, p preparer) error {
	if err := prepareAll(ctx, p, w.defs()); err != nil {
		return err
	}
	return w.load.prepare(ctx, p)
}

func (w *writeStmts) close() {
	closeAll(w.defs())
	w.load.close()
}
