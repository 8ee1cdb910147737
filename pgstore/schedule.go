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
	// claim's ID): it moves last_fire forward, and returns a row, only for
	// a fire later than the latest claimed. The row lock of ON CONFLICT DO
	// UPDATE makes concurrent claims of one fire wait for each other, and
	// all but the first find last_fire no longer earlier. A claim whose
	// answer was lost, sent again, finds its own ID and is granted again.
	claimFireSQL = `INSERT INTO {s}.schedules AS s (workflow, last_fire, claim, claimed_at)
VALUES ($1, $2, $3, clock_timestamp())
ON CONFLICT (workflow) DO UPDATE SET last_fire = EXCLUDED.last_fire, claim = EXCLUDED.claim, claimed_at = EXCLUDED.claimed_at
WHERE s.last_fire IS NULL OR s.last_fire < EXCLUDED.last_fire OR s.last_fire = EXCLUDED.last_fire AND s.claim = EXCLUDED.claim
RETURNING true`
	setPausedSQL = `INSERT INTO {s}.schedules (workflow, paused) VALUES ($1, $2)
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
	what := fmt.Sprintf("claim the fire at %s of workflow %q", at.UTC().Format(time.RFC3339Nano), wf)
	if err := checkWorkflowName(wf); err != nil {
		return false, failed(err, what)
	}
	if err := s.begin(ctx); err != nil {
		return false, failed(err, what)
	}
	defer s.leave()
	claim := fmt.Sprintf("%s/%d", s.owner, claims.Add(1))
	var granted bool
	err := s.retry(ctx, func(int) error {
		granted = false
		err := s.pool.QueryRow(ctx, s.sql.claimFire, wf, at.UnixNano(), claim).Scan(&granted)
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
