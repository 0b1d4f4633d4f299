package daemon

import (
	"net/netip"
	"time"

	"gvs/ctl/api"
	"gvs/ctl/config"
	"gvs/lb"
	"gvs/pipeline"
)

// This file ties the health checks to the balancer: a real the checks
// find down is published as RealDown (no new flows; its sessions drain or
// are dropped per the service's on_remove), and published as its
// configured state again when the checks pass (slow start, if set, ramps
// it). The passive checks read the workers' per-real handshake counters.

// onHealth is the health manager's change callback.
func (d *Daemon) onHealth(key lb.RealKey, up bool, reason string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	_, wasDown := d.healthDown[key]
	if up {
		delete(d.healthDown, key)
	} else {
		d.healthDown[key] = reason
	}
	if up == !wasDown {
		return
	}
	if err := d.apply(d.cfg); err != nil {
		d.log.Error("apply health change", "real", key.String(), "error", err)
	}
}

// withHealth returns services with the reals the checks hold down marked
// down (a copy: the running configuration is not changed). Called with
// d.mu held.
func (d *Daemon) withHealth(in []lb.Service) []lb.Service {
	out := make([]lb.Service, len(in))
	for i, s := range in {
		s.Reals = append([]lb.Real(nil), s.Reals...)
		for j := range s.Reals {
			r := &s.Reals[j]
			if _, down := d.healthDown[lb.RealKey{Service: s.Key(), Addr: r.Addr, Port: r.Port}]; down && r.State == lb.RealUp {
				r.State = lb.RealDown
			}
		}
		out[i] = s
	}
	return out
}

// setChecks gives the health manager the checks of a new configuration
// (unchanged targets keep their state and schedule) and forgets the
// verdicts of reals that no longer have checks. Called with d.mu held.
func (d *Daemon) setChecks(cfg *config.Config) {
	if err := d.hm.Set(cfg.Health); err != nil {
		d.log.Error("health checks not updated", "error", err)
		return
	}
	checked := map[lb.RealKey]bool{}
	for _, t := range cfg.Health {
		checked[t.Key] = true
	}
	changed := false
	for k := range d.healthDown {
		if !checked[k] {
			delete(d.healthDown, k)
			changed = true
		}
	}
	if changed {
		if err := d.apply(cfg); err != nil {
			d.log.Error("apply health change", "error", err)
		}
	}
}

// reportPassive hands the workers' cumulative handshake counts of every
// checked real to the passive rule engine. It holds no daemon lock (the
// engine may call onHealth).
func (d *Daemon) reportPassive() {
	if d.engine == nil {
		return
	}
	snap := d.bal.Load()
	for i := range snap.Reals {
		r := &snap.Reals[i]
		if r.Key.Service.Proto == lb.ProtoUDP {
			continue
		}
		raw := d.rawOf(r.ID)
		d.hm.ReportPassive(r.Key, raw[pipeline.RealConns], raw[pipeline.RealEstablished], 0)
	}
}

// healthStatus answers the health operation.
func (d *Daemon) healthStatus() []api.HealthStatus {
	var out []api.HealthStatus
	for _, s := range d.hm.Status() {
		h := api.HealthStatus{
			Service: ServiceID(s.Key.Service), Real: netip.AddrPortFrom(s.Key.Addr, s.Key.Port).String(),
			Up: s.Up, Reason: s.Reason, LatencyMS: float64(s.Last.Latency) / float64(time.Millisecond),
			LastResult: "not checked yet",
		}
		if !s.Since.IsZero() {
			h.Since = s.Since.UTC().Format(time.RFC3339)
		}
		if s.Checked {
			h.LastResult = "fail"
			if s.Last.OK {
				h.LastResult = "ok"
			}
		}
		out = append(out, h)
	}
	return out
}
