package dashboard

import (
	"bytes"
	"context"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"net/url"
	"path"
	"strings"
	"sync"
	"time"

	"github.com/b3b01171/workflow"
)

//go:embed templates static
var assets embed.FS

// Bounds on the work of one request.
const (
	defaultPage  = 25               // runs per page
	maxPage      = 100              // runs per page at most (?limit=)
	statsWindow  = 50               // recent runs behind the overview's figures
	runningLimit = 100              // runs under way counted at most
	maxInput     = 1 << 20          // bytes of a run's input typed in the form
	actionWait   = 2 * time.Second  // for a refused Resume to say so
	cancelWait   = 10 * time.Second // for a run to end once cancelled
)

type server struct {
	flows  []flow
	byName map[string]flow
	sched  *workflow.Scheduler
	allow  func(*http.Request) bool
	csrf   *http.CrossOriginProtection
	pages  map[string]*template.Template
	static map[string][]byte
}

func newServer(c config) *server {
	s := &server{
		flows:  c.flows,
		byName: make(map[string]flow, len(c.flows)),
		sched:  c.sched,
		allow:  c.allow,
		csrf:   http.NewCrossOriginProtection(),
		pages:  map[string]*template.Template{},
		static: map[string][]byte{},
	}
	for _, f := range c.flows {
		s.byName[f.name()] = f
	}
	for _, page := range []string{"overview", "workflow", "run", "error"} {
		s.pages[page] = template.Must(template.New("layout.html").Funcs(funcs).ParseFS(assets, "templates/layout.html", "templates/"+page+".html"))
	}
	files, _ := fs.Glob(assets, "static/*")
	for _, name := range files {
		s.static[path.Base(name)], _ = assets.ReadFile(name)
	}
	return s
}

// request is one request, routed: its path segments, unescaped.
type request struct {
	*http.Request
	segs []string
	base string // the relative URL of the dashboard's root, for <base>
}

func (s *server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'self' 'unsafe-inline'; script-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; base-uri 'self'; frame-ancestors 'none'")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "same-origin")

	raw := r.URL.EscapedPath()
	if raw == "" {
		// Mounted so that the root has no slash ("/dash" under
		// StripPrefix("/dash")): relative links need one.
		to := path.Base(strings.TrimSuffix(strings.SplitN(r.RequestURI, "?", 2)[0], "/"))
		if to == "." || to == "/" {
			to = ""
		}
		h.Set("Location", to+"/")
		w.WriteHeader(http.StatusMovedPermanently)
		return
	}
	rawSegs := strings.Split(strings.TrimPrefix(raw, "/"), "/")
	req := &request{Request: r, base: "./"}
	if len(rawSegs) > 1 {
		req.base = strings.Repeat("../", len(rawSegs)-1)
	}
	for _, seg := range rawSegs {
		u, err := url.PathUnescape(seg)
		if err != nil {
			s.fail(w, req, http.StatusBadRequest, "Bad path", fmt.Sprintf("The path %q is not valid: %v.", raw, err))
			return
		}
		req.segs = append(req.segs, u)
	}
	if len(req.segs) == 1 && req.segs[0] == "" {
		req.segs = nil
	}
	s.route(w, req)
}

func (s *server) route(w http.ResponseWriter, r *request) {
	seg := r.segs
	switch {
	case len(seg) == 0:
		s.get(w, r, s.overview)
	case len(seg) == 2 && seg[0] == "static":
		s.get(w, r, s.asset)
	case len(seg) >= 2 && seg[0] == "workflows":
		f, ok := s.byName[seg[1]]
		if !ok {
			s.fail(w, r, http.StatusNotFound, "No such workflow", fmt.Sprintf("The dashboard shows no workflow named %q.", seg[1]))
			return
		}
		switch {
		case len(seg) == 2:
			s.get(w, r, func(w http.ResponseWriter, r *request) { s.workflowPage(w, r, f, nil, "") })
		case len(seg) == 3 && seg[2] == "run":
			s.post(w, r, func(w http.ResponseWriter, r *request) { s.startRun(w, r, f) })
		case len(seg) == 4 && seg[2] == "runs":
			s.get(w, r, func(w http.ResponseWriter, r *request) { s.runPage(w, r, f, seg[3]) })
		case len(seg) == 5 && seg[2] == "runs" && seg[4] == "cancel":
			s.post(w, r, func(w http.ResponseWriter, r *request) { s.cancelRun(w, r, f, seg[3]) })
		case len(seg) == 5 && seg[2] == "runs" && seg[4] == "resume":
			s.post(w, r, func(w http.ResponseWriter, r *request) { s.resumeRun(w, r, f, seg[3]) })
		default:
			s.notFound(w, r)
		}
	case len(seg) >= 2 && seg[0] == "api" && seg[1] == "workflows":
		s.routeAPI(w, r)
	default:
		s.notFound(w, r)
	}
}

func (s *server) notFound(w http.ResponseWriter, r *request) {
	s.fail(w, r, http.StatusNotFound, "Not found", fmt.Sprintf("The dashboard has no page at %q.", r.URL.Path))
}

// get serves r with page if it is a GET or HEAD request.
func (s *server) get(w http.ResponseWriter, r *request, page func(http.ResponseWriter, *request)) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		s.fail(w, r, http.StatusMethodNotAllowed, "Method not allowed", r.Method+" is not allowed here: this is a page to read.")
		return
	}
	page(w, r)
}

// post serves r with action if it is a POST request that AllowActions lets
// through and that does not come from another site.
func (s *server) post(w http.ResponseWriter, r *request, action func(http.ResponseWriter, *request)) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", "POST")
		s.fail(w, r, http.StatusMethodNotAllowed, "Method not allowed", r.Method+" is not allowed here: actions are POST requests.")
		return
	}
	if !s.allowed(r.Request) {
		s.fail(w, r, http.StatusForbidden, "Forbidden", "This dashboard does not allow you to act on runs.")
		return
	}
	if err := s.csrf.Check(r.Request); err != nil {
		s.fail(w, r, http.StatusForbidden, "Forbidden", "The request came from another site: "+err.Error()+".")
		return
	}
	action(w, r)
}

func (s *server) allowed(r *http.Request) bool { return s.allow != nil && s.allow(r) }

// redirect sends the browser to to, a path relative to the dashboard's
// root, after an action: Location is relative too, so that a prefix
// stripped before the handler is kept.
func (s *server) redirect(w http.ResponseWriter, r *request, to string) {
	w.Header().Set("Location", r.base+to)
	w.WriteHeader(http.StatusSeeOther)
}

func (s *server) asset(w http.ResponseWriter, r *request) {
	body, ok := s.static[r.segs[1]]
	if !ok {
		s.notFound(w, r)
		return
	}
	ctype := "text/plain; charset=utf-8"
	switch path.Ext(r.segs[1]) {
	case ".css":
		ctype = "text/css; charset=utf-8"
	case ".js":
		ctype = "text/javascript; charset=utf-8"
	}
	w.Header().Set("Content-Type", ctype)
	w.Header().Set("Cache-Control", "no-cache")
	_, _ = w.Write(body)
}

// errorView is the data of the error page.
type errorView struct {
	pageView
	Status  int
	Message string
}

// fail answers with an error page, or a JSON error under api/.
func (s *server) fail(w http.ResponseWriter, r *request, status int, title, message string) {
	if len(r.segs) > 0 && r.segs[0] == "api" {
		writeJSON(w, status, map[string]string{"error": message})
		return
	}
	s.render(w, r, status, "error", errorView{pageView: pageView{Title: title, Base: r.base}, Status: status, Message: message})
}

// failErr answers for err, an error of the workflow API: a client's
// mistake (an unknown run, a run in the wrong state, a bad input) gets a
// 4xx and the error's text, anything else 500.
func (s *server) failErr(w http.ResponseWriter, r *request, err error) {
	status, title := http.StatusInternalServerError, "Error"
	switch {
	case errors.Is(err, workflow.ErrNotFound):
		status, title = http.StatusNotFound, "Not found"
	case errors.Is(err, workflow.ErrRunEnded), errors.Is(err, workflow.ErrRunElsewhere),
		errors.Is(err, workflow.ErrNotResumable), errors.Is(err, workflow.ErrDuplicateRun):
		status, title = http.StatusConflict, "Conflict"
	case errors.Is(err, errBadInput), errors.Is(err, workflow.ErrInvalidInput):
		status, title = http.StatusBadRequest, "Bad input"
	case errors.Is(err, context.DeadlineExceeded):
		status, title = http.StatusGatewayTimeout, "Timeout"
	}
	s.fail(w, r, status, title, err.Error())
}

// buffers keep the pages' buffers between requests: a big page grows its
// buffer once, not on every request.
var buffers = sync.Pool{New: func() any { return new(bytes.Buffer) }}

func (s *server) render(w http.ResponseWriter, r *request, status int, page string, data any) {
	b := buffers.Get().(*bytes.Buffer)
	defer func() {
		if b.Cap() <= 16<<20 {
			b.Reset()
			buffers.Put(b)
		}
	}()
	if err := s.pages[page].Execute(b, data); err != nil {
		http.Error(w, "dashboard: rendering "+page+": "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	if r.Method != http.MethodHead {
		_, _ = w.Write(b.Bytes())
	}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	body, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		status = http.StatusInternalServerError
		body, _ = json.Marshal(map[string]string{"error": err.Error()})
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write(append(body, '\n'))
}
