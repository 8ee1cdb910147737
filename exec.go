package workflow

import (
	"context"
	"errors"
	"time"
)

// beginPass starts a pass over the tasks not yet succeeded: it counts their
// unfinished dependencies and queues those ready to start. The caller holds
// r.mu, and then starts goroutines for the queue (see spawnable).
func (r *run) beginPass(first bool) {
	p := r.e.plan
	r.ctx, r.cancel = context.WithCancelCause(r.base)
	r.failure, r.firstFail = nil, nil
	r.left = 0
	r.queue, r.head = r.queue[:0], 0
	for i := range int32(len(p.tasks)) {
		if r.state[i] == tsSucceeded {
			continue
		}
		r.state[i] = tsPending
		r.left++
		deps := p.deps(i)
		n := int32(len(deps))
		if !first {
			n = 0
			for _, d := range deps {
				if r.state[d] != tsSucceeded || (r.unsaved != nil && r.unsaved[d]) {
					n++
				}
			}
		}
		r.pending[i] = n
		switch {
		case n == 0:
			r.queue = append(r.queue, i)
		case p.tasks[i].trigger == OneSucceeded && int(n) < len(deps):
			r.pending[i] = -1 // a dependency succeeded in an earlier pass
			r.queue = append(r.queue, i)
		}
	}
	if r.left == 0 {
		r.succeed()
	}
}

// Ready tasks wait in r.queue for a goroutine. A goroutine that finishes a
// task takes the next one from the queue itself, in the same critical
// section, so that quick tasks cost no goroutine each; and while tasks
// wait, up to r.fan goroutines more are on their way to take them, each of
// which starts another before running its task. So a task that blocks
// never holds up the queue, and every ready task starts at once, as with a
// goroutine per task, for a fraction of the goroutines.

// startable is how many queued tasks may start now. The caller holds r.mu.
func (r *run) startable() int {
	if r.ended || r.failure != nil {
		return 0
	}
	k := len(r.queue) - r.head
	if limit := r.e.cfg.maxConcurrency; limit > 0 {
		k = min(k, limit-r.running)
	}
	return k
}

// spawnable counts the goroutines to start for the queue, and counts them
// as idle. The caller holds r.mu and starts them with spawn after
// unlocking.
func (r *run) spawnable() int {
	n := min(r.startable(), r.fan) - r.idle
	if n <= 0 {
		return 0
	}
	r.idle += n
	return n
}

func (r *run) spawn(n int) {
	for range n {
		go r.work()
	}
}

// take pops the next task that may start now (-1: none) and records the
// start of its first attempt, unless its input must be checked first
// (begun false: runTask begins the attempt). It returns the pass's context
// for the task, and the goroutines to start for the rest of the queue. The
// caller holds r.mu.
func (r *run) take() (i int32, ctx context.Context, begun bool, spawn int) {
	return r.takeAt(time.Time{})
}

// takeAt is take with the time of the start (zero: now).
func (r *run) takeAt(now time.Time) (i int32, ctx context.Context, begun bool, spawn int) {
	i = -1
	if r.startable() > 0 {
		i = r.queue[r.head]
		r.head++
		if r.head == len(r.queue) {
			r.queue, r.head = r.queue[:0], 0
		}
		r.running++
		if !r.e.plan.tasks[i].validateIn && r.ctx.Err() == nil {
			n := r.attempts[i] + 1
			r.state[i] = tsRunning
			r.attempts[i] = n
			r.emitTask(i, Event{Type: EventTaskStarted, Attempt: int(n), Time: now})
			begun = true
		}
	}
	return i, r.ctx, begun, r.spawnable()
}

// work is a goroutine started by spawn: it takes a task from the queue and
// runs it, and those after it, on this goroutine.
func (r *run) work() {
	r.mu.Lock()
	r.idle--
	i, ctx, begun, spawn := r.take()
	r.mu.Unlock()
	r.spawn(spawn)
	r.exec(ctx, i, begun)
}

// exec runs task i (-1: none), then takes the next task from the queue and
// runs it, until the queue has none that may start.
func (r *run) exec(ctx context.Context, i int32, begun bool) {
	returned := false
	defer func() {
		if !returned { // a handler called runtime.Goexit on this goroutine
			go r.goexited(i)
		}
	}()
	var tc *taskCtx // for the tasks this goroutine runs, one after another
	for i >= 0 {
		out, data, state, err, attempts := r.runTask(ctx, &tc, i, begun)
		var spawn int
		i, ctx, begun, spawn = r.finish(i, out, data, state, err, attempts)
		r.spawn(spawn)
	}
	returned = true
}

// goexited fails task i, whose handler ended its goroutine with
// runtime.Goexit, and carries on with the run's work on a new goroutine.
func (r *run) goexited(i int32) {
	r.mu.Lock()
	n := int(r.attempts[i])
	r.mu.Unlock()
	next, ctx, begun, spawn := r.finish(i, nil, nil, StateFailed, errGoexit, n)
	r.spawn(spawn)
	r.exec(ctx, next, begun)
}

// taskState is a task's State in the engine, in a byte.
type taskState uint8

const (
	tsPending taskState = iota
	tsRunning
	tsSucceeded
	tsFailed
	tsTimedOut
	tsCancelled
	tsSkipped
)

// taskStateOf is s as a taskState.
func taskStateOf(s State) taskState {
	switch s {
	case StateRunning:
		return tsRunning
	case StateSucceeded:
		return tsSucceeded
	case StateFailed:
		return tsFailed
	case StateTimedOut:
		return tsTimedOut
	case StateCancelled:
		return tsCancelled
	case StateSkipped:
		return tsSkipped
	}
	return tsPending
}

// taskPolicy is a task's retry policy and timeout, as a run overrides them.
type taskPolicy struct {
	retry   RetryPolicy
	timeout time.Duration
}

// policy is task i's retry policy and timeout in this run.
func (r *run) policy(i int32) (*RetryPolicy, time.Duration) {
	if r.policies != nil {
		return &r.policies[i].retry, r.policies[i].timeout
	}
	t := &r.e.plan.tasks[i]
	return &t.retry, t.timeout
}

func (r *run) handler(i int32) handlerFunc {
	if r.handlers != nil {
		return r.handlers[i]
	}
	return r.e.plan.tasks[i].handler
}

func (r *run) inputOf(i int32) any {
	p := r.e.plan
	t := &p.tasks[i]
	deps := p.deps(i)
	switch {
	case t.in == inputsType && len(deps) > 0:
		if t.trigger != AllSucceeded {
			r.mu.Lock()
			defer r.mu.Unlock()
			return r.rulesInputs(i)
		}
		return Inputs{p: p, task: i, outputs: r.outputs}
	case len(deps) == 0:
		return r.input
	default:
		return r.outputs[deps[0]]
	}
}

// runTask makes the attempts of task i, with its retry policy and timeout;
// begun says that take has recorded the start of the first. It returns the
// task's end state, and its output encoded for a Persistent store;
// StateRunning means the run ended under it. *tc is the handler context of
// the calling goroutine, made on first use.
func (r *run) runTask(ctx context.Context, tc **taskCtx, i int32, begun bool) (out any, data []byte, state State, err error, n int) {
	t := &r.e.plan.tasks[i]
	in := r.inputOf(i)
	h := r.handler(i)
	if t.validateIn && !begun {
		if werr := r.check(in, t.name, "task input"); werr != nil {
			return nil, nil, StateFailed, werr, 0
		}
	}
	retry, timeout := r.policy(i)
	if t.mapped { // its items have their own (see mapItems)
		retry, timeout = &noRetry, 0
	}
	// Attempts are numbered across the run; each pass allows the policy's.
	first := int(r.attempts[i]) + 1
	if begun {
		first-- // take has recorded the start of this one
	}
	limit := first + retry.attempts() - 1
	for n = first; ; n++ {
		if !(n == first && begun) && !r.beginAttempt(i, n) {
			return nil, nil, StateRunning, nil, n - 1
		}
		hctx := *tc
		if timeout > 0 || hctx == nil || t.sub || t.mapped {
			// A handler with a timeout may be left running past its
			// attempt, and so may a Map's items and a Sub's child run's
			// handlers past their task's end: their context is their own.
			hctx = &taskCtx{r: r}
			if timeout == 0 && !t.sub && !t.mapped {
				*tc = hctx
			}
		}
		hctx.Context, hctx.task, hctx.attempt = ctx, i, n
		if r.e.chain == nil {
			out, err = attempt(hctx, h, in, timeout)
		} else {
			out, err = attempt(hctx, r.viaMiddleware(i, n), in, timeout)
		}
		var kept any // what a failed Map keeps of its items' outputs
		if err != nil && t.mapped {
			kept, out = out, nil
		}
		if err == nil && t.validateOut {
			if werr := r.check(out, t.name, "task output"); werr != nil {
				return nil, nil, StateFailed, werr, n
			}
		}
		if err == nil && r.e.persistent {
			p, perr := r.e.payload(out)
			if perr != nil {
				return nil, nil, StateFailed, Permanent(&engineError{newError(ErrInvalidInput, "recording its output (%T): %w", out, perr)}), n
			}
			data = p.Data
		}
		if err == nil {
			return out, data, StateSucceeded, nil, n
		}
		if ctx.Err() != nil {
			return nil, nil, StateCancelled, err, n
		}
		if _, ok := skipReason(err); ok {
			return nil, nil, StateSkipped, err, n
		}
		if errors.Is(err, ErrCancelled) {
			// The handler says it was cancelled (a Sub's child run, say).
			return nil, nil, StateCancelled, err, n
		}
		state = StateFailed
		if errors.Is(err, ErrTimeout) {
			state = StateTimedOut
		}
		if n >= limit {
			if kept != nil && r.e.persistent {
				p, perr := r.e.payload(kept)
				if perr != nil {
					return nil, nil, state, err, n // Resume runs every item again
				}
				data = p.Data
			}
			return kept, data, state, err, n
		}
		var again bool
		if again, err = retry.retryable(err); !again {
			return nil, nil, state, err, n
		}
		wait := retry.wait(n - first + 1)
		r.mu.Lock()
		if !r.ended {
			now := time.Now().UTC()
			r.emitTask(i, Event{Type: EventTaskRetrying, Attempt: n, Error: err.Error(), Time: now, RetryAt: now.Add(wait)})
		}
		r.mu.Unlock()
		if !sleep(ctx, wait) {
			return nil, nil, StateCancelled, err, n
		}
	}
}

// beginAttempt records the start of attempt n of task i, unless the run or
// this pass has ended.
func (r *run) beginAttempt(i int32, n int) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.ended || r.ctx.Err() != nil {
		return false
	}
	r.state[i] = tsRunning
	r.attempts[i] = int32(n)
	r.emitTask(i, Event{Type: EventTaskStarted, Attempt: n})
	return true
}

// finish records the end of task i, queues the tasks it made ready, and
// ends the pass or the run when nothing is left to do. Then it takes the
// next task for the calling goroutine, as take does.
func (r *run) finish(i int32, out any, data []byte, state State, err error, attempts int) (next int32, ctx context.Context, begun bool, spawn int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.ended {
		return -1, nil, false, 0 // the run ended under this task: its result is dropped
	}
	p := r.e.plan
	t := &p.tasks[i]
	r.running--
	var now time.Time // of a success, and of the start of the task taken next
	switch state {
	case StateSucceeded:
		r.outputs[i] = out
		r.state[i] = tsSucceeded
		r.left--
		now = time.Now().UTC()
		pl := Payload{Value: out, Data: data}
		if r.e.persistent {
			pl.Value = nil
		}
		r.record(Event{Type: EventTaskSucceeded, Task: t.name, Attempt: attempts, Time: now}, int(r.e.pos[i]), pl)
		if r.e.persistent {
			// Its successors start once its success is committed.
			r.unsaved[i] = true
			r.after = append(r.after, i)
		} else if r.failure == nil {
			r.unblock(i)
		}
	case StateRunning: // stopped before an attempt: the pass is failing
		if attempts > 0 {
			r.state[i] = tsCancelled
			r.emitTask(i, Event{Type: EventTaskCancelled, Attempt: attempts})
		}
	case StateSkipped: // the handler returned Skip
		reason, _ := skipReason(err)
		r.skip(i, reason, attempts)
		if r.failure == nil {
			r.resolve(i)
		}
	default:
		r.state[i] = taskStateOf(state)
		msg := ""
		if err != nil {
			msg = err.Error()
		}
		ev := Event{Type: taskEventOf[state], Attempt: attempts, Error: msg}
		if out != nil { // a failed Map's kept outputs, for the next pass or Resume
			if r.partial == nil {
				r.partial = make([]any, len(p.tasks))
			}
			r.partial[i] = out
			pl := Payload{Value: out, Data: data}
			if r.e.persistent {
				pl.Value = nil
			}
			ev.Task = t.name
			r.record(ev, int(r.e.pos[i]), pl)
		} else {
			r.emitTask(i, ev)
		}
		// A task is cancelled by a failing pass, or by its handler.
		if r.failure == nil && (state != StateCancelled || r.ctx.Err() == nil) {
			werr := r.taskError(t.name, state, attempts, err)
			if p.rules {
				// Trigger rules handle it: it cancels nothing.
				if r.firstFail == nil {
					r.firstFail = werr
				}
				r.left--
				r.resolve(i)
			} else {
				r.failure = werr
				r.cancel(errTaskFailed)
			}
		}
	}
	if r.failure != nil {
		r.queue, r.head = r.queue[:0], 0
		if r.running > 0 {
			return -1, nil, false, 0
		}
		r.passFailed() // may begin another pass, whose tasks this goroutine takes
		now = time.Time{}
	} else if r.left == 0 {
		if r.firstFail != nil {
			r.failure = r.firstFail
			r.passFailed()
			now = time.Time{}
		} else {
			r.succeed()
		}
	}
	return r.takeAt(now)
}

// keptOf is what task i, a Map, kept of its items' outputs when it last
// failed in this run; nil if nothing.
func (r *run) keptOf(i int32) any {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.partial == nil {
		return nil
	}
	return r.partial[i]
}

// unblock counts task i, succeeded, as done for its successors, and queues
// those it made ready. The caller holds r.mu.
func (r *run) unblock(i int32) {
	if r.e.plan.rules || r.skips {
		r.resolve(i)
		return
	}
	for _, s := range r.e.plan.succs(i) {
		r.pending[s]--
		if r.pending[s] == 0 {
			r.queue = append(r.queue, s)
		}
	}
}

var taskEventOf = map[State]string{
	StateFailed: EventTaskFailed, StateTimedOut: EventTaskTimedOut, StateCancelled: EventTaskCancelled,
}

// passFailed ends a pass in which a task failed for good: it starts another
// pass if RetryOnFailure allows one, and otherwise fails the run. The
// caller holds r.mu.
func (r *run) passFailed() {
	if r.retriesLeft > 0 && r.base.Err() == nil {
		r.retriesLeft--
		r.cancel(nil)
		r.pass++
		r.emit(Event{Type: EventRunRetrying, Error: r.failure.Error()})
		r.beginPass(false)
		return
	}
	r.skipRest()
	r.end(StateFailed, r.failure)
}

// succeed ends the run in success, after checking its output. The caller
// holds r.mu.
func (r *run) succeed() {
	if r.e.validateOut {
		if werr := r.check(r.outputs[r.e.plan.output], "", "workflow output"); werr != nil {
			r.end(StateFailed, werr)
			return
		}
	}
	r.end(StateSucceeded, nil)
}

// interrupted ends the run when its base context ends. Tasks under way are
// marked cancelled and left to finish; their results are dropped.
func (r *run) interrupted() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.ended {
		return
	}
	cause := context.Cause(r.base)
	var state State
	var werr *WorkflowError
	switch {
	case errors.Is(cause, errRunTimeout):
		state = StateTimedOut
		werr = r.runError("timed out", newError(ErrTimeout, "the run exceeded its RunTimeout (%v)", r.timeout))
	case errors.Is(r.base.Err(), context.DeadlineExceeded):
		// The caller's deadline: a timeout, not a cancellation.
		state = StateTimedOut
		errs := []error{ErrTimeout, context.DeadlineExceeded}
		if cause != context.DeadlineExceeded {
			errs = append(errs, cause) // WithDeadlineCause's
		}
		werr = r.runError("timed out", &libError{msg: cause.Error(), errs: errs})
	default:
		state = StateCancelled
		werr = r.runError("cancelled", &libError{msg: cause.Error(), errs: []error{ErrCancelled, cause}})
	}
	for _, i := range r.e.plan.order {
		if r.state[i] == tsRunning {
			r.state[i] = tsCancelled
			r.emitTask(i, Event{Type: EventTaskCancelled, Attempt: int(r.attempts[i]), Error: werr.Message})
		}
	}
	r.skipRest()
	r.end(state, werr)
}

// skipRest marks every task that never started as skipped. The caller holds
// r.mu.
func (r *run) skipRest() {
	for _, i := range r.e.plan.order {
		if r.state[i] == tsPending {
			r.state[i] = tsSkipped
			r.emitTask(i, Event{Type: EventTaskSkipped})
		}
	}
}
