package workflow

import (
	"context"
	"errors"
	"reflect"
)

// Sub returns a task that runs the workflow child as one step of another:
// its input is child's In (the output of its one dependency, or the
// workflow input without one, as for any task), and its output is the
// child run's output. New checks the types like those of any task.
//
// The child runs in this process as a run of its own, recorded in its own
// store with Trigger "parent", ParentRunID the parent run's ID, and the ID
// parentRunID + "." + name, so it shows in child's History. Cancelling the
// parent run, or its timing out, cancels the child run (which ends
// cancelled). The child's failure is the task's: errors.As on the parent's
// *WorkflowError's Err (or errors.Unwrap of it) reaches the child's. A Sub
// task has no retry of its own (retries belong to the child's tasks); when
// Resume or RetryOnFailure runs the task again, it resumes the child run
// that failed rather than starting another, and a child run that
// succeeded gives its recorded output without running again. A child run
// left unfinished by a stopped process is recovered with its parent (when
// the parent's Recover resumes the parent run), never by child's own
// Recover.
func Sub[I, O any](name string, child *Workflow[I, O], dependencies ...string) AnyTask {
	return subTask[I, O]{name: name, child: child, deps: dependencies}
}

type subTask[I, O any] struct {
	name  string
	child *Workflow[I, O]
	deps  []string
}

func (s subTask[I, O]) spec() taskSpec {
	sp := taskSpec{name: s.name, deps: s.deps, in: reflect.TypeFor[I](), out: reflect.TypeFor[O](), sub: true}
	if s.child != nil && s.child.e != nil {
		child, name := s.child, s.name
		sp.child, sp.childWorkflow = child.e.name, child
		sp.handler = func(ctx context.Context, v any) (any, error) {
			in, _ := v.(I)
			return runChild(ctx, child, name, in)
		}
	}
	return sp
}

// runChild runs, resumes or reads the child run of the Sub task named task.
func runChild[I, O any](ctx context.Context, child *Workflow[I, O], task string, in I) (O, error) {
	var zero O
	tc, ok := ctx.Value(infoKey{}).(*taskCtx)
	if !ok { // called outside the engine: a plain run
		return child.Run(ctx, in)
	}
	e := child.e
	id := tc.r.id + "." + task
	// The child run ends cancelled when the parent's pass or run ends, for
	// whatever cause: the parent's RunTimeout is not the child's.
	parent := ctx
	ctx, cancel := context.WithCancelCause(context.WithoutCancel(parent))
	defer cancel(nil)
	stop := context.AfterFunc(parent, func() { cancel(errParentEnded) })
	defer stop()
	rs, err := e.cfg.store.Get(ctx, e.name, id)
	var r *run
	switch {
	case errors.Is(err, ErrNotFound):
		r, err = e.start(ctx, in, []RunOption{WithRunID(id), withParent(tc.r.id)})
	case err != nil:
		return zero, err
	case rs.State == StateSucceeded:
		return child.Wait(ctx, id)
	default:
		// A child run left running or pending was its parent's, whose
		// process stopped: this parent run takes it over.
		r, err = e.resume(ctx, id, []RunOption{byParent}, rs.State == StateRunning || rs.State == StatePending)
		if errors.Is(err, errClaimedElsewhere) {
			err = opError(e.name, id, "Sub", newError(ErrRunElsewhere, "the child run is under way elsewhere"))
		}
	}
	if err != nil {
		return zero, err
	}
	// The child's base context is ctx: it ends soon after ctx does.
	<-r.done
	return (&Execution[O]{r: r}).result()
}

var errParentEnded = errors.New("the parent run ended")

// byParent marks the resumption of a child run by its parent's Sub task.
func byParent(c *runConfig) { c.byParent = true }

// withParent marks the child run of a Sub task of run parent.
func withParent(parent string) RunOption {
	return func(c *runConfig) { c.trigger, c.parentRunID = TriggerParent, parent }
}
