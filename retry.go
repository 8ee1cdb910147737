package workflow

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"runtime/debug"
	"time"
)

// RetryPolicy says how often and how soon a failed task is tried again. The
// zero value makes one attempt. Waits end early when the run ends.
type RetryPolicy struct {
	// Attempts is the total number of attempts, the first included; 0 or 1
	// means no retry.
	Attempts int
	// Delay is the wait before the second attempt.
	Delay time.Duration
	// Backoff multiplies the wait after each retry; 0 or 1 keeps it
	// constant.
	Backoff float64
	// MaxDelay caps every wait, jitter included; 0 means no cap.
	MaxDelay time.Duration
	// Jitter, from 0 to 1, spreads each wait uniformly within ±Jitter of
	// itself, so that many failing tasks do not retry in step.
	Jitter float64
	// RetryIf decides whether an error is worth another attempt. Nil
	// retries every error. Errors wrapped by Permanent and the end of the
	// run are never retried, whatever RetryIf says.
	RetryIf func(error) bool
}

// validate returns every problem of the policy, each naming its field;
// none when New may take it.
func (r RetryPolicy) validate() []string {
	var bad []string
	negative := func(f string, v any) { bad = append(bad, fmt.Sprintf("Retry.%s is negative (%v)", f, v)) }
	if r.Attempts < 0 {
		negative("Attempts", r.Attempts)
	}
	if r.Delay < 0 {
		negative("Delay", r.Delay)
	}
	if r.Backoff < 0 || math.IsNaN(r.Backoff) || math.IsInf(r.Backoff, 0) {
		bad = append(bad, fmt.Sprintf("Retry.Backoff is %v; it must be a finite number ≥ 0", r.Backoff))
	}
	if r.MaxDelay < 0 {
		negative("MaxDelay", r.MaxDelay)
	}
	if !(r.Jitter >= 0 && r.Jitter <= 1) {
		bad = append(bad, fmt.Sprintf("Retry.Jitter is %v; it must be between 0 and 1", r.Jitter))
	}
	return bad
}

// attempts is the number of attempts the policy allows.
func (r RetryPolicy) attempts() int { return max(r.Attempts, 1) }

// retryable reports whether err, the error of an attempt, may be retried.
// A RetryIf that panics says no, and the panic (wrapping ErrPanic, with its
// stack) is joined to err, which it returns: it runs on the engine's
// goroutine, where a panic would crash the process.
func (r RetryPolicy) retryable(err error) (retry bool, out error) {
	if isPermanent(err) {
		return false, err
	}
	if r.RetryIf == nil {
		return true, err
	}
	defer func() {
		if v := recover(); v != nil {
			retry = false
			out = fmt.Errorf("%w (RetryIf panicked: %w)", err, &panicError{value: v, stack: string(debug.Stack())})
		}
	}()
	return r.RetryIf(err), err
}

// wait is the pause after failed attempt number n (1-based).
func (r RetryPolicy) wait(n int) time.Duration {
	d := float64(r.Delay)
	if r.Backoff > 0 && r.Backoff != 1 {
		d *= math.Pow(r.Backoff, float64(n-1))
	}
	if r.Jitter > 0 {
		d *= 1 + r.Jitter*(2*rand.Float64()-1)
	}
	if r.MaxDelay > 0 && d > float64(r.MaxDelay) {
		d = float64(r.MaxDelay)
	}
	if d >= math.MaxInt64 || math.IsNaN(d) {
		return math.MaxInt64
	}
	return time.Duration(d)
}

// sleep waits d, or until ctx ends; it reports whether the wait ran out.
func sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// panicError is a recovered handler panic. Its message is the panic's
// value: the error that wraps it says that it panicked.
type panicError struct {
	value any
	stack string
}

func (p *panicError) Error() string { return fmt.Sprint(p.value) }
func (p *panicError) Unwrap() error { return ErrPanic }

// timeoutError is an attempt that outlived its task's Timeout; cause is
// the error the handler returned at its deadline, nil if it did not return.
type timeoutError struct {
	timeout time.Duration
	cause   error
}

func (t *timeoutError) Error() string {
	if t.cause == nil {
		return fmt.Sprintf("attempt exceeded %v", t.timeout)
	}
	return fmt.Sprintf("attempt exceeded %v: %v", t.timeout, t.cause)
}

func (t *timeoutError) Unwrap() []error {
	if t.cause == nil {
		return []error{ErrTimeout}
	}
	return []error{ErrTimeout, t.cause}
}

// call runs h with panics recovered into a *panicError.
func call(ctx context.Context, h handlerFunc, in any) (out any, err error) {
	defer func() {
		if v := recover(); v != nil {
			err = &panicError{value: v, stack: string(debug.Stack())}
		}
	}()
	return h(ctx, in)
}

type result struct {
	out any
	err error
}

// attempt makes one attempt of h. With a timeout the handler runs in a
// goroutine of its own, so that the attempt ends at the deadline even if the
// handler ignores ctx; that goroutine is then left to finish and its result
// goes into a buffered channel nobody reads. Without one the handler runs
// on the caller's goroutine, which costs nothing extra.
func attempt(ctx context.Context, h handlerFunc, in any, timeout time.Duration) (any, error) {
	if timeout <= 0 {
		return call(ctx, h, in)
	}
	actx, cancel := context.WithTimeoutCause(ctx, timeout, errAttemptTimeout)
	defer cancel()
	done := make(chan result, 1)
	go func() {
		returned := false
		defer func() {
			if !returned { // runtime.Goexit: the handler will never return
				done <- result{err: errGoexit}
			}
		}()
		out, err := call(actx, h, in)
		returned = true
		done <- result{out, err}
	}()
	select {
	case r := <-done:
		if r.err != nil && ctx.Err() == nil && errors.Is(context.Cause(actx), errAttemptTimeout) {
			// The handler gave up at its deadline: that is the timeout.
			return nil, &timeoutError{timeout: timeout, cause: r.err}
		}
		return r.out, r.err
	case <-actx.Done():
		if ctx.Err() != nil {
			return nil, context.Cause(ctx)
		}
		return nil, &timeoutError{timeout: timeout}
	}
}

var errAttemptTimeout = errors.New("attempt deadline")

// errGoexit is the error of a handler that called runtime.Goexit, as
// t.FailNow does in a test. It is not retried.
var errGoexit = Permanent(&engineError{newError(ErrPanic, "the handler called runtime.Goexit (t.FailNow in a handler?)")})
