// Package nokernel does for a port with no kernel behind it (DPDK) what the
// kernel would do: it answers ARP requests and IPv6 neighbour solicitations
// for gvs's addresses (VIPs, full-NAT local addresses, the port's own
// addresses), answers ICMP and ICMPv6 echo requests to VIPs, resolves the
// next hops of real servers itself (ARP requests and neighbour
// solicitations with timeouts, retries and counters), and tells everything
// else apart for the exception path (a TAP whose kernel side carries the
// host's own traffic: health checks, VRRP, BGP, ssh).
//
// It works on frames as bytes and never touches a driver: driver/dpdk feeds
// it the frames the pipeline left (pmd's slow path) and sends what it
// answers. A Host is safe for concurrent use (one mutex; none of this is on
// the fast path).
//
// Imports: standard library only.
package nokernel

import (
	"encoding/binary"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"
)

// Config configures a Host.
type Config struct {
	// MAC is the port's Ethernet address.
	MAC [6]byte
	// Addrs are the port's own addresses with their prefix lengths: gvs
	// answers ARP/ND for them, uses them as the source of its
	// solicitations, and their prefixes are on-link.
	Addrs []netip.Prefix
	// Gateways are the next hops of addresses that are not on-link (at
	// most one per family).
	Gateways []netip.Addr
	// KernelOwnsAddrs hands ICMP echo requests to the port's own
	// addresses to the exception path (the kernel behind the TAP has
	// them) instead of answering them.
	KernelOwnsAddrs bool
	// Retries is the number of solicitations before a neighbour is
	// declared unreachable (default 3); Timeout the wait for an answer
	// to each (default 1 s); Reachable how long an answer is trusted
	// before it is confirmed again (default 30 s); FailHold how long an
	// unreachable neighbour rests before it is tried again (default 5 s).
	Retries   int
	Timeout   time.Duration
	Reachable time.Duration
	FailHold  time.Duration
}

// Verdict says what to do with a frame after Input.
type Verdict uint8

// Verdicts.
const (
	Drop   Verdict = iota // consumed (learnt from) or not for this host: free it
	Reply                 // rewritten in place into an answer: transmit it on the port
	Kernel                // for the kernel: the exception path, if any
)

// State is a neighbour's resolution state.
type State uint8

// Neighbour states.
const (
	Unknown    State = iota
	Incomplete       // being resolved, no address yet
	Reachable        // resolved and confirmed recently
	Stale            // resolved, being confirmed again; still usable
	Failed           // no answer after Retries solicitations
)

func (s State) String() string {
	return [...]string{"unknown", "incomplete", "reachable", "stale", "failed"}[s]
}

// Usable reports whether a neighbour in this state has an address to use.
func (s State) Usable() bool { return s == Reachable || s == Stale }

// Stats are a Host's counters.
type Stats struct {
	ARPRequestsIn, ARPRepliesOut, ARPRepliesIn uint64
	NSIn, NAOut, NAIn                          uint64
	EchoReplies                                uint64
	SolicitsOut                                uint64 // ARP requests and neighbour solicitations sent
	Resolved                                   uint64 // neighbours that got an address
	Timeouts                                   uint64 // neighbours that went unanswered Retries times
	MACChanges                                 uint64
	ToKernel, NotForUs, Malformed, Unsupported uint64
	Neighbours, NeighboursUsable, Incompletes  int
}

type neighbour struct {
	mac       [6]byte
	state     State
	tries     int
	next      time.Time // when the next solicitation (or retry) is due
	confirmed time.Time
	unicast   bool // confirm a stale entry with a unicast solicitation
}

// Host is the kernel-less side of one port.
type Host struct {
	cfg Config

	mu       sync.Mutex
	answered map[netip.Addr]bool // VIPs and local addresses (SetAnswered)
	neigh    map[netip.Addr]*neighbour
	changed  chan struct{}

	arpReqIn, arpRepOut, arpRepIn atomic.Uint64
	nsIn, naOut, naIn             atomic.Uint64
	echo, solicits                atomic.Uint64
	resolved, timeouts, macChg    atomic.Uint64
	toKernel, notForUs, malformed atomic.Uint64
	unsupported                   atomic.Uint64
}

// New makes a Host.
func New(c Config) *Host {
	if c.Retries <= 0 {
		c.Retries = 3
	}
	if c.Timeout <= 0 {
		c.Timeout = time.Second
	}
	if c.Reachable <= 0 {
		c.Reachable = 30 * time.Second
	}
	if c.FailHold <= 0 {
		c.FailHold = 5 * time.Second
	}
	return &Host{cfg: c, answered: map[netip.Addr]bool{}, neigh: map[netip.Addr]*neighbour{}, changed: make(chan struct{}, 1)}
}

// MAC is the port's address.
func (h *Host) MAC() [6]byte { return h.cfg.MAC }

// SetAnswered replaces the addresses besides the port's own that the host
// answers ARP/ND and echo requests for (VIPs, full-NAT local addresses).
func (h *Host) SetAnswered(addrs []netip.Addr) {
	m := make(map[netip.Addr]bool, len(addrs))
	for _, a := range addrs {
		m[a.Unmap()] = true
	}
	h.mu.Lock()
	h.answered = m
	h.mu.Unlock()
}

// Changed is signalled when a neighbour's address is learnt, changes or is
// lost: next hops should be resolved again.
func (h *Host) Changed() <-chan struct{} { return h.changed }

func (h *Host) notify() {
	select {
	case h.changed <- struct{}{}:
	default:
	}
}

func (h *Host) own(a netip.Addr) bool {
	for _, p := range h.cfg.Addrs {
		if p.Addr() == a {
			return true
		}
	}
	return false
}

// answers reports whether the host answers neighbour requests for a.
// Called with mu held.
func (h *Host) answers(a netip.Addr) bool { return h.answered[a] || h.own(a) }

// NextHop returns the neighbour to send to for a: a itself when it is
// on-link, the gateway of its family otherwise.
func (h *Host) NextHop(a netip.Addr) (netip.Addr, bool) {
	a = a.Unmap()
	for _, p := range h.cfg.Addrs {
		if p.Contains(a) {
			return a, true
		}
	}
	for _, g := range h.cfg.Gateways {
		if g.Is4() == a.Is4() {
			return g, true
		}
	}
	return netip.Addr{}, false
}

// Neighbour returns what is known of the on-link address a. An address
// not known yet (or failed long enough ago) is queued for resolution: the
// solicitations come out of Solicit.
func (h *Host) Neighbour(a netip.Addr, now time.Time) ([6]byte, State) {
	a = a.Unmap()
	h.mu.Lock()
	defer h.mu.Unlock()
	n := h.neigh[a]
	if n == nil {
		n = &neighbour{state: Incomplete, next: now}
		h.neigh[a] = n
		return n.mac, n.state
	}
	if n.state == Failed && !now.Before(n.next) {
		n.state, n.tries, n.next = Incomplete, 0, now
	}
	return n.mac, n.state
}

// Tries reports how many solicitations went out for a in its current
// round.
func (h *Host) Tries(a netip.Addr) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	if n := h.neigh[a.Unmap()]; n != nil {
		return n.tries
	}
	return 0
}

// Forget drops neighbours not in keep (next hops no longer used).
func (h *Host) Forget(keep map[netip.Addr]bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for a := range h.neigh {
		if !keep[a] {
			delete(h.neigh, a)
		}
	}
}

// learn records that ip is at mac (from an answer or a request of its
// own); only neighbours gvs asked for are kept.
func (h *Host) learn(ip netip.Addr, mac [6]byte, now time.Time) {
	if mac == ([6]byte{}) || mac[0]&1 != 0 {
		return
	}
	h.mu.Lock()
	n := h.neigh[ip]
	if n == nil {
		h.mu.Unlock()
		return
	}
	was := n.state
	changed := !was.Usable() || n.mac != mac
	if was.Usable() && n.mac != mac {
		h.macChg.Add(1)
	}
	if !was.Usable() {
		h.resolved.Add(1)
	}
	n.mac, n.state, n.tries, n.confirmed, n.unicast = mac, Reachable, 0, now, false
	n.next = now.Add(h.cfg.Reachable)
	h.mu.Unlock()
	if changed {
		h.notify()
	}
}

// Solicit writes the next due solicitation (an ARP request or a neighbour
// solicitation, at least 60 bytes, into buf, which must hold 86) and
// returns its length; 0 when none is due. It also moves neighbours whose
// solicitations went unanswered to Failed.
func (h *Host) Solicit(buf []byte, now time.Time) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	for a, n := range h.neigh {
		if now.Before(n.next) {
			continue
		}
		switch n.state {
		case Reachable:
			// Confirm it again, still using it meanwhile.
			n.state, n.tries, n.unicast = Stale, 0, true
		case Failed:
			continue
		}
		if n.tries >= h.cfg.Retries {
			lost := n.state.Usable()
			n.state, n.next, n.mac = Failed, now.Add(h.cfg.FailHold), [6]byte{}
			h.timeouts.Add(1)
			if lost {
				h.notify()
			}
			continue
		}
		src, ok := h.source(a)
		if !ok {
			continue
		}
		var dst [6]byte
		if n.unicast {
			dst = n.mac
		}
		var l int
		if a.Is4() {
			l = h.arpRequest(buf, src, a, dst)
		} else {
			l = h.nsRequest(buf, src, a, dst)
		}
		n.tries++
		n.next = now.Add(h.cfg.Timeout)
		h.solicits.Add(1)
		return l
	}
	return 0
}

// source picks the port's address to solicit a from: one whose prefix
// holds a, else any of its family.
func (h *Host) source(a netip.Addr) (netip.Addr, bool) {
	var any netip.Addr
	for _, p := range h.cfg.Addrs {
		if p.Addr().Is4() != a.Is4() {
			continue
		}
		if p.Contains(a) {
			return p.Addr(), true
		}
		if !any.IsValid() {
			any = p.Addr()
		}
	}
	if any.IsValid() {
		return any, true
	}
	if a.Is4() {
		return netip.IPv4Unspecified(), true // ARP probe
	}
	return netip.Addr{}, false
}

// Neighbours lists the neighbour table (for status output and tests).
func (h *Host) Neighbours() map[netip.Addr]State {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make(map[netip.Addr]State, len(h.neigh))
	for a, n := range h.neigh {
		out[a] = n.state
	}
	return out
}

// Stats returns the counters.
func (h *Host) Stats() Stats {
	s := Stats{
		ARPRequestsIn: h.arpReqIn.Load(), ARPRepliesOut: h.arpRepOut.Load(), ARPRepliesIn: h.arpRepIn.Load(),
		NSIn: h.nsIn.Load(), NAOut: h.naOut.Load(), NAIn: h.naIn.Load(),
		EchoReplies: h.echo.Load(), SolicitsOut: h.solicits.Load(),
		Resolved: h.resolved.Load(), Timeouts: h.timeouts.Load(), MACChanges: h.macChg.Load(),
		ToKernel: h.toKernel.Load(), NotForUs: h.notForUs.Load(), Malformed: h.malformed.Load(), Unsupported: h.unsupported.Load(),
	}
	h.mu.Lock()
	for _, n := range h.neigh {
		s.Neighbours++
		if n.state.Usable() {
			s.NeighboursUsable++
		}
		if n.state == Incomplete {
			s.Incompletes++
		}
	}
	h.mu.Unlock()
	return s
}

const (
	etherARP  = 0x0806
	etherIPv4 = 0x0800
	etherIPv6 = 0x86dd
)

// Input looks at a frame the pipeline left: frame is the packet's bytes
// with room behind them (cap), n its length. It learns neighbours from
// ARP and neighbour advertisements, rewrites requests it answers into
// their replies (in place; the new length is returned), and says whether
// the frame goes to the kernel or away.
func (h *Host) Input(frame []byte, n int, now time.Time) (Verdict, int) {
	if n < 14 || n > len(frame) {
		h.malformed.Add(1)
		return Drop, n
	}
	b := frame[:n]
	if b[0]&1 == 0 && [6]byte(b[0:6]) != h.cfg.MAC {
		h.notForUs.Add(1)
		return Drop, n
	}
	switch binary.BigEndian.Uint16(b[12:]) {
	case etherARP:
		return h.arp(b, now)
	case etherIPv4:
		return h.ipv4(b)
	case etherIPv6:
		return h.ipv6(frame, n, now)
	}
	return h.kernel(n)
}

func (h *Host) kernel(n int) (Verdict, int) {
	h.toKernel.Add(1)
	return Kernel, n
}

// arp handles an ARP frame (Ethernet/IPv4 only).
func (h *Host) arp(b []byte, now time.Time) (Verdict, int) {
	if len(b) < 42 {
		h.malformed.Add(1)
		return Drop, len(b)
	}
	a := b[14:]
	if binary.BigEndian.Uint16(a[0:]) != 1 || binary.BigEndian.Uint16(a[2:]) != etherIPv4 || a[4] != 6 || a[5] != 4 {
		h.unsupported.Add(1)
		return h.kernel(len(b))
	}
	op := binary.BigEndian.Uint16(a[6:])
	sha := [6]byte(a[8:14])
	spa := netip.AddrFrom4([4]byte(a[14:18]))
	tpa := netip.AddrFrom4([4]byte(a[24:28]))
	h.learn(spa, sha, now)
	switch op {
	case 1:
		h.arpReqIn.Add(1)
		h.mu.Lock()
		ours := h.answers(tpa)
		h.mu.Unlock()
		if !ours || spa == tpa {
			return h.kernel(len(b))
		}
		// Reply in place.
		copy(b[0:6], b[6:12])
		copy(b[6:12], h.cfg.MAC[:])
		binary.BigEndian.PutUint16(a[6:], 2)
		copy(a[18:24], sha[:])
		copy(a[24:28], a[14:18])
		copy(a[8:14], h.cfg.MAC[:])
		t4 := tpa.As4()
		copy(a[14:18], t4[:])
		h.arpRepOut.Add(1)
		return Reply, len(b)
	case 2:
		h.arpRepIn.Add(1)
	}
	return h.kernel(len(b))
}

// ipv4 answers echo requests to answered addresses.
func (h *Host) ipv4(b []byte) (Verdict, int) {
	if len(b) < 34 || b[14]>>4 != 4 {
		h.malformed.Add(1)
		return Drop, len(b)
	}
	ip := b[14:]
	hl := int(ip[0]&15) * 4
	tot := int(binary.BigEndian.Uint16(ip[2:]))
	if hl < 20 || tot < hl+8 || 14+tot > len(b) || ip[9] != 1 || binary.BigEndian.Uint16(ip[6:])&0x3fff != 0 {
		return h.kernel(len(b))
	}
	icmp := ip[hl:tot]
	dst := netip.AddrFrom4([4]byte(ip[16:20]))
	if icmp[0] != 8 || icmp[1] != 0 || !h.echoFor(dst) {
		return h.kernel(len(b))
	}
	// Echo reply: swap addresses and MACs, type 0, TTL 64.
	var t [6]byte
	copy(t[:], b[0:6])
	copy(b[0:6], b[6:12])
	copy(b[6:12], t[:])
	var s4 [4]byte
	copy(s4[:], ip[12:16])
	copy(ip[12:16], ip[16:20])
	copy(ip[16:20], s4[:])
	ip[8] = 64
	ip[10], ip[11] = 0, 0
	binary.BigEndian.PutUint16(ip[10:], checksum(0, ip[:hl]))
	icmp[0] = 0
	icmp[2], icmp[3] = 0, 0
	binary.BigEndian.PutUint16(icmp[2:], checksum(0, icmp))
	h.echo.Add(1)
	return Reply, 14 + tot
}

// echoFor reports whether gvs answers echo requests to a itself.
func (h *Host) echoFor(a netip.Addr) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.answered[a] {
		return true
	}
	return !h.cfg.KernelOwnsAddrs && h.own(a)
}

// ipv6 handles neighbour discovery and echo requests to answered
// addresses. frame has room behind the packet for a longer answer.
func (h *Host) ipv6(frame []byte, n int, now time.Time) (Verdict, int) {
	b := frame[:n]
	if len(b) < 54 || b[14]>>4 != 6 {
		h.malformed.Add(1)
		return Drop, n
	}
	ip := b[14:]
	plen := int(binary.BigEndian.Uint16(ip[4:]))
	if ip[6] != 58 || 54+plen > len(b) || plen < 8 {
		return h.kernel(n)
	}
	src := netip.AddrFrom16([16]byte(ip[8:24]))
	dst := netip.AddrFrom16([16]byte(ip[24:40]))
	icmp := ip[40 : 40+plen]
	switch icmp[0] {
	case 135: // neighbour solicitation
		if ip[7] != 255 || plen < 24 {
			h.malformed.Add(1)
			return Drop, n
		}
		h.nsIn.Add(1)
		target := netip.AddrFrom16([16]byte(icmp[8:24]))
		if mac, ok := llOption(icmp[24:], 1); ok && !src.IsUnspecified() {
			h.learn(src, mac, now)
		}
		h.mu.Lock()
		ours := h.answers(target)
		h.mu.Unlock()
		if !ours || src.IsUnspecified() {
			return h.kernel(n)
		}
		if len(frame) < 14+40+32 {
			return h.kernel(n)
		}
		return Reply, h.naReply(frame, target, src, [6]byte(b[6:12]))
	case 136: // neighbour advertisement
		if ip[7] != 255 || plen < 24 {
			h.malformed.Add(1)
			return Drop, n
		}
		h.naIn.Add(1)
		target := netip.AddrFrom16([16]byte(icmp[8:24]))
		mac, ok := llOption(icmp[24:], 2)
		if !ok {
			mac = [6]byte(b[6:12])
		}
		h.learn(target, mac, now)
		return h.kernel(n)
	case 128: // echo request
		if icmp[1] != 0 || !h.echoFor(dst) {
			return h.kernel(n)
		}
		var t [6]byte
		copy(t[:], b[0:6])
		copy(b[0:6], b[6:12])
		copy(b[6:12], t[:])
		var s16 [16]byte
		copy(s16[:], ip[8:24])
		copy(ip[8:24], ip[24:40])
		copy(ip[24:40], s16[:])
		ip[7] = 64
		icmp[0] = 129
		icmp[2], icmp[3] = 0, 0
		binary.BigEndian.PutUint16(icmp[2:], checksum(pseudo6(ip[8:24], ip[24:40], plen), icmp))
		h.echo.Add(1)
		return Reply, 54 + plen
	}
	return h.kernel(n)
}

// llOption finds a source (1) or target (2) link-layer address option.
func llOption(opts []byte, kind byte) ([6]byte, bool) {
	for len(opts) >= 8 {
		l := int(opts[1]) * 8
		if l == 0 || l > len(opts) {
			break
		}
		if opts[0] == kind && l >= 8 {
			return [6]byte(opts[2:8]), true
		}
		opts = opts[l:]
	}
	return [6]byte{}, false
}

// naReply writes a solicited neighbour advertisement for target to dst
// (at dstMAC) into frame and returns its length.
func (h *Host) naReply(frame []byte, target, dst netip.Addr, dstMAC [6]byte) int {
	b := frame[:14+40+32]
	copy(b[0:6], dstMAC[:])
	copy(b[6:12], h.cfg.MAC[:])
	binary.BigEndian.PutUint16(b[12:], etherIPv6)
	ip := b[14:]
	ip[0], ip[1], ip[2], ip[3] = 0x60, 0, 0, 0
	binary.BigEndian.PutUint16(ip[4:], 32)
	ip[6], ip[7] = 58, 255
	t16, d16 := target.As16(), dst.As16()
	copy(ip[8:24], t16[:])
	copy(ip[24:40], d16[:])
	icmp := ip[40:72]
	for i := range icmp {
		icmp[i] = 0
	}
	icmp[0] = 136
	icmp[4] = 0x60 // solicited, override
	copy(icmp[8:24], t16[:])
	icmp[24], icmp[25] = 2, 1
	copy(icmp[26:32], h.cfg.MAC[:])
	binary.BigEndian.PutUint16(icmp[2:], checksum(pseudo6(ip[8:24], ip[24:40], 32), icmp))
	h.naOut.Add(1)
	return len(b)
}

// arpRequest writes an ARP request for target from src into buf (padded to
// 60 bytes). dst is the Ethernet destination (zero: broadcast).
func (h *Host) arpRequest(buf []byte, src, target netip.Addr, dst [6]byte) int {
	b := buf[:60]
	for i := range b {
		b[i] = 0
	}
	if dst == ([6]byte{}) {
		dst = [6]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}
	}
	copy(b[0:6], dst[:])
	copy(b[6:12], h.cfg.MAC[:])
	binary.BigEndian.PutUint16(b[12:], etherARP)
	a := b[14:]
	binary.BigEndian.PutUint16(a[0:], 1)
	binary.BigEndian.PutUint16(a[2:], etherIPv4)
	a[4], a[5] = 6, 4
	binary.BigEndian.PutUint16(a[6:], 1)
	copy(a[8:14], h.cfg.MAC[:])
	s4, t4 := src.As4(), target.As4()
	copy(a[14:18], s4[:])
	copy(a[24:28], t4[:])
	return 60
}

// nsRequest writes a neighbour solicitation for target from src into buf
// (86 bytes): to the solicited-node multicast group, or to dst when set.
func (h *Host) nsRequest(buf []byte, src, target netip.Addr, dst [6]byte) int {
	b := buf[:86]
	for i := range b {
		b[i] = 0
	}
	t16, s16 := target.As16(), src.As16()
	var d16 [16]byte
	if dst == ([6]byte{}) {
		d16 = [16]byte{0xff, 0x02, 11: 0x01, 12: 0xff, 13: t16[13], 14: t16[14], 15: t16[15]}
		dst = [6]byte{0x33, 0x33, 0xff, t16[13], t16[14], t16[15]}
	} else {
		d16 = t16
	}
	copy(b[0:6], dst[:])
	copy(b[6:12], h.cfg.MAC[:])
	binary.BigEndian.PutUint16(b[12:], etherIPv6)
	ip := b[14:]
	ip[0] = 0x60
	binary.BigEndian.PutUint16(ip[4:], 32)
	ip[6], ip[7] = 58, 255
	copy(ip[8:24], s16[:])
	copy(ip[24:40], d16[:])
	icmp := ip[40:72]
	icmp[0] = 135
	copy(icmp[8:24], t16[:])
	icmp[24], icmp[25] = 1, 1
	copy(icmp[26:32], h.cfg.MAC[:])
	binary.BigEndian.PutUint16(icmp[2:], checksum(pseudo6(ip[8:24], ip[24:40], 32), icmp))
	return 86
}

func pseudo6(src, dst []byte, l int) uint32 {
	var s uint32
	for i := 0; i < 16; i += 2 {
		s += uint32(binary.BigEndian.Uint16(src[i:])) + uint32(binary.BigEndian.Uint16(dst[i:]))
	}
	return s + uint32(l) + 58
}

// checksum is the Internet checksum of b added to sum.
func checksum(sum uint32, b []byte) uint16 {
	for len(b) >= 2 {
		sum += uint32(binary.BigEndian.Uint16(b))
		b = b[2:]
	}
	if len(b) == 1 {
		sum += uint32(b[0]) << 8
	}
	for sum>>16 != 0 {
		sum = sum&0xffff + sum>>16
	}
	return ^uint16(sum)
}
