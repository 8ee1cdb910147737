package dashboard

import (
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/b3b01171/workflow"
)

// apiWorkflow is one workflow in GET api/workflows.
type apiWorkflow struct {
	Name        string         `json:"name"`
	LatestRun   *apiRun        `json:"latest_run"` // null before the first run
	LatestState workflow.State `json:"latest_state,omitempty"`
	Running     int            `json:"running"` // runs under way, counted up to 100
	SuccessRate *float64       `json:"success_rate"`
	MedianMS    *int64         `json:"median_duration_ms"`
	Schedule    *apiSchedule   `json:"schedule"` // null when not on the Scheduler
	Error       string         `json:"error,omitempty"`
	Tasks       []apiGraphTask `json:"tasks"`
}

type apiGraphTask struct {
	Name         string   `json:"name"`
	Dependencies []string `json:"dependencies"`
	In           string   `json:"in"`
	Out          string   `json:"out"`
}

type apiSchedule struct {
	Cron     string    `json:"cron"`
	Timezone string    `json:"timezone"`
	Next     time.Time `json:"next,omitzero"`
	Prev     time.Time `json:"prev,omitzero"`
}

// apiRun is a run in a listing: its RunStatus without tasks and events.
type apiRun struct {
	RunID       string         `json:"run_id"`
	State       workflow.State `json:"state"`
	Trigger     string         `json:"trigger"`
	ScheduledAt time.Time      `json:"scheduled_at,omitzero"`
	StartedAt   time.Time      `json:"started_at,omitzero"`
	EndedAt     time.Time      `json:"ended_at,omitzero"`
	DurationMS  int64          `json:"duration_ms"`
	FailedTask  string         `json:"failed_task,omitempty"`
	Error       string         `json:"error,omitempty"`
}

type apiRuns struct {
	Runs []apiRun `json:"runs"`
	// NextCursor is the cursor of the next page; "" on the last.
	NextCursor string `json:"next_cursor"`
}

func newAPIRun(rs *workflow.RunStatus) apiRun {
	return apiRun{
		RunID: rs.RunID, State: rs.State, Trigger: rs.Trigger, ScheduledAt: rs.ScheduledAt,
		StartedAt: rs.StartedAt, EndedAt: rs.EndedAt, DurationMS: runDuration(rs).Milliseconds(),
		FailedTask: failedTask(rs), Error: rs.Error,
	}
}

func (s *server) routeAPI(w http.ResponseWriter, r *request) {
	seg := r.segs
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		s.fail(w, r, http.StatusMethodNotAllowed, "", "the JSON API is read-only: use GET")
		return
	}
	if len(seg) == 2 {
		s.apiWorkflows(w, r)
		return
	}
	f, ok := s.byName[seg[2]]
	switch {
	case !ok:
		s.fail(w, r, http.StatusNotFound, "", fmt.Sprintf("no workflow named %q", seg[2]))
	case len(seg) == 4 && seg[3] == "runs":
		s.apiRuns(w, r, f)
	case len(seg) == 5 && seg[3] == "runs":
		s.apiRun(w, r, f, seg[4])
	default:
		s.notFound(w, r)
	}
}

func (s *server) apiWorkflows(w http.ResponseWriter, r *request) {
	out := struct {
		Workflows []apiWorkflow `json:"workflows"`
	}{Workflows: []apiWorkflow{}}
	for _, f := range s.flows {
		row := s.overviewRow(r.Context(), f)
		a := apiWorkflow{Name: row.Name, Running: row.Running, Error: row.Err, Tasks: []apiGraphTask{}}
		if row.Latest != nil {
			latest, err := f.inspect(r.Context(), row.Latest.ID)
			if err == nil {
				run := newAPIRun(&latest)
				a.LatestRun, a.LatestState = &run, latest.State
			}
		}
		if row.Recent > 0 {
			rate := float64(row.Succeeded) / float64(row.Recent)
			a.SuccessRate = &rate
			ms := row.Median.Milliseconds()
			a.MedianMS = &ms
		}
		if e := row.Schedule; e != nil {
			a.Schedule = &apiSchedule{Cron: e.Cron, Timezone: e.Timezone, Next: e.Next, Prev: e.Prev}
		}
		for _, t := range f.graph().Tasks {
			deps := t.Dependencies
			if deps == nil {
				deps = []string{}
			}
			a.Tasks = append(a.Tasks, apiGraphTask{Name: t.Name, Dependencies: deps, In: t.In, Out: t.Out})
		}
		out.Workflows = append(out.Workflows, a)
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *server) apiRuns(w http.ResponseWriter, r *request, f flow) {
	rq, err := parseRunsQuery(r.URL.Query())
	if err != nil {
		s.fail(w, r, http.StatusBadRequest, "", err.Error())
		return
	}
	runs, next, err := runsPage(r.Context(), f, rq)
	if errors.Is(err, errBadCursor) {
		s.fail(w, r, http.StatusBadRequest, "", err.Error())
		return
	}
	if err != nil {
		s.failErr(w, r, err)
		return
	}
	out := apiRuns{Runs: make([]apiRun, 0, len(runs)), NextCursor: next}
	for i := range runs {
		out.Runs = append(out.Runs, newAPIRun(&runs[i]))
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *server) apiRun(w http.ResponseWriter, r *request, f flow, id string) {
	rs, err := f.inspect(r.Context(), id)
	if err != nil {
		if errors.Is(err, workflow.ErrNotFound) {
			s.fail(w, r, http.StatusNotFound, "", fmt.Sprintf("workflow %q has no run %q", f.name(), id))
			return
		}
		s.failErr(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, rs)
}
