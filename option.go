package workflow

import (
	"context"
	"log/slog"
	"reflect"
	"strings"
	"time"

	"github.com/go-playground/validator/v10"
)

// Option configures a Workflow in New.
type Option func(*config)

type config struct {
	maxConcurrency int
	store          Store
	logger         *slog.Logger
	output         string
	hooks          []func(Event)
	validate       *validator.Validate
	schedule       *Schedule
	scheduleInput  *scheduleInput
	codec          Codec
	middleware     []func(TaskHandler) TaskHandler
	errs           []error
}

func (c *config) bad(format string, args ...any) {
	c.errs = append(c.errs, newError(ErrInvalidWorkflow, format, args...))
}

// WithMaxConcurrency bounds how many tasks of one run execute at once.
// 0, the default, means no bound: every ready task starts at once.
func WithMaxConcurrency(n int) Option {
	return func(c *config) {
		if n < 0 {
			c.bad("WithMaxConcurrency(%d): the bound must be ≥ 0", n)
			return
		}
		c.maxConcurrency = n
	}
}

// WithStore keeps status and history in s instead of a MemoryStore of the
// workflow's own. Workflows that share a store and a name share history.
func WithStore(s Store) Option {
	return func(c *config) {
		if s == nil || (reflect.ValueOf(s).Kind() == reflect.Pointer && reflect.ValueOf(s).IsNil()) {
			c.bad("WithStore(nil)")
			return
		}
		c.store = s
	}
}

// WithLogger logs run and task starts, retries, failures and ends to l.
// Task starts and successes are logged at Debug, retries at Warn, failures
// at Error, run ends at Info (or Error when the run did not succeed). The
// logger is called as hooks are (see WithHook): outside the run's lock,
// and a handler that panics or calls runtime.Goexit loses that line only.
func WithLogger(l *slog.Logger) Option {
	return func(c *config) { c.logger = l }
}

// WithOutput makes the output of the named task the workflow's output. It
// is needed when the workflow has more than one task without dependents.
func WithOutput(task string) Option {
	return func(c *config) { c.output = task }
}

// WithHook calls h with every Event of every run, in order for each run,
// and with the scheduler's schedule_skipped events. Hooks run on a
// goroutine of the run's own, never under its lock, so a hook may block or
// call Cancel or Wait on its own run (a hook waiting for its run gets the
// run's result once the run has ended, without waiting for itself). Run
// and Wait return once every hook has been given the run's last event. A
// hook that panics or calls
// runtime.Goexit misses that event, and it is logged (on the workflow's
// logger, or slog.Default()); the run goes on unharmed.
func WithHook(h func(Event)) Option {
	return func(c *config) {
		if h == nil {
			c.bad("WithHook(nil)")
			return
		}
		c.hooks = append(c.hooks, h)
	}
}

// WithValidator checks inputs and outputs with v instead of a default
// validator (one made with validator.WithRequiredStructEnabled).
func WithValidator(v *validator.Validate) Option {
	return func(c *config) {
		if v == nil {
			c.bad("WithValidator(nil)")
			return
		}
		c.validate = v
	}
}

// RunOption configures one run, in Run, Start or Resume.
type RunOption func(*runConfig)

type runConfig struct {
	timeout     time.Duration
	retries     int
	runID       string
	replace     map[string]replacement
	retry       map[string]RetryPolicy
	taskTimeout map[string]time.Duration
	trigger     string
	parentRunID string
	byParent    bool // resumed by its parent's Sub task
	scheduledAt time.Time
	inputErr    error // set by the scheduler when the schedule's input failed
	errs        []error
}

type replacement struct {
	handler handlerFunc
	in, out reflect.Type
}

func (c *runConfig) bad(format string, args ...any) {
	c.errs = append(c.errs, newError(ErrInvalidInput, format, args...))
}

// RunTimeout bounds the whole run: when d has passed the run ends in state
// "timed_out" and Run returns an error wrapping ErrTimeout, even if
// handlers ignore their context (they are left to finish, their results
// dropped). 0 means no bound beyond the context's.
func RunTimeout(d time.Duration) RunOption {
	return func(c *runConfig) {
		if d < 0 {
			c.bad("RunTimeout(%v): the timeout must be ≥ 0", d)
			return
		}
		c.timeout = d
	}
}

// RetryOnFailure makes a failed run try again up to n more times under the
// same run ID, reusing the outputs of the tasks that already succeeded and
// running the others afresh. A run that timed out or was cancelled is not
// retried.
func RetryOnFailure(n int) RunOption {
	return func(c *runConfig) {
		if n < 0 {
			c.bad("RetryOnFailure(%d): the count must be ≥ 0", n)
			return
		}
		c.retries = n
	}
}

// WithRunID gives the run this ID instead of a random one. A workflow's
// store refuses a second run with the same ID.
func WithRunID(id string) RunOption {
	return func(c *runConfig) {
		if id == "" {
			c.bad("WithRunID(\"\"): the ID must not be empty")
			return
		}
		c.runID = id
	}
}

// ReplaceTask runs h instead of the named task's handler, for this run
// only: a test's way to stub a task. Run returns an error wrapping
// ErrNotFound for an unknown task and ErrTypeMismatch when I or O differ
// from the task's types.
func ReplaceTask[I, O any](task string, h func(context.Context, I) (O, error)) RunOption {
	return func(c *runConfig) {
		if h == nil {
			c.bad("ReplaceTask(%q, nil): the handler is nil", task)
			return
		}
		if c.replace == nil {
			c.replace = map[string]replacement{}
		}
		c.replace[task] = replacement{handler: adapt(h), in: reflect.TypeFor[I](), out: reflect.TypeFor[O]()}
	}
}

// OverrideRetry gives the named task the retry policy p instead of its
// own, for this run only: a test's way to shorten delays or add attempts
// without changing the definition. Run returns an error wrapping
// ErrNotFound for an unknown task, as ReplaceTask does, and ErrInvalidInput
// for a policy New would refuse.
func OverrideRetry(task string, p RetryPolicy) RunOption {
	return func(c *runConfig) {
		if problems := p.validate(); len(problems) > 0 {
			c.bad("OverrideRetry(%q): %s", task, strings.Join(problems, "; "))
			return
		}
		if c.retry == nil {
			c.retry = map[string]RetryPolicy{}
		}
		c.retry[task] = p
	}
}

// OverrideTimeout gives each attempt of the named task the timeout d
// instead of its own (0: no timeout), for this run only. Run returns an
// error wrapping ErrNotFound for an unknown task, and ErrInvalidInput for
// d < 0.
func OverrideTimeout(task string, d time.Duration) RunOption {
	return func(c *runConfig) {
		if d < 0 {
			c.bad("OverrideTimeout(%q, %v): the timeout must be ≥ 0", task, d)
			return
		}
		if c.taskTimeout == nil {
			c.taskTimeout = map[string]time.Duration{}
		}
		c.taskTimeout[task] = d
	}
}

// withTrigger marks a run started by the scheduler.
func withTrigger(trigger string, scheduledAt time.Time) RunOption {
	return func(c *runConfig) { c.trigger, c.scheduledAt = trigger, scheduledAt.UTC() }
}

// withInputError records the run as failed before any task, with err.
func withInputError(err error) RunOption {
	return func(c *runConfig) { c.inputErr = err }
}

func newRunConfig(opts []RunOption) (runConfig, error) {
	rc := runConfig{trigger: TriggerManual}
	for _, o := range opts {
		if o != nil {
			o(&rc)
		}
	}
	return rc, joinErrors(rc.errs)
}

// Triggers of a run, as RunStatus.Trigger reports them.
const (
	TriggerManual   = "manual"
	TriggerSchedule = "schedule"
	// TriggerParent marks the run of a child workflow started by a Sub
	// task of another run, whose ID is the child's RunStatus.ParentRunID.
	TriggerParent = "parent"
)
