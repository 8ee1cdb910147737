package pgstore_test

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/b3b01171/workflow"
	"github.com/b3b01171/workflow/pgstore"
)

func TestOpenFailsPromptlyForABadDSNAnUnreachableServerOrAMissingDatabase(t *testing.T) {
	t.Parallel()
	dsn := testDSN(t)
	ctx := context.Background()
	cfg, err := pgx.ParseConfig(dsn)
	require.NoError(t, err)

	_, err = pgstore.Open(ctx, "postgres://%zz")
	require.ErrorIs(t, err, workflow.ErrInvalidInput)
	require.ErrorContains(t, err, "pgstore: open")

	// A port of the loopback that nothing listens on.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	start := time.Now()
	_, err = pgstore.Open(ctx, testURL(cfg, net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), "postgres"))
	require.Error(t, err)
	require.ErrorContains(t, err, "pgstore: open")
	require.Less(t, time.Since(start), 10*time.Second)

	start = time.Now()
	_, err = pgstore.Open(ctx, testURL(cfg, net.JoinHostPort(cfg.Host, strconv.Itoa(int(cfg.Port))), "no_such_database_here"))
	require.ErrorContains(t, err, `"no_such_database_here" does not exist`)
	require.Less(t, time.Since(start), 10*time.Second)
}

func TestOptionsAreChecked(t *testing.T) {
	t.Parallel()
	pool := admin(t)
	ctx := context.Background()
	for _, o := range []pgstore.Option{pgstore.Schema(""), pgstore.Schema(strings.Repeat("s", 64)), pgstore.Schema("a\x00b"),
		pgstore.LeaseTTL(0), pgstore.LeaseTTL(-time.Second)} {
		_, err := pgstore.New(ctx, pool, o)
		require.ErrorIs(t, err, workflow.ErrInvalidInput)
	}
	_, err := pgstore.New(ctx, nil)
	require.ErrorIs(t, err, workflow.ErrInvalidInput)
}

func TestNewLeavesThePoolOpenAndOpenClosesItsOwn(t *testing.T) {
	t.Parallel()
	schema := newSchema(t)
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, testDSN(t))
	require.NoError(t, err)
	defer pool.Close()
	s, err := pgstore.New(ctx, pool, pgstore.Schema(schema))
	require.NoError(t, err)
	_, err = s.Create(ctx, newRun("wf", "r1", "a"))
	require.NoError(t, err)
	require.NoError(t, s.Close())
	require.NoError(t, pool.Ping(ctx))
	var n int
	require.NoError(t, pool.QueryRow(ctx, `SELECT count(*) FROM `+pgx.Identifier{schema}.Sanitize()+`.runs`).Scan(&n))
	require.Equal(t, 1, n)
}

func TestEveryMethodAfterCloseFailsWithErrClosed(t *testing.T) {
	t.Parallel()
	schema := newSchema(t)
	ctx := context.Background()
	s, err := pgstore.Open(ctx, testDSN(t), pgstore.Schema(schema))
	require.NoError(t, err)
	rec, err := s.Create(ctx, newRun("wf", "r1", "a"))
	require.NoError(t, err)
	require.NoError(t, s.Close())
	c := newClock()
	require.ErrorIs(t, rec.Append(ctx, []workflow.Entry{c.runEntry("r1", workflow.EventRunStarted, "", []byte(`1`))}), pgstore.ErrClosed)
	_, err = s.Create(ctx, newRun("wf", "r2", "a"))
	require.ErrorIs(t, err, pgstore.ErrClosed)
	_, err = s.Reopen(ctx, "wf", "r1")
	require.ErrorIs(t, err, pgstore.ErrClosed)
	_, err = s.Orphans(ctx, "wf")
	require.ErrorIs(t, err, pgstore.ErrClosed)
	_, err = s.Get(ctx, "wf", "r1")
	require.ErrorIs(t, err, pgstore.ErrClosed)
	_, err = s.List(ctx, "wf", workflow.HistoryQuery{})
	require.ErrorIs(t, err, pgstore.ErrClosed)
	_, err = s.Workflows(ctx)
	require.ErrorIs(t, err, pgstore.ErrClosed)
	_, err = s.Payloads(ctx, "wf", "r1")
	require.ErrorIs(t, err, pgstore.ErrClosed)
	require.ErrorIs(t, s.Close(), pgstore.ErrClosed)
}

func TestANewerSchemaIsRefused(t *testing.T) {
	t.Parallel()
	schema := newSchema(t)
	ctx := context.Background()
	s := open(t, schema)
	require.NoError(t, s.Close())
	_, err := admin(t).Exec(ctx, `UPDATE `+pgx.Identifier{schema}.Sanitize()+`.schema_version SET version = 99`)
	require.NoError(t, err)
	_, err = pgstore.Open(ctx, testDSN(t), pgstore.Schema(schema))
	require.ErrorContains(t, err, fmt.Sprintf(`schema %q is at version 99, newer than this package's 5`, schema))
}

func TestASchemaHoldingOtherTablesOfTheSameNamesIsRefused(t *testing.T) {
	t.Parallel()
	schema := newSchema(t)
	ctx := context.Background()
	q := pgx.Identifier{schema}.Sanitize()
	_, err := admin(t).Exec(ctx, `CREATE SCHEMA `+q+`; CREATE TABLE `+q+`.runs (id int)`)
	require.NoError(t, err)
	_, err = pgstore.Open(ctx, testDSN(t), pgstore.Schema(schema))
	require.ErrorContains(t, err, "holds tables runs that this package did not create")
}

func TestReplicasStartingTogetherCreateTheSchemaOnce(t *testing.T) {
	t.Parallel()
	schema := newSchema(t)
	ctx := context.Background()
	const replicas = 6
	stores := make([]*pgstore.Store, replicas)
	errs := make([]error, replicas)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range replicas {
		wg.Go(func() {
			<-start
			stores[i], errs[i] = pgstore.Open(ctx, testDSN(t), pgstore.Schema(schema))
		})
	}
	close(start)
	wg.Wait()
	for i, err := range errs {
		require.NoError(t, err)
		defer stores[i].Close()
	}
	_, err := stores[0].Create(ctx, newRun("wf", "r1", "a"))
	require.NoError(t, err)
	_, err = stores[replicas-1].Create(ctx, newRun("wf", "r1", "a"))
	require.ErrorIs(t, err, workflow.ErrDuplicateRun)
	var version int
	require.NoError(t, admin(t).QueryRow(ctx, `SELECT version FROM `+pgx.Identifier{schema}.Sanitize()+`.schema_version`).Scan(&version))
	require.Equal(t, 5, version)
}

func TestAVersion2SchemaGainsTheEventsItem(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	schema := newSchema(t)
	s := open(t, schema)
	c := newClock()
	rec, err := s.Create(ctx, newRun("wf", "r1", "resize"))
	require.NoError(t, err)
	started := c.taskEntry("r1", 0, "resize", workflow.EventTaskStarted, 1, "", nil)
	require.NoError(t, rec.Append(ctx, []workflow.Entry{started}))
	require.NoError(t, s.Close())
	// Back to version 2: events had no item (nor runs parent_run_id).
	q := pgx.Identifier{schema}.Sanitize()
	_, err = admin(t).Exec(ctx, `ALTER TABLE `+q+`.events DROP COLUMN item; ALTER TABLE `+q+`.runs DROP COLUMN parent_run_id;
		UPDATE `+q+`.schema_version SET version = 2`)
	require.NoError(t, err)

	s = open(t, schema)
	rs, err := s.Get(ctx, "wf", "r1")
	require.NoError(t, err)
	events := func(evs ...workflow.Event) []workflow.Event { return normal(workflow.RunStatus{Events: evs}).Events }
	require.Equal(t, events(started.Event), normal(rs).Events, "an event of version 2 has Item 0")
	rec, err = s.Create(ctx, newRun("wf", "r2", "resize"))
	require.NoError(t, err)
	items := c.taskEntry("r2", 0, "resize", workflow.EventItemsStarted, 1, "", nil)
	items.Item = 100_000
	require.NoError(t, rec.Append(ctx, []workflow.Entry{items}))
	rs, err = s.Get(ctx, "wf", "r2")
	require.NoError(t, err)
	require.Equal(t, events(items.Event), normal(rs).Events, "an event written since keeps its Item")
	var version int
	require.NoError(t, admin(t).QueryRow(ctx, `SELECT version FROM `+q+`.schema_version`).Scan(&version))
	require.Equal(t, 5, version)
}

func TestAVersion4SchemaGainsTheRunsParentRunID(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	schema := newSchema(t)
	s := open(t, schema)
	_, err := s.Create(ctx, newRun("wf", "r1", "sub"))
	require.NoError(t, err)
	require.NoError(t, s.Close())
	// Back to version 4: runs had no parent_run_id.
	q := pgx.Identifier{schema}.Sanitize()
	_, err = admin(t).Exec(ctx, `ALTER TABLE `+q+`.runs DROP COLUMN parent_run_id; UPDATE `+q+`.schema_version SET version = 4`)
	require.NoError(t, err)

	s = open(t, schema)
	rs, err := s.Get(ctx, "wf", "r1")
	require.NoError(t, err)
	require.Equal(t, "r1", rs.RunID)
	require.Empty(t, rs.ParentRunID, "a run of version 4 has no parent")
	child := newRun("child", "r1.sub", "a")
	child.Trigger, child.ParentRunID = workflow.TriggerParent, "r1"
	_, err = s.Create(ctx, child)
	require.NoError(t, err)
	rs, err = s.Get(ctx, "child", "r1.sub")
	require.NoError(t, err)
	require.Equal(t, "r1", rs.ParentRunID, "a run created since keeps its ParentRunID")
	require.Equal(t, workflow.TriggerParent, rs.Trigger)
	runs, err := s.List(ctx, "child", workflow.HistoryQuery{Summary: true})
	require.NoError(t, err)
	require.Len(t, runs, 1)
	require.Equal(t, "r1", runs[0].ParentRunID, "a summary keeps the ParentRunID")
	var version int
	require.NoError(t, admin(t).QueryRow(ctx, `SELECT version FROM `+q+`.schema_version`).Scan(&version))
	require.Equal(t, 5, version)
}

func TestStoresInTwoSchemasAreSeparate(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	a, b := open(t, newSchema(t)), open(t, newSchema(t))
	_, err := a.Create(ctx, newRun("wf", "r1", "a"))
	require.NoError(t, err)
	_, err = b.Create(ctx, newRun("wf", "r1", "a"))
	require.NoError(t, err, "r1 of b's schema is another run")
	_, err = b.Create(ctx, newRun("other", "r2", "a"))
	require.NoError(t, err)
	names, err := a.Workflows(ctx)
	require.NoError(t, err)
	require.Equal(t, []string{"wf"}, names)
}

func TestNamesPostgresCannotHoldAreRefused(t *testing.T) {
	t.Parallel()
	s := open(t, newSchema(t))
	ctx := context.Background()
	child := newRun("wf", "r3", "a")
	child.Trigger, child.ParentRunID = workflow.TriggerParent, "p\x00"
	for _, run := range []workflow.RunStatus{newRun("wf", "r\x00", "a"), newRun("w\xff", "r1", "a"), newRun("wf", "r2", "a\x00"), child} {
		_, err := s.Create(ctx, run)
		require.ErrorIs(t, err, workflow.ErrInvalidInput)
	}
	_, err := s.Get(ctx, "wf", "r\x00")
	require.ErrorIs(t, err, workflow.ErrNotFound)
	_, err = s.Reopen(ctx, "w\xff", "r1")
	require.ErrorIs(t, err, workflow.ErrNotFound)
}

func TestErrorsAndPayloadsKeepEveryByte(t *testing.T) {
	t.Parallel()
	s := open(t, newSchema(t))
	ctx := context.Background()
	c := newClock()
	mem := workflow.NewMemoryStore()
	run := newRun("wf", "r1", "a", "b")
	recs := make([]workflow.Recorder, 2)
	var err error
	recs[0], err = mem.Create(ctx, run)
	require.NoError(t, err)
	recs[1], err = s.Create(ctx, run)
	require.NoError(t, err)
	odd := "not\x00utf8 \xff\xfe, and a NUL"
	for _, batch := range [][]workflow.Entry{
		{c.runEntry("r1", workflow.EventRunStarted, "", []byte{}), c.taskEntry("r1", 0, "a", workflow.EventTaskStarted, 1, "", nil)},
		{c.taskEntry("r1", 0, "a", workflow.EventTaskRetrying, 1, odd, nil), c.taskEntry("r1", 0, "a", workflow.EventTaskSucceeded, 1, "", []byte{0, 0xff})},
		{c.taskEntry("r1", 1, "b", workflow.EventTaskFailed, 1, odd, nil), c.runEntry("r1", workflow.EventRunFailed, odd, nil)},
	} {
		for _, rec := range recs {
			require.NoError(t, rec.Append(ctx, batch))
		}
	}
	want, err := mem.Get(ctx, "wf", "r1")
	require.NoError(t, err)
	got, err := s.Get(ctx, "wf", "r1")
	require.NoError(t, err)
	want.Input, want.Tasks[0].Output = []byte{}, []byte{0, 0xff} // a MemoryStore keeps values, not bytes
	require.Equal(t, normal(want), normal(got))
	require.Equal(t, odd, got.Error)
	p, err := s.Payloads(ctx, "wf", "r1")
	require.NoError(t, err)
	require.True(t, p.HasInput)
	require.Equal(t, []byte{}, p.Input.Data, "an empty input is not a missing one")
}

func TestCreateRecordsARunAsGiven(t *testing.T) {
	t.Parallel()
	s := open(t, newSchema(t))
	ctx := context.Background()
	c := newClock()
	run := workflow.RunStatus{
		RunID: "r1", Workflow: "wf", State: workflow.StateFailed, Trigger: "schedule",
		ScheduledAt: c.next(), StartedAt: c.next(), EndedAt: c.next(), Error: "it failed",
		Input: []byte(`{"a":1}`),
		Tasks: []workflow.TaskStatus{
			{Name: "a", State: workflow.StateSucceeded, Attempts: 1, StartedAt: c.next(), EndedAt: c.next(), Output: []byte(`2`)},
			{Name: "b", State: workflow.StateFailed, Attempts: 3, StartedAt: c.next(), EndedAt: c.next(), Error: "no"},
		},
	}
	run.Events = []workflow.Event{
		{Time: run.StartedAt, RunID: "r1", Type: workflow.EventRunStarted},
		{Time: c.next(), RunID: "r1", Task: "b", Type: workflow.EventTaskFailed, Attempt: 3, Error: "no"},
		{Time: run.EndedAt, RunID: "r1", Type: workflow.EventRunFailed, Error: "it failed"},
	}
	_, err := s.Create(ctx, run)
	require.NoError(t, err)
	got, err := s.Get(ctx, "wf", "r1")
	require.NoError(t, err)
	require.Equal(t, normal(run), normal(got))
	require.Empty(t, orphans(t, s, "wf"))

	// Its events are history: a Recorder goes on after them.
	rec, err := s.Reopen(ctx, "wf", "r1")
	require.NoError(t, err)
	require.NoError(t, rec.Append(ctx, []workflow.Entry{c.runEntry("r1", workflow.EventRunResumed, "", nil)}))
	got, err = s.Get(ctx, "wf", "r1")
	require.NoError(t, err)
	require.Len(t, got.Events, 4)
	require.Equal(t, workflow.StateRunning, got.State)
	require.Equal(t, workflow.StatePending, got.Tasks[1].State)
}

func TestMaxRunsKeepsTheNewestEndedRunsAndEveryRunUnderWay(t *testing.T) {
	t.Parallel()
	s := open(t, newSchema(t), pgstore.MaxRuns(3))
	ctx := context.Background()
	c := newClock()
	under, err := s.Create(ctx, newRun("wf", "under-way", "a"))
	require.NoError(t, err)
	require.NoError(t, under.Append(ctx, []workflow.Entry{c.runEntry("under-way", workflow.EventRunStarted, "", []byte(`0`))}))
	for i := range 6 {
		id := fmt.Sprintf("r%d", i)
		rec, err := s.Create(ctx, newRun("wf", id, "a"))
		require.NoError(t, err)
		require.NoError(t, rec.Append(ctx, []workflow.Entry{c.runEntry(id, workflow.EventRunStarted, "", []byte(`1`)),
			c.runEntry(id, workflow.EventRunCancelled, "stop", nil)}))
	}
	_, err = s.Create(ctx, newRun("other", "x", "a"))
	require.NoError(t, err)
	runs, err := s.List(ctx, "wf", workflow.HistoryQuery{Summary: true})
	require.NoError(t, err)
	require.Equal(t, []string{"r5", "r4", "r3", "under-way"}, ids(runs))
}

func TestMaxAgeDropsRunsThatEndedLongAgo(t *testing.T) {
	t.Parallel()
	s := open(t, newSchema(t), pgstore.MaxAge(time.Hour))
	ctx := context.Background()
	old := time.Now().Add(-2 * time.Hour)
	for i, at := range []time.Time{old, old.Add(time.Minute), time.Now()} {
		id := fmt.Sprintf("r%d", i)
		rec, err := s.Create(ctx, newRun("wf", id, "a"))
		require.NoError(t, err)
		require.NoError(t, rec.Append(ctx, []workflow.Entry{
			{Event: workflow.Event{Time: at, RunID: id, Type: workflow.EventRunStarted}, Index: -1, Payload: workflow.Payload{Data: []byte(`1`)}},
			{Event: workflow.Event{Time: at, RunID: id, Type: workflow.EventRunSucceeded}, Index: -1},
		}))
	}
	runs, err := s.List(ctx, "wf", workflow.HistoryQuery{Summary: true})
	require.NoError(t, err)
	require.Equal(t, []string{"r2"}, ids(runs))
}
