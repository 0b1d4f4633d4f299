package lb

import (
	"net/netip"
	"testing"
	"time"
)

func TestSnapshotEmpty(t *testing.T) {
	snap := NewBalancer(1, 8).Load()
	a, fam := btBytes("198.18.0.1")
	if got := snap.Classify(fam, uint8(ProtoTCP), a, 80); got != -1 {
		t.Errorf("Classify on the empty snapshot = %d", got)
	}
	if got := snap.NATReal(fam, uint8(ProtoTCP), a, 80); got != -1 {
		t.Errorf("NATReal on the empty snapshot = %d", got)
	}
	if got := snap.LocalAddr(fam, a); got != -1 {
		t.Errorf("LocalAddr on the empty snapshot = %d", got)
	}
	if snap.IsVIP(fam, a) {
		t.Error("IsVIP on the empty snapshot")
	}
	if r := snap.Real(0); r != nil {
		t.Errorf("Real(0) on the empty snapshot = %+v", r)
	}
}

func TestSnapshotClassify(t *testing.T) {
	mk := func(p Proto, vip string, port uint16, real string) Service {
		return Service{Proto: p, VIP: btAddr(vip), Port: port, Scheduler: "rr",
			Reals: []Real{{Addr: btAddr(real), Weight: 1}}}
	}
	svcs := []Service{
		mk(ProtoTCP, "198.18.0.1", 80, "198.18.1.1"),      // exact
		mk(ProtoTCP, "198.18.0.1", 0, "198.18.1.2"),       // all tcp ports
		mk(ProtoAny, "198.18.0.3", 53, "198.18.1.3"),      // tcp and udp 53
		mk(ProtoUDP, "198.18.0.3", 53, "198.18.1.4"),      // udp 53: beats any
		mk(ProtoAny, "198.18.0.2", 0, "198.18.1.5"),       // everything tcp/udp
		mk(ProtoTCP, "198.18.0.2", 22, "198.18.1.6"),      // beats the any/0 one
		mk(ProtoTCP, "2001:db8::1", 443, "2001:db8:1::1"), // v6 exact
		mk(ProtoAny, "2001:db8::1", 0, "2001:db8:1::2"),   // v6 wildcard
		mk(ProtoUDP, "2001:db8::2", 4500, "2001:db8:1::3"),
	}
	snap := btApply(t, NewBalancer(1, 64), btCfg(svcs...))
	const tcp, udp, icmp, sctp = 6, 17, 1, 132
	cases := []struct {
		proto uint8
		dst   string
		port  uint16
		want  int // index into svcs, -1: none
	}{
		{tcp, "198.18.0.1", 80, 0},
		{tcp, "198.18.0.1", 81, 1},
		{tcp, "198.18.0.1", 1, 1},
		{tcp, "198.18.0.1", 65535, 1},
		{udp, "198.18.0.1", 80, -1},
		{icmp, "198.18.0.1", 0, -1},
		{tcp, "198.18.0.3", 53, 2},
		{udp, "198.18.0.3", 53, 3},
		{udp, "198.18.0.3", 54, -1},
		{tcp, "198.18.0.3", 0, -1},
		{icmp, "198.18.0.3", 53, -1},
		{tcp, "198.18.0.2", 22, 5},
		{udp, "198.18.0.2", 22, 4},
		{tcp, "198.18.0.2", 23, 4},
		{udp, "198.18.0.2", 65535, 4},
		{icmp, "198.18.0.2", 0, -1},
		{sctp, "198.18.0.2", 22, -1},
		{tcp, "198.18.0.4", 80, -1},
		{tcp, "198.18.1.1", 80, -1}, // a real is no VIP
		{tcp, "2001:db8::1", 443, 6},
		{udp, "2001:db8::1", 443, 7},
		{tcp, "2001:db8::1", 80, 7},
		{58, "2001:db8::1", 0, -1},
		{udp, "2001:db8::2", 4500, 8},
		{udp, "2001:db8::2", 500, -1},
		{tcp, "2001:db8::2", 4500, -1},
		{tcp, "2001:db8::3", 443, -1},
		{tcp, "::ffff:198.18.0.1", 80, -1}, // v4 VIP as a v6 address
	}
	for _, c := range cases {
		a, fam := btBytes(c.dst)
		got := snap.Classify(fam, c.proto, a, c.port)
		if c.want < 0 {
			if got != -1 {
				t.Errorf("Classify(%d %s:%d) = %d (%s), want -1", c.proto, c.dst, c.port, got, snap.Services[got].Key)
			}
			continue
		}
		if got < 0 || snap.Services[got].Key != svcs[c.want].Key() {
			t.Errorf("Classify(%d %s:%d) = %d, want service %s", c.proto, c.dst, c.port, got, svcs[c.want].Key())
		}
	}

	// Without wildcard services only exact matches hit.
	snap = btApply(t, NewBalancer(1, 64), btCfg(svcs[0], svcs[3], svcs[6]))
	for _, c := range []struct {
		proto uint8
		dst   string
		port  uint16
		want  int
	}{
		{tcp, "198.18.0.1", 80, 0}, {tcp, "198.18.0.1", 81, -1}, {tcp, "198.18.0.1", 0, -1},
		{udp, "198.18.0.3", 53, 1}, {tcp, "198.18.0.3", 53, -1},
		{tcp, "2001:db8::1", 443, 2}, {udp, "2001:db8::1", 443, -1},
	} {
		a, fam := btBytes(c.dst)
		got := snap.Classify(fam, c.proto, a, c.port)
		if c.want < 0 && got != -1 || c.want >= 0 && got != int32(c.want) {
			t.Errorf("exact only: Classify(%d %s:%d) = %d, want %d", c.proto, c.dst, c.port, got, c.want)
		}
	}
}

// natCfg has a v4 nat service with reals on another port, on port 0 (the
// service's) and a dr override, a dr service, a fullnat service and a v6
// nat service.
func natCfg() Config {
	return btCfg(
		Service{Proto: ProtoTCP, VIP: btAddr("198.18.0.10"), Port: 80, Method: MethodNAT, Reals: []Real{
			{Addr: btAddr("198.18.2.1"), Port: 8080, Weight: 1},
			{Addr: btAddr("198.18.2.2"), Weight: 1},
			{Addr: btAddr("198.18.2.3"), Weight: 1, Method: MethodDR},
		}},
		Service{Proto: ProtoUDP, VIP: btAddr("198.18.0.11"), Port: 53, Method: MethodDR, Reals: []Real{
			{Addr: btAddr("198.18.2.4"), Weight: 1},
			{Addr: btAddr("198.18.2.6"), Weight: 1, Method: MethodNAT},
		}},
		Service{Proto: ProtoTCP, VIP: btAddr("198.18.0.12"), Port: 443, Method: MethodFullNAT,
			LocalAddrs: []netip.Addr{btAddr("198.18.3.1")},
			Reals:      []Real{{Addr: btAddr("198.18.2.5"), Weight: 1}}},
		Service{Proto: ProtoTCP, VIP: btAddr("2001:db8::10"), Port: 80, Method: MethodNAT, Reals: []Real{
			{Addr: btAddr("2001:db8:2::1"), Port: 8080, Weight: 1},
		}},
	)
}

func TestSnapshotNATReal(t *testing.T) {
	snap := btApply(t, NewBalancer(1, 64), natCfg())
	const tcp, udp = 6, 17
	cases := []struct {
		proto uint8
		src   string
		port  uint16
		found bool
	}{
		{tcp, "198.18.2.1", 8080, true},
		{tcp, "198.18.2.1", 80, false},   // not the real's port
		{udp, "198.18.2.1", 8080, false}, // not the service's protocol
		{tcp, "198.18.2.2", 80, true},    // port 0: the service port
		{tcp, "198.18.2.2", 0, false},
		{tcp, "198.18.2.3", 80, false},  // dr override
		{udp, "198.18.2.4", 53, false},  // dr service
		{udp, "198.18.2.6", 53, true},   // nat override in a dr service
		{tcp, "198.18.2.5", 443, false}, // fullnat
		{tcp, "198.18.0.10", 80, false}, // the VIP
		{tcp, "2001:db8:2::1", 8080, true},
		{tcp, "2001:db8:2::1", 80, false},
		{tcp, "2001:db8:2::2", 8080, false},
	}
	for _, c := range cases {
		a, fam := btBytes(c.src)
		ri := snap.NATReal(fam, c.proto, a, c.port)
		if !c.found {
			if ri != -1 {
				t.Errorf("NATReal(%d %s:%d) = %d (%s), want -1", c.proto, c.src, c.port, ri, snap.Reals[ri].Key)
			}
			continue
		}
		if ri < 0 {
			t.Errorf("NATReal(%d %s:%d) = -1, want the nat real", c.proto, c.src, c.port)
			continue
		}
		r := &snap.Reals[ri]
		if r.Key.Addr != btAddr(c.src) || r.Method != MethodNAT {
			t.Errorf("NATReal(%d %s:%d) = %s (%s)", c.proto, c.src, c.port, r.Key, r.Method)
		}
		if sv := snap.Services[r.Svc]; sv.Key != r.Key.Service || sv.Proto != c.proto {
			t.Errorf("NATReal(%d %s:%d): real's service %s", c.proto, c.src, c.port, sv.Key)
		}
	}
}

// TestSnapshotNATRealProtoAny: a nat real of a proto-any service is indexed
// with protocol 0, but replies carry TCP or UDP, and NATReal (which the
// pipeline calls with the packet's protocol) has no fallback to protocol 0:
// replies of such services are never recognised (no hand-over to the owning
// worker, so with several workers they go to the slow path).
func TestSnapshotNATRealProtoAny(t *testing.T) {
	cfg := btCfg(Service{Proto: ProtoAny, VIP: btAddr("198.18.0.20"), Port: 80, Method: MethodNAT,
		Reals: []Real{{Addr: btAddr("198.18.2.20"), Port: 8080, Weight: 1}}})
	snap := btApply(t, NewBalancer(1, 64), cfg)
	a, fam := btBytes("198.18.2.20")
	for _, proto := range []uint8{6, 17} {
		if ri := snap.NATReal(fam, proto, a, 8080); ri < 0 || snap.Reals[ri].Key.Addr != btAddr("198.18.2.20") {
			t.Errorf("proto-any nat service: NATReal(proto %d, 198.18.2.20:8080) = %d, want the real", proto, ri)
		}
	}
}

// TestSnapshotNATRealPortZero: a nat real with port 0 on a port-0 (all
// ports) service answers from whatever port the client addressed, but it is
// indexed with port 0 only, so NATReal with the reply's source port misses.
func TestSnapshotNATRealPortZero(t *testing.T) {
	cfg := btCfg(Service{Proto: ProtoTCP, VIP: btAddr("198.18.0.21"), Port: 0, Method: MethodNAT,
		PersistTimeout: time.Minute,
		Reals:          []Real{{Addr: btAddr("198.18.2.21"), Weight: 1}}})
	snap := btApply(t, NewBalancer(1, 64), cfg)
	a, fam := btBytes("198.18.2.21")
	for _, port := range []uint16{80, 8443} {
		if ri := snap.NATReal(fam, 6, a, port); ri < 0 || snap.Reals[ri].Key.Addr != btAddr("198.18.2.21") {
			t.Errorf("port-0 nat service: NATReal(tcp 198.18.2.21:%d) = %d, want the real", port, ri)
		}
	}
}

func TestSnapshotLocalAddr(t *testing.T) {
	cfg := btCfg(
		Service{Proto: ProtoTCP, VIP: btAddr("198.18.0.30"), Port: 443, Method: MethodFullNAT,
			LocalAddrs: []netip.Addr{btAddr("198.18.3.1"), btAddr("2001:db8:3::9"), btAddr("198.18.3.2")},
			Reals:      []Real{{Addr: btAddr("198.18.2.30"), Weight: 1}}},
		Service{Proto: ProtoTCP, VIP: btAddr("2001:db8::30"), Port: 443, Method: MethodFullNAT,
			LocalAddrs: []netip.Addr{btAddr("2001:db8:3::1")},
			Reals:      []Real{{Addr: btAddr("2001:db8:2::30"), Weight: 1}}},
		btSvc("198.18.0.31", 80, MethodNAT, "198.18.2.31"),
	)
	snap := btApply(t, NewBalancer(1, 64), cfg)
	v4 := btSvcIdx(t, snap, cfg.Services[0].Key())
	v6 := btSvcIdx(t, snap, cfg.Services[1].Key())
	if n := len(snap.Services[v4].LocalAddrs); n != 2 {
		t.Errorf("v4 service has %d local addresses, want 2 (the v6 one left out)", n)
	}
	cases := []struct {
		addr string
		want int
	}{
		{"198.18.3.1", v4},
		{"198.18.3.2", v4},
		{"2001:db8:3::1", v6},
		{"2001:db8:3::9", -1}, // of a v4 service: not used
		{"198.18.0.30", -1},   // VIP
		{"198.18.2.30", -1},   // real
		{"198.18.3.3", -1},
		{"2001:db8:3::2", -1},
	}
	for _, c := range cases {
		a, fam := btBytes(c.addr)
		if got := snap.LocalAddr(fam, a); got != int32(c.want) {
			t.Errorf("LocalAddr(%s) = %d, want %d", c.addr, got, c.want)
		}
	}
	for i, la := range snap.Services[v4].LocalAddrs {
		if want, _ := btBytes([]string{"198.18.3.1", "198.18.3.2"}[i]); string(la[:4]) != string(want) {
			t.Errorf("LocalAddrs[%d] = %v, want %v (config order)", i, la[:4], want)
		}
	}
}

// TestSnapshotLocalAddrV4Mapped: Validate accepts a v4-mapped local address
// (::ffff:198.18.3.1) as "of the VIP's family" for a v4 fullnat service (it
// unmaps before checking), but does not unmap it in the config, and build
// takes it as IPv6 and leaves it out: the service passes validation with no
// SNAT address at all.
func TestSnapshotLocalAddrV4Mapped(t *testing.T) {
	cfg := btCfg(Service{Proto: ProtoTCP, VIP: btAddr("198.18.0.40"), Port: 443, Method: MethodFullNAT,
		LocalAddrs: []netip.Addr{btAddr("::ffff:198.18.3.40")},
		Reals:      []Real{{Addr: btAddr("198.18.2.40"), Weight: 1}}})
	snap := btApply(t, NewBalancer(1, 64), cfg)
	if n := len(snap.Services[0].LocalAddrs); n != 1 {
		t.Errorf("fullnat service has %d local addresses, want 1", n)
	}
	a, fam := btBytes("198.18.3.40")
	if got := snap.LocalAddr(fam, a); got != 0 {
		t.Errorf("LocalAddr(198.18.3.40) = %d, want 0", got)
	}
}

func TestSnapshotIsVIP(t *testing.T) {
	snap := btApply(t, NewBalancer(1, 64), natCfg())
	for _, c := range []struct {
		addr string
		want bool
	}{
		{"198.18.0.10", true}, {"198.18.0.11", true}, {"198.18.0.12", true}, {"2001:db8::10", true},
		{"198.18.0.13", false}, {"198.18.2.1", false}, {"198.18.3.1", false}, {"2001:db8:2::1", false},
		{"2001:db8::11", false}, {"::ffff:198.18.0.10", false},
	} {
		a, fam := btBytes(c.addr)
		if got := snap.IsVIP(fam, a); got != c.want {
			t.Errorf("IsVIP(%s) = %v, want %v", c.addr, got, c.want)
		}
	}
	// Family must match: the first 4 bytes of a v4 VIP under FamilyV6.
	a, _ := btBytes("198.18.0.10")
	if snap.IsVIP(FamilyV6, append(a, make([]byte, 12)...)) {
		t.Error("IsVIP(v6 198.18.0.10::) true")
	}
}

func TestSnapshotRealLookup(t *testing.T) {
	b := NewBalancer(1, 64)
	snap := btApply(t, b, natCfg())
	maxID := uint32(0)
	for i := range snap.Reals {
		r := &snap.Reals[i]
		if got := snap.Real(r.ID); got != r {
			t.Errorf("Real(%d) = %p, want &Reals[%d]", r.ID, got, i)
		}
		maxID = max(maxID, r.ID)
		if r.Method == MethodDefault {
			t.Errorf("real %s: method not resolved", r.Key)
		}
		if sv := snap.Services[r.Svc]; sv.Key != r.Key.Service {
			t.Errorf("real %s: Svc %d is %s", r.Key, r.Svc, sv.Key)
		}
	}
	for _, id := range []uint32{maxID + 1, maxID + 1000, 1 << 31, ^uint32(0)} {
		if r := snap.Real(id); r != nil {
			t.Errorf("Real(%d) = %+v, want nil", id, r)
		}
	}
	// Method resolution: default -> the service's, overrides kept.
	for addr, want := range map[string]Method{"198.18.2.1": MethodNAT, "198.18.2.3": MethodDR,
		"198.18.2.4": MethodDR, "198.18.2.6": MethodNAT, "198.18.2.5": MethodFullNAT} {
		var found bool
		for i := range snap.Reals {
			if r := &snap.Reals[i]; r.Key.Addr == btAddr(addr) {
				found = true
				if r.Method != want {
					t.Errorf("real %s: method %s, want %s", addr, r.Method, want)
				}
			}
		}
		if !found {
			t.Errorf("real %s missing", addr)
		}
	}
}

func TestSnapshotRealIdx(t *testing.T) {
	b := NewBalancer(2, 64)
	var svcs []Service
	for sv, sched := range []string{"rr", "wlc", "sh", "mh"} {
		s := Service{Proto: ProtoTCP, VIP: netip.AddrFrom4([4]byte{198, 18, 0, byte(50 + sv)}), Port: 80,
			Scheduler: sched, MaglevSize: 251, Method: MethodNAT}
		// Reverse address order, so that the scheduler's Hash order is
		// unlikely to be the config order.
		for r := 9; r >= 0; r-- {
			s.Reals = append(s.Reals, Real{Addr: netip.AddrFrom4([4]byte{198, 18, byte(10 + sv), byte(1 + r)}), Weight: 1 + r})
		}
		svcs = append(svcs, s)
	}
	svcs = append(svcs, btSvc("2001:db8::50", 443, MethodDR, "2001:db8:2::3", "2001:db8:2::1", "2001:db8:2::2"))
	cfg := btCfg(svcs...)
	check := func(what string, snap *Snapshot) {
		t.Helper()
		for si := range snap.Services {
			sv := &snap.Services[si]
			srs := sv.Sched.Reals()
			if len(srs) != len(sv.RealIdx) {
				t.Fatalf("%s: %s: %d sched reals, %d RealIdx", what, sv.Key, len(srs), len(sv.RealIdx))
			}
			seen := map[int32]bool{}
			for i, sr := range srs {
				ri := sv.RealIdx[i]
				if ri < 0 || int(ri) >= len(snap.Reals) || seen[ri] {
					t.Fatalf("%s: %s: RealIdx[%d] = %d", what, sv.Key, i, ri)
				}
				seen[ri] = true
				re := &snap.Reals[ri]
				// A removed real may be given weight 0 in the scheduler.
				if re.ID != sr.ID || re.Svc != int32(si) || re.Key.Service != sv.Key || !re.Removed && sr.Weight != re.Weight {
					t.Errorf("%s: %s: RealIdx[%d] -> %s id %d w %d, sched real id %d w %d",
						what, sv.Key, i, re.Key, re.ID, re.Weight, sr.ID, sr.Weight)
				}
				if sr.Hash != RealHash(re.Key.Addr, re.Key.Port) {
					t.Errorf("%s: %s: sched real %d hash differs from its RealEntry's", what, sv.Key, i)
				}
			}
		}
	}
	snap := btApply(t, b, cfg)
	check("initial", snap)

	// With draining reals in the mix.
	cut := cfg
	cut.Services = append([]Service(nil), cfg.Services...)
	for i := range cut.Services {
		cut.Services[i].Reals = cut.Services[i].Reals[1:]
	}
	snap = btApply(t, b, cut)
	check("draining", snap)
	removed := 0
	for i := range snap.Reals {
		if snap.Reals[i].Removed {
			removed++
		}
	}
	if removed != len(svcs) {
		t.Fatalf("%d removed reals in the snapshot, want %d", removed, len(svcs))
	}
}

func TestSnapshotOwned(t *testing.T) {
	mk := func(port uint16, m Method) Service {
		s := btSvc("198.18.0.60", port, m, "198.18.2.60")
		s.LocalAddrs = []netip.Addr{btAddr("198.18.3.60")}
		s.DSCP = 8
		return s
	}
	persistent := mk(4, MethodDR)
	persistent.PersistTimeout = time.Minute
	natReal := mk(5, MethodDR)
	natReal.Reals = append(natReal.Reals, Real{Addr: btAddr("198.18.2.61"), Weight: 1, Method: MethodNAT})
	fnatReal := mk(6, MethodTunnel)
	fnatReal.Reals = append(fnatReal.Reals, Real{Addr: btAddr("198.18.2.61"), Weight: 1, Method: MethodFullNAT})
	cases := []struct {
		svc  Service
		want bool
	}{
		{mk(1, MethodDR), false},
		{mk(2, MethodNAT), true},
		{mk(3, MethodFullNAT), true},
		{persistent, true},
		{natReal, true},
		{fnatReal, true},
		{mk(7, MethodL3DSR), false},
		{mk(8, MethodTunnel), false},
	}
	var svcs []Service
	for _, c := range cases {
		svcs = append(svcs, c.svc)
	}
	snap := btApply(t, NewBalancer(1, 64), btCfg(svcs...))
	for _, c := range cases {
		sv := snap.Services[btSvcIdx(t, snap, c.svc.Key())]
		if sv.Owned != c.want {
			t.Errorf("%s (%s, persist %d): Owned = %v, want %v", sv.Key, sv.Method, sv.PersistTimeout, sv.Owned, c.want)
		}
	}
}

func TestSnapshotServiceFields(t *testing.T) {
	s := btSvc("198.18.0.70", 80, MethodL3DSR, "198.18.2.70")
	s.DSCP, s.ClientPort, s.Flags, s.OnRemove = 12, 3, FlagHashPort|FlagFallback, RemoveDrop
	s.PersistTimeout, s.PersistMask = 1500*time.Millisecond, 20
	v6 := btSvc("2001:db8::70", 80, MethodDR, "2001:db8:2::70")
	v6.PersistTimeout, v6.PersistMask = time.Hour, 0
	plain := btSvc("198.18.0.71", 80, MethodDR, "198.18.2.71")
	plain.PersistMask = 24 // without a timeout: no mask
	cfg := btCfg(s, v6, plain)
	cfg.Timeouts = Timeouts{SynSent: 1, Established: 2, Fin: 3, Close: 4, UDP: 5, ICMP: 6}
	snap := btApply(t, NewBalancer(1, 64), cfg)
	if snap.Timeouts != cfg.Timeouts {
		t.Errorf("Timeouts = %+v, want %+v", snap.Timeouts, cfg.Timeouts)
	}
	e := snap.Services[0]
	vip, _ := btBytes("198.18.0.70")
	if e.Family != FamilyV4 || e.Proto != uint8(ProtoTCP) || e.Port != 80 || string(e.VIP[:4]) != string(vip) ||
		e.Method != MethodL3DSR || e.DSCP != 12 || e.ClientPort != 3 || e.Flags != FlagHashPort|FlagFallback ||
		e.OnRemove != RemoveDrop || e.Sched.Kind() != SchedRR || e.Sched.Flags() != FlagHashPort|FlagFallback {
		t.Errorf("service entry = %+v", e)
	}
	if e.PersistTimeout != 2 {
		t.Errorf("PersistTimeout 1.5s -> %d s, want 2 (rounded up)", e.PersistTimeout)
	}
	if want := [16]byte{0xff, 0xff, 0xf0}; e.PersistMask != want {
		t.Errorf("PersistMask /20 = %v", e.PersistMask)
	}
	e6 := snap.Services[1]
	var all [16]byte
	for i := range all {
		all[i] = 0xff
	}
	if e6.Family != FamilyV6 || e6.PersistTimeout != 3600 || e6.PersistMask != all {
		t.Errorf("v6 service: family %d persist %d mask %v (mask /0 = whole address)", e6.Family, e6.PersistTimeout, e6.PersistMask)
	}
	if e := snap.Services[2]; e.PersistTimeout != 0 || e.PersistMask != [16]byte{} || e.Sched.Kind() != SchedRR {
		t.Errorf("non-persistent service: %d %v", e.PersistTimeout, e.PersistMask)
	}
	// Zero Timeouts mean the defaults.
	cfg.Timeouts = Timeouts{}
	if snap := btApply(t, NewBalancer(1, 64), cfg); snap.Timeouts != DefaultTimeouts {
		t.Errorf("zero Timeouts -> %+v, want defaults", snap.Timeouts)
	}
	// The default scheduler reaches the snapshot.
	d := plain
	d.Scheduler = ""
	if snap := btApply(t, NewBalancer(1, 64), btCfg(d)); snap.Services[0].Sched.Kind() != SchedWLC || snap.Services[0].Method != MethodDR {
		t.Errorf("defaults: %s %s, want wlc dr", snap.Services[0].Sched.Kind(), snap.Services[0].Method)
	}
}
