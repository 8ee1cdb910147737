//go:build unix

package pgstore_test

// Replicas as real processes. The test binary runs itself again as a
// replica (replicaRoleEnv says so): a Scheduler on the test database with
// the workflows "slow" (a chain first → second whose second task takes
// 1.5 s, on "@every 1s": OverlapSkip has work to do) and "quick" (one no-op
// task, "@every 1s"), until the file replicaStopEnv names exists; then it
// stops its Scheduler and exits. Handlers count their calls in files, one
// per run and task, so that the parent sees what ran where, even in a
// replica it killed.

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/b3b01171/workflow"
	"github.com/b3b01171/workflow/pgstore"
)

const (
	replicaRoleEnv   = "PGSTORE_REPLICA_ROLE"
	replicaSchemaEnv = "PGSTORE_REPLICA_SCHEMA"
	replicaCallsEnv  = "PGSTORE_REPLICA_CALLS"
	replicaStopEnv   = "PGSTORE_REPLICA_STOP"
	replicaWindowEnv = "PGSTORE_REPLICA_WINDOW"
)

// replicaTTL is the replicas' lease: a killed replica's run is recovered
// about that long after the kill.
const replicaTTL = time.Second

// replicaFlows builds the replica's workflows on st; calls is where their
// handlers count.
func replicaFlows(st *pgstore.Store, calls string, window time.Duration) (slow, quick *workflow.Workflow[nothing, nothing], err error) {
	count := func(ctx context.Context) error {
		info, _ := workflow.Info(ctx)
		f, err := os.OpenFile(filepath.Join(calls, info.RunID+"-"+info.Task), os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
		if err != nil {
			return err
		}
		if _, err := fmt.Fprintf(f, "%d %d\n", os.Getpid(), info.Attempt); err != nil {
			f.Close()
			return err
		}
		return f.Close()
	}
	slow, err = workflow.New[nothing, nothing]("slow", workflow.Tasks{
		workflow.Task[nothing, nothing]{Name: "first", Handler: func(ctx context.Context, _ nothing) (nothing, error) {
			return nothing{}, count(ctx)
		}},
		workflow.Task[nothing, nothing]{Name: "second", Dependencies: []string{"first"}, Handler: func(ctx context.Context, _ nothing) (nothing, error) {
			if err := count(ctx); err != nil {
				return nothing{}, err
			}
			t := time.NewTimer(1500 * time.Millisecond)
			defer t.Stop()
			select {
			case <-t.C:
				return nothing{}, nil
			case <-ctx.Done():
				return nothing{}, context.Cause(ctx)
			}
		}},
	}, workflow.WithStore(st), workflow.WithSchedule(workflow.Schedule{Cron: "@every 1s", CatchUpWindow: window}))
	if err != nil {
		return nil, nil, err
	}
	quick, err = workflow.New[nothing, nothing]("quick", workflow.Tasks{
		workflow.Task[nothing, nothing]{Name: "tick", Handler: func(ctx context.Context, _ nothing) (nothing, error) {
			return nothing{}, count(ctx)
		}},
	}, workflow.WithStore(st), workflow.WithSchedule(workflow.Schedule{Cron: "@every 1s", CatchUpWindow: window}))
	return slow, quick, err
}

// replicaMain is a replica's part. It never returns.
func replicaMain(t *testing.T) {
	window, _ := time.ParseDuration(os.Getenv(replicaWindowEnv))
	st, err := pgstore.Open(context.Background(), testDSN(t), pgstore.Schema(os.Getenv(replicaSchemaEnv)), pgstore.LeaseTTL(replicaTTL))
	require.NoError(t, err)
	slow, quick, err := replicaFlows(st, os.Getenv(replicaCallsEnv), window)
	require.NoError(t, err)
	s := workflow.NewScheduler(workflow.WithRecoverInterval(200 * time.Millisecond))
	require.NoError(t, s.Register(slow))
	require.NoError(t, s.Register(quick))
	s.Start()
	deadline := time.Now().Add(2 * time.Minute) // the parent is gone: give up
	for time.Now().Before(deadline) {
		if _, err := os.Stat(os.Getenv(replicaStopEnv)); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	require.NoError(t, s.Stop(ctx))
	require.NoError(t, st.Close())
	os.Exit(0)
}

// replicaSet is the replicas the parent started on one schema.
type replicaSet struct {
	schema, calls, stop string
	window              time.Duration
	cmds                []*exec.Cmd
	outs                []*bytes.Buffer
}

// start starts n replicas more.
func (rs *replicaSet) start(t *testing.T, n int) {
	t.Helper()
	for range n {
		var out bytes.Buffer
		cmd := exec.Command(os.Args[0], "-test.run=^"+t.Name()+"$", "-test.count=1")
		cmd.Env = append(os.Environ(), replicaRoleEnv+"=replica", replicaSchemaEnv+"="+rs.schema,
			replicaCallsEnv+"="+rs.calls, replicaStopEnv+"="+rs.stop, replicaWindowEnv+"="+rs.window.String())
		cmd.Stdout, cmd.Stderr = &out, &out
		require.NoError(t, cmd.Start())
		t.Cleanup(func() { // no replica outlives the test
			if cmd.ProcessState == nil {
				cmd.Process.Kill()
				cmd.Wait()
			}
		})
		rs.cmds, rs.outs = append(rs.cmds, cmd), append(rs.outs, &out)
	}
}

// stopAll tells every replica to stop, and waits for those not killed to
// exit cleanly.
func (rs *replicaSet) stopAll(t *testing.T) {
	t.Helper()
	require.NoError(t, os.WriteFile(rs.stop, nil, 0o644))
	for i, cmd := range rs.cmds {
		if cmd.ProcessState != nil {
			continue
		}
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case err := <-done:
			require.NoError(t, err, "replica %d's output:\n%s", i, rs.outs[i])
		case <-time.After(time.Minute):
			t.Fatalf("replica %d did not stop; its output:\n%s", i, rs.outs[i])
		}
	}
	require.NoError(t, os.Remove(rs.stop))
}

// runCalls reads the calls of a task in a run: pid and attempt of each.
func runCalls(t *testing.T, dir, runID, task string) []call {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(dir, runID+"-"+task))
	if os.IsNotExist(err) {
		return nil
	}
	require.NoError(t, err)
	var out []call
	for line := range strings.Lines(string(data)) {
		var c call
		_, err := fmt.Sscanf(line, "%d %d\n", &c.pid, &c.attempt)
		require.NoError(t, err)
		out = append(out, c)
	}
	return out
}

// history reads the runs of wf on schema, oldest first.
func history(t *testing.T, schema, wf string) []workflow.RunStatus {
	t.Helper()
	st := open(t, schema)
	runs, err := st.List(context.Background(), wf, workflow.HistoryQuery{})
	require.NoError(t, err)
	slices.Reverse(runs)
	return runs
}

func TestReplicaProcessesRunEachFireOnceSkipOverlapsAndRecoverAKilledReplica(t *testing.T) {
	if os.Getenv(replicaRoleEnv) == "replica" {
		replicaMain(t)
	}
	testDSN(t)
	t.Parallel()
	dir := t.TempDir()
	rs := &replicaSet{schema: newSchema(t), calls: filepath.Join(dir, "calls"), stop: filepath.Join(dir, "stop")}
	require.NoError(t, os.Mkdir(rs.calls, 0o755))
	open(t, rs.schema) // the schema exists before the replicas race to make it
	rs.start(t, 3)
	began := time.Now()

	// Kill the replica running the second task of a run of "slow", in
	// the middle of it.
	var victim call
	var victimRun string
	eventually(t, "a replica runs the second task of a run of slow", func() bool {
		files, err := os.ReadDir(rs.calls)
		require.NoError(t, err)
		for _, f := range files {
			if id, ok := strings.CutSuffix(f.Name(), "-second"); ok {
				if cs := runCalls(t, rs.calls, id, "second"); len(cs) == 1 {
					victim, victimRun = cs[0], id
					return true
				}
			}
		}
		return false
	})
	var killed *exec.Cmd
	for _, cmd := range rs.cmds {
		if cmd.Process.Pid == victim.pid {
			killed = cmd
		}
	}
	require.NotNil(t, killed)
	require.NoError(t, killed.Process.Signal(syscall.SIGKILL))
	killedAt := time.Now()
	killed.Wait()

	// Another replica resumes the run once its lease has expired.
	st := open(t, rs.schema)
	eventually(t, "the killed replica's run ends", func() bool {
		got, err := st.Get(context.Background(), "slow", victimRun)
		require.NoError(t, err)
		return got.State.Ended()
	})
	time.Sleep(time.Until(began.Add(6 * time.Second)))
	rs.stopAll(t)

	got, err := st.Get(context.Background(), "slow", victimRun)
	require.NoError(t, err)
	require.Equal(t, workflow.StateSucceeded, got.State, "the killed replica's run")
	require.Equal(t, 1, countType(got, workflow.EventRunResumed), "resumed once")
	require.Equal(t, []call{victim}, runCalls(t, rs.calls, victimRun, "first"), "first had succeeded: it did not run again")
	second := runCalls(t, rs.calls, victimRun, "second")
	require.Len(t, second, 2, "second ran in the killed replica, then once more")
	require.NotEqual(t, victim.pid, second[1].pid, "the second call is another replica's")
	var resumedAt time.Time
	for _, ev := range got.Events {
		if ev.Type == workflow.EventRunResumed {
			resumedAt = ev.Time
		}
	}
	require.GreaterOrEqual(t, resumedAt.Sub(killedAt), replicaTTL/2, "resumed only once the lease could expire")

	// slow: each fire at most once, and no two scheduled runs at once on
	// any replicas; the killed run does not count while its lease
	// expires (see OverlapPolicy), so it is left out.
	slow := history(t, rs.schema, "slow")
	require.GreaterOrEqual(t, len(slow), 2, "runs of slow")
	requireOncePerSecond(t, scheduledTimes(slow))
	var live []workflow.RunStatus
	for _, r := range slow {
		require.Equal(t, workflow.StateSucceeded, r.State, "run %s", r.RunID)
		if r.RunID != victimRun {
			live = append(live, r)
		}
	}
	slices.SortFunc(live, func(a, b workflow.RunStatus) int { return a.StartedAt.Compare(b.StartedAt) })
	for i := 1; i < len(live); i++ {
		require.False(t, live[i].StartedAt.Before(live[i-1].EndedAt), "run %s (fire %v) started at %v, before run %s (fire %v) ended at %v",
			live[i].RunID, live[i].ScheduledAt, live[i].StartedAt, live[i-1].RunID, live[i-1].ScheduledAt, live[i-1].EndedAt)
	}

	// quick: every fire once, one second apart; a fire claimed by the
	// killed replica just before its death may have no run.
	quick := scheduledTimes(history(t, rs.schema, "quick"))
	require.GreaterOrEqual(t, len(quick), 4, "fires of quick: %v", quick)
	requireOncePerSecond(t, quick)
	for i := 1; i < len(quick); i++ {
		gap := quick[i].Sub(quick[i-1])
		if gap != time.Second {
			require.Equal(t, 2*time.Second, gap, "fires of quick: %v", quick)
			require.WithinDuration(t, killedAt, quick[i], 2*time.Second, "a fire lost away from the kill: %v", quick)
		}
	}
}

func TestAReplicaStartedAfterEveryReplicaWasDownMakesUpTheMissedFiresInOrder(t *testing.T) {
	if os.Getenv(replicaRoleEnv) == "replica" {
		replicaMain(t)
	}
	testDSN(t)
	t.Parallel()
	dir := t.TempDir()
	rs := &replicaSet{schema: newSchema(t), calls: filepath.Join(dir, "calls"), stop: filepath.Join(dir, "stop"), window: 3 * time.Second}
	require.NoError(t, os.Mkdir(rs.calls, 0o755))
	open(t, rs.schema)
	st := open(t, rs.schema)
	rs.start(t, 2)
	eventually(t, "quick ran", func() bool {
		runs, err := st.List(context.Background(), "quick", workflow.HistoryQuery{State: workflow.StateSucceeded})
		require.NoError(t, err)
		return len(runs) > 0
	})
	rs.stopAll(t)
	before := scheduledTimes(history(t, rs.schema, "quick"))
	last := before[len(before)-1]

	// Down for five fires; the window holds the latest three.
	time.Sleep(time.Until(last.Add(5500 * time.Millisecond)))
	rs.start(t, 1)
	eventually(t, "the missed fires are made up", func() bool {
		runs, err := st.List(context.Background(), "quick", workflow.HistoryQuery{State: workflow.StateSucceeded})
		require.NoError(t, err)
		return len(runs) >= len(before)+3
	})
	rs.stopAll(t)
	runs := history(t, rs.schema, "quick")
	at := scheduledTimes(runs)
	requireOncePerSecond(t, at)
	require.Equal(t, []time.Time{last.Add(3 * time.Second), last.Add(4 * time.Second), last.Add(5 * time.Second)},
		utc(at[len(before):len(before)+3]), "the missed fires within the window, once each, oldest first: %v", at)
	for _, r := range runs[len(before) : len(before)+3] {
		require.Equal(t, workflow.TriggerSchedule, r.Trigger)
		require.Equal(t, workflow.StateSucceeded, r.State)
	}
}

func scheduledTimes(runs []workflow.RunStatus) []time.Time {
	out := make([]time.Time, len(runs))
	for i, r := range runs {
		out[i] = r.ScheduledAt.UTC()
	}
	return out
}

func countType(rs workflow.RunStatus, typ string) int {
	n := 0
	for _, ev := range rs.Events {
		if ev.Type == typ {
			n++
		}
	}
	return n
}
