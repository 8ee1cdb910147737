package storetest

import (
	"sync"
	"time"

	"github.com/b3b01171/workflow"
)

// The rules of workflow.ScheduleStore, for a store that implements it; a
// store that does not passes them skipped.

// schedules is the store as a ScheduleStore, or nil after skipping the rule.
func (f *fixture) schedules() workflow.ScheduleStore {
	f.t.Helper()
	ss, ok := f.s.(workflow.ScheduleStore)
	if !ok {
		f.t.Skip("the store is not a workflow.ScheduleStore")
	}
	return ss
}

// fireTime is a fire time as Schedulers plan them: whole seconds.
var fireTime = time.Date(2030, 1, 2, 3, 4, 0, 0, time.UTC)

func eachFireIsClaimedOnce(f *fixture) {
	ss := f.schedules()
	claim := func(wf string, at time.Time) bool {
		f.t.Helper()
		ok, err := ss.ClaimFire(f.ctx, wf, at)
		if err != nil {
			f.t.Fatalf("ClaimFire(%q, %v): %v", wf, at, err)
		}
		return ok
	}
	last := func(wf string) time.Time {
		f.t.Helper()
		at, err := ss.LastFire(f.ctx, wf)
		if err != nil {
			f.t.Fatalf("LastFire(%q): %v", wf, err)
		}
		return at
	}
	if at := last(flow); !at.IsZero() {
		f.t.Fatalf("LastFire of a workflow never fired = %v, want the zero time", at)
	}

	const claimers = 8
	var wg sync.WaitGroup
	granted := make([]bool, claimers)
	for i := range claimers {
		wg.Go(func() { granted[i] = claim(flow, fireTime) })
	}
	wg.Wait()
	n := 0
	for _, g := range granted {
		if g {
			n++
		}
	}
	if n != 1 {
		f.t.Fatalf("%d concurrent claims of one fire were granted %d times, want once", claimers, n)
	}
	if claim(flow, fireTime) {
		f.t.Fatal("a fire claimed already was granted again")
	}
	if !claim(flow, fireTime.Add(time.Minute)) {
		f.t.Fatal("the next fire was refused")
	}
	if claim(flow, fireTime.Add(30*time.Second)) {
		f.t.Fatal("a fire earlier than the latest claimed was granted")
	}
	if !claim("other", fireTime) {
		f.t.Fatal("a fire of another workflow at the same time was refused")
	}
	if at := last(flow); !at.Equal(fireTime.Add(time.Minute)) {
		f.t.Fatalf("LastFire = %v, want %v", at, fireTime.Add(time.Minute))
	}
}

func pauseIsKeptPerWorkflow(f *fixture) {
	ss := f.schedules()
	paused := func(wf string) bool {
		f.t.Helper()
		p, err := ss.Paused(f.ctx, wf)
		if err != nil {
			f.t.Fatalf("Paused(%q): %v", wf, err)
		}
		return p
	}
	set := func(wf string, p bool) {
		f.t.Helper()
		if err := ss.SetPaused(f.ctx, wf, p); err != nil {
			f.t.Fatalf("SetPaused(%q, %v): %v", wf, p, err)
		}
	}
	if paused(flow) {
		f.t.Fatal("a workflow never paused is paused")
	}
	set(flow, true)
	set(flow, true)
	if !paused(flow) {
		f.t.Fatal("SetPaused(true) did not pause the workflow")
	}
	if paused("other") {
		f.t.Fatal("pausing one workflow paused another")
	}
	if _, err := ss.ClaimFire(f.ctx, flow, fireTime); err != nil {
		f.t.Fatalf("ClaimFire of a paused workflow: %v", err)
	}
	if !paused(flow) {
		f.t.Fatal("a claim unpaused the workflow")
	}
	set(flow, false)
	if paused(flow) {
		f.t.Fatal("SetPaused(false) did not unpause the workflow")
	}
}

func missedFiresAreClaimedOnceFromTheLastFire(f *fixture) {
	ss := f.schedules()
	if ok, err := ss.ClaimFire(f.ctx, flow, fireTime); err != nil || !ok {
		f.t.Fatalf("ClaimFire = %v, %v; want true", ok, err)
	}
	upTo := fireTime.Add(5 * time.Minute)
	const claimers = 8
	var wg sync.WaitGroup
	granted := make([]bool, claimers)
	errs := make([]error, claimers)
	for i := range claimers {
		wg.Go(func() { granted[i], errs[i] = ss.ClaimMissed(f.ctx, flow, fireTime, upTo) })
	}
	wg.Wait()
	n := 0
	for i, g := range granted {
		if errs[i] != nil {
			f.t.Fatalf("ClaimMissed: %v", errs[i])
		}
		if g {
			n++
		}
	}
	if n != 1 {
		f.t.Fatalf("%d concurrent ClaimMissed from one last fire were granted %d times, want once", claimers, n)
	}
	if at, err := ss.LastFire(f.ctx, flow); err != nil || !at.Equal(upTo) {
		f.t.Fatalf("LastFire after ClaimMissed = %v, %v; want %v", at, err, upTo)
	}
	if ok, err := ss.ClaimMissed(f.ctx, flow, fireTime, upTo.Add(time.Minute)); err != nil || ok {
		f.t.Fatalf("ClaimMissed from a last fire that is no longer the latest = %v, %v; want false", ok, err)
	}
	if ok, err := ss.ClaimFire(f.ctx, flow, upTo.Add(-time.Minute)); err != nil || ok {
		f.t.Fatalf("ClaimFire of a fire ClaimMissed covered = %v, %v; want false", ok, err)
	}
	if ok, err := ss.ClaimMissed(f.ctx, "never", time.Time{}, upTo); err != nil || ok {
		f.t.Fatalf("ClaimMissed of a workflow never fired = %v, %v; want false", ok, err)
	}
}

// claimAlone claims the fire at at of flow alone, failing the test on an
// error.
func (f *fixture) claimAlone(ss workflow.ScheduleStore, at time.Time) (granted, busy bool) {
	f.t.Helper()
	granted, busy, err := ss.ClaimFireAlone(f.ctx, flow, at)
	if err != nil {
		f.t.Fatalf("ClaimFireAlone(%v): %v", at, err)
	}
	return granted, busy
}

func (f *fixture) fireStarted(ss workflow.ScheduleStore, at time.Time) {
	f.t.Helper()
	if err := ss.FireStarted(f.ctx, flow, at); err != nil {
		f.t.Fatalf("FireStarted(%v): %v", at, err)
	}
}

func aFireClaimedAloneIsBusyWhileAScheduledRunIsUnderWay(f *fixture) {
	ss := f.schedules()
	at := fireTime
	next := func() time.Time { at = at.Add(time.Minute); return at }
	if g, b := f.claimAlone(ss, at); !g || b {
		f.t.Fatalf("the first fire: granted %v, busy %v; want granted, not busy", g, b)
	}
	if g, b := f.claimAlone(ss, at); g || b {
		f.t.Fatalf("the same fire again: granted %v, busy %v; want neither", g, b)
	}
	rs := newRun(flow, "scheduled", "fetch")
	rs.Trigger, rs.ScheduledAt = workflow.TriggerSchedule, at
	r := f.createRun(rs)
	f.fireStarted(ss, at)
	r.append(r.started(order{ID: 1}), r.task("fetch", workflow.EventTaskStarted, 1, ""))

	// A manual run under way, or a scheduled run of another workflow, does not count.
	f.runIn(flow, "manual", workflow.StateRunning)
	other := newRun("other", "elsewhere", "fetch")
	other.Trigger = workflow.TriggerSchedule
	f.createRun(other)

	if g, b := f.claimAlone(ss, next()); !g || !b {
		f.t.Fatalf("a fire while a scheduled run is under way: granted %v, busy %v; want granted, busy", g, b)
	}
	if ok, err := ss.ClaimFire(f.ctx, flow, at); err != nil || ok {
		f.t.Fatalf("ClaimFire of a fire ClaimFireAlone granted busy = %v, %v; want false: it is claimed", ok, err)
	}
	r.append(r.succeeded("fetch", 1, receipt{Order: 1}), r.event(workflow.EventRunSucceeded, ""))
	if g, b := f.claimAlone(ss, next()); !g || b {
		f.t.Fatalf("a fire once the scheduled run ended: granted %v, busy %v; want granted, not busy", g, b)
	}
	f.fireStarted(ss, at)
}

func aFireClaimedAloneIsBusyWhileAnotherIsStarting(f *fixture) {
	ss := f.schedules()
	if g, b := f.claimAlone(ss, fireTime); !g || b {
		f.t.Fatalf("the first fire: granted %v, busy %v; want granted, not busy", g, b)
	}
	// Its run is not in the store yet.
	if g, b := f.claimAlone(ss, fireTime.Add(time.Minute)); !g || !b {
		f.t.Fatalf("a fire while another is starting: granted %v, busy %v; want granted, busy", g, b)
	}
	f.fireStarted(ss, fireTime.Add(time.Minute)) // not starting: does nothing
	if g, b := f.claimAlone(ss, fireTime.Add(2*time.Minute)); !g || !b {
		f.t.Fatalf("FireStarted of a fire that was not starting ended another's start: granted %v, busy %v", g, b)
	}
	f.fireStarted(ss, fireTime) // its run could not be created
	if g, b := f.claimAlone(ss, fireTime.Add(3*time.Minute)); !g || b {
		f.t.Fatalf("a fire once the other started: granted %v, busy %v; want granted, not busy", g, b)
	}
	if ok, err := ss.ClaimFire(f.ctx, flow, fireTime.Add(4*time.Minute)); err != nil || !ok {
		f.t.Fatalf("ClaimFire while a fire is starting = %v, %v; want true: it does not look", ok, err)
	}
}
