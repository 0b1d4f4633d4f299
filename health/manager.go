package health

import (
	"container/heap"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"runtime"
	"runtime/debug"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"gvs/lb"
)

// DefaultWorkers is the size of a Manager's probe pool when Options.Workers
// is 0.
const DefaultWorkers = 256

// Options configure a Manager. The zero value is usable.
type Options struct {
	// Workers bounds how many probes run at once (default
	// DefaultWorkers). A probe holds a worker for its whole duration, at
	// most its Timeout, so the pool sustains about Workers / (mean probe
	// time) probes per second; when every probe times out that is
	// Workers / Timeout. Probes due while the pool is busy wait (counted in
	// Stats.Late), they are never skipped.
	Workers int
	// Clock drives scheduling and state (default: the system clock).
	Clock Clock
	// Logger gets one line per state change of a target, flap hold-down and
	// passive trip (default: slog.Default()).
	Logger *slog.Logger
	// OnChange is called for every change of a target's state, including
	// its first verdict, with the reason, in order, from one goroutine,
	// never with the Manager's lock held. It may call the Manager, except
	// Stop (which waits for it).
	OnChange func(key lb.RealKey, up bool, reason string)
	// Flap is the flap damping (see FlapDamping).
	Flap FlapDamping
	// Netns, if set, is the path of a network namespace (/run/netns/NAME,
	// /proc/PID/ns/net) the probes run in: each worker locks its OS thread
	// and enters it (every wake-up of a locked goroutine is then an OS
	// thread switch: about twice the CPU per probe). Empty: the daemon's
	// own namespace.
	Netns string
	// NewChecker builds the checker of a check (default: the built-in
	// ones, NewChecker). Tests and benchmarks inject fakes here.
	NewChecker func(c Check, t Target) (Checker, error)
}

// Status is the health of one target.
type Status struct {
	Key     lb.RealKey
	Up      bool
	Checked bool      // false until the first verdict (Up is then false)
	Since   time.Time // of the current state (zero before the first verdict)
	// Reason is why the target is in its state: the failing check's
	// result, the passive rule, a flap hold-down, or, when up, the last
	// check's result.
	Reason string
	// Last is the latest result of the check that decides: the failing
	// one when down, the chain's last one when up.
	Last Result
	// Layer is the index in the chain of the check that keeps the target
	// down (or has not decided yet); -1 when up, when the chain is empty
	// and when only passive checks or flap damping hold it down.
	Layer       int
	Transitions uint64 // state changes, not counting the first verdict
	Flapping    bool   // Transitions within the flap window reach its threshold
	HeldUntil   time.Time
	Checks      []CheckStatus
	Passive     *PassiveStatus // nil without a passive rule
}

// CheckStatus is the state of one check of a target's chain.
type CheckStatus struct {
	Name   string // the checker's String()
	State  string // "up", "down", "unknown" (no result yet), "paused" (a lower check is not up)
	Since  time.Time
	Last   Result
	Shared int // targets sharing this probe (1: not shared)
}

// Stats are a Manager's counters.
type Stats struct {
	Targets int    // targets set
	Checks  int    // checks over all chains
	Probes  int    // distinct probes after sharing (≤ Checks)
	Runs    uint64 // probes run
	Failed  uint64 // probes that failed
	// Late counts probes that started more than max(10ms, Interval/10)
	// after they were due: the pool or the scheduler could not keep up.
	Late         uint64
	Transitions  uint64 // target state changes, first verdicts excluded
	FlapHolds    uint64 // recoveries held down by flap damping
	PassiveTrips uint64
}

// Manager runs the checks of a set of targets on a bounded worker pool and
// keeps their state. All methods are safe for concurrent use.
type Manager struct {
	opts  Options
	flap  FlapDamping
	clock Clock
	log   *slog.Logger

	setMu    sync.Mutex
	mu       sync.Mutex
	targets  map[lb.RealKey]*target
	order    []*target
	probes   map[string]*probe
	events   eventHeap
	inflight int // dispatched, not completed
	stats    Stats
	rng      *rand.Rand
	changes  []change // OnChange queue
	notifier bool     // the notifier is delivering
	started  bool
	stopped  bool

	jobs     chan job
	wake     chan struct{}
	nwake    chan struct{}
	stop     chan struct{}
	ctx      context.Context
	cancel   context.CancelFunc
	wg       sync.WaitGroup
	nsFile   *os.File
	stopped1 sync.Once
}

type change struct {
	key    lb.RealKey
	up     bool
	reason string
}

type job struct {
	p       *probe
	gen     uint64
	checker Checker
	timeout time.Duration
}

// event is an entry of the scheduler's heap: a probe due to run or a
// target to wake.
type event struct {
	at  time.Time
	idx int // in the heap; -1: not queued
	p   *probe
	t   *target
}

type eventHeap []*event

func (h eventHeap) Len() int           { return len(h) }
func (h eventHeap) Less(i, j int) bool { return h[i].at.Before(h[j].at) }
func (h eventHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].idx, h[j].idx = i, j
}
func (h *eventHeap) Push(x any) {
	e := x.(*event)
	e.idx = len(*h)
	*h = append(*h, e)
}
func (h *eventHeap) Pop() any {
	old := *h
	e := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	e.idx = -1
	return e
}

// New returns a Manager with no targets; Set gives it some, Start runs it.
func New(opts Options) *Manager {
	if opts.Workers <= 0 {
		opts.Workers = DefaultWorkers
	}
	if opts.Clock == nil {
		opts.Clock = systemClock{}
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.NewChecker == nil {
		opts.NewChecker = NewChecker
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Manager{
		opts:    opts,
		flap:    opts.Flap.withDefaults(),
		clock:   opts.Clock,
		log:     opts.Logger.With("component", "health"),
		targets: map[lb.RealKey]*target{},
		probes:  map[string]*probe{},
		rng:     rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64())),
		jobs:    make(chan job),
		wake:    make(chan struct{}, 1),
		nwake:   make(chan struct{}, 1),
		stop:    make(chan struct{}),
		ctx:     ctx,
		cancel:  cancel,
	}
}

// Set replaces the set of targets. A target whose key was set before keeps
// its state (up/down, since, transitions, passive history); probes that
// stay (same check of the same address after the same lower checks) keep
// their state and schedule. Identical checks of several targets run once
// and their results are shared (as in the Maglev paper): sharing is by
// chain prefix, so check i of two targets is one probe when their checks
// 0..i are identical and aimed at the same address (and port, VIP where it
// matters). New probes run at once or, with jitter, at a random point of
// their first jitter span. Set validates everything first and changes
// nothing if any target is invalid.
func (m *Manager) Set(targets []Target) error {
	m.setMu.Lock() // one Set at a time: the probes it builds stay new
	defer m.setMu.Unlock()
	norm := make([]Target, len(targets))
	seen := make(map[lb.RealKey]bool, len(targets))
	for i, t := range targets {
		n, err := t.normalize()
		if err != nil {
			return err
		}
		if seen[n.Key] {
			return fmt.Errorf("%w: real %v set twice", ErrBadCheck, n.Key)
		}
		seen[n.Key] = true
		norm[i] = n
	}
	// Build the checkers of new probes outside the lock.
	m.mu.Lock()
	known := make(map[string]bool, len(m.probes))
	for k := range m.probes {
		known[k] = true
	}
	m.mu.Unlock()
	keys := make([][]string, len(norm))
	fresh := map[string]*probe{}
	for i := range norm {
		t := &norm[i]
		keys[i] = make([]string, len(t.Chain))
		for j, c := range t.Chain {
			k := probeKey(t, j)
			keys[i][j] = k
			if known[k] || fresh[k] != nil {
				continue
			}
			ck, err := m.opts.NewChecker(c, *t)
			if err != nil {
				return fmt.Errorf("real %v: check %d: %w", t.Key, j, err)
			}
			fresh[k] = &probe{key: k, check: c, checker: ck, name: ck.String(), ev: event{idx: -1}}
		}
	}

	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.clock.Now()
	probes := make(map[string]*probe, len(m.probes)+len(fresh))
	var added []*probe
	get := func(k string) *probe {
		if p := probes[k]; p != nil {
			return p
		}
		p := m.probes[k]
		if p == nil {
			p = fresh[k]
			added = append(added, p)
		}
		p.targets, p.children = p.targets[:0], p.children[:0]
		probes[k] = p
		return p
	}
	order := make([]*target, 0, len(norm))
	targetsNew := make(map[lb.RealKey]*target, len(norm))
	for i, cfg := range norm {
		t := m.targets[cfg.Key]
		if t == nil {
			t = &target{reason: "not checked yet", ev: event{idx: -1}}
			t.ev.t = t
		}
		t.cfg = cfg
		t.probes = t.probes[:0]
		var parent *probe
		for j := range cfg.Chain {
			p := get(keys[i][j])
			if len(p.targets) == 0 || p.targets[len(p.targets)-1] != t {
				p.targets = append(p.targets, t)
			}
			if parent != nil && p.parent == nil {
				p.parent = parent
			}
			parent = p
			t.probes = append(t.probes, p)
		}
		if cfg.Passive == nil {
			t.passive = nil
		} else if t.passive == nil {
			t.passive = &passiveState{rule: *cfg.Passive}
		} else {
			t.passive.rule = *cfg.Passive
		}
		order = append(order, t)
		targetsNew[cfg.Key] = t
	}
	for _, p := range probes {
		if p.parent != nil {
			p.parent.children = append(p.parent.children, p)
		}
	}
	for k, p := range m.probes {
		if probes[k] == nil {
			p.removed = true
			m.unqueue(&p.ev)
		}
	}
	for k, t := range m.targets {
		if targetsNew[k] == nil {
			m.unqueue(&t.ev)
		}
	}
	m.probes, m.targets, m.order = probes, targetsNew, order
	for _, p := range added {
		p.ev.p = p
		p.since = now
		if p.runnable() {
			m.push(&p.ev, now.Add(m.firstDelay(p)))
		}
	}
	for _, t := range order {
		m.evaluate(t, now)
	}
	m.stats.Targets, m.stats.Probes, m.stats.Checks = len(order), len(probes), 0
	for _, t := range order {
		m.stats.Checks += len(t.probes)
	}
	return nil
}

// firstDelay is when a new probe first runs: at once without jitter, else
// at a random point of its first jitter span, so that many new targets do
// not all start together.
func (m *Manager) firstDelay(p *probe) time.Duration {
	if p.check.Jitter <= 0 {
		return 0
	}
	return time.Duration(m.rng.Int64N(int64(p.check.Jitter)))
}

// nextRun is when a probe dispatched at from runs again: Interval later,
// plus or minus up to Jitter.
func (m *Manager) nextRun(p *probe, from time.Time) time.Time {
	d := p.check.Interval
	if j := p.check.Jitter; j > 0 {
		d += time.Duration(m.rng.Int64N(2*int64(j)+1)) - j
	}
	return from.Add(d)
}

// push (re)queues e at at and wakes the scheduler if e is now first.
func (m *Manager) push(e *event, at time.Time) {
	e.at = at
	if e.idx >= 0 {
		heap.Fix(&m.events, e.idx)
	} else {
		heap.Push(&m.events, e)
	}
	if e.idx == 0 {
		select {
		case m.wake <- struct{}{}:
		default:
		}
	}
}

func (m *Manager) unqueue(e *event) {
	if e.idx >= 0 {
		heap.Remove(&m.events, e.idx)
	}
}

// Start starts the scheduler, the worker pool and the notifier. A stopped
// Manager cannot be started again.
func (m *Manager) Start() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.started || m.stopped {
		return errors.New("health: manager already started")
	}
	if m.opts.Netns != "" {
		f, err := os.Open(m.opts.Netns)
		if err != nil {
			return fmt.Errorf("health: network namespace: %w", err)
		}
		m.nsFile = f
	}
	m.started = true
	m.wg.Add(2 + m.opts.Workers)
	go m.scheduler()
	go m.notify()
	for range m.opts.Workers {
		go m.worker()
	}
	return nil
}

// Stop stops the probes (running ones are canceled), delivers the pending
// OnChange calls and returns when every goroutine has ended.
func (m *Manager) Stop() {
	m.stopped1.Do(func() {
		m.mu.Lock()
		m.stopped = true
		started := m.started
		m.mu.Unlock()
		close(m.stop)
		m.cancel()
		if started {
			m.wg.Wait()
		}
		if m.nsFile != nil {
			m.nsFile.Close()
		}
	})
}

// scheduler dispatches due probes to the workers and wakes targets whose
// hold-down or back-off ends.
func (m *Manager) scheduler() {
	defer m.wg.Done()
	var timer Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	for {
		m.mu.Lock()
		now := m.clock.Now()
		if len(m.events) > 0 && !m.events[0].at.After(now) {
			e := heap.Pop(&m.events).(*event)
			if e.t != nil {
				m.wakeTarget(e.t, now)
				m.mu.Unlock()
				continue
			}
			p := e.p
			if late := now.Sub(e.at); late > max(10*time.Millisecond, p.check.Interval/10) {
				m.stats.Late++
			}
			p.running = true
			p.dispatched = now
			m.inflight++
			j := job{p: p, gen: p.gen, checker: p.checker, timeout: p.check.Timeout}
			m.mu.Unlock()
			select {
			case m.jobs <- j:
			case <-m.stop:
				return
			}
			continue
		}
		wait := time.Duration(-1)
		if len(m.events) > 0 {
			wait = m.events[0].at.Sub(now)
		}
		m.mu.Unlock()
		if wait >= 0 {
			if timer == nil {
				timer = m.clock.AfterFunc(wait, m.kick)
			} else {
				timer.Reset(wait)
			}
			if !m.clock.Now().Before(now.Add(wait)) {
				m.kick() // the clock passed the deadline while the timer was set
			}
		} else if timer != nil {
			timer.Stop()
		}
		select {
		case <-m.wake:
		case <-m.stop:
			return
		}
	}
}

func (m *Manager) kick() {
	select {
	case m.wake <- struct{}{}:
	default:
	}
}

// worker runs probes, one at a time.
func (m *Manager) worker() {
	defer m.wg.Done()
	var nsErr error
	if m.nsFile != nil {
		// The thread stays locked for the worker's life and is discarded
		// with it, never reused outside the namespace.
		runtime.LockOSThread()
		if err := unix.Setns(int(m.nsFile.Fd()), unix.CLONE_NEWNET); err != nil {
			nsErr = fmt.Errorf("enter network namespace %s: %w", m.opts.Netns, err)
		}
	}
	for {
		select {
		case j := <-m.jobs:
			var r Result
			if nsErr != nil {
				r = Result{Reason: nsErr.Error()}
			} else {
				r = m.run(j)
			}
			m.mu.Lock()
			m.complete(j.p, j.gen, r)
			m.mu.Unlock()
		case <-m.stop:
			return
		}
	}
}

// run runs one probe; a checker that panics fails its probe instead of
// ending the daemon.
func (m *Manager) run(j job) (r Result) {
	ctx, cancel := context.WithTimeout(m.ctx, j.timeout)
	defer cancel()
	defer func() {
		if e := recover(); e != nil {
			r = Result{Reason: fmt.Sprintf("checker panicked: %v", e)}
			m.log.Error("health checker panicked", "check", j.p.name, "panic", e, "stack", string(debug.Stack()))
		}
	}()
	return j.checker.Check(ctx)
}

// complete records the result of a run of p and reschedules it.
func (m *Manager) complete(p *probe, gen uint64, r Result) {
	m.inflight--
	p.running = false
	now := m.clock.Now()
	r.At = now
	m.stats.Runs++
	if !r.OK {
		m.stats.Failed++
	}
	if p.removed {
		return
	}
	next := now
	if gen == p.gen {
		p.last = r
		m.apply(p, r.OK, now)
		for _, t := range p.targets {
			m.evaluate(t, now)
		}
		next = m.nextRun(p, p.dispatched)
		if next.Before(now) {
			next = now
		}
	}
	if p.runnable() {
		m.push(&p.ev, next)
	}
}

// notify delivers OnChange calls in order, outside the lock.
func (m *Manager) notify() {
	defer m.wg.Done()
	for {
		m.mu.Lock()
		cs := m.changes
		m.changes = nil
		m.notifier = len(cs) > 0
		m.mu.Unlock()
		for _, c := range cs {
			m.opts.OnChange(c.key, c.up, c.reason)
		}
		if len(cs) > 0 {
			m.mu.Lock()
			m.notifier = false
			m.mu.Unlock()
			continue
		}
		select {
		case <-m.nwake:
		case <-m.stop:
			m.mu.Lock()
			cs := m.changes
			m.changes = nil
			m.mu.Unlock()
			for _, c := range cs {
				m.opts.OnChange(c.key, c.up, c.reason)
			}
			return
		}
	}
}

// Status returns the state of every target, in the order of the last Set.
func (m *Manager) Status() []Status {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.clock.Now()
	out := make([]Status, 0, len(m.order))
	for _, t := range m.order {
		s := Status{
			Key: t.cfg.Key, Up: t.up, Checked: t.checked, Since: t.since, Reason: t.reason,
			Last: t.last, Layer: t.layer, Transitions: t.transitions, HeldUntil: t.holdUntil,
		}
		s.Flapping = m.flap.Threshold >= 0 && m.flips(t, now) >= m.flap.Threshold
		for _, p := range t.probes {
			st := "paused"
			if p.runnable() {
				st = [...]string{"unknown", "up", "down"}[p.state]
			}
			s.Checks = append(s.Checks, CheckStatus{Name: p.name, State: st, Since: p.since, Last: p.last, Shared: len(p.targets)})
		}
		if p := t.passive; p != nil {
			syn, c, r := p.window()
			s.Passive = &PassiveStatus{SYNs: syn, Completed: c, Resets: r, Trips: p.trips, HeldUntil: p.until, NextBackoff: max(p.next, p.rule.Backoff)}
			if !p.until.IsZero() && (s.HeldUntil.IsZero() || p.until.After(s.HeldUntil)) {
				s.HeldUntil = p.until
			}
		}
		out = append(out, s)
	}
	return out
}

// Stats returns the Manager's counters.
func (m *Manager) Stats() Stats {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.stats
}

// quiet reports whether nothing is due, running or waiting to be announced
// at the clock's current time (for tests with a fake clock).
func (m *Manager) quiet() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.inflight == 0 && len(m.changes) == 0 && !m.notifier &&
		(len(m.events) == 0 || m.events[0].at.After(m.clock.Now()))
}
