package pipeline

import (
	"encoding/binary"

	"gvs/driver"
	"gvs/lb"
)

// This file answers a packet that encapsulation would push past the MTU
// with an ICMP "fragmentation needed" (IPv4 with DF set) or "packet too big"
// (IPv6) to its sender, from the VIP, advertising the MTU that fits. The
// frame is turned into the error in place: the original packet becomes the
// quoted part, the new IP and ICMP headers go into the headroom.

// Quote limits: the whole error stays within 576 bytes (RFC 1812 4.3.2.3)
// for IPv4 and within the IPv6 minimum MTU of 1280 (RFC 4443 2.4).
const (
	maxQuote4 = 576 - ipv4MinHeaderLen - icmpHeaderLen
	maxQuote6 = 1280 - ipv6HeaderLen - icmpHeaderLen
)

// tooBig rewrites f into the ICMP error for its sender and reports whether
// it did (false: IPv4 without DF — the sender allows fragmentation, which
// gvs does not do — or no headroom); the caller then drops the packet.
func (w *Pipeline) tooBig(f *driver.Frame, p *Packet, mtu int) bool {
	data := f.Data()
	l3 := p.L3Off
	hl, maxQuote := ipv4MinHeaderLen, maxQuote4
	if p.Family == lb.FamilyV6 {
		hl, maxQuote = ipv6HeaderLen, maxQuote6
	} else if data[l3+6]&0x40 == 0 {
		return false
	}
	quote := min(p.L3Len, maxQuote)
	var clientMAC [6]byte
	copy(clientMAC[:], data[6:12])
	f.Len = l3 + quote
	if f.Prepend(hl+icmpHeaderLen) == nil {
		return false
	}
	data = f.Data()
	add := hl + icmpHeaderLen
	copy(data[:l3], data[add:add+l3]) // L2 header to the front
	orig := data[l3+add:]
	ip := data[l3 : l3+hl]
	msg := data[l3+hl : l3+add+quote]
	if p.Family == lb.FamilyV4 {
		ip[0], ip[1] = 0x45, 0
		binary.BigEndian.PutUint16(ip[2:], uint16(hl+icmpHeaderLen+quote))
		binary.BigEndian.PutUint16(ip[4:], 0)
		binary.BigEndian.PutUint16(ip[6:], 0x4000)
		ip[8], ip[9] = 64, protoICMP
		ip[10], ip[11] = 0, 0
		copy(ip[12:16], orig[ipv4DstOff:ipv4DstOff+4]) // from the VIP
		copy(ip[16:20], orig[ipv4SrcOff:ipv4SrcOff+4]) // to the sender
		binary.BigEndian.PutUint16(ip[10:], csumFull(ip))
		msg[0], msg[1] = icmpDestUnreach, 4 // fragmentation needed and DF set
		binary.BigEndian.PutUint32(msg[4:], uint32(mtu)&0xffff)
		msg[2], msg[3] = 0, 0
		binary.BigEndian.PutUint16(msg[2:], csumFull(msg))
	} else {
		binary.BigEndian.PutUint32(ip[0:], 0x60000000)
		binary.BigEndian.PutUint16(ip[4:], uint16(icmpHeaderLen+quote))
		ip[6], ip[7] = protoICMPv6, 64
		copy(ip[8:24], orig[ipv6DstOff:ipv6DstOff+16])
		copy(ip[24:40], orig[ipv6SrcOff:ipv6SrcOff+16])
		msg[0], msg[1] = 2, 0 // packet too big
		binary.BigEndian.PutUint32(msg[4:], uint32(mtu))
		msg[2], msg[3] = 0, 0
		s := csumSum(0, ip[8:40])
		s += uint32(len(msg)) + protoICMPv6
		binary.BigEndian.PutUint16(msg[2:], ^csumFold(csumSum(s, msg)))
	}
	setMACs(data, &clientMAC, &w.macs[f.Port]) // VLAN tags and EtherType stay
	return true
}
