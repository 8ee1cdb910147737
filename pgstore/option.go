package pgstore

import (
	"time"

	"github.com/b3b01171/workflow"
)

// Option configures a Store made by Open or New.
type Option func(*config)

type config struct {
	maxRuns  int
	maxAge   time.Duration
	leaseTTL time.Duration
	schema   string
}

func defaults() config {
	return config{maxRuns: workflow.DefaultMaxRuns, leaseTTL: 30 * time.Second, schema: "workflow"}
}

// MaxRuns makes the store keep the n most recently created runs per
// workflow, as workflow.MaxRuns does for a MemoryStore: an older run is
// dropped once it has ended, and runs not ended (pending, running or
// interrupted) are never dropped, nor is an ended run that a replica has
// reopened. n ≤ 0 keeps every run. The default is workflow.DefaultMaxRuns.
// Replicas sharing a schema should agree on it: each applies its own when
// it creates or ends a run.
func MaxRuns(n int) Option { return func(c *config) { c.maxRuns = n } }

// MaxAge makes the store drop ended runs that ended more than d ago. d ≤ 0
// keeps runs whatever their age, which is the default.
func MaxAge(d time.Duration) Option { return func(c *config) { c.maxAge = d } }

// LeaseTTL is how long the owner of a run under way may stay silent before
// another replica's Recover takes the run over; 30s by default. The Store
// renews its leases every d/3 while it is open, so d must outlast the
// longest pause of the process or of its connection to the database; the
// price of a longer d is the wait before a dead replica's runs are
// recovered. Each lease is stored with its owner's d, and expires by the
// database's clock, so that replicas whose clocks disagree still agree on
// it. d must be positive.
func LeaseTTL(d time.Duration) Option { return func(c *config) { c.leaseTTL = d } }

// Schema is the PostgreSQL schema that holds the store's tables, created
// if need be; "workflow" by default. Stores in different schemas of one
// database are separate. name is an identifier of at most 63 bytes, used
// as it is (quoted): case matters.
func Schema(name string) Option { return func(c *config) { c.schema = name } }
