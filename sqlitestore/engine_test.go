package sqlitestore_test

import (
	"context"
	"errors"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/b3b01171/workflow"
	"github.com/b3b01171/workflow/sqlitestore"
)

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
	}, workflow.WithStore(s))
	require.NoError(t, err)
	return wf
}

func TestTheEngineResumesAFailedRunInAnotherHandle(t *testing.T) {
	t.Parallel()
	path := tempPath(t)
	ctx := context.Background()
	a, err := sqlitestore.Open(path)
	require.NoError(t, err)
	var calls atomic.Int32
	wf := pipeline(t, a, &calls, func(ctx context.Context, n int) (int, error) {
		return 0, workflow.Permanent(errors.New("not today"))
	})
	_, err = wf.Run(ctx, 20, workflow.WithRunID("r1"))
	require.Error(t, err)
	require.NoError(t, a.Close())

	b := open(t, path)
	wf = pipeline(t, b, &calls, func(ctx context.Context, n int) (int, error) { return n + 2, nil })
	out, err := wf.Resume(ctx, "r1")
	require.NoError(t, err)
	require.Equal(t, 42, out)
	require.Equal(t, int32(1), calls.Load(), "double's output came from the file")
	rs, err := b.Get(ctx, "pipeline", "r1")
	require.NoError(t, err)
	require.Equal(t, workflow.StateSucceeded, rs.State)
}

func TestTheEngineRecoversTheRunsOfAStoppedHandle(t *testing.T) {
	t.Parallel()
	path := tempPath(t)
	ctx := context.Background()
	a, err := sqlitestore.Open(path, sqlitestore.LeaseTTL(100*time.Millisecond))
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
	require.NoError(t, a.Close()) // the process stops; its lease is left to expire
	close(release)
	_, err = exec.Wait(ctx)
	require.ErrorIs(t, err, sqlitestore.ErrClosed, "a could not record the rest")

	b := open(t, path)
	eventually(t, "r1 is an orphan", func() bool { return slices.Equal(orphans(t, b, "pipeline"), []string{"r1"}) })
	wf = pipeline(t, b, &calls, func(ctx context.Context, n int) (int, error) { return n + 2, nil })
	execs, err := wf.Recover(ctx)
	require.NoError(t, err)
	require.Len(t, execs, 1)
	out, err := execs[0].Wait(ctx)
	require.NoError(t, err)
	require.Equal(t, 42, out)
	require.Equal(t, int32(1), calls.Load(), "double is not run again")

	rs, err := b.Get(ctx, "pipeline", "r1")
	require.NoError(t, err)
	require.Equal(t, workflow.StateSucceeded, rs.State)
	var types []string
	for _, ev := range rs.Events {
		types = append(types, ev.Type)
	}
	require.Contains(t, types, workflow.EventRunInterrupted)
	require.Contains(t, types, workflow.EventRunResumed)
	require.Empty(t, orphans(t, b, "pipeline"))
}
