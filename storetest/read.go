package storetest

import (
	"context"
	"fmt"
	"maps"
	"slices"

	"github.com/b3b01171/workflow"
)

// The rules of reading: Get, List and Workflows.

func getReturnsACopy(f *fixture) {
	r := f.create("r1", "fetch", "charge")
	r.append(r.started(order{ID: 1}), r.task("fetch", workflow.EventTaskStarted, 1, ""), r.succeeded("fetch", 1, "fetched"))
	mangle := func(rs *workflow.RunStatus) {
		rs.State, rs.Error = "mangled", "mangled"
		rs.Tasks[0].State, rs.Tasks[0].Name, rs.Tasks[0].Attempts = "mangled", "mangled", 99
		rs.Events[0].Type, rs.Events[1].Task = "mangled", "mangled"
		if len(rs.Input) > 0 {
			rs.Input[0] ^= 0xff
		}
		if len(rs.Tasks[0].Output) > 0 {
			rs.Tasks[0].Output[0] ^= 0xff
		}
	}
	got := f.get(flow, "r1")
	mangle(&got)
	r.check()
	listed, err := f.s.List(f.ctx, flow, workflow.HistoryQuery{})
	if err != nil || len(listed) != 1 {
		f.t.Fatalf("List: %d runs, %v; want 1", len(listed), err)
	}
	mangle(&listed[0])
	r.check()
	// The run goes on from what the store holds, not from the copies.
	r.append(r.task("charge", workflow.EventTaskStarted, 1, ""), r.succeeded("charge", 1, "paid"), r.event(workflow.EventRunSucceeded, ""))
	r.check()
}

func getWithoutRunIDIsTheNewest(f *fixture) {
	_, err := f.s.Get(f.ctx, flow, "")
	f.notFound(`Get("") of a workflow with no runs`, err)
	r1, r2, r3 := f.create("r1", "fetch"), f.create("r2", "fetch"), f.create("r3", "fetch")
	newest := func() {
		f.t.Helper()
		if d := diff(r3.want, f.get(flow, "")); d != "" {
			f.t.Fatalf(`Get(%q, "") is not the run created last, %q: %s`, flow, "r3", d)
		}
	}
	newest()
	// Creation counts, not when a run started or last changed.
	r3.append(r3.started(3))
	r2.append(r2.started(2))
	r1.append(r1.started(1), r1.task("fetch", workflow.EventTaskStarted, 1, ""))
	newest()
	r3.append(r3.task("fetch", workflow.EventTaskStarted, 1, ""), r3.task("fetch", workflow.EventTaskFailed, 1, "lost"),
		r3.event(workflow.EventRunFailed, `task "fetch": lost`))
	r1.append(r1.succeeded("fetch", 1, "fetched"), r1.event(workflow.EventRunSucceeded, ""))
	newest()
	// Runs of other workflows do not count.
	f.createRun(newRun("refunds", "r4", "pay"))
	newest()
	if d := diff(r2.want, f.get(flow, "r2")); d != "" {
		f.t.Fatalf("Get(%q, %q): %s", flow, "r2", d)
	}
}

func unknownRunIsNotFound(f *fixture) {
	r := f.create("r1", "fetch")
	r.append(r.started(1), r.task("fetch", workflow.EventTaskStarted, 1, ""), r.interrupted())
	for _, c := range []struct{ workflow, runID string }{{flow, "nope"}, {"nope", "r1"}, {"nope", ""}, {"Orders", "r1"}} {
		call := func(method string) string { return fmt.Sprintf("%s(%q, %q)", method, c.workflow, c.runID) }
		_, err := f.s.Get(f.ctx, c.workflow, c.runID)
		f.notFound(call("Get"), err)
		if c.runID == "" {
			continue // Payloads and Reopen take a run ID
		}
		_, err = f.s.Payloads(f.ctx, c.workflow, c.runID)
		f.notFound(call("Payloads"), err)
		_, err = f.s.Reopen(f.ctx, c.workflow, c.runID)
		f.notFound(call("Reopen"), err)
	}
	// Looking up unknown runs adds none.
	f.list(flow, workflow.HistoryQuery{}, r)
	if got, err := f.s.Workflows(f.ctx); err != nil || !slices.Equal(got, []string{flow}) {
		f.t.Fatalf("Workflows() = %q, %v; want [%s]", got, err, flow)
	}
	r.check()
}

// fiveRuns records five runs of flow in various states, created r1 to r5,
// with runs of another workflow among them. Their events are appended
// newest run first, so that neither start nor end times give the order
// of creation.
func fiveRuns(f *fixture) []*run {
	var runs []*run
	for i := 1; i <= 5; i++ {
		runs = append(runs, f.create(fmt.Sprintf("r%d", i), "fetch"))
		f.createRun(newRun("refunds", fmt.Sprintf("x%d", i), "pay"))
	}
	for i, r := range slices.Backward(runs) {
		r.append(r.started(order{ID: i}), r.task("fetch", workflow.EventTaskStarted, 1, ""))
		if i%2 == 0 {
			r.append(r.succeeded("fetch", 1, i), r.event(workflow.EventRunSucceeded, ""))
		}
	}
	return runs
}

func listIsNewestFirst(f *fixture) {
	f.list(flow, workflow.HistoryQuery{})
	runs := fiveRuns(f)
	f.list(flow, workflow.HistoryQuery{}, newestFirst(runs...)...)
}

func listLimitKeepsTheNewest(f *fixture) {
	runs := newestFirst(fiveRuns(f)...)
	for _, c := range []struct{ limit, n int }{{1, 1}, {3, 3}, {5, 5}, {10, 5}, {0, 5}} {
		f.list(flow, workflow.HistoryQuery{Limit: c.limit}, runs[:c.n]...)
	}
}

func listStateKeepsRunsInThatState(f *fixture) {
	states := []workflow.State{
		workflow.StateSucceeded, workflow.StateFailed, workflow.StateRunning, workflow.StateSucceeded, workflow.StateInterrupted,
		workflow.StatePending, workflow.StateSucceeded, workflow.StateTimedOut, workflow.StateCancelled,
	}
	var runs []*run
	for i, s := range states {
		runs = append(runs, f.runIn(flow, fmt.Sprintf("r%d", i+1), s))
	}
	runs = newestFirst(runs...)
	inState := func(s workflow.State) []*run {
		var in []*run
		for _, r := range runs {
			if r.want.State == s {
				in = append(in, r)
			}
		}
		return in
	}
	for _, s := range []workflow.State{
		workflow.StateSucceeded, workflow.StateFailed, workflow.StateRunning, workflow.StateInterrupted,
		workflow.StatePending, workflow.StateTimedOut, workflow.StateCancelled, workflow.StateSkipped,
	} {
		f.list(flow, workflow.HistoryQuery{State: s}, inState(s)...)
	}
	// The limit counts the runs in that state.
	f.list(flow, workflow.HistoryQuery{State: workflow.StateSucceeded, Limit: 2}, inState(workflow.StateSucceeded)[:2]...)
	// A run is listed in the state it is in now.
	running := inState(workflow.StateRunning)[0]
	running.append(running.succeeded("fetch", 1, "fetched"), running.event(workflow.EventRunSucceeded, ""))
	f.list(flow, workflow.HistoryQuery{State: workflow.StateRunning})
	f.list(flow, workflow.HistoryQuery{State: workflow.StateSucceeded}, inState(workflow.StateSucceeded)...)
}

// pages lists the runs of flow page after page, each of at most limit
// runs, the next starting before the last run of the one before, till a
// page comes back short; it fails the test unless they are want.
func (f *fixture) pages(q workflow.HistoryQuery, want []*run) {
	f.t.Helper()
	var got []string
	for page := 0; ; page++ {
		rs, err := f.s.List(f.ctx, flow, q)
		if err != nil {
			f.t.Fatalf("List(%q, %s) (page %d): %v", flow, showQuery(q), page, err)
		}
		if len(rs) > q.Limit {
			f.t.Fatalf("List(%q, %s) (page %d) gives %d runs, more than the limit", flow, showQuery(q), page, len(rs))
		}
		for _, r := range rs {
			got = append(got, r.RunID)
		}
		if len(rs) < q.Limit || len(got) > len(want) {
			break
		}
		q.Before = rs[len(rs)-1].RunID
	}
	if ids := runIDs(want); !slices.Equal(got, ids) {
		q.Before = ""
		f.t.Fatalf("List(%q, %s) page by page gives %q, want %q", flow, showQuery(q), got, ids)
	}
}

func listBeforePagesThroughEveryRun(f *fixture) {
	var runs []*run
	for i := range 7 {
		runs = append(runs, f.runIn(flow, fmt.Sprintf("r%d", i+1), []workflow.State{workflow.StateSucceeded, workflow.StateRunning}[i%2]))
	}
	runs = newestFirst(runs...)
	for _, limit := range []int{1, 3, 7, 8} {
		f.pages(workflow.HistoryQuery{Limit: limit}, runs)
	}
	// Before alone: every run created before, newest first.
	f.list(flow, workflow.HistoryQuery{Before: "r4"}, runs[4:]...)
	f.list(flow, workflow.HistoryQuery{Before: "r1"})
	f.list(flow, workflow.HistoryQuery{Before: "r7", Limit: 2, Summary: true}, runs[1:3]...)
}

func listBeforeWithStatePages(f *fixture) {
	states := []workflow.State{
		workflow.StateSucceeded, workflow.StateFailed, workflow.StateSucceeded, workflow.StateSucceeded,
		workflow.StateFailed, workflow.StateSucceeded, workflow.StateFailed, workflow.StateSucceeded,
	}
	var runs, succeeded []*run
	for i, s := range states {
		r := f.runIn(flow, fmt.Sprintf("r%d", i+1), s)
		runs = append(runs, r)
		if s == workflow.StateSucceeded {
			succeeded = append(succeeded, r)
		}
	}
	succeeded = newestFirst(succeeded...)
	for _, limit := range []int{1, 2, 5} {
		f.pages(workflow.HistoryQuery{State: workflow.StateSucceeded, Limit: limit}, succeeded)
	}
	// The cursor may be a run in another state: r5 failed.
	f.list(flow, workflow.HistoryQuery{State: workflow.StateSucceeded, Before: "r5"}, runs[3], runs[2], runs[0])
	f.list(flow, workflow.HistoryQuery{State: workflow.StateFailed, Before: "r6", Limit: 1}, runs[4])
}

func listBeforeUnknownRunIsNotFound(f *fixture) {
	f.runIn(flow, "r1", workflow.StateSucceeded)
	f.runIn("refunds", "x1", workflow.StateSucceeded)
	for _, c := range []struct{ workflow, before string }{{flow, "nope"}, {flow, "x1"}, {"nope", "r1"}} {
		_, err := f.s.List(f.ctx, c.workflow, workflow.HistoryQuery{Before: c.before})
		f.notFound(fmt.Sprintf("List(%q, Before %q)", c.workflow, c.before), err)
		_, err = f.s.List(f.ctx, c.workflow, workflow.HistoryQuery{Before: c.before, Limit: 1, State: workflow.StateSucceeded, Summary: true})
		f.notFound(fmt.Sprintf("List(%q, Before %q, Limit 1, State succeeded, Summary)", c.workflow, c.before), err)
	}
}

func listSummaryLeavesOutEvents(f *fixture) {
	runs := newestFirst(fiveRuns(f)...)
	got, err := f.s.List(f.ctx, flow, workflow.HistoryQuery{Summary: true})
	if err != nil || len(got) != len(runs) {
		f.t.Fatalf("List(Summary): %d runs, %v; want %d", len(got), err, len(runs))
	}
	for _, rs := range got {
		if len(rs.Events) != 0 || rs.Input != nil {
			f.t.Fatalf("List(Summary): run %q has %d events and input %s, want neither", rs.RunID, len(rs.Events), showBytes(rs.Input))
		}
		for _, t := range rs.Tasks {
			if t.Output != nil {
				f.t.Fatalf("List(Summary): run %q task %q has output %s, want none", rs.RunID, t.Name, showBytes(t.Output))
			}
		}
	}
	f.list(flow, workflow.HistoryQuery{Summary: true}, runs...)
	f.list(flow, workflow.HistoryQuery{Summary: true, State: workflow.StateSucceeded, Limit: 2}, runs[0], runs[2])
	// Full listings still hold them.
	f.list(flow, workflow.HistoryQuery{}, runs...)
}

func listOfUnknownWorkflowIsEmpty(f *fixture) {
	f.list(flow, workflow.HistoryQuery{})
	f.runIn(flow, "r1", workflow.StateSucceeded)
	for _, q := range []workflow.HistoryQuery{{}, {Limit: 1}, {State: workflow.StateSucceeded}, {Summary: true}} {
		f.list("nope", q)
		f.list("Orders", q)
	}
}

func workflowsAreSorted(f *fixture) {
	want := func(names ...string) {
		f.t.Helper()
		got, err := f.s.Workflows(f.ctx)
		if err != nil {
			f.t.Fatalf("Workflows(): %v", err)
		}
		if !slices.Equal(got, names) {
			f.t.Fatalf("Workflows() = %q, want %q", got, names)
		}
	}
	want()
	for i, name := range []string{"beta", "étape", "alpha", "Zeta", "beta", "alpha"} {
		f.createRun(newRun(name, fmt.Sprintf("r%d", i), "fetch"))
	}
	want("Zeta", "alpha", "beta", "étape")
}

func cancelledContextDoesNotHang(f *fixture) {
	r := f.create("r1", "fetch", "charge")
	r.append(r.started(order{ID: 1}))
	orphan := f.runIn(flow, "r2", workflow.StateInterrupted)
	ctx, cancel := context.WithCancel(f.ctx)
	cancel()
	// Each call must return, with an error or a result: which one is the
	// store's choice.
	f.s.Create(ctx, newRun(flow, "r3", "fetch"))
	batch := []workflow.Entry{r.task("fetch", workflow.EventTaskStarted, 1, ""), r.succeeded("fetch", 1, "fetched")}
	appended := r.appendCtx(ctx, batch) == nil
	f.s.Reopen(ctx, flow, orphan.want.RunID)
	if c, ok := f.s.(workflow.OrphanClaimer); ok {
		c.ClaimOrphan(ctx, flow, orphan.want.RunID)
	}
	f.s.Orphans(ctx, flow)
	f.s.Get(ctx, flow, "r1")
	f.s.Get(ctx, flow, "")
	f.s.List(ctx, flow, workflow.HistoryQuery{})
	f.s.List(ctx, flow, workflow.HistoryQuery{Summary: true, Limit: 1})
	f.s.Workflows(ctx)
	f.s.Payloads(ctx, flow, "r1")

	// The store holds the whole batch or none of it, and goes on.
	if !appended {
		got := f.get(flow, "r1")
		with := *r
		with.want, with.outputs, with.partial = clone(r.want), maps.Clone(r.outputs), maps.Clone(r.partial)
		with.fold(batch)
		switch {
		case diff(r.want, got) == "":
			r.append(batch...)
		case diff(with.want, got) == "":
			r.fold(batch)
		default:
			f.t.Fatalf("after Append with a cancelled context failed, Get(%q, %q) holds neither none nor all of the batch: %s",
				flow, "r1", diff(r.want, got))
		}
	}
	r.check()
	r.append(r.task("charge", workflow.EventTaskStarted, 1, ""))
	r.check()
	r.checkPayloads()
}
