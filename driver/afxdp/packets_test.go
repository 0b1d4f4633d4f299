package afxdp

import (
	"bytes"
	"encoding/binary"
	"net"
	"net/netip"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
)

// Frame builders for the tests. Checksums are correct wherever the kernel
// looks at them.

type pkt struct {
	srcMAC, dstMAC net.HardwareAddr
	vlan           uint16 // 0: untagged
}

func serialize(ls ...gopacket.SerializableLayer) []byte {
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, ls...); err != nil {
		panic(err)
	}
	return append([]byte(nil), buf.Bytes()...)
}

func (p pkt) eth(et layers.EthernetType) []gopacket.SerializableLayer {
	if p.vlan != 0 {
		return []gopacket.SerializableLayer{
			&layers.Ethernet{SrcMAC: p.srcMAC, DstMAC: p.dstMAC, EthernetType: layers.EthernetTypeDot1Q},
			&layers.Dot1Q{VLANIdentifier: p.vlan, Type: et},
		}
	}
	return []gopacket.SerializableLayer{&layers.Ethernet{SrcMAC: p.srcMAC, DstMAC: p.dstMAC, EthernetType: et}}
}

func ip4(src, dst netip.Addr, proto layers.IPProtocol) *layers.IPv4 {
	return &layers.IPv4{Version: 4, IHL: 5, TTL: 64, Protocol: proto, SrcIP: src.AsSlice(), DstIP: dst.AsSlice(), Id: 1}
}

func ip6(src, dst netip.Addr, nh layers.IPProtocol) *layers.IPv6 {
	return &layers.IPv6{Version: 6, HopLimit: 64, NextHeader: nh, SrcIP: src.AsSlice(), DstIP: dst.AsSlice()}
}

func (p pkt) udp(src, dst netip.AddrPort, payload []byte) []byte {
	u := &layers.UDP{SrcPort: layers.UDPPort(src.Port()), DstPort: layers.UDPPort(dst.Port())}
	var l3 gopacket.NetworkLayer
	var et layers.EthernetType
	if src.Addr().Is4() {
		l3, et = ip4(src.Addr(), dst.Addr(), layers.IPProtocolUDP), layers.EthernetTypeIPv4
	} else {
		l3, et = ip6(src.Addr(), dst.Addr(), layers.IPProtocolUDP), layers.EthernetTypeIPv6
	}
	_ = u.SetNetworkLayerForChecksum(l3)
	return serialize(append(p.eth(et), l3.(gopacket.SerializableLayer), u, gopacket.Payload(payload))...)
}

func (p pkt) tcp(src, dst netip.AddrPort, payload []byte) []byte {
	tc := &layers.TCP{SrcPort: layers.TCPPort(src.Port()), DstPort: layers.TCPPort(dst.Port()), SYN: true, Seq: 1, Window: 65535}
	var l3 gopacket.NetworkLayer
	var et layers.EthernetType
	if src.Addr().Is4() {
		l3, et = ip4(src.Addr(), dst.Addr(), layers.IPProtocolTCP), layers.EthernetTypeIPv4
	} else {
		l3, et = ip6(src.Addr(), dst.Addr(), layers.IPProtocolTCP), layers.EthernetTypeIPv6
	}
	_ = tc.SetNetworkLayerForChecksum(l3)
	return serialize(append(p.eth(et), l3.(gopacket.SerializableLayer), tc, gopacket.Payload(payload))...)
}

// echo4 builds an ICMP echo request.
func (p pkt) echo4(src, dst netip.Addr, id, seq uint16) []byte {
	ic := &layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(layers.ICMPv4TypeEchoRequest, 0), Id: id, Seq: seq}
	return serialize(append(p.eth(layers.EthernetTypeIPv4), ip4(src, dst, layers.IPProtocolICMPv4), ic, gopacket.Payload("gvs-ping"))...)
}

// icmp4 builds an ICMP message of type/code quoting inner.
func (p pkt) icmp4(src, dst netip.Addr, typ, code uint8, inner []byte) []byte {
	ic := &layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(typ, code)}
	return serialize(append(p.eth(layers.EthernetTypeIPv4), ip4(src, dst, layers.IPProtocolICMPv4), ic, gopacket.Payload(inner))...)
}

// frag4 builds an IPv4 fragment at offset (in 8-byte units) of proto.
func (p pkt) frag4(src, dst netip.Addr, proto layers.IPProtocol, offset uint16, payload []byte) []byte {
	ip := ip4(src, dst, proto)
	ip.FragOffset = offset
	return serialize(append(p.eth(layers.EthernetTypeIPv4), ip, gopacket.Payload(payload))...)
}

func (p pkt) arpRequest(senderIP, targetIP netip.Addr) []byte {
	a := &layers.ARP{
		AddrType: layers.LinkTypeEthernet, Protocol: layers.EthernetTypeIPv4, HwAddressSize: 6, ProtAddressSize: 4,
		Operation: layers.ARPRequest, SourceHwAddress: p.srcMAC, SourceProtAddress: senderIP.AsSlice(),
		DstHwAddress: make([]byte, 6), DstProtAddress: targetIP.AsSlice(),
	}
	q := p
	q.dstMAC = net.HardwareAddr{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}
	return serialize(append(q.eth(layers.EthernetTypeARP), a)...)
}

func (p pkt) echo6(src, dst netip.Addr, id, seq uint16) []byte {
	ic := &layers.ICMPv6{TypeCode: layers.CreateICMPv6TypeCode(layers.ICMPv6TypeEchoRequest, 0)}
	ipl := ip6(src, dst, layers.IPProtocolICMPv6)
	_ = ic.SetNetworkLayerForChecksum(ipl)
	body := make([]byte, 4, 12)
	binary.BigEndian.PutUint16(body[0:], id)
	binary.BigEndian.PutUint16(body[2:], seq)
	body = append(body, "gvs-ping"...)
	return serialize(append(p.eth(layers.EthernetTypeIPv6), ipl, ic, gopacket.Payload(body))...)
}

// neighSolicit builds an NDP neighbour solicitation for target, to its
// solicited-node multicast address.
func (p pkt) neighSolicit(src, target netip.Addr) []byte {
	t := target.As16()
	dst := netip.AddrFrom16([16]byte{0xff, 0x02, 11: 1, 12: 0xff, 13: t[13], 14: t[14], 15: t[15]})
	q := p
	q.dstMAC = net.HardwareAddr{0x33, 0x33, 0xff, t[13], t[14], t[15]}
	ipl := ip6(src, dst, layers.IPProtocolICMPv6)
	ipl.HopLimit = 255
	ic := &layers.ICMPv6{TypeCode: layers.CreateICMPv6TypeCode(layers.ICMPv6TypeNeighborSolicitation, 0)}
	_ = ic.SetNetworkLayerForChecksum(ipl)
	ns := &layers.ICMPv6NeighborSolicitation{
		TargetAddress: target.AsSlice(),
		Options:       layers.ICMPv6Options{{Type: layers.ICMPv6OptSourceAddress, Data: p.srcMAC}},
	}
	return serialize(append(q.eth(layers.EthernetTypeIPv6), ipl, ic, ns)...)
}

func isNeighAdvert(target netip.Addr) func([]byte) bool {
	return func(b []byte) bool {
		na, ok := decode(b).Layer(layers.LayerTypeICMPv6NeighborAdvertisement).(*layers.ICMPv6NeighborAdvertisement)
		return ok && na.TargetAddress.Equal(target.AsSlice())
	}
}

func (p pkt) icmp6(src, dst netip.Addr, typ, code uint8, body []byte) []byte {
	ic := &layers.ICMPv6{TypeCode: layers.CreateICMPv6TypeCode(typ, code)}
	ipl := ip6(src, dst, layers.IPProtocolICMPv6)
	_ = ic.SetNetworkLayerForChecksum(ipl)
	return serialize(append(p.eth(layers.EthernetTypeIPv6), ipl, ic, gopacket.Payload(body))...)
}

// udp6Ext builds an IPv6 UDP packet behind the given raw extension headers
// (each a next-header value and its bytes; the next-header byte inside is
// patched). The UDP checksum is not valid: only gvs sees these.
func (p pkt) udp6Ext(src, dst netip.AddrPort, exts []ext, payload []byte) []byte {
	udp := make([]byte, 8, 8+len(payload))
	binary.BigEndian.PutUint16(udp[0:], src.Port())
	binary.BigEndian.PutUint16(udp[2:], dst.Port())
	binary.BigEndian.PutUint16(udp[4:], uint16(8+len(payload)))
	udp = append(udp, payload...)
	var chain []byte
	first := layers.IPProtocolUDP
	for i := len(exts) - 1; i >= 0; i-- {
		h := append([]byte(nil), exts[i].b...)
		h[0] = byte(first)
		first = exts[i].nh
		chain = append(h, chain...)
	}
	return serialize(append(p.eth(layers.EthernetTypeIPv6), ip6(src.Addr(), dst.Addr(), first), gopacket.Payload(append(chain, udp...)))...)
}

type ext struct {
	nh layers.IPProtocol
	b  []byte
}

// Extension headers: destination options with one PadN (8 bytes), and a
// fragment header at offset (8-byte units).
var extDstOpts = ext{layers.IPProtocolIPv6Destination, []byte{0, 0, 1, 4, 0, 0, 0, 0}}

func extFrag(offset uint16, more bool) ext {
	b := []byte{0, 0, 0, 0, 0, 0, 0x12, 0x34}
	v := offset << 3
	if more {
		v |= 1
	}
	binary.BigEndian.PutUint16(b[2:], v)
	return ext{layers.IPProtocolIPv6Fragment, b}
}

// Predicates on captured frames.

func decode(b []byte) gopacket.Packet {
	return gopacket.NewPacket(b, layers.LayerTypeEthernet, gopacket.NoCopy)
}

func isARPReply(from netip.Addr) func([]byte) bool {
	return func(b []byte) bool {
		a, ok := decode(b).Layer(layers.LayerTypeARP).(*layers.ARP)
		return ok && a.Operation == layers.ARPReply && bytes.Equal(a.SourceProtAddress, from.AsSlice())
	}
}

func isEchoReply4(from netip.Addr, id uint16) func([]byte) bool {
	return func(b []byte) bool {
		pk := decode(b)
		ip, ok := pk.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
		ic, ok2 := pk.Layer(layers.LayerTypeICMPv4).(*layers.ICMPv4)
		return ok && ok2 && ip.SrcIP.Equal(from.AsSlice()) && ic.TypeCode.Type() == layers.ICMPv4TypeEchoReply && ic.Id == id
	}
}

func isEchoReply6(from netip.Addr, id uint16) func([]byte) bool {
	return func(b []byte) bool {
		pk := decode(b)
		ip, ok := pk.Layer(layers.LayerTypeIPv6).(*layers.IPv6)
		ic, ok2 := pk.Layer(layers.LayerTypeICMPv6).(*layers.ICMPv6)
		if !ok || !ok2 || !ip.SrcIP.Equal(from.AsSlice()) || ic.TypeCode.Type() != layers.ICMPv6TypeEchoReply {
			return false
		}
		return len(ic.Payload) >= 2 && binary.BigEndian.Uint16(ic.Payload) == id
	}
}

// isPortUnreachable matches the kernel's ICMP port unreachable for a UDP
// packet to dport.
func isPortUnreachable(from netip.Addr, dport uint16) func([]byte) bool {
	return func(b []byte) bool {
		pk := decode(b)
		ip, ok := pk.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
		ic, ok2 := pk.Layer(layers.LayerTypeICMPv4).(*layers.ICMPv4)
		if !ok || !ok2 || !ip.SrcIP.Equal(from.AsSlice()) || ic.TypeCode != layers.CreateICMPv4TypeCode(3, 3) {
			return false
		}
		inner := ic.Payload // quoted IPv4 header + 8 bytes
		if len(inner) < 28 {
			return false
		}
		ihl := int(inner[0]&0xf) * 4
		return len(inner) >= ihl+4 && binary.BigEndian.Uint16(inner[ihl+2:]) == dport
	}
}

func hasPayload(marker []byte) func([]byte) bool {
	return func(b []byte) bool { return bytes.Contains(b, marker) }
}
