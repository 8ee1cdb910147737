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
