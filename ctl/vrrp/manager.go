package vrrp

import (
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"gvs/lb"
)

// Options configure a Manager. The zero value is usable.
type Options struct {
	// Log gets every transition with its cause (default slog.Default()).
	Log *slog.Logger
	// Owner is told when an instance starts owning its addresses (called
	// before they are added) and when it stops (called after they are
	// removed). The daemon steers the instance's services to gvs only
	// while it owns them. It runs on the Manager's goroutine and must not
	// call Update or Stop; it may block briefly.
	Owner func(name string, vips []netip.Prefix, master bool)
	// ServiceUp reports whether a tracked service has a healthy real (and
	// why not). Nil: services are not tracked.
	ServiceUp func(lb.ServiceKey) (bool, string)
	// DataplaneUp reports whether the poll-mode workers are polling (and
	// why not). Nil: the dataplane is not tracked.
	DataplaneUp func() (bool, string)
	// Guard says the kernel sees the packets gvs forwards (AF_PACKET
	// ports): while master, the host drops everything but ICMP to the
	// virtual addresses (see nft.go).
	Guard bool
	// TrackInterval is how often interfaces and trackers are checked
	// (default 100 ms).
	TrackInterval time.Duration
	// AddrLifetime is the lifetime of the addresses a master adds
	// (default DefaultAddrLifetime; renewed every RenewInterval).
	AddrLifetime time.Duration
	// Netns, if set, is the path of the network namespace the Manager
	// works in (its goroutine locks its OS thread and enters it; tests run
	// several Managers in one process this way). Empty: the process's.
	Netns string
}

// Manager runs the VRRP instances of gvsd: it owns their sockets, their
// addresses and the goroutine that drives their Router. All of the
// Router's work happens on that goroutine; Status reads a snapshot.
type Manager struct {
	opts Options
	log  *slog.Logger

	// Owned by the loop goroutine.
	r      *Router
	cfgs   []Config
	ifs    map[string]ifState
	rx     map[rxKey]*rxSock
	rxErr  map[rxKey]error
	tx     map[string]*txSock
	owned  map[string]bool
	nftOn  bool
	vipSet map[netip.Addr]bool

	pkts    chan *Packet
	reqs    chan func(now time.Time)
	stop    chan struct{}
	done    chan struct{}
	readers sync.WaitGroup
	status  atomic.Pointer[[]Status]

	startOnce, stopOnce sync.Once
}

type rxKey struct {
	ifname string
	is6    bool
}

// CheckConfigs validates a set of instances: each one, and what must be
// unique across them (names; VRIDs per interface and family; virtual-MAC
// VRIDs per family, which name the macvlan; virtual addresses).
func CheckConfigs(cfgs []Config) error {
	names := map[string]bool{}
	vrids := map[rxKey]map[uint8]string{}
	vmacs := map[[2]int]string{}
	vips := map[netip.Addr]string{}
	for i := range cfgs {
		c := &cfgs[i]
		if err := c.Validate(); err != nil {
			return err
		}
		if names[c.Name] {
			return fmt.Errorf("vrrp %s: name used twice", c.Name)
		}
		names[c.Name] = true
		k := rxKey{c.Interface, c.Is6()}
		if vrids[k] == nil {
			vrids[k] = map[uint8]string{}
		}
		if o, dup := vrids[k][c.VRID]; dup {
			return fmt.Errorf("vrrp %s: vrid %d already used by %s on %s", c.Name, c.VRID, o, c.Interface)
		}
		vrids[k][c.VRID] = c.Name
		if c.VirtualMAC {
			fam := 4
			if c.Is6() {
				fam = 6
			}
			vk := [2]int{fam, int(c.VRID)}
			if o, dup := vmacs[vk]; dup {
				return fmt.Errorf("vrrp %s: virtual MAC of vrid %d already used by %s", c.Name, c.VRID, o)
			}
			vmacs[vk] = c.Name
		}
		for _, p := range c.VIPs {
			if o, dup := vips[p.Addr()]; dup {
				return fmt.Errorf("vrrp %s: vip %v already belongs to %s", c.Name, p.Addr(), o)
			}
			vips[p.Addr()] = c.Name
		}
	}
	return nil
}

// New validates the instances. Start runs them, after removing what a
// previous gvsd may have left behind: their addresses on their
// interfaces, their macvlans and gvs's nftables table (a gvsd that died
// while master must not leave a host answering for addresses it no longer
// serves).
func New(cfgs []Config, opts Options) (*Manager, error) {
	if err := CheckConfigs(cfgs); err != nil {
		return nil, err
	}
	if opts.Log == nil {
		opts.Log = slog.Default()
	}
	if opts.TrackInterval <= 0 {
		opts.TrackInterval = 100 * time.Millisecond
	}
	if opts.AddrLifetime <= 0 {
		opts.AddrLifetime = DefaultAddrLifetime
	}
	m := &Manager{
		opts: opts, log: opts.Log, r: NewRouter(opts.Log), cfgs: slices.Clone(cfgs),
		ifs: map[string]ifState{}, rx: map[rxKey]*rxSock{}, rxErr: map[rxKey]error{}, tx: map[string]*txSock{}, owned: map[string]bool{},
		pkts: make(chan *Packet, 256), reqs: make(chan func(time.Time)), stop: make(chan struct{}), done: make(chan struct{}),
	}
	for _, c := range cfgs {
		m.r.Add(NewInstance(c, netip.Addr{}, m, opts.Log))
	}
	m.setVIPSet()
	m.publish()
	return m, nil
}

// cleanup removes leftovers of the instances (see New).
func (m *Manager) cleanup(cfgs []Config) {
	if len(cfgs) == 0 {
		return
	}
	for i := range cfgs {
		c := &cfgs[i]
		if n, err := delVIPs(c.Interface, c.Addrs()); err != nil {
			m.log.Warn("vrrp: clean-up of leftover addresses", "instance", c.Name, "error", err)
		} else if n > 0 {
			m.log.Warn("vrrp: removed leftover virtual addresses (a previous gvsd did not clean up)", "instance", c.Name, "interface", c.Interface, "count", n)
		}
		if c.VirtualMAC {
			if err := delVMAC(c); err != nil {
				m.log.Warn("vrrp: clean-up of leftover macvlan", "instance", c.Name, "error", err)
			}
		}
	}
	if err := delGuard(); err != nil {
		m.log.Warn("vrrp: clean-up of the nftables table", "error", err)
	}
}

func (m *Manager) setVIPSet() {
	m.vipSet = map[netip.Addr]bool{}
	for _, c := range m.cfgs {
		for _, a := range c.Addrs() {
			m.vipSet[a] = true
		}
	}
}

// Start starts the instances.
func (m *Manager) Start() {
	m.startOnce.Do(func() { go m.loop() })
}

// Stop shuts every instance down — a master sends priority 0 and removes
// its addresses, so its backup takes over after its skew time — closes the
// sockets and removes the nftables table. It waits for all of it.
func (m *Manager) Stop() {
	m.stopOnce.Do(func() {
		started := true
		m.startOnce.Do(func() { started = false }) // never started: nothing runs
		close(m.stop)
		if started {
			<-m.done
		}
	})
}

// Update replaces the instances: removed ones shut down, new ones start,
// changed ones are updated in place (priority, intervals, preemption,
// addresses, announcements, tracking, sync group) or, when what identifies
// them on the wire changed (interface, VRID, version, family, unicast
// peers, password, virtual MAC), shut down and started again. On error
// nothing changes.
func (m *Manager) Update(cfgs []Config) error {
	if err := CheckConfigs(cfgs); err != nil {
		return err
	}
	cfgs = slices.Clone(cfgs)
	done := make(chan struct{})
	select {
	case m.reqs <- func(now time.Time) { m.apply(now, cfgs); close(done) }:
		<-done
		return nil
	case <-m.done:
		return errors.New("vrrp: stopped")
	}
}

// Status returns the state of every instance.
func (m *Manager) Status() []Status {
	p := m.status.Load()
	if p == nil {
		return nil
	}
	return slices.Clone(*p)
}

func (m *Manager) publish() {
	st := m.r.Status()
	m.status.Store(&st)
}

func (m *Manager) loop() {
	defer close(m.done)
	if m.opts.Netns != "" {
		runtime.LockOSThread() // never unlocked: the thread ends with the goroutine
		if err := enterNetns(m.opts.Netns); err != nil {
			m.log.Error("vrrp: not started", "error", err)
			return
		}
	}
	m.cleanup(m.cfgs)
	m.hostErr(m.updateGuard())
	now := time.Now()
	m.track(now)
	m.r.Start(now)
	m.publish()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	track := time.NewTicker(m.opts.TrackInterval)
	defer track.Stop()
	for {
		wait := time.Hour
		if next := m.r.Next(); !next.IsZero() {
			wait = max(time.Until(next), 0)
		}
		timer.Reset(wait)
		select {
		case p := <-m.pkts:
			m.r.Receive(time.Now(), p)
		case <-timer.C:
			m.r.Tick(time.Now())
		case <-track.C:
			m.track(time.Now())
		case f := <-m.reqs:
			f(time.Now())
		case <-m.stop:
			m.shutdown(time.Now())
			return
		}
		m.publish()
	}
}

// shutdown ends everything (the loop's last act).
func (m *Manager) shutdown(now time.Time) {
	m.r.Shutdown(now, "gvsd stopping")
	m.publish()
	for k, s := range m.rx {
		s.close()
		delete(m.rx, k)
	}
	for k, s := range m.tx {
		s.close()
		delete(m.tx, k)
	}
	m.readers.Wait()
	for _, c := range m.cfgs {
		if c.VirtualMAC {
			if err := delVMAC(&c); err != nil {
				m.log.Warn("vrrp: stop", "error", err)
			}
		}
	}
	if m.nftOn {
		if err := delGuard(); err != nil {
			m.log.Warn("vrrp: stop", "error", err)
		}
		m.nftOn = false
	}
}

// apply installs a new set of instances (Update, on the loop).
func (m *Manager) apply(now time.Time, cfgs []Config) {
	want := map[string]*Config{}
	for i := range cfgs {
		want[cfgs[i].Name] = &cfgs[i]
	}
	for _, in := range slices.Clone(m.r.Instances()) {
		c, keep := want[in.cfg.Name]
		if keep && !needsRestart(&in.cfg, c) {
			continue
		}
		cause := "removed from the configuration"
		if keep {
			cause = "configuration changed: restarting"
		}
		in.Shutdown(now, cause)
		m.r.Remove(in.cfg.Name)
		if t := m.tx[in.cfg.Name]; t != nil {
			t.close()
			delete(m.tx, in.cfg.Name)
		}
		delete(m.owned, in.cfg.Name)
		if in.cfg.VirtualMAC {
			_ = delVMAC(&in.cfg)
		}
	}
	for i := range cfgs {
		c := cfgs[i]
		in := m.r.Instance(c.Name)
		if in == nil {
			m.r.Add(NewInstance(c, netip.Addr{}, m, m.log))
			continue
		}
		old := in.cfg
		in.reconfigure(c)
		if in.state == Master {
			var gone []netip.Addr
			for _, a := range old.Addrs() {
				if !slices.Contains(c.Addrs(), a) {
					gone = append(gone, a)
				}
			}
			if len(gone) > 0 {
				if _, err := delVIPs(addrLink(&c), gone); err != nil {
					in.hostErr("remove addresses", err)
				}
			}
			if !slices.Equal(old.VIPs, c.VIPs) {
				in.hostErr("take over", m.TakeOver(in))
				in.announce()
			}
		}
	}
	m.cfgs = cfgs
	m.setVIPSet()
	m.hostErr(m.updateGuard())
	m.closeStaleRx()
	m.track(now)
	m.r.Start(now)
	m.log.Info("vrrp: configuration applied", "instances", len(cfgs))
}

// needsRestart reports whether a change of an instance's configuration
// changes what identifies it on the wire.
func needsRestart(a, b *Config) bool {
	return a.Interface != b.Interface || a.VRID != b.VRID || a.Version != b.Version || a.Is6() != b.Is6() ||
		a.VirtualMAC != b.VirtualMAC || a.UnicastSrc != b.UnicastSrc || !slices.Equal(a.UnicastPeers, b.UnicastPeers) ||
		a.AuthPass != b.AuthPass
}

// closeStaleRx closes receive sockets no instance uses any more.
func (m *Manager) closeStaleRx() {
	used := map[rxKey]bool{}
	for _, in := range m.r.Instances() {
		used[rxKey{in.cfg.Interface, in.cfg.Is6()}] = true
	}
	for k, s := range m.rx {
		if !used[k] {
			s.close()
			delete(m.rx, k)
		}
	}
}

// track reads the interfaces, (re)opens receive sockets, chooses primary
// addresses and evaluates every tracker, then hands the result to the
// Router.
func (m *Manager) track(now time.Time) {
	names := map[string]bool{}
	for _, in := range m.r.Instances() {
		names[in.cfg.Interface] = true
		for _, t := range in.cfg.TrackInterfaces {
			names[t] = true
		}
	}
	for n := range m.ifs {
		if !names[n] {
			delete(m.ifs, n)
		}
	}
	for n := range names {
		m.ifs[n] = readIf(n)
	}
	m.openRx()
	states := map[string]TrackState{}
	var dpOK bool
	var dpWhy string
	dpDone := false
	for _, in := range m.r.Instances() {
		c := &in.cfg
		var ts TrackState
		st := m.ifs[c.Interface]
		switch {
		case st.err != nil:
			ts.Down = true
			ts.Failing = append(ts.Failing, st.err.Error())
		case !st.up:
			ts.Down = true
			ts.Failing = append(ts.Failing, "interface "+c.Interface+" down")
		default:
			if err := m.rxErr[rxKey{c.Interface, c.Is6()}]; err != nil {
				ts.Down = true
				ts.Failing = append(ts.Failing, err.Error())
			} else if p, err := primaryAddr(c, &st, m.vipSet); err != nil {
				ts.Down = true
				ts.Failing = append(ts.Failing, err.Error())
			} else if p != in.primary && in.state != Master {
				in.primary = p
			}
		}
		for _, t := range c.TrackInterfaces {
			if s := m.ifs[t]; s.err != nil || !s.up {
				ts.Failing = append(ts.Failing, "tracked interface "+t+" down")
			}
		}
		if m.opts.ServiceUp != nil {
			for _, k := range c.TrackServices {
				if ok, why := m.opts.ServiceUp(k); !ok {
					ts.Failing = append(ts.Failing, "service "+k.String()+": "+why)
				}
			}
		}
		if c.TrackDataplane && m.opts.DataplaneUp != nil {
			if !dpDone {
				dpOK, dpWhy = m.opts.DataplaneUp()
				dpDone = true
			}
			if !dpOK {
				ts.Failing = append(ts.Failing, "dataplane: "+dpWhy)
			}
		}
		states[c.Name] = ts
	}
	m.r.Track(now, states)
}

// openRx opens the receive socket of every interface and family in use,
// again when the interface was re-created (new index).
func (m *Manager) openRx() {
	for _, in := range m.r.Instances() {
		k := rxKey{in.cfg.Interface, in.cfg.Is6()}
		st := m.ifs[k.ifname]
		if st.err != nil {
			continue
		}
		if s := m.rx[k]; s != nil {
			if s.index == st.index {
				continue
			}
			s.close()
			delete(m.rx, k)
		}
		s, err := openRx(k.ifname, st.index, k.is6)
		if err != nil {
			if m.rxErr[k] == nil {
				m.log.Error("vrrp: cannot receive advertisements", "interface", k.ifname, "error", err)
			}
			m.rxErr[k] = err
			continue
		}
		delete(m.rxErr, k)
		m.rx[k] = s
		m.readers.Add(1)
		go m.read(s)
	}
}

// read feeds a socket's packets to the loop until the socket is closed.
func (m *Manager) read(s *rxSock) {
	defer m.readers.Done()
	buf := make([]byte, 1500)
	for {
		p, err := s.read(buf)
		if err != nil {
			if !isClosed(err) {
				m.log.Warn("vrrp: receive", "interface", s.ifname, "error", err)
				time.Sleep(10 * time.Millisecond)
				continue
			}
			return
		}
		if p == nil {
			continue
		}
		select {
		case m.pkts <- p:
		case <-m.stop:
			return
		}
	}
}

// Host implementation (on the loop goroutine).

// Send implements Host: the advertisement goes to the group, or to every
// unicast peer.
func (m *Manager) Send(in *Instance, adv *Advert) error {
	c := &in.cfg
	if !in.primary.IsValid() {
		return fmt.Errorf("no primary address on %s", c.Interface)
	}
	link := c.Interface
	if c.VirtualMAC {
		link = vmacName(c)
	}
	t := m.tx[c.Name]
	if t == nil || t.ifname != link {
		if t != nil {
			t.close()
		}
		st := readIf(link)
		if st.err != nil {
			delete(m.tx, c.Name)
			return st.err
		}
		var err error
		if t, err = openTx(link, st.index, c.Is6()); err != nil {
			delete(m.tx, c.Name)
			return err
		}
		m.tx[c.Name] = t
	}
	dsts := []netip.Addr{c.Group()}
	if c.Unicast() {
		dsts = c.UnicastPeers
	}
	var errs []error
	var buf [1500]byte
	for _, d := range dsts {
		msg := adv.Marshal(buf[:0], in.primary, d)
		if err := t.send(msg, in.primary, d); err != nil {
			errs = append(errs, fmt.Errorf("send to %v on %s: %w", d, link, err))
		}
	}
	if len(errs) > 0 {
		// Reopen next time (the device may have been re-created).
		t.close()
		delete(m.tx, c.Name)
	}
	return errors.Join(errs...)
}

// TakeOver implements Host: the macvlan (virtual_mac), the owner callback
// (the daemon starts steering the services), then the addresses.
func (m *Manager) TakeOver(in *Instance) error {
	c := &in.cfg
	var errs []error
	if c.VirtualMAC {
		if created, err := ensureVMAC(c, in.primary); err != nil {
			errs = append(errs, err)
		} else if created {
			if t := m.tx[c.Name]; t != nil {
				t.close()
				delete(m.tx, c.Name)
			}
		}
	}
	m.owned[c.Name] = true
	if m.opts.Owner != nil {
		m.opts.Owner(c.Name, slices.Clone(c.VIPs), true)
	}
	if err := addVIPs(addrLink(c), c.VIPs, m.opts.AddrLifetime); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// Release implements Host: the addresses, the macvlan, then the owner
// callback.
func (m *Manager) Release(in *Instance) error {
	c := &in.cfg
	var errs []error
	if _, err := delVIPs(addrLink(c), c.Addrs()); err != nil {
		errs = append(errs, err)
	}
	if c.VirtualMAC {
		if t := m.tx[c.Name]; t != nil {
			t.close()
			delete(m.tx, c.Name)
		}
		if err := delVMAC(c); err != nil {
			errs = append(errs, err)
		}
	}
	delete(m.owned, c.Name)
	if m.opts.Owner != nil {
		m.opts.Owner(c.Name, slices.Clone(c.VIPs), false)
	}
	return errors.Join(errs...)
}

// Announce implements Host.
func (m *Manager) Announce(in *Instance) (int, error) {
	c := &in.cfg
	st := readIf(addrLink(c))
	if st.err != nil {
		return 0, st.err
	}
	var mac [6]byte
	if c.VirtualMAC {
		mac = c.VirtualMACAddr()
	} else {
		copy(mac[:], st.mac)
	}
	return sendFrames(st.index, announceFrames(c, mac, in.primary))
}

// Renew implements Host: the addresses' lifetime starts again (and
// addresses someone removed are back).
func (m *Manager) Renew(in *Instance) error {
	return addVIPs(addrLink(&in.cfg), in.cfg.VIPs, m.opts.AddrLifetime)
}

// updateGuard rewrites the nftables table for the instances' addresses.
// The rules stand whatever the state: a backup does not have the
// addresses, so dropping packets to them changes nothing there, and the
// failover path never waits for netfilter.
func (m *Manager) updateGuard() error {
	var rules []guardRule
	for _, in := range m.r.Instances() {
		acc := in.cfg.Accept || in.cfg.Priority == PriorityOwner
		if acc && !m.opts.Guard {
			continue
		}
		for _, a := range in.cfg.Addrs() {
			rules = append(rules, guardRule{addr: a, accept: acc})
		}
	}
	if len(rules) == 0 && !m.nftOn {
		return nil
	}
	err := setGuard(rules, m.opts.Guard)
	m.nftOn = len(rules) > 0 || err != nil
	return err
}

// hostErr logs a failure of the Manager's own host work.
func (m *Manager) hostErr(err error) {
	if err != nil {
		m.log.Error("vrrp", "error", err)
	}
}
