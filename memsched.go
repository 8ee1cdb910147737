package workflow

import (
	"context"
	"sync"
	"time"
)

// memSchedules is a MemoryStore's side of ScheduleStore: what the
// Schedulers of this process that share the store agree on, by workflow.
// Snapshot and Restore leave it out.
type memSchedules struct {
	mu    sync.Mutex
	flows map[string]*memSchedule
}

type memSchedule struct {
	paused bool
	last   time.Time // the latest fire claimed

	// starting is the fire ClaimFireAlone granted not busy, whose run its
	// Scheduler is starting, until FireStarted. It needs no time bound:
	// the Scheduler is in this process, and calls FireStarted whatever
	// becomes of the run.
	starting time.Time
}

var _ ScheduleStore = (*MemoryStore)(nil)

// of returns the schedule of workflow, made if need be. The caller holds
// m.mu.
func (m *memSchedules) of(workflow string) *memSchedule {
	if m.flows == nil {
		m.flows = map[string]*memSchedule{}
	}
	sc := m.flows[workflow]
	if sc == nil {
		sc = &memSchedule{}
		m.flows[workflow] = sc
	}
	return sc
}

// ClaimFire implements ScheduleStore.
func (s *MemoryStore) ClaimFire(ctx context.Context, workflow string, at time.Time) (bool, error) {
	m := &s.schedules
	m.mu.Lock()
	defer m.mu.Unlock()
	sc := m.of(workflow)
	if !at.After(sc.last) {
		return false, nil
	}
	sc.last = at
	return true, nil
}

// ClaimMissed implements ScheduleStore.
func (s *MemoryStore) ClaimMissed(ctx context.Context, workflow string, last, upTo time.Time) (bool, error) {
	m := &s.schedules
	m.mu.Lock()
	defer m.mu.Unlock()
	sc := m.of(workflow)
	if last.IsZero() || !sc.last.Equal(last) || !upTo.After(last) {
		return false, nil
	}
	sc.last = upTo
	return true, nil
}

// SetPaused implements ScheduleStore.
func (s *MemoryStore) SetPaused(ctx context.Context, workflow string, paused bool) error {
	m := &s.schedules
	m.mu.Lock()
	defer m.mu.Unlock()
	m.of(workflow).paused = paused
	return nil
}

// Paused implements ScheduleStore.
func (s *MemoryStore) Paused(ctx context.Context, workflow string) (bool, error) {
	m := &s.schedules
	m.mu.Lock()
	defer m.mu.Unlock()
	sc := m.flows[workflow]
	return sc != nil && sc.paused, nil
}

// LastFire implements ScheduleStore.
func (s *MemoryStore) LastFire(ctx context.Context, workflow string) (time.Time, error) {
	m := &s.schedules
	m.mu.Lock()
	defer m.mu.Unlock()
	if sc := m.flows[workflow]; sc != nil {
		return sc.last, nil
	}
	return time.Time{}, nil
}

// ClaimFireAlone implements ScheduleStore: busy when a run of the
// workflow with Trigger "schedule" that a Recorder of this store holds is
// pending or running, or a fire granted not busy is still starting (until
// FireStarted, however long that takes).
func (s *MemoryStore) ClaimFireAlone(ctx context.Context, workflow string, at time.Time) (granted, busy bool, err error) {
	m := &s.schedules
	m.mu.Lock()
	defer m.mu.Unlock()
	sc := m.of(workflow)
	if !at.After(sc.last) {
		return false, false, nil
	}
	sc.last = at
	busy = !sc.starting.IsZero() || s.scheduledRunUnderWay(workflow)
	if !busy {
		sc.starting = at
	}
	return true, busy, nil
}

// FireStarted implements ScheduleStore.
func (s *MemoryStore) FireStarted(ctx context.Context, workflow string, at time.Time) error {
	m := &s.schedules
	m.mu.Lock()
	defer m.mu.Unlock()
	if sc := m.flows[workflow]; sc != nil && sc.starting.Equal(at) {
		sc.starting = time.Time{}
	}
	return nil
}

// scheduledRunUnderWay reports whether a Recorder of this store holds a
// scheduled run of workflow that has not ended. It takes s.mu after the
// caller's m.mu, which is never taken under s.mu.
func (s *MemoryStore) scheduledRunUnderWay(workflow string) bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	f := s.flows[workflow]
	if f == nil {
		return false
	}
	for e := f.order.Back(); e != nil; e = e.Prev() {
		rec := e.Value.(*record)
		if rec.ended.Load() {
			continue
		}
		rec.mu.Lock()
		under := rec.owned && rec.rs.Trigger == TriggerSchedule && !rec.rs.State.Ended()
		rec.mu.Unlock()
		if under {
			return true
		}
	}
	return false
}
