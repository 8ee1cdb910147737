// Package pgstore is a workflow.Store in PostgreSQL, for services that run
// as several replicas on one database: every replica sees every run, Resume
// works on any of them, and when a replica dies its runs are taken over by
// Recover on another, each by exactly one.
//
//	store, err := pgstore.Open(ctx, os.Getenv("DATABASE_URL"), pgstore.MaxRuns(10000))
//	if err != nil {
//		return err
//	}
//	defer store.Close()
//
//	wf, err := workflow.New[Order, string]("orders", tasks, workflow.WithStore(store))
//	if err != nil {
//		return err
//	}
//	// Take over the runs of replicas that stopped.
//	execs, err := wf.Recover(ctx)
//
// New makes a Store on the service's own *pgxpool.Pool instead. Open and New
// create the store's tables in their schema ("workflow" unless Schema says
// otherwise), or bring an older version up to date, in one transaction
// under an advisory lock, so that replicas starting together wait for each
// other; a schema written by a newer version of this package is refused.
//
// Each Store owns the runs it created or reopened through a lease, which
// it renews every LeaseTTL/3 while it is open; leases expire by the
// database's clock. A run whose owner stopped renewing is an orphan
// (Store.Orphans); ClaimOrphan claims one still under way in one statement
// (FOR UPDATE SKIP LOCKED), so that each orphan goes to exactly one
// replica, and none that ended meanwhile is taken. Every batch of
// events the engine appends is one transaction, all or none, whose first
// statement checks that the run is still this Store's and locks its row
// against a claim until it is committed: a replica whose run was taken over, because
// it stayed silent too long, can no longer write it (ErrLeaseLost). A
// write that fails because the connection was lost is retried for a while;
// a batch whose answer was lost is not written twice.
//
// Statuses are built by folding the events with workflow.RunStatus.Apply,
// as every workflow.Store does.
package pgstore
