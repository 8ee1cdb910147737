package otelwf_test

import (
	"context"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/b3b01171/workflow"
)

func TestMetricsCountWhatRanExactly(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		instrument, b := setup(t)
		// a: 1s, then fails for a negative input; b: fails its first
		// attempt after 2s, waits 1s, succeeds after 2s.
		w := newWorkflow[int, int](t, "m", workflow.Tasks{
			workflow.Task[int, int]{Name: "a", Handler: func(_ context.Context, in int) (int, error) {
				time.Sleep(time.Second)
				if in < 0 {
					return 0, workflow.Permanent(errBoom)
				}
				return in, nil
			}},
			workflow.Task[int, int]{Name: "b", Dependencies: []string{"a"}, Retry: workflow.RetryPolicy{Attempts: 2, Delay: time.Second},
				Handler: func(ctx context.Context, in int) (int, error) {
					time.Sleep(2 * time.Second)
					if info, _ := workflow.Info(ctx); info.Attempt == 1 {
						return 0, errBoom
					}
					return in, nil
				}},
		}, instrument)
		for range 3 {
			_, err := w.Run(t.Context(), 1)
			require.NoError(t, err)
		}
		_, err := w.Run(t.Context(), -1)
		require.ErrorIs(t, err, errBoom)

		const (
			name = "workflow.name=m"
			a    = name + ",workflow.task=a"
			bb   = name + ",workflow.task=b"
		)
		assert.Equal(t, map[string]float64{
			"workflow.run.started{" + name + "}":                                     4,
			"workflow.run.active{" + name + "}":                                      0,
			"workflow.run.ended{" + name + ",workflow.run.state=succeeded}":          3,
			"workflow.run.ended{" + name + ",workflow.run.state=failed}":             1,
			"workflow.run.duration{" + name + ",workflow.run.state=succeeded}.count": 3,
			"workflow.run.duration{" + name + ",workflow.run.state=succeeded}.sum":   3 * 6, // 1 + 2 + 1 + 2
			"workflow.run.duration{" + name + ",workflow.run.state=failed}.count":    1,
			"workflow.run.duration{" + name + ",workflow.run.state=failed}.sum":      1,

			"workflow.task.attempt.ended{" + a + ",workflow.task.state=succeeded}":           3,
			"workflow.task.attempt.ended{" + a + ",workflow.task.state=failed}":              1,
			"workflow.task.attempt.ended{" + bb + ",workflow.task.state=failed}":             3,
			"workflow.task.attempt.ended{" + bb + ",workflow.task.state=succeeded}":          3,
			"workflow.task.attempt.duration{" + a + ",workflow.task.state=succeeded}.count":  3,
			"workflow.task.attempt.duration{" + a + ",workflow.task.state=succeeded}.sum":    3,
			"workflow.task.attempt.duration{" + a + ",workflow.task.state=failed}.count":     1,
			"workflow.task.attempt.duration{" + a + ",workflow.task.state=failed}.sum":       1,
			"workflow.task.attempt.duration{" + bb + ",workflow.task.state=failed}.count":    3,
			"workflow.task.attempt.duration{" + bb + ",workflow.task.state=failed}.sum":      6,
			"workflow.task.attempt.duration{" + bb + ",workflow.task.state=succeeded}.count": 3,
			"workflow.task.attempt.duration{" + bb + ",workflow.task.state=succeeded}.sum":   6,
		}, b.metrics(t))
	})
}

func TestMetricsHaveTheUnitsOfTheREADME(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		instrument, b := setup(t)
		w := newWorkflow[struct{}, struct{}](t, "units", workflow.Tasks{
			workflow.Task[struct{}, struct{}]{Name: "t", Handler: func(context.Context, struct{}) (struct{}, error) {
				time.Sleep(90 * time.Second)
				return struct{}{}, nil
			}},
		}, workflow.WithSchedule(workflow.Schedule{Cron: "@every 1m"}), instrument)
		s := workflow.NewScheduler()
		require.NoError(t, s.Register(w))
		s.Start()
		time.Sleep(2*time.Minute + time.Second) // a run from 1m, a fire skipped at 2m
		require.NoError(t, s.Stop(t.Context()))
		synctest.Wait()
		assert.Equal(t, map[string]string{
			"workflow.run.started":           "{run}",
			"workflow.run.ended":             "{run}",
			"workflow.run.duration":          "s",
			"workflow.run.active":            "{run}",
			"workflow.task.attempt.ended":    "{attempt}",
			"workflow.task.attempt.duration": "s",
			"workflow.schedule.skipped":      "{fire}",
		}, b.units(t))
	})
}

func TestRunsUnderWayAreCounted(t *testing.T) {
	instrument, b := setup(t)
	release := make(chan struct{})
	started := make(chan struct{}, 2)
	w := newWorkflow[int, int](t, "busy", workflow.Tasks{
		workflow.Task[int, int]{Name: "t", Handler: func(_ context.Context, in int) (int, error) {
			started <- struct{}{}
			<-release
			return in, nil
		}},
	}, instrument)
	var xs []*workflow.Execution[int]
	for range 2 {
		x, err := w.Start(t.Context(), 1)
		require.NoError(t, err)
		xs = append(xs, x)
	}
	<-started
	<-started
	assert.Eventually(t, func() bool {
		return b.metrics(t)["workflow.run.active{workflow.name=busy}"] == 2
	}, 5*time.Second, time.Millisecond)
	close(release)
	for _, x := range xs {
		_, err := x.Wait(t.Context())
		require.NoError(t, err)
	}
	assert.Equal(t, 0.0, b.metrics(t)["workflow.run.active{workflow.name=busy}"])
}
