package pgstore_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/b3b01171/workflow"
	"github.com/b3b01171/workflow/pgstore"
)

// quiet drops the log of the runs whose store was closed under them, as
// the tests mean to.
var quiet = slog.New(slog.DiscardHandler)

// pipeline is a workflow of two tasks: "double", then "add", which calls
// add (counting its calls in calls).
func pipeline(t *testing.T, s workflow.Store, calls *atomic.Int32, add func(ctx context.Context, n int) (int, error)) *workflow.Workflow[int, int] {
	t.Helper()
	wf, err := workflow.New[int, int]("pipeline", workflow.Tasks{
		workflow.Task[int, int]{Name: "double", Handler: func(ctx context.Context, n int) (int, error) {
			calls.Add(1)
			return 2 * n, nil
		}},
		workflow.Task[int, int]{Name: "add", Dependencies: []string{"double"}, Handler: add},
	}, workflow.WithStore(s), workflow.WithLogger(quiet))
	require.NoError(t, err)
	return wf
}

func eventTypes(rs workflow.RunStatus) []string {
	var types []string
	for _, ev := range rs.Events {
		types = append(types, eventLine(ev))
	}
	return types
}

func TestTheEngineRecordsARunInPostgres(t *testing.T) {
	t.Parallel()
	s := open(t, newSchema(t))
	ctx := context.Background()
	var calls atomic.Int32
	wf := pipeline(t, s, &calls, func(ctx context.Context, n int) (int, error) { return n + 2, nil })
	out, err := wf.Run(ctx, 20, workflow.WithRunID("r1"))
	require.NoError(t, err)
	require.Equal(t, 42, out)

	rs, err := wf.Inspect(ctx, "r1")
	require.NoError(t, err)
	require.Equal(t, workflow.StateSucceeded, rs.State)
	require.JSONEq(t, `20`, string(rs.Input))
	require.JSONEq(t, `42`, string(rs.Output))
	require.Equal(t, []string{
		"run_started",
		"task_started double 1", "task_succeeded double 1",
		"task_started add 1", "task_succeeded add 1",
		"run_succeeded",
	}, eventTypes(rs))
	for _, task := range rs.Tasks {
		require.Equal(t, workflow.StateSucceeded, task.State, task.Name)
		require.Equal(t, 1, task.Attempts, task.Name)
	}
	names, err := s.Workflows(ctx)
	require.NoError(t, err)
	require.Equal(t, []string{"pipeline"}, names)
	require.Empty(t, orphans(t, s, "pipeline"))
}

func TestResumeWorksFromAnotherReplica(t *testing.T) {
	t.Parallel()
	schema := newSchema(t)
	ctx := context.Background()
	var calls atomic.Int32
	a := open(t, schema)
	wf := pipeline(t, a, &calls, func(ctx context.Context, n int) (int, error) {
		return 0, workflow.Permanent(errors.New("not today"))
	})
	_, err := wf.Run(ctx, 20, workflow.WithRunID("r1"))
	require.ErrorContains(t, err, "not today")

	// Another replica: its own pool, its own Store.
	pool, err := pgxpool.New(ctx, testDSN(t))
	require.NoError(t, err)
	defer pool.Close()
	b, err := pgstore.New(ctx, pool, pgstore.Schema(schema))
	require.NoError(t, err)
	wf = pipeline(t, b, &calls, func(ctx context.Context, n int) (int, error) { return n + 2, nil })
	out, err := wf.Resume(ctx, "r1")
	require.NoError(t, err)
	require.Equal(t, 42, out)
	require.Equal(t, int32(1), calls.Load(), "double's output came from the database")

	rs, err := a.Get(ctx, "pipeline", "r1")
	require.NoError(t, err, "a sees what b recorded")
	require.Equal(t, workflow.StateSucceeded, rs.State)
	// How the engine numbers the attempts of a resumed task is its own
	// business: the history is compared without them.
	var kinds []string
	for _, ev := range rs.Events {
		kinds = append(kinds, strings.TrimSpace(ev.Type+" "+ev.Task))
	}
	require.Equal(t, []string{"run_started", "task_started double", "task_succeeded double", "task_started add", "task_failed add",
		"run_failed", "run_resumed", "task_started add", "task_succeeded add", "run_succeeded"}, kinds)
	require.NoError(t, b.Close())
	require.NoError(t, pool.Ping(ctx), "Close of a Store made by New leaves the pool open")
}

func TestRecoverTakesOverTheRunOfAClosedReplica(t *testing.T) {
	t.Parallel()
	schema := newSchema(t)
	ctx := context.Background()
	const ttl = time.Second
	a, err := pgstore.Open(ctx, testDSN(t), pgstore.Schema(schema), pgstore.LeaseTTL(ttl))
	require.NoError(t, err)
	var calls atomic.Int32
	release := make(chan struct{})
	wf := pipeline(t, a, &calls, func(ctx context.Context, n int) (int, error) {
		<-release
		return n + 2, nil
	})
	exec, err := wf.Start(ctx, 20, workflow.WithRunID("r1"))
	require.NoError(t, err)
	eventually(t, "add runs", func() bool {
		rs, err := a.Get(ctx, "pipeline", "r1")
		require.NoError(t, err)
		task, _ := rs.Task("add")
		return task.State == workflow.StateRunning
	})
	owner, until := rawLease(t, schema, "r1")
	require.NotNil(t, owner)
	require.NoError(t, a.Close()) // the replica stops; its lease is left to expire
	close(release)
	_, err = exec.Wait(ctx)
	require.ErrorIs(t, err, pgstore.ErrClosed, "a could not record the rest")

	b := open(t, schema, pgstore.LeaseTTL(ttl))
	wf = pipeline(t, b, &calls, func(ctx context.Context, n int) (int, error) { return n + 2, nil })
	var execs []*workflow.Execution[int]
	deadline := time.Now().Add(20 * time.Second)
	for len(execs) == 0 {
		require.True(t, time.Now().Before(deadline), "Recover did not take the run over after its lease expired")
		execs, err = wf.Recover(ctx)
		require.NoError(t, err)
		time.Sleep(ttl / 10)
	}
	var now time.Time
	require.NoError(t, admin(t).QueryRow(ctx, `SELECT clock_timestamp()`).Scan(&now))
	require.True(t, now.After(*until), "Recover took the run before a's lease expired (%s)", until)
	require.Len(t, execs, 1)
	out, err := execs[0].Wait(ctx)
	require.NoError(t, err)
	require.Equal(t, 42, out)
	require.Equal(t, int32(1), calls.Load(), "double is not run again")

	rs, err := b.Get(ctx, "pipeline", "r1")
	require.NoError(t, err)
	require.Equal(t, workflow.StateSucceeded, rs.State)
	require.Equal(t, []string{
		"run_started",
		"task_started double 1", "task_succeeded double 1",
		"task_started add 1",
		"run_interrupted",
		"run_resumed",
		"task_started add 2", "task_succeeded add 2",
		"run_succeeded",
	}, eventTypes(rs))
	require.Empty(t, orphans(t, b, "pipeline"))
}

func TestConcurrentRecoverFromFourReplicasResumesEachRunOnce(t *testing.T) {
	t.Parallel()
	schema := newSchema(t)
	ctx := context.Background()
	const (
		ttl      = time.Second
		runs     = 12
		replicas = 4
	)
	a, err := pgstore.Open(ctx, testDSN(t), pgstore.Schema(schema), pgstore.LeaseTTL(ttl))
	require.NoError(t, err)
	var calls atomic.Int32
	release := make(chan struct{})
	wf := pipeline(t, a, &calls, func(ctx context.Context, n int) (int, error) {
		<-release
		return n + 2, nil
	})
	var started []*workflow.Execution[int]
	for i := range runs {
		x, err := wf.Start(ctx, i, workflow.WithRunID(fmt.Sprintf("r%02d", i)))
		require.NoError(t, err)
		started = append(started, x)
	}
	eventually(t, "every run is in add", func() bool {
		list, err := a.List(ctx, "pipeline", workflow.HistoryQuery{Summary: true})
		require.NoError(t, err)
		for _, rs := range list {
			if task, _ := rs.Task("add"); task.State != workflow.StateRunning {
				return false
			}
		}
		return len(list) == runs
	})
	require.NoError(t, a.Close())
	close(release)
	for _, x := range started {
		_, err := x.Wait(ctx)
		require.ErrorIs(t, err, pgstore.ErrClosed)
	}
	b := open(t, schema)
	eventually(t, "a's runs are orphans", func() bool { return len(orphans(t, b, "pipeline")) == runs })

	// Four replicas call Recover at once. Their handlers wait until every
	// replica's Recover has returned, so that no run ends meanwhile: the
	// engine reads a run (Get) before it claims it (Reopen), and a run
	// another replica resumed and ended in between would be claimed again
	// (see the README). Each run is an orphan to every replica: exactly one
	// claims it.
	var (
		mu      sync.Mutex
		resumed = map[string][]int{} // run ID → the replicas that resumed it
		adds    = map[string]int{}   // run ID → calls of add
		wg      sync.WaitGroup
		start   = make(chan struct{})
		gate    = make(chan struct{})
		execs   = make([][]*workflow.Execution[int], replicas)
	)
	for k := range replicas {
		s := open(t, schema, pgstore.LeaseTTL(ttl))
		wf := pipeline(t, s, &calls, func(ctx context.Context, n int) (int, error) {
			<-gate
			info, _ := workflow.Info(ctx)
			mu.Lock()
			adds[info.RunID]++
			mu.Unlock()
			return n + 2, nil
		})
		wg.Go(func() {
			<-start
			var err error
			execs[k], err = wf.Recover(ctx)
			require.NoError(t, err)
		})
	}
	close(start)
	wg.Wait()
	close(gate)
	for k, xs := range execs {
		for _, x := range xs {
			resumed[x.ID()] = append(resumed[x.ID()], k)
			_, err := x.Wait(ctx)
			require.NoError(t, err)
		}
	}
	require.Len(t, resumed, runs)
	for id, by := range resumed {
		require.Len(t, by, 1, "run %s resumed by replicas %v", id, by)
		require.Equal(t, 1, adds[id], "add ran once in the replicas for run %s", id)
	}
	require.Equal(t, int32(runs), calls.Load(), "double ran once per run, in a")
	for i := range runs {
		rs, err := b.Get(ctx, "pipeline", fmt.Sprintf("r%02d", i))
		require.NoError(t, err)
		require.Equal(t, workflow.StateSucceeded, rs.State)
		types := eventTypes(rs)
		require.Equal(t, 1, count(types, "run_resumed"), "%s: %v", rs.RunID, types)
		require.Equal(t, 1, count(types, "run_interrupted"))
	}
	require.Empty(t, orphans(t, b, "pipeline"))
}

func count(s []string, v string) int {
	n := 0
	for _, x := range s {
		if x == v {
			n++
		}
	}
	return n
}
