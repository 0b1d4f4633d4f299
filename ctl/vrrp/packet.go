package vrrp

import (
	"encoding/binary"
	"net/netip"
	"time"
)

// This file is the VRRP advertisement on the wire: VRRPv3 (RFC 5798 §5.1)
// and VRRPv2 (RFC 3768 §5.1), encoding and the receive-side checks of RFC
// 5798 §7.1 / RFC 3768 §7.1 that need nothing but the packet.

// Protocol is VRRP's IP protocol number (RFC 5798 §5.2.4).
const Protocol = 112

// Multicast groups of VRRP (RFC 5798 §5.1.1.2, §5.1.2.2).
var (
	Group4 = netip.MustParseAddr("224.0.0.18")
	Group6 = netip.MustParseAddr("ff02::12")
)

// TTL is the IPv4 TTL / IPv6 hop limit of every advertisement, and the only
// one a receiver accepts (RFC 5798 §5.1.1.3, §5.1.2.3, §7.1).
const TTL = 255

// PriorityOwner is the priority of the router that owns the virtual
// addresses; PriorityStop is advertised by a master that stops (RFC 5798
// §5.2.4).
const (
	PriorityOwner = 255
	PriorityStop  = 0
)

// typeAdvert is the only VRRP message type (RFC 5798 §5.2.2).
const typeAdvert = 1

// VRRPv2 authentication types (RFC 3768 §5.3.6; keepalived's "auth_type PASS").
const (
	AuthNone   = 0
	AuthSimple = 1
)

// authLen is the size of VRRPv2's authentication data.
const authLen = 8

// Interval limits: VRRPv3 counts centiseconds in 12 bits (RFC 5798 §5.2.7),
// VRRPv2 whole seconds in 8 bits (RFC 3768 §5.3.7).
const (
	MinInterval3 = 10 * time.Millisecond
	MaxInterval3 = 4095 * 10 * time.Millisecond
	MinInterval2 = time.Second
	MaxInterval2 = 255 * time.Second
)

// Advert is one VRRP advertisement.
type Advert struct {
	Version  uint8 // 2 or 3
	VRID     uint8
	Priority uint8
	// Interval is the sender's advertisement interval: Max Adver Int in
	// centiseconds (v3) or Adver Int in seconds (v2).
	Interval time.Duration
	AuthType uint8         // v2 only
	AuthData [authLen]byte // v2 only
	Addrs    []netip.Addr  // the virtual addresses, all of one family
}

// Discard reasons: why a received packet was dropped (the counters of RFC
// 5798 §7.1 and the VRRP MIB, RFC 6527). The names are the keys of
// Status.Discards.
const (
	DiscardTTL      = "ttl"        // TTL / hop limit not 255
	DiscardVersion  = "version"    // not the instance's VRRP version
	DiscardType     = "type"       // not an advertisement
	DiscardLength   = "length"     // truncated, or shorter than its address count says
	DiscardChecksum = "checksum"   // bad checksum
	DiscardVRID     = "vrid"       // no instance with this VRID on the interface
	DiscardOwner    = "owner"      // we own the addresses (priority 255): nobody else may advertise
	DiscardAddrList = "addr_list"  // v2: address list differs from ours (RFC 3768 §7.1)
	DiscardInterval = "interval"   // v2: advertisement interval differs from ours
	DiscardAuthType = "auth_type"  // v2: authentication type differs
	DiscardAuth     = "auth"       // v2: wrong password
	DiscardUnicast  = "not_a_peer" // unicast instance: sender is not a configured peer
)

// Marshal appends adv's encoding to b. src and dst are the IP source and
// destination the packet will carry: VRRPv3's checksum covers a
// pseudo-header made of them (RFC 5798 §5.2.8); VRRPv2's covers the VRRP
// message only.
func (adv *Advert) Marshal(b []byte, src, dst netip.Addr) []byte {
	start := len(b)
	b = append(b, adv.Version<<4|typeAdvert, adv.VRID, adv.Priority, uint8(len(adv.Addrs)))
	if adv.Version == 2 {
		b = append(b, adv.AuthType, uint8(adv.Interval/time.Second))
	} else {
		cs := uint16(adv.Interval / (10 * time.Millisecond))
		b = binary.BigEndian.AppendUint16(b, cs&0x0fff)
	}
	b = append(b, 0, 0) // checksum
	for _, a := range adv.Addrs {
		b = append(b, a.AsSlice()...)
	}
	if adv.Version == 2 {
		b = append(b, adv.AuthData[:]...)
	}
	msg := b[start:]
	var sum uint32
	if adv.Version != 2 {
		sum = pseudoSum(src, dst, len(msg))
	}
	binary.BigEndian.PutUint16(msg[6:], ^fold(sum+onesSum(msg)))
	return b
}

// Parse decodes a VRRP message received from src to dst (the IP header's
// addresses) and checks what the message alone can tell: type, version
// (2 or 3; the caller compares it with the instance's), length against the
// address count, address family, checksum. On failure it returns one of
// the Discard reasons; the VRID is still returned whenever the message is
// at least two bytes long, so the discard can be counted on its instance.
func Parse(msg []byte, src, dst netip.Addr) (adv Advert, reason string) {
	if len(msg) >= 2 {
		adv.VRID = msg[1]
	}
	if len(msg) < 8 {
		return adv, DiscardLength
	}
	adv.Version = msg[0] >> 4
	adv.Priority = msg[2]
	if msg[0]&0x0f != typeAdvert {
		return adv, DiscardType
	}
	if adv.Version != 2 && adv.Version != 3 {
		return adv, DiscardVersion
	}
	alen := 4
	if src.Is6() && !src.Is4In6() {
		alen = 16
		if adv.Version == 2 {
			// RFC 3768 is IPv4 only.
			return adv, DiscardVersion
		}
	}
	n := int(msg[3])
	need := 8 + n*alen
	if adv.Version == 2 {
		need += authLen
	}
	if len(msg) < need {
		return adv, DiscardLength
	}
	msg = msg[:need] // ignore trailing bytes (padding)
	var sum uint32
	if adv.Version == 3 {
		sum = pseudoSum(src, dst, len(msg))
	}
	if fold(sum+onesSum(msg)) != 0xffff {
		return adv, DiscardChecksum
	}
	if adv.Version == 2 {
		adv.AuthType = msg[4]
		adv.Interval = time.Duration(msg[5]) * time.Second
		copy(adv.AuthData[:], msg[need-authLen:])
	} else {
		adv.Interval = time.Duration(binary.BigEndian.Uint16(msg[4:])&0x0fff) * 10 * time.Millisecond
	}
	adv.Addrs = make([]netip.Addr, 0, n)
	for i := 0; i < n; i++ {
		p := msg[8+i*alen : 8+(i+1)*alen]
		a, _ := netip.AddrFromSlice(p)
		adv.Addrs = append(adv.Addrs, a)
	}
	return adv, ""
}

// pseudoSum is the one's-complement sum of the IPv4 or IPv6 pseudo-header
// for an upper-layer message of length n with protocol 112 (RFC 5798
// §5.2.8, which points at RFC 2460 §8.1 for IPv6 and RFC 768's layout for
// IPv4).
func pseudoSum(src, dst netip.Addr, n int) uint32 {
	var b []byte
	src, dst = src.Unmap(), dst.Unmap()
	b = append(b, src.AsSlice()...)
	b = append(b, dst.AsSlice()...)
	if src.Is4() {
		b = append(b, 0, Protocol)
		b = binary.BigEndian.AppendUint16(b, uint16(n))
	} else {
		b = binary.BigEndian.AppendUint32(b, uint32(n))
		b = append(b, 0, 0, 0, Protocol)
	}
	return onesSum(b)
}

// onesSum is the 32-bit accumulation of b as big-endian 16-bit words (odd
// length padded with a zero byte); fold it before use.
func onesSum(b []byte) uint32 {
	var s uint32
	for len(b) >= 2 {
		s += uint32(b[0])<<8 | uint32(b[1])
		b = b[2:]
	}
	if len(b) == 1 {
		s += uint32(b[0]) << 8
	}
	return s
}

func fold(s uint32) uint16 {
	for s>>16 != 0 {
		s = s&0xffff + s>>16
	}
	return uint16(s)
}

// checksum is the Internet checksum of b (RFC 1071).
func checksum(b []byte, initial uint32) uint16 { return ^fold(initial + onesSum(b)) }

// authData is a VRRPv2 simple password as carried in the packet: the
// first eight bytes, zero padded (keepalived's auth_pass).
func authData(pass string) (d [authLen]byte) {
	copy(d[:], pass)
	return d
}

// sameAddrs reports whether a and b hold the same addresses, in any order.
func sameAddrs(a, b []netip.Addr) bool {
	if len(a) != len(b) {
		return false
	}
	for _, x := range a {
		found := false
		for _, y := range b {
			if x == y {
				found = true
				break
			}
		}
		if !found {
			return false
		}
	}
	return true
}
