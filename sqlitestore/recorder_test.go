package sqlitestore_test

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/b3b01171/workflow"
	"github.com/b3b01171/workflow/sqlitestore"
)

func TestAppendFoldsEntriesAsApplyDoes(t *testing.T) {
	t.Parallel()
	s := open(t, tempPath(t))
	c := newClock()
	tw := newTwin(t, s, newRun("wf", "r1", "a", "b", "c"))
	tw.check()
	tw.append(c.runEntry("r1", workflow.EventRunStarted, "", []byte(`{"n":1}`)))
	tw.append(
		c.taskEntry("r1", 0, "a", workflow.EventTaskStarted, 1, "", nil),
		c.taskEntry("r1", 1, "b", workflow.EventTaskStarted, 1, "", nil),
	)
	tw.append(c.taskEntry("r1", 0, "a", workflow.EventTaskSucceeded, 0, "", []byte(`"A"`)))
	tw.append(
		c.taskEntry("r1", 1, "b", workflow.EventTaskRetrying, 1, "boom", nil),
		c.taskEntry("r1", 1, "b", workflow.EventTaskStarted, 2, "", nil),
	)
	// An Index that does not name the task falls back to its name.
	tw.append(c.taskEntry("r1", 7, "b", workflow.EventTaskFailed, 2, "boom again", nil))
	tw.append(
		c.taskEntry("r1", -1, "c", workflow.EventTaskSkipped, 0, "", nil),
		c.runEntry("r1", workflow.EventRunFailed, "b failed", nil),
	)
	// Resumed: b and c go back to pending, a keeps its output.
	tw.append(c.runEntry("r1", workflow.EventRunResumed, "", nil))
	tw.append(
		c.taskEntry("r1", 1, "b", workflow.EventTaskStarted, 1, "", nil),
		c.taskEntry("r1", 2, "c", workflow.EventTaskStarted, 1, "", nil),
	)
	tw.append(c.runEntry("r1", workflow.EventRunInterrupted, "its process stopped", nil))
	tw.append(c.runEntry("r1", workflow.EventRunResumed, "", nil))
	tw.append(
		c.taskEntry("r1", 1, "b", workflow.EventTaskSucceeded, 0, "", []byte(`"B"`)),
		c.taskEntry("r1", 2, "c", workflow.EventTaskStarted, 1, "", nil),
		c.taskEntry("r1", 2, "c", workflow.EventTaskSucceeded, 0, "", []byte{}),
		c.runEntry("r1", workflow.EventRunSucceeded, "", nil),
	)
}

func TestAppendOfAnUnknownTaskWritesNothingOfTheBatch(t *testing.T) {
	t.Parallel()
	s := open(t, tempPath(t))
	ctx := context.Background()
	c := newClock()
	tw := newTwin(t, s, newRun("wf", "r1", "a"))
	tw.append(c.runEntry("r1", workflow.EventRunStarted, "", []byte(`1`)))

	err := tw.sqlRec.Append(ctx, []workflow.Entry{
		c.taskEntry("r1", 0, "a", workflow.EventTaskStarted, 1, "", nil),
		c.taskEntry("r1", 3, "nope", workflow.EventTaskStarted, 1, "", nil),
	})
	require.ErrorIs(t, err, workflow.ErrNotFound)
	require.ErrorContains(t, err, `"nope"`)
	tw.check() // nothing of the batch was written

	tw.append(c.taskEntry("r1", 0, "a", workflow.EventTaskStarted, 1, "", nil))
	tw.append(c.taskEntry("r1", 0, "a", workflow.EventTaskSucceeded, 0, "", []byte(`2`)))
}

func TestAppendAfterCloseFailsWithErrClosed(t *testing.T) {
	t.Parallel()
	s, err := sqlitestore.Open(tempPath(t))
	require.NoError(t, err)
	ctx := context.Background()
	rec, err := s.Create(ctx, newRun("wf", "r1", "a"))
	require.NoError(t, err)
	require.NoError(t, s.Close())

	c := newClock()
	err = rec.Append(ctx, []workflow.Entry{c.runEntry("r1", workflow.EventRunStarted, "", nil)})
	require.ErrorIs(t, err, sqlitestore.ErrClosed)
	require.ErrorContains(t, err, `"r1"`)
}

func TestPayloadsHoldTheInputAndTheOutputsOfSucceededTasks(t *testing.T) {
	t.Parallel()
	path := tempPath(t)
	s := open(t, path)
	ctx := context.Background()
	c := newClock()
	rec, err := s.Create(ctx, newRun("wf", "r1", "a", "b", "c", "d"))
	require.NoError(t, err)

	p, err := s.Payloads(ctx, "wf", "r1")
	require.NoError(t, err)
	require.False(t, p.HasInput)
	require.Empty(t, p.Outputs)

	big := make([]byte, 1<<20)
	for i := range big {
		big[i] = byte(i)
	}
	require.NoError(t, rec.Append(ctx, []workflow.Entry{
		c.runEntry("r1", workflow.EventRunStarted, "", []byte(`{"order":42}`)),
		c.taskEntry("r1", 0, "a", workflow.EventTaskStarted, 1, "", nil),
		c.taskEntry("r1", 0, "a", workflow.EventTaskSucceeded, 0, "", big),
		c.taskEntry("r1", 1, "b", workflow.EventTaskStarted, 1, "", nil),
		c.taskEntry("r1", 1, "b", workflow.EventTaskSucceeded, 0, "", []byte{}),
		c.taskEntry("r1", 2, "c", workflow.EventTaskStarted, 1, "", nil),
		c.taskEntry("r1", 2, "c", workflow.EventTaskFailed, 1, "no", nil),
	}))
	check := func() {
		t.Helper()
		p, err := s.Payloads(ctx, "wf", "r1")
		require.NoError(t, err)
		require.True(t, p.HasInput)
		require.Equal(t, []byte(`{"order":42}`), p.Input.Data)
		require.Equal(t, map[string]workflow.Payload{"a": {Data: big}, "b": {Data: []byte{}}}, p.Outputs)
		rs, err := s.Get(ctx, "wf", "r1")
		require.NoError(t, err)
		require.Equal(t, `{"order":42}`, string(rs.Input))
		require.Equal(t, big, []byte(rs.Tasks[0].Output))
		require.Nil(t, rs.Output, "the engine sets the run's output")
	}
	check() // folded from the events
	require.NoError(t, rec.Append(ctx, []workflow.Entry{
		c.taskEntry("r1", 3, "d", workflow.EventTaskSkipped, 0, "", nil),
		c.runEntry("r1", workflow.EventRunFailed, "c failed", nil),
	}))
	check() // from the tasks' rows

	// In another handle: the payloads are in the file.
	require.NoError(t, s.Close())
	s2 := open(t, path)
	p, err = s2.Payloads(ctx, "wf", "r1")
	require.NoError(t, err)
	require.Equal(t, map[string]workflow.Payload{"a": {Data: big}, "b": {Data: []byte{}}}, p.Outputs)
}

func TestAnAppendWhoseContextEndedWritesNothing(t *testing.T) {
	t.Parallel()
	s := open(t, tempPath(t))
	c := newClock()
	tw := newTwin(t, s, newRun("wf", "r1", "a"))
	tw.append(c.runEntry("r1", workflow.EventRunStarted, "", []byte(`1`)))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err := tw.sqlRec.Append(ctx, []workflow.Entry{c.taskEntry("r1", 0, "a", workflow.EventTaskStarted, 1, "", nil)})
	require.True(t, errors.Is(err, context.Canceled), "%v", err)
	tw.check()
	tw.append(c.taskEntry("r1", 0, "a", workflow.EventTaskStarted, 1, "", nil))
	tw.append(c.taskEntry("r1", 0, "a", workflow.EventTaskSucceeded, 0, "", []byte(`2`)), c.runEntry("r1", workflow.EventRunSucceeded, "", nil))
}

func TestAFailedWriteLeavesNothingOfTheBatch(t *testing.T) {
	t.Parallel()
	path := tempPath(t)
	s := open(t, path)
	c := newClock()
	tw := newTwin(t, s, newRun("wf", "r1", "a", "b"))
	tw.append(c.runEntry("r1", workflow.EventRunStarted, "", []byte(`1`)))
	tw.append(c.taskEntry("r1", 0, "a", workflow.EventTaskStarted, 1, "", nil))

	// The file refuses an event: the batch is rolled back as a whole, and
	// the recorder, ahead of the file, reads the run again.
	_, err := rawDB(t, path).Exec(`CREATE TRIGGER refuse BEFORE INSERT ON events WHEN NEW.type = 'refused'
		BEGIN SELECT RAISE(ABORT, 'refused by the test'); END`)
	require.NoError(t, err)
	err = tw.sqlRec.Append(context.Background(), []workflow.Entry{
		c.taskEntry("r1", 0, "a", workflow.EventTaskSucceeded, 0, "", []byte(`"A"`)),
		c.taskEntry("r1", 1, "b", workflow.EventTaskStarted, 1, "", nil),
		c.runEntry("r1", "refused", "", nil),
	})
	require.ErrorContains(t, err, "refused by the test")
	tw.check()

	tw.append(c.taskEntry("r1", 0, "a", workflow.EventTaskSucceeded, 0, "", []byte(`"A"`)))
	tw.append(c.taskEntry("r1", 1, "b", workflow.EventTaskStarted, 1, "", nil))
	tw.append(c.taskEntry("r1", 1, "b", workflow.EventTaskSucceeded, 0, "", []byte(`"B"`)), c.runEntry("r1", workflow.EventRunSucceeded, "", nil))
	p, err := s.Payloads(context.Background(), "wf", "r1")
	require.NoError(t, err)
	require.Equal(t, map[string]workflow.Payload{"a": {Data: []byte(`"A"`)}, "b": {Data: []byte(`"B"`)}}, p.Outputs)
}

func TestABatchOfMoreEventsThanOneInsertTakesIsRecordedWhole(t *testing.T) {
	t.Parallel()
	s := open(t, tempPath(t))
	c := newClock()
	var names []string
	for i := range 20 {
		names = append(names, fmt.Sprintf("tâche \"%d\"", i)) // written through JSON on Create
	}
	tw := newTwin(t, s, newRun("wf", "r1", names...))
	tw.check()
	batch := []workflow.Entry{c.runEntry("r1", workflow.EventRunStarted, "", []byte(`7`))}
	for i, name := range names {
		batch = append(batch,
			c.taskEntry("r1", i, name, workflow.EventTaskStarted, 1, "", nil),
			c.taskEntry("r1", i, name, workflow.EventTaskSucceeded, 1, "", []byte(strconv.Itoa(i))))
	}
	tw.append(batch...) // 41 events: three INSERTs
	tw.append(c.runEntry("r1", workflow.EventRunSucceeded, "", nil))
	pl, err := s.Payloads(context.Background(), "wf", "r1")
	require.NoError(t, err)
	require.Len(t, pl.Outputs, len(names))
	require.Equal(t, []byte(`19`), pl.Outputs[names[19]].Data)
}

// A failed Map task keeps its succeeded items' outputs in the payload of
// its end event: the run's new owner reads it back whether the task's
// row holds it (the run stopped) or only the event does (its owner died).
func TestWhatAFailedTaskKeptOutlivesItsOwner(t *testing.T) {
	t.Parallel()
	path := tempPath(t)
	ctx := context.Background()
	c := newClock()
	a, err := sqlitestore.Open(path, sqlitestore.LeaseTTL(50*time.Millisecond))
	require.NoError(t, err)
	rec, err := a.Create(ctx, newRun("wf", "r1", "resize", "notify"))
	require.NoError(t, err)
	kept := []byte(`{"done":[0,2],"outputs":["a","c"]}`)
	require.NoError(t, rec.Append(ctx, []workflow.Entry{
		c.runEntry("r1", workflow.EventRunStarted, "", []byte(`1`)),
		c.taskEntry("r1", 0, "resize", workflow.EventTaskStarted, 1, "", nil),
		c.taskEntry("r1", 1, "notify", workflow.EventTaskStarted, 1, "", nil),
		c.taskEntry("r1", 0, "resize", workflow.EventTaskFailed, 1, "item 1: corrupt", kept),
	}))
	require.NoError(t, a.Close()) // the run goes on, its events not folded

	b := open(t, path)
	partial := func(want map[string]workflow.Payload) {
		t.Helper()
		p, err := b.Payloads(ctx, "wf", "r1")
		require.NoError(t, err)
		require.Equal(t, want, p.Partial)
		rs, err := b.Get(ctx, "wf", "r1")
		require.NoError(t, err)
		require.Equal(t, string(want["resize"].Data), string(rs.Tasks[0].Output))
	}
	eventually(t, "r1 is an orphan", func() bool { return len(orphans(t, b, "wf")) == 1 })
	partial(map[string]workflow.Payload{"resize": {Data: kept}})
	rec, err = b.ClaimOrphan(ctx, "wf", "r1")
	require.NoError(t, err)
	require.NoError(t, rec.Append(ctx, []workflow.Entry{
		c.runEntry("r1", workflow.EventRunInterrupted, "its process stopped without ending it", nil),
	}))
	partial(map[string]workflow.Payload{"resize": {Data: kept}}) // folded into its row
	rec, err = b.Reopen(ctx, "wf", "r1")
	require.NoError(t, err)
	partial(map[string]workflow.Payload{"resize": {Data: kept}})
	require.NoError(t, rec.Append(ctx, []workflow.Entry{c.runEntry("r1", workflow.EventRunResumed, "", nil)}))
	partial(nil)
}
