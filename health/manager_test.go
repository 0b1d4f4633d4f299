package health

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"
)

func TestRiseFall(t *testing.T) {
	h := newHarness(t, FlapDamping{Threshold: -1})
	k := realKey("198.18.1.11", 80)
	h.set(Target{Key: k, Chain: []Check{fc(KindTCP, 2, 3)}})
	// The first result decides at once.
	h.expectChanges("198.18.1.11 up: fine")
	if s := h.status(k); !s.Up || !s.Checked || s.Layer != -1 {
		t.Fatalf("after the first success: %+v", s)
	}
	h.checks.set("tcp 198.18.1.11:80", false, "connect to 198.18.1.11:80: connection refused")
	for i := 1; i <= 2; i++ {
		h.step(time.Second)
		if s := h.status(k); !s.Up {
			t.Fatalf("down after %d failures, fall is 3", i)
		}
	}
	h.expectChanges()
	h.step(time.Second)
	h.expectChanges("198.18.1.11 down: tcp 198.18.1.11:80: connect to 198.18.1.11:80: connection refused")
	s := h.status(k)
	if s.Up || s.Layer != 0 || s.Transitions != 1 || !strings.Contains(s.Reason, "connection refused") || s.Last.OK {
		t.Fatalf("after 3 failures: %+v", s)
	}
	if want := h.clk.Now(); !s.Since.Equal(want) {
		t.Fatalf("since %v, want %v", s.Since, want)
	}
	h.checks.set("tcp 198.18.1.11:80", true, "")
	h.step(time.Second)
	if h.status(k).Up {
		t.Fatal("up after 1 success, rise is 2")
	}
	// A failure in between restarts the count.
	h.checks.set("tcp 198.18.1.11:80", false, "")
	h.step(time.Second)
	h.checks.set("tcp 198.18.1.11:80", true, "")
	h.step(time.Second)
	h.expectChanges()
	h.step(time.Second)
	h.expectChanges("198.18.1.11 up: fine")
	if s := h.status(k); !s.Up || s.Transitions != 2 {
		t.Fatalf("after rise: %+v", s)
	}
	if got := h.checks.runCount("tcp 198.18.1.11:80"); got != 8 {
		t.Fatalf("%d runs in 7 intervals, want 8", got)
	}
	st := h.m.Stats()
	if st.Runs != 8 || st.Failed != 4 || st.Transitions != 2 || st.Late != 0 {
		t.Fatalf("stats %+v", st)
	}
}

func TestFirstVerdictDown(t *testing.T) {
	h := newHarness(t, FlapDamping{Threshold: -1})
	k := realKey("198.18.1.11", 80)
	h.checks.set("tcp 198.18.1.11:80", false, "refused")
	h.set(Target{Key: k, Chain: []Check{fc(KindTCP, 2, 3)}})
	h.expectChanges("198.18.1.11 down: tcp 198.18.1.11:80: refused")
	if s := h.status(k); s.Up || !s.Checked || s.Transitions != 0 {
		t.Fatalf("%+v", s)
	}
}

func TestChain(t *testing.T) {
	h := newHarness(t, FlapDamping{Threshold: -1})
	k := realKey("198.18.1.11", 80)
	chain := []Check{fc(KindICMP, 2, 2), fc(KindTCP, 2, 2), fc(KindHTTP, 2, 2)}
	chain[0].Interval = 3 * time.Second // L3 more rarely, as the seeds do for L2
	icmp, tcp, http := "icmp 198.18.1.11", "tcp 198.18.1.11:80", "http 198.18.1.11:80"
	h.checks.set(http, false, "status 503")
	h.set(Target{Key: k, Chain: chain})
	// icmp passes → tcp runs at once → passes → http runs at once → 503.
	h.expectChanges("198.18.1.11 down: http 198.18.1.11:80: status 503")
	s := h.status(k)
	if s.Layer != 2 || s.Last.Reason != "status 503" {
		t.Fatalf("status %+v", s)
	}
	if got := [3]string{s.Checks[0].State, s.Checks[1].State, s.Checks[2].State}; got != [3]string{"up", "up", "down"} {
		t.Fatalf("check states %v", got)
	}
	h.checks.set(http, true, "status 200")
	h.step(time.Second)
	h.expectChanges()
	h.step(time.Second)
	h.expectChanges("198.18.1.11 up: status 200")

	// L4 fails: after its fall the target goes down at layer 1 and the L7
	// check stops running.
	h.checks.set(tcp, false, "refused")
	h.step(time.Second)
	h.step(time.Second)
	h.expectChanges("198.18.1.11 down: tcp 198.18.1.11:80: refused")
	s = h.status(k)
	if s.Layer != 1 || s.Checks[2].State != "paused" {
		t.Fatalf("status %+v", s)
	}
	httpRuns := h.checks.runCount(http)
	for range 5 {
		h.step(time.Second)
	}
	if got := h.checks.runCount(http); got != httpRuns {
		t.Fatalf("http ran %d times while tcp was down", got-httpRuns)
	}
	if got := h.checks.runCount(icmp); got < 3 {
		t.Fatalf("icmp ran %d times, want it to keep running", got)
	}
	// L3 fails too: the reason moves down to layer 0, tcp pauses.
	h.checks.set(icmp, false, "timeout after 500ms")
	for range 6 {
		h.step(time.Second)
	}
	s = h.status(k)
	if s.Layer != 0 || s.Checks[1].State != "paused" || s.Checks[2].State != "paused" || !strings.HasPrefix(s.Reason, "icmp") {
		t.Fatalf("status %+v", s)
	}
	h.expectChanges() // still down: no change
	tcpRuns := h.checks.runCount(tcp)
	h.checks.set(tcp, true, "connected")
	h.step(3 * time.Second)
	if got := h.checks.runCount(tcp); got != tcpRuns {
		t.Fatal("tcp ran while icmp was down")
	}
	// Everything recovers: icmp rises (2 × 3s), then tcp and http run at
	// once and, restarted, decide on their first result.
	h.checks.set(icmp, true, "echo reply")
	h.step(3 * time.Second)
	h.step(3 * time.Second)
	h.expectChanges("198.18.1.11 up: status 200")
	if got := h.checks.runCount(http); got != httpRuns+1 {
		t.Fatalf("http ran %d times after the recovery, want 1", got-httpRuns)
	}
}

func TestSharedProbes(t *testing.T) {
	h := newHarness(t, FlapDamping{Threshold: -1})
	a := realKey("198.18.1.11", 80)
	b := a
	b.Service.VIP = b.Service.VIP.Next() // the same real in another service
	c := realKey("198.18.1.11", 8080)    // the same host, another port
	chain := []Check{fc(KindICMP, 1, 1), fc(KindTCP, 1, 1)}
	h.set(
		Target{Key: a, Chain: chain},
		Target{Key: b, Chain: chain},
		Target{Key: c, Chain: chain},
	)
	for range 4 {
		h.step(time.Second)
	}
	if got := h.checks.runCount("icmp 198.18.1.11"); got != 5 {
		t.Fatalf("shared icmp ran %d times in 5 rounds", got)
	}
	if got := h.checks.runCount("tcp 198.18.1.11:80"); got != 5 {
		t.Fatalf("shared tcp:80 ran %d times in 5 rounds", got)
	}
	if got := h.checks.runCount("tcp 198.18.1.11:8080"); got != 5 {
		t.Fatalf("tcp:8080 ran %d times in 5 rounds", got)
	}
	if st := h.m.Stats(); st.Checks != 6 || st.Probes != 3 {
		t.Fatalf("stats %+v: want 6 checks in 3 probes", st)
	}
	if s := h.status(a); s.Checks[0].Shared != 3 || s.Checks[1].Shared != 2 {
		t.Fatalf("shared counts %+v", s.Checks)
	}
	// One failure takes down both users of the shared probe, not the other.
	h.checks.set("tcp 198.18.1.11:80", false, "refused")
	h.step(time.Second)
	got := h.log.take()
	if len(got) != 3+2 || !strings.Contains(got[3], "down") || !strings.Contains(got[4], "down") {
		t.Fatalf("changes %q", got)
	}
	if !h.status(c).Up || h.status(a).Up || h.status(b).Up {
		t.Fatal("wrong targets down")
	}
	// Different timing is a different check: not shared.
	slow := fc(KindICMP, 1, 1)
	slow.Interval = 2 * time.Second
	d := realKey("198.18.1.11", 81)
	h.set(Target{Key: a, Chain: chain}, Target{Key: d, Chain: []Check{slow}})
	if st := h.m.Stats(); st.Probes != 3 {
		t.Fatalf("stats %+v: want 3 probes", st)
	}
}

func TestSetKeepsState(t *testing.T) {
	h := newHarness(t, FlapDamping{Threshold: -1})
	a, b := realKey("198.18.1.11", 80), realKey("198.18.1.12", 80)
	ta := Target{Key: a, Chain: []Check{fc(KindTCP, 2, 2)}}
	h.set(ta)
	h.expectChanges("198.18.1.11 up: fine")
	h.step(time.Second)
	since := h.status(a).Since
	runs := h.checks.runCount("tcp 198.18.1.11:80")
	created := h.checks.created

	h.step(500 * time.Millisecond)
	h.set(ta, Target{Key: b, Chain: []Check{fc(KindTCP, 2, 2)}})
	h.expectChanges("198.18.1.12 up: fine") // only the new one
	if got := h.checks.created; got != created+1 {
		t.Fatalf("%d checkers built for one new target", got-created)
	}
	if s := h.status(a); !s.Up || !s.Since.Equal(since) {
		t.Fatalf("a after Set: %+v", s)
	}
	// a keeps its schedule: its next run is 1s after the previous, not at
	// the Set.
	if got := h.checks.runCount("tcp 198.18.1.11:80"); got != runs {
		t.Fatal("Set re-ran an unchanged probe")
	}
	h.step(500 * time.Millisecond)
	if got := h.checks.runCount("tcp 198.18.1.11:80"); got != runs+1 {
		t.Fatalf("runs %d, want %d", got, runs+1)
	}
	// Removing a target stops its probes; a changed chain keeps the
	// target's state until the new chain decides.
	h.set(Target{Key: b, Chain: []Check{fc(KindICMP, 2, 2), fc(KindTCP, 2, 2)}})
	if len(h.m.Status()) != 1 {
		t.Fatal("a still in the status")
	}
	h.expectChanges()
	if s := h.status(b); !s.Up || s.Transitions != 0 || len(s.Checks) != 2 {
		t.Fatalf("b after its chain changed: %+v", s)
	}
	runsA := h.checks.runCount("tcp 198.18.1.11:80")
	h.step(3 * time.Second)
	if h.checks.runCount("tcp 198.18.1.11:80") != runsA {
		t.Fatal("a removed but still probed")
	}
}

func TestSetValidates(t *testing.T) {
	h := newHarness(t, FlapDamping{})
	k := realKey("198.18.1.11", 80)
	good := Target{Key: k, Chain: []Check{fc(KindTCP, 1, 1)}}
	noPort := realKey("198.18.1.12", 0)
	noPort.Service.Port = 0
	h.set(good)
	for name, bad := range map[string]Target{
		"unknown kind": {Key: k, Chain: []Check{{Kind: "smtp"}}},
		"no contains":  {Key: k, Chain: []Check{{Kind: KindHTTPContent}}},
		"both":         {Key: k, Chain: []Check{{Kind: KindHTTP, Contains: "a", Regexp: "b"}}},
		"bad regexp":   {Key: k, Chain: []Check{{Kind: KindHTTPContent, Regexp: "("}}},
		"no port":      {Key: noPort, Chain: []Check{{Kind: KindTCP}}},
		"bad status":   {Key: k, Chain: []Check{{Kind: KindHTTP, Status: []StatusRange{{500, 200}}}}},
		"jitter":       {Key: k, Chain: []Check{{Kind: KindICMP, Interval: time.Second, Jitter: time.Second}}},
		"family":       {Key: k, Chain: []Check{{Kind: KindICMP, Source: mustAddr("2001:db8::1")}}},
		"passive":      {Key: k, Passive: &PassiveRule{FailRatio: 2}},
	} {
		err := h.m.Set([]Target{good, bad})
		if !errors.Is(err, ErrBadCheck) {
			t.Errorf("%s: Set error %v, want ErrBadCheck", name, err)
		}
	}
	if err := h.m.Set([]Target{good, good}); err == nil {
		t.Error("duplicate key accepted")
	}
	if len(h.m.Status()) != 1 || h.m.Status()[0].Checks[0].Name != "tcp 198.18.1.11:80" {
		t.Fatal("a failed Set changed the targets")
	}
}

func TestFlapDamping(t *testing.T) {
	h := newHarness(t, FlapDamping{Window: time.Minute, Threshold: 3, Hold: 10 * time.Second, MaxHold: 30 * time.Second})
	k := realKey("198.18.1.11", 80)
	name := "tcp 198.18.1.11:80"
	h.set(Target{Key: k, Chain: []Check{fc(KindTCP, 1, 1)}})
	h.expectChanges("198.18.1.11 up: fine")
	flip := func(ok bool) {
		h.checks.set(name, ok, "")
		h.step(time.Second)
	}
	flip(false) // change 1
	flip(true)  // 2
	flip(false) // 3: flapping from now on
	h.expectChanges("198.18.1.11 down: tcp 198.18.1.11:80: broken", "198.18.1.11 up: fine", "198.18.1.11 down: tcp 198.18.1.11:80: broken")
	if s := h.status(k); !s.Flapping {
		t.Fatalf("not flapping after 3 changes: %+v", s)
	}
	flip(true) // recovery held down for 10s
	s := h.status(k)
	if s.Up || !strings.Contains(s.Reason, "flapping") || !s.HeldUntil.Equal(h.clk.Now().Add(10*time.Second)) {
		t.Fatalf("recovery of a flapping real not held: %+v", s)
	}
	for range 9 {
		h.step(time.Second)
	}
	h.expectChanges()
	h.step(time.Second)
	h.expectChanges("198.18.1.11 up: fine")
	// Change 5 (down), then a recovery attempt held 20s that a failure
	// cancels: no change is announced for it.
	flip(false)
	flip(true)
	h.step(5 * time.Second)
	flip(false)
	h.expectChanges("198.18.1.11 down: tcp 198.18.1.11:80: broken")
	if s := h.status(k); !s.HeldUntil.IsZero() || s.Up {
		t.Fatalf("hold not canceled by a failure: %+v", s)
	}
	// Once the window forgets the changes, recoveries are immediate again.
	h.step(time.Minute)
	flip(true)
	h.expectChanges("198.18.1.11 up: fine")
	if st := h.m.Stats(); st.FlapHolds != 2 {
		t.Fatalf("stats %+v: want 2 holds", st)
	}
}

func TestPassive(t *testing.T) {
	h := newHarness(t, FlapDamping{Threshold: -1})
	k := realKey("198.18.1.11", 80)
	rule := &PassiveRule{MinSYNs: 10, FailRatio: 0.5, Window: 5 * time.Second, Backoff: 4 * time.Second, MaxBackoff: 10 * time.Second}
	h.set(Target{Key: k, Chain: []Check{fc(KindTCP, 2, 2)}, Passive: rule})
	h.expectChanges("198.18.1.11 up: fine")
	var syns, done, rst uint64
	report := func(s, c, r uint64) bool {
		syns, done, rst = syns+s, done+c, rst+r
		tripped := h.m.ReportPassive(k, syns, done, rst)
		h.step(time.Second)
		return tripped
	}
	report(0, 0, 0)
	if report(8, 0, 0) { // fewer than MinSYNs
		t.Fatal("tripped below MinSYNs")
	}
	if report(20, 18, 0) { // 8+20 SYNs, 10 failed: 36% < 50%
		t.Fatal("tripped below FailRatio")
	}
	if !report(20, 2, 5) { // in the window: 48 SYNs, 20 completed
		t.Fatal("not tripped")
	}
	h.expectChanges("198.18.1.11 down: passive: 28 of 48 SYNs in the last 5s did not complete (5 reset); held down for 4s")
	s := h.status(k)
	if s.Up || s.Layer != -1 || s.Passive == nil || s.Passive.Trips != 1 || s.Passive.NextBackoff != 8*time.Second {
		t.Fatalf("after the trip: %+v %+v", s, s.Passive)
	}
	// Held down whatever the active check says, for the back-off (4s; the
	// report above already advanced 1s).
	h.step(2 * time.Second)
	h.expectChanges()
	runs := h.checks.runCount("tcp 198.18.1.11:80")
	h.step(time.Second)
	// The back-off ended: the check ran at once and brought it back.
	h.expectChanges("198.18.1.11 up: fine")
	if got := h.checks.runCount("tcp 198.18.1.11:80"); got != runs+1 {
		t.Fatalf("%d runs at the end of the back-off, want 1", got-runs)
	}
	// It trips again soon: the back-off doubles.
	report(0, 0, 0)
	if !report(30, 0, 30) {
		t.Fatal("second trip missing")
	}
	h.expectChanges("198.18.1.11 down: passive: 30 of 30 SYNs in the last 5s did not complete (30 reset); held down for 8s")
	// During the back-off the active check fails: the real stays down
	// after the back-off, until the check rises again.
	h.checks.set("tcp 198.18.1.11:80", false, "refused")
	h.step(2 * time.Second)
	h.step(8 * time.Second)
	if s := h.status(k); s.Up || s.Layer != 0 {
		t.Fatalf("%+v", s)
	}
	h.checks.set("tcp 198.18.1.11:80", true, "")
	h.step(time.Second)
	h.step(time.Second)
	h.expectChanges("198.18.1.11 up: fine")
	// Counters going backwards (a restart of the dataplane) start over.
	if h.m.ReportPassive(k, 5, 0, 0) {
		t.Fatal("tripped on a counter reset")
	}
	if h.m.ReportPassive(realKey("198.18.9.9", 80), 100, 0, 0) {
		t.Fatal("unknown real tripped")
	}
}

func TestPassiveOnly(t *testing.T) {
	h := newHarness(t, FlapDamping{Threshold: -1})
	k := realKey("198.18.1.11", 80)
	h.set(Target{Key: k, Passive: &PassiveRule{MinSYNs: 1, Window: time.Second, Backoff: 3 * time.Second}})
	h.expectChanges("198.18.1.11 up: no active checks")
	h.m.ReportPassive(k, 0, 0, 0)
	h.step(time.Second)
	if !h.m.ReportPassive(k, 10, 1, 0) {
		t.Fatal("not tripped")
	}
	h.settle()
	h.step(2 * time.Second)
	if h.status(k).Up {
		t.Fatal("up during the back-off")
	}
	h.step(time.Second)
	if !h.status(k).Up {
		t.Fatal("a real without active checks not back after its back-off")
	}
}

func TestJitter(t *testing.T) {
	m := New(Options{})
	p := &probe{check: Check{Interval: time.Second, Jitter: 100 * time.Millisecond}}
	t0 := time.Unix(0, 0)
	lo, hi := time.Hour, time.Duration(0)
	for range 2000 {
		d := m.nextRun(p, t0).Sub(t0)
		lo, hi = min(lo, d), max(hi, d)
		if f := m.firstDelay(p); f < 0 || f >= 100*time.Millisecond {
			t.Fatalf("first delay %v", f)
		}
	}
	if lo < 900*time.Millisecond || hi > 1100*time.Millisecond || hi-lo < 150*time.Millisecond {
		t.Fatalf("intervals in [%v, %v], want spread over 1s ± 100ms", lo, hi)
	}
	p.check.Jitter = NoJitter
	if d := m.nextRun(p, t0).Sub(t0); d != time.Second {
		t.Fatalf("no jitter: %v", d)
	}
}

func TestDefaults(t *testing.T) {
	tg, err := Target{Key: realKey("198.18.1.11", 0), Port: 0, Chain: []Check{{Kind: KindHTTP}, {Kind: KindARP, Port: 9}}}.normalize()
	if err != nil {
		t.Fatal(err)
	}
	c := tg.Chain[0]
	if tg.Port != 80 || c.Port != 80 || c.Path != "/" || c.Interval != DefaultInterval || c.Timeout != DefaultTimeout ||
		c.Jitter != DefaultInterval/10 || c.Rise != DefaultRise || c.Fall != DefaultFall || c.MaxBody != DefaultMaxBody ||
		len(c.Status) != 1 || c.Status[0] != (StatusRange{200, 399}) {
		t.Fatalf("defaults: %+v", c)
	}
	if tg.Chain[1].Port != 0 {
		t.Fatal("arp kept a port")
	}
	rs, err := ParseStatus("200-299, 301,404")
	if err != nil || len(rs) != 3 || rs[1] != (StatusRange{301, 301}) {
		t.Fatalf("ParseStatus: %v %v", rs, err)
	}
	for _, bad := range []string{"", "99", "300-200", "abc", "200-"} {
		if _, err := ParseStatus(bad); err == nil {
			t.Errorf("ParseStatus(%q) accepted", bad)
		}
	}
}

type panicChecker struct{}

func (panicChecker) Check(context.Context) Result { panic("boom") }
func (panicChecker) String() string               { return "tcp panics" }

func TestCheckerPanic(t *testing.T) {
	log := &changeLog{}
	clk := newFakeClock()
	m := New(Options{Clock: clk, Logger: slog.New(slog.DiscardHandler), OnChange: log.on,
		NewChecker: func(Check, Target) (Checker, error) { return panicChecker{}, nil }})
	if err := m.Start(); err != nil {
		t.Fatal(err)
	}
	defer m.Stop()
	h := &harness{t: t, m: m, clk: clk, log: log}
	h.set(Target{Key: realKey("198.18.1.11", 80), Chain: []Check{fc(KindTCP, 1, 1)}})
	h.expectChanges("198.18.1.11 down: tcp panics: checker panicked: boom")
	if err := m.Start(); err == nil {
		t.Fatal("second Start accepted")
	}
}
