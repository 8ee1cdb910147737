//go:build unix

package pgstore_test

// A crash test with a real process. The test binary runs itself again as
// a child (crashRoleEnv says so), which starts a run of a five-task chain
// on the test database and, in the middle of the third task, tells the
// parent so through a pipe and blocks. The parent kills it with SIGKILL,
// waits out the child's lease and recovers the run with its own Store,
// then checks what ran where, and what the database says happened.

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/b3b01171/workflow"
	"github.com/b3b01171/workflow/pgstore"
)

// The child's environment: its role, the schema of its Store, and where
// its handlers count their calls. The DSN is the parent's.
const (
	crashRoleEnv   = "PGSTORE_CRASH_ROLE"
	crashSchemaEnv = "PGSTORE_CRASH_SCHEMA"
	crashCallsEnv  = "PGSTORE_CRASH_CALLS"
)

// crashTTL is the lease of both processes: short, since the parent waits
// it out, and long enough to outlast a pause of a busy machine running
// the race detector (the child renews it every crashTTL/3).
const crashTTL = 500 * time.Millisecond

// crashSignalFD is the child's end of the pipe to the parent (ExtraFiles[0]).
const crashSignalFD = 3

// crashEnv is what the handlers need: where to count their calls and, in
// the child, how to stop in the task under test.
type crashEnv struct {
	calls string        // the directory of the counter files, one per task
	child *watchedStore // nil in the parent
}

// count appends the process and attempt of the calling handler to its
// task's counter file.
func (e *crashEnv) count(ctx context.Context) error {
	info, ok := workflow.Info(ctx)
	if !ok {
		return errors.New("the handler's context has no run info")
	}
	f, err := os.OpenFile(filepath.Join(e.calls, info.Task), os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	if _, err := fmt.Fprintf(f, "%d %d\n", os.Getpid(), info.Attempt); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// stall is the child's task under test: once the events of committed are
// in the database, it sends the run's ID to the parent and blocks until
// the parent kills the process.
func (e *crashEnv) stall(ctx context.Context, committed <-chan struct{}) error {
	info, _ := workflow.Info(ctx)
	timeout := time.NewTimer(time.Minute) // the parent is gone: give up
	defer timeout.Stop()
	select {
	case <-committed:
	case <-timeout.C:
		return errors.New("the event awaited was never committed")
	}
	signal := os.NewFile(crashSignalFD, "signal")
	if _, err := fmt.Fprintln(signal, info.RunID); err != nil {
		return err
	}
	<-timeout.C
	return errors.New("the parent did not kill the child")
}

// call is one line of a counter file: a handler call.
type call struct{ pid, attempt int }

// calls reads the counter files: the calls of each task, in order.
func calls(t *testing.T, dir string) map[string][]call {
	t.Helper()
	files, err := os.ReadDir(dir)
	require.NoError(t, err)
	got := map[string][]call{}
	for _, f := range files {
		data, err := os.ReadFile(filepath.Join(dir, f.Name()))
		require.NoError(t, err)
		for line := range strings.Lines(string(data)) {
			var c call
			_, err := fmt.Sscanf(line, "%d %d\n", &c.pid, &c.attempt)
			require.NoError(t, err, "line %q of %s", line, f.Name())
			got[f.Name()] = append(got[f.Name()], c)
		}
	}
	return got
}

// watchedStore is the child's store: it tells when an event is committed,
// so that the child signals once the database holds exactly what the test
// expects the kill to leave.
type watchedStore struct {
	*pgstore.Store
	mu      sync.Mutex
	waiting map[[2]string]chan struct{} // task, event type → closed when committed
}

// committed returns a channel closed once the event typ of task is
// committed.
func (s *watchedStore) committed(task, typ string) <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.waiting == nil {
		s.waiting = map[[2]string]chan struct{}{}
	}
	c := make(chan struct{})
	s.waiting[[2]string{task, typ}] = c
	return c
}

func (s *watchedStore) Create(ctx context.Context, run workflow.RunStatus) (workflow.Recorder, error) {
	rec, err := s.Store.Create(ctx, run)
	if err != nil {
		return nil, err
	}
	return watchedRecorder{rec, s}, nil
}

type watchedRecorder struct {
	workflow.Recorder
	s *watchedStore
}

func (r watchedRecorder) Append(ctx context.Context, batch []workflow.Entry) error {
	if err := r.Recorder.Append(ctx, batch); err != nil {
		return err
	}
	r.s.mu.Lock()
	defer r.s.mu.Unlock()
	for _, e := range batch {
		key := [2]string{e.Task, e.Type}
		if c, ok := r.s.waiting[key]; ok {
			close(c)
			delete(r.s.waiting, key)
		}
	}
	return nil
}

// leg is the value the chain passes on: the sum so far, and the tasks
// that made it.
type leg struct {
	Sum  int    `json:"sum"`
	Path string `json:"path"`
}

// crashChain is a chain a → b → c → d → e; each task appends a digit to
// the sum and its name to the path. In the child, c stops once its start
// is committed.
func crashChain(e *crashEnv, s workflow.Store) (*workflow.Workflow[int, leg], error) {
	var cStarted <-chan struct{}
	if e.child != nil {
		cStarted = e.child.committed("c", workflow.EventTaskStarted)
	}
	tasks := workflow.Tasks{workflow.Task[int, leg]{Name: "a", Handler: func(ctx context.Context, n int) (leg, error) {
		return leg{Sum: n, Path: "a"}, e.count(ctx)
	}}}
	for k, name := range []string{"b", "c", "d", "e"} {
		tasks = append(tasks, workflow.Task[leg, leg]{
			Name:         name,
			Dependencies: []string{string(rune('a' + k))},
			Handler: func(ctx context.Context, in leg) (leg, error) {
				if err := e.count(ctx); err != nil {
					return leg{}, err
				}
				if name == "c" && e.child != nil {
					return leg{}, e.stall(ctx, cStarted)
				}
				return leg{Sum: 10*in.Sum + k + 2, Path: in.Path + name}, nil
			},
		})
	}
	return workflow.New[int, leg]("crash-chain", tasks, workflow.WithStore(s))
}

// crashChild is the child's part: it runs the chain, and is killed in the
// middle of it. It never returns.
func crashChild(t *testing.T) {
	s, err := pgstore.Open(context.Background(), testDSN(t), pgstore.Schema(os.Getenv(crashSchemaEnv)), pgstore.LeaseTTL(crashTTL))
	require.NoError(t, err)
	ws := &watchedStore{Store: s}
	wf, err := crashChain(&crashEnv{calls: os.Getenv(crashCallsEnv), child: ws}, ws)
	require.NoError(t, err)
	x, err := wf.Start(context.Background(), 7)
	require.NoError(t, err)
	_, err = x.Wait(context.Background())
	t.Fatalf("the run ended in the child (%v): it should have been killed", err)
}

// crashed is what the parent knows of the killed child.
type crashed struct {
	schema, calls string
	runID         string
	pid           int
	killedAt      time.Time
}

// killChild runs the child, and kills it with SIGKILL once it has sent
// the ID of its run.
func killChild(t *testing.T) crashed {
	t.Helper()
	c := crashed{schema: newSchema(t), calls: t.TempDir()}
	r, w, err := os.Pipe()
	require.NoError(t, err)
	defer r.Close()
	var out bytes.Buffer
	cmd := exec.Command(os.Args[0], "-test.run=^"+t.Name()+"$", "-test.count=1")
	cmd.Env = append(os.Environ(), crashRoleEnv+"=chain", crashSchemaEnv+"="+c.schema, crashCallsEnv+"="+c.calls)
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.ExtraFiles = []*os.File{w}
	require.NoError(t, cmd.Start())
	w.Close()
	waited := false
	t.Cleanup(func() { // the child never outlives the test
		if !waited {
			cmd.Process.Kill()
			cmd.Wait()
		}
	})
	c.pid = cmd.Process.Pid

	require.NoError(t, r.SetReadDeadline(time.Now().Add(time.Minute)))
	line, err := bufio.NewReader(r).ReadString('\n')
	if err != nil {
		cmd.Process.Kill()
		cmd.Wait()
		waited = true
		t.Fatalf("no signal from the child: %v; its output:\n%s", err, out.String())
	}
	c.runID = strings.TrimSpace(line)
	require.NoError(t, cmd.Process.Kill())
	c.killedAt = time.Now()
	err = cmd.Wait()
	waited = true
	var exit *exec.ExitError
	require.ErrorAs(t, err, &exit, "the child's output:\n%s", out.String())
	require.Equal(t, -1, exit.ExitCode(), "the child ended by a signal: %s", exit)
	return c
}

// eventLine is an event as the tests compare them.
func eventLine(ev workflow.Event) string {
	line := ev.Type
	if ev.Task != "" {
		line += fmt.Sprintf(" %s %d", ev.Task, ev.Attempt)
	}
	return line
}

func TestCrashAKilledChainResumesInAnotherProcessAtTheTaskItWasRunning(t *testing.T) {
	if os.Getenv(crashRoleEnv) == "chain" {
		crashChild(t)
	}
	testDSN(t)
	t.Parallel()
	c := killChild(t)
	ctx := context.Background()

	// The killed child still owns the run: nobody takes it before its
	// lease expires, by the database's clock.
	owner, until := rawLease(t, c.schema, c.runID)
	require.NotNil(t, owner)
	require.Contains(t, *owner, "/"+strconv.Itoa(c.pid)+"/", "the child owns the run")
	s := open(t, c.schema, pgstore.LeaseTTL(crashTTL))
	wf, err := crashChain(&crashEnv{calls: c.calls}, s)
	require.NoError(t, err)
	var x *workflow.Execution[leg]
	deadline := time.Now().Add(10*crashTTL + 10*time.Second)
	for x == nil {
		execs, err := wf.Recover(ctx)
		require.NoError(t, err)
		if len(execs) > 0 {
			var now time.Time
			require.NoError(t, admin(t).QueryRow(ctx, `SELECT clock_timestamp()`).Scan(&now))
			require.True(t, now.After(*until), "Recover took the run before the child's lease expired")
			require.Len(t, execs, 1)
			require.Equal(t, c.runID, execs[0].ID())
			x = execs[0]
			break
		}
		require.True(t, time.Now().Before(deadline), "Recover did not take the run over after its lease expired")
		time.Sleep(crashTTL / 20)
	}
	out, err := x.Wait(ctx)
	require.NoError(t, err)
	require.Equal(t, leg{Sum: 72345, Path: "abcde"}, out, "the input and the outputs of a and b came from the database")

	me := os.Getpid()
	require.Equal(t, map[string][]call{
		"a": {{c.pid, 1}},
		"b": {{c.pid, 1}},
		"c": {{c.pid, 1}, {me, 2}},
		"d": {{me, 1}},
		"e": {{me, 1}},
	}, calls(t, c.calls))

	runs, err := wf.History(ctx)
	require.NoError(t, err)
	require.Len(t, runs, 1, "one run, resumed under its ID")
	rs := runs[0]
	require.Equal(t, c.runID, rs.RunID)
	require.Equal(t, workflow.StateSucceeded, rs.State)
	require.JSONEq(t, `7`, string(rs.Input))
	require.JSONEq(t, `{"sum":72345,"path":"abcde"}`, string(rs.Output))
	var child, parent []string
	for _, ev := range rs.Events {
		require.Equal(t, c.runID, ev.RunID)
		if ev.Time.Before(c.killedAt) {
			child = append(child, eventLine(ev))
		} else {
			parent = append(parent, eventLine(ev))
		}
	}
	require.Equal(t, []string{
		"run_started",
		"task_started a 1", "task_succeeded a 1",
		"task_started b 1", "task_succeeded b 1",
		"task_started c 1",
	}, child, "what the child recorded before the kill")
	require.Equal(t, []string{
		"run_interrupted",
		"run_resumed",
		"task_started c 2", "task_succeeded c 2",
		"task_started d 1", "task_succeeded d 1",
		"task_started e 1", "task_succeeded e 1",
		"run_succeeded",
	}, parent, "what the parent recorded")
	for _, task := range rs.Tasks {
		require.Equal(t, workflow.StateSucceeded, task.State, task.Name)
		attempts := 1
		if task.Name == "c" {
			attempts = 2 // the interrupted attempt counts
		}
		require.Equal(t, attempts, task.Attempts, task.Name)
	}
	cs, _ := rs.Task("c")
	require.JSONEq(t, `{"sum":723,"path":"abc"}`, string(cs.Output))
	require.Empty(t, orphans(t, s, "crash-chain"))
}
