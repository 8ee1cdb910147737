package workflow

import (
	"context"
	"reflect"
	"slices"
	"time"
)

// Task is one step of a workflow: a typed handler, the tasks it waits for,
// and how it is retried and timed out. Task values (and pointers to them)
// go into a Tasks list given to New; the list is read once there, so later
// changes to a Task have no effect on the workflow.
//
// What a task receives: a task without dependencies gets the workflow
// input, so I must be the workflow's In; a task with one dependency gets
// that task's output, so I must be its O; a task with several dependencies
// declares I as Inputs and reads each value with Get. A task may declare
// Inputs with a single dependency too.
type Task[I, O any] struct {
	// Name identifies the task in dependencies, errors, status and history.
	// It must be non-empty and unique within the workflow.
	Name string
	// Handler does the work. It should return when ctx ends: at the task's
	// Timeout, when another task fails, or when the run is cancelled.
	Handler func(ctx context.Context, in I) (O, error)
	// Dependencies names the tasks this one waits for. It starts once all
	// of them have succeeded, or as Trigger says.
	Dependencies []string
	// Trigger says which ends of the dependencies start the task; the zero
	// value is AllSucceeded. A task whose rule can no longer be met is
	// skipped. A task without dependencies must keep the default.
	Trigger TriggerRule
	// Retry says how often and how soon a failed attempt is tried again.
	// The zero value makes one attempt.
	Retry RetryPolicy
	// Timeout bounds each attempt; zero means none. An attempt still
	// running at its deadline fails with ErrTimeout even if the handler
	// ignores its context; such a handler's goroutine is left to finish
	// and its result is dropped.
	Timeout time.Duration
}

// AnyTask is a Task of any type parameters. Task[I, O] and *Task[I, O]
// satisfy it, so tasks of different types share one Tasks list. It has
// only unexported methods: the package's Task is its only implementation.
type AnyTask interface {
	spec() taskSpec
}

// Tasks is the list of tasks that New turns into a workflow.
type Tasks []AnyTask

// handlerFunc is a task's handler with its types erased, built once in New.
type handlerFunc func(ctx context.Context, in any) (any, error)

// taskSpec is the untyped record New reads from each Task.
type taskSpec struct {
	name    string
	deps    []string // from spec, the Task's own slice: New copies it
	retry   RetryPolicy
	timeout time.Duration
	trigger TriggerRule
	in, out reflect.Type
	handler handlerFunc // nil when the Task's Handler is nil
	// A Map's: retry and timeout are then its items', and concurrency
	// bounds the items under way.
	mapped      bool
	concurrency int
	kept        reflect.Type // what a failed Map keeps of its items' outputs
	item, each  reflect.Type // a Map's I and O
	sub         bool         // a Sub: handler is nil when its child workflow is
	child       string       // a Sub's child workflow's name
	// For another engine (internal/plan): a Map's handler of one item, and
	// a Sub's child *Workflow.
	itemHandler   handlerFunc
	childWorkflow any
}

func (t Task[I, O]) spec() taskSpec {
	s := taskSpec{
		name:    t.Name,
		deps:    t.Dependencies,
		retry:   t.Retry,
		timeout: t.Timeout,
		trigger: t.Trigger,
		in:      reflect.TypeFor[I](),
		out:     reflect.TypeFor[O](),
	}
	if t.Handler != nil {
		s.handler = adapt(t.Handler)
	}
	return s
}

// adapt erases the types of h. The type links are checked in New, so the
// assertion fails only for a nil interface value, which becomes I's zero.
func adapt[I, O any](h func(context.Context, I) (O, error)) handlerFunc {
	return func(ctx context.Context, v any) (any, error) {
		in, ok := v.(I)
		if !ok && v != nil {
			return nil, Permanent(&engineError{newError(ErrTypeMismatch, "the handler takes %s, given %T", reflect.TypeFor[I](), v)})
		}
		out, err := h(ctx, in)
		if err != nil {
			return nil, err
		}
		return out, nil
	}
}

var inputsType = reflect.TypeFor[Inputs]()

// Inputs holds the outputs of a task's dependencies. A task with several
// dependencies declares its input type as Inputs and reads each value with
// Get.
type Inputs struct {
	p    *plan
	task int32
	// outputs is the run's, by task; unless snap is set (a task whose
	// trigger rule starts it before every dependency succeeded). Inputs
	// stays 48 bytes, the size class a handler's boxed input takes.
	outputs []any
	snap    *inputsSnapshot
}

// inputsSnapshot is what a task started by a trigger rule gets of its
// dependencies, in the order of plan.deps: their outputs and states when
// it started.
type inputsSnapshot struct {
	outputs []any
	states  []taskState
}

// Get returns the output of dependency task from in, as a T. It is an error
// wrapping ErrNotFound when task is not a dependency of the task that
// received in, and one wrapping ErrTypeMismatch when that task's output is
// not a T. Both are mistakes in the code, which another attempt cannot
// mend: the errors are Permanent, so a handler that returns them fails its
// task at once, whatever its RetryPolicy.
//
// In a task whose Trigger starts it when not every dependency succeeded,
// Get of a dependency that failed, timed out or was cancelled wraps
// ErrDependencyFailed; of one that was skipped, ErrDependencySkipped; of
// one not yet ended (OneSucceeded), ErrNotFound. These errors are
// Permanent too.
func Get[T any](in Inputs, task string) (T, error) {
	var zero T
	if in.p == nil {
		return zero, Permanent(newError(ErrNotFound, "Get(%q): empty Inputs", task))
	}
	idx, ok := in.p.index[task]
	if !ok || !in.p.dependsOn(in.task, idx) {
		var deps []string
		for _, d := range in.p.deps(in.task) {
			deps = append(deps, in.p.names[d])
		}
		return zero, Permanent(newError(ErrNotFound, "Get(%q): not a dependency of this task%s", task, suggest(task, deps)))
	}
	var v any
	if in.snap == nil {
		v = in.outputs[idx]
	} else {
		k, _ := slices.BinarySearch(in.p.deps(in.task), idx)
		if err := dependencyError(task, in.snap.states[k]); err != nil {
			return zero, err
		}
		v = in.snap.outputs[k]
	}
	if t, ok := v.(T); ok {
		return t, nil
	}
	want := reflect.TypeFor[T]()
	gives := in.p.tasks[idx].out
	if v == nil && gives.AssignableTo(want) {
		return zero, nil // a nil pointer or interface
	}
	return zero, Permanent(newError(ErrTypeMismatch, "Get[%s](%q): the task gives %s", want, task, gives))
}
