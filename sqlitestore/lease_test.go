package sqlitestore_test

import (
	"context"
	"database/sql"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	_ "modernc.org/sqlite"

	"github.com/b3b01171/workflow"
	"github.com/b3b01171/workflow/sqlitestore"
)

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

// waitFor lets d of real time pass: a lease expires in real time.
func waitFor(d time.Duration) {
	for start := time.Now(); time.Since(start) < d; {
		time.Sleep(d / 20)
	}
}

func orphans(t *testing.T, s *sqlitestore.Store, wf string) []string {
	t.Helper()
	ids, err := s.Orphans(context.Background(), wf)
	require.NoError(t, err)
	return ids
}

// rawDB opens the file without the store, to do what a store never does.
func rawDB(t *testing.T, path string) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite", path+"?_pragma=busy_timeout(10000)")
	require.NoError(t, err)
	t.Cleanup(func() { db.Close() })
	return db
}

func TestARunOfAClosedHandleIsAnOrphanOnceItsLeaseExpired(t *testing.T) {
	t.Parallel()
	path := tempPath(t)
	ctx := context.Background()
	c := newClock()
	a, err := sqlitestore.Open(path, sqlitestore.LeaseTTL(time.Second))
	require.NoError(t, err)
	rec, err := a.Create(ctx, newRun("wf", "r1", "a", "b"))
	require.NoError(t, err)
	require.NoError(t, rec.Append(ctx, []workflow.Entry{
		c.runEntry("r1", workflow.EventRunStarted, "", []byte(`"in"`)),
		c.taskEntry("r1", 0, "a", workflow.EventTaskStarted, 1, "", nil),
	}))
	require.NoError(t, rec.Append(ctx, []workflow.Entry{
		c.taskEntry("r1", 0, "a", workflow.EventTaskSucceeded, 0, "", []byte(`"A"`)),
		c.taskEntry("r1", 1, "b", workflow.EventTaskStarted, 1, "", nil),
	}))
	closedAt := time.Now()
	require.NoError(t, a.Close()) // leaves its lease, as a crash does

	b := open(t, path, sqlitestore.LeaseTTL(50*time.Millisecond))
	ids := orphans(t, b, "wf")
	if time.Since(closedAt) < 900*time.Millisecond {
		require.Empty(t, ids, "a's lease is live")
	}
	_, err = b.Reopen(ctx, "wf", "r1")
	if time.Since(closedAt) < 900*time.Millisecond {
		require.ErrorIs(t, err, workflow.ErrNotResumable)
	}
	eventually(t, "r1 is an orphan", func() bool { return slices.Equal(orphans(t, b, "wf"), []string{"r1"}) })

	rec, err = b.Reopen(ctx, "wf", "r1")
	require.NoError(t, err)
	require.Empty(t, orphans(t, b, "wf"), "b owns it now")
	_, err = b.Reopen(ctx, "wf", "r1")
	require.ErrorIs(t, err, workflow.ErrNotResumable, "its Recorder is open in b")

	// b goes on from where a stopped: the same run as a MemoryStore given
	// every entry.
	require.NoError(t, rec.Append(ctx, []workflow.Entry{
		c.runEntry("r1", workflow.EventRunInterrupted, "its process stopped without ending it", nil),
		c.runEntry("r1", workflow.EventRunResumed, "", nil),
	}))
	rs, err := b.Get(ctx, "wf", "r1")
	require.NoError(t, err)
	require.Equal(t, workflow.StateRunning, rs.State)
	require.Equal(t, workflow.StateSucceeded, rs.Tasks[0].State)
	require.Equal(t, workflow.StatePending, rs.Tasks[1].State)
	p, err := b.Payloads(ctx, "wf", "r1")
	require.NoError(t, err)
	require.Equal(t, `"in"`, string(p.Input.Data))
	require.Equal(t, map[string]workflow.Payload{"a": {Data: []byte(`"A"`)}}, p.Outputs)

	require.NoError(t, rec.Append(ctx, []workflow.Entry{
		c.taskEntry("r1", 1, "b", workflow.EventTaskStarted, 2, "", nil),
		c.taskEntry("r1", 1, "b", workflow.EventTaskSucceeded, 0, "", []byte(`"B"`)),
		c.runEntry("r1", workflow.EventRunSucceeded, "", nil),
	}))
	rs, err = b.Get(ctx, "wf", "r1")
	require.NoError(t, err)
	require.Equal(t, workflow.StateSucceeded, rs.State)
	require.Len(t, rs.Events, 9)
	require.Equal(t, 2, rs.Tasks[1].Attempts)
	require.Equal(t, `"B"`, string(rs.Tasks[1].Output))
	require.Empty(t, orphans(t, b, "wf"))
}

func TestALiveHandleRenewsItsLeases(t *testing.T) {
	t.Parallel()
	path := tempPath(t)
	ctx := context.Background()
	const ttl = 500 * time.Millisecond
	a := open(t, path, sqlitestore.LeaseTTL(ttl))
	b := open(t, path, sqlitestore.LeaseTTL(ttl))
	c := newClock()
	rec, err := a.Create(ctx, newRun("wf", "r1", "a"))
	require.NoError(t, err)
	require.NoError(t, rec.Append(ctx, []workflow.Entry{c.runEntry("r1", workflow.EventRunStarted, "", []byte(`1`))}))
	for start := time.Now(); time.Since(start) < 4*ttl; time.Sleep(10 * time.Millisecond) {
		require.Empty(t, orphans(t, b, "wf"), "a renews its lease")
	}
	_, err = b.Reopen(ctx, "wf", "r1")
	require.ErrorIs(t, err, workflow.ErrNotResumable)
	require.NoError(t, rec.Append(ctx, []workflow.Entry{c.taskEntry("r1", 0, "a", workflow.EventTaskStarted, 1, "", nil)}))
}

func TestAnEndedOrInterruptedRunReleasesItsLease(t *testing.T) {
	t.Parallel()
	for _, end := range []string{workflow.EventRunFailed, workflow.EventRunInterrupted} {
		t.Run(end, func(t *testing.T) {
			path := tempPath(t)
			ctx := context.Background()
			a := open(t, path)
			b := open(t, path)
			c := newClock()
			rec, err := a.Create(ctx, newRun("wf", "r1", "a"))
			require.NoError(t, err)
			require.NoError(t, rec.Append(ctx, []workflow.Entry{c.runEntry("r1", workflow.EventRunStarted, "", []byte(`1`))}))
			_, err = b.Reopen(ctx, "wf", "r1")
			require.ErrorIs(t, err, workflow.ErrNotResumable)
			require.NoError(t, rec.Append(ctx, []workflow.Entry{c.runEntry("r1", end, "stop", nil)}))
			if end == workflow.EventRunInterrupted {
				require.Equal(t, []string{"r1"}, orphans(t, b, "wf"))
			} else {
				require.Empty(t, orphans(t, b, "wf"))
			}
			_, err = b.Reopen(ctx, "wf", "r1")
			require.NoError(t, err)
		})
	}
}

func TestOneOfConcurrentReopensWins(t *testing.T) {
	t.Parallel()
	path := tempPath(t)
	ctx := context.Background()
	a, err := sqlitestore.Open(path, sqlitestore.LeaseTTL(50*time.Millisecond))
	require.NoError(t, err)
	_, err = a.Create(ctx, newRun("wf", "r1", "a"))
	require.NoError(t, err)
	require.NoError(t, a.Close())

	const handles = 6
	stores := make([]*sqlitestore.Store, handles)
	for i := range stores {
		stores[i] = open(t, path)
	}
	eventually(t, "r1 is an orphan", func() bool { return len(orphans(t, stores[0], "wf")) == 1 })
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		won  int
		errs []error
	)
	for _, s := range stores {
		for range 2 { // twice in each handle: one Recorder per handle too
			wg.Go(func() {
				_, err := s.Reopen(ctx, "wf", "r1")
				mu.Lock()
				defer mu.Unlock()
				if err == nil {
					won++
				} else {
					errs = append(errs, err)
				}
			})
		}
	}
	wg.Wait()
	require.Equal(t, 1, won)
	for _, err := range errs {
		require.ErrorIs(t, err, workflow.ErrNotResumable)
	}
}

func TestReopenOfAnUnknownRunIsNotFound(t *testing.T) {
	t.Parallel()
	s := open(t, tempPath(t))
	_, err := s.Reopen(context.Background(), "wf", "nope")
	require.ErrorIs(t, err, workflow.ErrNotFound)
	require.ErrorContains(t, err, `"nope"`)
	require.ErrorContains(t, err, `"wf"`)
}

func TestAppendAfterTheLeaseWasTakenOverFails(t *testing.T) {
	t.Parallel()
	path := tempPath(t)
	ctx := context.Background()
	const ttl = 100 * time.Millisecond
	a := open(t, path, sqlitestore.LeaseTTL(ttl))
	c := newClock()
	rec, err := a.Create(ctx, newRun("wf", "r1", "a"))
	require.NoError(t, err)
	require.NoError(t, rec.Append(ctx, []workflow.Entry{c.runEntry("r1", workflow.EventRunStarted, "", []byte(`1`))}))

	// Another process took the run over, as if a had been silent for
	// longer than its TTL.
	db := rawDB(t, path)
	_, err = db.Exec(`UPDATE runs SET owner = 'thief', lease_until = ? WHERE run_id = 'r1'`, time.Now().Add(time.Hour).UnixNano())
	require.NoError(t, err)
	waitFor(2 * ttl) // a's own record of its lease runs out

	err = rec.Append(ctx, []workflow.Entry{c.taskEntry("r1", 0, "a", workflow.EventTaskStarted, 1, "", nil)})
	require.ErrorIs(t, err, sqlitestore.ErrLeaseLost)
	require.ErrorContains(t, err, "thief")
	rs, err := a.Get(ctx, "wf", "r1")
	require.NoError(t, err)
	require.Len(t, rs.Events, 1, "nothing of the batch was written")
}

func TestOrphansAreOldestFirstAndOnlyRunsNotEnded(t *testing.T) {
	t.Parallel()
	path := tempPath(t)
	ctx := context.Background()
	a, err := sqlitestore.Open(path, sqlitestore.LeaseTTL(20*time.Millisecond))
	require.NoError(t, err)
	c := newClock()
	for _, id := range []string{"r3", "r1", "r2", "done"} {
		rec, err := a.Create(ctx, newRun("wf", id, "a"))
		require.NoError(t, err)
		if id == "done" {
			require.NoError(t, rec.Append(ctx, []workflow.Entry{c.runEntry(id, workflow.EventRunCancelled, "", nil)}))
		}
	}
	_, err = a.Create(ctx, newRun("other", "x", "a"))
	require.NoError(t, err)
	require.NoError(t, a.Close())
	b := open(t, path)
	eventually(t, "the runs are orphans", func() bool { return len(orphans(t, b, "wf")) == 3 })
	require.Equal(t, []string{"r3", "r1", "r2"}, orphans(t, b, "wf"))
}

func TestClaimOrphanTakesARunWhoseLeaseExpiredButNotOneEndedSince(t *testing.T) {
	t.Parallel()
	path := tempPath(t)
	ctx := context.Background()
	c := newClock()
	a, err := sqlitestore.Open(path, sqlitestore.LeaseTTL(50*time.Millisecond))
	require.NoError(t, err)
	for _, id := range []string{"r1", "r2"} {
		rec, err := a.Create(ctx, newRun("wf", id, "a"))
		require.NoError(t, err)
		require.NoError(t, rec.Append(ctx, []workflow.Entry{
			c.runEntry(id, workflow.EventRunStarted, "", []byte(`1`)),
			c.taskEntry(id, 0, "a", workflow.EventTaskStarted, 1, "", nil),
		}))
	}
	require.NoError(t, a.Close()) // leaves its leases, as a crash does

	b, d := open(t, path), open(t, path)
	eventually(t, "r1 and r2 are orphans", func() bool { return len(orphans(t, b, "wf")) == 2 })
	require.Equal(t, []string{"r1", "r2"}, orphans(t, b, "wf"))

	// r1 is claimed, running: its owner's lease expired.
	rec, err := b.ClaimOrphan(ctx, "wf", "r1")
	require.NoError(t, err)
	_, err = d.ClaimOrphan(ctx, "wf", "r1")
	require.ErrorIs(t, err, workflow.ErrNotResumable, "b holds it")
	require.NoError(t, rec.Append(ctx, []workflow.Entry{
		c.runEntry("r1", workflow.EventRunInterrupted, "its process stopped without ending it", nil),
		c.runEntry("r1", workflow.EventRunResumed, "", nil),
	}))

	// d resumes r2 and ends it after b listed it: b's claim is refused,
	// though no one owns r2 any more.
	rec2, err := d.Reopen(ctx, "wf", "r2")
	require.NoError(t, err)
	require.NoError(t, rec2.Append(ctx, []workflow.Entry{
		c.runEntry("r2", workflow.EventRunInterrupted, "its process stopped without ending it", nil),
		c.runEntry("r2", workflow.EventRunResumed, "", nil),
		c.taskEntry("r2", 0, "a", workflow.EventTaskStarted, 2, "", nil),
		c.taskEntry("r2", 0, "a", workflow.EventTaskSucceeded, 2, "", []byte(`"A"`)),
		c.runEntry("r2", workflow.EventRunSucceeded, "", nil),
	}))
	_, err = b.ClaimOrphan(ctx, "wf", "r2")
	require.ErrorIs(t, err, workflow.ErrNotResumable)
	require.ErrorContains(t, err, "ended (succeeded)")
	_, err = b.ClaimOrphan(ctx, "wf", "nope")
	require.ErrorIs(t, err, workflow.ErrNotFound)
	_, err = b.Reopen(ctx, "wf", "r2")
	require.NoError(t, err, "the refused claim took nothing: Resume may reopen it")
}
