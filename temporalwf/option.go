package temporalwf

import (
	"fmt"
	"time"
)

// Option configures Start, Run and Schedule.
type Option func(*options)

type options struct {
	taskQueue  string
	runID      string
	runTimeout time.Duration
	scheduleID string
	errs       []string
}

func (o *options) bad(format string, args ...any) {
	o.errs = append(o.errs, fmt.Sprintf(format, args...))
}

// TaskQueue is the Temporal task queue the run's workflow and activities
// go to: the one a worker with the workflow registered polls. Start, Run
// and Schedule require it.
func TaskQueue(name string) Option {
	return func(o *options) {
		if name == "" {
			o.bad("TaskQueue(\"\"): the name must not be empty")
			return
		}
		o.taskQueue = name
	}
}

// RunID gives the run this ID, which is its Temporal workflow ID, instead
// of a random one. Temporal refuses a second run with the same ID, even
// after the first has ended (as long as it keeps the first's history).
func RunID(id string) Option {
	return func(o *options) {
		if id == "" {
			o.bad("RunID(\"\"): the ID must not be empty")
			return
		}
		o.runID = id
	}
}

// RunTimeout bounds the whole run: it is the Temporal workflow execution
// timeout. When d has passed the run ends in state "timed_out" and Wait
// returns an error wrapping workflow.ErrTimeout. 0 means no bound. For
// Schedule, it bounds each scheduled run.
func RunTimeout(d time.Duration) Option {
	return func(o *options) {
		if d < 0 {
			o.bad("RunTimeout(%v): the timeout must be ≥ 0", d)
			return
		}
		o.runTimeout = d
	}
}

// ScheduleID names the Temporal Schedule that Schedule creates or updates;
// the default is the workflow's name.
func ScheduleID(id string) Option {
	return func(o *options) {
		if id == "" {
			o.bad("ScheduleID(\"\"): the ID must not be empty")
			return
		}
		o.scheduleID = id
	}
}
