package workflow

import (
	"errors"
	"fmt"
	"strings"
)

// Sentinel errors, matched with errors.Is. A *WorkflowError wraps the one
// that applies; a definition error from New wraps ErrInvalidWorkflow and the
// sentinel of every problem found.
var (
	// ErrInvalidWorkflow marks an invalid workflow definition (from New) or
	// a method called on a Workflow that New did not build.
	ErrInvalidWorkflow = errors.New("invalid workflow")
	// ErrCycle marks a dependency cycle; the message names the tasks on it.
	ErrCycle = errors.New("dependency cycle")
	// ErrUnknownDependency marks a dependency on a task that does not exist.
	ErrUnknownDependency = errors.New("unknown dependency")
	// ErrDuplicateTask marks two tasks with the same name.
	ErrDuplicateTask = errors.New("duplicate task")
	// ErrTypeMismatch marks a task whose input type does not accept what it
	// is given: the output of its dependency, the workflow input, or (for the
	// workflow output) a sink whose output type is not Out.
	ErrTypeMismatch = errors.New("type mismatch")
	// ErrInvalidInput marks a value that failed validation, or an argument
	// that cannot be used (a nil context, for one).
	ErrInvalidInput = errors.New("invalid input")
	// ErrTimeout marks an attempt that outlived its task's Timeout, or a run
	// that outlived its RunTimeout.
	ErrTimeout = errors.New("timeout")
	// ErrPanic marks a handler that panicked; the WorkflowError's Details
	// hold the value under "panic" and the stack under "stack".
	ErrPanic = errors.New("task panicked")
	// ErrNotFound marks an unknown run ID or task name.
	ErrNotFound = errors.New("not found")
	// ErrCancelled marks a run stopped by its caller: its context ended or
	// Cancel was called.
	ErrCancelled = errors.New("cancelled")
	// ErrRunEnded marks a call that needs a run under way, such as Cancel,
	// made for a run that has already ended.
	ErrRunEnded = errors.New("run has ended")
	// ErrNotResumable marks Resume of a run that succeeded, is still
	// running, or whose stored input, tasks or outputs do not fit the
	// definition.
	ErrNotResumable = errors.New("run cannot be resumed")
	// ErrDuplicateRun marks a run ID (WithRunID) that the workflow's store
	// already holds.
	ErrDuplicateRun = errors.New("duplicate run ID")
	// ErrRunElsewhere marks a call, such as Cancel, about a run under way
	// in another Workflow value or another process sharing the store: only
	// the one running it can act on it.
	ErrRunElsewhere = errors.New("run is under way elsewhere")
	// ErrInvalidSchedule marks a Schedule whose cron text or time zone
	// cannot be used; the message quotes the text.
	ErrInvalidSchedule = errors.New("invalid schedule")
)

// WorkflowError is the error of a run that did not succeed, and of a
// workflow definition that New rejected. Errors.Is and errors.As reach the
// cause through Unwrap.
type WorkflowError struct {
	Workflow string
	RunID    string
	// Task is the task that failed; "" when the run itself failed (run
	// timeout, invalid workflow input, cancellation, invalid definition).
	Task string
	// Attempts is the number of attempts the failed task made.
	Attempts int
	// Message says what went wrong, without the cause.
	Message string
	// Details holds structured facts: "stack" and "panic" after a panic,
	// "fields" (map of field to failed rule) after validation, "problems"
	// ([]string) for an invalid definition.
	Details map[string]any
	// Err is the cause.
	Err error
}

// Error describes the failure: the workflow, run, task and cause.
func (e *WorkflowError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "workflow %q", e.Workflow)
	if e.RunID != "" {
		fmt.Fprintf(&b, " run %s", e.RunID)
	}
	if e.Task != "" {
		fmt.Fprintf(&b, ": task %q", e.Task)
		if e.Attempts > 1 {
			fmt.Fprintf(&b, " (%d attempts)", e.Attempts)
		}
	}
	if e.Message != "" {
		b.WriteString(": ")
		b.WriteString(e.Message)
	}
	if e.Err != nil {
		b.WriteString(": ")
		b.WriteString(e.Err.Error())
	}
	return b.String()
}

// Unwrap returns the cause.
func (e *WorkflowError) Unwrap() error { return e.Err }

// Permanent marks err as not worth retrying: a task whose handler returns it
// fails at once, whatever its RetryPolicy. errors.Is and errors.As still
// reach err. Permanent(nil) is nil.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return &permanentError{err: err}
}

type permanentError struct{ err error }

func (p *permanentError) Error() string { return p.err.Error() }
func (p *permanentError) Unwrap() error { return p.err }

// isPermanent reports whether err was wrapped by Permanent.
func isPermanent(err error) bool {
	var p *permanentError
	return errors.As(err, &p)
}

// problems is the joined error of an invalid definition: every problem on
// its own line of the message, every sentinel reachable by errors.Is.
type problems []error

func (p problems) Error() string { return strings.Join(p.strings(), "; ") }

func (p problems) Unwrap() []error {
	return append([]error{ErrInvalidWorkflow}, p...)
}

func (p problems) strings() []string {
	out := make([]string, len(p))
	for i, e := range p {
		out[i] = e.Error()
	}
	return out
}
