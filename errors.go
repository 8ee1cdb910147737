package workflow

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Sentinel errors, matched with errors.Is. A *WorkflowError wraps the one
// that applies; a definition error from New wraps ErrInvalidWorkflow and the
// sentinel of every problem found. Messages never print a sentinel's text:
// they say what happened in words (see "Errors" in the package doc).
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
	// workflow output) a sink whose output type is not Out; and a Get of a
	// dependency as a type its output is not.
	ErrTypeMismatch = errors.New("type mismatch")
	// ErrInvalidInput marks a value that failed validation, or an argument
	// that cannot be used (a nil context, for one).
	ErrInvalidInput = errors.New("invalid input")
	// ErrTimeout marks an attempt that outlived its task's Timeout, or a run
	// that outlived its RunTimeout or the deadline of its context (that
	// error wraps context.DeadlineExceeded too).
	ErrTimeout = errors.New("timeout")
	// ErrPanic marks a handler that panicked; the WorkflowError's Details
	// hold the value under "panic" and the stack under "stack".
	ErrPanic = errors.New("task panicked")
	// ErrNotFound marks an unknown run ID or task name, and a Get of a task
	// that is not a dependency.
	ErrNotFound = errors.New("not found")
	// ErrCancelled marks a run stopped by its caller: its context was
	// cancelled or Cancel was called. (A context that passed its deadline
	// times the run out: ErrTimeout.)
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
	// ErrDuplicateWorkflow marks a second Scheduler.Register of a workflow
	// name already registered.
	ErrDuplicateWorkflow = errors.New("workflow already registered")
	// ErrDependencyFailed marks a Get of a dependency that failed, timed
	// out or was cancelled, in a task whose Trigger let it start anyway.
	ErrDependencyFailed = errors.New("dependency failed")
	// ErrDependencySkipped marks a Get of a dependency that was skipped
	// (see Skip and TriggerRule), in a task whose Trigger let it start
	// anyway.
	ErrDependencySkipped = errors.New("dependency skipped")
)

// WorkflowError is the error of a run that did not succeed, and of a
// workflow definition that New rejected. Errors.Is and errors.As reach the
// cause through Unwrap.
//
// Its message reads "workflow W run R: what happened: Message", for
// instance
//
//	workflow "etl" run r1: task "save" failed after 3 attempts: writing summary of u-42: disk full
//	workflow "etl" run r1: cancelled: Cancel called
//	workflow "etl": invalid definition: task 0 has an empty name; task "load" has a nil Handler
type WorkflowError struct {
	Workflow string
	RunID    string
	// Task is the task that failed; "" when the run itself failed (run
	// timeout, invalid workflow input, cancellation, invalid definition).
	Task string
	// Attempts is the number of attempts the failed task made.
	Attempts int
	// Message is the cause's own message: the text of the error the
	// handler returned ("writing summary of u-42: disk full"), the fields
	// that failed validation, the problems of a definition. When it is
	// empty, Error prints Err's.
	Message string
	// Details holds structured facts. A task's failure has "attempts"
	// (int), "state" (the task's end State) and "error_type" (the Go type
	// of the error its handler returned, as fmt's %T prints it, before the
	// library wrapped it; "<nil>" when it returned none: it panicked,
	// outlived its Timeout, or never ran). Also: "panic" and "stack" after
	// a panic; "fields" (map of field to failed rule) and "stage" after
	// validation; "problems" ([]string) for an invalid definition.
	Details map[string]any
	// Err is the cause, with the sentinels that apply.
	Err error

	// what says what happened: for a task, the verb after its name
	// ("failed" when empty); for the run, the phrase before Message.
	what string
}

// Error describes the failure in one line: the workflow, the run, what
// happened (the task, its attempts) and the cause.
func (e *WorkflowError) Error() string {
	var b strings.Builder
	writePrefix(&b, e.Workflow, e.RunID)
	switch {
	case e.Task != "":
		what := e.what
		if what == "" {
			what = "failed"
		}
		fmt.Fprintf(&b, ": task %q %s", e.Task, what)
		if e.Attempts > 1 {
			fmt.Fprintf(&b, " after %d attempts", e.Attempts)
		}
	case e.what != "":
		b.WriteString(": ")
		b.WriteString(e.what)
	}
	msg := e.Message
	if msg == "" && e.Err != nil {
		msg = e.Err.Error()
	}
	if msg != "" {
		b.WriteString(": ")
		b.WriteString(msg)
	}
	return b.String()
}

// Unwrap returns the cause.
func (e *WorkflowError) Unwrap() error { return e.Err }

// writePrefix writes how every error of the package begins: "workflow",
// its name when known, and the run once there is one.
func writePrefix(b *strings.Builder, workflow, runID string) {
	b.WriteString("workflow")
	if workflow != "" {
		b.WriteString(" ")
		b.WriteString(strconv.Quote(workflow))
	}
	if runID != "" {
		b.WriteString(" run ")
		if q := strconv.Quote(runID); q[1:len(q)-1] == runID && !strings.ContainsAny(runID, " :;") {
			b.WriteString(runID)
		} else {
			b.WriteString(q)
		}
	}
}

// opError is the error of an operation (a method, an option) on a workflow
// or one of its runs: "workflow W run R: op: err". workflow, runID and op
// may be empty.
func opError(workflow, runID, op string, err error) error {
	var b strings.Builder
	writePrefix(&b, workflow, runID)
	if op != "" {
		b.WriteString(": ")
		b.WriteString(op)
	}
	b.WriteString(": ")
	b.WriteString(err.Error())
	return &libError{msg: b.String(), errs: []error{err}}
}

// libError is an error of this package whose message says what happened in
// words, while errors.Is and errors.As reach the errors it wraps —
// sentinels included — without their text repeating in the message.
type libError struct {
	msg  string
	errs []error
}

func (e *libError) Error() string   { return e.msg }
func (e *libError) Unwrap() []error { return e.errs }

// newError formats a message as fmt.Errorf does (%w included) and wraps
// sentinel too, without printing it.
func newError(sentinel error, format string, args ...any) error {
	err := fmt.Errorf(format, args...)
	return &libError{msg: err.Error(), errs: []error{sentinel, err}}
}

// reword is err with msg as its message; errors.Is and errors.As still
// reach err.
func reword(err error, msg string) error {
	return &libError{msg: msg, errs: []error{err}}
}

// joinErrors joins errs into one error of one line, the messages separated
// by "; "; nil when there are none. errors.Join would put each on a line.
func joinErrors(errs []error) error {
	switch len(errs) {
	case 0:
		return nil
	case 1:
		return errs[0]
	}
	return &libError{msg: strings.Join(problems(errs).strings(), "; "), errs: errs}
}

// engineError is a task's failure found by the engine itself (the handler
// called runtime.Goexit, or its output could not be recorded): the handler
// returned no error.
type engineError struct{ err error }

func (e *engineError) Error() string { return e.err.Error() }
func (e *engineError) Unwrap() error { return e.err }

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

// handlerErrorType is the Go type of the error a handler returned, as %T
// prints it, found in err, the error its task failed with: under the
// wrappers the library adds (Permanent, an attempt's timeout), and "<nil>"
// when the handler returned none.
func handlerErrorType(err error) string {
	for {
		switch e := err.(type) {
		case *permanentError:
			err = e.err
		case *timeoutError:
			err = e.cause
		case *panicError, *engineError:
			err = nil
		default:
			return fmt.Sprintf("%T", err)
		}
	}
}

// problems is the joined error of an invalid definition: every problem in
// one line of the message, separated by "; ", every sentinel reachable by
// errors.Is.
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

// suggest is the name in names closest to name, as " (did you mean %q?)",
// when one is close enough to be a likely typo; "" otherwise.
func suggest(name string, names []string) string {
	best, bestD := "", -1
	n := utf8.RuneCountInString(name)
	limit := max(1, n/3)
	for _, c := range names {
		if c == "" || c == name {
			continue
		}
		// A difference of case only counts as none.
		d := editDistance(strings.ToLower(name), strings.ToLower(c))
		if d <= limit && (d < n || d == 0) && (bestD < 0 || d < bestD) {
			best, bestD = c, d
		}
	}
	if bestD < 0 {
		return ""
	}
	return fmt.Sprintf(" (did you mean %q?)", best)
}

// editDistance is the optimal string alignment distance between a and b:
// the insertions, deletions, substitutions and transpositions of adjacent
// runes that turn one into the other.
func editDistance(a, b string) int {
	s, t := []rune(a), []rune(b)
	prev2 := make([]int, len(t)+1)
	prev := make([]int, len(t)+1)
	cur := make([]int, len(t)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(s); i++ {
		cur[0] = i
		for j := 1; j <= len(t); j++ {
			cost := 1
			if s[i-1] == t[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
			if i > 1 && j > 1 && s[i-1] == t[j-2] && s[i-2] == t[j-1] {
				cur[j] = min(cur[j], prev2[j-2]+1)
			}
		}
		prev2, prev, cur = prev, cur, prev2
	}
	return prev[len(t)]
}
