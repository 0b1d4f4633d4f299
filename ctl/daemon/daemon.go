// Package daemon is gvsd's core: it loads the configuration, opens the
// driver ports, resolves next hops, builds the Balancer's snapshots, tells
// steering drivers which packets are gvs's, runs the poll-mode workers, and
// applies reloads without restarting them. It also implements the
// control socket's operations on the running configuration (ops.go,
// Handle) and the listing of the workers' sessions (sessions.go). cmd/gvsd
// only wires flags, signals and the socket server to it.
//
// Imports: ctl/api, ctl/config, ctl/rules, ctl/nexthop, ctl/vrrp,
// ctl/sessync, health, pmd, pipeline, lb, driver.
package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/netip"
	"reflect"
	"sync"
	"time"

	"gvs/ctl/api"
	"gvs/ctl/config"
	"gvs/ctl/nexthop"
	"gvs/ctl/sessync"
	"gvs/ctl/vrrp"
	"gvs/driver"
	"gvs/health"
	"gvs/lb"
	"gvs/pmd"
)

// Opener opens the driver port of a [[port]] entry with the given number
// of queues. cmd/gvsd passes one that knows the Linux drivers; tests pass one
// that makes mem ports.
type Opener func(p config.Port, queues int, log *slog.Logger) (driver.Port, error)

// HopResolver resolves real addresses to next hops (nexthop.Resolver in
// production; a static table in tests).
type HopResolver interface {
	Resolve(addrs []netip.Addr) (map[netip.Addr]lb.NextHop, []nexthop.Problem)
}

// HopWatcher is a HopResolver that says when its answers may have changed
// (gvs's own neighbour resolution on DPDK ports): changed is called, from
// any goroutine, until ctx ends.
type HopWatcher interface {
	Watch(ctx context.Context, changed func())
}

// Options configure a Daemon.
type Options struct {
	Config *config.Config
	Open   Opener
	Log    *slog.Logger
	// Hops overrides the netlink resolver (tests).
	Hops HopResolver
}

// Daemon is a running gvs instance.
type Daemon struct {
	log    *slog.Logger
	bal    *lb.Balancer
	ports  []driver.Port
	engine *pmd.Engine
	hops   HopResolver
	watch  *nexthop.Resolver

	mu         sync.Mutex // serialises configuration changes
	cfg        *config.Config
	unresolved int
	cancel     context.CancelFunc
	done       chan struct{}

	smu sync.Mutex // guards st
	st  statsState

	lastHops map[netip.Addr]lb.NextHop // of the last apply (under mu)
	failing  map[netip.Addr]bool       // reals whose next hop was unresolved then

	hm         *health.Manager
	healthDown map[lb.RealKey]string // reals the checks hold down, with the reason (under mu)

	pmu    sync.Mutex // guards the status providers (ops.go)
	health func() []api.HealthStatus
	vrrp   func() []api.VRRPStatus

	// VRRP (vrrp.go): the Manager, and under mu which instance each VIP
	// belongs to and which instances own theirs (master).
	vrrpMgr      *vrrp.Manager
	vrrpVIPs     map[netip.Addr]string
	vrrpOwned    map[string]bool
	vrrpStopping bool
	// Session sync (sessync.go): the Syncer and the VRRP instance whose
	// mastership makes this node the sender.
	syncer   *sessync.Syncer
	syncVRRP string
	// BGP (bgp.go): the speaker and its policy loop; nil without [bgp].
	bgp *bgpState
}

// New opens everything the configuration names. On error, whatever was
// opened is closed again.
func New(opts Options) (d *Daemon, err error) {
	cfg := opts.Config
	log := opts.Log
	if log == nil {
		log = slog.Default()
	}
	d = &Daemon{log: log, cfg: cfg, bal: lb.NewBalancer(cfg.Global.Workers, cfg.Global.MaxReals)}
	d.st = statsState{base: map[lb.RealKey]rawReal{}, ids: map[lb.RealKey]uint32{}, prevAt: time.Now()}
	d.healthDown = map[lb.RealKey]string{}
	d.hm = health.New(health.Options{Logger: log, OnChange: d.onHealth})
	if err := d.hm.Set(cfg.Health); err != nil {
		return nil, fmt.Errorf("health checks: %w", err)
	}
	d.SetHealth(d.healthStatus)
	defer func() {
		if err != nil {
			d.closePorts()
		}
	}()
	var names []string
	for _, pc := range cfg.Ports {
		p, err := opts.Open(pc, cfg.Global.Workers, log)
		if err != nil {
			return nil, err
		}
		d.ports = append(d.ports, p)
		names = append(names, pc.Name)
	}
	d.hops = opts.Hops
	if d.hops == nil {
		r, err := nexthop.New(names)
		if err != nil {
			return nil, err
		}
		d.hops, d.watch = r, r
	}
	// Before the first steering: a VIP of a VRRP instance is not steered
	// until the instance is master.
	if err := d.newVRRP(cfg); err != nil {
		return nil, err
	}
	if err := d.apply(cfg); err != nil {
		return nil, err
	}
	g := cfg.Global
	d.engine, err = pmd.New(pmd.Config{
		Workers: g.Workers, CPUs: g.CPUs, Ports: d.ports, Balancer: d.bal, Sessions: g.Sessions,
		Idle:     pmd.Idle{Spin: g.Idle.Spin, Yield: g.Idle.Yield, Sleep: g.Idle.Sleep.Duration},
		SlowPath: slowPath(d.ports),
		SyncRing: syncRing(cfg),
	})
	if err != nil {
		return nil, err
	}
	if err := d.newSessionSync(cfg); err != nil {
		return nil, err
	}
	d.newBGP(cfg)
	return d, nil
}

// Start starts the workers and the background upkeep (next-hop refresh,
// purge of drained reals).
func (d *Daemon) Start() {
	d.sampleStats()
	d.engine.Start()
	if err := d.hm.Start(); err != nil {
		d.log.Error("health checks not started", "error", err)
	}
	for _, w := range d.engine.Workers() {
		if e := w.Stats().PinError; e != "" {
			d.log.Warn("worker not pinned", "worker", w.ID(), "error", e)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	d.cancel = cancel
	d.done = make(chan struct{})
	if d.watch != nil {
		if err := d.watch.Watch(ctx, 50*time.Millisecond, d.refreshHops); err != nil {
			d.log.Warn("following neighbour changes disabled", "error", err)
		}
	}
	if hw, ok := d.hops.(HopWatcher); ok {
		hw.Watch(ctx, d.refreshHops)
	}
	go d.upkeep(ctx)
	if d.syncer != nil {
		if err := d.syncer.Start(); err != nil {
			d.log.Error("session sync not started", "error", err)
		}
	}
	d.vrrpMgr.Start()
	d.startBGP()
	d.log.Info("gvs started", "workers", d.cfg.Global.Workers, "ports", len(d.ports), "services", len(d.cfg.LB.Services))
}

// slowPath hands the frames the pipeline leaves to the ports that take
// them (driver.SlowPather: no kernel behind them); nil if no port does, so
// the workers free them (the kernel beside the other drivers sees those
// packets itself).
func slowPath(ports []driver.Port) pmd.SlowPath {
	sps := make([]driver.SlowPather, len(ports))
	found := false
	for i, p := range ports {
		sps[i], _ = p.(driver.SlowPather)
		found = found || sps[i] != nil
	}
	if !found {
		return nil
	}
	return func(worker, port int, q driver.Queue, frames []driver.Frame) {
		if sp := sps[port]; sp != nil {
			sp.SlowPath(worker, q, frames)
			return
		}
		q.Free(frames)
	}
}

// upkeep retries unresolved next hops and purges drained reals.
func (d *Daemon) upkeep(ctx context.Context) {
	defer close(d.done)
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	// Unresolved next hops are retried four times a second: a real comes
	// into service (or back after a link flap) as soon as the kernel has
	// resolved it, not up to a second later.
	retry := time.NewTicker(250 * time.Millisecond)
	defer retry.Stop()
	stats := time.NewTicker(StatsInterval)
	defer stats.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-stats.C:
			d.sampleStats()
			d.reportPassive()
		case <-retry.C:
			d.mu.Lock()
			again := d.unresolved > 0
			d.mu.Unlock()
			if again {
				d.refreshHops()
			}
		case <-tick.C:
			if n, err := d.bal.Purge(); err != nil {
				d.log.Error("purge drained reals", "error", err)
			} else if n > 0 {
				d.log.Info("drained reals removed", "count", n)
			}
		}
	}
}

// refreshHops re-resolves next hops and publishes a snapshot if they changed.
func (d *Daemon) refreshHops() {
	d.mu.Lock()
	defer d.mu.Unlock()
	hops, probs := d.resolve(d.cfg)
	if maps.Equal(hops, d.lastHops) {
		return
	}
	if err := d.applyHops(d.cfg, hops, probs); err != nil {
		d.log.Error("refresh next hops", "error", err)
	}
}

// Reload applies a new configuration without restarting the workers.
// Global and port settings cannot change at run time; a config that changes
// them is refused and the running one stays.
func (d *Daemon) Reload(cfg *config.Config) error {
	if err := d.reload(cfg); err != nil {
		return err
	}
	// Outside d.mu: the VRRP Manager's owner callback takes it.
	d.updateVRRP(cfg)
	return nil
}

func (d *Daemon) reload(cfg *config.Config) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if !reflect.DeepEqual(cfg.File.Global, d.cfg.File.Global) || !reflect.DeepEqual(cfg.File.Ports, d.cfg.File.Ports) {
		return fmt.Errorf("reload %s: [global] and [[port]] changes need a restart of gvsd; nothing applied", cfg.Path)
	}
	if !reflect.DeepEqual(cfg.File.SessionSync, d.cfg.File.SessionSync) {
		return fmt.Errorf("reload %s: [session_sync] changes need a restart of gvsd; nothing applied", cfg.Path)
	}
	if err := d.checkBGPReload(cfg); err != nil {
		return err
	}
	oldVIPs := d.vrrpVIPs
	d.setVRRPVIPs(cfg)
	if err := d.apply(cfg); err != nil {
		d.vrrpVIPs = oldVIPs
		return fmt.Errorf("reload %s: %w", cfg.Path, err)
	}
	d.setChecks(cfg)
	d.cfg = cfg
	d.log.Info("configuration reloaded", "file", cfg.Path, "services", len(cfg.LB.Services))
	return nil
}

// apply resolves next hops for cfg, publishes its snapshot and updates the
// steering of the ports. Called with d.mu held (or before Start).
func (d *Daemon) apply(cfg *config.Config) error {
	hops, probs := d.resolve(cfg)
	return d.applyHops(cfg, hops, probs)
}

// resolve looks up the next hops of every real of cfg.
func (d *Daemon) resolve(cfg *config.Config) (map[netip.Addr]lb.NextHop, []nexthop.Problem) {
	var addrs []netip.Addr
	for _, s := range cfg.LB.Services {
		for _, r := range s.Reals {
			addrs = append(addrs, r.Addr)
		}
	}
	return d.hops.Resolve(addrs)
}

// applyHops is apply with the next hops already resolved. Called with d.mu
// held (or before Start).
func (d *Daemon) applyHops(cfg *config.Config, hops map[netip.Addr]lb.NextHop, probs []nexthop.Problem) error {
	failing := map[netip.Addr]bool{}
	for _, p := range probs {
		failing[p.Addr] = true
		if !d.failing[p.Addr] { // say it once, not at every retry
			d.log.Warn("real not reachable yet: no new flows until it is", "real", p.Addr, "reason", p.Reason)
		}
	}
	d.failing = failing
	d.lastHops = hops
	lc := cfg.LB
	lc.NextHops = hops
	lc.Services = d.withHealth(cfg.LB.Services)
	if err := d.bal.Apply(lc); err != nil {
		return err
	}
	d.sampleStats() // baselines for new reals (and reused ids) start now
	if d.unresolved > 0 && len(probs) == 0 {
		d.log.Info("all next hops resolved")
	}
	d.unresolved = len(probs)
	return d.steer(cfg)
}

// SteerRules lists what a steering driver must hand to gvs for services:
// their VIPs, the replies of nat reals and the replies to fullnat local
// addresses.
func SteerRules(svcs []lb.Service) []driver.SteerRule {
	var rules []driver.SteerRule
	seen := map[driver.SteerRule]bool{}
	add := func(r driver.SteerRule) {
		if !seen[r] {
			seen[r] = true
			rules = append(rules, r)
		}
	}
	for _, s := range svcs {
		add(driver.SteerRule{Kind: driver.SteerService, Proto: uint8(s.Proto), Addr: s.VIP, Port: s.Port})
		for _, r := range s.Reals {
			m := r.Method
			if m == lb.MethodDefault {
				m = s.Method
			}
			switch m {
			case lb.MethodNAT:
				port := r.Port
				if port == 0 {
					port = s.Port
				}
				add(driver.SteerRule{Kind: driver.SteerReplyFrom, Proto: uint8(s.Proto), Addr: r.Addr, Port: port})
			case lb.MethodFullNAT:
				for _, la := range s.LocalAddrs {
					add(driver.SteerRule{Kind: driver.SteerReplyTo, Addr: la})
				}
			}
		}
	}
	return rules
}

// Close withdraws the BGP routes, stops VRRP (a master hands over), the
// workers and closes the ports (detaching XDP programs).
func (d *Daemon) Close() error {
	d.StopBGP()
	d.StopVRRP()
	if d.syncer != nil {
		d.syncer.Stop()
	}
	if d.hm != nil {
		d.hm.Stop()
	}
	if d.cancel != nil {
		d.cancel()
		<-d.done
	}
	if d.engine != nil {
		d.engine.Stop()
	}
	return d.closePorts()
}

func (d *Daemon) closePorts() error {
	var errs []error
	for _, p := range d.ports {
		if err := p.Close(); err != nil {
			errs = append(errs, fmt.Errorf("close %s: %w", p.Name(), err))
		}
	}
	d.ports = nil
	return errors.Join(errs...)
}

// Balancer returns the daemon's Balancer.
func (d *Daemon) Balancer() *lb.Balancer { return d.bal }

// Engine returns the worker engine.
func (d *Daemon) Engine() *pmd.Engine { return d.engine }
