package sqlitestore

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/b3b01171/workflow"
	_ "modernc.org/sqlite" // the "sqlite" database/sql driver, pure Go
)

// ErrClosed is wrapped by the error of every method of a Store called after
// Close, and of Append to a run recorded through it.
var ErrClosed = errors.New("sqlitestore: store is closed")

// ErrLeaseLost is wrapped by the error of an Append to a run whose lease
// this handle no longer holds: it expired (the process was silent for
// longer than its LeaseTTL) and another process took the run over. Nothing
// of the batch is written, and the run goes on in the other process.
var ErrLeaseLost = errors.New("lease lost")

// Store is a workflow.Store in a SQLite file, for runs that outlive the
// process: Resume and Recover work in any process that opens the same
// file. Several processes may open one file at once; each handle owns the
// runs it created or reopened through a lease that it renews while it is
// open. A Store is safe for concurrent use.
type Store struct {
	path  string
	cfg   config
	owner string // this handle's ID in the runs it owns

	// life guards closed: every method holds it for reading, Close for
	// writing, so that Close waits for the calls under way.
	life   sync.RWMutex
	closed bool

	// wmu serializes the write connection: one transaction at a time.
	wmu sync.Mutex
	w   *sql.Conn
	ws  writeStmts
	wdb *sql.DB
	rdb *sql.DB
	rs  readStmts
	cc  *sql.Conn // of rdb, kept for checkpoints, so that reads never delay them

	// omu guards open: the recorders of this handle that hold their run's
	// lease, and those being reopened.
	omu  sync.Mutex
	open map[runKey]*recorder

	commits int // write transactions committed; under wmu

	// qmu guards queue, the batches waiting to be written, and writing:
	// whether a caller is writing them (see commit).
	qmu     sync.Mutex
	queue   []*appendReq
	spare   []*appendReq
	writing bool

	ckpt   chan struct{} // asks the background goroutine for a checkpoint
	stop   context.CancelFunc
	stopCx context.Context
	done   chan struct{} // closed when the background goroutine returns
}

// checkpointEvery is how many commits go by between checkpoints, which
// the background goroutine does: the writer never waits for one (they
// fsync the file). walLimit, in pages, is where the writer checkpoints
// itself, should the background lag far behind.
const (
	checkpointEvery = 512
	walLimit        = 20000
)

type runKey struct{ workflow, runID string }

var _ workflow.Store = (*Store)(nil)

// Open opens the store in the SQLite file at path, creating the file if
// need be, or bringing an older schema up to date. It refuses a file
// written by a newer version of this package, and a file that is not such
// a store. Call Close when done.
func Open(path string, opts ...Option) (*Store, error) {
	cfg := defaults()
	for _, o := range opts {
		if o != nil {
			o(&cfg)
		}
	}
	fail := func(err error) (*Store, error) {
		return nil, fmt.Errorf("sqlitestore: open %s: %w", path, err)
	}
	switch {
	case path == "":
		return nil, fmt.Errorf("sqlitestore: open: %w: the path is empty", workflow.ErrInvalidInput)
	case path == ":memory:" || strings.HasPrefix(path, "file:"):
		return fail(fmt.Errorf("%w: give the path of a file", workflow.ErrInvalidInput))
	case cfg.leaseTTL <= 0:
		return fail(fmt.Errorf("%w: LeaseTTL(%v): the lease needs a positive duration", workflow.ErrInvalidInput, cfg.leaseTTL))
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return fail(err)
	}
	if fi, err := os.Stat(abs); err == nil && fi.IsDir() {
		return fail(fmt.Errorf("%w: it is a directory", workflow.ErrInvalidInput))
	}
	id, err := ownerID()
	if err != nil {
		return fail(err)
	}
	s := &Store{path: path, cfg: cfg, owner: id, open: map[runKey]*recorder{},
		ckpt: make(chan struct{}, 1), done: make(chan struct{})}
	if err := s.connect(abs); err != nil {
		s.closeDBs()
		return fail(err)
	}
	s.stopCx, s.stop = context.WithCancel(context.Background())
	go s.background()
	return s, nil
}

// dsn is the URI of the file at abs with the pragmas every connection
// needs: WAL, so that readers and the writer of several processes go on at
// once; a busy timeout, so that writers wait for each other. The writer
// leaves checkpoints to the background goroutine, up to walLimit.
func dsn(abs string, writer bool) string {
	p := strings.NewReplacer("%", "%25", "?", "%3f", "#", "%23").Replace(filepath.ToSlash(abs))
	q := url.Values{"_pragma": {"busy_timeout(10000)", "journal_mode(WAL)", "synchronous(NORMAL)"}}
	if writer {
		q["_pragma"] = append(q["_pragma"], fmt.Sprintf("wal_autocheckpoint(%d)", walLimit))
	}
	return "file:" + p + "?" + q.Encode()
}

func (s *Store) connect(abs string) error {
	ctx := context.Background()
	var err error
	if s.wdb, err = sql.Open("sqlite", dsn(abs, true)); err != nil {
		return err
	}
	s.wdb.SetMaxOpenConns(1)
	if s.w, err = s.wdb.Conn(ctx); err != nil {
		return err
	}
	var mode string
	if err := s.w.QueryRowContext(ctx, "PRAGMA journal_mode").Scan(&mode); err != nil {
		return err
	}
	if !strings.EqualFold(mode, "wal") {
		// Without WAL, readers and writers of several processes would
		// block each other: a file system without shared memory.
		return fmt.Errorf("journal mode is %s, not wal: put the file on a local file system", mode)
	}
	if err := migrate(ctx, s.w); err != nil {
		return err
	}
	if err := s.ws.prepare(ctx, s.w); err != nil {
		return err
	}
	if s.rdb, err = sql.Open("sqlite", dsn(abs, false)); err != nil {
		return err
	}
	s.rdb.SetMaxOpenConns(5)
	s.rdb.SetMaxIdleConns(5)
	if s.cc, err = s.rdb.Conn(ctx); err != nil {
		return err
	}
	return s.rs.prepare(ctx, s.rdb)
}

func (s *Store) closeDBs() error {
	var errs []error
	s.ws.close()
	s.rs.close()
	if s.w != nil {
		errs = append(errs, s.w.Close())
	}
	if s.cc != nil {
		errs = append(errs, s.cc.Close())
	}
	if s.wdb != nil {
		errs = append(errs, s.wdb.Close())
	}
	if s.rdb != nil {
		errs = append(errs, s.rdb.Close())
	}
	return errors.Join(errs...)
}

// ownerID names this handle in the leases it holds: host and process, to
// tell a reader who holds a run, and random bits, to tell handles apart.
func ownerID() (string, error) {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	host, _ := os.Hostname()
	return fmt.Sprintf("%s/%d/%s", host, os.Getpid(), hex.EncodeToString(b[:])), nil
}

// Close stops renewing the leases of this handle and closes the file. It
// leaves the runs this handle owns to their leases, which expire after
// LeaseTTL: only then may another process's Recover take them over. Close
// waits for the calls under way; every call after it fails with an error
// wrapping ErrClosed.
func (s *Store) Close() error {
	s.life.Lock()
	if s.closed {
		s.life.Unlock()
		return fmt.Errorf("%w: close %s", ErrClosed, s.path)
	}
	s.closed = true
	s.life.Unlock()
	s.stop()
	<-s.done
	if err := s.closeDBs(); err != nil {
		return fmt.Errorf("sqlitestore: close %s: %w", s.path, err)
	}
	return nil
}

// enter starts a call: it reports false once the store is closed. The
// caller calls s.leave when done if it returns true.
func (s *Store) enter() bool {
	s.life.RLock()
	if s.closed {
		s.life.RUnlock()
		return false
	}
	return true
}

func (s *Store) leave() { s.life.RUnlock() }

// begin starts a call: it fails once the store is closed, or for a nil
// context. The caller calls s.leave when it returns nil, and else returns
// beginFailed(err, what it was doing).
func (s *Store) begin(ctx context.Context) error {
	if ctx == nil {
		return errNilContext
	}
	if !s.enter() {
		return ErrClosed
	}
	return nil
}

var errNilContext = fmt.Errorf("%w: nil context", workflow.ErrInvalidInput)

func beginFailed(err error, what string) error {
	if errors.Is(err, ErrClosed) {
		return fmt.Errorf("%w: %s", ErrClosed, what)
	}
	return fmt.Errorf("sqlitestore: %s: %w", what, err)
}

// Persistent implements workflow.Store: the runs outlive the process.
func (s *Store) Persistent() bool { return true }

// write runs f in a write transaction (BEGIN IMMEDIATE, so that writers of
// other processes wait for each other instead of failing), and commits it
// if f returns nil. The caller holds s.wmu.
func (s *Store) write(ctx context.Context, f func() error) error {
	if _, err := s.ws.begin.ExecContext(ctx); err != nil {
		return err
	}
	if err := f(); err != nil {
		s.ws.rollback.ExecContext(context.Background())
		return err
	}
	if _, err := s.ws.commit.ExecContext(ctx); err != nil {
		s.ws.rollback.ExecContext(context.Background())
		return err
	}
	if s.commits++; s.commits%checkpointEvery == 0 {
		select {
		case s.ckpt <- struct{}{}:
		default:
		}
	}
	return nil
}

// read runs f in a read transaction: one snapshot of the file, whatever
// the writers do meanwhile.
func (s *Store) read(ctx context.Context, f func(tx *sql.Tx) error) error {
	tx, err := s.rdb.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return err
	}
	defer tx.Rollback()
	return f(tx)
}

// Create implements workflow.Store. It records run as it is given (its
// tasks, events and input included) and takes the lease on it unless it
// has ended or is interrupted. A run ID the workflow already has is
// refused.
func (s *Store) Create(ctx context.Context, run workflow.RunStatus) (workflow.Recorder, error) {
	if run.Workflow == "" || run.RunID == "" {
		return nil, fmt.Errorf("sqlitestore: create run: %w: a run needs a workflow name and a run ID", workflow.ErrInvalidInput)
	}
	if err := s.begin(ctx); err != nil {
		return nil, beginFailed(err, "create")
	}
	defer s.leave()
	r := newRecorder(s, run)
	take := !run.State.Ended() && run.State != workflow.StateInterrupted
	key := runKey{run.Workflow, run.RunID}
	if take {
		// Reserve the key: Reopen in this handle is refused from now on.
		s.omu.Lock()
		if s.open[key] != nil {
			s.omu.Unlock()
			return nil, fmt.Errorf("sqlitestore: create run %q of workflow %q: %w", run.RunID, run.Workflow, workflow.ErrDuplicateRun)
		}
		s.open[key] = r
		s.omu.Unlock()
	}
	s.wmu.Lock()
	now := time.Now()
	err := s.write(ctx, func() error { return r.insert(ctx, &run, take, now) })
	s.wmu.Unlock()
	if err != nil {
		if take {
			s.omu.Lock()
			delete(s.open, key)
			s.omu.Unlock()
		}
		return nil, fmt.Errorf("sqlitestore: create run %q of workflow %q: %w", run.RunID, run.Workflow, err)
	}
	if take {
		r.held = true
		r.validUntil.Store(now.Add(s.cfg.leaseTTL).UnixNano())
	}
	return r, nil
}

// Workflows implements workflow.Store.
func (s *Store) Workflows(ctx context.Context) ([]string, error) {
	if err := s.begin(ctx); err != nil {
		return nil, beginFailed(err, "workflows")
	}
	defer s.leave()
	names := []string{}
	rows, err := s.rs.workflows.QueryContext(ctx)
	if err != nil {
		return nil, fmt.Errorf("sqlitestore: workflows: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			return nil, fmt.Errorf("sqlitestore: workflows: %w", err)
		}
		names = append(names, name)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlitestore: workflows: %w", err)
	}
	return names, nil
}

// nanos is t as stored: unix nanoseconds, NULL for the zero time.
func nanos(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t.UnixNano()
}

// fromNanos is the inverse of nanos, in UTC.
func fromNanos(n sql.NullInt64) time.Time {
	if !n.Valid {
		return time.Time{}
	}
	return time.Unix(0, n.Int64).UTC()
}
