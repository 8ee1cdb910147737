// Package otelwf traces and measures workflow runs with OpenTelemetry.
//
// One Option does it all:
//
//	wf, err := workflow.New[Req, Res]("orders", tasks,
//		otelwf.Instrument(otelwf.WithTracerProvider(tp), otelwf.WithMeterProvider(mp)),
//	)
//
// Each run is a span "workflow.run <workflow>", a child of the span in the
// context given to Run, Start, Resume or Scheduler.Trigger (a run the
// Scheduler fires starts a trace of its own). Each attempt of a task is a
// span "workflow.task <task>" under it, and the handler runs in that span's
// context, so the spans it makes (a query, a request) nest under the
// attempt that made them. The wait before a retry is a span
// "workflow.retry_wait <task>" between the two attempts. A failed, timed-out
// or panicking attempt, and a run that did not succeed, have status Error
// and their error as an exception event. A resumed run is a new span, linked
// to the span of the run it resumes when this process saw that run end.
//
// The metrics (runs started, ended and under way, attempts ended, their
// durations, scheduled fires skipped) are listed in the module's README.
//
// Instrumentation never changes a run's outcome: whatever the providers or
// exporters do, including panic, an attempt returns what its handler
// returned; what went wrong is reported to otel.Handle.
//
// It is built on the workflow's public seams only: workflow.WithMiddleware
// for the attempts, in their context, and workflow.WithHook for the runs'
// events. A hook's Event carries neither the workflow's name nor the run's
// trigger, so both are learned from the run's first attempt (workflow.Info
// gives the trigger): a run that ends before any attempt of its workflow has
// run has a span named "workflow.run", without workflow.trigger, and
// metrics without workflow.name.
package otelwf
