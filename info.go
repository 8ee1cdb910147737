package workflow

import "context"

// RunInfo says which run, task and attempt a handler call is.
type RunInfo struct {
	Workflow, RunID, Task string
	// Trigger is the run's RunStatus.Trigger: "manual" or "schedule".
	Trigger string
	// Attempt counts from 1, and goes on counting across an interruption.
	Attempt int
}

// Info returns, inside a handler, which run, task and attempt the call is,
// and false for a context that did not come from the engine. It is the way
// to build an idempotency key for a side effect that must happen once even
// though a task interrupted by a crash runs again: RunID + "/" + Task.
func Info(ctx context.Context) (RunInfo, bool) {
	if ctx == nil {
		return RunInfo{}, false
	}
	c, ok := ctx.Value(infoKey{}).(*taskCtx)
	if !ok {
		return RunInfo{}, false
	}
	return RunInfo{Workflow: c.r.e.name, RunID: c.r.id, Task: c.r.e.plan.names[c.task], Trigger: c.r.trigger, Attempt: c.attempt}, true
}

type infoKey struct{}

// taskCtx is the context a handler gets: the pass's context, plus which
// task and attempt this is, for Info. A goroutine reuses one for the tasks
// it runs one after another, so that Info costs no allocation per task.
type taskCtx struct {
	context.Context
	r       *run
	task    int32
	attempt int
}

func (c *taskCtx) Value(key any) any {
	if _, ok := key.(infoKey); ok {
		return c
	}
	return c.Context.Value(key)
}
