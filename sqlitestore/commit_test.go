package sqlitestore_test

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/b3b01171/workflow"
)

func TestConcurrentAppendsOfManyRuns(t *testing.T) {
	t.Parallel()
	s := open(t, tempPath(t))
	ctx := context.Background()
	const runs, tasks = 100, 10
	names := make([]string, tasks)
	for i := range names {
		names[i] = fmt.Sprintf("t%d", i)
	}
	var wg sync.WaitGroup
	errs := make(chan error, runs)
	for r := range runs {
		wg.Go(func() {
			id := fmt.Sprintf("run-%03d", r)
			c := newClock()
			rec, err := s.Create(ctx, newRun("wf", id, names...))
			if err != nil {
				errs <- err
				return
			}
			batches := [][]workflow.Entry{{c.runEntry(id, workflow.EventRunStarted, "", []byte(id))}}
			for i, name := range names {
				batches = append(batches,
					[]workflow.Entry{c.taskEntry(id, i, name, workflow.EventTaskStarted, 1, "", nil)},
					[]workflow.Entry{c.taskEntry(id, i, name, workflow.EventTaskSucceeded, 0, "", []byte(id+name))})
			}
			batches = append(batches, []workflow.Entry{c.runEntry(id, workflow.EventRunSucceeded, "", nil)})
			for _, b := range batches {
				if err := rec.Append(ctx, b); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	all, err := s.List(ctx, "wf", workflow.HistoryQuery{})
	require.NoError(t, err)
	require.Len(t, all, runs)
	for _, rs := range all {
		require.Equal(t, workflow.StateSucceeded, rs.State, rs.RunID)
		require.Len(t, rs.Events, 2+2*tasks)
		for _, task := range rs.Tasks {
			require.Equal(t, workflow.StateSucceeded, task.State)
			require.Equal(t, rs.RunID+task.Name, string(task.Output))
		}
	}
}
