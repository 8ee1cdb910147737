package dashboard

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"

	"github.com/b3b01171/workflow"
)

// flow is a workflow with its types erased: what the pages need of it.
type flow interface {
	name() string
	graph() workflow.Graph
	inputType() string
	inspect(ctx context.Context, runID string) (workflow.RunStatus, error)
	history(ctx context.Context, opts ...workflow.HistoryOption) ([]workflow.RunStatus, error)
	cancel(ctx context.Context, runID string) error
	// resume starts Resume on its own goroutine, which ends with the run;
	// the channel gets Resume's error then.
	resume(ctx context.Context, runID string) <-chan error
	// start decodes input (JSON; empty: the zero In) and starts a run.
	start(ctx context.Context, input []byte) (runID string, err error)
}

type typed[In, Out any] struct {
	wf *workflow.Workflow[In, Out]
	g  workflow.Graph // a definition never changes
}

func newTyped[In, Out any](wf *workflow.Workflow[In, Out]) *typed[In, Out] {
	return &typed[In, Out]{wf: wf, g: wf.Graph()}
}

func (t *typed[In, Out]) name() string          { return t.wf.Name() }
func (t *typed[In, Out]) graph() workflow.Graph { return t.g }
func (t *typed[In, Out]) inputType() string     { return reflect.TypeFor[In]().String() }

func (t *typed[In, Out]) inspect(ctx context.Context, runID string) (workflow.RunStatus, error) {
	return t.wf.Inspect(ctx, runID)
}

func (t *typed[In, Out]) history(ctx context.Context, opts ...workflow.HistoryOption) ([]workflow.RunStatus, error) {
	return t.wf.History(ctx, opts...)
}

func (t *typed[In, Out]) cancel(ctx context.Context, runID string) error {
	return t.wf.Cancel(ctx, runID)
}

func (t *typed[In, Out]) resume(ctx context.Context, runID string) <-chan error {
	done := make(chan error, 1)
	go func() {
		_, err := t.wf.Resume(ctx, runID)
		done <- err
	}()
	return done
}

// errBadInput marks a run input the user typed that does not decode.
var errBadInput = errors.New("bad input")

func (t *typed[In, Out]) start(ctx context.Context, input []byte) (string, error) {
	var in In
	if len(bytes.TrimSpace(input)) > 0 {
		dec := json.NewDecoder(bytes.NewReader(input))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&in); err != nil {
			return "", fmt.Errorf("%w: the input is not a JSON %s: %w", errBadInput, reflect.TypeFor[In](), err)
		}
		if _, err := dec.Token(); err != io.EOF {
			return "", fmt.Errorf("%w: the input has more after its JSON value", errBadInput)
		}
	}
	x, err := t.wf.Start(ctx, in)
	if err != nil {
		return runIDOf(err), err
	}
	return x.ID(), nil
}

// runIDOf is the run an error is about, if it names one.
func runIDOf(err error) string {
	var werr *workflow.WorkflowError
	if errors.As(err, &werr) {
		return werr.RunID
	}
	return ""
}
