package vrrp

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	"gvs/lb"
)

// RFC 5798 §6.1: Skew_Time and Master_Down_Interval from the priority and
// the master's advertisement interval.
func TestTimersFormula(t *testing.T) {
	in := NewInstance(Config{Name: "x", Version: 3, Priority: 100, AdvertInt: time.Second}, netip.Addr{}, nil, quietLog())
	near(t, "skew at priority 100, 1s", in.skewTime(), 609375*time.Microsecond)
	near(t, "master down interval", in.masterDownInterval(), 3*time.Second+609375*time.Microsecond)
	in.masterAdverInt = 100 * time.Millisecond
	near(t, "skew at 100ms", in.skewTime(), 60937500*time.Nanosecond)
	near(t, "master down at 100ms", in.masterDownInterval(), 360937500*time.Nanosecond)
	v2 := NewInstance(Config{Name: "y", Version: 2, Priority: 200, AdvertInt: 3 * time.Second}, netip.Addr{}, nil, quietLog())
	near(t, "v2 skew ignores the interval (RFC 3768 §6.1)", v2.skewTime(), 218750*time.Microsecond)
	near(t, "v2 master down", v2.masterDownInterval(), 9*time.Second+218750*time.Microsecond)
}

// Election by priority: both start as Backup (§6.4.1); the higher
// priority's Master_Down_Timer runs out first and it becomes Master; the
// other stays Backup, following it.
func TestElectionByPriority(t *testing.T) {
	s := newSim(t)
	a, b := s.node("a", "198.18.1.1"), s.node("b", "198.18.1.2")
	ia := a.add(Config{Priority: 200, Preempt: true, GARPCount: 3})
	ib := b.add(Config{Priority: 100, Preempt: true, GARPCount: 3})
	a.r.Start(s.now)
	b.r.Start(s.now)
	wantState(t, ia, Backup)
	wantState(t, ib, Backup)
	s.runFor(10 * time.Second)
	wantState(t, ia, Master)
	wantState(t, ib, Backup)
	near(t, "a became master after its master down interval", a.becameMaster["vi"].Sub(t0), 3*time.Second+(56*time.Second)/256)
	if !a.owned["vi"] || b.owned["vi"] {
		t.Fatalf("owned: a %v b %v", a.owned, b.owned)
	}
	if a.announced["vi"] != 3 {
		t.Fatalf("a announced %d, want 3 (garp_count)", a.announced["vi"])
	}
	if st := ib.Status(); st.Master != a.addr || st.MasterPriority != 200 {
		t.Fatalf("b sees master %v priority %d", st.Master, st.MasterPriority)
	}
	// a advertises every second.
	if n := ia.counters[CountAdvertsSent]; n < 7 || n > 8 {
		t.Fatalf("a sent %d adverts in ~6.8s of mastership", n)
	}
}

// §6.4.1: the address owner (priority 255) becomes Master at once.
func TestOwnerBecomesMasterAtOnce(t *testing.T) {
	s := newSim(t)
	a := s.node("a", "198.18.1.1")
	ia := a.add(Config{Priority: 255})
	a.r.Start(s.now)
	wantState(t, ia, Master)
	if len(a.sent) != 1 {
		t.Fatalf("owner sent %d adverts at startup", len(a.sent))
	}
	// §7.1: the owner discards advertisements for its VRID.
	b := s.node("b", "198.18.1.2")
	ib := b.add(Config{Priority: 254})
	ib.Start(s.now)
	ib.force(s.now, Master, "test")
	s.runFor(100 * time.Millisecond)
	if ia.discards[DiscardOwner] == 0 {
		t.Fatalf("owner did not discard: %v", ia.discards)
	}
	wantState(t, ia, Master)
	s.runFor(3 * time.Second)
	wantState(t, ib, Backup) // the owner's 255 beats 254
}

// Preemption on: a higher-priority router that starts while a lower one
// is master discards its advertisements (§6.4.2) and takes over when its
// Master_Down_Timer fires; the old master hears it and becomes Backup.
func TestPreemption(t *testing.T) {
	for _, preempt := range []bool{true, false} {
		t.Run(map[bool]string{true: "on", false: "off"}[preempt], func(t *testing.T) {
			s := newSim(t)
			a, b := s.node("a", "198.18.1.1"), s.node("b", "198.18.1.2")
			ia := a.add(Config{Priority: 200, Preempt: preempt})
			ib := b.add(Config{Priority: 100, Preempt: true})
			b.r.Start(s.now)
			s.runFor(5 * time.Second)
			wantState(t, ib, Master)
			start := s.now
			a.r.Start(s.now)
			s.runFor(10 * time.Second)
			if !preempt {
				wantState(t, ia, Backup)
				wantState(t, ib, Master)
				return
			}
			wantState(t, ia, Master)
			wantState(t, ib, Backup)
			took := a.becameMaster["vi"].Sub(start)
			mdi := 3*time.Second + (56*time.Second)/256
			if took < mdi || took > mdi+10*time.Millisecond {
				t.Fatalf("took over after %v, want the master down interval %v", took, mdi)
			}
			if ia.counters[CountLowerPriority] == 0 {
				t.Fatalf("a never discarded b's lower-priority adverts")
			}
		})
	}
}

// keepalived's preempt_delay: the takeover waits for the delay, counted
// from the first lower-priority advertisement heard.
func TestPreemptDelay(t *testing.T) {
	s := newSim(t)
	a, b := s.node("a", "198.18.1.1"), s.node("b", "198.18.1.2")
	ia := a.add(Config{Priority: 200, Preempt: true, PreemptDelay: 5 * time.Second, AdvertInt: 100 * time.Millisecond})
	ib := b.add(Config{Priority: 100, Preempt: true, AdvertInt: 100 * time.Millisecond})
	b.r.Start(s.now)
	s.runFor(time.Second)
	wantState(t, ib, Master)
	start := s.now
	a.r.Start(s.now)
	s.runFor(4 * time.Second)
	wantState(t, ia, Backup)
	s.runFor(3 * time.Second)
	wantState(t, ia, Master)
	wantState(t, ib, Backup)
	took := a.becameMaster["vi"].Sub(start)
	if took < 5*time.Second || took > 5*time.Second+500*time.Millisecond {
		t.Fatalf("preempted after %v, want 5s + at most a master down interval", took)
	}
}

// Graceful stop: the master sends priority 0 (§6.4.3 Shutdown) and the
// backup takes over after its Skew_Time (§6.4.2), not the whole Master
// Down Interval.
func TestShutdownPriorityZero(t *testing.T) {
	s := newSim(t)
	a, b := s.node("a", "198.18.1.1"), s.node("b", "198.18.1.2")
	ia := a.add(Config{Priority: 200, Preempt: true, AdvertInt: 100 * time.Millisecond})
	ib := b.add(Config{Priority: 100, Preempt: true, AdvertInt: 100 * time.Millisecond})
	a.r.Start(s.now)
	b.r.Start(s.now)
	s.runFor(2 * time.Second)
	wantState(t, ia, Master)
	stop := s.now
	a.r.Shutdown(s.now, "test stop")
	wantState(t, ia, Initialize)
	if a.owned["vi"] {
		t.Fatal("a still owns after shutdown")
	}
	if last := a.sent[len(a.sent)-1]; last.Priority != 0 {
		t.Fatalf("last advert priority %d, want 0", last.Priority)
	}
	s.runFor(time.Second)
	wantState(t, ib, Master)
	skew := (156 * 100 * time.Millisecond) / 256
	near(t, "takeover after priority 0", b.becameMaster["vi"].Sub(stop), skew+simLatency)
	if ib.counters[CountPrio0Rcvd] != 1 || ia.counters[CountPrio0Sent] != 1 {
		t.Fatalf("priority 0 counters: sent %d received %d", ia.counters[CountPrio0Sent], ib.counters[CountPrio0Rcvd])
	}
}

// Node loss: the master goes silent; the backup takes over one Master Down
// Interval after the last advertisement it heard.
func TestNodeLoss(t *testing.T) {
	s := newSim(t)
	a, b := s.node("a", "198.18.1.1"), s.node("b", "198.18.1.2")
	ia := a.add(Config{Priority: 200, AdvertInt: 100 * time.Millisecond})
	ib := b.add(Config{Priority: 100, AdvertInt: 100 * time.Millisecond})
	a.r.Start(s.now)
	b.r.Start(s.now)
	s.runFor(time.Second)
	wantState(t, ia, Master)
	lost := s.now
	a.down = true
	s.runFor(time.Second)
	wantState(t, ib, Master)
	took := b.becameMaster["vi"].Sub(lost)
	mdi := 300*time.Millisecond + (156*100*time.Millisecond)/256
	if took > mdi || took < mdi-100*time.Millisecond {
		t.Fatalf("took over %v after the loss, want within (%v - advert, %v]", took, mdi, mdi)
	}
}

// A backup learns the master's advertisement interval (§6.4.2
// Master_Adver_Interval) and times the master with it, not its own.
func TestLearnsMasterInterval(t *testing.T) {
	s := newSim(t)
	a, b := s.node("a", "198.18.1.1"), s.node("b", "198.18.1.2")
	a.add(Config{Priority: 200, AdvertInt: 100 * time.Millisecond})
	ib := b.add(Config{Priority: 100, AdvertInt: 2 * time.Second})
	a.r.Start(s.now)
	s.runFor(time.Second)
	b.r.Start(s.now)
	s.runFor(time.Second)
	if st := ib.Status(); st.MasterAdvertInt != 100*time.Millisecond {
		t.Fatalf("backup's master advert interval %v", st.MasterAdvertInt)
	}
	lost := s.now
	a.down = true
	s.runFor(2 * time.Second)
	wantState(t, ib, Master)
	if took := b.becameMaster["vi"].Sub(lost); took > 400*time.Millisecond {
		t.Fatalf("took over after %v: the master's 100ms interval was not used", took)
	}
}

// Equal priority: when two masters hear each other (after a partition),
// the one with the lower primary address yields (§6.4.3), whatever the
// order of events; afterwards exactly one master stays.
func TestEqualPriorityTieBreakAfterPartition(t *testing.T) {
	for _, v := range []struct {
		name, a, b string
	}{{"ipv4", "198.18.1.1", "198.18.1.2"}, {"ipv6", "fe80::1", "fe80::2"}} {
		t.Run(v.name, func(t *testing.T) {
			s := newSim(t)
			a, b := s.node("a", v.a), s.node("b", v.b)
			ia := a.add(Config{Priority: 100, Preempt: true, AdvertInt: 100 * time.Millisecond})
			ib := b.add(Config{Priority: 100, Preempt: true, AdvertInt: 100 * time.Millisecond})
			a.r.Start(s.now)
			s.runFor(time.Second)
			b.r.Start(s.now)
			s.runFor(time.Second)
			// b hears an equal-priority master while Backup: it follows.
			wantState(t, ia, Master)
			wantState(t, ib, Backup)
			s.partition(a, b, true)
			s.runFor(time.Second)
			if s.masters("vi") != 2 {
				t.Fatalf("partition: %d masters, want 2", s.masters("vi"))
			}
			s.partition(a, b, false)
			s.runFor(2 * time.Second)
			wantState(t, ia, Backup)
			wantState(t, ib, Master)
			if !strings.Contains(ia.reason, "equal priority") {
				t.Fatalf("a's reason %q", ia.reason)
			}
			for i := 0; i < 20; i++ {
				s.runFor(100 * time.Millisecond)
				if s.masters("vi") != 1 {
					t.Fatalf("%d masters after heal", s.masters("vi"))
				}
			}
		})
	}
}

// Partition and heal with different priorities: the lower one yields.
func TestPartitionHeal(t *testing.T) {
	s := newSim(t)
	a, b := s.node("a", "198.18.1.2"), s.node("b", "198.18.1.1")
	ia := a.add(Config{Priority: 200, Preempt: true, AdvertInt: 100 * time.Millisecond})
	ib := b.add(Config{Priority: 100, Preempt: true, AdvertInt: 100 * time.Millisecond})
	a.r.Start(s.now)
	b.r.Start(s.now)
	s.runFor(time.Second)
	s.partition(a, b, true)
	s.runFor(time.Second)
	wantState(t, ib, Master)
	s.partition(a, b, false)
	s.runFor(300 * time.Millisecond)
	wantState(t, ia, Master)
	wantState(t, ib, Backup)
	if b.owned["vi"] {
		t.Fatal("b still owns after heal")
	}
}

// Gratuitous ARP schedule: garp_count at once, again after garp_delay, then
// one round per garp_refresh.
func TestAnnounceSchedule(t *testing.T) {
	s := newSim(t)
	a := s.node("a", "198.18.1.1")
	a.add(Config{Priority: 255, GARPCount: 2, GARPDelay: 500 * time.Millisecond, GARPRefresh: 2 * time.Second,
		VIPs: []netip.Prefix{netip.MustParsePrefix("198.18.1.10/32"), netip.MustParsePrefix("198.18.1.11/32")}})
	a.r.Start(s.now)
	if a.announced["vi"] != 4 {
		t.Fatalf("first round: %d, want 2 per address", a.announced["vi"])
	}
	s.runFor(600 * time.Millisecond)
	if a.announced["vi"] != 8 {
		t.Fatalf("after the delay: %d, want 8", a.announced["vi"])
	}
	s.runFor(2 * time.Second)
	if a.announced["vi"] != 12 {
		t.Fatalf("after a refresh: %d, want 12", a.announced["vi"])
	}
	if a.renewed < 2 {
		t.Fatalf("addresses renewed %d times in 2.6s", a.renewed)
	}
}

// Tracking with weight 0: a failing tracker puts the master in Fault (it
// sends priority 0, so the backup takes over after its skew time); when
// the tracker recovers it starts again and, being of higher priority,
// preempts.
func TestTrackingFault(t *testing.T) {
	s := newSim(t)
	a, b := s.node("a", "198.18.1.1"), s.node("b", "198.18.1.2")
	ia := a.add(Config{Priority: 200, Preempt: true, AdvertInt: 100 * time.Millisecond, TrackServices: []lb.ServiceKey{{}}})
	ib := b.add(Config{Priority: 100, Preempt: true, AdvertInt: 100 * time.Millisecond})
	a.r.Start(s.now)
	b.r.Start(s.now)
	s.runFor(time.Second)
	wantState(t, ia, Master)
	a.r.Track(s.now, map[string]TrackState{"vi": {Failing: []string{"service tcp 198.18.1.10:80: no healthy real"}}})
	wantState(t, ia, Fault)
	if a.owned["vi"] {
		t.Fatal("fault kept the addresses")
	}
	s.runFor(200 * time.Millisecond)
	wantState(t, ib, Master)
	a.r.Track(s.now, map[string]TrackState{"vi": {}})
	wantState(t, ia, Backup)
	s.runFor(time.Second)
	wantState(t, ia, Master)
	wantState(t, ib, Backup)
	// The own interface down is Fault even with a weight.
	ia.cfg.TrackWeight = -50
	a.r.Track(s.now, map[string]TrackState{"vi": {Failing: []string{"interface eth0 down"}, Down: true}})
	wantState(t, ia, Fault)
}

// Tracking with a weight: a failure lowers the priority below the backup's,
// which preempts.
func TestTrackingWeight(t *testing.T) {
	s := newSim(t)
	a, b := s.node("a", "198.18.1.1"), s.node("b", "198.18.1.2")
	ia := a.add(Config{Priority: 150, Preempt: true, AdvertInt: 100 * time.Millisecond, TrackWeight: -100})
	ib := b.add(Config{Priority: 100, Preempt: true, AdvertInt: 100 * time.Millisecond})
	a.r.Start(s.now)
	b.r.Start(s.now)
	s.runFor(time.Second)
	wantState(t, ia, Master)
	a.r.Track(s.now, map[string]TrackState{"vi": {Failing: []string{"dataplane stalled"}}})
	if ia.Priority() != 50 {
		t.Fatalf("priority %d, want 50", ia.Priority())
	}
	wantState(t, ia, Master)
	s.runFor(time.Second)
	wantState(t, ib, Master)
	wantState(t, ia, Backup)
	a.r.Track(s.now, map[string]TrackState{"vi": {}})
	s.runFor(time.Second)
	wantState(t, ia, Master)
}

// Sync groups: instances of a group change state together — a member
// displaced by a higher-priority master takes the group to Backup, a
// member that becomes master takes it to Master, and a fault of one is a
// fault of all.
func TestSyncGroup(t *testing.T) {
	s := newSim(t)
	a, b := s.node("a", "198.18.1.1"), s.node("b", "198.18.1.2")
	cfg := func(name string, vrid uint8, prio uint8) Config {
		return Config{Name: name, VRID: vrid, Priority: prio, Preempt: true, AdvertInt: 100 * time.Millisecond, SyncGroup: "g",
			VIPs: []netip.Prefix{netip.PrefixFrom(netip.AddrFrom4([4]byte{198, 18, 1, vrid}), 32)}}
	}
	a1, a2 := a.add(cfg("ext", 1, 200)), a.add(cfg("int", 2, 200))
	b1, b2 := b.add(cfg("ext", 1, 100)), b.add(cfg("int", 2, 100))
	a.r.Start(s.now)
	b.r.Start(s.now)
	s.runFor(time.Second)
	wantState(t, a1, Master)
	wantState(t, a2, Master)
	wantState(t, b1, Backup)
	wantState(t, b2, Backup)
	// Fault of one member: the whole group goes.
	a.r.Track(s.now, map[string]TrackState{"ext": {Failing: []string{"interface eth1 down"}}})
	wantState(t, a1, Fault)
	wantState(t, a2, Fault)
	s.runFor(time.Second)
	wantState(t, b1, Master)
	wantState(t, b2, Master)
	a.r.Track(s.now, map[string]TrackState{})
	s.runFor(time.Second)
	wantState(t, a1, Master)
	wantState(t, a2, Master)
	wantState(t, b1, Backup)
	wantState(t, b2, Backup)
	// b's "int" alone stops hearing a's: it becomes master and takes b's
	// "ext" along, which then hears a's higher-priority "ext" and takes
	// the group back to Backup.
	s.drop = func(d *delivery) bool { return d.from == a && d.pkt.Data[1] == 2 }
	s.runFor(time.Second)
	s.drop = nil
	if b1.Status().Transitions < 4 || !strings.Contains(strings.Join(s.events, "\n"), "b/ext master") {
		t.Fatalf("b's ext did not follow its group: %d transitions; events:\n%s", b1.Status().Transitions, strings.Join(s.events, "\n"))
	}
	s.runFor(time.Second)
	wantState(t, b1, Backup)
	wantState(t, b2, Backup)
	wantState(t, a1, Master)
	wantState(t, a2, Master)
}

// Every reason to discard a packet is counted (RFC 5798 §7.1, RFC 3768
// §7.1).
func TestDiscards(t *testing.T) {
	src, dst := netip.MustParseAddr("198.18.1.2"), Group4
	mk := func(v uint8, vrid uint8, prio uint8, ivl time.Duration, auth string, vips ...string) []byte {
		adv := Advert{Version: v, VRID: vrid, Priority: prio, Interval: ivl}
		if auth != "" {
			adv.AuthType, adv.AuthData = AuthSimple, authData(auth)
		}
		for _, s := range vips {
			adv.Addrs = append(adv.Addrs, netip.MustParseAddr(s))
		}
		return adv.Marshal(nil, src, dst)
	}
	good3 := mk(3, 51, 100, time.Second, "", "198.18.1.10")
	badSum := append([]byte(nil), good3...)
	badSum[6] ^= 0xff
	badType := append([]byte(nil), good3...)
	badType[0] = 0x32
	cases := []struct {
		name    string
		version int
		auth    string
		owner   bool
		peers   []string
		pkt     []byte
		ttl     int
		want    string
	}{
		{name: "ttl", pkt: good3, ttl: 254, want: DiscardTTL},
		{name: "checksum", pkt: badSum, want: DiscardChecksum},
		{name: "type", pkt: badType, want: DiscardType},
		{name: "short", pkt: good3[:9], want: DiscardLength},
		{name: "v2 to a v3 instance", pkt: mk(2, 51, 100, time.Second, "", "198.18.1.10"), want: DiscardVersion},
		{name: "unknown vrid", pkt: mk(3, 52, 100, time.Second, "", "198.18.1.10"), want: DiscardVRID},
		{name: "owner", owner: true, pkt: good3, want: DiscardOwner},
		{name: "not a peer", peers: []string{"198.18.1.3"}, pkt: good3, want: DiscardUnicast},
		{name: "v2 auth type", version: 2, auth: "secret", pkt: mk(2, 51, 100, time.Second, "", "198.18.1.10"), want: DiscardAuthType},
		{name: "v2 password", version: 2, auth: "secret", pkt: mk(2, 51, 100, time.Second, "wrong", "198.18.1.10"), want: DiscardAuth},
		{name: "v2 interval", version: 2, pkt: mk(2, 51, 100, 2*time.Second, "", "198.18.1.10"), want: DiscardInterval},
		{name: "v2 addresses", version: 2, pkt: mk(2, 51, 100, time.Second, "", "198.18.1.11"), want: DiscardAddrList},
		{name: "v2 good", version: 2, auth: "secret", pkt: mk(2, 51, 100, time.Second, "secret", "198.18.1.10"), want: ""},
		{name: "v3 good", pkt: good3, want: ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg := Config{Name: "vi", Interface: "eth0", VRID: 51, Priority: 150, AdvertInt: time.Second, Version: 3,
				VIPs: []netip.Prefix{netip.MustParsePrefix("198.18.1.10/32")}, AuthPass: c.auth}
			if c.version != 0 {
				cfg.Version = c.version
			}
			if c.owner {
				cfg.Priority = 255
			}
			for _, p := range c.peers {
				cfg.UnicastPeers = append(cfg.UnicastPeers, netip.MustParseAddr(p))
			}
			if err := cfg.Validate(); err != nil {
				t.Fatal(err)
			}
			r := NewRouter(quietLog())
			in := NewInstance(cfg, netip.MustParseAddr("198.18.1.1"), &nopHost{}, quietLog())
			r.Add(in)
			ttl := TTL
			if c.ttl != 0 {
				ttl = c.ttl
			}
			r.Receive(t0, &Packet{Interface: "eth0", Src: src, Dst: dst, TTL: ttl, Data: c.pkt})
			if c.want == "" {
				if len(in.discards) != 0 || in.counters[CountAdvertsRcvd] != 1 {
					t.Fatalf("discards %v, received %d", in.discards, in.counters[CountAdvertsRcvd])
				}
				return
			}
			if in.discards[c.want] != 1 || len(in.discards) != 1 {
				t.Fatalf("discards %v, want one %q", in.discards, c.want)
			}
		})
	}
}

// A v3 advertisement listing other addresses is processed, and counted.
func TestAddrMismatchV3Processed(t *testing.T) {
	s := newSim(t)
	a, b := s.node("a", "198.18.1.1"), s.node("b", "198.18.1.2")
	a.add(Config{Priority: 200, VIPs: []netip.Prefix{netip.MustParsePrefix("198.18.1.99/32")}})
	ib := b.add(Config{Priority: 100})
	a.r.Start(s.now)
	b.r.Start(s.now)
	s.runFor(5 * time.Second)
	wantState(t, ib, Backup)
	if ib.counters[CountAddrMismatch] == 0 {
		t.Fatal("mismatch not counted")
	}
}

// Unicast peers: advertisements go to the peers only.
func TestUnicast(t *testing.T) {
	s := newSim(t)
	a, b, c := s.node("a", "198.18.1.1"), s.node("b", "198.18.1.2"), s.node("c", "198.18.1.3")
	peer := func(p string) []netip.Addr { return []netip.Addr{netip.MustParseAddr(p)} }
	a.add(Config{Priority: 200, UnicastPeers: peer("198.18.1.2")})
	ib := b.add(Config{Priority: 100, UnicastPeers: peer("198.18.1.1")})
	ic := c.add(Config{Priority: 50})
	a.r.Start(s.now)
	b.r.Start(s.now)
	c.r.Start(s.now)
	s.runFor(6 * time.Second)
	wantState(t, ib, Backup)
	wantState(t, ic, Master) // hears nothing: it is alone on the group
}

// VRRPv2 with a password: election and graceful stop work as in v3, with
// whole-second intervals.
func TestVersion2(t *testing.T) {
	s := newSim(t)
	a, b := s.node("a", "198.18.1.1"), s.node("b", "198.18.1.2")
	ia := a.add(Config{Version: 2, Priority: 200, AuthPass: "secret"})
	ib := b.add(Config{Version: 2, Priority: 100, AuthPass: "secret"})
	a.r.Start(s.now)
	b.r.Start(s.now)
	s.runFor(5 * time.Second)
	wantState(t, ia, Master)
	wantState(t, ib, Backup)
	stop := s.now
	a.r.Shutdown(s.now, "stop")
	s.runFor(2 * time.Second)
	wantState(t, ib, Master)
	near(t, "v2 takeover after priority 0", b.becameMaster["vi"].Sub(stop), (156*time.Second)/256+simLatency)
	if len(ib.discards) != 0 {
		t.Fatalf("discards %v", ib.discards)
	}
}

type nopHost struct{}

func (nopHost) Send(*Instance, *Advert) error   { return nil }
func (nopHost) TakeOver(*Instance) error        { return nil }
func (nopHost) Release(*Instance) error         { return nil }
func (nopHost) Announce(*Instance) (int, error) { return 0, nil }
func (nopHost) Renew(*Instance) error           { return nil }
