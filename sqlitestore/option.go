package sqlitestore

import (
	"time"

	"github.com/b3b01171/workflow"
)

// Option configures a Store opened by Open.
type Option func(*config)

type config struct {
	maxRuns  int
	maxAge   time.Duration
	leaseTTL time.Duration
}

func defaults() config {
	return config{maxRuns: workflow.DefaultMaxRuns, leaseTTL: 30 * time.Second}
}

// MaxRuns makes the store keep the n most recently created runs per
// workflow, as workflow.MaxRuns does for a MemoryStore: an older run is
// dropped once it has ended, and runs not ended (pending, running or
// interrupted) are never dropped. n ≤ 0 keeps every run. The default is
// workflow.DefaultMaxRuns.
func MaxRuns(n int) Option { return func(c *config) { c.maxRuns = n } }

// MaxAge makes the store drop ended runs that ended more than d ago. d ≤ 0
// keeps runs whatever their age, which is the default.
func MaxAge(d time.Duration) Option { return func(c *config) { c.maxAge = d } }

// LeaseTTL is how long the owner of a run under way may stay silent before
// another process's Recover takes the run over; 30s by default. The handle
// renews its leases every d/3 while it is open, so d must outlast the
// longest pause of the process (a stop-the-world, a blocked disk); the
// price of a longer d is the wait before a crashed process's runs are
// recovered. Each lease is stored with its owner's TTL. d must be positive.
func LeaseTTL(d time.Duration) Option { return func(c *config) { c.leaseTTL = d } }
