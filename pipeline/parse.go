package pipeline

// This file holds the first pipeline stage: a zero-allocation parser that
// turns an Ethernet frame into a Packet, a set of offsets into the frame and
// the decoded header fields the later stages need. It never copies the frame,
// never allocates, never panics and never reads beyond the frame it is given;
// every malformed frame gets a Verdict that names why it is dropped.

import (
	"encoding/binary"

	"gvs/lb"
)

// Fragment states of Packet.Frag.
const (
	// FragNone marks an unfragmented packet, or an IPv6 atomic fragment
	// (fragment header with offset 0 and M clear, RFC 6946).
	FragNone uint8 = iota
	// FragFirst marks the first fragment (offset 0, more fragments set):
	// it carries the L4 header, so ports are parsed.
	FragFirst
	// FragMore marks a non-first fragment (offset > 0): it has no L4
	// header, so ports are 0 and L4Off is the start of the fragment data.
	FragMore
)

// MaxExtHeaders is the largest number of IPv6 extension headers Parse walks
// before it gives up with DropBadExtHeader.
const MaxExtHeaders = 8

// EtherTypes, IP protocol numbers and ICMP types Parse knows about.
const (
	etherTypeIPv4     = 0x0800
	etherTypeIPv6     = 0x86DD
	etherTypeVLAN     = 0x8100 // 802.1Q
	etherTypeQinQ     = 0x88A8 // 802.1ad
	etherTypeQinQ9100 = 0x9100 // pre-standard QinQ

	protoHopByHop = 0
	protoICMP     = 1
	protoTCP      = 6
	protoUDP      = 17
	protoRouting  = 43
	protoFragment = 44
	protoAH       = 51
	protoICMPv6   = 58
	protoDestOpts = 60

	icmpEchoReply      = 0
	icmpDestUnreach    = 3
	icmpEchoRequest    = 8
	icmpTimeExceeded   = 11
	icmpParamProblem   = 12
	icmp6DestUnreach   = 1
	icmp6ParamProblem  = 4
	icmp6EchoRequest   = 128
	icmp6EchoReply     = 129
	maxIPDatagram      = 65535
	ethHeaderLen       = 14
	vlanTagLen         = 4
	ipv4MinHeaderLen   = 20
	ipv6HeaderLen      = 40
	tcpMinHeaderLen    = 20
	udpHeaderLen       = 8
	icmpHeaderLen      = 8
	extHeaderMinLen    = 8
	ahMinLen           = 12
	innerL4MinLen      = 8 // RFC 792: IP header + first 64 bits of the datagram
	ipv4FlagMF         = 0x2000
	ipv4FragOffsetMask = 0x1FFF
)

// Packet is the parsed header view of one frame: offsets into the frame data
// and decoded fields, filled by Parse without allocating. One Packet per burst
// slot is reused; Parse overwrites every field.
//
// After a verdict other than ParsedOK and NotIP the fields are partially
// filled and must not be used.
type Packet struct {
	// L3Off is the offset of the IP header (after Ethernet and VLAN tags),
	// L4Off the offset of the L4 header (after IPv4 options / IPv6
	// extension headers; for a non-first fragment, of the fragment data)
	// and PayOff the offset of the L4 payload (after the TCP header with
	// options, the UDP header, the 8-byte ICMP header; L4Off when the L4
	// header is not parsed).
	L3Off, L4Off, PayOff int
	// L3Len is the length of the L3 packet according to its header: IPv4
	// total length, or 40 + IPv6 payload length. data[L3Off+L3Len:] is
	// Ethernet padding or trailer.
	L3Len int
	// FragHdrOff is the offset of the IPv6 fragment extension header, 0 if
	// there is none (always 0 for IPv4).
	FragHdrOff int
	// InnerL3Off and InnerL4Off are the offsets of the IP and L4 headers of
	// the packet embedded in an ICMP or ICMPv6 error; both are 0 if the
	// packet is not an error or the embedded packet is not parsable. The
	// embedded packet is as the other side sent it: its source and
	// destination are reversed relative to the flow of the outer packet.
	InnerL3Off, InnerL4Off int
	// FragID is the IPv4 identification or the IPv6 fragment header's
	// identification (0 when there is no fragment header).
	FragID uint32
	// VLAN is the id of the outer 802.1Q/802.1ad tag, 0 if untagged. Up
	// to two tags (QinQ) are skipped.
	VLAN uint16
	// EtherType is the EtherType after the VLAN tags.
	EtherType uint16
	// SPort and DPort are the TCP/UDP ports in host byte order; for ICMP
	// echo request/reply both hold the identifier. 0 for other protocols
	// and for non-first fragments.
	SPort, DPort uint16
	// InnerSPort and InnerDPort are the ports (or ICMP echo identifier) of
	// the embedded packet of an ICMP error, as it was sent.
	InnerSPort, InnerDPort uint16
	// Family is lb.FamilyV4 or lb.FamilyV6, 0 for a non-IP frame.
	Family uint8
	// Proto is the L4 protocol after IPv6 extension headers (6, 17, 1, 58,
	// ...; 50 for ESP and 59 for No Next Header, which end the walk).
	Proto uint8
	// TTL is the IPv4 TTL or the IPv6 hop limit.
	TTL uint8
	// Frag is FragNone, FragFirst or FragMore.
	Frag uint8
	// TCPFlags is byte 13 of the TCP header (CWR ECE URG ACK PSH RST SYN
	// FIN).
	TCPFlags uint8
	// ICMPType and ICMPCode are the type and code of an ICMP or ICMPv6
	// message.
	ICMPType, ICMPCode uint8
	// InnerProto is the L4 protocol of the embedded packet of an ICMP
	// error (after its IPv6 extension headers).
	InnerProto uint8
}

// Src returns the outer source address, 4 or 16 bytes, as a slice of data
// (the frame Parse was given); nil for a non-IP packet.
func (p *Packet) Src(data []byte) []byte {
	switch p.Family {
	case lb.FamilyV4:
		o := p.L3Off + 12
		return data[o : o+4 : o+4]
	case lb.FamilyV6:
		o := p.L3Off + 8
		return data[o : o+16 : o+16]
	}
	return nil
}

// Dst returns the outer destination address, 4 or 16 bytes, as a slice of
// data; nil for a non-IP packet.
func (p *Packet) Dst(data []byte) []byte {
	switch p.Family {
	case lb.FamilyV4:
		o := p.L3Off + 16
		return data[o : o+4 : o+4]
	case lb.FamilyV6:
		o := p.L3Off + 24
		return data[o : o+16 : o+16]
	}
	return nil
}

// InnerSrc returns the source address of the packet embedded in an ICMP
// error (the address that sent it, usually the outer destination), as a
// slice of data; nil when there is no parsed embedded packet.
func (p *Packet) InnerSrc(data []byte) []byte {
	if p.InnerL3Off == 0 {
		return nil
	}
	switch p.Family {
	case lb.FamilyV4:
		o := p.InnerL3Off + 12
		return data[o : o+4 : o+4]
	case lb.FamilyV6:
		o := p.InnerL3Off + 8
		return data[o : o+16 : o+16]
	}
	return nil
}

// InnerDst returns the destination address of the packet embedded in an
// ICMP error, as a slice of data; nil when there is no parsed embedded
// packet.
func (p *Packet) InnerDst(data []byte) []byte {
	if p.InnerL3Off == 0 {
		return nil
	}
	switch p.Family {
	case lb.FamilyV4:
		o := p.InnerL3Off + 16
		return data[o : o+4 : o+4]
	case lb.FamilyV6:
		o := p.InnerL3Off + 24
		return data[o : o+16 : o+16]
	}
	return nil
}

// IsICMPError reports whether the packet is an ICMP error that carries an
// embedded packet: ICMPv4 destination unreachable (including fragmentation
// needed), time exceeded and parameter problem; ICMPv6 destination
// unreachable, packet too big, time exceeded and parameter problem. It says
// nothing about whether the embedded packet parsed (see InnerL3Off).
func (p *Packet) IsICMPError() bool {
	switch {
	case p.Family == lb.FamilyV4 && p.Proto == protoICMP:
		return isICMPv4Error(p.ICMPType)
	case p.Family == lb.FamilyV6 && p.Proto == protoICMPv6:
		return isICMPv6Error(p.ICMPType)
	}
	return false
}

func isICMPv4Error(t uint8) bool {
	return t == icmpDestUnreach || t == icmpTimeExceeded || t == icmpParamProblem
}

func isICMPv6Error(t uint8) bool {
	return t >= icmp6DestUnreach && t <= icmp6ParamProblem
}

// Verdict is the result of Parse: ParsedOK, NotIP, or the reason the frame
// must be dropped.
type Verdict uint8

// Verdicts. Every drop reason is counted by the caller.
const (
	// ParsedOK: an IPv4 or IPv6 packet was parsed (possibly a non-first
	// fragment, which has no ports).
	ParsedOK Verdict = iota
	// NotIP: a valid Ethernet frame that is not IPv4/IPv6 (ARP, LLDP, a
	// third VLAN tag, ...): slow path, not a drop.
	NotIP
	// DropTruncated: the frame (or the IP packet, for L4 and extension
	// headers) is shorter than the fixed part of a header it needs.
	DropTruncated
	// DropBadVersion: the IP version nibble does not match the EtherType.
	DropBadVersion
	// DropBadIHL: IPv4 IHL < 5 or the header extends beyond the frame.
	DropBadIHL
	// DropBadLength: IP total/payload length smaller than the header or
	// larger than the frame; UDP length < 8 or beyond the packet; TCP data
	// offset < 5 or beyond the packet.
	DropBadLength
	// DropBadExtHeader: IPv6 extension header chain malformed (header
	// beyond the packet, hop-by-hop not first, two fragment headers) or
	// longer than MaxExtHeaders.
	DropBadExtHeader
	// DropBadFragment: invalid fragment: reassembled size beyond 65535,
	// more-fragments set with no data, or (IPv6, RFC 8200) a non-last
	// fragment whose length is not a multiple of 8.
	DropBadFragment
	// NumVerdicts is the number of verdicts, for arrays of counters.
	NumVerdicts
)

var verdictNames = [NumVerdicts]string{
	ParsedOK:         "ok",
	NotIP:            "not_ip",
	DropTruncated:    "truncated",
	DropBadVersion:   "bad_version",
	DropBadIHL:       "bad_ihl",
	DropBadLength:    "bad_length",
	DropBadExtHeader: "bad_ext_header",
	DropBadFragment:  "bad_fragment",
}

// String returns a short snake_case name of the verdict ("ok", "not_ip",
// "truncated", ...), used as a metric label.
func (v Verdict) String() string {
	if v < NumVerdicts {
		return verdictNames[v]
	}
	return "unknown"
}

func isVLANTPID(et uint16) bool {
	return et == etherTypeVLAN || et == etherTypeQinQ || et == etherTypeQinQ9100
}

// Parse parses an Ethernet frame into p. It never panics on any input, never
// allocates and never reads beyond data. All of p is overwritten.
//
// Lengths: L4 headers are bounded by the IP length, not the frame length, so
// Ethernet padding after the IP packet is allowed. An ICMP error whose
// embedded packet does not parse is still ParsedOK, with InnerL3Off 0.
func Parse(data []byte, p *Packet) Verdict {
	*p = Packet{}
	if len(data) < ethHeaderLen {
		return DropTruncated
	}
	off := ethHeaderLen
	et := binary.BigEndian.Uint16(data[12:14])
	if isVLANTPID(et) {
		if len(data) < ethHeaderLen+vlanTagLen {
			return DropTruncated
		}
		p.VLAN = binary.BigEndian.Uint16(data[14:16]) & 0x0FFF
		et = binary.BigEndian.Uint16(data[16:18])
		off += vlanTagLen
		if isVLANTPID(et) {
			if len(data) < ethHeaderLen+2*vlanTagLen {
				return DropTruncated
			}
			et = binary.BigEndian.Uint16(data[20:22])
			off += vlanTagLen
		}
	}
	p.EtherType = et
	p.L3Off = off
	switch et {
	case etherTypeIPv4:
		return parseIPv4(data, off, p)
	case etherTypeIPv6:
		return parseIPv6(data, off, p)
	}
	return NotIP
}

func parseIPv4(data []byte, l3 int, p *Packet) Verdict {
	if len(data)-l3 < ipv4MinHeaderLen {
		return DropTruncated
	}
	h := data[l3:]
	if h[0]>>4 != 4 {
		return DropBadVersion
	}
	hl := int(h[0]&0x0F) << 2
	if hl < ipv4MinHeaderLen || hl > len(h) {
		return DropBadIHL
	}
	tot := int(binary.BigEndian.Uint16(h[2:4]))
	if tot < hl || tot > len(h) {
		return DropBadLength
	}
	p.Family = lb.FamilyV4
	p.TTL = h[8]
	p.Proto = h[9]
	p.L3Len = tot
	p.FragID = uint32(binary.BigEndian.Uint16(h[4:6]))
	l4 := l3 + hl
	p.L4Off = l4
	p.PayOff = l4
	if ff := binary.BigEndian.Uint16(h[6:8]); ff&(ipv4FlagMF|ipv4FragOffsetMask) != 0 {
		fo := int(ff&ipv4FragOffsetMask) << 3
		// Like Linux: the reassembled datagram must fit 65535 bytes and a
		// non-last fragment must carry data. (A non-last fragment whose
		// length is not a multiple of 8 is trimmed by Linux, not dropped.)
		if fo+tot > maxIPDatagram || (ff&ipv4FlagMF != 0 && tot == hl) {
			return DropBadFragment
		}
		if fo != 0 {
			p.Frag = FragMore
			return ParsedOK
		}
		p.Frag = FragFirst
	}
	return parseL4(data, l4, l3+tot, p)
}

func parseIPv6(data []byte, l3 int, p *Packet) Verdict {
	if len(data)-l3 < ipv6HeaderLen {
		return DropTruncated
	}
	h := data[l3:]
	if h[0]>>4 != 6 {
		return DropBadVersion
	}
	tot := ipv6HeaderLen + int(binary.BigEndian.Uint16(h[4:6]))
	if tot > len(h) {
		return DropBadLength
	}
	p.Family = lb.FamilyV6
	p.TTL = h[7]
	p.L3Len = tot
	end := l3 + tot
	proto, l4, fh, more, v := walkIPv6Ext(data, l3+ipv6HeaderLen, end, h[6])
	if v != ParsedOK {
		return v
	}
	p.Proto = proto
	p.L4Off = l4
	p.PayOff = l4
	if fh != 0 {
		p.FragHdrOff = fh
		f := data[fh : fh+8]
		p.FragID = binary.BigEndian.Uint32(f[4:8])
		fo := int(binary.BigEndian.Uint16(f[2:4]) &^ 7)
		mf := f[3]&1 != 0
		n := end - (fh + 8) // fragment data length
		if fo+n > maxIPDatagram || (mf && (n == 0 || n&7 != 0)) {
			return DropBadFragment
		}
		if more {
			p.Frag = FragMore
			return ParsedOK
		}
		if mf {
			p.Frag = FragFirst
		}
	}
	return parseL4(data, l4, end, p)
}

// walkIPv6Ext walks the IPv6 extension headers starting at off with next
// header nh, within data[:end] (end <= len(data)). It returns the upper-layer
// protocol and its offset, the offset of the fragment header (0 if none) and
// whether the packet is a non-first fragment, in which case the walk stopped
// at the fragment header and l4 is the start of the fragment data.
func walkIPv6Ext(data []byte, off, end int, nh uint8) (proto uint8, l4, fragHdr int, nonFirst bool, v Verdict) {
	for i := 0; ; i++ {
		var size int
		switch nh {
		case protoHopByHop, protoRouting, protoDestOpts, protoAH, protoFragment:
		default:
			// Upper layer, ESP or No Next Header: the walk ends.
			return nh, off, fragHdr, false, ParsedOK
		}
		if i == MaxExtHeaders {
			return nh, off, fragHdr, false, DropBadExtHeader
		}
		if end-off < extHeaderMinLen {
			return nh, off, fragHdr, false, DropTruncated
		}
		switch nh {
		case protoHopByHop:
			if i != 0 { // RFC 8200 4.1: only right after the IPv6 header
				return nh, off, fragHdr, false, DropBadExtHeader
			}
			size = (int(data[off+1]) + 1) << 3
		case protoRouting, protoDestOpts:
			size = (int(data[off+1]) + 1) << 3
		case protoAH:
			// RFC 4302: 12 fixed bytes at least.
			size = (int(data[off+1]) + 2) << 2
			if size < ahMinLen {
				return nh, off, fragHdr, false, DropBadExtHeader
			}
		case protoFragment:
			if fragHdr != 0 {
				return nh, off, fragHdr, false, DropBadExtHeader
			}
			fragHdr = off
			size = 8
			if binary.BigEndian.Uint16(data[off+2:off+4])&^7 != 0 {
				// Non-first fragment: what follows is fragment data.
				return data[off], off + size, fragHdr, true, ParsedOK
			}
		}
		if size > end-off {
			return nh, off, fragHdr, false, DropBadExtHeader
		}
		nh = data[off]
		off += size
	}
}

// parseL4 parses the L4 header at l4 of an IP packet ending at end
// (end <= len(data)). p.Family and p.Proto are set.
func parseL4(data []byte, l4, end int, p *Packet) Verdict {
	switch p.Proto {
	case protoTCP:
		if end-l4 < tcpMinHeaderLen {
			return DropTruncated
		}
		t := data[l4:end]
		doff := int(t[12]>>4) << 2
		if doff < tcpMinHeaderLen || doff > len(t) {
			return DropBadLength
		}
		p.SPort = binary.BigEndian.Uint16(t[0:2])
		p.DPort = binary.BigEndian.Uint16(t[2:4])
		p.TCPFlags = t[13]
		p.PayOff = l4 + doff
	case protoUDP:
		if end-l4 < udpHeaderLen {
			return DropTruncated
		}
		u := data[l4:end]
		ulen := int(binary.BigEndian.Uint16(u[4:6]))
		// A first fragment's UDP length covers the whole datagram. A UDP
		// length shorter than the IP payload is trimmed (as Linux does).
		if ulen < udpHeaderLen || (p.Frag == FragNone && ulen > len(u)) {
			return DropBadLength
		}
		p.SPort = binary.BigEndian.Uint16(u[0:2])
		p.DPort = binary.BigEndian.Uint16(u[2:4])
		p.PayOff = l4 + udpHeaderLen
	case protoICMP:
		if p.Family != lb.FamilyV4 {
			break
		}
		if end-l4 < icmpHeaderLen {
			return DropTruncated
		}
		c := data[l4:end]
		t := c[0]
		p.ICMPType = t
		p.ICMPCode = c[1]
		p.PayOff = l4 + icmpHeaderLen
		if t == icmpEchoRequest || t == icmpEchoReply {
			id := binary.BigEndian.Uint16(c[4:6])
			p.SPort, p.DPort = id, id
		} else if isICMPv4Error(t) {
			parseInnerIPv4(data, l4+icmpHeaderLen, end, p)
		}
	case protoICMPv6:
		if p.Family != lb.FamilyV6 {
			break
		}
		if end-l4 < icmpHeaderLen {
			return DropTruncated
		}
		c := data[l4:end]
		t := c[0]
		p.ICMPType = t
		p.ICMPCode = c[1]
		p.PayOff = l4 + icmpHeaderLen
		if t == icmp6EchoRequest || t == icmp6EchoReply {
			id := binary.BigEndian.Uint16(c[4:6])
			p.SPort, p.DPort = id, id
		} else if isICMPv6Error(t) {
			parseInnerIPv6(data, l4+icmpHeaderLen, end, p)
		}
	}
	return ParsedOK
}

// parseInnerIPv4 parses the IPv4 packet embedded in an ICMP error at s,
// bounded by end. It sets the Inner fields only if the embedded IP header and
// the first 8 bytes of its L4 header are present and sane.
func parseInnerIPv4(data []byte, s, end int, p *Packet) {
	if end-s < ipv4MinHeaderLen {
		return
	}
	h := data[s:end]
	if h[0]>>4 != 4 {
		return
	}
	hl := int(h[0]&0x0F) << 2
	if hl < ipv4MinHeaderLen || int(binary.BigEndian.Uint16(h[2:4])) < hl {
		return
	}
	if len(h)-hl < innerL4MinLen {
		return
	}
	proto := h[9]
	l4 := s + hl
	if binary.BigEndian.Uint16(h[6:8])&ipv4FragOffsetMask == 0 {
		setInnerPorts(data[l4:l4+innerL4MinLen], proto, protoICMP, icmpEchoRequest, icmpEchoReply, p)
	}
	p.InnerL3Off = s
	p.InnerL4Off = l4
	p.InnerProto = proto
}

// parseInnerIPv6 is parseInnerIPv4 for an IPv6 packet embedded in an ICMPv6
// error, extension headers included.
func parseInnerIPv6(data []byte, s, end int, p *Packet) {
	if end-s < ipv6HeaderLen {
		return
	}
	if data[s]>>4 != 6 {
		return
	}
	proto, l4, _, nonFirst, v := walkIPv6Ext(data, s+ipv6HeaderLen, end, data[s+6])
	if v != ParsedOK || end-l4 < innerL4MinLen {
		return
	}
	if !nonFirst {
		setInnerPorts(data[l4:l4+innerL4MinLen], proto, protoICMPv6, icmp6EchoRequest, icmp6EchoReply, p)
	}
	p.InnerL3Off = s
	p.InnerL4Off = l4
	p.InnerProto = proto
}

// setInnerPorts sets the inner ports from the first 8 bytes of an embedded
// L4 header.
func setInnerPorts(h []byte, proto, icmp, echoReq, echoRep uint8, p *Packet) {
	_ = h[7]
	switch proto {
	case protoTCP, protoUDP:
		p.InnerSPort = binary.BigEndian.Uint16(h[0:2])
		p.InnerDPort = binary.BigEndian.Uint16(h[2:4])
	case icmp:
		if h[0] == echoReq || h[0] == echoRep {
			id := binary.BigEndian.Uint16(h[4:6])
			p.InnerSPort, p.InnerDPort = id, id
		}
	}
}
