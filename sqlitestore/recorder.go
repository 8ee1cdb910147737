package sqlitestore

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/b3b01171/workflow"
)

// recorder is the workflow.Recorder of one run. It keeps the run's state
// in memory, folded with RunStatus.Apply as entries come, so that a batch
// writes only its events (and the run's row, for a run event): see the
// schema in schema.go.
type recorder struct {
	s   *Store
	key runKey
	seq int64 // the run's row

	mu sync.Mutex
	// rs is the run as its rows and events say. Its Events are emptied
	// after each batch, and its payloads stand replaced by kept once
	// written, so that a long run holds neither in memory.
	rs     workflow.RunStatus
	index  map[string]int // task name → position, built when an Index misses
	n      int64          // events recorded
	folded int64          // events folded into the tasks' rows
	outN   []int64        // per task: the event holding its output, or noOutput, or inRow
	dirty  []bool         // per task: changed by the events after folded
	todo   []int32        // the dirty tasks
	before []taskKey      // scratch: the tasks before a run event
	pos    []int          // scratch: the positions of a batch's tasks
	rows   []any          // scratch: the columns of the events to insert (see addEvent)
	stale  bool           // a failed write left rs ahead of the file: load it again
	held   bool           // this recorder holds the run's lease
	wake   chan struct{}  // its batch is written, or it is the writer (see commit)

	// validUntil is when the lease, as this handle last wrote it, runs
	// out (unix nanoseconds): till then no other process can have taken
	// the run, and Append need not ask the file.
	validUntil atomic.Int64
}

const (
	noOutput = -1 // the task has no output
	inRow    = -2 // the task's output is in its row
)

// kept stands in rs for a payload already written; present, in a replay,
// for one the file holds. Both are told from real payloads by address.
var (
	kept    = []byte("kept")
	present = []byte("present")
)

func isKept(b []byte) bool { return len(b) == len(kept) && &b[0] == &kept[0] }

// taskKey is what a run event may change in a task.
type taskKey struct {
	state    workflow.State
	attempts int
	started  time.Time
	ended    time.Time
	err      string
	output   bool
}

func keyOf(t *workflow.TaskStatus) taskKey {
	return taskKey{t.State, t.Attempts, t.StartedAt, t.EndedAt, t.Error, t.Output != nil}
}

// newRecorder returns the recorder of run, about to be created.
func newRecorder(s *Store, run workflow.RunStatus) *recorder {
	r := &recorder{s: s, key: runKey{run.Workflow, run.RunID}, rs: run}
	r.rs.Tasks = make([]workflow.TaskStatus, len(run.Tasks))
	r.outN = make([]int64, len(run.Tasks))
	r.dirty = make([]bool, len(run.Tasks))
	for i, t := range run.Tasks {
		r.outN[i] = noOutput
		if t.Output != nil {
			t.Output, r.outN[i] = kept, inRow
		}
		r.rs.Tasks[i] = t
	}
	r.rs.Events = nil
	if r.rs.Input != nil {
		r.rs.Input = kept
	}
	r.rs.Output = nil
	r.n = int64(len(run.Events))
	r.folded = r.n
	return r
}

// insert writes the rows of run, a new run, in the write transaction of
// Create; take: with this handle as its owner.
func (r *recorder) insert(ctx context.Context, run *workflow.RunStatus, take bool, now time.Time) error {
	s, ws := r.s, &r.s.ws
	var one int
	switch err := ws.exists.QueryRowContext(ctx, run.Workflow, run.RunID).Scan(&one); {
	case err == nil:
		return workflow.ErrDuplicateRun
	case !errors.Is(err, sql.ErrNoRows):
		return err
	}
	var owner, until, ttl any
	if take {
		owner, until, ttl = s.owner, now.Add(s.cfg.leaseTTL).UnixNano(), int64(s.cfg.leaseTTL)
	}
	res, err := ws.insRun.ExecContext(ctx, run.Workflow, run.RunID, string(run.State), run.Trigger, run.ParentRunID,
		nanos(run.ScheduledAt), nanos(run.StartedAt), nanos(run.EndedAt), run.Error, []byte(run.Input),
		len(run.Events), owner, until, ttl)
	if err != nil {
		return err
	}
	if r.seq, err = res.LastInsertId(); err != nil {
		return err
	}
	if names, ok := pendingNames(run.Tasks); ok {
		// As the engine creates a run: one statement for all its tasks.
		if _, err := ws.insPending.ExecContext(ctx, r.seq, names); err != nil {
			return err
		}
	} else {
		for i, t := range run.Tasks {
			if _, err := ws.insTask.ExecContext(ctx, r.seq, i, t.Name, string(t.State), t.Attempts,
				nanos(t.StartedAt), nanos(t.EndedAt), t.Error, []byte(t.Output)); err != nil {
				return err
			}
		}
	}
	r.resetEvents()
	for n, ev := range run.Events {
		p := -1
		if ev.Task != "" {
			if p = r.find(ev.Task); p < 0 {
				return fmt.Errorf("%w: event %d is of task %q, which the run does not have", workflow.ErrInvalidInput, n, ev.Task)
			}
		}
		if err := r.addEvent(ctx, int64(n), &ev, p, nil); err != nil {
			return err
		}
	}
	if err := r.flushEvents(ctx); err != nil {
		return err
	}
	return s.retain(ctx, run.Workflow, now)
}

// pendingNames returns the names of tasks as a JSON array, for insPending,
// when every task is pending with nothing else recorded.
func pendingNames(tasks []workflow.TaskStatus) (string, bool) {
	if len(tasks) < 2 {
		return "", false
	}
	names := make([]string, len(tasks))
	for i, t := range tasks {
		if t.State != workflow.StatePending || t.Attempts != 0 || !t.StartedAt.IsZero() || !t.EndedAt.IsZero() ||
			t.Error != "" || t.Output != nil || !utf8.ValidString(t.Name) {
			return "", false
		}
		names[i] = t.Name
	}
	b, err := json.Marshal(names)
	return string(b), err == nil
}

// eventCols is the number of columns of an event's row.
const eventCols = 12

// addEvent adds event n to the rows written by the next flushEvents; it
// writes them once there are maxEventRows: a statement costs more than a
// row.
func (r *recorder) addEvent(ctx context.Context, n int64, ev *workflow.Event, pos int, payload []byte) error {
	var task, runID any
	if pos >= 0 {
		task = pos
	}
	if ev.RunID != r.key.runID {
		runID = ev.RunID
	}
	r.rows = append(r.rows, r.seq, n, nanos(ev.Time), task, ev.Type, ev.Attempt, ev.Error, runID, ev.Pass, nanos(ev.RetryAt), ev.Item, payload)
	if len(r.rows) == maxEventRows*eventCols {
		return r.flushEvents(ctx)
	}
	return nil
}

// flushEvents writes the events added since the last one, in one
// statement.
func (r *recorder) flushEvents(ctx context.Context) error {
	k := len(r.rows) / eventCols
	if k == 0 {
		return nil
	}
	_, err := r.s.ws.insEvents[k].ExecContext(ctx, r.rows...)
	r.resetEvents()
	return err
}

// resetEvents drops the events added and not written (of a failed write),
// and their payloads.
func (r *recorder) resetEvents() {
	clear(r.rows)
	r.rows = r.rows[:0]
}

// find returns the position of the named task, the first of that name,
// or -1.
func (r *recorder) find(name string) int {
	if r.index == nil {
		r.index = make(map[string]int, len(r.rs.Tasks))
		for i := len(r.rs.Tasks) - 1; i >= 0; i-- {
			r.index[r.rs.Tasks[i].Name] = i
		}
	}
	if i, ok := r.index[name]; ok {
		return i
	}
	return -1
}

// positions finds the task of each entry, as RunStatus.Apply does: by
// Index when it names the task, else by name. An unknown task refuses the
// whole batch.
func (r *recorder) positions(batch []workflow.Entry) ([]int, error) {
	pos := r.pos[:0]
	for k := range batch {
		e := &batch[k]
		p := -1
		if e.Task != "" {
			p = e.Index
			if p < 0 || p >= len(r.rs.Tasks) || r.rs.Tasks[p].Name != e.Task {
				if p = r.find(e.Task); p < 0 {
					return nil, fmt.Errorf("%w: the run has no task %q", workflow.ErrNotFound, e.Task)
				}
			}
		}
		pos = append(pos, p)
	}
	r.pos = pos
	return pos, nil
}

// Append implements workflow.Recorder: the batch is written in one
// transaction, all or none. An entry for a task the run does not have
// refuses the batch with an error wrapping workflow.ErrNotFound.
func (r *recorder) Append(ctx context.Context, batch []workflow.Entry) error {
	if len(batch) == 0 {
		return nil
	}
	s := r.s
	if err := s.begin(ctx); err != nil {
		return beginFailed(err, r.what("append to"))
	}
	defer s.leave()
	r.mu.Lock()
	defer r.mu.Unlock()
	pos, err := r.positions(batch)
	if err == nil {
		err = s.commit(&appendReq{ctx: ctx, r: r, batch: batch, pos: pos})
		clear(r.rs.Events)
		r.rs.Events = r.rs.Events[:0]
	}
	if err != nil {
		return fmt.Errorf("sqlitestore: %s: %w", r.what("append to"), err)
	}
	return nil
}

func (r *recorder) what(verb string) string {
	return fmt.Sprintf("%s run %q of workflow %q", verb, r.key.runID, r.key.workflow)
}

// leaseChange is what a committed batch did to the run's lease.
type leaseChange struct {
	kind  int
	until int64
}

const (
	leaseKept = iota
	leaseExtended
	leaseReleased
)

// check readies the recorder for a batch, in the write transaction: it
// loads the run again after a failed write, and makes sure the lease is
// still its own (see fence). The caller holds s.wmu.
func (r *recorder) check(ctx context.Context, now time.Time) (leaseChange, error) {
	if r.stale {
		if err := r.load(ctx); err != nil {
			return leaseChange{}, err
		}
		r.stale = false
	}
	return r.fence(ctx, now)
}

// write writes a batch in the write transaction, after check; the caller
// holds s.wmu. An error leaves the transaction to be rolled back.
func (r *recorder) write(ctx context.Context, batch []workflow.Entry, pos []int, now time.Time, c leaseChange) (leaseChange, error) {
	s, ws := r.s, &r.s.ws
	runEvent := false
	r.resetEvents()
	for k := range batch {
		e := &batch[k]
		input, err := r.step(*e, pos[k])
		if err != nil {
			return c, err
		}
		var payload []byte
		if pos[k] >= 0 {
			payload = e.Payload.Data
		} else {
			runEvent = true
		}
		if err := r.addEvent(ctx, r.n-1, &e.Event, pos[k], payload); err != nil {
			return c, err
		}
		if input != nil {
			if _, err := ws.setInput.ExecContext(ctx, input, r.seq); err != nil {
				return c, err
			}
		}
	}
	if err := r.flushEvents(ctx); err != nil {
		return c, err
	}
	state := r.rs.State
	stop := state.Ended() || state == workflow.StateInterrupted
	if runEvent {
		if _, err := ws.updRun.ExecContext(ctx, string(state), nanos(r.rs.StartedAt), nanos(r.rs.EndedAt), r.rs.Error, r.seq); err != nil {
			return c, err
		}
		if stop && r.held {
			if _, err := ws.setLease.ExecContext(ctx, nil, nil, nil, r.seq); err != nil {
				return c, err
			}
			c = leaseChange{kind: leaseReleased}
		}
	}
	if stop && (len(r.todo) > 0 || r.folded != r.n) {
		if err := r.fold(ctx); err != nil {
			return c, err
		}
	}
	if runEvent && state.Ended() {
		if err := s.retain(ctx, r.key.workflow, now); err != nil {
			return c, err
		}
	}
	return c, nil
}

// fence makes sure the run is still this recorder's to write: that its
// lease was not taken over by another process after it expired. It asks
// the file only when the lease may have expired, and then extends it.
func (r *recorder) fence(ctx context.Context, now time.Time) (leaseChange, error) {
	s := r.s
	if r.live(now) {
		return leaseChange{}, nil
	}
	var owner sql.NullString
	var until sql.NullInt64
	err := s.ws.fence.QueryRowContext(ctx, r.seq).Scan(&owner, &until)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return leaseChange{}, fmt.Errorf("%w: the run is no longer in the store", workflow.ErrNotFound)
	case err != nil:
		return leaseChange{}, err
	case r.held && owner.Valid && owner.String == s.owner:
		u := now.Add(s.cfg.leaseTTL).UnixNano()
		if _, err := s.ws.setLease.ExecContext(ctx, s.owner, u, int64(s.cfg.leaseTTL), r.seq); err != nil {
			return leaseChange{}, err
		}
		return leaseChange{kind: leaseExtended, until: u}, nil
	case !r.held && !owner.Valid:
		return leaseChange{}, nil // released by this recorder, and not taken since
	case owner.Valid:
		return leaseChange{}, fmt.Errorf("%w: the run is now owned by %s", ErrLeaseLost, owner.String)
	default:
		return leaseChange{}, fmt.Errorf("%w: the run has no owner", ErrLeaseLost)
	}
}

// live reports whether the lease is known to be this recorder's, with a
// margin for the write under way: till then no other process can take
// the run over.
func (r *recorder) live(now time.Time) bool {
	return r.held && now.UnixNano()+int64(r.s.cfg.leaseTTL/10) < r.validUntil.Load()
}

// settle applies a committed lease change; the caller holds s.wmu.
func (r *recorder) settle(c leaseChange) {
	switch c.kind {
	case leaseExtended:
		r.validUntil.Store(c.until)
	case leaseReleased:
		r.held = false
		r.validUntil.Store(0)
		s := r.s
		s.omu.Lock()
		if s.open[r.key] == r {
			delete(s.open, r.key)
		}
		s.omu.Unlock()
	}
}

// step folds one entry into rs with RunStatus.Apply, and notes which tasks
// it changed; pos is the position of its task, -1 for a run event. It
// returns the run's input when the entry set it.
func (r *recorder) step(e workflow.Entry, pos int) (input []byte, err error) {
	e.Index = pos
	if pos < 0 {
		r.before = r.before[:0]
		for i := range r.rs.Tasks {
			r.before = append(r.before, keyOf(&r.rs.Tasks[i]))
		}
	}
	if err := r.rs.Apply(e); err != nil {
		return nil, err
	}
	if pos >= 0 {
		r.touch(pos)
	} else {
		for i := range r.rs.Tasks {
			if keyOf(&r.rs.Tasks[i]) != r.before[i] {
				r.touch(i)
			}
		}
		if in := r.rs.Input; in != nil && !isKept(in) {
			input, r.rs.Input = in, kept
		}
	}
	r.n++
	return input, nil
}

// touch notes that event r.n changed task i, and where its output now is.
func (r *recorder) touch(i int) {
	t := &r.rs.Tasks[i]
	switch {
	case t.Output == nil:
		r.outN[i] = noOutput
	case !isKept(t.Output):
		r.outN[i], t.Output = r.n, kept
	}
	if !r.dirty[i] {
		r.dirty[i] = true
		r.todo = append(r.todo, int32(i))
	}
}

// fold writes the changed tasks to their rows, so that their rows hold
// every event: done when the run stops changing.
func (r *recorder) fold(ctx context.Context) error {
	ws := &r.s.ws
	for _, i := range r.todo {
		t := &r.rs.Tasks[i]
		if _, err := ws.updTask.ExecContext(ctx, string(t.State), t.Attempts, nanos(t.StartedAt), nanos(t.EndedAt),
			t.Error, r.outN[i], r.seq, i); err != nil {
			return err
		}
		if r.outN[i] >= 0 {
			r.outN[i] = inRow
		}
		r.dirty[i] = false
	}
	r.todo = r.todo[:0]
	if _, err := ws.setFold.ExecContext(ctx, r.n, r.seq); err != nil {
		return err
	}
	r.folded = r.n
	return nil
}

// load sets the recorder's state from the file, in a write transaction:
// for Reopen, and after a failed write. The caller holds s.wmu.
func (r *recorder) load(ctx context.Context) error {
	st := &r.s.ws.load
	row, err := scanRun(st.runBySeq.QueryRowContext(ctx, false, r.seq))
	if err != nil {
		return err
	}
	rs := row.rs
	if row.hasInput {
		rs.Input = kept
	}
	if rs.Tasks, err = scanTasks(ctx, st.tasks, r.seq, false); err != nil {
		return err
	}
	r.rs, r.index, r.todo = rs, nil, r.todo[:0]
	r.outN = make([]int64, len(rs.Tasks))
	r.dirty = make([]bool, len(rs.Tasks))
	for i := range rs.Tasks {
		r.outN[i] = noOutput
		if rs.Tasks[i].Output != nil {
			rs.Tasks[i].Output, r.outN[i] = kept, inRow
		}
	}
	r.n, r.folded = row.folded, row.folded
	err = scanEvents(ctx, st.events, r.key.runID, r.seq, row.folded, false, row.folded, func(n int64, ev workflow.Event, pos int, payload []byte) error {
		if n != r.n {
			return fmt.Errorf("event %d of the run is missing", r.n)
		}
		if pos >= len(r.rs.Tasks) {
			return fmt.Errorf("event %d names task %d of %d", n, pos, len(r.rs.Tasks))
		}
		if pos >= 0 {
			ev.Task = r.rs.Tasks[pos].Name
		}
		_, err := r.step(workflow.Entry{Event: ev, Index: pos, Payload: workflow.Payload{Data: payload}}, pos)
		return err
	})
	clear(r.rs.Events)
	r.rs.Events = r.rs.Events[:0]
	if err != nil {
		return err
	}
	// The run's own fields are as its row says (and the same as the fold).
	r.rs.State, r.rs.StartedAt, r.rs.EndedAt, r.rs.Error = row.rs.State, row.rs.StartedAt, row.rs.EndedAt, row.rs.Error
	return nil
}
