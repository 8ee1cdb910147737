package workflow_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/b3b01171/workflow"
)

var runEnds = map[string]workflow.State{
	workflow.EventRunSucceeded: workflow.StateSucceeded,
	workflow.EventRunFailed:    workflow.StateFailed,
	workflow.EventRunTimedOut:  workflow.StateTimedOut,
	workflow.EventRunCancelled: workflow.StateCancelled,
}

// requireCompleteEvents checks the events of an ended run: it starts with
// run_started; each start or resume is followed by exactly one terminal
// event, with nothing after the last; every attempt of a task has its
// task_started, numbered from 1 across the run, with the pass it is in;
// each task ends at most once
// per pass and skipped tasks never started; times never go back; and the
// status agrees with the events.
func requireCompleteEvents(t *testing.T, rs workflow.RunStatus) {
	t.Helper()
	evs := rs.Events
	require.NotEmpty(t, evs)
	require.Equal(t, workflow.EventRunStarted, evs[0].Type, "first event")
	open := false
	started := map[string]int{} // task → attempts started in the run
	pass := 0
	ended := map[string]bool{}       // task → ended in this pass
	last := map[string]string{}      // task → its latest end event
	startedPass := map[string]bool{} // task → started in this pass
	newPass := func() {
		clear(startedPass)
		// A new pass runs every task again except those that succeeded.
		for task := range ended {
			if last[task] != workflow.EventTaskSucceeded {
				delete(ended, task)
			}
		}
	}
	for k, ev := range evs {
		where := fmt.Sprintf("event %d (%s %q #%d) of %v", k, ev.Type, ev.Task, ev.Attempt, eventTypes(evs))
		require.Equal(t, rs.RunID, ev.RunID, where)
		switch ev.Type {
		case workflow.EventRunStarted, workflow.EventRunResumed, workflow.EventRunRetrying:
			pass++
		}
		require.Equal(t, pass, ev.Pass, "the event's pass: %s", where)
		require.False(t, ev.Time.IsZero(), where)
		if k > 0 {
			require.False(t, ev.Time.Before(evs[k-1].Time), "time goes back at %s", where)
		}
		if ev.Type != workflow.EventRunStarted && ev.Type != workflow.EventRunResumed {
			require.True(t, open, "event outside a run: %s", where)
		}
		switch ev.Type {
		case workflow.EventRunStarted:
			require.Zero(t, k, where)
			open = true
			newPass()
		case workflow.EventRunResumed:
			require.False(t, open, "resumed before the run ended: %s", where)
			open = true
			newPass()
		case workflow.EventRunRetrying:
			newPass()
		case workflow.EventRunSucceeded, workflow.EventRunFailed, workflow.EventRunTimedOut, workflow.EventRunCancelled:
			open = false
		case workflow.EventTaskStarted:
			require.False(t, ended[ev.Task], "started after it ended: %s", where)
			require.Equal(t, started[ev.Task]+1, ev.Attempt, "attempts are numbered in order across the run: %s", where)
			started[ev.Task] = ev.Attempt
			startedPass[ev.Task] = true
		case workflow.EventTaskRetrying:
			require.False(t, ended[ev.Task], where)
			require.Equal(t, started[ev.Task], ev.Attempt, "retrying an attempt that did not start: %s", where)
		case workflow.EventTaskSucceeded, workflow.EventTaskFailed, workflow.EventTaskTimedOut, workflow.EventTaskCancelled:
			require.False(t, ended[ev.Task], "ended twice: %s", where)
			require.Equal(t, started[ev.Task], ev.Attempt, "ended an attempt that did not start: %s", where)
			if ev.Type != workflow.EventTaskFailed {
				require.Positive(t, ev.Attempt, where)
			}
			ended[ev.Task], last[ev.Task] = true, ev.Type
		case workflow.EventTaskSkipped:
			require.False(t, ended[ev.Task], "ended twice: %s", where)
			if ev.Attempt > 0 { // its handler returned Skip
				require.Equal(t, started[ev.Task], ev.Attempt, "skipped an attempt that did not start: %s", where)
				require.True(t, startedPass[ev.Task], "skipped by a handler not started in this pass: %s", where)
			} else {
				require.False(t, startedPass[ev.Task], "skipped after it started: %s", where)
			}
			ended[ev.Task], last[ev.Task] = true, ev.Type
		case workflow.EventItemsStarted, workflow.EventItemsProgress, workflow.EventItemRetrying, workflow.EventItemFailed:
			require.True(t, startedPass[ev.Task] && !ended[ev.Task], "an item event outside its task's attempt: %s", where)
		default:
			require.Failf(t, "unknown event type", where)
		}
		if ev.Task != "" {
			_, ok := rs.Task(ev.Task)
			require.True(t, ok, "event of an unknown task: %s", where)
		}
	}
	require.False(t, open, "the run has no terminal event: %v", eventTypes(evs))
	end := evs[len(evs)-1]
	require.Equal(t, runEnds[end.Type], rs.State, "the last event is the run's end")
	require.Equal(t, end.Error, rs.Error)
	require.True(t, rs.EndedAt.Equal(end.Time))
	taskEnds := map[string]workflow.State{
		workflow.EventTaskSucceeded: workflow.StateSucceeded, workflow.EventTaskFailed: workflow.StateFailed,
		workflow.EventTaskTimedOut: workflow.StateTimedOut, workflow.EventTaskCancelled: workflow.StateCancelled,
		workflow.EventTaskSkipped: workflow.StateSkipped,
	}
	for _, ts := range rs.Tasks {
		require.True(t, ended[ts.Name], "task %q has no end event in the last pass", ts.Name)
		require.Equal(t, taskEnds[last[ts.Name]], ts.State, "task %q's state is that of its last end event", ts.Name)
	}
}

func eventTypes(evs []workflow.Event) []string {
	out := make([]string, len(evs))
	for i, ev := range evs {
		out[i] = ev.Type
		if ev.Task != "" {
			out[i] += ":" + ev.Task
		}
	}
	return out
}

func countEvents(rs workflow.RunStatus, typ string) int {
	n := 0
	for _, ev := range rs.Events {
		if ev.Type == typ {
			n++
		}
	}
	return n
}

func runIDs(runs []workflow.RunStatus) []string {
	ids := make([]string, len(runs))
	for i, rs := range runs {
		ids[i] = rs.RunID
	}
	return ids
}

// runN runs w n times with the given run IDs, and returns the IDs.
func runN(t *testing.T, w *workflow.Workflow[int, int], ids ...string) []string {
	t.Helper()
	for _, id := range ids {
		_, _ = w.Run(t.Context(), 1, workflow.WithRunID(id))
	}
	return ids
}

func TestStatusOfAWorkflowWithoutRunsWrapsErrNotFound(t *testing.T) {
	w := newWorkflow[int, int](t, "never-run", workflow.Tasks{intTask("a")})

	_, errStatus := w.Status(t.Context())
	_, errTask := w.TaskStatus(t.Context(), "a")
	runs, errHistory := w.History(t.Context())

	require.ErrorIs(t, errStatus, workflow.ErrNotFound)
	require.ErrorIs(t, errTask, workflow.ErrNotFound)
	require.NoError(t, errHistory)
	assert.Empty(t, runs)
}

func TestStatusReportsTheLatestRun(t *testing.T) {
	w := newWorkflow[int, int](t, "latest", workflow.Tasks{
		workflow.Task[int, int]{Name: "a", Handler: func(_ context.Context, in int) (int, error) {
			if in < 0 {
				return 0, errBoom
			}
			return in, nil
		}},
	})
	runN(t, w, "first")
	_, err := w.Run(t.Context(), -1, workflow.WithRunID("second"))
	require.Error(t, err)

	rs, err := w.Status(t.Context())

	require.NoError(t, err)
	assert.Equal(t, "second", rs.RunID)
	assert.Equal(t, workflow.StateFailed, rs.State)
	assert.Contains(t, rs.Error, "boom")
	ts, err := w.TaskStatus(t.Context(), "a")
	require.NoError(t, err)
	assert.Equal(t, workflow.StateFailed, ts.State)
}

func TestTaskStatusOfAnUnknownTaskWrapsErrNotFound(t *testing.T) {
	w := newWorkflow[int, int](t, "tasks", workflow.Tasks{intTask("a")})
	runN(t, w, "r1")

	_, err := w.TaskStatus(t.Context(), "ghost")

	require.ErrorIs(t, err, workflow.ErrNotFound)
}

func TestInspectReportsOneRunAndWrapsErrNotFoundForAnUnknownOne(t *testing.T) {
	w := newWorkflow[int, int](t, "inspect", workflow.Tasks{intTask("a")})
	runN(t, w, "r1", "r2")

	rs, err := w.Inspect(t.Context(), "r1")
	require.NoError(t, err)
	assert.Equal(t, "r1", rs.RunID)
	assert.Equal(t, "inspect", rs.Workflow)

	_, err = w.Inspect(t.Context(), "r3")
	require.ErrorIs(t, err, workflow.ErrNotFound)
}

func TestRunStatusRecordsTriggerTimesAttemptsAndErrors(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		t0 := time.Now()
		attempts := 0
		w := newWorkflow[int, int](t, "timed", workflow.Tasks{
			workflow.Task[int, int]{Name: "a", Handler: func(_ context.Context, in int) (int, error) {
				time.Sleep(time.Second)
				return in, nil
			}},
			workflow.Task[int, int]{Name: "b", Dependencies: []string{"a"}, Retry: workflow.RetryPolicy{Attempts: 2, Delay: time.Second},
				Handler: func(_ context.Context, in int) (int, error) {
					time.Sleep(time.Second)
					if attempts++; attempts == 1 {
						return 0, errBoom
					}
					return in, nil
				}},
		})

		_, err := w.Run(t.Context(), 1, workflow.WithRunID("timed-1"))

		require.NoError(t, err)
		rs, err := w.Status(t.Context())
		require.NoError(t, err)
		assert.Equal(t, "timed-1", rs.RunID)
		assert.Equal(t, "timed", rs.Workflow)
		assert.Equal(t, workflow.StateSucceeded, rs.State)
		assert.Equal(t, workflow.TriggerManual, rs.Trigger)
		assert.True(t, rs.ScheduledAt.IsZero())
		assert.Empty(t, rs.Error)
		assert.WithinDuration(t, t0, rs.StartedAt, 0)
		assert.WithinDuration(t, t0.Add(4*time.Second), rs.EndedAt, 0)
		a, _ := rs.Task("a")
		assert.Equal(t, workflow.TaskStatus{Name: "a", State: workflow.StateSucceeded, Attempts: 1, StartedAt: a.StartedAt, EndedAt: a.EndedAt}, a)
		assert.WithinDuration(t, t0, a.StartedAt, 0)
		assert.WithinDuration(t, t0.Add(time.Second), a.EndedAt, 0)
		b, _ := rs.Task("b")
		assert.Equal(t, workflow.StateSucceeded, b.State)
		assert.Equal(t, 2, b.Attempts)
		assert.Empty(t, b.Error)
		assert.WithinDuration(t, t0.Add(time.Second), b.StartedAt, 0, "a task starts at its first attempt")
		assert.WithinDuration(t, t0.Add(4*time.Second), b.EndedAt, 0)
		requireCompleteEvents(t, rs)
	})
}

func TestHistoryIsNewestFirst(t *testing.T) {
	w := newWorkflow[int, int](t, "history", workflow.Tasks{intTask("a")})
	runN(t, w, "r1", "r2", "r3")

	runs, err := w.History(t.Context())

	require.NoError(t, err)
	assert.Equal(t, []string{"r3", "r2", "r1"}, runIDs(runs))
	for _, rs := range runs {
		assert.Equal(t, workflow.StateSucceeded, rs.State)
		requireCompleteEvents(t, rs)
	}
}

func TestHistoryLimitKeepsTheNewestRuns(t *testing.T) {
	w := newWorkflow[int, int](t, "history-limit", workflow.Tasks{intTask("a")})
	runN(t, w, "r1", "r2", "r3", "r4")

	runs, err := w.History(t.Context(), workflow.HistoryLimit(2))

	require.NoError(t, err)
	assert.Equal(t, []string{"r4", "r3"}, runIDs(runs))
}

func TestHistoryStateKeepsRunsInThatState(t *testing.T) {
	w := newWorkflow[int, int](t, "history-state", workflow.Tasks{
		workflow.Task[int, int]{Name: "a", Handler: func(_ context.Context, in int) (int, error) {
			if in < 0 {
				return 0, errBoom
			}
			return in, nil
		}},
	})
	for i, in := range []int{1, -1, 2, -2, -3} {
		_, _ = w.Run(t.Context(), in, workflow.WithRunID(fmt.Sprintf("r%d", i+1)))
	}

	failed, err := w.History(t.Context(), workflow.HistoryState(workflow.StateFailed))
	require.NoError(t, err)
	succeeded, err := w.History(t.Context(), workflow.HistoryState(workflow.StateSucceeded))
	require.NoError(t, err)
	limited, err := w.History(t.Context(), workflow.HistoryState(workflow.StateFailed), workflow.HistoryLimit(2))
	require.NoError(t, err)

	assert.Equal(t, []string{"r5", "r4", "r2"}, runIDs(failed))
	assert.Equal(t, []string{"r3", "r1"}, runIDs(succeeded))
	assert.Equal(t, []string{"r5", "r4"}, runIDs(limited))
}

func TestStatusIsACopyThatCallersMayChange(t *testing.T) {
	w := newWorkflow[int, int](t, "copies", workflow.Tasks{intTask("a")})
	runN(t, w, "r1")
	rs, err := w.Status(t.Context())
	require.NoError(t, err)

	rs.Tasks[0].State = workflow.StateFailed
	rs.Events[0].Type = "changed"
	rs.Events = append(rs.Events[:1], workflow.Event{Type: "extra"})

	again, err := w.Status(t.Context())
	require.NoError(t, err)
	assert.Equal(t, workflow.StateSucceeded, again.Tasks[0].State)
	assert.Equal(t, workflow.EventRunStarted, again.Events[0].Type)
	requireCompleteEvents(t, again)
}

func TestMemoryStoreKeeps1000RunsPerWorkflowByDefault(t *testing.T) {
	store := workflow.NewMemoryStore()
	w := newWorkflow[int, int](t, "default-retention", workflow.Tasks{intTask("a")}, workflow.WithStore(store))
	other := newWorkflow[int, int](t, "other", workflow.Tasks{intTask("a")}, workflow.WithStore(store))
	runN(t, other, "other-1")
	for i := range workflow.DefaultMaxRuns + 1 {
		_, err := w.Run(t.Context(), 1, workflow.WithRunID(fmt.Sprintf("r%d", i)))
		require.NoError(t, err)
	}

	runs, err := w.History(t.Context())

	require.NoError(t, err)
	assert.Equal(t, 1000, workflow.DefaultMaxRuns)
	require.Len(t, runs, workflow.DefaultMaxRuns)
	assert.Equal(t, fmt.Sprintf("r%d", workflow.DefaultMaxRuns), runs[0].RunID)
	assert.Equal(t, "r1", runs[len(runs)-1].RunID)
	_, err = w.Inspect(t.Context(), "r0")
	require.ErrorIs(t, err, workflow.ErrNotFound, "the oldest run was dropped")
	_, err = other.Inspect(t.Context(), "other-1")
	require.NoError(t, err, "retention counts per workflow")
}

func TestMemoryStoreMaxRunsDropsTheOldestRuns(t *testing.T) {
	w := newWorkflow[int, int](t, "max-runs", workflow.Tasks{intTask("a")},
		workflow.WithStore(workflow.NewMemoryStore(workflow.MaxRuns(3))))
	runN(t, w, "r1", "r2", "r3", "r4", "r5")

	runs, err := w.History(t.Context())

	require.NoError(t, err)
	assert.Equal(t, []string{"r5", "r4", "r3"}, runIDs(runs))
}

func TestMemoryStoreNeverDropsARunUnderWay(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newBlocker()
		defer b.Release()
		w := newWorkflow[int, int](t, "keep-running", workflow.Tasks{
			workflow.Task[int, int]{Name: "a", Handler: func(ctx context.Context, in int) (int, error) {
				if in == 0 {
					return b.handle(ctx, in)
				}
				return in, nil
			}},
		}, workflow.WithStore(workflow.NewMemoryStore(workflow.MaxRuns(1))))
		x, err := w.Start(t.Context(), 0, workflow.WithRunID("long"))
		require.NoError(t, err)
		synctest.Wait()
		for i := 1; i <= 3; i++ {
			_, err := w.Run(t.Context(), i, workflow.WithRunID(fmt.Sprintf("r%d", i)))
			require.NoError(t, err)
		}

		runs, err := w.History(t.Context())
		require.NoError(t, err)
		assert.Equal(t, []string{"r3", "long"}, runIDs(runs))

		rs, err := w.Inspect(t.Context(), "long")
		require.NoError(t, err)
		assert.Equal(t, workflow.StateRunning, rs.State)
		b.Release()
		_, err = x.Wait(t.Context())
		require.NoError(t, err, "the run under way went on to the end")
	})
}

func TestMemoryStoreMaxAgeDropsRunsThatEndedLongAgo(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWorkflow[int, int](t, "max-age", workflow.Tasks{intTask("a")},
			workflow.WithStore(workflow.NewMemoryStore(workflow.MaxAge(time.Hour))))
		runN(t, w, "old")
		time.Sleep(40 * time.Minute)
		runN(t, w, "middle")
		time.Sleep(30 * time.Minute) // old ended 70 minutes ago, middle 30

		runN(t, w, "new")

		runs, err := w.History(t.Context())
		require.NoError(t, err)
		assert.Equal(t, []string{"new", "middle"}, runIDs(runs))
		_, err = w.Inspect(t.Context(), "old")
		require.ErrorIs(t, err, workflow.ErrNotFound)
	})
}

func TestWorkflowsOfOneNameShareHistoryOnOneStore(t *testing.T) {
	store := workflow.NewMemoryStore()
	w1 := newWorkflow[int, int](t, "shared", workflow.Tasks{intTask("a")}, workflow.WithStore(store))
	w2 := newWorkflow[int, int](t, "shared", workflow.Tasks{intTask("a"), intTask("b", "a")}, workflow.WithStore(store))
	stranger := newWorkflow[int, int](t, "stranger", workflow.Tasks{intTask("a")}, workflow.WithStore(store))
	runN(t, w1, "from-w1")
	runN(t, w2, "from-w2")
	runN(t, stranger, "from-stranger")

	h1, err := w1.History(t.Context())
	require.NoError(t, err)
	h2, err := w2.History(t.Context())
	require.NoError(t, err)
	latest, err := w1.Status(t.Context())
	require.NoError(t, err)
	hs, err := stranger.History(t.Context())
	require.NoError(t, err)

	assert.Equal(t, []string{"from-w2", "from-w1"}, runIDs(h1))
	assert.Equal(t, h1, h2)
	assert.Equal(t, "from-w2", latest.RunID)
	assert.Equal(t, []string{"from-stranger"}, runIDs(hs))
	_, err = w2.Run(t.Context(), 1, workflow.WithRunID("from-w1"))
	require.Error(t, err, "a run ID is unique across the workflows sharing a name")
}

func TestSeparateWorkflowsKeepSeparateHistoryByDefault(t *testing.T) {
	w1 := newWorkflow[int, int](t, "same-name", workflow.Tasks{intTask("a")})
	w2 := newWorkflow[int, int](t, "same-name", workflow.Tasks{intTask("a")})
	runN(t, w1, "r1")

	runs, err := w2.History(t.Context())

	require.NoError(t, err)
	assert.Empty(t, runs, "each workflow has a MemoryStore of its own unless WithStore is given")
}

// filledStore returns a store holding runs of two workflows, one failed.
func filledStore(t *testing.T) *workflow.MemoryStore {
	t.Helper()
	store := workflow.NewMemoryStore()
	a := newWorkflow[int, int](t, "alpha", workflow.Tasks{intTask("a"), intTask("b", "a")}, workflow.WithStore(store))
	b := newWorkflow[int, int](t, "beta", workflow.Tasks{workflow.Task[int, int]{Name: "x", Handler: fail}}, workflow.WithStore(store))
	runN(t, a, "a1", "a2")
	runN(t, b, "b1")
	return store
}

func snapshotOf(t *testing.T, s *workflow.MemoryStore) []byte {
	t.Helper()
	var buf bytes.Buffer
	require.NoError(t, s.Snapshot(&buf))
	return buf.Bytes()
}

func TestSnapshotAndRestoreRoundTrip(t *testing.T) {
	src := filledStore(t)
	snap := snapshotOf(t, src)
	require.True(t, json.Valid(snap))

	dst := workflow.NewMemoryStore()
	require.NoError(t, dst.Restore(bytes.NewReader(snap)))

	assert.JSONEq(t, string(snap), string(snapshotOf(t, dst)))
	for _, name := range []string{"alpha", "beta"} {
		want, err := src.List(t.Context(), name, workflow.HistoryQuery{})
		require.NoError(t, err)
		got, err := dst.List(t.Context(), name, workflow.HistoryQuery{})
		require.NoError(t, err)
		require.Equal(t, runIDs(want), runIDs(got))
		for i := range want {
			assert.Equal(t, want[i].State, got[i].State)
			assert.Equal(t, want[i].Error, got[i].Error)
			assert.Equal(t, eventTypes(want[i].Events), eventTypes(got[i].Events))
			assert.Len(t, got[i].Tasks, len(want[i].Tasks))
			assert.True(t, want[i].EndedAt.Equal(got[i].EndedAt))
			requireCompleteEvents(t, got[i])
		}
	}
	// A workflow on the restored store sees the history.
	w := newWorkflow[int, int](t, "beta", workflow.Tasks{workflow.Task[int, int]{Name: "x", Handler: fail}}, workflow.WithStore(dst))
	rs, err := w.Inspect(t.Context(), "b1")
	require.NoError(t, err)
	assert.Equal(t, workflow.StateFailed, rs.State)
}

func TestRestoreReplacesRunsOfTheSameIDAndKeepsTheOthers(t *testing.T) {
	snap := snapshotOf(t, filledStore(t))
	dst := workflow.NewMemoryStore()
	w := newWorkflow[int, int](t, "alpha", workflow.Tasks{workflow.Task[int, int]{Name: "a", Handler: fail}}, workflow.WithStore(dst))
	runN(t, w, "a1", "local")

	require.NoError(t, dst.Restore(bytes.NewReader(snap)))

	a1, err := w.Inspect(t.Context(), "a1")
	require.NoError(t, err)
	assert.Equal(t, workflow.StateSucceeded, a1.State, "the snapshot's a1 replaced the local one")
	local, err := w.Inspect(t.Context(), "local")
	require.NoError(t, err)
	assert.Equal(t, workflow.StateFailed, local.State)
	runs, err := w.History(t.Context())
	require.NoError(t, err)
	assert.ElementsMatch(t, []string{"a1", "a2", "local"}, runIDs(runs))
}

func TestRestoreOfABadSnapshotLeavesTheStoreUnchanged(t *testing.T) {
	good := snapshotOf(t, filledStore(t))
	run := func(workflowName, id, state string, tasks string) string {
		return fmt.Sprintf(`{"run_id":%q,"workflow":%q,"state":%q,"trigger":"manual","tasks":%s,"events":[]}`, id, workflowName, state, tasks)
	}
	valid := run("alpha", "new-run", "succeeded", `[{"name":"a","state":"succeeded","attempts":1}]`)
	snap := func(version int, runs ...string) string {
		return fmt.Sprintf(`{"version":%d,"runs":[%s]}`, version, strings.Join(runs, ","))
	}
	bad := map[string]string{
		"Empty":            "",
		"Truncated":        string(good[:len(good)/2]),
		"NotJSON":          "not json",
		"Null":             "null",
		"WrongVersion":     snap(99, valid),
		"UnknownField":     `{"version":1,"runs":[],"extra":true}`,
		"MissingRunID":     snap(1, valid, run("alpha", "", "succeeded", `[]`)),
		"MissingWorkflow":  snap(1, valid, run("", "x", "succeeded", `[]`)),
		"UnknownRunState":  snap(1, valid, run("alpha", "x", "exploded", `[]`)),
		"UnknownTaskState": snap(1, valid, run("alpha", "x", "failed", `[{"name":"a","state":"odd"}]`)),
		"RepeatedTask":     snap(1, valid, run("alpha", "x", "failed", `[{"name":"a","state":"failed"},{"name":"a","state":"failed"}]`)),
		"EmptyTaskName":    snap(1, valid, run("alpha", "x", "failed", `[{"name":"","state":"failed"}]`)),
		"RepeatedRun":      snap(1, valid, valid),
		"WrongFieldType":   snap(1, valid, `{"run_id":1,"workflow":"alpha","state":"failed"}`),
	}
	for name, input := range bad {
		t.Run(name, func(t *testing.T) {
			store := filledStore(t)
			before := snapshotOf(t, store)

			err := store.Restore(strings.NewReader(input))

			require.Error(t, err)
			assert.ErrorIs(t, err, workflow.ErrInvalidInput)
			assert.Equal(t, string(before), string(snapshotOf(t, store)), "the store changed")
		})
	}
	t.Run("ValidRunsAlone", func(t *testing.T) {
		store := filledStore(t)
		require.NoError(t, store.Restore(strings.NewReader(snap(1, valid))), "the valid run used above is valid")
		rs, err := store.Get(t.Context(), "alpha", "new-run")
		require.NoError(t, err)
		assert.Equal(t, workflow.StateSucceeded, rs.State)
	})
}

func TestHookSeesEveryEventInOrder(t *testing.T) {
	var mu sync.Mutex
	var seen []workflow.Event
	var hook2 int
	w := newWorkflow[int, int](t, "hooked", workflow.Tasks{
		intTask("a"),
		workflow.Task[int, int]{Name: "b", Dependencies: []string{"a"}, Retry: workflow.RetryPolicy{Attempts: 2}, Handler: fail},
		intTask("c", "b"),
	},
		workflow.WithHook(func(ev workflow.Event) {
			mu.Lock()
			defer mu.Unlock()
			seen = append(seen, ev)
		}),
		workflow.WithHook(func(workflow.Event) { hook2++ }),
	)

	_, err := w.Run(t.Context(), 1)
	require.ErrorIs(t, err, errBoom)

	rs, err := w.Status(t.Context())
	require.NoError(t, err)
	mu.Lock()
	defer mu.Unlock()
	assert.Equal(t, rs.Events, seen)
	assert.Equal(t, len(seen), hook2, "every hook sees every event")
	assert.Equal(t, []string{
		"run_started", "task_started:a", "task_succeeded:a",
		"task_started:b", "task_retrying:b", "task_started:b", "task_failed:b",
		"task_skipped:c", "run_failed",
	}, eventTypes(seen))
}

func TestHookThatPanicsDoesNotStopTheRun(t *testing.T) {
	var buf bytes.Buffer
	w := newWorkflow[int, int](t, "hook-panics", workflow.Tasks{intTask("a")},
		workflow.WithHook(func(workflow.Event) { panic("hook bug") }),
		workflow.WithLogger(slog.New(slog.NewTextHandler(&buf, nil))))

	var out int
	var err error
	require.NotPanics(t, func() { out, err = w.Run(t.Context(), 5) })

	require.NoError(t, err)
	assert.Equal(t, 5, out)
	assert.Contains(t, buf.String(), "hook bug")
}

func TestLoggerLogsRunAndTaskStartsRetriesFailuresAndEnds(t *testing.T) {
	var buf bytes.Buffer
	logger := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	w := newWorkflow[int, int](t, "logged", workflow.Tasks{
		workflow.Task[int, int]{Name: "a", Handler: func(_ context.Context, in int) (int, error) {
			if in < 0 {
				return 0, errBoom
			}
			return in, nil
		}, Retry: workflow.RetryPolicy{Attempts: 2}},
	}, workflow.WithLogger(logger))

	_, err := w.Run(t.Context(), 1, workflow.WithRunID("good"))
	require.NoError(t, err)
	_, err = w.Run(t.Context(), -1, workflow.WithRunID("bad"))
	require.Error(t, err)

	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	find := func(level, msg, runID string) string {
		for _, l := range lines {
			if strings.Contains(l, "level="+level) && strings.Contains(l, `msg="workflow `+msg+`"`) && strings.Contains(l, "run_id="+runID) {
				return l
			}
		}
		return ""
	}
	for _, want := range []struct{ level, msg, run string }{
		{"INFO", "run_started", "good"},
		{"DEBUG", "task_started", "good"},
		{"DEBUG", "task_succeeded", "good"},
		{"INFO", "run_succeeded", "good"},
		{"WARN", "task_retrying", "bad"},
		{"ERROR", "task_failed", "bad"},
		{"ERROR", "run_failed", "bad"},
	} {
		line := find(want.level, want.msg, want.run)
		if assert.NotEmpty(t, line, "no %s %s line for run %s in:\n%s", want.level, want.msg, want.run, buf.String()) {
			assert.Contains(t, line, "workflow=logged")
		}
	}
	assert.Contains(t, find("ERROR", "task_failed", "bad"), "task=a")
	assert.Contains(t, find("ERROR", "task_failed", "bad"), "attempt=2")
	assert.Contains(t, find("ERROR", "task_failed", "bad"), "error=boom")
}

func TestEventsAreCompleteInEveryKindOfRun(t *testing.T) {
	// Each case builds a workflow, runs it, and returns the run's ID. The
	// runs' events are checked by requireCompleteEvents.
	cases := map[string]func(t *testing.T) (*workflow.Workflow[int, int], string){
		"Succeeded": func(t *testing.T) (*workflow.Workflow[int, int], string) {
			w := newWorkflow[int, int](t, "w", workflow.Tasks{
				intTask("a"), intTask("b", "a"), intTask("c", "a"),
				workflow.Task[workflow.Inputs, int]{Name: "d", Dependencies: []string{"b", "c"},
					Handler: func(context.Context, workflow.Inputs) (int, error) { return 0, nil }},
			})
			x, err := w.Start(t.Context(), 1)
			require.NoError(t, err)
			_, err = x.Wait(t.Context())
			require.NoError(t, err)
			return w, x.ID()
		},
		"FailedAfterRetries": func(t *testing.T) (*workflow.Workflow[int, int], string) {
			w := newWorkflow[int, int](t, "w", workflow.Tasks{
				workflow.Task[int, int]{Name: "bad", Retry: workflow.RetryPolicy{Attempts: 3, Delay: time.Second}, Handler: fail},
				workflow.Task[int, int]{Name: "slow", Retry: workflow.RetryPolicy{Attempts: 3}, Handler: waitForCtx},
				intTask("after", "slow"),
			}, workflow.WithOutput("after"))
			_, err := w.Run(t.Context(), 1)
			return w, asWorkflowError(t, err).RunID
		},
		"TaskTimedOut": func(t *testing.T) (*workflow.Workflow[int, int], string) {
			w := newWorkflow[int, int](t, "w", workflow.Tasks{
				workflow.Task[int, int]{Name: "slow", Timeout: time.Second, Retry: workflow.RetryPolicy{Attempts: 2}, Handler: waitForCtx},
			})
			_, err := w.Run(t.Context(), 1)
			return w, asWorkflowError(t, err).RunID
		},
		"RunTimedOutDuringARetryWait": func(t *testing.T) (*workflow.Workflow[int, int], string) {
			w := newWorkflow[int, int](t, "w", workflow.Tasks{
				workflow.Task[int, int]{Name: "bad", Retry: workflow.RetryPolicy{Attempts: 3, Delay: time.Hour}, Handler: fail},
				intTask("after", "bad"),
			})
			_, err := w.Run(t.Context(), 1, workflow.RunTimeout(time.Minute))
			return w, asWorkflowError(t, err).RunID
		},
		"Cancelled": func(t *testing.T) (*workflow.Workflow[int, int], string) {
			w := newWorkflow[int, int](t, "w", workflow.Tasks{
				workflow.Task[int, int]{Name: "slow", Handler: waitForCtx},
				workflow.Task[int, int]{Name: "other", Handler: waitForCtx},
				intTask("after", "slow"),
			}, workflow.WithOutput("after"), workflow.WithMaxConcurrency(1))
			x, err := w.Start(t.Context(), 1)
			require.NoError(t, err)
			synctest.Wait()
			require.NoError(t, w.Cancel(t.Context(), x.ID()))
			return w, x.ID()
		},
		"RetriedOnFailureThenResumed": func(t *testing.T) (*workflow.Workflow[int, int], string) {
			p := newFlakyPipeline(t, nil)
			_, err := p.w.Run(t.Context(), 1, workflow.RetryOnFailure(1))
			id := asWorkflowError(t, err).RunID
			p.failing.Store(false)
			_, err = p.w.Resume(t.Context(), id)
			require.NoError(t, err)
			return p.w, id
		},
	}
	for name, run := range cases {
		t.Run(name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				w, id := run(t)

				rs, err := w.Inspect(t.Context(), id)

				require.NoError(t, err)
				requireCompleteEvents(t, rs)
				synctest.Wait()
				again, err := w.Inspect(t.Context(), id)
				require.NoError(t, err)
				assert.Equal(t, rs.Events, again.Events, "no event after the run's end")
			})
		})
	}
}

func TestMemoryStoreIsSafeForConcurrentUse(t *testing.T) {
	store := workflow.NewMemoryStore(workflow.MaxRuns(50))
	w := newWorkflow[int, int](t, "busy-store", workflow.Tasks{
		intTask("a"), intTask("b", "a"),
		workflow.Task[int, int]{Name: "c", Dependencies: []string{"b"}, Handler: func(_ context.Context, in int) (int, error) {
			if in%3 == 0 {
				return 0, errBoom
			}
			return in, nil
		}},
	}, workflow.WithStore(store))
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			for j := range 25 {
				_, _ = w.Run(t.Context(), i*25+j)
			}
		})
	}
	for range 2 {
		wg.Go(func() {
			for range 25 {
				_, _ = w.History(t.Context(), workflow.HistoryLimit(10))
				_, _ = w.Status(t.Context())
				assert.NoError(t, store.Snapshot(io.Discard))
			}
		})
	}
	wg.Wait()

	runs, err := w.History(t.Context())
	require.NoError(t, err)
	assert.Len(t, runs, 50)
	for _, rs := range runs {
		requireCompleteEvents(t, rs)
	}
	var buf bytes.Buffer
	require.NoError(t, store.Snapshot(&buf))
	require.NoError(t, workflow.NewMemoryStore().Restore(&buf))
}

func TestRestoreKeepsHistoryNewestFirstAndRetentionDroppingTheOldest(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		src := workflow.NewMemoryStore()
		old := newWorkflow[int, int](t, "merged", workflow.Tasks{intTask("a")}, workflow.WithStore(src))
		runN(t, old, "old1")
		time.Sleep(time.Minute)
		runN(t, old, "old2")
		snap := snapshotOf(t, src)
		time.Sleep(time.Hour)
		dst := workflow.NewMemoryStore(workflow.MaxRuns(2))
		w := newWorkflow[int, int](t, "merged", workflow.Tasks{intTask("a")}, workflow.WithStore(dst))
		runN(t, w, "new1")

		require.NoError(t, dst.Restore(bytes.NewReader(snap)))

		runs, err := w.History(t.Context())
		require.NoError(t, err)
		assert.Equal(t, []string{"new1", "old2"}, runIDs(runs), "newest first, and the oldest dropped")
		latest, err := w.Status(t.Context())
		require.NoError(t, err)
		assert.Equal(t, "new1", latest.RunID)
		runN(t, w, "new2")
		runs, err = w.History(t.Context())
		require.NoError(t, err)
		assert.Equal(t, []string{"new2", "new1"}, runIDs(runs))
	})
}
