package otelwf_test

import (
	"context"
	"errors"
	"runtime"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/metric"
	metricembedded "go.opentelemetry.io/otel/metric/embedded"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/embedded"
	tracenoop "go.opentelemetry.io/otel/trace/noop"

	"github.com/b3b01171/workflow"
	"github.com/b3b01171/workflow/otelwf"
)

// outcomes runs, on a workflow built with opts, a run that succeeds, one
// that fails, one that panics and one whose input is refused, and returns
// what each returned.
func outcomes(t *testing.T, opts ...workflow.Option) []string {
	t.Helper()
	w := newWorkflow[order, int](t, "outcome", workflow.Tasks{
		workflow.Task[order, int]{Name: "parse", Retry: workflow.RetryPolicy{Attempts: 2},
			Handler: func(_ context.Context, o order) (int, error) {
				switch o.ID {
				case "fail":
					return 0, errBoom
				case "panic":
					panic("boom")
				}
				return len(o.ID), nil
			}},
		workflow.Task[int, int]{Name: "double", Dependencies: []string{"parse"},
			Handler: func(_ context.Context, n int) (int, error) { return 2 * n, nil }},
	}, opts...)
	var out []string
	for _, id := range []string{"four", "fail", "panic", ""} {
		n, err := w.Run(t.Context(), order{ID: id}, workflow.WithRunID("run-"+id))
		out = append(out, fmtResult(n, err))
	}
	return out
}

func fmtResult(n int, err error) string {
	if err != nil {
		return err.Error()
	}
	return "ok " + string(rune('0'+n))
}

// handled collects what is given to otel.Handle during the test.
type handled struct {
	mu   sync.Mutex
	errs []error
}

func (h *handled) Handle(err error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.errs = append(h.errs, err)
}

func catchOtelErrors(t *testing.T) *handled {
	h := &handled{}
	otel.SetErrorHandler(h)
	t.Cleanup(func() { otel.SetErrorHandler(otel.ErrorHandlerFunc(func(error) {})) })
	return h
}

type failingExporter struct{}

func (failingExporter) ExportSpans(context.Context, []sdktrace.ReadOnlySpan) error {
	return errors.New("collector unreachable")
}
func (failingExporter) Shutdown(context.Context) error { return nil }

type panickingExporter struct{}

func (panickingExporter) ExportSpans(context.Context, []sdktrace.ReadOnlySpan) error {
	panic("exporter")
}
func (panickingExporter) Shutdown(context.Context) error { return nil }

// panickingTracerProvider gives a tracer whose every span panics.
type panickingTracerProvider struct{ embedded.TracerProvider }

func (panickingTracerProvider) Tracer(string, ...trace.TracerOption) trace.Tracer {
	return panickingTracer{}
}

type panickingTracer struct{ embedded.Tracer }

func (panickingTracer) Start(context.Context, string, ...trace.SpanStartOption) (context.Context, trace.Span) {
	panic("tracer")
}

// panickingMeterProvider panics for a meter.
type panickingMeterProvider struct{ metricembedded.MeterProvider }

func (panickingMeterProvider) Meter(string, ...metric.MeterOption) metric.Meter { panic("meter") }

func TestInstrumentationNeverChangesARunsOutcome(t *testing.T) {
	want := outcomes(t)
	require.Equal(t, "ok 8", want[0])
	sdk := func(t *testing.T, exp sdktrace.SpanExporter) trace.TracerProvider {
		tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
		t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
		return tp
	}
	cases := []struct {
		name     string
		opts     func(t *testing.T) []otelwf.Option
		reported bool // something went to otel.Handle
	}{
		{"FailingExporter", func(t *testing.T) []otelwf.Option {
			return []otelwf.Option{otelwf.WithTracerProvider(sdk(t, failingExporter{}))}
		}, true},
		{"PanickingExporter", func(t *testing.T) []otelwf.Option {
			return []otelwf.Option{otelwf.WithTracerProvider(sdk(t, panickingExporter{}))}
		}, true},
		{"PanickingTracer", func(*testing.T) []otelwf.Option {
			return []otelwf.Option{otelwf.WithTracerProvider(panickingTracerProvider{})}
		}, true},
		{"PanickingMeterProvider", func(*testing.T) []otelwf.Option {
			return []otelwf.Option{otelwf.WithMeterProvider(panickingMeterProvider{})}
		}, true},
		{"NilProviders", func(*testing.T) []otelwf.Option {
			return []otelwf.Option{otelwf.WithTracerProvider(nil), otelwf.WithMeterProvider(nil)}
		}, false},
		{"NoOptions", func(*testing.T) []otelwf.Option { return nil }, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h := catchOtelErrors(t)
			assert.Equal(t, want, outcomes(t, otelwf.Instrument(c.opts(t)...)))
			if c.reported {
				assert.NotEmpty(t, h.errs, "the failure is reported to otel.Handle")
			}
		})
	}
}

func TestNilProvidersMeanTheGlobalOnes(t *testing.T) {
	_, b := setup(t)
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	otel.SetTracerProvider(b.tp)
	otel.SetMeterProvider(mp)
	t.Cleanup(func() {
		otel.SetTracerProvider(tracenoop.NewTracerProvider())
		otel.SetMeterProvider(sdkmetric.NewMeterProvider())
	})
	w := newWorkflow[int, int](t, "global", workflow.Tasks{step("t")},
		otelwf.Instrument(otelwf.WithTracerProvider(nil), otelwf.WithMeterProvider(nil)))
	_, err := w.Run(t.Context(), 1)
	require.NoError(t, err)
	assert.Equal(t, "workflow.run global\n  workflow.task t #1\n", b.tree())
	b.reader = reader
	assert.Equal(t, 1.0, b.metrics(t)["workflow.run.started{workflow.name=global}"])
}

func TestOneOptionServesSeveralWorkflowsApart(t *testing.T) {
	instrument, b := setup(t)
	one := newWorkflow[int, int](t, "one", workflow.Tasks{step("x")}, instrument)
	two := newWorkflow[int, int](t, "two", workflow.Tasks{step("y")}, instrument)
	var wg sync.WaitGroup
	for _, w := range []*workflow.Workflow[int, int]{one, two} {
		wg.Go(func() {
			_, err := w.Run(t.Context(), 1, workflow.WithRunID("same"))
			assert.NoError(t, err)
		})
	}
	wg.Wait()
	assert.Equal(t, `workflow.run one
  workflow.task x #1
workflow.run two
  workflow.task y #1
`, b.tree())
	m := b.metrics(t)
	assert.Equal(t, 1.0, m["workflow.run.started{workflow.name=one}"])
	assert.Equal(t, 1.0, m["workflow.run.started{workflow.name=two}"])
}

func TestNoStateIsKeptPastARunsEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("11,000 runs")
	}
	tp := sdktrace.NewTracerProvider() // spans made and dropped
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(sdkmetric.NewManualReader()))
	t.Cleanup(func() {
		_ = tp.Shutdown(context.Background())
		_ = mp.Shutdown(context.Background())
	})
	w := newWorkflow[int, int](t, "many", workflow.Tasks{
		step("a"),
		workflow.Task[int, int]{Name: "b", Dependencies: []string{"a"}, Handler: func(_ context.Context, in int) (int, error) {
			if in%10 == 0 {
				return 0, errBoom // remembered for a Resume's link, up to a bound
			}
			return in, nil
		}},
	}, workflow.WithStore(workflow.NewMemoryStore(workflow.MaxRuns(10))),
		otelwf.Instrument(otelwf.WithTracerProvider(tp), otelwf.WithMeterProvider(mp)))
	runs := func(n int) {
		for i := range n {
			_, _ = w.Run(t.Context(), i)
		}
	}
	heap := func() uint64 {
		runtime.GC()
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return ms.HeapAlloc
	}
	runs(2000) // past the bound of the spans kept for links
	before := heap()
	runs(10000)
	after := heap()
	runtime.KeepAlive(w) // and the state of its instrument
	// Each run kept past its end costs over 1 KB (10,000 kept: 13 MB, when
	// tried).
	grown := int64(after) - int64(before)
	assert.Less(t, grown, int64(2<<20), "the heap grew by %d bytes over 10,000 runs", grown)
}
