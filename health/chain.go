package health

import (
	"fmt"
	"time"
)

// The state machine of probes and targets: rise/fall of each check, the
// chain (L2/L3 → L4 → L7), flap damping and the target's verdict. All of
// it runs under Manager.mu.

// FlapDamping holds back the recovery of a flapping target: one with at
// least Threshold state changes within the last Window. Its next down → up
// change waits Hold × 2^(changes − Threshold) (at most MaxHold) with its
// chain passing all along; a failure meanwhile cancels it. Changes to down
// are never delayed. Zero fields take the defaults (60s, 4, 10s, 5m); a
// negative Threshold turns damping off.
type FlapDamping struct {
	Window        time.Duration
	Threshold     int
	Hold, MaxHold time.Duration
}

func (f FlapDamping) withDefaults() FlapDamping {
	if f.Window == 0 {
		f.Window = time.Minute
	}
	if f.Threshold == 0 {
		f.Threshold = 4
	}
	if f.Hold == 0 {
		f.Hold = 10 * time.Second
	}
	if f.MaxHold == 0 {
		f.MaxHold = 5 * time.Minute
	}
	return f
}

// probeState is the rise/fall state of a probe.
type probeState uint8

const (
	stateUnknown probeState = iota // no result since it (re)started
	stateUp
	stateDown
)

// probe is one check of one address, shared by every target whose chain
// agrees with it up to and including it.
type probe struct {
	key      string
	parent   *probe
	children []*probe
	check    Check
	checker  Checker
	name     string
	targets  []*target // targets with this probe anywhere in their chain

	state      probeState
	succ, fail int // consecutive
	since      time.Time
	last       Result
	ev         event
	running    bool
	gen        uint64 // bumped when paused: results of older runs are dropped
	dispatched time.Time
	removed    bool
}

func (p *probe) runnable() bool {
	return !p.removed && (p.parent == nil || p.parent.state == stateUp)
}

// target is the state of one Target.
type target struct {
	cfg    Target
	probes []*probe // the chain, lowest layer first

	checked     bool
	up          bool
	since       time.Time
	reason      string
	layer       int
	last        Result
	transitions uint64
	flips       []time.Time // state changes within the flap window
	holdUntil   time.Time   // flap hold-down of a pending recovery
	passive     *passiveState
	ev          event // wakes the target at holdUntil / passive.until
}

// apply runs the rise/fall state machine of p with one result. The first
// result after the probe (re)starts decides at once; then Fall consecutive
// failures take it down and Rise consecutive successes bring it up. A
// probe going down pauses the probes above it (they forget their state);
// one going up starts them at once.
func (m *Manager) apply(p *probe, ok bool, now time.Time) {
	if ok {
		p.succ, p.fail = p.succ+1, 0
	} else {
		p.succ, p.fail = 0, p.fail+1
	}
	old := p.state
	switch {
	case p.state == stateUnknown && ok, p.state == stateDown && p.succ >= p.check.Rise:
		p.state = stateUp
	case p.state == stateUnknown, p.state == stateUp && p.fail >= p.check.Fall:
		p.state = stateDown
	}
	if p.state == old {
		return
	}
	p.since = now
	m.log.Debug("check changed", "check", p.name, "up", p.state == stateUp, "result", p.last.Reason)
	for _, c := range p.children {
		if p.state == stateUp {
			m.resume(c, now)
		} else {
			m.pause(c, now)
		}
	}
}

func (m *Manager) pause(p *probe, now time.Time) {
	if p.state == stateUnknown && p.ev.idx < 0 && !p.running {
		return // already paused
	}
	p.state, p.succ, p.fail, p.since = stateUnknown, 0, 0, now
	p.gen++
	m.unqueue(&p.ev)
	for _, c := range p.children {
		m.pause(c, now)
	}
}

func (m *Manager) resume(p *probe, now time.Time) {
	if !p.running && p.ev.idx < 0 {
		m.push(&p.ev, now)
	}
}

// verdict of a target's chain.
type verdict uint8

const (
	verdictPending verdict = iota // a check has no result yet
	verdictUp
	verdictDown
)

func (t *target) chain() (verdict, int, Result) {
	for i, p := range t.probes {
		switch p.state {
		case stateUp:
			continue
		case stateDown:
			return verdictDown, i, p.last
		default:
			return verdictPending, i, p.last
		}
	}
	if n := len(t.probes); n > 0 {
		return verdictUp, -1, t.probes[n-1].last
	}
	return verdictUp, -1, Result{OK: true, Reason: "no active checks"}
}

// evaluate recomputes a target's state from its chain, passive rule and
// flap damping, and records, logs and announces a change.
func (m *Manager) evaluate(t *target, now time.Time) {
	v, layer, last := t.chain()
	if v == verdictPending {
		t.last = last
		if !t.checked {
			t.layer = layer
			t.reason = "waiting for the first result of " + t.probes[layer].name
		}
		return
	}
	up := v == verdictUp
	reason := last.Reason
	if !up {
		reason = t.probes[layer].name + ": " + reason
	}
	if up && t.passive != nil {
		p := t.passive
		if !p.until.IsZero() {
			up, layer, reason = false, -1, p.reason
		} else if n := len(t.probes); n > 0 && !p.freshAfter.IsZero() && last.At.Before(p.freshAfter) {
			return // back from a back-off: wait for a fresh result
		}
	}
	if !up {
		if !t.holdUntil.IsZero() {
			t.holdUntil = time.Time{}
			m.scheduleTarget(t)
		}
	} else if !t.up && t.checked {
		if hold := m.flapHold(t, now); hold > 0 {
			if t.holdUntil.IsZero() {
				t.holdUntil = now.Add(hold)
				t.reason = fmt.Sprintf("flapping (%d changes in %v): recovery held down until %s", len(t.flips), m.flap.Window, t.holdUntil.Format(time.RFC3339))
				m.stats.FlapHolds++
				m.log.Warn("real flapping, recovery held down", "real", t.cfg.Key.String(), "changes", len(t.flips), "hold", hold)
				m.scheduleTarget(t)
			}
			if now.Before(t.holdUntil) {
				t.last = last
				return
			}
		}
		t.holdUntil = time.Time{}
	}
	t.last, t.layer = last, layer
	if up == t.up && t.checked {
		t.reason = reason
		return
	}
	first := !t.checked
	t.checked, t.up, t.since, t.reason = true, up, now, reason
	if !first {
		t.transitions++
		t.flips = append(t.flips, now)
		m.stats.Transitions++
	}
	state := "down"
	if up {
		state = "up"
	}
	m.log.Info("real "+state, "real", t.cfg.Key.String(), "reason", reason, "layer", layer, "transitions", t.transitions, "first", first)
	if m.opts.OnChange != nil {
		m.changes = append(m.changes, change{t.cfg.Key, up, reason})
		select {
		case m.nwake <- struct{}{}:
		default:
		}
	}
}

// flapHold is how long the recovery of t is held down (0: not flapping).
func (m *Manager) flapHold(t *target, now time.Time) time.Duration {
	n := m.flips(t, now)
	if m.flap.Threshold < 0 || n < m.flap.Threshold {
		return 0
	}
	h := m.flap.Hold
	for i := m.flap.Threshold; i < n && h < m.flap.MaxHold; i++ {
		h *= 2
	}
	return min(h, m.flap.MaxHold)
}

// flips prunes t's state changes older than the flap window and counts
// the rest.
func (m *Manager) flips(t *target, now time.Time) int {
	from := now.Add(-m.flap.Window)
	i := 0
	for i < len(t.flips) && t.flips[i].Before(from) {
		i++
	}
	if i > 0 {
		t.flips = append(t.flips[:0], t.flips[i:]...)
	}
	return len(t.flips)
}

// scheduleTarget (re)queues t's wake-up at the earliest of its flap
// hold-down and passive back-off ends.
func (m *Manager) scheduleTarget(t *target) {
	var at time.Time
	if !t.holdUntil.IsZero() {
		at = t.holdUntil
	}
	if t.passive != nil && !t.passive.until.IsZero() && (at.IsZero() || t.passive.until.Before(at)) {
		at = t.passive.until
	}
	if at.IsZero() {
		m.unqueue(&t.ev)
		return
	}
	m.push(&t.ev, at)
}

func (m *Manager) wakeTarget(t *target, now time.Time) {
	if m.targets[t.cfg.Key] != t {
		return
	}
	m.passiveWake(t, now)
	m.evaluate(t, now)
	m.scheduleTarget(t)
}
