package sqlitestore_test

import (
	"context"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// The demo (./example) does what the README says: its first invocation is
// killed half way, its second resumes the run and finishes it.
func TestDemoResumesTheRunItsFirstInvocationKilled(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a binary")
	}
	t.Parallel()
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command to build the demo with")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	dir := t.TempDir()
	demo, db := filepath.Join(dir, "demo"), filepath.Join(dir, "runs.db")
	build, err := exec.CommandContext(ctx, goTool, "build", "-o", demo, "./example").CombinedOutput()
	require.NoError(t, err, "go build:\n%s", build)

	help, err := exec.CommandContext(ctx, demo, "-h").CombinedOutput()
	require.NoError(t, err, "-h exits 0:\n%s", help)
	require.Contains(t, string(help), "-fresh")

	first, err := exec.CommandContext(ctx, demo, "-db", db, "-fresh").CombinedOutput()
	var exit *exec.ExitError
	require.ErrorAs(t, err, &exit, "the first invocation is killed:\n%s", first)
	require.Equal(t, -1, exit.ExitCode(), "killed by a signal: %s\n%s", exit, first)
	require.Contains(t, string(first), "killed half way; run me again to resume")
	runID := field(t, string(first), "started run ")

	second, err := exec.CommandContext(ctx, demo, "-db", db).CombinedOutput()
	require.NoError(t, err, "the second invocation:\n%s", second)
	out := string(second)
	require.Contains(t, out, "recovered run "+runID+": resuming it")
	require.Contains(t, out, "run "+runID+" succeeded: {OrderID:order-1042 Charged:103.4")
	require.Contains(t, out, "charge   attempt 2: charging", "charge runs again, its attempts counted on")
	require.NotContains(t, out, "validate attempt 1: ", "validate is not run again")
	require.Contains(t, out, "task charge   succeeded attempts 2")
}

// field returns the word that follows prefix at the start of a line of out.
func field(t *testing.T, out, prefix string) string {
	t.Helper()
	for line := range strings.Lines(out) {
		if rest, ok := strings.CutPrefix(line, prefix); ok {
			return strings.Fields(rest)[0]
		}
	}
	t.Fatalf("no line starts with %q in:\n%s", prefix, out)
	return ""
}
