package workflow

import (
	"context"
	"fmt"
	"reflect"
	"time"

	"github.com/robfig/cron/v3"
)

// Schedule says when a workflow runs by itself, once a Scheduler has it.
type Schedule struct {
	// Cron is a standard five-field cron expression ("0 0 * * *") or a
	// descriptor ("@daily", "@hourly", "@every 90s").
	Cron string
	// Timezone is the IANA name of the zone whose wall clock Cron follows
	// ("America/New_York"); "" means UTC.
	Timezone string
	// Overlap says what a fire does while the previous run is still going;
	// the zero value is OverlapSkip.
	Overlap OverlapPolicy
}

// OverlapPolicy says what a scheduled fire does while the workflow's
// previous scheduled run is still going.
type OverlapPolicy int

const (
	// OverlapSkip skips the fire; it is logged and passed to the hooks as an
	// Event of type "schedule_skipped".
	OverlapSkip OverlapPolicy = iota
	// OverlapAllow starts the run alongside the one under way.
	OverlapAllow
	// OverlapQueue keeps at most one fire waiting, started when the run
	// under way ends; fires while one waits are skipped.
	OverlapQueue
)

// String returns the policy's name.
func (o OverlapPolicy) String() string {
	switch o {
	case OverlapSkip:
		return "skip"
	case OverlapAllow:
		return "allow"
	case OverlapQueue:
		return "queue"
	}
	return fmt.Sprintf("OverlapPolicy(%d)", int(o))
}

// WithSchedule gives the workflow a schedule for a Scheduler to run it by.
// New rejects a bad cron text or unknown time zone with an error wrapping
// ErrInvalidSchedule.
func WithSchedule(s Schedule) Option {
	return func(c *config) { c.schedule = &s }
}

// scheduleInput is a WithScheduleInput function with its result type erased.
type scheduleInput struct {
	typ reflect.Type
	fn  func(ctx context.Context, fired time.Time) (any, error)
}

// WithScheduleInput makes each scheduled run take its input from fn, called
// with the fire time. In must be the workflow's In type. An error from fn
// fails that run, which is recorded; the scheduler goes on.
func WithScheduleInput[In any](fn func(ctx context.Context, fired time.Time) (In, error)) Option {
	return func(c *config) {
		if fn == nil {
			c.bad("WithScheduleInput(nil)")
			return
		}
		c.scheduleInput = &scheduleInput{
			typ: reflect.TypeFor[In](),
			fn: func(ctx context.Context, fired time.Time) (any, error) {
				return fn(ctx, fired)
			},
		}
	}
}

var cronParser = cron.NewParser(cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)

// parsedSchedule is a checked Schedule.
type parsedSchedule struct {
	Schedule
	loc   *time.Location
	sched cron.Schedule
}

func parseSchedule(s Schedule) (*parsedSchedule, error) {
	loc := time.UTC
	if s.Timezone != "" {
		l, err := time.LoadLocation(s.Timezone)
		if err != nil {
			return nil, fmt.Errorf("%w: time zone %q: %w", ErrInvalidSchedule, s.Timezone, err)
		}
		loc = l
	}
	sched, err := cronParser.Parse(s.Cron)
	if err != nil {
		return nil, fmt.Errorf("%w: cron %q: %w", ErrInvalidSchedule, s.Cron, err)
	}
	if s.Overlap < OverlapSkip || s.Overlap > OverlapQueue {
		return nil, fmt.Errorf("%w: unknown overlap policy %d", ErrInvalidSchedule, int(s.Overlap))
	}
	return &parsedSchedule{Schedule: s, loc: loc, sched: sched}, nil
}

// checkSchedule checks the schedule options of a definition.
func checkSchedule(c *config, in reflect.Type) problems {
	var errs problems
	if c.schedule != nil {
		if _, err := parseSchedule(*c.schedule); err != nil {
			errs = append(errs, err)
		}
	}
	if si := c.scheduleInput; si != nil {
		if si.typ != in {
			errs = append(errs, fmt.Errorf("%w: WithScheduleInput gives %s, but the workflow input is %s", ErrTypeMismatch, si.typ, in))
		}
		if c.schedule == nil {
			errs = append(errs, fmt.Errorf("%w: WithScheduleInput without WithSchedule", ErrInvalidWorkflow))
		}
	}
	return errs
}
