package health

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"syscall"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/net/bpf"
	"golang.org/x/net/icmp"
	"golang.org/x/net/ipv6"
	"golang.org/x/sys/unix"
)

// arpChecker is the arp check (L2): an ARP request for the real's IPv4
// address, or a neighbour solicitation for its IPv6 address, sent on the
// interface the real is reached by; success on the reply, which names the
// real's MAC. The request goes out whatever the kernel's neighbour cache
// holds, so a stale or permanent entry does not hide a missing host.
//
// IPv4 uses an AF_PACKET socket (link-layer broadcast, sender address
// Source or the interface's address, or 0.0.0.0 as an RFC 5227 probe);
// IPv6 a raw ICMPv6 socket bound to the interface (hop limit 255, to the
// solicited-node multicast address, from the interface's link-local
// address unless Source is set).
type arpChecker struct {
	addr    netip.Addr
	src     netip.Addr
	iface   string
	timeout time.Duration
}

func newARPChecker(c Check, t *Target) *arpChecker {
	return &arpChecker{addr: t.Addr, src: c.Source, iface: c.Interface, timeout: c.Timeout}
}

func (c *arpChecker) String() string {
	verb := "arp who-has"
	if c.addr.Is6() {
		verb = "ndp solicit"
	}
	on := ""
	if c.iface != "" {
		on = " on " + c.iface
	}
	return fmt.Sprintf("%s %s%s", verb, c.addr, on)
}

// Check asks for the real's link-layer address.
func (c *arpChecker) Check(ctx context.Context) Result {
	start := time.Now()
	verb := "arp who-has"
	if c.addr.Is6() {
		verb = "ndp solicit"
	}
	link, gw, err := outLink(c.iface, c.addr)
	if err != nil {
		return fail(start, "%s %s: %v", verb, c.addr, err)
	}
	name := link.Attrs().Name
	if gw.IsValid() {
		return fail(start, "%s %s: not on-link (routed via %s on %s): set the check's interface", verb, c.addr, gw, name)
	}
	mac, err := resolveMAC(ctx, link, c.src, c.addr, c.timeout)
	if err != nil {
		return fail(start, "%s %s on %s: %v", verb, c.addr, name, err)
	}
	return pass(start, "%s is at %s on %s", c.addr, mac, name)
}

// resolveMAC asks for dst's hardware address on link (ARP or NDP) and
// waits for the answer until ctx's deadline.
func resolveMAC(ctx context.Context, link netlink.Link, src, dst netip.Addr, timeout time.Duration) (net.HardwareAddr, error) {
	if !src.IsValid() {
		src = linkAddr(link, dst)
	}
	if dst.Is4() {
		return arpResolve(ctx, link, src, dst, timeout)
	}
	return ndpResolve(ctx, link, src, dst, timeout)
}

// ARP (RFC 826) over Ethernet: opcodes and the payload size.
const (
	arpRequest = 1
	arpReply   = 2
	arpLen     = 28
)

func arpResolve(ctx context.Context, link netlink.Link, src, dst netip.Addr, timeout time.Duration) (net.HardwareAddr, error) {
	a := link.Attrs()
	if len(a.HardwareAddr) != 6 {
		return nil, fmt.Errorf("interface %s has no Ethernet address", a.Name)
	}
	if !src.Is4() {
		src = netip.IPv4Unspecified() // RFC 5227 probe
	}
	d := dst.As4()
	// Replies (opcode 2) whose sender is dst; SOCK_DGRAM: offsets from the
	// ARP header.
	prog := []bpf.Instruction{
		bpf.LoadAbsolute{Off: 6, Size: 2},
		bpf.JumpIf{Cond: bpf.JumpNotEqual, Val: arpReply, SkipTrue: 3},
		bpf.LoadAbsolute{Off: 14, Size: 4},
		bpf.JumpIf{Cond: bpf.JumpNotEqual, Val: binary.BigEndian.Uint32(d[:]), SkipTrue: 1},
		bpf.RetConstant{Val: 0xffff},
		bpf.RetConstant{Val: 0},
	}
	pc, err := listenPacket(unix.SOCK_DGRAM, a.Index, unix.ETH_P_ARP, prog)
	if err != nil {
		return nil, err
	}
	defer pc.Close()
	pc.SetDeadline(deadline(ctx, timeout))

	req := make([]byte, arpLen)
	binary.BigEndian.PutUint16(req[0:], 1)      // Ethernet
	binary.BigEndian.PutUint16(req[2:], 0x0800) // IPv4
	req[4], req[5] = 6, 4
	binary.BigEndian.PutUint16(req[6:], arpRequest)
	copy(req[8:14], a.HardwareAddr)
	s := src.As4()
	copy(req[14:18], s[:])
	copy(req[24:28], d[:])
	bcast := net.HardwareAddr{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}
	if err := pc.WriteTo(req, a.Index, unix.ETH_P_ARP, bcast); err != nil {
		return nil, fmt.Errorf("send request: %s", describe(err, timeout))
	}
	buf := make([]byte, 128)
	for {
		n, err := pc.Read(buf)
		if err != nil {
			return nil, fmt.Errorf("no reply: %s", describe(err, timeout))
		}
		if n < arpLen || binary.BigEndian.Uint16(buf[6:]) != arpReply || !bytes.Equal(buf[14:18], d[:]) {
			continue
		}
		return net.HardwareAddr(bytes.Clone(buf[8:14])), nil
	}
}

// solicitedNode is the solicited-node multicast address of a (RFC 4291).
func solicitedNode(a netip.Addr) netip.Addr {
	b := a.As16()
	m := [16]byte{0xff, 0x02, 10: 0, 11: 1, 12: 0xff, 13: b[13], 14: b[14], 15: b[15]}
	return netip.AddrFrom16(m)
}

func ndpResolve(ctx context.Context, link netlink.Link, src, dst netip.Addr, timeout time.Duration) (net.HardwareAddr, error) {
	a := link.Attrs()
	lc := net.ListenConfig{Control: func(_, _ string, rc syscall.RawConn) error {
		var serr error
		err := rc.Control(func(fd uintptr) { serr = unix.BindToDevice(int(fd), a.Name) })
		if err != nil {
			return err
		}
		return serr
	}}
	laddr := "::"
	if src.Is6() {
		laddr = src.String()
		if src.IsLinkLocalUnicast() {
			laddr += "%" + a.Name
		}
	}
	c, err := lc.ListenPacket(ctx, "ip6:58", laddr)
	if err != nil {
		return nil, fmt.Errorf("raw ICMPv6 socket: %s", describe(err, timeout))
	}
	defer c.Close()
	p := ipv6.NewPacketConn(c)
	var f ipv6.ICMPFilter
	f.SetAll(true)
	f.Accept(ipv6.ICMPTypeNeighborAdvertisement)
	if err := p.SetICMPFilter(&f); err != nil {
		return nil, fmt.Errorf("ICMPv6 filter: %v", err)
	}
	ifi := &net.Interface{Index: a.Index, Name: a.Name}
	if err := p.SetMulticastInterface(ifi); err != nil {
		return nil, fmt.Errorf("multicast interface: %v", err)
	}
	p.SetMulticastHopLimit(255) // RFC 4861 7.1.1: receivers drop anything else
	p.SetHopLimit(255)
	c.SetDeadline(deadline(ctx, timeout))

	// RFC 4861 4.3: reserved, target, source link-layer address option.
	body := make([]byte, 4, 28)
	t := dst.As16()
	body = append(body, t[:]...)
	if len(a.HardwareAddr) == 6 && src.IsValid() && !src.IsUnspecified() {
		body = append(body, 1, 1)
		body = append(body, a.HardwareAddr...)
	}
	msg := icmp.Message{Type: ipv6.ICMPTypeNeighborSolicitation, Body: &icmp.RawBody{Data: body}}
	b, err := msg.Marshal(nil) // the kernel fills the checksum
	if err != nil {
		return nil, err
	}
	to := &net.IPAddr{IP: solicitedNode(dst).AsSlice(), Zone: a.Name}
	if _, err := p.WriteTo(b, nil, to); err != nil {
		return nil, fmt.Errorf("send solicitation: %s", describe(err, timeout))
	}
	buf := make([]byte, 1500)
	for {
		n, _, _, err := p.ReadFrom(buf)
		if err != nil {
			return nil, fmt.Errorf("no advertisement: %s", describe(err, timeout))
		}
		// type, code, checksum, flags+reserved, target, options
		if n < 24 || buf[0] != byte(ipv6.ICMPTypeNeighborAdvertisement) || !bytes.Equal(buf[8:24], t[:]) {
			continue
		}
		for o := buf[24:n]; len(o) >= 8 && o[1] != 0; o = o[min(len(o), int(o[1])*8):] {
			if o[0] == 2 && o[1] == 1 { // target link-layer address
				return net.HardwareAddr(bytes.Clone(o[2:8])), nil
			}
		}
		return nil, fmt.Errorf("advertisement without a link-layer address")
	}
}
