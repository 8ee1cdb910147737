package workflowtest_test

import (
	"context"
	"errors"
	"fmt"

	"github.com/b3b01171/workflow"
	"github.com/b3b01171/workflow/workflowtest"
)

// A Returns stub stands in for a task with side effects and records what
// the task would have been given.
func ExampleReturns() {
	wf := workflow.MustNew[string, string]("notify", workflow.Tasks{
		workflow.Task[string, string]{Name: "render", Handler: func(ctx context.Context, who string) (string, error) {
			return "hello " + who, nil
		}},
		workflow.Task[string, string]{Name: "send", Dependencies: []string{"render"}, Handler: func(ctx context.Context, msg string) (string, error) {
			return "", errors.New("no mail server in examples")
		}},
	})
	send := workflowtest.Returns[string]("sent")

	out, err := wf.Run(context.Background(), "ada", workflow.ReplaceTask("send", send.Handler))

	fmt.Println(out, err)
	fmt.Println(send.Calls(), send.Inputs())
	// Output:
	// sent <nil>
	// 1 [hello ada]
}

// A FailsThenReturns stub plays a service that is down for a while, to
// check a task's RetryPolicy. In a test, run it inside synctest.Test to
// keep a real retry delay without waiting for it; an example cannot, so
// this one retries at once.
func ExampleFailsThenReturns() {
	wf := workflow.MustNew[int, int]("quote", workflow.Tasks{
		workflow.Task[int, int]{
			Name:    "price",
			Retry:   workflow.RetryPolicy{Attempts: 3},
			Handler: func(ctx context.Context, items int) (int, error) { return items * 250, nil },
		},
	})
	price := workflowtest.FailsThenReturns[int](2, errors.New("pricing service down"), 500)

	out, err := wf.Run(context.Background(), 2, workflow.ReplaceTask("price", price.Handler))

	fmt.Println(out, err)
	fmt.Println(price.Calls(), price.Inputs())
	// Output:
	// 500 <nil>
	// 3 [2 2 2]
}
