package workflow_test

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strconv"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/b3b01171/workflow"
)

// listThenMap is list (n → [0, n)) then parse (each i → "i") as a Map.
func listThenMap(t *testing.T, m workflow.Map[int, string], opts ...workflow.Option) *workflow.Workflow[int, []string] {
	t.Helper()
	m.Name, m.Dependencies = "parse", []string{"list"}
	return newWorkflow[int, []string](t, "mapped", workflow.Tasks{
		workflow.Task[int, []int]{Name: "list", Handler: func(_ context.Context, n int) ([]int, error) {
			if n < 0 {
				return nil, nil
			}
			out := make([]int, n)
			for i := range out {
				out[i] = i
			}
			return out, nil
		}},
		m,
	}, opts...)
}

func itoa(_ context.Context, i int) (string, error) { return strconv.Itoa(i), nil }

func TestMapGivesOneOutputPerItemInOrder(t *testing.T) {
	for _, n := range []int{-1, 0, 1, 10, 100_000} {
		t.Run(strconv.Itoa(n), func(t *testing.T) {
			w := listThenMap(t, workflow.Map[int, string]{Handler: itoa})
			out, err := w.Run(t.Context(), n)
			require.NoError(t, err)
			require.NotNil(t, out, "a nil or empty list gives an empty output")
			require.Len(t, out, max(n, 0))
			for i, s := range out {
				if s != strconv.Itoa(i) {
					require.Failf(t, "out of order", "item %d gave %q", i, s)
				}
			}
			rs, err := w.Status(t.Context())
			require.NoError(t, err)
			requireCompleteEvents(t, rs)
			items, ok := rs.Items("parse")
			if n <= 0 {
				assert.False(t, ok, "no items, no item events")
				return
			}
			require.True(t, ok)
			assert.Equal(t, workflow.ItemsStatus{Total: n, Done: n}, items)
			assert.LessOrEqual(t, len(rs.Events), 2+2*2+1+100, "item events stay few: %d items", n)
			assert.Len(t, rs.Tasks, 2, "no TaskStatus per item")
		})
	}
}

func TestMapTakesTheWorkflowInputWithoutADependency(t *testing.T) {
	w := newWorkflow[[]int, []string](t, "direct", workflow.Tasks{workflow.Map[int, string]{Name: "each", Handler: itoa}})
	out, err := w.Run(t.Context(), []int{4, 5, 6})
	require.NoError(t, err)
	assert.Equal(t, []string{"4", "5", "6"}, out)
}

func TestMapRetriesEachItemOnItsOwn(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var calls [10]atomic.Int32
		w := listThenMap(t, workflow.Map[int, string]{
			Retry: workflow.RetryPolicy{Attempts: 3, Delay: time.Second},
			Handler: func(ctx context.Context, i int) (string, error) {
				if n := calls[i].Add(1); i%4 == 1 && n < 3 { // items 1, 5, 9 fail twice
					return "", fmt.Errorf("flaky %d", i)
				}
				return itoa(ctx, i)
			},
		})
		start := time.Now()
		out, err := w.Run(t.Context(), 10)
		require.NoError(t, err)
		assert.Len(t, out, 10)
		assert.Equal(t, 2*time.Second, time.Since(start), "each failing item waited 1 s twice, the three at once")
		for i := range calls {
			want := int32(1)
			if i%4 == 1 {
				want = 3
			}
			assert.Equal(t, want, calls[i].Load(), "item %d", i)
		}
		rs, _ := w.Status(t.Context())
		requireCompleteEvents(t, rs)
		var retried []int
		for _, ev := range rs.Events {
			if ev.Type == workflow.EventItemRetrying {
				retried = append(retried, ev.Item)
				assert.Equal(t, ev.Time.Add(time.Second), ev.RetryAt)
			}
		}
		assert.ElementsMatch(t, []int{1, 1, 5, 5, 9, 9}, retried)
		parse, _ := rs.Task("parse")
		assert.Equal(t, 1, parse.Attempts, "the task itself is attempted once")
	})
}

func TestAMapItemFailingForGoodFailsTheTaskAndCancelsTheRest(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var cancelled, started atomic.Int32
		all := make(chan struct{})
		w := listThenMap(t, workflow.Map[int, string]{
			Retry: workflow.RetryPolicy{Attempts: 2},
			Handler: func(ctx context.Context, i int) (string, error) {
				if started.Add(1) == 20 {
					close(all)
				}
				if i == 7 {
					<-all
					return "", errBoom
				}
				<-ctx.Done()
				cancelled.Add(1)
				return "", ctx.Err()
			},
		})
		_, err := w.Run(t.Context(), 20)
		werr := asWorkflowError(t, err)
		assert.Equal(t, "parse", werr.Task)
		require.ErrorIs(t, err, errBoom)
		assert.Contains(t, werr.Message, "item 7: ")
		assert.Equal(t, int32(19), cancelled.Load(), "every other item was under way, and was cancelled")
		rs, _ := w.Status(t.Context())
		requireCompleteEvents(t, rs)
		items, ok := rs.Items("parse")
		require.True(t, ok)
		assert.Equal(t, workflow.ItemsStatus{Total: 20, Failed: []int{7}}, items)
	})
}

func TestMapMaxConcurrencyIsHonoured(t *testing.T) {
	for _, limit := range []int{0, 1, 8} {
		t.Run(strconv.Itoa(limit), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				var now, peak atomic.Int32
				w := listThenMap(t, workflow.Map[int, string]{MaxConcurrency: limit,
					Handler: func(ctx context.Context, i int) (string, error) {
						n := now.Add(1)
						for p := peak.Load(); n > p && !peak.CompareAndSwap(p, n); p = peak.Load() {
						}
						time.Sleep(time.Second)
						now.Add(-1)
						return itoa(ctx, i)
					}})
				const items = 40
				start := time.Now()
				_, err := w.Run(t.Context(), items)
				require.NoError(t, err)
				want := limit
				if limit == 0 {
					want = items // all at once
				}
				assert.Equal(t, int32(want), peak.Load(), "items under way at once")
				assert.Equal(t, time.Duration((items+want-1)/want)*time.Second, time.Since(start))
			})
		})
	}
}

func TestMapItemTimeoutsPanicsAndGoexits(t *testing.T) {
	cases := map[string]struct {
		handler func(ctx context.Context, i int) (string, error)
		timeout time.Duration
		state   workflow.State
		is      error
	}{
		"timeout": {handler: func(ctx context.Context, i int) (string, error) {
			if i == 2 {
				<-ctx.Done()
				return "", ctx.Err()
			}
			return itoa(ctx, i)
		}, timeout: time.Second, state: workflow.StateTimedOut, is: workflow.ErrTimeout},
		"panic": {handler: func(ctx context.Context, i int) (string, error) {
			if i == 2 {
				panic("bad item")
			}
			return itoa(ctx, i)
		}, state: workflow.StateFailed, is: workflow.ErrPanic},
		"goexit": {handler: func(ctx context.Context, i int) (string, error) {
			if i == 2 {
				runtime.Goexit()
			}
			return itoa(ctx, i)
		}, state: workflow.StateFailed, is: workflow.ErrPanic},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				w := listThenMap(t, workflow.Map[int, string]{Handler: c.handler, Timeout: c.timeout})
				_, err := w.Run(t.Context(), 5)
				require.ErrorIs(t, err, c.is)
				assert.Contains(t, err.Error(), "item 2: ")
				rs, _ := w.Status(t.Context())
				requireCompleteEvents(t, rs)
				parse, _ := rs.Task("parse")
				assert.Equal(t, c.state, parse.State)
			})
		})
	}
}

func TestMapItemsThatSkipGiveTheZeroOutput(t *testing.T) {
	w := listThenMap(t, workflow.Map[int, string]{Handler: func(ctx context.Context, i int) (string, error) {
		if i%2 == 1 {
			return "", workflow.Skip("odd")
		}
		return itoa(ctx, i)
	}})
	out, err := w.Run(t.Context(), 4)
	require.NoError(t, err)
	assert.Equal(t, []string{"0", "", "2", ""}, out)
}

func TestOverrideRetryOfAMapTaskAppliesToItsItems(t *testing.T) {
	var calls atomic.Int32
	w := listThenMap(t, workflow.Map[int, string]{Handler: func(ctx context.Context, i int) (string, error) {
		if calls.Add(1) == 1 {
			return "", errBoom
		}
		return itoa(ctx, i)
	}})
	_, err := w.Run(t.Context(), 1)
	require.ErrorIs(t, err, errBoom)
	calls.Store(0)
	out, err := w.Run(t.Context(), 1, workflow.OverrideRetry("parse", workflow.RetryPolicy{Attempts: 2}))
	require.NoError(t, err)
	assert.Equal(t, []string{"0"}, out)
}

func TestMapOnAPersistentStore(t *testing.T) {
	w := listThenMap(t, workflow.Map[int, string]{Handler: itoa}, workflow.WithStore(newJSONStore()))
	out, err := w.Run(t.Context(), 3)
	require.NoError(t, err)
	assert.Equal(t, []string{"0", "1", "2"}, out)
}

func TestNewChecksMapTasks(t *testing.T) {
	list := workflow.Task[int, []int]{Name: "list", Handler: func(context.Context, int) ([]int, error) { return nil, nil }}
	cases := map[string]struct {
		tasks workflow.Tasks
		is    error
		says  string
	}{
		"two dependencies": {workflow.Tasks{list, intTask("other"),
			workflow.Map[int, string]{Name: "m", Handler: itoa, Dependencies: []string{"list", "other"}}},
			workflow.ErrInvalidWorkflow, `Map task "m" has 2 dependencies`},
		"not a list of its items": {workflow.Tasks{list,
			workflow.Map[string, string]{Name: "m", Handler: func(_ context.Context, s string) (string, error) { return s, nil }, Dependencies: []string{"list"}}},
			workflow.ErrTypeMismatch, `task "m" takes []string, but its dependency "list" gives []int`},
		"the workflow input is not a list": {workflow.Tasks{workflow.Map[int, string]{Name: "m", Handler: itoa}},
			workflow.ErrTypeMismatch, `task "m" takes []int, but the workflow input is int`},
		"negative concurrency": {workflow.Tasks{list,
			workflow.Map[int, string]{Name: "m", Handler: itoa, Dependencies: []string{"list"}, MaxConcurrency: -1}},
			workflow.ErrInvalidWorkflow, "negative MaxConcurrency -1"},
		"nil handler": {workflow.Tasks{list, workflow.Map[int, string]{Name: "m", Dependencies: []string{"list"}}},
			workflow.ErrInvalidWorkflow, `task "m" has a nil Handler`},
		"nil pointer": {workflow.Tasks{list, (*workflow.Map[int, string])(nil)}, workflow.ErrInvalidWorkflow, "task 1 is nil"},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := workflow.New[int, []string]("m", c.tasks, workflow.WithOutput("m"))
			require.ErrorIs(t, err, c.is)
			assert.Contains(t, err.Error(), c.says)
		})
	}
	m := &workflow.Map[int, string]{Name: "m", Handler: itoa, Dependencies: []string{"list"}}
	_, err := workflow.New[int, []string]("m", workflow.Tasks{list, m})
	require.NoError(t, err, "a *Map is a task too")
	_, err = workflow.New[int, []string]("m", workflow.Tasks{list, workflow.Map[int, string]{Name: "m", Handler: itoa, Dependencies: []string{"list"},
		Retry: workflow.RetryPolicy{Attempts: -1}}})
	require.ErrorIs(t, err, workflow.ErrInvalidWorkflow, "its items' retry policy is checked")
	require.False(t, errors.Is(err, workflow.ErrTypeMismatch))
}

func TestResumeOfAFailedMapRunsOnlyTheItemsThatDidNotSucceed(t *testing.T) {
	stores := map[string]func() workflow.Store{
		"memory":     func() workflow.Store { return workflow.NewMemoryStore() },
		"persistent": func() workflow.Store { return newJSONStore() },
	}
	for name, newStore := range stores {
		t.Run(name, func(t *testing.T) {
			var calls [10]atomic.Int32
			var failing atomic.Bool
			failing.Store(true)
			w := listThenMap(t, workflow.Map[int, string]{MaxConcurrency: 1, // items in order: 0, 1, 2 succeed, 3 fails
				Handler: func(ctx context.Context, i int) (string, error) {
					calls[i].Add(1)
					if i == 3 && failing.Load() {
						return "", errBoom
					}
					return itoa(ctx, i)
				}}, workflow.WithStore(newStore()))
			x, err := w.Start(t.Context(), 10)
			require.NoError(t, err)
			_, err = x.Wait(t.Context())
			require.ErrorIs(t, err, errBoom)
			rs, err := w.Inspect(t.Context(), x.ID())
			require.NoError(t, err)
			items, _ := rs.Items("parse")
			assert.Equal(t, workflow.ItemsStatus{Total: 10, Done: 3, Failed: []int{3}}, items)
			if name == "persistent" {
				parse, _ := rs.Task("parse")
				assert.JSONEq(t, `{"done":[0,1,2],"outputs":["0","1","2"]}`, string(parse.Output), "what the failed Map keeps")
			}

			failing.Store(false)
			out, err := w.Resume(t.Context(), x.ID())
			require.NoError(t, err)
			assert.Equal(t, []string{"0", "1", "2", "3", "4", "5", "6", "7", "8", "9"}, out)
			for i := range calls {
				want := int32(1)
				if i == 3 {
					want = 2
				}
				assert.Equal(t, want, calls[i].Load(), "item %d", i)
			}
			rs, err = w.Inspect(t.Context(), x.ID())
			require.NoError(t, err)
			requireCompleteEvents(t, rs)
			items, _ = rs.Items("parse")
			assert.Equal(t, workflow.ItemsStatus{Total: 10, Done: 10}, items)
		})
	}
}

func TestRetryOnFailureOfAMapRunsOnlyTheItemsThatDidNotSucceed(t *testing.T) {
	var calls [5]atomic.Int32
	w := listThenMap(t, workflow.Map[int, string]{MaxConcurrency: 1, // in order: 0 to 3 succeed, then 4 fails
		Handler: func(ctx context.Context, i int) (string, error) {
			if calls[i].Add(1) == 1 && i == 4 {
				return "", errBoom
			}
			return itoa(ctx, i)
		}})
	out, err := w.Run(t.Context(), 5, workflow.RetryOnFailure(1))
	require.NoError(t, err)
	assert.Equal(t, []string{"0", "1", "2", "3", "4"}, out)
	for i := range calls {
		want := int32(1) // kept from the first pass
		if i == 4 {
			want = 2
		}
		assert.Equal(t, want, calls[i].Load(), "item %d", i)
	}
}

type mapItem struct {
	Name string `validate:"required"`
}

type mapResult struct {
	Size int `validate:"gt=0"`
}

func TestMapChecksEachItemsInputAndOutputAgainstTheirTags(t *testing.T) {
	var calls atomic.Int32
	w := newWorkflow[[]mapItem, []mapResult](t, "tagged", workflow.Tasks{
		workflow.Map[mapItem, mapResult]{Name: "size", Retry: workflow.RetryPolicy{Attempts: 3},
			Handler: func(_ context.Context, it mapItem) (mapResult, error) {
				calls.Add(1)
				return mapResult{Size: len(it.Name) - 1}, nil
			}},
	})
	out, err := w.Run(t.Context(), []mapItem{{Name: "ab"}, {Name: "abc"}})
	require.NoError(t, err)
	assert.Equal(t, []mapResult{{1}, {2}}, out)

	_, err = w.Run(t.Context(), []mapItem{{Name: "ab"}, {Name: ""}})
	require.ErrorIs(t, err, workflow.ErrInvalidInput)
	assert.Contains(t, err.Error(), "item 1: ")
	assert.Contains(t, err.Error(), "Name")

	calls.Store(0)
	_, err = w.Run(t.Context(), []mapItem{{Name: "a"}})
	require.ErrorIs(t, err, workflow.ErrInvalidInput, "an output of Size 0 fails its tag")
	assert.Contains(t, err.Error(), "item 0: ")
	assert.Equal(t, int32(1), calls.Load(), "an invalid output is not retried")
}
