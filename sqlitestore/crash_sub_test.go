//go:build unix

package sqlitestore_test

import (
	"context"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/b3b01171/workflow"
	"github.com/b3b01171/workflow/sqlitestore"
)

// crashSub is a parent p → sub → q whose sub task runs the child workflow
// x → y, both on the store s. In the child process, y stops once its start
// is committed.
func crashSub(e *crashEnv, s workflow.Store) (*workflow.Workflow[int, int], error) {
	parent, _, err := crashSubPair(e, s)
	return parent, err
}

func crashSubPair(e *crashEnv, s workflow.Store) (*workflow.Workflow[int, int], *workflow.Workflow[int, int], error) {
	var yStarted <-chan struct{}
	if e.child != nil {
		yStarted = e.child.committed("y", workflow.EventTaskStarted)
	}
	step := func(name string, add int) func(ctx context.Context, n int) (int, error) {
		return func(ctx context.Context, n int) (int, error) {
			if err := e.count(ctx); err != nil {
				return 0, err
			}
			if name == "y" && e.child != nil {
				return 0, e.stall(ctx, yStarted)
			}
			return 10*n + add, nil
		}
	}
	child, err := workflow.New[int, int]("crash-sub-child", workflow.Tasks{
		workflow.Task[int, int]{Name: "x", Handler: step("x", 2)},
		workflow.Task[int, int]{Name: "y", Dependencies: []string{"x"}, Handler: step("y", 3)},
	}, workflow.WithStore(s))
	if err != nil {
		return nil, nil, err
	}
	parent, err := workflow.New[int, int]("crash-sub-parent", workflow.Tasks{
		workflow.Task[int, int]{Name: "p", Handler: step("p", 1)},
		workflow.Sub("sub", child, "p"),
		workflow.Task[int, int]{Name: "q", Dependencies: []string{"sub"}, Handler: step("q", 4)},
	}, workflow.WithStore(s))
	return parent, child, err
}

func TestCrashAKilledSubTaskIsRecoveredWithItsParentRun(t *testing.T) {
	if os.Getenv(crashRoleEnv) == "sub" {
		crashChild(t, crashSub, 7)
	}
	t.Parallel()
	c := killChild(t, "sub") // c.runID is the child run's: y sent it
	parentID, ok := strings.CutSuffix(c.runID, ".sub")
	require.True(t, ok, "the child run's ID is the parent's and the task's: %q", c.runID)

	s := open(t, c.db, sqlitestore.LeaseTTL(crashTTL))
	parent, child, err := crashSubPair(&crashEnv{calls: c.calls}, s)
	require.NoError(t, err)
	ctx := context.Background()
	deadline := time.Now().Add(10*crashTTL + 10*time.Second)
	for !slices.Contains(orphans(t, s, "crash-sub-child"), c.runID) || !slices.Contains(orphans(t, s, "crash-sub-parent"), parentID) {
		require.True(t, time.Now().Before(deadline), "the killed process's leases never expired")
		time.Sleep(crashTTL / 20)
	}
	execs, err := child.Recover(ctx)
	require.NoError(t, err)
	require.Empty(t, execs, "a Sub's child run is left to its parent's recovery")

	execs, err = parent.Recover(ctx)
	require.NoError(t, err)
	require.Len(t, execs, 1)
	require.Equal(t, parentID, execs[0].ID())
	out, err := execs[0].Wait(ctx)
	require.NoError(t, err)
	require.Equal(t, 71234, out, "p, then the child's x and y, then q")

	me := os.Getpid()
	require.Equal(t, map[string][]call{
		"p": {{c.pid, 1}},
		"x": {{c.pid, 1}},
		"y": {{c.pid, 1}, {me, 2}},
		"q": {{me, 1}},
	}, calls(t, c.calls), "the child's succeeded task did not run again")

	rs, err := child.Inspect(ctx, c.runID)
	require.NoError(t, err)
	require.Equal(t, workflow.StateSucceeded, rs.State)
	require.Equal(t, workflow.TriggerParent, rs.Trigger)
	runs, err := child.History(ctx)
	require.NoError(t, err)
	require.Len(t, runs, 1, "the child run was resumed, not started again")
	require.Empty(t, orphans(t, s, "crash-sub-child"))
	require.Empty(t, orphans(t, s, "crash-sub-parent"))
}
