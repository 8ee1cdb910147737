package temporalwf_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nexus-rpc/sdk-go/nexus"
	"github.com/stretchr/testify/require"
	enumspb "go.temporal.io/api/enums/v1"
	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/worker"
	tworkflow "go.temporal.io/sdk/workflow"

	"github.com/b3b01171/workflow"
	"github.com/b3b01171/workflow/temporalwf"
)

func TestAReplacedWorkerFinishesTheRunWithoutRedoingWhatSucceeded(t *testing.T) {
	ctx := testContext(t)
	var first, last atomic.Int32
	var attempts []int // of slow, as Info numbers them; written by one attempt at a time
	var slowCalls atomic.Int32
	underway := make(chan struct{})
	wf := workflow.MustNew[int, int]("durable", workflow.Tasks{
		workflow.Task[int, int]{Name: "first", Handler: func(ctx context.Context, n int) (int, error) {
			first.Add(1)
			return n + 1, nil
		}},
		workflow.Task[int, int]{
			Name: "slow", Dependencies: []string{"first"}, Timeout: 30 * time.Second,
			// In-process, this policy would not retry a cancelled
			// handler; a worker's shutdown must not count as that.
			Retry: workflow.RetryPolicy{Attempts: 3, Delay: 10 * time.Millisecond,
				RetryIf: func(err error) bool { return !errors.Is(err, context.Canceled) }},
			Handler: func(ctx context.Context, n int) (int, error) {
				info, _ := workflow.Info(ctx)
				attempts = append(attempts, info.Attempt)
				if slowCalls.Add(1) == 1 {
					close(underway)
					<-ctx.Done() // until the worker stops
					return 0, ctx.Err()
				}
				return n * 10, nil
			},
		},
		workflow.Task[int, int]{Name: "last", Dependencies: []string{"slow"}, Handler: func(ctx context.Context, n int) (int, error) {
			last.Add(1)
			return n + 1, nil
		}},
	})
	c := dial(t)
	queue := "durable"
	old := startWorker(t, c, queue, registers(wf))
	x, err := temporalwf.Start(ctx, c, wf, 1, temporalwf.TaskQueue(queue), temporalwf.RunID("durable-1"))
	require.NoError(t, err)
	<-underway
	old.Stop() // mid-run: slow's first attempt is cut short

	// A new worker, as another process would start it, with the same
	// definition registered.
	startWorker(t, c, queue, registers(wf))
	out, err := x.Wait(ctx)
	require.NoError(t, err)
	require.Equal(t, (1+1)*10+1, out)
	require.EqualValues(t, 1, first.Load(), "a task that had succeeded does not run again")
	require.EqualValues(t, 1, last.Load())
	require.Equal(t, []int{1, 2}, attempts, "the attempt lost with the old worker counts as one")

	rs, err := temporalwf.Inspect(ctx, c, wf, "durable-1")
	require.NoError(t, err)
	slow, _ := rs.Task("slow")
	require.Equal(t, 2, slow.Attempts)
	require.Equal(t, workflow.StateSucceeded, slow.State)
	f, _ := rs.Task("first")
	require.Equal(t, 1, f.Attempts)
}

// replayRegistry lets Register register the workflow with a replayer,
// which has no use for activities.
type replayRegistry struct{ worker.WorkflowReplayer }

func (replayRegistry) RegisterActivity(any)                                         {}
func (replayRegistry) RegisterActivityWithOptions(any, activity.RegisterOptions)    {}
func (replayRegistry) RegisterDynamicActivity(any, activity.DynamicRegisterOptions) {}
func (replayRegistry) RegisterNexusService(*nexus.Service)                          {}

func TestReplayingRecordedHistoriesIsDeterministic(t *testing.T) {
	ctx := testContext(t)
	wf := dataProcessing()
	fan := workflow.MustNew[int, int]("replayFan", workflow.Tasks{
		workflow.Task[int, int]{Name: "a", Handler: func(ctx context.Context, n int) (int, error) { return n, nil }},
		workflow.Task[int, int]{Name: "b", Dependencies: []string{"a"}, Handler: func(ctx context.Context, n int) (int, error) { return n + 1, nil }},
		workflow.Task[int, int]{Name: "c", Dependencies: []string{"a"}, Handler: func(ctx context.Context, n int) (int, error) { return n + 2, nil }},
		workflow.Task[int, int]{Name: "d", Dependencies: []string{"a"}, Handler: func(ctx context.Context, n int) (int, error) {
			return 0, workflow.Permanent(errors.New("d is broken"))
		}},
		workflow.Task[workflow.Inputs, int]{Name: "e", Dependencies: []string{"b", "c", "d"}, Handler: func(ctx context.Context, in workflow.Inputs) (int, error) {
			return 0, nil
		}},
	})
	ok := workflow.MustNew[int, int]("replayOK", workflow.Tasks{
		workflow.Task[int, int]{Name: "a", Handler: func(ctx context.Context, n int) (int, error) { return n, nil }},
		workflow.Task[int, int]{Name: "b", Dependencies: []string{"a"}, Handler: func(ctx context.Context, n int) (int, error) { return n + 1, nil }},
		workflow.Task[int, int]{Name: "c", Dependencies: []string{"a"}, Handler: func(ctx context.Context, n int) (int, error) { return n + 2, nil }},
		workflow.Task[workflow.Inputs, int]{Name: "d", Dependencies: []string{"b", "c"}, Handler: func(ctx context.Context, in workflow.Inputs) (int, error) {
			b, err := workflow.Get[int](in, "b")
			return b * 2, err
		}},
	})
	rules := chain("replayRules")
	sq := newSquares("replayMap")
	sub := order(pricing())
	c, queue := setup(t, registers(wf), registers(fan), registers(ok), registers(rules), registers(sq.wf), registers(sub))
	q := temporalwf.TaskQueue(queue)
	_, err := temporalwf.Run(ctx, c, wf, goodRequest, q, temporalwf.RunID("replay-dp"))
	require.NoError(t, err)
	_, err = temporalwf.Run(ctx, c, fan, 1, q, temporalwf.RunID("replay-fan"))
	require.Error(t, err)
	_, err = temporalwf.Run(ctx, c, ok, 1, q, temporalwf.RunID("replay-ok"))
	require.NoError(t, err)
	_, err = temporalwf.Run(ctx, c, rules, 1, q, temporalwf.RunID("replay-rules"))
	require.Error(t, err, "load fails; rules run and skip the rest")
	_, err = temporalwf.Run(ctx, c, sq.wf, 7, q, temporalwf.RunID("replay-map"))
	require.NoError(t, err)
	_, err = temporalwf.Run(ctx, c, sub, 2, q, temporalwf.RunID("replay-sub"))
	require.NoError(t, err)

	replayer := worker.NewWorkflowReplayer()
	for _, r := range []func(worker.Registry) error{registers(wf), registers(fan), registers(ok), registers(rules), registers(sq.wf), registers(sub)} {
		require.NoError(t, r(replayRegistry{replayer}))
	}
	for _, id := range []string{"replay-dp", "replay-fan", "replay-ok", "replay-rules", "replay-map", "replay-sub", "replay-sub.price"} {
		h := history(t, c, id)
		require.NotEmpty(t, h.Events)
		// With the run's own ID, as a worker replays it: a Sub's child
		// workflow ID is made from it.
		require.NoError(t, replayer.ReplayWorkflowHistoryWithOptions(quiet{}, h, worker.ReplayWorkflowHistoryOptions{
			OriginalExecution: tworkflow.Execution{ID: id}}), id)
	}

	// A definition that changed its graph does not replay: the replayer
	// does check the commands.
	changed := workflow.MustNew[int, int]("replayOK", workflow.Tasks{
		workflow.Task[int, int]{Name: "a", Handler: func(ctx context.Context, n int) (int, error) { return n, nil }},
		workflow.Task[int, int]{Name: "d", Dependencies: []string{"a"}, Handler: func(ctx context.Context, n int) (int, error) { return n, nil }},
	})
	other := worker.NewWorkflowReplayer()
	require.NoError(t, temporalwf.Register(replayRegistry{other}, changed))
	require.Error(t, other.ReplayWorkflowHistory(quiet{}, history(t, c, "replay-ok")))
}

// history fetches the recorded history of run id.
func history(t *testing.T, c client.Client, id string) *historypb.History {
	t.Helper()
	h := &historypb.History{}
	it := c.GetWorkflowHistory(context.Background(), id, "", false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	for it.HasNext() {
		ev, err := it.Next()
		require.NoError(t, err)
		h.Events = append(h.Events, ev)
	}
	return h
}
