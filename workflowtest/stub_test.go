package workflowtest_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/b3b01171/workflow"
	"github.com/b3b01171/workflow/workflowtest"
)

var errDown = errors.New("service down")

// call calls s.Handler with a live context, as a task attempt would.
func call[I, O any](t *testing.T, s *workflowtest.Stub[I, O], in I) (O, error) {
	t.Helper()
	return s.Handler(t.Context(), in)
}

func TestReturnsGivesOutOnEveryCall(t *testing.T) {
	s := workflowtest.Returns[int]("ok")

	for i := range 3 {
		out, err := call(t, s, i)
		require.NoError(t, err)
		require.Equal(t, "ok", out)
	}
	assert.Equal(t, 3, s.Calls())
}

func TestFailsGivesErrAndTheZeroOutputOnEveryCall(t *testing.T) {
	s := workflowtest.Fails[int, string](errDown)

	for i := range 3 {
		out, err := call(t, s, i)
		require.ErrorIs(t, err, errDown)
		require.Empty(t, out)
	}
	assert.Equal(t, 3, s.Calls())
}

func TestFailsWithANilErrorStillFails(t *testing.T) {
	s := workflowtest.Fails[int, int](nil)

	_, err := call(t, s, 1)

	require.EqualError(t, err, "workflowtest: stub failure")
}

func TestFailsThenReturnsFailsTheFirstNCallsThenReturnsOut(t *testing.T) {
	s := workflowtest.FailsThenReturns[int](2, errDown, "ok")

	for i := range 2 {
		out, err := call(t, s, i)
		require.ErrorIs(t, err, errDown, "call %d", i+1)
		require.Empty(t, out)
	}
	for i := range 2 {
		out, err := call(t, s, i)
		require.NoError(t, err, "call %d", i+3)
		require.Equal(t, "ok", out)
	}
	assert.Equal(t, 4, s.Calls())
}

func TestFailsThenReturnsWithNoFailuresIsReturns(t *testing.T) {
	s := workflowtest.FailsThenReturns[int](0, errDown, "ok")

	out, err := call(t, s, 1)

	require.NoError(t, err)
	require.Equal(t, "ok", out)
}

func TestFailsThenReturnsWithANilErrorStillFails(t *testing.T) {
	s := workflowtest.FailsThenReturns[int](1, nil, "ok")

	_, err := call(t, s, 1)
	require.EqualError(t, err, "workflowtest: stub failure")
	out, err := call(t, s, 2)
	require.NoError(t, err)
	require.Equal(t, "ok", out)
}

func TestFailsThenReturnsWithANegativeCountFailsEveryCallSayingWhy(t *testing.T) {
	s := workflowtest.FailsThenReturns[int](-1, errDown, "ok")
	for range 2 {
		out, err := s.Handler(t.Context(), 1)
		require.EqualError(t, err, "workflowtest: FailsThenReturns(-1, ...): the number of failures must be ≥ 0")
		require.Zero(t, out)
	}
}

func TestZeroStubReturnsTheZeroOutput(t *testing.T) {
	var s workflowtest.Stub[int, string]

	out, err := s.Handler(t.Context(), 1)

	require.NoError(t, err)
	require.Empty(t, out)
	assert.Equal(t, 1, s.Calls())
	assert.Equal(t, []int{1}, s.Inputs())
}

func TestHandlerRecordsInputsInCallOrder(t *testing.T) {
	s := workflowtest.Returns[string](0)
	require.Nil(t, s.Inputs(), "no call yet")
	require.Zero(t, s.Calls())

	for _, in := range []string{"b", "a", "c", "a"} {
		_, _ = call(t, s, in)
	}

	assert.Equal(t, []string{"b", "a", "c", "a"}, s.Inputs())
	assert.Equal(t, 4, s.Calls())
}

func TestInputsReturnsACopy(t *testing.T) {
	s := workflowtest.Returns[int](0)
	_, _ = call(t, s, 1)
	_, _ = call(t, s, 2)

	got := s.Inputs()
	got[0] = 99
	_, _ = call(t, s, 3)

	assert.Equal(t, []int{99, 2}, got, "later calls do not reach an earlier copy")
	assert.Equal(t, []int{1, 2, 3}, s.Inputs(), "changing a copy does not reach the stub")
}

func TestHandlerGivesTheConfiguredResultWhenTheContextIsDone(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	ok := workflowtest.Returns[int]("ok")
	failing := workflowtest.Fails[int, string](errDown)

	out, err := ok.Handler(ctx, 1)
	require.NoError(t, err)
	require.Equal(t, "ok", out)
	_, err = failing.Handler(ctx, 1)
	require.ErrorIs(t, err, errDown)
	require.NotErrorIs(t, err, context.Canceled)

	assert.Equal(t, 1, ok.Calls(), "the call is recorded")
	assert.Equal(t, []int{1}, failing.Inputs())
}

func TestHandlerIsSafeForConcurrentUse(t *testing.T) {
	const n = 100
	s := workflowtest.FailsThenReturns[int](n/2, errDown, "ok")

	var wg sync.WaitGroup
	var mu sync.Mutex
	failures := 0
	for i := range n {
		wg.Go(func() {
			_, err := s.Handler(t.Context(), i)
			if err != nil {
				mu.Lock()
				failures++
				mu.Unlock()
			}
			_ = s.Calls()
			_ = s.Inputs()
		})
	}
	wg.Wait()

	require.Equal(t, n, s.Calls())
	inputs := s.Inputs()
	require.Len(t, inputs, n)
	slices.Sort(inputs)
	for i, in := range inputs {
		require.Equal(t, i, in, "every input recorded once")
	}
	assert.Equal(t, n/2, failures, "exactly the first n/2 calls failed")
}

// TestStubsReplaceTasksOfARealWorkflow runs a three-task pipeline with its
// last two tasks stubbed: "price" fails once and is retried after its
// policy's one-minute delay, "save" records what it would have saved.
func TestStubsReplaceTasksOfARealWorkflow(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		realHandler := func(task string) func(context.Context, string) (string, error) {
			return func(context.Context, string) (string, error) {
				t.Errorf("the real handler of %q ran", task)
				return "", errors.New("real handler")
			}
		}
		wf, err := workflow.New[int, string]("checkout", workflow.Tasks{
			workflow.Task[int, string]{Name: "fetch", Handler: func(_ context.Context, id int) (string, error) {
				return fmt.Sprintf("order-%d", id), nil
			}},
			workflow.Task[string, string]{
				Name:         "price",
				Dependencies: []string{"fetch"},
				Retry:        workflow.RetryPolicy{Attempts: 3, Delay: time.Minute},
				Handler:      realHandler("price"),
			},
			workflow.Task[string, string]{Name: "save", Dependencies: []string{"price"}, Handler: realHandler("save")},
		})
		require.NoError(t, err)
		price := workflowtest.FailsThenReturns[string](1, errDown, "order-7: 500 cents")
		save := workflowtest.Returns[string]("receipt-1")
		start := time.Now()

		out, err := wf.Run(t.Context(), 7,
			workflow.ReplaceTask("price", price.Handler),
			workflow.ReplaceTask("save", save.Handler),
		)

		require.NoError(t, err)
		assert.Equal(t, "receipt-1", out)
		assert.Equal(t, 2, price.Calls(), "one failure, one retry")
		assert.Equal(t, []string{"order-7", "order-7"}, price.Inputs(), "the retry gets the same input")
		assert.Equal(t, 1, save.Calls())
		assert.Equal(t, []string{"order-7: 500 cents"}, save.Inputs())
		assert.Equal(t, time.Minute, time.Since(start), "exactly the one retry delay passed")
	})
}
