package dashboard_test

import (
	"context"
	"fmt"
	"log"
	"net/http"
	"net/http/httptest"

	"github.com/b3b01171/workflow"
	"github.com/b3b01171/workflow/dashboard"
)

// The dashboard of one workflow, mounted under /workflows/ of a service's
// mux, with actions for the requests the service trusts.
func ExampleNew() {
	orders := workflow.MustNew[int, int]("orders", workflow.Tasks{
		workflow.Task[int, int]{Name: "charge", Handler: func(ctx context.Context, n int) (int, error) { return n, nil }},
	})
	if _, err := orders.Run(context.Background(), 42); err != nil {
		log.Fatal(err)
	}

	h, err := dashboard.New(
		dashboard.Add(orders),
		dashboard.AllowActions(func(r *http.Request) bool { return r.Header.Get("X-Role") == "admin" }),
	)
	if err != nil {
		log.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/workflows/", http.StripPrefix("/workflows", h))

	for _, path := range []string{"/workflows/", "/workflows/workflows/orders", "/workflows/api/workflows", "/workflows/workflows/nope"} {
		rec := httptest.NewRecorder()
		mux.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
		fmt.Println(path, rec.Code, rec.Header().Get("Content-Type"))
	}
	// Output:
	// /workflows/ 200 text/html; charset=utf-8
	// /workflows/workflows/orders 200 text/html; charset=utf-8
	// /workflows/api/workflows 200 application/json; charset=utf-8
	// /workflows/workflows/nope 404 text/html; charset=utf-8
}
