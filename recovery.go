package workflow

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"time"
)

// DefaultRecoverInterval is how often a started Scheduler recovers the
// runs of its workflows, unless WithRecoverInterval says otherwise.
const DefaultRecoverInterval = 10 * time.Second

// WithRecoverInterval sets how often a started Scheduler calls Recover on
// each registered workflow whose store is durable (Persistent, such as
// sqlitestore and pgstore): at Start, then every d. That is how the runs
// of a replica that died, scheduled or not, resume on another replica
// once their lease has expired, each on exactly one replica (Recover
// claims each run in one atomic step), within the lease TTL plus d. The
// recovered runs belong to the Scheduler as triggered runs do: Stop waits
// for them, and may cancel them. The default is DefaultRecoverInterval;
// 0 or a negative d turns recovery off. Workflows on a MemoryStore are
// never recovered: their runs do not outlive the process.
func WithRecoverInterval(d time.Duration) SchedulerOption {
	return func(s *Scheduler) { s.recoverEvery, s.recoverSet = d, true }
}

// recoverLoop recovers the runs of the durable workflows of s at once and
// then every interval, until g stops.
func (s *Scheduler) recoverLoop(g *generation, every time.Duration) {
	defer func() {
		s.mu.Lock()
		g.loops.done()
		s.mu.Unlock()
	}()
	timer := time.NewTimer(every)
	defer timer.Stop()
	for {
		s.mu.Lock()
		entries := slices.Clone(s.entries)
		s.mu.Unlock()
		for _, en := range entries {
			if en.e.persistent {
				s.recoverAll(g, en)
			}
		}
		select {
		case <-g.stop:
			return
		case <-timer.C:
			timer.Reset(every)
		}
	}
}

// recoverAll resumes the runs of en that the store lists as orphans.
func (s *Scheduler) recoverAll(g *generation, en *entry) {
	var ids []string
	err := s.storeCall(g.ctx, en, "Orphans", func(ctx context.Context) (err error) {
		ids, err = en.e.cfg.store.Orphans(ctx, en.name)
		return err
	})
	if err != nil {
		s.logStore(en, "workflow: no recovery: the store could not list the runs left unfinished", err, time.Time{})
		return
	}
	for _, id := range ids {
		if !s.recoverRun(g, en, id) {
			return
		}
	}
}

// recoverRun resumes the run id of en, as Recover does, in the Scheduler's
// current run group; it reports false once g has stopped. A panic of the
// store is logged; a runtime.Goexit ends the recovery of this generation.
func (s *Scheduler) recoverRun(g *generation, en *entry, id string) bool {
	s.mu.Lock()
	if s.gen != g {
		s.mu.Unlock()
		return false
	}
	grp := s.runs
	grp.n.add()
	s.mu.Unlock()
	handedOff, returned := false, false
	defer func() {
		if !returned {
			p := recover()
			if p == nil {
				p = errGoexitCallback
			}
			s.logPanic(en, "recovering a run", p)
		}
		if !handedOff {
			s.finished(grp)
		}
	}()
	r, err := en.e.resume(grp.ctx, id, nil, true)
	returned = true
	switch {
	case errors.Is(err, errClaimedElsewhere):
		// Another Scheduler or process took it first.
	case err != nil:
		s.logRunError(en, id, "", "workflow: could not recover a run", err)
	default:
		s.log(slog.LevelInfo, "workflow: recovered a run", "workflow", en.name, "run_id", id, "trigger", r.trigger)
		handedOff = true
		go func() {
			defer s.finished(grp)
			defer s.recoverIn(en, "waiting for a recovered run")
			<-r.endedChan()
			s.logEnd(en, r, r.trigger)
		}()
	}
	return true
}
