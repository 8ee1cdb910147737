package workflow_test

import (
	"bytes"
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/b3b01171/workflow"
)

func TestRestoreNeverReplacesARunResumedAndUnderWay(t *testing.T) {
	store := workflow.NewMemoryStore()
	release, running := make(chan struct{}), make(chan struct{})
	failing := true
	var mu sync.Mutex
	w := newWorkflow[int, int](t, "restored", workflow.Tasks{
		workflow.Task[int, int]{Name: "a", Handler: func(_ context.Context, in int) (int, error) {
			mu.Lock()
			f := failing
			mu.Unlock()
			if f {
				return 0, errBoom
			}
			close(running)
			<-release
			return in, nil
		}},
	}, workflow.WithStore(store))
	_, err := w.Run(t.Context(), 3, workflow.WithRunID("r1"))
	require.ErrorIs(t, err, errBoom)
	var snap bytes.Buffer
	require.NoError(t, store.Snapshot(&snap))
	require.NoError(t, store.Restore(bytes.NewReader(snap.Bytes())))

	mu.Lock()
	failing = false
	mu.Unlock()
	resumed := make(chan error, 1)
	go func() {
		_, err := w.Resume(t.Context(), "r1")
		resumed <- err
	}()
	select {
	case <-running: // the resumed run is under way
	case err := <-resumed:
		require.FailNow(t, "Resume ended before its task ran", "%v", err)
	}
	require.NoError(t, store.Restore(bytes.NewReader(snap.Bytes())))
	close(release)
	require.NoError(t, <-resumed)

	rs, err := w.Inspect(t.Context(), "r1")
	require.NoError(t, err)
	assert.Equal(t, workflow.StateSucceeded, rs.State)
	assert.Equal(t, workflow.EventRunSucceeded, rs.Events[len(rs.Events)-1].Type)
}

func TestSnapshotRestoreSnapshotRoundTripsByteForByte(t *testing.T) {
	store := workflow.NewMemoryStore(workflow.MaxRuns(0))
	w := newWorkflow[int, int](t, "many", workflow.Tasks{intTask("a"), intTask("b", "a")}, workflow.WithStore(store))
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 250 {
				_, err := w.Run(context.Background(), i, workflow.WithRunID(fmt.Sprintf("g%d-%d", g, i)))
				assert.NoError(t, err)
			}
		})
	}
	wg.Wait()
	var first bytes.Buffer
	require.NoError(t, store.Snapshot(&first))

	for name, into := range map[string]*workflow.MemoryStore{
		"into an empty store":               workflow.NewMemoryStore(workflow.MaxRuns(0)),
		"into the store holding those runs": store,
	} {
		require.NoError(t, into.Restore(bytes.NewReader(first.Bytes())), name)
		var second bytes.Buffer
		require.NoError(t, into.Snapshot(&second), name)
		require.True(t, bytes.Equal(first.Bytes(), second.Bytes()), "%s: the second snapshot differs from the first", name)
	}
}
