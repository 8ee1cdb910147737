package sqlitestore_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/b3b01171/workflow"
	"github.com/b3b01171/workflow/sqlitestore"
)

// A workflow whose runs are kept in a SQLite file: a later process that
// opens the file sees them, and Recover takes over those a stopped process
// left unfinished.
func Example() {
	dir, _ := os.MkdirTemp("", "sqlitestore")
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "runs.db")

	store, err := sqlitestore.Open(path, sqlitestore.MaxRuns(10000))
	if err != nil {
		fmt.Println(err)
		return
	}
	wf := workflow.MustNew[string, int]("wordcount", workflow.Tasks{
		workflow.Task[string, []string]{
			Name:    "split",
			Handler: func(ctx context.Context, s string) ([]string, error) { return strings.Fields(s), nil },
		},
		workflow.Task[[]string, int]{
			Name:         "count",
			Dependencies: []string{"split"},
			Handler:      func(ctx context.Context, words []string) (int, error) { return len(words), nil },
		},
	}, workflow.WithStore(store))
	n, err := wf.Run(context.Background(), "the quick brown fox", workflow.WithRunID("run-1"))
	fmt.Println(n, err)
	store.Close()

	// Later, in another process.
	store, err = sqlitestore.Open(path)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer store.Close()
	rs, err := store.Get(context.Background(), "wordcount", "run-1")
	fmt.Println(rs.State, string(rs.Input), string(rs.Tasks[1].Output), err)
	// Output:
	// 4 <nil>
	// succeeded "the quick brown fox" 4 <nil>
}
