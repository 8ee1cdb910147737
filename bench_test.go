package workflow_test

// Benchmarks of the engine's own cost, against a plain reference executor
// run on the same workloads in the same benchmark. See BENCHMARKS.md for
// how to run them and what they measured.
//
// Every workflow figure is reported per task (ns/task, B/task,
// allocs/task) and as a ratio to the reference executor measured in the
// same benchmark, interleaved run by run, so that the noise of a shared
// machine hits both alike (x-ref-ns, x-ref-B, x-ref-allocs).

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/b3b01171/workflow"
	"github.com/stretchr/testify/require"
)

// benchSizes are the workflow sizes, in tasks, of every shape.
var benchSizes = []int{100, 1_000, 10_000, 100_000}

// benchInput is the workflow input; every task passes it on (or returns
// it), so a run that worked outputs it. Being below 256 it is boxed
// without allocating, so the figures are the engine's, not the handlers'.
const benchInput = 7

// benchShape is a workload: the dependencies of each task, by index.
type benchShape struct {
	name  string
	graph func(n int) [][]int32
}

var benchShapes = []benchShape{
	{"chain", chainGraph},
	{"fanout", fanoutGraph},
	{"lattice", latticeGraph},
}

// chainGraph: task i depends on task i−1.
func chainGraph(n int) [][]int32 {
	deps := make([][]int32, n)
	for i := 1; i < n; i++ {
		deps[i] = []int32{int32(i - 1)}
	}
	return deps
}

// fanoutGraph: one root, n−2 tasks depending on it, one sink depending on
// all of those.
func fanoutGraph(n int) [][]int32 {
	deps := make([][]int32, n)
	mid := make([]int32, 0, n-2)
	for i := 1; i < n-1; i++ {
		deps[i] = []int32{0}
		mid = append(mid, int32(i))
	}
	deps[n-1] = mid
	return deps
}

// latticeWidth is the width of a lattice layer.
const latticeWidth = 32

// latticeGraph: n−1 tasks in layers 32 wide, task i of a layer depending
// on tasks i and (i+1) mod 32 of the layer before (the last layer may be
// partial), and a final sink depending on every task that has no
// dependent, so the workflow has one output.
func latticeGraph(n int) [][]int32 {
	deps := make([][]int32, n)
	m := n - 1
	hasSucc := make([]bool, m)
	for k := latticeWidth; k < m; k++ {
		prev := (k/latticeWidth - 1) * latticeWidth
		i := k % latticeWidth
		a, c := int32(prev+i), int32(prev+(i+1)%latticeWidth)
		deps[k] = []int32{a, c}
		hasSucc[a], hasSucc[c] = true, true
	}
	for k := range m {
		if !hasSucc[k] {
			deps[m] = append(deps[m], int32(k))
		}
	}
	return deps
}

// benchTasks turns a graph into workflow tasks "t0", "t1", …: tasks with
// at most one dependency pass their input on; tasks with several take
// workflow.Inputs and return benchInput, except the last task (the sink),
// which reads the output of its first dependency. Each handler sleeps
// first when sleep > 0.
func benchTasks(deps [][]int32, sleep time.Duration) workflow.Tasks {
	n := len(deps)
	names := make([]string, n)
	for i := range names {
		names[i] = "t" + strconv.Itoa(i)
	}
	pass := func(_ context.Context, in int) (int, error) { return in, nil }
	constant := func(context.Context, workflow.Inputs) (int, error) { return benchInput, nil }
	if sleep > 0 {
		pass = func(_ context.Context, in int) (int, error) { time.Sleep(sleep); return in, nil }
		constant = func(context.Context, workflow.Inputs) (int, error) { time.Sleep(sleep); return benchInput, nil }
	}
	tasks := make(workflow.Tasks, n)
	for i, ds := range deps {
		dn := make([]string, len(ds))
		for k, d := range ds {
			dn[k] = names[d]
		}
		switch {
		case len(ds) <= 1:
			tasks[i] = workflow.Task[int, int]{Name: names[i], Dependencies: dn, Handler: pass}
		case i == n-1:
			first := dn[0]
			tasks[i] = workflow.Task[workflow.Inputs, int]{Name: names[i], Dependencies: dn,
				Handler: func(_ context.Context, in workflow.Inputs) (int, error) {
					if sleep > 0 {
						time.Sleep(sleep)
					}
					return workflow.Get[int](in, first)
				}}
		default:
			tasks[i] = workflow.Task[workflow.Inputs, int]{Name: names[i], Dependencies: dn, Handler: constant}
		}
	}
	return tasks
}

// refRun is the reference executor: one goroutine per task, each waiting
// on the done channels of its dependencies, then running the task; the
// first error cancels the rest through the context. It is the floor a
// goroutine-per-task executor cannot go below: no status, no history, no
// data passed between tasks.
func refRun(ctx context.Context, deps [][]int32, task func(context.Context, int) error) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	n := len(deps)
	done := make([]chan struct{}, n)
	for i := range done {
		done[i] = make(chan struct{})
	}
	var wg sync.WaitGroup
	wg.Add(n)
	for i := range n {
		go func() {
			defer wg.Done()
			for _, d := range deps[i] {
				select {
				case <-done[d]:
				case <-ctx.Done():
					return
				}
			}
			if ctx.Err() != nil {
				return
			}
			if err := task(ctx, i); err != nil {
				cancel(err)
				return
			}
			close(done[i])
		}()
	}
	wg.Wait()
	if ctx.Err() != nil {
		return context.Cause(ctx)
	}
	return nil
}

// refTask is the reference's task: nothing, or a sleep.
func refTask(sleep time.Duration) func(context.Context, int) error {
	if sleep > 0 {
		return func(context.Context, int) error { time.Sleep(sleep); return nil }
	}
	return func(context.Context, int) error { return nil }
}

// meter adds up the wall time and heap allocation of measured calls.
type meter struct {
	runs          int
	elapsed       time.Duration
	bytes, allocs uint64
}

func (m *meter) measure(f func()) {
	var a, z runtime.MemStats
	runtime.ReadMemStats(&a)
	t := time.Now()
	f()
	m.elapsed += time.Since(t)
	runtime.ReadMemStats(&z)
	m.runs++
	m.bytes += z.TotalAlloc - a.TotalAlloc
	m.allocs += z.Mallocs - a.Mallocs
}

// perTask returns ns, bytes and allocations per task of a run of n tasks.
func (m *meter) perTask(n int) (ns, bytes, allocs float64) {
	k := float64(m.runs) * float64(n)
	return float64(m.elapsed.Nanoseconds()) / k, float64(m.bytes) / k, float64(m.allocs) / k
}

// pair measures subject and the reference run, alternately, once per
// iteration, and reports the subject's figures per task, the reference's,
// and their ratios. Only the subject counts toward the benchmark's time.
func pair(b *testing.B, n int, subject, ref func()) {
	var sm, rm meter
	for b.Loop() {
		sm.measure(subject)
		b.StopTimer()
		rm.measure(ref)
		b.StartTimer()
	}
	ns, by, al := sm.perTask(n)
	rns, rby, ral := rm.perTask(n)
	b.ReportMetric(float64(sm.elapsed.Nanoseconds())/float64(sm.runs), "ns/op")
	b.ReportMetric(ns, "ns/task")
	b.ReportMetric(by, "B/task")
	b.ReportMetric(al, "allocs/task")
	b.ReportMetric(rns, "ref-ns/task")
	b.ReportMetric(rby, "ref-B/task")
	b.ReportMetric(ral, "ref-allocs/task")
	b.ReportMetric(ns/rns, "x-ref-ns")
	b.ReportMetric(by/rby, "x-ref-B")
	b.ReportMetric(al/ral, "x-ref-allocs")
}

// refOnce runs the reference on deps and fails b on an error.
func refOnce(b *testing.B, deps [][]int32, task func(context.Context, int) error) func() {
	return func() {
		if err := refRun(context.Background(), deps, task); err != nil {
			b.Fatalf("reference executor: %v", err)
		}
	}
}

// BenchmarkNew measures New: the definition of a workflow, checked and
// planned. The Tasks list is built once, outside the measure. x-ref-ns is
// New's cost per task over the reference executor's run cost per task.
func BenchmarkNew(b *testing.B) {
	for _, s := range benchShapes {
		b.Run(s.name, func(b *testing.B) {
			for _, n := range benchSizes {
				b.Run("N="+strconv.Itoa(n), func(b *testing.B) {
					deps := s.graph(n)
					tasks := benchTasks(deps, 0)
					pair(b, n, func() {
						w, err := workflow.New[int, int]("bench", tasks)
						if err != nil || w == nil {
							b.Fatalf("New: %v", err)
						}
					}, refOnce(b, deps, refTask(0)))
				})
			}
		})
	}
}

// BenchmarkRun measures Run of a workflow built once, with no-op handlers
// and the default MemoryStore recording every run's status and history
// (as a user pays by default, its retention included).
func BenchmarkRun(b *testing.B) {
	for _, s := range benchShapes {
		b.Run(s.name, func(b *testing.B) {
			for _, n := range benchSizes {
				b.Run("N="+strconv.Itoa(n), func(b *testing.B) {
					deps := s.graph(n)
					w := workflow.MustNew[int, int]("bench", benchTasks(deps, 0))
					ctx := context.Background()
					pair(b, n, func() {
						out, err := w.Run(ctx, benchInput)
						if err != nil || out != benchInput {
							b.Fatalf("Run = %d, %v; want %d, nil", out, err, benchInput)
						}
					}, refOnce(b, deps, refTask(0)))
				})
			}
		})
	}
}

// BenchmarkGrowth measures how the cost per task grows from N = 1,000 to
// N = 100,000, for New and Run on every shape. Each iteration does 100
// operations at 1,000 tasks and one at 100,000, back to back, so that both
// sizes see the same machine; x-growth is the ratio of their ns/task
// (the target is at most 1.5). Runs are recorded in the default
// MemoryStore, as in BenchmarkRun. Both sizes are warmed up first. A run
// of 100,000 tasks allocates some 35 MB, which the Go runtime takes from
// the OS and gives back between runs: its page faults are part of the
// figure (see BENCHMARKS.md).
func BenchmarkGrowth(b *testing.B) {
	const small, large = 1_000, 100_000
	ctx := context.Background()
	newOp := func(b *testing.B, s benchShape, n int) func() {
		tasks := benchTasks(s.graph(n), 0)
		return func() {
			if _, err := workflow.New[int, int]("bench", tasks); err != nil {
				b.Fatalf("New: %v", err)
			}
		}
	}
	runOp := func(b *testing.B, s benchShape, n int) func() {
		w := workflow.MustNew[int, int]("bench", benchTasks(s.graph(n), 0))
		return func() {
			if out, err := w.Run(ctx, benchInput); err != nil || out != benchInput {
				b.Fatalf("Run = %d, %v; want %d, nil", out, err, benchInput)
			}
		}
	}
	for _, op := range []struct {
		name string
		make func(*testing.B, benchShape, int) func()
	}{{"New", newOp}, {"Run", runOp}} {
		for _, s := range benchShapes {
			b.Run(op.name+"/"+s.name, func(b *testing.B) {
				one, big := op.make(b, s, small), op.make(b, s, large)
				many := func() {
					for range large / small {
						one()
					}
				}
				many()
				big()
				var ms, ml meter
				for b.Loop() {
					ms.measure(many)
					ml.measure(big)
				}
				sns, sby, _ := ms.perTask(large)
				lns, lby, _ := ml.perTask(large)
				b.ReportMetric(sns, "ns/task-1k")
				b.ReportMetric(lns, "ns/task-100k")
				b.ReportMetric(sby, "B/task-1k")
				b.ReportMetric(lby, "B/task-100k")
				b.ReportMetric(lns/sns, "x-growth")
			})
		}
	}
}

// BenchmarkSleepy measures the wall time of a 200-task fanout whose tasks
// each sleep 1 ms, in real time: the ideal is three sleeps (root, the 198
// overlapping middle tasks, sink).
func BenchmarkSleepy(b *testing.B) {
	const n, sleep = 200, time.Millisecond
	deps := fanoutGraph(n)
	w := workflow.MustNew[int, int]("sleepy", benchTasks(deps, sleep))
	ctx := context.Background()
	task := refTask(sleep)
	var wf, ref time.Duration
	runs := 0
	for b.Loop() {
		t := time.Now()
		out, err := w.Run(ctx, benchInput)
		wf += time.Since(t)
		if err != nil || out != benchInput {
			b.Fatalf("Run = %d, %v; want %d, nil", out, err, benchInput)
		}
		b.StopTimer()
		t = time.Now()
		refOnce(b, deps, task)()
		ref += time.Since(t)
		b.StartTimer()
		runs++
	}
	ms := func(d time.Duration) float64 { return float64(d.Nanoseconds()) / 1e6 / float64(runs) }
	b.ReportMetric(ms(wf), "ms/run")
	b.ReportMetric(ms(ref), "ref-ms/run")
	b.ReportMetric(float64(wf)/float64(ref), "x-ref")
	b.ReportMetric(ms(wf)/(3*float64(sleep.Nanoseconds())/1e6), "x-ideal")
}

// BenchmarkRetainedHistory measures the heap that a MemoryStore keeps for
// 1,000 runs of a 10-task workflow (its default retention), after GC.
func BenchmarkRetainedHistory(b *testing.B) {
	const runs, n = 1000, 10
	deps := fanoutGraph(n)
	tasks := benchTasks(deps, 0)
	ctx := context.Background()
	var retained uint64
	for b.Loop() {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		store := workflow.NewMemoryStore()
		w := workflow.MustNew[int, int]("retained", tasks, workflow.WithStore(store))
		for range runs {
			if _, err := w.Run(ctx, benchInput); err != nil {
				b.Fatal(err)
			}
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		retained = after.HeapAlloc - before.HeapAlloc
		b.StopTimer()
		h, err := w.History(ctx)
		if err != nil || len(h) != runs || len(h[0].Tasks) != n || len(h[0].Events) != 2*n+2 {
			b.Fatalf("History: %d runs, %v; want %d runs of %d tasks and %d events", len(h), err, runs, n, 2*n+2)
		}
		runtime.KeepAlive(store)
		b.StartTimer()
	}
	b.ReportMetric(float64(retained)/(1<<20), "MiB")
	b.ReportMetric(float64(retained)/runs, "B/run")
}

// BenchmarkStatus measures Status, TaskStatus and Inspect with many runs
// kept, while other runs record concurrently and one run stays under way
// with a task blocked in its handler (so a lock held across a handler
// would hang it). Their cost must not grow with the runs kept.
func BenchmarkStatus(b *testing.B) {
	for _, kept := range []int{100, 1_000, 10_000} {
		b.Run("kept="+strconv.Itoa(kept), func(b *testing.B) {
			store := workflow.NewMemoryStore(workflow.MaxRuns(kept))
			const n = 10
			deps := chainGraph(n)
			w := workflow.MustNew[int, int]("status", benchTasks(deps, 0), workflow.WithStore(store))
			ctx := context.Background()
			for range kept {
				if _, err := w.Run(ctx, benchInput); err != nil {
					b.Fatal(err)
				}
			}
			release := make(chan struct{})
			parked, err := w.Start(ctx, benchInput, workflow.WithRunID("parked"),
				workflow.ReplaceTask("t5", func(_ context.Context, in int) (int, error) {
					<-release
					return in, nil
				}))
			require.NoError(b, err)

			bg, stop := context.WithCancel(ctx)
			var wg sync.WaitGroup
			wg.Go(func() { // a run every 100 µs or so: recording, not hogging a core
				for bg.Err() == nil {
					_, _ = w.Run(bg, benchInput) // errors only when bg ends
					time.Sleep(100 * time.Microsecond)
				}
			})
			defer func() {
				stop()
				wg.Wait()
				close(release)
				out, err := parked.Wait(ctx)
				if err != nil || out != benchInput {
					b.Errorf("parked run = %d, %v", out, err)
				}
			}()

			// B/op and allocs/op include what the background runs allocate
			// meanwhile (a Status copies the run: 2 allocations).
			b.Run("Status", func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					if rs, err := w.Status(ctx); err != nil || len(rs.Tasks) != n {
						b.Fatalf("Status: %v", err)
					}
				}
			})
			b.Run("TaskStatus", func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					if ts, err := w.TaskStatus(ctx, "t5"); err != nil || ts.Name != "t5" {
						b.Fatalf("TaskStatus: %v", err)
					}
				}
			})
			b.Run("Inspect", func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					if rs, err := w.Inspect(ctx, "parked"); err != nil || rs.State != workflow.StateRunning {
						b.Fatalf("Inspect: %v, state %s", err, rs.State)
					}
				}
			})
		})
	}
}

// TestBenchmarkWorkloads checks that every benchmark workload runs to the
// expected output, in the workflow and in the reference executor.
func TestBenchmarkWorkloads(t *testing.T) {
	for _, s := range benchShapes {
		for _, n := range []int{3, 33, 100, 1000} {
			t.Run(fmt.Sprintf("%s/N=%d", s.name, n), func(t *testing.T) {
				deps := s.graph(n)
				require.Len(t, deps, n)
				w, err := workflow.New[int, int]("bench", benchTasks(deps, 0))
				require.NoError(t, err)
				out, err := w.Run(t.Context(), benchInput)
				require.NoError(t, err)
				require.Equal(t, benchInput, out)
				rs, err := w.Status(t.Context())
				require.NoError(t, err)
				for _, ts := range rs.Tasks {
					require.Equal(t, workflow.StateSucceeded, ts.State, ts.Name)
				}
				var ran atomic.Int64
				require.NoError(t, refRun(t.Context(), deps, func(context.Context, int) error { ran.Add(1); return nil }))
				require.EqualValues(t, n, ran.Load())
			})
		}
	}
}

// TestReferenceExecutor checks the reference: a task starts after its
// dependencies, and the first error cancels the rest.
func TestReferenceExecutor(t *testing.T) {
	deps := latticeGraph(200)
	finished := make([]atomic.Bool, len(deps))
	err := refRun(t.Context(), deps, func(_ context.Context, i int) error {
		for _, d := range deps[i] {
			if !finished[d].Load() {
				return fmt.Errorf("task %d started before its dependency %d", i, d)
			}
		}
		finished[i].Store(true)
		return nil
	})
	require.NoError(t, err)

	boom := errors.New("boom")
	var ran atomic.Int64
	err = refRun(t.Context(), chainGraph(100), func(_ context.Context, i int) error {
		ran.Add(1)
		if i == 10 {
			return boom
		}
		return nil
	})
	require.ErrorIs(t, err, boom)
	require.EqualValues(t, 11, ran.Load())
}

// BenchmarkRestore restores a snapshot of n ended runs into a store that
// holds the same runs, the case that was quadratic: ns/run should not grow
// with n.
func BenchmarkRestore(b *testing.B) {
	for _, n := range []int{2_000, 16_000} {
		b.Run(fmt.Sprintf("runs=%d", n), func(b *testing.B) {
			store := workflow.NewMemoryStore(workflow.MaxRuns(0))
			w, err := workflow.New[int, int]("restore", workflow.Tasks{
				workflow.Task[int, int]{Name: "a", Handler: func(_ context.Context, in int) (int, error) { return in, nil }},
			}, workflow.WithStore(store))
			if err != nil {
				b.Fatal(err)
			}
			for i := range n {
				if _, err := w.Run(context.Background(), i); err != nil {
					b.Fatal(err)
				}
			}
			var snap bytes.Buffer
			if err := store.Snapshot(&snap); err != nil {
				b.Fatal(err)
			}
			b.ResetTimer()
			for range b.N {
				if err := store.Restore(bytes.NewReader(snap.Bytes())); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/run")
		})
	}
}

// BenchmarkMap measures a Map task over N items against a plain fanout of
// N tasks: root, N−2 tasks, sink, with no-op handlers, both recorded in the
// default MemoryStore. x-ref-ns is Map's cost per item over the fanout's
// per task (the target is at most 1.5).
func BenchmarkMap(b *testing.B) {
	for _, n := range []int{1_000, 10_000, 100_000} {
		b.Run("N="+strconv.Itoa(n), func(b *testing.B) {
			items := make([]int, n)
			m := workflow.MustNew[[]int, []int]("map", workflow.Tasks{workflow.Map[int, int]{Name: "each",
				Handler: func(_ context.Context, i int) (int, error) { return i, nil }}})
			fan := workflow.MustNew[int, int]("fanout", benchTasks(fanoutGraph(n), 0))
			ctx := context.Background()
			pair(b, n, func() {
				out, err := m.Run(ctx, items)
				if err != nil || len(out) != n {
					b.Fatalf("Map Run = %d items, %v", len(out), err)
				}
			}, func() {
				if _, err := fan.Run(ctx, benchInput); err != nil {
					b.Fatalf("fanout Run: %v", err)
				}
			})
		})
	}
}
