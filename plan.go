package workflow

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"time"

	plandesc "github.com/b3b01171/workflow/internal/plan"
)

// This file is the seam through which the project's own modules (temporalwf)
// read a built workflow: internal/plan describes it, and the functions
// installed below reach the engine's unexported parts.

func init() {
	plandesc.Install(plandesc.Hooks{
		Describe: func(w any) (*plandesc.Plan, error) {
			d, ok := w.(describer)
			if !ok || reflect.ValueOf(w).IsNil() {
				return nil, plandesc.ErrNotWorkflow
			}
			if p := d.describe(); p != nil {
				return p, nil
			}
			return nil, plandesc.ErrNotWorkflow
		},
		FailureOf: failureOf,
		ErrorOf:   errorOf,
		Sentinels: sentinelsByName,
	})
}

// describer is satisfied by every *Workflow.
type describer interface{ describe() *plandesc.Plan }

// sentinelsByName names the sentinels a task's or a run's error may wrap,
// as a plandesc.Failure carries them.
var sentinelsByName = map[string]error{
	"timeout":            ErrTimeout,
	"panic":              ErrPanic,
	"cancelled":          ErrCancelled,
	"invalid_input":      ErrInvalidInput,
	"type_mismatch":      ErrTypeMismatch,
	"not_found":          ErrNotFound,
	"invalid_workflow":   ErrInvalidWorkflow,
	"dependency_failed":  ErrDependencyFailed,
	"dependency_skipped": ErrDependencySkipped,
}

// sentinelOrder lists sentinelsByName's keys in a fixed order.
var sentinelOrder = []string{"timeout", "panic", "cancelled", "invalid_input", "type_mismatch", "not_found", "invalid_workflow",
	"dependency_failed", "dependency_skipped"}

func (w *Workflow[In, Out]) describe() *plandesc.Plan {
	if w == nil || w.e == nil {
		return nil
	}
	e := w.e
	p := e.plan
	d := &plandesc.Plan{
		Workflow:       e.name,
		In:             p.inType,
		Out:            p.outType,
		Output:         p.names[p.output],
		Tasks:          make([]plandesc.Task, 0, len(p.order)),
		MaxConcurrency: e.cfg.maxConcurrency,
		ChecksInput:    e.validateIn,
		ChecksOutput:   e.validateOut,
		Rules:          p.rules,
	}
	for _, i := range p.order {
		t := &p.tasks[i]
		var m *plandesc.Map
		if t.mapped {
			m = &plandesc.Map{Item: t.item, Each: t.each, MaxConcurrency: t.concurrency,
				Call: func(ctx context.Context, c plandesc.Call, item any) (any, error) {
					return e.callItem(ctx, i, c, item)
				}}
		}
		retry := t.retry
		d.Tasks = append(d.Tasks, plandesc.Task{
			Trigger:      t.trigger.String(),
			Map:          m,
			Child:        t.childWorkflow,
			Name:         t.name,
			Dependencies: slices.Clone(t.deps),
			In:           t.in,
			Out:          t.out,
			Timeout:      t.timeout,
			Retry: plandesc.Retry{
				Attempts: retry.Attempts, Delay: retry.Delay, Backoff: retry.Backoff,
				MaxDelay: retry.MaxDelay, Jitter: retry.Jitter, RetryIf: retry.RetryIf,
			},
			Call: func(ctx context.Context, c plandesc.Call, in any) (any, error) {
				return e.callTask(ctx, i, c, in)
			},
			Retryable: retry.retryable,
		})
	}
	d.Input = func(task string, in any, outputs map[string]any, states map[string]string) (any, error) {
		i, ok := p.index[task]
		if !ok {
			return nil, opError(e.name, "", "", newError(ErrNotFound, "no task %q", task))
		}
		deps := p.deps(i)
		if len(deps) == 0 {
			return in, nil
		}
		if states != nil {
			return rulesInput(p, i, outputs, states), nil
		}
		vals := make([]any, len(p.tasks))
		for _, dep := range deps {
			v, ok := outputs[p.names[dep]]
			if !ok {
				return nil, opError(e.name, "", "", newError(ErrNotFound, "task %q needs the output of %q", task, p.names[dep]))
			}
			vals[dep] = v
		}
		if p.tasks[i].in == inputsType {
			return Inputs{p: p, task: i, outputs: vals}, nil
		}
		return vals[deps[0]], nil
	}
	d.Check = func(v any, at plandesc.Boundary) error {
		need := false
		switch at.Stage {
		case plandesc.StageWorkflowInput:
			need = e.validateIn
		case plandesc.StageWorkflowOutput:
			need = e.validateOut
		case plandesc.StageTaskInput, plandesc.StageTaskOutput:
			i, ok := p.index[at.Task]
			if !ok {
				return opError(e.name, at.RunID, "", newError(ErrNotFound, "no task %q", at.Task))
			}
			need = p.tasks[i].validateIn
			if at.Stage == plandesc.StageTaskOutput {
				need = p.tasks[i].validateOut
			}
		default:
			return opError(e.name, at.RunID, "", newError(ErrInvalidInput, "no stage %q", at.Stage))
		}
		if !need {
			return nil
		}
		if werr := (&run{e: e, id: at.RunID}).check(v, at.Task, at.Stage); werr != nil {
			return werr
		}
		return nil
	}
	if s := e.cfg.schedule; s != nil {
		d.Schedule = &plandesc.Schedule{Cron: s.Cron, Timezone: s.Timezone, Overlap: plandesc.Overlap(s.Overlap), CatchUpWindow: s.CatchUpWindow}
	}
	if si := e.cfg.scheduleInput; si != nil {
		d.ScheduleInput = func(ctx context.Context, fired time.Time) (v any, err error) {
			defer func() {
				if p := recover(); p != nil {
					v, err = nil, newError(ErrPanic, "the WithScheduleInput function panicked: %v", p)
				}
			}()
			return si.fn(ctx, fired)
		}
	}
	return d
}

// rulesInput is what task i gets when a trigger rule started it, as
// rulesInputs builds it in-process: outputs of the dependencies that
// succeeded, states of those that did not.
func rulesInput(p *plan, i int32, outputs map[string]any, states map[string]string) any {
	deps := p.deps(i)
	if p.tasks[i].in != inputsType {
		return outputs[p.names[deps[0]]]
	}
	snap := &inputsSnapshot{outputs: make([]any, len(deps)), states: make([]taskState, len(deps))}
	for k, dep := range deps {
		name := p.names[dep]
		if v, ok := outputs[name]; ok {
			snap.outputs[k], snap.states[k] = v, tsSucceeded
		} else if s, ok := states[name]; ok {
			snap.states[k] = taskStateOf(State(s))
		}
	}
	return Inputs{p: p, task: i, snap: snap}
}

// callItem runs the handler of task i, a Map, once on item, as an attempt
// c of an item of a run that another engine drives: the item's input and
// output checked as mapping.item checks them, with Info answering and
// panics recovered.
func (e *engine) callItem(ctx context.Context, i int32, c plandesc.Call, item any) (any, error) {
	t := &e.plan.tasks[i]
	r := &run{e: e, id: c.RunID, trigger: c.Trigger}
	if t.validateItem {
		if werr := r.check(item, t.name, "task input"); werr != nil {
			return nil, werr.Err
		}
	}
	out, err := call(&taskCtx{Context: ctx, r: r, task: i, attempt: c.Attempt}, t.itemHandler, item)
	if err == nil && t.validateEach {
		if werr := r.check(out, t.name, "task output"); werr != nil {
			return nil, werr.Err
		}
	}
	return out, err
}

// callTask runs task i's handler once, as an attempt c of a run that
// another engine drives: through the middleware, with Info answering, and
// with panics recovered.
func (e *engine) callTask(ctx context.Context, i int32, c plandesc.Call, in any) (any, error) {
	r := &run{e: e, id: c.RunID, trigger: c.Trigger}
	tc := &taskCtx{Context: ctx, r: r, task: i, attempt: c.Attempt}
	h := e.plan.tasks[i].handler
	if e.chain != nil {
		h = r.viaMiddleware(i, c.Attempt)
	}
	return call(tc, h, in)
}

// failureOf describes err, a task attempt's error, in plain data.
func failureOf(err error) plandesc.Failure {
	f := plandesc.Failure{Message: err.Error(), ErrorType: handlerErrorType(err), Permanent: isPermanent(err)}
	for _, name := range sentinelOrder {
		if errors.Is(err, sentinelsByName[name]) {
			f.Sentinels = append(f.Sentinels, name)
		}
	}
	if reason, ok := skipReason(err); ok {
		f.Skip = reason
	}
	var pe *panicError
	if errors.As(err, &pe) {
		f.Panic, f.Stack = fmt.Sprint(pe.value), pe.stack
		if _, handler := err.(*panicError); handler {
			f.What = "panicked"
		}
	}
	var werr *WorkflowError
	if errors.As(err, &werr) && werr.what != "" { // a validation's
		f.What, f.Message, f.Task = werr.what, werr.Message, werr.Task
		if fields, ok := werr.Details["fields"].(map[string]string); ok {
			f.Fields = fields
		}
		if stage, ok := werr.Details["stage"].(string); ok {
			f.Stage = stage
		}
	}
	return f
}

// errorOf is the *WorkflowError that f describes.
func errorOf(f plandesc.Failure) error {
	werr := &WorkflowError{Workflow: f.Workflow, RunID: f.RunID, Task: f.Task, Attempts: f.Attempts, Message: f.Message, what: f.What}
	if werr.what == "failed" {
		werr.what = ""
	}
	errs := make([]error, 0, len(f.Sentinels)+1)
	for _, name := range f.Sentinels {
		if s, ok := sentinelsByName[name]; ok {
			errs = append(errs, s)
		}
	}
	werr.Err = &libError{msg: f.Message, errs: append(errs, errors.New(f.Message))}
	if f.Cause != nil { // a Sub's child run's failure
		werr.Err = errorOf(*f.Cause)
	}
	if f.Task != "" {
		werr.Details = map[string]any{"attempts": f.Attempts, "state": State(f.State), "error_type": f.ErrorType}
		if f.ErrorType == "" {
			werr.Details["error_type"] = handlerErrorType(nil)
		}
		if f.Panic != "" {
			werr.Details["panic"], werr.Details["stack"] = f.Panic, f.Stack
		}
	}
	if f.Stage != "" {
		if werr.Details == nil {
			werr.Details = map[string]any{}
		}
		werr.Details["stage"] = f.Stage
		if f.Fields != nil {
			werr.Details["fields"] = f.Fields
		}
	}
	return werr
}
