package dashboard_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/b3b01171/workflow"
	"github.com/b3b01171/workflow/dashboard"
)

func TestNew(t *testing.T) {
	wf := workflow.MustNew[int, int]("w", workflow.Tasks{
		workflow.Task[int, int]{Name: "a", Handler: func(ctx context.Context, n int) (int, error) { return n, nil }},
	})

	t.Run("RefusesWhatItCannotShow", func(t *testing.T) {
		for name, opts := range map[string][]dashboard.Option{
			"nil Option":                  {nil},
			"not built by":                {dashboard.Add[int, int](nil)},
			"not built by (zero)":         {dashboard.Add(&workflow.Workflow[int, int]{})},
			`two workflows are named "w"`: {dashboard.Add(wf), dashboard.Add(wf)},
		} {
			_, err := dashboard.New(opts...)
			require.Error(t, err, name)
			require.Contains(t, err.Error(), strings.TrimSuffix(name, " (zero)"))
			require.True(t, strings.HasPrefix(err.Error(), "dashboard: "), err.Error())
		}
	})

	t.Run("WithoutWorkflowsShowsAnEmptyOverview", func(t *testing.T) {
		h, err := dashboard.New()
		require.NoError(t, err)
		r := get(t, h, "/")
		require.Equal(t, http.StatusOK, r.Code)
		require.Contains(t, r.Body, "No workflows yet")
	})
}

func TestOverview(t *testing.T) {
	b := setup(t)
	b.runs(t)

	t.Run("ListsEveryWorkflowWithItsLatestState", func(t *testing.T) {
		r := get(t, b.handler, "/")
		require.Equal(t, http.StatusOK, r.Code)
		require.Equal(t, "text/html; charset=utf-8", r.Header.Get("Content-Type"))
		for name, state := range map[string]string{"orders": "succeeded", "flaky": "failed", "slow": "running"} {
			row := rowOf(t, r.Body, `data-workflow="`+name+`"`)
			require.Contains(t, row, `class="state state-`+state+`"`, name)
		}
		require.Contains(t, rowOf(t, r.Body, `data-workflow="slow"`), `<td class="num running">1</td>`)
		require.Contains(t, rowOf(t, r.Body, `data-workflow="orders"`), `100%`)
		require.Contains(t, rowOf(t, r.Body, `data-workflow="flaky"`), `0%`)
	})

	t.Run("RefreshesItselfWhileRunsAreUnderWay", func(t *testing.T) {
		require.Contains(t, get(t, b.handler, "/").Body, `<body data-live="true">`)
		b.release()
		waitIdle(t, b.slow)
		require.Contains(t, get(t, b.handler, "/").Body, `<body data-live="false">`)
	})

	t.Run("IsSelfContained", func(t *testing.T) {
		body := get(t, b.handler, "/").Body
		require.NotRegexp(t, `(src|href)="(https?:)?//`, body)
		require.Contains(t, body, `<link rel="stylesheet" href="static/style.css">`)
	})
}

// rowOf returns the table row of body whose <tr> carries attr.
func rowOf(t *testing.T, body, attr string) string {
	t.Helper()
	i := strings.Index(body, "<tr "+attr)
	require.GreaterOrEqual(t, i, 0, "no row with %s", attr)
	end := strings.Index(body[i:], "</tr>")
	return body[i : i+end]
}

func TestWorkflowPage(t *testing.T) {
	b := setup(t)
	_, flakyID, _ := b.runs(t)

	t.Run("ShowsTheGraphColouredByTheLatestRun", func(t *testing.T) {
		r := get(t, b.handler, "/workflows/flaky")
		require.Equal(t, http.StatusOK, r.Code)
		require.Contains(t, r.Body, `<svg xmlns="http://www.w3.org/2000/svg"`)
		require.Contains(t, r.Body, `data-task="charge &lt;card&gt;" data-state="failed"`)
		require.Contains(t, r.Body, `fill="`+workflow.StateColor(workflow.StateFailed)+`"`)
		require.Contains(t, rowOf(t, r.Body, `data-run="`+flakyID+`"`), "charge &lt;card&gt;") // the failed task
	})

	t.Run("ListsRunsNewestFirstInPages", func(t *testing.T) {
		var ids []string
		for i := range 30 {
			_, err := b.orders.Run(context.Background(), Order{ID: fmt.Sprint(i), Items: 1})
			require.NoError(t, err)
			rs, err := b.orders.Status(context.Background())
			require.NoError(t, err)
			ids = append([]string{rs.RunID}, ids...)
		}
		r := get(t, b.handler, "/workflows/orders")
		listed := runIDs(r.Body)
		require.Equal(t, ids[:25], listed)
		next := regexp.MustCompile(`href="([^"]*)" rel="next"`).FindStringSubmatch(r.Body)
		require.NotNil(t, next, "a link to the older runs")
		require.Equal(t, "workflows/orders?before="+ids[24], htmlUnescape(next[1]))

		r = get(t, b.handler, "/"+htmlUnescape(next[1]))
		require.Equal(t, http.StatusOK, r.Code)
		require.Equal(t, append(ids[25:], runIDs(r.Body)[5:]...), runIDs(r.Body)) // 5 more, then the first run
		require.Len(t, runIDs(r.Body), 6)
		require.NotContains(t, r.Body, `rel="next"`)
		require.Contains(t, r.Body, `id="newest"`)
	})

	t.Run("FiltersByState", func(t *testing.T) {
		r := get(t, b.handler, "/workflows/flaky?state=succeeded")
		require.Equal(t, http.StatusOK, r.Code)
		require.Empty(t, runIDs(r.Body))
		require.Contains(t, r.Body, "No runs in state succeeded.")
		r = get(t, b.handler, "/workflows/flaky?state=failed&limit=1")
		require.Equal(t, []string{flakyID}, runIDs(r.Body))
	})

	t.Run("RefusesBadPagingWith400", func(t *testing.T) {
		for target, reason := range map[string]string{
			"/workflows/orders?before=nope":  `cursor &#34;nope&#34; names no run`,
			"/workflows/orders?state=lost":   `state &#34;lost&#34; is not a state`,
			"/workflows/orders?limit=0":      `limit &#34;0&#34; must be`,
			"/workflows/orders?limit=101":    `limit &#34;101&#34; must be`,
			"/workflows/orders?limit=banana": `limit &#34;banana&#34; must be`,
		} {
			r := get(t, b.handler, target)
			require.Equal(t, http.StatusBadRequest, r.Code, target)
			require.Contains(t, r.Body, reason, target)
		}
	})

	t.Run("OfAnUnknownWorkflowIs404", func(t *testing.T) {
		r := get(t, b.handler, "/workflows/nope")
		require.Equal(t, http.StatusNotFound, r.Code)
		require.Contains(t, r.Body, `no workflow named &#34;nope&#34;`)
	})
}

var runRow = regexp.MustCompile(`<tr data-run="([^"]+)">`)

func runIDs(body string) []string {
	var ids []string
	for _, m := range runRow.FindAllStringSubmatch(body, -1) {
		ids = append(ids, m[1])
	}
	return ids
}

func htmlUnescape(s string) string { return strings.NewReplacer("&amp;", "&", "&#43;", "+").Replace(s) }

func TestRunPage(t *testing.T) {
	b := setup(t)
	ordersID, flakyID, slowID := b.runs(t)

	t.Run("OfAFailedRunShowsTheTaskItsAttemptsAndItsError", func(t *testing.T) {
		r := get(t, b.handler, "/workflows/flaky/runs/"+flakyID)
		require.Equal(t, http.StatusOK, r.Code)
		require.Contains(t, r.Body, `id="run-state">failed<`)
		row := rowOf(t, r.Body, `data-task="charge &lt;card&gt;"`)
		require.Contains(t, row, `state-failed`)
		require.Contains(t, row, `<td class="num attempts">2</td>`)
		require.Contains(t, row, `&lt;script&gt;alert(1)&lt;/script&gt;`)
		require.Contains(t, rowOf(t, r.Body, `data-task="notify"`), `state-skipped`)
		require.Contains(t, r.Body, `data-task="charge &lt;card&gt;" data-state="failed"`)
		require.Contains(t, r.Body, "task_retrying")
		require.Contains(t, r.Body, `<body data-live="false">`)
	})

	t.Run("EscapesEveryValueOfTheRun", func(t *testing.T) {
		body := get(t, b.handler, "/workflows/flaky/runs/"+flakyID).Body
		require.NotContains(t, body, xssScript)
		require.NotContains(t, body, "<img")
		require.Equal(t, 1, strings.Count(body, "<script"), "only the dashboard's own script")
	})

	t.Run("DrawsEachAttemptAndWaitOnTheTimeline", func(t *testing.T) {
		body := get(t, b.handler, "/workflows/flaky/runs/"+flakyID).Body
		i := strings.Index(body, `<div class="gantt-row critical" data-task="charge &lt;card&gt;">`)
		require.GreaterOrEqual(t, i, 0, "charge is on the critical path")
		row := body[i : i+strings.Index(body[i:], "</div>\n</div>")]
		require.Equal(t, 1, strings.Count(row, "bar attempt outcome-retried"))
		require.Equal(t, 1, strings.Count(row, "bar wait"))
		require.Equal(t, 1, strings.Count(row, "bar attempt outcome-failed"))
		require.Contains(t, body, `<div class="gantt-row critical" data-task="load">`)
		require.Contains(t, body, `<div class="gantt-row" data-task="notify">`) // skipped: never ran
	})

	t.Run("OfARunUnderWayIsLiveAndOffersCancel", func(t *testing.T) {
		b.allow.Store(true)
		defer b.allow.Store(false)
		r := get(t, b.handler, "/workflows/slow/runs/"+slowID)
		require.Contains(t, r.Body, `<body data-live="true">`)
		require.Contains(t, r.Body, `action="workflows/slow/runs/`+slowID+`/cancel"`)
		require.NotContains(t, r.Body, `id="resume"`)
		require.Contains(t, r.Body, "bar attempt outcome-running")
	})

	t.Run("ShowsInputAndOutputWhenTheStoreKeepsThem", func(t *testing.T) {
		wf := workflow.MustNew[Order, Receipt]("kept", workflow.Tasks{
			workflow.Task[Order, Receipt]{Name: "price", Handler: func(ctx context.Context, o Order) (Receipt, error) {
				return Receipt{Order: o, Total: 3, Note: xssImg}, nil
			}},
		}, workflow.WithStore(persistentStore{workflow.NewMemoryStore()}))
		_, err := wf.Run(context.Background(), Order{ID: "</pre><b>x", Items: 3})
		require.NoError(t, err)
		rs, err := wf.Status(context.Background())
		require.NoError(t, err)
		h, err := dashboard.New(dashboard.Add(wf))
		require.NoError(t, err)
		body := get(t, h, "/workflows/kept/runs/"+rs.RunID).Body
		require.Contains(t, body, `<section id="input"><h2>Input</h2><pre class="json">{
  &#34;id&#34;: &#34;\u003c/pre\u003e\u003cb\u003ex&#34;,`)
		require.Contains(t, body, `<section id="output"><h2>Output</h2>`)
		require.Contains(t, body, `&#34;total&#34;: 3`)
		require.NotContains(t, body, "<img")
	})

	t.Run("ShowsMapProgressSkipReasonsAndTheParentRun", func(t *testing.T) {
		child := workflow.MustNew[[]int, int]("sum", workflow.Tasks{
			workflow.Task[[]int, int]{Name: "add", Handler: func(_ context.Context, xs []int) (int, error) { return len(xs), nil }},
		})
		wf := workflow.MustNew[[]int, int]("mapped", workflow.Tasks{
			workflow.Map[int, int]{Name: "each", Handler: func(_ context.Context, i int) (int, error) {
				if i == 3 {
					return 0, errors.New("bad item")
				}
				return i, nil
			}},
			workflow.Sub("sum", child, "each"),
			workflow.Task[workflow.Inputs, int]{Name: "cleanup", Dependencies: []string{"sum"}, Trigger: workflow.AllDone,
				Handler: func(context.Context, workflow.Inputs) (int, error) { return 0, nil }},
		}, workflow.WithOutput("cleanup"))
		_, err := wf.Run(context.Background(), []int{0, 1, 2, 3})
		require.Error(t, err)
		rs, err := wf.Status(context.Background())
		require.NoError(t, err)
		_, err = wf.Run(context.Background(), []int{5})
		require.NoError(t, err)
		runs, err := child.History(context.Background())
		require.NoError(t, err)
		require.Len(t, runs, 1)
		h, err := dashboard.New(dashboard.Add(wf), dashboard.Add(child))
		require.NoError(t, err)

		body := get(t, h, "/workflows/mapped/runs/"+rs.RunID).Body
		require.Contains(t, rowOf(t, body, `data-task="each"`), `<div class="muted small items">3 / 4 items, failed: 3</div>`)
		require.Contains(t, rowOf(t, body, `data-task="sum"`), `dependency &#34;each&#34; failed`, "the reason of a skip")
		require.Contains(t, body, "each [item 3]")
		require.Contains(t, body, "4 items")

		body = get(t, h, "/workflows/sum/runs/"+runs[0].RunID).Body
		require.Contains(t, body, `<span class="muted" id="parent-run">(child of run <code>`+runs[0].ParentRunID+`</code>)</span>`)
	})

	t.Run("OfAnUnknownRunIs404", func(t *testing.T) {
		r := get(t, b.handler, "/workflows/orders/runs/nope")
		require.Equal(t, http.StatusNotFound, r.Code)
		require.Contains(t, r.Body, `Workflow &#34;orders&#34; has no run &#34;nope&#34;.`)
		r = get(t, b.handler, "/workflows/flaky/runs/"+ordersID) // a run of another workflow
		require.Equal(t, http.StatusNotFound, r.Code)
	})
}

// persistentStore is a MemoryStore that says it is Persistent, so that the
// engine encodes payloads as JSON and RunStatus shows them.
type persistentStore struct{ *workflow.MemoryStore }

func (persistentStore) Persistent() bool { return true }

func TestActions(t *testing.T) {
	t.Run("AreAbsentAndRefusedByDefault", func(t *testing.T) {
		b := setup(t)
		_, flakyID, slowID := b.runs(t)
		for _, target := range []string{"/workflows/flaky", "/workflows/flaky/runs/" + flakyID, "/workflows/slow/runs/" + slowID} {
			body := get(t, b.handler, target).Body
			require.NotContains(t, body, "<form method=\"post\"", target)
			for _, button := range []string{`id="run-now-button"`, `id="cancel"`, `id="resume"`} {
				require.NotContains(t, body, button, target)
			}
		}
		for _, target := range []string{"/workflows/flaky/run", "/workflows/flaky/runs/" + flakyID + "/resume", "/workflows/slow/runs/" + slowID + "/cancel"} {
			r := post(t, b.handler, target, nil)
			require.Equal(t, http.StatusForbidden, r.Code, target)
			require.Contains(t, r.Body, "does not allow you to act on runs")
		}
		rs, err := b.slow.Inspect(context.Background(), slowID)
		require.NoError(t, err)
		require.Equal(t, workflow.StateRunning, rs.State)
	})

	t.Run("AreRefusedWhenAllowSaysNo", func(t *testing.T) {
		h, err := dashboard.New(dashboard.Add(workflow.MustNew[int, int]("w", workflow.Tasks{
			workflow.Task[int, int]{Name: "a", Handler: func(ctx context.Context, n int) (int, error) { return n, nil }},
		})), dashboard.AllowActions(func(r *http.Request) bool { return r.Header.Get("X-Admin") == "yes" }))
		require.NoError(t, err)
		require.Equal(t, http.StatusForbidden, post(t, h, "/workflows/w/run", nil).Code)
		require.Equal(t, http.StatusSeeOther, do(t, h, http.MethodPost, "/workflows/w/run", url.Values{}, "X-Admin", "yes").Code)
		require.NotContains(t, get(t, h, "/workflows/w").Body, `id="run-now-button"`)
	})

	t.Run("RefuseRequestsFromAnotherSite", func(t *testing.T) {
		b := setup(t)
		b.allow.Store(true)
		_, _, slowID := b.runs(t)
		for _, h := range [][]string{{"Sec-Fetch-Site", "cross-site"}, {"Origin", "https://evil.example"}} {
			r := do(t, b.handler, http.MethodPost, "/workflows/slow/runs/"+slowID+"/cancel", url.Values{}, h...)
			require.Equal(t, http.StatusForbidden, r.Code, h)
			require.Contains(t, r.Body, "came from another site")
		}
		r := do(t, b.handler, http.MethodPost, "/workflows/slow/runs/"+slowID+"/cancel", url.Values{}, "Sec-Fetch-Site", "same-origin")
		require.Equal(t, http.StatusSeeOther, r.Code)
	})

	t.Run("AreOnlyPOST", func(t *testing.T) {
		b := setup(t)
		b.allow.Store(true)
		r := get(t, b.handler, "/workflows/orders/run")
		require.Equal(t, http.StatusMethodNotAllowed, r.Code)
		require.Equal(t, "POST", r.Header.Get("Allow"))
		r = post(t, b.handler, "/workflows/orders", nil)
		require.Equal(t, http.StatusMethodNotAllowed, r.Code)
	})

	t.Run("RunNowStartsARunOnTheTypedInput", func(t *testing.T) {
		b := setup(t)
		b.allow.Store(true)
		require.Contains(t, get(t, b.handler, "/workflows/orders").Body, `id="run-now-button"`)
		r := post(t, b.handler, "/workflows/orders/run", url.Values{"input": {`{"id": "o-9", "items": 4}`}})
		require.Equal(t, http.StatusSeeOther, r.Code, r.Body)
		loc := r.Header.Get("Location")
		require.True(t, strings.HasPrefix(loc, "../../workflows/orders/runs/"), loc)
		id := strings.TrimPrefix(loc, "../../workflows/orders/runs/")
		waitState(t, b.orders, id, workflow.StateSucceeded)
		require.Equal(t, http.StatusOK, get(t, b.handler, "/workflows/orders/runs/"+id).Code)
	})

	t.Run("RunNowShowsWhatIsWrongWithTheInput", func(t *testing.T) {
		b := setup(t)
		b.allow.Store(true)
		for input, reason := range map[string]string{
			`{"id": `:                      "the input is not a JSON dashboard_test.Order",
			`{"id": "x", "colour": "red"}`: `unknown field &#34;colour&#34;`,
			`{"id": "x", "items": 1} {}`:   "more after its JSON value",
			`{"items": 0}`:                 "invalid input",
		} {
			r := post(t, b.handler, "/workflows/orders/run", url.Values{"input": {input}})
			require.Equal(t, http.StatusBadRequest, r.Code, input)
			require.Contains(t, r.Body, `id="input-error"`, input)
			require.Contains(t, r.Body, reason, input)
			require.Contains(t, r.Body, strings.ReplaceAll(strings.ReplaceAll(input, `"`, "&#34;"), "<", "&lt;"), "the input is kept in the form")
			require.Contains(t, r.Body, `<base href="../../">`)
		}
	})

	t.Run("RunNowWithoutInputTakesTheZeroValue", func(t *testing.T) {
		b := setup(t)
		b.allow.Store(true)
		r := post(t, b.handler, "/workflows/slow/run", url.Values{"input": {""}})
		require.Equal(t, http.StatusSeeOther, r.Code, r.Body)
		id := strings.TrimPrefix(r.Header.Get("Location"), "../../workflows/slow/runs/")
		waitState(t, b.slow, id, workflow.StateRunning)
		b.release()
		waitState(t, b.slow, id, workflow.StateSucceeded)
	})

	t.Run("CancelEndsARunUnderWay", func(t *testing.T) {
		b := setup(t)
		b.allow.Store(true)
		_, _, slowID := b.runs(t)
		r := post(t, b.handler, "/workflows/slow/runs/"+slowID+"/cancel", nil)
		require.Equal(t, http.StatusSeeOther, r.Code, r.Body)
		require.Equal(t, "../../../../workflows/slow/runs/"+slowID, r.Header.Get("Location"))
		rs, err := b.slow.Inspect(context.Background(), slowID)
		require.NoError(t, err)
		require.Equal(t, workflow.StateCancelled, rs.State)

		r = post(t, b.handler, "/workflows/slow/runs/"+slowID+"/cancel", nil)
		require.Equal(t, http.StatusConflict, r.Code)
		require.Contains(t, r.Body, "ended")
		require.Equal(t, http.StatusNotFound, post(t, b.handler, "/workflows/slow/runs/nope/cancel", nil).Code)
	})

	t.Run("ResumeContinuesAFailedRun", func(t *testing.T) {
		b := setup(t)
		b.allow.Store(true)
		ordersID, flakyID, _ := b.runs(t)
		require.Contains(t, get(t, b.handler, "/workflows/flaky/runs/"+flakyID).Body, `id="resume"`)
		b.broken.Store(false)
		r := post(t, b.handler, "/workflows/flaky/runs/"+flakyID+"/resume", nil)
		require.Equal(t, http.StatusSeeOther, r.Code, r.Body)
		waitState(t, b.flaky, flakyID, workflow.StateSucceeded)
		require.NotContains(t, get(t, b.handler, "/workflows/flaky/runs/"+flakyID).Body, `id="resume"`)

		r = post(t, b.handler, "/workflows/orders/runs/"+ordersID+"/resume", nil)
		require.Equal(t, http.StatusConflict, r.Code)
		require.Contains(t, r.Body, "only a failed, timed-out, cancelled or interrupted run can be resumed")
		require.Equal(t, http.StatusNotFound, post(t, b.handler, "/workflows/flaky/runs/nope/resume", nil).Code)
	})
}

func TestSchedule(t *testing.T) {
	var got []int
	inputs := make(chan int, 4)
	wf := workflow.MustNew[int, int]("nightly", workflow.Tasks{
		workflow.Task[int, int]{Name: "a", Handler: func(ctx context.Context, n int) (int, error) { inputs <- n; return n, nil }},
	}, workflow.WithSchedule(workflow.Schedule{Cron: "0 3 * * *", Timezone: "Europe/Paris"}),
		workflow.WithScheduleInput(func(ctx context.Context, fired time.Time) (int, error) { return 42, nil }))
	s := workflow.NewScheduler()
	require.NoError(t, s.Register(wf))
	s.Start()
	t.Cleanup(func() { require.NoError(t, s.Stop(context.Background())) })
	h, err := dashboard.New(dashboard.Add(wf), dashboard.WithScheduler(s), dashboard.AllowActions(func(*http.Request) bool { return true }))
	require.NoError(t, err)

	t.Run("ShowsTheNextFire", func(t *testing.T) {
		next := s.Entries()[0].Next
		require.False(t, next.IsZero())
		require.Contains(t, rowOf(t, get(t, h, "/").Body, `data-workflow="nightly"`), next.Format("2006-01-02 15:04:05.000 MST"))
		body := get(t, h, "/workflows/nightly").Body
		require.Contains(t, body, "<code>0 3 * * *</code>")
		require.Contains(t, body, "Europe/Paris")
	})

	t.Run("RunNowWithoutInputTakesTheScheduledInput", func(t *testing.T) {
		r := post(t, h, "/workflows/nightly/run", url.Values{"input": {""}})
		require.Equal(t, http.StatusSeeOther, r.Code, r.Body)
		got = append(got, <-inputs)
		r = post(t, h, "/workflows/nightly/run", url.Values{"input": {"7"}})
		require.Equal(t, http.StatusSeeOther, r.Code, r.Body)
		got = append(got, <-inputs)
		require.Equal(t, []int{42, 7}, got)
		waitIdle(t, wf)
	})
}

func TestAPI(t *testing.T) {
	b := setup(t)
	ordersID, flakyID, slowID := b.runs(t)

	t.Run("ListsWorkflows", func(t *testing.T) {
		r := get(t, b.handler, "/api/workflows")
		require.Equal(t, http.StatusOK, r.Code)
		require.Equal(t, "application/json; charset=utf-8", r.Header.Get("Content-Type"))
		var out struct {
			Workflows []struct {
				Name        string `json:"name"`
				LatestState string `json:"latest_state"`
				LatestRun   *struct {
					RunID string `json:"run_id"`
				} `json:"latest_run"`
				Running     int                     `json:"running"`
				SuccessRate *float64                `json:"success_rate"`
				Tasks       []struct{ Name string } `json:"tasks"`
			} `json:"workflows"`
		}
		require.NoError(t, json.Unmarshal([]byte(r.Body), &out))
		require.Len(t, out.Workflows, 3)
		require.Equal(t, "orders", out.Workflows[0].Name)
		require.Equal(t, "succeeded", out.Workflows[0].LatestState)
		require.Equal(t, ordersID, out.Workflows[0].LatestRun.RunID)
		require.Equal(t, 1.0, *out.Workflows[0].SuccessRate)
		require.Equal(t, "failed", out.Workflows[1].LatestState)
		require.Equal(t, "charge <card>", out.Workflows[1].Tasks[1].Name)
		require.Equal(t, "running", out.Workflows[2].LatestState)
		require.Equal(t, 1, out.Workflows[2].Running)
		require.Nil(t, out.Workflows[2].SuccessRate)
	})

	t.Run("ListsRunsInPages", func(t *testing.T) {
		for range 4 {
			_, err := b.orders.Run(context.Background(), Order{ID: "x", Items: 1})
			require.NoError(t, err)
		}
		var page struct {
			Runs []struct {
				RunID string `json:"run_id"`
				State string `json:"state"`
			} `json:"runs"`
			NextCursor string `json:"next_cursor"`
		}
		var seen []string
		cursor := ""
		for range 5 {
			r := get(t, b.handler, "/api/workflows/orders/runs?limit=2&cursor="+url.QueryEscape(cursor))
			require.Equal(t, http.StatusOK, r.Code, r.Body)
			page.NextCursor = ""
			require.NoError(t, json.Unmarshal([]byte(r.Body), &page))
			for _, run := range page.Runs {
				seen = append(seen, run.RunID)
			}
			if cursor = page.NextCursor; cursor == "" {
				break
			}
		}
		require.Len(t, seen, 5)
		require.Equal(t, ordersID, seen[4], "oldest last")

		r := get(t, b.handler, "/api/workflows/flaky/runs?state=failed")
		require.NoError(t, json.Unmarshal([]byte(r.Body), &page))
		require.Len(t, page.Runs, 1)
		require.Equal(t, flakyID, page.Runs[0].RunID)
		require.Empty(t, page.NextCursor)
	})

	t.Run("GivesARunStatus", func(t *testing.T) {
		r := get(t, b.handler, "/api/workflows/slow/runs/"+slowID)
		require.Equal(t, http.StatusOK, r.Code)
		var rs workflow.RunStatus
		require.NoError(t, json.Unmarshal([]byte(r.Body), &rs))
		require.Equal(t, slowID, rs.RunID)
		require.Equal(t, workflow.StateRunning, rs.State)
		require.NotEmpty(t, rs.Events)
	})

	t.Run("AnswersBadRequestsWithJSONErrors", func(t *testing.T) {
		for target, want := range map[string]int{
			"/api/workflows/nope/runs":            http.StatusNotFound,
			"/api/workflows/orders/runs/nope":     http.StatusNotFound,
			"/api/workflows/orders/runs?cursor=x": http.StatusBadRequest,
			"/api/workflows/orders/runs?limit=-1": http.StatusBadRequest,
			"/api/workflows/orders/runs?state=ok": http.StatusBadRequest,
			"/api/workflows/orders/nope":          http.StatusNotFound,
			"/api/nope":                           http.StatusNotFound,
		} {
			r := get(t, b.handler, target)
			require.Equal(t, want, r.Code, target)
			var e struct{ Error string }
			require.NoError(t, json.Unmarshal([]byte(r.Body), &e), target)
			require.NotEmpty(t, e.Error, target)
		}
		r := post(t, b.handler, "/api/workflows", nil)
		require.Equal(t, http.StatusMethodNotAllowed, r.Code)
	})
}

func TestRouting(t *testing.T) {
	b := setup(t)
	ordersID, _, _ := b.runs(t)

	t.Run("WorksUnderAStrippedPrefix", func(t *testing.T) {
		mux := http.NewServeMux()
		mux.Handle("/ops/workflows/", http.StripPrefix("/ops/workflows", b.handler))
		srv := httptest.NewServer(mux)
		defer srv.Close()
		// Follow every relative link of each page, resolved as a browser
		// does (against <base>), and expect each to answer 200.
		pages := []string{"/ops/workflows/", "/ops/workflows/workflows/orders", "/ops/workflows/workflows/orders/runs/" + ordersID}
		visited := map[string]bool{}
		link := regexp.MustCompile(`(?:href|src)="([^"#]*)"`)
		for _, p := range pages {
			u, _ := url.Parse(srv.URL + p)
			body := fetch(t, u.String())
			base := regexp.MustCompile(`<base href="([^"]*)">`).FindStringSubmatch(body)
			require.NotNil(t, base, p)
			baseURL := u.ResolveReference(mustURL(t, htmlUnescape(base[1])))
			body = strings.Replace(body, base[0], "", 1)
			for _, m := range link.FindAllStringSubmatch(body, -1) {
				if strings.HasPrefix(m[1], "http://www.w3.org/") {
					continue
				}
				target := baseURL.ResolveReference(mustURL(t, htmlUnescape(m[1])))
				require.True(t, strings.HasPrefix(target.Path, "/ops/workflows/"), "%s links out of the prefix: %s", p, target)
				if !visited[target.String()] {
					visited[target.String()] = true
					fetch(t, target.String())
				}
			}
		}
		require.Greater(t, len(visited), 5)
	})

	t.Run("AddsTheSlashTheRootNeeds", func(t *testing.T) {
		mux := http.NewServeMux()
		mux.Handle("/dash", http.StripPrefix("/dash", b.handler))
		srv := httptest.NewServer(mux)
		defer srv.Close()
		client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
		resp, err := client.Get(srv.URL + "/dash")
		require.NoError(t, err)
		resp.Body.Close()
		require.Equal(t, http.StatusMovedPermanently, resp.StatusCode)
		require.Equal(t, "dash/", resp.Header.Get("Location"))
	})

	t.Run("AnswersBadPathsWithErrorPages", func(t *testing.T) {
		for target, want := range map[string]int{
			"/nope":                         http.StatusNotFound,
			"/workflows":                    http.StatusNotFound,
			"/workflows/orders/runs":        http.StatusNotFound,
			"/workflows/orders/runs/x/y":    http.StatusNotFound,
			"/static/nope.css":              http.StatusNotFound,
			"/workflows/orders/":            http.StatusNotFound,
			"/workflows/or%2Fders/runs/x":   http.StatusNotFound,
			"/workflows/orders/runs/%00%ff": http.StatusNotFound,
		} {
			r := get(t, b.handler, target)
			require.Equal(t, want, r.Code, target)
			require.Contains(t, r.Header.Get("Content-Type"), "text/html", target)
		}
		r := do(t, b.handler, http.MethodDelete, "/", nil)
		require.Equal(t, http.StatusMethodNotAllowed, r.Code)
	})

	t.Run("ServesItsAssets", func(t *testing.T) {
		r := get(t, b.handler, "/static/style.css")
		require.Equal(t, http.StatusOK, r.Code)
		require.Equal(t, "text/css; charset=utf-8", r.Header.Get("Content-Type"))
		r = get(t, b.handler, "/static/live.js")
		require.Equal(t, "text/javascript; charset=utf-8", r.Header.Get("Content-Type"))
		require.Contains(t, r.Body, "data-live-part")
	})

	t.Run("SetsAStrictContentSecurityPolicy", func(t *testing.T) {
		csp := get(t, b.handler, "/").Header.Get("Content-Security-Policy")
		require.Contains(t, csp, "script-src 'self'")
		require.Contains(t, csp, "default-src 'none'")
	})

	t.Run("AnswersHEADWithoutABody", func(t *testing.T) {
		r := do(t, b.handler, http.MethodHead, "/workflows/orders", nil)
		require.Equal(t, http.StatusOK, r.Code)
		require.Empty(t, r.Body)
	})
}

func mustURL(t *testing.T, s string) *url.URL {
	t.Helper()
	u, err := url.Parse(s)
	require.NoError(t, err)
	return u
}

func fetch(t *testing.T, u string) string {
	t.Helper()
	resp, err := http.Get(u)
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.StatusCode, "GET %s: %s", u, body)
	return string(body)
}
