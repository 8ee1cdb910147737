package pgstore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

// retryFor bounds how long a call goes on retrying after losing its
// connection to the database; the backoff between attempts starts at
// retryFirst and doubles up to retryMax.
const (
	retryFor   = 10 * time.Second
	retryFirst = 50 * time.Millisecond
	retryMax   = time.Second
)

// retry calls f until it succeeds, fails for a reason other than a lost
// connection, retryFor has passed, ctx ends or the Store closes. attempt
// counts from 1: f must be idempotent, and tell from attempt > 1 that an
// earlier attempt may have been committed before its connection was lost.
func (s *Store) retry(ctx context.Context, f func(attempt int) error) error {
	start := time.Now()
	wait := retryFirst
	for attempt := 1; ; attempt++ {
		err := f(attempt)
		if err == nil || !transient(err) || ctx.Err() != nil {
			return err
		}
		if time.Since(start)+wait > retryFor {
			return fmt.Errorf("the database could not be reached for %v (%d attempts): %w",
				time.Since(start).Round(time.Millisecond), attempt, err)
		}
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return err
		case <-s.stopCx.Done():
			t.Stop()
			return err
		}
		wait = min(2*wait, retryMax)
	}
}

// transient reports whether err is a lost or refused connection, or a
// transaction the server rolled back for a reason that retrying may
// remove: the statement may be sent again.
func transient(err error) bool {
	if err == nil || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch {
		case strings.HasPrefix(pgErr.Code, "08"): // connection exception
			return true
		case pgErr.Code == "57P01", pgErr.Code == "57P02", pgErr.Code == "57P03": // shutdown, cannot connect now
			return true
		case pgErr.Code == "40001", pgErr.Code == "40P01": // serialization failure, deadlock: rolled back
			return true
		case pgErr.Code == "53300": // too many connections
			return true
		}
		return false
	}
	var connErr *pgconn.ConnectError
	var netErr net.Error
	return pgconn.SafeToRetry(err) || errors.As(err, &connErr) || errors.As(err, &netErr) ||
		errors.Is(err, pgconn.ErrConnClosed) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF)
}
