package temporalwf_test

import (
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"testing"
	"time"

	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/server/common/cluster"
	"go.temporal.io/server/common/config"
	"go.temporal.io/server/common/dynamicconfig"
	"go.temporal.io/server/common/log"
	"go.temporal.io/server/common/persistence/sql/sqlplugin/sqlite"
	"go.temporal.io/server/common/primitives"
	sqliteschema "go.temporal.io/server/schema/sqlite"
	"go.temporal.io/server/temporal"
	"go.uber.org/goleak"
)

// The Temporal server the tests run against: a real one, in this process,
// as the Temporal CLI's dev server starts it (SQLite in memory, every
// service on 127.0.0.1), started once for the package by TestMain: it
// leaves some two hundred goroutines behind when stopped.
var (
	hostPort  string
	namespace = "workflow-test"
)

func TestMain(m *testing.M) {
	stop, err := startServer()
	if err != nil {
		fmt.Fprintln(os.Stderr, "starting the Temporal server:", err)
		os.Exit(1)
	}
	if err := warmUp(); err != nil {
		fmt.Fprintln(os.Stderr, "the Temporal server's first run:", err)
		os.Exit(1)
	}
	serverGoroutines = append(serverGoroutines, goleak.IgnoreCurrent())
	code := m.Run()
	// The SDK caches workflows in the process (its sticky cache), parked
	// in their coroutines, beyond their workers: runs that Temporal ended
	// (a RunTimeout) stay there until purged.
	worker.PurgeStickyWorkflowCache()
	stop()
	if code == 0 {
		// The server's goroutines outlive Stop; only ours are checked.
		if err := goleak.Find(serverGoroutines...); err != nil {
			fmt.Fprintln(os.Stderr, "goleak:", err)
			code = 1
		}
	}
	os.Exit(code)
}

// serverGoroutines ignores the goroutines the Temporal server runs, and
// leaves behind when stopped: those under way once it has started and
// served a first run (see warmUp), and the few it starts later for a task
// queue or a namespace's work, which goleak names by function.
var serverGoroutines = []goleak.Option{
	// The server's gRPC clients, reconnecting to services that stopped.
	goleak.IgnoreTopFunction("google.golang.org/grpc.(*addrConn).resetTransportAndUnlock"),
}

// freePorts returns n distinct TCP ports free on 127.0.0.1.
func freePorts(n int) ([]int, error) {
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	ports := make([]int, 0, n)
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// startServer starts the Temporal server and returns how to stop it.
func startServer() (stop func(), err error) {
	ports, err := freePorts(8)
	if err != nil {
		return nil, err
	}
	hostPort = fmt.Sprintf("127.0.0.1:%d", ports[0])
	db := config.SQL{
		PluginName:   sqlite.PluginName,
		DatabaseName: fmt.Sprintf("workflow-test-%d", rand.Uint32()),
		// In memory, shared by the server's connections; the plugin
		// creates the schema of an in-memory database itself.
		ConnectAttributes: map[string]string{"mode": "memory", "cache": "shared"},
	}
	service := func(k int) config.Service {
		return config.Service{RPC: config.RPC{GRPCPort: ports[k], MembershipPort: ports[4+k], BindOnLocalHost: true}}
	}
	cfg := &config.Config{
		Global: config.Global{
			Membership: config.Membership{MaxJoinDuration: 30 * time.Second, BroadcastAddress: "127.0.0.1"},
		},
		Persistence: config.Persistence{
			DefaultStore:     sqlite.PluginName,
			VisibilityStore:  sqlite.PluginName,
			NumHistoryShards: 1,
			DataStores:       map[string]config.DataStore{sqlite.PluginName: {SQL: &db}},
		},
		ClusterMetadata: &cluster.Config{
			EnableGlobalNamespace:    false,
			FailoverVersionIncrement: 10,
			MasterClusterName:        "active",
			CurrentClusterName:       "active",
			ClusterInformation: map[string]cluster.ClusterInformation{
				"active": {Enabled: true, InitialFailoverVersion: 1, RPCAddress: hostPort},
			},
		},
		DCRedirectionPolicy: config.DCRedirectionPolicy{Policy: "noop"},
		Services: map[string]config.Service{
			string(primitives.FrontendService): service(0),
			string(primitives.HistoryService):  service(1),
			string(primitives.MatchingService): service(2),
			string(primitives.WorkerService):   service(3),
		},
		Archival: config.Archival{
			History:    config.HistoryArchival{State: "disabled"},
			Visibility: config.VisibilityArchival{State: "disabled"},
		},
		NamespaceDefaults: config.NamespaceDefaults{Archival: config.ArchivalNamespaceDefaults{
			History:    config.HistoryArchivalNamespaceDefaults{State: "disabled"},
			Visibility: config.VisibilityArchivalNamespaceDefaults{State: "disabled"},
		}},
		PublicClient: config.PublicClient{HostPort: hostPort},
	}
	ns, err := sqliteschema.NewNamespaceConfig("active", namespace, false, nil)
	if err != nil {
		return nil, err
	}
	if err := sqliteschema.CreateNamespaces(&db, ns); err != nil {
		return nil, fmt.Errorf("creating the namespace: %w", err)
	}
	dc := dynamicconfig.StaticClient{
		// Timers fire on time rather than up to a second late, so that
		// retry waits of a few milliseconds take about that.
		dynamicconfig.TimerProcessorMaxTimeShift.Key(): 10 * time.Millisecond,
		// One partition per task queue, as the CLI's dev server has it:
		// with the default four, a task may wait in a partition that no
		// poller of a lone worker is on.
		dynamicconfig.MatchingNumTaskqueueReadPartitions.Key():  1,
		dynamicconfig.MatchingNumTaskqueueWritePartitions.Key(): 1,
	}
	srv, err := temporal.NewServer(
		temporal.WithConfig(cfg),
		temporal.ForServices(temporal.DefaultServices),
		temporal.WithLogger(log.NewNoopLogger()),
		temporal.WithDynamicConfigClient(dc),
	)
	if err != nil {
		return nil, err
	}
	if err := srv.Start(); err != nil {
		return nil, err
	}
	return func() { _ = srv.Stop() }, nil
}

// dial returns a client of the test server.
func dial(t testing.TB) client.Client {
	t.Helper()
	c, err := client.Dial(client.Options{HostPort: hostPort, Namespace: namespace, Logger: quiet{}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

// quiet is an SDK logger that logs nothing: the tests assert on what
// matters.
type quiet struct{}

func (quiet) Debug(string, ...any) {}
func (quiet) Info(string, ...any)  {}
func (quiet) Warn(string, ...any)  {}
func (quiet) Error(string, ...any) {}
