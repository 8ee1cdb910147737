package workflow_test

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/b3b01171/workflow"
)

// soakLong runs the long fault soak:
//
//	go test -race -run='^TestSoak' -soak -timeout=60m -v
var soakLong = flag.Bool("soak", false, "run the long fault soak (many more runs of up to 10,000 tasks; minutes)")

// soakFault is what one handler call does.
type soakFault int

const (
	soakOK        soakFault = iota // returns at once
	soakOKSleep                    // sleeps less than half its timeout (respecting ctx), then succeeds
	soakFail                       // returns an error
	soakPermanent                  // returns a Permanent error
	soakPanic                      // panics
	soakIgnore                     // sleeps past its timeout ignoring ctx, then returns nil
	soakSlow                       // sleeps past its timeout, respecting ctx
	soakFaults
)

var soakFaultNames = [...]string{"ok", "ok-sleep", "fail", "permanent", "panic", "ignore-ctx", "slow"}

// failing reports whether a call of kind k fails its attempt, for a task
// with timeout d. Without a timeout, sleeping past it cannot happen: the
// call succeeds after its sleep, unless the run is stopped.
func (k soakFault) failing(d time.Duration) bool {
	switch k {
	case soakFail, soakPermanent, soakPanic:
		return true
	case soakIgnore, soakSlow:
		return d > 0
	}
	return false
}

// soakCall is one call of a handler, as the handler saw it.
type soakCall struct {
	phase int // 1: Run, 2: Resume
	kind  soakFault
	start int64 // every start and end takes the next number of one sequence
	end   int64 // 0 while under way
	ok    bool  // returned nil
}

type soakTask struct {
	deps    []int
	retry   workflow.RetryPolicy
	timeout time.Duration
}

// soakConfig is one run of the soak, all drawn from seed.
type soakConfig struct {
	seed        uint64
	n           int
	shape       string
	faultRate   [3]float64      // per phase
	faultMix    [soakFaults]int // weight of each failing kind
	concurrency int
	runTimeout  time.Duration
	retries     int // RetryOnFailure
	cancel      string
	cancelAfter time.Duration
	tasks       []soakTask
}

func (c soakConfig) String() string {
	return fmt.Sprintf("seed=%d n=%d shape=%s faults=%v mix=%v concurrency=%d runTimeout=%v retryOnFailure=%d cancel=%s@%v",
		c.seed, c.n, c.shape, c.faultRate[1:], c.faultMix[soakFail:], c.concurrency, c.runTimeout, c.retries, c.cancel, c.cancelAfter)
}

func soakGenerate(seed uint64, n int) soakConfig {
	rng := rand.New(rand.NewPCG(seed, 0x50a4))
	pick := func(vs ...float64) float64 { return vs[rng.IntN(len(vs))] }
	c := soakConfig{seed: seed, n: n}
	c.faultRate[1] = pick(0, 0.001, 0.005, 0.02, 0.05, 0.1)
	c.faultRate[2] = c.faultRate[1] / pick(1, 4, 1e9)
	c.faultMix = [soakFaults]int{soakFail: 1, soakPermanent: 1, soakPanic: 1, soakIgnore: 1, soakSlow: 1}
	if rng.IntN(2) == 0 { // mostly faults that a retry gets past
		c.faultMix = [soakFaults]int{soakFail: 6, soakPermanent: 0, soakPanic: 1, soakIgnore: 2, soakSlow: 2}
	}
	c.concurrency = []int{0, 0, 1, 4, 32, 500}[rng.IntN(6)]
	if rng.IntN(3) == 0 {
		c.runTimeout = time.Duration(1+rng.IntN(60)) * time.Second
	}
	c.retries = rng.IntN(3)
	switch rng.IntN(5) {
	case 0:
		c.cancel = "ctx"
	case 1:
		c.cancel = "Cancel"
	default:
		c.cancel = "none"
	}
	c.cancelAfter = time.Duration(rng.IntN(20_000)) * time.Millisecond

	c.tasks = make([]soakTask, n)
	c.shape = []string{"random", "layered", "star"}[rng.IntN(3)]
	for i := range c.tasks {
		t := &c.tasks[i]
		switch c.shape {
		case "random": // up to 3 dependencies among the 50 tasks before
			for k := rng.IntN(4); k > 0 && i > 0; k-- {
				d := max(0, i-1-rng.IntN(50))
				if !slices.Contains(t.deps, d) {
					t.deps = append(t.deps, d)
				}
			}
		case "layered": // layers of 100, each task on 1 to 3 of the layer before
			if layer := i / 100; layer > 0 {
				for k := 1 + rng.IntN(3); k > 0; k-- {
					d := (layer-1)*100 + rng.IntN(100)
					if !slices.Contains(t.deps, d) {
						t.deps = append(t.deps, d)
					}
				}
			}
		case "star": // one root, n-2 tasks on it, a sink on all of them
			switch {
			case i == 0:
			case i < n-1:
				t.deps = []int{0}
			default:
				for d := 1; d < n-1; d++ {
					t.deps = append(t.deps, d)
				}
			}
		}
		attempts := rng.IntN(3) // 0 to 2 for some tasks, 3 to 6 for most
		if rng.IntN(10) < 8 {
			attempts = 3 + rng.IntN(4)
		}
		t.retry = workflow.RetryPolicy{
			Attempts: attempts,
			Delay:    time.Duration(rng.IntN(3)) * time.Duration(rng.IntN(1000)) * time.Millisecond,
			Backoff:  pick(0, 1, 1.5, 2),
			MaxDelay: time.Duration(rng.IntN(2)) * time.Second,
			Jitter:   pick(0, 0, 0.2, 1),
		}
		if rng.IntN(8) == 0 {
			t.retry.RetryIf = func(err error) bool { return !errors.Is(err, workflow.ErrPanic) }
		}
		if rng.IntN(2) == 0 {
			t.timeout = time.Duration(100+rng.IntN(3000)) * time.Millisecond
		}
	}
	// The last task must be the only sink: the others without dependents
	// become its dependencies.
	last := &c.tasks[n-1]
	hasDependents := make([]bool, n)
	for _, t := range c.tasks {
		for _, d := range t.deps {
			hasDependents[d] = true
		}
	}
	for i := range n - 1 {
		if !hasDependents[i] && !slices.Contains(last.deps, i) {
			last.deps = append(last.deps, i)
		}
	}
	return c
}

// soakRun is one workflow of the soak with the record its handlers keep.
type soakRun struct {
	cfg   soakConfig
	names []string

	mu    sync.Mutex
	seq   int64
	phase int
	calls [][]soakCall
}

func soakName(i int) string { return "t" + strconv.Itoa(i) }

// begin records the start of a call of task i and decides what it does.
func (s *soakRun) begin(i int) (k int, kind soakFault, d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.seq++
	k = len(s.calls[i])
	rng := rand.New(rand.NewPCG(s.cfg.seed, uint64(i)<<16|uint64(k)))
	timeout := s.cfg.tasks[i].timeout
	switch {
	case rng.Float64() < s.cfg.faultRate[s.phase]:
		total := 0
		for _, w := range s.cfg.faultMix {
			total += w
		}
		r := rng.IntN(total)
		for kind = soakFail; r >= s.cfg.faultMix[kind]; kind++ {
			r -= s.cfg.faultMix[kind]
		}
	case rng.IntN(5) == 0:
		kind = soakOKSleep
	default:
		kind = soakOK
	}
	switch {
	case kind == soakOKSleep && timeout > 0:
		d = time.Duration(rng.Int64N(int64(timeout / 2)))
	case kind == soakOKSleep:
		d = time.Duration(rng.IntN(2000)) * time.Millisecond
	case (kind == soakIgnore || kind == soakSlow) && timeout > 0:
		d = 2*timeout + time.Duration(rng.Int64N(int64(timeout)))
	case kind == soakIgnore || kind == soakSlow:
		d = time.Duration(rng.IntN(5000)) * time.Millisecond
	}
	s.calls[i] = append(s.calls[i], soakCall{phase: s.phase, kind: kind, start: s.seq})
	return k, kind, d
}

func (s *soakRun) end(i, k int, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.seq++
	s.calls[i][k].end = s.seq
	s.calls[i][k].ok = ok
}

func (s *soakRun) handle(ctx context.Context, i int) (out int, err error) {
	k, kind, d := s.begin(i)
	defer func() { s.end(i, k, err == nil) }()
	switch kind {
	case soakFail:
		return 0, fmt.Errorf("soak: %s failed", s.names[i])
	case soakPermanent:
		return 0, workflow.Permanent(fmt.Errorf("soak: %s failed for good", s.names[i]))
	case soakPanic:
		err = errors.New("panicked") // what end records
		panic("soak: " + s.names[i] + " panics")
	case soakIgnore:
		time.Sleep(d)
	case soakOKSleep, soakSlow:
		timer := time.NewTimer(d)
		defer timer.Stop()
		select {
		case <-timer.C:
		case <-ctx.Done():
			return 0, ctx.Err()
		}
	}
	return i, nil
}

func (s *soakRun) workflow(t *testing.T) *workflow.Workflow[int, int] {
	n := s.cfg.n
	s.names = make([]string, n)
	s.calls = make([][]soakCall, n)
	for i := range n {
		s.names[i] = soakName(i)
	}
	tasks := make(workflow.Tasks, n)
	for i, st := range s.cfg.tasks {
		deps := make([]string, len(st.deps))
		for k, d := range st.deps {
			deps[k] = s.names[d]
		}
		if len(deps) > 1 {
			tasks[i] = workflow.Task[workflow.Inputs, int]{Name: s.names[i], Dependencies: deps, Retry: st.retry, Timeout: st.timeout,
				Handler: func(ctx context.Context, _ workflow.Inputs) (int, error) { return s.handle(ctx, i) }}
		} else {
			tasks[i] = workflow.Task[int, int]{Name: s.names[i], Dependencies: deps, Retry: st.retry, Timeout: st.timeout,
				Handler: func(ctx context.Context, _ int) (int, error) { return s.handle(ctx, i) }}
		}
	}
	w, err := workflow.New[int, int]("soak-"+strconv.FormatUint(s.cfg.seed, 10), tasks,
		workflow.WithMaxConcurrency(s.cfg.concurrency), workflow.WithOutput(s.names[n-1]))
	require.NoError(t, err)
	return w
}

// soakStats are the figures of a soak, for RELIABILITY.md.
type soakStats struct {
	runs, resumes, tasks, calls int
	faults                      [soakFaults]int
	outcomes                    map[workflow.State]int
	abandoned                   int // handler calls still under way when their run had ended
}

func (st *soakStats) String() string {
	s := fmt.Sprintf("%d runs + %d resumes, %d tasks, %d handler calls; outcomes %v; %d handlers ignored their context past the end of their run; faults:",
		st.runs, st.resumes, st.tasks, st.calls, st.outcomes, st.abandoned)
	for k := soakFail; k < soakFaults; k++ {
		s += fmt.Sprintf(" %s=%d", soakFaultNames[k], st.faults[k])
	}
	return s
}

// exercise runs the workflow, checks it, resumes it if it did not succeed,
// checks again, and waits for the handlers it abandoned. It runs in a
// synctest bubble: sleeps, retry waits and timeouts take no real time.
func (s *soakRun) exercise(t *testing.T, st *soakStats) {
	w := s.workflow(t)
	cfg := s.cfg
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var opts []workflow.RunOption
	if cfg.runTimeout > 0 {
		opts = append(opts, workflow.RunTimeout(cfg.runTimeout))
	}
	if cfg.retries > 0 {
		opts = append(opts, workflow.RetryOnFailure(cfg.retries))
	}

	s.phase = 1
	begun := time.Now()
	x, err := w.Start(ctx, 0, opts...)
	require.NoError(t, err)
	id := x.ID()
	switch cfg.cancel {
	case "ctx":
		stop := time.AfterFunc(cfg.cancelAfter, cancel)
		defer stop.Stop()
	case "Cancel":
		go func() {
			time.Sleep(cfg.cancelAfter)
			if err := w.Cancel(context.Background(), id); err != nil {
				assert.ErrorIs(t, err, workflow.ErrRunEnded)
			}
		}()
	}
	out, err := x.Wait(context.Background())
	elapsed := time.Since(begun)
	st.runs++
	st.tasks += cfg.n
	rs := s.check(t, w, id, 1, out, err)
	st.outcomes[rs.State]++
	switch rs.State {
	case workflow.StateTimedOut:
		require.Equal(t, cfg.runTimeout, elapsed, "a run that timed out returned at its RunTimeout, whatever its handlers did")
	case workflow.StateCancelled:
		require.NotEqual(t, "none", cfg.cancel, "a run nobody cancelled was cancelled")
		require.Equal(t, cfg.cancelAfter, elapsed, "a cancelled run returned when it was cancelled")
	}
	if cfg.runTimeout > 0 {
		require.LessOrEqual(t, elapsed, cfg.runTimeout)
	}
	st.abandoned += s.abandoned(t)
	t.Logf("run: %s after %v, %d calls (%v)", rs.State, elapsed, s.callCount(), cfg)

	if rs.State != workflow.StateSucceeded {
		// Resume runs only what had not succeeded, never what had.
		succeeded := map[string]bool{}
		for _, ts := range rs.Tasks {
			succeeded[ts.Name] = ts.State == workflow.StateSucceeded
		}
		s.mu.Lock()
		s.phase = 2
		s.mu.Unlock()
		var ropts []workflow.RunOption
		if cfg.runTimeout > 0 {
			ropts = append(ropts, workflow.RunTimeout(cfg.runTimeout))
		}
		out, err := w.Resume(context.Background(), id, ropts...)
		st.resumes++
		rs2 := s.check(t, w, id, 2, out, err)
		st.outcomes[rs2.State]++
		s.mu.Lock()
		for i, calls := range s.calls {
			for _, c := range calls {
				if c.phase == 2 {
					require.False(t, succeeded[s.names[i]], "task %s had succeeded, and Resume ran it again", s.names[i])
				}
			}
		}
		s.mu.Unlock()
		for _, ts := range rs.Tasks {
			if succeeded[ts.Name] {
				ts2, _ := rs2.Task(ts.Name)
				require.Equal(t, workflow.StateSucceeded, ts2.State, "task %s had succeeded before Resume", ts.Name)
			}
		}
		st.abandoned += s.abandoned(t)
		t.Logf("resume: %s, %d calls", rs2.State, s.callCount())
	} else {
		_, err := w.Resume(context.Background(), id)
		require.ErrorIs(t, err, workflow.ErrNotResumable)
	}

	// The handlers that ignored their context end by themselves; every
	// call then has ended.
	time.Sleep(time.Hour)
	synctest.Wait()
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, calls := range s.calls {
		for _, c := range calls {
			require.NotZero(t, c.end, "a call of %s never returned", s.names[i])
			st.calls++
			st.faults[c.kind]++
		}
	}
}

func (s *soakRun) callCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, calls := range s.calls {
		n += len(calls)
	}
	return n
}

// abandoned waits until every goroutine of the bubble is blocked, then
// checks that the calls still under way after their run ended are those
// that ignore their context (every other one was cancelled and returned),
// and counts them.
func (s *soakRun) abandoned(t *testing.T) int {
	synctest.Wait()
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for i, calls := range s.calls {
		for _, c := range calls {
			if c.end == 0 {
				require.Equal(t, soakIgnore, c.kind, "task %s: a %s call was still under way after its run ended", s.names[i], soakFaultNames[c.kind])
				n++
			}
		}
	}
	return n
}

// check verifies the invariants of the run after its phase-th Run or
// Resume returned (out, err), against its history and what the handlers
// saw, and returns its status.
func (s *soakRun) check(t *testing.T, w *workflow.Workflow[int, int], id string, phase int, out int, err error) workflow.RunStatus {
	t.Helper()
	synctest.Wait() // handlers started before the end have recorded their start
	rs, ierr := w.Inspect(context.Background(), id)
	require.NoError(t, ierr)
	require.Equal(t, id, rs.RunID)
	n := s.cfg.n
	index := make(map[string]int, n)
	for i, name := range s.names {
		index[name] = i
	}

	// Tasks are listed once each, in topological order.
	require.Len(t, rs.Tasks, n)
	pos := make([]int, n)
	for k, ts := range rs.Tasks {
		i, ok := index[ts.Name]
		require.True(t, ok, "unknown task %q in the status", ts.Name)
		pos[i] = k
	}
	for i, st := range s.cfg.tasks {
		for _, d := range st.deps {
			require.Less(t, pos[d], pos[i], "task %s is listed before its dependency %s", s.names[i], s.names[d])
		}
	}

	// The events: segments (Run, then each Resume) that begin with
	// run_started or run_resumed and end with exactly one terminal run
	// event, nothing after the last; passes within a segment split by
	// run_retrying.
	evs := rs.Events
	require.NotEmpty(t, evs)
	require.Equal(t, workflow.EventRunStarted, evs[0].Type)
	segments, seg := 0, -1
	var (
		passAttempts = make([]int, n) // task_started of each task in this pass
		runAttempts  = make([]int, n) // task_started of each task in the run: attempt numbers
		pass         = 0
		startedIn    = make([][]int, 3)
		succeededAt  = make([]int, n) // event index of task_succeeded, -1: none
		taskState    = make([]workflow.State, n)
		taskAttempts = make([]int, n)
		terminal     = ""
		open         = false
	)
	for p := range startedIn {
		startedIn[p] = make([]int, n)
	}
	for i := range succeededAt {
		succeededAt[i] = -1
		taskState[i] = workflow.StatePending
	}
	resetPass := func() {
		clear(passAttempts)
		for i := range n {
			if taskState[i] != workflow.StateSucceeded {
				taskState[i] = workflow.StatePending // attempts go on counting
			}
		}
	}
	for k, ev := range evs {
		require.Equal(t, id, ev.RunID)
		if k > 0 {
			require.False(t, ev.Time.Before(evs[k-1].Time), "event %d goes back in time", k)
		}
		switch ev.Type {
		case workflow.EventRunStarted, workflow.EventRunResumed, workflow.EventRunRetrying:
			pass++
		}
		require.Equal(t, pass, ev.Pass, "event %d (%s %s): its pass", k, ev.Type, ev.Task)
		if ev.Task == "" {
			switch ev.Type {
			case workflow.EventRunStarted, workflow.EventRunResumed:
				require.False(t, open, "event %d: %s while the run is under way", k, ev.Type)
				require.Equal(t, ev.Type == workflow.EventRunStarted, k == 0, "event %d: %s", k, ev.Type)
				open, terminal = true, ""
				segments++
				seg = segments
				resetPass()
			case workflow.EventRunRetrying:
				require.True(t, open, "event %d: run_retrying after the end", k)
				resetPass()
			case workflow.EventRunSucceeded, workflow.EventRunFailed, workflow.EventRunTimedOut, workflow.EventRunCancelled:
				require.True(t, open, "event %d: a second terminal event %s", k, ev.Type)
				open, terminal = false, ev.Type
			default:
				require.Failf(t, "unknown run event", "event %d: %q", k, ev.Type)
			}
			continue
		}
		require.True(t, open, "event %d: %s of %s after the run ended", k, ev.Type, ev.Task)
		i, ok := index[ev.Task]
		require.True(t, ok, "event for unknown task %q", ev.Task)
		switch ev.Type {
		case workflow.EventTaskStarted:
			require.Equal(t, -1, succeededAt[i], "task %s started again after it succeeded", ev.Task)
			passAttempts[i]++
			runAttempts[i]++
			require.Equal(t, runAttempts[i], ev.Attempt, "task %s: attempts numbered in order across the run", ev.Task)
			require.LessOrEqual(t, passAttempts[i], max(1, s.cfg.tasks[i].retry.Attempts), "task %s: more attempts in a pass than its Retry.Attempts", ev.Task)
			for _, d := range s.cfg.tasks[i].deps {
				require.NotEqual(t, -1, succeededAt[d], "task %s started before its dependency %s succeeded", ev.Task, s.names[d])
			}
			startedIn[seg][i]++
			taskState[i], taskAttempts[i] = workflow.StateRunning, ev.Attempt
		case workflow.EventTaskRetrying:
			require.Equal(t, workflow.StateRunning, taskState[i], "task %s retrying while %s", ev.Task, taskState[i])
		case workflow.EventTaskSucceeded, workflow.EventTaskFailed, workflow.EventTaskTimedOut, workflow.EventTaskCancelled:
			require.Equal(t, workflow.StateRunning, taskState[i], "task %s: %s while %s", ev.Task, ev.Type, taskState[i])
			taskState[i] = map[string]workflow.State{
				workflow.EventTaskSucceeded: workflow.StateSucceeded, workflow.EventTaskFailed: workflow.StateFailed,
				workflow.EventTaskTimedOut: workflow.StateTimedOut, workflow.EventTaskCancelled: workflow.StateCancelled,
			}[ev.Type]
			if ev.Type == workflow.EventTaskSucceeded {
				succeededAt[i] = k
			}
		case workflow.EventTaskSkipped:
			require.Equal(t, workflow.StatePending, taskState[i], "task %s skipped while %s", ev.Task, taskState[i])
			taskState[i] = workflow.StateSkipped
		default:
			require.Failf(t, "unknown task event", "event %d: %q", k, ev.Type)
		}
	}
	lastPass := passAttempts // task_started of each task in the last pass
	require.False(t, open, "the run has no terminal event")
	require.Equal(t, phase, segments, "one segment per Run or Resume")
	wantState := map[string]workflow.State{
		workflow.EventRunSucceeded: workflow.StateSucceeded, workflow.EventRunFailed: workflow.StateFailed,
		workflow.EventRunTimedOut: workflow.StateTimedOut, workflow.EventRunCancelled: workflow.StateCancelled,
	}[terminal]
	require.Equal(t, wantState, rs.State, "the run's state is its terminal event's")
	for _, ts := range rs.Tasks {
		j := index[ts.Name]
		require.True(t, ts.State.Ended(), "task %s is %s after the run ended", ts.Name, ts.State)
		require.Equal(t, taskState[j], ts.State, "task %s: state as its events say", ts.Name)
		require.Equal(t, taskAttempts[j], ts.Attempts, "task %s: attempts as its events say", ts.Name)
	}

	// What the handlers saw: one call per task_started event of this
	// phase, none before all its dependencies had returned successfully.
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, calls := range s.calls {
		inPhase := 0
		for _, c := range calls {
			if c.phase != phase {
				continue
			}
			inPhase++
			for _, d := range s.cfg.tasks[i].deps {
				ok := slices.ContainsFunc(s.calls[d], func(dc soakCall) bool { return dc.ok && dc.end != 0 && dc.end < c.start })
				require.True(t, ok, "task %s was called before its dependency %s had returned successfully", s.names[i], s.names[d])
			}
		}
		require.Equal(t, startedIn[phase][i], inPhase, "task %s: handler calls = task_started events", s.names[i])
	}

	// The outcome Run or Resume returned.
	var werr *workflow.WorkflowError
	switch rs.State {
	case workflow.StateSucceeded:
		require.NoError(t, err)
		require.Equal(t, n-1, out)
		for i := range n {
			require.NotEqual(t, -1, succeededAt[i], "task %s never succeeded in a run that did", s.names[i])
		}
	case workflow.StateFailed:
		require.ErrorAs(t, err, &werr)
		require.Equal(t, id, werr.RunID)
		require.NotEmpty(t, werr.Task, "a failed run names its task: %v", err)
		i, ok := index[werr.Task]
		require.True(t, ok)
		ts, _ := rs.Task(werr.Task)
		require.Contains(t, []workflow.State{workflow.StateFailed, workflow.StateTimedOut}, ts.State, "the named task %s is %s", werr.Task, ts.State)
		require.Equal(t, runAttempts[i], werr.Attempts, "task %s: the error's attempts, across the run", werr.Task)
		require.Positive(t, lastPass[i])
		var last soakCall
		for _, c := range s.calls[i] {
			if c.phase == phase && c.start > last.start {
				last = c
			}
		}
		require.True(t, last.kind.failing(s.cfg.tasks[i].timeout), "the run blames task %s, whose last call was %s", werr.Task, soakFaultNames[last.kind])
		switch {
		case last.kind == soakPanic:
			require.ErrorIs(t, err, workflow.ErrPanic)
			require.Contains(t, werr.Details["stack"], "soak_test.go")
		case last.kind == soakIgnore || last.kind == soakSlow:
			require.ErrorIs(t, err, workflow.ErrTimeout)
			require.Equal(t, workflow.StateTimedOut, ts.State)
		}
	case workflow.StateTimedOut:
		require.ErrorAs(t, err, &werr)
		require.ErrorIs(t, err, workflow.ErrTimeout)
		require.Empty(t, werr.Task)
		require.NotZero(t, s.cfg.runTimeout)
	case workflow.StateCancelled:
		require.ErrorAs(t, err, &werr)
		require.ErrorIs(t, err, workflow.ErrCancelled)
		require.Empty(t, werr.Task)
	default:
		require.Failf(t, "run not ended", "state %s", rs.State)
	}
	return rs
}

// TestSoakFaultsHoldInvariants runs random workflows of 1,000 to 10,000
// tasks whose handlers fail, fail for good, panic, ignore their context
// past their timeout or sleep, with random retry policies, concurrency
// limits, run timeouts and cancellations, resumes those that did not
// succeed, and checks the invariants of every run (see check). With -soak
// it runs many more.
func TestSoakFaultsHoldInvariants(t *testing.T) {
	sizes := []int{1000, 1500, 2000, 3000, 10000}
	seeds := 2
	if *soakLong {
		sizes = nil
		for k := range 40 {
			sizes = append(sizes, 1000+k*9000/39)
		}
		seeds = 10
	}
	st := &soakStats{outcomes: map[workflow.State]int{}}
	for seed := range uint64(seeds) {
		for _, n := range sizes {
			cfg := soakGenerate(seed*100_003+uint64(n), n)
			t.Run(fmt.Sprintf("n=%d/seed=%d", n, cfg.seed), func(t *testing.T) {
				synctest.Test(t, func(t *testing.T) {
					(&soakRun{cfg: cfg}).exercise(t, st)
				})
				if t.Failed() {
					t.Logf("config: %v", cfg)
				}
				goleak.VerifyNone(t)
			})
		}
	}
	t.Logf("soak: %v", st)
}

// What a timeout can and cannot stop, shown on one handler that ignores its
// context (a bubble's fake clock makes the hour-long sleeps instant). Go has
// no way to stop a goroutine: the engine stops waiting for the handler, and
// the handler goes on until it returns by itself; its result is dropped.

// soakStubborn is a task whose handler sleeps d whatever its context says,
// and reports when it is done.
func soakStubborn(name string, d, timeout time.Duration, done *atomic.Bool) workflow.Task[int, int] {
	return workflow.Task[int, int]{Name: name, Timeout: timeout, Handler: func(ctx context.Context, in int) (int, error) {
		time.Sleep(d)
		done.Store(true)
		return in, nil
	}}
}

// soakLeftAlone checks that the handler is still going once the run has
// ended, then lets it finish and checks that nothing was recorded after
// the run's end.
func soakLeftAlone(t *testing.T, w *workflow.Workflow[int, int], done *atomic.Bool) {
	t.Helper()
	synctest.Wait()
	require.False(t, done.Load(), "the handler is still going after the run ended")
	ended, err := w.Status(context.Background())
	require.NoError(t, err)
	time.Sleep(2 * time.Hour)
	synctest.Wait()
	require.True(t, done.Load(), "the handler finished by itself")
	later, err := w.Status(context.Background())
	require.NoError(t, err)
	require.Equal(t, ended, later, "its late result was dropped: nothing recorded after the end")
}

func TestTimeoutEndsTheAttemptOfAHandlerThatIgnoresItsContext(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var done atomic.Bool
		w, err := workflow.New[int, int]("stubborn-task", workflow.Tasks{soakStubborn("a", time.Hour, time.Second, &done)})
		require.NoError(t, err)
		begun := time.Now()
		_, err = w.Run(t.Context(), 1)
		require.ErrorIs(t, err, workflow.ErrTimeout)
		require.Equal(t, time.Second, time.Since(begun), "the attempt ended at its deadline")
		ts, err := w.TaskStatus(t.Context(), "a")
		require.NoError(t, err)
		require.Equal(t, workflow.StateTimedOut, ts.State)
		soakLeftAlone(t, w, &done)
	})
	goleak.VerifyNone(t)
}

func TestRunTimeoutAndCancelEndARunWhoseHandlerIgnoresItsContext(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var done atomic.Bool
		w, err := workflow.New[int, int]("stubborn-run", workflow.Tasks{soakStubborn("a", time.Hour, 0, &done)})
		require.NoError(t, err)
		begun := time.Now()
		_, err = w.Run(t.Context(), 1, workflow.RunTimeout(time.Minute))
		require.ErrorIs(t, err, workflow.ErrTimeout)
		require.Equal(t, time.Minute, time.Since(begun), "the run ended at its RunTimeout")
		soakLeftAlone(t, w, &done)

		done.Store(false)
		x, err := w.Start(t.Context(), 1)
		require.NoError(t, err)
		time.Sleep(time.Minute)
		begun = time.Now()
		require.NoError(t, w.Cancel(t.Context(), x.ID()))
		require.Zero(t, time.Since(begun), "Cancel returned at once")
		_, err = x.Wait(t.Context())
		require.ErrorIs(t, err, workflow.ErrCancelled)
		soakLeftAlone(t, w, &done)
	})
	goleak.VerifyNone(t)
}

// A run whose task failed cancels the others' context and waits for them
// to return: a handler that ignores its context, without a Timeout, holds
// the end of the run until it returns. Timeout or RunTimeout bound it.
func TestFailedRunWaitsForAHandlerThatIgnoresItsContext(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var done atomic.Bool
		w, err := workflow.New[int, int]("stubborn-sibling", workflow.Tasks{
			soakStubborn("slow", time.Hour, 0, &done),
			workflow.Task[int, int]{Name: "fails", Handler: func(ctx context.Context, in int) (int, error) {
				return 0, errors.New("no")
			}},
		}, workflow.WithOutput("slow"))
		require.NoError(t, err)
		begun := time.Now()
		_, err = w.Run(t.Context(), 1)
		var werr *workflow.WorkflowError
		require.ErrorAs(t, err, &werr)
		require.Equal(t, "fails", werr.Task)
		require.Equal(t, time.Hour, time.Since(begun), "the run ended when the stubborn handler returned")
		require.True(t, done.Load())
		ts, err := w.TaskStatus(t.Context(), "slow")
		require.NoError(t, err)
		require.Equal(t, workflow.StateSucceeded, ts.State, "its late success is recorded: the run was still waiting for it")
	})
	goleak.VerifyNone(t)
}
