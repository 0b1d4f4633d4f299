package afpacket

import "encoding/binary"

// completeChecksum computes the full TCP or UDP checksum of an Ethernet
// frame whose L4 checksum the sender left partial (CHECKSUM_PARTIAL: the
// field holds only the pseudo-header sum, or anything). It walks 802.1Q /
// 802.1ad tags, IPv4 options and IPv6 extension headers, ignores the
// checksum field's old value and Ethernet padding, and reports false (frame
// unchanged) for anything that is not an unfragmented TCP or UDP packet over
// IPv4 or IPv6, or is truncated.
func completeChecksum(frame []byte) bool {
	if len(frame) < 14 {
		return false
	}
	off := 12
	et := binary.BigEndian.Uint16(frame[off:])
	for et == 0x8100 || et == 0x88a8 || et == 0x9100 {
		off += 4
		if off+2 > len(frame) {
			return false
		}
		et = binary.BigEndian.Uint16(frame[off:])
	}
	off += 2
	pkt := frame[off:]

	var sum uint64
	var l4 []byte
	var proto byte
	switch et {
	case 0x0800:
		if len(pkt) < 20 || pkt[0]>>4 != 4 {
			return false
		}
		ihl := int(pkt[0]&0x0f) * 4
		tot := int(binary.BigEndian.Uint16(pkt[2:]))
		if ihl < 20 || tot < ihl || tot > len(pkt) {
			return false
		}
		if binary.BigEndian.Uint16(pkt[6:])&0x3fff != 0 { // MF or fragment offset
			return false
		}
		proto = pkt[9]
		l4 = pkt[ihl:tot]
		sum = csumAdd(0, pkt[12:20]) // source and destination
	case 0x86dd:
		if len(pkt) < 40 || pkt[0]>>4 != 6 {
			return false
		}
		plen := int(binary.BigEndian.Uint16(pkt[4:]))
		if 40+plen > len(pkt) || plen == 0 { // plen 0: jumbogram, not handled
			return false
		}
		next := pkt[6]
		rest := pkt[40 : 40+plen]
	ext:
		for {
			switch next {
			case 0, 43, 60: // hop-by-hop, routing, destination options
				if len(rest) < 8 {
					return false
				}
				n := (int(rest[1]) + 1) * 8
				if n > len(rest) {
					return false
				}
				next, rest = rest[0], rest[n:]
			case 51: // authentication header
				if len(rest) < 8 {
					return false
				}
				n := (int(rest[1]) + 2) * 4
				if n > len(rest) {
					return false
				}
				next, rest = rest[0], rest[n:]
			default: // 44 (fragment) and everything else end the walk
				break ext
			}
		}
		proto, l4 = next, rest
		sum = csumAdd(0, pkt[8:40]) // source and destination
	default:
		return false
	}

	var at int
	switch proto {
	case 6:
		at = 16
		if len(l4) < 20 {
			return false
		}
	case 17:
		at = 6
		if len(l4) < 8 {
			return false
		}
	default:
		return false
	}
	sum += uint64(proto) + uint64(len(l4))
	l4[at], l4[at+1] = 0, 0
	c := ^csumFold(csumAdd(sum, l4))
	if c == 0 && proto == 17 {
		c = 0xffff // RFC 768: a computed zero is sent as all ones
	}
	binary.BigEndian.PutUint16(l4[at:], c)
	return true
}

// csumAdd adds b, as big-endian 16-bit words (an odd last byte padded with
// zero), to the one's complement accumulator sum. It adds 32-bit halves of
// 64-bit loads: 2^16 = 1 modulo 0xffff, so the folded result is the same.
func csumAdd(sum uint64, b []byte) uint64 {
	for len(b) >= 32 {
		v0 := binary.BigEndian.Uint64(b)
		v1 := binary.BigEndian.Uint64(b[8:])
		v2 := binary.BigEndian.Uint64(b[16:])
		v3 := binary.BigEndian.Uint64(b[24:])
		sum += v0>>32 + v0&0xffffffff + v1>>32 + v1&0xffffffff +
			v2>>32 + v2&0xffffffff + v3>>32 + v3&0xffffffff
		b = b[32:]
	}
	for len(b) >= 8 {
		v := binary.BigEndian.Uint64(b)
		sum += v>>32 + v&0xffffffff
		b = b[8:]
	}
	if len(b) >= 4 {
		sum += uint64(binary.BigEndian.Uint32(b))
		b = b[4:]
	}
	if len(b) >= 2 {
		sum += uint64(binary.BigEndian.Uint16(b))
		b = b[2:]
	}
	if len(b) == 1 {
		sum += uint64(b[0]) << 8
	}
	return sum
}

// csumFold folds a one's complement accumulator to 16 bits.
func csumFold(sum uint64) uint16 {
	for sum>>16 != 0 {
		sum = sum&0xffff + sum>>16
	}
	return uint16(sum)
}
