package pgstore

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/b3b01171/workflow"
)

// recorder is the workflow.Recorder of one run. It keeps the run's state
// in memory, folded with RunStatus.Apply as entries come, so that a batch
// writes only its events (and the run's row, for a run event), and the
// tasks' rows once the run stops: see the schema in schema.go.
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
	ev     eventRows      // scratch: the events of a batch
	tk     taskRows       // scratch: the tasks of a fold
	stale  bool           // a failed write left rs ahead of the database: load it again
	held   bool           // this recorder holds the run's lease

	leased int64 // seq while the Store renews the run's lease; under s.omu
}

const (
	noOutput = -1 // the task has no output
	inRow    = -2 // the task's output is in its row
)

// kept stands in rs for a payload the database holds; present, in a
// replay, for one an event holds. Both are told from real payloads by
// address.
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

// newRecorder returns the recorder of run, about to be created. It
// refuses names that PostgreSQL's text cannot hold.
func newRecorder(s *Store, run workflow.RunStatus) (*recorder, error) {
	if !storable(run.Workflow) || !storable(run.RunID) || !storable(run.Trigger) || !storable(string(run.State)) ||
		!storable(run.ParentRunID) {
		return nil, fmt.Errorf("%w: the workflow name, run ID, trigger, state and parent run ID must be valid UTF-8 without NUL",
			workflow.ErrInvalidInput)
	}
	r := &recorder{s: s, key: runKey{run.Workflow, run.RunID}, rs: run}
	r.rs.Tasks = make([]workflow.TaskStatus, len(run.Tasks))
	r.outN = make([]int64, len(run.Tasks))
	r.dirty = make([]bool, len(run.Tasks))
	for i, t := range run.Tasks {
		if !storable(t.Name) {
			return nil, fmt.Errorf("%w: task %d: its name %q is not valid UTF-8 without NUL", workflow.ErrInvalidInput, i, t.Name)
		}
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
	return r, nil
}

// insert writes the rows of run, a new run, in one transaction with the
// retention it calls for; take: with this Store as its owner. attempt > 1
// is a retry after a lost connection: the run may have been created by
// the attempt before.
func (r *recorder) insert(ctx context.Context, run *workflow.RunStatus, take bool, attempt int) error {
	s := r.s
	var owner any
	if take {
		owner = s.owner
	}
	var tk taskRows
	for _, t := range run.Tasks {
		tk.names = append(tk.names, t.Name)
		tk.add(0, &t, 0, []byte(t.Output))
	}
	r.ev.reset()
	for n, ev := range run.Events {
		p := -1
		if ev.Task != "" {
			if p = r.find(ev.Task); p < 0 {
				return fmt.Errorf("%w: event %d is of task %q, which the run does not have", workflow.ErrInvalidInput, n, ev.Task)
			}
		}
		if !storable(ev.Type) || !storable(ev.RunID) {
			return fmt.Errorf("%w: event %d: its type and run ID must be valid UTF-8 without NUL", workflow.ErrInvalidInput, n)
		}
		r.ev.add(int64(n), &ev, p, run.RunID, nil)
	}
	args := []any{run.Workflow, run.RunID, string(run.State), run.Trigger, nanos(run.ScheduledAt), nanos(run.StartedAt),
		nanos(run.EndedAt), bytesOf(run.Error), []byte(run.Input), owner, s.ttlMicros(), int32(len(run.Events)), run.ParentRunID,
		tk.names, tk.states, tk.attempts, tk.started, tk.ended, tk.errs, tk.outputs}
	args = append(args, r.ev.args()...)
	b := &pgx.Batch{}
	found := false
	b.Queue(s.sql.create, args...).QueryRow(func(row pgx.Row) error {
		err := row.Scan(&r.seq)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil
		}
		found = err == nil
		return err
	})
	s.queueRetain(b, run.Workflow)
	if err := s.sendBatch(ctx, b); err != nil {
		return err
	}
	if found {
		return nil
	}
	if attempt > 1 && take {
		var (
			seq   int64
			o     *string
			until *time.Time
			live  bool
			state string
		)
		err := s.pool.QueryRow(ctx, s.sql.leaseOf, run.Workflow, run.RunID).Scan(&seq, &o, &until, &live, &state)
		if err == nil && o != nil && *o == s.owner {
			r.seq = seq // created by the attempt before
			return nil
		}
	}
	return workflow.ErrDuplicateRun
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
		if !storable(e.Type) || !storable(e.RunID) {
			return nil, fmt.Errorf("%w: an event's type and run ID must be valid UTF-8 without NUL", workflow.ErrInvalidInput)
		}
		pos = append(pos, p)
	}
	r.pos = pos
	return pos, nil
}

// Append implements workflow.Recorder: the batch is written in one
// transaction, all or none, after making sure the run is still this
// recorder's. An entry for a task the run does not have refuses the batch
// with an error wrapping workflow.ErrNotFound; a run another replica took
// over, with one wrapping ErrLeaseLost. A lost connection is retried for
// a while; an attempt whose answer was lost is not written twice.
func (r *recorder) Append(ctx context.Context, batch []workflow.Entry) error {
	if len(batch) == 0 {
		return nil
	}
	s := r.s
	if err := s.begin(ctx); err != nil {
		return failed(err, r.what())
	}
	defer s.leave()
	r.mu.Lock()
	defer r.mu.Unlock()
	pos, err := r.positions(batch)
	if err == nil {
		n0 := int64(-1) // the events before the batch
		err = s.retry(ctx, func(attempt int) error {
			if r.stale {
				if err := r.load(ctx); err != nil {
					return err
				}
				if n0 >= 0 && r.n == n0+int64(len(batch)) {
					return nil // the attempt before was committed; its answer was lost
				}
			}
			if n0 < 0 {
				n0 = r.n
			}
			return r.write(ctx, batch, pos)
		})
		clear(r.rs.Events)
		r.rs.Events = r.rs.Events[:0]
	}
	if err != nil {
		return fmt.Errorf("pgstore: %s: %w", r.what(), err)
	}
	return nil
}

func (r *recorder) what() string {
	return fmt.Sprintf("append to run %q of workflow %q", r.key.runID, r.key.workflow)
}

// write folds a batch into rs and writes it in one transaction: its
// events, the run's row for a run event, and the tasks' rows when the
// batch stops the run. A failure leaves rs to be loaded again.
func (r *recorder) write(ctx context.Context, batch []workflow.Entry, pos []int) error {
	s := r.s
	r.ev.reset()
	runEvent := false
	var input []byte
	for k := range batch {
		e := &batch[k]
		in, err := r.step(*e, pos[k])
		if err != nil {
			r.stale = true
			return err
		}
		var payload []byte
		if pos[k] >= 0 {
			payload = e.Payload.Data
		} else {
			runEvent = true
		}
		if in != nil {
			input = in
		}
		r.ev.add(r.n-1, &e.Event, pos[k], r.key.runID, payload)
	}
	state := r.rs.State
	stop := state.Ended() || state == workflow.StateInterrupted
	lease := leaseKeep
	switch {
	case runEvent && stop && r.held:
		lease = leaseRelease
	case runEvent && !stop && !r.held:
		// Released by an earlier batch and not taken since (fence): the
		// run goes on, under this recorder again.
		lease = leaseTake
	}
	args := append(make([]any, 0, 23), r.seq, s.owner, r.held)
	args = append(args, r.ev.args()...)
	args = append(args, runEvent, string(state), nanos(r.rs.StartedAt), nanos(r.rs.EndedAt), bytesOf(r.rs.Error), input,
		lease, s.ttlMicros())
	b := &pgx.Batch{}
	b.Queue(s.sql.append, args...)
	fold := stop && (len(r.todo) > 0 || r.folded != r.n)
	if fold {
		r.tk.reset()
		for _, i := range r.todo {
			r.tk.add(i, &r.rs.Tasks[i], r.outN[i], nil)
		}
		b.Queue(s.sql.fold, r.seq, r.tk.pos, r.tk.states, r.tk.attempts, r.tk.started, r.tk.ended, r.tk.errs, r.tk.outN, int32(r.n))
	}
	if runEvent && state.Ended() {
		s.queueRetain(b, r.key.workflow)
	}
	err := s.sendBatch(ctx, b)
	r.ev.reset()
	r.tk.reset()
	if err != nil {
		r.stale = true
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) {
			switch pgErr.Code {
			case codeLeaseLost:
				return fmt.Errorf("%w: %s", ErrLeaseLost, pgErr.Message)
			case codeRunGone:
				return fmt.Errorf("%w: %s", workflow.ErrNotFound, pgErr.Message)
			}
		}
		return err
	}
	if fold {
		for _, i := range r.todo {
			if r.outN[i] >= 0 {
				r.outN[i] = inRow
			}
			r.dirty[i] = false
		}
		r.todo = r.todo[:0]
		r.folded = r.n
	}
	switch lease {
	case leaseRelease:
		r.setHeld(false)
	case leaseTake:
		r.setHeld(true)
	}
	return nil
}

// setHeld records whether this recorder holds the run's lease, and so
// whether the Store renews it.
func (r *recorder) setHeld(held bool) {
	r.held = held
	s := r.s
	s.omu.Lock()
	defer s.omu.Unlock()
	r.leased = 0
	if held {
		r.leased = r.seq
	}
	switch {
	case held && s.open[r.key] == nil:
		s.open[r.key] = r
	case !held && s.open[r.key] == r:
		delete(s.open, r.key)
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

// load sets the recorder's state from the database, replaying the events
// its tasks' rows do not hold yet: for Reopen, and after a failed write.
// Outputs and the input stand as kept.
func (r *recorder) load(ctx context.Context) error {
	s := r.s
	var (
		row    runRow
		tasks  []workflow.TaskStatus
		events []workflow.Entry
		ns     []int64
	)
	b := &pgx.Batch{}
	b.Queue(s.sql.runBySeq, false, r.seq).QueryRow(func(qr pgx.Row) error {
		var err error
		row, err = scanRun(qr)
		if errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("%w: the run is no longer in the store", workflow.ErrNotFound)
		}
		return err
	})
	b.Queue(s.sql.tasks, []int64{r.seq}, false).Query(func(rows pgx.Rows) error {
		m, err := scanTasks(rows)
		tasks = m[r.seq]
		return err
	})
	b.Queue(s.sql.pending, r.seq).Query(func(rows pgx.Rows) error {
		return scanEvents(rows, func(int64) string { return r.key.runID },
			func(_, n int64, ev workflow.Event, pos int, hasPayload bool, _ []byte) error {
				e := workflow.Entry{Event: ev, Index: pos}
				ns = append(ns, n)
				if hasPayload {
					e.Payload.Data = present // the payload stays in the database
				}
				events = append(events, e)
				return nil
			})
	})
	if err := s.sendBatch(ctx, b); err != nil {
		return err
	}
	rs := row.rs
	if row.hasInput {
		rs.Input = kept
	}
	rs.Tasks = tasks
	r.rs, r.index = rs, nil
	r.outN = make([]int64, len(tasks))
	r.dirty = make([]bool, len(tasks))
	r.todo = r.todo[:0]
	for i := range tasks {
		r.outN[i] = noOutput
		if tasks[i].Output != nil {
			tasks[i].Output, r.outN[i] = kept, inRow
		}
	}
	r.n, r.folded = row.folded, row.folded
	for k, e := range events {
		switch {
		case ns[k] != r.n:
			return fmt.Errorf("event %d of the run is missing", r.n)
		case e.Index >= len(tasks):
			return fmt.Errorf("event %d names task %d of %d", r.n, e.Index, len(tasks))
		case e.Index >= 0:
			e.Task = tasks[e.Index].Name
		}
		if _, err := r.step(e, e.Index); err != nil {
			return err
		}
	}
	clear(r.rs.Events)
	r.rs.Events = r.rs.Events[:0]
	// The run's own fields are as its row says (and the same as the fold).
	r.rs.State, r.rs.StartedAt, r.rs.EndedAt, r.rs.Error = row.rs.State, row.rs.StartedAt, row.rs.EndedAt, row.rs.Error
	r.stale = false
	r.setHeld(row.owner != nil && *row.owner == s.owner)
	return nil
}

// eventRows are events as the statements take them: a column each.
type eventRows struct {
	n        []int32
	time     []int64
	task     []int32
	typ      []string
	attempt  []int32
	errs     [][]byte
	runID    []string
	ownRunID []bool
	pass     []int32
	retryAt  []int64
	item     []int64
	payloads [][]byte // nil: NULL
}

func (e *eventRows) add(n int64, ev *workflow.Event, pos int, runID string, payload []byte) {
	e.n = append(e.n, int32(n))
	e.time = append(e.time, nanos(ev.Time))
	e.task = append(e.task, int32(pos))
	e.typ = append(e.typ, ev.Type)
	e.attempt = append(e.attempt, int32(ev.Attempt))
	e.errs = append(e.errs, bytesOf(ev.Error))
	own := ev.RunID == runID
	e.ownRunID = append(e.ownRunID, own)
	if own {
		e.runID = append(e.runID, "")
	} else {
		e.runID = append(e.runID, ev.RunID)
	}
	e.pass = append(e.pass, int32(ev.Pass))
	e.retryAt = append(e.retryAt, nanos(ev.RetryAt))
	e.item = append(e.item, int64(ev.Item))
	e.payloads = append(e.payloads, payload)
}

func (e *eventRows) args() []any {
	return []any{e.n, e.time, e.task, e.typ, e.attempt, e.errs, e.runID, e.ownRunID, e.pass, e.retryAt, e.item, e.payloads}
}

// reset empties the rows, dropping the payloads.
func (e *eventRows) reset() {
	clear(e.errs)
	clear(e.payloads)
	e.n, e.time, e.task, e.typ, e.attempt, e.errs, e.runID, e.ownRunID, e.pass, e.retryAt, e.item, e.payloads =
		e.n[:0], e.time[:0], e.task[:0], e.typ[:0], e.attempt[:0], e.errs[:0], e.runID[:0], e.ownRunID[:0], e.pass[:0], e.retryAt[:0], e.item[:0], e.payloads[:0]
}

// taskRows are tasks as the statements take them: a column each.
type taskRows struct {
	pos      []int32
	names    []string // for createSQL
	states   []string
	attempts []int32
	started  []int64
	ended    []int64
	errs     [][]byte
	outN     []int32  // for foldSQL: where the output is
	outputs  [][]byte // for createSQL: nil is NULL
}

func (t *taskRows) add(pos int32, ts *workflow.TaskStatus, outN int64, output []byte) {
	t.pos = append(t.pos, pos)
	t.states = append(t.states, string(ts.State))
	t.attempts = append(t.attempts, int32(ts.Attempts))
	t.started = append(t.started, nanos(ts.StartedAt))
	t.ended = append(t.ended, nanos(ts.EndedAt))
	t.errs = append(t.errs, bytesOf(ts.Error))
	t.outN = append(t.outN, int32(outN))
	t.outputs = append(t.outputs, output)
}

func (t *taskRows) reset() {
	clear(t.errs)
	clear(t.outputs)
	t.pos, t.names, t.states, t.attempts, t.started, t.ended, t.errs, t.outN, t.outputs =
		t.pos[:0], t.names[:0], t.states[:0], t.attempts[:0], t.started[:0], t.ended[:0], t.errs[:0], t.outN[:0], t.outputs[:0]
}

// ttlMicros is the lease TTL as the statements take it.
func (s *Store) ttlMicros() int64 { return s.cfg.leaseTTL.Microseconds() }
