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
	"unicode/utf8"

	"github.com/go-playground/validator/v10"
)

// Workflow is a checked, runnable set of tasks: In is what a run takes, Out
// what it gives. Build one with New; it is safe for concurrent use, and many
// runs of it may go on at once. The zero Workflow is not usable: its
// methods return an error wrapping ErrInvalidWorkflow.
type Workflow[In, Out any] struct {
	e *engine
}

// Execution is a run started by Start.
type Execution[Out any] struct {
	r *run
}

// engine is the untyped core of a Workflow.
type engine struct {
	name        string
	plan        *plan
	cfg         config
	validateIn  bool
	validateOut bool        // Out has tags the output task's own check does not cover
	pos         []int32     // pos[i]: task i's place in RunStatus.Tasks (topological order)
	persistent  bool        // the store keeps runs past the process: encode, batch
	jsonCodec   bool        // payloads are JSON, shown in RunStatus
	observed    bool        // there are hooks or a logger to give events to
	chain       TaskHandler // the middleware around every attempt; nil: none

	mu     sync.Mutex
	active map[string]*run
}

// New checks the tasks and builds a workflow named name. It reports every
// problem of the definition at once, in an error wrapping
// ErrInvalidWorkflow and the sentinel of each problem (ErrDuplicateTask,
// ErrUnknownDependency, ErrCycle, ErrTypeMismatch, ErrInvalidSchedule), and
// never panics on a bad definition.
func New[In, Out any](name string, tasks Tasks, opts ...Option) (*Workflow[In, Out], error) {
	cfg := config{}
	for _, o := range opts {
		if o == nil {
			cfg.bad("nil Option")
			continue
		}
		o(&cfg)
	}
	errs := problems(cfg.errs)
	switch {
	case name == "":
		errs = append(errs, newError(ErrInvalidWorkflow, "the workflow has an empty name"))
	case !utf8.ValidString(name):
		errs = append(errs, newError(ErrInvalidWorkflow, "the workflow's name %q is not valid UTF-8", name))
	}
	nodes := make([]node, 0, len(tasks))
	for i, t := range tasks {
		if t == nil || (reflect.ValueOf(t).Kind() == reflect.Pointer && reflect.ValueOf(t).IsNil()) {
			errs = append(errs, newError(ErrInvalidWorkflow, "task %d is nil", i))
			continue
		}
		nodes = append(nodes, node{taskSpec: t.spec()})
	}
	// Copy the dependency names, so that later changes to the Tasks do
	// not reach the workflow: one array for all, not one per task.
	edges := 0
	for i := range nodes {
		edges += len(nodes[i].deps)
	}
	depNames := make([]string, 0, edges)
	for i := range nodes {
		start := len(depNames)
		depNames = append(depNames, nodes[i].deps...)
		nodes[i].deps = depNames[start:len(depNames):len(depNames)]
	}
	inType, outType := reflect.TypeFor[In](), reflect.TypeFor[Out]()
	p, perrs := buildPlan(nodes, inType, outType, cfg.output)
	errs = append(errs, perrs...)
	errs = append(errs, checkSchedule(&cfg, inType)...)
	if cfg.store == nil {
		cfg.store = NewMemoryStore()
	}
	if cfg.codec == nil {
		cfg.codec = JSONCodec
	}
	_, isJSON := cfg.codec.(jsonCodec)
	if p != nil && cfg.store.Persistent() && isJSON {
		errs = append(errs, unencodable(p)...)
	}
	if cfg.validate == nil {
		cfg.validate = defaultValidator()
	}
	if p != nil {
		errs = append(errs, checkTags(cfg.validate, p, inType, outType)...)
	}
	var mw TaskHandler
	if len(cfg.middleware) > 0 {
		var err error
		if mw, err = chain(cfg.middleware); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		return nil, &WorkflowError{
			Workflow: name,
			Message:  errs.Error(),
			Details:  map[string]any{"problems": errs.strings()},
			Err:      errs,
			what:     "invalid definition",
		}
	}
	e := &engine{
		name:       name,
		plan:       p,
		cfg:        cfg,
		validateIn: hasValidateTags(inType),
		persistent: cfg.store.Persistent(),
		jsonCodec:  isJSON,
		observed:   len(cfg.hooks) > 0 || cfg.logger != nil,
		chain:      mw,
		active:     map[string]*run{},
	}
	o := &p.tasks[p.output]
	e.validateOut = hasValidateTags(outType) && !(o.validateOut && o.out == outType)
	e.pos = make([]int32, len(p.tasks))
	for k, i := range p.order {
		e.pos[i] = int32(k)
	}
	return &Workflow[In, Out]{e: e}, nil
}

// MustNew is New that panics on an invalid definition, for workflows
// declared at package level.
func MustNew[In, Out any](name string, tasks Tasks, opts ...Option) *Workflow[In, Out] {
	w, err := New[In, Out](name, tasks, opts...)
	if err != nil {
		panic(err)
	}
	return w
}

var defaultValidator = sync.OnceValue(func() *validator.Validate {
	return validator.New(validator.WithRequiredStructEnabled())
})

func (w *Workflow[In, Out]) engine() (*engine, error) {
	if w == nil || w.e == nil {
		return nil, opError("", "", "", newError(ErrInvalidWorkflow, "the Workflow was not built by New"))
	}
	return w.e, nil
}

// nilContext is the error of method when given a nil context.
func (e *engine) nilContext(method string) error {
	return opError(e.name, "", method, errNilContext)
}

// Name returns the workflow's name ("" for a zero Workflow).
func (w *Workflow[In, Out]) Name() string {
	if w == nil || w.e == nil {
		return ""
	}
	return w.e.name
}

// Run runs the workflow on in and returns its output. It returns when the
// run has ended: every task succeeded, one failed for good, the RunTimeout
// passed, or ctx ended. A run that did not succeed returns a *WorkflowError.
func (w *Workflow[In, Out]) Run(ctx context.Context, in In, opts ...RunOption) (Out, error) {
	if e, err := w.engine(); err == nil && ctx == nil {
		var zero Out
		return zero, e.nilContext("Run")
	}
	x, err := w.Start(ctx, in, opts...)
	if err != nil {
		var zero Out
		return zero, err
	}
	<-x.r.done
	return x.result()
}

// Start starts a run of the workflow on in and returns without waiting for
// it. The run stops when ctx ends. Errors found before any task starts
// (bad options, invalid input) are returned here; the run is still
// recorded when it got a run ID.
func (w *Workflow[In, Out]) Start(ctx context.Context, in In, opts ...RunOption) (*Execution[Out], error) {
	e, err := w.engine()
	if err != nil {
		return nil, err
	}
	r, err := e.start(ctx, in, opts)
	if err != nil {
		return nil, err
	}
	return &Execution[Out]{r: r}, nil
}

// Resume continues a run that failed, timed out, was cancelled or was
// interrupted, under the same run ID, from what the store holds: tasks that
// succeeded keep their outputs, the others run again. With a Persistent
// store this works in any process that opens the same store: the run's
// input and its tasks' outputs are decoded into the types this definition
// declares. It wraps ErrNotFound for an unknown run, and ErrNotResumable
// for a run that succeeded, is still running, whose input was refused, or
// whose stored tasks or types no longer match the definition (the error
// names the task); then nothing runs.
func (w *Workflow[In, Out]) Resume(ctx context.Context, runID string, opts ...RunOption) (Out, error) {
	var zero Out
	e, err := w.engine()
	if err != nil {
		return zero, err
	}
	r, err := e.resume(ctx, runID, opts, false)
	if err != nil {
		return zero, err
	}
	<-r.done
	return (&Execution[Out]{r: r}).result()
}

// Recover resumes the runs of this workflow that a stopped process left
// unfinished: those the store holds as pending, running or interrupted
// whose owner's lease has expired (a live owner's runs are never taken).
// It claims each in one atomic step, records run_interrupted (tasks under
// way become interrupted, and their attempts go on counting from there),
// then resumes it as Resume does, on ctx, and returns the executions,
// already started. Called at once from several processes on one store,
// each run is resumed by exactly one of them. With nothing to recover it
// returns an empty slice. Runs that cannot be resumed are left as they are
// and reported in the error, which wraps ErrNotResumable; the others are
// returned all the same.
//
// The child runs of Sub tasks are left to their parents' recovery.
//
// Execution is at least once: a task under way when its process stopped
// runs again. Handlers with side effects should be idempotent, for instance
// by deriving a key from Info(ctx): RunID + "/" + Task.
func (w *Workflow[In, Out]) Recover(ctx context.Context) ([]*Execution[Out], error) {
	e, err := w.engine()
	if err != nil {
		return nil, err
	}
	if ctx == nil {
		return nil, e.nilContext("Recover")
	}
	ids, err := e.cfg.store.Orphans(ctx, e.name)
	if err != nil {
		return nil, opError(e.name, "", "Recover", err)
	}
	execs := []*Execution[Out]{}
	var errs []error
	for _, id := range ids {
		r, err := e.resume(ctx, id, nil, true)
		switch {
		case errors.Is(err, errClaimedElsewhere):
			// Another process took it first: it is that one's to run.
		case err != nil:
			errs = append(errs, err)
		default:
			execs = append(execs, &Execution[Out]{r: r})
		}
	}
	return execs, joinErrors(errs)
}

// Cancel stops a run under way and waits until it has ended in state
// "cancelled" (its hooks may not have seen the end yet) or ctx ends. It
// wraps ErrNotFound for an unknown run, ErrRunEnded for a run that has
// already ended or that ended otherwise while being cancelled (the error
// names its state), and ErrRunElsewhere for a run under way in another
// Workflow value or process.
func (w *Workflow[In, Out]) Cancel(ctx context.Context, runID string) error {
	e, err := w.engine()
	if err != nil {
		return err
	}
	if ctx == nil {
		return e.nilContext("Cancel")
	}
	r := e.activeRun(runID)
	if r == nil {
		rs, err := e.cfg.store.Get(ctx, e.name, runID)
		if err != nil || runID == "" {
			return e.lookupError("Cancel", runID, err)
		}
		// A Resume in this Workflow value may have started it meanwhile.
		if r = e.activeRun(runID); r == nil {
			if !rs.State.Ended() {
				return opError(e.name, runID, "Cancel", newError(ErrRunElsewhere, "the run is under way (state %s) in another Workflow value or process", rs.State))
			}
			return opError(e.name, runID, "Cancel", newError(ErrRunEnded, "the run has already ended (state %s)", rs.State))
		}
	}
	r.baseCancel(errCancelRequested)
	select {
	case <-r.endedChan():
	case <-ctx.Done():
		return ctx.Err()
	}
	if r.endState != StateCancelled {
		return opError(e.name, runID, "Cancel", newError(ErrRunEnded, "the run ended (state %s) before it could be cancelled", r.endState))
	}
	return nil
}

// activeRun is the run under way with ID id in this Workflow value, or nil.
func (e *engine) activeRun(id string) *run {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.active[id]
}

// lookupError is the error of op when the store's lookup of run runID
// failed with err, or runID is empty: a run the store does not hold is
// said in the same words whatever the store.
func (e *engine) lookupError(op, runID string, err error) error {
	switch {
	case runID == "":
		err = newError(ErrNotFound, "empty run ID")
	case errors.Is(err, ErrNotFound):
		err = reword(err, "no such run")
	}
	return opError(e.name, runID, op, err)
}

// Status returns the status of the workflow's most recent run. It wraps
// ErrNotFound when there is none.
func (w *Workflow[In, Out]) Status(ctx context.Context) (RunStatus, error) {
	if e, err := w.engine(); err == nil && ctx == nil {
		return RunStatus{}, e.nilContext("Status")
	}
	return w.Inspect(ctx, "")
}

// TaskStatus returns the status of one task in the most recent run. It
// wraps ErrNotFound when there is no run or no such task.
func (w *Workflow[In, Out]) TaskStatus(ctx context.Context, task string) (TaskStatus, error) {
	if e, err := w.engine(); err == nil && ctx == nil {
		return TaskStatus{}, e.nilContext("TaskStatus")
	}
	if e, err := w.engine(); err == nil {
		if ms, ok := e.cfg.store.(*MemoryStore); ok {
			return e.taskStatus(ms, task)
		}
	}
	rs, err := w.Status(ctx)
	if err != nil {
		return TaskStatus{}, err
	}
	if t, ok := rs.Task(task); ok {
		return t, nil
	}
	return TaskStatus{}, opError(rs.Workflow, "", "", newError(ErrNotFound, "no task %q", task))
}

// taskStatus is TaskStatus on a MemoryStore: it reads the one task, where
// the plan says it is, without copying the whole run.
func (e *engine) taskStatus(ms *MemoryStore, task string) (TaskStatus, error) {
	pos := -1
	if i, ok := e.plan.index[task]; ok {
		pos = int(e.pos[i])
	}
	t, ok, err := ms.task(e.name, "", task, pos)
	if err != nil {
		return TaskStatus{}, e.recentError(err)
	}
	if !ok {
		return TaskStatus{}, opError(e.name, "", "", newError(ErrNotFound, "no task %q", task))
	}
	return t, nil
}

// Inspect returns the status of one run ("" means the most recent). It
// wraps ErrNotFound for an unknown run.
func (w *Workflow[In, Out]) Inspect(ctx context.Context, runID string) (RunStatus, error) {
	e, err := w.engine()
	if err != nil {
		return RunStatus{}, err
	}
	if ctx == nil {
		return RunStatus{}, e.nilContext("Inspect")
	}
	rs, err := e.cfg.store.Get(ctx, e.name, runID)
	if err != nil {
		if runID == "" {
			return RunStatus{}, e.recentError(err)
		}
		return RunStatus{}, e.lookupError("", runID, err)
	}
	e.present(&rs)
	return rs, nil
}

// recentError is the error of a lookup of the most recent run that failed
// with err: "no runs yet" when the store holds none.
func (e *engine) recentError(err error) error {
	if errors.Is(err, ErrNotFound) {
		err = reword(err, "no runs yet")
	}
	return opError(e.name, "", "", err)
}

// present shows payloads in rs as the workflow's Codec allows: JSON only,
// with the run's output once it succeeded.
func (e *engine) present(rs *RunStatus) {
	if !e.persistent {
		return
	}
	if !e.jsonCodec {
		rs.Input, rs.Output = nil, nil
		for i := range rs.Tasks {
			rs.Tasks[i].Output = nil
		}
		return
	}
	if rs.State == StateSucceeded {
		if t, ok := rs.Task(e.plan.names[e.plan.output]); ok {
			rs.Output = t.Output
		}
	}
}

// History returns the workflow's runs, newest first, as many as the store
// keeps (see MaxRuns and MaxAge) or as opts narrow them.
func (w *Workflow[In, Out]) History(ctx context.Context, opts ...HistoryOption) ([]RunStatus, error) {
	e, err := w.engine()
	if err != nil {
		return nil, err
	}
	if ctx == nil {
		return nil, e.nilContext("History")
	}
	var q HistoryQuery
	for _, o := range opts {
		if o != nil {
			o(&q)
		}
	}
	switch {
	case q.Limit < 0:
		return nil, opError(e.name, "", "History", newError(ErrInvalidInput, "HistoryLimit(%d): the limit must be ≥ 0", q.Limit))
	case q.State != "" && !q.State.valid():
		return nil, opError(e.name, "", "History", newError(ErrInvalidInput, "HistoryState(%q) is not a state", q.State))
	}
	runs, err := e.cfg.store.List(ctx, e.name, q)
	if err != nil {
		if errors.Is(err, ErrNotFound) && q.Before != "" {
			err = reword(err, fmt.Sprintf("HistoryBefore(%q): no such run", q.Before))
		}
		return nil, opError(e.name, "", "History", err)
	}
	if !q.Summary {
		for i := range runs {
			e.present(&runs[i])
		}
	}
	return runs, nil
}

// Wait waits for the run runID of this workflow to end, and returns its
// output, or its error, as Run does: a run started by Start, Resume, the
// Scheduler or Scheduler.Trigger, whose ID is all the caller has. For a run
// that has already ended it returns at once: the output from memory, or
// decoded from a store that keeps payloads; the error rebuilt from the
// store (a *WorkflowError naming the failed task, wrapping ErrCancelled or
// ErrTimeout as the run ended). It wraps ErrNotFound for an unknown run,
// and ErrRunElsewhere for a run under way in another Workflow value or
// process. If ctx ends first, Wait returns ctx's error and the run goes on.
func (w *Workflow[In, Out]) Wait(ctx context.Context, runID string) (Out, error) {
	var zero Out
	e, err := w.engine()
	if err != nil {
		return zero, err
	}
	if ctx == nil {
		return zero, e.nilContext("Wait")
	}
	if r := e.activeRun(runID); r != nil {
		return (&Execution[Out]{r: r}).Wait(ctx)
	}
	rs, err := e.cfg.store.Get(ctx, e.name, runID)
	if err != nil || runID == "" {
		return zero, e.lookupError("Wait", runID, err)
	}
	if !rs.State.Ended() {
		if r := e.activeRun(runID); r != nil { // started meanwhile
			return (&Execution[Out]{r: r}).Wait(ctx)
		}
		return zero, opError(e.name, runID, "Wait", newError(ErrRunElsewhere, "the run is %s, in another Workflow value or process", rs.State))
	}
	if rs.State != StateSucceeded {
		return zero, e.storedError(&rs)
	}
	pl, err := e.cfg.store.Payloads(ctx, e.name, runID)
	if err != nil {
		return zero, opError(e.name, runID, "Wait", err)
	}
	p := pl.Output
	if p.Value == nil && p.Data == nil {
		var ok bool
		if p, ok = pl.Outputs[e.plan.names[e.plan.output]]; !ok {
			return zero, opError(e.name, runID, "Wait", newError(ErrNotFound, "the store keeps no output for the run"))
		}
	}
	v, err := e.value(p, e.plan.outType)
	if err != nil {
		return zero, opError(e.name, runID, "Wait", err)
	}
	out, _ := v.(Out) // nil stays the zero Out
	return out, nil
}

// storedError is the error of an ended run that did not succeed, rebuilt
// from what the store holds.
func (e *engine) storedError(rs *RunStatus) *WorkflowError {
	werr := &WorkflowError{Workflow: e.name, RunID: rs.RunID}
	var sentinel error
	switch rs.State {
	case StateCancelled:
		sentinel, werr.what = ErrCancelled, "cancelled"
	case StateTimedOut:
		sentinel, werr.what = ErrTimeout, "timed out"
	case StateInterrupted:
		sentinel, werr.what = ErrNotResumable, "interrupted"
	default:
		werr.what = "failed"
	}
	for _, t := range rs.Tasks {
		if t.State == StateFailed || t.State == StateTimedOut {
			werr.Task, werr.Attempts, werr.Message = t.Name, t.Attempts, t.Error
			werr.what = ""
			if t.State == StateTimedOut {
				sentinel, werr.what = ErrTimeout, "timed out"
			}
			werr.Details = map[string]any{"attempts": t.Attempts, "state": t.State}
			break
		}
	}
	if werr.Message == "" {
		var prefix strings.Builder
		writePrefix(&prefix, e.name, rs.RunID)
		werr.Message = strings.TrimPrefix(strings.TrimPrefix(rs.Error, prefix.String()), ": ")
	}
	cause := errors.New(werr.Message)
	if sentinel != nil {
		cause = &libError{msg: werr.Message, errs: []error{sentinel, cause}}
	}
	werr.Err = cause
	return werr
}

// ID returns the run's ID.
func (x *Execution[Out]) ID() string { return x.r.id }

// Wait waits for the run to end and returns its output, as Run does. If ctx
// ends first, Wait returns ctx's error and the run goes on.
func (x *Execution[Out]) Wait(ctx context.Context) (Out, error) {
	var zero Out
	if ctx == nil {
		return zero, opError(x.r.e.name, x.r.id, "Wait", errNilContext)
	}
	var done <-chan struct{} = x.r.done
	if x.r.hooking.Load() {
		done = x.r.endedChan() // the hook waits for the run's end, not for itself
	}
	select {
	case <-done:
		return x.result()
	case <-ctx.Done():
		return zero, ctx.Err()
	}
}

// result reads the ended run's outcome.
func (x *Execution[Out]) result() (Out, error) {
	var zero Out
	if x.r.err != nil {
		return zero, x.r.err
	}
	out, _ := x.r.outputs[x.r.e.plan.output].(Out) // nil stays the zero Out
	return out, nil
}

var (
	errNilContext      = newError(ErrInvalidInput, "nil context")
	errCancelRequested = errors.New("Cancel called")
	errRunTimeout      = errors.New("run timeout")
	errTaskFailed      = errors.New("a task failed")
	// errClaimedElsewhere: Recover lost the claim of a run to another
	// process (or Workflow value), whose run it now is.
	errClaimedElsewhere = errors.New("claimed by another owner")
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
	hooking       atomic.Bool   // a hook of this run is being called
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
		r.state[i] = tsSkipped
		r.left--
		r.skips = true
		r.emitTask(i, Event{Type: EventTaskSkipped, Attempt: attempts, Error: reason})
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

// stageWhat says what a value that failed validation at a stage was.
var stageWhat = map[string]string{
	"workflow input": "invalid input", "workflow output": "invalid output",
	"task input": "got invalid input", "task output": "gave invalid output",
}

// check validates v, given to or made by task ("" for the workflow) at
// stage; it returns nil when v is valid.
func (r *run) check(v any, task, stage string) *WorkflowError {
	err := validateStruct(r.e.cfg.validate, v)
	if err == nil {
		return nil
	}
	werr := &WorkflowError{Workflow: r.e.name, RunID: r.id, Task: task, what: stageWhat[stage],
		Details: map[string]any{"stage": stage}}
	var verrs validator.ValidationErrors
	switch {
	case errors.As(err, &verrs):
		fields := make(map[string]string, len(verrs))
		said := make([]string, len(verrs))
		for k, fe := range verrs {
			rule := fe.Tag()
			if fe.Param() != "" {
				rule += "=" + fe.Param()
			}
			fields[fe.Namespace()] = rule
			said[k] = fieldRule(fe, rule)
		}
		werr.Details["fields"] = fields
		werr.Message = strings.Join(said, "; ")
	case errors.Is(err, ErrInvalidWorkflow): // the validator panicked
		werr.Message, werr.Err = err.Error(), err
	default:
		werr.Message = strings.ReplaceAll(err.Error(), "\n", "; ")
	}
	if werr.Err == nil {
		werr.Err = &libError{msg: werr.Message, errs: []error{ErrInvalidInput, err}}
	}
	if task != "" {
		werr.Err = Permanent(werr.Err)
	}
	return werr
}

// fieldRule says that a field failed its rule, naming the field as the
// user wrote it: its Go name, nested fields after a dot ("Address.City").
func fieldRule(fe validator.FieldError, rule string) string {
	field := fe.StructNamespace()
	if _, rest, ok := strings.Cut(field, "."); ok {
		field = rest // without the struct's type
	}
	if rule == "required" {
		return field + " is required"
	}
	return field + " must be " + rule
}

// checkTags finds the validate tags that name no rule, in the workflow's
// and its tasks' input and output types, by validating a zero value of
// each: the validator reads every tag of a struct the first time it sees
// it.
func checkTags(val *validator.Validate, p *plan, types ...reflect.Type) problems {
	for i := range p.tasks {
		types = append(types, p.tasks[i].in, p.tasks[i].out)
	}
	var errs problems
	seen := map[reflect.Type]bool{}
	for _, t := range types {
		if seen[t] || t == inputsType || !hasValidateTags(t) {
			continue
		}
		seen[t] = true
		zt := t
		for zt.Kind() == reflect.Pointer {
			zt = zt.Elem()
		}
		if err := validateStruct(val, reflect.New(zt).Interface()); errors.Is(err, ErrInvalidWorkflow) {
			msg := strings.TrimPrefix(err.Error(), validatorPanicked)
			errs = append(errs, newError(ErrInvalidWorkflow, "the validate tags of %s: %s", t, msg))
		}
	}
	return errs
}

const validatorPanicked = "the validator panicked: "

// validateStruct validates v, turning a validator panic (a validate tag
// that names no rule, for one) into an error: it may run on a task's
// goroutine, where a panic would crash the process.
func validateStruct(val *validator.Validate, v any) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = newError(ErrInvalidWorkflow, validatorPanicked+"%v", p)
		}
	}()
	return val.Struct(v)
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
