package temporalwf

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"strconv"
	"strings"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"

	"github.com/b3b01171/workflow"
	"github.com/b3b01171/workflow/internal/plan"
)

// itemInput is what the activity of one item of a Map task receives.
type itemInput struct {
	Item    json.RawMessage `json:"item"`
	Index   int             `json:"index"`
	Total   int             `json:"total"` // the Map's number of items, for Inspect
	Trigger string          `json:"trigger"`
}

// itemID is the activity ID of item k of Map task: "task[k]".
func itemID(task string, k int) string { return task + "[" + strconv.Itoa(k) + "]" }

// parseItemID is itemID's inverse.
func parseItemID(id string) (task string, k int, ok bool) {
	open := strings.LastIndexByte(id, '[')
	if open < 0 || !strings.HasSuffix(id, "]") {
		return "", 0, false
	}
	k, err := strconv.Atoi(id[open+1 : len(id)-1])
	if err != nil || k < 0 {
		return "", 0, false
	}
	return id[:open], k, true
}

// joinItems is the JSON array of the items' outputs, in order.
func joinItems(outs []json.RawMessage) json.RawMessage {
	var b bytes.Buffer
	b.WriteByte('[')
	for k, o := range outs {
		if k > 0 {
			b.WriteByte(',')
		}
		if len(o) == 0 {
			o = json.RawMessage("null")
		}
		b.Write(o)
	}
	b.WriteByte(']')
	return b.Bytes()
}

// itemActivity is the activity of one item of Map task i: it decodes the
// item into the Map's I, calls the handler once on it (Temporal retries,
// with the Map's Retry and Timeout), and encodes its O. An item whose
// handler returns workflow.Skip gives the zero O, as in-process.
func (d *dag) itemActivity(i int) func(ctx context.Context, in itemInput) (json.RawMessage, error) {
	t := d.p.Tasks[i]
	zero := reflect.Zero(t.Map.Each).Interface()
	return func(ctx context.Context, in itemInput) (json.RawMessage, error) {
		info := activity.GetInfo(ctx)
		runID := info.WorkflowExecution.ID
		attempt := int(info.Attempt)
		permanent := func(err error) error {
			f := plan.FailureOf(workflow.Permanent(err))
			f.Attempts = attempt
			return temporal.NewApplicationErrorWithOptions(f.Message, taskErrorType, temporal.ApplicationErrorOptions{
				NonRetryable: true, Details: []any{f},
			})
		}
		v, err := decode(in.Item, t.Map.Item)
		if err != nil {
			return nil, permanent(fmt.Errorf("decoding the item: %w", err))
		}
		stop := heartbeat(ctx)
		defer stop()
		out, err := t.Map.Call(ctx, plan.Call{RunID: runID, Trigger: in.Trigger, Attempt: attempt}, v)
		if err != nil {
			if f := plan.FailureOf(err); f.Skip == "" || ctx.Err() != nil {
				return nil, d.attemptError(ctx, i, err)
			}
			out = zero
		}
		data, err := json.Marshal(out)
		if err != nil {
			return nil, permanent(fmt.Errorf("recording its output (%T): %w: %w", out, err, workflow.ErrInvalidInput))
		}
		return data, nil
	}
}
