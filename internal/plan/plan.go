// Package plan describes a built workflow to the project's own modules —
// above all temporalwf, which runs the same definitions on another engine —
// without widening the public API: they read a workflow's tasks,
// dependencies, policies, validation and schedule, call one task's handler
// by name, and turn errors into plain data and back into the library's own
// *workflow.WorkflowError. Go's internal rule keeps it to modules under
// github.com/b3b01171/workflow.
//
// API is not stable: it changes with the modules that use it.
package plan

import (
	"context"
	"errors"
	"reflect"
	"time"
)

// Plan is the checked graph of one workflow.
type Plan struct {
	Workflow string
	In, Out  reflect.Type
	Output   string // the task whose output is the workflow's
	Tasks    []Task // in topological order
	// Input builds what task receives: the workflow input for a task
	// without dependencies, its dependency's output, or a workflow.Inputs
	// over outputs (by task name) for a task that takes Inputs. states is
	// nil for a task whose dependencies all succeeded; for a task that a
	// trigger rule started, it gives the end state of each dependency that
	// did not succeed ("failed", "timed_out", "cancelled", "skipped"), a
	// dependency in neither map having not ended (OneSucceeded): Get on the
	// Inputs then wraps workflow.ErrDependencyFailed or
	// ErrDependencySkipped as in-process, and a task taking its one
	// dependency's output gets the zero value for one that did not succeed.
	Input func(task string, workflowInput any, outputs map[string]any, states map[string]string) (any, error)
	// Rules says that some task has a Trigger other than AllSucceeded: a
	// failure then cancels nothing (see workflow.TriggerRule).
	Rules bool
	// Check validates v at a boundary of a run, as the in-process engine
	// does: nil when v is valid or its type carries no validate tags there,
	// else the *workflow.WorkflowError a run would fail with (Permanent for
	// a task's boundary).
	Check func(v any, at Boundary) error
	// ChecksInput and ChecksOutput say whether Check does anything for
	// the workflow's input and output: whether their types carry validate
	// tags (for the output, tags its task's own check does not cover).
	ChecksInput, ChecksOutput bool
	// MaxConcurrency is WithMaxConcurrency's bound; 0 means none.
	MaxConcurrency int
	// Schedule is the workflow's WithSchedule; nil without one.
	Schedule *Schedule
	// ScheduleInput is the WithScheduleInput function, with panics
	// recovered into errors wrapping workflow.ErrPanic; nil without one.
	ScheduleInput func(ctx context.Context, fired time.Time) (any, error)
}

// Boundary is where a value is validated.
type Boundary struct {
	RunID string
	Task  string // "" for the workflow's input and output
	Stage string // one of the Stage… constants
}

// The stages at which values are validated.
const (
	StageWorkflowInput  = "workflow input"
	StageTaskInput      = "task input"
	StageTaskOutput     = "task output"
	StageWorkflowOutput = "workflow output"
)

// Task is one task of a Plan.
type Task struct {
	Name         string
	Dependencies []string
	In, Out      reflect.Type
	Timeout      time.Duration
	Retry        Retry
	// Trigger is the task's rule, as workflow.TriggerRule.String names it
	// ("all_succeeded", "all_done", "none_failed", "one_succeeded").
	Trigger string
	// Map is set for a workflow.Map task: Timeout and Retry are then its
	// items'. Call runs the whole Map in one go, as in-process.
	Map *Map
	// Child is the child *workflow.Workflow of a workflow.Sub task; nil
	// for any other task.
	Child any
	// Call runs the task's handler once on in, through the workflow's
	// middleware, with panics recovered into errors wrapping
	// workflow.ErrPanic and workflow.Info answering from call; without
	// retry or timeout: the caller applies its own.
	Call func(ctx context.Context, call Call, in any) (any, error)
	// Retryable reports whether err, an attempt's error, may be retried:
	// not when Permanent or when RetryIf says no. A RetryIf that panics
	// says no; the error it returns then says so too.
	Retryable func(err error) (bool, error)
}

// Map describes a workflow.Map task.
type Map struct {
	Item, Each     reflect.Type // the Map's I and O
	MaxConcurrency int          // 0: every item at once
	// Call runs the handler once on one item, an I: its input and output
	// checked against their validate tags (a failure is Permanent and
	// wraps workflow.ErrInvalidInput), panics recovered into errors
	// wrapping workflow.ErrPanic, workflow.Info answering from call;
	// without retry, timeout or middleware. A Skip it returns is the
	// caller's to read as the zero O.
	Call func(ctx context.Context, call Call, item any) (any, error)
}

// Call says which run and attempt a call of a task is, for workflow.Info
// and middleware.
type Call struct {
	RunID   string
	Trigger string // "manual" or "schedule"
	Attempt int
}

// Retry is a task's retry policy, field for field.
type Retry struct {
	Attempts int
	Delay    time.Duration
	Backoff  float64
	MaxDelay time.Duration
	Jitter   float64
	RetryIf  func(error) bool
}

// Overlap is a Schedule's workflow.OverlapPolicy.
type Overlap int

// The overlap policies, as workflow numbers them.
const (
	OverlapSkip Overlap = iota
	OverlapAllow
	OverlapQueue
)

// Schedule is a workflow's workflow.Schedule, field for field.
type Schedule struct {
	Cron          string
	Timezone      string
	Overlap       Overlap
	CatchUpWindow time.Duration
}

// Failure is the failure of a task or a run in plain data, so that it can
// cross a process boundary (as JSON) and become a *workflow.WorkflowError
// again with Error.
type Failure struct {
	Workflow string `json:"workflow,omitempty"`
	RunID    string `json:"run_id,omitempty"`
	Task     string `json:"task,omitempty"`
	// What says what happened, as the error's message words it: for a
	// task "failed", "timed out", "panicked", "got invalid input", "gave
	// invalid output"; for the run "cancelled", "timed out", "invalid
	// input", "invalid output".
	What string `json:"what,omitempty"`
	// State is the task's end state ("failed", "timed_out", ...).
	State    string `json:"state,omitempty"`
	Attempts int    `json:"attempts,omitempty"`
	Message  string `json:"message"`
	// Sentinels names the library's sentinel errors the error wraps
	// ("timeout", "panic", ...: see Sentinels).
	Sentinels []string          `json:"sentinels,omitempty"`
	ErrorType string            `json:"error_type,omitempty"`
	Panic     string            `json:"panic,omitempty"`
	Stack     string            `json:"stack,omitempty"`
	Fields    map[string]string `json:"fields,omitempty"`
	Stage     string            `json:"stage,omitempty"`
	// Permanent: the error was wrapped by workflow.Permanent.
	Permanent bool `json:"permanent,omitempty"`
	// Skip is the reason of a workflow.Skip the error wraps; "" when it
	// wraps none.
	Skip string `json:"skip,omitempty"`
	// Cause is the failure of a Sub task's child run: Error makes it the
	// *workflow.WorkflowError that the task's error wraps, as in-process.
	Cause *Failure `json:"cause,omitempty"`
}

// Hooks is what package workflow installs at init: how this package reaches
// into it.
type Hooks struct {
	Describe  func(workflow any) (*Plan, error)
	FailureOf func(err error) Failure
	ErrorOf   func(f Failure) error
	Sentinels map[string]error
}

var hooks Hooks

// Install is called once, by package workflow's init.
func Install(h Hooks) { hooks = h }

// ErrNotWorkflow is returned by Of for a value that is not a workflow
// built by New.
var ErrNotWorkflow = errors.New("plan: not a workflow built by workflow.New")

// Of describes a *workflow.Workflow.
func Of(workflow any) (*Plan, error) {
	if hooks.Describe == nil {
		return nil, ErrNotWorkflow
	}
	return hooks.Describe(workflow)
}

// FailureOf describes err, the error of a task's attempt (a handler's, a
// validation's, a panic's), as a Failure; Workflow, RunID, Task, State and
// Attempts are left for the caller.
func FailureOf(err error) Failure { return hooks.FailureOf(err) }

// Error is the *workflow.WorkflowError that f describes: errors.Is reaches
// the sentinels f names, and its message reads as the in-process engine's.
func Error(f Failure) error { return hooks.ErrorOf(f) }

// Sentinel returns the sentinel error of package workflow with the given
// name ("timeout", "panic", "cancelled", "invalid_input", ...), and
// whether there is one.
func Sentinel(name string) (error, bool) {
	err, ok := hooks.Sentinels[name]
	return err, ok
}

// Task returns the named task.
func (p *Plan) Task(name string) (Task, bool) {
	for _, t := range p.Tasks {
		if t.Name == name {
			return t, true
		}
	}
	return Task{}, false
}
