package temporalwf

import (
	"encoding/json"
	"fmt"

	"go.temporal.io/sdk/temporal"
	tworkflow "go.temporal.io/sdk/workflow"

	"github.com/b3b01171/workflow"
	"github.com/b3b01171/workflow/internal/plan"
)

// dagRun is one execution of the DAG's workflow function: the tasks ready,
// under way and ended, and their outputs. Like the function, it reads no
// clock, no random numbers and no map in iteration order: what it does
// follows from Temporal's history alone.
type dagRun struct {
	d              *dag
	ctx            tworkflow.Context // the run's
	tasks          tworkflow.Context // the tasks': cancelled by a failure in a workflow without rules
	cancelTasks    tworkflow.CancelFunc
	sel            tworkflow.Selector
	runID, trigger string
	in             json.RawMessage
	outputs        []json.RawMessage
	rules          *rules
	ready          []int
	running        int // tasks under way (a Map counts as one)
	// failure ends the run at once (a workflow without trigger rules);
	// firstFail, with rules, once every task ran or was skipped.
	failure, firstFail *plan.Failure
}

func (d *dag) newRun(ctx tworkflow.Context, runID, trigger string, in json.RawMessage) *dagRun {
	r := &dagRun{d: d, ctx: ctx, sel: tworkflow.NewSelector(ctx), runID: runID, trigger: trigger, in: in,
		outputs: make([]json.RawMessage, len(d.p.Tasks)), rules: d.newRules()}
	r.tasks, r.cancelTasks = tworkflow.WithCancel(ctx)
	for i := range d.p.Tasks {
		if len(d.deps[i]) == 0 {
			r.ready = append(r.ready, i)
		}
	}
	return r
}

// loop starts the ready tasks, within WithMaxConcurrency, until nothing is
// under way.
func (r *dagRun) loop() {
	for {
		for r.failure == nil && r.ctx.Err() == nil && len(r.ready) > 0 && (r.d.p.MaxConcurrency == 0 || r.running < r.d.p.MaxConcurrency) {
			i := r.ready[0]
			r.ready = r.ready[1:]
			r.start(i)
		}
		if r.running == 0 {
			return
		}
		r.sel.Select(r.ctx)
	}
}

// ended records the end of task i in state st; the tasks it makes ready
// are queued.
func (r *dagRun) ended(i int, st workflow.State) {
	more, _ := r.rules.ended(i, st)
	r.ready = append(r.ready, more...)
}

// failed records the failure (or skip) of task i.
func (r *dagRun) failed(i int, tf *plan.Failure) {
	switch {
	case tf.Skip != "":
		r.ended(i, workflow.StateSkipped)
	case !r.d.p.Rules:
		r.failure = tf
		r.cancelTasks() // as in-process: the first failure cancels the tasks under way
	default:
		// Trigger rules handle it: it cancels nothing.
		if r.firstFail == nil {
			r.firstFail = tf
		}
		r.ended(i, workflow.State(tf.State))
	}
}

// over reports whether err, the error of something the run started, is
// the run's end cancelling it (another task failed, or the run was
// cancelled), not a failure of its own.
func (r *dagRun) over(err error) bool {
	return r.failure != nil || (r.ctx.Err() != nil && temporal.IsCanceledError(err))
}

// input is what task i takes: the workflow input, or its one dependency's
// output (nil when a rule started the task without it).
func (r *dagRun) input(i int) json.RawMessage {
	if len(r.d.deps[i]) == 0 {
		return r.in
	}
	return r.outputs[r.d.deps[i][0]]
}

// start starts task i: its activity, its items' (a Map) or its child
// workflow (a Sub).
func (r *dagRun) start(i int) {
	d := r.d
	t := d.p.Tasks[i]
	r.rules.state[i] = workflow.StateRunning
	switch {
	case d.children[i] != nil:
		r.startSub(i, r.input(i))
		return
	case t.Map != nil:
		r.startMap(i, r.input(i))
		return
	}
	arg := taskInput{Trigger: r.trigger, Rule: t.Trigger != allSucceeded}
	if len(d.deps[i]) == 0 {
		arg.Input = r.in
	}
	for _, j := range d.deps[i] {
		dep := taskOutput{Task: d.p.Tasks[j].Name, Output: r.outputs[j]}
		if arg.Rule && r.rules.state[j] != workflow.StateSucceeded {
			dep.State = r.rules.state[j]
			if dep.State == "" {
				dep.State = workflow.StatePending
			}
		}
		arg.Deps = append(arg.Deps, dep)
	}
	f := tworkflow.ExecuteActivity(tworkflow.WithActivityOptions(r.tasks, d.acts[i]), d.activityName(i), arg)
	r.await(i, f, d.taskFailure)
}

// await ends task i with f's outcome once it is ready: its output, or the
// failure that failure makes of its error (unless the run is over).
func (r *dagRun) await(i int, f tworkflow.Future, failure func(runID string, i int, err error) *plan.Failure) {
	r.running++
	r.sel.AddFuture(f, func(f tworkflow.Future) {
		r.running--
		var out json.RawMessage
		err := f.Get(r.ctx, &out)
		switch {
		case err == nil:
			r.outputs[i] = out
			r.ended(i, workflow.StateSucceeded)
		case !r.over(err):
			r.failed(i, failure(r.runID, i, err))
		}
	})
}

// startSub runs Sub task i's child workflow on arg as a Temporal child
// workflow, with the ID parentRunID.task, as in-process; cancelling the
// run cancels it.
func (r *dagRun) startSub(i int, arg json.RawMessage) {
	if len(arg) == 0 {
		arg = json.RawMessage("null") // the zero In (a rule started the task without its dependency)
	}
	cctx := tworkflow.WithChildOptions(r.tasks, tworkflow.ChildWorkflowOptions{WorkflowID: r.runID + "." + r.d.p.Tasks[i].Name})
	f := tworkflow.ExecuteChildWorkflow(cctx, r.d.children[i].p.Workflow, arg)
	r.await(i, f, r.d.subFailure)
}

// mapRun is one Map task under way: its items, those started, under way
// and done, and their outputs.
type mapRun struct {
	r                 *dagRun
	task              int
	items, outs       []json.RawMessage
	ctx               tworkflow.Context // the items': cancelled once one fails for good
	cancel            tworkflow.CancelFunc
	next, under, done int
	over              bool // the task has ended
}

// startMap runs Map task i over list, a JSON array: one activity per item,
// at most the Map's MaxConcurrency under way; the task counts as one under
// way for the workflow's own bound.
func (r *dagRun) startMap(i int, list json.RawMessage) {
	r.running++
	m := &mapRun{r: r, task: i}
	if len(list) > 0 {
		if err := json.Unmarshal(list, &m.items); err != nil {
			r.running--
			r.failed(i, &plan.Failure{Workflow: r.d.p.Workflow, RunID: r.runID, Task: r.d.p.Tasks[i].Name, State: string(workflow.StateFailed),
				Attempts: 1, Message: fmt.Sprintf("decoding its list: %v", err), Sentinels: []string{"type_mismatch"}})
			return
		}
	}
	m.outs = make([]json.RawMessage, len(m.items))
	m.ctx, m.cancel = tworkflow.WithCancel(r.tasks)
	if len(m.items) == 0 {
		m.finish(nil)
		return
	}
	m.launch()
}

// launch starts items while the Map's MaxConcurrency allows.
func (m *mapRun) launch() {
	r, d := m.r, m.r.d
	t := d.p.Tasks[m.task]
	for !m.over && m.next < len(m.items) && (t.Map.MaxConcurrency <= 0 || m.under < t.Map.MaxConcurrency) {
		k := m.next
		m.next++
		m.under++
		opts := d.acts[m.task]
		opts.ActivityID = itemID(t.Name, k)
		f := tworkflow.ExecuteActivity(tworkflow.WithActivityOptions(m.ctx, opts), d.activityName(m.task),
			itemInput{Item: m.items[k], Index: k, Total: len(m.items), Trigger: r.trigger})
		r.sel.AddFuture(f, func(f tworkflow.Future) { m.itemEnded(k, f) })
	}
}

// itemEnded takes the end of item k's activity.
func (m *mapRun) itemEnded(k int, f tworkflow.Future) {
	m.under--
	if m.over {
		return // the Map failed: its other items were cancelled
	}
	var out json.RawMessage
	err := f.Get(m.r.ctx, &out)
	switch {
	case err == nil:
		m.outs[k] = out
		if m.done++; m.done == len(m.items) {
			m.finish(nil)
		} else {
			m.launch()
		}
	case m.r.over(err):
		// Cancelled by the run's end: the Map ends with its last item
		// under way, and starts no more.
		if m.under == 0 {
			m.over = true
			m.r.running--
		}
	default:
		tf := m.r.d.taskFailure(m.r.runID, m.task, err)
		tf.Message, tf.Attempts = fmt.Sprintf("item %d: %s", k, tf.Message), 1
		m.finish(tf)
	}
}

// finish ends the Map task: succeeded with its items' outputs in order,
// or failed by tf, one item's failure for good.
func (m *mapRun) finish(tf *plan.Failure) {
	m.over = true
	m.cancel() // the items under way, after one failed for good
	m.r.running--
	if tf != nil {
		m.r.failed(m.task, tf)
		return
	}
	m.r.outputs[m.task] = joinItems(m.outs)
	m.r.ended(m.task, workflow.StateSucceeded)
}
