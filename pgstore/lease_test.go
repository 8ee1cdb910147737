package pgstore_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/b3b01171/workflow"
	"github.com/b3b01171/workflow/pgstore"
)

func TestARunOfAClosedStoreIsAnOrphanOnceItsLeaseExpired(t *testing.T) {
	t.Parallel()
	schema := newSchema(t)
	ctx := context.Background()
	c := newClock()
	const ttl = time.Second
	a, err := pgstore.Open(ctx, testDSN(t), pgstore.Schema(schema), pgstore.LeaseTTL(ttl))
	require.NoError(t, err)
	rec, err := a.Create(ctx, newRun("wf", "r1", "a", "b"))
	require.NoError(t, err)
	require.NoError(t, rec.Append(ctx, []workflow.Entry{
		c.runEntry("r1", workflow.EventRunStarted, "", []byte(`"in"`)),
		c.taskEntry("r1", 0, "a", workflow.EventTaskStarted, 1, "", nil),
	}))
	require.NoError(t, rec.Append(ctx, []workflow.Entry{
		c.taskEntry("r1", 0, "a", workflow.EventTaskSucceeded, 1, "", []byte(`"A"`)),
		c.taskEntry("r1", 1, "b", workflow.EventTaskStarted, 1, "", nil),
	}))
	aOwner, _ := rawLease(t, schema, "r1")
	require.NoError(t, a.Close()) // leaves its lease, as a crash does

	// b's own TTL does not matter: the lease carries a's.
	b := open(t, schema, pgstore.LeaseTTL(50*time.Millisecond))
	ids := orphans(t, b, "wf")
	_, err = b.Reopen(ctx, "wf", "r1")
	var live bool
	require.NoError(t, admin(t).QueryRow(ctx, `SELECT owner = $2 AND lease_until > clock_timestamp() FROM `+
		pgx.Identifier{schema}.Sanitize()+`.runs WHERE run_id = $1`, "r1", *aOwner).Scan(&live))
	if live { // after both calls: it was live during them
		require.Empty(t, ids, "a's lease is live")
		require.ErrorIs(t, err, workflow.ErrNotResumable)
		require.ErrorContains(t, err, "owns it, and its lease runs until")
	}
	eventually(t, "r1 is an orphan", func() bool { return slices.Equal(orphans(t, b, "wf"), []string{"r1"}) })

	rec, err = b.Reopen(ctx, "wf", "r1")
	require.NoError(t, err)
	require.Empty(t, orphans(t, b, "wf"), "b owns it now")
	_, err = b.Reopen(ctx, "wf", "r1")
	require.ErrorIs(t, err, workflow.ErrNotResumable, "its Recorder is open in b")

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
		c.taskEntry("r1", 1, "b", workflow.EventTaskSucceeded, 2, "", []byte(`"B"`)),
		c.runEntry("r1", workflow.EventRunSucceeded, "", nil),
	}))
	rs, err = b.Get(ctx, "wf", "r1")
	require.NoError(t, err)
	require.Equal(t, workflow.StateSucceeded, rs.State)
	require.Len(t, rs.Events, 9)
	require.Equal(t, `"B"`, string(rs.Tasks[1].Output))
	require.Empty(t, orphans(t, b, "wf"))
	owner, until := rawLease(t, schema, "r1")
	require.Nil(t, owner, "the end released the lease")
	require.Nil(t, until)
}

func TestALiveStoreRenewsItsLeases(t *testing.T) {
	t.Parallel()
	schema := newSchema(t)
	ctx := context.Background()
	const ttl = 2 * time.Second
	a := open(t, schema, pgstore.LeaseTTL(ttl))
	b := open(t, schema, pgstore.LeaseTTL(ttl))
	c := newClock()
	rec, err := a.Create(ctx, newRun("wf", "r1", "a"))
	require.NoError(t, err)
	require.NoError(t, rec.Append(ctx, []workflow.Entry{c.runEntry("r1", workflow.EventRunStarted, "", []byte(`1`))}))
	_, first := rawLease(t, schema, "r1")
	for start := time.Now(); time.Since(start) < 2*ttl; time.Sleep(20 * time.Millisecond) {
		require.Empty(t, orphans(t, b, "wf"), "a renews its lease")
	}
	_, last := rawLease(t, schema, "r1")
	require.True(t, last.After(*first), "the lease was extended")
	_, err = b.Reopen(ctx, "wf", "r1")
	require.ErrorIs(t, err, workflow.ErrNotResumable)
	require.NoError(t, rec.Append(ctx, []workflow.Entry{c.taskEntry("r1", 0, "a", workflow.EventTaskStarted, 1, "", nil)}))
}

func TestAnEndedOrInterruptedRunReleasesItsLease(t *testing.T) {
	t.Parallel()
	for _, end := range []string{workflow.EventRunFailed, workflow.EventRunInterrupted} {
		t.Run(end, func(t *testing.T) {
			schema := newSchema(t)
			ctx := context.Background()
			a, b := open(t, schema), open(t, schema)
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

func TestAppendAfterTheLeaseWasTakenOverFails(t *testing.T) {
	t.Parallel()
	schema := newSchema(t)
	ctx := context.Background()
	a := open(t, schema)
	c := newClock()
	rec, err := a.Create(ctx, newRun("wf", "r1", "a"))
	require.NoError(t, err)
	require.NoError(t, rec.Append(ctx, []workflow.Entry{c.runEntry("r1", workflow.EventRunStarted, "", []byte(`1`))}))

	// Another replica took the run over, as if a had been silent for
	// longer than its TTL.
	_, err = admin(t).Exec(ctx, `UPDATE `+pgx.Identifier{schema}.Sanitize()+`.runs SET owner = 'thief' WHERE run_id = 'r1'`)
	require.NoError(t, err)
	err = rec.Append(ctx, []workflow.Entry{
		c.taskEntry("r1", 0, "a", workflow.EventTaskStarted, 1, "", nil),
		c.taskEntry("r1", 0, "a", workflow.EventTaskSucceeded, 1, "", []byte(`2`)),
		c.runEntry("r1", workflow.EventRunSucceeded, "", nil),
	})
	require.ErrorIs(t, err, pgstore.ErrLeaseLost)
	require.ErrorContains(t, err, "thief")
	rs, err := a.Get(ctx, "wf", "r1")
	require.NoError(t, err)
	require.Len(t, rs.Events, 1, "nothing of the batch was written")
	require.Equal(t, workflow.StatePending, rs.Tasks[0].State)
	owner, _ := rawLease(t, schema, "r1")
	require.Equal(t, "thief", *owner)
}

func TestOneOfConcurrentReopensAcrossReplicasWins(t *testing.T) {
	t.Parallel()
	schema := newSchema(t)
	ctx := context.Background()
	a, err := pgstore.Open(ctx, testDSN(t), pgstore.Schema(schema), pgstore.LeaseTTL(50*time.Millisecond))
	require.NoError(t, err)
	for i := range 5 {
		_, err = a.Create(ctx, newRun("wf", fmt.Sprintf("r%d", i), "a"))
		require.NoError(t, err)
	}
	require.NoError(t, a.Close())

	const replicas = 6
	stores := make([]*pgstore.Store, replicas)
	for i := range stores {
		stores[i] = open(t, schema)
	}
	eventually(t, "the runs are orphans", func() bool { return len(orphans(t, stores[0], "wf")) == 5 })
	var (
		wg  sync.WaitGroup
		mu  sync.Mutex
		won = map[string]int{}
	)
	for _, s := range stores {
		for range 2 { // twice in each Store too
			wg.Go(func() {
				for i := range 5 {
					id := fmt.Sprintf("r%d", i)
					_, err := s.Reopen(ctx, "wf", id)
					mu.Lock()
					if err == nil {
						won[id]++
					} else {
						require.ErrorIs(t, err, workflow.ErrNotResumable)
					}
					mu.Unlock()
				}
			})
		}
	}
	wg.Wait()
	require.Equal(t, map[string]int{"r0": 1, "r1": 1, "r2": 1, "r3": 1, "r4": 1}, won)
}

func TestClaimOrphanTakesARunWhoseLeaseExpiredButNotOneEndedSince(t *testing.T) {
	t.Parallel()
	schema := newSchema(t)
	ctx := context.Background()
	c := newClock()
	a, err := pgstore.Open(ctx, testDSN(t), pgstore.Schema(schema), pgstore.LeaseTTL(50*time.Millisecond))
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

	b, d := open(t, schema), open(t, schema)
	eventually(t, "r1 and r2 are orphans", func() bool { return len(orphans(t, b, "wf")) == 2 })
	require.Equal(t, []string{"r1", "r2"}, orphans(t, b, "wf"))

	// r1 is claimed, running: its owner's lease expired.
	rec, err := b.ClaimOrphan(ctx, "wf", "r1")
	require.NoError(t, err)
	_, err = d.ClaimOrphan(ctx, "wf", "r1")
	require.ErrorIs(t, err, workflow.ErrNotResumable, "b holds it")
	require.ErrorContains(t, err, "owns it")
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
	_, err = b.ClaimOrphan(ctx, "wf", "bad\x00id")
	require.ErrorIs(t, err, workflow.ErrNotFound)
	_, err = b.Reopen(ctx, "wf", "r2")
	require.NoError(t, err, "the refused claim took nothing: Resume may reopen it")
}

// A failed Map task keeps its succeeded items' outputs in the payload of
// its end event: the run's new owner reads it back whether the task's
// row holds it (the run stopped) or only the event does (its owner died).
func TestWhatAFailedTaskKeptOutlivesItsOwner(t *testing.T) {
	t.Parallel()
	schema := newSchema(t)
	ctx := context.Background()
	c := newClock()
	a, err := pgstore.Open(ctx, testDSN(t), pgstore.Schema(schema), pgstore.LeaseTTL(50*time.Millisecond))
	require.NoError(t, err)
	rec, err := a.Create(ctx, newRun("wf", "r1", "resize", "notify"))
	require.NoError(t, err)
	kept := []byte(`{"done":[0,2],"outputs":["a","c"]}`)
	require.NoError(t, rec.Append(ctx, []workflow.Entry{
		c.runEntry("r1", workflow.EventRunStarted, "", []byte(`1`)),
		c.taskEntry("r1", 0, "resize", workflow.EventTaskStarted, 1, "", nil),
		c.taskEntry("r1", 1, "notify", workflow.EventTaskStarted, 1, "", nil),
		c.taskEntry("r1", 0, "resize", workflow.EventTaskFailed, 1, "item 1: corrupt", kept),
	}))
	require.NoError(t, a.Close()) // the run goes on, its events not folded

	b := open(t, schema)
	partial := func(want map[string]workflow.Payload) {
		t.Helper()
		p, err := b.Payloads(ctx, "wf", "r1")
		require.NoError(t, err)
		require.Equal(t, want, p.Partial)
		rs, err := b.Get(ctx, "wf", "r1")
		require.NoError(t, err)
		require.Equal(t, string(want["resize"].Data), string(rs.Tasks[0].Output))
	}
	eventually(t, "r1 is an orphan", func() bool { return len(orphans(t, b, "wf")) == 1 })
	partial(map[string]workflow.Payload{"resize": {Data: kept}})
	rec, err = b.ClaimOrphan(ctx, "wf", "r1")
	require.NoError(t, err)
	require.NoError(t, rec.Append(ctx, []workflow.Entry{
		c.runEntry("r1", workflow.EventRunInterrupted, "its process stopped without ending it", nil),
	}))
	partial(map[string]workflow.Payload{"resize": {Data: kept}}) // folded into its row
	rec, err = b.Reopen(ctx, "wf", "r1")
	require.NoError(t, err)
	partial(map[string]workflow.Payload{"resize": {Data: kept}})
	require.NoError(t, rec.Append(ctx, []workflow.Entry{c.runEntry("r1", workflow.EventRunResumed, "", nil)}))
	partial(nil)
}
