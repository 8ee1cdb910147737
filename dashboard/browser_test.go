package dashboard_test

import (
	"context"
	"flag"
	"fmt"
	"html"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/require"

	"github.com/b3b01171/workflow"
)

var updateScreenshots = flag.Bool("screenshots", false, "write the pages' screenshots to testdata/screenshots too")

// findBrowser returns the path of a Chromium, or skips the test without
// one; under CI (CI set) a missing browser fails it, since .ci/run
// installs one.
func findBrowser(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	const msg = "no Chromium found (looked for chromium, chromium-browser, google-chrome)"
	if os.Getenv("CI") != "" {
		t.Fatal(msg + ": .ci/run installs it with .ci/chromium.sh (apt-get install chromium)")
	}
	t.Skip(msg + ": install Debian's chromium package to run the browser tests")
	return ""
}

// hooks record, in every page, any alert, confirm or prompt: a payload
// that ran would call one.
const hooks = `
window.__alerts = [];
window.alert = window.confirm = window.prompt = function (m) { window.__alerts.push(String(m)); };
`

// TestBrowser drives headless Chromium through the dashboard, mounted
// under a prefix as a service would mount it, over real workflows.
func TestBrowser(t *testing.T) {
	exe := findBrowser(t)
	b := setup(t)
	ordersID, flakyID, slowID := b.runs(t)

	mux := http.NewServeMux()
	mux.Handle("/ops/", http.StripPrefix("/ops", b.handler))
	srv := httptest.NewServer(mux)
	defer srv.Close()
	root := srv.URL + "/ops/"

	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(exe), chromedp.NoSandbox, chromedp.DisableGPU, chromedp.WindowSize(1280, 900))...)
	defer cancelAlloc()
	browserCtx, cancelBrowser := chromedp.NewContext(allocCtx)
	defer cancelBrowser()
	require.NoError(t, chromedp.Do(browserCtx)) // start the browser

	// tab opens a tab with the hooks installed, closed when t ends.
	tab := func(t *testing.T) context.Context {
		ctx, cancel := chromedp.NewContext(browserCtx)
		t.Cleanup(cancel)
		require.NoError(t, chromedp.Do(ctx, chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
			_, err := cdp.Call(ctx, tg, page.AddScriptToEvaluateOnNewDocument, page.AddScriptToEvaluateOnNewDocumentParams{Source: hooks})
			return err
		})))
		ctx, cancel = context.WithTimeout(ctx, 20*time.Second)
		t.Cleanup(cancel)
		return ctx
	}
	css := func(sel string) chromedp.CSS { return chromedp.CSS(sel) }
	eval := func(t *testing.T, ctx context.Context, js string) string {
		t.Helper()
		v, err := chromedp.Run(ctx, chromedp.Evaluate[string](js))
		require.NoError(t, err, js)
		return v
	}
	screenshot := func(t *testing.T, ctx context.Context, name string) {
		t.Helper()
		png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(filepath.Join(t.TempDir(), name), png, 0o644))
		if *updateScreenshots {
			require.NoError(t, os.MkdirAll("testdata/screenshots", 0o755))
			require.NoError(t, os.WriteFile(filepath.Join("testdata/screenshots", name), png, 0o644))
		}
	}
	noPayloadRan := func(t *testing.T, ctx context.Context) {
		t.Helper()
		require.Equal(t, "[]", eval(t, ctx, `JSON.stringify(window.__alerts)`))
		require.Equal(t, "0", eval(t, ctx, `String(document.querySelectorAll("img").length)`))
	}
	failedFill := workflow.StateColor(workflow.StateFailed)

	t.Run("OverviewListsEveryWorkflowWithItsState", func(t *testing.T) {
		ctx := tab(t)
		require.NoError(t, chromedp.Do(ctx, chromedp.Navigate(root), chromedp.WaitVisible(css(`tr[data-workflow="slow"]`))))
		states := eval(t, ctx, `Array.from(document.querySelectorAll("tr[data-workflow]"), r => r.dataset.workflow + "=" + r.querySelector(".state").textContent).join(" ")`)
		require.Equal(t, "orders=succeeded flaky=failed slow=running", states)
		require.Equal(t, "1", eval(t, ctx, `document.querySelector('tr[data-workflow="slow"] td.running').textContent`))
		require.Equal(t, "true", eval(t, ctx, `document.body.dataset.live`))
		screenshot(t, ctx, "overview.png")
	})

	t.Run("RunPageOfAFailedRunShowsTheFailure", func(t *testing.T) {
		ctx := tab(t)
		require.NoError(t, chromedp.Do(ctx,
			chromedp.Navigate(root),
			chromedp.Click(css(`tr[data-workflow="flaky"] a.name`)),
			chromedp.WaitVisible(css(`#graph svg`)),
		))
		require.Equal(t, root+"workflows/flaky", eval(t, ctx, `location.href`))
		require.Equal(t, failedFill, eval(t, ctx, `document.querySelector('g[data-task="charge <card>"] rect').getAttribute("fill")`))
		screenshot(t, ctx, "workflow.png")

		require.NoError(t, chromedp.Do(ctx,
			chromedp.Click(css(`tr[data-run="`+flakyID+`"] a`)),
			chromedp.WaitVisible(css(`#run-state`)),
		))
		require.Equal(t, root+"workflows/flaky/runs/"+flakyID, eval(t, ctx, `location.href`))
		require.Equal(t, "failed", eval(t, ctx, `document.querySelector("#run-state").textContent`))
		row := `document.querySelector('#tasks tr[data-task="charge <card>"]')`
		require.Equal(t, "failed", eval(t, ctx, row+`.querySelector(".state").textContent`))
		require.Equal(t, "2", eval(t, ctx, row+`.querySelector(".attempts").textContent`))
		require.Equal(t, xssScript+" "+xssImg, eval(t, ctx, row+`.querySelector("pre.error").textContent`))
		require.Equal(t, failedFill, eval(t, ctx, `document.querySelector('#graph g[data-task="charge <card>"] rect').getAttribute("fill")`))
		require.Equal(t, "2", eval(t, ctx, `String(document.querySelectorAll('.gantt-row[data-task="charge <card>"] .bar.attempt').length)`))
		noPayloadRan(t, ctx)
		screenshot(t, ctx, "run.png")
	})

	t.Run("WithoutActionsThereAreNoButtonsAndForgedPostsAreRefused", func(t *testing.T) {
		b.allow.Store(false)
		ctx := tab(t)
		require.NoError(t, chromedp.Do(ctx, chromedp.Navigate(root+"workflows/slow/runs/"+slowID), chromedp.WaitVisible(css(`#run-state`))))
		require.Equal(t, "0", eval(t, ctx, `String(document.querySelectorAll("form[method=post], #cancel, #resume, #run-now-button").length)`))
		status, err := chromedp.Run(ctx, chromedp.Evaluate[int](`fetch("workflows/slow/runs/`+slowID+`/cancel", {method: "POST"}).then(r => r.status)`,
			chromedp.EvalAwaitPromise))
		require.NoError(t, err)
		require.Equal(t, http.StatusForbidden, status)
		waitState(t, b.slow, slowID, workflow.StateRunning)
	})

	t.Run("ACrossSiteFormCannotCancel", func(t *testing.T) {
		b.allow.Store(true)
		defer b.allow.Store(false)
		evil := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			fmt.Fprintf(w, `<!doctype html><form method="post" action="%s"><button id="go">win a prize</button></form>`,
				html.EscapeString(root+"workflows/slow/runs/"+slowID+"/cancel"))
		}))
		defer evil.Close()
		ctx := tab(t)
		require.NoError(t, chromedp.Do(ctx, chromedp.Navigate(evil.URL), chromedp.Click(css(`#go`)), chromedp.WaitVisible(css(`#error-message`))))
		require.Contains(t, eval(t, ctx, `document.querySelector("#error-message").textContent`), "came from another site")
		rs, err := b.slow.Inspect(context.Background(), slowID)
		require.NoError(t, err)
		require.Equal(t, workflow.StateRunning, rs.State)
	})

	t.Run("CancelEndsARunUnderWay", func(t *testing.T) {
		b.allow.Store(true)
		defer b.allow.Store(false)
		ctx := tab(t)
		require.NoError(t, chromedp.Do(ctx,
			chromedp.Navigate(root+"workflows/slow"),
			chromedp.Click(css(`tr[data-run="`+slowID+`"] a`)),
			chromedp.WaitVisible(css(`#cancel`)),
			chromedp.Click(css(`#cancel`)),
			chromedp.WaitVisible(css(`#run-state.state-cancelled`)),
		))
		rs, err := b.slow.Inspect(context.Background(), slowID)
		require.NoError(t, err)
		require.Equal(t, workflow.StateCancelled, rs.State)
		require.Equal(t, "0", eval(t, ctx, `String(document.querySelectorAll("#cancel").length)`))
		require.Equal(t, "true", eval(t, ctx, `String(document.querySelectorAll("#resume").length === 1)`))
	})

	t.Run("RunPageFollowsTheRunWithoutReloading", func(t *testing.T) {
		x, err := b.slow.Start(context.Background(), 1)
		require.NoError(t, err)
		ctx := tab(t)
		require.NoError(t, chromedp.Do(ctx,
			chromedp.Navigate(root+"workflows/slow/runs/"+x.ID()),
			chromedp.WaitVisible(css(`#run-state.state-running`)),
			chromedp.Evaluate[chromedp.Void](`window.__sameDocument = true`),
		))
		b.release()
		require.NoError(t, chromedp.Do(ctx, chromedp.WaitVisible(css(`#run-state.state-succeeded`))))
		require.Equal(t, "true", eval(t, ctx, `String(window.__sameDocument === true)`), "the page was not reloaded")
		require.Equal(t, "false", eval(t, ctx, `document.body.dataset.live`))
	})

	t.Run("ResumeFinishesAFixedRun", func(t *testing.T) {
		b.allow.Store(true)
		defer b.allow.Store(false)
		b.broken.Store(false) // the fix
		ctx := tab(t)
		require.NoError(t, chromedp.Do(ctx,
			chromedp.Navigate(root+"workflows/flaky/runs/"+flakyID),
			chromedp.Click(css(`#resume`)),
			chromedp.WaitVisible(css(`#run-state.state-succeeded`)),
		))
		require.Equal(t, root+"workflows/flaky/runs/"+flakyID, eval(t, ctx, `location.href`))
		waitState(t, b.flaky, flakyID, workflow.StateSucceeded)
		noPayloadRan(t, ctx)
	})

	t.Run("RunNowStartsARun", func(t *testing.T) {
		b.allow.Store(true)
		defer b.allow.Store(false)
		ctx := tab(t)
		require.NoError(t, chromedp.Do(ctx,
			chromedp.Navigate(root+"workflows/orders"),
			chromedp.SetValue(css(`#input`), `{"id": "o-7", "items": 0}`),
			chromedp.Click(css(`#run-now-button`)),
			chromedp.WaitVisible(css(`#input-error`)),
		))
		require.Contains(t, eval(t, ctx, `document.querySelector("#input-error").textContent`), "invalid input")
		require.NoError(t, chromedp.Do(ctx,
			chromedp.SetValue(css(`#input`), `{"id": "o-7", "items": 3}`),
			chromedp.Click(css(`#run-now-button`)),
			chromedp.WaitVisible(css(`#run-state.state-succeeded`)),
		))
		require.True(t, strings.HasPrefix(eval(t, ctx, `location.href`), root+"workflows/orders/runs/"))
		require.NotContains(t, eval(t, ctx, `location.href`), ordersID)
	})
}
