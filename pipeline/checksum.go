package pipeline

import "encoding/binary"

// Internet checksum helpers. Rewrites update checksums incrementally
// (RFC 1624, eqn. 3: HC' = ~(~HC + ~m + m')), so a NAT rewrite touches only
// the words it changes instead of the whole packet.

// csumFold folds a 32-bit one's complement sum to 16 bits.
func csumFold(s uint32) uint16 {
	s = (s >> 16) + (s & 0xffff)
	s += s >> 16
	return uint16(s)
}

// csumReplace16 returns checksum hc updated for one 16-bit word changing
// from old to new.
func csumReplace16(hc, old, new uint16) uint16 {
	s := uint32(^hc) + uint32(^old) + uint32(new)
	return ^csumFold(s)
}

// csumReplaceBytes returns checksum hc updated for the even-length byte
// string old changing to new (addresses: 4 or 16 bytes).
func csumReplaceBytes(hc uint16, old, new []byte) uint16 {
	s := uint32(^hc)
	for i := 0; i+1 < len(old); i += 2 {
		s += uint32(^binary.BigEndian.Uint16(old[i:]))
		s += uint32(binary.BigEndian.Uint16(new[i:]))
	}
	return ^csumFold(s)
}

// csumSum adds the bytes of b to a running one's complement sum.
func csumSum(s uint32, b []byte) uint32 {
	n := len(b)
	i := 0
	for ; i+1 < n; i += 2 {
		s += uint32(binary.BigEndian.Uint16(b[i:]))
	}
	if i < n {
		s += uint32(b[i]) << 8
	}
	return s
}

// csumFull returns the Internet checksum of b (header checksums, ICMP).
func csumFull(b []byte) uint16 { return ^csumFold(csumSum(0, b)) }

// updateL4Addr updates the L4 checksum at data[off:off+2] for an address
// in the pseudo-header changing from old to new. udp says a zero checksum
// means "none" (IPv4 UDP) and must stay zero; a result of zero is sent as
// 0xffff (RFC 768).
func updateL4Csum(data []byte, off int, old, new []byte, udp bool) {
	c := binary.BigEndian.Uint16(data[off:])
	if udp && c == 0 {
		return
	}
	c = csumReplaceBytes(c, old, new)
	if udp && c == 0 {
		c = 0xffff
	}
	binary.BigEndian.PutUint16(data[off:], c)
}

// updateL4Port updates the L4 checksum at data[off:] for a port change.
func updateL4Port(data []byte, off int, old, new uint16, udp bool) {
	c := binary.BigEndian.Uint16(data[off:])
	if udp && c == 0 {
		return
	}
	c = csumReplace16(c, old, new)
	if udp && c == 0 {
		c = 0xffff
	}
	binary.BigEndian.PutUint16(data[off:], c)
}
