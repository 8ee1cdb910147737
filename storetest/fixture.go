package storetest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/b3b01171/workflow"
)

// flow is the workflow of the runs a rule creates, unless it needs others.
const flow = "orders"

// tick is how far apart the fixture's event times are: not a round number,
// so that a store that rounds times to the microsecond or millisecond is
// caught.
const tick = time.Millisecond + 7*time.Nanosecond

// fixture is one subtest's store, and the means to drive it as the engine
// does.
type fixture struct {
	t          *testing.T
	s          workflow.Store
	ctx        context.Context
	persistent bool

	start time.Time
	ticks atomic.Int64 // event times handed out; several goroutines take them
}

func newFixture(t *testing.T, s workflow.Store) *fixture {
	t.Helper()
	if s == nil {
		t.Fatal("storetest: open returned a nil Store")
	}
	return &fixture{t: t, s: s, ctx: t.Context(), persistent: s.Persistent(), start: time.Now()}
}

// now is the time of the next event: later than every time handed out
// before, with a monotonic reading, as time.Now gives the engine.
func (f *fixture) now() time.Time {
	return f.start.Add(time.Duration(f.ticks.Add(1)) * tick)
}

// payload is v as the engine hands it to the store: the value itself, or
// its JSON encoding (JSONCodec) for a Persistent store.
func (f *fixture) payload(v any) workflow.Payload {
	if !f.persistent {
		return workflow.Payload{Value: v}
	}
	data, err := json.Marshal(v)
	if err != nil {
		panic(fmt.Sprintf("storetest: encoding %T: %v", v, err))
	}
	return workflow.Payload{Data: data}
}

// newRun is a run as the engine creates it: pending, every task pending,
// no events.
func newRun(workflowName, id string, tasks ...string) workflow.RunStatus {
	rs := workflow.RunStatus{RunID: id, Workflow: workflowName, State: workflow.StatePending, Trigger: "manual",
		Tasks: make([]workflow.TaskStatus, len(tasks))}
	for i, name := range tasks {
		rs.Tasks[i] = workflow.TaskStatus{Name: name, State: workflow.StatePending}
	}
	return rs
}

// clone copies rs so that the copy shares no memory with it.
func clone(rs workflow.RunStatus) workflow.RunStatus {
	rs.Input, rs.Output = bytes.Clone(rs.Input), bytes.Clone(rs.Output)
	rs.Tasks = slices.Clone(rs.Tasks)
	for i := range rs.Tasks {
		rs.Tasks[i].Output = bytes.Clone(rs.Tasks[i].Output)
	}
	rs.Events = slices.Clone(rs.Events)
	return rs
}

// summary is rs as a listing with HistoryQuery.Summary gives it: without
// events or payloads.
func summary(rs workflow.RunStatus) workflow.RunStatus {
	rs = clone(rs)
	rs.Events, rs.Input, rs.Output = nil, nil, nil
	for i := range rs.Tasks {
		rs.Tasks[i].Output = nil
	}
	return rs
}

// run is a run the suite recorded, and what the store must say of it.
type run struct {
	f   *fixture
	rec workflow.Recorder
	// want is the run as folding the entries appended so far with
	// RunStatus.Apply gives it.
	want workflow.RunStatus
	// pass is the pass of the entries built next, as the engine numbers
	// them (Event.Pass).
	pass int
	// input and outputs are the payloads appended: the run's input, and
	// the output of each task's last success.
	input    workflow.Payload
	hasInput bool
	outputs  map[string]workflow.Payload
	// partial holds the payload of the end event of each task that did
	// not succeed, when it had one, until the task passes again.
	partial map[string]workflow.Payload
}

// create records a new run of flow with the given tasks.
func (f *fixture) create(id string, tasks ...string) *run {
	f.t.Helper()
	return f.createRun(newRun(flow, id, tasks...))
}

// createRun records rs, a new run.
func (f *fixture) createRun(rs workflow.RunStatus) *run {
	f.t.Helper()
	r, err := f.tryCreate(rs)
	if err != nil {
		f.t.Fatal(err)
	}
	return r
}

// tryCreate is createRun for a goroutine other than the test's.
func (f *fixture) tryCreate(rs workflow.RunStatus) (*run, error) {
	rec, err := f.s.Create(f.ctx, clone(rs))
	switch {
	case err != nil:
		return nil, fmt.Errorf("Create(run %q of workflow %q): %v", rs.RunID, rs.Workflow, err)
	case rec == nil:
		return nil, fmt.Errorf("Create(run %q of workflow %q) returned a nil Recorder", rs.RunID, rs.Workflow)
	}
	return &run{f: f, rec: rec, want: clone(rs), outputs: map[string]workflow.Payload{}, partial: map[string]workflow.Payload{}}, nil
}

// runIn records a run of workflowName with one task, "fetch", and leaves
// it in state s, as the engine would: pending, running, interrupted, or
// ended with its task in the same state (succeeded with an output). The
// batch that ends or interrupts it is the last.
func (f *fixture) runIn(workflowName, id string, s workflow.State) *run {
	f.t.Helper()
	r := f.createRun(newRun(workflowName, id, "fetch"))
	if s == workflow.StatePending {
		return r
	}
	r.append(r.started(order{ID: len(id), Items: []string{id}}), r.task("fetch", workflow.EventTaskStarted, 1, ""))
	switch s {
	case workflow.StateRunning:
	case workflow.StateInterrupted:
		r.append(r.interrupted())
	case workflow.StateSucceeded:
		r.append(r.succeeded("fetch", 1, receipt{Order: len(id), Total: 9.5}), r.event(workflow.EventRunSucceeded, ""))
	case workflow.StateFailed:
		r.append(r.task("fetch", workflow.EventTaskFailed, 1, "connection refused"),
			r.event(workflow.EventRunFailed, `task "fetch": connection refused`))
	case workflow.StateTimedOut:
		r.append(r.task("fetch", workflow.EventTaskTimedOut, 1, "context deadline exceeded"),
			r.event(workflow.EventRunTimedOut, "context deadline exceeded"))
	case workflow.StateCancelled:
		r.append(r.task("fetch", workflow.EventTaskCancelled, 1, "context canceled"),
			r.event(workflow.EventRunCancelled, "context canceled"))
	default:
		panic(fmt.Sprintf("storetest: runIn(%q)", s))
	}
	if r.want.State != s {
		panic(fmt.Sprintf("storetest: runIn(%q) left the run %s", s, r.want.State))
	}
	return r
}

// The payloads of the suite's runs.
type (
	order struct {
		ID    int      `json:"id"`
		Items []string `json:"items"`
		Note  string   `json:"note,omitempty"`
	}
	receipt struct {
		Order int     `json:"order"`
		Total float64 `json:"total"`
	}
)

// Entries as the engine builds them: Index is the task's position in the
// run's Tasks, -1 for an event of the run.

// event is an event of the run with no payload.
func (r *run) event(typ, errText string) workflow.Entry {
	switch typ {
	case workflow.EventRunStarted:
		r.pass = 1
	case workflow.EventRunResumed, workflow.EventRunRetrying:
		r.pass++
	}
	return workflow.Entry{Event: workflow.Event{Time: r.f.now(), RunID: r.want.RunID, Type: typ, Error: errText, Pass: r.pass}, Index: -1}
}

// started is run_started with the run's input.
func (r *run) started(input any) workflow.Entry {
	e := r.event(workflow.EventRunStarted, "")
	e.Payload = r.f.payload(input)
	return e
}

// interrupted is run_interrupted, as Recover records it.
func (r *run) interrupted() workflow.Entry {
	return r.event(workflow.EventRunInterrupted, "its process stopped without ending it")
}

// task is an event of the named task with no payload.
func (r *run) task(name, typ string, attempt int, errText string) workflow.Entry {
	e := workflow.Entry{
		Event: workflow.Event{Time: r.f.now(), RunID: r.want.RunID, Task: name, Type: typ, Attempt: attempt, Error: errText, Pass: r.pass},
		Index: r.pos(name),
	}
	if typ == workflow.EventTaskRetrying {
		e.RetryAt = e.Time.Add(1500 * time.Millisecond)
	}
	return e
}

// succeeded is task_succeeded with the task's output.
func (r *run) succeeded(name string, attempt int, output any) workflow.Entry {
	e := r.task(name, workflow.EventTaskSucceeded, attempt, "")
	e.Payload = r.f.payload(output)
	return e
}

// endedKeeping is the end of a task that did not succeed (typ: failed,
// timed out, cancelled or skipped) with what it keeps for Resume, as a
// failed Map task keeps its succeeded items' outputs.
func (r *run) endedKeeping(name, typ string, attempt int, errText string, kept any) workflow.Entry {
	e := r.task(name, typ, attempt, errText)
	e.Payload = r.f.payload(kept)
	return e
}

// endedWithout reports whether typ is the end of a task that did not
// succeed.
func endedWithout(typ string) bool {
	switch typ {
	case workflow.EventTaskFailed, workflow.EventTaskTimedOut, workflow.EventTaskCancelled, workflow.EventTaskSkipped:
		return true
	}
	return false
}

// pos is the position of the named task in the run's Tasks.
func (r *run) pos(name string) int {
	for i, t := range r.want.Tasks {
		if t.Name == name {
			return i
		}
	}
	panic(fmt.Sprintf("storetest: run %q has no task %q", r.want.RunID, name))
}

// append appends batch, and fails the test unless the store takes it.
func (r *run) append(batch ...workflow.Entry) {
	r.f.t.Helper()
	if err := r.tryAppend(batch...); err != nil {
		r.f.t.Fatal(err)
	}
}

// tryAppend is append for a goroutine other than the test's.
func (r *run) tryAppend(batch ...workflow.Entry) error {
	return r.appendCtx(r.f.ctx, batch)
}

func (r *run) appendCtx(ctx context.Context, batch []workflow.Entry) error {
	if err := r.rec.Append(ctx, batch); err != nil {
		return fmt.Errorf("Append(%s) to run %q: %v", types(batch), r.want.RunID, err)
	}
	r.fold(batch)
	return nil
}

// fold applies batch to want, as the store must have; the payloads are
// copied, so that want shares no memory with what the store holds.
func (r *run) fold(batch []workflow.Entry) {
	for _, e := range batch {
		e.Payload.Data = bytes.Clone(e.Payload.Data)
		if err := r.want.Apply(e); err != nil {
			panic(fmt.Sprintf("storetest: a bad entry: %v", err))
		}
		switch {
		case e.Task == "" && e.Type == workflow.EventRunStarted:
			r.input, r.hasInput = e.Payload, e.Payload.Value != nil || e.Payload.Data != nil
		case e.Task != "" && e.Type == workflow.EventTaskSucceeded:
			r.outputs[e.Task] = e.Payload
			delete(r.partial, e.Task)
		case e.Task != "" && endedWithout(e.Type) && (e.Payload.Value != nil || e.Payload.Data != nil):
			r.partial[e.Task] = e.Payload
		case e.Task != "" && endedWithout(e.Type):
			delete(r.partial, e.Task)
		case e.Type == workflow.EventRunResumed || e.Type == workflow.EventRunRetrying:
			// Every task that did not succeed passes again.
			clear(r.partial)
		}
	}
}

// types lists the types of the entries of a batch, for messages.
func types(batch []workflow.Entry) string {
	s := make([]string, len(batch))
	for i, e := range batch {
		s[i] = e.Type
		if e.Task != "" {
			s[i] = e.Task + " " + e.Type
		}
	}
	return strings.Join(s, ", ")
}

// check fails the test unless Get returns the run as folding its entries
// gives it.
func (r *run) check() {
	r.f.t.Helper()
	got := r.f.get(r.want.Workflow, r.want.RunID)
	if d := diff(r.want, got); d != "" {
		r.f.t.Fatalf("Get(%q, %q): %s", r.want.Workflow, r.want.RunID, d)
	}
}

// get returns the run, and fails the test if Get fails.
func (f *fixture) get(workflowName, runID string) workflow.RunStatus {
	f.t.Helper()
	rs, err := f.s.Get(f.ctx, workflowName, runID)
	if err != nil {
		f.t.Fatalf("Get(%q, %q): %v", workflowName, runID, err)
	}
	return rs
}

// checkPayloads fails the test unless Payloads returns the run's input,
// the output of each of its succeeded tasks, and nothing else; and in
// Partial, for each task that ended without succeeding, the payload of
// its end event if it had one, and nothing for a task that succeeded. Of
// a task pending or running again after a run_resumed or run_retrying,
// Partial may still hold what its end in an earlier pass kept, or not.
func (r *run) checkPayloads() {
	f := r.f
	f.t.Helper()
	wf, id := r.want.Workflow, r.want.RunID
	got, err := f.s.Payloads(f.ctx, wf, id)
	if err != nil {
		f.t.Fatalf("Payloads(%q, %q): %v", wf, id, err)
	}
	if got.HasInput != r.hasInput {
		f.t.Fatalf("Payloads(%q, %q): HasInput is %t, want %t", wf, id, got.HasInput, r.hasInput)
	}
	if r.hasInput && !f.samePayload(got.Input, r.input) {
		f.t.Fatalf("Payloads(%q, %q): Input is %s, want %s", wf, id, f.showPayload(got.Input), f.showPayload(r.input))
	}
	var want []string
	for _, t := range r.want.Tasks {
		if t.State == workflow.StateSucceeded {
			want = append(want, t.Name)
			p, ok := got.Outputs[t.Name]
			if !ok {
				f.t.Fatalf("Payloads(%q, %q): no output of task %q, which succeeded", wf, id, t.Name)
			}
			if !f.samePayload(p, r.outputs[t.Name]) {
				f.t.Fatalf("Payloads(%q, %q): the output of task %q is %s, want %s", wf, id, t.Name,
					f.showPayload(p), f.showPayload(r.outputs[t.Name]))
			}
		}
	}
	if len(got.Outputs) != len(want) {
		names := make([]string, 0, len(got.Outputs))
		for name := range got.Outputs {
			names = append(names, name)
		}
		slices.Sort(names)
		f.t.Fatalf("Payloads(%q, %q): outputs of tasks %q, want only those of the succeeded tasks %q", wf, id, names, want)
	}
	for name := range got.Partial {
		if !slices.ContainsFunc(r.want.Tasks, func(t workflow.TaskStatus) bool { return t.Name == name }) {
			f.t.Fatalf("Payloads(%q, %q): Partial holds task %q, which the run does not have", wf, id, name)
		}
	}
	for _, t := range r.want.Tasks {
		p, ok := got.Partial[t.Name]
		w, kept := r.partial[t.Name]
		switch {
		case t.State == workflow.StateSucceeded && ok:
			f.t.Fatalf("Payloads(%q, %q): Partial holds task %q, which succeeded: %s", wf, id, t.Name, f.showPayload(p))
		case !t.State.Ended() || t.State == workflow.StateSucceeded:
		case kept && !ok:
			f.t.Fatalf("Payloads(%q, %q): Partial holds nothing of task %q, %s with a payload %s",
				wf, id, t.Name, t.State, f.showPayload(w))
		case kept && !f.samePayload(p, w):
			f.t.Fatalf("Payloads(%q, %q): Partial holds %s of task %q, %s with a payload %s",
				wf, id, f.showPayload(p), t.Name, t.State, f.showPayload(w))
		case !kept && ok:
			f.t.Fatalf("Payloads(%q, %q): Partial holds %s of task %q, %s without a payload",
				wf, id, f.showPayload(p), t.Name, t.State)
		}
	}
}

// samePayload reports whether the store gave back the payload it was
// given: the same bytes for a Persistent store, an equal value otherwise.
func (f *fixture) samePayload(got, want workflow.Payload) bool {
	if f.persistent {
		return got.Data != nil && bytes.Equal(got.Data, want.Data)
	}
	return reflect.DeepEqual(got.Value, want.Value)
}

func (f *fixture) showPayload(p workflow.Payload) string {
	if f.persistent {
		return showBytes(p.Data)
	}
	return fmt.Sprintf("%#v", p.Value)
}

// reopen takes the run over with Reopen, as Resume and Recover do, and
// records through the new Recorder from then on.
func (r *run) reopen() {
	r.f.t.Helper()
	rec, err := r.f.s.Reopen(r.f.ctx, r.want.Workflow, r.want.RunID)
	switch {
	case err != nil:
		r.f.t.Fatalf("Reopen(%q, %q): %v", r.want.Workflow, r.want.RunID, err)
	case rec == nil:
		r.f.t.Fatalf("Reopen(%q, %q) returned a nil Recorder", r.want.Workflow, r.want.RunID)
	}
	r.rec = rec
}

// refused fails the test unless Reopen refuses the run, which has a live
// owner, with ErrNotResumable.
func (r *run) refused() {
	r.f.t.Helper()
	_, err := r.f.s.Reopen(r.f.ctx, r.want.Workflow, r.want.RunID)
	switch {
	case err == nil:
		r.f.t.Fatalf("Reopen(%q, %q) of a run %s with a live owner succeeded, want an error wrapping ErrNotResumable",
			r.want.Workflow, r.want.RunID, r.want.State)
	case !errors.Is(err, workflow.ErrNotResumable):
		r.f.t.Fatalf("Reopen(%q, %q) of a run %s with a live owner: %v, want an error wrapping ErrNotResumable",
			r.want.Workflow, r.want.RunID, r.want.State, err)
	}
}

// orphans fails the test unless Orphans returns the runs want, in order.
func (f *fixture) orphans(workflowName string, want ...*run) {
	f.t.Helper()
	got, err := f.s.Orphans(f.ctx, workflowName)
	if err != nil {
		f.t.Fatalf("Orphans(%q): %v", workflowName, err)
	}
	if ids := runIDs(want); !slices.Equal(got, ids) {
		f.t.Fatalf("Orphans(%q) = %q, want %q", workflowName, got, ids)
	}
}

// list fails the test unless List returns the runs want, in order, each as
// folding its entries gives it (without events or payloads for a
// Summary).
func (f *fixture) list(workflowName string, q workflow.HistoryQuery, want ...*run) {
	f.t.Helper()
	got, err := f.s.List(f.ctx, workflowName, q)
	if err != nil {
		f.t.Fatalf("List(%q, %s): %v", workflowName, showQuery(q), err)
	}
	ids := make([]string, len(got))
	for i, rs := range got {
		ids[i] = rs.RunID
	}
	if wantIDs := runIDs(want); !slices.Equal(ids, wantIDs) {
		f.t.Fatalf("List(%q, %s) = runs %q, want %q", workflowName, showQuery(q), ids, wantIDs)
	}
	for i, r := range want {
		w := r.want
		if q.Summary {
			w = summary(w)
		}
		if d := diff(w, got[i]); d != "" {
			f.t.Fatalf("List(%q, %s): run %q: %s", workflowName, showQuery(q), r.want.RunID, d)
		}
	}
}

// notFound fails the test unless err wraps ErrNotFound.
func (f *fixture) notFound(call string, err error) {
	f.t.Helper()
	if !errors.Is(err, workflow.ErrNotFound) {
		f.t.Fatalf("%s: %v, want an error wrapping ErrNotFound", call, err)
	}
}

func runIDs(runs []*run) []string {
	ids := make([]string, len(runs))
	for i, r := range runs {
		ids[i] = r.want.RunID
	}
	return ids
}

// newestFirst is runs in the reverse order.
func newestFirst(runs ...*run) []*run {
	runs = slices.Clone(runs)
	slices.Reverse(runs)
	return runs
}

var timeType = reflect.TypeFor[time.Time]()

// diff describes the first difference between got and want in one line,
// "" when there is none. Times compare as instants, an empty list as nil;
// everything else, payload bytes included, must be the same.
func diff(want, got workflow.RunStatus) string {
	return diffValue("", reflect.ValueOf(want), reflect.ValueOf(got))
}

func diffValue(path string, want, got reflect.Value) string {
	switch t := want.Type(); {
	case t == timeType:
		w, g := want.Interface().(time.Time), got.Interface().(time.Time)
		if !w.Equal(g) {
			return fmt.Sprintf("%s is %s, want %s", path, showTime(g), showTime(w))
		}
	case t.Kind() == reflect.Slice && t.Elem().Kind() == reflect.Uint8:
		w, g := want.Bytes(), got.Bytes()
		if (w == nil) != (g == nil) || !bytes.Equal(w, g) {
			return fmt.Sprintf("%s is %s, want %s", path, showBytes(g), showBytes(w))
		}
	case t.Kind() == reflect.Slice:
		n := min(want.Len(), got.Len())
		for i := range n {
			if d := diffValue(fmt.Sprintf("%s[%d]", path, i), want.Index(i), got.Index(i)); d != "" {
				return d
			}
		}
		switch {
		case want.Len() > n:
			return fmt.Sprintf("%s has %d elements, want %d: %s[%d] is missing, %s", path, got.Len(), want.Len(), path, n, show(want.Index(n)))
		case got.Len() > n:
			return fmt.Sprintf("%s has %d elements, want %d: %s[%d] is extra, %s", path, got.Len(), want.Len(), path, n, show(got.Index(n)))
		}
	case t.Kind() == reflect.Struct:
		for i := range t.NumField() {
			if !t.Field(i).IsExported() {
				continue
			}
			p := t.Field(i).Name
			if path != "" {
				p = path + "." + p
			}
			if d := diffValue(p, want.Field(i), got.Field(i)); d != "" {
				return d
			}
		}
	default:
		if !reflect.DeepEqual(want.Interface(), got.Interface()) {
			return fmt.Sprintf("%s is %s, want %s", path, show(got), show(want))
		}
	}
	return ""
}

// show formats v on one line.
func show(v reflect.Value) string {
	switch x := v.Interface().(type) {
	case workflow.Event:
		s := fmt.Sprintf("event %s at %s", x.Type, showTime(x.Time))
		if x.Task != "" {
			s = fmt.Sprintf("event %s of task %q (attempt %d) at %s", x.Type, x.Task, x.Attempt, showTime(x.Time))
		}
		if x.Error != "" {
			s += fmt.Sprintf(" with error %q", x.Error)
		}
		return s
	case workflow.TaskStatus:
		return fmt.Sprintf("task %q %s", x.Name, x.State)
	case string, workflow.State:
		return fmt.Sprintf("%q", x)
	}
	return fmt.Sprintf("%#v", v.Interface())
}

// showQuery formats the fields of q that are set.
func showQuery(q workflow.HistoryQuery) string {
	var s []string
	if q.Limit != 0 {
		s = append(s, fmt.Sprintf("Limit %d", q.Limit))
	}
	if q.State != "" {
		s = append(s, fmt.Sprintf("State %s", q.State))
	}
	if q.Before != "" {
		s = append(s, fmt.Sprintf("Before %q", q.Before))
	}
	if q.Summary {
		s = append(s, "Summary")
	}
	return "{" + strings.Join(s, ", ") + "}"
}

func showTime(t time.Time) string {
	if t.IsZero() {
		return "the zero time"
	}
	return t.Format(time.RFC3339Nano)
}

func showBytes(b []byte) string {
	if b == nil {
		return "nil"
	}
	return fmt.Sprintf("%q", b)
}
