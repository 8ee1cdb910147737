package workflow_test

import (
	"context"
	"errors"
	"log/slog"
	"sync/atomic"
	"testing"
	"testing/synctest"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/b3b01171/workflow"
)

// faultyStore is a MemoryStore (not Persistent) whose writes and reopens
// fail on demand.
type faultyStore struct {
	*workflow.MemoryStore
	reopenErr  error
	appendErr  error
	appendsOK  atomic.Int32 // appends that succeed before appendErr is returned; -1: all
	appendSeen atomic.Int32
}

func newFaultyStore() *faultyStore {
	s := &faultyStore{MemoryStore: workflow.NewMemoryStore()}
	s.appendsOK.Store(-1)
	return s
}

func (s *faultyStore) Create(ctx context.Context, run workflow.RunStatus) (workflow.Recorder, error) {
	rec, err := s.MemoryStore.Create(ctx, run)
	if err != nil {
		return nil, err
	}
	return faultyRecorder{rec, s}, nil
}

func (s *faultyStore) Reopen(ctx context.Context, wf, runID string) (workflow.Recorder, error) {
	if s.reopenErr != nil {
		return nil, s.reopenErr
	}
	rec, err := s.MemoryStore.Reopen(ctx, wf, runID)
	if err != nil {
		return nil, err
	}
	return faultyRecorder{rec, s}, nil
}

type faultyRecorder struct {
	rec workflow.Recorder
	s   *faultyStore
}

func (r faultyRecorder) Append(ctx context.Context, batch []workflow.Entry) error {
	n := r.s.appendSeen.Add(1)
	if ok := r.s.appendsOK.Load(); ok >= 0 && n > ok {
		return r.s.appendErr
	}
	return r.rec.Append(ctx, batch)
}

func TestAFailedWriteOfAStoreThatIsNotPersistentFailsTheRun(t *testing.T) {
	for _, ok := range []int32{0, 1, 2, 3} { // run_started; task_started:a; task_succeeded:a; run_succeeded
		store := newFaultyStore()
		store.appendErr = errors.New("store unavailable")
		store.appendsOK.Store(ok)
		w := newWorkflow[int, int](t, "faulty", workflow.Tasks{intTask("a")}, workflow.WithStore(store),
			workflow.WithLogger(slog.New(slog.DiscardHandler)))
		_, err := w.Run(t.Context(), 1)
		require.ErrorIs(t, err, store.appendErr, "write %d failed", ok+1)
		assert.Contains(t, err.Error(), "recording the run failed")
	}
}

func TestAResumeRefusedForABadReplaceTaskLeavesTheRunResumable(t *testing.T) {
	var fails atomic.Bool
	fails.Store(true)
	w := newWorkflow[int, int](t, "typo", workflow.Tasks{
		workflow.Task[int, int]{Name: "a", Handler: func(_ context.Context, in int) (int, error) {
			if fails.Load() {
				return 0, errBoom
			}
			return in + 1, nil
		}},
	})
	_, err := w.Run(t.Context(), 1, workflow.WithRunID("r"))
	require.ErrorIs(t, err, errBoom)

	_, err = w.Resume(t.Context(), "r", workflow.ReplaceTask("typo", identity))
	require.ErrorIs(t, err, workflow.ErrNotFound)

	fails.Store(false)
	out, err := w.Resume(t.Context(), "r")
	require.NoError(t, err)
	assert.Equal(t, 2, out)
}

func TestCancelOfARunWhoseResumeCouldNotReopenItReturns(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		store := newFaultyStore()
		w := newWorkflow[int, int](t, "reopen", workflow.Tasks{workflow.Task[int, int]{Name: "a", Handler: fail}},
			workflow.WithStore(store))
		_, err := w.Run(t.Context(), 1, workflow.WithRunID("r"))
		require.ErrorIs(t, err, errBoom)

		store.reopenErr = errors.New("store unavailable")
		cancelled := make(chan error, 1)
		go func() { cancelled <- w.Cancel(t.Context(), "r") }()
		_, err = w.Resume(t.Context(), "r")
		require.ErrorIs(t, err, store.reopenErr)
		require.ErrorIs(t, <-cancelled, workflow.ErrRunEnded)
	})
}

func TestCancelRacingResumeCancelsItOrFindsItEnded(t *testing.T) {
	for range 200 {
		release := make(chan struct{})
		var fails atomic.Bool
		fails.Store(true)
		w := newWorkflow[int, int](t, "race", workflow.Tasks{
			workflow.Task[int, int]{Name: "a", Handler: func(ctx context.Context, in int) (int, error) {
				if fails.Load() {
					return 0, errBoom
				}
				select {
				case <-release:
					return in, nil
				case <-ctx.Done():
					return 0, ctx.Err()
				}
			}},
		})
		_, err := w.Run(t.Context(), 1, workflow.WithRunID("r"))
		require.ErrorIs(t, err, errBoom)
		fails.Store(false)

		resumed := make(chan error, 1)
		go func() {
			_, err := w.Resume(t.Context(), "r")
			resumed <- err
		}()
		cancelErr := w.Cancel(t.Context(), "r")
		close(release)
		resumeErr := <-resumed
		if cancelErr == nil {
			require.ErrorIs(t, resumeErr, workflow.ErrCancelled, "Cancel said it cancelled the run")
			continue
		}
		require.ErrorIs(t, cancelErr, workflow.ErrRunEnded, "Cancel came before Resume: the run had ended")
		require.NoError(t, resumeErr)
	}
}

func TestCancelOfARunThatEndsOtherwiseSaysSo(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		// The run has failed, but its end is not yet written when Cancel
		// comes: Cancel finds it under way, and it ends failed all the same.
		store := newJSONStore()
		atEnd, gate := make(chan struct{}), make(chan struct{})
		store.appendHook = func(batch []workflow.Entry) error {
			if batch[len(batch)-1].Type == workflow.EventRunFailed {
				close(atEnd)
				<-gate
			}
			return nil
		}
		w := newWorkflow[int, int](t, "ends", workflow.Tasks{workflow.Task[int, int]{Name: "a", Handler: fail}},
			workflow.WithStore(store))
		x, err := w.Start(t.Context(), 1)
		require.NoError(t, err)
		<-atEnd
		cancelled := make(chan error, 1)
		go func() { cancelled <- w.Cancel(t.Context(), x.ID()) }()
		synctest.Wait() // Cancel waits for the run's end
		close(gate)

		err = <-cancelled
		require.ErrorIs(t, err, workflow.ErrRunEnded)
		assert.Contains(t, err.Error(), "state failed")
		_, err = x.Wait(t.Context())
		require.ErrorIs(t, err, errBoom)
	})
}

func TestAReusedRunIDIsErrDuplicateRun(t *testing.T) {
	w := newWorkflow[int, int](t, "dup", workflow.Tasks{intTask("a")})
	_, err := w.Run(t.Context(), 1, workflow.WithRunID("x"))
	require.NoError(t, err)
	_, err = w.Run(t.Context(), 1, workflow.WithRunID("x"))
	require.ErrorIs(t, err, workflow.ErrDuplicateRun)
}
