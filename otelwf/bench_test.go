package otelwf_test

import (
	"context"
	"runtime"
	"strconv"
	"testing"
	"time"

	metricnoop "go.opentelemetry.io/otel/metric/noop"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	tracenoop "go.opentelemetry.io/otel/trace/noop"

	"github.com/b3b01171/workflow"
	"github.com/b3b01171/workflow/otelwf"
)

// fanoutTasks is the root module's fanout workload: a root, n-2 tasks that
// depend on it, and a sink that depends on all of those; no-op handlers.
func fanoutTasks(n int) workflow.Tasks {
	pass := func(_ context.Context, in int) (int, error) { return in, nil }
	tasks := workflow.Tasks{workflow.Task[int, int]{Name: "root", Handler: pass}}
	mid := make([]string, 0, n-2)
	for i := 1; i < n-1; i++ {
		name := "t" + strconv.Itoa(i)
		mid = append(mid, name)
		tasks = append(tasks, workflow.Task[int, int]{Name: name, Dependencies: []string{"root"}, Handler: pass})
	}
	return append(tasks, workflow.Task[workflow.Inputs, int]{Name: "sink", Dependencies: mid,
		Handler: func(_ context.Context, in workflow.Inputs) (int, error) { return workflow.Get[int](in, "t1") }})
}

// seams are a hook and a middleware that do nothing.
var seams = []workflow.Option{
	workflow.WithHook(func(workflow.Event) {}),
	workflow.WithMiddleware(func(next workflow.TaskHandler) workflow.TaskHandler { return next }),
}

// cost adds up the wall time and heap allocation of measured runs.
type cost struct {
	runs          int
	elapsed       time.Duration
	bytes, allocs uint64
}

func (c *cost) measure(f func()) {
	var a, z runtime.MemStats
	runtime.ReadMemStats(&a)
	t := time.Now()
	f()
	c.elapsed += time.Since(t)
	runtime.ReadMemStats(&z)
	c.runs++
	c.bytes += z.TotalAlloc - a.TotalAlloc
	c.allocs += z.Mallocs - a.Mallocs
}

func (c *cost) perTask(n int) (ns, bytes, allocs float64) {
	k := float64(c.runs) * float64(n)
	return float64(c.elapsed.Nanoseconds()) / k, float64(c.bytes) / k, float64(c.allocs) / k
}

// BenchmarkRun measures Run of the fanout workload with Instrument, on
// no-op providers and on the SDK (spans batched to an exporter that drops
// them, metrics aggregated for a reader), against the same workflow
// without it, run alternately: ns/task, B/task and allocs/task of the
// instrumented run, base-ns/task of the plain one, and x-base, their ratio.
// "seams" is what the core's seams cost by themselves: a hook and a
// middleware that do nothing, in place of Instrument.
func BenchmarkRun(b *testing.B) {
	providers := []struct {
		name string
		opts func(b *testing.B) []otelwf.Option
	}{
		{"seams", nil},
		{"noop", func(*testing.B) []otelwf.Option {
			return []otelwf.Option{otelwf.WithTracerProvider(tracenoop.NewTracerProvider()),
				otelwf.WithMeterProvider(metricnoop.NewMeterProvider())}
		}},
		{"sdk", func(b *testing.B) []otelwf.Option {
			tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(tracetest.NewNoopExporter()))
			mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(sdkmetric.NewManualReader()))
			b.Cleanup(func() {
				_ = tp.Shutdown(context.Background())
				_ = mp.Shutdown(context.Background())
			})
			return []otelwf.Option{otelwf.WithTracerProvider(tp), otelwf.WithMeterProvider(mp)}
		}},
	}
	for _, p := range providers {
		for _, n := range []int{1000, 10000} {
			b.Run(p.name+"/N="+strconv.Itoa(n), func(b *testing.B) {
				tasks := fanoutTasks(n)
				plain := workflow.MustNew[int, int]("bench", tasks)
				options := seams
				if p.opts != nil {
					options = []workflow.Option{otelwf.Instrument(p.opts(b)...)}
				}
				traced := workflow.MustNew[int, int]("bench", tasks, options...)
				run := func(w *workflow.Workflow[int, int]) func() {
					return func() {
						if out, err := w.Run(context.Background(), 1); err != nil || out != 1 {
							b.Fatalf("Run = %d, %v", out, err)
						}
					}
				}
				var subject, base cost
				for b.Loop() {
					subject.measure(run(traced))
					b.StopTimer()
					base.measure(run(plain))
					b.StartTimer()
				}
				ns, by, al := subject.perTask(n)
				bns, _, _ := base.perTask(n)
				b.ReportMetric(float64(subject.elapsed.Nanoseconds())/float64(subject.runs), "ns/op")
				b.ReportMetric(ns, "ns/task")
				b.ReportMetric(by, "B/task")
				b.ReportMetric(al, "allocs/task")
				b.ReportMetric(bns, "base-ns/task")
				b.ReportMetric(ns/bns, "x-base")
			})
		}
	}
}
