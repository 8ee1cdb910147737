package workflow_test

import (
	"context"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/b3b01171/workflow"
)

func TestWaitByIDWaitsForARunUnderWay(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWorkflow[int, int](t, "wait", workflow.Tasks{
			workflow.Task[int, int]{Name: "a", Handler: func(_ context.Context, in int) (int, error) {
				time.Sleep(time.Minute)
				return in * 2, nil
			}},
		})
		x, err := w.Start(t.Context(), 21)
		require.NoError(t, err)
		out, err := w.Wait(t.Context(), x.ID())
		require.NoError(t, err)
		assert.Equal(t, 42, out)
	})
}

func TestWaitByIDOfAScheduledTriggerGivesItsOutput(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWorkflow[int, int](t, "triggered", workflow.Tasks{
			workflow.Task[int, int]{Name: "a", Handler: func(context.Context, int) (int, error) {
				time.Sleep(time.Second)
				return 7, nil
			}},
		}, workflow.WithSchedule(workflow.Schedule{Cron: "@daily"}))
		s := workflow.NewScheduler()
		require.NoError(t, s.Register(w))
		id, err := s.Trigger(t.Context(), "triggered")
		require.NoError(t, err)
		out, err := w.Wait(t.Context(), id)
		require.NoError(t, err)
		assert.Equal(t, 7, out)
		require.NoError(t, s.Stop(t.Context()))
	})
}

func TestWaitByIDOfAnEndedRunReturnsAtOnce(t *testing.T) {
	for name, store := range map[string]workflow.Store{"MemoryStore": workflow.NewMemoryStore(), "persistent": newJSONStore()} {
		t.Run(name, func(t *testing.T) {
			w := newWorkflow[int, int](t, "ended", workflow.Tasks{
				intTask("a"),
				workflow.Task[int, int]{Name: "b", Dependencies: []string{"a"}, Handler: func(_ context.Context, in int) (int, error) {
					if in < 0 {
						return 0, errBoom
					}
					return in + 1, nil
				}},
			}, workflow.WithStore(store))
			_, err := w.Run(t.Context(), 4, workflow.WithRunID("ok"))
			require.NoError(t, err)
			_, err = w.Run(t.Context(), -1, workflow.WithRunID("bad"))
			require.ErrorIs(t, err, errBoom)

			// Another Workflow value, as another process would.
			other := newWorkflow[int, int](t, "ended", workflow.Tasks{intTask("a"), intTask("b", "a")}, workflow.WithStore(store))
			out, err := other.Wait(t.Context(), "ok")
			require.NoError(t, err)
			assert.Equal(t, 5, out)

			_, err = other.Wait(t.Context(), "bad")
			werr := asWorkflowError(t, err)
			assert.Equal(t, "b", werr.Task)
			assert.Equal(t, "boom", werr.Message)
			assert.Equal(t, `workflow "ended" run bad: task "b" failed: boom`, err.Error())

			_, err = other.Wait(t.Context(), "nope")
			require.ErrorIs(t, err, workflow.ErrNotFound)
		})
	}
}

func TestWaitByIDOfACancelledRunWrapsErrCancelled(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWorkflow[int, int](t, "cancelled", workflow.Tasks{
			workflow.Task[int, int]{Name: "a", Handler: func(ctx context.Context, in int) (int, error) {
				<-ctx.Done()
				return 0, ctx.Err()
			}},
		})
		x, err := w.Start(t.Context(), 1)
		require.NoError(t, err)
		synctest.Wait()
		require.NoError(t, w.Cancel(t.Context(), x.ID()))
		_, err = w.Wait(t.Context(), x.ID())
		require.ErrorIs(t, err, workflow.ErrCancelled)
	})
}
