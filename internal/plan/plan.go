// Package plan describes a built workflow to the project's own modules (a
// durable store, tracing, an adapter to another engine) without widening
// the public API: they read a workflow's tasks, dependencies and policies,
// and call one task's handler by name. Go's internal rule keeps it to
// modules under github.com/b3b01171/workflow.
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
	// over outputs (by task name) for a task that takes Inputs.
	Input func(task string, workflowInput any, outputs map[string]any) (any, error)
}

// Task is one task of a Plan.
type Task struct {
	Name         string
	Dependencies []string
	In, Out      reflect.Type
	Timeout      time.Duration
	Retry        Retry
	// Call runs the task's handler once on in, with panics recovered and
	// without retry or timeout: the caller applies its own.
	Call func(ctx context.Context, in any) (any, error)
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

// ErrNotWorkflow is returned by Of for a value that is not a workflow
// built by New.
var ErrNotWorkflow = errors.New("plan: not a workflow built by workflow.New")

// Describe is set by package workflow at init to describe a *Workflow.
var Describe func(workflow any) (*Plan, error)

// Of describes a *workflow.Workflow.
func Of(workflow any) (*Plan, error) {
	if Describe == nil {
		return nil, ErrNotWorkflow
	}
	return Describe(workflow)
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
