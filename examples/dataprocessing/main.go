// Command dataprocessing runs the four-task pipeline of the README:
// validateInput → fetchData → processData → saveResults. It prints the
// result of a good run, the status of each task and the history, then a run
// that fails, with its WorkflowError.
package main

import (
	"context"
	"errors"
	"fmt"
	"log"
	"sync/atomic"
	"time"

	"github.com/b3b01171/workflow"
)

// Request is the pipeline's input.
type Request struct {
	UserID    string `validate:"required"`
	StartDate string `validate:"required"`
	EndDate   string `validate:"required"`
}

// Record is one row fetched for the user.
type Record struct {
	Day   string
	Value int
}

// Processed is what processData hands to saveResults.
type Processed struct {
	Records []Record
	Errors  []string
}

// Result is the pipeline's output.
type Result struct {
	ProcessedRecords int
	Errors           []string
}

var errUnknownUser = errors.New("unknown user")

func pipeline() *workflow.Workflow[Request, Result] {
	var calls atomic.Int32 // processData fails once, to show a retry
	return workflow.MustNew[Request, Result]("dataProcessing", workflow.Tasks{
		workflow.Task[Request, Request]{
			Name: "validateInput",
			Handler: func(ctx context.Context, r Request) (Request, error) {
				if r.EndDate < r.StartDate {
					return r, workflow.Permanent(fmt.Errorf("end date %s is before start date %s", r.EndDate, r.StartDate))
				}
				return r, nil
			},
		},
		workflow.Task[Request, []Record]{
			Name:         "fetchData",
			Dependencies: []string{"validateInput"},
			Timeout:      2 * time.Second,
			Handler: func(ctx context.Context, r Request) ([]Record, error) {
				if r.UserID == "nobody" {
					return nil, workflow.Permanent(fmt.Errorf("fetching %q: %w", r.UserID, errUnknownUser))
				}
				return []Record{{"2026-11-01", 3}, {"2026-11-02", -1}, {"2026-11-03", 7}}, nil
			},
		},
		workflow.Task[[]Record, Processed]{
			Name:         "processData",
			Dependencies: []string{"fetchData"},
			Retry:        workflow.RetryPolicy{Attempts: 3, Delay: 50 * time.Millisecond, Backoff: 2},
			Handler: func(ctx context.Context, recs []Record) (Processed, error) {
				if calls.Add(1) == 1 {
					return Processed{}, errors.New("worker busy, try again")
				}
				var p Processed
				for _, r := range recs {
					if r.Value < 0 {
						p.Errors = append(p.Errors, fmt.Sprintf("%s: negative value %d", r.Day, r.Value))
						continue
					}
					p.Records = append(p.Records, r)
				}
				return p, nil
			},
		},
		workflow.Task[Processed, Result]{
			Name:         "saveResults",
			Dependencies: []string{"processData"},
			Handler: func(ctx context.Context, p Processed) (Result, error) {
				return Result{ProcessedRecords: len(p.Records), Errors: p.Errors}, nil
			},
		},
	})
}

func main() {
	ctx := context.Background()
	wf := pipeline()

	out, err := wf.Run(ctx, Request{UserID: "u-42", StartDate: "2026-11-01", EndDate: "2026-11-03"})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("result: %d records processed, errors: %v\n\n", out.ProcessedRecords, out.Errors)

	status, err := wf.Status(ctx)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("run %s %s\n", status.RunID, status.State)
	for _, t := range status.Tasks {
		fmt.Printf("  %-14s %-10s attempts=%d %s\n", t.Name, t.State, t.Attempts, t.Error)
	}

	// A run that fails: fetchData does not know the user.
	_, err = wf.Run(ctx, Request{UserID: "nobody", StartDate: "2026-11-01", EndDate: "2026-11-03"})
	var werr *workflow.WorkflowError
	if !errors.As(err, &werr) {
		log.Fatalf("expected a WorkflowError, got %v", err)
	}
	fmt.Printf("\nfailed run %s: task=%q attempts=%d error_type=%v unknown user=%v\n  %v\n",
		werr.RunID, werr.Task, werr.Attempts, werr.Details["error_type"], errors.Is(err, errUnknownUser), err)

	// A run whose input fails validation never starts a task.
	_, err = wf.Run(ctx, Request{UserID: "u-42"})
	if errors.As(err, &werr) {
		fmt.Printf("\ninvalid input: %v (fields %v)\n  %v\n", errors.Is(err, workflow.ErrInvalidInput), werr.Details["fields"], err)
	}

	history, err := wf.History(ctx)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("\nhistory (newest first):\n")
	for _, rs := range history {
		fmt.Printf("  %s %-9s %d events", rs.RunID, rs.State, len(rs.Events))
		if rs.Error != "" {
			fmt.Printf("  error: %s", rs.Error) // one line, whole
		}
		fmt.Println()
	}
	fmt.Println("\nevents of the first run:")
	for _, ev := range history[len(history)-1].Events {
		fmt.Printf("  %-15s %-14s attempt=%d %s\n", ev.Type, ev.Task, ev.Attempt, ev.Error)
	}
}
