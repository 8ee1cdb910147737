package workflow_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/b3b01171/workflow"
)

// jsonStore is a MemoryStore that says it is Persistent: the engine then
// encodes payloads, batches its appends outside the run's lock, and
// resumes from the encoded payloads alone, as with a store on disk. A
// second Workflow value on the same jsonStore plays a new process.
type jsonStore struct {
	*workflow.MemoryStore
	// appendHook, when set, runs before each batch is recorded; an error
	// refuses the batch.
	appendHook func(batch []workflow.Entry) error
}

func newJSONStore() *jsonStore { return &jsonStore{MemoryStore: workflow.NewMemoryStore()} }

func (s *jsonStore) Persistent() bool { return true }

func (s *jsonStore) Create(ctx context.Context, run workflow.RunStatus) (workflow.Recorder, error) {
	rec, err := s.MemoryStore.Create(ctx, run)
	return s.wrap(rec), err
}

func (s *jsonStore) Reopen(ctx context.Context, wf, runID string) (workflow.Recorder, error) {
	rec, err := s.MemoryStore.Reopen(ctx, wf, runID)
	return s.wrap(rec), err
}

func (s *jsonStore) ClaimOrphan(ctx context.Context, wf, runID string) (workflow.Recorder, error) {
	rec, err := s.MemoryStore.ClaimOrphan(ctx, wf, runID)
	if err != nil {
		return nil, err
	}
	return s.wrap(rec), nil
}

func (s *jsonStore) wrap(rec workflow.Recorder) workflow.Recorder {
	if rec == nil {
		return nil
	}
	return jsonRecorder{rec: rec, s: s}
}

// Orphans is every run not ended and not under way in this store whose
// input is recorded.
func (s *jsonStore) Orphans(ctx context.Context, wf string) ([]string, error) {
	runs, err := s.List(ctx, wf, workflow.HistoryQuery{})
	if err != nil {
		return nil, err
	}
	var ids []string
	for i := len(runs) - 1; i >= 0; i-- {
		rs := runs[i]
		if rs.State == workflow.StateInterrupted && rs.Input != nil {
			ids = append(ids, rs.RunID)
		}
	}
	return ids, nil
}

// Payloads gives the encoded payloads only, as a store on disk does.
func (s *jsonStore) Payloads(ctx context.Context, wf, runID string) (workflow.RunPayloads, error) {
	rs, err := s.Get(ctx, wf, runID)
	if err != nil {
		return workflow.RunPayloads{}, err
	}
	p := workflow.RunPayloads{HasInput: rs.Input != nil, Input: workflow.Payload{Data: rs.Input}, Outputs: map[string]workflow.Payload{}}
	for _, t := range rs.Tasks {
		switch {
		case t.State == workflow.StateSucceeded:
			p.Outputs[t.Name] = workflow.Payload{Data: t.Output}
		case t.Output != nil: // a failed Map's kept outputs
			if p.Partial == nil {
				p.Partial = map[string]workflow.Payload{}
			}
			p.Partial[t.Name] = workflow.Payload{Data: t.Output}
		}
	}
	return p, nil
}

type jsonRecorder struct {
	rec workflow.Recorder
	s   *jsonStore
}

func (r jsonRecorder) Append(ctx context.Context, batch []workflow.Entry) error {
	for _, e := range batch {
		if e.Payload.Value != nil {
			return fmt.Errorf("a Persistent store was given a value (%T) on %s", e.Payload.Value, e.Type)
		}
	}
	if h := r.s.appendHook; h != nil {
		if err := h(batch); err != nil {
			return err
		}
	}
	return r.rec.Append(ctx, batch)
}

type shipment struct {
	Order string
	Items []int
}

type invoice struct {
	Order string
	Total int
}

// durablePipeline: load → price → bill, with a count of each handler's
// calls, on store.
func durablePipeline(t *testing.T, store workflow.Store, calls map[string]*atomic.Int32, billFails *atomic.Bool, opts ...workflow.Option) *workflow.Workflow[string, invoice] {
	t.Helper()
	for _, n := range []string{"load", "price", "bill"} {
		if calls[n] == nil {
			calls[n] = new(atomic.Int32)
		}
	}
	return newWorkflow[string, invoice](t, "durable", workflow.Tasks{
		workflow.Task[string, shipment]{Name: "load", Handler: func(_ context.Context, id string) (shipment, error) {
			calls["load"].Add(1)
			return shipment{Order: id, Items: []int{3, 4}}, nil
		}},
		workflow.Task[shipment, invoice]{Name: "price", Dependencies: []string{"load"}, Handler: func(_ context.Context, s shipment) (invoice, error) {
			calls["price"].Add(1)
			total := 0
			for _, n := range s.Items {
				total += n
			}
			return invoice{Order: s.Order, Total: total}, nil
		}},
		workflow.Task[invoice, invoice]{Name: "bill", Dependencies: []string{"price"}, Handler: func(_ context.Context, in invoice) (invoice, error) {
			calls["bill"].Add(1)
			if billFails.Load() {
				return invoice{}, errBoom
			}
			in.Total *= 10
			return in, nil
		}},
	}, append([]workflow.Option{workflow.WithStore(store)}, opts...)...)
}

func TestResumeInANewProcessDecodesTheStoredInputAndOutputs(t *testing.T) {
	store := newJSONStore()
	var failing atomic.Bool
	failing.Store(true)
	first := map[string]*atomic.Int32{}
	w1 := durablePipeline(t, store, first, &failing)
	_, err := w1.Run(t.Context(), "o-1")
	id := asWorkflowError(t, err).RunID

	// A new Workflow value on the same store holds nothing in memory.
	failing.Store(false)
	second := map[string]*atomic.Int32{}
	w2 := durablePipeline(t, store, second, &failing)
	out, err := w2.Resume(t.Context(), id)

	require.NoError(t, err)
	assert.Equal(t, invoice{Order: "o-1", Total: 70}, out)
	assert.Zero(t, second["load"].Load(), "load succeeded before: not run again")
	assert.Zero(t, second["price"].Load(), "price succeeded before: not run again")
	assert.Equal(t, int32(1), second["bill"].Load())
	rs, err := w2.Inspect(t.Context(), id)
	require.NoError(t, err)
	assert.JSONEq(t, `"o-1"`, string(rs.Input))
	assert.JSONEq(t, `{"Order":"o-1","Total":70}`, string(rs.Output))
	price, _ := rs.Task("price")
	assert.JSONEq(t, `{"Order":"o-1","Total":7}`, string(price.Output))
	requireCompleteEvents(t, rs)
}

func TestPayloadsAreHiddenWhenTheCodecIsNotJSON(t *testing.T) {
	store := newJSONStore()
	w := durablePipeline(t, store, map[string]*atomic.Int32{}, new(atomic.Bool), workflow.WithCodec(gobLikeCodec{}))
	_, err := w.Run(t.Context(), "o-2")
	require.NoError(t, err)

	rs, err := w.Status(t.Context())
	require.NoError(t, err)
	assert.Nil(t, rs.Input)
	assert.Nil(t, rs.Output)
	for _, ts := range rs.Tasks {
		assert.Nil(t, ts.Output, ts.Name)
	}
}

// gobLikeCodec is a Codec that is not JSONCodec: JSON behind a prefix.
type gobLikeCodec struct{}

func (gobLikeCodec) Marshal(v any) ([]byte, error) {
	b, err := json.Marshal(v)
	return append([]byte("X"), b...), err
}

func (gobLikeCodec) Unmarshal(data []byte, v any) error {
	return json.Unmarshal(bytes.TrimPrefix(data, []byte("X")), v)
}

func TestResumeWithACustomCodecDecodesWithIt(t *testing.T) {
	store := newJSONStore()
	var failing atomic.Bool
	failing.Store(true)
	w1 := durablePipeline(t, store, map[string]*atomic.Int32{}, &failing, workflow.WithCodec(gobLikeCodec{}))
	_, err := w1.Run(t.Context(), "o-3")
	id := asWorkflowError(t, err).RunID
	failing.Store(false)

	w2 := durablePipeline(t, store, map[string]*atomic.Int32{}, &failing, workflow.WithCodec(gobLikeCodec{}))
	out, err := w2.Resume(t.Context(), id)

	require.NoError(t, err)
	assert.Equal(t, invoice{Order: "o-3", Total: 70}, out)
}

func TestResumeRefusesARunThatNoLongerMatchesTheDefinition(t *testing.T) {
	store := newJSONStore()
	var failing atomic.Bool
	failing.Store(true)
	w1 := durablePipeline(t, store, map[string]*atomic.Int32{}, &failing)
	_, err := w1.Run(t.Context(), "o-4")
	id := asWorkflowError(t, err).RunID
	var ran atomic.Int32
	count := func(context.Context, int) (int, error) { ran.Add(1); return 1, nil }

	t.Run("TaskRenamed", func(t *testing.T) {
		w := newWorkflow[string, invoice](t, "durable", workflow.Tasks{
			workflow.Task[string, shipment]{Name: "fetch", Handler: func(context.Context, string) (shipment, error) { ran.Add(1); return shipment{}, nil }},
			workflow.Task[shipment, invoice]{Name: "price", Dependencies: []string{"fetch"}, Handler: func(context.Context, shipment) (invoice, error) { ran.Add(1); return invoice{}, nil }},
			workflow.Task[invoice, invoice]{Name: "bill", Dependencies: []string{"price"}, Handler: func(context.Context, invoice) (invoice, error) { ran.Add(1); return invoice{}, nil }},
		}, workflow.WithStore(store))
		_, err := w.Resume(t.Context(), id)
		require.ErrorIs(t, err, workflow.ErrNotResumable)
		assert.Contains(t, err.Error(), `"load"`)
	})
	t.Run("TypeChanged", func(t *testing.T) {
		w := newWorkflow[string, int](t, "durable", workflow.Tasks{
			workflow.Task[string, int]{Name: "load", Handler: func(context.Context, string) (int, error) { ran.Add(1); return 1, nil }},
			workflow.Task[int, int]{Name: "price", Dependencies: []string{"load"}, Handler: count},
			workflow.Task[int, int]{Name: "bill", Dependencies: []string{"price"}, Handler: count},
		}, workflow.WithStore(store))
		_, err := w.Resume(t.Context(), id)
		require.ErrorIs(t, err, workflow.ErrNotResumable)
		assert.Contains(t, err.Error(), `task "load"`)
	})
	assert.Zero(t, ran.Load(), "nothing runs when the stored run does not match")
	rs, err := w1.Inspect(t.Context(), id)
	require.NoError(t, err)
	assert.Equal(t, workflow.StateFailed, rs.State, "the refused run is left as it was")
}

func TestNewRejectsTypesJSONCodecCanNeverEncodeOnAPersistentStore(t *testing.T) {
	type withChan struct{ Updates chan int }
	_, err := workflow.New[string, withChan]("bad-types", workflow.Tasks{
		workflow.Task[string, withChan]{Name: "a", Handler: func(context.Context, string) (withChan, error) { return withChan{}, nil }},
	}, workflow.WithStore(newJSONStore()))

	require.ErrorIs(t, err, workflow.ErrInvalidWorkflow)
	assert.Contains(t, err.Error(), `task "a" output`)
	assert.Contains(t, err.Error(), "Updates is a chan")

	_, err = workflow.New[string, withChan]("fine-in-memory", workflow.Tasks{
		workflow.Task[string, withChan]{Name: "a", Handler: func(context.Context, string) (withChan, error) { return withChan{}, nil }},
	})
	require.NoError(t, err, "a MemoryStore encodes nothing")
}

func TestAnOutputTheCodecCannotEncodeFailsItsTask(t *testing.T) {
	w := newWorkflow[int, any](t, "encode", workflow.Tasks{
		workflow.Task[int, any]{Name: "make", Handler: func(context.Context, int) (any, error) { return func() {}, nil }},
	}, workflow.WithStore(newJSONStore()))

	_, err := w.Run(t.Context(), 1)

	werr := asWorkflowError(t, err)
	assert.Equal(t, "make", werr.Task)
	assert.Equal(t, 1, werr.Attempts, "an encoding failure is not retried")
	require.ErrorIs(t, err, workflow.ErrInvalidInput)
	assert.Contains(t, err.Error(), "func()")
	rs, err := w.Inspect(t.Context(), werr.RunID)
	require.NoError(t, err)
	assert.Equal(t, workflow.StateFailed, taskState(t, rs, "make"))
}

func TestAFailedStoreWriteFailsTheRun(t *testing.T) {
	store := newJSONStore()
	errDisk := errors.New("disk full")
	store.appendHook = func(batch []workflow.Entry) error {
		for _, e := range batch {
			if e.Type == workflow.EventTaskSucceeded && e.Task == "price" {
				return errDisk
			}
		}
		return nil
	}
	calls := map[string]*atomic.Int32{}
	w := durablePipeline(t, store, calls, new(atomic.Bool))

	_, err := w.Run(t.Context(), "o-5")

	require.ErrorIs(t, err, errDisk)
	assert.Contains(t, err.Error(), "recording the run failed")
	assert.Zero(t, calls["bill"].Load(), "a task whose dependency's success was not recorded never starts")
	rs, err := w.Status(t.Context())
	require.NoError(t, err)
	assert.Equal(t, workflow.StateRunning, rs.State, "what the store holds is a prefix of the run's history")
}

func TestDependentsStartOnlyOnceTheSuccessIsCommitted(t *testing.T) {
	store := newJSONStore()
	gate := make(chan struct{})
	var committed atomic.Bool
	store.appendHook = func(batch []workflow.Entry) error {
		for _, e := range batch {
			if e.Type == workflow.EventTaskSucceeded && e.Task == "load" {
				<-gate
				committed.Store(true)
			}
		}
		return nil
	}
	var startedEarly atomic.Bool
	w := newWorkflow[string, int](t, "commit-order", workflow.Tasks{
		workflow.Task[string, int]{Name: "load", Handler: func(context.Context, string) (int, error) { return 1, nil }},
		workflow.Task[int, int]{Name: "use", Dependencies: []string{"load"}, Handler: func(_ context.Context, n int) (int, error) {
			if !committed.Load() {
				startedEarly.Store(true)
			}
			return n + 1, nil
		}},
	}, workflow.WithStore(store))

	x, err := w.Start(t.Context(), "go")
	require.NoError(t, err)
	close(gate)
	out, err := x.Wait(t.Context())

	require.NoError(t, err)
	assert.Equal(t, 2, out)
	assert.False(t, startedEarly.Load(), "use started before load's success was committed")
}

func TestWhenRunReturnsEverythingAboutTheRunIsCommitted(t *testing.T) {
	store := newJSONStore()
	var mu sync.Mutex
	var last string
	store.appendHook = func(batch []workflow.Entry) error {
		mu.Lock()
		last = batch[len(batch)-1].Type
		mu.Unlock()
		return nil
	}
	w := durablePipeline(t, store, map[string]*atomic.Int32{}, new(atomic.Bool))

	_, err := w.Run(t.Context(), "o-6")

	require.NoError(t, err)
	mu.Lock()
	assert.Equal(t, workflow.EventRunSucceeded, last)
	mu.Unlock()
}

// interruptedRun records, by hand, what a process that died while "bill"
// ran its second attempt leaves in store, marked interrupted.
func interruptedRun(t *testing.T, store workflow.Store, id string) {
	t.Helper()
	ctx := t.Context()
	rec, err := store.Create(ctx, workflow.RunStatus{RunID: id, Workflow: "durable", State: workflow.StatePending, Trigger: "manual",
		Tasks: []workflow.TaskStatus{{Name: "load", State: workflow.StatePending}, {Name: "price", State: workflow.StatePending}, {Name: "bill", State: workflow.StatePending}}})
	require.NoError(t, err)
	now := time.Now()
	ev := func(typ, task string, attempt int, data string) workflow.Entry {
		e := workflow.Entry{Event: workflow.Event{Time: now, RunID: id, Type: typ, Task: task, Attempt: attempt}, Index: -1}
		if data != "" {
			e.Payload.Data = []byte(data)
		}
		return e
	}
	require.NoError(t, rec.Append(ctx, []workflow.Entry{
		ev(workflow.EventRunStarted, "", 0, `"o-7"`),
		ev(workflow.EventTaskStarted, "load", 1, ""),
		ev(workflow.EventTaskSucceeded, "load", 1, `{"Order":"o-7","Items":[1,2]}`),
		ev(workflow.EventTaskStarted, "price", 1, ""),
		ev(workflow.EventTaskSucceeded, "price", 1, `{"Order":"o-7","Total":3}`),
		ev(workflow.EventTaskStarted, "bill", 1, ""),
		ev(workflow.EventTaskRetrying, "bill", 1, ""),
		ev(workflow.EventTaskStarted, "bill", 2, ""),
		ev(workflow.EventRunInterrupted, "", 0, ""),
	}))
}

func TestRecoverResumesInterruptedRunsAndAttemptsGoOnCounting(t *testing.T) {
	store := newJSONStore()
	interruptedRun(t, store, "crashed")
	calls := map[string]*atomic.Int32{}
	var attempt atomic.Int32
	w := newWorkflow[string, invoice](t, "durable", workflow.Tasks{
		workflow.Task[string, shipment]{Name: "load", Handler: func(context.Context, string) (shipment, error) {
			t.Error("load ran again")
			return shipment{}, nil
		}},
		workflow.Task[shipment, invoice]{Name: "price", Dependencies: []string{"load"}, Handler: func(context.Context, shipment) (invoice, error) {
			t.Error("price ran again")
			return invoice{}, nil
		}},
		workflow.Task[invoice, invoice]{Name: "bill", Dependencies: []string{"price"}, Retry: workflow.RetryPolicy{Attempts: 2},
			Handler: func(ctx context.Context, in invoice) (invoice, error) {
				info, ok := workflow.Info(ctx)
				require.True(t, ok)
				attempt.Store(int32(info.Attempt))
				in.Total *= 10
				return in, nil
			}},
	}, workflow.WithStore(store))
	_ = calls

	execs, err := w.Recover(t.Context())

	require.NoError(t, err)
	require.Len(t, execs, 1)
	assert.Equal(t, "crashed", execs[0].ID())
	out, err := execs[0].Wait(t.Context())
	require.NoError(t, err)
	assert.Equal(t, invoice{Order: "o-7", Total: 30}, out)
	assert.Equal(t, int32(3), attempt.Load(), "the interrupted second attempt counts; the task still gets one more")
	rs, err := w.Inspect(t.Context(), "crashed")
	require.NoError(t, err)
	assert.Equal(t, workflow.StateSucceeded, rs.State)
	assert.Equal(t, 1, countEvents(rs, workflow.EventRunInterrupted))
	assert.Equal(t, 1, countEvents(rs, workflow.EventRunResumed))

	again, err := w.Recover(t.Context())
	require.NoError(t, err)
	assert.Empty(t, again, "nothing left to recover")
}

func TestRecoverWithNothingToRecoverReturnsAnEmptySlice(t *testing.T) {
	w := durablePipeline(t, newJSONStore(), map[string]*atomic.Int32{}, new(atomic.Bool))
	execs, err := w.Recover(t.Context())
	require.NoError(t, err)
	require.NotNil(t, execs)
	assert.Empty(t, execs)
}

func TestInfoSaysWhichRunTaskAndAttemptAHandlerCallIs(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var seen []workflow.RunInfo
		var mu sync.Mutex
		w := newWorkflow[int, int](t, "info", workflow.Tasks{
			workflow.Task[int, int]{Name: "flaky", Retry: workflow.RetryPolicy{Attempts: 2, Delay: time.Second}, Timeout: time.Minute,
				Handler: func(ctx context.Context, n int) (int, error) {
					info, ok := workflow.Info(ctx)
					require.True(t, ok)
					mu.Lock()
					seen = append(seen, info)
					mu.Unlock()
					if info.Attempt == 1 {
						return 0, errBoom
					}
					return n, nil
				}},
			workflow.Task[int, int]{Name: "next", Dependencies: []string{"flaky"}, Handler: func(ctx context.Context, n int) (int, error) {
				info, ok := workflow.Info(ctx)
				require.True(t, ok)
				mu.Lock()
				seen = append(seen, info)
				mu.Unlock()
				return n, nil
			}},
		})
		_, err := w.Run(t.Context(), 1, workflow.WithRunID("r-1"))
		require.NoError(t, err)
		assert.Equal(t, []workflow.RunInfo{
			{Workflow: "info", RunID: "r-1", Task: "flaky", Trigger: "manual", Attempt: 1},
			{Workflow: "info", RunID: "r-1", Task: "flaky", Trigger: "manual", Attempt: 2},
			{Workflow: "info", RunID: "r-1", Task: "next", Trigger: "manual", Attempt: 1},
		}, seen)
		_, ok := workflow.Info(t.Context())
		assert.False(t, ok, "a context from elsewhere carries no RunInfo")
	})
}

func TestRestoreOfASnapshotTakenMidRunMarksItsRunsInterrupted(t *testing.T) {
	store := workflow.NewMemoryStore()
	started, release := make(chan struct{}), make(chan struct{})
	w := newWorkflow[int, int](t, "mid-run", workflow.Tasks{
		workflow.Task[int, int]{Name: "slow", Handler: func(_ context.Context, n int) (int, error) {
			close(started)
			<-release
			return n, nil
		}},
	}, workflow.WithStore(store))
	x, err := w.Start(t.Context(), 1)
	require.NoError(t, err)
	<-started
	var snap bytes.Buffer
	require.NoError(t, store.Snapshot(&snap))
	close(release)
	_, err = x.Wait(t.Context())
	require.NoError(t, err)

	restored := workflow.NewMemoryStore()
	require.NoError(t, restored.Restore(&snap))
	rs, err := restored.Get(t.Context(), "mid-run", x.ID())

	require.NoError(t, err)
	assert.Equal(t, workflow.StateInterrupted, rs.State)
	slow, _ := rs.Task("slow")
	assert.Equal(t, workflow.StateInterrupted, slow.State)
	assert.Equal(t, workflow.EventRunInterrupted, rs.Events[len(rs.Events)-1].Type)
}
