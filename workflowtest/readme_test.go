package workflowtest_test

import (
	"context"
	"errors"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/b3b01171/workflow"
	"github.com/b3b01171/workflow/workflowtest"
)

// The pipeline of the README's testing section: fetchOrders → summarize →
// save, whose output is the summary.

type Request struct{ UserID string }

type Order struct {
	ID    string
	Cents int
}

type Summary struct {
	UserID string
	Orders int
	Cents  int
}

var pipeline = workflow.MustNew[Request, Summary]("orders", workflow.Tasks{
	workflow.Task[Request, []Order]{Name: "fetchOrders", Retry: workflow.RetryPolicy{Attempts: 5, Delay: time.Hour},
		Handler: func(context.Context, Request) ([]Order, error) { return nil, errors.New("no database in tests") }},
	workflow.Task[[]Order, Summary]{Name: "summarize", Dependencies: []string{"fetchOrders"},
		Handler: func(_ context.Context, orders []Order) (Summary, error) {
			s := Summary{UserID: "u-42", Orders: len(orders)}
			for _, o := range orders {
				s.Cents += o.Cents
			}
			return s, nil
		}},
	workflow.Task[Summary, struct{}]{Name: "save", Dependencies: []string{"summarize"},
		Handler: func(context.Context, Summary) (struct{}, error) {
			return struct{}{}, errors.New("no database in tests")
		}},
}, workflow.WithOutput("summarize"))

// TestReadmePipeline is the README's testing example, as it is printed
// there (the body between the markers).
func TestReadmePipeline(t *testing.T) {
	req := Request{UserID: "u-42"}
	orders := []Order{{"o-1", 500}, {"o-2", 250}}
	want := Summary{UserID: "u-42", Orders: 2, Cents: 750}
	// README begin
	synctest.Test(t, func(t *testing.T) {
		save := workflowtest.Returns[Summary](struct{}{})
		fetch := workflowtest.FailsThenReturns[Request](1, errors.New("flaky"), orders)
		start := time.Now()
		out, err := pipeline.Run(t.Context(), req,
			workflow.ReplaceTask("save", save.Handler), workflow.ReplaceTask("fetchOrders", fetch.Handler),
			workflow.OverrideRetry("fetchOrders", workflow.RetryPolicy{Attempts: 2, Delay: time.Minute}))
		require.NoError(t, err)
		require.Equal(t, want, out)
		require.Equal(t, 1, save.Calls())
		require.Equal(t, time.Minute, time.Since(start))
	})
	// README end
}
