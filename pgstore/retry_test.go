package pgstore_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/b3b01171/workflow"
	"github.com/b3b01171/workflow/pgstore"
)

func TestAppendGoesOnAfterTheConnectionsAreKilled(t *testing.T) {
	t.Parallel()
	schema := newSchema(t)
	ctx := context.Background()
	app := "pgstore-test-" + schema
	s, err := pgstore.Open(ctx, withParam(testDSN(t), "application_name", app), pgstore.Schema(schema))
	require.NoError(t, err)
	defer s.Close()
	kill := func() int {
		var n int
		require.NoError(t, admin(t).QueryRow(ctx,
			`SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = $1`, app).Scan(&n))
		return n
	}
	var killed atomic.Int64
	tasks := workflow.Tasks{}
	for i := range 6 {
		var deps []string
		if i > 0 {
			deps = []string{fmt.Sprint("t", i-1)}
		}
		tasks = append(tasks, workflow.Task[int, int]{Name: fmt.Sprint("t", i), Dependencies: deps,
			Handler: func(ctx context.Context, n int) (int, error) {
				if i%2 == 1 {
					killed.Add(int64(kill())) // every connection of the Store, in the middle of the run
				}
				return n + 1, nil
			}})
	}
	wf, err := workflow.New[int, int]("wf", tasks, workflow.WithStore(s))
	require.NoError(t, err)
	out, err := wf.Run(ctx, 0, workflow.WithRunID("r1"))
	require.NoError(t, err)
	require.Equal(t, 6, out)
	require.Positive(t, killed.Load())
	rs, err := s.Get(ctx, "wf", "r1")
	require.NoError(t, err)
	require.Equal(t, workflow.StateSucceeded, rs.State)
	require.Len(t, rs.Events, 2+2*6, "every event once")
}

// withParam is dsn, a URL or key=value pairs, with the parameter k set to v.
func withParam(dsn, k, v string) string {
	switch {
	case !strings.Contains(dsn, "://"):
		return dsn + " " + k + "=" + v
	case strings.Contains(dsn, "?"):
		return dsn + "&" + k + "=" + v
	}
	return dsn + "?" + k + "=" + v
}

// lossyProxy forwards connections to the test server. Armed, it drops the
// next answer of the server, whole, and closes that connection: what a
// client sees when the network fails after the server has committed.
type lossyProxy struct {
	ln     net.Listener
	target string
	armed  atomic.Bool
	mu     sync.Mutex
	conns  []net.Conn
	wg     sync.WaitGroup
}

func newLossyProxy(t *testing.T) (*lossyProxy, string) {
	t.Helper()
	cfg, err := pgx.ParseConfig(testDSN(t))
	require.NoError(t, err)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	p := &lossyProxy{ln: ln, target: net.JoinHostPort(cfg.Host, strconv.Itoa(int(cfg.Port)))}
	p.wg.Go(p.serve)
	t.Cleanup(p.close)
	return p, testURL(cfg, ln.Addr().String(), cfg.Database)
}

func (p *lossyProxy) serve() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		s, err := net.Dial("tcp", p.target)
		if err != nil {
			c.Close()
			continue
		}
		p.mu.Lock()
		p.conns = append(p.conns, c, s)
		p.mu.Unlock()
		p.wg.Go(func() { io.Copy(s, c); s.Close() })
		p.wg.Go(func() {
			buf := make([]byte, 64<<10)
			for {
				n, err := s.Read(buf)
				if n > 0 && p.armed.CompareAndSwap(true, false) {
					break // the answer is lost
				}
				if n > 0 {
					if _, err := c.Write(buf[:n]); err != nil {
						break
					}
				}
				if err != nil {
					break
				}
			}
			c.Close()
			s.Close()
		})
	}
}

func (p *lossyProxy) close() {
	p.ln.Close()
	p.mu.Lock()
	for _, c := range p.conns {
		c.Close()
	}
	p.mu.Unlock()
	p.wg.Wait()
}

func TestABatchWhoseAnswerWasLostIsNotWrittenTwice(t *testing.T) {
	t.Parallel()
	p, dsn := newLossyProxy(t)
	ctx := context.Background()
	s, err := pgstore.Open(ctx, dsn, pgstore.Schema(newSchema(t)))
	require.NoError(t, err)
	defer s.Close()
	c := newClock()
	rec, err := s.Create(ctx, newRun("wf", "r1", "a", "b"))
	require.NoError(t, err)
	require.NoError(t, rec.Append(ctx, []workflow.Entry{c.runEntry("r1", workflow.EventRunStarted, "", []byte(`1`))}))

	p.armed.Store(true) // the server commits the batch; its answer is lost
	require.NoError(t, rec.Append(ctx, []workflow.Entry{
		c.taskEntry("r1", 0, "a", workflow.EventTaskStarted, 1, "", nil),
		c.taskEntry("r1", 0, "a", workflow.EventTaskSucceeded, 1, "", []byte(`2`)),
	}))
	require.False(t, p.armed.Load(), "an answer was dropped")
	require.NoError(t, rec.Append(ctx, []workflow.Entry{
		c.taskEntry("r1", 1, "b", workflow.EventTaskStarted, 1, "", nil),
		c.taskEntry("r1", 1, "b", workflow.EventTaskSucceeded, 1, "", []byte(`3`)),
		c.runEntry("r1", workflow.EventRunSucceeded, "", nil),
	}))
	rs, err := s.Get(ctx, "wf", "r1")
	require.NoError(t, err)
	require.Equal(t, workflow.StateSucceeded, rs.State)
	var lines []string
	for _, ev := range rs.Events {
		lines = append(lines, eventLine(ev))
	}
	require.Equal(t, []string{"run_started", "task_started a 1", "task_succeeded a 1", "task_started b 1", "task_succeeded b 1", "run_succeeded"}, lines)
	require.Equal(t, "2", string(rs.Tasks[0].Output))
}
