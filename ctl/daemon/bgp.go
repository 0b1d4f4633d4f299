package daemon

import (
	"fmt"
	"net/netip"
	"reflect"
	"sync"
	"time"

	"gvs/ctl/api"
	"gvs/ctl/bgp"
	"gvs/ctl/config"
	"gvs/lb"
)

// This file ties the BGP speaker (ctl/bgp) to the dataplane. Every
// BGPTick the daemon decides, per announced VIP, whether this node can
// serve it (the workers poll, each announcing service has min_healthy
// healthy reals, the VIP's VRRP instance if any is master) and the speaker
// announces or withdraws the VIP's host route. StopBGP withdraws
// everything and keeps forwarding for withdraw_delay (the routers move
// the flows to the other nodes) before the workers stop.

// BGPTick is how often the announcement policy is evaluated.
const BGPTick = 100 * time.Millisecond

type bgpState struct {
	spk      *bgp.Speaker
	dp       dataplaneWatch
	stopping bool
	stop     chan struct{}
	done     chan struct{}
	once     sync.Once
}

// newBGP creates the speaker of cfg (not started).
func (d *Daemon) newBGP(cfg *config.Config) {
	if cfg.BGP == nil {
		return
	}
	d.bgp = &bgpState{spk: bgp.New(*cfg.BGP, d.log), dp: dataplaneWatch{d: d}}
}

// startBGP starts the speaker and the policy loop.
func (d *Daemon) startBGP() {
	b := d.bgp
	if b == nil {
		return
	}
	if err := b.spk.Start(); err != nil {
		d.log.Error("bgp: speaker not started: no VIP is announced", "error", err)
		return
	}
	b.stop, b.done = make(chan struct{}), make(chan struct{})
	go func() {
		defer close(b.done)
		t := time.NewTicker(BGPTick)
		defer t.Stop()
		for {
			d.bgpEvaluate()
			select {
			case <-b.stop:
				return
			case <-t.C:
			}
		}
	}()
}

// bgpEvaluate applies the announcement policy once.
func (d *Daemon) bgpEvaluate() {
	b := d.bgp
	up, why := b.dp.up()
	d.mu.Lock()
	pols := d.cfg.BGP.VIPs
	backup := map[netip.Addr]string{}
	for vip, inst := range d.vrrpVIPs {
		if !d.vrrpOwned[inst] {
			backup[vip] = inst
		}
	}
	stopping := b.stopping
	d.mu.Unlock()
	in := bgp.Input{
		Stopping: stopping, Polling: up, PollReason: why,
		Healthy: d.healthyReals,
		Backup:  func(a netip.Addr) string { return backup[a] },
	}
	b.spk.Apply(bgp.Decide(pols, in))
}

// healthyReals counts the reals of k that take new flows (up, weight > 0,
// next hop resolved) in the published snapshot.
func (d *Daemon) healthyReals(k lb.ServiceKey) (int, bool) {
	snap := d.bal.Load()
	if snap == nil {
		return 0, false
	}
	for si := range snap.Services {
		if snap.Services[si].Key != k {
			continue
		}
		n := 0
		for i := range snap.Reals {
			r := &snap.Reals[i]
			if int(r.Svc) == si && !r.Removed && r.State != lb.RealDown && r.State != lb.RealDrain && r.Weight > 0 && r.NextHop.OK {
				n++
			}
		}
		return n, true
	}
	return 0, false
}

// checkBGPReload refuses a reload that changes [bgp] itself (the
// announce/min_healthy keys of the services apply at once).
func (d *Daemon) checkBGPReload(cfg *config.Config) error {
	if (cfg.BGP == nil) != (d.cfg.BGP == nil) || !reflect.DeepEqual(cfg.File.BGP, d.cfg.File.BGP) {
		return fmt.Errorf("reload %s: [bgp] changes need a restart of gvsd; nothing applied", cfg.Path)
	}
	return nil
}

// StopBGP withdraws every VIP and, if any was announced, keeps the
// dataplane forwarding for withdraw_delay so that the routers move the
// flows away first; then it closes the sessions. gvsd calls it first when
// it stops; Close calls it too.
func (d *Daemon) StopBGP() {
	b := d.bgp
	if b == nil {
		return
	}
	b.once.Do(func() {
		d.mu.Lock()
		b.stopping = true
		d.mu.Unlock()
		if b.stop != nil {
			close(b.stop)
			<-b.done
		}
		n := b.spk.WithdrawAll("gvsd is stopping")
		if wait := b.spk.Config().Withdraw; n > 0 && wait > 0 && d.engine != nil {
			d.log.Info("bgp: routes withdrawn; still forwarding while the routers converge", "for", wait)
			time.Sleep(wait)
		}
		b.spk.Stop()
	})
}

// BGPDrain turns the drain attributes of the announcements on or off.
func (d *Daemon) BGPDrain(on bool) error {
	if d.bgp == nil {
		return api.Errorf(api.CodeUnsupported, "no [bgp] in the configuration")
	}
	if err := d.bgp.spk.SetDrain(on); err != nil {
		return api.Errorf(api.CodeInternal, "%v", err)
	}
	return nil
}

// BGP answers the bgp operation.
func (d *Daemon) BGP() api.BGPStatus {
	if d.bgp == nil {
		return api.BGPStatus{}
	}
	s := d.bgp.spk.Status()
	out := api.BGPStatus{Enabled: true, LocalAS: s.LocalAS, RouterID: s.RouterID.String(), Drained: s.Drained}
	ts := func(t time.Time) string {
		if t.IsZero() {
			return ""
		}
		return t.UTC().Format(time.RFC3339Nano)
	}
	for _, ss := range s.Sessions {
		out.Sessions = append(out.Sessions, api.BGPSession{Neighbor: ss.Addr.String(), AS: ss.AS, State: ss.State, Since: ts(ss.Since), Ups: ss.Ups})
	}
	for _, p := range s.Prefixes {
		out.Prefixes = append(out.Prefixes, api.BGPPrefix{Prefix: p.Prefix.String(), Announced: p.Announced, Reason: p.Reason, Since: ts(p.Since), Transitions: p.Transitions})
	}
	return out
}
