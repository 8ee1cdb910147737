// Package temporalwf runs the workflows of github.com/b3b01171/workflow on
// Temporal: the very same *workflow.Workflow[In, Out] value, its tasks,
// dependencies, retry policies, timeouts, validation and schedule, runs as
// a Temporal workflow whose tasks are Temporal activities, so that tasks
// run on many workers and runs survive any machine. Results, errors and
// status come back in the library's own types.
//
//	c, _ := client.Dial(client.Options{HostPort: "localhost:7233"})
//	w := worker.New(c, "orders", worker.Options{})
//	if err := temporalwf.Register(w, wf); err != nil { ... } // the DAG workflow and one activity per task
//	w.Start()
//
//	out, err := temporalwf.Run(ctx, c, wf, input, temporalwf.TaskQueue("orders"))
//	var werr *workflow.WorkflowError
//	if errors.As(err, &werr) { log.Print(werr.Task, werr.Attempts) }
//
//	rs, err := temporalwf.Inspect(ctx, c, wf, runID)                      // a workflow.RunStatus, tasks and events
//	err = temporalwf.Schedule(ctx, c, wf, temporalwf.TaskQueue("orders")) // the wf's cron schedule as a Temporal Schedule
//
// A run ID is the Temporal workflow ID. The README maps each feature of the
// library onto Temporal's, and says what has no equivalent.
package temporalwf
