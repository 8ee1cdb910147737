package pgstore

import (
	"context"
	"errors"
	"fmt"
	"math"

	"github.com/jackc/pgx/v5"

	"github.com/b3b01171/workflow"
)

// runRow is a run's row: its own fields, without tasks or events.
type runRow struct {
	seq      int64
	rs       workflow.RunStatus
	hasInput bool
	folded   int64 // events folded into the tasks' rows
	owner    *string
}

// scanRun reads the columns runCols names.
func scanRun(row pgx.Row) (runRow, error) {
	var (
		r                         runRow
		state                     string
		scheduled, started, ended int64
		folded                    int32
		errText, input            []byte
	)
	err := row.Scan(&r.seq, &r.rs.Workflow, &r.rs.RunID, &state, &r.rs.Trigger, &r.rs.ParentRunID, &scheduled, &started,
		&ended, &errText, &r.hasInput, &input, &folded, &r.owner)
	r.folded = int64(folded)
	if err != nil {
		return r, err
	}
	r.rs.State, r.rs.Error = workflow.State(state), string(errText)
	r.rs.ScheduledAt, r.rs.StartedAt, r.rs.EndedAt = fromNanos(scheduled), fromNanos(started), fromNanos(ended)
	if r.hasInput {
		r.rs.Input = orEmpty(input)
	}
	return r, nil
}

// orEmpty is b, or an empty payload for nil: a payload that is there is
// never nil.
func orEmpty(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}

// scanTasks reads the rows the statement tasks gives, and returns the
// tasks of each run. A task whose output was not read has kept in its
// stead.
func scanTasks(rows pgx.Rows) (map[int64][]workflow.TaskStatus, error) {
	defer rows.Close()
	tasks := map[int64][]workflow.TaskStatus{}
	for rows.Next() {
		var (
			seq            int64
			t              workflow.TaskStatus
			state          string
			started, ended int64
			errText        []byte
			hasOutput      bool
			output         []byte
		)
		if err := rows.Scan(&seq, &t.Name, &state, &t.Attempts, &started, &ended, &errText, &hasOutput, &output); err != nil {
			return nil, err
		}
		t.State, t.StartedAt, t.EndedAt, t.Error = workflow.State(state), fromNanos(started), fromNanos(ended), string(errText)
		switch {
		case hasOutput && output != nil:
			t.Output = output
		case hasOutput:
			t.Output = kept
		}
		tasks[seq] = append(tasks[seq], t)
	}
	return tasks, rows.Err()
}

// scanEvents reads the rows the statements events and pending give, and
// calls f with each event, its run's seq, its number, its task's position
// (-1 for a run event), and its payload: whether it has one, and the
// bytes if they were read. runID gives the ID of a run (the event's own,
// unless the row names another); the event's Task is left for f to name.
func scanEvents(rows pgx.Rows, runID func(seq int64) string,
	f func(seq, n int64, ev workflow.Event, pos int, hasPayload bool, payload []byte) error) error {
	defer rows.Close()
	for rows.Next() {
		var (
			seq, at    int64
			retryAt    int64
			n, task    int32
			pass       int32
			ev         workflow.Event
			errText    []byte
			otherRun   *string
			hasPayload bool
			payload    []byte
		)
		if err := rows.Scan(&seq, &n, &at, &task, &ev.Type, &ev.Attempt, &errText, &otherRun, &pass, &retryAt, &ev.Item, &hasPayload, &payload); err != nil {
			return err
		}
		ev.Time, ev.Error, ev.RunID, ev.Pass, ev.RetryAt = fromNanos(at), string(errText), runID(seq), int(pass), fromNanos(retryAt)
		if otherRun != nil {
			ev.RunID = *otherRun
		}
		if err := f(seq, int64(n), ev, int(task), hasPayload, payload); err != nil {
			return err
		}
	}
	return rows.Err()
}

// read runs f in a read-only transaction on one snapshot of the database,
// whatever the writers do meanwhile; a lost connection is retried.
func (s *Store) read(ctx context.Context, f func(tx pgx.Tx) error) error {
	return s.retry(ctx, func(int) error {
		return pgx.BeginTxFunc(ctx, s.pool, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, f)
	})
}

// fill reads the tasks and events of the runs of rows, in tx, folds the
// events their tasks' rows do not hold yet, and returns the runs in the
// same order. events: return every event; payloads: return the input and
// the outputs.
func (s *Store) fill(ctx context.Context, tx pgx.Tx, rows []runRow, events, payloads bool) ([]workflow.RunStatus, error) {
	out := make([]workflow.RunStatus, len(rows))
	if len(rows) == 0 {
		return out, nil
	}
	seqs := make([]int64, len(rows))
	folded := make([]int32, len(rows))
	at := make(map[int64]int, len(rows)) // seq → index in rows
	for i, r := range rows {
		seqs[i], folded[i], at[r.seq] = r.seq, int32(r.folded), i
	}
	qr, _ := tx.Query(ctx, s.sql.tasks, seqs, payloads)
	tasks, err := scanTasks(qr)
	if err != nil {
		return nil, err
	}
	next := make([]int64, len(rows)) // the number of the next event of each run
	for i, r := range rows {
		out[i] = r.rs
		out[i].Tasks = tasks[r.seq]
		if out[i].Tasks == nil {
			out[i].Tasks = []workflow.TaskStatus{}
		}
		out[i].Events = make([]workflow.Event, 0, 8)
		if !events {
			next[i] = r.folded
		}
	}
	qr, _ = tx.Query(ctx, s.sql.events, seqs, folded, events, payloads)
	err = scanEvents(qr, func(seq int64) string { return rows[at[seq]].rs.RunID },
		func(seq, n int64, ev workflow.Event, pos int, hasPayload bool, payload []byte) error {
			i := at[seq]
			rs, row := &out[i], &rows[i]
			switch {
			case n != next[i]:
				return fmt.Errorf("event %d of run %q is missing", next[i], rs.RunID)
			case pos >= len(rs.Tasks):
				return fmt.Errorf("event %d of run %q names task %d of %d", n, rs.RunID, pos, len(rs.Tasks))
			case pos >= 0:
				ev.Task = rs.Tasks[pos].Name
			}
			next[i]++
			if n < row.folded {
				rs.Events = append(rs.Events, ev)
				return nil
			}
			switch {
			case hasPayload && !payloads:
				payload = kept // not read: there all the same
			case hasPayload:
				payload = orEmpty(payload)
			}
			return rs.Apply(workflow.Entry{Event: ev, Index: pos, Payload: workflow.Payload{Data: payload}})
		})
	if err != nil {
		return nil, err
	}
	for i, r := range rows {
		rs := &out[i]
		// The run's own fields are as its row says (and the same as the fold).
		rs.State, rs.StartedAt, rs.EndedAt, rs.Error, rs.Input = r.rs.State, r.rs.StartedAt, r.rs.EndedAt, r.rs.Error, r.rs.Input
		rs.Output = nil
		if !events {
			rs.Events = nil
		}
		if !payloads {
			rs.Input = nil
			for k := range rs.Tasks {
				rs.Tasks[k].Output = nil
			}
		}
	}
	return out, nil
}

// find reads the row of a run (runID "": the newest of the workflow) in tx.
func (s *Store) find(ctx context.Context, tx pgx.Tx, workflowName, runID string, payloads bool) (runRow, error) {
	var row pgx.Row
	switch {
	case !storable(workflowName) || !storable(runID):
		row = noRow{} // a name PostgreSQL's text cannot hold names no run
	case runID == "":
		row = tx.QueryRow(ctx, s.sql.runNewest, payloads, workflowName)
	default:
		row = tx.QueryRow(ctx, s.sql.runByID, payloads, workflowName, runID)
	}
	r, err := scanRun(row)
	switch {
	case errors.Is(err, pgx.ErrNoRows) && runID == "":
		return r, fmt.Errorf("%w: workflow %q has no runs", workflow.ErrNotFound, workflowName)
	case errors.Is(err, pgx.ErrNoRows):
		return r, fmt.Errorf("%w: workflow %q has no run %q", workflow.ErrNotFound, workflowName, runID)
	}
	return r, err
}

// noRow is the row of a query that finds nothing.
type noRow struct{}

func (noRow) Scan(...any) error { return pgx.ErrNoRows }

// Get implements workflow.Store: runID "" is the most recently created
// run. Times are in UTC; Input and each task's Output hold the bytes the
// engine encoded.
func (s *Store) Get(ctx context.Context, workflowName, runID string) (workflow.RunStatus, error) {
	if err := s.begin(ctx); err != nil {
		return workflow.RunStatus{}, failed(err, "get")
	}
	defer s.leave()
	var rs workflow.RunStatus
	err := s.read(ctx, func(tx pgx.Tx) error {
		row, err := s.find(ctx, tx, workflowName, runID, true)
		if err != nil {
			return err
		}
		runs, err := s.fill(ctx, tx, []runRow{row}, true, true)
		if err != nil {
			return err
		}
		rs = runs[0]
		return nil
	})
	if err != nil {
		return workflow.RunStatus{}, failed(err, "get")
	}
	return rs, nil
}

// List implements workflow.Store: the runs of the workflow, newest created
// first, as q selects. It reads only the runs of the page.
func (s *Store) List(ctx context.Context, workflowName string, q workflow.HistoryQuery) ([]workflow.RunStatus, error) {
	if err := s.begin(ctx); err != nil {
		return nil, failed(err, "list")
	}
	defer s.leave()
	// A name PostgreSQL's text cannot hold names no run.
	if !storable(workflowName) || !storable(q.Before) || !storable(string(q.State)) {
		if q.Before != "" {
			return nil, failed(fmt.Errorf("%w: workflow %q has no run %q (HistoryBefore)", workflow.ErrNotFound, workflowName, q.Before), "list")
		}
		return nil, nil
	}
	var out []workflow.RunStatus
	err := s.read(ctx, func(tx pgx.Tx) error {
		before := int64(math.MaxInt64)
		if q.Before != "" {
			err := tx.QueryRow(ctx, s.sql.seqOf, workflowName, q.Before).Scan(&before)
			if errors.Is(err, pgx.ErrNoRows) {
				return fmt.Errorf("%w: workflow %q has no run %q (HistoryBefore)", workflow.ErrNotFound, workflowName, q.Before)
			}
			if err != nil {
				return err
			}
		}
		var limit any
		if q.Limit > 0 {
			limit = int64(q.Limit)
		}
		full := !q.Summary
		qr, _ := tx.Query(ctx, s.sql.list, full, workflowName, string(q.State), before, limit)
		page, err := pgx.CollectRows(qr, func(row pgx.CollectableRow) (runRow, error) { return scanRun(row) })
		if err != nil {
			return err
		}
		out, err = s.fill(ctx, tx, page, full, full)
		return err
	})
	if err != nil {
		return nil, failed(err, "list")
	}
	if len(out) == 0 {
		return nil, nil
	}
	return out, nil
}

// Payloads implements workflow.Store: the run's input, the output of each
// task that succeeded, and in Partial the payload of the end of each task
// that did not (nil when none had one), as the engine encoded them.
func (s *Store) Payloads(ctx context.Context, workflowName, runID string) (workflow.RunPayloads, error) {
	if err := s.begin(ctx); err != nil {
		return workflow.RunPayloads{}, failed(err, "payloads")
	}
	defer s.leave()
	p := workflow.RunPayloads{Outputs: map[string]workflow.Payload{}}
	err := s.read(ctx, func(tx pgx.Tx) error {
		clear(p.Outputs)
		row, err := s.find(ctx, tx, workflowName, runID, true)
		if err != nil {
			return err
		}
		runs, err := s.fill(ctx, tx, []runRow{row}, false, true)
		if err != nil {
			return err
		}
		if row.hasInput {
			p.HasInput, p.Input = true, workflow.Payload{Data: row.rs.Input}
		}
		p.Partial = nil
		for _, t := range runs[0].Tasks {
			switch {
			case t.Output == nil:
			case t.State == workflow.StateSucceeded:
				p.Outputs[t.Name] = workflow.Payload{Data: t.Output}
			default:
				if p.Partial == nil {
					p.Partial = map[string]workflow.Payload{}
				}
				p.Partial[t.Name] = workflow.Payload{Data: t.Output}
			}
		}
		return nil
	})
	if err != nil {
		return workflow.RunPayloads{}, failed(err, "payloads")
	}
	return p, nil
}
