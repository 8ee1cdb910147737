// Command example shows a run surviving the death of its process. It
// processes an order in five steps kept in a SQLite file; on a fresh start
// it kills itself with SIGKILL in the middle of the third step. Run it
// again: it finds the run the killed process left, waits for that
// process's lease to expire, and finishes the run where it stopped, under
// the same run ID, without running the first two steps again.
//
//	go run ./example          # starts a run, killed half way
//	go run ./example          # resumes it, prints the result and the history
//
// Flags: -db sets the file (a file in the temporary directory by default),
// -fresh deletes it first, -crash=false lets a new run finish.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	"github.com/b3b01171/workflow"
	"github.com/b3b01171/workflow/sqlitestore"
)

// Order is the run's input.
type Order struct {
	ID    string  `json:"id"`
	Items []Item  `json:"items"`
	Email string  `json:"email"`
	Total float64 `json:"total,omitempty"`
}

// Item is a line of an order.
type Item struct {
	SKU   string  `json:"sku"`
	Qty   int     `json:"qty"`
	Price float64 `json:"price"`
}

// Receipt is the run's output.
type Receipt struct {
	OrderID  string  `json:"order_id"`
	Charged  float64 `json:"charged"`
	Payment  string  `json:"payment"`
	Tracking string  `json:"tracking"`
	Emailed  string  `json:"emailed"`
}

// leaseTTL is short, so that the second invocation waits one second, not
// the default thirty, before it takes over the killed process's run.
const leaseTTL = time.Second

// stepTime is how long each step takes, so that one can watch it go.
const stepTime = 300 * time.Millisecond

func main() {
	db := flag.String("db", filepath.Join(os.TempDir(), "workflow-demo.db"), "the SQLite `file` that keeps the runs")
	fresh := flag.Bool("fresh", false, "delete the file first")
	crash := flag.Bool("crash", true, "on a new run, kill the process with SIGKILL half way (in step 3, charge)")
	flag.Usage = func() {
		fmt.Fprintf(flag.CommandLine.Output(), `Usage: example [flags]

Processes an order in five steps (validate, reserve, charge, ship, email),
kept in a SQLite file. A new run kills its own process half way; run the
command again and it recovers the run, resumes it at the step that was
running, and prints the result and the run's history.

Flags:
`)
		flag.PrintDefaults()
	}
	flag.Parse()
	if err := run(*db, *fresh, *crash); err != nil {
		fmt.Fprintln(os.Stderr, "example:", err)
		os.Exit(1)
	}
}

func run(path string, fresh, crash bool) error {
	if fresh {
		for _, p := range []string{path, path + "-wal", path + "-shm"} {
			if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
				return err
			}
		}
	}
	fmt.Printf("store: %s (pid %d)\n", path, os.Getpid())
	store, err := sqlitestore.Open(path, sqlitestore.LeaseTTL(leaseTTL))
	if err != nil {
		return err
	}
	defer store.Close()

	var crashing atomic.Bool // set for a new run only, before it starts
	wf, err := orders(store, crashing.Load)
	if err != nil {
		return err
	}
	ctx := context.Background()

	execs, err := recoverRuns(ctx, wf)
	if err != nil {
		return err
	}
	if len(execs) == 0 {
		order := Order{ID: "order-1042", Email: "ada@example.com", Items: []Item{
			{SKU: "keyboard", Qty: 1, Price: 89.90},
			{SKU: "usb-cable", Qty: 3, Price: 4.50},
		}}
		crashing.Store(crash)
		x, err := wf.Start(ctx, order)
		if err != nil {
			return err
		}
		fmt.Printf("started run %s\n", x.ID())
		execs = append(execs, x)
	}
	for _, x := range execs {
		receipt, err := x.Wait(ctx)
		if err != nil {
			return err
		}
		fmt.Printf("run %s succeeded: %+v\n", x.ID(), receipt)
		rs, err := wf.Inspect(ctx, x.ID())
		if err != nil {
			return err
		}
		printHistory(rs)
	}
	return nil
}

// recoverRuns takes over the runs a killed process left, if the file
// holds any: it calls Recover until the process's lease has expired. It
// returns none when there is nothing to recover.
func recoverRuns(ctx context.Context, wf *workflow.Workflow[Order, Receipt]) ([]*workflow.Execution[Receipt], error) {
	runs, err := wf.History(ctx, workflow.HistorySummary())
	if err != nil {
		return nil, err
	}
	var left *workflow.RunStatus
	for i := range runs {
		if !runs[i].State.Ended() {
			left = &runs[i]
			break
		}
	}
	if left == nil {
		return nil, nil
	}
	fmt.Printf("found run %s %s, left by a stopped process; waiting for its lease (%v) to expire\n", left.RunID, left.State, leaseTTL)
	deadline := time.Now().Add(3 * leaseTTL)
	for {
		execs, err := wf.Recover(ctx)
		if err != nil {
			return nil, err
		}
		if len(execs) > 0 {
			for _, x := range execs {
				fmt.Printf("recovered run %s: resuming it\n", x.ID())
			}
			return execs, nil
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("run %s is still owned by a live process (another invocation running?)", left.RunID)
		}
		time.Sleep(leaseTTL / 10)
	}
}

// orders is the workflow: validate → reserve → charge → ship → email.
// crash says whether charge kills the process.
func orders(store workflow.Store, crash func() bool) (*workflow.Workflow[Order, Receipt], error) {
	type charged struct {
		Order   Order  `json:"order"`
		Payment string `json:"payment"`
	}
	type shipped struct {
		charged
		Tracking string `json:"tracking"`
	}
	return workflow.New[Order, Receipt]("orders", workflow.Tasks{
		workflow.Task[Order, Order]{Name: "validate", Handler: func(ctx context.Context, o Order) (Order, error) {
			step(ctx, "checking %d items", len(o.Items))
			if len(o.Items) == 0 {
				return o, workflow.Permanent(errors.New("an order needs items"))
			}
			o.Total = 0
			for _, it := range o.Items {
				o.Total += float64(it.Qty) * it.Price
			}
			return o, nil
		}},
		workflow.Task[Order, Order]{Name: "reserve", Dependencies: []string{"validate"}, Handler: func(ctx context.Context, o Order) (Order, error) {
			step(ctx, "reserving stock for %s", o.ID)
			return o, nil
		}},
		workflow.Task[Order, charged]{Name: "charge", Dependencies: []string{"reserve"}, Handler: func(ctx context.Context, o Order) (charged, error) {
			info, _ := workflow.Info(ctx)
			key := info.RunID + "/" + info.Task // the payment provider sees this key twice and charges once
			step(ctx, "charging %.2f (idempotency key %s)", o.Total, key)
			if crash() {
				fmt.Println("killed half way; run me again to resume")
				p, _ := os.FindProcess(os.Getpid())
				p.Kill() // SIGKILL: no deferred call, no Close
				select {}
			}
			return charged{Order: o, Payment: "pay-" + strings.ReplaceAll(key, "/", "-")}, nil
		}},
		workflow.Task[charged, shipped]{Name: "ship", Dependencies: []string{"charge"}, Handler: func(ctx context.Context, c charged) (shipped, error) {
			step(ctx, "shipping %s", c.Order.ID)
			return shipped{charged: c, Tracking: "TRK-" + strings.ToUpper(c.Order.ID)}, nil
		}},
		workflow.Task[shipped, Receipt]{Name: "email", Dependencies: []string{"ship"}, Handler: func(ctx context.Context, s shipped) (Receipt, error) {
			step(ctx, "emailing the receipt to %s", s.Order.Email)
			return Receipt{OrderID: s.Order.ID, Charged: s.Order.Total, Payment: s.Payment, Tracking: s.Tracking, Emailed: s.Order.Email}, nil
		}},
	}, workflow.WithStore(store))
}

// step prints what a step does, and takes stepTime doing it.
func step(ctx context.Context, format string, args ...any) {
	info, _ := workflow.Info(ctx)
	fmt.Printf("  %-8s attempt %d: %s\n", info.Task, info.Attempt, fmt.Sprintf(format, args...))
	t := time.NewTimer(stepTime)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}

// printHistory prints the run's events, times from its start.
func printHistory(rs workflow.RunStatus) {
	fmt.Printf("history of run %s (%s):\n", rs.RunID, rs.State)
	for _, ev := range rs.Events {
		line := fmt.Sprintf("  %+8.3fs  %-16s", ev.Time.Sub(rs.StartedAt).Seconds(), ev.Type)
		if ev.Task != "" {
			line += fmt.Sprintf(" %-8s attempt %d", ev.Task, ev.Attempt)
		}
		if ev.Error != "" {
			line += "  (" + ev.Error + ")"
		}
		fmt.Println(strings.TrimRight(line, " "))
	}
	for _, t := range rs.Tasks {
		fmt.Printf("  task %-8s %-9s attempts %d\n", t.Name, t.State, t.Attempts)
	}
}
