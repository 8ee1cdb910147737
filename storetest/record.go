package storetest

import (
	"errors"
	"fmt"
	"reflect"
	"slices"
	"sync"
	"time"

	"github.com/b3b01171/workflow"
)

// The rules of recording: Create, Recorder.Append and Payloads.

func createRecordsAPendingRun(f *fixture) {
	r := f.create("r1", "fetch", "charge", "ship")
	got := f.get(flow, "r1")
	if got.State != workflow.StatePending || len(got.Events) != 0 {
		f.t.Fatalf("a run just created is %s with %d events, want pending with none", got.State, len(got.Events))
	}
	r.check()

	// A scheduled run keeps its trigger and its fire time, to the
	// nanosecond, whatever its location.
	rs := newRun(flow, "r2", "fetch")
	rs.Trigger = "schedule"
	rs.ScheduledAt = time.Date(2025, 3, 30, 2, 30, 0, 123456789, time.FixedZone("UTC+2", 2*60*60))
	f.createRun(rs).check()
	r.check()
}

func createRefusesADuplicate(f *fixture) {
	r := f.create("r1", "fetch", "charge")
	r.append(r.started(order{ID: 1}), r.task("fetch", workflow.EventTaskStarted, 1, ""))
	duplicate := func() {
		f.t.Helper()
		_, err := f.s.Create(f.ctx, newRun(flow, "r1", "other"))
		if !errors.Is(err, workflow.ErrDuplicateRun) {
			f.t.Fatalf("Create of a second run %q of workflow %q (the first %s): %v, want an error wrapping ErrDuplicateRun",
				"r1", flow, r.want.State, err)
		}
		r.check()
		f.list(flow, workflow.HistoryQuery{}, r)
	}
	duplicate()
	// The first run goes on, through its own Recorder.
	r.append(r.succeeded("fetch", 1, receipt{Order: 1}), r.task("charge", workflow.EventTaskStarted, 1, ""))
	r.check()
	r.append(r.succeeded("charge", 1, "paid"), r.event(workflow.EventRunSucceeded, ""))
	duplicate() // ended, it still holds its ID
}

func sameRunIDUnderAnotherWorkflow(f *fixture) {
	a := f.createRun(newRun("orders", "r1", "fetch"))
	b := f.createRun(newRun("refunds", "r1", "check", "pay"))
	a.append(a.started(order{ID: 1}), a.task("fetch", workflow.EventTaskStarted, 1, ""))
	b.append(b.started(order{ID: 2, Note: "refund"}), b.succeeded("check", 1, "ok"), b.task("pay", workflow.EventTaskStarted, 1, ""))
	b.append(b.task("pay", workflow.EventTaskFailed, 1, "declined"), b.event(workflow.EventRunFailed, `task "pay": declined`))
	a.check()
	b.check()
	a.checkPayloads()
	b.checkPayloads()
	// Each is its own run, with its own owner: ending one releases it
	// alone.
	a.refused()
	b.reopen()
	b.refused()
	if got, err := f.s.Workflows(f.ctx); err != nil || !slices.Equal(got, []string{"orders", "refunds"}) {
		f.t.Fatalf("Workflows() = %q, %v; want [orders refunds]", got, err)
	}
}

func appendedEntriesFoldAsApply(f *fixture) {
	// fetch → charge → (ship, notify); the run fails, then passes again
	// (RetryOnFailure): the store is checked after every batch.
	r := f.create("r1", "fetch", "charge", "ship", "notify")
	batches := [][]workflow.Entry{
		{r.started(order{ID: 7, Items: []string{"book", "pen"}, Note: "gift ✓"})},
		{r.task("fetch", workflow.EventTaskStarted, 1, "")},
		{r.succeeded("fetch", 1, []string{"book", "pen"}), r.task("charge", workflow.EventTaskStarted, 1, "")},
		{r.task("charge", workflow.EventTaskRetrying, 1, "card network busy")},
		{r.task("charge", workflow.EventTaskStarted, 2, "")},
		{r.succeeded("charge", 2, receipt{Order: 7, Total: 12.5}),
			r.task("ship", workflow.EventTaskStarted, 1, ""), r.task("notify", workflow.EventTaskStarted, 1, "")},
		{r.task("notify", workflow.EventTaskTimedOut, 1, "context deadline exceeded")},
		{r.task("ship", workflow.EventTaskCancelled, 1, "context canceled"),
			r.event(workflow.EventRunFailed, `task "notify": context deadline exceeded`)},
		{r.event(workflow.EventRunRetrying, `task "notify": context deadline exceeded`),
			r.task("ship", workflow.EventTaskStarted, 1, ""), r.task("notify", workflow.EventTaskStarted, 1, "")},
		{r.succeeded("ship", 1, map[string]int{"parcels": 2}), r.succeeded("notify", 1, true),
			r.event(workflow.EventRunSucceeded, "")},
	}
	for _, b := range batches {
		r.append(b...)
		r.check()
	}
	// A Persistent store gets a run's entries in few batches: here, one.
	r2 := f.create("r2", "fetch", "charge")
	r2.append(r2.started(order{ID: 8}), r2.task("fetch", workflow.EventTaskStarted, 1, ""),
		r2.succeeded("fetch", 1, "fetched"), r2.task("charge", workflow.EventTaskStarted, 1, ""),
		r2.task("charge", workflow.EventTaskFailed, 1, "declined"), r2.event(workflow.EventRunFailed, `task "charge": declined`))
	r2.check()
	r.check()
}

func entryIndexFallsBackToName(f *fixture) {
	r := f.create("r1", "fetch", "charge", "ship")
	r.append(r.started(order{ID: 1}))
	wrong := r.task("charge", workflow.EventTaskStarted, 1, "")
	wrong.Index = r.pos("fetch") // names another task
	r.append(wrong)
	got := f.get(flow, "r1")
	if got.Tasks[1].State != workflow.StateRunning || got.Tasks[0].State != workflow.StatePending {
		f.t.Fatalf("after charge's task_started with the Index of fetch: fetch %s, charge %s; want fetch pending, charge running",
			got.Tasks[0].State, got.Tasks[1].State)
	}
	r.check()
	unknown := r.task("fetch", workflow.EventTaskStarted, 1, "")
	unknown.Index = -1
	beyond := r.task("ship", workflow.EventTaskStarted, 1, "")
	beyond.Index = len(r.want.Tasks) + 3
	r.append(unknown, beyond)
	r.check()
	done := r.succeeded("ship", 1, "shipped")
	done.Index = -1
	r.append(done)
	r.check()
	r.checkPayloads()
}

func appendIsAllOrNone(f *fixture) {
	r := f.create("r1", "fetch", "charge")
	r.append(r.started(order{ID: 1}))
	refuse := func(batch ...workflow.Entry) {
		f.t.Helper()
		err := r.rec.Append(f.ctx, batch)
		if err == nil {
			f.t.Fatalf("Append(%s) with an entry of a task the run does not have succeeded, want an error", types(batch))
		}
		if !errors.Is(err, workflow.ErrNotFound) {
			f.t.Fatalf("Append(%s) with an entry of a task the run does not have: %v, want an error wrapping ErrNotFound", types(batch), err)
		}
		r.check()
		r.checkPayloads()
	}
	bad := r.task("fetch", workflow.EventTaskStarted, 1, "")
	bad.Task, bad.Index = "refund", -1
	// Nothing of the batch is recorded, before the bad entry or after it.
	refuse(r.task("fetch", workflow.EventTaskStarted, 1, ""), r.succeeded("fetch", 1, "fetched"), bad,
		r.task("charge", workflow.EventTaskStarted, 1, ""))
	refuse(bad, r.event(workflow.EventRunFailed, "bad"))
	// The Recorder goes on.
	r.append(r.task("fetch", workflow.EventTaskStarted, 1, ""), r.succeeded("fetch", 1, "fetched"))
	r.check()
	r.checkPayloads()
}

func runInterruptedInterruptsRunningTasks(f *fixture) {
	r := f.create("r1", "fetch", "charge", "ship")
	r.append(r.started(order{ID: 1}), r.task("fetch", workflow.EventTaskStarted, 1, ""), r.succeeded("fetch", 1, "fetched"),
		r.task("charge", workflow.EventTaskStarted, 1, ""))
	stop := r.interrupted()
	r.append(stop)
	got := f.get(flow, "r1")
	charge := got.Tasks[1]
	switch {
	case got.State != workflow.StateInterrupted:
		f.t.Fatalf("after run_interrupted the run is %s, want interrupted", got.State)
	case got.Tasks[0].State != workflow.StateSucceeded || got.Tasks[2].State != workflow.StatePending:
		f.t.Fatalf("after run_interrupted fetch is %s and ship %s, want succeeded and pending as before",
			got.Tasks[0].State, got.Tasks[2].State)
	case charge.State != workflow.StateInterrupted || !charge.EndedAt.Equal(stop.Time):
		f.t.Fatalf("after run_interrupted the running task is %s, ended at %s; want interrupted at %s",
			charge.State, showTime(charge.EndedAt), showTime(stop.Time))
	}
	r.check()
}

// runResumedResetsUnfinishedTasks: run_resumed makes every task that did
// not succeed pending again, keeping the count of its attempts (attempts
// are numbered across the run).
func runResumedResetsUnfinishedTasks(f *fixture) {
	r := f.create("r1", "fetch", "charge", "ship")
	r.append(r.started(order{ID: 1}), r.task("fetch", workflow.EventTaskStarted, 1, ""), r.succeeded("fetch", 1, "fetched"),
		r.task("charge", workflow.EventTaskStarted, 1, ""))
	r.append(r.interrupted())
	resumed := func() {
		f.t.Helper()
		before := f.get(flow, "r1")
		r.reopen()
		r.append(r.event(workflow.EventRunResumed, ""))
		got := f.get(flow, "r1")
		if got.State != workflow.StateRunning || !got.EndedAt.IsZero() || got.Error != "" {
			f.t.Fatalf("after run_resumed the run is %s, ended at %s, error %q; want running, not ended, no error",
				got.State, showTime(got.EndedAt), got.Error)
		}
		if got.Tasks[0].State != workflow.StateSucceeded {
			f.t.Fatalf("after run_resumed fetch, which succeeded, is %s", got.Tasks[0].State)
		}
		for k, t := range got.Tasks[1:] {
			// Pending afresh, its attempts counting on.
			if t.State != workflow.StatePending || t.Attempts != before.Tasks[k+1].Attempts || !t.StartedAt.IsZero() || !t.EndedAt.IsZero() || t.Error != "" {
				f.t.Fatalf("after run_resumed the unfinished task %q is %s after %d attempts, error %q; want pending afresh after %d attempts",
					t.Name, t.State, t.Attempts, t.Error, before.Tasks[k+1].Attempts)
			}
		}
		r.check()
		r.checkPayloads()
	}
	resumed()
	// A failed run, resumed, runs its failed and skipped tasks again.
	r.append(r.task("charge", workflow.EventTaskStarted, 1, ""))
	r.append(r.task("charge", workflow.EventTaskFailed, 1, "declined"), r.task("ship", workflow.EventTaskSkipped, 0, ""),
		r.event(workflow.EventRunFailed, `task "charge": declined`))
	resumed()
	r.append(r.task("charge", workflow.EventTaskStarted, 1, ""), r.succeeded("charge", 1, "paid"),
		r.task("ship", workflow.EventTaskStarted, 1, ""), r.succeeded("ship", 1, "shipped"), r.event(workflow.EventRunSucceeded, ""))
	r.check()
}

func concurrentRunsRecordEveryEntry(f *fixture) {
	const n = 100
	runs := make([]*run, n)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			<-start
			r, err := f.tryCreate(newRun(flow, fmt.Sprintf("run-%03d", i), "fetch", "charge", "ship"))
			if err != nil {
				f.t.Error(err)
				return
			}
			end := r.event(workflow.EventRunSucceeded, "")
			if i%3 == 0 {
				end = r.event(workflow.EventRunFailed, `task "ship": lost`)
			}
			for _, batch := range [][]workflow.Entry{
				{r.started(order{ID: i})},
				{r.task("fetch", workflow.EventTaskStarted, 1, "")},
				{r.succeeded("fetch", 1, i), r.task("charge", workflow.EventTaskStarted, 1, ""), r.task("ship", workflow.EventTaskStarted, 1, "")},
				{r.succeeded("charge", 1, fmt.Sprint(i))},
				{r.task("ship", workflow.EventTaskRetrying, 1, "busy"), r.task("ship", workflow.EventTaskStarted, 2, "")},
				{r.succeeded("ship", 2, []int{i}), end},
			} {
				if err := r.tryAppend(batch...); err != nil {
					f.t.Error(err)
					return
				}
			}
			runs[i] = r
		})
	}
	close(start)
	wg.Wait()
	if f.t.Failed() {
		return
	}
	for _, r := range runs {
		r.check()
	}
	got, err := f.s.List(f.ctx, flow, workflow.HistoryQuery{Summary: true})
	if err != nil {
		f.t.Fatalf("List: %v", err)
	}
	ids := make([]string, len(got))
	for i, rs := range got {
		ids[i] = rs.RunID
	}
	slices.Sort(ids)
	if want := runIDs(runs); !slices.Equal(ids, want) {
		f.t.Fatalf("List gives %d runs, want each of the %d runs once: %q", len(ids), n, ids)
	}
}

func runsUnderWayOutliveRetention(f *fixture) {
	// Created first, they are the oldest: the first a store would drop.
	underWay := []*run{
		f.runIn(flow, "pending", workflow.StatePending),
		f.runIn(flow, "running", workflow.StateRunning),
		f.runIn(flow, "interrupted", workflow.StateInterrupted),
	}
	// More ended runs than a store keeps by default, recorded by a few
	// goroutines at once, as a busy process does (and to be quick).
	next := make(chan int)
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for i := range next {
				r, err := f.tryCreate(newRun(flow, fmt.Sprintf("ended-%04d", i), "fetch"))
				if err == nil {
					err = r.tryAppend(r.started(i), r.task("fetch", workflow.EventTaskStarted, 1, ""), r.succeeded("fetch", 1, i),
						r.event(workflow.EventRunSucceeded, ""))
				}
				if err != nil {
					f.t.Error(err)
				}
			}
		})
	}
	for i := range workflow.DefaultMaxRuns + 1 {
		next <- i
	}
	close(next)
	wg.Wait()
	if f.t.Failed() {
		return
	}
	for _, r := range underWay {
		r.check()
		f.list(flow, workflow.HistoryQuery{State: r.want.State, Summary: true}, r)
	}
	// They go on.
	running := underWay[1]
	running.append(running.succeeded("fetch", 1, "fetched"))
	running.check()
	running.checkPayloads()
}

func payloadsHoldInputAndOutputs(f *fixture) {
	r := f.create("r1", "fetch", "charge", "ship", "notify")
	r.append(r.started(order{ID: 42, Items: []string{"book", "pen"}, Note: "gift ✓ \x00"}))
	r.checkPayloads()
	r.append(r.task("fetch", workflow.EventTaskStarted, 1, ""), r.succeeded("fetch", 1, []string{"book", "pen"}))
	r.checkPayloads()
	r.append(r.task("charge", workflow.EventTaskStarted, 1, ""), r.task("charge", workflow.EventTaskRetrying, 1, "busy"),
		r.task("charge", workflow.EventTaskStarted, 2, ""), r.succeeded("charge", 2, receipt{Order: 42, Total: 12.5}),
		r.task("ship", workflow.EventTaskStarted, 1, ""), r.task("notify", workflow.EventTaskStarted, 1, ""))
	r.checkPayloads()
	r.append(r.task("notify", workflow.EventTaskFailed, 1, "smtp: 421"), r.task("ship", workflow.EventTaskCancelled, 1, "context canceled"),
		r.event(workflow.EventRunFailed, `task "notify": smtp: 421`))
	r.checkPayloads()
	// Resumed, the run keeps them, and records more.
	r.reopen()
	r.append(r.event(workflow.EventRunResumed, ""))
	r.checkPayloads()
	r.append(r.task("ship", workflow.EventTaskStarted, 1, ""), r.succeeded("ship", 1, map[string]any{"parcels": 2.0}))
	r.checkPayloads()
	// A Codec may encode to any bytes, not only JSON.
	binary := r.task("notify", workflow.EventTaskSucceeded, 1, "")
	binary.Payload = workflow.Payload{Value: []byte{0, 0xff, 'g', 'o', 'b'}}
	if f.persistent {
		binary.Payload = workflow.Payload{Data: []byte{0, 0xff, 'g', 'o', 'b', 0}}
	}
	r.append(r.task("notify", workflow.EventTaskStarted, 1, ""), binary)
	r.checkPayloads()
	r.check()
}

func runStartedWithoutPayloadHasNoInput(f *fixture) {
	// The run's input was refused: run_started carries no payload.
	r := f.create("r1", "fetch")
	refused := r.event(workflow.EventRunStarted, "")
	r.append(refused, r.task("fetch", workflow.EventTaskSkipped, 0, ""),
		r.event(workflow.EventRunFailed, "could not record the run's input: invalid input"))
	got, err := f.s.Payloads(f.ctx, flow, "r1")
	if err != nil {
		f.t.Fatalf("Payloads: %v", err)
	}
	if got.HasInput || len(got.Outputs) != 0 {
		f.t.Fatalf("Payloads of a run started without input: HasInput %t, %d outputs; want no input and no outputs",
			got.HasInput, len(got.Outputs))
	}
	r.check()
}

func itemEventsKeepTheirItem(f *fixture) {
	// A Map task's item events carry a count (items_started,
	// items_progress) or an item's index (item_retrying, item_failed) in
	// Event.Item; index 0 is the first item, not a missing one.
	r := f.create("r1", "fetch", "resize")
	item := func(typ string, n int, errText string) workflow.Entry {
		e := r.task("resize", typ, 1, errText)
		e.Item = n
		return e
	}
	retrying := item(workflow.EventItemRetrying, 17, "thumbnail service busy")
	retrying.RetryAt = retrying.Time.Add(1500 * time.Millisecond)
	r.append(r.started(order{ID: 1}), r.succeeded("fetch", 1, []string{"a.png", "b.png"}),
		r.task("resize", workflow.EventTaskStarted, 1, ""), item(workflow.EventItemsStarted, 100_000, ""))
	r.check()
	r.append(item(workflow.EventItemsProgress, 1000, ""), retrying)
	r.check()
	r.append(item(workflow.EventItemFailed, 0, "corrupt image"), r.task("resize", workflow.EventTaskFailed, 1, "item 0: corrupt image"),
		r.event(workflow.EventRunFailed, `task "resize": item 0: corrupt image`))
	r.check()
	f.list(flow, workflow.HistoryQuery{}, r)
	rs := f.get(flow, "r1")
	got, ok := rs.Items("resize")
	if want := (workflow.ItemsStatus{Total: 100_000, Done: 1000, Failed: []int{0}}); !ok || !reflect.DeepEqual(got, want) {
		f.t.Fatalf("Items(%q) of the run read back = %+v, %t; want %+v, true", "resize", got, ok, want)
	}
}

func childRunKeepsItsParentRunID(f *fixture) {
	// The run of a child workflow that a Sub task started names the run of
	// its parent (Trigger parent, ParentRunID) from Create on, through
	// every read and every change of the run, a Reopen included.
	parent := f.create("r1", "fetch", "charge")
	rs := newRun("payments", "r1.charge", "authorize", "capture")
	rs.Trigger, rs.ParentRunID = workflow.TriggerParent, "r1"
	child := f.createRun(rs)
	child.check()
	parent.append(parent.started(order{ID: 1}), parent.task("fetch", workflow.EventTaskStarted, 1, ""),
		parent.succeeded("fetch", 1, "fetched"), parent.task("charge", workflow.EventTaskStarted, 1, ""))
	child.append(child.started("fetched"), child.task("authorize", workflow.EventTaskStarted, 1, ""))
	child.check()
	child.append(child.interrupted())
	child.reopen()
	child.append(child.event(workflow.EventRunResumed, ""), child.task("authorize", workflow.EventTaskStarted, 2, ""),
		child.succeeded("authorize", 2, "authorized"), child.task("capture", workflow.EventTaskStarted, 1, ""),
		child.succeeded("capture", 1, receipt{Order: 1, Total: 9.5}), child.event(workflow.EventRunSucceeded, ""))
	child.check()
	f.list("payments", workflow.HistoryQuery{}, child)
	f.list("payments", workflow.HistoryQuery{Summary: true}, child)
	// The parent's run has none.
	parent.check()
	f.list(flow, workflow.HistoryQuery{Summary: true}, parent)
}

// payloadsHoldWhatTasksThatDidNotSucceedKept: the payload of the end event
// of a task that did not succeed (what a failed Map task keeps of its
// items' outputs, for Resume) is in Payloads().Partial, through every
// change of the run and a Reopen, until the task passes again; an end
// without a payload leaves no entry. A task that then succeeds has its
// output in Outputs, and nothing in Partial.
func payloadsHoldWhatTasksThatDidNotSucceedKept(f *fixture) {
	r := f.create("r1", "fetch", "resize", "notify", "archive")
	kept := map[string]any{"done": []any{0.0, 2.0}, "outputs": []any{"a.jpg", "c.jpg"}}
	r.append(r.started(order{ID: 1}), r.succeeded("fetch", 1, []string{"a.png", "b.png", "c.png"}),
		r.task("resize", workflow.EventTaskStarted, 1, ""), r.task("notify", workflow.EventTaskStarted, 1, ""),
		r.task("archive", workflow.EventTaskStarted, 1, ""))
	r.checkPayloads()
	// The run goes on: the task's end is among the events a store may not
	// have folded into its task's row yet.
	r.append(r.endedKeeping("resize", workflow.EventTaskFailed, 1, "item 1: corrupt image", kept))
	r.check()
	r.checkPayloads()
	got, err := f.s.Payloads(f.ctx, flow, "r1")
	if err != nil {
		f.t.Fatalf("Payloads: %v", err)
	}
	if _, ok := got.Partial["resize"]; !ok || len(got.Partial) != 1 {
		f.t.Fatalf("Payloads(%q, %q): Partial holds %d tasks, want what the failed task %q kept", flow, "r1", len(got.Partial), "resize")
	}
	// Other ends: one with a payload, one without; and the run stops.
	r.append(r.task("notify", workflow.EventTaskFailed, 1, "smtp: 421"),
		r.endedKeeping("archive", workflow.EventTaskTimedOut, 1, "context deadline exceeded", []string{"a.zip"}),
		r.event(workflow.EventRunFailed, `task "resize": item 1: corrupt image`))
	r.check()
	r.checkPayloads()
	f.list(flow, workflow.HistoryQuery{}, r)

	// Reopened for Resume, the run still holds them; passing again, its
	// tasks have nothing kept until they end anew.
	r.reopen()
	r.checkPayloads()
	r.append(r.event(workflow.EventRunResumed, ""))
	r.check()
	r.append(r.task("resize", workflow.EventTaskStarted, 2, ""), r.task("notify", workflow.EventTaskStarted, 2, ""),
		r.task("archive", workflow.EventTaskStarted, 2, ""))
	r.append(r.succeeded("resize", 2, []string{"a.jpg", "b.jpg", "c.jpg"}),
		r.endedKeeping("notify", workflow.EventTaskCancelled, 2, "context canceled", "sent to 3 of 5"))
	r.check()
	r.checkPayloads()
	// Interrupted, then reopened, as Recover does.
	r.append(r.interrupted())
	r.reopen()
	r.checkPayloads()
	r.append(r.event(workflow.EventRunResumed, ""), r.task("notify", workflow.EventTaskStarted, 3, ""),
		r.task("archive", workflow.EventTaskStarted, 3, ""))
	r.append(r.task("notify", workflow.EventTaskFailed, 3, "smtp: 421"), r.succeeded("archive", 3, []string{"a.zip", "b.zip"}),
		r.event(workflow.EventRunFailed, `task "notify": smtp: 421`))
	r.check()
	r.checkPayloads()
	if got, err := f.s.Payloads(f.ctx, flow, "r1"); err != nil || len(got.Partial) != 0 {
		f.t.Fatalf("Payloads(%q, %q): Partial holds %d tasks, %v; want none: no task that did not succeed kept anything",
			flow, "r1", len(got.Partial), err)
	}
}
