package temporalwf

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	failurepb "go.temporal.io/api/failure/v1"
	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/api/serviceerror"
	workflowpb "go.temporal.io/api/workflow/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"

	"github.com/b3b01171/workflow"
	"github.com/b3b01171/workflow/internal/plan"
)

// Inspect returns the status of run runID of wf, rebuilt from Temporal's
// record of it: the run's state, each task's state, attempts, start and
// end times and error, and the events in the library's event types, in the
// order an in-process run records them. Temporal keeps only the last
// attempt of an activity (its number and the failure before it): the
// earlier attempts are rebuilt as a task_started and a task_retrying each,
// timed at the task's scheduling, and only the last retry carries its
// error. It wraps workflow.ErrNotFound for a run Temporal does not know or
// that is not a run of wf.
func Inspect[In, Out any](ctx context.Context, c client.Client, wf *workflow.Workflow[In, Out], runID string) (workflow.RunStatus, error) {
	d, err := newDAG(wf)
	if err != nil {
		return workflow.RunStatus{}, err
	}
	if ctx == nil || c == nil {
		return workflow.RunStatus{}, d.opError(runID, "Inspect", fmt.Errorf("nil context or client: %w", workflow.ErrInvalidInput))
	}
	if runID == "" {
		return workflow.RunStatus{}, d.opError(runID, "Inspect", fmt.Errorf("empty run ID: %w", workflow.ErrNotFound))
	}
	var evs []*historypb.HistoryEvent
	it := c.GetWorkflowHistory(ctx, runID, "", false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	for it.HasNext() {
		ev, err := it.Next()
		if err != nil {
			var nf *serviceerror.NotFound
			if errors.As(err, &nf) {
				return workflow.RunStatus{}, d.opError(runID, "Inspect", fmt.Errorf("no such run: %w", workflow.ErrNotFound))
			}
			return workflow.RunStatus{}, d.opError(runID, "Inspect", err)
		}
		evs = append(evs, ev)
	}
	// Temporal's history records an activity's start only once it ends:
	// the attempts under way are in the execution's description.
	var pending []*workflowpb.PendingActivityInfo
	if desc, err := c.DescribeWorkflowExecution(ctx, runID, ""); err == nil {
		pending = desc.GetPendingActivities()
	} else if ctx.Err() != nil {
		return workflow.RunStatus{}, ctx.Err()
	}
	return d.status(runID, evs, pending)
}

// status folds a Temporal history into a RunStatus.
func (d *dag) status(runID string, evs []*historypb.HistoryEvent, pending []*workflowpb.PendingActivityInfo) (workflow.RunStatus, error) {
	n := len(d.p.Tasks)
	rs := workflow.RunStatus{RunID: runID, Workflow: d.p.Workflow, State: workflow.StatePending,
		Trigger: workflow.TriggerManual, Tasks: make([]workflow.TaskStatus, n)}
	for i, t := range d.p.Tasks {
		rs.Tasks[i] = workflow.TaskStatus{Name: t.Name, State: workflow.StatePending}
	}
	add := func(i int, ev workflow.Event, data []byte) {
		ev.RunID, ev.Pass = runID, 1
		ev.Time = ev.Time.UTC()
		pos := -1
		if i >= 0 {
			ev.Task, pos = d.p.Tasks[i].Name, i
		}
		_ = rs.Apply(workflow.Entry{Event: ev, Index: pos, Payload: workflow.Payload{Data: data}}) // pos names the task
	}
	byScheduled := map[int64]int{} // an activity's scheduled event ID → its task
	scheduledAt := make([]time.Time, n)
	attempt := make([]int, n)
	open := make([]bool, n) // started and not ended
	var timeout time.Duration
	// A task's end starts or skips its dependents as their rules say
	// (always, once a task was skipped); without rules, a failure ends the
	// run instead, and end below skips what never started.
	rl := d.newRules()
	var input []byte
	var resolve func(i int, st workflow.State, at time.Time)
	outData := make([][]byte, n) // each task's output, as JSON
	// A Map over no items schedules no activity: it starts and succeeds
	// as soon as it is ready, as the workflow function runs it.
	emptyMap := func(i int, at time.Time) {
		if d.p.Tasks[i].Map == nil {
			return
		}
		list := input
		if len(d.deps[i]) > 0 {
			list = outData[d.deps[i][0]]
		}
		var items []json.RawMessage
		if len(list) > 0 && (json.Unmarshal(list, &items) != nil || len(items) > 0) {
			return // items to run, or not a list (the task fails)
		}
		add(i, workflow.Event{Type: workflow.EventTaskStarted, Attempt: 1, Time: at}, nil)
		add(i, workflow.Event{Type: workflow.EventItemsStarted, Item: 0, Time: at}, nil)
		add(i, workflow.Event{Type: workflow.EventTaskSucceeded, Attempt: 1, Time: at}, []byte("[]"))
		outData[i] = []byte("[]")
		attempt[i] = 1
		resolve(i, workflow.StateSucceeded, at)
	}
	resolve = func(i int, st workflow.State, at time.Time) {
		if failedState(st) && !d.p.Rules {
			return
		}
		ready, skips := rl.ended(i, st)
		for _, s := range skips {
			add(s.task, workflow.Event{Type: workflow.EventTaskSkipped, Error: s.why, Time: at}, nil)
		}
		for _, r := range ready {
			emptyMap(r, at)
		}
	}
	// Maps with items: their items' activities, by scheduled event ID;
	// items done and outputs per task.
	type itemRef struct{ task, item int }
	itemScheduled := map[int64]itemRef{}
	itemOuts := make([][]json.RawMessage, n)
	itemsDone := make([]int, n)
	// mapFailed ends Map task i after its item k failed for good.
	mapFailed := func(i, k int, at time.Time, f *failurepb.Failure, timedOut bool) {
		if !open[i] {
			return // the Map had ended: its other items were cancelled
		}
		open[i] = false
		msg, typ, st := failureMessage(f), workflow.EventTaskFailed, workflow.StateFailed
		attempts := 1
		if df, ok := failureDetails(f); ok {
			attempts = max(df.Attempts, 1)
			if slices.Contains(df.Sentinels, "timeout") {
				timedOut = true
			}
		}
		if timedOut {
			typ, st = workflow.EventTaskTimedOut, workflow.StateTimedOut
			if f.GetTimeoutFailureInfo() != nil {
				msg = fmt.Sprintf("attempt exceeded %v", d.acts[i].StartToCloseTimeout)
			}
		}
		add(i, workflow.Event{Type: workflow.EventItemFailed, Item: k, Attempt: attempts, Error: msg, Time: at}, nil)
		add(i, workflow.Event{Type: typ, Attempt: 1, Error: fmt.Sprintf("item %d: %s", k, msg), Time: at}, nil)
		resolve(i, st, at)
	}
	underway := make([]*workflowpb.PendingActivityInfo, n) // by task
	for _, pa := range pending {
		if i, ok := d.index[pa.GetActivityId()]; ok && pa.GetActivityType().GetName() == d.activityName(i) {
			underway[i] = pa
		}
	}
	// started records the start of attempt last of task i, after the
	// attempts before it, rebuilt: Temporal keeps only the failure of the
	// one before last.
	started := func(i, last int, at time.Time, lastFailure *failurepb.Failure) {
		for k := 1; k < last; k++ {
			retry := workflow.Event{Type: workflow.EventTaskRetrying, Attempt: k, Time: scheduledAt[i]}
			if k == last-1 {
				retry.Error = failureMessage(lastFailure)
			}
			add(i, workflow.Event{Type: workflow.EventTaskStarted, Attempt: k, Time: scheduledAt[i]}, nil)
			add(i, retry, nil)
		}
		add(i, workflow.Event{Type: workflow.EventTaskStarted, Attempt: last, Time: at}, nil)
		attempt[i], open[i] = last, true
	}
	// end records the end of the run as the in-process engine does: the
	// tasks under way cancelled, those never started skipped, then the
	// run's event.
	end := func(typ string, at time.Time, werr error, cancelRunning bool) {
		msg := ""
		var we *workflow.WorkflowError
		if errors.As(werr, &we) {
			msg = we.Message
		}
		for i := range n {
			if cancelRunning && !open[i] && !scheduledAt[i].IsZero() && rs.Tasks[i].State == workflow.StatePending {
				// Scheduled and never ended: once the run has ended,
				// Temporal no longer says whether its attempt had begun.
				started(i, 1, scheduledAt[i], nil)
			}
			if open[i] && cancelRunning {
				open[i] = false
				add(i, workflow.Event{Type: workflow.EventTaskCancelled, Attempt: attempt[i], Error: msg, Time: at}, nil)
			}
		}
		for i := range n {
			if rs.Tasks[i].State == workflow.StatePending {
				add(i, workflow.Event{Type: workflow.EventTaskSkipped, Time: at}, nil)
			}
		}
		ev := workflow.Event{Type: typ, Time: at}
		if werr != nil {
			ev.Error = werr.Error()
		}
		add(-1, ev, nil)
	}
	// Sub tasks: their child workflows, by initiated event ID.
	byInitiated := map[int64]int{}
	subEnded := func(id int64, typ string, st workflow.State, at time.Time, cf *plan.Failure, data []byte) {
		i, ok := byInitiated[id]
		if !ok || !open[i] {
			return
		}
		open[i] = false
		ev := workflow.Event{Type: typ, Attempt: 1, Time: at}
		if cf != nil {
			cf.Workflow, cf.RunID = d.children[i].p.Workflow, runID+"."+d.p.Tasks[i].Name
			ev.Error = plan.Error(*cf).Error()
		}
		if data != nil {
			outData[i] = data
		}
		add(i, ev, data)
		resolve(i, st, at)
	}
	for k, e := range evs {
		at := e.GetEventTime().AsTime()
		switch e.GetEventType() {
		case enumspb.EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_INITIATED:
			a := e.GetStartChildWorkflowExecutionInitiatedEventAttributes()
			for i, child := range d.children {
				if child != nil && a.GetWorkflowId() == runID+"."+d.p.Tasks[i].Name && a.GetWorkflowType().GetName() == child.p.Workflow {
					byInitiated[e.GetEventId()] = i
					scheduledAt[i], attempt[i], open[i] = at, 1, true
					add(i, workflow.Event{Type: workflow.EventTaskStarted, Attempt: 1, Time: at}, nil)
				}
			}
		case enumspb.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_COMPLETED:
			a := e.GetChildWorkflowExecutionCompletedEventAttributes()
			data := []byte("null")
			if ps := a.GetResult().GetPayloads(); len(ps) > 0 {
				data = ps[0].GetData()
			}
			subEnded(a.GetInitiatedEventId(), workflow.EventTaskSucceeded, workflow.StateSucceeded, at, nil, data)
		case enumspb.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_FAILED:
			a := e.GetChildWorkflowExecutionFailedEventAttributes()
			cf, ok := failureDetails(a.GetFailure())
			if !ok {
				cf = plan.Failure{Message: a.GetFailure().GetMessage()}
			}
			typ, st := workflow.EventTaskFailed, workflow.StateFailed
			if slices.Contains(cf.Sentinels, "timeout") {
				typ, st = workflow.EventTaskTimedOut, workflow.StateTimedOut
			}
			subEnded(a.GetInitiatedEventId(), typ, st, at, &cf, nil)
		case enumspb.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_CANCELED:
			cf := plan.Failure{What: "cancelled", Message: "Cancel called", Sentinels: []string{"cancelled"}}
			subEnded(e.GetChildWorkflowExecutionCanceledEventAttributes().GetInitiatedEventId(), workflow.EventTaskCancelled, workflow.StateCancelled, at, &cf, nil)
		case enumspb.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_TERMINATED:
			cf := plan.Failure{What: "cancelled", Message: "terminated in Temporal", Sentinels: []string{"cancelled"}}
			subEnded(e.GetChildWorkflowExecutionTerminatedEventAttributes().GetInitiatedEventId(), workflow.EventTaskCancelled, workflow.StateCancelled, at, &cf, nil)
		case enumspb.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_TIMED_OUT:
			cf := plan.Failure{What: "timed out", Message: "the run exceeded its RunTimeout", Sentinels: []string{"timeout"}}
			subEnded(e.GetChildWorkflowExecutionTimedOutEventAttributes().GetInitiatedEventId(), workflow.EventTaskTimedOut, workflow.StateTimedOut, at, &cf, nil)
		case enumspb.EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_FAILED:
			a := e.GetStartChildWorkflowExecutionFailedEventAttributes()
			cf := plan.Failure{Message: "could not start the child run: " + a.GetCause().String()}
			subEnded(a.GetInitiatedEventId(), workflow.EventTaskFailed, workflow.StateFailed, at, &cf, nil)
		case enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED:
			a := e.GetWorkflowExecutionStartedEventAttributes()
			if k != 0 || a.GetWorkflowType().GetName() != d.p.Workflow {
				return workflow.RunStatus{}, d.opError(runID, "Inspect", fmt.Errorf("the run is of Temporal workflow %q: %w", a.GetWorkflowType().GetName(), workflow.ErrNotFound))
			}
			timeout = a.GetWorkflowExecutionTimeout().AsDuration()
			if parent := a.GetParentWorkflowExecution(); parent != nil { // a Sub's child run
				rs.Trigger, rs.ParentRunID = workflow.TriggerParent, parent.GetWorkflowId()
			}
			if ps := a.GetInput().GetPayloads(); len(ps) > 0 {
				input = ps[0].GetData()
			} else {
				rs.Trigger = workflow.TriggerSchedule
			}
			if p, ok := a.GetSearchAttributes().GetIndexedFields()["TemporalScheduledStartTime"]; ok {
				var t time.Time
				if converter.GetDefaultDataConverter().FromPayload(p, &t) == nil {
					rs.ScheduledAt = t.UTC()
				}
			}
			add(-1, workflow.Event{Type: workflow.EventRunStarted, Time: at}, input)
			for i := range n {
				if len(d.deps[i]) == 0 {
					emptyMap(i, at)
				}
			}
		case enumspb.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
			a := e.GetActivityTaskScheduledEventAttributes()
			if name, k, ok := parseItemID(a.GetActivityId()); ok {
				i, ok := d.index[name]
				if !ok || d.p.Tasks[i].Map == nil || a.GetActivityType().GetName() != d.activityName(i) {
					continue
				}
				itemScheduled[e.GetEventId()] = itemRef{i, k}
				if itemOuts[i] == nil {
					var ii itemInput
					_ = converter.GetDefaultDataConverter().FromPayloads(a.GetInput(), &ii)
					itemOuts[i] = make([]json.RawMessage, ii.Total)
					scheduledAt[i], attempt[i], open[i] = at, 1, true
					add(i, workflow.Event{Type: workflow.EventTaskStarted, Attempt: 1, Time: at}, nil)
					add(i, workflow.Event{Type: workflow.EventItemsStarted, Item: ii.Total, Time: at}, nil)
				}
				continue
			}
			if i, ok := d.index[a.GetActivityId()]; ok && a.GetActivityType().GetName() == d.activityName(i) {
				byScheduled[e.GetEventId()] = i
				scheduledAt[i] = at
				if pa := underway[i]; pa != nil && (pa.GetState() == enumspb.PENDING_ACTIVITY_STATE_STARTED || pa.GetAttempt() > 1) {
					// Under way, or waiting to retry: its start is
					// recorded nowhere else.
					last, startedAt := int(pa.GetAttempt()), pa.GetLastStartedTime().AsTime()
					if pa.GetState() != enumspb.PENDING_ACTIVITY_STATE_STARTED {
						last-- // the attempt before, which failed
					}
					if pa.GetLastStartedTime() == nil {
						startedAt = at
					}
					started(i, last, startedAt, pa.GetLastFailure())
				}
			}
		case enumspb.EVENT_TYPE_ACTIVITY_TASK_STARTED:
			a := e.GetActivityTaskStartedEventAttributes()
			if ref, ok := itemScheduled[a.GetScheduledEventId()]; ok && open[ref.task] {
				// An item's earlier attempts, as in-process records them:
				// Temporal keeps the failure of the one before last only.
				for n := 1; n < int(a.GetAttempt()); n++ {
					ev := workflow.Event{Type: workflow.EventItemRetrying, Item: ref.item, Attempt: n, Time: at}
					if n == int(a.GetAttempt())-1 {
						ev.Error = failureMessage(a.GetLastFailure())
					}
					add(ref.task, ev, nil)
				}
			}
			i, ok := byScheduled[a.GetScheduledEventId()]
			if !ok {
				continue
			}
			started(i, int(a.GetAttempt()), at, a.GetLastFailure())
		case enumspb.EVENT_TYPE_ACTIVITY_TASK_COMPLETED:
			a := e.GetActivityTaskCompletedEventAttributes()
			if ref, ok := itemScheduled[a.GetScheduledEventId()]; ok {
				i := ref.task
				if !open[i] || ref.item >= len(itemOuts[i]) {
					continue
				}
				if ps := a.GetResult().GetPayloads(); len(ps) > 0 {
					itemOuts[i][ref.item] = ps[0].GetData()
				}
				total := len(itemOuts[i])
				if itemsDone[i]++; itemsDone[i] < total && itemsDone[i]%max(1, (total+99)/100) == 0 {
					// At most 100 progress events, as in-process.
					add(i, workflow.Event{Type: workflow.EventItemsProgress, Item: itemsDone[i], Time: at}, nil)
				}
				if itemsDone[i] == total {
					open[i] = false
					outData[i] = joinItems(itemOuts[i])
					add(i, workflow.Event{Type: workflow.EventTaskSucceeded, Attempt: 1, Time: at}, outData[i])
					resolve(i, workflow.StateSucceeded, at)
				}
			}
			if i, ok := byScheduled[a.GetScheduledEventId()]; ok {
				var data []byte
				if ps := a.GetResult().GetPayloads(); len(ps) > 0 {
					data = ps[0].GetData()
				}
				open[i] = false
				outData[i] = data
				add(i, workflow.Event{Type: workflow.EventTaskSucceeded, Attempt: attempt[i], Time: at}, data)
				resolve(i, workflow.StateSucceeded, at)
			}
		case enumspb.EVENT_TYPE_ACTIVITY_TASK_FAILED:
			a := e.GetActivityTaskFailedEventAttributes()
			if ref, ok := itemScheduled[a.GetScheduledEventId()]; ok {
				mapFailed(ref.task, ref.item, at, a.GetFailure(), false)
			}
			if i, ok := byScheduled[a.GetScheduledEventId()]; ok {
				typ, st, msg := workflow.EventTaskFailed, workflow.StateFailed, failureMessage(a.GetFailure())
				if f, ok := failureDetails(a.GetFailure()); ok {
					switch {
					case f.Skip != "":
						typ, st, msg = workflow.EventTaskSkipped, workflow.StateSkipped, f.Skip
					case slices.Contains(f.Sentinels, "timeout"):
						typ, st = workflow.EventTaskTimedOut, workflow.StateTimedOut
					case slices.Contains(f.Sentinels, "cancelled"):
						typ, st = workflow.EventTaskCancelled, workflow.StateCancelled
					}
				}
				open[i] = false
				add(i, workflow.Event{Type: typ, Attempt: attempt[i], Error: msg, Time: at}, nil)
				resolve(i, st, at)
			}
		case enumspb.EVENT_TYPE_ACTIVITY_TASK_TIMED_OUT:
			a := e.GetActivityTaskTimedOutEventAttributes()
			if ref, ok := itemScheduled[a.GetScheduledEventId()]; ok {
				mapFailed(ref.task, ref.item, at, a.GetFailure(), true)
			}
			if i, ok := byScheduled[a.GetScheduledEventId()]; ok {
				open[i] = false
				msg := fmt.Sprintf("attempt exceeded %v", d.acts[i].StartToCloseTimeout)
				add(i, workflow.Event{Type: workflow.EventTaskTimedOut, Attempt: attempt[i], Error: msg, Time: at}, nil)
				resolve(i, workflow.StateTimedOut, at)
			}
		case enumspb.EVENT_TYPE_ACTIVITY_TASK_CANCEL_REQUESTED:
			a := e.GetActivityTaskCancelRequestedEventAttributes()
			if ref, ok := itemScheduled[a.GetScheduledEventId()]; ok && open[ref.task] {
				i := ref.task
				open[i] = false
				add(i, workflow.Event{Type: workflow.EventTaskCancelled, Attempt: attempt[i], Error: "another task failed", Time: at}, nil)
			}
			if i, ok := byScheduled[a.GetScheduledEventId()]; ok && (open[i] || rs.Tasks[i].State == workflow.StatePending) {
				if !open[i] {
					started(i, 1, scheduledAt[i], nil) // as at the run's end, below
				}
				open[i] = false
				add(i, workflow.Event{Type: workflow.EventTaskCancelled, Attempt: attempt[i], Error: "another task failed", Time: at}, nil)
			}
		case enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED:
			end(workflow.EventRunSucceeded, at, nil, false)
			if ps := e.GetWorkflowExecutionCompletedEventAttributes().GetResult().GetPayloads(); len(ps) > 0 {
				rs.Output = ps[0].GetData()
			}
		case enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_FAILED:
			f := plan.Failure{Workflow: d.p.Workflow, RunID: runID}
			fl := e.GetWorkflowExecutionFailedEventAttributes().GetFailure()
			if df, ok := failureDetails(fl); ok {
				f = df
				f.Workflow, f.RunID = d.p.Workflow, runID
			} else {
				f.Message = fl.GetMessage()
			}
			end(workflow.EventRunFailed, at, plan.Error(f), true)
		case enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_TIMED_OUT:
			msg := "the run exceeded its RunTimeout"
			if timeout > 0 {
				msg = fmt.Sprintf("the run exceeded its RunTimeout (%v)", timeout)
			}
			end(workflow.EventRunTimedOut, at, plan.Error(plan.Failure{Workflow: d.p.Workflow, RunID: runID,
				What: "timed out", Message: msg, Sentinels: []string{"timeout"}}), true)
		case enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_CANCELED, enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_TERMINATED:
			msg := "Cancel called"
			if e.GetEventType() == enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_TERMINATED {
				msg = "terminated in Temporal"
			}
			end(workflow.EventRunCancelled, at, plan.Error(plan.Failure{Workflow: d.p.Workflow, RunID: runID,
				What: "cancelled", Message: msg, Sentinels: []string{"cancelled"}}), true)
		}
	}
	return rs, nil
}

// failureDetails decodes the plan.Failure that this package's application
// errors carry.
func failureDetails(f *failurepb.Failure) (plan.Failure, bool) {
	info := f.GetApplicationFailureInfo()
	if t := info.GetType(); info == nil || (t != taskErrorType && t != runErrorType && t != skipErrorType) {
		return plan.Failure{}, false
	}
	var out plan.Failure
	if err := converter.GetDefaultDataConverter().FromPayloads(info.GetDetails(), &out); err != nil {
		return plan.Failure{}, false
	}
	return out, true
}

// failureMessage is the message of an attempt's failure, as the in-process
// engine records it.
func failureMessage(f *failurepb.Failure) string {
	if f == nil {
		return ""
	}
	if f.GetTimeoutFailureInfo() != nil {
		return "attempt timed out"
	}
	return f.GetMessage()
}
