package workflowtest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"

	"github.com/b3b01171/workflow"
)

// errStubFailure is the error of a stub told to fail with a nil error: a
// handler that "fails" with nil would succeed, which is never what the
// test meant.
var errStubFailure = errors.New("workflowtest: stub failure")

// Stub is a fake task handler: its Handler method gives a configured
// result and records each call, for a test to check afterwards. Pass
// s.Handler to workflow.ReplaceTask or use it as a Task's Handler.
//
// A Stub is safe for concurrent use, as handlers must be when a task's
// attempts overlap or many runs share it. The zero Stub returns the zero O
// and a nil error. A Stub must not be copied after first use.
type Stub[I, O any] struct {
	out   O
	err   error
	fails int // how many calls, the first ones, return err

	mu     sync.Mutex
	inputs []I
}

// Returns makes a Stub whose every call returns out and a nil error. Each
// call gets the same out: if it holds a pointer, slice or map, the calls
// share what it points to.
func Returns[I, O any](out O) *Stub[I, O] {
	return &Stub[I, O]{out: out}
}

// Fails makes a Stub whose every call returns the zero O and err. A nil
// err stands for an error whose message is "workflowtest: stub failure",
// so that the stub fails as its name says.
func Fails[I, O any](err error) *Stub[I, O] {
	return &Stub[I, O]{err: failure(err), fails: -1}
}

// FailsThenReturns makes a Stub whose first n calls return the zero O and
// err, and whose later calls return out and a nil error: a dependency that
// is down for a while, to test a task's RetryPolicy. With n = 0 it is
// Returns(out). A nil err stands for an error as in Fails. A negative n is
// a mistake in the test: every call of that Stub then fails, with an error
// that says so and that the workflow does not retry (workflow.Permanent).
func FailsThenReturns[I, O any](n int, err error, out O) *Stub[I, O] {
	if n < 0 {
		return &Stub[I, O]{fails: -1, err: workflow.Permanent(fmt.Errorf("workflowtest: FailsThenReturns(%d, ...): the number of failures must be ≥ 0", n))}
	}
	return &Stub[I, O]{out: out, err: failure(err), fails: n}
}

func failure(err error) error {
	if err == nil {
		return errStubFailure
	}
	return err
}

// Handler records the call and its input, then returns the configured
// result. It ignores ctx: a call made with a context that is already done
// is recorded and answered like any other, so that a test gets the same
// result whatever the timing. To test how a task reacts to cancellation,
// write a handler that waits on ctx.
func (s *Stub[I, O]) Handler(ctx context.Context, in I) (O, error) {
	s.mu.Lock()
	n := len(s.inputs) // calls before this one
	s.inputs = append(s.inputs, in)
	s.mu.Unlock()
	if s.fails < 0 || n < s.fails {
		var zero O
		return zero, s.err
	}
	return s.out, nil
}

// Calls returns how many times Handler has been called.
func (s *Stub[I, O]) Calls() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.inputs)
}

// Inputs returns the input of each call of Handler, in the order the calls
// were made, in a new slice: later calls do not change it, nor does
// changing it change the Stub. The inputs themselves are not copied. It is
// nil before the first call.
func (s *Stub[I, O]) Inputs() []I {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.inputs)
}
