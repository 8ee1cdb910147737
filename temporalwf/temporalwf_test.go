package temporalwf_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/worker"

	"github.com/b3b01171/workflow"
	"github.com/b3b01171/workflow/temporalwf"
)

// queues numbers the task queues, one per test, so that no worker of one
// test takes another's tasks.
var queues atomic.Int32

// setup starts a worker on a task queue of the test's own, with register
// registering the test's workflows, and returns a client and the queue.
func setup(t testing.TB, register ...func(worker.Registry) error) (client.Client, string) {
	t.Helper()
	c := dial(t)
	queue := fmt.Sprintf("%s-%d", strings.ReplaceAll(t.Name(), "/", "-"), queues.Add(1))
	startWorker(t, c, queue, register...)
	return c, queue
}

// startWorker starts a worker polling queue; the test's cleanup stops it.
func startWorker(t testing.TB, c client.Client, queue string, register ...func(worker.Registry) error) worker.Worker {
	t.Helper()
	w := worker.New(c, queue, worker.Options{})
	for _, r := range register {
		require.NoError(t, r(w))
	}
	require.NoError(t, w.Start())
	var once sync.Once
	t.Cleanup(func() { once.Do(w.Stop) })
	return w
}

func registers[In, Out any](wf *workflow.Workflow[In, Out]) func(worker.Registry) error {
	return func(r worker.Registry) error { return temporalwf.Register(r, wf) }
}

// warmUp runs one workflow on the new server, so that the goroutines it
// starts for its first runs are under way when goleak takes its snapshot.
func warmUp() error {
	c, err := client.Dial(client.Options{HostPort: hostPort, Namespace: namespace, Logger: quiet{}})
	if err != nil {
		return err
	}
	defer c.Close()
	wf := workflow.MustNew[int, int]("warmUp", workflow.Tasks{
		workflow.Task[int, int]{Name: "inc", Handler: func(ctx context.Context, n int) (int, error) { return n + 1, nil }},
	})
	w := worker.New(c, "warmUp", worker.Options{})
	if err := temporalwf.Register(w, wf); err != nil {
		return err
	}
	if err := w.Start(); err != nil {
		return err
	}
	defer w.Stop()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := temporalwf.Run(ctx, c, wf, 1, temporalwf.TaskQueue("warmUp"))
	if err == nil && out != 2 {
		err = fmt.Errorf("warmUp gave %d, not 2", out)
	}
	return err
}

func testContext(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// The README's dataprocessing pipeline (examples/dataprocessing), built
// afresh for each engine: processData fails its first attempt.

type Request struct {
	UserID    string `validate:"required"`
	StartDate string `validate:"required"`
	EndDate   string `validate:"required"`
}

type Record struct {
	Day   string
	Value int
}

type Processed struct {
	Records []Record
	Errors  []string
}

type Result struct {
	ProcessedRecords int
	Errors           []string
}

var errUnknownUser = errors.New("unknown user")

func dataProcessing() *workflow.Workflow[Request, Result] {
	var calls atomic.Int32
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

var goodRequest = Request{UserID: "u-42", StartDate: "2026-11-01", EndDate: "2026-11-03"}

func TestDataProcessingGivesTheSameOutputAsInProcess(t *testing.T) {
	ctx := testContext(t)
	local := dataProcessing()
	want, err := local.Run(ctx, goodRequest)
	require.NoError(t, err)

	wf := dataProcessing()
	c, queue := setup(t, registers(wf))
	got, err := temporalwf.Run(ctx, c, wf, goodRequest, temporalwf.TaskQueue(queue))
	require.NoError(t, err)
	require.Equal(t, want, got)
	require.Equal(t, Result{ProcessedRecords: 2, Errors: []string{"2026-11-02: negative value -1"}}, got)
}

func TestDataProcessingFailsAsInProcess(t *testing.T) {
	ctx := testContext(t)
	local := dataProcessing()
	wf := dataProcessing()
	c, queue := setup(t, registers(wf))
	bad := Request{UserID: "nobody", StartDate: "2026-11-01", EndDate: "2026-11-03"}

	_, lerr := local.Run(ctx, bad, workflow.WithRunID("r-nobody"))
	_, err := temporalwf.Run(ctx, c, wf, bad, temporalwf.TaskQueue(queue), temporalwf.RunID("r-nobody"))
	var lw, tw *workflow.WorkflowError
	require.ErrorAs(t, lerr, &lw)
	require.ErrorAs(t, err, &tw)
	require.Equal(t, lw.Error(), tw.Error())
	require.Equal(t, `workflow "dataProcessing" run r-nobody: task "fetchData" failed: fetching "nobody": unknown user`, tw.Error())
	require.Equal(t, "fetchData", tw.Task)
	require.Equal(t, 1, tw.Attempts, "a Permanent error is attempted once")
	require.Equal(t, lw.Details["error_type"], tw.Details["error_type"])
	require.Equal(t, workflow.StateFailed, tw.Details["state"])

	// An invalid input starts no run, here as in-process.
	_, lerr = local.Run(ctx, Request{UserID: "u-42"}, workflow.WithRunID("r-invalid"))
	_, err = temporalwf.Run(ctx, c, wf, Request{UserID: "u-42"}, temporalwf.TaskQueue(queue), temporalwf.RunID("r-invalid"))
	require.ErrorIs(t, err, workflow.ErrInvalidInput)
	require.Equal(t, lerr.Error(), err.Error())
	require.ErrorAs(t, err, &tw)
	require.Equal(t, map[string]string{"Request.EndDate": "required", "Request.StartDate": "required"}, tw.Details["fields"])
	_, err = temporalwf.Inspect(ctx, c, wf, "r-invalid")
	require.ErrorIs(t, err, workflow.ErrNotFound, "no run was started")
}

func TestFanOutRunsIndependentTasksConcurrentlyAndJoins(t *testing.T) {
	const n = 50
	ctx := testContext(t)
	var in, peak atomic.Int32
	all := make(chan struct{})
	var arrived atomic.Int32
	var mu sync.Mutex
	starts, ends := map[string]time.Time{}, map[string]time.Time{}
	tasks := workflow.Tasks{
		workflow.Task[int, int]{Name: "split", Handler: func(ctx context.Context, k int) (int, error) { return k, nil }},
	}
	var leaves []string
	for i := range n {
		name := fmt.Sprintf("leaf-%02d", i)
		leaves = append(leaves, name)
		tasks = append(tasks, workflow.Task[int, int]{
			Name: name, Dependencies: []string{"split"},
			Handler: func(ctx context.Context, k int) (int, error) {
				mu.Lock()
				starts[name] = time.Now()
				mu.Unlock()
				now := in.Add(1)
				for p := peak.Load(); now > p && !peak.CompareAndSwap(p, now); p = peak.Load() {
				}
				if arrived.Add(1) == n {
					close(all)
				}
				// Wait for every leaf to be under way: with all of them
				// running at once this returns at once; run one after
				// another, the first would never see the last.
				select {
				case <-all:
				case <-time.After(20 * time.Second):
				case <-ctx.Done():
				}
				in.Add(-1)
				mu.Lock()
				ends[name] = time.Now()
				mu.Unlock()
				return k * i, nil
			},
		})
	}
	tasks = append(tasks, workflow.Task[workflow.Inputs, int]{
		Name: "join", Dependencies: leaves,
		Handler: func(ctx context.Context, in workflow.Inputs) (int, error) {
			sum := 0
			for _, l := range leaves {
				v, err := workflow.Get[int](in, l)
				if err != nil {
					return 0, err
				}
				sum += v
			}
			return sum, nil
		},
	})
	wf := workflow.MustNew[int, int]("fanOut", tasks)
	c, queue := setup(t, registers(wf))
	out, err := temporalwf.Run(ctx, c, wf, 2, temporalwf.TaskQueue(queue))
	require.NoError(t, err)
	require.Equal(t, 2*(n-1)*n/2, out, "join read every leaf's output with Get")
	require.EqualValues(t, n, peak.Load(), "all %d leaves were under way at once", n)
	var lastStart, firstEnd time.Time
	for _, l := range leaves {
		if starts[l].After(lastStart) {
			lastStart = starts[l]
		}
		if firstEnd.IsZero() || ends[l].Before(firstEnd) {
			firstEnd = ends[l]
		}
	}
	require.True(t, lastStart.Before(firstEnd), "the last leaf started (%v) before the first ended (%v)", lastStart, firstEnd)
}
