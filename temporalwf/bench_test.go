package temporalwf_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/b3b01171/workflow"
	"github.com/b3b01171/workflow/temporalwf"
)

// fanOut is a workflow of n tasks: one, n-2 after it at once, and one
// joining them; every handler returns at once, so that a run measures
// the engine.
func fanOut(n int) *workflow.Workflow[int, int] {
	tasks := workflow.Tasks{
		workflow.Task[int, int]{Name: "split", Handler: func(ctx context.Context, k int) (int, error) { return k, nil }},
	}
	var mid []string
	for i := range n - 2 {
		name := fmt.Sprintf("t%03d", i)
		mid = append(mid, name)
		tasks = append(tasks, workflow.Task[int, int]{Name: name, Dependencies: []string{"split"},
			Handler: func(ctx context.Context, k int) (int, error) { return k + i, nil }})
	}
	tasks = append(tasks, workflow.Task[workflow.Inputs, int]{Name: "join", Dependencies: mid,
		Handler: func(ctx context.Context, in workflow.Inputs) (int, error) {
			sum := 0
			for _, m := range mid {
				v, err := workflow.Get[int](in, m)
				if err != nil {
					return 0, err
				}
				sum += v
			}
			return sum, nil
		}})
	return workflow.MustNew[int, int](fmt.Sprintf("fanOut%d", n), tasks)
}

// BenchmarkRun is the wall time of one run of a 10-task and a 100-task
// workflow, on the Temporal server of the tests (embedded, SQLite in
// memory, one worker in the same process) and in-process.
func BenchmarkRun(b *testing.B) {
	for _, n := range []int{10, 100} {
		wf := fanOut(n)
		b.Run(fmt.Sprintf("tasks=%d/engine=temporal", n), func(b *testing.B) {
			c, queue := setup(b, registers(wf))
			ctx := context.Background()
			b.ResetTimer()
			for range b.N {
				if _, err := temporalwf.Run(ctx, c, wf, 1, temporalwf.TaskQueue(queue)); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(fmt.Sprintf("tasks=%d/engine=inprocess", n), func(b *testing.B) {
			ctx := context.Background()
			for range b.N {
				if _, err := wf.Run(ctx, 1); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
