package otelwf

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"

	"github.com/b3b01171/workflow"
)

// scope names the tracer and the meter.
const scope = "github.com/b3b01171/workflow/otelwf"

// Instrument returns the Option that traces and measures every run of a
// workflow: a middleware makes a span per task attempt, in the handler's
// context, and a hook follows each run's events for the run span and the
// metrics. Give it to New; one Option may serve several workflows, each
// keeping its own state.
//
// The providers default to the global ones, as otel.GetTracerProvider and
// otel.GetMeterProvider return them when New applies the Option; before
// otel.SetTracerProvider (or SetMeterProvider) those delegate to the
// provider set later. Instrumentation never changes a run's outcome: a
// provider or exporter that fails, or panics, costs spans or points, which
// are reported to otel.Handle, never an attempt.
func Instrument(opts ...Option) workflow.Option {
	var c config
	for _, o := range opts {
		if o != nil {
			o(&c)
		}
	}
	return perNew(func() []workflow.Option {
		in := newInstrument(c)
		return []workflow.Option{workflow.WithMiddleware(in.middleware), workflow.WithHook(in.hook)}
	})
}

// perNew is an Option that, each time New applies it, builds the options
// of that workflow with build and applies them: so each workflow gets an
// instrument of its own. workflow.Option is a func of an unexported type;
// inference names that type here, where the code cannot.
func perNew[F ~func(C), C any](build func() []F) F {
	return func(c C) {
		for _, o := range build() {
			o(c)
		}
	}
}

// instrument is the state of one instrumented workflow. On the hot paths a
// lock shared by a run's attempts is held for a map access only: runs are
// found in a sync.Map, a run's attempts in a map under attemptsMu, each
// attempt's state has its own lock, and a run's mu is taken by its hook,
// and by its first attempt only. Locks are taken in this order: a
// run's mu, an attempt's mu, a run's attemptsMu, instrument.mu.
type instrument struct {
	tracer trace.Tracer
	m      meters

	name  atomic.Pointer[string] // the workflow's, once an attempt has told it
	runs  sync.Map               // run ID → *runState
	tasks sync.Map               // task → *taskInfo

	mu sync.Mutex // for creating a runState, and ended
	// ended keeps the run spans of the latest runs that did not succeed,
	// for the link of a Resume of one of them.
	ended recentSpans
}

func newInstrument(c config) *instrument {
	tp, mp := c.tp, c.mp
	if tp == nil {
		tp = otel.GetTracerProvider()
	}
	if mp == nil {
		mp = otel.GetMeterProvider()
	}
	in := &instrument{ended: recentSpans{max: maxRecent}}
	guard(func() { in.tracer = tp.Tracer(scope) })
	if in.tracer == nil {
		in.tracer = noopTracer
	}
	in.m = newMeters(mp)
	return in
}

// workflowName is the workflow's name, "" until an attempt has told it.
func (in *instrument) workflowName() string {
	if p := in.name.Load(); p != nil {
		return *p
	}
	return ""
}

// run returns the state of run id, made if need be; but when the caller
// is an attempt (ctx not nil) whose context has ended, it returns nil
// rather than make one: the engine ends a run's contexts before its hooks
// may see its end, so the run may be over, its state dropped.
func (in *instrument) run(id string, ctx context.Context) *runState {
	if v, ok := in.runs.Load(id); ok {
		return v.(*runState)
	}
	in.mu.Lock()
	defer in.mu.Unlock()
	if v, ok := in.runs.Load(id); ok {
		return v.(*runState)
	}
	if ctx != nil && ctx.Err() != nil {
		return nil
	}
	rs := &runState{id: id}
	in.runs.Store(id, rs)
	return rs
}

// taskInfo is what every attempt of a task shares: its span's name and its
// metrics' attribute sets, made once for the workflow's name as known.
type taskInfo struct {
	name     string // the workflow's, "" while unknown
	spanName string
	ended    [len(attemptStates)]metric.MeasurementOption
}

// The states an attempt ends in, in the order of taskInfo.ended.
var attemptStates = [...]workflow.State{workflow.StateSucceeded, workflow.StateFailed, workflow.StateTimedOut, workflow.StateCancelled}

// task returns what the attempts of task share, for the workflow's name as
// known now.
func (in *instrument) task(task string) *taskInfo {
	name := in.workflowName()
	if v, ok := in.tasks.Load(task); ok && v.(*taskInfo).name == name {
		return v.(*taskInfo)
	}
	t := &taskInfo{name: name, spanName: "workflow.task " + task}
	for k, state := range attemptStates {
		t.ended[k] = in.m.attrs(setKey{name: name, task: task, taskSet: true, state: state})
	}
	in.tasks.Store(task, t)
	return t
}

// attrs is the attribute set of an attempt of the task ended in state.
func (t *taskInfo) attrs(state workflow.State) metric.MeasurementOption {
	for k, s := range attemptStates {
		if s == state {
			return t.ended[k]
		}
	}
	return t.ended[0]
}

// runState is what the instrument knows of one run under way, from the
// run_started (or run_resumed) event or the first attempt, whichever comes
// first, to the run's end, when it is dropped.
type runState struct {
	id    string
	span  atomic.Pointer[spanRef] // the run span; nil until made
	ended atomic.Bool             // the hook saw the run's end

	attemptsMu sync.Mutex
	attempts   map[attemptKey]*attempt

	mu   sync.Mutex // what follows
	name string     // the workflow's; "" while unknown
	// start is the time of run_started or run_resumed; zero until the hook
	// has seen it.
	start   time.Time
	resumed bool
	// uncounted: the run's start is not yet in the metrics, for want of
	// the workflow's name (see hook).
	uncounted bool
	counted   bool
	waits     map[string]trace.Span // retry waits under way, by task
}

type spanRef struct{ trace.Span }

// attempt returns the state of the attempt of key, made if need be.
func (rs *runState) attempt(key attemptKey) *attempt {
	rs.attemptsMu.Lock()
	defer rs.attemptsMu.Unlock()
	a := rs.attempts[key]
	if a == nil {
		if rs.attempts == nil {
			rs.attempts = map[attemptKey]*attempt{}
		}
		a = &attempt{}
		rs.attempts[key] = a
	}
	return a
}

// lookup returns the state of the attempt of key, if any.
func (rs *runState) lookup(key attemptKey) *attempt {
	rs.attemptsMu.Lock()
	defer rs.attemptsMu.Unlock()
	return rs.attempts[key]
}

// forget forgets the attempt of key.
func (rs *runState) forget(key attemptKey) {
	rs.attemptsMu.Lock()
	defer rs.attemptsMu.Unlock()
	delete(rs.attempts, key)
}

// each returns the attempts known.
func (rs *runState) each() []*attempt {
	rs.attemptsMu.Lock()
	defer rs.attemptsMu.Unlock()
	out := make([]*attempt, 0, len(rs.attempts))
	for _, a := range rs.attempts {
		out = append(out, a)
	}
	return out
}

// An attempt is known by its task and number, which the engine never gives
// twice in a run, across passes and resumes.
type attemptKey struct {
	task string
	n    int
}

// attempt is one attempt of a task, as the middleware and the hook see it;
// whichever is second forgets it.
type attempt struct {
	mu      sync.Mutex
	span    trace.Span // nil until the middleware began it
	start   time.Time  // of task_started; zero until the hook saw it
	claimed bool       // the middleware began it
	// late: the engine had given the attempt up when the middleware began
	// it, so the middleware ends the span.
	late     bool
	returned bool // the middleware's next returned, panicked or exited
	deadline bool // it returned an error past the attempt's deadline
	recorded bool // the middleware recorded its error on the span
	ended    bool // the hook saw its end, or its run's
	state    workflow.State
	err      string
}

// maxRecent bounds the run spans kept for the links of resumed runs.
const maxRecent = 1024

// recentSpans maps the IDs of the latest runs that ended without success
// to their span, the oldest dropped past max.
type recentSpans struct {
	max   int
	seq   uint64
	byID  map[string]recentSpan
	order []recentKey // a ring of len max once full
	next  int
}

type recentSpan struct {
	sc  trace.SpanContext
	seq uint64
}

type recentKey struct {
	id  string
	seq uint64
}

func (r *recentSpans) add(id string, sc trace.SpanContext) {
	if !sc.IsValid() {
		return
	}
	if r.byID == nil {
		r.byID = map[string]recentSpan{}
	}
	r.seq++
	r.byID[id] = recentSpan{sc, r.seq}
	k := recentKey{id, r.seq}
	if len(r.order) < r.max {
		r.order = append(r.order, k)
		return
	}
	old := r.order[r.next]
	if s, ok := r.byID[old.id]; ok && s.seq == old.seq {
		delete(r.byID, old.id)
	}
	r.order[r.next] = k
	r.next = (r.next + 1) % r.max
}

// take returns and forgets the span kept for run id.
func (r *recentSpans) take(id string) (trace.SpanContext, bool) {
	s, ok := r.byID[id]
	if ok {
		delete(r.byID, id)
	}
	return s.sc, ok
}

// guard calls f, and reports a panic in it to otel.Handle: instrumentation
// must cost an attempt nothing, whatever a provider or exporter does.
func guard(f func()) {
	defer func() {
		if v := recover(); v != nil {
			otel.Handle(fmt.Errorf("otelwf: recovered from a panic in OpenTelemetry: %v", v))
		}
	}()
	f()
}
