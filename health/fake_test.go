package health

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"sync"
	"testing"
	"time"

	"gvs/lb"
)

// fakeClock is a Clock that moves only when told to.
type fakeClock struct {
	mu     sync.Mutex
	now    time.Time
	timers []*fakeTimer
}

type fakeTimer struct {
	c       *fakeClock
	at      time.Time
	f       func()
	stopped bool
	queued  bool // in c.timers
}

func newFakeClock() *fakeClock {
	return &fakeClock{now: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) AfterFunc(d time.Duration, f func()) Timer {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := &fakeTimer{c: c, at: c.now.Add(d), f: f}
	if d <= 0 {
		go f()
		return t
	}
	t.queued = true
	c.timers = append(c.timers, t)
	return t
}

func (t *fakeTimer) Stop() bool {
	t.c.mu.Lock()
	defer t.c.mu.Unlock()
	was := !t.stopped
	t.stopped = true
	return was
}

func (t *fakeTimer) Reset(d time.Duration) bool {
	c := t.c
	c.mu.Lock()
	was := !t.stopped
	t.at, t.stopped = c.now.Add(d), d <= 0
	if d > 0 && !t.queued {
		t.queued = true
		c.timers = append(c.timers, t)
	}
	c.mu.Unlock()
	if d <= 0 {
		go t.f()
	}
	return was
}

// Advance moves the clock and runs the timers that became due.
func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	var due []*fakeTimer
	keep := c.timers[:0]
	for _, t := range c.timers {
		switch {
		case t.stopped:
			t.queued = false
		case !t.at.After(c.now):
			t.stopped, t.queued = true, false
			due = append(due, t)
		default:
			keep = append(keep, t)
		}
	}
	c.timers = keep
	c.mu.Unlock()
	for _, t := range due {
		t.f()
	}
}

// fakeChecks hands out checkers whose outcome the test sets per name
// ("tcp 198.18.1.1:80") and counts their runs.
type fakeChecks struct {
	mu      sync.Mutex
	ok      map[string]bool
	reason  map[string]string
	runs    map[string]int
	created int
}

func newFakeChecks() *fakeChecks {
	return &fakeChecks{ok: map[string]bool{}, reason: map[string]string{}, runs: map[string]int{}}
}

func fakeName(c Check, t Target) string {
	if c.Port != 0 {
		return fmt.Sprintf("%s %s", c.Kind, netip.AddrPortFrom(t.Addr, c.Port))
	}
	return fmt.Sprintf("%s %s", c.Kind, t.Addr)
}

func (f *fakeChecks) New(c Check, t Target) (Checker, error) {
	f.mu.Lock()
	f.created++
	f.mu.Unlock()
	return &fakeChecker{f: f, name: fakeName(c, t)}, nil
}

// set makes the checker name pass or fail (with reason) from now on.
func (f *fakeChecks) set(name string, ok bool, reason string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.ok[name], f.reason[name] = ok, reason
}

func (f *fakeChecks) runCount(name string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.runs[name]
}

type fakeChecker struct {
	f    *fakeChecks
	name string
}

func (c *fakeChecker) String() string { return c.name }

func (c *fakeChecker) Check(context.Context) Result {
	c.f.mu.Lock()
	defer c.f.mu.Unlock()
	c.f.runs[c.name]++
	ok, known := c.f.ok[c.name]
	if !known {
		ok = true
	}
	r := c.f.reason[c.name]
	if r == "" {
		r = "fine"
		if !ok {
			r = "broken"
		}
	}
	return Result{OK: ok, Reason: r, Latency: time.Millisecond}
}

// changeLog records OnChange calls.
type changeLog struct {
	mu sync.Mutex
	cs []string
}

func (l *changeLog) on(key lb.RealKey, up bool, reason string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	s := "down"
	if up {
		s = "up"
	}
	l.cs = append(l.cs, fmt.Sprintf("%s %s: %s", key.Addr, s, reason))
}

func (l *changeLog) take() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	cs := l.cs
	l.cs = nil
	return cs
}

// harness is a Manager on a fake clock with fake checkers.
type harness struct {
	t      *testing.T
	m      *Manager
	clk    *fakeClock
	checks *fakeChecks
	log    *changeLog
}

func newHarness(t *testing.T, flap FlapDamping) *harness {
	h := &harness{t: t, clk: newFakeClock(), checks: newFakeChecks(), log: &changeLog{}}
	h.m = New(Options{
		Workers:    4,
		Clock:      h.clk,
		Logger:     slog.New(slog.DiscardHandler),
		OnChange:   h.log.on,
		Flap:       flap,
		NewChecker: h.checks.New,
	})
	if err := h.m.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(h.m.Stop)
	return h
}

// settle waits (bounded) until the Manager has run everything due at the
// clock's current time and announced the changes.
func (h *harness) settle() {
	h.t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !h.m.quiet() {
		if time.Now().After(deadline) {
			h.t.Fatalf("manager not quiet after 5s: %+v", h.m.Stats())
		}
		time.Sleep(20 * time.Microsecond)
	}
}

// step advances the clock by d and settles.
func (h *harness) step(d time.Duration) {
	h.t.Helper()
	h.clk.Advance(d)
	h.settle()
}

func (h *harness) set(ts ...Target) {
	h.t.Helper()
	if err := h.m.Set(ts); err != nil {
		h.t.Fatal(err)
	}
	h.settle()
}

func (h *harness) status(key lb.RealKey) Status {
	h.t.Helper()
	for _, s := range h.m.Status() {
		if s.Key == key {
			return s
		}
	}
	h.t.Fatalf("no status for %v", key)
	return Status{}
}

// expectChanges checks the OnChange calls since the last call.
func (h *harness) expectChanges(want ...string) {
	h.t.Helper()
	got := h.log.take()
	if fmt.Sprint(got) != fmt.Sprint(want) {
		h.t.Fatalf("changes:\n got %q\nwant %q", got, want)
	}
}

var svc = lb.ServiceKey{Proto: lb.ProtoTCP, VIP: netip.MustParseAddr("198.18.0.10"), Port: 80}

func realKey(addr string, port uint16) lb.RealKey {
	return lb.RealKey{Service: svc, Addr: netip.MustParseAddr(addr), Port: port}
}

// fc is a fake-friendly check: no jitter, 1s interval.
func fc(kind string, rise, fall int) Check {
	return Check{Kind: kind, Interval: time.Second, Timeout: 500 * time.Millisecond, Jitter: NoJitter, Rise: rise, Fall: fall}
}

func mustAddr(s string) netip.Addr { return netip.MustParseAddr(s) }
