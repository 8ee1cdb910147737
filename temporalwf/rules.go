package temporalwf

import (
	"fmt"

	"github.com/b3b01171/workflow"
)

// rules applies the trigger rules as the in-process engine does (its
// resolve): for the workflow function, which tasks a task's end makes
// ready and which it skips; for Inspect, which skips to record, with the
// same reasons and in the same order. Only task indexes and states: it
// reads no map, so the workflow function stays deterministic.
type rules struct {
	d *dag
	// pending counts each task's dependencies not yet ended; -1 once a
	// OneSucceeded task was made ready before they all had.
	pending []int
	// state is each task's: "" until it starts or is skipped.
	state []workflow.State
}

// skipped is a task that a rule skipped, and why.
type skipped struct {
	task int
	why  string
}

func (d *dag) newRules() *rules {
	r := &rules{d: d, pending: make([]int, len(d.p.Tasks)), state: make([]workflow.State, len(d.p.Tasks))}
	for i := range d.p.Tasks {
		r.pending[i] = len(d.deps[i])
	}
	return r
}

// Trigger rules as plan names them.
const (
	allSucceeded = "all_succeeded"
	allDone      = "all_done"
	noneFailed   = "none_failed"
	oneSucceeded = "one_succeeded"
)

// stateWords say what became of a dependency, as the in-process engine's
// reasons word it.
var stateWords = map[workflow.State]string{
	workflow.StateSucceeded: "succeeded", workflow.StateFailed: "failed", workflow.StateTimedOut: "timed out",
	workflow.StateCancelled: "was cancelled", workflow.StateSkipped: "was skipped",
	"": "has not started", workflow.StateRunning: "is running",
}

func failedState(st workflow.State) bool {
	return st == workflow.StateFailed || st == workflow.StateTimedOut || st == workflow.StateCancelled
}

// ended records that task i ended in state st, and returns the tasks that
// became ready to start and those skipped in consequence (a skip is an end
// too, for the skipped task's own dependents), in the order the in-process
// engine records them.
func (r *rules) ended(i int, st workflow.State) (ready []int, skips []skipped) {
	r.state[i] = st
	work := []int{i}
	for len(work) > 0 {
		j := work[len(work)-1]
		work = work[:len(work)-1]
		st := r.state[j]
		for _, s := range r.d.succs[j] {
			if r.state[s] != "" || r.pending[s] < 0 {
				continue // started, ended, or made ready already (OneSucceeded)
			}
			r.pending[s]--
			var why string
			start := false
			switch r.d.p.Tasks[s].Trigger {
			case allDone:
				start = r.pending[s] == 0
			case noneFailed:
				switch {
				case failedState(st):
					why = fmt.Sprintf("dependency %q %s", r.d.p.Tasks[j].Name, stateWords[st])
				case r.pending[s] == 0:
					if start = r.anySucceeded(s); !start {
						why = "every dependency was skipped"
					}
				}
			case oneSucceeded:
				switch {
				case st == workflow.StateSucceeded:
					start = true
					if r.pending[s] > 0 {
						r.pending[s] = -1
					}
				case r.pending[s] == 0:
					why = "no dependency succeeded"
				}
			default: // all_succeeded
				if st != workflow.StateSucceeded {
					why = fmt.Sprintf("dependency %q %s", r.d.p.Tasks[j].Name, stateWords[st])
				} else {
					start = r.pending[s] == 0
				}
			}
			switch {
			case start:
				ready = append(ready, s)
			case why != "":
				r.state[s] = workflow.StateSkipped
				skips = append(skips, skipped{task: s, why: why})
				work = append(work, s)
			}
		}
	}
	return ready, skips
}

func (r *rules) anySucceeded(i int) bool {
	for _, d := range r.d.deps[i] {
		if r.state[d] == workflow.StateSucceeded {
			return true
		}
	}
	return false
}
