// Command branching shows the control flow of package workflow: a Map over
// a list known only at run time, a Sub workflow used as one task, a branch
// that skips itself for some inputs, and a cleanup task that runs whatever
// happened upstream (Trigger: AllDone).
//
//	go run ./examples/branching
package main

import (
	"context"
	"errors"
	"fmt"
	"log"
	"strings"

	"github.com/b3b01171/workflow"
)

// Order is the workflow input: a batch of order lines.
type Order struct {
	ID    string
	Lines []string // "sku:quantity"
}

// Line is one parsed order line.
type Line struct {
	SKU      string
	Quantity int
}

// Report is the workflow output.
type Report struct {
	Lines    int
	Units    int
	Express  bool
	Cleaned  bool
	Problems []string
}

// pricing is the child workflow: it counts the units of the parsed lines.
var pricing = workflow.MustNew[[]Line, int]("pricing", workflow.Tasks{
	workflow.Task[[]Line, int]{Name: "units", Handler: func(_ context.Context, lines []Line) (int, error) {
		n := 0
		for _, l := range lines {
			n += l.Quantity
		}
		return n, nil
	}},
})

func newOrders() (*workflow.Workflow[Order, Report], error) {
	return workflow.New[Order, Report]("orders", workflow.Tasks{
		workflow.Task[Order, []string]{Name: "lines", Handler: func(_ context.Context, o Order) ([]string, error) {
			return o.Lines, nil
		}},
		// One call per line, at most 4 at once, each line with its own retries.
		workflow.Map[string, Line]{Name: "parse", Dependencies: []string{"lines"}, MaxConcurrency: 4,
			Retry: workflow.RetryPolicy{Attempts: 3},
			Handler: func(_ context.Context, s string) (Line, error) {
				var l Line
				sku, qty, ok := strings.Cut(s, ":")
				if !ok {
					return l, workflow.Permanent(fmt.Errorf("line %q: want sku:quantity", s))
				}
				if _, err := fmt.Sscan(qty, &l.Quantity); err != nil {
					return l, workflow.Permanent(fmt.Errorf("line %q: %w", s, err))
				}
				l.SKU = sku
				return l, nil
			}},
		// Another workflow as one task.
		workflow.Sub("price", pricing, "parse"),
		// A branch taken only for big orders: below 10 units it skips itself.
		workflow.Task[int, bool]{Name: "express", Dependencies: []string{"price"},
			Handler: func(_ context.Context, units int) (bool, error) {
				if units < 10 {
					return false, workflow.Skip("fewer than 10 units")
				}
				return true, nil
			}},
		// Runs once everything above ended, in any state.
		workflow.Task[workflow.Inputs, Report]{Name: "report", Dependencies: []string{"parse", "price", "express"},
			Trigger: workflow.AllDone,
			Handler: func(_ context.Context, in workflow.Inputs) (Report, error) {
				r := Report{Cleaned: true}
				lines, err := workflow.Get[[]Line](in, "parse")
				if err != nil {
					r.Problems = append(r.Problems, err.Error())
				}
				r.Lines = len(lines)
				r.Units, _ = workflow.Get[int](in, "price")
				express, err := workflow.Get[bool](in, "express")
				r.Express = express
				if errors.Is(err, workflow.ErrDependencySkipped) {
					r.Problems = append(r.Problems, "no express shipping: "+err.Error())
				}
				return r, nil
			}},
	})
}

func main() {
	orders, err := newOrders()
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(orders.Graph().Mermaid())
	ctx := context.Background()
	for _, o := range []Order{
		{ID: "big", Lines: []string{"apple:4", "pear:6", "plum:2"}},
		{ID: "small", Lines: []string{"apple:1"}},
		{ID: "broken", Lines: []string{"apple:1", "pear"}},
	} {
		x, err := orders.Start(ctx, o)
		if err != nil {
			log.Fatal(err)
		}
		out, err := x.Wait(ctx)
		rs, ierr := orders.Inspect(ctx, x.ID())
		if ierr != nil {
			log.Fatal(ierr)
		}
		fmt.Printf("order %s: run %s\n", o.ID, rs.State)
		for _, t := range rs.Tasks {
			fmt.Printf("  %-8s %-10s %s\n", t.Name, t.State, t.Error)
		}
		if err != nil {
			fmt.Printf("  error: %v\n", err)
			continue
		}
		fmt.Printf("  report: %+v\n", out)
	}
}
