package workflow_test

import (
	"context"
	"fmt"
	"os"

	"github.com/b3b01171/workflow"
)

// A workflow's graph as Mermaid text, DOT, or an SVG coloured by a run.
func ExampleGraph() {
	step := func(ctx context.Context, s string) (string, error) { return s, nil }
	wf := workflow.MustNew[string, string]("publish", workflow.Tasks{
		workflow.Task[string, string]{Name: "fetch", Handler: step},
		workflow.Task[string, string]{Name: "render", Dependencies: []string{"fetch"}, Handler: step},
		workflow.Task[string, string]{Name: "upload", Dependencies: []string{"render"}, Handler: step},
	})

	g := wf.Graph()
	for _, t := range g.Tasks {
		fmt.Println(t.Name, t.Dependencies, t.In, "→", t.Out)
	}
	fmt.Print(g.Mermaid())

	if _, err := wf.Run(context.Background(), "page"); err != nil {
		fmt.Println(err)
		return
	}
	rs, _ := wf.Status(context.Background())
	_ = os.WriteFile(os.DevNull, g.SVG(rs), 0o644) // a picture with every node green
	// Output:
	// fetch [] string → string
	// render [fetch] string → string
	// upload [render] string → string
	// flowchart LR
	//     t0["fetch"]
	//     t1["render"]
	//     t2["upload"]
	//     t0 --> t1
	//     t1 --> t2
}
