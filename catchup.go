package workflow

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/robfig/cron/v3"
)

// maxCatchUp bounds what a Scheduler does about missed fires when it
// starts: it makes up at most the latest maxCatchUp fires within the
// catch-up window, and passes at most maxCatchUp skipped fires to hooks
// one by one (the earlier ones in a single event).
const maxCatchUp = 100

// maxCounted bounds the fires of a cron schedule counted, one by one,
// before its catch-up window: past it, the count is a lower bound.
const maxCounted = 1 << 16

// missedFires is what a schedule missed between the last fire handled and
// now.
type missedFires struct {
	windowStart time.Time   // the oldest time a fire is made up for
	makeUp      []time.Time // the fires to make up, oldest first, at most maxCatchUp
	skipped     []time.Time // the latest fires not made up, oldest first, at most maxCatchUp
	earlier     int         // fires not made up before skipped[0]
	atLeast     bool        // earlier is a lower bound: there were too many to count
}

// missedSince returns the fires planned after last and no later than now,
// split into those to make up (within CatchUpWindow of now, the latest
// maxCatchUp of them) and those skipped; nothing if last is zero (the
// workflow never fired: nothing was missed) or there is no window.
func (p *parsedSchedule) missedSince(last, now time.Time) missedFires {
	var m missedFires
	if p.CatchUpWindow <= 0 || last.IsZero() || !last.Before(now) {
		return m
	}
	m.windowStart = now.Add(-p.CatchUpWindow)
	add := func(t time.Time) {
		if !t.Before(m.windowStart) {
			m.makeUp = append(m.makeUp, t)
			if len(m.makeUp) <= maxCatchUp {
				return
			}
			t, m.makeUp = m.makeUp[0], m.makeUp[1:]
		}
		m.skipped = append(m.skipped, t)
		if len(m.skipped) > maxCatchUp {
			m.skipped = m.skipped[1:]
			m.earlier++
		}
	}
	if every, ok := p.sched.(cron.ConstantDelaySchedule); ok {
		// "@every d" counts from the last fire: the fires are last + k·d,
		// and all but the latest 2·maxCatchUp are skipped whatever the
		// window.
		n := int64(now.Sub(last) / every.Delay)
		k := int64(1)
		if keep := int64(2 * maxCatchUp); n > keep {
			k = n - keep + 1
			m.earlier = int(k - 1)
		}
		for ; k <= n; k++ {
			add(last.Add(time.Duration(k) * every.Delay).In(p.loc))
		}
		return m
	}
	t := p.next(last)
	for counted := 0; !t.IsZero() && !t.After(now); counted++ {
		if counted == maxCounted && t.Before(m.windowStart) {
			m.atLeast = true
			t = p.next(m.windowStart.Add(-time.Nanosecond))
			continue
		}
		add(t)
		t = p.next(t)
	}
	return m
}

// catchUp does what Schedule.CatchUpWindow says about the fires of en
// missed before from, when its loop begins: if it claims them all at once
// (ScheduleStore.ClaimMissed, so that one Scheduler of those sharing the
// store does it), it passes the skipped ones to hooks and returns those to
// make up, oldest first.
func (s *Scheduler) catchUp(ctx context.Context, en *entry, g *generation, from time.Time) []time.Time {
	if en.ss == nil || en.ps.CatchUpWindow <= 0 {
		return nil
	}
	var last time.Time
	err := s.storeCall(ctx, en, "LastFire", func(ctx context.Context) (err error) {
		last, err = en.ss.LastFire(ctx, en.name)
		return err
	})
	if err != nil {
		s.logStore(en, "workflow: no catch-up: the store could not give the last fire", err, time.Time{})
		return nil
	}
	m := en.ps.missedSince(last, from)
	var upTo time.Time
	switch {
	case len(m.makeUp) > 0:
		upTo = m.makeUp[len(m.makeUp)-1]
	case len(m.skipped) > 0:
		upTo = m.skipped[len(m.skipped)-1]
	default:
		return nil
	}
	var claimed bool
	err = s.storeCall(ctx, en, "ClaimMissed", func(ctx context.Context) (err error) {
		claimed, err = en.ss.ClaimMissed(ctx, en.name, last, upTo)
		return err
	})
	if err != nil {
		s.logStore(en, "workflow: no catch-up: the store could not claim the missed fires", err, upTo)
		return nil
	}
	if !claimed {
		s.logFire(en, upTo, "workflow: missed fires passed over: another scheduler claimed them")
		return nil
	}
	// Claimed even when paused: the fires are handled, and not made up.
	if s.storePause(ctx, en, upTo) {
		return nil
	}
	s.notePrev(en, g, upTo)
	s.skipMissed(en, &m)
	return m.makeUp
}

// skipMissed passes the skipped fires of m to the hooks of en, as
// schedule_skipped events: one for all the earlier ones, if any, then one
// for each.
func (s *Scheduler) skipMissed(en *entry, m *missedFires) {
	const older = "older than the catch-up window"
	beyond := fmt.Sprintf("more fires were missed within the catch-up window than the %d made up", maxCatchUp)
	if m.earlier > 0 {
		n := fmt.Sprint(m.earlier)
		if m.atLeast {
			n += " or more"
		}
		why := older
		if !m.skipped[0].Before(m.windowStart) {
			why = "older than the catch-up window, or " + beyond
		}
		ev := Event{
			Time:  time.Now(),
			Type:  EventScheduleSkipped,
			Error: fmt.Sprintf("%s fires before %s skipped: %s", n, m.skipped[0].Format(time.RFC3339), why),
		}
		en.e.skipped(ev)
		if s.logger != en.e.cfg.logger {
			s.log(slog.LevelWarn, "workflow: missed fires skipped", "workflow", en.name, "fires", n,
				"before", m.skipped[0], "catch_up_window", en.ps.CatchUpWindow.String())
		}
	}
	for _, at := range m.skipped {
		why := older
		if !at.Before(m.windowStart) {
			why = beyond
		}
		s.skip(en, at, why)
	}
}

// notePrev records at as the last fire of en, unless a later one is.
func (s *Scheduler) notePrev(en *entry, g *generation, at time.Time) {
	s.mu.Lock()
	if s.gen == g && at.After(en.prev) {
		en.prev = at
	}
	s.mu.Unlock()
}

// madeUp records the made-up fire of en at at as its last.
func (s *Scheduler) madeUp(en *entry, g *generation, at time.Time) {
	s.notePrev(en, g, at)
	s.log(slog.LevelInfo, "workflow: making up a missed fire", "workflow", en.name, "scheduled_at", at,
		"catch_up_window", en.ps.CatchUpWindow.String())
}
