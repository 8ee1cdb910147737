package otelwf_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"go.uber.org/goleak"

	"github.com/b3b01171/workflow"
	"github.com/b3b01171/workflow/otelwf"
)

// TestMain fails the package's tests if any goroutine outlives them.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// bundle is what setup gives a test beside the Option: the SDK's in-memory
// recorders of the spans and metrics that the Option makes.
type bundle struct {
	spans  *tracetest.SpanRecorder
	tp     *sdktrace.TracerProvider
	reader *sdkmetric.ManualReader
}

// setup returns Instrument on an SDK tracer and meter provider that keep
// everything in memory.
func setup(t *testing.T) (workflow.Option, *bundle) {
	t.Helper()
	b := &bundle{spans: tracetest.NewSpanRecorder(), reader: sdkmetric.NewManualReader()}
	b.tp = sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(b.spans))
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(b.reader))
	t.Cleanup(func() {
		require.NoError(t, b.tp.Shutdown(context.Background()))
		require.NoError(t, mp.Shutdown(context.Background()))
	})
	return otelwf.Instrument(otelwf.WithTracerProvider(b.tp), otelwf.WithMeterProvider(mp)), b
}

// caller starts the span a test's caller would have around Run.
func (b *bundle) caller(ctx context.Context) (context.Context, trace.Span) {
	return b.tp.Tracer("test").Start(ctx, "caller")
}

// ended returns the spans ended so far, in the order they ended.
func (b *bundle) ended() []sdktrace.ReadOnlySpan { return b.spans.Ended() }

// named returns the ended spans whose name is name, in the order they
// started.
func (b *bundle) named(name string) []sdktrace.ReadOnlySpan {
	var out []sdktrace.ReadOnlySpan
	for _, s := range b.ended() {
		if s.Name() == name {
			out = append(out, s)
		}
	}
	slices.SortStableFunc(out, func(x, y sdktrace.ReadOnlySpan) int { return x.StartTime().Compare(y.StartTime()) })
	return out
}

// one returns the one ended span named name.
func (b *bundle) one(t *testing.T, name string) sdktrace.ReadOnlySpan {
	t.Helper()
	s := b.named(name)
	require.Len(t, s, 1, "spans named %q", name)
	return s[0]
}

// run returns the ended run span of run id.
func (b *bundle) run(t *testing.T, id string) sdktrace.ReadOnlySpan {
	t.Helper()
	for _, s := range b.ended() {
		if strings.HasPrefix(s.Name(), "workflow.run") && attr(s, "workflow.run_id").AsString() == id {
			return s
		}
	}
	t.Fatalf("no run span of run %q", id)
	return nil
}

// tree draws the ended spans as a tree, one per line, indented under their
// parent, siblings sorted by name then attempt; a span is drawn with its
// workflow.attempt ("#2") and its status when Error ("!").
func (b *bundle) tree() string {
	spans := b.ended()
	byParent := map[trace.SpanID][]sdktrace.ReadOnlySpan{}
	ids := map[trace.SpanID]bool{}
	for _, s := range spans {
		ids[s.SpanContext().SpanID()] = true
	}
	var roots []sdktrace.ReadOnlySpan
	for _, s := range spans {
		if p := s.Parent(); p.IsValid() && ids[p.SpanID()] {
			byParent[p.SpanID()] = append(byParent[p.SpanID()], s)
		} else {
			roots = append(roots, s)
		}
	}
	var sb strings.Builder
	var draw func(list []sdktrace.ReadOnlySpan, depth int)
	draw = func(list []sdktrace.ReadOnlySpan, depth int) {
		slices.SortStableFunc(list, func(x, y sdktrace.ReadOnlySpan) int {
			if c := strings.Compare(x.Name(), y.Name()); c != 0 {
				return c
			}
			return int(attr(x, "workflow.attempt").AsInt64() - attr(y, "workflow.attempt").AsInt64())
		})
		for _, s := range list {
			sb.WriteString(strings.Repeat("  ", depth) + s.Name())
			if n := attr(s, "workflow.attempt").AsInt64(); n > 0 {
				fmt.Fprintf(&sb, " #%d", n)
			}
			if s.Status().Code == 1 { // codes.Error
				sb.WriteString(" !")
			}
			sb.WriteString("\n")
			draw(byParent[s.SpanContext().SpanID()], depth+1)
		}
	}
	draw(roots, 0)
	return sb.String()
}

// attr is the value of span attribute key (an empty Value if none).
func attr(s sdktrace.ReadOnlySpan, key string) attribute.Value {
	for _, kv := range s.Attributes() {
		if string(kv.Key) == key {
			return kv.Value
		}
	}
	return attribute.Value{}
}

// exceptions returns the exception.message of each exception event of s.
func exceptions(s sdktrace.ReadOnlySpan) []string {
	var out []string
	for _, e := range s.Events() {
		if e.Name != "exception" {
			continue
		}
		for _, kv := range e.Attributes {
			if kv.Key == "exception.message" {
				out = append(out, kv.Value.AsString())
			}
		}
	}
	return out
}

// metrics collects what the reader holds, as "name{k=v,…}" → value; for a
// histogram, "name{…}.count" and "name{…}.sum". Data points of value 0 are
// kept: an up-down counter back at 0 says so.
func (b *bundle) metrics(t *testing.T) map[string]float64 {
	t.Helper()
	var rm metricdata.ResourceMetrics
	require.NoError(t, b.reader.Collect(context.Background(), &rm))
	out := map[string]float64{}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			switch d := m.Data.(type) {
			case metricdata.Sum[int64]:
				for _, p := range d.DataPoints {
					out[m.Name+key(p.Attributes)] = float64(p.Value)
				}
			case metricdata.Histogram[float64]:
				for _, p := range d.DataPoints {
					out[m.Name+key(p.Attributes)+".count"] = float64(p.Count)
					out[m.Name+key(p.Attributes)+".sum"] = p.Sum
				}
			default:
				t.Fatalf("metric %s: unexpected data %T", m.Name, m.Data)
			}
		}
	}
	return out
}

// units returns each metric's unit, by name.
func (b *bundle) units(t *testing.T) map[string]string {
	t.Helper()
	var rm metricdata.ResourceMetrics
	require.NoError(t, b.reader.Collect(context.Background(), &rm))
	out := map[string]string{}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			out[m.Name] = m.Unit
		}
	}
	return out
}

func key(set attribute.Set) string {
	var parts []string
	for _, kv := range set.ToSlice() {
		parts = append(parts, string(kv.Key)+"="+kv.Value.Emit())
	}
	return "{" + strings.Join(parts, ",") + "}"
}

var errBoom = errors.New("boom")

// step is a task that adds 1 to its input.
func step(name string, deps ...string) workflow.Task[int, int] {
	return workflow.Task[int, int]{Name: name, Dependencies: deps,
		Handler: func(_ context.Context, in int) (int, error) { return in + 1, nil }}
}

// sum is a task that adds up the outputs of its dependencies.
func sum(name string, deps ...string) workflow.Task[workflow.Inputs, int] {
	return workflow.Task[workflow.Inputs, int]{Name: name, Dependencies: deps,
		Handler: func(_ context.Context, in workflow.Inputs) (int, error) {
			total := 0
			for _, d := range deps {
				v, err := workflow.Get[int](in, d)
				if err != nil {
					return 0, err
				}
				total += v
			}
			return total, nil
		}}
}

func newWorkflow[In, Out any](t *testing.T, name string, tasks workflow.Tasks, opts ...workflow.Option) *workflow.Workflow[In, Out] {
	t.Helper()
	w, err := workflow.New[In, Out](name, tasks, opts...)
	require.NoError(t, err)
	return w
}
