package workflow

import (
	"context"
	"encoding"
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"time"
)

// Store keeps the status, history and payloads of runs, under the
// workflow's name. NewMemoryStore is the default; a durable store (package
// sqlitestore, for one) keeps runs past the process, so that Resume and
// Recover work in another process. All methods must be safe for
// concurrent use.
//
// A third-party store implements these methods and passes the conformance
// suite in package storetest. It builds each RunStatus by folding the
// entries it was given, in order, with RunStatus.Apply, so that every
// store gives states the same meaning.
//
// Ownership: a run under way belongs to the store handle that created or
// reopened it, which holds a lease on it while the run's state is pending
// or running, and renews it while the handle is open. The lease is
// released once an appended batch leaves the run ended or interrupted.
// Closing the handle leaves its leases to expire, so that no other
// process takes over a run that this one may still be executing.
type Store interface {
	// Create records a new run (its State pending, every task pending, no
	// events) and returns the Recorder for its events. The store becomes
	// the run's owner. It fails with an error wrapping ErrDuplicateRun if
	// the workflow already has a run of that ID.
	Create(ctx context.Context, run RunStatus) (Recorder, error)
	// Reopen continues the record of an existing run, for Resume and
	// Recover, and makes the store its owner in one atomic step. It wraps
	// ErrNotFound for an unknown run and ErrNotResumable for a run whose
	// owner's lease has not expired (another process, or this one, runs
	// it).
	Reopen(ctx context.Context, workflow, runID string) (Recorder, error)
	// Orphans returns the IDs of the workflow's runs that are pending,
	// running or interrupted and have no live owner (their owner's lease
	// expired), oldest first: the runs Recover takes over.
	Orphans(ctx context.Context, workflow string) ([]string, error)
	// Get returns one run; runID "" means the most recently created. It
	// wraps ErrNotFound for an unknown run.
	Get(ctx context.Context, workflow, runID string) (RunStatus, error)
	// List returns the runs of a workflow, newest first, as q selects.
	List(ctx context.Context, workflow string, q HistoryQuery) ([]RunStatus, error)
	// Workflows returns the names of the workflows with runs in the
	// store, sorted.
	Workflows(ctx context.Context) ([]string, error)
	// Payloads returns what the store kept of a run's input, of the
	// outputs of its succeeded tasks, and of the payloads of the end
	// events of its tasks that did not succeed (RunPayloads.Partial). It
	// wraps ErrNotFound for an unknown run.
	Payloads(ctx context.Context, workflow, runID string) (RunPayloads, error)
	// Persistent reports whether the store keeps runs past the process.
	// For such a store the engine encodes payloads with the workflow's
	// Codec (Payload.Data) and appends outside the run's lock, in
	// batches; for one that is not, it hands over values as they are
	// (Payload.Value) and appends as events happen.
	Persistent() bool
}

// ScheduleStore is what a Store offers, optionally, so that several
// Schedulers share schedules: one per replica, or several in one process,
// on the same store and workflow. A Scheduler checks for it with a type
// assertion on the workflow's store. With it, each fire runs on the one
// Scheduler that claims it, a pause holds for every Scheduler, and
// Schedule.CatchUpWindow knows which fire was handled last, and
// OverlapSkip sees the scheduled runs of every Scheduler. Without it, each
// Scheduler fires on its own, and a pause is its own.
//
// The interface is the seam between the Scheduler and the stores of this
// module and its nested modules; it grows with the Scheduler's needs, and
// is not meant for other stores to implement yet.
//
// MemoryStore implements it, for the Schedulers of one process; package
// pgstore, for replicas on one database. All methods must be safe for
// concurrent use, by Schedulers of any process sharing the store.
type ScheduleStore interface {
	// ClaimFire claims the fire of the workflow planned at at: of all
	// callers for one workflow and time, at most one gets true. A fire no
	// later than the latest one claimed is refused (false), so that claims
	// only move forward and the store keeps one time per workflow: a fire
	// that late has been overtaken.
	ClaimFire(ctx context.Context, workflow string, at time.Time) (bool, error)
	// SetPaused pauses or unpauses the workflow's schedule, for every
	// Scheduler sharing the store.
	SetPaused(ctx context.Context, workflow string, paused bool) error
	// Paused reports whether the workflow's schedule is paused; false for
	// a workflow the store knows nothing of.
	Paused(ctx context.Context, workflow string) (bool, error)
	// LastFire returns the latest fire of the workflow that was
	// claimed; the zero time if none.
	LastFire(ctx context.Context, workflow string) (time.Time, error)
	// ClaimMissed claims at once every fire of the workflow planned after
	// last and no later than upTo, if last is still the latest fire
	// claimed: of all callers with one last, at most one gets true, and
	// the latest fire claimed becomes upTo. A Scheduler catching up calls
	// it with what LastFire gave, so that one Scheduler makes up the
	// missed fires, in order. A claim sent again after a lost answer gets
	// the same answer. A zero last is refused: a workflow that never
	// fired missed nothing.
	ClaimMissed(ctx context.Context, workflow string, last, upTo time.Time) (bool, error)
	// ClaimFireAlone claims the fire as ClaimFire does (granted), and in
	// the same atomic step reports whether a scheduled run of the
	// workflow is under way on any Scheduler sharing the store (busy),
	// for OverlapSkip and OverlapQueue: a run with Trigger "schedule"
	// that is pending or running under a live owner (a run whose owner's
	// lease expired does not count until Recover takes it over), or a
	// fire granted not busy whose Scheduler is still starting its run.
	// A fire granted not busy counts as starting until FireStarted is
	// called for it, or, should its Scheduler die first, for a bounded
	// time (pgstore: its lease TTL); a fire granted busy is claimed all
	// the same, and its Scheduler skips it. busy is false for a fire not
	// granted. A claim sent again after a lost answer gets the same
	// answer.
	ClaimFireAlone(ctx context.Context, workflow string, at time.Time) (granted, busy bool, err error)
	// FireStarted ends the start of the fire at at that ClaimFireAlone
	// granted not busy: its run is in the store now, or could not be
	// created. The Scheduler calls it once the run has started or failed
	// to; it does nothing for a fire that is not starting.
	FireStarted(ctx context.Context, workflow string, at time.Time) error
}

// OrphanClaimer is what a Store offers, optionally, so that Recover never
// resumes a run twice. Recover lists the orphans, then claims each; a run
// another process resumed and ended in between must not be claimed again,
// which Reopen (meant for Resume, which continues ended runs) cannot
// tell. MemoryStore, sqlitestore and pgstore implement it. With a store
// that does not, such a run is left alone when Recover sees it ended
// after claiming it, its claim left to the lease.
type OrphanClaimer interface {
	// ClaimOrphan is Reopen for Recover: it makes the store the run's
	// owner, in one atomic step, only if the run is pending, running or
	// interrupted and no live owner holds it; otherwise it wraps
	// ErrNotResumable (ErrNotFound for an unknown run).
	ClaimOrphan(ctx context.Context, workflow, runID string) (Recorder, error)
}

// Recorder appends the entries of one run to its record in a Store.
type Recorder interface {
	// Append records a batch of entries, in order, all or none: what a
	// crash leaves of a run is a prefix of its history. The engine calls
	// it from one goroutine at a time, in entry order. A batch that
	// leaves the run ended or interrupted releases the owner's lease.
	// An error fails the run.
	Append(ctx context.Context, batch []Entry) error
}

// Entry is one event as the engine hands it to a Recorder: the event, the
// position of its task in the run's RunStatus.Tasks, and its payload.
type Entry struct {
	Event
	// Index is the position of Event.Task in RunStatus.Tasks; -1 for an
	// event of the run, or when unknown. RunStatus.Apply falls back to the
	// task's name when Index does not name it.
	Index int
	// Payload is the run's input on run_started, the task's output on
	// task_succeeded, and what a failed Map task keeps of its items'
	// outputs on its task_failed, task_timed_out or task_cancelled; zero
	// on other events, and on the run_started of a run whose input was
	// refused.
	Payload Payload
}

// Payload is a run's input or a task's output on its way to a store.
type Payload struct {
	// Value is the value as the run holds it; set for a store that is not
	// Persistent.
	Value any
	// Data is Value encoded by the workflow's Codec; set for a Persistent
	// store.
	Data []byte

	// live, from the engine to a MemoryStore only: the run's outputs as
	// the engine holds them, so that the store keeps them without a copy.
	live *liveOutputs
}

// liveOutputs is a run's outputs as its engine holds them: outputs[i] of
// the task at position k of RunStatus.Tasks is outputs[order[k]]. The
// engine writes an output before it appends the task's success, and a
// MemoryStore reads only the outputs of tasks whose success it recorded.
type liveOutputs struct {
	outputs []any
	order   []int32
}

// RunPayloads is what a store kept of one run's values, for Resume.
type RunPayloads struct {
	// HasInput reports whether the run's input was recorded; a run whose
	// input was refused has none, and cannot be resumed.
	HasInput bool
	Input    Payload
	// Outputs holds the outputs of the run's succeeded tasks, by task name.
	Outputs map[string]Payload
	// Partial holds, by task name, the payload of the end event of each
	// task that did not succeed, when that event had one: what a failed
	// Map task keeps of its items' outputs, for Resume to run only the
	// items that did not succeed. A store may leave it nil when it holds
	// none.
	Partial map[string]Payload
	// Output is the run's output once it succeeded, when the store keeps
	// it apart from its tasks' outputs (MemoryStore keeps only this one
	// once a run has succeeded); empty otherwise, and the engine then
	// reads the output task's.
	Output Payload
}

// MaxPayloadSize is the largest encoded input or output, in bytes, that
// the engine hands to a Persistent store. A task whose encoded output is
// larger fails (its error wraps ErrInvalidInput and gives the size); a run
// whose encoded input is larger fails before any task starts.
const MaxPayloadSize = 16 << 20

// Codec turns run inputs and task outputs into bytes for a Persistent
// store, and back, for Resume in another process. It must be safe for
// concurrent use.
type Codec interface {
	Marshal(v any) ([]byte, error)
	Unmarshal(data []byte, v any) error
}

// JSONCodec encodes with encoding/json. It is the default Codec. Only with
// JSONCodec do RunStatus and TaskStatus show inputs and outputs.
var JSONCodec Codec = jsonCodec{}

type jsonCodec struct{}

func (jsonCodec) Marshal(v any) ([]byte, error)      { return json.Marshal(v) }
func (jsonCodec) Unmarshal(data []byte, v any) error { return json.Unmarshal(data, v) }

// WithCodec encodes the run's input and its tasks' outputs with c for a
// Persistent store, instead of JSONCodec. A MemoryStore keeps values as
// they are and uses no Codec.
func WithCodec(c Codec) Option {
	return func(cfg *config) {
		if c == nil {
			cfg.bad("WithCodec(nil)")
			return
		}
		cfg.codec = c
	}
}

// Apply folds one entry into rs: the rules by which every store turns the
// entries it was given into a RunStatus. It uses e.Index when that names
// e.Task, and finds the task by name otherwise; an entry for a task the
// run does not have is an error wrapping ErrNotFound, and leaves rs as it
// was.
func (rs *RunStatus) Apply(e Entry) error {
	pos := -1
	if e.Task != "" {
		pos = e.Index
		if pos < 0 || pos >= len(rs.Tasks) || rs.Tasks[pos].Name != e.Task {
			pos = -1
			for k := range rs.Tasks {
				if rs.Tasks[k].Name == e.Task {
					pos = k
					break
				}
			}
			if pos < 0 {
				return fmt.Errorf("%w: run %q has no task %q", ErrNotFound, rs.RunID, e.Task)
			}
		}
	}
	rs.apply(&e.Event, pos, e.Payload.Data)
	return nil
}

// unencodable reports the workflow input and task output types that
// JSONCodec can never encode: a chan, a func, a complex number or an
// unsafe.Pointer inside them, where encoding/json would fail on every run.
func unencodable(p *plan) problems {
	var errs problems
	check := func(what string, t reflect.Type) {
		if path := badForJSON(t, "", map[reflect.Type]bool{}); path != "" {
			errs = append(errs, fmt.Errorf("%w: %s type %s cannot be stored with JSONCodec: %s", ErrInvalidWorkflow, what, t, path))
		}
	}
	check("the workflow input", p.inType)
	for _, i := range p.order {
		check(fmt.Sprintf("task %q output", p.names[i]), p.tasks[i].out)
	}
	return errs
}

// badForJSON finds what in t encoding/json cannot encode, and says where;
// "" when nothing.
func badForJSON(t reflect.Type, at string, seen map[reflect.Type]bool) string {
	if t == nil || seen[t] {
		return ""
	}
	if t.Implements(jsonMarshalerType) || reflect.PointerTo(t).Implements(jsonMarshalerType) ||
		t.Implements(textMarshalerType) || reflect.PointerTo(t).Implements(textMarshalerType) {
		return ""
	}
	seen[t] = true
	where := func() string {
		if at == "" {
			return "it is a " + t.Kind().String()
		}
		return fmt.Sprintf("%s is a %s", at, t.Kind())
	}
	switch t.Kind() {
	case reflect.Chan, reflect.Func, reflect.Complex64, reflect.Complex128, reflect.UnsafePointer:
		return where()
	case reflect.Pointer, reflect.Slice, reflect.Array:
		return badForJSON(t.Elem(), at, seen)
	case reflect.Map:
		switch t.Key().Kind() {
		case reflect.String, reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
			reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		default:
			if !t.Key().Implements(textMarshalerType) {
				return fmt.Sprintf("%s has map keys of type %s", strings.TrimPrefix(at+" ", " "), t.Key())
			}
		}
		return badForJSON(t.Elem(), at, seen)
	case reflect.Struct:
		for f := range t.Fields() {
			if !f.IsExported() && !f.Anonymous || f.Tag.Get("json") == "-" {
				continue
			}
			name := f.Name
			if at != "" {
				name = at + "." + f.Name
			}
			if path := badForJSON(f.Type, "field "+strings.TrimPrefix(name, "field "), seen); path != "" {
				return path
			}
		}
	}
	return ""
}

var (
	jsonMarshalerType = reflect.TypeFor[json.Marshaler]()
	textMarshalerType = reflect.TypeFor[encoding.TextMarshaler]()
)
