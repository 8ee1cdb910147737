package workflow_test

import (
	"context"
	"errors"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/b3b01171/workflow"
)

// Schedulers sharing a store: each Scheduler stands for a replica, and each
// builds its own Workflow of the same name on the shared store, as a
// process of its own would.

// replica builds the workflow "shared" on st and a Scheduler started with it.
func replica(t *testing.T, st workflow.Store, sched workflow.Schedule, opts ...workflow.SchedulerOption) (*workflow.Workflow[nothing, nothing], *workflow.Scheduler) {
	t.Helper()
	w := schedFlow(t, "shared", sched, schedNoop, workflow.WithStore(st))
	return w, schedStarted(t, opts, w)
}

// plainStore is a Store that is not a ScheduleStore.
type plainStore struct{ workflow.Store }

func TestSchedulersSharingAStoreRunEachFireOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st := workflow.NewMemoryStore()
		w, a := replica(t, st, workflow.Schedule{Cron: "@every 1h"})
		_, b := replica(t, st, workflow.Schedule{Cron: "@every 1h"})
		_, c := replica(t, st, workflow.Schedule{Cron: "@every 1h"})

		time.Sleep(5*time.Hour + time.Minute)
		synctest.Wait()
		for _, s := range []*workflow.Scheduler{a, b, c} {
			require.NoError(t, s.Stop(t.Context()))
		}
		require.Equal(t, []time.Duration{time.Hour, 2 * time.Hour, 3 * time.Hour, 4 * time.Hour, 5 * time.Hour},
			schedTimes(schedHistory(t, w), scheduledAt))
	})
}

func TestSchedulersWithAStoreThatIsNotAScheduleStoreFireEachOnTheirOwn(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st := plainStore{workflow.NewMemoryStore()}
		w, a := replica(t, st, workflow.Schedule{Cron: "@every 1h"})
		_, b := replica(t, st, workflow.Schedule{Cron: "@every 1h"})

		time.Sleep(time.Hour + time.Minute)
		require.NoError(t, a.Pause("shared"))
		require.False(t, b.Entries()[0].Paused, "the pause is a's alone")
		time.Sleep(time.Hour)
		synctest.Wait()
		require.NoError(t, a.Stop(t.Context()))
		require.NoError(t, b.Stop(t.Context()))
		require.Equal(t, []time.Duration{time.Hour, time.Hour, 2 * time.Hour},
			schedTimes(schedHistory(t, w), scheduledAt))
	})
}

func TestPauseOnOneSchedulerHoldsForEverySchedulerSharingTheStore(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st := workflow.NewMemoryStore()
		w, a := replica(t, st, workflow.Schedule{Cron: "@every 1h"})
		_, b := replica(t, st, workflow.Schedule{Cron: "@every 1h"})

		time.Sleep(time.Hour + time.Minute)
		require.NoError(t, a.Pause("shared"))
		require.True(t, a.Entries()[0].Paused)
		require.True(t, b.Entries()[0].Paused, "b reads the pause from the store")

		time.Sleep(3 * time.Hour) // fires at 2h, 3h and 4h pass over
		synctest.Wait()
		require.NoError(t, b.Unpause("shared"))
		require.False(t, b.Entries()[0].Paused)
		time.Sleep(time.Second)
		require.False(t, a.Entries()[0].Paused, "a reads the change within a second")

		time.Sleep(2 * time.Hour)
		synctest.Wait()
		require.NoError(t, a.Stop(t.Context()))
		require.NoError(t, b.Stop(t.Context()))
		require.Equal(t, []time.Duration{time.Hour, 5 * time.Hour, 6 * time.Hour},
			schedTimes(schedHistory(t, w), scheduledAt), "nothing fired while paused, nor made up after")
	})
}

func TestPauseSurvivesAStopAndHoldsForANewScheduler(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st := workflow.NewMemoryStore()
		_, a := replica(t, st, workflow.Schedule{Cron: "@every 1h"})
		require.NoError(t, a.Pause("shared"))
		require.NoError(t, a.Stop(t.Context()))

		w, b := replica(t, st, workflow.Schedule{Cron: "@every 1h"})
		require.True(t, b.Entries()[0].Paused)
		time.Sleep(2*time.Hour + time.Minute)
		synctest.Wait()
		require.NoError(t, b.Stop(t.Context()))
		require.Empty(t, schedHistory(t, w))
	})
}

func TestPauseAndUnpauseOfAnUnknownWorkflowWrapErrNotFound(t *testing.T) {
	s := workflow.NewScheduler()
	err := s.Pause("nope")
	require.ErrorIs(t, err, workflow.ErrNotFound)
	require.EqualError(t, err, `workflow "nope": Scheduler.Pause: no workflow of that name is registered`)
	err = s.Unpause("nope")
	require.ErrorIs(t, err, workflow.ErrNotFound)
	require.EqualError(t, err, `workflow "nope": Scheduler.Unpause: no workflow of that name is registered`)
}

func TestTriggerRunsAPausedWorkflow(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := schedFlow(t, "paused", workflow.Schedule{Cron: "@hourly"}, schedNoop)
		s := schedStarted(t, nil, w)
		require.NoError(t, s.Pause("paused"))
		_, err := s.Trigger(t.Context(), "paused")
		require.NoError(t, err)
		require.NoError(t, s.Stop(t.Context()))
		runs := schedHistory(t, w)
		require.Len(t, runs, 1)
		require.Equal(t, workflow.TriggerManual, runs[0].Trigger)
	})
}

func TestCatchUpRunsEveryMissedFireOnceOldestFirstOneAfterAnother(t *testing.T) {
	for _, tc := range []struct {
		name  string
		sched workflow.Schedule
	}{
		{"Cron", workflow.Schedule{Cron: "0 * * * *", CatchUpWindow: 3 * time.Hour}},
		{"Every", workflow.Schedule{Cron: "@every 1h", CatchUpWindow: 3 * time.Hour}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				st := workflow.NewMemoryStore()
				w := schedFlow(t, "shared", tc.sched, schedSlow(10*time.Minute), workflow.WithStore(st))
				a := schedStarted(t, nil, w)
				time.Sleep(time.Hour + 11*time.Minute)
				require.NoError(t, a.Stop(t.Context()))

				// No replica runs through the fires at 2h and 3h.
				time.Sleep(2*time.Hour + 19*time.Minute) // 3h30m
				// b and c read the last fire before either claims the
				// missed ones: one of them makes up both.
				both := &barrier{n: 2, all: make(chan struct{})}
				bw := schedFlow(t, "shared", tc.sched, schedSlow(10*time.Minute), workflow.WithStore(barrierStore{st, both}))
				cw := schedFlow(t, "shared", tc.sched, schedSlow(10*time.Minute), workflow.WithStore(barrierStore{st, both}))
				b, c := schedStarted(t, nil, bw), schedStarted(t, nil, cw)
				time.Sleep(25 * time.Minute) // 3h55m: both made-up runs are over
				synctest.Wait()
				prevs := []time.Time{b.Entries()[0].Prev, c.Entries()[0].Prev}
				require.Contains(t, prevs, schedEpoch.Add(3*time.Hour), "the latest made-up fire is the last of the one that made it up")
				require.Contains(t, prevs, time.Time{}, "the other made up nothing")
				require.NoError(t, b.Stop(t.Context()))
				require.NoError(t, c.Stop(t.Context()))

				runs := schedHistory(t, w)
				require.Equal(t, []time.Duration{time.Hour, 2 * time.Hour, 3 * time.Hour}, schedTimes(runs, scheduledAt),
					"each missed fire once, oldest first")
				require.Equal(t, []time.Duration{time.Hour, 3*time.Hour + 30*time.Minute, 3*time.Hour + 40*time.Minute},
					schedTimes(runs, startedAt), "made up at start, the second once the first ended")
				for _, rs := range runs {
					require.Equal(t, workflow.TriggerSchedule, rs.Trigger)
					require.Equal(t, workflow.StateSucceeded, rs.State)
				}
			})
		})
	}
}

func TestCatchUpSkipsTheFiresOlderThanItsWindowAndTellsTheHooks(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st := workflow.NewMemoryStore()
		sched := workflow.Schedule{Cron: "0 * * * *", CatchUpWindow: 90 * time.Minute}
		_, a := replica(t, st, sched)
		time.Sleep(time.Hour + time.Minute)
		require.NoError(t, a.Stop(t.Context()))

		time.Sleep(3*time.Hour + 29*time.Minute) // 4h30m: 2h, 3h and 4h were missed; the window begins at 3h
		var seen schedEvents
		w := schedFlow(t, "shared", sched, schedNoop, workflow.WithStore(st), workflow.WithHook(seen.hook))
		b := schedStarted(t, nil, w)
		synctest.Wait()
		require.NoError(t, b.Stop(t.Context()))

		require.Equal(t, []time.Duration{time.Hour, 3 * time.Hour, 4 * time.Hour}, schedTimes(schedHistory(t, w), scheduledAt))
		skipped := seen.ofType(workflow.EventScheduleSkipped)
		require.Len(t, skipped, 1)
		require.Equal(t, "fire at 2000-01-01T02:00:00Z skipped: older than the catch-up window", skipped[0].Error)
	})
}

func TestCatchUpMakesUpAtMostTheLatest100Fires(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st := workflow.NewMemoryStore()
		sched := workflow.Schedule{Cron: "@every 1s", CatchUpWindow: 6 * time.Hour}
		_, a := replica(t, st, sched)
		time.Sleep(1500 * time.Millisecond) // fires at 1s
		require.NoError(t, a.Stop(t.Context()))

		time.Sleep(time.Hour) // 1h00m01.5s: the fires at 2s … 1h00m01s were missed, 3,600 of them
		var seen schedEvents
		w := schedFlow(t, "shared", sched, schedNoop, workflow.WithStore(st), workflow.WithHook(seen.hook))
		b := schedStarted(t, nil, w)
		synctest.Wait()
		require.NoError(t, b.Stop(t.Context()))

		runs := schedHistory(t, w)
		require.Len(t, runs, 101)
		for i, rs := range runs[1:] {
			require.Equal(t, 3502*time.Second+time.Duration(i)*time.Second, rs.ScheduledAt.Sub(schedEpoch), "made-up run %d", i)
		}
		var errs []string
		for _, ev := range seen.ofType(workflow.EventScheduleSkipped) {
			errs = append(errs, ev.Error)
		}
		slices.Sort(errs) // hooks see skipped fires in no set order
		require.Len(t, errs, 101, "one event for the earliest 3,400 fires, then one for each of the next 100")
		require.Equal(t, "3400 fires before 2000-01-01T00:56:42Z skipped: older than the catch-up window, or more fires were missed within the catch-up window than the 100 made up",
			errs[0])
		require.Equal(t, "fire at 2000-01-01T00:56:42Z skipped: more fires were missed within the catch-up window than the 100 made up", errs[1])
		require.Equal(t, "fire at 2000-01-01T00:58:21Z skipped: more fires were missed within the catch-up window than the 100 made up", errs[100])
	})
}

func TestFiresDuringACatchUpFollowTheOverlapPolicy(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st := workflow.NewMemoryStore()
		sched := workflow.Schedule{Cron: "0 * * * *", CatchUpWindow: 3 * time.Hour}
		w := schedFlow(t, "shared", sched, schedSlow(40*time.Minute), workflow.WithStore(st))
		a := schedStarted(t, nil, w)
		time.Sleep(time.Hour + 41*time.Minute)
		require.NoError(t, a.Stop(t.Context()))

		time.Sleep(2*time.Hour + 9*time.Minute) // 3h50m: 2h and 3h were missed
		var seen schedEvents
		bw := schedFlow(t, "shared", sched, schedSlow(40*time.Minute), workflow.WithStore(st), workflow.WithHook(seen.hook))
		b := schedStarted(t, nil, bw)
		time.Sleep(2 * time.Hour) // 5h50m
		synctest.Wait()
		require.NoError(t, b.Stop(t.Context()))

		// 2h runs 3h50m–4h30m, 3h runs 4h30m–5h10m: the fires at 4h and 5h
		// come while a made-up run is under way, and OverlapSkip skips them.
		runs := schedHistory(t, w)
		require.Equal(t, []time.Duration{time.Hour, 2 * time.Hour, 3 * time.Hour}, schedTimes(runs, scheduledAt))
		require.Equal(t, []time.Duration{time.Hour, 3*time.Hour + 50*time.Minute, 4*time.Hour + 30*time.Minute}, schedTimes(runs, startedAt))
		var errs []string
		for _, ev := range seen.ofType(workflow.EventScheduleSkipped) {
			errs = append(errs, ev.Error)
		}
		slices.Sort(errs)
		require.Equal(t, []string{
			"fire at 2000-01-01T04:00:00Z skipped: the previous run is still going",
			"fire at 2000-01-01T05:00:00Z skipped: the previous run is still going",
		}, errs)
	})
}

// barrierStore holds each LastFire back until its barrier's n calls came.
type barrierStore struct {
	*workflow.MemoryStore
	b *barrier
}

type barrier struct {
	mu  sync.Mutex
	n   int
	all chan struct{}
}

func (s barrierStore) LastFire(ctx context.Context, wf string) (time.Time, error) {
	at, err := s.MemoryStore.LastFire(ctx, wf)
	s.b.mu.Lock()
	if s.b.n--; s.b.n == 0 {
		close(s.b.all)
	}
	s.b.mu.Unlock()
	<-s.b.all
	return at, err
}

func TestCatchUpOnRegisterWithAStartedScheduler(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st := workflow.NewMemoryStore()
		sched := workflow.Schedule{Cron: "0 * * * *", CatchUpWindow: time.Hour}
		w, a := replica(t, st, sched)
		time.Sleep(time.Hour + time.Minute)
		require.NoError(t, a.Stop(t.Context()))

		time.Sleep(time.Hour) // 2h01m: the fire at 2h is missed
		b := workflow.NewScheduler()
		b.Start()
		require.NoError(t, b.Register(schedFlow(t, "shared", sched, schedNoop, workflow.WithStore(st))))
		synctest.Wait()
		require.NoError(t, b.Stop(t.Context()))
		require.Equal(t, []time.Duration{time.Hour, 2 * time.Hour}, schedTimes(schedHistory(t, w), scheduledAt))
	})
}

func TestCatchUpMakesUpNothingOutsideItsWindowNorBeforeTheFirstFire(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st := workflow.NewMemoryStore()
		sched := workflow.Schedule{Cron: "0 * * * *", CatchUpWindow: 20 * time.Minute}

		time.Sleep(90 * time.Minute) // never fired: nothing was missed
		w, a := replica(t, st, sched)
		synctest.Wait()
		require.Empty(t, schedHistory(t, w))
		time.Sleep(31 * time.Minute) // 2h01m: fires at 2h
		require.NoError(t, a.Stop(t.Context()))

		time.Sleep(89 * time.Minute) // 3h30m: the fire at 3h is 30 minutes old
		_, b := replica(t, st, sched)
		time.Sleep(31 * time.Minute)
		synctest.Wait()
		require.NoError(t, b.Stop(t.Context()))
		require.Equal(t, []time.Duration{2 * time.Hour, 4 * time.Hour}, schedTimes(schedHistory(t, w), scheduledAt))
	})
}

func TestCatchUpWithoutAScheduleStoreMakesUpNothing(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st := plainStore{workflow.NewMemoryStore()}
		sched := workflow.Schedule{Cron: "0 * * * *", CatchUpWindow: 2 * time.Hour}
		w, a := replica(t, st, sched)
		time.Sleep(time.Hour + time.Minute)
		require.NoError(t, a.Stop(t.Context()))
		time.Sleep(time.Hour)
		_, b := replica(t, st, sched)
		synctest.Wait()
		require.NoError(t, b.Stop(t.Context()))
		require.Equal(t, []time.Duration{time.Hour}, schedTimes(schedHistory(t, w), scheduledAt))
	})
}

func TestNewRejectsANegativeCatchUpWindow(t *testing.T) {
	_, err := workflow.New[nothing, nothing]("bad",
		workflow.Tasks{workflow.Task[nothing, nothing]{Name: "a", Handler: schedNoop}},
		workflow.WithSchedule(workflow.Schedule{Cron: "@daily", CatchUpWindow: -time.Second}))
	require.ErrorIs(t, err, workflow.ErrInvalidSchedule)
	require.ErrorContains(t, err, "negative catch-up window -1s")
}

// brokenSchedules is a ScheduleStore whose schedule methods fail or panic.
type brokenSchedules struct {
	*workflow.MemoryStore
	claim func(ctx context.Context) (bool, error)
}

func (b brokenSchedules) ClaimFire(ctx context.Context, _ string, _ time.Time) (bool, error) {
	return b.claim(ctx)
}

func (b brokenSchedules) ClaimFireAlone(ctx context.Context, _ string, _ time.Time) (bool, bool, error) {
	ok, err := b.claim(ctx)
	return ok, false, err
}

func TestAFailingScheduleStoreSkipsTheFireAndNeverStopsTheScheduler(t *testing.T) {
	for _, tc := range []struct {
		name  string
		claim func(ctx context.Context) (bool, error)
		log   string
	}{
		{"Error", func(context.Context) (bool, error) { return false, errors.New("disk on fire") }, "disk on fire"},
		{"Panic", func(context.Context) (bool, error) { panic("boom") }, "boom"},
		{"Goexit", func(context.Context) (bool, error) { runtime.Goexit(); return true, nil }, "runtime.Goexit"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				var log schedLog
				st := brokenSchedules{workflow.NewMemoryStore(), tc.claim}
				w, s := replica(t, st, workflow.Schedule{Cron: "@every 1h"}, workflow.WithSchedulerLogger(log.logger()))
				time.Sleep(2*time.Hour + time.Minute)
				synctest.Wait()
				require.NoError(t, s.Stop(t.Context()))
				require.Empty(t, schedHistory(t, w))
				require.Contains(t, log.String(), "the store could not claim it")
				require.Contains(t, log.String(), tc.log)
			})
		})
	}
}

func TestStopIsNotHeldUpByASlowScheduleStore(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		claiming := make(chan struct{})
		st := brokenSchedules{workflow.NewMemoryStore(), func(ctx context.Context) (bool, error) {
			close(claiming)
			<-ctx.Done()
			return false, ctx.Err()
		}}
		w, s := replica(t, st, workflow.Schedule{Cron: "@every 1h"})
		time.Sleep(time.Hour)
		<-claiming
		require.NoError(t, s.Stop(t.Context()))
		require.Empty(t, schedHistory(t, w))
	})
}

func TestOverlapSkipHoldsAcrossSchedulersSharingAStore(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st := workflow.NewMemoryStore()
		var seen schedEvents
		sched := workflow.Schedule{Cron: "@every 1h"}
		w := schedFlow(t, "shared", sched, schedSlow(90*time.Minute), workflow.WithStore(st), workflow.WithHook(seen.hook))
		a := schedStarted(t, nil, w)
		b := schedStarted(t, nil, schedFlow(t, "shared", sched, schedSlow(90*time.Minute), workflow.WithStore(st), workflow.WithHook(seen.hook)))
		time.Sleep(5*time.Hour + time.Minute)
		stopTogether(t, a, b)

		runs := schedHistory(t, w)
		require.Equal(t, []time.Duration{time.Hour, 3 * time.Hour, 5 * time.Hour}, schedTimes(runs, scheduledAt))
		for i := 1; i < len(runs); i++ {
			require.False(t, runs[i].StartedAt.Before(runs[i-1].EndedAt), "run %d started before run %d ended", i, i-1)
		}
		var at []time.Duration
		for _, ev := range seen.ofType(workflow.EventScheduleSkipped) {
			fired, err := time.Parse(time.RFC3339, strings.Fields(ev.Error)[2])
			require.NoError(t, err)
			at = append(at, fired.Sub(schedEpoch))
		}
		slices.Sort(at)
		require.Equal(t, []time.Duration{2 * time.Hour, 4 * time.Hour}, at, "the fires while a run went on, on either Scheduler")
	})
}

func TestAFireWhoseRunIsStillStartingHoldsUpOverlapSkipOnAnotherScheduler(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st := workflow.NewMemoryStore()
		sched := workflow.Schedule{Cron: "@every 1h"}
		slowInput := workflow.WithScheduleInput(func(ctx context.Context, fired time.Time) (nothing, error) {
			if fired.Sub(schedEpoch) == time.Hour {
				time.Sleep(90 * time.Minute) // the run of 1h is in no store until 2h30m
			}
			return nothing{}, nil
		})
		w := schedFlow(t, "shared", sched, schedNoop, workflow.WithStore(st), slowInput)
		a := schedStarted(t, nil, w)
		b := schedStarted(t, nil, schedFlow(t, "shared", sched, schedNoop, workflow.WithStore(st), slowInput))
		time.Sleep(3*time.Hour + time.Minute)
		require.NoError(t, a.Stop(t.Context()))
		require.NoError(t, b.Stop(t.Context()))
		runs := schedHistory(t, w)
		require.Equal(t, []time.Duration{time.Hour, 3 * time.Hour}, schedTimes(runs, scheduledAt), "the fire at 2h is skipped")
		require.Equal(t, 2*time.Hour+30*time.Minute, runs[0].StartedAt.Sub(schedEpoch))
	})
}

func TestOverlapAllowStartsAlongsideAnotherSchedulersRun(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st := workflow.NewMemoryStore()
		sched := workflow.Schedule{Cron: "@every 1h", Overlap: workflow.OverlapAllow}
		w, a := replica(t, st, sched)
		_, b := replica(t, st, sched)
		time.Sleep(3*time.Hour + time.Minute)
		require.NoError(t, a.Stop(t.Context()))
		require.NoError(t, b.Stop(t.Context()))
		require.Equal(t, []time.Duration{time.Hour, 2 * time.Hour, 3 * time.Hour}, schedTimes(schedHistory(t, w), scheduledAt))
	})
}

// stopTogether stops the Schedulers at once: none fires while another
// waits for its runs.
func stopTogether(t *testing.T, ss ...*workflow.Scheduler) {
	t.Helper()
	errs := make([]error, len(ss))
	var wg sync.WaitGroup
	for i, s := range ss {
		wg.Go(func() { errs[i] = s.Stop(t.Context()) })
	}
	wg.Wait()
	require.NoError(t, errors.Join(errs...))
}
