package storetest_test

import (
	"testing"

	"github.com/b3b01171/workflow"
	"github.com/b3b01171/workflow/storetest"
)

// TestMemoryStore holds the in-memory store to the suite, with its
// defaults.
func TestMemoryStore(t *testing.T) {
	storetest.Run(t, func(t *testing.T) workflow.Store { return workflow.NewMemoryStore() })
}
