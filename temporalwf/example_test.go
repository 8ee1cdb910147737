package temporalwf_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"strings"

	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/worker"

	"github.com/b3b01171/workflow"
	"github.com/b3b01171/workflow/temporalwf"
)

// The same definition runs in-process with wf.Run and on Temporal with
// temporalwf.Run: a worker registers it, a client runs it. (hostPort and
// namespace are those of the Temporal server the tests start.)
func ExampleRun() {
	wf := workflow.MustNew[string, string]("greet", workflow.Tasks{
		workflow.Task[string, string]{Name: "upper", Handler: func(ctx context.Context, s string) (string, error) {
			return strings.ToUpper(s), nil
		}},
		workflow.Task[string, string]{Name: "exclaim", Dependencies: []string{"upper"}, Handler: func(ctx context.Context, s string) (string, error) {
			if s == "" {
				return "", workflow.Permanent(errors.New("nothing to say"))
			}
			return s + "!", nil
		}},
	})

	c, err := client.Dial(client.Options{HostPort: hostPort, Namespace: namespace, Logger: quiet{}})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	w := worker.New(c, "greetings", worker.Options{})
	if err := temporalwf.Register(w, wf); err != nil {
		log.Fatal(err)
	}
	if err := w.Start(); err != nil {
		log.Fatal(err)
	}
	defer w.Stop()

	ctx := context.Background()
	out, err := temporalwf.Run(ctx, c, wf, "hello", temporalwf.TaskQueue("greetings"))
	fmt.Println(out, err)

	_, err = temporalwf.Run(ctx, c, wf, "", temporalwf.TaskQueue("greetings"), temporalwf.RunID("greet-empty"))
	var werr *workflow.WorkflowError
	if errors.As(err, &werr) {
		fmt.Println(werr.Task, werr.Attempts, err)
	}
	rs, err := temporalwf.Inspect(ctx, c, wf, "greet-empty")
	if err != nil {
		log.Fatal(err)
	}
	for _, t := range rs.Tasks {
		fmt.Println(t.Name, t.State)
	}
	// Output:
	// HELLO! <nil>
	// exclaim 1 workflow "greet" run greet-empty: task "exclaim" failed: nothing to say
	// upper succeeded
	// exclaim failed
}
