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
