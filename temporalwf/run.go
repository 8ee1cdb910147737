package temporalwf

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"

	"github.com/b3b01171/workflow"
	"github.com/b3b01171/workflow/internal/plan"
)

// Execution is a run started by Start on Temporal.
type Execution[Out any] struct {
	c       client.Client
	d       *dag
	id      string
	timeout time.Duration
}

// Start starts a run of wf on in, on Temporal, and returns without waiting
// for it: a worker polling the TaskQueue (with wf registered by Register)
// runs it. The workflow input is validated here, as in-process: an invalid
// one is a *workflow.WorkflowError wrapping workflow.ErrInvalidInput, and
// no run starts. A run ID that Temporal already holds wraps
// workflow.ErrDuplicateRun.
func Start[In, Out any](ctx context.Context, c client.Client, wf *workflow.Workflow[In, Out], in In, opts ...Option) (*Execution[Out], error) {
	d, err := newDAG(wf)
	if err != nil {
		return nil, err
	}
	if ctx == nil || c == nil {
		return nil, d.opError("", "Start", fmt.Errorf("nil context or client: %w", workflow.ErrInvalidInput))
	}
	o, err := d.options("Start", opts)
	if err != nil {
		return nil, err
	}
	id := o.runID
	if id == "" {
		id = uuid.NewString()
	}
	if d.p.ChecksInput {
		if err := d.p.Check(in, plan.Boundary{RunID: id, Stage: plan.StageWorkflowInput}); err != nil {
			return nil, err
		}
	}
	data, err := json.Marshal(in)
	if err != nil {
		return nil, d.opError(id, "Start", fmt.Errorf("encoding the input (%T): %w: %w", in, err, workflow.ErrInvalidInput))
	}
	_, err = c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{
		ID:                                       id,
		TaskQueue:                                o.taskQueue,
		WorkflowExecutionTimeout:                 o.runTimeout,
		WorkflowIDReusePolicy:                    enumspb.WORKFLOW_ID_REUSE_POLICY_REJECT_DUPLICATE,
		WorkflowExecutionErrorWhenAlreadyStarted: true,
	}, d.p.Workflow, json.RawMessage(data))
	if err != nil {
		var started *serviceerror.WorkflowExecutionAlreadyStarted
		if errors.As(err, &started) {
			return nil, d.opError(id, "Start", fmt.Errorf("Temporal already holds a run with this ID: %w", workflow.ErrDuplicateRun))
		}
		return nil, d.opError(id, "Start", err)
	}
	return &Execution[Out]{c: c, d: d, id: id, timeout: o.runTimeout}, nil
}

// Run runs wf on in on Temporal, as Start does, and waits for the run to
// end, as Execution.Wait does.
func Run[In, Out any](ctx context.Context, c client.Client, wf *workflow.Workflow[In, Out], in In, opts ...Option) (Out, error) {
	x, err := Start(ctx, c, wf, in, opts...)
	if err != nil {
		var zero Out
		return zero, err
	}
	return x.Wait(ctx)
}

// ID returns the run's ID: its Temporal workflow ID.
func (x *Execution[Out]) ID() string { return x.id }

// Wait waits for the run to end and returns its output, decoded into Out,
// or its error: a *workflow.WorkflowError naming the failed task, its
// attempts and its message, wrapping the library's sentinels
// (workflow.ErrTimeout, ErrPanic, ErrCancelled, ErrInvalidInput) as the
// in-process engine's would; the Go type of the handler's error is in
// Details["error_type"] (the error itself stayed in the worker). If ctx
// ends first, Wait returns ctx's error and the run goes on: it is
// Temporal's now.
func (x *Execution[Out]) Wait(ctx context.Context) (Out, error) {
	var zero Out
	if ctx == nil {
		return zero, x.d.opError(x.id, "Wait", fmt.Errorf("nil context: %w", workflow.ErrInvalidInput))
	}
	var raw json.RawMessage
	err := x.c.GetWorkflow(ctx, x.id, "").Get(ctx, &raw)
	if err != nil {
		if ctx.Err() != nil {
			return zero, ctx.Err()
		}
		return zero, x.d.runError(x.id, err, x.timeout)
	}
	v, err := decode(raw, x.d.p.Out)
	if err != nil {
		return zero, x.d.opError(x.id, "Wait", err)
	}
	out, _ := v.(Out)
	return out, nil
}

// Cancel cancels the run runID of wf on Temporal and waits until it has
// ended as cancelled, or ctx ends. It wraps workflow.ErrNotFound for a run
// Temporal does not know, and workflow.ErrRunEnded for one that has
// already ended, or ended otherwise while being cancelled (the error names
// its state).
func Cancel[In, Out any](ctx context.Context, c client.Client, wf *workflow.Workflow[In, Out], runID string) error {
	d, err := newDAG(wf)
	if err != nil {
		return err
	}
	if ctx == nil || c == nil {
		return d.opError(runID, "Cancel", fmt.Errorf("nil context or client: %w", workflow.ErrInvalidInput))
	}
	state, err := d.state(ctx, c, runID, "Cancel")
	if err != nil {
		return err
	}
	if state.Ended() {
		return d.opError(runID, "Cancel", fmt.Errorf("the run has already ended (state %s): %w", state, workflow.ErrRunEnded))
	}
	if err := c.CancelWorkflow(ctx, runID, ""); err != nil {
		return d.opError(runID, "Cancel", err)
	}
	err = c.GetWorkflow(ctx, runID, "").Get(ctx, nil)
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if err == nil || !errors.As(err, new(*temporal.CanceledError)) {
		state, _ := d.state(ctx, c, runID, "Cancel")
		return d.opError(runID, "Cancel", fmt.Errorf("the run ended (state %s) before it could be cancelled: %w", state, workflow.ErrRunEnded))
	}
	return nil
}

// state is the state of run runID, from Temporal's description of it.
func (d *dag) state(ctx context.Context, c client.Client, runID, op string) (workflow.State, error) {
	desc, err := c.DescribeWorkflowExecution(ctx, runID, "")
	if err != nil {
		var nf *serviceerror.NotFound
		if errors.As(err, &nf) {
			return "", d.opError(runID, op, fmt.Errorf("no such run: %w", workflow.ErrNotFound))
		}
		return "", d.opError(runID, op, err)
	}
	ei := desc.GetWorkflowExecutionInfo()
	if ei.GetType().GetName() != d.p.Workflow {
		return "", d.opError(runID, op, fmt.Errorf("the run is of Temporal workflow %q: %w", ei.GetType().GetName(), workflow.ErrNotFound))
	}
	return stateOf(ei.GetStatus()), nil
}

// stateOf maps a Temporal workflow execution status onto a run's state.
func stateOf(s enumspb.WorkflowExecutionStatus) workflow.State {
	switch s {
	case enumspb.WORKFLOW_EXECUTION_STATUS_COMPLETED:
		return workflow.StateSucceeded
	case enumspb.WORKFLOW_EXECUTION_STATUS_FAILED:
		return workflow.StateFailed
	case enumspb.WORKFLOW_EXECUTION_STATUS_TIMED_OUT:
		return workflow.StateTimedOut
	case enumspb.WORKFLOW_EXECUTION_STATUS_CANCELED, enumspb.WORKFLOW_EXECUTION_STATUS_TERMINATED:
		return workflow.StateCancelled
	}
	return workflow.StateRunning
}

// options applies opts for op; every operation needs a task queue but
// Cancel and Inspect, which take none.
func (d *dag) options(op string, opts []Option) (options, error) {
	var o options
	for _, f := range opts {
		if f != nil {
			f(&o)
		}
	}
	if o.taskQueue == "" {
		o.bad("no TaskQueue: say which task queue the workers poll")
	}
	if len(o.errs) > 0 {
		return o, d.opError(o.runID, op, fmt.Errorf("%s: %w", strings.Join(o.errs, "; "), workflow.ErrInvalidInput))
	}
	return o, nil
}

// opError is the error of an operation of this package on a run (runID
// may be empty), in the words of the library's errors.
func (d *dag) opError(runID, op string, err error) error {
	var b strings.Builder
	fmt.Fprintf(&b, "workflow %q", d.p.Workflow)
	if runID != "" {
		fmt.Fprintf(&b, " run %s", runID)
	}
	if op != "" {
		fmt.Fprintf(&b, ": %s", op)
	}
	return fmt.Errorf("%s: %w", b.String(), err)
}

// runError turns the error with which Temporal says run runID ended into
// the *workflow.WorkflowError the in-process engine would give. timeout
// is the run's RunTimeout, when known (0 otherwise).
func (d *dag) runError(runID string, err error, timeout time.Duration) error {
	f := plan.Failure{Workflow: d.p.Workflow, RunID: runID}
	var app *temporal.ApplicationError
	var canceled *temporal.CanceledError
	var timedOut *temporal.TimeoutError
	var terminated *temporal.TerminatedError
	var nf *serviceerror.NotFound
	switch {
	case errors.As(err, &app) && app.Type() == runErrorType:
		if derr := app.Details(&f); derr != nil {
			f.Message = app.Message()
		}
		f.Workflow, f.RunID = d.p.Workflow, runID
	case errors.As(err, &canceled):
		f.What, f.Message, f.Sentinels = "cancelled", "Cancel called", []string{"cancelled"}
	case errors.As(err, &terminated):
		f.What, f.Message, f.Sentinels = "cancelled", "terminated in Temporal", []string{"cancelled"}
	case errors.As(err, &timedOut):
		f.What, f.Sentinels = "timed out", []string{"timeout"}
		f.Message = "the run exceeded its RunTimeout"
		if timeout > 0 {
			f.Message = fmt.Sprintf("the run exceeded its RunTimeout (%v)", timeout)
		}
	case errors.As(err, &nf):
		return d.opError(runID, "", fmt.Errorf("no such run: %w", workflow.ErrNotFound))
	default:
		return d.opError(runID, "", err)
	}
	return plan.Error(f)
}
