package sqlitestore_test

import (
	"context"
	"fmt"
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
