// Command scheduled runs the nightly cleanup → backup workflow on a
// Scheduler, at midnight UTC, until it is interrupted.
//
// With -demo it fires every two seconds instead, triggers one run by hand,
// and after about five seconds prints the schedule entries, stops the
// scheduler (which waits for the runs under way) and prints the history:
//
//	go run ./examples/scheduled -demo
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/b3b01171/workflow"
)

func main() {
	demo := flag.Bool("demo", false, `fire "@every 2s" for about 5s, then print the entries and the history`)
	flag.Parse()

	logger := slog.New(slog.NewTextHandler(os.Stderr, nil))
	schedule := workflow.Schedule{Cron: "0 0 * * *", Timezone: "UTC"}
	if *demo {
		schedule.Cron = "@every 2s"
	}
	nightly, err := workflow.New[struct{}, struct{}]("ScheduledWorkflow",
		workflow.Tasks{
			workflow.Task[struct{}, struct{}]{Name: "cleanup", Handler: cleanup},
			workflow.Task[struct{}, struct{}]{Name: "backup", Handler: backup, Dependencies: []string{"cleanup"}},
		},
		workflow.WithSchedule(schedule),
	)
	if err != nil {
		log.Fatal(err)
	}

	s := workflow.NewScheduler(workflow.WithSchedulerLogger(logger))
	if err := s.Register(nightly); err != nil {
		log.Fatal(err)
	}
	s.Start()

	ctx, stopSignals := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stopSignals()
	if *demo {
		if _, err := s.Trigger(ctx, "ScheduledWorkflow"); err != nil {
			log.Fatal(err)
		}
		select {
		case <-time.After(5 * time.Second):
		case <-ctx.Done():
		}
	} else {
		fmt.Println("ScheduledWorkflow runs at midnight UTC; press Ctrl-C to stop.")
		<-ctx.Done()
	}

	fmt.Println("Entries:")
	for _, e := range s.Entries() {
		fmt.Printf("  %-18s cron=%q tz=%s prev=%s next=%s\n", e.Workflow, e.Cron, e.Timezone, clock(e.Prev), clock(e.Next))
	}

	// Stop waits for runs under way; after 30s it cancels them.
	stopCtx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := s.Stop(stopCtx); err != nil {
		fmt.Println("stop:", err)
	}

	history, err := nightly.History(context.Background())
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("History (%d runs, newest first):\n", len(history))
	for _, rs := range history {
		var tasks []string
		for _, t := range rs.Tasks {
			tasks = append(tasks, t.Name+"="+string(t.State))
		}
		fmt.Printf("  %s  trigger=%-8s scheduled=%s started=%s state=%s took=%v  %s\n",
			rs.RunID, rs.Trigger, clock(rs.ScheduledAt), clock(rs.StartedAt), rs.State,
			rs.EndedAt.Sub(rs.StartedAt).Round(time.Millisecond), strings.Join(tasks, " "))
	}
}

// cleanup stands for removing yesterday's temporary files.
func cleanup(ctx context.Context, _ struct{}) (struct{}, error) {
	return struct{}{}, work(ctx, 300*time.Millisecond)
}

// backup stands for copying the database somewhere safe.
func backup(ctx context.Context, _ struct{}) (struct{}, error) {
	return struct{}{}, work(ctx, 500*time.Millisecond)
}

// work takes d, or less if ctx ends first.
func work(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}

func clock(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.Format("15:04:05.000 MST")
}
