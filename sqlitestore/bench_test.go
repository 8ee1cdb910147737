package sqlitestore_test

import (
	"context"
	"fmt"
	"runtime"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/b3b01171/workflow"
	"github.com/b3b01171/workflow/sqlitestore"
)

// BenchmarkAppendChain records runs of n tasks one after another, as the
// engine does for a chain: per task, a batch with its start, then one
// with its success and output. It reports the time per task, run creation
// and end included.
func BenchmarkAppendChain(b *testing.B) {
	for _, n := range []int{100, 1000, 10000} {
		b.Run(fmt.Sprintf("tasks=%d", n), func(b *testing.B) {
			s := open(b, tempPath(b), sqlitestore.MaxRuns(0))
			ctx := context.Background()
			names := make([]string, n)
			for i := range names {
				names[i] = fmt.Sprintf("task-%05d", i)
			}
			output := []byte(`{"value":12345}`)
			runs := 0
			b.ResetTimer()
			for b.Loop() {
				id := fmt.Sprintf("run-%d", runs)
				runs++
				rec, err := s.Create(ctx, newRun("bench", id, names...))
				if err != nil {
					b.Fatal(err)
				}
				now := time.Now()
				one := make([]workflow.Entry, 1)
				appendOne := func(e workflow.Entry) {
					one[0] = e
					if err := rec.Append(ctx, one); err != nil {
						b.Fatal(err)
					}
				}
				appendOne(workflow.Entry{Event: workflow.Event{Time: now, RunID: id, Type: workflow.EventRunStarted}, Index: -1, Payload: workflow.Payload{Data: output}})
				for i, name := range names {
					appendOne(workflow.Entry{Event: workflow.Event{Time: now, RunID: id, Task: name, Type: workflow.EventTaskStarted, Attempt: 1}, Index: i})
					appendOne(workflow.Entry{Event: workflow.Event{Time: now, RunID: id, Task: name, Type: workflow.EventTaskSucceeded}, Index: i, Payload: workflow.Payload{Data: output}})
				}
				appendOne(workflow.Entry{Event: workflow.Event{Time: now, RunID: id, Type: workflow.EventRunSucceeded}, Index: -1})
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(runs*n), "ns/task")
		})
	}
}

// BenchmarkAppendConcurrentRuns records 100 runs at once, each a chain of
// 100 tasks appended as BenchmarkAppendChain does. It reports the time per
// task of all the runs.
func BenchmarkAppendConcurrentRuns(b *testing.B) {
	const runs, n = 100, 100
	s := open(b, tempPath(b), sqlitestore.MaxRuns(0))
	ctx := context.Background()
	names := make([]string, n)
	for i := range names {
		names[i] = fmt.Sprintf("task-%05d", i)
	}
	output := []byte(`{"value":12345}`)
	round := 0
	for b.Loop() {
		round++
		var wg sync.WaitGroup
		for r := range runs {
			wg.Go(func() {
				id := fmt.Sprintf("run-%d-%d", round, r)
				rec, err := s.Create(ctx, newRun("bench", id, names...))
				if err != nil {
					b.Error(err)
					return
				}
				now := time.Now()
				one := make([]workflow.Entry, 1)
				for i, name := range names {
					for _, e := range []workflow.Entry{
						{Event: workflow.Event{Time: now, RunID: id, Task: name, Type: workflow.EventTaskStarted, Attempt: 1}, Index: i},
						{Event: workflow.Event{Time: now, RunID: id, Task: name, Type: workflow.EventTaskSucceeded}, Index: i, Payload: workflow.Payload{Data: output}},
					} {
						one[0] = e
						if err := rec.Append(ctx, one); err != nil {
							b.Error(err)
							return
						}
					}
				}
			})
		}
		wg.Wait()
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(round*runs*n), "ns/task")
}

// The engine on a sqlitestore: the root module's BenchmarkRun (bench_test.go
// there) on the chain and fanout shapes, with the runs recorded in a
// SQLite file (WAL) instead of a MemoryStore. Handlers do nothing, so the
// figures are the engine's and the store's: a task's start and success are
// appended, its output encoded and committed, before its successors start.

// runSizes are the workflow sizes, in tasks.
var runSizes = []int{100, 1_000, 10_000}

// runInput is the workflow input; every task passes it on, so a run that
// worked outputs it.
const runInput = 7

// chainTasks is a chain: task i depends on task i−1.
func chainTasks(n int) workflow.Tasks {
	pass := func(_ context.Context, in int) (int, error) { return in, nil }
	tasks := make(workflow.Tasks, n)
	for i := range tasks {
		var deps []string
		if i > 0 {
			deps = []string{"t" + strconv.Itoa(i-1)}
		}
		tasks[i] = workflow.Task[int, int]{Name: "t" + strconv.Itoa(i), Dependencies: deps, Handler: pass}
	}
	return tasks
}

// fanoutTasks is one root, n−2 tasks depending on it, and one sink
// depending on all of those, which reads the output of the first.
func fanoutTasks(n int) workflow.Tasks {
	pass := func(_ context.Context, in int) (int, error) { return in, nil }
	tasks := make(workflow.Tasks, 0, n)
	tasks = append(tasks, workflow.Task[int, int]{Name: "t0", Handler: pass})
	mid := make([]string, 0, n-2)
	for i := 1; i < n-1; i++ {
		name := "t" + strconv.Itoa(i)
		tasks = append(tasks, workflow.Task[int, int]{Name: name, Dependencies: []string{"t0"}, Handler: pass})
		mid = append(mid, name)
	}
	first := mid[0]
	tasks = append(tasks, workflow.Task[workflow.Inputs, int]{Name: "t" + strconv.Itoa(n-1), Dependencies: mid,
		Handler: func(_ context.Context, in workflow.Inputs) (int, error) { return workflow.Get[int](in, first) }})
	return tasks
}

// BenchmarkRunChain measures Run of a chain of no-op tasks on a
// sqlitestore with its default options. ns/task and B/task are per task,
// run creation and end included; B/task is what the Go heap allocated (the
// SQLite library's own memory is outside it).
func BenchmarkRunChain(b *testing.B) { benchmarkRun(b, chainTasks) }

// BenchmarkRunFanout is BenchmarkRunChain on the fanout shape.
func BenchmarkRunFanout(b *testing.B) { benchmarkRun(b, fanoutTasks) }

func benchmarkRun(b *testing.B, shape func(n int) workflow.Tasks) {
	for _, n := range runSizes {
		b.Run("N="+strconv.Itoa(n), func(b *testing.B) {
			s := open(b, tempPath(b))
			wf, err := workflow.New[int, int]("bench", shape(n), workflow.WithStore(s))
			if err != nil {
				b.Fatal(err)
			}
			ctx := context.Background()
			var (
				runs          int
				elapsed       time.Duration
				bytes, allocs uint64
				before, after runtime.MemStats
			)
			for b.Loop() {
				runtime.ReadMemStats(&before)
				start := time.Now()
				out, err := wf.Run(ctx, runInput)
				elapsed += time.Since(start)
				runtime.ReadMemStats(&after)
				if err != nil || out != runInput {
					b.Fatalf("Run = %d, %v; want %d, nil", out, err, runInput)
				}
				runs++
				bytes += after.TotalAlloc - before.TotalAlloc
				allocs += after.Mallocs - before.Mallocs
			}
			k := float64(runs) * float64(n)
			b.ReportMetric(float64(elapsed.Nanoseconds())/float64(runs), "ns/op")
			b.ReportMetric(float64(elapsed.Nanoseconds())/k, "ns/task")
			b.ReportMetric(float64(bytes)/k, "B/task")
			b.ReportMetric(float64(allocs)/k, "allocs/task")
		})
	}
}

// BenchmarkCreate creates runs as the engine does, pending with ten
// pending tasks: the child run of a Sub task, so that its parent's run ID
// is written too.
func BenchmarkCreate(b *testing.B) {
	s := open(b, tempPath(b), sqlitestore.MaxRuns(0))
	ctx := context.Background()
	names := make([]string, 10)
	for i := range names {
		names[i] = fmt.Sprintf("task-%02d", i)
	}
	runs := 0
	for b.Loop() {
		run := newRun("bench", "parent-"+strconv.Itoa(runs)+".sub", names...)
		run.Trigger, run.ParentRunID = workflow.TriggerParent, "parent-"+strconv.Itoa(runs)
		runs++
		if _, err := s.Create(ctx, run); err != nil {
			b.Fatal(err)
		}
	}
}
