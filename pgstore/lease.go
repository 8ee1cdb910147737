package pgstore

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/b3b01171/workflow"
)

// Reopen implements workflow.Store: it takes the run's lease in one
// statement, which succeeds for one caller only, whatever the replicas:
// when the run has no owner, when its owner's lease has expired, or when
// this Store owns it but no Recorder of it is open. It wraps
// workflow.ErrNotFound for an unknown run and workflow.ErrNotResumable for
// a run another owner (another replica, or a Recorder of this Store)
// holds, or that another replica is taking at the same moment.
func (s *Store) Reopen(ctx context.Context, workflowName, runID string) (workflow.Recorder, error) {
	return s.take(ctx, "reopen", s.sql.claim, workflowName, runID)
}

// ClaimOrphan implements workflow.OrphanClaimer: it is Reopen for a run
// that is pending, running or interrupted, in the same statement, so that
// a run another replica resumed and ended after Orphans listed it is
// refused (workflow.ErrNotResumable), whoever owns it.
func (s *Store) ClaimOrphan(ctx context.Context, workflowName, runID string) (workflow.Recorder, error) {
	return s.take(ctx, "claim orphan", s.sql.claimRun, workflowName, runID)
}

var _ workflow.OrphanClaimer = (*Store)(nil)

// take is Reopen and ClaimOrphan: claim is the statement that takes the
// lease, or takes no row.
func (s *Store) take(ctx context.Context, verb, claim, workflowName, runID string) (workflow.Recorder, error) {
	what := fmt.Sprintf("%s run %q of workflow %q", verb, runID, workflowName)
	if err := s.begin(ctx); err != nil {
		return nil, failed(err, what)
	}
	defer s.leave()
	if !storable(workflowName) || !storable(runID) {
		return nil, failed(workflow.ErrNotFound, what)
	}
	key := runKey{workflowName, runID}
	r := &recorder{s: s, key: key}
	s.omu.Lock()
	if s.open[key] != nil {
		s.omu.Unlock()
		return nil, failed(fmt.Errorf("%w: it is under way in this store", workflow.ErrNotResumable), what)
	}
	s.open[key] = r // reserved: a second Reopen in this Store is refused
	s.omu.Unlock()

	err := s.retry(ctx, func(int) error {
		err := s.pool.QueryRow(ctx, claim, s.owner, s.ttlMicros(), workflowName, runID).Scan(&r.seq)
		if errors.Is(err, pgx.ErrNoRows) {
			return s.whyNotClaimed(ctx, workflowName, runID)
		}
		if err != nil {
			return err
		}
		return r.load(ctx)
	})
	if err != nil {
		s.omu.Lock()
		if s.open[key] == r {
			delete(s.open, key)
		}
		s.omu.Unlock()
		return nil, failed(err, what)
	}
	return r, nil
}

// whyNotClaimed is the error of a claim that took no row: the run is
// unknown, has ended (for ClaimOrphan), or someone else holds it.
func (s *Store) whyNotClaimed(ctx context.Context, workflowName, runID string) error {
	var (
		seq   int64
		owner *string
		until *time.Time
		live  bool
		state string
	)
	err := s.pool.QueryRow(ctx, s.sql.leaseOf, workflowName, runID).Scan(&seq, &owner, &until, &live, &state)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return workflow.ErrNotFound
	case err != nil:
		return err
	case live:
		return fmt.Errorf("%w: %s owns it, and its lease runs until %s", workflow.ErrNotResumable, *owner,
			until.UTC().Format(time.RFC3339Nano))
	case workflow.State(state).Ended():
		return fmt.Errorf("%w: it has ended (%s)", workflow.ErrNotResumable, state)
	}
	return fmt.Errorf("%w: another store is taking it over", workflow.ErrNotResumable)
}

// Orphans implements workflow.Store: the runs of the workflow that are
// pending, running or interrupted and whose owner's lease has expired, by
// the database's clock (or that have no owner), oldest created first.
// Listing them claims none: Reopen does, one run at a time.
func (s *Store) Orphans(ctx context.Context, workflowName string) ([]string, error) {
	what := fmt.Sprintf("orphans of workflow %q", workflowName)
	if err := s.begin(ctx); err != nil {
		return nil, failed(err, what)
	}
	defer s.leave()
	if !storable(workflowName) {
		return nil, nil
	}
	var ids []string
	err := s.retry(ctx, func(int) error {
		rows, _ := s.pool.Query(ctx, s.sql.orphans, workflowName)
		var err error
		ids, err = pgx.CollectRows(rows, pgx.RowTo[string])
		return err
	})
	if err != nil {
		return nil, failed(err, what)
	}
	return ids, nil
}

// renew extends the leases of this Store every LeaseTTL/3, until Close.
func (s *Store) renew() {
	defer close(s.done)
	t := time.NewTicker(s.cfg.leaseTTL / 3)
	defer t.Stop()
	for {
		select {
		case <-s.stopCx.Done():
			return
		case <-t.C:
			s.renewOnce(s.stopCx)
		}
	}
}

// renewOnce extends the leases of the recorders this Store holds, by the
// database's clock. A failure (the database out of reach) is left for the
// next tick: the lease outlives two of them.
func (s *Store) renewOnce(ctx context.Context) {
	s.omu.Lock()
	seqs := make([]int64, 0, len(s.open))
	for _, r := range s.open {
		if r.leased != 0 {
			seqs = append(seqs, r.leased)
		}
	}
	s.omu.Unlock()
	if len(seqs) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, s.cfg.leaseTTL/2)
	defer cancel()
	s.pool.Exec(ctx, s.sql.renew, s.owner, seqs)
}

// queueRetain queues, in the batch that creates or ends a run of the
// workflow, the statement that drops the runs MaxRuns and MaxAge leave
// out: ended, and either older than the newest MaxRuns or ended more than
// MaxAge ago. A run whose lease is live (reopened, about to go on) is
// kept.
func (s *Store) queueRetain(b *pgx.Batch, workflowName string) {
	if s.sql.retain == "" {
		return
	}
	args := []any{workflowName}
	if s.cfg.maxRuns > 0 {
		args = append(args, int64(s.cfg.maxRuns-1))
	}
	if s.cfg.maxAge > 0 {
		args = append(args, time.Now().Add(-s.cfg.maxAge).UnixNano())
	}
	b.Queue(s.sql.retain, args...)
}
