package dashboard_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/b3b01171/workflow"
	"github.com/b3b01171/workflow/dashboard"
)

// BenchmarkWorkflowPage renders the page of a workflow with 1,000 kept
// runs (the MemoryStore's default).
func BenchmarkWorkflowPage(b *testing.B) {
	wf := workflow.MustNew[int, int]("busy", workflow.Tasks{
		workflow.Task[int, int]{Name: "a", Handler: func(ctx context.Context, n int) (int, error) { return n, nil }},
		workflow.Task[int, int]{Name: "b", Dependencies: []string{"a"}, Handler: func(ctx context.Context, n int) (int, error) { return n, nil }},
	})
	for i := range workflow.DefaultMaxRuns {
		_, err := wf.Run(context.Background(), i)
		require.NoError(b, err)
	}
	h, err := dashboard.New(dashboard.Add(wf))
	require.NoError(b, err)
	benchPage(b, h, "/workflows/busy")
}

// BenchmarkRunPage renders the page of a run of 2,000 tasks: 40 layers of
// 50, each task fed by one of the layer before.
func BenchmarkRunPage(b *testing.B) {
	var tasks workflow.Tasks
	for l := range 40 {
		for k := range 50 {
			t := workflow.Task[int, int]{Name: fmt.Sprintf("l%02d-t%02d", l, k), Handler: func(ctx context.Context, n int) (int, error) { return n, nil }}
			if l > 0 {
				t.Dependencies = []string{fmt.Sprintf("l%02d-t%02d", l-1, (k+l)%50)}
			}
			tasks = append(tasks, t)
		}
	}
	tasks = append(tasks, workflow.Task[workflow.Inputs, int]{Name: "end", Dependencies: func() []string {
		var deps []string
		for k := range 50 {
			deps = append(deps, fmt.Sprintf("l39-t%02d", k))
		}
		return deps
	}(), Handler: func(ctx context.Context, in workflow.Inputs) (int, error) { return 0, nil }})
	wf, err := workflow.New[int, int]("wide", tasks)
	require.NoError(b, err)
	_, err = wf.Run(context.Background(), 1)
	require.NoError(b, err)
	rs, err := wf.Status(context.Background())
	require.NoError(b, err)
	h, err := dashboard.New(dashboard.Add(wf))
	require.NoError(b, err)
	benchPage(b, h, "/workflows/wide/runs/"+rs.RunID)
}

// BenchmarkOverview renders the overview of ten workflows with 1,000 runs
// each.
func BenchmarkOverview(b *testing.B) {
	var opts []dashboard.Option
	for w := range 10 {
		wf := workflow.MustNew[int, int](fmt.Sprint("w", w), workflow.Tasks{
			workflow.Task[int, int]{Name: "a", Handler: func(ctx context.Context, n int) (int, error) { return n, nil }},
		})
		for i := range workflow.DefaultMaxRuns {
			_, err := wf.Run(context.Background(), i)
			require.NoError(b, err)
		}
		opts = append(opts, dashboard.Add(wf))
	}
	h, err := dashboard.New(opts...)
	require.NoError(b, err)
	benchPage(b, h, "/")
}

func benchPage(b *testing.B, h http.Handler, target string) {
	b.Helper()
	b.ReportAllocs()
	for b.Loop() {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, target, nil))
		if rec.Code != http.StatusOK {
			b.Fatalf("GET %s: %d %s", target, rec.Code, rec.Body)
		}
	}
}
