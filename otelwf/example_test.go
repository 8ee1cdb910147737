package otelwf_test

import (
	"context"
	"fmt"
	"slices"
	"strings"

	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/b3b01171/workflow"
	"github.com/b3b01171/workflow/otelwf"
)

// A run traced under the request that started it, and counted. The
// providers keep everything in memory here; a service gives its own, with
// their exporters, or sets the global ones and calls Instrument().
func ExampleInstrument() {
	spans := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(spans))
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))

	wf := workflow.MustNew[string, int]("wordcount", workflow.Tasks{
		workflow.Task[string, []string]{
			Name:    "split",
			Handler: func(ctx context.Context, s string) ([]string, error) { return strings.Fields(s), nil },
		},
		workflow.Task[[]string, int]{
			Name:         "count",
			Dependencies: []string{"split"},
			Handler: func(ctx context.Context, words []string) (int, error) {
				// The handler's own span nests under its attempt's.
				_, span := tp.Tracer("wordcount").Start(ctx, "count words")
				defer span.End()
				return len(words), nil
			},
		},
	}, otelwf.Instrument(otelwf.WithTracerProvider(tp), otelwf.WithMeterProvider(mp)))

	ctx, request := tp.Tracer("server").Start(context.Background(), "POST /count")
	n, err := wf.Run(ctx, "the quick brown fox")
	request.End()
	fmt.Println(n, err)

	// The spans, each under its parent, in the order they started.
	ended := spans.Ended()
	slices.SortFunc(ended, func(a, b sdktrace.ReadOnlySpan) int { return a.StartTime().Compare(b.StartTime()) })
	depth := map[string]int{}
	for _, s := range ended {
		d := 0
		if p := s.Parent(); p.IsValid() {
			d = depth[p.SpanID().String()] + 1
		}
		depth[s.SpanContext().SpanID().String()] = d
		fmt.Println(strings.Repeat("  ", d) + s.Name())
	}

	// Attempts ended, by task and state.
	var rm metricdata.ResourceMetrics
	_ = reader.Collect(context.Background(), &rm)
	var lines []string
	for _, m := range rm.ScopeMetrics[0].Metrics {
		if m.Name != "workflow.task.attempt.ended" {
			continue
		}
		for _, p := range m.Data.(metricdata.Sum[int64]).DataPoints {
			task, _ := p.Attributes.Value("workflow.task")
			state, _ := p.Attributes.Value("workflow.task.state")
			lines = append(lines, fmt.Sprintf("%s %s %s: %d", m.Name, task.Emit(), state.Emit(), p.Value))
		}
	}
	slices.Sort(lines)
	fmt.Println(strings.Join(lines, "\n"))
	// Output:
	// 4 <nil>
	// POST /count
	//   workflow.run wordcount
	//     workflow.task split
	//     workflow.task count
	//       count words
	// workflow.task.attempt.ended count succeeded: 1
	// workflow.task.attempt.ended split succeeded: 1
}
