package workflow

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"runtime/debug"
	"strings"
	"sync"
	"time"

	"github.com/robfig/cron/v3"
)

// Schedule says when a workflow runs by itself, once a Scheduler has it.
//
// Fire times follow the wall clock of Timezone, as robfig/cron computes
// them, and so across daylight-saving changes:
//
//   - A time that does not exist on the day the clocks go forward is not
//     fired that day: "30 2 * * *" in America/New_York skips the 02:30 that
//     the spring-forward Sunday lacks and fires next at 02:30 the day after.
//     Likewise "0 0 * * *" skips a day on which midnight does not exist.
//   - A time that occurs twice on the day the clocks go back fires twice:
//     "30 1 * * *" in America/New_York fires at 01:30 EDT and again at
//     01:30 EST on the fall-back Sunday.
//   - Schedules that fire every hour or minute fire once per real hour or
//     minute, as the clock shows them.
//   - "@every d" counts elapsed time, in whole seconds, from the
//     Scheduler's Start and then from each fire, and ignores the zone.
//
// Fires missed while no Scheduler was running are not made up, unless
// CatchUpWindow says otherwise; a fire that comes late (the machine was
// suspended) runs once, with its planned time as ScheduledAt, and the
// schedule goes on from the current time.
//
// Time zones with no daylight saving, such as the default UTC, have none of
// these irregularities.
type Schedule struct {
	// Cron is a standard five-field cron expression ("0 0 * * *") or a
	// descriptor ("@daily", "@hourly", "@every 90s").
	Cron string
	// Timezone is the IANA name of the zone whose wall clock Cron follows
	// ("America/New_York"); "" means UTC. Cron may not carry a "TZ=" or
	// "CRON_TZ=" prefix: the zone is set here only.
	Timezone string
	// Overlap says what a fire does while the previous run is still going;
	// the zero value is OverlapSkip. With a ScheduleStore, OverlapSkip and
	// OverlapQueue see the scheduled runs of every Scheduler sharing the
	// store (see OverlapPolicy); otherwise each Scheduler sees only its
	// own.
	Overlap OverlapPolicy
	// CatchUpWindow makes up the fires missed while no Scheduler was
	// running: when a Scheduler starts, or the workflow is registered on
	// a started one, each fire planned after the last fire handled and
	// within CatchUpWindow before now runs once, oldest first, with its
	// planned time as ScheduledAt; across the Schedulers sharing the
	// store, each made-up fire runs on the one that claims it.
	//
	// The made-up runs go one after another, whatever Overlap says: each
	// starts when the previous one has ended, and the fires that come
	// meanwhile follow Overlap as usual, a made-up run counting as a
	// scheduled run under way (under OverlapSkip they are skipped). At
	// most the latest 100 fires are made up, so that "@every 1s" with a
	// six-hour window starts 100 runs, not 21,600. The missed fires not
	// made up (older than the window, or beyond those 100) are skipped:
	// they are passed to the hooks as Events of type "schedule_skipped",
	// the latest 100 one by one and any earlier ones in a single event
	// that counts them, by the Scheduler that claims the latest of them.
	// Fires planned while the schedule was paused are not made up.
	//
	// It needs a store that is a ScheduleStore (which knows the last fire
	// handled, as MemoryStore does for this process and pgstore across
	// replicas). A workflow that never fired has missed nothing. 0, the
	// default, makes up nothing, and a negative window is an error.
	CatchUpWindow time.Duration
}

// OverlapPolicy says what a scheduled fire does while the workflow's
// previous scheduled run is still going. Only scheduled runs count: runs
// started by Scheduler.Trigger, Run or Start neither wait for the policy nor
// hold up a fire.
//
// With a ScheduleStore, a scheduled run of any Scheduler sharing the store
// counts, found in the same atomic step that claims the fire
// (ScheduleStore.ClaimFireAlone): a run of another replica, including one
// Recover took over from a replica that died, holds up OverlapSkip as a
// run of this Scheduler does. A run whose replica died counts again once
// it is recovered, not while it waits for its lease to expire.
type OverlapPolicy int

const (
	// OverlapSkip skips the fire; it is logged and passed to the hooks as an
	// Event of type "schedule_skipped".
	OverlapSkip OverlapPolicy = iota
	// OverlapAllow starts the run alongside the one under way.
	OverlapAllow
	// OverlapQueue keeps at most one fire waiting, started when the run
	// under way ends (its ScheduledAt is still the time it fired); fires
	// while one waits are skipped as with OverlapSkip. Stop drops a waiting
	// fire. The queue is each Scheduler's own: a fire waits for a run of
	// the Scheduler that claimed it, and a fire that finds only another
	// Scheduler's run under way is skipped.
	OverlapQueue
)

// String returns the policy's name.
func (o OverlapPolicy) String() string {
	switch o {
	case OverlapSkip:
		return "skip"
	case OverlapAllow:
		return "allow"
	case OverlapQueue:
		return "queue"
	}
	return fmt.Sprintf("OverlapPolicy(%d)", int(o))
}

// WithSchedule gives the workflow a schedule for a Scheduler to run it by.
// New rejects a bad cron text or unknown time zone with an error wrapping
// ErrInvalidSchedule.
func WithSchedule(s Schedule) Option {
	return func(c *config) { c.schedule = &s }
}

// scheduleInput is a WithScheduleInput function with its result type erased.
type scheduleInput struct {
	typ reflect.Type
	fn  func(ctx context.Context, fired time.Time) (any, error)
}

// WithScheduleInput makes each scheduled run take its input from fn, called
// with the fire time, instead of the zero In. In must be the workflow's In
// type. An error from fn (or a panic in it) fails that run, which is
// recorded with the error before any task starts; the scheduler goes on.
// fn runs with the run's context and should return when it ends, so that
// Scheduler.Stop is not held up. Scheduler.Trigger calls fn too, with the
// time of the call.
func WithScheduleInput[In any](fn func(ctx context.Context, fired time.Time) (In, error)) Option {
	return func(c *config) {
		if fn == nil {
			c.bad("WithScheduleInput(nil)")
			return
		}
		c.scheduleInput = &scheduleInput{
			typ: reflect.TypeFor[In](),
			fn: func(ctx context.Context, fired time.Time) (any, error) {
				return fn(ctx, fired)
			},
		}
	}
}

var cronParser = cron.NewParser(cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)

// parsedSchedule is a checked Schedule.
type parsedSchedule struct {
	Schedule
	loc   *time.Location
	sched cron.Schedule
}

func parseSchedule(s Schedule) (*parsedSchedule, error) {
	loc := time.UTC
	if s.Timezone != "" {
		l, err := time.LoadLocation(s.Timezone)
		if err != nil {
			return nil, newError(ErrInvalidSchedule, "schedule: time zone %q: %w", s.Timezone, err)
		}
		loc = l
	}
	sched, err := parseCron(s.Cron)
	if err != nil {
		return nil, newError(ErrInvalidSchedule, "schedule: cron %q: %w", s.Cron, err)
	}
	if s.Overlap < OverlapSkip || s.Overlap > OverlapQueue {
		return nil, newError(ErrInvalidSchedule, "schedule: unknown overlap policy %d", int(s.Overlap))
	}
	if s.CatchUpWindow < 0 {
		return nil, newError(ErrInvalidSchedule, "schedule: negative catch-up window %v", s.CatchUpWindow)
	}
	p := &parsedSchedule{Schedule: s, loc: loc, sched: sched}
	if p.next(time.Now()).IsZero() {
		return nil, newError(ErrInvalidSchedule, "schedule: cron %q never fires", s.Cron)
	}
	return p, nil
}

// parseCron parses text with robfig/cron, refusing what it would take but
// we do not: a zone prefix (the zone is Schedule.Timezone's to set; the
// parser also panics on "TZ=x" without a space) and "@every" below one
// second (which it would silently round up, zero and negatives included).
func parseCron(text string) (sched cron.Schedule, err error) {
	t := strings.TrimSpace(text)
	if strings.HasPrefix(t, "TZ=") || strings.HasPrefix(t, "CRON_TZ=") {
		return nil, errors.New("set the time zone with Schedule.Timezone, not in the cron text")
	}
	if d, ok := strings.CutPrefix(t, "@every "); ok {
		if every, err := time.ParseDuration(strings.TrimSpace(d)); err == nil && every < time.Second {
			return nil, fmt.Errorf("@every needs at least 1s, got %v", every)
		}
	}
	defer func() {
		if v := recover(); v != nil {
			sched, err = nil, fmt.Errorf("cron parser panicked: %v", v)
		}
	}()
	return cronParser.Parse(text)
}

// next returns the first fire time after t, in the schedule's zone; zero
// when there is none within five years (robfig/cron's horizon).
func (p *parsedSchedule) next(t time.Time) time.Time {
	return p.sched.Next(t.In(p.loc))
}

// checkSchedule checks the schedule options of a definition.
func checkSchedule(c *config, in reflect.Type) problems {
	var errs problems
	if c.schedule != nil {
		if _, err := parseSchedule(*c.schedule); err != nil {
			errs = append(errs, err)
		}
	}
	if si := c.scheduleInput; si != nil {
		if si.typ != in {
			errs = append(errs, newError(ErrTypeMismatch, "WithScheduleInput gives %s, but the workflow input is %s", si.typ, in))
		}
		if c.schedule == nil {
			errs = append(errs, newError(ErrInvalidWorkflow, "WithScheduleInput without WithSchedule"))
		}
	}
	return errs
}

// ScheduledWorkflow is a workflow a Scheduler can run: any *Workflow[In,
// Out] satisfies it. Register accepts only those built with WithSchedule.
type ScheduledWorkflow interface {
	// scheduled returns the workflow's engine and the zero value of its In.
	scheduled() (*engine, any, error)
}

func (w *Workflow[In, Out]) scheduled() (*engine, any, error) {
	e, err := w.engine()
	var zero In
	return e, zero, err
}

// ScheduleEntry describes one workflow registered with a Scheduler.
type ScheduleEntry struct {
	// Workflow is the registered workflow's name.
	Workflow string
	// Cron is the schedule's cron text, as given.
	Cron string
	// Timezone is the IANA name of the zone the schedule follows ("UTC"
	// when Schedule.Timezone is empty).
	Timezone string
	// Next is the next fire time, in Timezone; zero while the Scheduler is
	// not started (or if the schedule never fires again).
	Next time.Time
	// Prev is the last fire time, in Timezone, skipped fires included (and
	// those passed over while paused or run by another Scheduler); zero
	// before the first fire.
	Prev time.Time
	// Paused reports whether the schedule is paused (see
	// Scheduler.Pause). With a ScheduleStore it is read from the store at
	// most once a second, and so may lag another Scheduler's Pause by that
	// much.
	Paused bool
}

// SchedulerOption configures a Scheduler in NewScheduler.
type SchedulerOption func(*Scheduler)

// WithSchedulerLogger logs the scheduler's work to l: each run it starts
// (Debug), its end (Info, or Error when it did not succeed), skipped fires
// (Warn), and runs that could not start or panicked (Error). A workflow's
// own WithLogger still logs its runs' events.
func WithSchedulerLogger(l *slog.Logger) SchedulerOption {
	return func(s *Scheduler) { s.logger = l }
}

// Scheduler runs registered workflows on their schedules, each scheduled
// run a normal run of the workflow with Trigger "schedule" and ScheduledAt
// its fire time. It is safe for concurrent use. Fires are timed with
// time.NewTimer, so a Scheduler works inside testing/synctest bubbles.
//
// Several Schedulers may run the same workflow on a shared store: one per
// replica of a service, on a database both reach. When the workflow's
// store is a ScheduleStore (MemoryStore, pgstore), each fire runs on the
// one Scheduler that claims it from the store, the others skipping it
// silently, OverlapSkip sees the scheduled runs of all of them, and Pause
// holds for all of them. A store that is not runs every fire on every
// Scheduler, and keeps pauses to each. Replicas agree on fire times
// because cron times are wall-clock minutes and "@every" times are whole
// seconds. With a durable store, each Scheduler also recovers the runs
// of replicas that died (see WithRecoverInterval).
//
// Use NewScheduler; the zero Scheduler also works, without a logger.
type Scheduler struct {
	logger       *slog.Logger
	recoverEvery time.Duration
	recoverSet   bool // recoverEvery was given; otherwise DefaultRecoverInterval

	mu      sync.Mutex
	entries []*entry // in registration order
	byName  map[string]*entry
	gen     *generation // nil while not started
	runs    *runGroup   // where new runs go
}

// entry is one registered workflow.
type entry struct {
	name   string
	e      *engine
	zeroIn any
	ps     *parsedSchedule
	ss     ScheduleStore // the workflow's store, if it is one; nil otherwise

	next, prev time.Time // under Scheduler.mu
	paused     bool      // under Scheduler.mu; as read from ss at pausedRead
	pausedRead time.Time // under Scheduler.mu; zero: never read
}

// generation is one Start…Stop span: the loops firing the entries.
type generation struct {
	stop  chan struct{} // closed by Stop, under Scheduler.mu
	loops tally
	// ctx is for the loops' calls to the store; Stop cancels it, so that
	// a slow store does not hold Stop up.
	ctx    context.Context
	cancel context.CancelFunc
}

// runGroup is the runs sharing one context, which Stop cancels when its
// own context ends first.
type runGroup struct {
	ctx    context.Context
	cancel context.CancelCauseFunc
	n      tally
}

func newRunGroup() *runGroup {
	g := &runGroup{}
	g.ctx, g.cancel = context.WithCancelCause(context.Background())
	return g
}

// tally counts goroutines so that Stop can wait for none of them left in a
// select, beside its context. Its fields change under Scheduler.mu.
type tally struct {
	n    int
	zero chan struct{} // closed when n drops to 0
}

func (t *tally) add() {
	if t.n == 0 {
		t.zero = make(chan struct{})
	}
	t.n++
}

func (t *tally) done() {
	t.n--
	if t.n == 0 {
		close(t.zero)
	}
}

// errSchedulerStopped is the cause of the runs that Stop cancels.
var errSchedulerStopped = errors.New("scheduler stopped")

// NewScheduler returns a stopped Scheduler with no workflows.
func NewScheduler(opts ...SchedulerOption) *Scheduler {
	s := &Scheduler{}
	for _, o := range opts {
		if o != nil {
			o(s)
		}
	}
	s.init()
	return s
}

// init makes what a zero Scheduler lacks. The caller holds s.mu, or is
// NewScheduler.
func (s *Scheduler) init() {
	if s.byName == nil {
		s.byName = map[string]*entry{}
	}
	if s.runs == nil {
		s.runs = newRunGroup()
	}
}

// Register adds a workflow built with WithSchedule; if the Scheduler is
// started it begins firing at once. It is an error wrapping
// ErrInvalidSchedule for a workflow without a schedule, one wrapping
// ErrInvalidWorkflow for a nil or zero Workflow, and one wrapping
// ErrDuplicateWorkflow for a second workflow of the same name.
func (s *Scheduler) Register(w ScheduledWorkflow) error {
	const op = "Scheduler.Register"
	if w == nil {
		return opError("", "", op, newError(ErrInvalidWorkflow, "nil workflow"))
	}
	e, zero, err := w.scheduled()
	if err != nil {
		return opError("", "", op, err)
	}
	if e.cfg.schedule == nil {
		return opError(e.name, "", op, newError(ErrInvalidSchedule, "the workflow has no schedule (see WithSchedule)"))
	}
	ps, err := parseSchedule(*e.cfg.schedule)
	if err != nil {
		return opError(e.name, "", op, err)
	}
	en := &entry{name: e.name, e: e, zeroIn: zero, ps: ps}
	en.ss, _ = e.cfg.store.(ScheduleStore)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.init()
	if _, dup := s.byName[en.name]; dup {
		return opError(en.name, "", op, newError(ErrDuplicateWorkflow, "a workflow of that name is already registered"))
	}
	s.byName[en.name] = en
	s.entries = append(s.entries, en)
	if s.gen != nil {
		s.launch(en, s.gen)
	}
	return nil
}

// Start begins firing the registered workflows; the first fire of each is
// its schedule's first time after now, or missed fires made up at once
// (see Schedule.CatchUpWindow). It also begins recovering the runs that
// stopped processes left, at once and then periodically (see
// WithRecoverInterval). Start on a started Scheduler does nothing; Start
// after Stop starts again.
func (s *Scheduler) Start() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.init()
	if s.gen != nil {
		return
	}
	s.gen = &generation{stop: make(chan struct{})}
	s.gen.ctx, s.gen.cancel = context.WithCancel(context.Background())
	for _, en := range s.entries {
		s.launch(en, s.gen)
	}
	every := DefaultRecoverInterval
	if s.recoverSet {
		every = s.recoverEvery
	}
	if every > 0 {
		s.gen.loops.add()
		go s.recoverLoop(s.gen, every)
	}
}

// Stop stops new fires at once (a fire waiting under OverlapQueue is
// dropped) and waits for the runs under way, scheduled and triggered, to
// end. It cancels nothing by itself: if ctx ends first, Stop cancels those
// runs, waits for them to be recorded in state "cancelled" (which the
// engine does at once; handlers that ignore their context are left to
// finish on their own), and returns ctx's error. Stop on a Scheduler that
// is not started still waits for triggered runs. A hook must not call Stop:
// skipped fires reach hooks on the goroutine Stop waits for.
func (s *Scheduler) Stop(ctx context.Context) error {
	if ctx == nil {
		return opError("", "", "Scheduler.Stop", errNilContext)
	}
	s.mu.Lock()
	s.init()
	g := s.gen
	if g != nil {
		s.gen = nil
		close(g.stop)
		g.cancel()
		for _, en := range s.entries {
			en.next = time.Time{}
		}
	}
	runs := s.runs
	s.mu.Unlock()

	var err error
	if g != nil {
		err = s.await(ctx, &g.loops)
	}
	if err == nil {
		err = s.await(ctx, &runs.n)
	}
	if err == nil {
		return nil
	}
	s.mu.Lock()
	if s.runs == runs {
		s.runs = newRunGroup() // runs started from now on are not cancelled
	}
	s.mu.Unlock()
	runs.cancel(errSchedulerStopped)
	// The engine ends a cancelled run at once, without waiting for its
	// handlers, so these waits are short.
	if g != nil {
		_ = s.await(context.Background(), &g.loops)
	}
	_ = s.await(context.Background(), &runs.n)
	return err
}

// await waits until t counts nothing or ctx ends.
func (s *Scheduler) await(ctx context.Context, t *tally) error {
	for {
		s.mu.Lock()
		n, zero := t.n, t.zero
		s.mu.Unlock()
		if n == 0 {
			return nil
		}
		select {
		case <-zero:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// Entries describes the registered workflows, in registration order.
func (s *Scheduler) Entries() []ScheduleEntry {
	s.refreshPaused()
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]ScheduleEntry, len(s.entries))
	for i, en := range s.entries {
		out[i] = ScheduleEntry{
			Workflow: en.name,
			Cron:     en.ps.Cron,
			Timezone: en.ps.loc.String(),
			Next:     en.next,
			Prev:     en.prev,
			Paused:   en.paused,
		}
	}
	return out
}

// Trigger starts a run of the named workflow now, whether or not the
// Scheduler is started, and returns its run ID once it has started,
// without waiting for its end. The run has Trigger "manual" and takes its
// input as a scheduled run does; the overlap policy does not apply to it.
// It does not end with ctx (it keeps ctx's values), but Stop waits for it
// and may cancel it. Trigger wraps ErrNotFound for a name not registered.
// When the run fails before any task (its input could not be made or is
// invalid), Trigger returns its error and, as it is recorded, its run ID.
func (s *Scheduler) Trigger(ctx context.Context, name string) (runID string, err error) {
	if ctx == nil {
		return "", opError(name, "", "Scheduler.Trigger", errNilContext)
	}
	if err := ctx.Err(); err != nil {
		return "", err
	}
	s.mu.Lock()
	s.init()
	en := s.byName[name]
	if en == nil {
		s.mu.Unlock()
		return "", opError(name, "", "Scheduler.Trigger", newError(ErrNotFound, "no workflow of that name is registered"))
	}
	grp := s.runs
	grp.n.add()
	s.mu.Unlock()

	rctx, cancel := context.WithCancelCause(context.WithoutCancel(ctx))
	unhook := context.AfterFunc(grp.ctx, func() { cancel(context.Cause(grp.ctx)) })
	release := func() {
		unhook()
		cancel(nil)
		s.finished(grp)
	}
	handedOff := false
	defer func() {
		if !handedOff { // also when user code ended this goroutine
			release()
		}
	}()
	r, err := s.begin(rctx, en, time.Now())
	if err != nil {
		var werr *WorkflowError
		if errors.As(err, &werr) {
			runID = werr.RunID
		}
		s.logRunError(en, runID, TriggerManual, "workflow: triggered run could not start", err)
		return runID, err
	}
	s.logDebug(en, r.id, TriggerManual, "workflow: triggered run started")
	handedOff = true
	go func() {
		defer release()
		defer s.recoverIn(en, "waiting for a triggered run")
		<-r.endedChan()
		s.logEnd(en, r, TriggerManual)
	}()
	return r.id, nil
}

// launch starts en's loop in generation g. The caller holds s.mu.
func (s *Scheduler) launch(en *entry, g *generation) {
	now := time.Now()
	next := en.ps.next(now)
	en.next = next
	g.loops.add()
	go s.loop(en, g, now, next)
}

// loop fires en at its schedule's times until g stops. It alone keeps the
// overlap state of en's scheduled runs, which tell it of their end on a
// channel: no lock is held while a run goes on, so nothing waits on a mutex
// (which testing/synctest could not see through) and the queue holds at
// most one fire.
//
// The loop begins at from with the fires missed before it that
// Schedule.CatchUpWindow makes up, one after another, and goes on at next.
func (s *Scheduler) loop(en *entry, g *generation, from, next time.Time) {
	defer func() {
		s.mu.Lock()
		g.loops.done()
		s.mu.Unlock()
	}()
	var (
		ended    = make(chan struct{}) // a scheduled run of this loop ended
		madeUp   = make(chan struct{}) // a made-up run ended
		running  int                   // scheduled runs under way, made-up ones included
		queued   bool                  // a fire waits (OverlapQueue)
		queuedAt time.Time
		backlog  []time.Time // made-up fires claimed, waiting their turn
		timer    *time.Timer
		fire     <-chan time.Time
	)
	arm := func() {
		fire = nil
		if next.IsZero() {
			s.logWarn(en, "workflow: schedule has no further fire time")
			return
		}
		if timer == nil {
			timer = time.NewTimer(time.Until(next))
		} else {
			timer.Reset(time.Until(next))
		}
		fire = timer.C
	}
	start := func(at time.Time, starting bool, done chan<- struct{}) {
		if s.startScheduled(en, g, at, starting, done) {
			running++
		}
	}
	makeUp := func() {
		if len(backlog) > 0 {
			at := backlog[0]
			backlog = backlog[1:]
			s.madeUp(en, g, at)
			start(at, false, madeUp)
		}
	}
	backlog = s.catchUp(g.ctx, en, g, from)
	arm()
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	makeUp()
	for {
		select {
		case <-g.stop:
			return
		case <-madeUp:
			running--
			if len(backlog) > 0 {
				makeUp()
				continue
			}
			if queued && running == 0 {
				queued = false
				start(queuedAt, false, ended)
			}
		case <-ended:
			running--
			if queued && running == 0 {
				queued = false
				start(queuedAt, false, ended)
			}
		case <-fire:
			fired := next
			// Never before the fire time, so a clock set back cannot fire
			// the same time twice.
			now := time.Now()
			if now.Before(fired) {
				now = fired
			}
			next = en.ps.next(now)
			if !s.fired(en, g, fired, next) {
				return
			}
			if en.ps.Overlap == OverlapAllow {
				if s.claim(g.ctx, en, fired) {
					start(fired, false, ended)
				}
				arm()
				continue
			}
			ok, busy := s.claimAlone(g.ctx, en, fired)
			if !ok {
				arm()
				continue
			}
			starting := en.ss != nil && !busy // the store counts it as starting
			switch {
			case running == 0 && !busy:
				start(fired, starting, ended)
			case en.ps.Overlap == OverlapQueue && running > 0 && !queued:
				s.fireStarted(g.ctx, en, fired, starting)
				queued, queuedAt = true, fired
			case en.ps.Overlap == OverlapQueue && running > 0:
				s.fireStarted(g.ctx, en, fired, starting)
				s.skip(en, fired, "a fire is already waiting for the run under way")
			case running > 0:
				s.fireStarted(g.ctx, en, fired, starting)
				s.skip(en, fired, "the previous run is still going")
			default:
				s.skip(en, fired, "a scheduled run of another Scheduler sharing the store is still going")
			}
			arm()
		}
	}
}

// fired records a fire of en and its next time; it reports false when g has
// stopped meanwhile.
func (s *Scheduler) fired(en *entry, g *generation, fired, next time.Time) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.gen != g {
		return false
	}
	en.prev, en.next = fired, next
	return true
}

// startScheduled starts a run of en for the fire at fired, unless g has
// stopped; the run signals ended when it is over. starting: the store
// counts the fire as starting (ClaimFireAlone) until told it started.
func (s *Scheduler) startScheduled(en *entry, g *generation, fired time.Time, starting bool, ended chan<- struct{}) bool {
	s.mu.Lock()
	select {
	case <-g.stop:
		s.mu.Unlock()
		s.fireStarted(g.ctx, en, fired, starting)
		return false
	default:
	}
	grp := s.runs
	grp.n.add()
	s.mu.Unlock()
	go s.runScheduled(en, g, grp, fired, starting, ended)
	return true
}

func (s *Scheduler) runScheduled(en *entry, g *generation, grp *runGroup, fired time.Time, starting bool, ended chan<- struct{}) {
	defer s.finished(grp)
	defer func() {
		select {
		case ended <- struct{}{}:
		case <-g.stop: // the loop is gone
		}
	}()
	defer s.recoverIn(en, "a scheduled run")
	r, err := s.begin(grp.ctx, en, fired, withTrigger(TriggerSchedule, fired))
	// The run is in the store now, or will never be: its own state tells
	// other Schedulers whether it is under way.
	s.fireStarted(grp.ctx, en, fired, starting)
	if err != nil {
		var werr *WorkflowError
		id := ""
		if errors.As(err, &werr) {
			id = werr.RunID
		}
		s.logRunError(en, id, TriggerSchedule, "workflow: scheduled run could not start", err)
		return
	}
	s.logDebug(en, r.id, TriggerSchedule, "workflow: scheduled run started", slog.Time("scheduled_at", fired))
	<-r.endedChan() // not its hooks: they may block
	s.logEnd(en, r, TriggerSchedule)
}

// finished counts a run of grp as over.
func (s *Scheduler) finished(grp *runGroup) {
	s.mu.Lock()
	grp.n.done()
	s.mu.Unlock()
}

// begin makes the input of a run of en fired at fired and starts the run.
// A failed or panicking input function fails the run, recorded.
func (s *Scheduler) begin(ctx context.Context, en *entry, fired time.Time, opts ...RunOption) (r *run, err error) {
	defer func() {
		if v := recover(); v != nil {
			s.logPanic(en, "starting a run", v)
			r, err = nil, opError(en.name, "", "starting a run", newError(ErrPanic, "panic: %v", v))
		}
	}()
	in := en.zeroIn
	if si := en.e.cfg.scheduleInput; si != nil {
		v, ierr := s.input(ctx, en, si, fired)
		if ierr != nil {
			opts = append(opts, withInputError(ierr))
		} else {
			in = v
		}
	}
	return en.e.start(ctx, in, opts)
}

// input calls the WithScheduleInput function, on a goroutine of its own:
// whether it returns, panics, calls runtime.Goexit or ignores ctx, input
// returns by the end of ctx.
func (s *Scheduler) input(ctx context.Context, en *entry, si *scheduleInput, fired time.Time) (any, error) {
	type result struct {
		v   any
		err error
	}
	res := make(chan result, 1)
	go func() {
		returned := false
		defer func() {
			if returned {
				return
			}
			p := recover()
			if p == nil {
				p = errGoexitCallback
			}
			s.logPanic(en, "the WithScheduleInput function", p)
			res <- result{err: newError(ErrPanic, "the WithScheduleInput function panicked: %v", p)}
		}()
		v, err := si.fn(ctx, fired)
		returned = true
		res <- result{v, err}
	}()
	select {
	case r := <-res:
		return r.v, r.err
	case <-ctx.Done():
		return nil, fmt.Errorf("the WithScheduleInput function did not return before the run's context ended: %w", context.Cause(ctx))
	}
}

// Pause stops the named workflow's schedule from firing until Unpause:
// its fire times come and go without a run, and are not made up later.
// With a ScheduleStore the pause is kept in the store, for every Scheduler
// sharing it (and, with a durable store, past a restart); otherwise it is
// this Scheduler's alone. Trigger still runs the workflow. Pause wraps
// ErrNotFound for a name not registered, and returns the store's error if
// it could not keep the pause.
func (s *Scheduler) Pause(name string) error {
	return s.setPaused("Scheduler.Pause", name, true)
}

// Unpause lets the named workflow's schedule fire again from its next fire
// time, as Pause describes.
func (s *Scheduler) Unpause(name string) error {
	return s.setPaused("Scheduler.Unpause", name, false)
}

// storeTimeout bounds each call the Scheduler makes to a ScheduleStore, and
// entriesTimeout the reads of Entries, which a caller waits for.
const (
	storeTimeout   = 30 * time.Second
	entriesTimeout = 2 * time.Second
)

func (s *Scheduler) setPaused(op, name string, paused bool) error {
	s.mu.Lock()
	s.init()
	en := s.byName[name]
	s.mu.Unlock()
	if en == nil {
		return opError(name, "", op, newError(ErrNotFound, "no workflow of that name is registered"))
	}
	if en.ss != nil {
		ctx, cancel := context.WithTimeout(context.Background(), storeTimeout)
		defer cancel()
		err := s.storeCall(ctx, en, "SetPaused", func(ctx context.Context) error {
			return en.ss.SetPaused(ctx, en.name, paused)
		})
		if err != nil {
			return opError(name, "", op, err)
		}
	}
	s.notePaused(en, paused)
	return nil
}

// notePaused records the pause state of en as just read or written.
func (s *Scheduler) notePaused(en *entry, paused bool) {
	s.mu.Lock()
	en.paused, en.pausedRead = paused, time.Now()
	s.mu.Unlock()
}

// refreshPaused reads again from the store the pause states read more than
// a second ago, for Entries, so that another Scheduler's Pause shows
// within a second or so while Entries stays cheap. A failed read keeps
// the state as last known.
func (s *Scheduler) refreshPaused() {
	s.mu.Lock()
	var stale []*entry
	now := time.Now()
	for _, en := range s.entries {
		if en.ss != nil && now.Sub(en.pausedRead) >= time.Second {
			stale = append(stale, en)
		}
	}
	s.mu.Unlock()
	if len(stale) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), entriesTimeout)
	defer cancel()
	for _, en := range stale {
		var paused bool
		err := s.storeCall(ctx, en, "Paused", func(ctx context.Context) (err error) {
			paused, err = en.ss.Paused(ctx, en.name)
			return err
		})
		if err != nil {
			s.logStore(en, "workflow: could not read whether the schedule is paused", err, time.Time{})
			continue
		}
		s.notePaused(en, paused)
	}
}

// claim reports whether this Scheduler runs the fire of en planned at
// fired: with a ScheduleStore, when it claimed the fire and the schedule is
// not paused; otherwise when this Scheduler has not paused it. A fire
// another Scheduler claimed, a paused one, and one the store failed on (or
// that Stop interrupted) are passed over, logged but not reported to hooks.
func (s *Scheduler) claim(ctx context.Context, en *entry, fired time.Time) bool {
	if en.ss == nil {
		return !s.localPause(en, fired)
	}
	var claimed bool
	err := s.storeCall(ctx, en, "ClaimFire", func(ctx context.Context) (err error) {
		claimed, err = en.ss.ClaimFire(ctx, en.name, fired)
		return err
	})
	if err != nil {
		s.logStore(en, "workflow: scheduled fire skipped: the store could not claim it", err, fired)
		return false
	}
	if !claimed {
		s.logFire(en, fired, "workflow: scheduled fire passed over: another scheduler claimed it")
		return false
	}
	// Claimed even when paused: the fire is handled, and not made up.
	return !s.storePause(ctx, en, fired)
}

// claimAlone is claim for the overlap policies that need to know whether
// a scheduled run is under way on another Scheduler: with a ScheduleStore
// it also reports busy, as ClaimFireAlone does. A fire that is not run
// but that the store counts as starting is told to the store as started.
func (s *Scheduler) claimAlone(ctx context.Context, en *entry, fired time.Time) (ok, busy bool) {
	if en.ss == nil {
		return !s.localPause(en, fired), false
	}
	// Not busy itself: the call may outlive storeCall, and write late.
	var claimed, isBusy bool
	err := s.storeCall(ctx, en, "ClaimFireAlone", func(ctx context.Context) (err error) {
		claimed, isBusy, err = en.ss.ClaimFireAlone(ctx, en.name, fired)
		return err
	})
	if err != nil {
		s.logStore(en, "workflow: scheduled fire skipped: the store could not claim it", err, fired)
		return false, false
	}
	if !claimed {
		s.logFire(en, fired, "workflow: scheduled fire passed over: another scheduler claimed it")
		return false, false
	}
	if s.storePause(ctx, en, fired) {
		s.fireStarted(ctx, en, fired, !isBusy)
		return false, false
	}
	return true, isBusy
}

// localPause reports whether this Scheduler's own pause passes the fire
// over, for a store that is not a ScheduleStore.
func (s *Scheduler) localPause(en *entry, fired time.Time) bool {
	s.mu.Lock()
	paused := en.paused
	s.mu.Unlock()
	if paused {
		s.logFire(en, fired, "workflow: scheduled fire passed over: the schedule is paused")
	}
	return paused
}

// storePause reports whether the fire claimed at fired is passed over:
// the schedule is paused, or the store could not say.
func (s *Scheduler) storePause(ctx context.Context, en *entry, fired time.Time) bool {
	var paused bool
	err := s.storeCall(ctx, en, "Paused", func(ctx context.Context) (err error) {
		paused, err = en.ss.Paused(ctx, en.name)
		return err
	})
	if err != nil {
		s.logStore(en, "workflow: scheduled fire skipped: the store could not say whether the schedule is paused", err, fired)
		return true
	}
	s.notePaused(en, paused)
	if paused {
		s.logFire(en, fired, "workflow: scheduled fire passed over: the schedule is paused")
	}
	return paused
}

// fireStarted tells the store that the fire at fired, which it counts as
// starting, has its run or will have none. A failure is logged: the store
// counts the fire as starting for a bounded time.
func (s *Scheduler) fireStarted(ctx context.Context, en *entry, fired time.Time, starting bool) {
	if !starting || en.ss == nil {
		return
	}
	err := s.storeCall(ctx, en, "FireStarted", func(ctx context.Context) error {
		return en.ss.FireStarted(ctx, en.name, fired)
	})
	if err != nil {
		s.logStore(en, "workflow: the store could not note that the fire's run started", err, fired)
	}
}

// storeCall calls f, a call of the ScheduleStore named method, on a
// goroutine of its own: whether f returns, panics, calls runtime.Goexit or
// ignores ctx, storeCall returns by the end of ctx, which it bounds.
func (s *Scheduler) storeCall(ctx context.Context, en *entry, method string, f func(context.Context) error) error {
	ctx, cancel := context.WithTimeout(ctx, storeTimeout)
	defer cancel()
	res := make(chan error, 1)
	go func() {
		returned := false
		defer func() {
			if returned {
				return
			}
			p := recover()
			if p == nil {
				p = errGoexitCallback
			}
			s.logPanic(en, "the store's "+method, p)
			res <- newError(ErrPanic, "the store's %s panicked: %v", method, p)
		}()
		err := f(ctx)
		returned = true
		res <- err
	}()
	select {
	case err := <-res:
		return err
	case <-ctx.Done():
		return fmt.Errorf("the store's %s did not return: %w", method, context.Cause(ctx))
	}
}

// logStore logs a failed call to the ScheduleStore, on the scheduler's
// logger or else the workflow's; at Debug when Stop cut it short.
func (s *Scheduler) logStore(en *entry, msg string, err error, fired time.Time) {
	l := s.loggerFor(en)
	if l == nil {
		return
	}
	level := slog.LevelError
	if errors.Is(err, context.Canceled) {
		level = slog.LevelDebug
	}
	args := []any{"workflow", en.name, "error", err.Error()}
	if !fired.IsZero() {
		args = append(args, "scheduled_at", fired)
	}
	safeLog(func() { l.Log(context.Background(), level, msg, args...) })
}

func (s *Scheduler) logFire(en *entry, fired time.Time, msg string) {
	s.log(slog.LevelDebug, msg, "workflow", en.name, "scheduled_at", fired)
}

// skip reports a fire that the overlap policy skipped: to the workflow's
// hooks and logger, as an Event, and to the scheduler's logger.
func (s *Scheduler) skip(en *entry, fired time.Time, reason string) {
	ev := Event{
		Time:  time.Now(),
		Type:  EventScheduleSkipped,
		Error: fmt.Sprintf("fire at %s skipped: %s", fired.Format(time.RFC3339), reason),
	}
	en.e.skipped(ev)
	if s.logger != en.e.cfg.logger {
		s.log(slog.LevelWarn, "workflow: scheduled fire skipped", "workflow", en.name,
			"scheduled_at", fired, "overlap", en.ps.Overlap.String(), "reason", reason)
	}
}

// recoverIn logs a panic of the scheduler's own goroutine, so that nothing
// it runs can crash the process. Use it deferred.
func (s *Scheduler) recoverIn(en *entry, where string) {
	if v := recover(); v != nil {
		s.logPanic(en, where, v)
	}
}

// The logging helpers below do nothing without a logger; the workflow's
// logger is used when the scheduler has none, so that panics are not lost.

func (s *Scheduler) loggerFor(en *entry) *slog.Logger {
	if s.logger != nil {
		return s.logger
	}
	return en.e.cfg.logger
}

// logPanic logs a panic, or a runtime.Goexit, of user code; without a
// logger of the scheduler or the workflow, on slog.Default().
func (s *Scheduler) logPanic(en *entry, where string, v any) {
	l := s.loggerFor(en)
	if l == nil {
		l = slog.Default()
	}
	stack := string(debug.Stack())
	safeLog(func() {
		l.Error("workflow: scheduler recovered a panic", "workflow", en.name, "in", where,
			"panic", fmt.Sprint(v), "stack", stack)
	})
}

// log writes one line to the scheduler's logger, if it has one, as
// safeLog does.
func (s *Scheduler) log(level slog.Level, msg string, args ...any) {
	if l := s.logger; l != nil {
		safeLog(func() { l.Log(context.Background(), level, msg, args...) })
	}
}

func (s *Scheduler) logWarn(en *entry, msg string) {
	s.log(slog.LevelWarn, msg, "workflow", en.name, "cron", en.ps.Cron, "timezone", en.ps.loc.String())
}

func (s *Scheduler) logDebug(en *entry, runID, trigger, msg string, attrs ...any) {
	s.log(slog.LevelDebug, msg, append([]any{"workflow", en.name, "run_id", runID, "trigger", trigger}, attrs...)...)
}

func (s *Scheduler) logRunError(en *entry, runID, trigger, msg string, err error) {
	s.log(slog.LevelError, msg, "workflow", en.name, "run_id", runID, "trigger", trigger, "error", err.Error())
}

func (s *Scheduler) logEnd(en *entry, r *run, trigger string) {
	if r.err != nil {
		s.logRunError(en, r.id, trigger, "workflow: run did not succeed", r.err)
		return
	}
	s.log(slog.LevelInfo, "workflow: run succeeded", "workflow", en.name, "run_id", r.id, "trigger", trigger)
}
