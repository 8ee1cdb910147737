package pgstore_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/b3b01171/workflow"
	"github.com/b3b01171/workflow/pgstore"
)

// dsnEnv names the variable that holds the DSN of the test server:
// .ci/postgres.sh starts one and sets it.
const dsnEnv = "WORKFLOW_TEST_PG_DSN"

func TestMain(m *testing.M) {
	code := m.Run()
	if adminPool != nil {
		adminPool.Close()
	}
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "goleak:", err)
			code = 1
		}
	}
	os.Exit(code)
}

// testDSN is the DSN of the test server. Without one the test is skipped,
// or fails in CI, where .ci/run starts the server.
func testDSN(t testing.TB) string {
	t.Helper()
	dsn := os.Getenv(dsnEnv)
	if dsn == "" {
		if os.Getenv("CI") != "" {
			t.Fatalf("%s is empty: .ci/run starts PostgreSQL (source .ci/postgres.sh) and sets it; pgstore's tests need it in CI", dsnEnv)
		}
		t.Skipf("%s is not set: from the repository's root, `source .ci/postgres.sh` starts a throwaway PostgreSQL and sets it", dsnEnv)
	}
	return dsn
}

var (
	adminOnce sync.Once
	adminPool *pgxpool.Pool
	adminErr  error
)

// admin is a pool on the test database shared by the tests, to do what a
// store never does, and for the stores made with New.
func admin(t testing.TB) *pgxpool.Pool {
	t.Helper()
	dsn := testDSN(t)
	adminOnce.Do(func() {
		cfg, err := pgxpool.ParseConfig(dsn)
		if err != nil {
			adminErr = err
			return
		}
		cfg.MaxConns = 8
		adminPool, adminErr = pgxpool.NewWithConfig(context.Background(), cfg)
	})
	require.NoError(t, adminErr)
	return adminPool
}

// newSchema is the name of a new schema, dropped when the test ends.
func newSchema(t testing.TB) string {
	t.Helper()
	var b [6]byte
	rand.Read(b[:])
	name := "wft_" + hex.EncodeToString(b[:])
	pool := admin(t)
	t.Cleanup(func() {
		_, err := pool.Exec(context.Background(), "DROP SCHEMA IF EXISTS "+pgx.Identifier{name}.Sanitize()+" CASCADE")
		if err != nil {
			t.Errorf("drop schema %s: %v", name, err)
		}
	})
	return name
}

// open opens a Store with its own pool on schema, closed when the test
// ends.
func open(t testing.TB, schema string, opts ...pgstore.Option) *pgstore.Store {
	t.Helper()
	s, err := pgstore.Open(context.Background(), testDSN(t), append([]pgstore.Option{pgstore.Schema(schema)}, opts...)...)
	require.NoError(t, err)
	t.Cleanup(func() { s.Close() })
	return s
}

// testURL is the DSN of database on the server at hostPort, with the
// credentials of cfg, the test server's.
func testURL(cfg *pgx.ConnConfig, hostPort, database string) string {
	u := url.URL{Scheme: "postgres", User: url.User(cfg.User), Host: hostPort, Path: "/" + database, RawQuery: "sslmode=disable"}
	if cfg.Password != "" {
		u.User = url.UserPassword(cfg.User, cfg.Password)
	}
	return u.String()
}

// rawLease reads the lease of a run, as the database holds it.
func rawLease(t testing.TB, schema, runID string) (owner *string, until *time.Time) {
	t.Helper()
	err := admin(t).QueryRow(context.Background(),
		`SELECT owner, lease_until FROM `+pgx.Identifier{schema}.Sanitize()+`.runs WHERE run_id = $1`, runID).Scan(&owner, &until)
	require.NoError(t, err)
	return owner, until
}

// eventually polls cond until it holds, failing the test after a deadline.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func orphans(t *testing.T, s workflow.Store, wf string) []string {
	t.Helper()
	ids, err := s.Orphans(context.Background(), wf)
	require.NoError(t, err)
	return ids
}

// newRun is a run as the engine creates it: pending, every task pending.
func newRun(workflowName, id string, tasks ...string) workflow.RunStatus {
	rs := workflow.RunStatus{RunID: id, Workflow: workflowName, State: workflow.StatePending, Trigger: "manual"}
	for _, name := range tasks {
		rs.Tasks = append(rs.Tasks, workflow.TaskStatus{Name: name, State: workflow.StatePending})
	}
	return rs
}

// clock hands out event times one millisecond apart, as time.Now does.
type clock struct{ at time.Time }

func newClock() *clock { return &clock{at: time.Now()} }

func (c *clock) next() time.Time {
	c.at = c.at.Add(time.Millisecond)
	return c.at
}

// runEntry and taskEntry build entries as the engine hands them over.
func (c *clock) runEntry(id, typ string, errText string, input []byte) workflow.Entry {
	return workflow.Entry{
		Event:   workflow.Event{Time: c.next(), RunID: id, Type: typ, Error: errText},
		Index:   -1,
		Payload: workflow.Payload{Data: input},
	}
}

func (c *clock) taskEntry(id string, index int, task, typ string, attempt int, errText string, output []byte) workflow.Entry {
	return workflow.Entry{
		Event:   workflow.Event{Time: c.next(), RunID: id, Task: task, Type: typ, Attempt: attempt, Error: errText},
		Index:   index,
		Payload: workflow.Payload{Data: output},
	}
}

// normal is rs with its times in UTC and without monotonic readings, for
// comparing runs as two stores give them.
func normal(rs workflow.RunStatus) workflow.RunStatus {
	utc := func(t time.Time) time.Time {
		if t.IsZero() {
			return time.Time{}
		}
		return t.UTC()
	}
	rs.ScheduledAt, rs.StartedAt, rs.EndedAt = utc(rs.ScheduledAt), utc(rs.StartedAt), utc(rs.EndedAt)
	rs.Tasks = slices.Clone(rs.Tasks)
	for i := range rs.Tasks {
		rs.Tasks[i].StartedAt, rs.Tasks[i].EndedAt = utc(rs.Tasks[i].StartedAt), utc(rs.Tasks[i].EndedAt)
	}
	rs.Events = slices.Clone(rs.Events)
	for i := range rs.Events {
		rs.Events[i].Time = utc(rs.Events[i].Time)
	}
	if len(rs.Events) == 0 {
		rs.Events = nil
	}
	return rs
}

func ids(runs []workflow.RunStatus) []string {
	out := make([]string, len(runs))
	for i, rs := range runs {
		out[i] = rs.RunID
	}
	return out
}
