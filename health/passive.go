package health

import (
	"fmt"
	"time"

	"gvs/lb"
)

// PassiveRule is when passive checks take a real down (DPVS's dest-check):
// over the last Window, at least MinSYNs SYNs were sent to the real and at
// least FailRatio of them never completed their handshake. Zero fields
// take the defaults below.
type PassiveRule struct {
	MinSYNs   int           // default 20
	FailRatio float64       // in (0, 1]; default 0.5
	Window    time.Duration // default 10s
	// Backoff is how long the first trip holds the real down; each trip
	// doubles it, up to MaxBackoff; it falls back to Backoff once the real
	// has stayed up for MaxBackoff (defaults 10s and 5m).
	Backoff, MaxBackoff time.Duration
}

// PassiveStatus is the passive-check state of a target.
type PassiveStatus struct {
	// SYNs, Completed and Resets are the counts of the current window.
	SYNs, Completed, Resets uint64
	Trips                   uint64    // times the rule tripped
	HeldUntil               time.Time // end of the current back-off; zero: none
	NextBackoff             time.Duration
}

func (r PassiveRule) withDefaults() (PassiveRule, error) {
	if r.MinSYNs == 0 {
		r.MinSYNs = 20
	}
	if r.FailRatio == 0 {
		r.FailRatio = 0.5
	}
	if r.Window == 0 {
		r.Window = 10 * time.Second
	}
	if r.Backoff == 0 {
		r.Backoff = 10 * time.Second
	}
	if r.MaxBackoff == 0 {
		r.MaxBackoff = 5 * time.Minute
	}
	if r.MinSYNs < 0 || r.FailRatio < 0 || r.FailRatio > 1 || r.Window < 0 || r.Backoff < 0 || r.MaxBackoff < r.Backoff {
		return r, fmt.Errorf("%w: passive rule %+v: want min SYNs ≥ 0, fail ratio in (0, 1], back-off ≤ max back-off", ErrBadCheck, r)
	}
	return r, nil
}

type passiveSample struct {
	at                     time.Time
	syns, completed, reset uint64
}

// passiveState is a target's passive-check state (guarded by Manager.mu).
type passiveState struct {
	rule       PassiveRule
	samples    []passiveSample // time order; samples[0] is the window's base
	next       time.Duration   // back-off of the next trip
	until      time.Time       // held down until; zero: not held
	freshAfter time.Time       // after a back-off: a chain result from then on is needed
	trips      uint64
	reason     string
}

// window returns the counts over the current window.
func (p *passiveState) window() (syns, completed, resets uint64) {
	if len(p.samples) < 2 {
		return 0, 0, 0
	}
	a, b := p.samples[0], p.samples[len(p.samples)-1]
	return b.syns - a.syns, b.completed - a.completed, b.reset - a.reset
}

// ReportPassive feeds the passive-check rule of the target key with the
// real's cumulative counters (summed over the dataplane's workers): SYNs
// scheduled to it, handshakes that completed, and connections it reset.
// The daemon calls it periodically (e.g. every second) for every real with
// a rule; counters that go backwards (a restart) start a new history.
//
// The rule looks at the last Window: with s = SYNs and c = completed in it,
// it trips when s ≥ MinSYNs and (s − c)/s ≥ FailRatio. SYNs still in
// their handshake count as not completed, so keep Window well above the
// real's round-trip time. Resets are shown in the status and the reason;
// a reset SYN never completes, so it is already counted.
//
// A trip takes an up target down at once (OnChange, logged, counted) and
// holds it down for the back-off, whatever the active checks say. When the
// back-off ends, the last check of the chain runs at once, and the target
// comes back up as soon as its whole chain is up with a result of that
// check from after the back-off: the active checks bring it back. A target
// with no active checks comes back when the back-off ends. Reports of
// targets without a rule, unknown or down are recorded (for the window)
// but trip nothing. ReportPassive returns whether the rule tripped.
func (m *Manager) ReportPassive(key lb.RealKey, syns, completed, resets uint64) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	t := m.targets[key]
	if t == nil || t.passive == nil {
		return false
	}
	p := t.passive
	now := m.clock.Now()
	if n := len(p.samples); n > 0 {
		last := p.samples[n-1]
		if syns < last.syns || completed < last.completed || resets < last.reset {
			p.samples = p.samples[:0]
		}
	}
	p.samples = append(p.samples, passiveSample{now, syns, completed, resets})
	// Keep one sample at or before the window's start as its base.
	from := now.Add(-p.rule.Window)
	drop := 0
	for drop+1 < len(p.samples) && !p.samples[drop+1].at.After(from) {
		drop++
	}
	if drop > 0 {
		p.samples = append(p.samples[:0], p.samples[drop:]...)
	}
	if !t.up || !p.until.IsZero() {
		return false
	}
	s, c, r := p.window()
	failed := uint64(0)
	if s > c {
		failed = s - c
	}
	if s == 0 || s < uint64(p.rule.MinSYNs) || float64(failed)/float64(s) < p.rule.FailRatio {
		return false
	}
	if p.next == 0 || now.Sub(t.since) >= p.rule.MaxBackoff {
		p.next = p.rule.Backoff
	}
	p.until = now.Add(p.next)
	p.reason = fmt.Sprintf("passive: %d of %d SYNs in the last %v did not complete (%d reset); held down for %v", failed, s, p.rule.Window, r, p.next)
	p.next = min(2*p.next, p.rule.MaxBackoff)
	p.trips++
	p.samples = append(p.samples[:0], p.samples[len(p.samples)-1])
	m.stats.PassiveTrips++
	m.log.Warn("passive health check tripped", "real", key.String(), "reason", p.reason)
	m.scheduleTarget(t)
	m.evaluate(t, now)
	return true
}

// passiveWake ends a passive back-off that is due: the chain's last check
// runs at once, and the target may come back with its next result.
func (m *Manager) passiveWake(t *target, now time.Time) {
	p := t.passive
	if p == nil || p.until.IsZero() || p.until.After(now) {
		return
	}
	p.until = time.Time{}
	p.freshAfter = now
	if n := len(t.probes); n > 0 {
		top := t.probes[n-1]
		if top.ev.idx >= 0 {
			m.push(&top.ev, now)
		}
	}
}
