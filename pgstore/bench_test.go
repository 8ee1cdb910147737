package pgstore_test

import (
	"context"
	"fmt"
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/b3b01171/workflow"
	"github.com/b3b01171/workflow/pgstore"
)

// The engine on a pgstore: the root module's BenchmarkRun (bench_test.go
// there) on the chain and fanout shapes, with the runs recorded in
// PostgreSQL instead of a MemoryStore. Handlers do nothing, so the figures
// are the engine's and the store's: a task's start and success are
// appended, its output encoded and committed, before its successors start.
// Each size gets a new schema.

// runSizes are the workflow sizes, in tasks.
var runSizes = []int{100, 1_000}

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

// BenchmarkRunChain measures Run of a chain of no-op tasks on a pgstore
// with its default options. ns/task and B/task are per task, run creation
// and end included; B/task is what the Go heap of the test process
// allocated (the server's memory is outside it).
func BenchmarkRunChain(b *testing.B) { benchmarkRun(b, chainTasks) }

// BenchmarkRunFanout is BenchmarkRunChain on the fanout shape.
func BenchmarkRunFanout(b *testing.B) { benchmarkRun(b, fanoutTasks) }

func benchmarkRun(b *testing.B, shape func(n int) workflow.Tasks) {
	for _, n := range runSizes {
		b.Run("N="+strconv.Itoa(n), func(b *testing.B) {
			s := open(b, newSchema(b))
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

// BenchmarkReplicaSchedulerFires measures the fires a three-replica
// scheduler setup sustains: three Schedulers, each on its own Store (its
// own pool) on one schema, as three processes would be, share n workflows
// on "@every 1s" for five seconds. It reports the runs started per second
// across the three (fires/s), the fires of those seconds that got no run
// (missed), and fails on a fire run twice.
func BenchmarkReplicaSchedulerFires(b *testing.B) {
	for _, n := range []int{100, 500, 1000} {
		b.Run(fmt.Sprintf("workflows=%d", n), func(b *testing.B) {
			for b.Loop() {
				schema := newSchema(b)
				open(b, schema)
				var ss []*workflow.Scheduler
				for range 3 {
					st := open(b, schema)
					s := workflow.NewScheduler(workflow.WithRecoverInterval(0))
					for i := range n {
						w, err := workflow.New[struct{}, struct{}](fmt.Sprintf("wf%04d", i),
							workflow.Tasks{workflow.Task[struct{}, struct{}]{Name: "noop", Handler: func(context.Context, struct{}) (struct{}, error) {
								return struct{}{}, nil
							}}},
							workflow.WithStore(st), workflow.WithSchedule(workflow.Schedule{Cron: "@every 1s"}))
						if err != nil {
							b.Fatal(err)
						}
						if err := s.Register(w); err != nil {
							b.Fatal(err)
						}
					}
					ss = append(ss, s)
				}
				start := time.Now().Truncate(time.Second).Add(time.Second)
				for _, s := range ss {
					s.Start()
				}
				const secs = 5
				time.Sleep(time.Until(start.Add(secs*time.Second - 100*time.Millisecond)))
				for _, s := range ss {
					s.Stop(context.Background())
				}
				var runs, dups int
				q := pgx.Identifier{schema}.Sanitize()
				err := admin(b).QueryRow(context.Background(), `SELECT count(*), count(*) - count(DISTINCT (workflow, scheduled_at))
FROM `+q+`.runs WHERE trigger = 'schedule' AND state = 'succeeded'`).Scan(&runs, &dups)
				if err != nil {
					b.Fatal(err)
				}
				if dups != 0 {
					b.Fatalf("%d fires ran twice", dups)
				}
				b.ReportMetric(float64(runs)/secs, "fires/s")
				b.ReportMetric(float64(secs*n-runs), "missed")
			}
		})
	}
}

// BenchmarkCreate creates runs as the engine does, pending with ten
// pending tasks: the child run of a Sub task, so that its parent's run ID
// is written too.
func BenchmarkCreate(b *testing.B) {
	s := open(b, newSchema(b), pgstore.MaxRuns(0))
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
