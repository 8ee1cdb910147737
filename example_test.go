package workflow_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/b3b01171/workflow"
)

// A pipeline of two tasks: the second receives the first's output.
func Example() {
	wf, err := workflow.New[string, int]("wordcount", workflow.Tasks{
		workflow.Task[string, []string]{
			Name:    "split",
			Handler: func(ctx context.Context, s string) ([]string, error) { return strings.Fields(s), nil },
		},
		workflow.Task[[]string, int]{
			Name:         "count",
			Dependencies: []string{"split"},
			Handler:      func(ctx context.Context, words []string) (int, error) { return len(words), nil },
		},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	n, err := wf.Run(context.Background(), "the quick brown fox")
	fmt.Println(n, err)
	// Output: 4 <nil>
}

// A task with several dependencies takes Inputs and reads each one by name.
func ExampleGet() {
	wf := workflow.MustNew[int, string]("fan-in", workflow.Tasks{
		workflow.Task[int, int]{Name: "double", Handler: func(ctx context.Context, n int) (int, error) { return 2 * n, nil }},
		workflow.Task[int, string]{Name: "label", Handler: func(ctx context.Context, n int) (string, error) { return fmt.Sprint("n=", n), nil }},
		workflow.Task[workflow.Inputs, string]{
			Name:         "join",
			Dependencies: []string{"double", "label"},
			Handler: func(ctx context.Context, in workflow.Inputs) (string, error) {
				d, err := workflow.Get[int](in, "double")
				if err != nil {
					return "", err
				}
				l, err := workflow.Get[string](in, "label")
				return fmt.Sprintf("%s doubled is %d", l, d), err
			},
		},
	})
	out, err := wf.Run(context.Background(), 21)
	fmt.Println(out, err)
	// Output: n=21 doubled is 42 <nil>
}

// New checks the whole definition and reports every problem at once.
func ExampleNew_invalid() {
	_, err := workflow.New[int, int]("broken", workflow.Tasks{
		workflow.Task[int, int]{Name: "a", Dependencies: []string{"b"}, Handler: func(ctx context.Context, n int) (int, error) { return n, nil }},
		workflow.Task[string, int]{Name: "b", Dependencies: []string{"a"}, Handler: func(ctx context.Context, s string) (int, error) { return 0, nil }},
		workflow.Task[int, int]{Name: "c", Dependencies: []string{"missing"}, Handler: func(ctx context.Context, n int) (int, error) { return n, nil }},
	})
	fmt.Println(errors.Is(err, workflow.ErrInvalidWorkflow), errors.Is(err, workflow.ErrCycle),
		errors.Is(err, workflow.ErrTypeMismatch), errors.Is(err, workflow.ErrUnknownDependency))
	var werr *workflow.WorkflowError
	if errors.As(err, &werr) {
		for _, p := range werr.Details["problems"].([]string) {
			fmt.Println(p)
		}
	}
	// Output:
	// true true true true
	// task "c" depends on "missing", which is not defined
	// dependency cycle "b" → "a" → "b"
	// task "b" takes string, but its dependency "a" gives int
}

// A failing task is retried as its RetryPolicy says; the error names the task.
func ExampleRetryPolicy() {
	calls := 0
	wf := workflow.MustNew[struct{}, string]("flaky", workflow.Tasks{
		workflow.Task[struct{}, string]{
			Name:  "fetch",
			Retry: workflow.RetryPolicy{Attempts: 3, Delay: time.Millisecond, Backoff: 2},
			Handler: func(ctx context.Context, _ struct{}) (string, error) {
				if calls++; calls < 3 {
					return "", errors.New("connection reset")
				}
				return "payload", nil
			},
		},
	})
	out, err := wf.Run(context.Background(), struct{}{})
	fmt.Println(out, err, calls)
	ts, _ := wf.TaskStatus(context.Background(), "fetch")
	fmt.Println(ts.State, ts.Attempts)
	// Output:
	// payload <nil> 3
	// succeeded 3
}

// A failed run names the task, its attempts and the cause.
func ExampleWorkflowError() {
	errQuota := errors.New("quota exceeded")
	wf := workflow.MustNew[struct{}, struct{}]("upload", workflow.Tasks{
		workflow.Task[struct{}, struct{}]{
			Name:  "send",
			Retry: workflow.RetryPolicy{Attempts: 5},
			Handler: func(ctx context.Context, _ struct{}) (struct{}, error) {
				return struct{}{}, workflow.Permanent(errQuota)
			},
		},
	})
	_, err := wf.Run(context.Background(), struct{}{}, workflow.WithRunID("run-1"))
	var werr *workflow.WorkflowError
	if errors.As(err, &werr) {
		fmt.Println(werr.Task, werr.Attempts, errors.Is(err, errQuota))
	}
	fmt.Println(err)
	// Output:
	// send 1 true
	// workflow "upload" run run-1: task "send" failed: quota exceeded
}

// Resume continues a failed run: tasks that succeeded keep their outputs.
func ExampleWorkflow_Resume() {
	ctx := context.Background()
	extracted, broken := 0, true
	wf := workflow.MustNew[struct{}, int]("etl", workflow.Tasks{
		workflow.Task[struct{}, int]{Name: "extract", Handler: func(ctx context.Context, _ struct{}) (int, error) {
			extracted++
			return 10, nil
		}},
		workflow.Task[int, int]{Name: "load", Dependencies: []string{"extract"}, Handler: func(ctx context.Context, n int) (int, error) {
			if broken {
				return 0, errors.New("database down")
			}
			return n, nil
		}},
	})
	_, err := wf.Run(ctx, struct{}{}, workflow.WithRunID("nightly-1"))
	fmt.Println(err != nil)

	broken = false
	n, err := wf.Resume(ctx, "nightly-1")
	fmt.Println(n, err, "extract ran", extracted, "time")
	st, _ := wf.Inspect(ctx, "nightly-1")
	fmt.Println(st.State)
	// Output:
	// true
	// 10 <nil> extract ran 1 time
	// succeeded
}

// ReplaceTask stubs one task for one run, so a test can run the real
// pipeline without its side effects.
func ExampleReplaceTask() {
	wf := workflow.MustNew[string, string]("notify", workflow.Tasks{
		workflow.Task[string, string]{Name: "render", Handler: func(ctx context.Context, who string) (string, error) { return "hello " + who, nil }},
		workflow.Task[string, string]{Name: "send", Dependencies: []string{"render"}, Handler: func(ctx context.Context, msg string) (string, error) {
			return "", errors.New("no mail server in tests")
		}},
	})
	var sent []string
	out, err := wf.Run(context.Background(), "ada", workflow.ReplaceTask("send", func(ctx context.Context, msg string) (string, error) {
		sent = append(sent, msg)
		return "sent", nil
	}))
	fmt.Println(out, err, sent)
	// Output: sent <nil> [hello ada]
}

// History lists runs newest first, with each task's state and every event.
func ExampleWorkflow_History() {
	ctx := context.Background()
	wf := workflow.MustNew[int, int]("square", workflow.Tasks{
		workflow.Task[int, int]{Name: "square", Handler: func(ctx context.Context, n int) (int, error) {
			if n < 0 {
				return 0, errors.New("negative")
			}
			return n * n, nil
		}},
	})
	_, _ = wf.Run(ctx, 3, workflow.WithRunID("first"))
	_, _ = wf.Run(ctx, -1, workflow.WithRunID("second"))
	runs, _ := wf.History(ctx)
	for _, rs := range runs {
		fmt.Println(rs.RunID, rs.State, rs.Tasks[0].State, len(rs.Events))
	}
	failed, _ := wf.History(ctx, workflow.HistoryState(workflow.StateFailed))
	fmt.Println(len(failed), failed[0].RunID)
	// Output:
	// second failed failed 4
	// first succeeded succeeded 4
	// 1 second
}

// A Map task calls its handler once per element of a list known only at run
// time; its output is the list of results, in order.
func ExampleMap() {
	wf := workflow.MustNew[string, []int]("lengths", workflow.Tasks{
		workflow.Task[string, []string]{Name: "split",
			Handler: func(_ context.Context, s string) ([]string, error) { return strings.Fields(s), nil }},
		workflow.Map[string, int]{Name: "length", Dependencies: []string{"split"}, MaxConcurrency: 2,
			Handler: func(_ context.Context, word string) (int, error) { return len(word), nil }},
	})
	out, err := wf.Run(context.Background(), "a map over words")
	fmt.Println(out, err)
	// Output: [1 3 4 5] <nil>
}

// A handler may skip its task; a cleanup task with the AllDone rule runs
// whatever happened upstream, and learns what did through Get.
func ExampleSkip() {
	wf := workflow.MustNew[int, string]("invoice", workflow.Tasks{
		workflow.Task[int, int]{Name: "bill", Handler: func(_ context.Context, total int) (int, error) {
			if total == 0 {
				return 0, workflow.Skip("nothing to invoice")
			}
			return total, nil
		}},
		workflow.Task[workflow.Inputs, string]{Name: "notify", Dependencies: []string{"bill"}, Trigger: workflow.AllDone,
			Handler: func(_ context.Context, in workflow.Inputs) (string, error) {
				total, err := workflow.Get[int](in, "bill")
				if errors.Is(err, workflow.ErrDependencySkipped) {
					return "no invoice", nil
				}
				return fmt.Sprintf("invoiced %d", total), err
			}},
	})
	for _, total := range []int{0, 42} {
		out, err := wf.Run(context.Background(), total)
		fmt.Println(out, err)
	}
	// Output:
	// no invoice <nil>
	// invoiced 42 <nil>
}

// Sub runs a workflow as one task of another; the child run is recorded in
// the child's own history, linked to the parent's run.
func ExampleSub() {
	double := workflow.MustNew[int, int]("double", workflow.Tasks{
		workflow.Task[int, int]{Name: "x2", Handler: func(_ context.Context, n int) (int, error) { return 2 * n, nil }},
	})
	wf := workflow.MustNew[int, int]("parent", workflow.Tasks{
		workflow.Task[int, int]{Name: "inc", Handler: func(_ context.Context, n int) (int, error) { return n + 1, nil }},
		workflow.Sub("double", double, "inc"),
	})
	ctx := context.Background()
	x, _ := wf.Start(ctx, 20)
	out, err := x.Wait(ctx)
	fmt.Println(out, err)
	runs, _ := double.History(ctx)
	fmt.Println(runs[0].Trigger, runs[0].ParentRunID == x.ID())
	// Output:
	// 42 <nil>
	// parent true
}
