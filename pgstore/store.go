package pgstore

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/b3b01171/workflow"
)

// ErrClosed is wrapped by the error of every method of a Store called after
// Close, and of Append to a run recorded through it.
var ErrClosed = errors.New("pgstore: store is closed")

// ErrLeaseLost is wrapped by the error of an Append to a run whose lease
// this Store no longer holds: it expired (the replica was silent for
// longer than its LeaseTTL) and another replica took the run over. Nothing
// of the batch is written, and the run goes on in the other replica.
var ErrLeaseLost = errors.New("lease lost")

// Store is a workflow.Store in a PostgreSQL database, shared by every
// replica that opens it: Resume and Recover work in any of them. Each Store
// owns the runs it created or reopened through a lease that it renews
// while it is open. A Store is safe for concurrent use.
type Store struct {
	pool    *pgxpool.Pool
	ownPool bool // made by Open: closed by Close
	cfg     config
	sql     statements
	owner   string // this Store's ID in the runs it owns

	// life guards closed: every method holds it for reading, Close for
	// writing, so that Close waits for the calls under way.
	life   sync.RWMutex
	closed bool

	// omu guards open: the recorders of this Store that hold their run's
	// lease, and those being created or reopened.
	omu  sync.Mutex
	open map[runKey]*recorder

	stop   context.CancelFunc
	stopCx context.Context // done on Close: the renewals and the retry waits stop
	done   chan struct{}   // closed when the renewing goroutine returns
}

type runKey struct{ workflow, runID string }

var _ workflow.Store = (*Store)(nil)

// connectTimeout bounds each attempt to connect, unless the DSN sets
// connect_timeout: Open fails promptly for a server that does not answer.
const connectTimeout = 5 * time.Second

// Open connects to the database of dsn (a URL, postgres://user@host/db, or
// key=value pairs, as pgx takes them), creates the schema or brings it up
// to date, and returns the Store; Close closes its connections. It fails
// within a few seconds, whatever ctx allows, for an unparsable DSN, a
// server that cannot be reached or a database that does not exist; it
// refuses a schema written by a newer version of this package.
func Open(ctx context.Context, dsn string, opts ...Option) (*Store, error) {
	if ctx == nil {
		return nil, fmt.Errorf("pgstore: open: %w", errNilContext)
	}
	pc, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("pgstore: open: %w: %v", workflow.ErrInvalidInput, err)
	}
	if pc.ConnConfig.ConnectTimeout <= 0 {
		pc.ConnConfig.ConnectTimeout = connectTimeout
	}
	if _, ok := pc.ConnConfig.RuntimeParams["application_name"]; !ok {
		pc.ConnConfig.RuntimeParams["application_name"] = "workflow-pgstore"
	}
	pool, err := pgxpool.NewWithConfig(ctx, pc)
	if err != nil {
		return nil, fmt.Errorf("pgstore: open: %w", err)
	}
	s, err := newStore(ctx, pool, true, opts)
	if err != nil {
		pool.Close()
		return nil, err
	}
	return s, nil
}

// New returns a Store on pool, the service's own, after creating the
// schema or bringing it up to date. Close leaves the pool open. It
// refuses a schema written by a newer version of this package.
func New(ctx context.Context, pool *pgxpool.Pool, opts ...Option) (*Store, error) {
	switch {
	case ctx == nil:
		return nil, fmt.Errorf("pgstore: new: %w", errNilContext)
	case pool == nil:
		return nil, fmt.Errorf("pgstore: new: %w: nil pool", workflow.ErrInvalidInput)
	}
	return newStore(ctx, pool, false, opts)
}

func newStore(ctx context.Context, pool *pgxpool.Pool, own bool, opts []Option) (*Store, error) {
	cfg := defaults()
	for _, o := range opts {
		if o != nil {
			o(&cfg)
		}
	}
	where := cfg.schema
	if own {
		c := pool.Config().ConnConfig
		where = fmt.Sprintf("%s (database %q on %s:%d)", cfg.schema, c.Database, c.Host, c.Port)
	}
	fail := func(err error) (*Store, error) {
		return nil, fmt.Errorf("pgstore: open schema %s: %w", where, err)
	}
	if err := checkSchemaName(cfg.schema); err != nil {
		return fail(fmt.Errorf("%w: %v", workflow.ErrInvalidInput, err))
	}
	if cfg.leaseTTL <= 0 {
		return fail(fmt.Errorf("%w: LeaseTTL(%v): the lease needs a positive duration", workflow.ErrInvalidInput, cfg.leaseTTL))
	}
	if cfg.leaseTTL < time.Microsecond {
		cfg.leaseTTL = time.Microsecond // the database keeps microseconds
	}
	// A server that does not answer fails the first connection within
	// connectTimeout (the pool's own, for New); the migration then runs
	// on ctx.
	if err := migrate(ctx, pool, cfg.schema); err != nil {
		return fail(err)
	}
	id, err := ownerID()
	if err != nil {
		return fail(err)
	}
	s := &Store{pool: pool, ownPool: own, cfg: cfg, owner: id, open: map[runKey]*recorder{}, done: make(chan struct{}),
		sql: newStatements(pgx.Identifier{cfg.schema}.Sanitize(), cfg)}
	s.stopCx, s.stop = context.WithCancel(context.Background())
	go s.renew()
	return s, nil
}

// ownerID names this Store in the leases it holds: host and process, to
// tell a reader who holds a run, and random bits, to tell Stores apart.
func ownerID() (string, error) {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	host, _ := os.Hostname()
	return fmt.Sprintf("%s/%d/%s", host, os.Getpid(), hex.EncodeToString(b[:])), nil
}

// Close stops renewing the leases of this Store and, for a Store made by
// Open, closes its connections. It leaves the runs this Store owns to
// their leases, which expire after LeaseTTL: only then may another
// replica's Recover take them over. Close waits for the calls under way;
// every call after it, and every Append to a run recorded through this
// Store, fails with an error wrapping ErrClosed.
func (s *Store) Close() error {
	s.stop() // first: the calls that wait to retry give up
	s.life.Lock()
	if s.closed {
		s.life.Unlock()
		return fmt.Errorf("%w: close", ErrClosed)
	}
	s.closed = true
	s.life.Unlock()
	<-s.done
	if s.ownPool {
		s.pool.Close()
	}
	return nil
}

// begin starts a call: it fails once the store is closed, or for a nil
// context. The caller calls s.leave when it returns nil.
func (s *Store) begin(ctx context.Context) error {
	if ctx == nil {
		return errNilContext
	}
	s.life.RLock()
	if s.closed {
		s.life.RUnlock()
		return ErrClosed
	}
	return nil
}

func (s *Store) leave() { s.life.RUnlock() }

var errNilContext = fmt.Errorf("%w: nil context", workflow.ErrInvalidInput)

// failed is the error of a call that could not do what: ErrClosed as it
// is, the others after "pgstore: ".
func failed(err error, what string) error {
	if errors.Is(err, ErrClosed) {
		return fmt.Errorf("%w: %s", ErrClosed, what)
	}
	return fmt.Errorf("pgstore: %s: %w", what, err)
}

// Persistent implements workflow.Store: the runs outlive the process.
func (s *Store) Persistent() bool { return true }

// Create implements workflow.Store. It records run as it is given (its
// tasks, events and input included), in one transaction, and takes the
// lease on it unless it has ended or is interrupted. A run ID the
// workflow already has is refused. Workflow names, run IDs and task names
// must be valid UTF-8 without NUL (PostgreSQL's text).
func (s *Store) Create(ctx context.Context, run workflow.RunStatus) (workflow.Recorder, error) {
	what := fmt.Sprintf("create run %q of workflow %q", run.RunID, run.Workflow)
	if run.Workflow == "" || run.RunID == "" {
		return nil, fmt.Errorf("pgstore: create run: %w: a run needs a workflow name and a run ID", workflow.ErrInvalidInput)
	}
	if err := s.begin(ctx); err != nil {
		return nil, failed(err, what)
	}
	defer s.leave()
	r, err := newRecorder(s, run)
	if err != nil {
		return nil, failed(err, what)
	}
	take := !run.State.Ended() && run.State != workflow.StateInterrupted
	key := r.key
	if take {
		// Reserve the key: Reopen in this Store is refused from now on.
		s.omu.Lock()
		if s.open[key] != nil {
			s.omu.Unlock()
			return nil, failed(workflow.ErrDuplicateRun, what)
		}
		s.open[key] = r
		s.omu.Unlock()
	}
	err = s.retry(ctx, func(attempt int) error { return r.insert(ctx, &run, take, attempt) })
	if err != nil {
		if take {
			s.omu.Lock()
			delete(s.open, key)
			s.omu.Unlock()
		}
		return nil, failed(err, what)
	}
	if take {
		r.setHeld(true)
	}
	return r, nil
}

// Workflows implements workflow.Store: the names in byte order, as Go
// sorts strings.
func (s *Store) Workflows(ctx context.Context) ([]string, error) {
	if err := s.begin(ctx); err != nil {
		return nil, failed(err, "workflows")
	}
	defer s.leave()
	var names []string
	err := s.retry(ctx, func(int) error {
		rows, _ := s.pool.Query(ctx, s.sql.workflows)
		var err error
		names, err = pgx.CollectRows(rows, pgx.RowTo[string])
		return err
	})
	if err != nil {
		return nil, failed(err, "workflows")
	}
	if names == nil {
		names = []string{}
	}
	return names, nil
}

// sendBatch sends b, one implicit transaction, and reads its results with
// each query's function, if any.
func (s *Store) sendBatch(ctx context.Context, b *pgx.Batch) error {
	return s.pool.SendBatch(ctx, b).Close()
}

// nanos is t as stored: unix nanoseconds, noTime for the zero time.
func nanos(t time.Time) int64 {
	if t.IsZero() {
		return noTime
	}
	return t.UnixNano()
}

// fromNanos is the inverse of nanos, in UTC.
func fromNanos(n int64) time.Time {
	if n == noTime {
		return time.Time{}
	}
	return time.Unix(0, n).UTC()
}

// bytesOf is s as a bytea: never NULL.
func bytesOf(s string) []byte {
	if s == "" {
		return []byte{}
	}
	return []byte(s)
}
