package temporalwf

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"reflect"
	"slices"
	"strings"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/worker"
	tworkflow "go.temporal.io/sdk/workflow"

	"github.com/b3b01171/workflow"
	"github.com/b3b01171/workflow/internal/plan"
)

// DefaultTaskTimeout is the StartToCloseTimeout of each attempt of a task
// that has no Timeout of its own: Temporal needs one to notice an attempt
// whose worker died. It is long, so that a slow task is not cut short; a
// task that may hang should set its own Timeout.
const DefaultTaskTimeout = time.Hour

// heartbeatTimeout is the HeartbeatTimeout of every attempt: each attempt
// heartbeats while its handler runs (heartbeatEvery; the SDK sends one at
// most every 0.8 × the timeout), so that Temporal notices within it an
// attempt whose worker died, and so that the attempt's context ends soon
// after Temporal cancels it (another task failed, the run was cancelled).
const (
	heartbeatTimeout = 10 * time.Second
	heartbeatEvery   = time.Second
)

// Error types of the Temporal application errors this package makes; they
// show in Temporal's UI and tools.
const (
	taskErrorType = "workflow.TaskError" // an attempt's failure; details: a plan.Failure
	skipErrorType = "workflow.Skip"      // a handler's workflow.Skip: never retried; details: a plan.Failure
	runErrorType  = "workflow.RunError"  // the run's; details: a plan.Failure
)

// scheduleInputActivity is the name suffix of the activity that calls a
// workflow's WithScheduleInput function.
const scheduleInputActivity = "$scheduleInput"

// Register registers wf with a Temporal worker (or anything else that
// registers workflows and activities): one Temporal workflow, named after
// wf, that runs the DAG, and one activity per task, named
// "<workflow>/<task>" (for a Map, the activity of one item). The child
// workflows of its Sub tasks are registered with it, recursively, each
// once; a child that the registry already has (registered by an earlier
// Register, of itself or of another parent) is left as it is. It
// refuses, with an error wrapping workflow.ErrInvalidWorkflow, a workflow
// this package cannot run as it runs in-process (see the README's
// mapping), and a name the registry already has.
func Register[In, Out any](r worker.Registry, wf *workflow.Workflow[In, Out]) (err error) {
	d, err := newDAG(wf)
	if err != nil {
		return err
	}
	if r == nil {
		return d.invalid("Register: nil worker.Registry")
	}
	// The SDK panics on a name registered twice.
	defer func() {
		if v := recover(); v != nil {
			err = d.invalid("Register: %v", v)
		}
	}()
	d.register(r)
	return nil
}

// register registers d's workflow and activities, then its children's.
func (d *dag) register(r worker.Registry) {
	r.RegisterWorkflowWithOptions(d.run, tworkflow.RegisterOptions{Name: d.p.Workflow})
	for i, t := range d.p.Tasks {
		if t.Map != nil {
			r.RegisterActivityWithOptions(d.itemActivity(i), activity.RegisterOptions{Name: d.activityName(i)})
			continue
		}
		r.RegisterActivityWithOptions(d.activity(i), activity.RegisterOptions{Name: d.activityName(i)})
	}
	if d.p.ScheduleInput != nil {
		r.RegisterActivityWithOptions(d.scheduleInput, activity.RegisterOptions{Name: d.p.Workflow + "/" + scheduleInputActivity})
	}
	for _, child := range d.children {
		if child != nil {
			child.registerChild(r)
		}
	}
}

// registerChild registers the child workflow d of a Sub task, unless the
// registry has it already.
func (d *dag) registerChild(r worker.Registry) {
	defer func() {
		_ = recover() // registered already: its activities and children too
	}()
	d.register(r)
}

// dag is a workflow's plan as this package runs it: built once by Register
// (and by the client functions, which need the names and types only).
type dag struct {
	p     *plan.Plan
	index map[string]int // task name → position in p.Tasks
	deps  [][]int
	succs [][]int
	// children holds the child workflow of each Sub task; nil for others.
	children []*dag
	output   int
	acts     []tworkflow.ActivityOptions
}

func newDAG(wf any) (*dag, error) {
	p, err := plan.Of(wf)
	if err != nil {
		return nil, fmt.Errorf("temporalwf: %w: the Workflow was not built by workflow.New", workflow.ErrInvalidWorkflow)
	}
	d := &dag{p: p, index: make(map[string]int, len(p.Tasks))}
	d.children = make([]*dag, len(p.Tasks))
	for i, t := range p.Tasks {
		if t.Child == nil {
			continue
		}
		child, err := newDAG(t.Child)
		if err != nil {
			return nil, fmt.Errorf("temporalwf: workflow %q: task %q: %w", p.Workflow, t.Name, err)
		}
		d.children[i] = child
	}
	for i, t := range p.Tasks {
		d.index[t.Name] = i
	}
	d.deps = make([][]int, len(p.Tasks))
	d.succs = make([][]int, len(p.Tasks))
	d.acts = make([]tworkflow.ActivityOptions, len(p.Tasks))
	var problems []string
	for i, t := range p.Tasks {
		for _, dep := range t.Dependencies {
			j := d.index[dep]
			d.deps[i] = append(d.deps[i], j)
			d.succs[j] = append(d.succs[j], i)
		}
		if b := t.Retry.Backoff; b > 0 && b < 1 {
			problems = append(problems, fmt.Sprintf("task %q: Retry.Backoff %v shrinks the waits, which Temporal's BackoffCoefficient (≥ 1) cannot", t.Name, b))
		}
		d.acts[i] = activityOptions(t)
	}
	d.output = d.index[p.Output]
	if len(problems) > 0 {
		return nil, d.invalid("%s", strings.Join(problems, "; "))
	}
	return d, nil
}

// invalid is an error of the workflow's definition, as Temporal sees it.
func (d *dag) invalid(format string, args ...any) error {
	return fmt.Errorf("temporalwf: workflow %q: %s: %w", d.p.Workflow, fmt.Sprintf(format, args...), workflow.ErrInvalidWorkflow)
}

func (d *dag) activityName(i int) string { return d.p.Workflow + "/" + d.p.Tasks[i].Name }

// activityOptions maps a task's Timeout and RetryPolicy onto Temporal's.
// Jitter has no Temporal equivalent and is left out.
func activityOptions(t plan.Task) tworkflow.ActivityOptions {
	timeout := t.Timeout
	if timeout <= 0 {
		timeout = DefaultTaskTimeout
	}
	r := t.Retry
	attempts := max(r.Attempts, 1)
	initial := max(r.Delay, time.Millisecond) // 0 would be Temporal's default, 1 s
	backoff := r.Backoff
	if backoff < 1 {
		backoff = 1
	}
	// The longest wait the policy makes, so that Temporal's default cap
	// (100 × InitialInterval) never cuts it short; MaxDelay caps it.
	longest := float64(initial) * math.Pow(backoff, float64(max(attempts-2, 0)))
	if r.MaxDelay > 0 && longest > float64(r.MaxDelay) {
		longest = float64(r.MaxDelay)
	}
	if longest > float64(100*365*24*time.Hour) {
		longest = float64(100 * 365 * 24 * time.Hour)
	}
	maxInterval := max(time.Duration(longest), initial)
	return tworkflow.ActivityOptions{
		ActivityID:          t.Name,
		StartToCloseTimeout: timeout,
		HeartbeatTimeout:    heartbeatTimeout,
		RetryPolicy: &temporal.RetryPolicy{
			InitialInterval:    initial,
			BackoffCoefficient: backoff,
			MaximumInterval:    maxInterval,
			MaximumAttempts:    int32(min(attempts, math.MaxInt32)),
		},
	}
}

// taskInput is what a task's activity receives: the workflow input (for a
// task without dependencies) or its dependencies' outputs, encoded as
// JSON, and what workflow.Info needs.
type taskInput struct {
	Input   json.RawMessage `json:"input,omitempty"`
	Deps    []taskOutput    `json:"deps,omitempty"`
	Trigger string          `json:"trigger"`
	// Rule: the task has a trigger rule, and Deps say what became of
	// each dependency.
	Rule bool `json:"rule,omitempty"`
}

// taskOutput is a dependency's output, or, for a task with a trigger
// rule, its state when it did not succeed.
type taskOutput struct {
	Task   string          `json:"task"`
	Output json.RawMessage `json:"output,omitempty"`
	State  workflow.State  `json:"state,omitempty"`
}

// run is the Temporal workflow function of the DAG. It is deterministic:
// it reads no clock, no random numbers and no map in iteration order; the
// order of events is the order of Temporal's history.
func (d *dag) run(ctx tworkflow.Context, in json.RawMessage) (json.RawMessage, error) {
	info := tworkflow.GetInfo(ctx)
	runID := info.WorkflowExecution.ID
	trigger := workflow.TriggerManual
	if info.ParentWorkflowExecution != nil { // a Sub's child run
		trigger = workflow.TriggerParent
	}
	if len(in) == 0 { // a scheduled run: Schedule passes no argument
		trigger = workflow.TriggerSchedule
		in = json.RawMessage("null") // the zero In
		if d.p.ScheduleInput != nil {
			actx := tworkflow.WithActivityOptions(ctx, tworkflow.ActivityOptions{
				ActivityID:          scheduleInputActivity,
				StartToCloseTimeout: DefaultTaskTimeout,
				RetryPolicy:         &temporal.RetryPolicy{MaximumAttempts: 1},
			})
			fired := scheduledTime(info)
			if err := tworkflow.ExecuteActivity(actx, d.p.Workflow+"/"+scheduleInputActivity, fired).Get(ctx, &in); err != nil {
				if ctx.Err() != nil {
					return nil, ctx.Err()
				}
				f := plan.Failure{What: "could not make the input", Message: errorMessage(err)}
				var app *temporal.ApplicationError
				if errors.As(err, &app) && app.Type() == taskErrorType {
					_ = app.Details(&f)
					f.What, f.Task = "could not make the input", ""
				}
				return nil, runError(f)
			}
		}
	}

	r := d.newRun(ctx, runID, trigger, in)
	defer r.cancelTasks()
	r.loop()
	switch {
	case r.failure != nil:
		return nil, runError(*r.failure)
	case ctx.Err() != nil:
		return nil, ctx.Err()
	case r.firstFail != nil:
		return nil, runError(*r.firstFail)
	}
	out := r.outputs[d.output]
	if out == nil { // the output task was skipped: the zero Out
		out = json.RawMessage("null")
	}
	if err := d.checkOutput(runID, out); err != nil {
		f := plan.FailureOf(err)
		return nil, runError(f)
	}
	return out, nil
}

// checkOutput validates the workflow's output, when its type carries tags
// that the output task's own check does not cover.
func (d *dag) checkOutput(runID string, out json.RawMessage) error {
	if !d.p.ChecksOutput {
		return nil
	}
	v, err := decode(out, d.p.Out)
	if err != nil {
		return err
	}
	return d.p.Check(v, plan.Boundary{RunID: runID, Stage: plan.StageWorkflowOutput})
}

// scheduledTime is when a scheduled run was due: the search attribute a
// Temporal Schedule sets, else the run's start.
func scheduledTime(info *tworkflow.Info) time.Time {
	if sa := info.SearchAttributes; sa != nil {
		if p, ok := sa.GetIndexedFields()["TemporalScheduledStartTime"]; ok {
			var t time.Time
			if converter.GetDefaultDataConverter().FromPayload(p, &t) == nil && !t.IsZero() {
				return t.UTC()
			}
		}
	}
	return info.WorkflowStartTime.UTC()
}

// taskFailure describes the failure of task i's activity, as the
// workflow function sees it.
func (d *dag) taskFailure(runID string, i int, err error) *plan.Failure {
	t := d.p.Tasks[i]
	f := plan.Failure{Message: errorMessage(err), State: string(workflow.StateFailed)}
	var app *temporal.ApplicationError
	var timeout *temporal.TimeoutError
	var act *temporal.ActivityError
	switch {
	case errors.As(err, &app) && (app.Type() == taskErrorType || app.Type() == skipErrorType):
		if derr := app.Details(&f); derr != nil {
			f.Message = app.Message()
		}
		if slices.Contains(f.Sentinels, "cancelled") {
			f.State = string(workflow.StateCancelled) // the handler says it was cancelled
		}
	case errors.As(err, &timeout):
		f.What, f.State, f.Sentinels = "timed out", string(workflow.StateTimedOut), []string{"timeout"}
		f.Message = fmt.Sprintf("attempt exceeded %v", d.acts[i].StartToCloseTimeout)
	case errors.As(err, &app):
		f.Message, f.ErrorType = app.Message(), app.Type()
		if app.Type() == "PanicError" {
			f.What, f.Sentinels = "panicked", []string{"panic"}
		}
	}
	if f.Attempts == 0 && errors.As(err, &act) && act.RetryState() == enumspb.RETRY_STATE_MAXIMUM_ATTEMPTS_REACHED {
		f.Attempts = int(d.acts[i].RetryPolicy.MaximumAttempts)
	}
	if f.Attempts == 0 {
		f.Attempts = 1
	}
	for _, s := range f.Sentinels {
		if s == "timeout" && f.State == string(workflow.StateFailed) {
			f.State = string(workflow.StateTimedOut)
			if f.What == "" || f.What == "failed" {
				f.What = "timed out"
			}
		}
	}
	f.Workflow, f.RunID, f.Task = d.p.Workflow, runID, t.Name
	return &f
}

// subFailure describes the failure of Sub task i's child run, err as the
// child workflow's future gives it: the task's error wraps the child's, as
// in-process.
func (d *dag) subFailure(runID string, i int, err error) *plan.Failure {
	t := d.p.Tasks[i]
	child := d.children[i]
	var cf plan.Failure
	var app *temporal.ApplicationError
	var canceled *temporal.CanceledError
	var terminated *temporal.TerminatedError
	var timedOut *temporal.TimeoutError
	switch {
	case errors.As(err, &app) && app.Type() == runErrorType:
		if app.Details(&cf) != nil {
			cf = plan.Failure{Message: app.Message()}
		}
	case errors.As(err, &canceled):
		cf = plan.Failure{What: "cancelled", Message: "Cancel called", Sentinels: []string{"cancelled"}}
	case errors.As(err, &terminated):
		cf = plan.Failure{What: "cancelled", Message: "terminated in Temporal", Sentinels: []string{"cancelled"}}
	case errors.As(err, &timedOut):
		cf = plan.Failure{What: "timed out", Message: "the run exceeded its RunTimeout", Sentinels: []string{"timeout"}}
	default:
		cf = plan.Failure{Message: errorMessage(err)}
	}
	cf.Workflow, cf.RunID = child.p.Workflow, runID+"."+t.Name
	f := &plan.Failure{Workflow: d.p.Workflow, RunID: runID, Task: t.Name, State: string(workflow.StateFailed), Attempts: 1,
		Message: plan.Error(cf).Error(), Sentinels: cf.Sentinels, ErrorType: "*workflow.WorkflowError", Cause: &cf}
	switch {
	case slices.Contains(cf.Sentinels, "timeout"):
		f.State, f.What = string(workflow.StateTimedOut), "timed out"
	case slices.Contains(cf.Sentinels, "cancelled"):
		f.State = string(workflow.StateCancelled)
	}
	return f
}

// runError is the error the workflow function ends with when the run
// does not succeed: Wait turns it back into a *workflow.WorkflowError.
func runError(f plan.Failure) error {
	return temporal.NewApplicationErrorWithOptions(f.Message, runErrorType, temporal.ApplicationErrorOptions{
		NonRetryable: true, Details: []any{f},
	})
}

// errorMessage is err's own message, without the wrapping Temporal adds.
func errorMessage(err error) string {
	var app *temporal.ApplicationError
	if errors.As(err, &app) {
		return app.Message()
	}
	var act *temporal.ActivityError
	if errors.As(err, &act) && errors.Unwrap(act) != nil {
		return errors.Unwrap(act).Error()
	}
	return err.Error()
}

// activity is task i's Temporal activity: it decodes the task's input into
// the types the definition declares, validates it, calls the handler once
// (Temporal retries), validates and encodes the output.
func (d *dag) activity(i int) func(ctx context.Context, in taskInput) (json.RawMessage, error) {
	t := d.p.Tasks[i]
	return func(ctx context.Context, in taskInput) (json.RawMessage, error) {
		info := activity.GetInfo(ctx)
		runID := info.WorkflowExecution.ID
		attempt := int(info.Attempt)
		fail := func(err error, retry bool) error {
			f := plan.FailureOf(err)
			f.Attempts = attempt
			return temporal.NewApplicationErrorWithOptions(f.Message, taskErrorType, temporal.ApplicationErrorOptions{
				NonRetryable: !retry, Details: []any{f},
			})
		}
		var wfIn any
		if len(d.deps[i]) == 0 {
			v, err := decode(in.Input, d.p.In)
			if err != nil {
				return nil, fail(workflow.Permanent(fmt.Errorf("decoding the workflow input: %w", err)), false)
			}
			wfIn = v
		}
		outputs := make(map[string]any, len(in.Deps))
		var states map[string]string
		if in.Rule {
			states = map[string]string{}
		}
		for _, dep := range in.Deps {
			j, ok := d.index[dep.Task]
			if !ok {
				return nil, fail(workflow.Permanent(fmt.Errorf("unknown dependency %q: %w", dep.Task, workflow.ErrNotFound)), false)
			}
			if dep.State != "" {
				if dep.State.Ended() {
					states[dep.Task] = string(dep.State)
				}
				continue // not ended: OneSucceeded started the task first
			}
			v, err := decode(dep.Output, d.p.Tasks[j].Out)
			if err != nil {
				return nil, fail(workflow.Permanent(fmt.Errorf("decoding the output of %q: %w", dep.Task, err)), false)
			}
			outputs[dep.Task] = v
		}
		stop := heartbeat(ctx)
		defer stop()
		v, err := d.p.Input(t.Name, wfIn, outputs, states)
		if err != nil {
			return nil, fail(workflow.Permanent(err), false)
		}
		if err := d.p.Check(v, plan.Boundary{RunID: runID, Task: t.Name, Stage: plan.StageTaskInput}); err != nil {
			return nil, fail(err, false)
		}
		out, err := t.Call(ctx, plan.Call{RunID: runID, Trigger: in.Trigger, Attempt: attempt}, v)
		if err != nil {
			if f := plan.FailureOf(err); f.Skip != "" && ctx.Err() == nil {
				// Never retried: the workflow function skips the task.
				f.Attempts = attempt
				return nil, temporal.NewApplicationErrorWithOptions(f.Message, skipErrorType, temporal.ApplicationErrorOptions{
					NonRetryable: true, Details: []any{f},
				})
			}
			return nil, d.attemptError(ctx, i, err)
		}
		if err := d.p.Check(out, plan.Boundary{RunID: runID, Task: t.Name, Stage: plan.StageTaskOutput}); err != nil {
			return nil, fail(err, false)
		}
		data, err := json.Marshal(out)
		if err != nil {
			return nil, fail(workflow.Permanent(fmt.Errorf("recording its output (%T): %w: %w", out, err, workflow.ErrInvalidInput)), false)
		}
		return data, nil
	}
}

// attemptError is the Temporal error of a failed attempt of task i (or of
// an item of it): retryable as its policy says, but always when the
// attempt was cut short, never when the handler says it was cancelled.
func (d *dag) attemptError(ctx context.Context, i int, err error) error {
	info := activity.GetInfo(ctx)
	attempt := int(info.Attempt)
	fail := func(err error, retry bool) error {
		f := plan.FailureOf(err)
		f.Attempts = attempt
		return temporal.NewApplicationErrorWithOptions(f.Message, taskErrorType, temporal.ApplicationErrorOptions{
			NonRetryable: !retry, Details: []any{f},
		})
	}
	if ctx.Err() != nil && (errors.Is(ctx.Err(), context.DeadlineExceeded) || !time.Now().Before(info.Deadline)) {
		// The attempt's StartToCloseTimeout (the SDK may cancel the
		// context rather than let its deadline pass): the worker may say
		// so before Temporal does, and it must read alike.
		f := plan.Failure{What: "timed out", State: string(workflow.StateTimedOut), Attempts: attempt,
			Message: fmt.Sprintf("attempt exceeded %v", d.acts[i].StartToCloseTimeout), Sentinels: []string{"timeout"}}
		return temporal.NewApplicationErrorWithOptions(f.Message, taskErrorType, temporal.ApplicationErrorOptions{Details: []any{f}})
	}
	if ctx.Err() != nil {
		// The attempt was cut short (its worker is stopping, or Temporal
		// cancelled it): never a permanent failure, whatever the handler
		// made of its context's end.
		return fail(err, true)
	}
	if errors.Is(err, workflow.ErrCancelled) {
		// The handler says it was cancelled (a child run, say): the task
		// ends cancelled, as in-process, not retried.
		return fail(err, false)
	}
	again, err := d.p.Tasks[i].Retryable(err)
	return fail(err, again)
}

// heartbeat heartbeats for the activity of ctx until stop is called.
func heartbeat(ctx context.Context) (stop func()) {
	done := make(chan struct{})
	ended := make(chan struct{})
	go func() {
		defer close(ended)
		t := time.NewTicker(heartbeatEvery)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				activity.RecordHeartbeat(ctx)
			case <-done:
				return
			case <-ctx.Done():
				return
			}
		}
	}()
	return func() {
		close(done)
		<-ended
	}
}

// scheduleInput is the activity that calls the WithScheduleInput function.
func (d *dag) scheduleInput(ctx context.Context, fired time.Time) (json.RawMessage, error) {
	fail := func(err error) error {
		f := plan.FailureOf(err)
		return temporal.NewApplicationErrorWithOptions(f.Message, taskErrorType, temporal.ApplicationErrorOptions{
			NonRetryable: true, Details: []any{f},
		})
	}
	v, err := d.p.ScheduleInput(ctx, fired)
	if err != nil {
		return nil, fail(err)
	}
	runID := activity.GetInfo(ctx).WorkflowExecution.ID
	if err := d.p.Check(v, plan.Boundary{RunID: runID, Stage: plan.StageWorkflowInput}); err != nil {
		return nil, fail(err)
	}
	data, err := json.Marshal(v)
	if err != nil {
		return nil, fail(err)
	}
	return data, nil
}

// decode decodes JSON data into a value of type t; no data, or null, is
// t's zero value.
func decode(data json.RawMessage, t reflect.Type) (any, error) {
	ptr := reflect.New(t)
	if len(data) > 0 {
		if err := json.Unmarshal(data, ptr.Interface()); err != nil {
			return nil, fmt.Errorf("%s: %w: %w", t, err, workflow.ErrTypeMismatch)
		}
	}
	return ptr.Elem().Interface(), nil
}
