package workflow

import (
	"errors"
	"fmt"
)

// TriggerRule says which ends of its dependencies start a task (its Trigger
// field). A task whose rule can no longer be met is skipped, with the reason
// in its TaskStatus.Error, and that counts as an end for its own dependents:
// with the default rule, a failure or a skip upstream skips everything
// downstream.
//
// What a failure cancels: in a workflow where every task keeps the default
// rule, the first task that fails for good (failed, timed out, or cancelled
// by its handler) cancels the tasks under way and nothing more starts, as
// there is nothing left to run. In a workflow where some task has another
// rule, a failure cancels nothing: every task runs or is skipped as its rule
// says, so that a cleanup task with AllDone always runs; the run then ends
// failed, naming the first task that failed. A run that is cancelled or
// times out as a whole ends at once: nothing more starts, whatever the
// rules.
//
// Resume and RetryOnFailure run again the tasks that did not succeed, and
// their rules are applied again; a task that succeeded is not run again,
// even one that ran on the outputs of fewer dependencies than a new pass
// gives (an AllDone task after a failure, say): it keeps its output.
type TriggerRule int

const (
	// AllSucceeded starts the task once every dependency succeeded; the
	// default. A dependency that fails or is skipped skips the task.
	AllSucceeded TriggerRule = iota
	// AllDone starts the task once every dependency ended, in any state.
	AllDone
	// NoneFailed starts the task once every dependency succeeded or was
	// skipped, at least one having succeeded. A dependency that failed,
	// timed out or was cancelled skips the task, and so do dependencies all
	// skipped.
	NoneFailed
	// OneSucceeded starts the task as soon as any dependency succeeded,
	// without waiting for the others, which go on running (their outputs
	// land in history) unless the run ends. Dependencies that all ended
	// without one succeeding skip the task.
	OneSucceeded
)

// String returns the rule's name: "all_succeeded", "all_done",
// "none_failed" or "one_succeeded".
func (t TriggerRule) String() string {
	switch t {
	case AllSucceeded:
		return "all_succeeded"
	case AllDone:
		return "all_done"
	case NoneFailed:
		return "none_failed"
	case OneSucceeded:
		return "one_succeeded"
	}
	return fmt.Sprintf("TriggerRule(%d)", int(t))
}

// Skip returns an error that, returned by a handler (wrapped or not), ends
// its task skipped rather than failed, with reason in its status and
// history. It is never retried. The task's dependents are then started or
// skipped as their trigger rules say: with the default rule, they are
// skipped too. A run whose tasks all succeeded or were skipped succeeds;
// when the task giving the workflow's output was skipped, the run's output
// is the zero Out, and the output task's TaskStatus says skipped.
func Skip(reason string) error {
	return &skipError{reason: reason}
}

type skipError struct{ reason string }

func (s *skipError) Error() string { return "skipped: " + s.reason }

// skipReason reports whether err asks to skip the task, and why.
func skipReason(err error) (string, bool) {
	var s *skipError
	if errors.As(err, &s) {
		return s.reason, true
	}
	return "", false
}

// dependencyError is Get's error for dependency task ended in state st
// (nil if it succeeded).
func dependencyError(task string, st taskState) error {
	switch st {
	case tsSucceeded:
		return nil
	case tsSkipped:
		return Permanent(newError(ErrDependencySkipped, "Get(%q): the dependency was skipped", task))
	case tsFailed, tsTimedOut, tsCancelled:
		return Permanent(newError(ErrDependencyFailed, "Get(%q): the dependency %s", task, stateWords[st]))
	}
	return Permanent(newError(ErrNotFound, "Get(%q): the dependency has not ended (OneSucceeded started this task first)", task))
}

var stateWords = [...]string{
	tsPending: "has not started", tsRunning: "is running", tsSucceeded: "succeeded",
	tsFailed: "failed", tsTimedOut: "timed out", tsCancelled: "was cancelled", tsSkipped: "was skipped",
}

// failedState reports whether st is a failure: failed, timed out or
// cancelled.
func failedState(st taskState) bool {
	return st == tsFailed || st == tsTimedOut || st == tsCancelled
}

// resolve counts task i, just ended in its state r.state[i], as done for
// its successors, and starts or skips each as its trigger rule says; a skip
// is an end too, for its own successors. The caller holds r.mu. It is
// unblock's general form, for runs with trigger rules or skips.
func (r *run) resolve(i int32) {
	p := r.e.plan
	var stack [8]int32 // the tasks whose ends are yet to count; grows on the heap past 8
	work := append(stack[:0], i)
	for len(work) > 0 {
		j := work[len(work)-1]
		work = work[:len(work)-1]
		st := r.state[j]
		for _, s := range p.succs(j) {
			if r.state[s] != tsPending || r.pending[s] < 0 {
				continue // started, ended, or queued already (OneSucceeded)
			}
			r.pending[s]--
			var why string
			start := false
			switch p.tasks[s].trigger {
			case AllSucceeded:
				if st != tsSucceeded {
					why = fmt.Sprintf("dependency %q %s", p.names[j], stateWords[st])
				} else {
					start = r.pending[s] == 0
				}
			case AllDone:
				start = r.pending[s] == 0
			case NoneFailed:
				switch {
				case failedState(st):
					why = fmt.Sprintf("dependency %q %s", p.names[j], stateWords[st])
				case r.pending[s] == 0:
					if start = r.anySucceeded(s); !start {
						why = "every dependency was skipped"
					}
				}
			case OneSucceeded:
				switch {
				case st == tsSucceeded:
					start = true
					if r.pending[s] > 0 {
						r.pending[s] = -1 // queued before every dependency ended
					}
				case r.pending[s] == 0:
					why = "no dependency succeeded"
				}
			}
			switch {
			case start:
				r.queue = append(r.queue, s)
			case why != "":
				r.skip(s, why, 0)
				work = append(work, s)
			}
		}
	}
}

// anySucceeded reports whether some dependency of task i succeeded.
func (r *run) anySucceeded(i int32) bool {
	for _, d := range r.e.plan.deps(i) {
		if r.state[d] == tsSucceeded {
			return true
		}
	}
	return false
}

// skip ends task i as skipped because of why: by a rule before it started
// (attempt 0), or by its handler in attempt attempt. The caller holds
// r.mu.
func (r *run) skip(i int32, why string, attempt int) {
	r.state[i] = tsSkipped
	r.left--
	r.skips = true
	r.emitTask(i, Event{Type: EventTaskSkipped, Attempt: attempt, Error: why})
}

// rulesInputs is the Inputs of task i, whose trigger rule may start it
// before every dependency succeeded: a snapshot of its dependencies'
// outputs and states. The caller holds r.mu.
func (r *run) rulesInputs(i int32) Inputs {
	deps := r.e.plan.deps(i)
	snap := &inputsSnapshot{outputs: make([]any, len(deps)), states: make([]taskState, len(deps))}
	in := Inputs{p: r.e.plan, task: i, snap: snap}
	for k, d := range deps {
		snap.outputs[k], snap.states[k] = r.outputs[d], r.state[d]
	}
	return in
}
