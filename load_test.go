package workflow_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/b3b01171/workflow"
)

// ldFails says which inputs make a load workflow fail: its second task
// fails for good on every fifth input.
func ldFails(in int) bool { return in%5 == 0 }

var errLoad = errors.New("load: refused")

// ldWorkflow is a three-task chain named name on store: double → check →
// inc, where check fails for good on the inputs ldFails picks.
func ldWorkflow(t testing.TB, name string, store workflow.Store, opts ...workflow.Option) *workflow.Workflow[int, int] {
	t.Helper()
	w, err := workflow.New[int, int](name, workflow.Tasks{
		workflow.Task[int, int]{Name: "double", Handler: func(ctx context.Context, in int) (int, error) { return 2 * in, nil }},
		workflow.Task[int, int]{Name: "check", Dependencies: []string{"double"}, Retry: workflow.RetryPolicy{Attempts: 3},
			Handler: func(ctx context.Context, in int) (int, error) {
				if ldFails(in / 2) {
					return 0, workflow.Permanent(errLoad)
				}
				return in, nil
			}},
		workflow.Task[int, int]{Name: "inc", Dependencies: []string{"check"}, Handler: func(ctx context.Context, in int) (int, error) { return in + 1, nil }},
	}, append([]workflow.Option{workflow.WithStore(store)}, opts...)...)
	require.NoError(t, err)
	return w
}

// ldReaders reads status, history and snapshots of the given workflows and
// store from several goroutines until stop is closed, checking that each
// read is consistent, and returns the number of reads.
func ldReaders(t *testing.T, stop <-chan struct{}, store *workflow.MemoryStore, flows []*workflow.Workflow[int, int]) func() int64 {
	var (
		wg    sync.WaitGroup
		reads atomic.Int64
	)
	ctx := context.Background()
	read := func(k int) {
		defer wg.Done()
		rng := rand.New(rand.NewPCG(uint64(k), 1))
		var buf bytes.Buffer
		for {
			select {
			case <-stop:
				return
			default:
			}
			w := flows[rng.IntN(len(flows))]
			switch k % 4 {
			case 0:
				rs, err := w.Status(ctx)
				if err == nil {
					assert.Equal(t, w.Name(), rs.Workflow)
					assert.Len(t, rs.Tasks, 3)
				} else {
					assert.ErrorIs(t, err, workflow.ErrNotFound)
				}
				if _, err := w.TaskStatus(ctx, "check"); err != nil {
					assert.ErrorIs(t, err, workflow.ErrNotFound)
				}
			case 1:
				runs, err := w.History(ctx, workflow.HistoryLimit(20))
				assert.NoError(t, err)
				assert.LessOrEqual(t, len(runs), 20)
				seen := map[string]bool{}
				for _, rs := range runs {
					assert.False(t, seen[rs.RunID], "run %s listed twice", rs.RunID)
					seen[rs.RunID] = true
					assert.Equal(t, w.Name(), rs.Workflow)
				}
			case 2:
				runs, err := w.History(ctx, workflow.HistoryState(workflow.StateFailed), workflow.HistoryLimit(5))
				assert.NoError(t, err)
				for _, rs := range runs {
					assert.Equal(t, workflow.StateFailed, rs.State)
					got, err := w.Inspect(ctx, rs.RunID)
					if err == nil { // it may have been dropped by retention since
						assert.Equal(t, rs.RunID, got.RunID)
					}
				}
			case 3:
				buf.Reset()
				assert.NoError(t, store.Snapshot(&buf))
				var snap struct {
					Version int                  `json:"version"`
					Runs    []workflow.RunStatus `json:"runs"`
				}
				assert.NoError(t, json.Unmarshal(buf.Bytes(), &snap))
			}
			reads.Add(1)
		}
	}
	for k := range 4 {
		wg.Add(1)
		go read(k)
	}
	return func() int64 {
		wg.Wait()
		return reads.Load()
	}
}

// ldCheckHistory checks that the store holds each of want (run ID →
// input) exactly once under w, with the outcome its input calls for, and
// nothing else.
func ldCheckHistory(t *testing.T, w *workflow.Workflow[int, int], want map[string]int) {
	t.Helper()
	runs, err := w.History(context.Background())
	require.NoError(t, err)
	require.Len(t, runs, len(want))
	seen := map[string]bool{}
	for _, rs := range runs {
		in, ok := want[rs.RunID]
		require.True(t, ok, "workflow %s: run %s is not one of its runs", w.Name(), rs.RunID)
		require.False(t, seen[rs.RunID], "run %s listed twice", rs.RunID)
		seen[rs.RunID] = true
		require.Equal(t, w.Name(), rs.Workflow)
		if ldFails(in) {
			require.Equal(t, workflow.StateFailed, rs.State, "run %s", rs.RunID)
			require.Contains(t, rs.Error, `task "check"`)
			ts, _ := rs.Task("inc")
			require.Equal(t, workflow.StateSkipped, ts.State)
		} else {
			require.Equal(t, workflow.StateSucceeded, rs.State, "run %s", rs.RunID)
		}
		for _, ts := range rs.Tasks {
			require.True(t, ts.State.Ended())
		}
	}
}

// TestLoadThousandConcurrentRunsOfOneWorkflow starts 1,000 runs of one
// workflow at once while others read its status, history and snapshots,
// then finds every run in the store exactly once with its outcome.
func TestLoadThousandConcurrentRunsOfOneWorkflow(t *testing.T) {
	defer goleak.VerifyNone(t)
	const runs = 1000
	store := workflow.NewMemoryStore()
	w := ldWorkflow(t, "load-one", store)
	stop := make(chan struct{})
	readers := ldReaders(t, stop, store, []*workflow.Workflow[int, int]{w})

	want := map[string]int{}
	ids := make([]string, runs)
	for i := range runs {
		ids[i] = fmt.Sprintf("run-%04d", i)
		want[ids[i]] = i
	}
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range runs {
		wg.Go(func() {
			<-start
			out, err := w.Run(context.Background(), i, workflow.WithRunID(ids[i]))
			if ldFails(i) {
				var werr *workflow.WorkflowError
				if assert.ErrorAs(t, err, &werr) {
					assert.Equal(t, "check", werr.Task)
					assert.Equal(t, 1, werr.Attempts, "a Permanent error is not retried")
					assert.ErrorIs(t, err, errLoad)
				}
			} else {
				assert.NoError(t, err)
				assert.Equal(t, 2*i+1, out)
			}
		})
	}
	close(start)
	wg.Wait()
	close(stop)
	reads := readers()
	t.Logf("%d concurrent runs, %d reads alongside", runs, reads)
	ldCheckHistory(t, w, want)

	// A snapshot of it restores to the same runs.
	var buf bytes.Buffer
	require.NoError(t, store.Snapshot(&buf))
	other := workflow.NewMemoryStore()
	require.NoError(t, other.Restore(&buf))
	ldCheckHistory(t, ldWorkflow(t, "load-one", other), want)
}

// TestLoadHundredWorkflowsShareOneStore runs 100 workflows on one store, 10
// runs each at once, while others read, then finds each workflow's runs,
// and only them, in its history.
func TestLoadHundredWorkflowsShareOneStore(t *testing.T) {
	defer goleak.VerifyNone(t)
	const flows, perFlow = 100, 10
	store := workflow.NewMemoryStore()
	ws := make([]*workflow.Workflow[int, int], flows)
	for f := range flows {
		ws[f] = ldWorkflow(t, fmt.Sprintf("load-%03d", f), store, workflow.WithMaxConcurrency(1+f%3))
	}
	stop := make(chan struct{})
	readers := ldReaders(t, stop, store, ws)

	want := make([]map[string]int, flows)
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		start = make(chan struct{})
	)
	for f := range flows {
		want[f] = map[string]int{}
		for i := range perFlow {
			wg.Go(func() {
				<-start
				in := f*perFlow + i
				x, err := ws[f].Start(context.Background(), in)
				if !assert.NoError(t, err) {
					return
				}
				mu.Lock()
				want[f][x.ID()] = in
				mu.Unlock()
				_, err = x.Wait(context.Background())
				assert.Equal(t, ldFails(in), err != nil, "run %s of %s: %v", x.ID(), ws[f].Name(), err)
			})
		}
	}
	close(start)
	wg.Wait()
	close(stop)
	reads := readers()
	t.Logf("%d workflows × %d runs on one store, %d reads alongside", flows, perFlow, reads)
	for f, w := range ws {
		ldCheckHistory(t, w, want[f])
	}
}

// TestLoadRetentionDropsTheOldestRunsOnly starts 400 runs in order on a
// store keeping 100, lets them end in a random order, all at once, and
// finds exactly the 100 newest kept; then 50 more, run one after the other,
// push out exactly the 50 oldest of those.
func TestLoadRetentionDropsTheOldestRunsOnly(t *testing.T) {
	defer goleak.VerifyNone(t)
	const runs, keep = 400, 100
	store := workflow.NewMemoryStore(workflow.MaxRuns(keep))
	gates := make([]chan struct{}, runs+50)
	for i := range gates {
		gates[i] = make(chan struct{})
	}
	close(gates[runs]) // the later runs do not wait
	for i := runs + 1; i < len(gates); i++ {
		gates[i] = gates[runs]
	}
	w, err := workflow.New[int, int]("retention", workflow.Tasks{
		workflow.Task[int, int]{Name: "wait", Handler: func(ctx context.Context, in int) (int, error) {
			select {
			case <-gates[in]:
				return in, nil
			case <-ctx.Done():
				return 0, ctx.Err()
			}
		}},
	}, workflow.WithStore(store))
	require.NoError(t, err)
	id := func(i int) string { return fmt.Sprintf("r%03d", i) }

	// Started one after the other, so the store creates them in order.
	xs := make([]*workflow.Execution[int], runs)
	for i := range runs {
		xs[i], err = w.Start(context.Background(), i, workflow.WithRunID(id(i)))
		require.NoError(t, err)
	}
	runningNow, err := w.History(context.Background())
	require.NoError(t, err)
	require.Len(t, runningNow, runs, "runs under way are never dropped")

	var wg sync.WaitGroup
	for _, i := range rand.Perm(runs) {
		wg.Go(func() {
			close(gates[i])
			out, err := xs[i].Wait(context.Background())
			assert.NoError(t, err)
			assert.Equal(t, i, out)
		})
	}
	wg.Wait()
	kept := func() []string {
		t.Helper()
		got, err := w.History(context.Background())
		require.NoError(t, err)
		ids := make([]string, len(got))
		for k, rs := range got {
			ids[k] = rs.RunID
			require.Equal(t, workflow.StateSucceeded, rs.State)
		}
		return ids
	}
	var want []string
	for i := runs - 1; i >= runs-keep; i-- {
		want = append(want, id(i))
	}
	require.Equal(t, want, kept(), "the newest %d runs, newest first", keep)

	for i := runs; i < runs+50; i++ {
		_, err := w.Run(context.Background(), i, workflow.WithRunID(id(i)))
		require.NoError(t, err)
	}
	want = want[:0]
	for i := runs + 49; i >= runs+50-keep; i-- {
		want = append(want, id(i))
	}
	require.Equal(t, want, kept())
}

// TestMemoryHeapReturnsToBaselineAfterManyRuns runs a small workflow
// 100,000 times (one run in ten failing) on a store keeping the default
// 1,000 runs, and finds the heap in use back near what it was after the
// first few thousand: retention and the bounded resume cache hold memory
// steady.
func TestMemoryHeapReturnsToBaselineAfterManyRuns(t *testing.T) {
	if !*soakLong {
		t.Skip("a heap measure: run with -soak")
	}
	defer goleak.VerifyNone(t)
	total := 100_000
	if testing.Short() {
		total = 20_000
	}
	store := workflow.NewMemoryStore()
	w := ldWorkflow(t, "memory", store)
	ctx := context.Background()
	run := func(from, to int) {
		var wg sync.WaitGroup
		for g := range 2 {
			wg.Go(func() {
				for i := from + g; i < to; i += 2 {
					_, err := w.Run(ctx, i)
					if ldFails(i) != (err != nil) {
						assert.Fail(t, "unexpected outcome", "run %d: %v", i, err)
						return
					}
				}
			})
		}
		wg.Wait()
	}
	heap := func() uint64 {
		runtime.GC()
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return ms.HeapInuse
	}
	const warm = 5_000 // fills the store (1,000 runs) and the resume cache
	begun := time.Now()
	run(0, warm)
	base := heap()
	run(warm, total)
	after := heap()
	t.Logf("%d runs in %v; heap in use %.1f MiB after %d runs, %.1f MiB after %d",
		total, time.Since(begun).Round(time.Millisecond), float64(base)/(1<<20), warm, float64(after)/(1<<20), total)
	require.Less(t, after, base+base/2+4<<20, "heap in use grew from %d to %d bytes", base, after)

	runs, err := w.History(ctx)
	require.NoError(t, err)
	require.Len(t, runs, workflow.DefaultMaxRuns)
}

// TestRetentionMaxAgeDropsEveryRunThatEndedLongAgo keeps a run going for
// ten hours while a shorter one, started after it, ends at once: once the
// long one has ended too, the short one, which ended long ago, is dropped,
// though a run created before it ended recently.
func TestRetentionMaxAgeDropsEveryRunThatEndedLongAgo(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := t.Context()
		store := workflow.NewMemoryStore(workflow.MaxAge(time.Hour))
		w, err := workflow.New[time.Duration, time.Duration]("max-age", workflow.Tasks{
			workflow.Task[time.Duration, time.Duration]{Name: "sleep", Handler: func(ctx context.Context, d time.Duration) (time.Duration, error) {
				time.Sleep(d)
				return d, nil
			}},
		}, workflow.WithStore(store))
		require.NoError(t, err)
		long, err := w.Start(ctx, 10*time.Hour, workflow.WithRunID("long"))
		require.NoError(t, err)
		_, err = w.Run(ctx, time.Minute, workflow.WithRunID("short"))
		require.NoError(t, err)
		_, err = long.Wait(ctx)
		require.NoError(t, err)
		time.Sleep(30 * time.Minute) // long ended 30 minutes ago, short 10 hours ago
		_, err = w.Run(ctx, 0, workflow.WithRunID("new"))
		require.NoError(t, err)

		runs, err := w.History(ctx)
		require.NoError(t, err)
		var ids []string
		for _, rs := range runs {
			ids = append(ids, rs.RunID)
		}
		require.Equal(t, []string{"new", "long"}, ids)
	})
}

// TestFailedRunsAreNotKeptPastMaxRuns fails a 2,001-task workflow 150
// times on a store keeping one run: a failed run keeps what Resume needs
// only while the store keeps the run, so the heap stays where the first
// runs left it (it grew by ~0.66 MiB per failed run when failed runs were
// held for Resume apart from the store).
func TestFailedRunsAreNotKeptPastMaxRuns(t *testing.T) {
	tasks := workflow.Tasks{intTask("root")}
	deps := make([]string, 0, 1999)
	for i := range 1999 {
		name := fmt.Sprintf("t%d", i)
		tasks = append(tasks, intTask(name, "root"))
		deps = append(deps, name)
	}
	tasks = append(tasks, workflow.Task[workflow.Inputs, int]{Name: "sink", Dependencies: deps,
		Handler: func(context.Context, workflow.Inputs) (int, error) { return 0, errBoom }})
	w := newWorkflow[int, int](t, "failing-sink", tasks, workflow.WithStore(workflow.NewMemoryStore(workflow.MaxRuns(1))))
	heap := func() uint64 {
		runtime.GC()
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return ms.HeapInuse
	}
	for range 10 {
		_, err := w.Run(t.Context(), 1)
		require.ErrorIs(t, err, errBoom)
	}
	base := heap()
	for range 140 {
		_, err := w.Run(t.Context(), 1)
		require.ErrorIs(t, err, errBoom)
	}
	after := heap()
	t.Logf("heap in use: %.1f MiB after 10 failed runs, %.1f MiB after 150", float64(base)/(1<<20), float64(after)/(1<<20))
	require.Less(t, after, base+8<<20, "heap in use grew from %d to %d bytes", base, after)
	runs, err := w.History(t.Context())
	require.NoError(t, err)
	require.Len(t, runs, 1)
}
