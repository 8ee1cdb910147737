package workflow

import (
	"context"
	"errors"
	"log/slog"
	"runtime"
)

// The observers of a run — its hooks and its logger — are user code, which
// may block, panic or call runtime.Goexit. So they never run under the
// run's lock nor on a goroutine the engine needs: record queues each event
// in r.obs, and one goroutine at a time (r.observing) delivers the queue, in
// order, outside the lock. A panicking hook or log handler is recovered and
// its event dropped for it; one that calls runtime.Goexit ends the
// delivering goroutine, and a new one carries on with the next event.
// Wait returns once the run's end has been delivered.

// errGoexitCallback stands for the panic value of a callback that called
// runtime.Goexit.
var errGoexitCallback = errors.New("runtime.Goexit")

// observation is an event to deliver to a run's observers, or, when err is
// set, a failed write to the store to log.
type observation struct {
	ev  Event
	err error
}

// observe queues o for the run's observers, and starts the delivering
// goroutine if none is at work. The caller holds r.mu.
func (r *run) observe(o observation) {
	r.obs = append(r.obs, o)
	if !r.observing {
		r.observing = true
		go r.deliver()
	}
}

// deliver gives the queued observations to the hooks and the logger, one
// after the other, until the queue is empty.
func (r *run) deliver() {
	g := goid() // what a hook's own Wait is told apart by
	for {
		r.mu.Lock()
		if r.obsAt == len(r.obs) {
			clear(r.obs)
			r.obs, r.obsAt = r.obs[:0], 0
			r.observing = false
			r.settle()
			r.mu.Unlock()
			return
		}
		o := r.obs[r.obsAt]
		r.obsAt++
		r.mu.Unlock()
		if o.err != nil {
			r.e.logError(r.id, "workflow: recording the run failed", o.err)
			continue
		}
		for _, h := range r.e.cfg.hooks {
			r.callHook(h, o.ev, g)
		}
		if l := r.e.cfg.logger; l != nil {
			r.e.callback(r.id, "the logger", func() { r.e.log(l, o.ev) }, r.redeliver)
		}
	}
}

// callHook calls h with ev, as deliver's guard, on the goroutine g.
func (r *run) callHook(h func(Event), ev Event, g int64) {
	r.hooker.Store(g)
	defer r.hooker.Store(0)
	r.e.callback(r.id, "a hook", func() { h(ev) }, r.redeliver)
}

// goid is the calling goroutine's ID, as the first line of its stack
// trace ("goroutine 42 [running]:") gives it. The engine reads it once per
// round of deliveries, and in a Wait called while a hook runs, to tell the
// hook's own goroutine from others.
func goid() int64 {
	var buf [32]byte
	n := runtime.Stack(buf[:], false)
	const prefix = "goroutine "
	var id int64
	for _, c := range buf[min(len(prefix), n):n] {
		if c < '0' || c > '9' {
			break
		}
		id = id*10 + int64(c-'0')
	}
	return id
}

// redeliver carries on delivering on a new goroutine, after a callback
// ended the delivering one with runtime.Goexit.
func (r *run) redeliver() { go r.deliver() }

// callback calls f, user code run for run runID (what names it in logs),
// and survives it: a panic is recovered and logged; a runtime.Goexit,
// which ends the calling goroutine whatever is done, is logged, then
// goexited is called (to carry on the caller's work elsewhere).
func (e *engine) callback(runID, what string, f func(), goexited func()) {
	returned := false
	defer func() {
		if returned {
			return
		}
		if v := recover(); v != nil {
			e.logPanic(runID, what, v)
			return
		}
		e.logPanic(runID, what, errGoexitCallback)
		goexited()
	}()
	f()
	returned = true
}

// logPanic logs that user code (what) panicked with v, or called
// runtime.Goexit, on the workflow's logger, or slog.Default() without one.
func (e *engine) logPanic(runID, what string, v any) {
	msg := "workflow: " + what + " panicked"
	if v == errGoexitCallback {
		msg = "workflow: " + what + " called runtime.Goexit"
	}
	e.safeLog(func(l *slog.Logger) {
		l.Error(msg, "workflow", e.name, "run_id", runID, "panic", v)
	})
}

// logError logs err, as logPanic does.
func (e *engine) logError(runID, msg string, err error) {
	e.safeLog(func(l *slog.Logger) { l.Error(msg, "workflow", e.name, "run_id", runID, "error", err) })
}

// safeLog calls f with the workflow's logger, or slog.Default() without
// one, as the function safeLog does.
func (e *engine) safeLog(f func(l *slog.Logger)) {
	l := e.cfg.logger
	if l == nil {
		l = slog.Default()
	}
	safeLog(func() { f(l) })
}

// safeLog calls f, which writes a log line, on a goroutine of its own: a
// log handler that panics or calls runtime.Goexit loses the line and
// nothing else.
func safeLog(f func()) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer func() { _ = recover() }()
		f()
	}()
	<-done
}

// log writes ev to l, at a level that says how it went.
func (e *engine) log(l *slog.Logger, ev Event) {
	level := slog.LevelInfo
	switch ev.Type {
	case EventTaskStarted, EventTaskSucceeded, EventTaskSkipped, EventItemsStarted, EventItemsProgress:
		level = slog.LevelDebug
	case EventTaskRetrying, EventRunRetrying, EventScheduleSkipped, EventTaskCancelled, EventRunInterrupted,
		EventItemRetrying, EventItemFailed: // the Map task's own end says more
		level = slog.LevelWarn
	case EventTaskFailed, EventTaskTimedOut, EventRunFailed, EventRunTimedOut, EventRunCancelled:
		level = slog.LevelError
	}
	ctx := context.Background()
	if !l.Enabled(ctx, level) {
		return
	}
	attrs := []slog.Attr{slog.String("workflow", e.name), slog.String("run_id", ev.RunID)}
	if ev.Task != "" {
		attrs = append(attrs, slog.String("task", ev.Task))
	}
	if ev.Attempt > 0 {
		attrs = append(attrs, slog.Int("attempt", ev.Attempt))
	}
	switch ev.Type {
	case EventItemRetrying, EventItemFailed:
		attrs = append(attrs, slog.Int("item", ev.Item))
	case EventItemsStarted:
		attrs = append(attrs, slog.Int("items", ev.Item))
	case EventItemsProgress:
		attrs = append(attrs, slog.Int("items_done", ev.Item))
	}
	if ev.Error != "" {
		attrs = append(attrs, slog.String("error", ev.Error))
	}
	l.LogAttrs(ctx, level, "workflow "+ev.Type, attrs...)
}

// skipped gives ev, a schedule_skipped event, to the workflow's hooks and
// logger, in order, on a goroutine of its own: the fire loop that skipped
// it goes on whatever they do.
func (e *engine) skipped(ev Event) {
	if !e.observed {
		return
	}
	go e.observeSkipped(ev, 0)
}

// observeSkipped gives ev to the hooks from the k-th on, then the logger.
func (e *engine) observeSkipped(ev Event, k int) {
	for ; k < len(e.cfg.hooks); k++ {
		h, next := e.cfg.hooks[k], k+1
		e.callback("", "a hook", func() { h(ev) }, func() { go e.observeSkipped(ev, next) })
	}
	if l := e.cfg.logger; l != nil {
		e.callback("", "the logger", func() { e.log(l, ev) }, func() {})
	}
}
