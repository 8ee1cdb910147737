package workflow_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"strings"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/b3b01171/workflow"
)

// Bad input: every misuse gives an error that wraps the sentinel it should
// and says what was wrong and where, never a panic, and loses nothing.

// biRequireError checks that err wraps sentinel and that its message holds
// every one of parts (what was wrong, and where).
func biRequireError(t *testing.T, err error, sentinel error, parts ...string) {
	t.Helper()
	require.Error(t, err)
	require.ErrorIs(t, err, sentinel)
	for _, p := range parts {
		require.Contains(t, err.Error(), p)
	}
}

// biCalls counts handler calls.
type biCalls struct{ n atomic.Int64 }

func (c *biCalls) task(name string, deps ...string) workflow.Task[int, int] {
	return workflow.Task[int, int]{Name: name, Dependencies: deps, Handler: func(ctx context.Context, in int) (int, error) {
		c.n.Add(1)
		return in + 1, nil
	}}
}

func biWorkflow(t *testing.T, name string, opts ...workflow.Option) (*workflow.Workflow[int, int], *biCalls) {
	t.Helper()
	c := &biCalls{}
	w, err := workflow.New[int, int](name, workflow.Tasks{c.task("a"), c.task("b", "a")}, opts...)
	require.NoError(t, err)
	return w, c
}

// biSnapshot is the store's content, to compare before and after a misuse.
func biSnapshot(t *testing.T, s *workflow.MemoryStore) string {
	t.Helper()
	var buf bytes.Buffer
	require.NoError(t, s.Snapshot(&buf))
	return buf.String()
}

//nolint:staticcheck // nil contexts on purpose
func TestBadInputNilContextIsAnErrorEverywhere(t *testing.T) {
	var nilCtx context.Context
	w, calls := biWorkflow(t, "nil-ctx")
	_, err := w.Run(context.Background(), 1, workflow.WithRunID("done"))
	require.NoError(t, err)
	before := calls.n.Load()

	for name, call := range map[string]func() error{
		"Run": func() error { _, err := w.Run(nilCtx, 1); return err },
		"Start": func() error {
			x, err := w.Start(nilCtx, 1)
			require.Nil(t, x)
			return err
		},
		"Resume":     func() error { _, err := w.Resume(nilCtx, "done"); return err },
		"Cancel":     func() error { return w.Cancel(nilCtx, "done") },
		"Status":     func() error { _, err := w.Status(nilCtx); return err },
		"TaskStatus": func() error { _, err := w.TaskStatus(nilCtx, "a"); return err },
		"Inspect":    func() error { _, err := w.Inspect(nilCtx, "done"); return err },
		"History":    func() error { _, err := w.History(nilCtx); return err },
	} {
		t.Run(name, func(t *testing.T) {
			biRequireError(t, call(), workflow.ErrInvalidInput, "nil context", `"nil-ctx"`, name)
		})
	}
	t.Run("Wait", func(t *testing.T) {
		x, err := w.Start(context.Background(), 1)
		require.NoError(t, err)
		_, err = x.Wait(nilCtx)
		biRequireError(t, err, workflow.ErrInvalidInput, "nil context", "Wait", x.ID())
		_, err = x.Wait(context.Background()) // the run went on
		require.NoError(t, err)
	})
	t.Run("Scheduler", func(t *testing.T) {
		s := workflow.NewScheduler()
		_, err := s.Trigger(nilCtx, "nil-ctx")
		biRequireError(t, err, workflow.ErrInvalidInput, "nil context", "Trigger")
		biRequireError(t, s.Stop(nilCtx), workflow.ErrInvalidInput, "nil context", "Stop")
	})
	t.Run("MemoryStore", func(t *testing.T) {
		s := workflow.NewMemoryStore()
		_, err := s.Create(context.Background(), workflow.RunStatus{RunID: "r", Workflow: "nil-ctx", State: workflow.StateSucceeded})
		require.NoError(t, err)
		_, err = s.List(nilCtx, "nil-ctx", workflow.HistoryQuery{})
		biRequireError(t, err, workflow.ErrInvalidInput, "nil context", "List")
		_, err = s.Get(nilCtx, "nil-ctx", "x")
		require.ErrorIs(t, err, workflow.ErrNotFound) // Get never blocks: the context is not needed
	})
	require.Equal(t, before+2, calls.n.Load(), "only the run started for Wait ran")
	rs, err := w.Inspect(context.Background(), "done")
	require.NoError(t, err)
	require.Equal(t, workflow.StateSucceeded, rs.State, "nothing changed the run")
}

func TestBadInputZeroWorkflowErrsInEveryMethod(t *testing.T) {
	ctx := context.Background()
	for name, w := range map[string]*workflow.Workflow[int, int]{"zero": {}, "nil": nil} {
		t.Run(name, func(t *testing.T) {
			require.Empty(t, w.Name())
			check := func(err error) {
				t.Helper()
				biRequireError(t, err, workflow.ErrInvalidWorkflow, "not built by New")
			}
			_, err := w.Run(ctx, 1)
			check(err)
			x, err := w.Start(ctx, 1)
			check(err)
			require.Nil(t, x)
			_, err = w.Resume(ctx, "r")
			check(err)
			check(w.Cancel(ctx, "r"))
			_, err = w.Status(ctx)
			check(err)
			_, err = w.TaskStatus(ctx, "a")
			check(err)
			_, err = w.Inspect(ctx, "r")
			check(err)
			_, err = w.History(ctx)
			check(err)
			check(workflow.NewScheduler().Register(w))
		})
	}
}

func TestBadInputUnknownRunIDIsNotFound(t *testing.T) {
	ctx := context.Background()
	store := workflow.NewMemoryStore()
	w, calls := biWorkflow(t, "unknown-id", workflow.WithStore(store))
	_, err := w.Status(ctx)
	biRequireError(t, err, workflow.ErrNotFound, `"unknown-id"`, "no runs")
	_, err = w.Run(ctx, 1, workflow.WithRunID("known"))
	require.NoError(t, err)
	snap := biSnapshot(t, store)

	_, err = w.Inspect(ctx, "nope")
	biRequireError(t, err, workflow.ErrNotFound, `"unknown-id"`, "run nope", "no such run")
	_, err = w.Resume(ctx, "nope")
	biRequireError(t, err, workflow.ErrNotFound, `"unknown-id"`, "run nope", "Resume", "no such run")
	biRequireError(t, w.Cancel(ctx, "nope"), workflow.ErrNotFound, `"unknown-id"`, "run nope", "Cancel", "no such run")
	_, err = w.Resume(ctx, "")
	biRequireError(t, err, workflow.ErrNotFound, "empty run ID")
	biRequireError(t, w.Cancel(ctx, ""), workflow.ErrNotFound, "empty run ID")
	_, err = w.TaskStatus(ctx, "nope")
	biRequireError(t, err, workflow.ErrNotFound, `"unknown-id"`, `"nope"`)

	require.Equal(t, int64(2), calls.n.Load(), "no task ran for a bad call")
	require.Equal(t, snap, biSnapshot(t, store), "nothing changed in the store")
}

func TestBadInputResumeOfASucceededOrRunningRunIsRefused(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := t.Context()
		release := make(chan struct{})
		var calls atomic.Int64
		w, err := workflow.New[int, int]("resume-refused", workflow.Tasks{
			workflow.Task[int, int]{Name: "a", Handler: func(ctx context.Context, in int) (int, error) {
				calls.Add(1)
				if in == 0 {
					<-release
				}
				return in, nil
			}},
		})
		require.NoError(t, err)
		_, err = w.Run(ctx, 1, workflow.WithRunID("ok"))
		require.NoError(t, err)
		_, err = w.Resume(ctx, "ok")
		biRequireError(t, err, workflow.ErrNotResumable, "run ok", "succeeded")
		cerr := w.Cancel(ctx, "ok")
		biRequireError(t, cerr, workflow.ErrRunEnded, "run ok", "succeeded")

		x, err := w.Start(ctx, 0, workflow.WithRunID("busy"))
		require.NoError(t, err)
		synctest.Wait()
		_, err = w.Resume(ctx, "busy")
		biRequireError(t, err, workflow.ErrNotResumable, "run busy", "still running")
		close(release)
		_, err = x.Wait(ctx)
		require.NoError(t, err, "the refused Resume did not disturb the run")
		require.Equal(t, int64(2), calls.Load(), "each task ran once per run")
		for _, id := range []string{"ok", "busy"} {
			rs, err := w.Inspect(ctx, id)
			require.NoError(t, err)
			require.Equal(t, workflow.StateSucceeded, rs.State)
			require.Len(t, rs.Events, 4, "run_started, task_started, task_succeeded, run_succeeded")
		}
	})
}

func TestBadInputRestoreOfBadJSONKeepsTheStore(t *testing.T) {
	ctx := context.Background()
	store := workflow.NewMemoryStore()
	w, _ := biWorkflow(t, "restore", workflow.WithStore(store))
	for range 3 {
		_, err := w.Run(ctx, 1)
		require.NoError(t, err)
	}
	good := biSnapshot(t, store)
	require.True(t, strings.HasSuffix(good, "}\n"))

	bad := map[string]string{
		"empty":            "",
		"null":             "null",
		"array":            "[]",
		"string":           `"runs"`,
		"wrong version":    `{"version":2,"runs":[]}`,
		"no version":       `{"runs":[]}`,
		"unknown field":    `{"version":1,"runs":[],"extra":true}`,
		"runs not a list":  `{"version":1,"runs":{}}`,
		"run without id":   `{"version":1,"runs":[{"workflow":"restore","state":"succeeded","tasks":[],"events":[]}]}`,
		"unknown state":    `{"version":1,"runs":[{"run_id":"x","workflow":"restore","state":"exploded","tasks":[],"events":[]}]}`,
		"bad task state":   `{"version":1,"runs":[{"run_id":"x","workflow":"restore","state":"failed","tasks":[{"name":"a","state":"?"}],"events":[]}]}`,
		"repeated task":    `{"version":1,"runs":[{"run_id":"x","workflow":"restore","state":"failed","tasks":[{"name":"a","state":"failed"},{"name":"a","state":"failed"}],"events":[]}]}`,
		"run twice":        `{"version":1,"runs":[{"run_id":"x","workflow":"restore","state":"failed","tasks":[],"events":[]},{"run_id":"x","workflow":"restore","state":"failed","tasks":[],"events":[]}]}`,
		"bad time":         `{"version":1,"runs":[{"run_id":"x","workflow":"restore","state":"failed","started_at":"yesterday","tasks":[],"events":[]}]}`,
		"two snapshots":    good + good,
		"trailing garbage": good + "garbage",
		"trailing brace":   good + "}",
	}
	// Truncations of a good snapshot: every one of its first 100 bytes and
	// of its last 100 (the one that drops only the final newline is still a
	// whole snapshot), and one in 17 between.
	for n := 0; n < len(good)-1; n++ {
		if n < 100 || n > len(good)-100 || n%17 == 0 {
			bad[fmt.Sprintf("truncated to %d bytes", n)] = good[:n]
		}
	}
	for name, text := range bad {
		err := store.Restore(strings.NewReader(text))
		require.ErrorIs(t, err, workflow.ErrInvalidInput, name)
		require.Contains(t, err.Error(), "restore", name)
		require.Equal(t, good, biSnapshot(t, store), "%s: the store kept what it had", name)
	}
	require.NoError(t, store.Restore(strings.NewReader(good)))
	require.Equal(t, good, biSnapshot(t, store))
}

func TestBadInputRestoreKeepsRunsUnderWay(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := t.Context()
		store := workflow.NewMemoryStore()
		release := make(chan struct{})
		w, err := workflow.New[int, int]("restore-live", workflow.Tasks{
			workflow.Task[int, int]{Name: "a", Handler: func(ctx context.Context, in int) (int, error) {
				<-release
				return in, nil
			}},
		}, workflow.WithStore(store))
		require.NoError(t, err)
		x, err := w.Start(ctx, 1, workflow.WithRunID("live"))
		require.NoError(t, err)
		synctest.Wait()
		old := biSnapshot(t, store) // the run as it stood: running

		// Restoring an old backup must not replace the record of a run
		// that is going on: its end would be lost.
		require.NoError(t, store.Restore(strings.NewReader(old)))
		close(release)
		_, err = x.Wait(ctx)
		require.NoError(t, err)
		rs, err := w.Inspect(ctx, "live")
		require.NoError(t, err)
		require.Equal(t, workflow.StateSucceeded, rs.State, "the run's end was recorded")
		require.Equal(t, workflow.EventRunSucceeded, rs.Events[len(rs.Events)-1].Type)
	})
}

func TestBadInputGetOfAWrongNameOrType(t *testing.T) {
	var errs []error
	w, err := workflow.New[int, int]("get", workflow.Tasks{
		workflow.Task[int, int]{Name: "a", Handler: func(ctx context.Context, in int) (int, error) { return in, nil }},
		workflow.Task[int, string]{Name: "b", Handler: func(ctx context.Context, in int) (string, error) { return "b", nil }},
		workflow.Task[int, int]{Name: "c", Handler: func(ctx context.Context, in int) (int, error) { return in, nil }},
		workflow.Task[workflow.Inputs, int]{Name: "join", Dependencies: []string{"a", "b"},
			Handler: func(ctx context.Context, in workflow.Inputs) (int, error) {
				_, err := workflow.Get[int](in, "nope")
				errs = append(errs, err)
				_, err = workflow.Get[int](in, "c") // a task, but not a dependency
				errs = append(errs, err)
				_, err = workflow.Get[int](in, "b")
				errs = append(errs, err)
				v, err := workflow.Get[int](in, "a")
				return v, err
			}},
	}, workflow.WithOutput("join"))
	require.NoError(t, err)
	out, err := w.Run(context.Background(), 5)
	require.NoError(t, err)
	require.Equal(t, 5, out)
	require.Len(t, errs, 3)
	// The task's name is left to the run's error, which names it already.
	biRequireError(t, errs[0], workflow.ErrNotFound, `"nope"`, "not a dependency")
	biRequireError(t, errs[1], workflow.ErrNotFound, `"c"`, "not a dependency")
	biRequireError(t, errs[2], workflow.ErrTypeMismatch, `"b"`, "int", "string")

	_, err = workflow.Get[int](workflow.Inputs{}, "a")
	biRequireError(t, err, workflow.ErrNotFound, `"a"`, "empty Inputs")
}

type biOrder struct {
	UserID string `validate:"required"`
	Items  int    `validate:"min=1"`
}

// The first task takes any: only the workflow's own check of its input
// stands between the invalid input and the handler.
func TestBadInputThatFailsValidationRunsNoTask(t *testing.T) {
	ctx := context.Background()
	var calls atomic.Int64
	w, err := workflow.New[biOrder, int]("validate", workflow.Tasks{
		workflow.Task[any, int]{Name: "ship", Handler: func(ctx context.Context, v any) (int, error) {
			calls.Add(1)
			return v.(biOrder).Items, nil
		}},
	})
	require.NoError(t, err)
	_, err = w.Run(ctx, biOrder{Items: 0}, workflow.WithRunID("bad"))
	biRequireError(t, err, workflow.ErrInvalidInput, `"validate"`, "UserID", "required")
	var werr *workflow.WorkflowError
	require.ErrorAs(t, err, &werr)
	require.Equal(t, map[string]string{"biOrder.UserID": "required", "biOrder.Items": "min=1"}, werr.Details["fields"])
	require.Zero(t, calls.Load())

	rs, err := w.Inspect(ctx, "bad")
	require.NoError(t, err, "the refused run is recorded")
	require.Equal(t, workflow.StateFailed, rs.State)
	require.Contains(t, rs.Error, "UserID")

	// Resume cannot make the input valid: it must not hand it to a task.
	_, err = w.Resume(ctx, "bad")
	biRequireError(t, err, workflow.ErrNotResumable, "run bad", "never started", "UserID")
	require.ErrorIs(t, err, workflow.ErrInvalidInput)
	require.Zero(t, calls.Load(), "no task ran on invalid input")
	again, err := w.Inspect(ctx, "bad")
	require.NoError(t, err)
	require.Equal(t, rs, again, "the refused Resume left the record as it was")

	out, err := w.Run(ctx, biOrder{UserID: "u", Items: 2})
	require.NoError(t, err)
	require.Equal(t, 2, out)
}

func TestBadInputBadDefinitionsAreErrorsNotPanics(t *testing.T) {
	h := func(ctx context.Context, in int) (int, error) { return in, nil }
	cases := map[string]struct {
		tasks    workflow.Tasks
		opts     []workflow.Option
		sentinel error
		parts    []string
	}{
		"nil handler": {workflow.Tasks{workflow.Task[int, int]{Name: "a"}}, nil, workflow.ErrInvalidWorkflow, []string{`"a"`, "nil Handler"}},
		"nil task":    {workflow.Tasks{nil}, nil, workflow.ErrInvalidWorkflow, []string{"task 0", "nil"}},
		"nil pointer": {workflow.Tasks{(*workflow.Task[int, int])(nil)}, nil, workflow.ErrInvalidWorkflow, []string{"task 0", "nil"}},
		"no tasks":    {nil, nil, workflow.ErrInvalidWorkflow, []string{"no tasks"}},
		"empty tasks": {workflow.Tasks{}, nil, workflow.ErrInvalidWorkflow, []string{"no tasks"}},
		"zero task":   {workflow.Tasks{workflow.Task[int, int]{}}, nil, workflow.ErrInvalidWorkflow, []string{"task 0", "empty name"}},
		"self and repeated dependency": {workflow.Tasks{workflow.Task[int, int]{Name: "a", Handler: h, Dependencies: []string{"a", "a"}}}, nil,
			workflow.ErrInvalidWorkflow, []string{`"a"`}},
		"empty dependency and empty name": {workflow.Tasks{
			workflow.Task[int, int]{Name: "a", Handler: h, Dependencies: []string{""}},
			workflow.Task[int, int]{Name: "", Handler: h, Dependencies: []string{"a"}},
		}, nil, workflow.ErrInvalidWorkflow, []string{"empty name"}},
		"trigger without dependencies": {workflow.Tasks{workflow.Task[int, int]{Name: "a", Handler: h, Trigger: workflow.AllDone}}, nil,
			workflow.ErrInvalidWorkflow, []string{`"a"`, "Trigger all_done", "no dependencies"}},
		"unknown trigger": {workflow.Tasks{intTask("a"), workflow.Task[int, int]{Name: "b", Handler: h, Dependencies: []string{"a"}, Trigger: 7}}, nil,
			workflow.ErrInvalidWorkflow, []string{`"b"`, "unknown Trigger 7"}},
		"negative timeout": {workflow.Tasks{workflow.Task[int, int]{Name: "a", Handler: h, Timeout: -time.Second}}, nil,
			workflow.ErrInvalidWorkflow, []string{`"a"`, "negative Timeout", "-1s"}},
		"negative attempts": {workflow.Tasks{workflow.Task[int, int]{Name: "a", Handler: h, Retry: workflow.RetryPolicy{Attempts: -1}}}, nil,
			workflow.ErrInvalidWorkflow, []string{`"a"`, "Attempts", "-1"}},
		"negative delay": {workflow.Tasks{workflow.Task[int, int]{Name: "a", Handler: h, Retry: workflow.RetryPolicy{Delay: -1}}}, nil,
			workflow.ErrInvalidWorkflow, []string{`"a"`, "Delay"}},
		"negative max delay": {workflow.Tasks{workflow.Task[int, int]{Name: "a", Handler: h, Retry: workflow.RetryPolicy{MaxDelay: -1}}}, nil,
			workflow.ErrInvalidWorkflow, []string{`"a"`, "MaxDelay"}},
		"negative backoff": {workflow.Tasks{workflow.Task[int, int]{Name: "a", Handler: h, Retry: workflow.RetryPolicy{Backoff: -2}}}, nil,
			workflow.ErrInvalidWorkflow, []string{`"a"`, "Backoff"}},
		"NaN backoff": {workflow.Tasks{workflow.Task[int, int]{Name: "a", Handler: h, Retry: workflow.RetryPolicy{Backoff: math.NaN()}}}, nil,
			workflow.ErrInvalidWorkflow, []string{`"a"`, "Backoff"}},
		"infinite backoff": {workflow.Tasks{workflow.Task[int, int]{Name: "a", Handler: h, Retry: workflow.RetryPolicy{Backoff: math.Inf(1)}}}, nil,
			workflow.ErrInvalidWorkflow, []string{`"a"`, "Backoff"}},
		"jitter above 1": {workflow.Tasks{workflow.Task[int, int]{Name: "a", Handler: h, Retry: workflow.RetryPolicy{Jitter: 1.5}}}, nil,
			workflow.ErrInvalidWorkflow, []string{`"a"`, "Jitter"}},
		"negative jitter": {workflow.Tasks{workflow.Task[int, int]{Name: "a", Handler: h, Retry: workflow.RetryPolicy{Jitter: -0.1}}}, nil,
			workflow.ErrInvalidWorkflow, []string{`"a"`, "Jitter"}},
		"NaN jitter": {workflow.Tasks{workflow.Task[int, int]{Name: "a", Handler: h, Retry: workflow.RetryPolicy{Jitter: math.NaN()}}}, nil,
			workflow.ErrInvalidWorkflow, []string{`"a"`, "Jitter"}},
		"negative concurrency": {workflow.Tasks{workflow.Task[int, int]{Name: "a", Handler: h}}, []workflow.Option{workflow.WithMaxConcurrency(-1)},
			workflow.ErrInvalidWorkflow, []string{"WithMaxConcurrency(-1)"}},
		"nil option": {workflow.Tasks{workflow.Task[int, int]{Name: "a", Handler: h}}, []workflow.Option{nil},
			workflow.ErrInvalidWorkflow, []string{"nil Option"}},
		"nil store": {workflow.Tasks{workflow.Task[int, int]{Name: "a", Handler: h}}, []workflow.Option{workflow.WithStore(nil)},
			workflow.ErrInvalidWorkflow, []string{"WithStore(nil)"}},
		"nil store pointer": {workflow.Tasks{workflow.Task[int, int]{Name: "a", Handler: h}}, []workflow.Option{workflow.WithStore((*workflow.MemoryStore)(nil))},
			workflow.ErrInvalidWorkflow, []string{"WithStore(nil)"}},
		"nil hook": {workflow.Tasks{workflow.Task[int, int]{Name: "a", Handler: h}}, []workflow.Option{workflow.WithHook(nil)},
			workflow.ErrInvalidWorkflow, []string{"WithHook(nil)"}},
		"nil validator": {workflow.Tasks{workflow.Task[int, int]{Name: "a", Handler: h}}, []workflow.Option{workflow.WithValidator(nil)},
			workflow.ErrInvalidWorkflow, []string{"WithValidator(nil)"}},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			w, err := workflow.New[int, int]("bad-def", c.tasks, c.opts...)
			require.Nil(t, w)
			biRequireError(t, err, c.sentinel, append([]string{`"bad-def"`}, c.parts...)...)
			require.Panics(t, func() { workflow.MustNew[int, int]("bad-def", c.tasks, c.opts...) }, "MustNew panics by design")
		})
	}
}

func TestBadInputBadRunOptionsAreErrors(t *testing.T) {
	ctx := context.Background()
	store := workflow.NewMemoryStore()
	w, calls := biWorkflow(t, "bad-run", workflow.WithStore(store))
	_, err := w.Run(ctx, 1, workflow.WithRunID("first"))
	require.NoError(t, err)
	snap := biSnapshot(t, store)

	for name, c := range map[string]struct {
		opt      workflow.RunOption
		sentinel error
		parts    []string
	}{
		"negative run timeout":      {workflow.RunTimeout(-time.Second), workflow.ErrInvalidInput, []string{"RunTimeout(-1s)"}},
		"negative retry on failure": {workflow.RetryOnFailure(-1), workflow.ErrInvalidInput, []string{"RetryOnFailure(-1)"}},
		"empty run ID":              {workflow.WithRunID(""), workflow.ErrInvalidInput, []string{"WithRunID"}},
		"nil replacement":           {workflow.ReplaceTask[int, int]("a", nil), workflow.ErrInvalidInput, []string{`ReplaceTask("a", nil)`}},
		"replacement of no task": {workflow.ReplaceTask("zz", func(ctx context.Context, in int) (int, error) { return 0, nil }),
			workflow.ErrNotFound, []string{`"zz"`}},
		"replacement of another type": {workflow.ReplaceTask("a", func(ctx context.Context, in string) (int, error) { return 0, nil }),
			workflow.ErrTypeMismatch, []string{`"a"`, "string"}},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := w.Run(ctx, 1, c.opt)
			biRequireError(t, err, c.sentinel, append([]string{`"bad-run"`}, c.parts...)...)
			_, err = w.Resume(ctx, "first", c.opt)
			require.Error(t, err)
		})
	}
	t.Run("run ID already used", func(t *testing.T) {
		_, err := w.Run(ctx, 1, workflow.WithRunID("first"))
		require.Error(t, err)
		require.ErrorIs(t, err, workflow.ErrDuplicateRun)
		require.Contains(t, err.Error(), "run first")
	})
	t.Run("negative history limit", func(t *testing.T) {
		_, err := w.History(ctx, workflow.HistoryLimit(-1))
		biRequireError(t, err, workflow.ErrInvalidInput, `"bad-run"`, "HistoryLimit(-1)")
	})
	t.Run("unknown history state", func(t *testing.T) {
		_, err := w.History(ctx, workflow.HistoryState("exploded"))
		biRequireError(t, err, workflow.ErrInvalidInput, `"bad-run"`, `"exploded"`)
	})
	require.Equal(t, int64(2), calls.n.Load(), "no task ran for a bad call")
	require.Equal(t, snap, biSnapshot(t, store), "nothing changed in the store")
	rs, err := w.Inspect(ctx, "first")
	require.NoError(t, err)
	require.Equal(t, workflow.StateSucceeded, rs.State)
}

func TestBadInputZeroMemoryStoreWorks(t *testing.T) {
	store := &workflow.MemoryStore{}
	w, _ := biWorkflow(t, "zero-store", workflow.WithStore(store))
	for range 3 {
		_, err := w.Run(context.Background(), 1)
		require.NoError(t, err)
	}
	runs, err := w.History(context.Background())
	require.NoError(t, err)
	require.Len(t, runs, 3, "a zero MemoryStore keeps every run")
	var zero workflow.MemoryStore
	require.NoError(t, zero.Restore(strings.NewReader(biSnapshot(t, store))))
	require.Equal(t, biSnapshot(t, store), biSnapshot(t, &zero))
}

func TestBadInputRetryIfThatPanicsFailsTheTask(t *testing.T) {
	var calls atomic.Int64
	w, err := workflow.New[int, int]("retryif-panics", workflow.Tasks{
		workflow.Task[int, int]{Name: "a",
			Retry: workflow.RetryPolicy{Attempts: 3, RetryIf: func(err error) bool { panic("RetryIf is broken") }},
			Handler: func(ctx context.Context, in int) (int, error) {
				calls.Add(1)
				return 0, errors.New("first failure")
			}},
	})
	require.NoError(t, err)
	_, err = w.Run(context.Background(), 1)
	biRequireError(t, err, workflow.ErrPanic, `"a"`, "RetryIf", "RetryIf is broken")
	require.ErrorContains(t, err, "first failure", "the attempt's own error is kept")
	require.Equal(t, int64(1), calls.Load(), "no retry after RetryIf panicked")
	rs, err := w.Status(context.Background())
	require.NoError(t, err)
	require.Equal(t, workflow.StateFailed, rs.State)
}

func TestBadInputSchedulerMisuse(t *testing.T) {
	ctx := context.Background()
	s := workflow.NewScheduler()
	biRequireError(t, s.Register(nil), workflow.ErrInvalidWorkflow)
	plain, _ := biWorkflow(t, "plain")
	biRequireError(t, s.Register(plain), workflow.ErrInvalidSchedule, `"plain"`, "WithSchedule")
	sched, _ := biWorkflow(t, "sched", workflow.WithSchedule(workflow.Schedule{Cron: "@daily"}))
	require.NoError(t, s.Register(sched))
	twin, _ := biWorkflow(t, "sched", workflow.WithSchedule(workflow.Schedule{Cron: "@hourly"}))
	err := s.Register(twin)
	require.Error(t, err)
	require.Contains(t, err.Error(), `"sched"`)
	_, err = s.Trigger(ctx, "nope")
	biRequireError(t, err, workflow.ErrNotFound, `"nope"`)
	require.Len(t, s.Entries(), 1, "the refused registrations left nothing")
	require.NoError(t, s.Stop(ctx), "Stop without Start")

	var zero workflow.Scheduler
	require.NoError(t, zero.Register(sched))
	id, err := zero.Trigger(ctx, "sched")
	require.NoError(t, err)
	require.NoError(t, zero.Stop(ctx))
	rs, err := sched.Inspect(ctx, id)
	require.NoError(t, err)
	require.Equal(t, workflow.StateSucceeded, rs.State)
}
