package workflow

import (
	"context"
	"errors"
)

// TaskCall is one attempt of a task, as middleware sees it.
type TaskCall struct {
	Workflow, RunID, Task string
	// Attempt counts from 1, across retries, passes and resumes as the
	// task's events do.
	Attempt int
	// Input is what the task's handler gets; a middleware may pass on a
	// call with another Input, of the same type.
	Input any
}

// TaskHandler runs one attempt of a task: the task's handler, wrapped in
// the middleware given after the one it is passed to.
type TaskHandler func(ctx context.Context, call TaskCall) (any, error)

// WithMiddleware wraps every attempt of every task in mw, for tracing,
// metrics, logging, authorization or rate limits of your own. The first
// middleware given is the outermost, across several WithMiddleware
// options too, in order. A middleware runs inside the attempt's timeout,
// with the attempt's context (cancellation, deadline, Info), and must call
// next with a context derived from the one it got, and the call it got
// (or a copy with another Input), to run the handler. What it returns is what the attempt returns: an error is
// retried as the handler's would be, and a panic is recovered as the
// handler's is. Without middleware, nothing is added to an attempt.
func WithMiddleware(mw ...func(next TaskHandler) TaskHandler) Option {
	return func(c *config) {
		for k, m := range mw {
			if m == nil {
				c.bad("WithMiddleware: middleware %d is nil", k)
				return
			}
		}
		c.middleware = append(c.middleware, mw...)
	}
}

// errLostCall is the error of a middleware chain whose innermost call has
// lost the attempt's context: a middleware called next with a context not
// derived from the one it got.
var errLostCall = Permanent(errors.New("a middleware called next with a context not derived from the attempt's"))

// chain composes the workflow's middleware around the handler each call
// carries, once, in New. A middleware that panics or gives a nil
// TaskHandler is a problem of the definition.
func chain(mw []func(TaskHandler) TaskHandler) (h TaskHandler, err error) {
	k := len(mw) - 1
	defer func() {
		if v := recover(); v != nil {
			h, err = nil, newError(ErrInvalidWorkflow, "WithMiddleware: middleware %d panicked: %v", k, v)
		}
	}()
	h = func(ctx context.Context, call TaskCall) (any, error) {
		tc, ok := ctx.Value(infoKey{}).(*taskCtx)
		if !ok {
			return nil, errLostCall
		}
		return tc.r.handler(tc.task)(ctx, call.Input)
	}
	for ; k >= 0; k-- {
		if h = mw[k](h); h == nil {
			return nil, newError(ErrInvalidWorkflow, "WithMiddleware: middleware %d returned a nil TaskHandler", k)
		}
	}
	return h, nil
}

// viaMiddleware is the handler of attempt n of task i in run r when the
// workflow has middleware: the task's own (or its replacement), reached
// through the chain.
func (r *run) viaMiddleware(i int32, n int) handlerFunc {
	return func(ctx context.Context, in any) (any, error) {
		return r.e.chain(ctx, TaskCall{Workflow: r.e.name, RunID: r.id, Task: r.e.plan.names[i], Attempt: n, Input: in})
	}
}
