package workflow

import (
	"container/list"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// State is the state of a run or of one task in it.
type State string

// The states of runs and tasks. A run ends in StateSucceeded, StateFailed,
// StateTimedOut or StateCancelled; a task in any of those or StateSkipped.
// StateInterrupted is not an end: Resume and Recover carry such a run on.
const (
	StatePending State = "pending"
	StateRunning State = "running"
	// StateInterrupted is a run, or a task under way, whose process stopped
	// without ending it (a crash, a kill, a store closed under it), as
	// recorded by Recover, or by Restore for a run a snapshot caught under
	// way.
	StateInterrupted State = "interrupted"
	StateSucceeded   State = "succeeded"
	StateFailed      State = "failed"
	StateTimedOut    State = "timed_out"
	StateCancelled   State = "cancelled"
	StateSkipped     State = "skipped"
)

// Ended reports whether s is a final state.
func (s State) Ended() bool {
	switch s {
	case StateSucceeded, StateFailed, StateTimedOut, StateCancelled, StateSkipped:
		return true
	}
	return false
}

func (s State) valid() bool {
	return s == StatePending || s == StateRunning || s == StateInterrupted || s.Ended()
}

// The Type of each Event.
const (
	EventRunStarted  = "run_started"
	EventRunRetrying = "run_retrying" // RetryOnFailure starts another pass
	EventRunResumed  = "run_resumed"
	// EventRunInterrupted records that the run's process stopped without
	// ending it; Recover writes it before resuming the run.
	EventRunInterrupted  = "run_interrupted"
	EventRunSucceeded    = "run_succeeded"
	EventRunFailed       = "run_failed"
	EventRunTimedOut     = "run_timed_out"
	EventRunCancelled    = "run_cancelled"
	EventTaskStarted     = "task_started" // one per attempt
	EventTaskRetrying    = "task_retrying"
	EventTaskSucceeded   = "task_succeeded"
	EventTaskFailed      = "task_failed"
	EventTaskTimedOut    = "task_timed_out"
	EventTaskCancelled   = "task_cancelled"
	EventTaskSkipped     = "task_skipped"
	EventScheduleSkipped = "schedule_skipped" // seen by hooks; not part of a run
)

// Event is one state change of a run or of a task in it.
type Event struct {
	// Time is when it happened, in UTC.
	Time time.Time `json:"time"`
	// RunID is the run's ID; "" for a schedule_skipped event.
	RunID string `json:"run_id"`
	// Task is the task's name; "" for an event of the run.
	Task string `json:"task,omitempty"`
	// Type is one of the Event… constants.
	Type string `json:"type"`
	// Attempt is the number of the task's attempt, for task events:
	// attempts are numbered from 1 across the whole run, on through
	// RetryOnFailure passes and resumes.
	Attempt int `json:"attempt,omitempty"`
	// Pass is the pass of the run the event belongs to: 1 for the first,
	// and one more for each RetryOnFailure pass and each Resume (or
	// Recover), whose run_retrying or run_resumed event begins it.
	Pass int `json:"pass,omitempty"`
	// Error is what went wrong, for failure, retry and skip events.
	Error string `json:"error,omitempty"`
	// RetryAt is, on a task_retrying or item_retrying event, when the next
	// attempt starts (in UTC).
	RetryAt time.Time `json:"retry_at,omitzero"`
	// Item is, on the item events of a Map task, the item's index
	// (item_retrying, item_failed) or a count (items_started: the items;
	// items_progress: those that succeeded). See Map.
	Item int `json:"item,omitempty"`
}

// RunStatus is what is known of one run: its state, each task's, and every
// event so far.
type RunStatus struct {
	// RunID identifies the run among its workflow's.
	RunID string `json:"run_id"`
	// Workflow is the workflow's name.
	Workflow string `json:"workflow"`
	// State is the run's: pending, running, interrupted, or how it ended.
	State State `json:"state"`
	// Trigger is "manual", "schedule" or "parent" (a Sub task's child
	// run).
	Trigger string `json:"trigger"`
	// ParentRunID is, for the run of a child workflow started by a Sub
	// task, the ID of the parent's run; "" otherwise.
	ParentRunID string `json:"parent_run_id,omitempty"`
	// ScheduledAt is the cron fire time of a scheduled run, in UTC; zero
	// otherwise.
	ScheduledAt time.Time `json:"scheduled_at,omitzero"`
	// StartedAt is when the run started (its run_started event), in UTC.
	StartedAt time.Time `json:"started_at,omitzero"`
	// EndedAt is when it last ended, in UTC; zero while it is under way.
	EndedAt time.Time `json:"ended_at,omitzero"`
	// Error is the error of a run that did not succeed, as its terminal
	// event gives it.
	Error string `json:"error,omitempty"`
	// Input and Output are the run's input and output as the workflow's
	// Codec encoded them, when the store is Persistent and the Codec is
	// JSONCodec; nil otherwise. Output is set once the run succeeded.
	Input  json.RawMessage `json:"input,omitempty"`
	Output json.RawMessage `json:"output,omitempty"`
	Tasks  []TaskStatus    `json:"tasks"`  // in topological order
	Events []Event         `json:"events"` // oldest first
}

// Task returns the status of the named task, and whether the run has it.
func (rs RunStatus) Task(name string) (TaskStatus, bool) {
	for _, t := range rs.Tasks {
		if t.Name == name {
			return t, true
		}
	}
	return TaskStatus{}, false
}

// TaskStatus is what is known of one task in a run.
type TaskStatus struct {
	// Name is the task's.
	Name string `json:"name"`
	// State is the task's in the run's current (or last) pass.
	State State `json:"state"`
	// Attempts is the number of the task's last attempt: attempts are
	// numbered across the whole run, passes and resumes included.
	Attempts int `json:"attempts"`
	// StartedAt is when the task's first attempt of the current (or last)
	// pass started, in UTC.
	StartedAt time.Time `json:"started_at,omitzero"`
	// EndedAt is when it ended, in UTC; zero while it has not.
	EndedAt time.Time `json:"ended_at,omitzero"`
	// Error is the error of its last attempt that failed.
	Error string `json:"error,omitempty"`
	// Output is the task's output as the workflow's Codec encoded it, when
	// the task succeeded, the store is Persistent and the Codec is
	// JSONCodec; nil otherwise. For a Map task that failed, it is what the
	// task keeps of its items' outputs for Resume, when the store and
	// Codec are those: {"done": [indexes], "outputs": [their outputs]}.
	Output json.RawMessage `json:"output,omitempty"`
}

// apply changes rs by one event; task is the event's task's position in
// rs.Tasks, or -1 for a run event; data is the entry's encoded payload.
func (rs *RunStatus) apply(ev *Event, task int, data []byte) {
	rs.Events = append(rs.Events, *ev)
	rs.fold(ev, task, data)
}

// fold is apply without recording the event in rs.Events: the change of
// state alone.
func (rs *RunStatus) fold(ev *Event, task int, data []byte) {
	if task >= 0 {
		t := &rs.Tasks[task]
		switch ev.Type {
		case EventTaskStarted:
			t.State, t.Attempts, t.Error = StateRunning, ev.Attempt, ""
			if t.StartedAt.IsZero() {
				t.StartedAt = ev.Time
			}
		case EventTaskRetrying:
			t.Error = ev.Error
		case EventTaskSucceeded: // the common end, without a map lookup
			t.State, t.EndedAt, t.Error = StateSucceeded, ev.Time, ev.Error
			if data != nil {
				t.Output = data
			}
		case EventTaskFailed, EventTaskTimedOut, EventTaskCancelled, EventTaskSkipped:
			t.State, t.EndedAt, t.Error = taskEnd[ev.Type], ev.Time, ev.Error
			if data != nil { // a failed Map task's items' outputs
				t.Output = data
			}
		}
		return
	}
	switch ev.Type {
	case EventRunStarted:
		rs.State, rs.StartedAt = StateRunning, ev.Time
		if data != nil {
			rs.Input = data
		}
	case EventRunInterrupted:
		rs.State, rs.Error = StateInterrupted, ev.Error
		for i := range rs.Tasks {
			if t := &rs.Tasks[i]; t.State == StateRunning {
				t.State, t.EndedAt = StateInterrupted, ev.Time
			}
		}
	case EventRunResumed, EventRunRetrying:
		rs.State, rs.EndedAt, rs.Error = StateRunning, time.Time{}, ""
		for i := range rs.Tasks {
			if t := &rs.Tasks[i]; t.State != StateSucceeded {
				// Attempts go on counting across passes.
				*t = TaskStatus{Name: t.Name, State: StatePending, Attempts: t.Attempts}
			}
		}
	case EventRunSucceeded, EventRunFailed, EventRunTimedOut, EventRunCancelled:
		rs.State, rs.EndedAt, rs.Error = runEnd[ev.Type], ev.Time, ev.Error
	}
}

var taskEnd = map[string]State{
	EventTaskSucceeded: StateSucceeded, EventTaskFailed: StateFailed, EventTaskTimedOut: StateTimedOut,
	EventTaskCancelled: StateCancelled, EventTaskSkipped: StateSkipped,
}

var runEnd = map[string]State{
	EventRunSucceeded: StateSucceeded, EventRunFailed: StateFailed,
	EventRunTimedOut: StateTimedOut, EventRunCancelled: StateCancelled,
}

// summary copies rs without its events and payloads.
func (rs *RunStatus) summary() RunStatus {
	c := *rs
	c.Events, c.Input, c.Output = nil, nil, nil
	c.Tasks = make([]TaskStatus, len(rs.Tasks))
	for i, t := range rs.Tasks {
		t.Output = nil
		c.Tasks[i] = t
	}
	return c
}

// clone copies rs so that the copy shares no memory with it.
func (rs *RunStatus) clone() RunStatus {
	c := *rs
	c.Tasks = slices.Clone(rs.Tasks)
	c.Events = slices.Clone(rs.Events)
	return c
}

// HistoryQuery selects runs from a Store.
type HistoryQuery struct {
	// Limit is the most runs to return; 0 means all.
	Limit int
	// State keeps only the runs in this state; "" keeps all.
	State State
	// Before is a cursor: only runs created before the run of this ID are
	// returned ("" starts from the newest). Pass the last RunID of one
	// page to get the next. An unknown run ID wraps ErrNotFound.
	Before string
	// Summary leaves out each run's Events (and payloads), for listings.
	Summary bool
}

// HistoryOption narrows History.
type HistoryOption func(*HistoryQuery)

// HistoryLimit makes History return at most n runs, the newest.
func HistoryLimit(n int) HistoryOption { return func(q *HistoryQuery) { q.Limit = n } }

// HistoryState makes History return only runs in state s.
func HistoryState(s State) HistoryOption { return func(q *HistoryQuery) { q.State = s } }

// HistoryBefore makes History return only runs created before the run
// runID: the next page after a page whose last run is runID.
func HistoryBefore(runID string) HistoryOption { return func(q *HistoryQuery) { q.Before = runID } }

// HistorySummary makes History leave out each run's events and payloads.
func HistorySummary() HistoryOption { return func(q *HistoryQuery) { q.Summary = true } }

// DefaultMaxRuns is how many runs per workflow a MemoryStore keeps unless
// MaxRuns says otherwise.
const DefaultMaxRuns = 1000

// StoreOption configures a MemoryStore.
type StoreOption func(*MemoryStore)

// MaxRuns makes the store keep the n most recently created runs per
// workflow: an older run is dropped as soon as it has ended (runs under way
// are never dropped, so more than n may be kept while they go on). n ≤ 0
// keeps every run.
func MaxRuns(n int) StoreOption { return func(s *MemoryStore) { s.maxRuns = n } }

// MaxAge makes the store drop runs that ended more than d ago. d ≤ 0 keeps
// runs whatever their age.
func MaxAge(d time.Duration) StoreOption { return func(s *MemoryStore) { s.maxAge = d } }

// MemoryStore is a Store in memory, safe for concurrent use. Each run has
// its own lock, so recording one run's events never waits on another's;
// retention is applied as runs are created and as they end, with no
// goroutine of its own. The zero MemoryStore keeps every run.
type MemoryStore struct {
	maxRuns int
	maxAge  time.Duration

	mu    sync.RWMutex
	flows map[string]*flowRuns

	schedules memSchedules // see memsched.go
}

type flowRuns struct {
	byID  map[string]*record
	order *list.List // of *record, oldest created first
}

type record struct {
	mu       sync.Mutex
	rs       RunStatus
	index    map[string]int // task name → position; built on demand
	ended    atomic.Bool
	elem     *list.Element
	store    *MemoryStore // for retention when the run ends
	flow     *flowRuns
	restored bool // by Restore, not recorded by a run of this process
	owned    bool // a Recorder of this store runs it
	hasInput bool
	input    any
	evs      []mevent      // the run's events; rs.Events is nil
	odd      map[int]Event // events mevent cannot hold, by index in evs
	outputs  []any         // by position in rs.Tasks; dropped when the run succeeds
	live     *liveOutputs  // the engine's outputs, instead of outputs
	result   any           // the run's output, once it succeeded
	partials map[int]any   // by position: failed Map tasks' kept outputs
}

// NewMemoryStore returns an empty MemoryStore keeping DefaultMaxRuns runs
// per workflow, or as the options say.
func NewMemoryStore(opts ...StoreOption) *MemoryStore {
	s := &MemoryStore{maxRuns: DefaultMaxRuns, flows: map[string]*flowRuns{}}
	for _, o := range opts {
		o(s)
	}
	return s
}

// Persistent implements Store: a MemoryStore keeps runs in this process
// only, and payloads as values.
func (s *MemoryStore) Persistent() bool { return false }

// Create implements Store.
func (s *MemoryStore) Create(ctx context.Context, run RunStatus) (Recorder, error) {
	if run.Workflow == "" || run.RunID == "" {
		return nil, fmt.Errorf("%w: a run needs a workflow name and a run ID", ErrInvalidInput)
	}
	rec := &record{rs: run, owned: !run.State.Ended()}
	rec.takeEvents(2*len(run.Tasks) + 2)
	rec.ended.Store(run.State.Ended())
	s.mu.Lock()
	defer s.mu.Unlock()
	f := s.flow(run.Workflow)
	if _, dup := f.byID[run.RunID]; dup {
		return nil, fmt.Errorf("workflow %q: create run %q: %w", run.Workflow, run.RunID, ErrDuplicateRun)
	}
	s.insert(f, rec)
	s.prune(f)
	return rec, nil
}

func (s *MemoryStore) flow(name string) *flowRuns {
	f := s.flows[name]
	if f == nil {
		if s.flows == nil { // a zero MemoryStore
			s.flows = map[string]*flowRuns{}
		}
		f = &flowRuns{byID: map[string]*record{}, order: list.New()}
		s.flows[name] = f
	}
	return f
}

func (s *MemoryStore) insert(f *flowRuns, rec *record) {
	if old := f.byID[rec.rs.RunID]; old != nil {
		f.order.Remove(old.elem)
	}
	f.byID[rec.rs.RunID] = rec
	rec.elem = f.order.PushBack(rec)
	rec.store, rec.flow = s, f
}

// prune drops the ended runs older than the newest MaxRuns, and those that
// ended more than MaxAge ago. Runs under way are kept, and dropped in their
// turn when they end, so that what remains is always the newest runs: a
// run that ends early never makes room for an older one still going. The
// caller holds s.mu.
func (s *MemoryStore) prune(f *flowRuns) {
	old := 0 // how many of the oldest runs are beyond the newest MaxRuns
	if s.maxRuns > 0 {
		old = f.order.Len() - s.maxRuns
	}
	var cutoff time.Time
	if s.maxAge > 0 {
		cutoff = time.Now().Add(-s.maxAge)
	}
	for e := f.order.Front(); e != nil && (old > 0 || !cutoff.IsZero()); old-- {
		next := e.Next()
		rec := e.Value.(*record)
		drop := old > 0 && rec.ended.Load()
		if !drop && !cutoff.IsZero() {
			rec.mu.Lock()
			started, ended := rec.rs.StartedAt, rec.rs.EndedAt
			rec.mu.Unlock()
			if old <= 0 && started.After(cutoff) {
				// Runs are in the order they started: the rest started
				// after the cutoff too, so none can have ended before it.
				// (A run that started earlier may end later: ending
				// recently does not stop the walk.)
				break
			}
			drop = rec.ended.Load() && ended.Before(cutoff)
		}
		if drop {
			f.order.Remove(e)
			delete(f.byID, rec.rs.RunID)
		}
		e = next
	}
}

// retain applies retention to f when one of its runs has ended.
func (s *MemoryStore) retain(f *flowRuns) {
	if s.maxRuns <= 0 && s.maxAge <= 0 {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.prune(f)
}

// Reopen implements Store.
func (s *MemoryStore) Reopen(ctx context.Context, workflow, runID string) (Recorder, error) {
	return s.reopen(workflow, runID, false)
}

// ClaimOrphan implements OrphanClaimer: Reopen, for a run not ended.
func (s *MemoryStore) ClaimOrphan(ctx context.Context, workflow, runID string) (Recorder, error) {
	return s.reopen(workflow, runID, true)
}

// reopen makes the store the owner of the run, unless a Recorder of it
// owns it already or, for an orphan (ClaimOrphan), it has ended.
func (s *MemoryStore) reopen(workflow, runID string, orphan bool) (Recorder, error) {
	rec, err := s.find(workflow, runID)
	if err != nil {
		return nil, err
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	switch {
	case rec.owned:
		return nil, fmt.Errorf("%w: run %q of workflow %q is under way in this process", ErrNotResumable, runID, workflow)
	case orphan && rec.rs.State.Ended():
		return nil, fmt.Errorf("%w: run %q of workflow %q has ended (%s)", ErrNotResumable, runID, workflow, rec.rs.State)
	}
	rec.owned = true
	rec.restored = false
	rec.ended.Store(false)
	return rec, nil
}

func (r *record) isOwned() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.owned
}

// Orphans implements Store: the runs under way that no Recorder of this
// store runs, and whose input the store holds. In a MemoryStore those are
// the runs a Recover found but could not resume; runs restored from a
// snapshot hold no input, and are not among them.
func (s *MemoryStore) Orphans(ctx context.Context, workflow string) ([]string, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	var ids []string
	if f := s.flows[workflow]; f != nil {
		for e := f.order.Front(); e != nil; e = e.Next() {
			rec := e.Value.(*record)
			rec.mu.Lock()
			if !rec.owned && !rec.rs.State.Ended() && rec.hasInput {
				ids = append(ids, rec.rs.RunID)
			}
			rec.mu.Unlock()
		}
	}
	return ids, nil
}

// Workflows implements Store.
func (s *MemoryStore) Workflows(ctx context.Context) ([]string, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	names := make([]string, 0, len(s.flows))
	for name, f := range s.flows {
		if f.order.Len() > 0 {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	return names, nil
}

// Payloads implements Store. A MemoryStore keeps the values of a run until
// it succeeds.
func (s *MemoryStore) Payloads(ctx context.Context, workflow, runID string) (RunPayloads, error) {
	rec, err := s.find(workflow, runID)
	if err != nil {
		return RunPayloads{}, err
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	p := RunPayloads{HasInput: rec.hasInput, Input: Payload{Value: rec.input}, Outputs: map[string]Payload{},
		Output: Payload{Value: rec.result}}
	for k, t := range rec.rs.Tasks {
		if t.State != StateSucceeded {
			if v, ok := rec.partials[k]; ok {
				if p.Partial == nil {
					p.Partial = map[string]Payload{}
				}
				p.Partial[t.Name] = Payload{Value: v}
			}
			continue
		}
		if v, ok := rec.output(k); ok {
			p.Outputs[t.Name] = Payload{Value: v}
		}
	}
	return p, nil
}

// output is the output of the task at position k, if the record has it.
// The caller holds rec.mu.
func (rec *record) output(k int) (any, bool) {
	if l := rec.live; l != nil && k < len(l.order) {
		return l.outputs[l.order[k]], true
	}
	if k < len(rec.outputs) {
		return rec.outputs[k], true
	}
	return nil, false
}

// liveCopy is the outputs of the tasks that succeeded so far, by position,
// held apart from any engine. The caller holds rec.mu.
func (rec *record) liveCopy() []any {
	if rec.live == nil {
		return rec.outputs
	}
	out := make([]any, len(rec.rs.Tasks))
	for k, t := range rec.rs.Tasks {
		if t.State == StateSucceeded {
			out[k], _ = rec.output(k)
		}
	}
	return out
}

func (s *MemoryStore) find(workflow, runID string) (*record, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	f := s.flows[workflow]
	if f != nil {
		if runID == "" {
			if e := f.order.Back(); e != nil {
				return e.Value.(*record), nil
			}
		} else if rec := f.byID[runID]; rec != nil {
			return rec, nil
		}
	}
	if runID == "" {
		return nil, fmt.Errorf("%w: workflow %q has no runs", ErrNotFound, workflow)
	}
	return nil, fmt.Errorf("%w: workflow %q has no run %q", ErrNotFound, workflow, runID)
}

// Append implements Recorder. Each entry's Index saves finding its task by
// name; an Index that does not name the task (a record restored from
// another version of the workflow) falls back to the name. An entry for an
// unknown task refuses the whole batch: none of it is recorded.
func (r *record) Append(ctx context.Context, batch []Entry) error {
	var err error
	ended := false
	r.mu.Lock()
	if len(batch) > 1 { // all or none: check every entry before recording one
		for k := range batch {
			if _, err = r.taskOf(&batch[k]); err != nil {
				break
			}
		}
	}
	for k := 0; err == nil && k < len(batch); k++ {
		var end bool
		if end, err = r.appendLocked(&batch[k]); err != nil {
			break
		}
		ended = ended || end
	}
	r.mu.Unlock()
	if ended && r.store != nil { // after r.mu is released: s.mu comes first
		r.store.retain(r.flow)
	}
	return err
}

// appendLocked records e and reports whether it ended the run. The caller
// holds r.mu.
func (r *record) appendLocked(e *Entry) (ended bool, err error) {
	ev := &e.Event
	task, err := r.taskOf(e)
	if err != nil {
		return false, err
	}
	r.rs.fold(ev, task, e.Payload.Data)
	r.addEvent(ev, task)
	if task >= 0 {
		switch ev.Type {
		case EventTaskSucceeded:
			if e.Payload.Value != nil && r.live == nil {
				if r.outputs == nil {
					r.outputs = make([]any, len(r.rs.Tasks))
				}
				r.outputs[task] = e.Payload.Value
			}
		case EventTaskFailed, EventTaskTimedOut, EventTaskCancelled, EventTaskSkipped:
			if e.Payload.Value != nil {
				if r.partials == nil {
					r.partials = map[int]any{}
				}
				r.partials[task] = e.Payload.Value
			} else if r.partials != nil {
				delete(r.partials, task)
			}
		}
		return false, nil
	}
	switch ev.Type {
	case EventRunStarted:
		r.input, r.hasInput = e.Payload.Value, e.Payload.Value != nil || e.Payload.Data != nil
		r.live = e.Payload.live
	case EventRunResumed, EventRunRetrying:
		// The tasks that did not succeed start again: what they kept is
		// the engine's now (and the fold clears it from the status).
		r.partials = nil
		if l := e.Payload.live; ev.Type == EventRunResumed && l != nil {
			// The resuming engine restored the outputs into its own.
			r.outputs, r.live = nil, l
		}
	case EventRunInterrupted:
		r.owned = false
	}
	if r.rs.State.Ended() {
		r.owned = false
		r.index = nil // an ended run is read, not written: free the index
		if r.rs.State == StateSucceeded {
			r.input, r.outputs, r.live, r.partials = nil, nil, nil, nil // nothing to resume
			r.result = e.Payload.Value
		}
		r.ended.Store(true)
		return true, nil
	}
	return false, nil
}

// taskOf is the position of e's task in the run's Tasks, by e.Index when it
// names the task, else by name; -1 for an event of the run. The caller
// holds r.mu.
func (r *record) taskOf(e *Entry) (int, error) {
	if e.Task == "" {
		return -1, nil
	}
	if pos := e.Index; pos >= 0 && pos < len(r.rs.Tasks) && r.rs.Tasks[pos].Name == e.Task {
		return pos, nil
	}
	return r.position(e.Task)
}

// position finds the named task in the run's Tasks. The caller holds r.mu.
func (r *record) position(task string) (int, error) {
	if r.index == nil {
		r.index = make(map[string]int, len(r.rs.Tasks))
		for i, t := range r.rs.Tasks {
			r.index[t.Name] = i
		}
	}
	i, ok := r.index[task]
	if !ok {
		return -1, fmt.Errorf("%w: run %q has no task %q", ErrNotFound, r.rs.RunID, task)
	}
	return i, nil
}

// Get implements Store.
func (s *MemoryStore) Get(ctx context.Context, workflow, runID string) (RunStatus, error) {
	rec, err := s.find(workflow, runID)
	if err != nil {
		return RunStatus{}, err
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	return rec.full(), nil
}

// task returns the status of one task of a run (runID "": the most recent)
// and whether the run has it, without copying the run; pos is where the
// caller expects the task in the run's Tasks (-1: unknown).
func (s *MemoryStore) task(workflow, runID, task string, pos int) (TaskStatus, bool, error) {
	rec, err := s.find(workflow, runID)
	if err != nil {
		return TaskStatus{}, false, err
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	tasks := rec.rs.Tasks
	if pos >= 0 && pos < len(tasks) && tasks[pos].Name == task {
		return tasks[pos], true, nil
	}
	for _, t := range tasks {
		if t.Name == task {
			return t, true, nil
		}
	}
	return TaskStatus{}, false, nil
}

// List implements Store.
func (s *MemoryStore) List(ctx context.Context, workflow string, q HistoryQuery) ([]RunStatus, error) {
	if ctx == nil {
		return nil, fmt.Errorf("workflow: MemoryStore.List: %w", errNilContext)
	}
	s.mu.RLock()
	var recs []*record
	if f := s.flows[workflow]; f != nil {
		e := f.order.Back()
		if q.Before != "" {
			rec := f.byID[q.Before]
			if rec == nil {
				s.mu.RUnlock()
				return nil, fmt.Errorf("%w: workflow %q has no run %q (HistoryBefore)", ErrNotFound, workflow, q.Before)
			}
			e = rec.elem.Prev()
		}
		recs = make([]*record, 0, f.order.Len())
		for ; e != nil; e = e.Prev() {
			recs = append(recs, e.Value.(*record))
		}
	} else if q.Before != "" {
		s.mu.RUnlock()
		return nil, fmt.Errorf("%w: workflow %q has no run %q (HistoryBefore)", ErrNotFound, workflow, q.Before)
	}
	s.mu.RUnlock()
	var out []RunStatus
	for _, rec := range recs {
		if q.Limit > 0 && len(out) >= q.Limit {
			break
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		rec.mu.Lock()
		if q.State == "" || rec.rs.State == q.State {
			if q.Summary {
				out = append(out, rec.rs.summary())
			} else {
				out = append(out, rec.full())
			}
		}
		rec.mu.Unlock()
	}
	return out, nil
}

// snapshot is the JSON form of a MemoryStore.
type snapshot struct {
	Version int         `json:"version"`
	Runs    []RunStatus `json:"runs"` // per workflow, oldest first
}

const snapshotVersion = 1

// Snapshot writes every run the store holds to w as JSON, for Restore.
// Runs under way are written as they stand.
func (s *MemoryStore) Snapshot(w io.Writer) error {
	s.mu.RLock()
	names := make([]string, 0, len(s.flows))
	for name := range s.flows {
		names = append(names, name)
	}
	slices.Sort(names)
	snap := snapshot{Version: snapshotVersion, Runs: []RunStatus{}}
	for _, name := range names {
		for e := s.flows[name].order.Front(); e != nil; e = e.Next() {
			rec := e.Value.(*record)
			rec.mu.Lock()
			snap.Runs = append(snap.Runs, rec.full())
			rec.mu.Unlock()
		}
	}
	s.mu.RUnlock()
	enc := json.NewEncoder(w)
	if err := enc.Encode(snap); err != nil {
		return fmt.Errorf("workflow: snapshot: %w", err)
	}
	return nil
}

// Restore adds the runs of a Snapshot to the store, replacing those of the
// same workflow and run ID, then applies retention. A run under way in this
// store is kept as it is: its record is newer than any snapshot, and its
// end must not be lost. It is all or nothing: if r holds anything but a
// valid snapshot (and nothing after it), Restore returns an error that
// says where and the store is unchanged.
func (s *MemoryStore) Restore(r io.Reader) error {
	var snap snapshot
	dec := json.NewDecoder(r)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&snap); err != nil {
		return fmt.Errorf("workflow: restore: %w: %w", ErrInvalidInput, err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return fmt.Errorf("workflow: restore: %w: data after the snapshot, at byte %d", ErrInvalidInput, dec.InputOffset())
	}
	if snap.Version != snapshotVersion {
		return fmt.Errorf("workflow: restore: %w: snapshot version %d, want %d", ErrInvalidInput, snap.Version, snapshotVersion)
	}
	seen := map[[2]string]bool{}
	for i := range snap.Runs {
		if err := checkRun(&snap.Runs[i], seen); err != nil {
			return fmt.Errorf("workflow: restore: %w: run %d: %w", ErrInvalidInput, i, err)
		}
	}
	byFlow := map[string][]*record{}
	var names []string // in the snapshot's order
	now := time.Now()
	for _, run := range snap.Runs {
		if !run.State.Ended() && run.State != StateInterrupted {
			// Caught under way: no process of this store runs it.
			run.apply(&Event{Time: now, RunID: run.RunID, Type: EventRunInterrupted,
				Error: "restored from a snapshot taken while it ran"}, -1, nil)
		}
		rec := &record{rs: run, restored: true}
		rec.takeEvents(0)
		rec.ended.Store(run.State.Ended())
		if byFlow[run.Workflow] == nil {
			names = append(names, run.Workflow)
		}
		byFlow[run.Workflow] = append(byFlow[run.Workflow], rec)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, name := range names {
		s.merge(s.flow(name), byFlow[name])
		s.prune(s.flow(name))
	}
	return nil
}

// merge puts the restored runs into f, in one pass: the runs f holds that
// the snapshot does not are merged with the snapshot's by start time, each
// side keeping its own order, so that restoring a snapshot into an empty
// store, or into one holding the same runs, gives back the snapshot's
// order exactly. A run under way in this store keeps its record, at the
// place of the snapshot's. The caller holds s.mu.
func (s *MemoryStore) merge(f *flowRuns, restored []*record) {
	inSnap := make(map[string]bool, len(restored))
	for _, rec := range restored {
		inSnap[rec.rs.RunID] = true
	}
	var kept []*record
	for e := f.order.Front(); e != nil; e = e.Next() {
		if rec := e.Value.(*record); !inSnap[rec.rs.RunID] {
			kept = append(kept, rec)
		}
	}
	startOf := func(rec *record) time.Time {
		rec.mu.Lock()
		defer rec.mu.Unlock()
		return rec.rs.StartedAt
	}
	order := list.New()
	byID := make(map[string]*record, len(kept)+len(restored))
	add := func(rec *record) {
		byID[rec.rs.RunID] = rec
		rec.elem = order.PushBack(rec)
		rec.store, rec.flow = s, f
	}
	i, j := 0, 0
	for i < len(kept) || j < len(restored) {
		takeKept := j == len(restored)
		if i < len(kept) && j < len(restored) {
			a, b := startOf(kept[i]), restored[j].rs.StartedAt
			takeKept = !a.IsZero() && (b.IsZero() || !a.After(b))
		}
		if takeKept {
			add(kept[i])
			i++
			continue
		}
		rec := restored[j]
		j++
		if old := f.byID[rec.rs.RunID]; old != nil {
			if old.isOwned() {
				rec = old // a run under way: its record is newer than any snapshot
			} else {
				rec.keepPayloads(old)
			}
		}
		add(rec)
	}
	f.order, f.byID = order, byID
}

// keepPayloads gives rec, restored, the payloads of old, the record it
// replaces, when both are of the same tasks: a snapshot holds no values, and
// restoring a run over itself must not make it impossible to resume.
func (rec *record) keepPayloads(old *record) {
	old.mu.Lock()
	defer old.mu.Unlock()
	if !old.hasInput || len(old.rs.Tasks) != len(rec.rs.Tasks) {
		return
	}
	for k := range old.rs.Tasks {
		if old.rs.Tasks[k].Name != rec.rs.Tasks[k].Name {
			return
		}
	}
	rec.hasInput, rec.input, rec.outputs = true, old.input, old.liveCopy()
}

// checkRun rejects a run from a snapshot that the store could not use.
func checkRun(rs *RunStatus, seen map[[2]string]bool) error {
	key := [2]string{rs.Workflow, rs.RunID}
	switch {
	case rs.Workflow == "" || rs.RunID == "":
		return errors.New("missing workflow or run_id")
	case seen[key]:
		return fmt.Errorf("run %q of workflow %q appears twice", rs.RunID, rs.Workflow)
	case !rs.State.valid():
		return fmt.Errorf("run %q has unknown state %q", rs.RunID, rs.State)
	}
	seen[key] = true
	names := make(map[string]bool, len(rs.Tasks))
	for _, t := range rs.Tasks {
		if t.Name == "" || names[t.Name] {
			return fmt.Errorf("run %q has an empty or repeated task name %q", rs.RunID, t.Name)
		}
		if !t.State.valid() {
			return fmt.Errorf("run %q task %q has unknown state %q", rs.RunID, t.Name, t.State)
		}
		names[t.Name] = true
	}
	return nil
}

// A MemoryStore keeps each event in 48 bytes instead of an Event's 128:
// the run's ID and the task's name are the record's, the type a byte, the
// times unix nanoseconds (given back in UTC). An event that does not fit
// (another run's ID, a task name that is not its position's, an unknown
// type, a Map's item event, a time outside 1678–2262) is kept whole in
// record.odd.
type mevent struct {
	at, retryAt int64 // unix nanoseconds; noTime for the zero time
	err         string
	attempt     int32
	pass        int32
	task        int32 // position in the run's Tasks; -1 for a run event
	typ         uint8 // index in eventTypes; 0: the event is in record.odd
}

// noTime stands for the zero time in an mevent.
const noTime = math.MinInt64

// eventTypes are the event types an mevent names by index (0 is unused).
var eventTypes = [...]string{"", EventRunStarted, EventRunRetrying, EventRunResumed, EventRunInterrupted,
	EventRunSucceeded, EventRunFailed, EventRunTimedOut, EventRunCancelled, EventTaskStarted,
	EventTaskRetrying, EventTaskSucceeded, EventTaskFailed, EventTaskTimedOut, EventTaskCancelled,
	EventTaskSkipped, EventScheduleSkipped}

// eventType is the index of typ in eventTypes, 0 if it has none.
func eventType(typ string) uint8 {
	switch typ { // the common ones first, without a loop
	case EventTaskStarted:
		return 9
	case EventTaskSucceeded:
		return 11
	}
	for k := 1; k < len(eventTypes); k++ {
		if eventTypes[k] == typ {
			return uint8(k)
		}
	}
	return 0
}

// The instants unix nanoseconds can hold.
var (
	minNanos = time.Unix(0, math.MinInt64+1)
	maxNanos = time.Unix(0, math.MaxInt64)
)

// nanosOf is t as an mevent keeps it, and whether it fits.
func nanosOf(t time.Time) (int64, bool) {
	if t.IsZero() {
		return noTime, true
	}
	if t.Before(minNanos) || t.After(maxNanos) {
		return 0, false
	}
	return t.UnixNano(), true
}

// timeOf is the inverse of nanosOf, in UTC.
func timeOf(n int64) time.Time {
	if n == noTime {
		return time.Time{}
	}
	return time.Unix(0, n).UTC()
}

// addEvent records ev, of the task at position task (-1: the run). The
// caller holds rec.mu.
func (rec *record) addEvent(ev *Event, task int) {
	m := mevent{err: ev.Error, attempt: int32(ev.Attempt), pass: int32(ev.Pass), task: int32(task), typ: eventType(ev.Type)}
	at, ok1 := nanosOf(ev.Time)
	retryAt, ok2 := nanosOf(ev.RetryAt)
	m.at, m.retryAt = at, retryAt
	name := ""
	if task >= 0 {
		name = rec.rs.Tasks[task].Name
	}
	if !ok1 || !ok2 || m.typ == 0 || ev.Item != 0 || ev.RunID != rec.rs.RunID || ev.Task != name ||
		int(m.attempt) != ev.Attempt || int(m.pass) != ev.Pass {
		if rec.odd == nil {
			rec.odd = map[int]Event{}
		}
		rec.odd[len(rec.evs)] = *ev
		m = mevent{}
	}
	rec.evs = append(rec.evs, m)
}

// takeEvents moves rs.Events into the record's own form, with room for n
// events. The caller holds rec.mu, or is the only one to see rec.
func (rec *record) takeEvents(n int) {
	rec.evs = make([]mevent, 0, max(n, len(rec.rs.Events)))
	evs := rec.rs.Events
	rec.rs.Events = nil
	for k := range evs {
		task := -1
		if evs[k].Task != "" {
			if pos, err := rec.position(evs[k].Task); err == nil {
				task = pos
			}
		}
		rec.addEvent(&evs[k], task)
	}
}

// full is the run with its events, sharing no memory with the record. The
// caller holds rec.mu.
func (rec *record) full() RunStatus {
	c := rec.rs.clone()
	c.Events = make([]Event, len(rec.evs))
	for k, m := range rec.evs {
		if m.typ == 0 {
			c.Events[k] = rec.odd[k]
			continue
		}
		ev := &c.Events[k]
		ev.Time, ev.RetryAt = timeOf(m.at), timeOf(m.retryAt)
		ev.RunID, ev.Type, ev.Error = rec.rs.RunID, eventTypes[m.typ], m.err
		ev.Attempt, ev.Pass = int(m.attempt), int(m.pass)
		if m.task >= 0 {
			ev.Task = rec.rs.Tasks[m.task].Name
		}
	}
	return c
}
