package workflow_test

import (
	"bytes"
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/b3b01171/workflow"
)

const hostile = `a"<b>&`

func pass[T any](ctx context.Context, v T) (T, error) { return v, nil }

// diamond builds start → (left, right) → join, with a hostile name on
// the right branch, and returns the workflow.
func diamond(t *testing.T) *workflow.Workflow[int, int] {
	t.Helper()
	wf, err := workflow.New[int, int]("diamond <&>", workflow.Tasks{
		workflow.Task[int, int]{Name: "start", Handler: pass[int]},
		workflow.Task[int, int]{Name: "left side", Dependencies: []string{"start"}, Handler: pass[int],
			Retry: workflow.RetryPolicy{Attempts: 3}},
		workflow.Task[int, int]{Name: hostile, Dependencies: []string{"start"}, Handler: pass[int], Timeout: time.Second},
		workflow.Task[workflow.Inputs, int]{Name: "jöin ✓", Dependencies: []string{"left side", hostile},
			Handler: func(ctx context.Context, in workflow.Inputs) (int, error) { return 1, nil }},
	})
	require.NoError(t, err)
	return wf
}

// svgDoc is what the tests read of the SVG: the nodes and edges.
type svgDoc struct {
	Groups []svgGroup `xml:"g"`
}

type svgGroup struct {
	Class string `xml:"class,attr"`
	Task  string `xml:"data-task,attr"`
	State string `xml:"data-state,attr"`
	From  string `xml:"data-from,attr"`
	To    string `xml:"data-to,attr"`
	Title string `xml:"title"`
	Rect  struct {
		Fill string `xml:"fill,attr"`
		X    int    `xml:"x,attr"`
		Y    int    `xml:"y,attr"`
	} `xml:"rect"`
	Texts []string `xml:"text"`
}

func parseSVG(t *testing.T, svg []byte) (nodes map[string]svgGroup, edges map[[2]string]bool) {
	t.Helper()
	var doc svgDoc
	require.NoError(t, xml.Unmarshal(svg, &doc), "the SVG must be well-formed XML:\n%s", svg)
	nodes, edges = map[string]svgGroup{}, map[[2]string]bool{}
	for _, g := range doc.Groups {
		switch g.Class {
		case "task":
			nodes[g.Task] = g
		case "edge":
			edges[[2]string{g.From, g.To}] = true
		}
	}
	return nodes, edges
}

func TestGraph(t *testing.T) {
	t.Run("DescribesTasksInTopologicalOrder", func(t *testing.T) {
		g := diamond(t).Graph()
		require.Equal(t, "diamond <&>", g.Workflow)
		require.Equal(t, "jöin ✓", g.Output)
		require.Len(t, g.Tasks, 4)
		require.Equal(t, "start", g.Tasks[0].Name)
		require.Equal(t, "jöin ✓", g.Tasks[3].Name)
		require.Equal(t, []string{"left side", hostile}, g.Tasks[3].Dependencies)
		require.Equal(t, "workflow.Inputs", g.Tasks[3].In)
		require.Equal(t, "int", g.Tasks[3].Out)
		for _, task := range g.Tasks {
			switch task.Name {
			case "left side":
				require.Equal(t, 3, task.Retry.Attempts)
			case hostile:
				require.Equal(t, time.Second, task.Timeout)
			}
		}
	})

	t.Run("IsACopy", func(t *testing.T) {
		wf := diamond(t)
		g := wf.Graph()
		g.Tasks[3].Dependencies[0] = "changed"
		require.Equal(t, "left side", wf.Graph().Tasks[3].Dependencies[0])
	})

	t.Run("OfAZeroWorkflowIsEmptyAndDrawable", func(t *testing.T) {
		for _, wf := range []*workflow.Workflow[int, int]{nil, {}} {
			g := wf.Graph()
			require.Empty(t, g.Tasks)
			require.Equal(t, "flowchart LR\n", g.Mermaid())
			require.Contains(t, g.DOT(), "digraph")
			nodes, edges := parseSVG(t, g.SVG(workflow.RunStatus{}))
			require.Empty(t, nodes)
			require.Empty(t, edges)
		}
	})

	t.Run("BuiltByHandWithUnknownDependenciesDoesNotPanic", func(t *testing.T) {
		g := workflow.Graph{Tasks: []workflow.GraphTask{
			{Name: "b", Dependencies: []string{"a", "nowhere"}}, // a comes later: not drawn
			{Name: "a"},
			{Name: "a"},
		}}
		nodes, edges := parseSVG(t, g.SVG(workflow.RunStatus{}))
		require.Len(t, nodes, 2)
		require.Empty(t, edges)
		require.NotContains(t, g.Mermaid(), "-->")
	})
}

func TestGraphMermaid(t *testing.T) {
	t.Run("HasEveryTaskAndEdge", func(t *testing.T) {
		got := diamond(t).Graph().Mermaid()
		require.Equal(t, `flowchart LR
    t0["start"]
    t1["left side"]
    t2["a#34;#60;b#62;#38;"]
    t3["jöin ✓"]
    t0 --> t1
    t0 --> t2
    t1 --> t3
    t2 --> t3
`, got)
	})

	t.Run("WritesSyntaxAsEntityCodes", func(t *testing.T) {
		g := workflow.Graph{Tasks: []workflow.GraphTask{{Name: "x\"]\n#`\\"}}}
		line := strings.Split(g.Mermaid(), "\n")[1]
		require.Equal(t, `    t0["x#34;]#10;#35;#96;#92;"]`, line)
	})
}

func TestGraphDOT(t *testing.T) {
	t.Run("HasEveryTaskAndEdgeQuoted", func(t *testing.T) {
		got := diamond(t).Graph().DOT()
		require.Equal(t, `digraph "diamond <&>" {
	rankdir=LR;
	node [shape=box, style=rounded];
	"start" [tooltip="int → int"];
	"left side" [tooltip="int → int"];
	"a\"<b>&" [tooltip="int → int"];
	"jöin ✓" [tooltip="workflow.Inputs → int"];
	"start" -> "left side";
	"start" -> "a\"<b>&";
	"left side" -> "jöin ✓";
	"a\"<b>&" -> "jöin ✓";
}
`, got)
	})

	t.Run("EscapesBackslashesAndLineBreaks", func(t *testing.T) {
		g := workflow.Graph{Workflow: `w\`, Tasks: []workflow.GraphTask{{Name: "a\\\nb\""}}}
		require.Contains(t, g.DOT(), `digraph "w\\" {`)
		require.Contains(t, g.DOT(), `"a\\\nb\"" [`)
	})
}

func TestGraphSVG(t *testing.T) {
	t.Run("HasEveryTaskAndEdgeLeftToRight", func(t *testing.T) {
		svg := diamond(t).Graph().SVG(workflow.RunStatus{})
		nodes, edges := parseSVG(t, svg)
		require.Len(t, nodes, 4)
		require.Equal(t, map[[2]string]bool{
			{"start", "left side"}: true, {"start", hostile}: true,
			{"left side", "jöin ✓"}: true, {hostile, "jöin ✓"}: true,
		}, edges)
		// Layers: start, then both branches in one column, then the join.
		require.Less(t, nodes["start"].Rect.X, nodes["left side"].Rect.X)
		require.Equal(t, nodes["left side"].Rect.X, nodes[hostile].Rect.X)
		require.NotEqual(t, nodes["left side"].Rect.Y, nodes[hostile].Rect.Y)
		require.Less(t, nodes[hostile].Rect.X, nodes["jöin ✓"].Rect.X)
		require.Equal(t, []string{hostile}, nodes[hostile].Texts)
		require.Contains(t, nodes["left side"].Title, "up to 3 attempts")
		require.Contains(t, nodes[hostile].Title, "timeout 1s")
	})

	t.Run("IsSelfContained", func(t *testing.T) {
		svg := string(diamond(t).Graph().SVG(workflow.RunStatus{}))
		for _, banned := range []string{"<script", "href", "url(", "<style", "@import", "<b>"} {
			require.NotContains(t, svg, banned)
		}
		require.Contains(t, svg, "a&#34;&lt;b&gt;&amp;")
	})

	t.Run("IsUncolouredWithoutARun", func(t *testing.T) {
		nodes, _ := parseSVG(t, diamond(t).Graph().SVG(workflow.RunStatus{}))
		for name, n := range nodes {
			require.Equal(t, "#ffffff", n.Rect.Fill, name)
			require.Empty(t, n.State, name)
		}
	})

	t.Run("ColoursEachTaskByItsStateInTheRun", func(t *testing.T) {
		wf := diamond(t)
		_, err := wf.Run(t.Context(), 1, workflow.ReplaceTask(hostile, func(ctx context.Context, n int) (int, error) {
			return 0, workflow.Permanent(errors.New("no"))
		}))
		require.Error(t, err)
		rs, err := wf.Status(t.Context())
		require.NoError(t, err)

		nodes, _ := parseSVG(t, wf.Graph().SVG(rs))
		for _, ts := range rs.Tasks {
			n := nodes[ts.Name]
			require.Equal(t, string(ts.State), n.State, ts.Name)
			require.Equal(t, workflow.StateColor(ts.State), n.Rect.Fill, ts.Name)
		}
		require.Equal(t, workflow.StateColor(workflow.StateFailed), nodes[hostile].Rect.Fill)
		require.Equal(t, "failed", nodes[hostile].State)
		require.Equal(t, []string{hostile, "failed"}, nodes[hostile].Texts)
		require.Equal(t, "skipped", nodes["jöin ✓"].State)
	})

	t.Run("StatesHaveDistinctColours", func(t *testing.T) {
		seen := map[string]workflow.State{}
		for _, s := range []workflow.State{workflow.StatePending, workflow.StateRunning, workflow.StateInterrupted,
			workflow.StateSucceeded, workflow.StateFailed, workflow.StateTimedOut, workflow.StateCancelled,
			workflow.StateSkipped, ""} {
			c := workflow.StateColor(s)
			_, dup := seen[c]
			require.False(t, dup, "%s and %s share %s", s, seen[c], c)
			seen[c] = s
		}
	})

	t.Run("IsDeterministic", func(t *testing.T) {
		wf := diamond(t)
		_, err := wf.Run(t.Context(), 1)
		require.NoError(t, err)
		rs, err := wf.Status(t.Context())
		require.NoError(t, err)
		first := wf.Graph().SVG(rs)
		for range 20 {
			require.True(t, bytes.Equal(first, wf.Graph().SVG(rs)))
		}
	})

	t.Run("CutsLongNamesKeepingThemInTheTitle", func(t *testing.T) {
		long := strings.Repeat("ü", 100)
		nodes, _ := parseSVG(t, workflow.Graph{Tasks: []workflow.GraphTask{{Name: long}}}.SVG(workflow.RunStatus{}))
		require.Len(t, []rune(nodes[long].Texts[0]), 32)
		require.True(t, strings.HasSuffix(nodes[long].Texts[0], "…"))
		require.True(t, strings.HasPrefix(nodes[long].Title, long))
	})

	t.Run("DrawsLargeGraphsInLayers", func(t *testing.T) {
		// 2,000 tasks: 40 layers of 50, each task depending on two of the
		// layer before.
		var tasks []workflow.GraphTask
		for l := range 40 {
			for k := range 50 {
				task := workflow.GraphTask{Name: fmt.Sprintf("l%d-%d", l, k)}
				if l > 0 {
					task.Dependencies = []string{fmt.Sprintf("l%d-%d", l-1, k), fmt.Sprintf("l%d-%d", l-1, (k+1)%50)}
				}
				tasks = append(tasks, task)
			}
		}
		start := time.Now()
		svg := workflow.Graph{Tasks: tasks}.SVG(workflow.RunStatus{})
		elapsed := time.Since(start)
		nodes, edges := parseSVG(t, svg)
		require.Len(t, nodes, 2000)
		require.Len(t, edges, 39*50*2)
		require.Less(t, elapsed, 2*time.Second)
		xs := map[int]bool{}
		for _, n := range nodes {
			xs[n.Rect.X] = true
		}
		require.Len(t, xs, 40, "one column per layer")
	})
}

func TestGraphNamesWithoutSyntax(t *testing.T) {
	// A name of every printable ASCII character survives each format.
	var name strings.Builder
	for c := ' '; c <= '~'; c++ {
		name.WriteRune(c)
	}
	g := workflow.Graph{Workflow: name.String(), Tasks: []workflow.GraphTask{{Name: name.String()}}}
	nodes, _ := parseSVG(t, g.SVG(workflow.RunStatus{}))
	assert.Contains(t, nodes, name.String())
	assert.Equal(t, 1, strings.Count(g.Mermaid(), `"`)/2)
	assert.Equal(t, 2, strings.Count(g.DOT(), `\"`)) // the workflow's name and the task's
}

func TestGraphShowsMapSubAndTriggerRules(t *testing.T) {
	child := newWorkflow[[]string, int](t, "count", workflow.Tasks{
		workflow.Task[[]string, int]{Name: "len", Handler: func(_ context.Context, s []string) (int, error) { return len(s), nil }},
	})
	w := newWorkflow[[]int, int](t, "shapes", workflow.Tasks{
		workflow.Map[int, string]{Name: "parse", MaxConcurrency: 4, Handler: func(context.Context, int) (string, error) { return "", nil }},
		workflow.Sub("count", child, "parse"),
		workflow.Task[int, int]{Name: "cleanup", Dependencies: []string{"count"}, Trigger: workflow.AllDone, Handler: identity},
	})
	g := w.Graph()
	require.Len(t, g.Tasks, 3)
	assert.True(t, g.Tasks[0].Map)
	assert.Equal(t, 4, g.Tasks[0].MaxConcurrency)
	assert.Equal(t, "[]int", g.Tasks[0].In)
	assert.Equal(t, "count", g.Tasks[1].Sub)
	assert.Equal(t, workflow.AllDone, g.Tasks[2].Trigger)
	assert.Equal(t, "flowchart LR\n"+
		"    t0[/\"parse\"/]\n"+
		"    t1[[\"count\"]]\n"+
		"    t2[\"cleanup\"]\n"+
		"    t0 --> t1\n"+
		"    t1 -. all_done .-> t2\n", g.Mermaid())
	dot := g.DOT()
	assert.Contains(t, dot, `"parse" [tooltip="[]int → []string", shape=box3d];`)
	assert.Contains(t, dot, `"count" [tooltip="[]string → int", shape=component];`)
	assert.Contains(t, dot, `"count" -> "cleanup" [style=dashed, label="all_done"];`)
	assert.Contains(t, dot, `"parse" -> "count";`)
}
