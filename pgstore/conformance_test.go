package pgstore_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/b3b01171/workflow"
	"github.com/b3b01171/workflow/pgstore"
	"github.com/b3b01171/workflow/storetest"
)

// TestConformance runs the suite on a new schema for each rule, through
// a pool the tests share (New), so that the rules are isolated.
func TestConformance(t *testing.T) {
	pool := admin(t)
	storetest.Run(t, func(t *testing.T) workflow.Store {
		s, err := pgstore.New(t.Context(), pool, pgstore.Schema(newSchema(t)))
		require.NoError(t, err)
		t.Cleanup(func() { s.Close() })
		return s
	})
}
