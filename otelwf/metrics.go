package otelwf

import (
	"context"
	"sync"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	metricnoop "go.opentelemetry.io/otel/metric/noop"
	tracenoop "go.opentelemetry.io/otel/trace/noop"

	"github.com/b3b01171/workflow"
)

var noopTracer = tracenoop.NewTracerProvider().Tracer(scope)

// Attribute keys, on spans and metrics.
const (
	keyName      = attribute.Key("workflow.name")
	keyRunID     = attribute.Key("workflow.run_id")
	keyTrigger   = attribute.Key("workflow.trigger")
	keyTask      = attribute.Key("workflow.task")
	keyAttempt   = attribute.Key("workflow.attempt")
	keyRunState  = attribute.Key("workflow.run.state")
	keyTaskState = attribute.Key("workflow.task.state")
	keyResumed   = attribute.Key("workflow.resumed")

	// keyError is the error of a failed pass, on a run span's
	// workflow.run.retrying event.
	keyError            = attribute.Key("workflow.error")
	keyExceptionMessage = attribute.Key("exception.message")
)

// durationBuckets, in seconds, reach further than the SDK's default
// (meant for milliseconds): tasks and runs may take an hour.
var durationBuckets = []float64{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600}

// meters are the instruments of the README's metric table, and the
// attribute sets they are recorded with, each made once.
type meters struct {
	runStarted      metric.Int64Counter
	runEnded        metric.Int64Counter
	runDuration     metric.Float64Histogram
	runActive       metric.Int64UpDownCounter
	attemptEnded    metric.Int64Counter
	attemptDuration metric.Float64Histogram
	skipped         metric.Int64Counter

	sets sync.Map // setKey → metric.MeasurementOption
}

func newMeters(mp metric.MeterProvider) meters {
	var meter metric.Meter
	guard(func() { meter = mp.Meter(scope) })
	if meter == nil {
		meter = metricnoop.Meter{}
	}
	return meters{
		runStarted: counter(meter, "workflow.run.started", "{run}", "Runs started, resumed ones included."),
		runEnded:   counter(meter, "workflow.run.ended", "{run}", "Runs ended, by the state they ended in."),
		runDuration: histogram(meter, "workflow.run.duration",
			"Duration of runs, from their start (or resumption) to their end."),
		runActive:       upDownCounter(meter, "workflow.run.active", "{run}", "Runs under way."),
		attemptEnded:    counter(meter, "workflow.task.attempt.ended", "{attempt}", "Task attempts ended, by the state they ended in."),
		attemptDuration: histogram(meter, "workflow.task.attempt.duration", "Duration of task attempts."),
		skipped:         counter(meter, "workflow.schedule.skipped", "{fire}", "Scheduled fires skipped by the overlap policy."),
	}
}

// An instrument the provider refuses (or panics making) is reported, and
// replaced by a no-op one: the others still count.

func counter(meter metric.Meter, name, unit, desc string) metric.Int64Counter {
	var c metric.Int64Counter
	guard(func() {
		var err error
		c, err = meter.Int64Counter(name, metric.WithUnit(unit), metric.WithDescription(desc))
		report(err)
	})
	if c == nil {
		c, _ = metricnoop.Meter{}.Int64Counter(name)
	}
	return c
}

func upDownCounter(meter metric.Meter, name, unit, desc string) metric.Int64UpDownCounter {
	var c metric.Int64UpDownCounter
	guard(func() {
		var err error
		c, err = meter.Int64UpDownCounter(name, metric.WithUnit(unit), metric.WithDescription(desc))
		report(err)
	})
	if c == nil {
		c, _ = metricnoop.Meter{}.Int64UpDownCounter(name)
	}
	return c
}

func histogram(meter metric.Meter, name, desc string) metric.Float64Histogram {
	var h metric.Float64Histogram
	guard(func() {
		var err error
		h, err = meter.Float64Histogram(name, metric.WithUnit("s"), metric.WithDescription(desc),
			metric.WithExplicitBucketBoundaries(durationBuckets...))
		report(err)
	})
	if h == nil {
		h, _ = metricnoop.Meter{}.Float64Histogram(name)
	}
	return h
}

func report(err error) {
	if err != nil {
		otel.Handle(err)
	}
}

// setKey names an attribute set: the workflow's name ("" while unknown:
// left out), a task ("": none) and a state ("": none).
type setKey struct {
	name, task string
	state      workflow.State
	taskSet    bool
}

// attrs returns the attribute set of k, made once.
func (m *meters) attrs(k setKey) metric.MeasurementOption {
	if o, ok := m.sets.Load(k); ok {
		return o.(metric.MeasurementOption)
	}
	kv := make([]attribute.KeyValue, 0, 3)
	if k.name != "" {
		kv = append(kv, keyName.String(k.name))
	}
	if k.taskSet {
		kv = append(kv, keyTask.String(k.task))
		if k.state != "" {
			kv = append(kv, keyTaskState.String(string(k.state)))
		}
	} else if k.state != "" {
		kv = append(kv, keyRunState.String(string(k.state)))
	}
	o, _ := m.sets.LoadOrStore(k, metric.WithAttributeSet(attribute.NewSet(kv...)))
	return o.(metric.MeasurementOption)
}

// The measurements. A nil context is never passed to a provider.
var bg = context.Background()

func (m *meters) runStart(name string) {
	a := m.attrs(setKey{name: name})
	m.runStarted.Add(bg, 1, a)
	m.runActive.Add(bg, 1, a)
}

func (m *meters) runEnd(name string, state workflow.State, d time.Duration, timed bool) {
	m.runActive.Add(bg, -1, m.attrs(setKey{name: name}))
	a := m.attrs(setKey{name: name, state: state})
	m.runEnded.Add(bg, 1, a)
	if timed {
		m.runDuration.Record(bg, d.Seconds(), a)
	}
}

func (m *meters) attemptEnd(a metric.MeasurementOption, d time.Duration, timed bool) {
	m.attemptEnded.Add(bg, 1, a)
	if timed {
		m.attemptDuration.Record(bg, d.Seconds(), a)
	}
}

func (m *meters) skip(name string) {
	m.skipped.Add(bg, 1, m.attrs(setKey{name: name}))
}
