package workflow

import (
	"fmt"
	"math"
	"reflect"
	"slices"
	"strings"
	"unicode/utf8"
)

// node is one task of a plan: its spec plus what New decided once about it.
type node struct {
	taskSpec
	validateIn  bool // I carries validate tags (and is not Inputs)
	validateOut bool // O carries validate tags
	// For a Map: its items' I and O carry validate tags.
	validateItem, validateEach bool
}

// plan is the immutable, index-based graph of a workflow, built and checked
// once by New. Edges are stored flat (compressed rows): the dependencies of
// task i are depFlat[depOff[i]:depOff[i+1]], sorted, and likewise its
// successors in succFlat. Names are only for lookups, errors and history.
type plan struct {
	tasks    []node
	index    map[string]int32
	depOff   []int32
	depFlat  []int32
	succOff  []int32
	succFlat []int32
	order    []int32 // topological, stable in declaration order
	output   int32   // the task whose output is the workflow's
	rules    bool    // some task has a Trigger other than AllSucceeded
	names    []string
	inType   reflect.Type
	outType  reflect.Type
}

func (p *plan) deps(i int32) []int32  { return p.depFlat[p.depOff[i]:p.depOff[i+1]] }
func (p *plan) succs(i int32) []int32 { return p.succFlat[p.succOff[i]:p.succOff[i+1]] }

// dependsOn reports whether task i depends directly on task d.
func (p *plan) dependsOn(i, d int32) bool {
	_, ok := slices.BinarySearch(p.deps(i), d)
	return ok
}

// buildPlan checks the tasks (their specs, as New read them) and builds
// their plan, which keeps the tasks slice. It reports every problem it
// finds, never panicking on a bad definition.
func buildPlan(tasks []node, in, out reflect.Type, outputTask string) (*plan, problems) {
	var errs problems
	bad := func(sentinel error, format string, args ...any) {
		errs = append(errs, newError(sentinel, format, args...))
	}
	if len(tasks) == 0 {
		bad(ErrInvalidWorkflow, "no tasks")
		return nil, errs
	}
	if len(tasks) > math.MaxInt32 {
		bad(ErrInvalidWorkflow, "%d tasks, more than %d", len(tasks), math.MaxInt32)
		return nil, errs
	}

	n := len(tasks)
	p := &plan{
		tasks:   tasks,
		index:   make(map[string]int32, n),
		names:   make([]string, n),
		inType:  in,
		outType: out,
	}
	// Names are indexed with one map operation each; only when that finds
	// an empty name or fewer names than tasks is the index built again,
	// checking each name in turn.
	for i := range tasks {
		p.names[i] = tasks[i].name
		p.index[tasks[i].name] = int32(i)
	}
	_, blank := p.index[""]
	checkNames := len(p.index) < n || blank
	for name := range p.index {
		checkNames = checkNames || !utf8.ValidString(name)
	}
	if checkNames {
		clear(p.index)
	}
	for i := range tasks {
		s := &tasks[i].taskSpec
		if checkNames {
			switch {
			case s.name == "":
				bad(ErrInvalidWorkflow, "task %d has an empty name", i)
			case !utf8.ValidString(s.name):
				bad(ErrInvalidWorkflow, "task %d: its name %q is not valid UTF-8", i, s.name)
			default:
				if _, dup := p.index[s.name]; dup {
					bad(ErrDuplicateTask, "task %q is defined more than once", s.name)
				} else {
					p.index[s.name] = int32(i)
				}
			}
		}
		switch {
		case s.handler == nil && s.sub:
			bad(ErrInvalidWorkflow, "Sub task %q has no child workflow (nil, or not built by New)", s.name)
		case s.handler == nil:
			bad(ErrInvalidWorkflow, "task %q has a nil Handler", s.name)
		}
		if s.timeout < 0 {
			bad(ErrInvalidWorkflow, "task %q has a negative Timeout %v", s.name, s.timeout)
		}
		for _, problem := range s.retry.validate() {
			bad(ErrInvalidWorkflow, "task %q: %s", s.name, problem)
		}
		switch {
		case s.trigger < AllSucceeded || s.trigger > OneSucceeded:
			bad(ErrInvalidWorkflow, "task %q has an unknown Trigger %d", s.name, int(s.trigger))
		case s.trigger != AllSucceeded && len(s.deps) == 0:
			bad(ErrInvalidWorkflow, "task %q has Trigger %s but no dependencies", s.name, s.trigger)
		}
		p.rules = p.rules || s.trigger != AllSucceeded
		if s.mapped {
			if len(s.deps) > 1 {
				bad(ErrInvalidWorkflow, "Map task %q has %d dependencies; it takes one, whose output is its list", s.name, len(s.deps))
			}
			if s.concurrency < 0 {
				bad(ErrInvalidWorkflow, "Map task %q has a negative MaxConcurrency %d", s.name, s.concurrency)
			}
		}
	}

	// Edges, as compressed rows. Unknown and repeated dependencies are
	// reported and left out, so the rest of the checks still run.
	p.depOff = make([]int32, n+1)
	succCount := make([]int32, n+1)
	edges := 0
	for i := range tasks {
		edges += len(tasks[i].deps)
	}
	p.depFlat = make([]int32, 0, edges)
	listed := make([]int32, n) // listed[j] == i+1: task i already lists j
	unknown := false
	for i := range tasks {
		s := &tasks[i].taskSpec
		start := len(p.depFlat)
		for _, d := range s.deps {
			j, ok := p.index[d]
			if !ok {
				bad(ErrUnknownDependency, "task %q depends on %q, which is not defined%s", s.name, d, suggest(d, p.names))
				unknown = true
				continue
			}
			if listed[j] == int32(i)+1 {
				bad(ErrInvalidWorkflow, "task %q lists dependency %q more than once", s.name, d)
				continue
			}
			listed[j] = int32(i) + 1
			p.depFlat = append(p.depFlat, j)
			succCount[j]++
		}
		slices.Sort(p.depFlat[start:])
		p.depOff[i+1] = int32(len(p.depFlat))
	}
	p.succOff = make([]int32, n+1)
	for i := range n {
		p.succOff[i+1] = p.succOff[i] + succCount[i]
	}
	p.succFlat = make([]int32, len(p.depFlat))
	fill := slices.Clone(p.succOff[:n])
	for i := range int32(n) {
		for _, d := range p.deps(i) {
			p.succFlat[fill[d]] = i
			fill[d]++
		}
	}

	p.order = p.topoOrder()
	if len(p.order) < n {
		for _, c := range p.cycles() {
			bad(ErrCycle, "dependency cycle %s", c)
		}
	}

	p.checkTypes(bad)
	// An unknown dependency leaves its task without that edge, so more
	// tasks look like sinks: saying so would send the user after a
	// consequence of the typo.
	p.chooseOutput(outputTask, !unknown, bad)

	for i := range p.tasks {
		t := &p.tasks[i]
		t.validateIn = t.in != inputsType && hasValidateTags(t.in)
		t.validateOut = hasValidateTags(t.out)
		if t.mapped {
			t.validateItem, t.validateEach = hasValidateTags(t.item), hasValidateTags(t.each)
		}
	}
	if len(errs) > 0 {
		return nil, errs
	}
	return p, nil
}

// topoOrder runs Kahn's algorithm. Tasks on or behind a cycle never reach
// in-degree zero and are missing from the result.
func (p *plan) topoOrder() []int32 {
	n := len(p.tasks)
	indeg := make([]int32, n)
	order := make([]int32, 0, n)
	for i := range int32(n) {
		indeg[i] = int32(len(p.deps(i)))
		if indeg[i] == 0 {
			order = append(order, i)
		}
	}
	for k := 0; k < len(order); k++ {
		for _, s := range p.succs(order[k]) {
			indeg[s]--
			if indeg[s] == 0 {
				order = append(order, s)
			}
		}
	}
	return order
}

// cycles names the tasks of each dependency cycle, as "a → b → a" in the
// order data flows. Every task left out of the topological order has a
// dependency that is also left out, so walking those dependencies from any
// of them must come back to a task already on the walk.
func (p *plan) cycles() []string {
	n := len(p.tasks)
	sorted := make([]bool, n)
	for _, i := range p.order {
		sorted[i] = true
	}
	walk := make([]int32, n) // the walk that first reached each task; 0: none
	var out []string
	for start := range int32(n) {
		if sorted[start] || walk[start] != 0 {
			continue
		}
		id := start + 1
		var path []int32
		cur := start
		for walk[cur] == 0 {
			walk[cur] = id
			path = append(path, cur)
			for _, d := range p.deps(cur) {
				if !sorted[d] {
					cur = d
					break
				}
			}
		}
		if walk[cur] != id {
			continue // joined an earlier walk: its cycle is already named
		}
		at := slices.Index(path, cur)
		cyc := path[at:]
		names := make([]string, 0, len(cyc)+1)
		for k := len(cyc) - 1; k >= 0; k-- { // dependencies first: data flow
			names = append(names, fmt.Sprintf("%q", p.tasks[cyc[k]].name))
		}
		names = append(names, names[0])
		out = append(out, strings.Join(names, " → "))
	}
	return out
}

// checkTypes checks every type link: the workflow input into the tasks
// without dependencies, each dependency's output into its task.
func (p *plan) checkTypes(bad func(error, string, ...any)) {
	for i := range int32(len(p.tasks)) {
		t := &p.tasks[i]
		deps := p.deps(i)
		switch {
		case t.in == inputsType && len(deps) > 0:
		case len(deps) == 0 && len(p.tasks[i].deps) == 0:
			if !p.inType.AssignableTo(t.in) {
				bad(ErrTypeMismatch, "task %q takes %s, but the workflow input is %s", t.name, t.in, p.inType)
			}
		case len(deps) == 1:
			d := &p.tasks[deps[0]]
			if !d.out.AssignableTo(t.in) {
				bad(ErrTypeMismatch, "task %q takes %s, but its dependency %q gives %s", t.name, t.in, d.name, d.out)
			}
		case len(deps) > 1 && t.mapped: // reported already
		case len(deps) > 1:
			bad(ErrTypeMismatch, "task %q has %d dependencies, so it must take workflow.Inputs, not %s", t.name, len(deps), t.in)
		}
	}
}

// chooseOutput picks the task whose output is the workflow's: the one named
// by WithOutput, else the only sink. Several sinks are a problem only when
// reportSinks says so.
func (p *plan) chooseOutput(name string, reportSinks bool, bad func(error, string, ...any)) {
	p.output = -1
	if name != "" {
		i, ok := p.index[name]
		if !ok {
			bad(ErrInvalidWorkflow, "WithOutput names task %q, which is not defined%s", name, suggest(name, p.names))
			return
		}
		p.output = i
	} else {
		var sinks []string
		for i := range int32(len(p.tasks)) {
			if p.succOff[i] == p.succOff[i+1] && p.index[p.tasks[i].name] == i { // a duplicate is reported already
				if p.output < 0 {
					p.output = i
				}
				sinks = append(sinks, fmt.Sprintf("%q", p.tasks[i].name))
			}
		}
		switch {
		case len(sinks) == 0:
			return // only when every task is on a cycle, reported already
		case len(sinks) > 1:
			if !reportSinks {
				p.output = -1
				return
			}
			bad(ErrInvalidWorkflow, "%d tasks have no dependents (%s); name the one that gives the output with WithOutput", len(sinks), strings.Join(sinks, ", "))
			p.output = -1
			return
		}
	}
	o := &p.tasks[p.output]
	if !o.out.AssignableTo(p.outType) {
		bad(ErrTypeMismatch, "task %q gives the workflow output as %s, but the workflow output is %s", o.name, o.out, p.outType)
	}
}

// hasValidateTags reports whether validating a value of type t can fail:
// whether t is a struct (or pointer to one) with a validate tag on some
// field, directly or in a nested struct that validator descends into.
func hasValidateTags(t reflect.Type) bool {
	return tagged(t, map[reflect.Type]bool{})
}

func tagged(t reflect.Type, seen map[reflect.Type]bool) bool {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t.Kind() != reflect.Struct || seen[t] {
		return false
	}
	seen[t] = true
	for k := range t.NumField() {
		f := t.Field(k)
		if _, ok := f.Tag.Lookup("validate"); ok {
			return true
		}
		if f.IsExported() || f.Anonymous {
			if tagged(f.Type, seen) {
				return true
			}
		}
	}
	return false
}
