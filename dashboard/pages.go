package dashboard

import (
	"context"
	"errors"
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/b3b01171/workflow"
)

// pageView is what every page's layout needs.
type pageView struct {
	Title   string
	Base    string // relative URL of the dashboard's root
	Live    bool   // something is under way: the page refreshes itself
	Actions bool   // AllowActions lets this request act
	Crumbs  []crumb
}

type crumb struct{ Text, Href string }

// runRow is one run in a list.
type runRow struct {
	ID         string
	Href       string
	State      workflow.State
	Trigger    string
	Started    time.Time
	Duration   time.Duration
	FailedTask string
	Error      string
}

func workflowHref(name string) string { return "workflows/" + url.PathEscape(name) }

func runHref(wf, id string) string { return workflowHref(wf) + "/runs/" + url.PathEscape(id) }

func newRunRow(rs *workflow.RunStatus) runRow {
	row := runRow{
		ID: rs.RunID, Href: runHref(rs.Workflow, rs.RunID), State: rs.State, Trigger: rs.Trigger,
		Started: rs.StartedAt, Duration: runDuration(rs), Error: rs.Error,
	}
	row.FailedTask = failedTask(rs)
	return row
}

// failedTask is the first task of rs that failed or timed out.
func failedTask(rs *workflow.RunStatus) string {
	for _, t := range rs.Tasks {
		if t.State == workflow.StateFailed || t.State == workflow.StateTimedOut {
			return t.Name
		}
	}
	return ""
}

// runDuration is how long rs ran, or has been running.
func runDuration(rs *workflow.RunStatus) time.Duration {
	switch {
	case rs.StartedAt.IsZero():
		return 0
	case !rs.EndedAt.IsZero():
		return rs.EndedAt.Sub(rs.StartedAt)
	case rs.State == workflow.StateRunning || rs.State == workflow.StatePending:
		return time.Since(rs.StartedAt)
	}
	return 0
}

func underWay(s workflow.State) bool {
	return s == workflow.StateRunning || s == workflow.StatePending
}

// overviewRow is one workflow on the overview.
type overviewRow struct {
	Name        string
	Href        string
	Latest      *runRow
	Running     int
	RunningMore bool // Running is a floor: there are more
	Recent      int  // ended runs behind the figures
	Succeeded   int  // of them
	Median      time.Duration
	Schedule    *workflow.ScheduleEntry
	Err         string
}

type overviewView struct {
	pageView
	Workflows []overviewRow
}

func (s *server) overview(w http.ResponseWriter, r *request) {
	v := overviewView{pageView: s.page(r, "Workflows")}
	for _, f := range s.flows {
		row := s.overviewRow(r.Context(), f)
		v.Live = v.Live || row.Running > 0
		v.Workflows = append(v.Workflows, row)
	}
	s.render(w, r, http.StatusOK, "overview", v)
}

// overviewRow reads what the overview shows of f from its history: the
// latest runs (statsWindow of them) and those under way (runningLimit).
func (s *server) overviewRow(ctx context.Context, f flow) overviewRow {
	row := overviewRow{Name: f.name(), Href: workflowHref(f.name()), Schedule: s.schedule(f.name())}
	recent, err := f.history(ctx, workflow.HistoryLimit(statsWindow), workflow.HistorySummary())
	if err != nil {
		row.Err = err.Error()
		return row
	}
	if len(recent) > 0 {
		latest := newRunRow(&recent[0])
		row.Latest = &latest
	}
	var durations []time.Duration
	succeeded := 0
	for i := range recent {
		rs := &recent[i]
		if !rs.State.Ended() {
			continue
		}
		row.Recent++
		if rs.State == workflow.StateSucceeded {
			succeeded++
		}
		if !rs.StartedAt.IsZero() && !rs.EndedAt.IsZero() {
			durations = append(durations, rs.EndedAt.Sub(rs.StartedAt))
		}
	}
	row.Succeeded = succeeded
	if len(durations) > 0 {
		slices.Sort(durations)
		row.Median = durations[len(durations)/2]
	}
	running, err := f.history(ctx, workflow.HistoryState(workflow.StateRunning), workflow.HistoryLimit(runningLimit), workflow.HistorySummary())
	if err != nil {
		row.Err = err.Error()
		return row
	}
	row.Running, row.RunningMore = len(running), len(running) == runningLimit
	return row
}

// schedule is the Scheduler's entry for the named workflow, if any.
func (s *server) schedule(name string) *workflow.ScheduleEntry {
	if s.sched == nil {
		return nil
	}
	for _, e := range s.sched.Entries() {
		if e.Workflow == name {
			return &e
		}
	}
	return nil
}

func (s *server) page(r *request, title string, crumbs ...crumb) pageView {
	return pageView{Title: title, Base: r.base, Actions: s.allowed(r.Request), Crumbs: crumbs}
}

// runsQuery is a page of runs asked for in the query string.
type runsQuery struct {
	State  workflow.State
	Limit  int
	Cursor string // the run before which the page starts; "" for the newest
}

var states = []workflow.State{
	workflow.StatePending, workflow.StateRunning, workflow.StateInterrupted, workflow.StateSucceeded,
	workflow.StateFailed, workflow.StateTimedOut, workflow.StateCancelled,
}

// parseRunsQuery reads state, limit and cursor (or before, its name in the
// pages' links) from q, with an error saying what is wrong.
func parseRunsQuery(q url.Values) (runsQuery, error) {
	rq := runsQuery{State: workflow.State(q.Get("state")), Limit: defaultPage, Cursor: q.Get("cursor")}
	if rq.Cursor == "" {
		rq.Cursor = q.Get("before")
	}
	if rq.State != "" && !slices.Contains(states, rq.State) {
		return rq, fmt.Errorf("state %q is not a state of a run; use one of %v", rq.State, states)
	}
	if l := q.Get("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 1 || n > maxPage {
			return rq, fmt.Errorf("limit %q must be a whole number from 1 to %d", l, maxPage)
		}
		rq.Limit = n
	}
	return rq, nil
}

// runsPage reads one page of f's runs, newest first, and the cursor of the
// next page ("" when this is the last).
func runsPage(ctx context.Context, f flow, rq runsQuery) (runs []workflow.RunStatus, next string, err error) {
	opts := []workflow.HistoryOption{workflow.HistoryLimit(rq.Limit + 1), workflow.HistorySummary()}
	if rq.State != "" {
		opts = append(opts, workflow.HistoryState(rq.State))
	}
	if rq.Cursor != "" {
		opts = append(opts, workflow.HistoryBefore(rq.Cursor))
	}
	runs, err = f.history(ctx, opts...)
	if err != nil {
		if rq.Cursor != "" && errors.Is(err, workflow.ErrNotFound) {
			return nil, "", fmt.Errorf("%w: cursor %q names no run of workflow %q (it may have been dropped from the history)", errBadCursor, rq.Cursor, f.name())
		}
		return nil, "", err
	}
	if len(runs) > rq.Limit {
		runs = runs[:rq.Limit]
		next = runs[len(runs)-1].RunID
	}
	return runs, next, nil
}

var errBadCursor = errors.New("bad cursor")

type workflowView struct {
	pageView
	Name       string
	Href       string
	Graph      template.HTML
	Latest     *runRow
	Schedule   *workflow.ScheduleEntry
	InputType  string
	Input      string // what the user typed, shown again with an error
	InputError string
	States     []workflow.State
	Query      runsQuery
	Runs       []runRow
	Newer      bool // not the first page
	NextHref   string
	Tasks      []workflow.GraphTask
}

// workflowPage renders f's page; a failed "run now" passes its error and
// the input the user typed.
func (s *server) workflowPage(w http.ResponseWriter, r *request, f flow, inputErr error, input string) {
	rq, err := parseRunsQuery(r.URL.Query())
	if err != nil {
		s.fail(w, r, http.StatusBadRequest, "Bad request", err.Error())
		return
	}
	runs, next, err := runsPage(r.Context(), f, rq)
	if errors.Is(err, errBadCursor) {
		s.fail(w, r, http.StatusBadRequest, "Bad cursor", err.Error())
		return
	}
	if err != nil {
		s.failErr(w, r, err)
		return
	}
	v := workflowView{
		pageView: s.page(r, f.name(), crumb{f.name(), workflowHref(f.name())}),
		Name:     f.name(), Href: workflowHref(f.name()),
		Schedule: s.schedule(f.name()), InputType: f.inputType(), Input: input,
		States: states, Query: rq, Newer: rq.Cursor != "", Tasks: f.graph().Tasks,
	}
	if inputErr != nil {
		v.InputError = inputErr.Error()
	}
	for i := range runs {
		v.Runs = append(v.Runs, newRunRow(&runs[i]))
		v.Live = v.Live || underWay(runs[i].State)
	}
	if next != "" {
		q := url.Values{"before": {next}}
		if rq.State != "" {
			q.Set("state", string(rq.State))
		}
		if rq.Limit != defaultPage {
			q.Set("limit", strconv.Itoa(rq.Limit))
		}
		v.NextHref = v.Href + "?" + q.Encode()
	}
	latest, err := f.inspect(r.Context(), "")
	switch {
	case err == nil:
		row := newRunRow(&latest)
		v.Latest = &row
		v.Live = v.Live || underWay(latest.State)
	case !errors.Is(err, workflow.ErrNotFound):
		s.failErr(w, r, err)
		return
	}
	v.Graph = template.HTML(f.graph().SVG(latest)) // Graph.SVG escapes every name
	status := http.StatusOK
	if inputErr != nil {
		status = http.StatusBadRequest
	}
	s.render(w, r, status, "workflow", v)
}

type runView struct {
	pageView
	Workflow  string
	WfHref    string
	RunHref   string
	Run       workflow.RunStatus
	Duration  time.Duration
	Graph     template.HTML
	Timeline  timeline
	Tasks     []taskRow
	Events    []eventRow
	CanCancel bool
	CanResume bool
}

// taskRow and eventRow hold their cells as text, formatted in Go: a run
// of thousands of tasks renders several times faster so than through
// template functions.
type taskRow struct {
	Name, State, StateLabel         string
	Attempts                        int
	Started, Ended, Duration, Error string
	Output                          string
	Critical                        bool
	Items                           string // a Map task's progress
}

type eventRow struct {
	Time, Offset, Task, Type, Attempt, Error string
}

func (s *server) runPage(w http.ResponseWriter, r *request, f flow, id string) {
	rs, err := f.inspect(r.Context(), id)
	if err != nil {
		if errors.Is(err, workflow.ErrNotFound) {
			s.fail(w, r, http.StatusNotFound, "No such run", fmt.Sprintf("Workflow %q has no run %q.", f.name(), id))
			return
		}
		s.failErr(w, r, err)
		return
	}
	g := f.graph()
	v := runView{
		pageView: s.page(r, "Run "+rs.RunID, crumb{f.name(), workflowHref(f.name())}, crumb{rs.RunID, runHref(f.name(), rs.RunID)}),
		Workflow: f.name(), WfHref: workflowHref(f.name()), RunHref: runHref(f.name(), rs.RunID),
		Run: rs, Duration: runDuration(&rs),
		Graph:     template.HTML(g.SVG(rs)), // Graph.SVG escapes every name
		Timeline:  buildTimeline(&rs, g, time.Now()),
		CanCancel: underWay(rs.State),
		CanResume: rs.State == workflow.StateFailed || rs.State == workflow.StateTimedOut ||
			rs.State == workflow.StateCancelled || rs.State == workflow.StateInterrupted,
	}
	v.Live = underWay(rs.State)
	critical := map[string]bool{}
	for _, row := range v.Timeline.Rows {
		critical[row.Task] = row.Critical
	}
	v.Tasks = make([]taskRow, 0, len(rs.Tasks))
	for _, t := range rs.Tasks {
		d := time.Duration(0)
		if !t.StartedAt.IsZero() && !t.EndedAt.IsZero() {
			d = t.EndedAt.Sub(t.StartedAt)
		}
		v.Tasks = append(v.Tasks, taskRow{
			Name: t.Name, State: string(t.State), StateLabel: stateLabel(t.State), Attempts: t.Attempts,
			Started: fmtTime(t.StartedAt), Ended: fmtTime(t.EndedAt), Duration: fmtDur(d),
			Error: t.Error, Output: string(t.Output), Critical: critical[t.Name],
			Items: itemsText(&rs, t.Name),
		})
	}
	v.Events = make([]eventRow, 0, len(rs.Events))
	for _, e := range rs.Events {
		row := eventRow{Time: fmtTime(e.Time), Task: e.Task, Type: e.Type, Error: e.Error}
		if !rs.StartedAt.IsZero() {
			row.Offset = "+" + roundDur(e.Time.Sub(rs.StartedAt)).String()
		}
		if e.Attempt > 0 {
			row.Attempt = strconv.Itoa(e.Attempt)
		}
		switch e.Type {
		case workflow.EventItemRetrying, workflow.EventItemFailed:
			row.Task += " [item " + strconv.Itoa(e.Item) + "]"
		case workflow.EventItemsStarted:
			row.Error = strconv.Itoa(e.Item) + " items"
		case workflow.EventItemsProgress:
			row.Error = strconv.Itoa(e.Item) + " done"
		}
		v.Events = append(v.Events, row)
	}
	s.render(w, r, http.StatusOK, "run", v)
}

// startRun starts a run on the input typed in the form ("" for the zero
// input, or the scheduled input when the workflow is on the Scheduler).
func (s *server) startRun(w http.ResponseWriter, r *request, f flow) {
	r.Body = http.MaxBytesReader(w, r.Body, maxInput)
	if err := r.ParseForm(); err != nil {
		s.fail(w, r, http.StatusBadRequest, "Bad request", "The form could not be read: "+err.Error())
		return
	}
	input := r.PostForm.Get("input")
	ctx := context.WithoutCancel(r.Context()) // the run outlives the request
	var id string
	var err error
	if s.schedule(f.name()) != nil && input == "" {
		id, err = s.sched.Trigger(ctx, f.name())
	} else {
		id, err = f.start(ctx, []byte(input))
	}
	if err != nil {
		if errors.Is(err, errBadInput) || errors.Is(err, workflow.ErrInvalidInput) {
			s.workflowPage(w, r, f, err, input)
			return
		}
		s.failErr(w, r, err)
		return
	}
	s.redirect(w, r, runHref(f.name(), id))
}

func (s *server) cancelRun(w http.ResponseWriter, r *request, f flow, id string) {
	ctx, cancel := context.WithTimeout(r.Context(), cancelWait)
	defer cancel()
	if err := f.cancel(ctx, id); err != nil {
		s.failErr(w, r, err)
		return
	}
	s.redirect(w, r, runHref(f.name(), id))
}

// resumeRun starts Resume of the run. Resume returns when the run ends, so
// it goes on without the request; a Resume refused at once (a run that
// succeeded meanwhile, one whose stored state does not fit) is reported.
func (s *server) resumeRun(w http.ResponseWriter, r *request, f flow, id string) {
	rs, err := f.inspect(r.Context(), id)
	if err != nil {
		s.failErr(w, r, err)
		return
	}
	if rs.State == workflow.StateSucceeded || underWay(rs.State) {
		s.fail(w, r, http.StatusConflict, "Conflict", fmt.Sprintf("Run %q is %s: only a failed, timed-out, cancelled or interrupted run can be resumed.", id, rs.State))
		return
	}
	done := f.resume(context.WithoutCancel(r.Context()), id)
	t := time.NewTimer(actionWait)
	defer t.Stop()
	for {
		select {
		case err := <-done:
			if err != nil && (errors.Is(err, workflow.ErrNotResumable) || errors.Is(err, workflow.ErrNotFound)) {
				s.failErr(w, r, err)
				return
			}
			// It ran, and ended already: its page tells how.
			s.redirect(w, r, runHref(f.name(), id))
			return
		case <-t.C:
			s.redirect(w, r, runHref(f.name(), id))
			return
		case <-time.After(10 * time.Millisecond):
			if now, err := f.inspect(r.Context(), id); err == nil && underWay(now.State) {
				s.redirect(w, r, runHref(f.name(), id))
				return
			}
		}
	}
}

// itemsText is the progress of Map task name in rs, as "12 / 100 items",
// with the failed items' indexes; "" for a task that is not a Map.
func itemsText(rs *workflow.RunStatus, name string) string {
	is, ok := rs.Items(name)
	if !ok {
		return ""
	}
	text := fmt.Sprintf("%d / %d items", is.Done, is.Total)
	if len(is.Failed) > 0 {
		failed := make([]string, len(is.Failed))
		for k, i := range is.Failed {
			failed[k] = strconv.Itoa(i)
		}
		text += ", failed: " + strings.Join(failed, ", ")
	}
	return text
}
