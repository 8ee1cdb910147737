package workflow

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"reflect"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// run is one execution of a workflow. Its fields below mu change only under
// mu; the others are set before the run starts (or, for ctx and cancel,
// before each pass starts its tasks).
type run struct {
	e          *engine
	id         string
	input      any
	handlers   []handlerFunc // per task; nil means the plan's
	policies   []taskPolicy  // per task; nil means the plan's
	live       liveOutputs   // outputs, as a MemoryStore reads them
	pass       int           // of the run, as Event.Pass
	trigger    string        // RunStatus.Trigger
	outputs    []any
	base       context.Context // ends on the caller's cancel or the run timeout
	baseCancel context.CancelCauseFunc
	stopTimer  context.CancelFunc
	stopWatch  func() bool
	rec        Recorder
	one        [1]Entry // the batch of record, under mu
	timeout    time.Duration
	done       chan struct{}
	err        error           // set before done closes
	wctx       context.Context // for a Persistent store's appends: the caller's values, no cancel

	mu          sync.Mutex
	ctx         context.Context // this pass's: ends when a task fails
	cancel      context.CancelCauseFunc
	state       []taskState
	attempts    []int32
	pending     []int32 // unfinished dependencies, this pass
	running     int     // tasks taken by a goroutine, under way
	queue       []int32 // ready tasks in order; queue[head:] wait for a goroutine or a concurrency slot
	head        int
	idle        int // goroutines started that have not yet taken a task
	fan         int // the most such goroutines at once
	left        int // tasks not succeeded
	failure     *WorkflowError
	firstFail   *WorkflowError // with trigger rules: the pass's first failure, which cancels nothing
	partial     []any          // per task, made on demand: a failed Map's kept outputs
	skips       bool           // a task was skipped by a handler or a rule: successors are resolved by resolve
	retriesLeft int
	ended       bool

	// With a Persistent store, events wait in pend for the one goroutine
	// that appends them (flushing), outside mu; the successors of a task
	// are released (after) only once its success is committed.
	pend, spare []Entry
	after       []int32 // succeeded tasks in pend
	unsaved     []bool  // per task: its success is not yet committed
	flushing    bool
	broken      error // a write failed: nothing more is written

	// Hooks and the logger are given events outside mu, by one goroutine
	// at a time (observing), from obs[obsAt:]; see observe.go.
	obs           []observation
	obsAt         int
	observing     bool
	hooker        atomic.Int64  // the goroutine (goid) calling a hook of this run; 0: none
	committed     bool          // the run's end is in the store
	ending        bool          // end is recording the run's end
	endState      State         // set by end
	inactive      bool          // removed from e.active
	stopped       chan struct{} // made on demand, closed once committed
	stoppedClosed bool
	doneClosed    bool
}

func newRunID() string {
	return strconv.FormatUint(rand.Uint64()|1<<63, 36)[1:]
}

func (e *engine) newRun(ctx context.Context, id string, rc runConfig) (*run, error) {
	r := &run{e: e, id: id, timeout: rc.timeout, retriesLeft: rc.retries, done: make(chan struct{}),
		fan: runtime.GOMAXPROCS(0), pass: 1}
	if e.persistent {
		r.wctx = context.WithoutCancel(ctx)
		r.unsaved = make([]bool, len(e.plan.tasks))
	}
	if len(rc.replace) > 0 {
		r.handlers = make([]handlerFunc, len(e.plan.tasks))
		for i := range e.plan.tasks {
			r.handlers[i] = e.plan.tasks[i].handler
		}
		for name, rep := range rc.replace {
			i, ok := e.plan.index[name]
			if !ok {
				return nil, opError(e.name, "", "ReplaceTask", newError(ErrNotFound, "no task %q%s", name, suggest(name, e.plan.names)))
			}
			t := &e.plan.tasks[i]
			if rep.in != t.in || rep.out != t.out {
				return nil, opError(e.name, "", "ReplaceTask", newError(ErrTypeMismatch, "task %q is func(context.Context, %s) (%s, error); the replacement takes %s and gives %s",
					name, t.in, t.out, rep.in, rep.out))
			}
			r.handlers[i] = rep.handler
		}
	}
	if len(rc.retry)+len(rc.taskTimeout) > 0 {
		r.policies = make([]taskPolicy, len(e.plan.tasks))
		for i := range e.plan.tasks {
			r.policies[i] = taskPolicy{retry: e.plan.tasks[i].retry, timeout: e.plan.tasks[i].timeout}
		}
		for name, p := range rc.retry {
			i, ok := e.plan.index[name]
			if !ok {
				return nil, opError(e.name, "", "OverrideRetry", newError(ErrNotFound, "no task %q%s", name, suggest(name, e.plan.names)))
			}
			r.policies[i].retry = p
		}
		for name, d := range rc.taskTimeout {
			i, ok := e.plan.index[name]
			if !ok {
				return nil, opError(e.name, "", "OverrideTimeout", newError(ErrNotFound, "no task %q%s", name, suggest(name, e.plan.names)))
			}
			r.policies[i].timeout = d
		}
	}
	n := len(e.plan.tasks)
	r.state = make([]taskState, n) // all tsPending
	r.attempts = make([]int32, n)
	r.pending = make([]int32, n)
	r.outputs = make([]any, n)
	r.base, r.baseCancel = context.WithCancelCause(ctx)
	if rc.timeout > 0 {
		r.base, r.stopTimer = context.WithTimeoutCause(r.base, rc.timeout, errRunTimeout)
	}
	return r, nil
}

func (e *engine) start(ctx context.Context, in any, opts []RunOption) (*run, error) {
	if ctx == nil {
		return nil, e.nilContext("Start")
	}
	rc, err := newRunConfig(opts)
	if err != nil {
		return nil, opError(e.name, "", "", err)
	}
	id := rc.runID
	if id == "" {
		id = newRunID()
	}
	r, err := e.newRun(ctx, id, rc)
	if err != nil {
		return nil, err
	}
	r.input, r.trigger = in, rc.trigger
	var werr *WorkflowError
	var input Payload
	switch {
	case rc.inputErr != nil:
		werr = r.runError("could not make the input", rc.inputErr)
	case e.validateIn:
		werr = r.check(in, "", "workflow input")
	}
	if werr == nil {
		if input, err = e.payload(in); err != nil {
			werr = r.runError("could not record the input", newError(ErrInvalidInput, "%T: %w", in, err))
		}
	}
	tasks := make([]TaskStatus, len(e.plan.order))
	for k, i := range e.plan.order {
		tasks[k] = TaskStatus{Name: e.plan.names[i], State: StatePending}
	}
	r.rec, err = e.cfg.store.Create(ctx, RunStatus{
		RunID: id, Workflow: e.name, State: StatePending, Trigger: rc.trigger,
		ScheduledAt: rc.scheduledAt, ParentRunID: rc.parentRunID, Tasks: tasks,
	})
	if err != nil {
		r.release()
		if errors.Is(err, ErrDuplicateRun) {
			err = reword(err, "the store already holds a run with this ID")
		}
		return nil, opError(e.name, id, "", err)
	}
	e.mu.Lock()
	e.active[id] = r
	e.mu.Unlock()

	r.mu.Lock()
	if !e.persistent {
		r.live = liveOutputs{outputs: r.outputs, order: e.plan.order}
		input.live = &r.live
	}
	r.record(Event{Type: EventRunStarted}, -1, input)
	if werr != nil {
		r.skipRest()
		r.end(StateFailed, werr)
		r.mu.Unlock()
		<-r.done
		return nil, werr
	}
	r.beginPass(true)
	spawn := r.spawnable()
	r.mu.Unlock()
	r.watch()
	r.spawn(spawn)
	return r, nil
}

// payload is v as the store takes it: the value itself, or its encoding
// for a Persistent store.
func (e *engine) payload(v any) (Payload, error) {
	if !e.persistent {
		return Payload{Value: v}, nil
	}
	data, err := e.cfg.codec.Marshal(v)
	if err != nil {
		return Payload{}, err
	}
	if len(data) > MaxPayloadSize {
		return Payload{}, fmt.Errorf("encoded, it takes %d bytes, more than MaxPayloadSize (%d)", len(data), MaxPayloadSize)
	}
	return Payload{Data: data}, nil
}

// value decodes a stored payload into a value of type t.
func (e *engine) value(p Payload, t reflect.Type) (any, error) {
	if !e.persistent {
		if p.Value != nil && !reflect.TypeOf(p.Value).AssignableTo(t) {
			return nil, newError(ErrTypeMismatch, "the stored value is a %T, not a %s", p.Value, t)
		}
		return p.Value, nil
	}
	ptr := reflect.New(t)
	if err := e.cfg.codec.Unmarshal(p.Data, ptr.Interface()); err != nil {
		return nil, newError(ErrTypeMismatch, "the stored value does not decode as a %s: %w", t, err)
	}
	return ptr.Elem().Interface(), nil
}

// resume continues the run runID from what the store holds. recovering:
// Recover took it over from a stopped process, so a run left running or
// pending is accepted, and run_interrupted is recorded first.
func (e *engine) resume(ctx context.Context, runID string, opts []RunOption, recovering bool) (*run, error) {
	if ctx == nil {
		return nil, e.nilContext("Resume")
	}
	op := "Resume"
	if recovering {
		op = "Recover"
	}
	rc, err := newRunConfig(opts)
	if err != nil {
		return nil, opError(e.name, "", "", err)
	}
	if rc.runID != "" && rc.runID != runID {
		return nil, opError(e.name, runID, op, newError(ErrInvalidInput, "WithRunID(%q) differs from the run resumed", rc.runID))
	}
	fail := func(err error) (*run, error) {
		return nil, opError(e.name, runID, op, err)
	}
	rs, err := e.cfg.store.Get(ctx, e.name, runID)
	if err != nil || runID == "" {
		return nil, e.lookupError(op, runID, err)
	}
	e.mu.Lock()
	_, active := e.active[runID]
	e.mu.Unlock()
	switch {
	case recovering && rs.Trigger == TriggerParent && !rc.byParent:
		// A Sub task's child run: its parent's recovery resumes it.
		return nil, errClaimedElsewhere
	case recovering && (active || rs.State.Ended()):
		// Listed as an orphan, then resumed (and maybe ended) by another
		// process or Workflow value before this one came to it.
		return nil, errClaimedElsewhere
	case active:
		return fail(newError(ErrNotResumable, "it is still running"))
	case rs.State == StateSucceeded:
		return fail(newError(ErrNotResumable, "it succeeded"))
	case !recovering && (rs.State == StateRunning || rs.State == StatePending):
		return fail(newError(ErrNotResumable, "it is still running (Recover takes over the runs of a stopped process)"))
	}
	var claimed Recorder // Recover's claim, until the run is resumed
	if recovering {
		// Claim the run first, then read it again: another process may
		// have resumed it, and ended or interrupted it, since it was
		// listed, or since the read above.
		if claimed, err = e.claimOrphan(ctx, runID); err != nil {
			if errors.Is(err, ErrNotResumable) {
				return nil, errClaimedElsewhere
			}
			return fail(err)
		}
		defer func() {
			if claimed != nil { // not resumed after all: let it go again
				releaseClaim(claimed, runID)
			}
		}()
		if rs, err = e.cfg.store.Get(ctx, e.name, runID); err != nil {
			return fail(err)
		}
		if rs.State.Ended() {
			// Resumed and ended elsewhere in between, by a store that is
			// not an OrphanClaimer: this claim is left to its lease.
			claimed = nil
			return nil, errClaimedElsewhere
		}
	}
	pl, err := e.cfg.store.Payloads(ctx, e.name, runID)
	if err != nil {
		return fail(err)
	}
	if !pl.HasInput {
		if rs.State == StateFailed && rs.Error != "" {
			var b strings.Builder
			writePrefix(&b, e.name, runID)
			why := strings.TrimPrefix(rs.Error, b.String()+": ") // said already
			return fail(&libError{msg: "it never started: " + why, errs: []error{ErrNotResumable, ErrInvalidInput}})
		}
		return fail(newError(ErrNotResumable, "the store holds no input for it (its process stopped before recording it, or it was restored from a snapshot)"))
	}
	r, err := e.newRun(ctx, runID, rc)
	if err != nil {
		return nil, err
	}
	if err := r.restore(&rs, &pl); err != nil {
		r.release()
		return fail(err)
	}
	if claimed != nil {
		r.rec, claimed = claimed, nil
	} else if r.rec, err = e.cfg.store.Reopen(ctx, e.name, runID); err != nil {
		r.release()
		return fail(err)
	}
	e.mu.Lock()
	e.active[runID] = r
	e.mu.Unlock()
	r.mu.Lock()
	if recovering && rs.State != StateInterrupted {
		r.emit(Event{Type: EventRunInterrupted, Error: "its process stopped without ending it"})
	}
	r.pass++
	var resumed Payload
	if !e.persistent {
		r.live = liveOutputs{outputs: r.outputs, order: e.plan.order}
		resumed.live = &r.live
	}
	r.record(Event{Type: EventRunResumed}, -1, resumed)
	r.beginPass(false)
	spawn := r.spawnable()
	r.mu.Unlock()
	r.watch()
	r.spawn(spawn)
	return r, nil
}

// claimOrphan makes the store the owner of the run runID for Recover: with
// OrphanClaimer's ClaimOrphan, only while the run is unfinished; else with
// Reopen.
func (e *engine) claimOrphan(ctx context.Context, runID string) (Recorder, error) {
	if c, ok := e.cfg.store.(OrphanClaimer); ok {
		return c.ClaimOrphan(ctx, e.name, runID)
	}
	return e.cfg.store.Reopen(ctx, e.name, runID)
}

// releaseClaim gives up Recover's claim of an unfinished run it could not
// resume: it records the run interrupted again, which releases the lease,
// so that it stays an orphan for a later Recover.
func releaseClaim(rec Recorder, runID string) {
	ev := Event{Type: EventRunInterrupted, RunID: runID, Time: time.Now().UTC(), Error: "Recover could not resume it"}
	_ = rec.Append(context.Background(), []Entry{{Event: ev, Index: -1}})
}

// restore sets the run's input, and the state and output of each task that
// succeeded, from a stored run, checking that it matches the definition.
func (r *run) restore(rs *RunStatus, pl *RunPayloads) error {
	e, p := r.e, r.e.plan
	notResumable := func(format string, args ...any) error {
		return newError(ErrNotResumable, format, args...)
	}
	in, err := e.value(pl.Input, p.inType)
	if err != nil {
		return notResumable("its input: %w", err)
	}
	r.input, r.trigger = in, rs.Trigger
	r.pass = lastPass(rs.Events)
	seen := make([]bool, len(p.tasks))
	for _, t := range rs.Tasks {
		i, ok := p.index[t.Name]
		if !ok {
			return notResumable("task %q of the stored run is not in the workflow", t.Name)
		}
		seen[i] = true
		switch t.State {
		case StateSucceeded:
			out, ok := pl.Outputs[t.Name]
			if !ok {
				return notResumable("task %q succeeded, but the store holds no output for it", t.Name)
			}
			v, err := e.value(out, p.tasks[i].out)
			if err != nil {
				return notResumable("task %q: its output: %w", t.Name, err)
			}
			r.state[i], r.outputs[i] = tsSucceeded, v
		}
		r.attempts[i] = int32(t.Attempts) // attempts go on counting
		if kp, ok := pl.Partial[t.Name]; ok && t.State != StateSucceeded && p.tasks[i].kept != nil {
			if v, err := e.value(kp, p.tasks[i].kept); err == nil { // else every item runs again
				if r.partial == nil {
					r.partial = make([]any, len(p.tasks))
				}
				r.partial[i] = v
			}
		}
	}
	for i, ok := range seen {
		if !ok {
			return notResumable("task %q of the workflow is not in the stored run", p.names[i])
		}
	}
	return nil
}

// lastPass is the pass of the last of a run's events: its Pass, or, for
// events recorded without one, the passes begun so far.
func lastPass(evs []Event) int {
	if n := len(evs); n > 0 && evs[n-1].Pass > 0 {
		return evs[n-1].Pass
	}
	pass := 0
	for _, ev := range evs {
		switch ev.Type {
		case EventRunStarted, EventRunRetrying, EventRunResumed:
			pass++
		}
	}
	return max(pass, 1)
}

// watch ends the run when its base context ends: the caller's cancel, Cancel
// or the run timeout. context.AfterFunc starts no goroutine until then.
func (r *run) watch() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.ended {
		r.stopWatch = context.AfterFunc(r.base, r.interrupted)
	}
}

// release frees the run's contexts and timer.
func (r *run) release() {
	if r.stopTimer != nil {
		r.stopTimer()
	}
	r.baseCancel(context.Canceled)
}

// end writes the run's terminal state, once. The caller holds r.mu. The run
// is done (Wait returns) once its end is committed: at once, or, for a
// Persistent store, when the appending goroutine has written it.
func (r *run) end(state State, werr *WorkflowError) {
	ev := Event{Type: runEventOf[state]}
	if werr != nil {
		r.err = werr
		ev.Error = werr.Error()
	}
	r.ended, r.ending, r.endState = true, true, state
	var out Payload
	if state == StateSucceeded && !r.e.persistent {
		out.Value = r.outputs[r.e.plan.output] // for Wait by run ID, later
	}
	r.record(ev, -1, out) // a failed write replaces r.err
	r.ending = false
	if r.stopWatch != nil {
		r.stopWatch()
	}
	if r.cancel != nil {
		r.cancel(errTaskFailed)
	}
	r.release()
	if !r.e.persistent || r.broken != nil {
		r.committed = true
		r.settle()
	}
}

// settle closes the run's channels once its end is committed (stopped),
// and once its observers have been given every event too (done). The
// caller holds r.mu.
func (r *run) settle() {
	if !r.committed || r.doneClosed {
		return
	}
	if !r.inactive {
		// Only now, so that a run is never missing from both this value's
		// runs under way and the store's ended runs.
		r.inactive = true
		e := r.e
		e.mu.Lock()
		if e.active[r.id] == r {
			delete(e.active, r.id)
		}
		e.mu.Unlock()
	}
	if r.stopped != nil && !r.stoppedClosed {
		r.stoppedClosed = true
		close(r.stopped)
	}
	if len(r.obs) == 0 && !r.observing {
		r.doneClosed = true
		close(r.done)
	}
}

// endedChan returns a channel closed once the run's end is committed,
// whether or not its observers have seen it yet: what Cancel waits for,
// and Wait when a hook of the run calls it.
func (r *run) endedChan() <-chan struct{} {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.stopped == nil {
		r.stopped = make(chan struct{})
	}
	if r.committed && !r.stoppedClosed {
		r.stoppedClosed = true
		close(r.stopped)
	}
	return r.stopped
}

var runEventOf = map[State]string{
	StateSucceeded: EventRunSucceeded, StateFailed: EventRunFailed,
	StateTimedOut: EventRunTimedOut, StateCancelled: EventRunCancelled,
}

// runError is the run's error when what happened to the run as a whole
// (not one task) was what, because of err.
func (r *run) runError(what string, err error) *WorkflowError {
	return &WorkflowError{Workflow: r.e.name, RunID: r.id, Message: err.Error(), Err: err, what: what}
}

// taskError is the run's error when task failed for good with err, ending
// in state after attempts attempts.
func (r *run) taskError(task string, state State, attempts int, err error) *WorkflowError {
	var werr *WorkflowError
	if errors.As(err, &werr) && werr.Task == task && werr.RunID == r.id {
		// A validation failure, already described; the handler returned
		// no error.
		werr.Attempts = attempts
		werr.Details["attempts"], werr.Details["state"], werr.Details["error_type"] = attempts, state, handlerErrorType(nil)
		return werr
	}
	werr = &WorkflowError{Workflow: r.e.name, RunID: r.id, Task: task, Attempts: attempts, Message: err.Error(), Err: err,
		Details: map[string]any{"attempts": attempts, "state": state, "error_type": handlerErrorType(err)}}
	if state == StateTimedOut {
		werr.what = "timed out"
	}
	var pe *panicError
	if errors.As(err, &pe) {
		werr.Details["panic"], werr.Details["stack"] = pe.value, pe.stack
		if _, handler := err.(*panicError); handler && state == StateFailed {
			werr.what = "panicked" // the handler did, not RetryIf
		}
	}
	return werr
}

// emit records ev: in the store, and for the hooks and the logger. The
// caller holds r.mu, which keeps each run's events in order and none after
// its end.
func (r *run) emit(ev Event) { r.record(ev, -1, Payload{}) }

// emitTask records ev, an event of task i, as emit does.
func (r *run) emitTask(i int32, ev Event) {
	ev.Task = r.e.plan.tasks[i].name
	r.record(ev, int(r.e.pos[i]), Payload{})
}

// record is emit for an event whose task is at position pos of the run's
// Tasks (-1: a run event, or unknown), with its payload. A store that is
// not Persistent records it at once; for a Persistent store it joins the
// batch that the appending goroutine writes next, which it starts if none
// is at work. Hooks and the logger get it later, outside r.mu (see
// observe).
func (r *run) record(ev Event, pos int, pl Payload) {
	if ev.Time.IsZero() { // else set by the caller, for events of one instant
		ev.Time = time.Now().UTC()
	}
	ev.RunID, ev.Pass = r.id, r.pass
	e := r.e
	switch {
	case r.broken != nil: // nothing more is written
	case e.persistent:
		r.pend = append(r.pend, Entry{Event: ev, Index: pos, Payload: pl})
		if !r.flushing {
			r.flushing = true
			go r.flush()
		}
	default:
		r.one[0] = Entry{Event: ev, Index: pos, Payload: pl}
		err := r.rec.Append(context.Background(), r.one[:])
		r.one[0] = Entry{}
		if err != nil {
			r.storeFailed(err)
		}
	}
	if e.observed {
		r.observe(observation{ev: ev})
	}
}

// flush appends the run's pending events to a Persistent store, batch after
// batch, outside r.mu: events that pile up while one batch is written go
// together in the next (group commit). After each commit it releases the
// successors of the tasks whose success it wrote, and ends the run for
// Wait once its end is written. A failed write fails the run.
func (r *run) flush() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for len(r.pend) > 0 && r.broken == nil {
		batch, after := r.pend, r.after
		r.pend, r.after = r.spare[:0], nil
		r.mu.Unlock()
		err := r.rec.Append(r.wctx, batch)
		r.mu.Lock()
		clear(batch) // drop the payloads
		r.spare = batch[:0]
		if err != nil {
			r.storeFailed(err)
			break
		}
		for _, i := range after {
			r.unsaved[i] = false
			if !r.ended && r.failure == nil && r.state[i] == tsSucceeded {
				r.unblock(i)
			}
		}
		r.spawn(r.spawnable())
		if r.ended && len(r.pend) == 0 {
			r.committed = true
			r.settle()
		}
	}
	r.flushing = false
}

// storeFailed fails the run whose write to its store failed with err:
// nothing more is written, the failure is logged, and Wait returns an
// error wrapping err. The caller holds r.mu.
func (r *run) storeFailed(err error) {
	r.broken = err
	r.pend, r.after = nil, nil
	r.observe(observation{err: fmt.Errorf("event %w", err)})
	werr := r.runError("recording the run failed", err)
	if !r.ended {
		r.end(StateFailed, werr)
		return
	}
	r.err = werr // its end could not be recorded
	if !r.ending {
		r.committed = true
		r.settle()
	}
}
