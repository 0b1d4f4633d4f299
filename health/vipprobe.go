package health

import (
	"context"
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
)

// vipHalfOpenChecker is the tcp-halfopen check of a target with a VIP: it
// proves that a DSR real answers on the VIP, as the dataplane's dr method
// will use it. The SYN goes to VIP:port inside an Ethernet frame addressed
// to the real's MAC (built by hand, sent on an AF_PACKET socket), exactly
// as gvs forwards a client's SYN; success is a SYN/ACK from VIP:port, which
// only a real holding the VIP (on lo, with arp_ignore/arp_announce) and
// listening on it sends. gvs resets the half-open connection at once, in a
// frame to the real's MAC as well.
//
// The real's MAC comes from the kernel's neighbour table, or, when the
// entry is missing or failed, from an ARP request / neighbour solicitation
// of our own. The real must be on-link on Interface (or the interface the
// route to it leaves by). Replies are taken from an AF_PACKET socket with a
// BPF filter on VIP:port → our port, so the probe sees them even when the
// kernel drops them (VIP also local, rp_filter).
type vipHalfOpenChecker struct {
	real    netip.Addr
	vip     netip.AddrPort
	src     netip.Addr
	iface   string
	timeout time.Duration
}

func newVIPHalfOpenChecker(c Check, t *Target) *vipHalfOpenChecker {
	return &vipHalfOpenChecker{
		real:    t.Addr,
		vip:     netip.AddrPortFrom(t.VIP, c.Port),
		src:     c.Source,
		iface:   c.Interface,
		timeout: c.Timeout,
	}
}

func (c *vipHalfOpenChecker) String() string {
	return fmt.Sprintf("tcp half-open to %s via real %s", c.vip, c.real)
}

// Check sends the SYN to the VIP through the real and waits for the answer.
func (c *vipHalfOpenChecker) Check(ctx context.Context) Result {
	start := time.Now()
	what := fmt.Sprintf("SYN to %s via %s", c.vip, c.real)
	link, gw, err := outLink(c.iface, c.real)
	if err != nil {
		return fail(start, "%s: %v", what, err)
	}
	a := link.Attrs()
	if gw.IsValid() {
		return fail(start, "%s: real not on-link (routed via %s on %s)", what, gw, a.Name)
	}
	if len(a.HardwareAddr) != 6 {
		return fail(start, "%s: interface %s has no Ethernet address", what, a.Name)
	}
	src, err := sourceFor(c.src, c.real)
	if err != nil {
		return fail(start, "%s: %v", what, err)
	}
	mac, err := neighMAC(link, c.real)
	if err != nil {
		if mac, err = resolveMAC(ctx, link, c.src, c.real, c.timeout); err != nil {
			return fail(start, "%s: resolve the real's MAC on %s: %v", what, a.Name, err)
		}
	}
	rfd, sport, err := reservePort(src)
	if err != nil {
		return fail(start, "%s: %v", what, err)
	}
	defer unix.Close(rfd)
	local := netip.AddrPortFrom(src, sport)

	pc, err := listenPacket(unix.SOCK_RAW, a.Index, unix.ETH_P_ALL, replyFilter(c.vip, sport))
	if err != nil {
		return fail(start, "%s: %v", what, err)
	}
	defer pc.Close()
	pc.SetDeadline(deadline(ctx, c.timeout))

	iss := randUint32()
	frame := ethFrame(a.HardwareAddr, mac, local, c.vip, tcpSegment(local, c.vip, iss, 0, tcpSYN))
	if err := pc.WriteTo(frame, a.Index, etherType(src), mac); err != nil {
		return fail(start, "%s: send: %s", what, describe(err, c.timeout))
	}
	buf := make([]byte, 2048)
	for {
		n, err := pc.Read(buf)
		if err != nil {
			return fail(start, "%s: no SYN/ACK from the VIP: %s", what, describe(err, c.timeout))
		}
		h, ok := frameTCP(buf[:n], c.vip.Addr())
		if !ok || h.sport != c.vip.Port() || h.dport != sport {
			continue
		}
		if r := judgeSYNReply(h, iss); r != "" {
			if h.flags&tcpRST != 0 {
				return fail(start, "%s: %s", what, r)
			}
			rst := ethFrame(a.HardwareAddr, mac, local, c.vip, tcpSegment(local, c.vip, iss+1, 0, tcpRST))
			pc.WriteTo(rst, a.Index, etherType(src), mac)
			return pass(start, "%s (MAC %s): %s", what, mac, r)
		}
	}
}

// neighMAC looks addr up in the kernel's neighbour table of link.
func neighMAC(link netlink.Link, addr netip.Addr) (net.HardwareAddr, error) {
	fam := netlink.FAMILY_V4
	if addr.Is6() {
		fam = netlink.FAMILY_V6
	}
	ns, err := netlink.NeighList(link.Attrs().Index, fam)
	if err != nil {
		return nil, err
	}
	for _, n := range ns {
		ip, ok := netip.AddrFromSlice(n.IP)
		if !ok || ip.Unmap() != addr || len(n.HardwareAddr) != 6 {
			continue
		}
		if n.State&(netlink.NUD_REACHABLE|netlink.NUD_STALE|netlink.NUD_DELAY|netlink.NUD_PROBE|netlink.NUD_PERMANENT) != 0 {
			return n.HardwareAddr, nil
		}
	}
	return nil, fmt.Errorf("no neighbour entry for %s", addr)
}

func etherType(a netip.Addr) uint16 {
	if a.Is6() {
		return unix.ETH_P_IPV6
	}
	return unix.ETH_P_IP
}

// ethFrame wraps the TCP segment seg from src to dst in IP and Ethernet.
func ethFrame(from, to net.HardwareAddr, src, dst netip.AddrPort, seg []byte) []byte {
	b := make([]byte, 14, 14+40+len(seg))
	copy(b[0:6], to)
	copy(b[6:12], from)
	binary.BigEndian.PutUint16(b[12:], etherType(src.Addr()))
	if src.Addr().Is4() {
		ip := make([]byte, 20)
		ip[0] = 0x45
		binary.BigEndian.PutUint16(ip[2:], uint16(20+len(seg)))
		binary.BigEndian.PutUint16(ip[4:], uint16(randUint32()))
		ip[6] = 0x40 // DF
		ip[8], ip[9] = 64, 6
		s, d := src.Addr().As4(), dst.Addr().As4()
		copy(ip[12:16], s[:])
		copy(ip[16:20], d[:])
		binary.BigEndian.PutUint16(ip[10:], checksum(0, ip))
		b = append(b, ip...)
	} else {
		ip := make([]byte, 40)
		ip[0] = 0x60
		binary.BigEndian.PutUint16(ip[4:], uint16(len(seg)))
		ip[6], ip[7] = 6, 64
		s, d := src.Addr().As16(), dst.Addr().As16()
		copy(ip[8:24], s[:])
		copy(ip[24:40], d[:])
		b = append(b, ip...)
	}
	return append(b, seg...)
}

// frameTCP parses an Ethernet frame carrying TCP from src (IPv6: without
// extension headers).
func frameTCP(f []byte, src netip.Addr) (tcpHeader, bool) {
	if len(f) < 14 {
		return tcpHeader{}, false
	}
	p := f[14:]
	switch binary.BigEndian.Uint16(f[12:]) {
	case unix.ETH_P_IP:
		if len(p) < 20 || p[9] != 6 {
			return tcpHeader{}, false
		}
		if a, _ := netip.AddrFromSlice(p[12:16]); a != src {
			return tcpHeader{}, false
		}
		return parseTCP(stripIPv4(p))
	case unix.ETH_P_IPV6:
		if len(p) < 40 || p[6] != 6 {
			return tcpHeader{}, false
		}
		if a, _ := netip.AddrFromSlice(p[8:24]); a != src {
			return tcpHeader{}, false
		}
		return parseTCP(p[40:])
	}
	return tcpHeader{}, false
}

// replyFilter is a classic BPF program passing only TCP frames from vip to
// our port dport (IPv6: without extension headers), so the probe's
// AF_PACKET socket copies nothing else of the interface's traffic.
func replyFilter(vip netip.AddrPort, dport uint16) []bpf.Instruction {
	drop := bpf.RetConstant{Val: 0}
	keep := bpf.RetConstant{Val: 0xffff}
	if vip.Addr().Is4() {
		v := vip.Addr().As4()
		return []bpf.Instruction{
			bpf.LoadAbsolute{Off: 12, Size: 2},
			bpf.JumpIf{Cond: bpf.JumpNotEqual, Val: unix.ETH_P_IP, SkipTrue: 10},
			bpf.LoadAbsolute{Off: 23, Size: 1},
			bpf.JumpIf{Cond: bpf.JumpNotEqual, Val: 6, SkipTrue: 8},
			bpf.LoadAbsolute{Off: 26, Size: 4},
			bpf.JumpIf{Cond: bpf.JumpNotEqual, Val: binary.BigEndian.Uint32(v[:]), SkipTrue: 6},
			bpf.LoadMemShift{Off: 14},
			bpf.LoadIndirect{Off: 14, Size: 2},
			bpf.JumpIf{Cond: bpf.JumpNotEqual, Val: uint32(vip.Port()), SkipTrue: 3},
			bpf.LoadIndirect{Off: 16, Size: 2},
			bpf.JumpIf{Cond: bpf.JumpNotEqual, Val: uint32(dport), SkipTrue: 1},
			keep,
			drop,
		}
	}
	v := vip.Addr().As16()
	prog := []bpf.Instruction{
		bpf.LoadAbsolute{Off: 12, Size: 2},
		bpf.JumpIf{Cond: bpf.JumpNotEqual, Val: unix.ETH_P_IPV6, SkipTrue: 15},
		bpf.LoadAbsolute{Off: 20, Size: 1},
		bpf.JumpIf{Cond: bpf.JumpNotEqual, Val: 6, SkipTrue: 13},
	}
	for i := 0; i < 4; i++ {
		prog = append(prog,
			bpf.LoadAbsolute{Off: uint32(22 + 4*i), Size: 4},
			bpf.JumpIf{Cond: bpf.JumpNotEqual, Val: binary.BigEndian.Uint32(v[4*i:]), SkipTrue: uint8(11 - 2*i)},
		)
	}
	return append(prog,
		bpf.LoadAbsolute{Off: 54, Size: 2},
		bpf.JumpIf{Cond: bpf.JumpNotEqual, Val: uint32(vip.Port()), SkipTrue: 3},
		bpf.LoadAbsolute{Off: 56, Size: 2},
		bpf.JumpIf{Cond: bpf.JumpNotEqual, Val: uint32(dport), SkipTrue: 1},
		keep,
		drop,
	)
}
