package storetest

import (
	"errors"
	"fmt"
	"sync"

	"github.com/b3b01171/workflow"
)

// The rules of ownership: Reopen and Orphans. A store's leases expire with
// time; the suite does not wait for that, and checks only what holds
// whatever the lease: a run is its creator's until a batch ends or
// interrupts it, and then anyone's who reopens it first.

func createdRunIsOwned(f *fixture) {
	r := f.create("r1", "fetch", "charge")
	r.refused()
	f.orphans(flow)
	r.append(r.started(order{ID: 1}))
	r.refused()
	r.append(r.task("fetch", workflow.EventTaskStarted, 1, ""), r.succeeded("fetch", 1, "fetched"))
	r.refused()
	f.orphans(flow)
	// Refused, the Reopens leave the run to its Recorder.
	r.append(r.task("charge", workflow.EventTaskStarted, 1, ""), r.succeeded("charge", 1, "paid"),
		r.event(workflow.EventRunSucceeded, ""))
	r.check()
}

func endedRunCanBeReopened(f *fixture) {
	for _, s := range []workflow.State{workflow.StateSucceeded, workflow.StateFailed, workflow.StateTimedOut, workflow.StateCancelled} {
		r := f.runIn(flow, "run-"+string(s), s)
		f.orphans(flow) // ended, it is no one's to recover
		r.reopen()
		r.refused() // the store owns it again
		f.orphans(flow)
		if s != workflow.StateSucceeded { // which the engine does not resume
			r.append(r.event(workflow.EventRunResumed, ""), r.task("fetch", workflow.EventTaskStarted, 1, ""))
			r.refused()
			r.append(r.succeeded("fetch", 1, "fetched"), r.event(workflow.EventRunSucceeded, ""))
			r.check()
			// Ended again, it is released again.
			r.reopen()
			r.refused()
		}
	}
}

func interruptedRunIsAnOrphan(f *fixture) {
	r := f.create("r1", "fetch", "charge")
	running := f.runIn(flow, "r2", workflow.StateRunning)
	f.runIn(flow, "r3", workflow.StateFailed)
	r.append(r.started(order{ID: 1}), r.task("fetch", workflow.EventTaskStarted, 1, ""))
	f.orphans(flow)
	r.append(r.interrupted())
	f.orphans(flow, r)
	f.orphans("refunds")
	running.refused()
	r.reopen()
	f.orphans(flow)
	r.refused()
	r.append(r.event(workflow.EventRunResumed, ""), r.task("fetch", workflow.EventTaskStarted, 1, ""))
	r.check()
	// Interrupted again, in a batch with other entries.
	r.append(r.succeeded("fetch", 1, "fetched"), r.task("charge", workflow.EventTaskStarted, 1, ""), r.interrupted())
	f.orphans(flow, r)
	r.reopen()
	r.append(r.event(workflow.EventRunResumed, ""))
	r.check()
	r.checkPayloads()
}

func oneOfConcurrentReopensWins(f *fixture) {
	const rounds = 3
	for round := range rounds {
		r := f.runIn(flow, fmt.Sprintf("r%d", round), workflow.StateInterrupted)
		r.rec = f.oneWins("Reopens", func(int) (workflow.Recorder, error) {
			return f.s.Reopen(f.ctx, flow, r.want.RunID)
		})
		f.orphans(flow)
		r.append(r.event(workflow.EventRunResumed, ""), r.task("fetch", workflow.EventTaskStarted, 1, ""))
		r.check()
		r.append(r.succeeded("fetch", 1, "fetched"), r.event(workflow.EventRunSucceeded, ""))
	}
}

// oneWins makes 16 concurrent claims of one orphan (claim i), which what
// names in failures, and returns the Recorder of the one that must win:
// every other must fail with an error wrapping ErrNotResumable.
func (f *fixture) oneWins(what string, claim func(i int) (workflow.Recorder, error)) workflow.Recorder {
	const contenders = 16
	recs := make([]workflow.Recorder, contenders)
	errs := make([]error, contenders)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range contenders {
		wg.Go(func() {
			<-start
			recs[i], errs[i] = claim(i)
		})
	}
	close(start)
	wg.Wait()
	winner := -1
	for i, err := range errs {
		switch {
		case err == nil && winner >= 0:
			f.t.Fatalf("%d concurrent %s of an orphan: two of them won", contenders, what)
		case err == nil:
			winner = i
		case !errors.Is(err, workflow.ErrNotResumable):
			f.t.Fatalf("%d concurrent %s of an orphan: a loser got %v, want an error wrapping ErrNotResumable", contenders, what, err)
		}
	}
	if winner < 0 {
		f.t.Fatalf("%d concurrent %s of an orphan: none won", contenders, what)
	}
	return recs[winner]
}

func orphansAreOldestFirst(f *fixture) {
	runs := make([]*run, 6)
	for i := range runs {
		runs[i] = f.create(fmt.Sprintf("r%d", i+1), "fetch")
		f.createRun(newRun("refunds", fmt.Sprintf("x%d", i+1), "pay"))
	}
	// Started newest first, and interrupted in no order: creation counts.
	for _, r := range newestFirst(runs...) {
		r.append(r.started(order{ID: 1}), r.task("fetch", workflow.EventTaskStarted, 1, ""))
	}
	r1, r2, r3, r5, r6 := runs[0], runs[1], runs[2], runs[4], runs[5]
	for _, r := range []*run{r3, r5, r1, r2} {
		r.append(r.interrupted())
	}
	r6.append(r6.task("fetch", workflow.EventTaskFailed, 1, "lost"), r6.event(workflow.EventRunFailed, `task "fetch": lost`))
	orphan := f.runIn("refunds", "x7", workflow.StateInterrupted)
	f.orphans(flow, r1, r2, r3, r5) // r4 runs, r6 ended
	r2.reopen()
	f.orphans(flow, r1, r3, r5)
	f.orphans("refunds", orphan)
}

// claimer is the store as a workflow.OrphanClaimer; it skips the rule for
// a store that is not one.
func (f *fixture) claimer() workflow.OrphanClaimer {
	f.t.Helper()
	c, ok := f.s.(workflow.OrphanClaimer)
	if !ok {
		f.t.Skip("storetest: the store is not a workflow.OrphanClaimer")
	}
	return c
}

// claimOrphan takes the run over with ClaimOrphan, as Recover does, and
// records through the new Recorder from then on.
func (r *run) claimOrphan(c workflow.OrphanClaimer) {
	r.f.t.Helper()
	rec, err := c.ClaimOrphan(r.f.ctx, r.want.Workflow, r.want.RunID)
	switch {
	case err != nil:
		r.f.t.Fatalf("ClaimOrphan(%q, %q) of a run %s with no live owner: %v", r.want.Workflow, r.want.RunID, r.want.State, err)
	case rec == nil:
		r.f.t.Fatalf("ClaimOrphan(%q, %q) returned a nil Recorder", r.want.Workflow, r.want.RunID)
	}
	r.rec = rec
}

// claimRefused fails the test unless ClaimOrphan refuses the run, which
// has ended or has a live owner, with ErrNotResumable.
func (r *run) claimRefused(c workflow.OrphanClaimer, why string) {
	r.f.t.Helper()
	_, err := c.ClaimOrphan(r.f.ctx, r.want.Workflow, r.want.RunID)
	switch {
	case err == nil:
		r.f.t.Fatalf("ClaimOrphan(%q, %q) of a run %s %s succeeded, want an error wrapping ErrNotResumable",
			r.want.Workflow, r.want.RunID, r.want.State, why)
	case !errors.Is(err, workflow.ErrNotResumable):
		r.f.t.Fatalf("ClaimOrphan(%q, %q) of a run %s %s: %v, want an error wrapping ErrNotResumable",
			r.want.Workflow, r.want.RunID, r.want.State, why, err)
	}
}

// claimOrphanTakesOnlyRunsUnderWayWithoutAnOwner: ClaimOrphan, Recover's
// Reopen, takes a run that is pending, running or interrupted and that no
// live owner holds, in one step; it never takes an ended run, even one no
// one owns (another process resumed and ended it after Orphans listed it),
// nor a run with a live owner, and leaves a run it refuses as it was.
func claimOrphanTakesOnlyRunsUnderWayWithoutAnOwner(f *fixture) {
	c := f.claimer()
	orphan := f.runIn(flow, "r1", workflow.StateInterrupted)
	running := f.runIn(flow, "r2", workflow.StateRunning)
	failed := f.runIn(flow, "r3", workflow.StateFailed)
	late := f.runIn(flow, "r4", workflow.StateInterrupted)
	f.orphans(flow, orphan, late)

	orphan.claimOrphan(c)
	orphan.refused() // the store owns it again
	orphan.claimRefused(c, "just claimed")
	f.orphans(flow, late)
	orphan.check()
	running.claimRefused(c, "with a live owner")
	failed.claimRefused(c, "that has ended and has no owner")

	// Listed, then resumed and ended by another process before the claim.
	late.reopen()
	late.append(late.event(workflow.EventRunResumed, ""), late.task("fetch", workflow.EventTaskStarted, 2, ""),
		late.succeeded("fetch", 2, "fetched"), late.event(workflow.EventRunSucceeded, ""))
	late.claimRefused(c, "resumed and ended after Orphans listed it")
	f.orphans(flow)

	for _, k := range []struct{ workflow, runID string }{{flow, "nope"}, {"nope", "r1"}, {"Orders", "r1"}} {
		_, err := c.ClaimOrphan(f.ctx, k.workflow, k.runID)
		f.notFound(fmt.Sprintf("ClaimOrphan(%q, %q)", k.workflow, k.runID), err)
	}

	// The refused claims took nothing: the running run goes on under its
	// owner, and the ended runs can be reopened, as Resume does.
	running.append(running.succeeded("fetch", 1, "fetched"), running.event(workflow.EventRunSucceeded, ""))
	running.check()
	failed.reopen()
	late.reopen()
	// The claimed run goes on under its new Recorder; ended, it is no
	// one's to claim again.
	orphan.append(orphan.event(workflow.EventRunResumed, ""), orphan.task("fetch", workflow.EventTaskStarted, 2, ""))
	orphan.check()
	orphan.checkPayloads()
	orphan.append(orphan.succeeded("fetch", 2, "fetched"), orphan.event(workflow.EventRunSucceeded, ""))
	orphan.claimRefused(c, "claimed and ended since")
	orphan.check()
	f.list(flow, workflow.HistoryQuery{}, late, failed, running, orphan)
}

func oneOfConcurrentOrphanClaimsWins(f *fixture) {
	c := f.claimer()
	const rounds = 3
	for round := range rounds {
		r := f.runIn(flow, fmt.Sprintf("r%d", round), workflow.StateInterrupted)
		r.rec = f.oneWins("ClaimOrphans and Reopens", func(i int) (workflow.Recorder, error) {
			if i%2 == 0 { // Resume, racing with Recover
				return f.s.Reopen(f.ctx, flow, r.want.RunID)
			}
			return c.ClaimOrphan(f.ctx, flow, r.want.RunID)
		})
		f.orphans(flow)
		r.append(r.event(workflow.EventRunResumed, ""), r.task("fetch", workflow.EventTaskStarted, 2, ""))
		r.check()
		r.append(r.succeeded("fetch", 2, "fetched"), r.event(workflow.EventRunSucceeded, ""))
		r.claimRefused(c, "resumed and ended")
	}
}
