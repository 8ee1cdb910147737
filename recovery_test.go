package workflow_test

import (
	"context"
	"errors"
	"runtime"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/b3b01171/workflow"
)

// durableFlow is the workflow "durable" of interruptedRun, on a schedule,
// on store; bills counts the calls of its task bill.
func durableFlow(t *testing.T, store workflow.Store, bills *atomic.Int32) *workflow.Workflow[string, invoice] {
	t.Helper()
	return newWorkflow[string, invoice](t, "durable", workflow.Tasks{
		workflow.Task[string, shipment]{Name: "load", Handler: func(context.Context, string) (shipment, error) {
			t.Error("load ran again")
			return shipment{}, nil
		}},
		workflow.Task[shipment, invoice]{Name: "price", Dependencies: []string{"load"}, Handler: func(context.Context, shipment) (invoice, error) {
			t.Error("price ran again")
			return invoice{}, nil
		}},
		workflow.Task[invoice, invoice]{Name: "bill", Dependencies: []string{"price"}, Retry: workflow.RetryPolicy{Attempts: 2},
			Handler: func(ctx context.Context, in invoice) (invoice, error) {
				bills.Add(1)
				in.Total *= 10
				return in, nil
			}},
	}, workflow.WithStore(store), workflow.WithSchedule(workflow.Schedule{Cron: "@daily"}))
}

func TestSchedulersOnADurableStoreRecoverALeftRunOnceBetweenThem(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		store := newJSONStore()
		interruptedRun(t, store, "crashed")
		var bills atomic.Int32
		w := durableFlow(t, store, &bills)
		a := schedStarted(t, nil, w)
		b := schedStarted(t, nil, durableFlow(t, store, &bills))
		c := schedStarted(t, nil, durableFlow(t, store, &bills))
		synctest.Wait()
		stopTogether(t, a, b, c)

		rs, err := w.Inspect(t.Context(), "crashed")
		require.NoError(t, err)
		require.Equal(t, workflow.StateSucceeded, rs.State)
		require.Equal(t, 1, countEvents(rs, workflow.EventRunResumed), "resumed once")
		require.Equal(t, int32(1), bills.Load(), "the task under way ran once more; those that had succeeded did not")
		require.JSONEq(t, `{"Order":"o-7","Total":30}`, string(rs.Output))
	})
}

// countingStore counts the calls of Orphans on a MemoryStore, and may say
// it is Persistent.
type countingStore struct {
	*workflow.MemoryStore
	durable bool
	orphans atomic.Int32
	list    func(ctx context.Context) ([]string, error) // nil: the MemoryStore's
}

func (s *countingStore) Persistent() bool { return s.durable }

func (s *countingStore) Orphans(ctx context.Context, wf string) ([]string, error) {
	s.orphans.Add(1)
	if s.list != nil {
		return s.list(ctx)
	}
	return s.MemoryStore.Orphans(ctx, wf)
}

func TestWithRecoverIntervalSetsHowOftenASchedulerRecovers(t *testing.T) {
	for _, tc := range []struct {
		name    string
		durable bool
		opts    []workflow.SchedulerOption
		want    int32
	}{
		{"DefaultAtStartThenEvery10s", true, nil, 3},
		{"OneMinute", true, []workflow.SchedulerOption{workflow.WithRecoverInterval(time.Minute)}, 1},
		{"ZeroTurnsItOff", true, []workflow.SchedulerOption{workflow.WithRecoverInterval(0)}, 0},
		{"NegativeTurnsItOff", true, []workflow.SchedulerOption{workflow.WithRecoverInterval(-time.Second)}, 0},
		{"NeverForAStoreThatIsNotDurable", false, nil, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				require.Equal(t, 10*time.Second, workflow.DefaultRecoverInterval)
				st := &countingStore{MemoryStore: workflow.NewMemoryStore(), durable: tc.durable}
				s := schedStarted(t, tc.opts, schedFlow(t, "flow", workflow.Schedule{Cron: "@daily"}, schedNoop, workflow.WithStore(st)))
				time.Sleep(25 * time.Second)
				synctest.Wait()
				require.NoError(t, s.Stop(t.Context()))
				require.Equal(t, tc.want, st.orphans.Load())
			})
		})
	}
}

func TestASchedulerSurvivesARecoveryWhoseStoreFailsPanicsOrBlocks(t *testing.T) {
	for _, tc := range []struct {
		name string
		list func(ctx context.Context) ([]string, error)
		log  string
	}{
		{"Error", func(context.Context) ([]string, error) { return nil, errors.New("disk on fire") }, "disk on fire"},
		{"Panic", func(context.Context) ([]string, error) { panic("boom") }, "boom"},
		{"Goexit", func(context.Context) ([]string, error) { runtime.Goexit(); return nil, nil }, "runtime.Goexit"},
		{"Block", func(ctx context.Context) ([]string, error) { <-ctx.Done(); return nil, ctx.Err() }, "did not return"},
		{"UnknownRun", func(context.Context) ([]string, error) { return []string{"ghost"}, nil }, "ghost"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				var log schedLog
				st := &countingStore{MemoryStore: workflow.NewMemoryStore(), durable: true, list: tc.list}
				w := schedFlow(t, "flow", workflow.Schedule{Cron: "@every 1h"}, schedNoop, workflow.WithStore(st))
				s := schedStarted(t, []workflow.SchedulerOption{workflow.WithSchedulerLogger(log.logger())}, w)
				time.Sleep(2*time.Hour + time.Minute)
				synctest.Wait()
				require.NoError(t, s.Stop(t.Context()))
				require.Equal(t, []time.Duration{time.Hour, 2 * time.Hour}, schedTimes(schedHistory(t, w), scheduledAt), "fires go on")
				require.Contains(t, log.String(), tc.log)
			})
		})
	}
}
