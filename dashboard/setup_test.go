package dashboard_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/b3b01171/workflow"
	"github.com/b3b01171/workflow/dashboard"
)

// TestMain fails the package's tests if any goroutine outlives them.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// The payloads a run page must show as text, never run.
const (
	xssScript = `<script>alert(1)</script>`
	xssImg    = `"><img src=x onerror=alert(1)>`
)

type Order struct {
	ID    string `json:"id" validate:"required"`
	Items int    `json:"items" validate:"gte=1"`
}

type Receipt struct {
	Order Order  `json:"order"`
	Total int    `json:"total"`
	Note  string `json:"note"`
}

// bundle is what setup builds: three workflows, a handler over them, and
// the switches the tests turn.
type bundle struct {
	// orders succeeds: check → price.
	orders *workflow.Workflow[Order, Receipt]
	// flaky fails in "charge <card>" with both XSS payloads in its error,
	// after 2 attempts, while broken is set.
	flaky  *workflow.Workflow[int, int]
	broken atomic.Bool
	// slow blocks in "wait" until the run is cancelled or release is
	// closed.
	slow    *workflow.Workflow[int, int]
	release func()
	allow   atomic.Bool // what AllowActions answers
	handler http.Handler
}

func setup(t *testing.T, opts ...dashboard.Option) *bundle {
	t.Helper()
	b := &bundle{}
	b.broken.Store(true)
	var err error
	b.orders, err = workflow.New[Order, Receipt]("orders", workflow.Tasks{
		workflow.Task[Order, Order]{Name: "check", Handler: func(ctx context.Context, o Order) (Order, error) { return o, nil }},
		workflow.Task[Order, Receipt]{Name: "price", Dependencies: []string{"check"},
			Handler: func(ctx context.Context, o Order) (Receipt, error) {
				return Receipt{Order: o, Total: 10 * o.Items, Note: xssScript}, nil
			}},
	})
	require.NoError(t, err)
	b.flaky, err = workflow.New[int, int]("flaky", workflow.Tasks{
		workflow.Task[int, int]{Name: "load", Handler: func(ctx context.Context, n int) (int, error) { return n, nil }},
		workflow.Task[int, int]{Name: "charge <card>", Dependencies: []string{"load"},
			Retry: workflow.RetryPolicy{Attempts: 2, Delay: time.Millisecond},
			Handler: func(ctx context.Context, n int) (int, error) {
				if b.broken.Load() {
					return 0, errors.New(xssScript + " " + xssImg)
				}
				return n + 1, nil
			}},
		workflow.Task[int, int]{Name: "notify", Dependencies: []string{"charge <card>"}, Handler: func(ctx context.Context, n int) (int, error) { return n, nil }},
	})
	require.NoError(t, err)
	released := make(chan struct{})
	var once sync.Once
	b.release = func() { once.Do(func() { close(released) }) }
	b.slow, err = workflow.New[int, int]("slow", workflow.Tasks{
		workflow.Task[int, int]{Name: "wait", Handler: func(ctx context.Context, n int) (int, error) {
			select {
			case <-ctx.Done():
				return 0, ctx.Err()
			case <-released:
				return n, nil
			}
		}},
	})
	require.NoError(t, err)
	t.Cleanup(func() {
		b.release()
		waitIdle(t, b.slow)
		waitIdle(t, b.flaky)
	})

	all := append([]dashboard.Option{
		dashboard.Add(b.orders), dashboard.Add(b.flaky), dashboard.Add(b.slow),
		dashboard.AllowActions(func(*http.Request) bool { return b.allow.Load() }),
	}, opts...)
	b.handler, err = dashboard.New(all...)
	require.NoError(t, err)
	return b
}

// waitIdle waits until no run of wf is under way.
func waitIdle[In, Out any](t *testing.T, wf *workflow.Workflow[In, Out]) {
	t.Helper()
	require.Eventually(t, func() bool {
		runs, err := wf.History(context.Background(), workflow.HistoryState(workflow.StateRunning), workflow.HistorySummary())
		if err != nil || len(runs) > 0 {
			return false
		}
		runs, err = wf.History(context.Background(), workflow.HistoryState(workflow.StatePending), workflow.HistorySummary())
		return err == nil && len(runs) == 0
	}, 10*time.Second, 5*time.Millisecond)
}

// waitState waits until run id of wf is in state want.
func waitState[In, Out any](t *testing.T, wf *workflow.Workflow[In, Out], id string, want workflow.State) {
	t.Helper()
	require.Eventually(t, func() bool {
		rs, err := wf.Inspect(context.Background(), id)
		return err == nil && rs.State == want
	}, 10*time.Second, 2*time.Millisecond, "run %s never became %s", id, want)
}

// runs starts the runs the tests look at: orders succeeded, flaky failed,
// slow under way. It returns their IDs.
func (b *bundle) runs(t *testing.T) (ordersID, flakyID, slowID string) {
	t.Helper()
	ctx := context.Background()
	_, err := b.orders.Run(ctx, Order{ID: "o-1", Items: 2})
	require.NoError(t, err)
	_, err = b.flaky.Run(ctx, 1)
	require.Error(t, err)
	x, err := b.slow.Start(ctx, 5)
	require.NoError(t, err)
	require.Eventually(t, func() bool { // its task under way, not only the run
		rs, err := b.slow.Inspect(ctx, x.ID())
		task, _ := rs.Task("wait")
		return err == nil && task.State == workflow.StateRunning
	}, 10*time.Second, 2*time.Millisecond, "the slow run's task never started")
	o, err := b.orders.Status(ctx)
	require.NoError(t, err)
	f, err := b.flaky.Status(ctx)
	require.NoError(t, err)
	return o.RunID, f.RunID, x.ID()
}

// response is what do got back.
type response struct {
	Code   int
	Header http.Header
	Body   string
}

// do sends a request to h and returns the response.
func do(t *testing.T, h http.Handler, method, target string, form url.Values, header ...string) response {
	t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req := httptest.NewRequest(method, target, body)
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return response{Code: rec.Code, Header: rec.Header(), Body: rec.Body.String()}
}

func get(t *testing.T, h http.Handler, target string) response {
	t.Helper()
	return do(t, h, http.MethodGet, target, nil)
}

func post(t *testing.T, h http.Handler, target string, form url.Values) response {
	t.Helper()
	if form == nil {
		form = url.Values{}
	}
	return do(t, h, http.MethodPost, target, form)
}
