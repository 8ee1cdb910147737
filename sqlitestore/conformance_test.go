package sqlitestore_test

import (
	"path/filepath"
	"testing"

	"github.com/b3b01171/workflow"
	"github.com/b3b01171/workflow/sqlitestore"
	"github.com/b3b01171/workflow/storetest"
)

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) workflow.Store {
		s, err := sqlitestore.Open(filepath.Join(t.TempDir(), "runs.db"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	})
}
