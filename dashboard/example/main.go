// Command example serves the dashboard over three workflows that run on a
// schedule, some of their runs failing and retrying, so that every page
// has something to show:
//
//	cd dashboard && go run ./example            # http://127.0.0.1:8080/workflows/
//	cd dashboard && go run ./example -demo      # serve, read each page once, exit
//
// Actions (run now, cancel, resume) are allowed: the server listens on the
// loopback address only.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"time"

	"github.com/b3b01171/workflow"
	"github.com/b3b01171/workflow/dashboard"
)

type Order struct {
	ID    string `json:"id" validate:"required"`
	Items int    `json:"items" validate:"gte=1,lte=100"`
}

type Receipt struct {
	OrderID string `json:"order_id"`
	Total   int    `json:"total"`
}

// pause sleeps for about d, or until ctx ends.
func pause(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d/2 + rand.N(d))
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

func orders() (*workflow.Workflow[Order, Receipt], error) {
	return workflow.New[Order, Receipt]("orders", workflow.Tasks{
		workflow.Task[Order, Order]{Name: "validate", Handler: func(ctx context.Context, o Order) (Order, error) {
			return o, pause(ctx, 200*time.Millisecond)
		}},
		workflow.Task[Order, int]{Name: "reserve stock", Dependencies: []string{"validate"},
			Retry: workflow.RetryPolicy{Attempts: 3, Delay: 300 * time.Millisecond, Backoff: 2},
			Handler: func(ctx context.Context, o Order) (int, error) {
				if err := pause(ctx, 400*time.Millisecond); err != nil {
					return 0, err
				}
				if rand.N(3) == 0 {
					return 0, errors.New("warehouse busy, try again")
				}
				return o.Items, nil
			}},
		workflow.Task[int, Receipt]{Name: "charge card", Dependencies: []string{"reserve stock"}, Timeout: 3 * time.Second,
			Handler: func(ctx context.Context, items int) (Receipt, error) {
				info, _ := workflow.Info(ctx)
				return Receipt{OrderID: info.RunID, Total: 12 * items}, pause(ctx, 500*time.Millisecond)
			}},
	}, workflow.WithSchedule(workflow.Schedule{Cron: "@every 10s"}),
		workflow.WithScheduleInput(func(ctx context.Context, fired time.Time) (Order, error) {
			return Order{ID: fired.Format("o-150405"), Items: 1 + rand.N(5)}, nil
		}))
}

func etl() (*workflow.Workflow[struct{}, int], error) {
	extract := func(source string) workflow.Task[struct{}, []int] {
		return workflow.Task[struct{}, []int]{Name: "extract " + source, Handler: func(ctx context.Context, _ struct{}) ([]int, error) {
			return []int{1, 2, 3}, pause(ctx, time.Second)
		}}
	}
	return workflow.New[struct{}, int]("etl", workflow.Tasks{
		extract("users"), extract("orders"), extract("events"),
		workflow.Task[workflow.Inputs, int]{Name: "join", Dependencies: []string{"extract users", "extract orders", "extract events"},
			Retry: workflow.RetryPolicy{Attempts: 2, Delay: 500 * time.Millisecond},
			Handler: func(ctx context.Context, in workflow.Inputs) (int, error) {
				if err := pause(ctx, 800*time.Millisecond); err != nil {
					return 0, err
				}
				if rand.N(4) == 0 {
					return 0, errors.New("schema drift in <orders>: column \"total\" is missing")
				}
				return 3, nil
			}},
		workflow.Task[int, int]{Name: "load", Dependencies: []string{"join"}, Handler: func(ctx context.Context, n int) (int, error) {
			return n, pause(ctx, 600*time.Millisecond)
		}},
		workflow.Task[int, int]{Name: "refresh dashboards", Dependencies: []string{"load"}, Handler: func(ctx context.Context, n int) (int, error) {
			return n, pause(ctx, 300*time.Millisecond)
		}},
	}, workflow.WithSchedule(workflow.Schedule{Cron: "@every 15s"}))
}

func report() (*workflow.Workflow[string, string], error) {
	return workflow.New[string, string]("nightly report", workflow.Tasks{
		workflow.Task[string, string]{Name: "render", Timeout: 2 * time.Second, Handler: func(ctx context.Context, day string) (string, error) {
			if err := pause(ctx, 1500*time.Millisecond); err != nil {
				return "", err
			}
			return "report " + day, nil
		}},
		workflow.Task[string, string]{Name: "email", Dependencies: []string{"render"}, Handler: func(ctx context.Context, r string) (string, error) {
			return r + " sent", pause(ctx, 200*time.Millisecond)
		}},
	}, workflow.WithSchedule(workflow.Schedule{Cron: "0 2 * * *", Timezone: "Europe/Paris"}))
}

func main() {
	addr := flag.String("addr", "127.0.0.1:8080", "address to serve on")
	demo := flag.Bool("demo", false, "serve on a free port, read each page once, and exit")
	flag.Parse()
	if err := run(*addr, *demo); err != nil {
		log.Fatal(err)
	}
}

func run(addr string, demo bool) error {
	o, err := orders()
	if err != nil {
		return err
	}
	e, err := etl()
	if err != nil {
		return err
	}
	r, err := report()
	if err != nil {
		return err
	}
	s := workflow.NewScheduler()
	for _, wf := range []workflow.ScheduledWorkflow{o, e, r} {
		if err := s.Register(wf); err != nil {
			return err
		}
	}
	s.Start()
	defer s.Stop(context.Background())

	// A few runs at once, so that the pages are not empty.
	ctx := context.Background()
	for i := range 3 {
		if _, err := o.Start(ctx, Order{ID: fmt.Sprint("o-", i), Items: 1 + i}); err != nil {
			return err
		}
	}
	if _, err := e.Start(ctx, struct{}{}); err != nil {
		return err
	}
	if _, err := r.Start(ctx, time.Now().Format(time.DateOnly)); err != nil {
		return err
	}

	h, err := dashboard.New(
		dashboard.Add(o), dashboard.Add(e), dashboard.Add(r),
		dashboard.WithScheduler(s),
		dashboard.AllowActions(func(*http.Request) bool { return true }), // loopback only
	)
	if err != nil {
		return err
	}
	mux := http.NewServeMux()
	mux.Handle("/workflows/", http.StripPrefix("/workflows", h))
	mux.Handle("/{$}", http.RedirectHandler("/workflows/", http.StatusFound))

	if demo {
		addr = "127.0.0.1:0"
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	url := "http://" + ln.Addr().String() + "/workflows/"
	fmt.Println("dashboard on", url)

	if demo {
		time.Sleep(3 * time.Second) // let the runs get somewhere
		for _, p := range []string{"", "workflows/orders", "workflows/etl", "api/workflows"} {
			resp, err := http.Get(url + p)
			if err != nil {
				return err
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			fmt.Printf("GET %s: %s, %d bytes\n", "/workflows/"+p, resp.Status, len(body))
			if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), "orders") {
				return fmt.Errorf("GET %s: %s", p, resp.Status)
			}
		}
		return srv.Shutdown(context.Background())
	}

	stop := make(chan os.Signal, 1)
	signal.Notify(stop, os.Interrupt)
	select {
	case <-stop:
	case err := <-served:
		return err
	}
	return srv.Shutdown(context.Background())
}
