// Package sqlitestore is a workflow.Store in a SQLite file, so that runs
// outlive the process: a run interrupted by a crash, a kill or a deploy is
// taken over by Recover in the next process that opens the file, and Resume
// works from any process. It is pure Go (modernc.org/sqlite): no cgo.
//
//	store, err := sqlitestore.Open("runs.db", sqlitestore.MaxRuns(10000))
//	if err != nil {
//		return err
//	}
//	defer store.Close()
//
//	wf, err := workflow.New[Order, string]("orders", tasks, workflow.WithStore(store))
//	if err != nil {
//		return err
//	}
//	// Take over the runs a stopped process left unfinished.
//	execs, err := wf.Recover(ctx)
//
// Several processes may open one file at once (the file is in WAL mode,
// and writers wait for each other). Each Store handle owns the runs it
// created or reopened through a lease, which it renews every LeaseTTL/3
// while it is open; a run whose owner stopped renewing for LeaseTTL is an
// orphan (Store.Orphans), which Recover takes over in one atomic step, so
// that each orphan goes to exactly one process. A handle whose lease was
// taken over, because it stayed silent too long, can no longer write the
// run: its Append fails with an error wrapping ErrLeaseLost.
//
// Each batch of events the engine appends is one transaction, all or none,
// holding the task outputs it records, so that what a crash leaves of a run
// is a prefix of its history. Statuses are built by folding the events with
// workflow.RunStatus.Apply, as every workflow.Store does.
//
// The file carries a schema version: Open brings an older file up to date
// and refuses one written by a newer version of this package.
package sqlitestore
