package sqlitestore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math"

	"github.com/b3b01171/workflow"
)

// runRow is a run's row: its own fields, without tasks or events.
type runRow struct {
	seq      int64
	rs       workflow.RunStatus
	hasInput bool
	folded   int64
	owner    sql.NullString
	until    sql.NullInt64
}

type scanner interface{ Scan(dest ...any) error }

// scanRun reads the columns runCols names.
func scanRun(sc scanner) (runRow, error) {
	var (
		r                         runRow
		state                     string
		scheduled, started, ended sql.NullInt64
		input                     []byte
	)
	err := sc.Scan(&r.seq, &r.rs.Workflow, &r.rs.RunID, &state, &r.rs.Trigger, &r.rs.ParentRunID,
		&scheduled, &started, &ended, &r.rs.Error, &r.hasInput, &input, &r.folded, &r.owner, &r.until)
	if err != nil {
		return r, err
	}
	r.rs.State = workflow.State(state)
	r.rs.ScheduledAt, r.rs.StartedAt, r.rs.EndedAt = fromNanos(scheduled), fromNanos(started), fromNanos(ended)
	if r.hasInput {
		r.rs.Input = orEmpty(input)
	}
	return r, nil
}

// orEmpty is b, or an empty payload for the nil that SQLite returns for a
// zero-length blob.
func orEmpty(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}

// scanTasks reads the rows of a run's tasks. Without outputs, a task that
// has one gets present in its stead.
func scanTasks(ctx context.Context, st *sql.Stmt, seq int64, outputs bool) ([]workflow.TaskStatus, error) {
	rows, err := st.QueryContext(ctx, seq, outputs)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var tasks []workflow.TaskStatus
	for rows.Next() {
		var (
			t              workflow.TaskStatus
			state          string
			started, ended sql.NullInt64
			hasOutput      bool
			output         []byte
		)
		if err := rows.Scan(&t.Name, &state, &t.Attempts, &started, &ended, &t.Error, &hasOutput, &output); err != nil {
			return nil, err
		}
		t.State, t.StartedAt, t.EndedAt = workflow.State(state), fromNanos(started), fromNanos(ended)
		switch {
		case hasOutput && outputs:
			t.Output = orEmpty(output)
		case hasOutput:
			t.Output = present
		}
		tasks = append(tasks, t)
	}
	return tasks, rows.Err()
}

// scanEvents calls f with each event of the run runID (row seq) from event from on, its
// task's position (-1 for a run event) and its payload. Payloads are read
// for the events from folded on; without payloads, a payload is present.
// The event's Task is left for f to name.
func scanEvents(ctx context.Context, st *sql.Stmt, runID string, seq, folded int64, payloads bool, from int64,
	f func(n int64, ev workflow.Event, pos int, payload []byte) error) error {
	rows, err := st.QueryContext(ctx, seq, folded, payloads, from)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var (
			n          int64
			ev         = workflow.Event{RunID: runID} // run_id is NULL when it is the run's own
			at         sql.NullInt64
			task       sql.NullInt64
			otherRun   sql.NullString
			retryAt    sql.NullInt64
			hasPayload bool
			payload    []byte
		)
		if err := rows.Scan(&n, &at, &task, &ev.Type, &ev.Attempt, &ev.Error, &otherRun, &ev.Pass, &retryAt, &ev.Item, &hasPayload, &payload); err != nil {
			return err
		}
		ev.Time, ev.RetryAt = fromNanos(at), fromNanos(retryAt)
		if otherRun.Valid {
			ev.RunID = otherRun.String
		}
		pos := -1
		if task.Valid {
			pos = int(task.Int64)
		}
		switch {
		case hasPayload && payloads:
			payload = orEmpty(payload)
		case hasPayload:
			payload = present
		}
		if err := f(n, ev, pos, payload); err != nil {
			return err
		}
	}
	return rows.Err()
}

// fill reads the tasks and events of the run of row, in tx, and folds the
// events its tasks' rows do not hold yet. events: return every event;
// payloads: return the input and the outputs.
func (s *Store) fill(ctx context.Context, tx *sql.Tx, row runRow, events, payloads bool) (workflow.RunStatus, error) {
	rs := row.rs
	var err error
	if rs.Tasks, err = scanTasks(ctx, tx.StmtContext(ctx, s.rs.tasks), row.seq, payloads); err != nil {
		return rs, err
	}
	from := row.folded
	if events {
		from = 0
	}
	rs.Events = make([]workflow.Event, 0, 8)
	err = scanEvents(ctx, tx.StmtContext(ctx, s.rs.events), rs.RunID, row.seq, row.folded, payloads, from,
		func(n int64, ev workflow.Event, pos int, payload []byte) error {
			if pos >= len(rs.Tasks) {
				return fmt.Errorf("event %d of run %q names task %d of %d", n, rs.RunID, pos, len(rs.Tasks))
			}
			if pos >= 0 {
				ev.Task = rs.Tasks[pos].Name
			}
			if n < row.folded {
				rs.Events = append(rs.Events, ev)
				return nil
			}
			return rs.Apply(workflow.Entry{Event: ev, Index: pos, Payload: workflow.Payload{Data: payload}})
		})
	if err != nil {
		return rs, err
	}
	// The run's own fields are as its row says (and the same as the fold).
	rs.State, rs.StartedAt, rs.EndedAt, rs.Error, rs.Input = row.rs.State, row.rs.StartedAt, row.rs.EndedAt, row.rs.Error, row.rs.Input
	rs.Output = nil
	if !events {
		rs.Events = nil
	}
	if !payloads {
		rs.Input = nil
		for i := range rs.Tasks {
			rs.Tasks[i].Output = nil
		}
	}
	return rs, nil
}

// find reads the row of a run (runID "": the newest of the workflow) in tx.
func (s *Store) find(ctx context.Context, tx *sql.Tx, workflowName, runID string, payloads bool) (runRow, error) {
	var row *sql.Row
	if runID == "" {
		row = tx.StmtContext(ctx, s.rs.runNewest).QueryRowContext(ctx, payloads, workflowName)
	} else {
		row = tx.StmtContext(ctx, s.rs.runByID).QueryRowContext(ctx, payloads, workflowName, runID)
	}
	r, err := scanRun(row)
	switch {
	case errors.Is(err, sql.ErrNoRows) && runID == "":
		return r, fmt.Errorf("%w: workflow %q has no runs", workflow.ErrNotFound, workflowName)
	case errors.Is(err, sql.ErrNoRows):
		return r, fmt.Errorf("%w: workflow %q has no run %q", workflow.ErrNotFound, workflowName, runID)
	}
	return r, err
}

// Get implements workflow.Store: runID "" is the most recently created
// run. Times are in UTC; Input and each task's Output hold the bytes the
// engine encoded.
func (s *Store) Get(ctx context.Context, workflowName, runID string) (workflow.RunStatus, error) {
	if err := s.begin(ctx); err != nil {
		return workflow.RunStatus{}, beginFailed(err, "get")
	}
	defer s.leave()
	var rs workflow.RunStatus
	err := s.read(ctx, func(tx *sql.Tx) error {
		row, err := s.find(ctx, tx, workflowName, runID, true)
		if err != nil {
			return err
		}
		rs, err = s.fill(ctx, tx, row, true, true)
		return err
	})
	if err != nil {
		return workflow.RunStatus{}, fmt.Errorf("sqlitestore: get: %w", err)
	}
	return rs, nil
}

// List implements workflow.Store: the runs of the workflow, newest created
// first, as q selects. It reads only the runs of the page.
func (s *Store) List(ctx context.Context, workflowName string, q workflow.HistoryQuery) ([]workflow.RunStatus, error) {
	if err := s.begin(ctx); err != nil {
		return nil, beginFailed(err, "list")
	}
	defer s.leave()
	var out []workflow.RunStatus
	err := s.read(ctx, func(tx *sql.Tx) error {
		before := int64(math.MaxInt64)
		if q.Before != "" {
			err := tx.StmtContext(ctx, s.rs.seqOf).QueryRowContext(ctx, workflowName, q.Before).Scan(&before)
			if errors.Is(err, sql.ErrNoRows) {
				return fmt.Errorf("%w: workflow %q has no run %q (HistoryBefore)", workflow.ErrNotFound, workflowName, q.Before)
			}
			if err != nil {
				return err
			}
		}
		limit := int64(-1)
		if q.Limit > 0 {
			limit = int64(q.Limit)
		}
		full := !q.Summary
		rows, err := tx.StmtContext(ctx, s.rs.list).QueryContext(ctx, full, workflowName, string(q.State), before, limit)
		if err != nil {
			return err
		}
		var page []runRow
		for rows.Next() {
			r, err := scanRun(rows)
			if err != nil {
				rows.Close()
				return err
			}
			page = append(page, r)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		for _, r := range page {
			rs, err := s.fill(ctx, tx, r, full, full)
			if err != nil {
				return err
			}
			out = append(out, rs)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("sqlitestore: list: %w", err)
	}
	return out, nil
}

// Payloads implements workflow.Store: the run's input, the output of each
// task that succeeded, and in Partial the payload of the end of each task
// that did not (nil when none had one), as the engine encoded them.
func (s *Store) Payloads(ctx context.Context, workflowName, runID string) (workflow.RunPayloads, error) {
	if err := s.begin(ctx); err != nil {
		return workflow.RunPayloads{}, beginFailed(err, "payloads")
	}
	defer s.leave()
	p := workflow.RunPayloads{Outputs: map[string]workflow.Payload{}}
	err := s.read(ctx, func(tx *sql.Tx) error {
		row, err := s.find(ctx, tx, workflowName, runID, true)
		if err != nil {
			return err
		}
		rs, err := s.fill(ctx, tx, row, false, true)
		if err != nil {
			return err
		}
		if row.hasInput {
			p.HasInput, p.Input = true, workflow.Payload{Data: rs.Input}
		}
		for _, t := range rs.Tasks {
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
		return workflow.RunPayloads{}, fmt.Errorf("sqlitestore: payloads: %w", err)
	}
	return p, nil
}
