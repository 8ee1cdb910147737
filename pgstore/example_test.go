package pgstore_test

import (
	"context"
	"fmt"
	"log"
	"os"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/b3b01171/workflow"
	"github.com/b3b01171/workflow/pgstore"
)

// Every replica of a service opens the same database; each recovers, at
// start, the runs of replicas that stopped (their leases expired).
func Example() {
	ctx := context.Background()
	store, err := pgstore.Open(ctx, os.Getenv("DATABASE_URL"))
	if err != nil {
		log.Fatal(err)
	}
	defer store.Close()

	shout, err := workflow.New[string, string]("shout", workflow.Tasks{
		workflow.Task[string, string]{Name: "upper", Handler: func(ctx context.Context, s string) (string, error) {
			return strings.ToUpper(s) + "!", nil
		}},
	}, workflow.WithStore(store))
	if err != nil {
		log.Fatal(err)
	}
	execs, err := shout.Recover(ctx)
	if err != nil {
		log.Print(err) // the runs that could not be resumed; the others are in execs
	}
	for _, x := range execs {
		go x.Wait(ctx)
	}
	out, err := shout.Run(ctx, "hello")
	fmt.Println(out, err)
}

// A service that has its own pool hands it over; Close of the Store
// leaves it open.
func ExampleNew() {
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, os.Getenv("DATABASE_URL"))
	if err != nil {
		log.Fatal(err)
	}
	defer pool.Close()
	store, err := pgstore.New(ctx, pool, pgstore.Schema("jobs"), pgstore.MaxRuns(10000), pgstore.LeaseTTL(10*time.Second))
	if err != nil {
		log.Fatal(err)
	}
	defer store.Close()
	_ = store
}
