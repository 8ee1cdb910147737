// Package workflow runs typed tasks as a dependency graph, in-process: each
// task starts as soon as the tasks it depends on have succeeded, alongside
// every other ready task, with per-task retry and timeout, validated inputs,
// errors that name the failing task, and a status and history store that
// says what is running, what failed and what happened.
//
// A workflow is a list of Task values given to New, which checks the whole
// definition once (names, dependencies, cycles, and every type link between
// tasks) and reports every problem in one error:
//
//	type Order struct {
//		ID    string `validate:"required"`
//		Items int    `validate:"min=1"`
//	}
//
//	wf, err := workflow.New[Order, string]("orders", workflow.Tasks{
//		workflow.Task[Order, int]{
//			Name:    "price",
//			Handler: func(ctx context.Context, o Order) (int, error) { return o.Items * 250, nil },
//		},
//		workflow.Task[Order, bool]{
//			Name:    "reserve",
//			Retry:   workflow.RetryPolicy{Attempts: 3, Delay: time.Second, Backoff: 2},
//			Timeout: 5 * time.Second,
//			Handler: reserveStock,
//		},
//		workflow.Task[workflow.Inputs, string]{
//			Name:         "confirm",
//			Dependencies: []string{"price", "reserve"},
//			Handler: func(ctx context.Context, in workflow.Inputs) (string, error) {
//				cents, err := workflow.Get[int](in, "price")
//				if err != nil {
//					return "", err
//				}
//				return fmt.Sprintf("confirmed: %d cents", cents), nil
//			},
//		},
//	})
//	if err != nil {
//		return err // names every bad task, dependency and type
//	}
//	msg, err := wf.Run(ctx, Order{ID: "o-1", Items: 2})
//	if err != nil {
//		// workflow "orders" run 3kq8xw: task "reserve" failed after 3 attempts: out of stock
//		return err
//	}
//
// # Data flow
//
// A task without dependencies receives the workflow input, so its I is the
// workflow's In. A task with one dependency receives that task's output. A
// task with several dependencies takes Inputs and reads each value with
// Get. The workflow output is the output of its only task without
// dependents, or of the task named by WithOutput.
//
// # Failure, retry and timeout
//
// A failed attempt is retried as its RetryPolicy says; errors wrapped by
// Permanent are not, nor Get's, which are mistakes in the code. Each
// attempt's context carries the task's Timeout; an
// attempt still running at the deadline fails with ErrTimeout even if the
// handler ignores its context, in which case the handler's goroutine is left
// to finish and its result dropped (Go cannot stop a goroutine). A panic is
// recovered into an error wrapping ErrPanic, with the stack in the
// WorkflowError's Details. The first task that fails for good cancels the
// others' contexts; tasks that never started are marked skipped. RunTimeout
// bounds a whole run, and so does the deadline of the run's context: either
// ends it timed_out, with an error wrapping ErrTimeout (and, for the
// context's, context.DeadlineExceeded); a context cancelled, or Cancel,
// ends it cancelled (ErrCancelled). RetryOnFailure and Resume continue a
// failed run, reusing the outputs of the tasks that succeeded.
//
// # Control flow
//
// A task's Trigger (a TriggerRule) says which ends of its dependencies
// start it: AllSucceeded by default, or AllDone, NoneFailed, OneSucceeded.
// A task whose rule can no longer be met is skipped, and so, in turn, are
// the tasks below it that need it; a handler may skip its own task by
// returning Skip(reason). When some task has a rule other than the
// default, a failure cancels nothing: every task runs or is skipped as its
// rule says, and the run then fails naming the first failed task. Map runs
// a handler once per element of a list known only at run time, and Sub
// runs another workflow as one task, as a child run linked to its parent.
//
// # Errors
//
// Every error of the package is one line in one shape: "workflow", its
// name, the run once there is one, what happened or the operation that
// failed, then the cause in its own words:
//
//	workflow "etl" run r1: task "save" failed after 3 attempts: writing summary of u-42: disk full
//	workflow "etl" run r1: task "fetch" timed out: attempt exceeded 50ms
//	workflow "etl" run r1: invalid input: UserID is required; Address.City is required
//	workflow "etl" run r1: cancelled: Cancel called
//	workflow "etl": invalid definition: task 0 has an empty name; task "load" depends on "fetc", which is not defined (did you mean "fetch"?)
//	workflow "etl": ReplaceTask: no task "sav" (did you mean "save"?)
//
// Several problems are separated by "; "; fields are named as the Go code
// writes them. Each thing is said once: sentinel errors (ErrTimeout,
// ErrCancelled, …) are found with errors.Is, never printed. A run that did
// not succeed returns a *WorkflowError whose Message is the cause's own
// text, and whose Details hold the facts (for a task: "attempts", "state",
// "error_type"). Get's errors are causes, for a handler to return: the
// run's error says which task.
//
// # Status and history
//
// Every state change is an Event, recorded in a Store (a MemoryStore with
// bounded retention unless WithStore says otherwise) and passed to hooks
// (WithHook) and the logger (WithLogger). Status, TaskStatus, Inspect and
// History read it back.
//
// # Schedules
//
// A workflow built WithSchedule runs by itself once registered with a
// Scheduler, on a cron expression in a time zone.
//
// # Testing
//
// Runs work inside testing/synctest bubbles, so retry delays and timeouts
// take no real time in tests, and ReplaceTask stubs one task for one run.
package workflow
