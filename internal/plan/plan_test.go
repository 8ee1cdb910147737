package plan_test

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/b3b01171/workflow"
	"github.com/b3b01171/workflow/internal/plan"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func diamond(t *testing.T) *workflow.Workflow[int, string] {
	t.Helper()
	return workflow.MustNew[int, string]("diamond", workflow.Tasks{
		workflow.Task[int, int]{Name: "a", Handler: func(ctx context.Context, n int) (int, error) { return n + 1, nil }},
		workflow.Task[int, int]{
			Name: "b", Dependencies: []string{"a"}, Timeout: time.Second,
			Retry:   workflow.RetryPolicy{Attempts: 3, Delay: time.Minute, Backoff: 2},
			Handler: func(ctx context.Context, n int) (int, error) { return n * 10, nil },
		},
		workflow.Task[int, string]{Name: "c", Dependencies: []string{"a"}, Handler: func(ctx context.Context, n int) (string, error) {
			panic("c is broken")
		}},
		workflow.Task[workflow.Inputs, string]{Name: "d", Dependencies: []string{"c", "b"}, Handler: func(ctx context.Context, in workflow.Inputs) (string, error) {
			b, err := workflow.Get[int](in, "b")
			if err != nil {
				return "", err
			}
			c, err := workflow.Get[string](in, "c")
			return fmt.Sprintf("%s:%d", c, b), err
		}},
	})
}

func TestOfDescribesTasksInTopologicalOrder(t *testing.T) {
	p, err := plan.Of(diamond(t))
	require.NoError(t, err)
	require.Equal(t, "diamond", p.Workflow)
	require.Equal(t, reflect.TypeFor[int](), p.In)
	require.Equal(t, reflect.TypeFor[string](), p.Out)
	require.Equal(t, "d", p.Output)
	var names []string
	for _, task := range p.Tasks {
		names = append(names, task.Name)
	}
	require.Equal(t, []string{"a", "b", "c", "d"}, names)

	b, ok := p.Task("b")
	require.True(t, ok)
	require.Equal(t, []string{"a"}, b.Dependencies)
	require.Equal(t, time.Second, b.Timeout)
	require.Equal(t, plan.Retry{Attempts: 3, Delay: time.Minute, Backoff: 2}, b.Retry)
	require.Equal(t, reflect.TypeFor[int](), b.In)
	_, ok = p.Task("nope")
	require.False(t, ok)
}

func TestCallRunsOneHandlerByName(t *testing.T) {
	p, err := plan.Of(diamond(t))
	require.NoError(t, err)
	ctx := context.Background()
	outputs := map[string]any{}
	for _, name := range []string{"a", "b"} {
		task, _ := p.Task(name)
		in, err := p.Input(name, 4, outputs)
		require.NoError(t, err)
		outputs[name], err = task.Call(ctx, in)
		require.NoError(t, err)
	}
	require.Equal(t, 5, outputs["a"])
	require.Equal(t, 50, outputs["b"])

	c, _ := p.Task("c")
	_, err = c.Call(ctx, 5)
	require.ErrorIs(t, err, workflow.ErrPanic, "Call recovers panics into errors")

	outputs["c"] = "x"
	in, err := p.Input("d", 4, outputs)
	require.NoError(t, err)
	d, _ := p.Task("d")
	out, err := d.Call(ctx, in)
	require.NoError(t, err)
	require.Equal(t, "x:50", out)
}

func TestInputNamesWhatIsMissing(t *testing.T) {
	p, err := plan.Of(diamond(t))
	require.NoError(t, err)
	_, err = p.Input("d", 4, map[string]any{"b": 1})
	require.ErrorIs(t, err, workflow.ErrNotFound)
	require.ErrorContains(t, err, `"c"`)
	_, err = p.Input("zzz", 4, nil)
	require.ErrorIs(t, err, workflow.ErrNotFound)
}

func TestOfRejectsWhatIsNotAWorkflow(t *testing.T) {
	for _, v := range []any{nil, 42, (*workflow.Workflow[int, int])(nil), &workflow.Workflow[int, int]{}} {
		_, err := plan.Of(v)
		require.True(t, errors.Is(err, plan.ErrNotWorkflow), "%T", v)
	}
}
