package workflow_test

import (
	"bytes"
	"context"
	"log/slog"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/b3b01171/workflow"
)

// lockedBuffer is a bytes.Buffer safe for the logger's goroutine and the
// test's.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func TestTheLoggerSaysWhichMapItemFailedOrRetried(t *testing.T) {
	var out lockedBuffer
	logger := slog.New(slog.NewTextHandler(&out, &slog.HandlerOptions{Level: slog.LevelWarn}))
	w := listThenMap(t, workflow.Map[int, string]{Retry: workflow.RetryPolicy{Attempts: 2},
		Handler: func(ctx context.Context, i int) (string, error) {
			if i == 2 {
				return "", errBoom
			}
			return itoa(ctx, i)
		}}, workflow.WithLogger(logger))
	_, err := w.Run(t.Context(), 3)
	require.ErrorIs(t, err, errBoom)
	logged := out.String()
	assert.Contains(t, logged, `level=WARN msg="workflow item_retrying"`)
	assert.Contains(t, logged, `task=parse attempt=1 item=2`)
	assert.Contains(t, logged, `level=WARN msg="workflow item_failed"`)
	assert.Contains(t, logged, `task=parse attempt=2 item=2`)
	assert.NotContains(t, logged, "items_started", "Debug, below the handler's level")
}
