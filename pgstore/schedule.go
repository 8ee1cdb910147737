package pgstore

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/b3b01171/workflow"
)

// Store is a workflow.ScheduleStore: the Schedulers of every replica share
// through it each workflow's fires and pause, kept in the table schedules,
// one row per workflow.
var _ workflow.ScheduleStore = (*Store)(nil)

// The statements of the ScheduleStore methods; {s} stands for the quoted
// schema name.
const (
	// claimFireSQL claims a fire ($1 workflow, $2 time in unix ns, $3 the
	// claim's ID, $4 alone, $5 the lease TTL in µs) with claim_fire (see
	// schema.go): it moves last_fire forward, granted, only for a fire
	// later than the latest claimed. The row lock makes concurrent claims
	// of one fire wait for each other, and all but the first find
	// last_fire no longer earlier. A claim whose answer was lost, sent
	// again, finds its own ID and is granted again.
	claimFireSQL = `SELECT granted, busy FROM {s}.claim_fire($1, $2, $3, $4, $5)`
	// claimMissedSQL moves last_fire from $2 to $3 (unix ns) for the
	// claim $4, or finds it moved by this claim already.
	claimMissedSQL = `UPDATE {s}.schedules SET last_fire = $3, claim = $4, claimed_at = clock_timestamp()
WHERE workflow = $1 AND (last_fire = $2 AND $3 > $2 OR last_fire = $3 AND claim = $4)
RETURNING true`
	fireStartedSQL = `UPDATE {s}.schedules SET starting = NULL, starting_until = NULL WHERE workflow = $1 AND starting = $2`
	setPausedSQL   = `INSERT INTO {s}.schedules (workflow, paused) VALUES ($1, $2)
ON CONFLICT (workflow) DO UPDATE SET paused = EXCLUDED.paused`
	pausedSQL   = `SELECT paused FROM {s}.schedules WHERE workflow = $1`
	lastFireSQL = `SELECT last_fire FROM {s}.schedules WHERE workflow = $1`
)

// claims numbers the claims of this process, to tell a claim sent again
// from another one of the same Store.
var claims atomic.Uint64

// ClaimFire implements workflow.ScheduleStore: of the Schedulers of every
// replica that claim one fire of a workflow, exactly one is granted it,
// and a fire no later than the latest claimed is refused. A fire is its
// planned time to the nanosecond.
func (s *Store) ClaimFire(ctx context.Context, wf string, at time.Time) (bool, error) {
	granted, _, err := s.claimFire(ctx, wf, at, false)
	return granted, err
}

// ClaimFireAlone implements workflow.ScheduleStore: busy when a run of the
// workflow with Trigger "schedule" is pending or running under a live
// lease, whatever the replica, or when a fire granted not busy is still
// starting. A fire counts as starting until FireStarted, or for the
// Store's LeaseTTL should its replica die first: a WithScheduleInput
// function that takes longer than that lets the next fire start
// meanwhile.
func (s *Store) ClaimFireAlone(ctx context.Context, wf string, at time.Time) (granted, busy bool, err error) {
	return s.claimFire(ctx, wf, at, true)
}

func (s *Store) claimFire(ctx context.Context, wf string, at time.Time, alone bool) (granted, busy bool, err error) {
	what := fmt.Sprintf("claim the fire at %s of workflow %q", at.UTC().Format(time.RFC3339Nano), wf)
	if err := checkWorkflowName(wf); err != nil {
		return false, false, failed(err, what)
	}
	if err := s.begin(ctx); err != nil {
		return false, false, failed(err, what)
	}
	defer s.leave()
	claim := fmt.Sprintf("%s/%d", s.owner, claims.Add(1))
	err = s.retry(ctx, func(int) error {
		return s.pool.QueryRow(ctx, s.sql.claimFire, wf, at.UnixNano(), claim, alone, s.cfg.leaseTTL.Microseconds()).Scan(&granted, &busy)
	})
	if err != nil {
		return false, false, failed(err, what)
	}
	return granted, busy, nil
}

// ClaimMissed implements workflow.ScheduleStore.
func (s *Store) ClaimMissed(ctx context.Context, wf string, last, upTo time.Time) (bool, error) {
	what := fmt.Sprintf("claim the fires after %s up to %s of workflow %q",
		last.UTC().Format(time.RFC3339Nano), upTo.UTC().Format(time.RFC3339Nano), wf)
	if err := checkWorkflowName(wf); err != nil {
		return false, failed(err, what)
	}
	if last.IsZero() || !upTo.After(last) {
		return false, nil
	}
	if err := s.begin(ctx); err != nil {
		return false, failed(err, what)
	}
	defer s.leave()
	claim := fmt.Sprintf("%s/%d", s.owner, claims.Add(1))
	var granted bool
	err := s.retry(ctx, func(int) error {
		granted = false
		err := s.pool.QueryRow(ctx, s.sql.claimMissed, wf, last.UnixNano(), upTo.UnixNano(), claim).Scan(&granted)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil
		}
		return err
	})
	if err != nil {
		return false, failed(err, what)
	}
	return granted, nil
}

// FireStarted implements workflow.ScheduleStore.
func (s *Store) FireStarted(ctx context.Context, wf string, at time.Time) error {
	what := fmt.Sprintf("note the start of the fire at %s of workflow %q", at.UTC().Format(time.RFC3339Nano), wf)
	if err := checkWorkflowName(wf); err != nil {
		return failed(err, what)
	}
	if err := s.begin(ctx); err != nil {
		return failed(err, what)
	}
	defer s.leave()
	err := s.retry(ctx, func(int) error {
		_, err := s.pool.Exec(ctx, s.sql.fireStarted, wf, at.UnixNano())
		return err
	})
	if err != nil {
		return failed(err, what)
	}
	return nil
}

// SetPaused implements workflow.ScheduleStore: the pause holds for every
// replica, and past restarts, until unpaused.
func (s *Store) SetPaused(ctx context.Context, wf string, paused bool) error {
	what := fmt.Sprintf("set the pause of workflow %q", wf)
	if err := checkWorkflowName(wf); err != nil {
		return failed(err, what)
	}
	if err := s.begin(ctx); err != nil {
		return failed(err, what)
	}
	defer s.leave()
	err := s.retry(ctx, func(int) error {
		_, err := s.pool.Exec(ctx, s.sql.setPaused, wf, paused)
		return err
	})
	if err != nil {
		return failed(err, what)
	}
	return nil
}

// Paused implements workflow.ScheduleStore.
func (s *Store) Paused(ctx context.Context, wf string) (bool, error) {
	var paused bool
	err := s.readSchedule(ctx, wf, "read the pause", s.sql.paused, &paused)
	return paused, err
}

// LastFire implements workflow.ScheduleStore.
func (s *Store) LastFire(ctx context.Context, wf string) (time.Time, error) {
	var last *int64
	if err := s.readSchedule(ctx, wf, "read the last fire", s.sql.lastFire, &last); err != nil {
		return time.Time{}, err
	}
	if last == nil {
		return time.Time{}, nil
	}
	return time.Unix(0, *last).UTC(), nil
}

// readSchedule reads one column of wf's schedule into dst, left as it is
// for a workflow with no schedule row.
func (s *Store) readSchedule(ctx context.Context, wf, what, query string, dst any) error {
	what = fmt.Sprintf("%s of workflow %q", what, wf)
	if err := checkWorkflowName(wf); err != nil {
		return failed(err, what)
	}
	if err := s.begin(ctx); err != nil {
		return failed(err, what)
	}
	defer s.leave()
	err := s.retry(ctx, func(int) error {
		err := s.pool.QueryRow(ctx, query, wf).Scan(dst)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil
		}
		return err
	})
	if err != nil {
		return failed(err, what)
	}
	return nil
}

// checkWorkflowName refuses a name a text column cannot hold.
func checkWorkflowName(wf string) error {
	if wf == "" || !storable(wf) {
		return fmt.Errorf("%w: a workflow name must be valid UTF-8 without NUL, and not empty", workflow.ErrInvalidInput)
	}
	return nil
}
