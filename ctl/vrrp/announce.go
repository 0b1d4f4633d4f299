package vrrp

import (
	"encoding/binary"
	"fmt"
	"net/netip"

	"golang.org/x/sys/unix"
)

// This file builds and sends what a new master announces (RFC 5798
// §6.4.1, §6.4.2): for IPv4 a gratuitous ARP request per address (RFC 5227
// §2.3 announcement: sender and target protocol address both the virtual
// address, broadcast), for IPv6 an unsolicited neighbour advertisement per
// address to all-nodes with the Router and Override flags and the target
// link-layer address option (RFC 4861 §7.2.6). The source MAC is the
// virtual MAC with virtual_mac, else the interface's. Frames go out of an
// AF_PACKET socket on the link that carries the addresses.

var (
	ethBroadcast = [6]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}
	ethAllNodes  = [6]byte{0x33, 0x33, 0, 0, 0, 1}
	allNodes     = netip.MustParseAddr("ff02::1")
)

// garpFrame returns a gratuitous ARP request for vip from mac.
func garpFrame(mac [6]byte, vip netip.Addr) []byte {
	b := make([]byte, 0, 42)
	b = append(b, ethBroadcast[:]...)
	b = append(b, mac[:]...)
	b = binary.BigEndian.AppendUint16(b, unix.ETH_P_ARP)
	b = append(b, 0, 1, 0x08, 0x00, 6, 4, 0, 1) // Ethernet, IPv4, request
	ip := vip.As4()
	b = append(b, mac[:]...)
	b = append(b, ip[:]...)
	b = append(b, 0, 0, 0, 0, 0, 0) // target hardware address: unknown
	b = append(b, ip[:]...)
	return b
}

// unsolicitedNA returns an unsolicited neighbour advertisement for vip
// from mac, with IPv6 source src.
func unsolicitedNA(mac [6]byte, src, vip netip.Addr) []byte {
	icmp := make([]byte, 0, 32)
	icmp = append(icmp, 136, 0, 0, 0)  // type NA, code, checksum
	icmp = append(icmp, 0xa0, 0, 0, 0) // R=1 S=0 O=1
	t := vip.As16()
	icmp = append(icmp, t[:]...)
	icmp = append(icmp, 2, 1) // target link-layer address, 8 bytes
	icmp = append(icmp, mac[:]...)
	var ps []byte
	s, d := src.As16(), allNodes.As16()
	ps = append(ps, s[:]...)
	ps = append(ps, d[:]...)
	ps = binary.BigEndian.AppendUint32(ps, uint32(len(icmp)))
	ps = append(ps, 0, 0, 0, unix.IPPROTO_ICMPV6)
	binary.BigEndian.PutUint16(icmp[2:], checksum(icmp, onesSum(ps)))

	b := make([]byte, 0, 14+40+len(icmp))
	b = append(b, ethAllNodes[:]...)
	b = append(b, mac[:]...)
	b = binary.BigEndian.AppendUint16(b, unix.ETH_P_IPV6)
	b = append(b, 0x60, 0, 0, 0)
	b = binary.BigEndian.AppendUint16(b, uint16(len(icmp)))
	b = append(b, unix.IPPROTO_ICMPV6, 255)
	b = append(b, s[:]...)
	b = append(b, d[:]...)
	b = append(b, icmp...)
	return b
}

// announceFrames builds the frames announcing the instance's addresses.
func announceFrames(cfg *Config, mac [6]byte, primary netip.Addr) [][]byte {
	var out [][]byte
	for _, p := range cfg.VIPs {
		if p.Addr().Is4() {
			out = append(out, garpFrame(mac, p.Addr()))
		} else {
			out = append(out, unsolicitedNA(mac, primary, p.Addr()))
		}
	}
	return out
}

// sendFrames transmits Ethernet frames on the interface with that index.
func sendFrames(index int, frames [][]byte) (int, error) {
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return 0, fmt.Errorf("packet socket: %w", err)
	}
	defer unix.Close(fd)
	n := 0
	for _, f := range frames {
		sa := &unix.SockaddrLinklayer{Ifindex: index, Halen: 6}
		copy(sa.Addr[:], f[:6])
		if err := unix.Sendto(fd, f, 0, sa); err != nil {
			return n, fmt.Errorf("send announcement on ifindex %d: %w", index, err)
		}
		n++
	}
	return n, nil
}
