package sqlitestore_test

import (
	"context"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/b3b01171/workflow"
	"github.com/b3b01171/workflow/sqlitestore"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// open opens the store at path, closed when the test ends.
func open(t testing.TB, path string, opts ...sqlitestore.Option) *sqlitestore.Store {
	t.Helper()
	s, err := sqlitestore.Open(path, opts...)
	require.NoError(t, err)
	t.Cleanup(func() { s.Close() })
	return s
}

// tempPath is a new file name in the test's temporary directory.
func tempPath(t testing.TB) string { return filepath.Join(t.TempDir(), "runs.db") }

// newRun is a run as the engine creates it: pending, every task pending.
func newRun(workflowName, id string, tasks ...string) workflow.RunStatus {
	rs := workflow.RunStatus{RunID: id, Workflow: workflowName, State: workflow.StatePending, Trigger: "manual"}
	for _, name := range tasks {
		rs.Tasks = append(rs.Tasks, workflow.TaskStatus{Name: name, State: workflow.StatePending})
	}
	return rs
}

// clock hands out event times one millisecond apart, from a fixed instant,
// in the local zone with a monotonic reading, as time.Now does.
type clock struct{ at time.Time }

func newClock() *clock { return &clock{at: time.Now()} }

func (c *clock) next() time.Time {
	c.at = c.at.Add(time.Millisecond)
	return c.at
}

// runEntry and taskEntry build entries as the engine hands them over.
func (c *clock) runEntry(id, typ string, errText string, input []byte) workflow.Entry {
	return workflow.Entry{
		Event:   workflow.Event{Time: c.next(), RunID: id, Type: typ, Error: errText},
		Index:   -1,
		Payload: workflow.Payload{Data: input},
	}
}

func (c *clock) taskEntry(id string, index int, task, typ string, attempt int, errText string, output []byte) workflow.Entry {
	return workflow.Entry{
		Event:   workflow.Event{Time: c.next(), RunID: id, Task: task, Type: typ, Attempt: attempt, Error: errText},
		Index:   index,
		Payload: workflow.Payload{Data: output},
	}
}

// normal is rs with its times in UTC and without monotonic readings, for
// comparing runs as two stores give them.
func normal(rs workflow.RunStatus) workflow.RunStatus {
	utc := func(t time.Time) time.Time {
		if t.IsZero() {
			return time.Time{}
		}
		return t.UTC()
	}
	rs.ScheduledAt, rs.StartedAt, rs.EndedAt = utc(rs.ScheduledAt), utc(rs.StartedAt), utc(rs.EndedAt)
	rs.Tasks = slices.Clone(rs.Tasks)
	for i := range rs.Tasks {
		rs.Tasks[i].StartedAt, rs.Tasks[i].EndedAt = utc(rs.Tasks[i].StartedAt), utc(rs.Tasks[i].EndedAt)
	}
	rs.Events = slices.Clone(rs.Events)
	for i := range rs.Events {
		rs.Events[i].Time = utc(rs.Events[i].Time)
	}
	return rs
}

// twin records the same run in a MemoryStore, the reference, and in a
// sqlitestore, to check that both give the same RunStatus.
type twin struct {
	t        *testing.T
	mem      workflow.Store
	sql      workflow.Store
	memRec   workflow.Recorder
	sqlRec   workflow.Recorder
	workflow string
	id       string
}

func newTwin(t *testing.T, s workflow.Store, run workflow.RunStatus) *twin {
	t.Helper()
	ctx := context.Background()
	tw := &twin{t: t, mem: workflow.NewMemoryStore(), sql: s, workflow: run.Workflow, id: run.RunID}
	var err error
	tw.memRec, err = tw.mem.Create(ctx, run)
	require.NoError(t, err)
	tw.sqlRec, err = s.Create(ctx, run)
	require.NoError(t, err)
	return tw
}

// append appends the batch to both and checks they agree.
func (tw *twin) append(batch ...workflow.Entry) {
	tw.t.Helper()
	ctx := context.Background()
	require.NoError(tw.t, tw.memRec.Append(ctx, slices.Clone(batch)))
	require.NoError(tw.t, tw.sqlRec.Append(ctx, slices.Clone(batch)))
	tw.check()
}

func (tw *twin) check() {
	tw.t.Helper()
	ctx := context.Background()
	want, err := tw.mem.Get(ctx, tw.workflow, tw.id)
	require.NoError(tw.t, err)
	got, err := tw.sql.Get(ctx, tw.workflow, tw.id)
	require.NoError(tw.t, err)
	require.Equal(tw.t, normal(want), normal(got))
}
