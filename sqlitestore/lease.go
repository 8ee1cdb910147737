package sqlitestore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/b3b01171/workflow"
)

// Reopen implements workflow.Store: it takes the run's lease in one
// statement, which succeeds for one caller only, whatever the processes:
// when the run has no owner, when its owner's lease has expired, or when
// this handle owns it but no Recorder of it is open. It wraps
// workflow.ErrNotFound for an unknown run and workflow.ErrNotResumable for
// a run another owner (another process, or a Recorder of this handle)
// holds.
func (s *Store) Reopen(ctx context.Context, workflowName, runID string) (workflow.Recorder, error) {
	return s.take(ctx, "reopen", s.ws.claim, workflowName, runID)
}

// ClaimOrphan implements workflow.OrphanClaimer: it is Reopen for a run
// that is pending, running or interrupted, in the same statement, so that
// a run another process resumed and ended after Orphans listed it is
// refused (workflow.ErrNotResumable), whoever owns it.
func (s *Store) ClaimOrphan(ctx context.Context, workflowName, runID string) (workflow.Recorder, error) {
	return s.take(ctx, "claim orphan", s.ws.claimOrphan, workflowName, runID)
}

var _ workflow.OrphanClaimer = (*Store)(nil)

// take is Reopen and ClaimOrphan: claim is the statement that takes the
// lease, or takes no row.
func (s *Store) take(ctx context.Context, verb string, claim *sql.Stmt, workflowName, runID string) (workflow.Recorder, error) {
	what := fmt.Sprintf("%s run %q of workflow %q", verb, runID, workflowName)
	if err := s.begin(ctx); err != nil {
		return nil, beginFailed(err, what)
	}
	defer s.leave()
	fail := func(err error) (workflow.Recorder, error) {
		return nil, fmt.Errorf("sqlitestore: %s: %w", what, err)
	}
	key := runKey{workflowName, runID}
	r := &recorder{s: s, key: key}
	s.omu.Lock()
	if s.open[key] != nil {
		s.omu.Unlock()
		return fail(fmt.Errorf("%w: it is under way in this store handle", workflow.ErrNotResumable))
	}
	s.open[key] = r // reserved: a second Reopen in this handle is refused
	s.omu.Unlock()

	s.wmu.Lock()
	now := time.Now()
	until := now.Add(s.cfg.leaseTTL).UnixNano()
	err := s.write(ctx, func() error {
		err := claim.QueryRowContext(ctx, s.owner, until, int64(s.cfg.leaseTTL), workflowName, runID, now.UnixNano()).Scan(&r.seq)
		if errors.Is(err, sql.ErrNoRows) {
			return s.whyNotClaimed(ctx, workflowName, runID, now)
		}
		if err != nil {
			return err
		}
		return r.load(ctx)
	})
	if err == nil {
		r.held = true
		r.validUntil.Store(until)
	}
	s.wmu.Unlock()
	if err != nil {
		s.omu.Lock()
		delete(s.open, key)
		s.omu.Unlock()
		return fail(err)
	}
	return r, nil
}

// whyNotClaimed is the error of a claim that took no row, in its write
// transaction: the run is unknown, has ended (for ClaimOrphan), or
// another owner holds it.
func (s *Store) whyNotClaimed(ctx context.Context, workflowName, runID string, now time.Time) error {
	var (
		owner sql.NullString
		lease sql.NullInt64
		state workflow.State
	)
	switch err := s.ws.leaseOf.QueryRowContext(ctx, workflowName, runID).Scan(&owner, &lease, &state); {
	case errors.Is(err, sql.ErrNoRows):
		return workflow.ErrNotFound
	case err != nil:
		return err
	case state.Ended() && !(owner.Valid && lease.Int64 >= now.UnixNano()):
		return fmt.Errorf("%w: it has ended (%s)", workflow.ErrNotResumable, state)
	}
	return fmt.Errorf("%w: %s owns it, and its lease runs until %s", workflow.ErrNotResumable,
		owner.String, fromNanos(lease).Format(time.RFC3339Nano))
}

// Orphans implements workflow.Store: the runs of the workflow that are
// pending, running or interrupted and whose owner's lease has expired (or
// that have no owner), oldest created first.
func (s *Store) Orphans(ctx context.Context, workflowName string) ([]string, error) {
	if err := s.begin(ctx); err != nil {
		return nil, beginFailed(err, "orphans")
	}
	defer s.leave()
	rows, err := s.rs.orphans.QueryContext(ctx, workflowName, time.Now().UnixNano())
	if err != nil {
		return nil, fmt.Errorf("sqlitestore: orphans of workflow %q: %w", workflowName, err)
	}
	defer rows.Close()
	var ids []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, fmt.Errorf("sqlitestore: orphans of workflow %q: %w", workflowName, err)
		}
		ids = append(ids, id)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlitestore: orphans of workflow %q: %w", workflowName, err)
	}
	return ids, nil
}

// background extends the leases of this handle every LeaseTTL/3, and
// checkpoints the file when the writer asks, until Close.
func (s *Store) background() {
	defer close(s.done)
	t := time.NewTicker(s.cfg.leaseTTL / 3)
	defer t.Stop()
	for {
		select {
		case <-s.stopCx.Done():
			return
		case <-t.C:
			s.renewOnce(s.stopCx)
		case <-s.ckpt:
			// PASSIVE: copy what it can of the WAL into the file without
			// waiting for, or blocking, readers and writers. An error
			// (another process checkpointing) waits for the next time.
			s.cc.ExecContext(s.stopCx, "PRAGMA wal_checkpoint(PASSIVE)")
		}
	}
}

// renewOnce extends the leases this handle holds. A failure (the file
// busy for longer than the busy timeout) is left for the next tick: the
// lease outlives two of them.
func (s *Store) renewOnce(ctx context.Context) {
	s.omu.Lock()
	n := len(s.open)
	s.omu.Unlock()
	if n == 0 {
		return
	}
	s.wmu.Lock()
	defer s.wmu.Unlock()
	until := time.Now().Add(s.cfg.leaseTTL).UnixNano()
	renewed := map[int64]bool{}
	err := s.write(ctx, func() error {
		rows, err := s.ws.renew.QueryContext(ctx, until, s.owner)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var seq int64
			if err := rows.Scan(&seq); err != nil {
				return err
			}
			renewed[seq] = true
		}
		return rows.Err()
	})
	if err != nil {
		return
	}
	s.omu.Lock()
	defer s.omu.Unlock()
	for _, r := range s.open {
		if renewed[r.seq] {
			r.validUntil.Store(until)
		}
	}
}

// retain drops the runs of the workflow that MaxRuns and MaxAge leave out:
// ended, and either older than the newest MaxRuns or ended more than
// MaxAge ago. A run whose lease is live (reopened, about to go on) is
// kept. It runs in the write transaction that created or ended a run.
func (s *Store) retain(ctx context.Context, workflowName string, now time.Time) error {
	maxRuns, maxAge := s.cfg.maxRuns, s.cfg.maxAge
	if maxRuns <= 0 && maxAge <= 0 {
		return nil
	}
	ws := &s.ws
	var drop []int64
	collect := func(rows *sql.Rows, err error) error {
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var seq int64
			if err := rows.Scan(&seq); err != nil {
				return err
			}
			drop = append(drop, seq)
		}
		return rows.Err()
	}
	if maxRuns > 0 {
		var bound int64 // the oldest of the newest maxRuns runs
		switch err := ws.keepFrom.QueryRowContext(ctx, workflowName, maxRuns-1).Scan(&bound); {
		case errors.Is(err, sql.ErrNoRows): // fewer runs than that
		case err != nil:
			return err
		default:
			if err := collect(ws.tooMany.QueryContext(ctx, workflowName, bound, now.UnixNano())); err != nil {
				return err
			}
		}
	}
	if maxAge > 0 {
		if err := collect(ws.tooOld.QueryContext(ctx, workflowName, now.Add(-maxAge).UnixNano(), now.UnixNano())); err != nil {
			return err
		}
	}
	for _, seq := range drop {
		for _, st := range []*sql.Stmt{ws.delEvent, ws.delTask, ws.delRun} {
			if _, err := st.ExecContext(ctx, seq); err != nil {
				return err
			}
		}
	}
	return nil
}
