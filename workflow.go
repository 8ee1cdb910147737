package workflow

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"
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
	if g := x.r.hooker.Load(); g != 0 && g == goid() {
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
