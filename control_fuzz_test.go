package workflow_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"
	"testing/synctest"

	"github.com/stretchr/testify/require"

	"github.com/b3b01171/workflow"
)

// rulesCase is a random DAG whose tasks each have a trigger rule and an
// outcome (what the handler does if the task runs).
type rulesCase struct {
	deps     [][]int
	rules    []workflow.TriggerRule
	outcomes []byte // 's' succeed, 'f' fail, 'k' skip
	durable  bool
}

// rulesCaseOf decodes data into a case: every byte counts, none is
// rejected, so that a fuzzer explores freely.
func rulesCaseOf(data []byte) rulesCase {
	next := func() byte {
		if len(data) == 0 {
			return 0
		}
		b := data[0]
		data = data[1:]
		return b
	}
	n := 2 + int(next()%10)
	c := rulesCase{deps: make([][]int, n), rules: make([]workflow.TriggerRule, n), outcomes: make([]byte, n)}
	c.durable = next()%2 == 1
	for i := range n {
		c.outcomes[i] = "ssfk"[next()%4]
		if i == 0 {
			continue
		}
		mask := next()
		for j := 0; j < i && j < 8; j++ {
			if mask&(1<<j) != 0 {
				c.deps[i] = append(c.deps[i], i-1-j)
			}
		}
		if len(c.deps[i]) > 0 {
			c.rules[i] = workflow.TriggerRule(next() % 4)
		}
	}
	return c
}

// expect is what the rules say, worked out in topological order (task
// indexes are one): each task's end state, and the run's.
func (c rulesCase) expect() ([]workflow.State, workflow.State) {
	states := make([]workflow.State, len(c.deps))
	run := workflow.StateSucceeded
	for i, deps := range c.deps {
		succeeded, failed, all := 0, 0, len(deps)
		for _, d := range deps {
			switch states[d] {
			case workflow.StateSucceeded:
				succeeded++
			case workflow.StateFailed:
				failed++
			}
		}
		runs := true
		if all > 0 {
			switch c.rules[i] {
			case workflow.AllSucceeded:
				runs = succeeded == all
			case workflow.NoneFailed:
				runs = failed == 0 && succeeded > 0
			case workflow.OneSucceeded:
				runs = succeeded > 0
			}
		}
		switch {
		case !runs || c.outcomes[i] == 'k':
			states[i] = workflow.StateSkipped
		case c.outcomes[i] == 'f':
			states[i] = workflow.StateFailed
			run = workflow.StateFailed
		default:
			states[i] = workflow.StateSucceeded
		}
	}
	return states, run
}

// check runs c and compares every state with expect's. A workflow whose
// tasks all keep the default rule cancels on its first failure, which
// makes the other tasks' states depend on timing: for those, only the
// run's state is compared.
func (c rulesCase) check(t *testing.T) {
	t.Helper()
	tasks := make(workflow.Tasks, len(c.deps))
	anyRule := false
	for i := range c.deps {
		outcome := c.outcomes[i]
		handler := func(context.Context, workflow.Inputs) (int, error) {
			switch outcome {
			case 'f':
				return 0, workflow.Permanent(errBoom)
			case 'k':
				return 0, workflow.Skip("by choice")
			}
			return i, nil
		}
		var deps []string
		for _, d := range c.deps[i] {
			deps = append(deps, fmt.Sprint("t", d))
		}
		anyRule = anyRule || c.rules[i] != workflow.AllSucceeded
		if len(deps) == 0 {
			tasks[i] = workflow.Task[int, int]{Name: fmt.Sprint("t", i), Handler: func(ctx context.Context, _ int) (int, error) {
				return handler(ctx, workflow.Inputs{})
			}}
			continue
		}
		tasks[i] = workflow.Task[workflow.Inputs, int]{Name: fmt.Sprint("t", i), Dependencies: deps, Trigger: c.rules[i], Handler: handler}
	}
	var store workflow.Store = workflow.NewMemoryStore()
	if c.durable {
		store = newJSONStore()
	}
	w, err := workflow.New[int, int]("rules", tasks, workflow.WithStore(store), workflow.WithOutput(fmt.Sprint("t", len(c.deps)-1)))
	require.NoError(t, err, "%+v", c)
	states, runState := c.expect()
	synctest.Test(t, func(t *testing.T) {
		_, err := w.Run(t.Context(), 0)
		rs, ierr := w.Status(t.Context())
		require.NoError(t, ierr)
		requireCompleteEvents(t, rs)
		require.Equal(t, runState, rs.State, "case %+v", c)
		if runState == workflow.StateFailed {
			require.Error(t, err)
		} else {
			require.NoError(t, err)
		}
		if !anyRule && runState == workflow.StateFailed {
			return
		}
		for i, want := range states {
			ts, _ := rs.Task(fmt.Sprint("t", i))
			require.Equal(t, want, ts.State, "task t%d of case %+v", i, c)
		}
	})
}

func TestRandomGraphsOfTriggerRulesEndAsTheRulesSay(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 17))
	for k := range 300 {
		data := make([]byte, 40)
		for i := range data {
			data[i] = byte(rng.UintN(256))
		}
		c := rulesCaseOf(data)
		t.Run(fmt.Sprint(k), c.check)
	}
}

func FuzzTriggerRules(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte{8, 1, 0, 2, 1, 3, 2, 3, 1, 255, 2, 1, 3, 7, 0})
	f.Fuzz(func(t *testing.T, data []byte) { rulesCaseOf(data).check(t) })
}
