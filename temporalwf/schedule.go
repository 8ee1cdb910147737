package temporalwf

import (
	"context"
	"errors"
	"fmt"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"

	"github.com/b3b01171/workflow"
	"github.com/b3b01171/workflow/internal/plan"
)

// Schedule creates, or updates when it exists, a Temporal Schedule that
// runs wf by its workflow.Schedule: the cron text and time zone, the
// overlap policy (OverlapSkip → SKIP, OverlapAllow → ALLOW_ALL,
// OverlapQueue → BUFFER_ONE) and CatchUpWindow. The Schedule's ID is the
// workflow's name unless ScheduleID says otherwise; each run's ID is that
// ID and the fire time, as Temporal names them. Scheduled runs take the
// zero In, or what WithScheduleInput gives, called in an activity with the
// fire time. It needs TaskQueue, and wraps workflow.ErrInvalidSchedule for
// a workflow without a Schedule.
func Schedule[In, Out any](ctx context.Context, c client.Client, wf *workflow.Workflow[In, Out], opts ...Option) error {
	d, err := newDAG(wf)
	if err != nil {
		return err
	}
	if ctx == nil || c == nil {
		return d.opError("", "Schedule", fmt.Errorf("nil context or client: %w", workflow.ErrInvalidInput))
	}
	o, err := d.options("Schedule", opts)
	if err != nil {
		return err
	}
	s := d.p.Schedule
	if s == nil {
		return d.opError("", "Schedule", fmt.Errorf("the workflow has no Schedule (workflow.WithSchedule): %w", workflow.ErrInvalidSchedule))
	}
	id := o.scheduleID
	if id == "" {
		id = d.p.Workflow
	}
	spec := client.ScheduleSpec{CronExpressions: []string{s.Cron}, TimeZoneName: s.Timezone}
	action := &client.ScheduleWorkflowAction{
		ID:                       d.p.Workflow,
		Workflow:                 d.p.Workflow,
		TaskQueue:                o.taskQueue,
		WorkflowExecutionTimeout: o.runTimeout,
	}
	overlap := overlapOf(s.Overlap)
	_, err = c.ScheduleClient().Create(ctx, client.ScheduleOptions{
		ID: id, Spec: spec, Action: action, Overlap: overlap, CatchupWindow: s.CatchUpWindow,
	})
	if errors.Is(err, temporal.ErrScheduleAlreadyRunning) {
		err = c.ScheduleClient().GetHandle(ctx, id).Update(ctx, client.ScheduleUpdateOptions{
			DoUpdate: func(in client.ScheduleUpdateInput) (*client.ScheduleUpdate, error) {
				sc := in.Description.Schedule
				sc.Spec, sc.Action = &spec, action
				if sc.Policy == nil {
					sc.Policy = &client.SchedulePolicies{}
				}
				sc.Policy.Overlap, sc.Policy.CatchupWindow = overlap, s.CatchUpWindow
				return &client.ScheduleUpdate{Schedule: &sc}, nil
			},
		})
	}
	if err != nil {
		return d.opError("", "Schedule", err)
	}
	return nil
}

// overlapOf maps an overlap policy onto Temporal's.
func overlapOf(o plan.Overlap) enumspb.ScheduleOverlapPolicy {
	switch o {
	case plan.OverlapAllow:
		return enumspb.SCHEDULE_OVERLAP_POLICY_ALLOW_ALL
	case plan.OverlapQueue:
		return enumspb.SCHEDULE_OVERLAP_POLICY_BUFFER_ONE
	}
	return enumspb.SCHEDULE_OVERLAP_POLICY_SKIP
}
