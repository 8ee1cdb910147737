package temporalwf_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	enumspb "go.temporal.io/api/enums/v1"

	"github.com/b3b01171/workflow"
	"github.com/b3b01171/workflow/temporalwf"
)

// squares is a Map over the list its first task makes from n, at most 3
// items under way: item k gives k*k. Item 5 fails its first attempt
// (Retry allows a second), and the first three items wait for one another,
// so that three are seen under way at once.
type squares struct {
	mu       sync.Mutex
	inflight int
	peak     int
	calls    map[int]int
	full     chan struct{}
	wf       *workflow.Workflow[int, []int]
}

func newSquares(name string) *squares {
	s := &squares{calls: map[int]int{}, full: make(chan struct{})}
	s.wf = workflow.MustNew[int, []int](name, workflow.Tasks{
		workflow.Task[int, []int]{Name: "list", Handler: func(ctx context.Context, n int) ([]int, error) {
			out := make([]int, n)
			for k := range out {
				out[k] = k
			}
			return out, nil
		}},
		workflow.Map[int, int]{Name: "square", Dependencies: []string{"list"}, MaxConcurrency: 3,
			Retry: workflow.RetryPolicy{Attempts: 2, Delay: 10 * time.Millisecond}, Timeout: 30 * time.Second,
			Handler: func(ctx context.Context, k int) (int, error) {
				s.mu.Lock()
				s.calls[k]++
				first := s.calls[k] == 1
				s.inflight++
				s.peak = max(s.peak, s.inflight)
				if s.inflight == 3 {
					select {
					case <-s.full:
					default:
						close(s.full)
					}
				}
				s.mu.Unlock()
				defer func() {
					s.mu.Lock()
					s.inflight--
					s.mu.Unlock()
				}()
				if k < 3 {
					select { // the first three wait until three are under way
					case <-s.full:
					case <-ctx.Done():
						return 0, ctx.Err()
					}
				}
				if k == 5 && first {
					return 0, errors.New("busy")
				}
				return k * k, nil
			}},
	})
	return s
}

func TestMapRunsOneActivityPerItemInOrderWithinMaxConcurrency(t *testing.T) {
	ctx := testContext(t)
	s := newSquares("squares")
	c, queue := setup(t, registers(s.wf))
	q := temporalwf.TaskQueue(queue)

	out, err := temporalwf.Run(ctx, c, s.wf, 20, q, temporalwf.RunID("squares-20"))
	require.NoError(t, err)
	want := make([]int, 20)
	for k := range want {
		want[k] = k * k
	}
	require.Equal(t, want, out, "the outputs in the list's order")
	s.mu.Lock()
	require.Equal(t, 3, s.peak, "three items under way at once, never more (MaxConcurrency)")
	require.Equal(t, 2, s.calls[5], "item 5 retried by its activity's RetryPolicy")
	require.Len(t, s.calls, 20)
	s.mu.Unlock()
	local := newSquares("squares")
	lout, err := local.wf.Run(ctx, 20)
	require.NoError(t, err)
	require.Equal(t, lout, out, "as in-process")

	// Each item is an activity with the Map's Timeout and Retry.
	h := history(t, c, "squares-20")
	items := 0
	for _, ev := range h.Events {
		if ev.GetEventType() != enumspb.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED {
			continue
		}
		a := ev.GetActivityTaskScheduledEventAttributes()
		if a.GetActivityType().GetName() != "squares/square" {
			continue
		}
		require.Equal(t, fmt.Sprintf("square[%d]", items), a.GetActivityId())
		require.Equal(t, 30*time.Second, a.GetStartToCloseTimeout().AsDuration())
		require.EqualValues(t, 2, a.GetRetryPolicy().GetMaximumAttempts())
		items++
	}
	require.Equal(t, 20, items, "one activity per item")

	rs, err := temporalwf.Inspect(ctx, c, s.wf, "squares-20")
	require.NoError(t, err)
	is, ok := rs.Items("square")
	require.True(t, ok)
	require.Equal(t, workflow.ItemsStatus{Total: 20, Done: 20}, is)
	sq, _ := rs.Task("square")
	require.Equal(t, workflow.StateSucceeded, sq.State)
	require.JSONEq(t, "[0,1,4,9,16,25,36,49,64,81,100,121,144,169,196,225,256,289,324,361]", string(sq.Output))

	for _, n := range []int{0, 1} {
		t.Run(fmt.Sprintf("%dItems", n), func(t *testing.T) {
			s.mu.Lock()
			s.full = make(chan struct{})
			close(s.full) // fewer than three: nobody waits
			s.mu.Unlock()
			id := fmt.Sprintf("squares-%d", n)
			out, err := temporalwf.Run(ctx, c, s.wf, n, q, temporalwf.RunID(id))
			require.NoError(t, err)
			require.Equal(t, want[:n], out, "an empty list gives an empty output")
			rs, err := temporalwf.Inspect(ctx, c, s.wf, id)
			require.NoError(t, err)
			require.Equal(t, workflow.StateSucceeded, rs.State)
			sq, _ := rs.Task("square")
			require.Equal(t, workflow.StateSucceeded, sq.State)
			is, _ := rs.Items("square")
			require.Equal(t, workflow.ItemsStatus{Total: n, Done: n}, is)
		})
	}
}

func TestAMapItemFailingForGoodFailsTheTaskAndStartsNoMore(t *testing.T) {
	ctx := testContext(t)
	build := func(started func(int)) *workflow.Workflow[[]int, []int] {
		return workflow.MustNew[[]int, []int]("mapFails", workflow.Tasks{
			workflow.Map[int, int]{Name: "each", MaxConcurrency: 1, Handler: func(ctx context.Context, k int) (int, error) {
				started(k)
				if k == 3 {
					return 0, workflow.Permanent(fmt.Errorf("item %d is broken", k))
				}
				return k, nil
			}},
		})
	}
	var mu sync.Mutex
	var seen []int
	wf := build(func(k int) {
		mu.Lock()
		seen = append(seen, k)
		mu.Unlock()
	})
	local := build(func(int) {})
	c, queue := setup(t, registers(wf))
	list := []int{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}
	_, err := temporalwf.Run(ctx, c, wf, list, temporalwf.TaskQueue(queue), temporalwf.RunID("mapFails-1"))
	_, lerr := local.Run(ctx, list, workflow.WithRunID("mapFails-1"))
	require.Error(t, lerr)
	var werr *workflow.WorkflowError
	require.ErrorAs(t, err, &werr)
	require.Equal(t, "each", werr.Task)
	require.Equal(t, lerr.Error(), err.Error(), "the same error as in-process")
	require.Contains(t, err.Error(), "item 3: item 3 is broken")
	mu.Lock()
	require.Equal(t, []int{0, 1, 2, 3}, seen, "no item starts after one failed for good")
	mu.Unlock()

	rs, err := temporalwf.Inspect(ctx, c, wf, "mapFails-1")
	require.NoError(t, err)
	require.Equal(t, workflow.StateFailed, rs.State)
	is, ok := rs.Items("each")
	require.True(t, ok)
	require.Equal(t, 10, is.Total)
	require.Equal(t, []int{3}, is.Failed)
}

func TestAMapItemFailingForGoodCancelsTheItemsUnderWay(t *testing.T) {
	ctx := testContext(t)
	var mu sync.Mutex
	started, cancelled := map[int]bool{}, map[int]bool{}
	wf := workflow.MustNew[[]int, []int]("mapCancels", workflow.Tasks{
		workflow.Map[int, int]{Name: "each", Handler: func(ctx context.Context, k int) (int, error) {
			mu.Lock()
			started[k] = true
			all := len(started) == 5
			mu.Unlock()
			if k == 3 {
				for !all { // fail once every item is under way
					select {
					case <-ctx.Done():
						return 0, ctx.Err()
					case <-time.After(10 * time.Millisecond):
					}
					mu.Lock()
					all = len(started) == 5
					mu.Unlock()
				}
				return 0, workflow.Permanent(errors.New("broken"))
			}
			<-ctx.Done()
			mu.Lock()
			cancelled[k] = true
			mu.Unlock()
			return 0, ctx.Err()
		}},
	})
	c, queue := setup(t, registers(wf))
	_, err := temporalwf.Run(ctx, c, wf, []int{0, 1, 2, 3, 4}, temporalwf.TaskQueue(queue), temporalwf.RunID("mapCancels-1"))
	require.ErrorContains(t, err, `task "each" failed: item 3: broken`)
	require.Eventually(t, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(cancelled) == 4
	}, 30*time.Second, 20*time.Millisecond, "the other items' contexts end: Temporal cancelled their activities")
}

func TestAMapUnderWayIsCancelledByAFailureElsewhereOrCancel(t *testing.T) {
	ctx := testContext(t)
	var mu sync.Mutex
	started := map[string]int{}
	allStarted := func(run string) bool {
		mu.Lock()
		defer mu.Unlock()
		return started[run] == 3
	}
	wf := workflow.MustNew[bool, int]("mapCancelled", workflow.Tasks{
		workflow.Task[bool, []int]{Name: "list", Handler: func(ctx context.Context, fail bool) ([]int, error) {
			return []int{0, 1, 2, 3, 4, 5}, nil
		}},
		workflow.Map[int, int]{Name: "each", Dependencies: []string{"list"}, MaxConcurrency: 3, Handler: func(ctx context.Context, k int) (int, error) {
			info, _ := workflow.Info(ctx)
			mu.Lock()
			started[info.RunID]++
			mu.Unlock()
			<-ctx.Done()
			return 0, ctx.Err()
		}},
		workflow.Task[bool, bool]{Name: "check", Handler: func(ctx context.Context, fail bool) (bool, error) {
			info, _ := workflow.Info(ctx)
			for !allStarted(info.RunID) { // until the Map's items are under way
				select {
				case <-ctx.Done():
					return false, ctx.Err()
				case <-time.After(10 * time.Millisecond):
				}
			}
			if fail {
				return false, workflow.Permanent(errors.New("check failed"))
			}
			<-ctx.Done()
			return false, ctx.Err()
		}},
		workflow.Task[workflow.Inputs, int]{Name: "join", Dependencies: []string{"each", "check"}, Handler: func(ctx context.Context, in workflow.Inputs) (int, error) {
			return 0, nil
		}},
	})
	c, queue := setup(t, registers(wf))
	q := temporalwf.TaskQueue(queue)

	// A failure elsewhere ends the run at once, the Map included.
	_, err := temporalwf.Run(ctx, c, wf, true, q, temporalwf.RunID("mapCancelled-fail"))
	require.ErrorContains(t, err, `task "check" failed: check failed`)
	rs, err := temporalwf.Inspect(ctx, c, wf, "mapCancelled-fail")
	require.NoError(t, err)
	each, _ := rs.Task("each")
	require.Equal(t, workflow.StateCancelled, each.State)

	// Cancel ends it too.
	x, err := temporalwf.Start(ctx, c, wf, false, q, temporalwf.RunID("mapCancelled-cancel"))
	require.NoError(t, err)
	require.Eventually(t, func() bool { return allStarted("mapCancelled-cancel") }, time.Minute, 10*time.Millisecond)
	require.NoError(t, temporalwf.Cancel(ctx, c, wf, x.ID()))
	_, err = x.Wait(ctx)
	require.ErrorIs(t, err, workflow.ErrCancelled)
	rs, err = temporalwf.Inspect(ctx, c, wf, x.ID())
	require.NoError(t, err)
	require.Equal(t, workflow.StateCancelled, rs.State)
	each, _ = rs.Task("each")
	require.Equal(t, workflow.StateCancelled, each.State)
}

func TestInspectOfAMapMatchesInProcessInspect(t *testing.T) {
	ctx := testContext(t)
	// One item at a time, so that the events come in one order only;
	// item 1 fails its first attempt.
	build := func() *workflow.Workflow[[]int, []int] {
		var mu sync.Mutex
		calls := map[int]int{}
		return workflow.MustNew[[]int, []int]("mapInspect", workflow.Tasks{
			workflow.Map[int, int]{Name: "each", MaxConcurrency: 1, Retry: workflow.RetryPolicy{Attempts: 2, Delay: 10 * time.Millisecond},
				Handler: func(ctx context.Context, k int) (int, error) {
					mu.Lock()
					calls[k]++
					n := calls[k]
					mu.Unlock()
					if k == 1 && n == 1 {
						return 0, errors.New("busy")
					}
					if k == 2 {
						return 0, workflow.Skip("nothing for item 2") // the zero O
					}
					return k + 10, nil
				}},
		})
	}
	wf, local := build(), build()
	c, queue := setup(t, registers(wf))
	out, err := temporalwf.Run(ctx, c, wf, []int{0, 1, 2, 3}, temporalwf.TaskQueue(queue), temporalwf.RunID("mapInspect-1"))
	require.NoError(t, err)
	lout, err := local.Run(ctx, []int{0, 1, 2, 3}, workflow.WithRunID("mapInspect-1"))
	require.NoError(t, err)
	require.Equal(t, lout, out)
	require.Equal(t, []int{10, 11, 0, 13}, out, "an item's Skip gives the zero O")

	got, err := temporalwf.Inspect(ctx, c, wf, "mapInspect-1")
	require.NoError(t, err)
	want, err := local.Inspect(ctx, "mapInspect-1")
	require.NoError(t, err)
	itemShape := func(rs workflow.RunStatus) []string {
		out := shape(rs)
		for _, ev := range rs.Events {
			if ev.Task == "each" && ev.Type != workflow.EventTaskStarted && ev.Type != workflow.EventTaskSucceeded {
				out = append(out, fmt.Sprintf("%s item=%d attempt=%d error=%q", ev.Type, ev.Item, ev.Attempt, ev.Error))
			}
		}
		return out
	}
	require.Equal(t, itemShape(want), itemShape(got))
	gi, _ := got.Items("each")
	wi, _ := want.Items("each")
	require.Equal(t, wi, gi)
}
