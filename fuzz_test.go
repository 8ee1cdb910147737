package workflow_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/robfig/cron/v3"
	"github.com/stretchr/testify/require"

	"github.com/b3b01171/workflow"
)

// The fuzz targets of this file replay their seeds (f.Add below and the
// corpus committed in testdata/fuzz/<FuzzName>/) in every plain `go test`.
// Fuzz them with, for instance:
//
//	go test -run='^$' -fuzz='^FuzzNew$' -fuzztime=60s
//	go test -run='^$' -fuzz='^FuzzSchedule$' -fuzztime=60s

// fzBytes reads a fuzz input a byte at a time; past its end it reads zeros,
// so every input decodes to some definition.
type fzBytes struct {
	b []byte
	i int
}

func (r *fzBytes) next() int {
	if r.i >= len(r.b) {
		r.i++
		return 0
	}
	v := r.b[r.i]
	r.i++
	return int(v)
}

// fzNames are the task names a fuzz input picks from: few, so that
// duplicates and references to existing tasks are common, with the empty
// name and some odd ones among them.
var fzNames = []string{"a", "b", "c", "d", "e", "f", "g", "h", "", "ä→ß", "with space", `q"uote`}

// fzKind is the Go type of a fuzzed task.
type fzKind int

const (
	fzIntInt    fzKind = iota // Task[int, int]
	fzInputsInt               // Task[workflow.Inputs, int]
	fzStringInt               // Task[string, int]: a type mismatch anywhere
)

type fzTask struct {
	name       string
	kind       fzKind
	nilHandler bool
	deps       []string
	attempts   int
	timeout    time.Duration
}

type fzDef struct {
	name        string
	tasks       []fzTask
	output      string // WithOutput; "" for none
	concurrency int    // WithMaxConcurrency; -1..4
}

// fzDecode turns fuzz bytes into a workflow definition: up to 11 tasks with
// names from fzNames (empty and duplicate names included), dependencies on
// any task (itself and later ones included, so self-loops and cycles) or on
// names that do not exist, some nil handlers, mismatched types and negative
// figures.
func fzDecode(data []byte) fzDef {
	r := &fzBytes{b: data}
	var d fzDef
	d.name = "fuzz"
	if r.next()%32 == 31 {
		d.name = ""
	}
	n := r.next() % 12
	names := make([]string, n)
	for i := range names {
		v := r.next()
		if v < 200 {
			names[i] = fzNames[i%8] // unique unless a later byte says otherwise
		} else {
			names[i] = fzNames[v%len(fzNames)]
		}
	}
	for i := range n {
		t := fzTask{name: names[i]}
		switch v := r.next(); {
		case v < 8:
			t.kind = fzStringInt
		case v < 128:
			t.kind = fzIntInt
		default:
			t.kind = fzInputsInt
		}
		t.nilHandler = r.next() == 255
		ndeps := r.next() % 5
		for range ndeps {
			v := r.next()
			switch {
			case n == 0:
			case v >= 250:
				t.deps = append(t.deps, "missing")
			case v >= 160: // any task: self-loops and cycles
				t.deps = append(t.deps, names[v%n])
			case i > 0: // an earlier task: an acyclic edge
				t.deps = append(t.deps, names[v%i])
			}
		}
		switch v := r.next(); {
		case v == 255:
			t.attempts = -1
		default:
			t.attempts = v % 4
		}
		if r.next() == 255 {
			t.timeout = -time.Second
		}
		d.tasks = append(d.tasks, t)
	}
	if v := r.next(); v >= 128 && n > 0 {
		d.output = names[v%n]
	} else if v == 127 {
		d.output = "missing"
	}
	d.concurrency = r.next()%6 - 1
	return d
}

// fzExpect is what New must say about d, worked out independently of the
// library: whether d is valid, and the sentinels its error must wrap.
type fzExpect struct {
	valid     bool
	sentinels []error
}

func (d fzDef) expect() fzExpect {
	var ex fzExpect
	bad := false
	problem := func(sentinels ...error) {
		bad = true
		ex.sentinels = append(ex.sentinels, sentinels...)
	}
	if d.name == "" || len(d.tasks) == 0 || d.concurrency < 0 {
		problem()
	}
	index := map[string]int{}
	unique := true
	for i, t := range d.tasks {
		if _, dup := index[t.name]; dup && t.name != "" {
			unique = false
			problem(workflow.ErrDuplicateTask)
		} else if t.name != "" {
			index[t.name] = i
		}
		if t.name == "" {
			unique = false
			problem()
		}
		if t.nilHandler || t.attempts < 0 || t.timeout < 0 {
			problem()
		}
	}
	for _, t := range d.tasks {
		seen := map[string]bool{}
		for _, dep := range t.deps {
			if _, ok := index[dep]; !ok {
				problem(workflow.ErrUnknownDependency)
			} else if seen[dep] {
				problem()
			}
			seen[dep] = true
		}
	}
	if unique {
		// With unique names every dependency resolves one way, so cycles,
		// types and the output are certain.
		if d.cyclic(index) {
			problem(workflow.ErrCycle)
		}
		for _, t := range d.tasks {
			known := 0
			for _, dep := range uniq(t.deps) {
				if _, ok := index[dep]; ok {
					known++
				}
			}
			switch {
			case len(t.deps) == 0 && t.kind != fzIntInt:
				problem(workflow.ErrTypeMismatch)
			case known == 1 && t.kind == fzStringInt:
				problem(workflow.ErrTypeMismatch)
			case known > 1 && t.kind != fzInputsInt:
				problem(workflow.ErrTypeMismatch)
			}
		}
		if d.output == "" {
			hasDependents := map[string]bool{}
			for _, t := range d.tasks {
				for _, dep := range t.deps {
					hasDependents[dep] = true
				}
			}
			sinks := 0
			for _, t := range d.tasks {
				if !hasDependents[t.name] {
					sinks++
				}
			}
			if sinks != 1 {
				problem()
			}
		} else if _, ok := index[d.output]; !ok {
			problem()
		}
	}
	ex.valid = !bad
	if !ex.valid {
		ex.sentinels = append(ex.sentinels, workflow.ErrInvalidWorkflow)
	}
	return ex
}

func uniq(s []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, v := range s {
		if !seen[v] {
			seen[v] = true
			out = append(out, v)
		}
	}
	return out
}

// cyclic reports whether the dependencies of d (names unique) have a cycle.
func (d fzDef) cyclic(index map[string]int) bool {
	const (
		white = iota
		grey
		black
	)
	color := make([]int, len(d.tasks))
	var visit func(i int) bool
	visit = func(i int) bool {
		color[i] = grey
		for _, dep := range d.tasks[i].deps {
			j, ok := index[dep]
			if !ok {
				continue
			}
			if color[j] == grey || (color[j] == white && visit(j)) {
				return true
			}
		}
		color[i] = black
		return false
	}
	for i := range d.tasks {
		if color[i] == white && visit(i) {
			return true
		}
	}
	return false
}

// fzProbe records what the handlers of a fuzzed run saw.
type fzProbe struct {
	mu       sync.Mutex
	started  map[string]int  // task → times started
	finished map[string]bool // task → returned
	errs     []string
}

func (p *fzProbe) fail(format string, args ...any) {
	p.errs = append(p.errs, fmt.Sprintf(format, args...))
}

// fzOutput is the output of the task at index i: distinct per task, so a
// task can tell which value it was given.
func fzOutput(i int) int { return 1000 + i }

const fzInput = 7

// build makes the workflow.Tasks of d. Each handler checks, as it starts,
// that it was not started before and that all its dependencies finished,
// and that it received what they gave.
func (d fzDef) build(p *fzProbe) workflow.Tasks {
	index := map[string]int{}
	for i, t := range d.tasks {
		if _, dup := index[t.name]; !dup {
			index[t.name] = i
		}
	}
	begin := func(t fzTask) {
		p.mu.Lock()
		defer p.mu.Unlock()
		p.started[t.name]++
		if p.started[t.name] > 1 {
			p.fail("task %q started %d times", t.name, p.started[t.name])
		}
		for _, dep := range t.deps {
			if !p.finished[dep] {
				p.fail("task %q started before its dependency %q finished", t.name, dep)
			}
		}
	}
	end := func(t fzTask) {
		p.mu.Lock()
		defer p.mu.Unlock()
		p.finished[t.name] = true
	}
	tasks := make(workflow.Tasks, 0, len(d.tasks))
	for i, t := range d.tasks {
		out := fzOutput(i)
		var task workflow.AnyTask
		switch t.kind {
		case fzIntInt:
			want := fzInput
			if len(t.deps) == 1 {
				want = fzOutput(index[t.deps[0]])
			}
			h := func(ctx context.Context, in int) (int, error) {
				begin(t)
				defer end(t)
				if in != want {
					p.mu.Lock()
					p.fail("task %q received %d, want %d", t.name, in, want)
					p.mu.Unlock()
				}
				return out, nil
			}
			tt := workflow.Task[int, int]{Name: t.name, Handler: h, Dependencies: t.deps}
			if t.nilHandler {
				tt.Handler = nil
			}
			tt.Retry.Attempts, tt.Timeout = t.attempts, t.timeout
			task = tt
		case fzInputsInt:
			h := func(ctx context.Context, in workflow.Inputs) (int, error) {
				begin(t)
				defer end(t)
				p.mu.Lock()
				defer p.mu.Unlock()
				for _, dep := range t.deps {
					v, err := workflow.Get[int](in, dep)
					if err != nil || v != fzOutput(index[dep]) {
						p.fail("task %q: Get(%q) = %d, %v; want %d", t.name, dep, v, err, fzOutput(index[dep]))
					}
					if _, err := workflow.Get[string](in, dep); !errors.Is(err, workflow.ErrTypeMismatch) {
						p.fail("task %q: Get[string](%q) = %v, want ErrTypeMismatch", t.name, dep, err)
					}
				}
				if _, err := workflow.Get[int](in, "missing"); !errors.Is(err, workflow.ErrNotFound) {
					p.fail("task %q: Get(missing) = %v, want ErrNotFound", t.name, err)
				}
				return out, nil
			}
			tt := &workflow.Task[workflow.Inputs, int]{Name: t.name, Handler: h, Dependencies: t.deps}
			if t.nilHandler {
				tt.Handler = nil
			}
			tt.Retry.Attempts, tt.Timeout = t.attempts, t.timeout
			task = tt
		case fzStringInt:
			tt := workflow.Task[string, int]{Name: t.name, Dependencies: t.deps,
				Handler: func(context.Context, string) (int, error) { return out, nil }}
			if t.nilHandler {
				tt.Handler = nil
			}
			tt.Retry.Attempts, tt.Timeout = t.attempts, t.timeout
			task = tt
		}
		tasks = append(tasks, task)
	}
	return tasks
}

// fzSeedsNew are inputs for FuzzNew chosen by hand: [wfname, n, names...,
// then per task: kind, nil, ndeps, deps..., attempts, timeout].
var fzSeedsNew = [][]byte{
	{},
	{0, 1, 0, 64, 0, 0, 1, 0}, // one task
	{0, 3, 0, 0, 0, 64, 0, 0, 1, 0, 64, 0, 1, 0, 1, 0, 200, 0, 1, 0, 0},                                // a → b → c
	{0, 2, 0, 0, 64, 0, 1, 160, 1, 0, 64, 0, 1, 160, 1, 0},                                             // self-loops
	{0, 2, 0, 0, 64, 0, 1, 161, 1, 0, 64, 0, 1, 160, 1, 0},                                             // a ⇄ b
	{0, 2, 0, 255, 64, 0, 0, 1, 0, 64, 0, 0, 1, 0},                                                     // duplicate names
	{0, 2, 255, 0, 64, 0, 0, 1, 0, 64, 0, 1, 250, 1, 0},                                                // missing dep, odd name
	{31, 1, 0, 64, 255, 0, 255, 255},                                                                   // everything negative and nil
	{0, 4, 0, 0, 0, 0, 64, 0, 0, 1, 0, 64, 0, 1, 0, 1, 0, 64, 0, 1, 0, 1, 0, 200, 0, 2, 1, 2, 1, 0, 5}, // diamond
	{0, 3, 0, 0, 0, 64, 0, 0, 1, 0, 64, 0, 0, 1, 0, 64, 0, 0, 1, 0, 129, 3},                            // three sinks, WithOutput
	{0, 3, 0, 0, 0, 3, 0, 0, 1, 0, 64, 0, 1, 0, 1, 0, 64, 0, 2, 0, 1, 1, 0},                            // string task, repeated dep
}

// FuzzNew checks that any definition gives either a workflow or an error
// wrapping ErrInvalidWorkflow (and the sentinel of each problem), never a
// panic or a hang, and that a valid one runs every task exactly once, each
// after all its dependencies, with the values they gave.
func FuzzNew(f *testing.F) {
	for _, s := range fzSeedsNew {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		d := fzDecode(data)
		ex := d.expect()
		probe := &fzProbe{started: map[string]int{}, finished: map[string]bool{}}
		var opts []workflow.Option
		if d.output != "" {
			opts = append(opts, workflow.WithOutput(d.output))
		}
		opts = append(opts, workflow.WithMaxConcurrency(d.concurrency))
		w, err := workflow.New[int, int](d.name, d.build(probe), opts...)
		if !ex.valid {
			require.Error(t, err, "definition %+v", d)
			require.Nil(t, w)
			for _, s := range ex.sentinels {
				require.ErrorIs(t, err, s, "definition %+v", d)
			}
			var werr *workflow.WorkflowError
			require.ErrorAs(t, err, &werr)
			require.NotEmpty(t, werr.Details["problems"])
			return
		}
		require.NoError(t, err, "definition %+v", d)
		require.NotNil(t, w)

		synctest.Test(t, func(t *testing.T) {
			out, err := w.Run(t.Context(), fzInput)
			require.NoError(t, err)
			probe.mu.Lock()
			defer probe.mu.Unlock()
			require.Empty(t, probe.errs)
			for _, task := range d.tasks {
				require.Equal(t, 1, probe.started[task.name], "task %q", task.name)
			}
			wantOut := -1
			for i, task := range d.tasks {
				if task.name == d.output || (d.output == "" && !d.hasDependents(task.name)) {
					wantOut = fzOutput(i)
				}
			}
			require.Equal(t, wantOut, out)
			rs, err := w.Status(t.Context())
			require.NoError(t, err)
			require.Equal(t, workflow.StateSucceeded, rs.State)
			require.Len(t, rs.Tasks, len(d.tasks))
			for _, ts := range rs.Tasks {
				require.Equal(t, workflow.StateSucceeded, ts.State, ts.Name)
				require.Equal(t, 1, ts.Attempts, ts.Name)
			}
		})
	})
}

func (d fzDef) hasDependents(name string) bool {
	for _, t := range d.tasks {
		for _, dep := range t.deps {
			if dep == name {
				return true
			}
		}
	}
	return false
}

// fzCronParser is the contract of Schedule.Cron: the five standard fields
// and the descriptors, as robfig/cron parses them.
var fzCronParser = cron.NewParser(cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)

// fzParseCron is what robfig/cron makes of spec, with its panics (it has
// some, on "TZ=" prefixes without a space) turned into errors.
func fzParseCron(spec string) (s cron.Schedule, err error) {
	defer func() {
		if v := recover(); v != nil {
			err = fmt.Errorf("cron parser panicked: %v", v)
		}
	}()
	return fzCronParser.Parse(spec)
}

// FuzzSchedule checks that any cron text, time zone and overlap policy
// given to New through WithSchedule give either a workflow or an error
// wrapping ErrInvalidSchedule (and ErrInvalidWorkflow) that quotes what was
// wrong, never a panic. New accepts only what the cron parser and the time
// zone database accept, and refuses that only where it is documented to
// be stricter: a zone prefix in the cron text, "@every" under a second, a
// schedule that never fires.
func FuzzSchedule(f *testing.F) {
	for _, s := range []struct {
		cron, tz string
		overlap  int8
	}{
		{"0 0 * * *", "UTC", 0},
		{"@daily", "", 1},
		{"@every 90s", "America/New_York", 2},
		{"@every 1h", "Europe/Paris", 0},
		{"*/5 9-17 * * 1-5", "Asia/Kolkata", 0},
		{"30 2 * * *", "America/New_York", 0}, // in the spring gap
		{"0 0 30 2 *", "UTC", 0},              // never fires
		{"", "UTC", 0},
		{"* * * * * *", "UTC", 0},
		{"61 * * * *", "UTC", 0},
		{"@every -1s", "UTC", 0},
		{"@every 0.5s", "UTC", 0},
		{"@every", "UTC", 0},
		{"@yearly", "Mars/Olympus", 0},
		{"0 0 * * *", "../../etc/passwd", 0},
		{"0 0 * * *", "Local", 0},
		{"0 0 * * *", "UTC", 3},
		{"0 0 * * *", "UTC", -1},
		{"TZ=UTC", "UTC", 0}, // robfig/cron panics on this one
		{"CRON_TZ=Asia/Tokyo 0 0 * * *", "", 0},
		{"1-0/0 * * * *", "", 0},
	} {
		f.Add(s.cron, s.tz, s.overlap)
	}
	task := workflow.Task[struct{}, struct{}]{Name: "only",
		Handler: func(context.Context, struct{}) (struct{}, error) { return struct{}{}, nil }}
	f.Fuzz(func(t *testing.T, spec, tz string, overlap int8) {
		sched := workflow.Schedule{Cron: spec, Timezone: tz, Overlap: workflow.OverlapPolicy(overlap)}
		w, err := workflow.New[struct{}, struct{}]("fuzz", workflow.Tasks{task}, workflow.WithSchedule(sched))

		parsed, cronErr := fzParseCron(spec)
		loc, tzErr := time.UTC, error(nil)
		if tz != "" {
			loc, tzErr = time.LoadLocation(tz)
		}
		overlapOK := overlap >= int8(workflow.OverlapSkip) && overlap <= int8(workflow.OverlapQueue)
		if err != nil {
			require.Nil(t, w)
			require.ErrorIs(t, err, workflow.ErrInvalidSchedule, "cron %q, zone %q, overlap %d", spec, tz, overlap)
			require.ErrorIs(t, err, workflow.ErrInvalidWorkflow)
			// Each problem present could be the one reported; the error
			// must report one of them, quoting it.
			msg := err.Error()
			trimmed := strings.TrimSpace(spec)
			every, everyErr := time.ParseDuration(strings.TrimSpace(strings.TrimPrefix(trimmed, "@every ")))
			stricter := strings.HasPrefix(trimmed, "TZ=") || strings.HasPrefix(trimmed, "CRON_TZ=") ||
				(strings.HasPrefix(trimmed, "@every ") && everyErr == nil && every < time.Second) ||
				(cronErr == nil && tzErr == nil && parsed.Next(time.Now().In(loc)).IsZero())
			var marks []string
			if tzErr != nil {
				marks = append(marks, strconv.Quote(tz))
			}
			if cronErr != nil || stricter {
				marks = append(marks, strconv.Quote(spec))
			}
			if !overlapOK {
				marks = append(marks, "overlap")
			}
			require.NotEmpty(t, marks, "New refused cron %q, zone %q, overlap %d, which are valid: %v", spec, tz, overlap, err)
			require.True(t, slices.ContainsFunc(marks, func(m string) bool { return strings.Contains(msg, m) }),
				"the error %q quotes none of %q", msg, marks)
			return
		}
		require.NotNil(t, w)
		require.NoError(t, cronErr, "New accepted cron %q, which the parser refuses", spec)
		require.NoError(t, tzErr, "New accepted zone %q", tz)
		require.True(t, overlapOK, "New accepted overlap %d", overlap)
		// The next fires are computable and move forward.
		at := time.Now().In(loc)
		for range 3 {
			next := parsed.Next(at)
			require.False(t, next.IsZero(), "cron %q accepted but never fires after %v", spec, at)
			require.True(t, next.After(at), "cron %q: next fire %v is not after %v", spec, next, at)
			at = next
		}
		s := workflow.NewScheduler()
		require.NoError(t, s.Register(w))
		entries := s.Entries()
		require.Len(t, entries, 1)
		require.Equal(t, "fuzz", entries[0].Workflow)
		require.Equal(t, spec, entries[0].Cron)
	})
}
