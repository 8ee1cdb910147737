// Package dashboard serves a web dashboard of workflows from the service
// that runs them: an http.Handler to mount on any path, with an overview
// of every workflow, a page per workflow (its graph, schedule and runs) and
// a page per run (its graph coloured by the run, a timeline of its task
// attempts, its events), plus a JSON API with the same data.
//
// Pages are rendered on the server from embedded templates; the CSS and a
// small script that refreshes pages while runs are under way are embedded
// too, so the dashboard works offline and needs no build step. Links are
// relative, so the handler works under http.StripPrefix:
//
//	h, err := dashboard.New(dashboard.Add(orders), dashboard.WithScheduler(s))
//	mux.Handle("/workflows/", http.StripPrefix("/workflows", h))
//
// The dashboard is read-only unless AllowActions says otherwise for a
// request: then it offers to start a run, cancel a run and resume one, as
// POST requests checked against cross-site forgery.
package dashboard

import (
	"errors"
	"fmt"
	"net/http"

	"github.com/b3b01171/workflow"
)

// Option configures the dashboard in New.
type Option func(*config)

type config struct {
	flows []flow
	sched *workflow.Scheduler
	allow func(*http.Request) bool
	errs  []error
}

// Add shows wf on the dashboard. Workflows are listed in the order they
// are added; their names must differ.
func Add[In, Out any](wf *workflow.Workflow[In, Out]) Option {
	return func(c *config) {
		if wf == nil || wf.Name() == "" {
			c.errs = append(c.errs, errors.New("Add: the workflow was not built by workflow.New"))
			return
		}
		c.flows = append(c.flows, newTyped(wf))
	}
}

// WithScheduler shows the schedule of each added workflow registered with
// s (its cron text, next and previous fires), and makes "run now" of such
// a workflow, without an input of the user's, go through s.Trigger, so
// that the run takes its input as scheduled runs do.
func WithScheduler(s *workflow.Scheduler) Option {
	return func(c *config) { c.sched = s }
}

// AllowActions lets the requests for which allow returns true start, cancel
// and resume runs. Without it, or with a nil allow, the dashboard is
// read-only: it shows no buttons, and its action endpoints answer 403.
// Actions are POST requests, refused when they come from another site
// (http.CrossOriginProtection).
func AllowActions(allow func(*http.Request) bool) Option {
	return func(c *config) { c.allow = allow }
}

// New returns the dashboard's handler. It fails when an option is nil, a
// workflow was not built by workflow.New, or two workflows share a name.
func New(opts ...Option) (http.Handler, error) {
	var c config
	for _, o := range opts {
		if o == nil {
			c.errs = append(c.errs, errors.New("nil Option"))
			continue
		}
		o(&c)
	}
	seen := map[string]bool{}
	for _, f := range c.flows {
		if seen[f.name()] {
			c.errs = append(c.errs, fmt.Errorf("Add: two workflows are named %q", f.name()))
		}
		seen[f.name()] = true
	}
	if err := errors.Join(c.errs...); err != nil {
		return nil, fmt.Errorf("dashboard: %w", err)
	}
	return newServer(c), nil
}
