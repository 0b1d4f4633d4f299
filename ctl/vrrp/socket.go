package vrrp

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"syscall"

	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
	"golang.org/x/sys/unix"
)

// This file holds the raw IP sockets of VRRP (protocol 112, RFC 5798 §5.1).
//
// Receiving: one socket per interface and family, bound to the interface
// and joined to 224.0.0.18 / ff02::12 on it — without the membership the
// kernel drops the multicast advertisements before any raw socket sees
// them. It also receives unicast advertisements to the host's addresses on
// that interface. The TTL / hop limit and the destination address come with
// every packet (the IPv4 header; IPV6_RECVHOPLIMIT and IPV6_RECVPKTINFO).
//
// Sending: one socket per instance, bound to the interface the
// advertisements leave from (the macvlan with virtual_mac). IPv4 builds the
// IP header itself (IPPROTO_RAW): source = the primary address, TTL 255,
// TOS internetwork control, as keepalived sends. IPv6 sets hop limit 255
// and gives the link-local source in IPV6_PKTINFO. Multicast loopback is
// off on both.

// rxSock receives the advertisements of one interface and family.
type rxSock struct {
	ifname string
	index  int
	is6    bool
	c      net.PacketConn
	raw4   *ipv4.RawConn
	pc6    *ipv6.PacketConn
}

func bindToDevice(ifname string) func(network, address string, c syscall.RawConn) error {
	return func(network, address string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) { serr = unix.BindToDevice(int(fd), ifname) })
		if err != nil {
			return err
		}
		if serr != nil {
			return fmt.Errorf("bind to %s: %w", ifname, serr)
		}
		return nil
	}
}

// openRx opens the receive socket of an interface and family and joins the
// VRRP group on it.
func openRx(ifname string, index int, is6 bool) (*rxSock, error) {
	lc := net.ListenConfig{Control: bindToDevice(ifname)}
	s := &rxSock{ifname: ifname, index: index, is6: is6}
	ifi := &net.Interface{Index: index, Name: ifname}
	if !is6 {
		c, err := lc.ListenPacket(context.Background(), "ip4:112", "0.0.0.0")
		if err != nil {
			return nil, fmt.Errorf("VRRP socket on %s: %w", ifname, err)
		}
		s.c = c
		r, err := ipv4.NewRawConn(c)
		if err != nil {
			c.Close()
			return nil, fmt.Errorf("VRRP socket on %s: %w", ifname, err)
		}
		s.raw4 = r
		if err := r.JoinGroup(ifi, &net.IPAddr{IP: Group4.AsSlice()}); err != nil {
			c.Close()
			return nil, fmt.Errorf("join %v on %s: %w", Group4, ifname, err)
		}
		return s, nil
	}
	c, err := lc.ListenPacket(context.Background(), "ip6:112", "::")
	if err != nil {
		return nil, fmt.Errorf("VRRPv3 IPv6 socket on %s: %w", ifname, err)
	}
	s.c = c
	p := ipv6.NewPacketConn(c)
	s.pc6 = p
	if err := p.SetControlMessage(ipv6.FlagHopLimit|ipv6.FlagDst|ipv6.FlagInterface, true); err != nil {
		c.Close()
		return nil, fmt.Errorf("VRRP socket on %s: %w", ifname, err)
	}
	if err := p.JoinGroup(ifi, &net.IPAddr{IP: Group6.AsSlice()}); err != nil {
		c.Close()
		return nil, fmt.Errorf("join %v on %s: %w", Group6, ifname, err)
	}
	return s, nil
}

// read returns the next packet. It blocks until one arrives or the socket
// is closed.
func (s *rxSock) read(buf []byte) (*Packet, error) {
	if !s.is6 {
		h, payload, _, err := s.raw4.ReadFrom(buf)
		if err != nil {
			return nil, err
		}
		src, _ := netip.AddrFromSlice(h.Src.To4())
		dst, _ := netip.AddrFromSlice(h.Dst.To4())
		if h.Protocol != Protocol {
			return nil, nil
		}
		return &Packet{Interface: s.ifname, Src: src, Dst: dst, TTL: h.TTL, Data: append([]byte(nil), payload...)}, nil
	}
	n, cm, from, err := s.pc6.ReadFrom(buf)
	if err != nil {
		return nil, err
	}
	p := &Packet{Interface: s.ifname, Data: append([]byte(nil), buf[:n]...), TTL: -1}
	if ia, ok := from.(*net.IPAddr); ok {
		p.Src, _ = netip.AddrFromSlice(ia.IP)
	}
	if cm != nil {
		p.TTL = cm.HopLimit
		p.Dst, _ = netip.AddrFromSlice(cm.Dst)
	}
	return p, nil
}

func (s *rxSock) close() error { return s.c.Close() }

// txSock sends one instance's advertisements.
type txSock struct {
	fd     int
	ifname string
	index  int
	is6    bool
}

// openTx opens the send socket of an instance on the interface ifname.
func openTx(ifname string, index int, is6 bool) (*txSock, error) {
	var fd int
	var err error
	if is6 {
		fd, err = unix.Socket(unix.AF_INET6, unix.SOCK_RAW|unix.SOCK_CLOEXEC, Protocol)
	} else {
		fd, err = unix.Socket(unix.AF_INET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.IPPROTO_RAW)
	}
	if err != nil {
		return nil, fmt.Errorf("VRRP send socket: %w", err)
	}
	fail := func(what string, err error) (*txSock, error) {
		unix.Close(fd)
		return nil, fmt.Errorf("VRRP send socket on %s: %s: %w", ifname, what, err)
	}
	if err := unix.BindToDevice(fd, ifname); err != nil {
		return fail("bind to device", err)
	}
	if is6 {
		for _, o := range []struct {
			opt, v int
		}{{unix.IPV6_MULTICAST_HOPS, TTL}, {unix.IPV6_UNICAST_HOPS, TTL}, {unix.IPV6_MULTICAST_LOOP, 0}, {unix.IPV6_MULTICAST_IF, index}} {
			if err := unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, o.opt, o.v); err != nil {
				return fail(fmt.Sprintf("option %d", o.opt), err)
			}
		}
		// Send only: a filter that accepts nothing keeps the receive
		// queue empty (the rx socket does the receiving).
		drop := []unix.SockFilter{{Code: unix.BPF_RET | unix.BPF_K, K: 0}}
		if err := unix.SetsockoptSockFprog(fd, unix.SOL_SOCKET, unix.SO_ATTACH_FILTER, &unix.SockFprog{Len: 1, Filter: &drop[0]}); err != nil {
			return fail("filter", err)
		}
	} else {
		if err := unix.SetsockoptInt(fd, unix.IPPROTO_IP, unix.IP_MULTICAST_LOOP, 0); err != nil {
			return fail("multicast loop", err)
		}
		if err := unix.SetsockoptIPMreqn(fd, unix.IPPROTO_IP, unix.IP_MULTICAST_IF, &unix.IPMreqn{Ifindex: int32(index)}); err != nil {
			return fail("multicast interface", err)
		}
	}
	return &txSock{fd: fd, ifname: ifname, index: index, is6: is6}, nil
}

// tosInternetControl is the IPv4 TOS of advertisements (precedence 6,
// internetwork control), as keepalived sends them.
const tosInternetControl = 0xc0

// send transmits the VRRP message msg from src to dst.
func (t *txSock) send(msg []byte, src, dst netip.Addr) error {
	if !t.is6 {
		pkt := make([]byte, 20, 20+len(msg))
		pkt[0] = 0x45
		pkt[1] = tosInternetControl
		binary.BigEndian.PutUint16(pkt[2:], uint16(20+len(msg)))
		pkt[8] = TTL
		pkt[9] = Protocol
		s4, d4 := src.As4(), dst.As4()
		copy(pkt[12:16], s4[:])
		copy(pkt[16:20], d4[:])
		binary.BigEndian.PutUint16(pkt[10:], checksum(pkt[:20], 0))
		pkt = append(pkt, msg...)
		return unix.Sendto(t.fd, pkt, 0, &unix.SockaddrInet4{Addr: d4})
	}
	cm := &ipv6.ControlMessage{Src: src.AsSlice(), IfIndex: t.index}
	sa := &unix.SockaddrInet6{Addr: dst.As16()}
	if dst.IsLinkLocalMulticast() || dst.IsLinkLocalUnicast() {
		sa.ZoneId = uint32(t.index)
	}
	return unix.Sendmsg(t.fd, msg, cm.Marshal(), sa, 0)
}

func (t *txSock) close() error { return unix.Close(t.fd) }

// isClosed reports whether err is the error of a read on a closed socket.
func isClosed(err error) bool { return errors.Is(err, net.ErrClosed) }
