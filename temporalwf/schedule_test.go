package temporalwf_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/client"

	"github.com/b3b01171/workflow"
	"github.com/b3b01171/workflow/temporalwf"
)

func TestScheduleRunsTheWorkflowAndIsUpdated(t *testing.T) {
	ctx := testContext(t)
	type fire struct {
		runID, trigger string
		in             int
	}
	fires := make(chan fire, 100)
	scheduled := func(cron string) *workflow.Workflow[int, int] {
		return workflow.MustNew[int, int]("scheduled", workflow.Tasks{
			workflow.Task[int, int]{Name: "tick", Handler: func(ctx context.Context, n int) (int, error) {
				info, _ := workflow.Info(ctx)
				select {
				case fires <- fire{info.RunID, info.Trigger, n}:
				default:
				}
				return n, nil
			}},
		}, workflow.WithSchedule(workflow.Schedule{Cron: cron, Overlap: workflow.OverlapSkip}),
			workflow.WithScheduleInput(func(ctx context.Context, fired time.Time) (int, error) {
				if fired.IsZero() {
					return 0, nil
				}
				return 7, nil
			}))
	}
	wf := scheduled("@every 1s")
	c, queue := setup(t, registers(wf))
	require.NoError(t, temporalwf.Schedule(ctx, c, wf, temporalwf.TaskQueue(queue)))
	h := c.ScheduleClient().GetHandle(ctx, "scheduled")
	t.Cleanup(func() { _ = h.Delete(context.Background()) })

	var seen []fire
	for len(seen) < 2 {
		select {
		case f := <-fires:
			seen = append(seen, f)
		case <-ctx.Done():
			t.Fatalf("the schedule ran %d times: %v", len(seen), seen)
		}
	}
	for _, f := range seen {
		require.Equal(t, workflow.TriggerSchedule, f.trigger)
		require.Equal(t, 7, f.in, "the run's input came from WithScheduleInput")
	}
	require.NotEqual(t, seen[0].runID, seen[1].runID)
	rs, err := temporalwf.Inspect(ctx, c, wf, seen[0].runID)
	require.NoError(t, err)
	require.Equal(t, workflow.TriggerSchedule, rs.Trigger)
	require.False(t, rs.ScheduledAt.IsZero())

	desc, err := h.Describe(ctx)
	require.NoError(t, err)
	require.Equal(t, []client.ScheduleIntervalSpec{{Every: time.Second}}, desc.Schedule.Spec.Intervals)

	// Calling it again, with a changed definition, updates the schedule.
	changed := scheduled("@every 1h")
	require.NoError(t, temporalwf.Schedule(ctx, c, changed, temporalwf.TaskQueue(queue)))
	desc, err = h.Describe(ctx)
	require.NoError(t, err)
	require.Equal(t, []client.ScheduleIntervalSpec{{Every: time.Hour}}, desc.Schedule.Spec.Intervals)

	plain := oneTask("unscheduled", workflow.RetryPolicy{}, 0, func(ctx context.Context, n int) (int, error) { return n, nil })
	err = temporalwf.Schedule(ctx, c, plain, temporalwf.TaskQueue(queue))
	require.ErrorIs(t, err, workflow.ErrInvalidSchedule)
}
