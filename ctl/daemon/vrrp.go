package daemon

import (
	"fmt"
	"net/netip"
	"time"

	"gvs/ctl/api"
	"gvs/ctl/config"
	"gvs/ctl/vrrp"
	"gvs/driver"
	"gvs/lb"
)

// This file ties VRRP (ctl/vrrp) to the dataplane. A service whose VIP
// belongs to a [[vrrp]] instance is steered to gvs only while that
// instance is master: the Manager's owner callback republishes the
// steering rules before it adds the addresses and after it removes them.
// A backup leaves the VIP's packets to the kernel, which does not have the
// address and drops them. With AF_XDP that is the whole story: the kernel
// answers ARP for the VIP on the master while the XDP program hands TCP
// and UDP to the service ports to gvs. A port without steering (AF_PACKET)
// shows every packet to the kernel as well, so the Manager's guard drops
// all but ICMP to a master's VIPs in an nftables raw prerouting chain
// (vrrp.Options.Guard).
//
// Tracking: track_services asks the published snapshot (lock-free) whether
// a service has a real that is up, weighted and resolved; track_dataplane
// watches the workers' loop counters.

// DataplaneStall is how long the workers' loop counters may stand still
// before track_dataplane reports the dataplane as failed.
const DataplaneStall = time.Second

// newVRRP creates the VRRP manager of cfg (not started).
func (d *Daemon) newVRRP(cfg *config.Config) error {
	guard := false
	if d.watch != nil { // real interfaces (tests with mem ports have none)
		for _, p := range d.ports {
			if _, ok := p.(driver.Steering); !ok {
				guard = true
			}
		}
	}
	dp := &dataplaneWatch{d: d}
	m, err := vrrp.New(cfg.VRRP, vrrp.Options{
		Log: d.log, Owner: d.vrrpOwner, ServiceUp: d.serviceUp, DataplaneUp: dp.up, Guard: guard,
	})
	if err != nil {
		return fmt.Errorf("vrrp: %w", err)
	}
	d.vrrpMgr = m
	d.setVRRPVIPs(cfg)
	d.SetVRRP(d.vrrpStatus)
	return nil
}

// setVRRPVIPs records which VIPs belong to which instance. Called with d.mu
// held (or before Start).
func (d *Daemon) setVRRPVIPs(cfg *config.Config) {
	d.vrrpVIPs = map[netip.Addr]string{}
	for _, c := range cfg.VRRP {
		for _, a := range c.Addrs() {
			d.vrrpVIPs[a] = c.Name
		}
	}
	if d.vrrpOwned == nil {
		d.vrrpOwned = map[string]bool{}
	}
	for name := range d.vrrpOwned {
		found := false
		for _, c := range cfg.VRRP {
			found = found || c.Name == name
		}
		if !found {
			delete(d.vrrpOwned, name)
		}
	}
}

// vrrpOwner is the Manager's owner callback (on its goroutine).
func (d *Daemon) vrrpOwner(name string, vips []netip.Prefix, master bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if !master && d.vrrpStopping {
		// gvsd is stopping: the addresses are gone and the backup takes
		// over after its skew time, but until its gratuitous ARPs land,
		// clients and reals still send here; keep forwarding what comes
		// (StopVRRP waits for the hand-over before the workers stop).
		d.log.Info("vrrp: stopping: addresses released, still forwarding for the hand-over", "instance", name, "vips", vips)
		return
	}
	d.vrrpOwned[name] = master
	d.syncRole(name, master)
	if err := d.steer(d.cfg); err != nil {
		d.log.Error("vrrp: steering not updated", "instance", name, "master", master, "error", err)
		return
	}
	d.log.Info("vrrp: dataplane ownership", "instance", name, "owned", master, "vips", vips)
}

// steeredServices returns the services the dataplane must take: all but
// those whose VIP belongs to a VRRP instance that is not master. Called
// with d.mu held.
func (d *Daemon) steeredServices(svcs []lb.Service) []lb.Service {
	if len(d.vrrpVIPs) == 0 {
		return svcs
	}
	out := make([]lb.Service, 0, len(svcs))
	for _, s := range svcs {
		if inst, ok := d.vrrpVIPs[s.VIP]; ok && !d.vrrpOwned[inst] {
			continue
		}
		out = append(out, s)
	}
	return out
}

// steer publishes the steering rules of cfg to every steering port.
// Called with d.mu held (or before Start).
func (d *Daemon) steer(cfg *config.Config) error {
	rules := SteerRules(d.steeredServices(cfg.LB.Services))
	if d.watch != nil {
		for _, a := range d.watch.LocalAddrs() {
			rules = append(rules, driver.SteerRule{Kind: driver.SteerLocal, Addr: a})
		}
	}
	for i, p := range d.ports {
		if s, ok := p.(driver.Steering); ok {
			if err := s.SetSteering(rules); err != nil {
				return fmt.Errorf("steering on %s: %w", cfg.Ports[i].Name, err)
			}
		}
	}
	return nil
}

// serviceUp is track_services: the service has a real that takes new
// flows (up, weight > 0, next hop resolved) in the published snapshot.
func (d *Daemon) serviceUp(k lb.ServiceKey) (bool, string) {
	snap := d.bal.Load()
	if snap == nil {
		return false, "no configuration published"
	}
	for si := range snap.Services {
		if snap.Services[si].Key != k {
			continue
		}
		down, drain, unresolved := 0, 0, 0
		for i := range snap.Reals {
			r := &snap.Reals[i]
			if int(r.Svc) != si || r.Removed {
				continue
			}
			switch {
			case r.State == lb.RealDown:
				down++
			case r.State == lb.RealDrain || r.Weight == 0:
				drain++
			case !r.NextHop.OK:
				unresolved++
			default:
				return true, ""
			}
		}
		return false, fmt.Sprintf("no healthy real (%d down, %d draining or weight 0, %d unresolved)", down, drain, unresolved)
	}
	return false, "not configured"
}

// dataplaneWatch is track_dataplane: the workers' loop counters must keep
// increasing (an idle worker still loops). Used by the Manager's
// goroutine only.
type dataplaneWatch struct {
	d     *Daemon
	loops []uint64
	moved []time.Time
}

func (w *dataplaneWatch) up() (bool, string) {
	e := w.d.engine
	if e == nil {
		return true, ""
	}
	now := time.Now()
	ws := e.Workers()
	if len(w.loops) != len(ws) {
		w.loops, w.moved = make([]uint64, len(ws)), make([]time.Time, len(ws))
		for i := range w.moved {
			w.moved[i] = now
		}
	}
	for i, wk := range ws {
		n := wk.Stats().Loops
		if n != w.loops[i] {
			w.loops[i], w.moved[i] = n, now
			continue
		}
		if since := now.Sub(w.moved[i]); since > DataplaneStall {
			return false, fmt.Sprintf("worker %d has not polled for %v", i, since.Round(time.Millisecond))
		}
	}
	return true, ""
}

// vrrpStatus answers the vrrp operation.
func (d *Daemon) vrrpStatus() []api.VRRPStatus {
	if d.vrrpMgr == nil {
		return nil
	}
	var out []api.VRRPStatus
	for _, s := range d.vrrpMgr.Status() {
		v := api.VRRPStatus{
			Name: s.Name, State: s.State.String(), Priority: int(s.Priority),
			Interface: s.Interface, VRID: int(s.VRID), Version: s.Version, BasePriority: int(s.BasePriority),
			MasterPriority:    int(s.MasterPriority),
			AdvertIntMS:       float64(s.AdvertInt) / float64(time.Millisecond),
			MasterAdvertIntMS: float64(s.MasterAdvertInt) / float64(time.Millisecond),
			MasterDownMS:      float64(s.MasterDownInterval) / float64(time.Millisecond),
			SyncGroup:         s.SyncGroup, Reason: s.Reason, Faults: s.Faults, Transitions: s.Transitions,
			Counters: s.Counters, Discards: s.Discards,
		}
		if s.Master.IsValid() {
			v.Master = s.Master.String()
		}
		if !s.Since.IsZero() {
			v.Since = s.Since.UTC().Format(time.RFC3339Nano)
		}
		for _, p := range s.VIPs {
			v.VIPs = append(v.VIPs, p.String())
		}
		out = append(out, v)
	}
	return out
}

// StopVRRP shuts the VRRP instances down: a master sends priority 0 (its
// backup takes over after its skew time) and removes its addresses. gvsd
// calls it first when it stops; Close calls it too. If an instance was
// master, StopVRRP then waits for the hand-over (HandOver) with the
// dataplane still forwarding what reaches it, so that the packets sent
// here before the new master's announcements arrive are not lost.
func (d *Daemon) StopVRRP() {
	if d.vrrpMgr == nil {
		return
	}
	d.mu.Lock()
	d.vrrpStopping = true
	d.mu.Unlock()
	var wait time.Duration
	for _, s := range d.vrrpMgr.Status() {
		if s.State == vrrp.Master {
			wait = max(wait, HandOver(s.Version, s.AdvertInt))
		}
	}
	d.vrrpMgr.Stop()
	if wait > 0 && d.engine != nil {
		d.log.Info("vrrp: waiting for the backup to take over", "for", wait)
		time.Sleep(wait)
	}
}

// HandOver is how long a stopping master keeps forwarding after its
// priority-0 advertisement: the longest Skew_Time a backup can have (just
// under Master_Adver_Interval for VRRPv3, 1 s for VRRPv2, RFC 5798 §6.1)
// plus 100 ms for its announcements to be sent and heard.
func HandOver(version int, advertInt time.Duration) time.Duration {
	if version == 2 {
		return time.Second + 100*time.Millisecond
	}
	return advertInt + 100*time.Millisecond
}

// updateVRRP hands a reloaded configuration's instances to the Manager.
// Called without d.mu (the Manager's owner callback takes it).
func (d *Daemon) updateVRRP(cfg *config.Config) {
	if d.vrrpMgr == nil {
		return
	}
	if err := d.vrrpMgr.Update(cfg.VRRP); err != nil {
		d.log.Error("vrrp: configuration not applied", "error", err)
	}
}
