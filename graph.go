package workflow

import (
	"bytes"
	"cmp"
	"encoding/xml"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Graph describes a workflow's tasks and their dependencies: what a picture
// or a dashboard of the workflow needs, read from the checked definition.
// It is a copy: changing it changes nothing in the workflow.
type Graph struct {
	// Workflow is the workflow's name.
	Workflow string
	// Output names the task whose output is the workflow's.
	Output string
	// Tasks holds every task, in the topological order runs report them in
	// (RunStatus.Tasks): each task comes after its dependencies.
	Tasks []GraphTask
}

// GraphTask is one task of a Graph.
type GraphTask struct {
	Name string
	// Dependencies names the tasks this one waits for, as declared.
	Dependencies []string
	// In and Out name the types the task takes and gives, as reflect
	// prints them ("workflow.Inputs", "[]main.Record").
	In, Out string
	// Retry and Timeout are the task's, or for a Map task its items'.
	Retry   RetryPolicy
	Timeout time.Duration
	// Trigger is the task's trigger rule.
	Trigger TriggerRule
	// Map is set for a Map task, whose In and Out are the lists; and
	// MaxConcurrency is its.
	Map            bool
	MaxConcurrency int
	// Sub is the child workflow's name, for a Sub task; "" otherwise.
	Sub string
}

// Graph describes the workflow's tasks. A zero Workflow has an empty Graph.
func (w *Workflow[In, Out]) Graph() Graph {
	if w == nil || w.e == nil || w.e.plan == nil {
		return Graph{}
	}
	p := w.e.plan
	g := Graph{Workflow: w.e.name, Tasks: make([]GraphTask, 0, len(p.order))}
	if p.output >= 0 && int(p.output) < len(p.names) {
		g.Output = p.names[p.output]
	}
	for _, i := range p.order {
		t := &p.tasks[i]
		g.Tasks = append(g.Tasks, GraphTask{
			Name:         t.name,
			Dependencies: slices.Clone(t.deps),
			In:           typeName(t.in),
			Out:          typeName(t.out),
			Retry:        t.retry,
			Timeout:      t.timeout,
			Trigger:      t.trigger,
			Map:          t.mapped,
			Sub:          t.child,
		})
		if t.mapped {
			g.Tasks[len(g.Tasks)-1].MaxConcurrency = t.concurrency
		}
	}
	return g
}

func typeName(t interface{ String() string }) string {
	if t == nil {
		return ""
	}
	return t.String()
}

// edges lists the graph's links as (dependency, task) positions in Tasks.
// Dependencies that name no task of the graph (a Graph built by hand) are
// left out, as are links that would point backwards.
func (g Graph) edges() [][2]int {
	pos := make(map[string]int, len(g.Tasks))
	for i, t := range g.Tasks {
		if _, dup := pos[t.Name]; !dup {
			pos[t.Name] = i
		}
	}
	var out [][2]int
	for i, t := range g.Tasks {
		for _, d := range t.Dependencies {
			if j, ok := pos[d]; ok && j < i {
				out = append(out, [2]int{j, i})
			}
		}
	}
	return out
}

// Mermaid returns the graph as a Mermaid flowchart, left to right, for
// Markdown that renders Mermaid (GitHub's does). Nodes are named t0, t1, …
// in the order of Tasks; each is labelled with its task's name, with the
// characters Mermaid would read as syntax written as entity codes. A Map
// task is drawn as a parallelogram, a Sub task as a subroutine box, and
// the links into a task with a trigger rule other than AllSucceeded are
// dotted and labelled with the rule.
func (g Graph) Mermaid() string {
	var b strings.Builder
	b.WriteString("flowchart LR\n")
	for i, t := range g.Tasks {
		open, close := "[", "]"
		switch {
		case t.Map:
			open, close = "[/", "/]"
		case t.Sub != "":
			open, close = "[[", "]]"
		}
		fmt.Fprintf(&b, "    t%d%s\"%s\"%s\n", i, open, mermaidText(t.Name), close)
	}
	for _, e := range g.edges() {
		if rule := g.Tasks[e[1]].Trigger; rule != AllSucceeded {
			fmt.Fprintf(&b, "    t%d -. %s .-> t%d\n", e[0], rule, e[1])
			continue
		}
		fmt.Fprintf(&b, "    t%d --> t%d\n", e[0], e[1])
	}
	return b.String()
}

// mermaidText writes s for a quoted Mermaid label: quotes, markup and
// line breaks become decimal entity codes ("#34;"), which Mermaid turns
// back into the characters.
func mermaidText(s string) string {
	var b strings.Builder
	for _, r := range s {
		switch {
		case r == '"' || r == '#' || r == '&' || r == '<' || r == '>' || r == '`' || r == '\\' || r < ' ' || r == 0x7f:
			fmt.Fprintf(&b, "#%d;", r)
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

// DOT returns the graph in Graphviz's DOT language, left to right, each
// node named by its task's name as a quoted ID.
func (g Graph) DOT() string {
	var b strings.Builder
	fmt.Fprintf(&b, "digraph %s {\n", dotQuote(g.Workflow))
	b.WriteString("\trankdir=LR;\n\tnode [shape=box, style=rounded];\n")
	for _, t := range g.Tasks {
		shape := ""
		switch {
		case t.Map:
			shape = ", shape=box3d"
		case t.Sub != "":
			shape = ", shape=component"
		}
		fmt.Fprintf(&b, "\t%s [tooltip=%s%s];\n", dotQuote(t.Name), dotQuote(t.In+" → "+t.Out), shape)
	}
	for _, e := range g.edges() {
		attrs := ""
		if rule := g.Tasks[e[1]].Trigger; rule != AllSucceeded {
			attrs = fmt.Sprintf(" [style=dashed, label=%s]", dotQuote(rule.String()))
		}
		fmt.Fprintf(&b, "\t%s -> %s%s;\n", dotQuote(g.Tasks[e[0]].Name), dotQuote(g.Tasks[e[1]].Name), attrs)
	}
	b.WriteString("}\n")
	return b.String()
}

// dotQuote quotes s as a DOT ID. Backslashes are doubled, since labels
// read "\n", "\N" and the like as escapes; line breaks become "\n".
func dotQuote(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		switch {
		case r == '"':
			b.WriteString(`\"`)
		case r == '\\':
			b.WriteString(`\\`)
		case r == '\n':
			b.WriteString(`\n`)
		case r < ' ' || r == 0x7f:
			b.WriteByte(' ')
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String()
}

// StateColor is the fill of a task in state s in the pictures SVG draws,
// as a CSS hex colour; "#ffffff" for a state it does not know, as for a
// task of no run.
func StateColor(s State) string {
	switch s {
	case StatePending:
		return "#e5e7eb"
	case StateRunning:
		return "#93c5fd"
	case StateInterrupted:
		return "#fde68a"
	case StateSucceeded:
		return "#86efac"
	case StateFailed:
		return "#fca5a5"
	case StateTimedOut:
		return "#fdba74"
	case StateCancelled:
		return "#d8b4fe"
	case StateSkipped:
		return "#f3f4f6"
	}
	return "#ffffff"
}

// The geometry of SVG, in pixels.
const (
	svgMargin    = 16
	svgCharWidth = 7  // a rough width of one character at svgFontSize
	svgMinWidth  = 96 // of a node
	svgMaxChars  = 32 // longer names are cut, the full name in the node's title
	svgNodeH     = 40 // of a node
	svgRowGap    = 16 // between nodes of a column
	svgColGap    = 56 // between columns, where the edges run
	svgArrow     = 7  // length of an arrowhead
	svgFontSize  = 12 // of a task's name
	svgSmallFont = 10 // of its state
	svgPad       = 10 // between a node's border and its text
	svgEdgeColor = "#6b7280"
)

// SVG draws the graph as a self-contained SVG document: no scripts, no
// styles or fonts from elsewhere. The layout is layered: each task stands
// in the column after its deepest dependency (the longest path to it), the
// tasks of a column ordered by where their dependencies stand, and every
// dependency is an arrow from left to right. With a RunStatus, each task is
// filled with StateColor of its state in that run, and its state is written
// under its name; with the zero RunStatus, nodes are white. The same graph
// and run give the same bytes.
//
// The picture grows with the graph and is never scaled down: a graph of
// thousands of tasks gives a large picture, readable at its own size, to
// scroll through. Each node is a <g> element with data-task and data-state
// attributes and a <title> (its name, types and state), and each edge one
// with data-from and data-to, for pages that embed the picture.
func (g Graph) SVG(rs RunStatus) []byte {
	n := len(g.Tasks)
	edges := g.edges()
	deps := make([][]int, n)
	for _, e := range edges {
		deps[e[1]] = append(deps[e[1]], e[0])
	}

	// Layers: the longest path to each task. Tasks are in topological
	// order, so each task's dependencies are placed before it.
	layer := make([]int, n)
	layers := 0
	for i := range n {
		for _, d := range deps[i] {
			layer[i] = max(layer[i], layer[d]+1)
		}
		layers = max(layers, layer[i]+1)
	}
	cols := make([][]int, layers)
	for i := range n {
		cols[layer[i]] = append(cols[layer[i]], i)
	}
	// Order each column by the mean row of the task's dependencies (the
	// barycentre), which keeps edges short and crossings few; ties keep
	// the topological order.
	row := make([]int, n)
	for c, col := range cols {
		if c > 0 {
			key := make(map[int]float64, len(col))
			for _, i := range col {
				sum := 0
				for _, d := range deps[i] {
					sum += row[d]
				}
				key[i] = float64(sum) / float64(max(len(deps[i]), 1))
			}
			slices.SortStableFunc(col, func(a, b int) int { return cmp.Compare(key[a], key[b]) })
		}
		for r, i := range col {
			row[i] = r
		}
	}

	// Columns are as wide as their longest name; each is centred on the
	// tallest.
	labels := make([]string, n)
	colW := make([]int, layers)
	colX := make([]int, layers)
	tallest := 0
	for c, col := range cols {
		colW[c] = svgMinWidth
		for _, i := range col {
			labels[i] = shorten(g.Tasks[i].Name, svgMaxChars)
			colW[c] = max(colW[c], utf8.RuneCountInString(labels[i])*svgCharWidth+2*svgPad)
		}
		tallest = max(tallest, len(col))
	}
	x := svgMargin
	for c := range cols {
		colX[c] = x
		x += colW[c] + svgColGap
	}
	width := max(x-svgColGap+svgMargin, 2*svgMargin)
	height := max(tallest*(svgNodeH+svgRowGap)-svgRowGap, 0) + 2*svgMargin
	nodeY := func(i int) int {
		col := cols[layer[i]]
		offset := (tallest - len(col)) * (svgNodeH + svgRowGap) / 2
		return svgMargin + offset + row[i]*(svgNodeH+svgRowGap)
	}

	states := make(map[string]TaskStatus, len(rs.Tasks))
	for _, t := range rs.Tasks {
		states[t.Name] = t
	}

	var b bytes.Buffer
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" role="img" aria-label="%s" font-family="system-ui, -apple-system, sans-serif">`+"\n",
		width, height, width, height, xmlText("workflow "+g.Workflow))
	fmt.Fprintf(&b, "<title>%s</title>\n", xmlText(g.Workflow))

	// Edges first, so that nodes are drawn over them.
	for _, e := range edges {
		from, to := e[0], e[1]
		x1 := colX[layer[from]] + colW[layer[from]]
		y1 := nodeY(from) + svgNodeH/2
		x2 := colX[layer[to]] - svgArrow
		y2 := nodeY(to) + svgNodeH/2
		dx := (x2 - x1) / 2
		fmt.Fprintf(&b, `<g class="edge" data-from="%s" data-to="%s">`, xmlText(g.Tasks[from].Name), xmlText(g.Tasks[to].Name))
		fmt.Fprintf(&b, `<path d="M%d %d C%d %d %d %d %d %d" fill="none" stroke="%s" stroke-width="1.5"/>`,
			x1, y1, x1+dx, y1, x2-dx, y2, x2, y2, svgEdgeColor)
		fmt.Fprintf(&b, `<polygon points="%d,%d %d,%d %d,%d" fill="%s"/>`,
			x2, y2-4, x2+svgArrow, y2, x2, y2+4, svgEdgeColor)
		b.WriteString("</g>\n")
	}

	for i, t := range g.Tasks {
		x, y, w := colX[layer[i]], nodeY(i), colW[layer[i]]
		ts, inRun := states[t.Name]
		state := ""
		if inRun {
			state = string(ts.State)
		}
		title := t.Name + "\n" + t.In + " → " + t.Out
		if t.Timeout > 0 {
			title += "\ntimeout " + t.Timeout.String()
		}
		if t.Retry.Attempts > 1 {
			title += "\nup to " + strconv.Itoa(t.Retry.Attempts) + " attempts"
		}
		if inRun {
			title += "\n" + state
			if ts.Attempts > 1 {
				title += ", " + strconv.Itoa(ts.Attempts) + " attempts"
			}
		}
		stroke, dash := "#374151", ""
		if t.Name == g.Output {
			stroke = "#111827"
		}
		if ts.State == StateSkipped {
			dash = ` stroke-dasharray="4 3"`
		}
		fmt.Fprintf(&b, `<g class="task" data-task="%s" data-state="%s">`, xmlText(t.Name), xmlText(state))
		fmt.Fprintf(&b, "<title>%s</title>", xmlText(title))
		fmt.Fprintf(&b, `<rect x="%d" y="%d" width="%d" height="%d" rx="6" fill="%s" stroke="%s" stroke-width="1.2"%s/>`,
			x, y, w, svgNodeH, StateColor(ts.State), stroke, dash)
		if inRun {
			fmt.Fprintf(&b, `<text x="%d" y="%d" font-size="%d" fill="#111827">%s</text>`,
				x+svgPad, y+17, svgFontSize, xmlText(labels[i]))
			fmt.Fprintf(&b, `<text x="%d" y="%d" font-size="%d" fill="#374151">%s</text>`,
				x+svgPad, y+31, svgSmallFont, xmlText(stateLabel(ts)))
		} else {
			fmt.Fprintf(&b, `<text x="%d" y="%d" font-size="%d" fill="#111827">%s</text>`,
				x+svgPad, y+svgNodeH/2+4, svgFontSize, xmlText(labels[i]))
		}
		b.WriteString("</g>\n")
	}
	b.WriteString("</svg>\n")
	return b.Bytes()
}

// stateLabel is the line under a task's name in a coloured picture.
func stateLabel(ts TaskStatus) string {
	s := strings.ReplaceAll(string(ts.State), "_", " ")
	if ts.Attempts > 1 {
		s += " · " + strconv.Itoa(ts.Attempts) + " attempts"
	}
	return s
}

// shorten cuts s to at most n characters, ending it with "…" when cut.
func shorten(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	runes := []rune(s)
	return string(runes[:n-1]) + "…"
}

// xmlText escapes s for XML text and attribute values; characters XML
// cannot hold become U+FFFD.
func xmlText(s string) string {
	var b strings.Builder
	xml.EscapeText(&b, []byte(s))
	return b.String()
}
