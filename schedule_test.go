package workflow_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/b3b01171/workflow"
)

// The synctest clock starts at midnight UTC, 2000-01-01.
var schedEpoch = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)

type nothing = struct{}

// schedFlow builds a one-task workflow on sched whose task runs h.
func schedFlow(t *testing.T, name string, sched workflow.Schedule, h func(context.Context, nothing) (nothing, error), opts ...workflow.Option) *workflow.Workflow[nothing, nothing] {
	t.Helper()
	w, err := workflow.New[nothing, nothing](name,
		workflow.Tasks{workflow.Task[nothing, nothing]{Name: "work", Handler: h}},
		append([]workflow.Option{workflow.WithSchedule(sched)}, opts...)...)
	require.NoError(t, err)
	return w
}

// schedNoop is a handler that does nothing.
func schedNoop(context.Context, nothing) (nothing, error) { return nothing{}, nil }

// schedSlow is a handler that works for d, or until its context ends.
func schedSlow(d time.Duration) func(context.Context, nothing) (nothing, error) {
	return func(ctx context.Context, _ nothing) (nothing, error) {
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-t.C:
			return nothing{}, nil
		case <-ctx.Done():
			return nothing{}, context.Cause(ctx)
		}
	}
}

// schedStarted returns a scheduler already started with ws registered.
func schedStarted(t *testing.T, opts []workflow.SchedulerOption, ws ...workflow.ScheduledWorkflow) *workflow.Scheduler {
	t.Helper()
	s := workflow.NewScheduler(opts...)
	for _, w := range ws {
		require.NoError(t, s.Register(w))
	}
	s.Start()
	return s
}

// schedHistory returns the runs of w, oldest first.
func schedHistory(t *testing.T, w interface {
	History(context.Context, ...workflow.HistoryOption) ([]workflow.RunStatus, error)
}) []workflow.RunStatus {
	t.Helper()
	h, err := w.History(context.Background())
	require.NoError(t, err)
	for i, j := 0, len(h)-1; i < j; i, j = i+1, j-1 {
		h[i], h[j] = h[j], h[i]
	}
	return h
}

func schedTimes(runs []workflow.RunStatus, field func(workflow.RunStatus) time.Time) []time.Duration {
	out := make([]time.Duration, len(runs))
	for i, rs := range runs {
		out[i] = field(rs).Sub(schedEpoch)
	}
	return out
}

func scheduledAt(rs workflow.RunStatus) time.Time { return rs.ScheduledAt }
func startedAt(rs workflow.RunStatus) time.Time   { return rs.StartedAt }

// schedEvents collects the events a hook sees.
type schedEvents struct {
	mu     sync.Mutex
	events []workflow.Event
}

func (c *schedEvents) hook(ev workflow.Event) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.events = append(c.events, ev)
}

func (c *schedEvents) ofType(typ string) []workflow.Event {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []workflow.Event
	for _, ev := range c.events {
		if ev.Type == typ {
			out = append(out, ev)
		}
	}
	return out
}

// schedLog is a logger whose output a test reads.
type schedLog struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *schedLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *schedLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

func (l *schedLog) logger() *slog.Logger {
	return slog.New(slog.NewTextHandler(l, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

func TestScheduleEveryHourFires24TimesInADay(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var fires atomic.Int32
		w := schedFlow(t, "hourly", workflow.Schedule{Cron: "@every 1h"}, func(context.Context, nothing) (nothing, error) {
			fires.Add(1)
			return nothing{}, nil
		})
		s := schedStarted(t, nil, w)

		time.Sleep(24*time.Hour - time.Minute)
		synctest.Wait()
		require.EqualValues(t, 23, fires.Load(), "fires before the 24th hour")
		time.Sleep(2 * time.Minute)
		synctest.Wait()
		require.EqualValues(t, 24, fires.Load(), "fires in a day")
		require.NoError(t, s.Stop(t.Context()))

		runs := schedHistory(t, w)
		require.Len(t, runs, 24)
		for i, rs := range runs {
			want := schedEpoch.Add(time.Duration(i+1) * time.Hour)
			require.Equal(t, workflow.TriggerSchedule, rs.Trigger)
			require.Equal(t, workflow.StateSucceeded, rs.State)
			require.True(t, want.Equal(rs.ScheduledAt), "run %d scheduled at %v, want %v", i, rs.ScheduledAt, want)
			require.True(t, want.Equal(rs.StartedAt), "run %d started at %v, want %v", i, rs.StartedAt, want)
		}
		last, err := w.Status(t.Context())
		require.NoError(t, err)
		require.Equal(t, workflow.TriggerSchedule, last.Trigger)
		require.True(t, schedEpoch.Add(24*time.Hour).Equal(last.ScheduledAt))
	})
}

func TestOverlapSkipSkipsFiresWhileTheRunGoesOnAndTellsTheHooks(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var seen schedEvents
		var wlog, slog schedLog
		w := schedFlow(t, "skipper", workflow.Schedule{Cron: "@every 1m"}, schedSlow(150*time.Second),
			workflow.WithHook(seen.hook),
			workflow.WithHook(func(workflow.Event) { panic("a hook that panics") }),
			workflow.WithLogger(wlog.logger()))
		s := schedStarted(t, []workflow.SchedulerOption{workflow.WithSchedulerLogger(slog.logger())}, w)

		// Fires at 1m (runs to 3m30), 2m and 3m (skipped), 4m (runs).
		time.Sleep(4*time.Minute + 30*time.Second)
		synctest.Wait()
		require.NoError(t, s.Stop(t.Context()))

		runs := schedHistory(t, w)
		require.Equal(t, []time.Duration{time.Minute, 4 * time.Minute}, schedTimes(runs, scheduledAt))
		skipped := seen.ofType(workflow.EventScheduleSkipped)
		require.Len(t, skipped, 2)
		for i, ev := range skipped {
			at := schedEpoch.Add(time.Duration(i+2) * time.Minute)
			require.True(t, at.Equal(ev.Time), "skip %d at %v, want %v", i, ev.Time, at)
			require.Empty(t, ev.RunID, "a skipped fire belongs to no run")
			require.Contains(t, ev.Error, at.Format(time.RFC3339))
			require.Contains(t, ev.Error, "still going")
		}
		require.Contains(t, wlog.String(), "schedule_skipped", "the workflow's logger sees the event")
		require.Contains(t, slog.String(), "scheduled fire skipped", "the scheduler's logger logs the skip")
		require.Equal(t, schedEpoch.Add(4*time.Minute), s.Entries()[0].Prev.UTC())
	})
}

func TestOverlapAllowRunsSideBySide(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var seen schedEvents
		var now, most atomic.Int32
		slow := schedSlow(150 * time.Second)
		w := schedFlow(t, "allower", workflow.Schedule{Cron: "@every 1m", Overlap: workflow.OverlapAllow},
			func(ctx context.Context, in nothing) (nothing, error) {
				n := now.Add(1)
				defer now.Add(-1)
				for {
					m := most.Load()
					if n <= m || most.CompareAndSwap(m, n) {
						break
					}
				}
				return slow(ctx, in)
			}, workflow.WithHook(seen.hook))
		s := schedStarted(t, nil, w)

		time.Sleep(4*time.Minute + 30*time.Second)
		synctest.Wait()
		require.NoError(t, s.Stop(t.Context()))

		runs := schedHistory(t, w)
		require.Equal(t, []time.Duration{time.Minute, 2 * time.Minute, 3 * time.Minute, 4 * time.Minute},
			schedTimes(runs, startedAt), "every fire starts a run at once")
		require.EqualValues(t, 3, most.Load(), "runs of 2m30s fired each minute overlap three deep")
		require.Empty(t, seen.ofType(workflow.EventScheduleSkipped))
	})
}

func TestOverlapQueueKeepsAtMostOneFireWaiting(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var seen schedEvents
		w := schedFlow(t, "queuer", workflow.Schedule{Cron: "@every 1m", Overlap: workflow.OverlapQueue},
			schedSlow(130*time.Second), workflow.WithHook(seen.hook))
		s := schedStarted(t, nil, w)

		// 1m: A runs to 3m10. 2m: waits. 3m: skipped (one waits already).
		// 3m10: the 2m fire runs to 5m20. 4m: waits. 5m: skipped.
		// 5m20: the 4m fire runs.
		time.Sleep(5*time.Minute + 30*time.Second)
		synctest.Wait()
		require.NoError(t, s.Stop(t.Context()))

		runs := schedHistory(t, w)
		require.Equal(t, []time.Duration{time.Minute, 2 * time.Minute, 4 * time.Minute}, schedTimes(runs, scheduledAt))
		require.Equal(t, []time.Duration{time.Minute, 3*time.Minute + 10*time.Second, 5*time.Minute + 20*time.Second},
			schedTimes(runs, startedAt), "a waiting fire starts when the run under way ends")
		skipped := seen.ofType(workflow.EventScheduleSkipped)
		require.Len(t, skipped, 2)
		require.True(t, schedEpoch.Add(3*time.Minute).Equal(skipped[0].Time))
		require.True(t, schedEpoch.Add(5*time.Minute).Equal(skipped[1].Time))
		require.Contains(t, skipped[0].Error, "already waiting")
	})
}

func TestOverlapQueueDropsTheWaitingFireOnStop(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := schedFlow(t, "queuer", workflow.Schedule{Cron: "@every 1m", Overlap: workflow.OverlapQueue}, schedSlow(90*time.Second))
		s := schedStarted(t, nil, w)
		time.Sleep(2*time.Minute + 10*time.Second) // the 2m fire waits for the 1m run
		synctest.Wait()
		require.NoError(t, s.Stop(t.Context()))
		synctest.Wait()
		require.Len(t, schedHistory(t, w), 1, "the waiting fire did not start")
	})
}

func TestScheduleFollowsTheWallClockOfItsTimeZone(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := schedFlow(t, "nyc", workflow.Schedule{Cron: "0 0 * * *", Timezone: "America/New_York"}, schedNoop)
		s := schedStarted(t, nil, w)
		ny, err := time.LoadLocation("America/New_York")
		require.NoError(t, err)

		next := s.Entries()[0].Next
		require.Equal(t, time.Date(2000, 1, 1, 5, 0, 0, 0, time.UTC), next.UTC(), "midnight in New York is 05:00 UTC in winter")
		require.Equal(t, ny, next.Location())

		time.Sleep(6 * time.Hour)
		synctest.Wait()
		require.NoError(t, s.Stop(t.Context()))
		runs := schedHistory(t, w)
		require.Len(t, runs, 1)
		require.Equal(t, time.Date(2000, 1, 1, 5, 0, 0, 0, time.UTC), runs[0].ScheduledAt.UTC())
		require.Equal(t, time.Date(2000, 1, 1, 5, 0, 0, 0, time.UTC), runs[0].StartedAt.UTC())
		require.Equal(t, time.UTC, runs[0].ScheduledAt.Location(), "a run's times are in UTC, whatever the schedule's zone")
	})
}

func TestScheduleSkipsAWallClockTimeThatDoesNotExistOnTheSpringForwardDay(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ny, err := time.LoadLocation("America/New_York")
		require.NoError(t, err)
		// Clocks went from 02:00 to 03:00 on Sunday 2000-04-02.
		time.Sleep(time.Until(time.Date(2000, 4, 1, 12, 0, 0, 0, ny)))
		w := schedFlow(t, "gap", workflow.Schedule{Cron: "30 2 * * *", Timezone: "America/New_York"}, schedNoop)
		s := schedStarted(t, nil, w)
		require.Equal(t, time.Date(2000, 4, 3, 2, 30, 0, 0, ny), s.Entries()[0].Next)

		time.Sleep(time.Until(time.Date(2000, 4, 3, 3, 0, 0, 0, ny)))
		synctest.Wait()
		require.NoError(t, s.Stop(t.Context()))
		runs := schedHistory(t, w)
		require.Len(t, runs, 1, "no run on the day 02:30 does not exist")
		require.Equal(t, time.Date(2000, 4, 3, 6, 30, 0, 0, time.UTC), runs[0].ScheduledAt.UTC())
	})
}

func TestScheduleFiresTwiceAtAWallClockTimeThatRepeatsOnTheFallBackDay(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ny, err := time.LoadLocation("America/New_York")
		require.NoError(t, err)
		// Clocks went from 02:00 back to 01:00 on Sunday 2000-10-29.
		time.Sleep(time.Until(time.Date(2000, 10, 28, 12, 0, 0, 0, ny)))
		w := schedFlow(t, "repeat", workflow.Schedule{Cron: "30 1 * * *", Timezone: "America/New_York"}, schedNoop)
		s := schedStarted(t, nil, w)

		time.Sleep(time.Until(time.Date(2000, 10, 30, 3, 0, 0, 0, ny)))
		synctest.Wait()
		require.NoError(t, s.Stop(t.Context()))
		var got []time.Time
		for _, rs := range schedHistory(t, w) {
			got = append(got, rs.ScheduledAt.UTC())
		}
		require.Equal(t, []time.Time{
			time.Date(2000, 10, 29, 5, 30, 0, 0, time.UTC), // 01:30 EDT
			time.Date(2000, 10, 29, 6, 30, 0, 0, time.UTC), // 01:30 EST
			time.Date(2000, 10, 30, 6, 30, 0, 0, time.UTC),
		}, got)
	})
}

func TestScheduleInputFeedsTheRunAndItsErrorFailsOnlyThatRun(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var mu sync.Mutex
		var got []int
		var fires []time.Time
		w, err := workflow.New[int, int]("inputs",
			workflow.Tasks{workflow.Task[int, int]{Name: "echo", Handler: func(_ context.Context, in int) (int, error) {
				mu.Lock()
				defer mu.Unlock()
				got = append(got, in)
				return in, nil
			}}},
			workflow.WithSchedule(workflow.Schedule{Cron: "@hourly"}),
			workflow.WithScheduleInput(func(_ context.Context, fired time.Time) (int, error) {
				mu.Lock()
				fires = append(fires, fired)
				mu.Unlock()
				switch fired.Hour() {
				case 2:
					return 0, errors.New("no input at two")
				case 3:
					panic("input panicked at three")
				}
				return fired.Hour() * 10, nil
			}))
		require.NoError(t, err)
		var log schedLog
		s := schedStarted(t, []workflow.SchedulerOption{workflow.WithSchedulerLogger(log.logger())}, w)

		time.Sleep(4*time.Hour + time.Minute)
		synctest.Wait()
		require.NoError(t, s.Stop(t.Context()))

		require.Equal(t, []int{10, 40}, got, "the handler got what the input function gave")
		runs := schedHistory(t, w)
		require.Len(t, runs, 4, "the scheduler went on after the failures")
		for i, rs := range runs {
			require.True(t, fires[i].Equal(rs.ScheduledAt), "the input function is given the fire time")
			require.Equal(t, workflow.TriggerSchedule, rs.Trigger)
		}
		require.Equal(t, workflow.StateSucceeded, runs[0].State)
		require.Equal(t, workflow.StateFailed, runs[1].State)
		require.Contains(t, runs[1].Error, "no input at two")
		task, ok := runs[1].Task("echo")
		require.True(t, ok)
		require.Equal(t, workflow.StateSkipped, task.State, "no task runs without an input")
		require.Equal(t, workflow.StateFailed, runs[2].State)
		require.Contains(t, runs[2].Error, "input panicked at three")
		require.Equal(t, workflow.StateSucceeded, runs[3].State)
		require.Contains(t, log.String(), "could not start")
		require.Contains(t, log.String(), "recovered a panic")
	})
}

func TestAFailingOrPanickingRunDoesNotStopTheScheduler(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var calls atomic.Int32
		w := schedFlow(t, "flaky", workflow.Schedule{Cron: "@every 1h"}, func(context.Context, nothing) (nothing, error) {
			switch calls.Add(1) {
			case 1:
				panic("handler blew up")
			case 2:
				return nothing{}, errors.New("handler failed")
			}
			return nothing{}, nil
		})
		var log schedLog
		s := schedStarted(t, []workflow.SchedulerOption{workflow.WithSchedulerLogger(log.logger())}, w)

		time.Sleep(3*time.Hour + time.Minute)
		synctest.Wait()
		require.NoError(t, s.Stop(t.Context()))

		runs := schedHistory(t, w)
		require.Len(t, runs, 3)
		require.Equal(t, workflow.StateFailed, runs[0].State)
		require.Contains(t, runs[0].Error, "handler blew up")
		require.Equal(t, workflow.StateFailed, runs[1].State)
		require.Contains(t, runs[1].Error, "handler failed")
		require.Equal(t, workflow.StateSucceeded, runs[2].State)
		require.Contains(t, log.String(), "handler blew up", "the scheduler logs the failed run")
		require.Contains(t, log.String(), "run succeeded")
	})
}

func TestStopWaitsForARunUnderWay(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := schedFlow(t, "slow", workflow.Schedule{Cron: "@every 1h"}, schedSlow(10*time.Minute))
		s := schedStarted(t, nil, w)
		time.Sleep(time.Hour + time.Minute)

		ctx, cancel := context.WithTimeout(t.Context(), time.Hour)
		defer cancel()
		begin := time.Now()
		require.NoError(t, s.Stop(ctx))
		require.Equal(t, 9*time.Minute, time.Since(begin), "Stop returns when the run ends")
		rs, err := w.Status(t.Context())
		require.NoError(t, err)
		require.Equal(t, workflow.StateSucceeded, rs.State)

		time.Sleep(5 * time.Hour)
		synctest.Wait()
		require.Len(t, schedHistory(t, w), 1, "no fire after Stop")
	})
}

func TestStopCancelsTheRunsAndReturnsItsContextErrorWhenItEndsFirst(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var mu sync.Mutex
		var causes []error
		slow := func(ctx context.Context, in nothing) (nothing, error) {
			_, err := schedSlow(10*time.Minute)(ctx, in)
			mu.Lock()
			causes = append(causes, err)
			mu.Unlock()
			return nothing{}, err
		}
		w := schedFlow(t, "slow", workflow.Schedule{Cron: "@every 1h"}, slow)
		s := schedStarted(t, nil, w)
		time.Sleep(time.Hour + time.Minute)
		triggered, err := s.Trigger(t.Context(), "slow")
		require.NoError(t, err)

		ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
		defer cancel()
		begin := time.Now()
		require.ErrorIs(t, s.Stop(ctx), context.DeadlineExceeded)
		require.Equal(t, 2*time.Minute, time.Since(begin), "Stop returns when its context ends")

		runs := schedHistory(t, w)
		require.Len(t, runs, 2)
		for _, rs := range runs {
			require.Equal(t, workflow.StateCancelled, rs.State, "run %s (%s)", rs.RunID, rs.Trigger)
			require.Contains(t, rs.Error, "scheduler stopped")
		}
		require.Equal(t, triggered, runs[1].RunID)
		synctest.Wait()
		mu.Lock()
		require.Len(t, causes, 2)
		for _, err := range causes {
			require.ErrorContains(t, err, "scheduler stopped", "the handler's context was cancelled")
		}
		mu.Unlock()

		// The scheduler is usable again: later runs are not born cancelled.
		id, err := s.Trigger(t.Context(), "slow")
		require.NoError(t, err)
		require.NoError(t, s.Stop(t.Context()))
		rs, err := w.Inspect(t.Context(), id)
		require.NoError(t, err)
		require.Equal(t, workflow.StateSucceeded, rs.State)
	})
}

func TestTriggerStartsARunAtOnceAndReturnsItsID(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		release := make(chan struct{})
		w := schedFlow(t, "manual", workflow.Schedule{Cron: "@daily"}, func(ctx context.Context, _ nothing) (nothing, error) {
			select {
			case <-release:
				return nothing{}, nil
			case <-ctx.Done():
				return nothing{}, ctx.Err()
			}
		})
		s := schedStarted(t, nil, w)
		callerCtx, cancelCaller := context.WithCancel(t.Context())
		id, err := s.Trigger(callerCtx, "manual")
		require.NoError(t, err)
		require.NotEmpty(t, id)
		cancelCaller() // the run does not end with the caller's context
		synctest.Wait()

		rs, err := w.Status(t.Context())
		require.NoError(t, err)
		require.Equal(t, id, rs.RunID)
		require.Equal(t, workflow.StateRunning, rs.State, "Trigger does not wait for the end")
		require.Equal(t, workflow.TriggerManual, rs.Trigger)
		require.True(t, rs.ScheduledAt.IsZero())

		close(release)
		require.NoError(t, s.Stop(t.Context()))
		rs, err = w.Inspect(t.Context(), id)
		require.NoError(t, err)
		require.Equal(t, workflow.StateSucceeded, rs.State)
	})
}

func TestTriggerOfAnUnknownWorkflowWrapsErrNotFound(t *testing.T) {
	s := workflow.NewScheduler()
	_, err := s.Trigger(context.Background(), "nobody")
	require.ErrorIs(t, err, workflow.ErrNotFound)
	require.ErrorContains(t, err, `"nobody"`)
}

func TestTriggerWorksBeforeStartAndStopWaitsForItsRun(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := schedFlow(t, "manual", workflow.Schedule{Cron: "@daily"}, schedSlow(5*time.Minute))
		s := workflow.NewScheduler()
		require.NoError(t, s.Register(w))
		id, err := s.Trigger(t.Context(), "manual")
		require.NoError(t, err)
		begin := time.Now()
		require.NoError(t, s.Stop(t.Context()))
		require.Equal(t, 5*time.Minute, time.Since(begin))
		rs, err := w.Inspect(t.Context(), id)
		require.NoError(t, err)
		require.Equal(t, workflow.StateSucceeded, rs.State)
	})
}

func TestTriggerReturnsTheErrorAndIDOfARunWhoseInputFailed(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w, err := workflow.New[int, int]("manual",
			workflow.Tasks{workflow.Task[int, int]{Name: "echo", Handler: func(_ context.Context, in int) (int, error) { return in, nil }}},
			workflow.WithSchedule(workflow.Schedule{Cron: "@daily"}),
			workflow.WithScheduleInput(func(context.Context, time.Time) (int, error) { return 0, errors.New("no input now") }))
		require.NoError(t, err)
		s := workflow.NewScheduler()
		require.NoError(t, s.Register(w))
		id, err := s.Trigger(t.Context(), "manual")
		require.ErrorContains(t, err, "no input now")
		require.NotEmpty(t, id)
		rs, err := w.Inspect(t.Context(), id)
		require.NoError(t, err)
		require.Equal(t, workflow.StateFailed, rs.State)
		require.Equal(t, workflow.TriggerManual, rs.Trigger)
		require.NoError(t, s.Stop(t.Context()))
	})
}

func TestEntriesTellTheNextAndPreviousFireTimes(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		hourly := schedFlow(t, "hourly", workflow.Schedule{Cron: "@hourly"}, schedNoop)
		nightly := schedFlow(t, "nightly", workflow.Schedule{Cron: "0 0 * * *", Timezone: "America/New_York"}, schedNoop)
		s := workflow.NewScheduler()
		require.NoError(t, s.Register(hourly))
		require.NoError(t, s.Register(nightly))

		es := s.Entries()
		require.Len(t, es, 2)
		require.Equal(t, workflow.ScheduleEntry{Workflow: "hourly", Cron: "@hourly", Timezone: "UTC"}, es[0], "not started: no next fire")
		require.Equal(t, workflow.ScheduleEntry{Workflow: "nightly", Cron: "0 0 * * *", Timezone: "America/New_York"}, es[1])

		s.Start()
		es = s.Entries()
		require.Equal(t, schedEpoch.Add(time.Hour), es[0].Next)
		require.True(t, es[0].Prev.IsZero())
		require.Equal(t, schedEpoch.Add(5*time.Hour), es[1].Next.UTC())

		time.Sleep(time.Hour + time.Minute)
		synctest.Wait()
		es = s.Entries()
		require.Equal(t, schedEpoch.Add(time.Hour), es[0].Prev)
		require.Equal(t, schedEpoch.Add(2*time.Hour), es[0].Next)
		require.True(t, es[1].Prev.IsZero())

		require.NoError(t, s.Stop(t.Context()))
		es = s.Entries()
		require.True(t, es[0].Next.IsZero(), "stopped: no next fire")
		require.Equal(t, schedEpoch.Add(time.Hour), es[0].Prev, "the last fire is kept")
	})
}

func TestRegisterRejectsWhatItCannotSchedule(t *testing.T) {
	scheduled := workflow.MustNew[nothing, nothing]("dup",
		workflow.Tasks{workflow.Task[nothing, nothing]{Name: "a", Handler: schedNoop}},
		workflow.WithSchedule(workflow.Schedule{Cron: "@daily"}))
	sameName := workflow.MustNew[int, int]("dup",
		workflow.Tasks{workflow.Task[int, int]{Name: "b", Handler: func(_ context.Context, in int) (int, error) { return in, nil }}},
		workflow.WithSchedule(workflow.Schedule{Cron: "@hourly"}))
	unscheduled := workflow.MustNew[nothing, nothing]("plain",
		workflow.Tasks{workflow.Task[nothing, nothing]{Name: "a", Handler: schedNoop}})

	s := workflow.NewScheduler()
	require.NoError(t, s.Register(scheduled))

	err := s.Register(sameName)
	require.ErrorIs(t, err, workflow.ErrDuplicateWorkflow)
	require.EqualError(t, err, `workflow "dup": Scheduler.Register: a workflow of that name is already registered`)
	require.ErrorIs(t, s.Register(scheduled), workflow.ErrDuplicateWorkflow, "the same workflow twice")

	err = s.Register(unscheduled)
	require.ErrorIs(t, err, workflow.ErrInvalidSchedule)
	require.ErrorContains(t, err, `"plain"`)

	require.ErrorIs(t, s.Register(nil), workflow.ErrInvalidWorkflow)
	require.ErrorIs(t, s.Register(&workflow.Workflow[nothing, nothing]{}), workflow.ErrInvalidWorkflow)
	require.ErrorIs(t, s.Register((*workflow.Workflow[nothing, nothing])(nil)), workflow.ErrInvalidWorkflow)

	require.Len(t, s.Entries(), 1, "failed registrations leave nothing behind")
}

func TestRegisterAfterStartFiresAtOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := workflow.NewScheduler()
		s.Start()
		time.Sleep(30 * time.Minute)
		w := schedFlow(t, "late", workflow.Schedule{Cron: "@every 1h"}, schedNoop)
		require.NoError(t, s.Register(w))
		time.Sleep(time.Hour + time.Minute)
		synctest.Wait()
		require.NoError(t, s.Stop(t.Context()))
		runs := schedHistory(t, w)
		require.Equal(t, []time.Duration{90 * time.Minute}, schedTimes(runs, scheduledAt))
	})
}

func TestNewRejectsAScheduleItCannotUse(t *testing.T) {
	for _, sched := range []workflow.Schedule{
		{Cron: ""},
		{Cron: "not cron"},
		{Cron: "61 * * * *"},
		{Cron: "* * * *"},
		{Cron: "0 0 * * * *"},
		{Cron: "@fortnightly"},
		{Cron: "@every nonsense"},
		{Cron: "@every 0s"},
		{Cron: "@every -1m"},
		{Cron: "@every 500ms"},
		{Cron: "0 0 30 2 *"}, // never fires
		{Cron: "TZ=UTC"},     // robfig/cron's parser panics on this one
		{Cron: "CRON_TZ=Asia/Tokyo 0 6 * * *"},
		{Cron: "TZ=America/New_York 0 0 * * *"},
		{Cron: "@daily", Timezone: "Mars/Olympus_Mons"},
		{Cron: "@daily", Overlap: workflow.OverlapPolicy(7)},
	} {
		t.Run(fmt.Sprintf("%q in %q", sched.Cron, sched.Timezone), func(t *testing.T) {
			_, err := workflow.New[nothing, nothing]("bad",
				workflow.Tasks{workflow.Task[nothing, nothing]{Name: "a", Handler: schedNoop}},
				workflow.WithSchedule(sched))
			require.ErrorIs(t, err, workflow.ErrInvalidSchedule)
			require.ErrorIs(t, err, workflow.ErrInvalidWorkflow)
			switch {
			case sched.Overlap != workflow.OverlapSkip:
				require.ErrorContains(t, err, "overlap")
			case sched.Timezone != "":
				require.ErrorContains(t, err, strconv.Quote(sched.Timezone))
			default:
				require.ErrorContains(t, err, strconv.Quote(sched.Cron))
			}
		})
	}
}

func TestNewAcceptsStandardCronAndDescriptors(t *testing.T) {
	for _, sched := range []workflow.Schedule{
		{Cron: "0 0 * * *", Timezone: "UTC"},
		{Cron: "*/5 9-17 * * 1-5", Timezone: "Europe/Paris"},
		{Cron: "@daily", Timezone: "America/New_York"},
		{Cron: "@hourly", Overlap: workflow.OverlapQueue},
		{Cron: "@every 90s", Overlap: workflow.OverlapAllow},
		{Cron: "0 0 29 2 *"}, // rare, but within robfig/cron's five-year horizon
	} {
		_, err := workflow.New[nothing, nothing]("good",
			workflow.Tasks{workflow.Task[nothing, nothing]{Name: "a", Handler: schedNoop}},
			workflow.WithSchedule(sched))
		require.NoError(t, err, "%+v", sched)
	}
}

func TestNewChecksTheScheduleInputFunction(t *testing.T) {
	tasks := workflow.Tasks{workflow.Task[int, int]{Name: "a", Handler: func(_ context.Context, in int) (int, error) { return in, nil }}}
	input := func(context.Context, time.Time) (string, error) { return "", nil }
	_, err := workflow.New[int, int]("typed", tasks,
		workflow.WithSchedule(workflow.Schedule{Cron: "@daily"}), workflow.WithScheduleInput(input))
	require.ErrorIs(t, err, workflow.ErrTypeMismatch)

	intInput := func(context.Context, time.Time) (int, error) { return 0, nil }
	_, err = workflow.New[int, int]("unscheduled", tasks, workflow.WithScheduleInput(intInput))
	require.ErrorIs(t, err, workflow.ErrInvalidWorkflow)
	require.ErrorContains(t, err, "WithScheduleInput without WithSchedule")
}

func TestStartAndStopAreSafeInAnyOrder(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var fires atomic.Int32
		w := schedFlow(t, "cycle", workflow.Schedule{Cron: "@every 1h"}, func(context.Context, nothing) (nothing, error) {
			fires.Add(1)
			return nothing{}, nil
		})
		var s workflow.Scheduler // the zero Scheduler works too
		require.NoError(t, s.Stop(t.Context()), "Stop without Start")
		require.NoError(t, s.Register(w))
		s.Start()
		s.Start()
		time.Sleep(time.Hour + time.Minute)
		synctest.Wait()
		require.EqualValues(t, 1, fires.Load(), "a double Start fires once")

		require.NoError(t, s.Stop(t.Context()))
		require.NoError(t, s.Stop(t.Context()), "a second Stop")
		time.Sleep(3 * time.Hour)
		synctest.Wait()
		require.EqualValues(t, 1, fires.Load(), "no fire while stopped")

		s.Start() // at 4h01m: fires at 5h01m
		time.Sleep(time.Hour + time.Minute)
		synctest.Wait()
		require.NoError(t, s.Stop(t.Context()))
		require.EqualValues(t, 2, fires.Load(), "Start after Stop fires again")
		runs := schedHistory(t, w)
		require.Equal(t, []time.Duration{time.Hour, 5*time.Hour + time.Minute}, schedTimes(runs, scheduledAt))
	})
}

// ExampleScheduler registers a nightly workflow, runs it once by hand, and
// stops the scheduler, which waits for the run.
func ExampleScheduler() {
	step := func(context.Context, struct{}) (struct{}, error) { return struct{}{}, nil }
	nightly := workflow.MustNew[struct{}, struct{}]("nightly",
		workflow.Tasks{
			workflow.Task[struct{}, struct{}]{Name: "cleanup", Handler: step},
			workflow.Task[struct{}, struct{}]{Name: "backup", Handler: step, Dependencies: []string{"cleanup"}},
		},
		workflow.WithSchedule(workflow.Schedule{Cron: "0 0 * * *", Timezone: "UTC"}),
	)
	s := workflow.NewScheduler()
	if err := s.Register(nightly); err != nil {
		fmt.Println(err)
		return
	}
	s.Start()
	ctx := context.Background()
	id, err := s.Trigger(ctx, "nightly")
	if err != nil {
		fmt.Println(err)
		return
	}
	if err := s.Stop(ctx); err != nil {
		fmt.Println(err)
	}
	rs, _ := nightly.Inspect(ctx, id)
	fmt.Println(rs.Trigger, rs.State)
	for _, e := range s.Entries() {
		fmt.Println(e.Workflow, e.Cron, e.Timezone)
	}
	// Output:
	// manual succeeded
	// nightly 0 0 * * * UTC
}
