package pgstore_test

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/b3b01171/workflow"
	"github.com/b3b01171/workflow/pgstore"
)

// These tests run in real time: the Schedulers share a real database.
// Each replica is a Scheduler with its own Store (its own pool) and its own
// Workflow, as a process of its own would have.

type nothing = struct{}

// replicas starts n replicas of the workflow "ticker" on schema.
func replicas(t *testing.T, schema string, n int, sched workflow.Schedule) ([]*workflow.Scheduler, []*workflow.Workflow[nothing, nothing]) {
	t.Helper()
	var ss []*workflow.Scheduler
	var ws []*workflow.Workflow[nothing, nothing]
	for range n {
		st := open(t, schema)
		w, err := workflow.New[nothing, nothing]("ticker",
			workflow.Tasks{workflow.Task[nothing, nothing]{Name: "tick", Handler: func(context.Context, nothing) (nothing, error) {
				return nothing{}, nil
			}}},
			workflow.WithStore(st), workflow.WithSchedule(sched))
		require.NoError(t, err)
		s := workflow.NewScheduler()
		require.NoError(t, s.Register(w))
		s.Start()
		t.Cleanup(func() { s.Stop(context.Background()) })
		ss, ws = append(ss, s), append(ws, w)
	}
	return ss, ws
}

// fires returns the ScheduledAt of every scheduled run of w, oldest first,
// after checking that each succeeded.
func fires(t *testing.T, w *workflow.Workflow[nothing, nothing]) []time.Time {
	t.Helper()
	runs, err := w.History(context.Background())
	require.NoError(t, err)
	var out []time.Time
	for i := len(runs) - 1; i >= 0; i-- {
		rs := runs[i]
		require.Equal(t, workflow.TriggerSchedule, rs.Trigger)
		require.Equal(t, workflow.StateSucceeded, rs.State, "run %s", rs.RunID)
		out = append(out, rs.ScheduledAt)
	}
	return out
}

func stopAll(t *testing.T, ss []*workflow.Scheduler) {
	t.Helper()
	for _, s := range ss {
		require.NoError(t, s.Stop(context.Background()))
	}
}

// requireOncePerSecond checks that the fires are whole seconds, each once.
func requireOncePerSecond(t *testing.T, at []time.Time) {
	t.Helper()
	seen := map[time.Time]bool{}
	for _, a := range at {
		require.Zero(t, a.Nanosecond(), "fire %v", a)
		require.False(t, seen[a.UTC()], "fire %v ran twice: %v", a, at)
		seen[a.UTC()] = true
	}
}

func TestReplicasRunEachFireOnce(t *testing.T) {
	t.Parallel()
	ss, ws := replicas(t, newSchema(t), 3, workflow.Schedule{Cron: "@every 1s"})
	time.Sleep(3500 * time.Millisecond)
	stopAll(t, ss)
	at := fires(t, ws[0])
	require.GreaterOrEqual(t, len(at), 3, "fires in 3.5 s: %v", at)
	requireOncePerSecond(t, at)
	for i := 1; i < len(at); i++ {
		require.Equal(t, time.Second, at[i].Sub(at[i-1]), "no fire is lost: %v", at)
	}
}

func TestPauseOnOneReplicaHoldsForEvery(t *testing.T) {
	t.Parallel()
	ss, ws := replicas(t, newSchema(t), 3, workflow.Schedule{Cron: "@every 1s"})
	time.Sleep(1100 * time.Millisecond)
	require.NoError(t, ss[0].Pause("ticker"))
	pausedAt := time.Now()
	eventually(t, "every replica shows the pause", func() bool {
		for _, s := range ss {
			if !s.Entries()[0].Paused {
				return false
			}
		}
		return true
	})
	require.Less(t, time.Since(pausedAt), 2*time.Second, "Entries shows another replica's pause within 2 s")
	time.Sleep(time.Until(pausedAt.Add(1500 * time.Millisecond)))
	require.NoError(t, ss[2].Unpause("ticker"))
	unpausedAt := time.Now()
	time.Sleep(1200 * time.Millisecond)
	stopAll(t, ss)

	at := fires(t, ws[1])
	requireOncePerSecond(t, at)
	var during, after int
	for _, a := range at {
		switch {
		// A fire planned just before Unpause may read the pause after it,
		// on a busy machine: it is not counted.
		case a.After(pausedAt) && a.Before(unpausedAt.Add(-500*time.Millisecond)):
			during++
		case a.After(unpausedAt):
			after++
		}
	}
	require.Zero(t, during, "fires while paused: %v (paused %v to %v)", at, pausedAt, unpausedAt)
	require.Positive(t, after, "fires after Unpause: %v", at)
}

func TestCatchUpAfterEveryReplicaWasDown(t *testing.T) {
	t.Parallel()
	schema := newSchema(t)
	sched := workflow.Schedule{Cron: "@every 1s", CatchUpWindow: time.Minute}
	ss, ws := replicas(t, schema, 1, sched)
	time.Sleep(1500 * time.Millisecond)
	stopAll(t, ss)
	before := fires(t, ws[0])
	require.NotEmpty(t, before)
	last := before[len(before)-1]

	time.Sleep(time.Until(last.Add(3500 * time.Millisecond))) // three fires missed
	ss, ws = replicas(t, schema, 2, sched)
	eventually(t, "the missed fires are made up", func() bool {
		runs, err := ws[0].History(context.Background(), workflow.HistoryState(workflow.StateSucceeded))
		require.NoError(t, err)
		return len(runs) >= len(before)+3
	})
	stopAll(t, ss)
	at := fires(t, ws[0])
	requireOncePerSecond(t, at)
	require.Equal(t, []time.Time{last.Add(time.Second), last.Add(2 * time.Second), last.Add(3 * time.Second)},
		utc(at[len(before):len(before)+3]), "each missed fire once, oldest first: %v", at)
}

func utc(ts []time.Time) []time.Time {
	out := make([]time.Time, len(ts))
	for i, t := range ts {
		out[i] = t.UTC()
	}
	return out
}

func TestAVersion1SchemaGainsTheSchedulesTable(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	schema := newSchema(t)
	require.NoError(t, open(t, schema).Close())
	q := pgx.Identifier{schema}.Sanitize()
	_, err := admin(t).Exec(ctx, `DROP TABLE `+q+`.schedules; ALTER TABLE `+q+`.events DROP COLUMN item;
		ALTER TABLE `+q+`.runs DROP COLUMN parent_run_id; UPDATE `+q+`.schema_version SET version = 1`)
	require.NoError(t, err)

	s := open(t, schema)
	ok, err := s.ClaimFire(ctx, "wf", time.Unix(100, 0))
	require.NoError(t, err)
	require.True(t, ok)
	var version int
	require.NoError(t, admin(t).QueryRow(ctx, `SELECT version FROM `+q+`.schema_version`).Scan(&version))
	require.Equal(t, 5, version)
}

func TestScheduleCallsRefuseABadNameAndAClosedStore(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := open(t, newSchema(t))
	_, err := s.ClaimFire(ctx, "bad\x00name", time.Unix(100, 0))
	require.ErrorIs(t, err, workflow.ErrInvalidInput)
	require.NoError(t, s.Close())
	_, err = s.ClaimFire(ctx, "wf", time.Unix(100, 0))
	require.ErrorIs(t, err, pgstore.ErrClosed)
	require.ErrorIs(t, s.SetPaused(ctx, "wf", true), pgstore.ErrClosed)
	_, err = s.Paused(ctx, "wf")
	require.ErrorIs(t, err, pgstore.ErrClosed)
	_, err = s.LastFire(ctx, "wf")
	require.ErrorIs(t, err, pgstore.ErrClosed)
}
