package sqlitestore

import (
	"context"
	"errors"
	"time"

	"github.com/b3b01171/workflow"
)

// appendReq is a batch waiting to be written.
type appendReq struct {
	ctx    context.Context
	r      *recorder
	batch  []workflow.Entry
	pos    []int
	change leaseChange
	err    error
	done   bool // written, or failed: err says
}

// commit writes a batch and returns once it is committed or has failed.
// Batches of different runs that come while a transaction is under way go
// together in the next one (group commit): a commit costs far more than
// the rows of a batch. One caller at a time is the writer: it writes what
// is queued, wakes the callers it wrote for, and hands the role to the
// first caller still queued. The caller holds q.r.mu, so that no other
// goroutine touches q.r until the request is done.
func (s *Store) commit(q *appendReq) error {
	if q.r.wake == nil {
		q.r.wake = make(chan struct{}, 1)
	}
	s.qmu.Lock()
	s.queue = append(s.queue, q)
	writer := !s.writing
	s.writing = true
	s.qmu.Unlock()
	if !writer {
		<-q.r.wake // done, or the writer's role handed over
		if q.done {
			return q.err
		}
	}
	s.qmu.Lock()
	group := s.queue
	s.queue = s.spare[:0]
	s.qmu.Unlock()

	s.wmu.Lock()
	s.writeGroup(group)
	s.wmu.Unlock()
	for _, g := range group {
		if g != q {
			g.r.wake <- struct{}{}
		}
	}

	s.qmu.Lock()
	clear(group)
	s.spare = group[:0]
	if len(s.queue) > 0 {
		s.queue[0].r.wake <- struct{}{} // the next writer
	} else {
		s.writing = false
	}
	s.qmu.Unlock()
	return q.err
}

// writeGroup writes the batches of group in one transaction. A batch whose
// context has ended, or whose lease was lost, fails alone, before anything
// of it is written; a failed write fails every batch of the group, and is
// rolled back. The statements run on no caller's context, so that one
// caller giving up never fails the others' batches. The caller holds
// s.wmu.
func (s *Store) writeGroup(group []*appendReq) {
	ctx := context.Background()
	err := s.write(ctx, func() error {
		now := time.Now()
		for _, q := range group {
			if q.err = q.ctx.Err(); q.err != nil {
				continue
			}
			c, err := q.r.check(ctx, now)
			if errors.Is(err, ErrLeaseLost) || errors.Is(err, workflow.ErrNotFound) {
				q.err = err
				continue
			}
			if err != nil {
				return err
			}
			if q.change, err = q.r.write(ctx, q.batch, q.pos, now, c); err != nil {
				q.r.stale = true
				return err
			}
		}
		return nil
	})
	for _, q := range group {
		switch {
		case err != nil && q.err == nil:
			q.err = err
			q.r.stale = true
		case err == nil && q.err == nil:
			q.r.settle(q.change)
		}
		q.done = true
	}
}
