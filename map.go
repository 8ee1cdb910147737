package workflow

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"sync"
	"sync/atomic"
	"time"
)

// Map is a task that calls its handler once per element of a list known
// only at run time: the output of its one dependency, a []I (or the
// workflow input, a []I, when it has none). Its output is the []O of the
// handler's results, in the list's order; a nil or empty list gives an
// empty output at once. Map values (and pointers to them) go into a Tasks
// list like Task values.
//
// Each item is a unit of its own: its input and output are checked against
// their validate tags as a task's are (a failure fails the item, wrapping
// ErrInvalidInput, without retry); its attempts follow Retry, each bounded
// by Timeout, with panics and runtime.Goexit recovered as for a task; an
// item whose handler returns Skip gives the zero O and does not fail. One
// item failing for good fails the task, with an error naming the item's
// index; the items under way are then cancelled and no more start.
//
// History records the task's task_started and its end as for any task,
// and, for its items: items_started (Event.Item is the number of items),
// items_progress as they succeed (Event.Item is how many have; at most
// 100 such events per attempt of the task, whatever the number of items),
// item_retrying and item_failed (Event.Item is the item's index).
// RunStatus.Items sums them up. Items that succeed record no event of
// their own, so a Map over 100,000 items stays as cheap to record as a
// few tasks.
//
// A Map task that fails keeps the outputs of the items that succeeded (in
// its run's record, as the payload of its task_failed or task_timed_out
// event): Resume and RetryOnFailure then run only the items that failed or
// never started. A process that stops in the middle of a Map task keeps
// nothing of it: Recover runs every item again. OverrideRetry and
// OverrideTimeout of a Map task apply to its items.
type Map[I, O any] struct {
	// Name identifies the task, as Task.Name.
	Name string
	// Handler does the work for one item.
	Handler func(ctx context.Context, item I) (O, error)
	// Dependencies names at most one task, whose output is the []I; with
	// none, the workflow input is.
	Dependencies []string
	// Retry is each item's retry policy.
	Retry RetryPolicy
	// Timeout bounds each attempt of an item; zero means none.
	Timeout time.Duration
	// MaxConcurrency bounds the items under way at once; 0 means all of
	// them.
	MaxConcurrency int
	// Trigger is the task's trigger rule, as Task.Trigger.
	Trigger TriggerRule
}

// Event types of a Map task's items; see Map.
const (
	EventItemsStarted  = "items_started"
	EventItemsProgress = "items_progress"
	EventItemRetrying  = "item_retrying"
	EventItemFailed    = "item_failed"
)

func (m Map[I, O]) spec() taskSpec {
	s := taskSpec{
		name:        m.Name,
		deps:        m.Dependencies,
		retry:       m.Retry,
		timeout:     m.Timeout,
		trigger:     m.Trigger,
		in:          reflect.TypeFor[[]I](),
		out:         reflect.TypeFor[[]O](),
		mapped:      true,
		concurrency: m.MaxConcurrency,
		kept:        reflect.TypeFor[mapKept[O]](),
		item:        reflect.TypeFor[I](),
		each:        reflect.TypeFor[O](),
	}
	if m.Handler != nil {
		h := m.Handler
		s.handler = func(ctx context.Context, v any) (any, error) {
			items, _ := v.([]I)
			return mapItems(ctx, items, h)
		}
		s.itemHandler = func(ctx context.Context, v any) (any, error) {
			item, _ := v.(I)
			return h(ctx, item)
		}
	}
	return s
}

// noRetry is the task-level policy of a Map task: retries are its items'.
var noRetry RetryPolicy

// mapKept is what a failed Map task keeps of its items' outputs: those of
// the items Done, in the same order.
type mapKept[O any] struct {
	Done    []int `json:"done"`
	Outputs []O   `json:"outputs"`
}

// mapping is one attempt of a Map task: its items under way.
type mapping[I, O any] struct {
	r       *run // nil when called outside the engine
	task    int32
	items   []I
	out     []O
	h       func(context.Context, I) (O, error)
	retry   *RetryPolicy
	timeout time.Duration
	limit   int // goroutines at most
	step    int // items between two items_progress events

	ctx    context.Context // ends when an item fails for good, or the task's ctx ends
	cancel context.CancelCauseFunc
	next   atomic.Int64 // the next item to take
	done   atomic.Int64 // items that succeeded
	ok     []bool       // per item: it succeeded (each written by its item alone)
	wg     sync.WaitGroup

	mu      sync.Mutex
	workers int // goroutines working
	idle    int // of which, not yet on an item
	err     error
}

// mapItems runs h on every item, as Map describes, and returns the outputs
// in order, a []O. On failure, it returns what the task keeps of its
// items' outputs (a mapKept[O], or nil) with the error.
func mapItems[I, O any](ctx context.Context, items []I, h func(context.Context, I) (O, error)) (any, error) {
	m := &mapping[I, O]{items: items, out: make([]O, len(items)), h: h, retry: &noRetry, limit: len(items)}
	if len(items) == 0 {
		return m.out, nil
	}
	m.ok = make([]bool, len(items))
	kept := 0
	if tc, ok := ctx.Value(infoKey{}).(*taskCtx); ok {
		m.r, m.task = tc.r, tc.task
		m.retry, m.timeout = tc.r.policy(tc.task)
		if c := tc.r.e.plan.tasks[tc.task].concurrency; c > 0 {
			m.limit = min(c, len(items))
		}
		kept = m.restore(tc.r.keptOf(tc.task))
	}
	m.step = max(1, (len(items)+99)/100)
	m.emit(Event{Type: EventItemsStarted, Item: len(items)})
	if kept > 0 {
		m.done.Store(int64(kept))
		m.emit(Event{Type: EventItemsProgress, Item: kept})
	}
	m.ctx, m.cancel = context.WithCancelCause(ctx)
	defer m.cancel(nil)
	m.mu.Lock()
	m.workers, m.idle = 1, 1
	m.mu.Unlock()
	m.wg.Add(1)
	go m.work()
	m.wg.Wait()
	if m.err != nil {
		return m.kept(), m.err
	}
	if err := ctx.Err(); err != nil {
		return nil, context.Cause(ctx)
	}
	return m.out, nil
}

// work takes items one after another until none is left. Before each it
// starts another goroutine if none is idle and the limit allows, so that an
// item that blocks never holds the others up, and quick items cost no
// goroutine each (the executor's own way with tasks).
func (m *mapping[I, O]) work() {
	defer m.wg.Done()
	k := -1
	returned := false
	defer func() {
		if !returned { // an item's handler called runtime.Goexit on this goroutine
			m.fail(k, errGoexit)
			m.mu.Lock()
			m.workers--
			m.mu.Unlock()
		}
	}()
	m.mu.Lock()
	m.idle--
	m.mu.Unlock()
	for {
		k = int(m.next.Add(1) - 1)
		if k >= len(m.items) || m.ctx.Err() != nil {
			break
		}
		if m.ok[k] {
			continue // kept from an earlier attempt
		}
		m.mu.Lock()
		if m.idle == 0 && m.workers < m.limit && k+1 < len(m.items) {
			m.workers++
			m.idle++
			m.wg.Add(1)
			go m.work()
		}
		m.mu.Unlock()
		m.item(k)
	}
	m.mu.Lock()
	m.workers--
	m.mu.Unlock()
	returned = true
}

// item makes the attempts of item k.
func (m *mapping[I, O]) item(k int) {
	if m.r != nil && m.r.e.plan.tasks[m.task].validateItem && !m.valid(k, m.items[k], "task input") {
		return
	}
	h := func(ctx context.Context, v any) (any, error) {
		out, err := m.h(ctx, m.items[k])
		if err == nil && m.r != nil && m.r.e.plan.tasks[m.task].validateEach {
			if werr := m.r.check(out, m.r.e.plan.names[m.task], "task output"); werr != nil {
				return nil, werr.Err // Permanent
			}
		}
		return out, err
	}
	limit := m.retry.attempts()
	for n := 1; ; n++ {
		out, err := attempt(m.ctx, h, nil, m.timeout)
		if err == nil {
			m.out[k], _ = out.(O)
			m.ok[k] = true
			m.succeeded()
			return
		}
		if m.ctx.Err() != nil {
			return // another item failed, or the task's context ended
		}
		if _, ok := skipReason(err); ok {
			m.ok[k] = true
			m.succeeded() // the zero O
			return
		}
		var again bool
		if n < limit {
			again, err = m.retry.retryable(err)
		}
		if !again {
			m.fail(k, fmt.Errorf("item %d: %w", k, err))
			m.emitItem(Event{Type: EventItemFailed, Item: k, Attempt: n, Error: err.Error()})
			return
		}
		wait := m.retry.wait(n)
		now := time.Now().UTC()
		m.emitItem(Event{Type: EventItemRetrying, Item: k, Attempt: n, Error: err.Error(), Time: now, RetryAt: now.Add(wait)})
		if !sleep(m.ctx, wait) {
			return
		}
	}
}

// valid checks v, item k's input or output (stage), against its validate
// tags; a failure fails the item for good.
func (m *mapping[I, O]) valid(k int, v any, stage string) bool {
	werr := m.r.check(v, m.r.e.plan.names[m.task], stage)
	if werr == nil {
		return true
	}
	m.fail(k, fmt.Errorf("item %d: %w", k, werr.Err))
	m.emitItem(Event{Type: EventItemFailed, Item: k, Error: werr.Message})
	return false
}

// restore takes the outputs kept by an earlier attempt of the task, if
// they fit its items, and returns how many.
func (m *mapping[I, O]) restore(v any) int {
	kept, ok := v.(mapKept[O])
	if !ok || len(kept.Done) != len(kept.Outputs) {
		return 0
	}
	for _, k := range kept.Done {
		if k < 0 || k >= len(m.items) || m.ok[k] {
			clear(m.ok)
			return 0 // not this list's: run every item
		}
		m.ok[k] = true
	}
	for j, k := range kept.Done {
		m.out[k] = kept.Outputs[j]
	}
	return len(kept.Done)
}

// kept is what the task keeps of its items' outputs when it fails: nil
// when no item succeeded.
func (m *mapping[I, O]) kept() any {
	var kept mapKept[O]
	for k, ok := range m.ok {
		if ok {
			kept.Done = append(kept.Done, k)
			kept.Outputs = append(kept.Outputs, m.out[k])
		}
	}
	if len(kept.Done) == 0 {
		return nil
	}
	return kept
}

func (m *mapping[I, O]) succeeded() {
	if d := m.done.Add(1); d%int64(m.step) == 0 && d < int64(len(m.items)) {
		m.emit(Event{Type: EventItemsProgress, Item: int(d)})
	}
}

// fail records err, item k's failure for good, as the task's, unless
// another item failed first, and cancels the other items.
func (m *mapping[I, O]) fail(k int, err error) {
	m.mu.Lock()
	if m.err == nil {
		if errors.Is(err, errGoexit) {
			err = fmt.Errorf("item %d: %w", k, err)
		}
		m.err = err
	}
	m.mu.Unlock()
	m.cancel(errTaskFailed)
}

// emit records an event of the task while its run is under way.
func (m *mapping[I, O]) emit(ev Event) {
	if m.r == nil {
		return
	}
	m.r.mu.Lock()
	defer m.r.mu.Unlock()
	if !m.r.ended && m.r.state[m.task] == tsRunning {
		m.r.emitTask(m.task, ev)
	}
}

// emitItem is emit for an item's own event, unless the task's context has
// ended (the item was cut short, not failed).
func (m *mapping[I, O]) emitItem(ev Event) {
	if m.ctx.Err() == nil || ev.Type == EventItemFailed {
		m.emit(ev)
	}
}

// ItemsStatus is the progress of a Map task, as its run's events tell it.
type ItemsStatus struct {
	// Total is the number of items of the task's latest attempt.
	Total int
	// Done is how many have succeeded; while the task runs, it is counted
	// in steps of one hundredth of Total.
	Done int
	// Failed lists the indexes of the items that failed for good.
	Failed []int
}

// Items returns the progress of the Map task named task in its latest
// attempt, from rs.Events, and false if rs holds no items_started event of
// it (not a Map task, not started, or a summary without events).
func (rs *RunStatus) Items(task string) (ItemsStatus, bool) {
	var is ItemsStatus
	found := false
	for _, ev := range rs.Events {
		if ev.Task != task {
			continue
		}
		switch ev.Type {
		case EventItemsStarted:
			is, found = ItemsStatus{Total: ev.Item}, true
		case EventItemsProgress:
			is.Done = ev.Item
		case EventItemFailed:
			is.Failed = append(is.Failed, ev.Item)
		case EventTaskSucceeded:
			if found {
				is.Done = is.Total
			}
		}
	}
	return is, found
}
