package vethbench

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
)

// Frame sizes are counted on the wire including the 4-byte FCS, as in
// RFC 2544: a 64-byte frame is written as 60 bytes (the NIC or veth adds no
// FCS we could see).
const (
	fcsLen       = 4
	MinFrameSize = 64
	MaxFrameSize = 1518
	ethHdrLen    = 14
	ipv4HdrLen   = 20
	udpHdrLen    = 8
)

// FrameSpec describes the generated traffic: IPv4/UDP frames from Src to
// Dst:DstPort, one per flow. Flow i uses source port FirstPort+i; past port
// 65535 the source address is incremented and the ports start over.
type FrameSpec struct {
	SrcMAC, DstMAC net.HardwareAddr
	Src, Dst       netip.Addr
	DstPort        uint16
	FirstPort      uint16 // default 1024
	Flows          int
	Size           int // frame size on the wire including FCS, 64..1518
}

// BuildFrames returns one ready-to-send frame per flow, with valid IPv4
// header and UDP checksums (the DUT may check them; nothing is left for
// checksum offload).
func BuildFrames(s FrameSpec) ([][]byte, error) {
	if s.FirstPort == 0 {
		s.FirstPort = 1024
	}
	switch {
	case len(s.SrcMAC) != 6 || len(s.DstMAC) != 6:
		return nil, errors.New("frames: MAC addresses must be 6 bytes")
	case !s.Src.Is4() || !s.Dst.Is4():
		return nil, errors.New("frames: only IPv4 addresses are supported")
	case s.Flows < 1 || s.Flows > 1<<20:
		return nil, fmt.Errorf("frames: %d flows: want 1..%d", s.Flows, 1<<20)
	case s.Size < MinFrameSize || s.Size > MaxFrameSize:
		return nil, fmt.Errorf("frames: size %d: want %d..%d bytes (including the FCS)", s.Size, MinFrameSize, MaxFrameSize)
	}
	perAddr := 65536 - int(s.FirstPort)
	frameLen := s.Size - fcsLen
	ipLen := frameLen - ethHdrLen
	udpLen := ipLen - ipv4HdrLen
	// All frames in one backing array: fewer allocations, better locality.
	mem := make([]byte, frameLen*s.Flows)
	out := make([][]byte, s.Flows)
	dst := s.Dst.As4()
	for i := range out {
		f := mem[i*frameLen : (i+1)*frameLen : (i+1)*frameLen]
		out[i] = f
		src := addV4(s.Src, uint32(i/perAddr)).As4()
		sport := uint16(int(s.FirstPort) + i%perAddr)

		copy(f[0:6], s.DstMAC)
		copy(f[6:12], s.SrcMAC)
		binary.BigEndian.PutUint16(f[12:], 0x0800)

		ip := f[ethHdrLen:]
		ip[0] = 0x45
		ip[1] = 0
		binary.BigEndian.PutUint16(ip[2:], uint16(ipLen))
		binary.BigEndian.PutUint16(ip[4:], uint16(i)) // id
		binary.BigEndian.PutUint16(ip[6:], 0x4000)    // DF
		ip[8] = 64
		ip[9] = 17
		copy(ip[12:16], src[:])
		copy(ip[16:20], dst[:])
		binary.BigEndian.PutUint16(ip[10:], Checksum(ip[:ipv4HdrLen], 0))

		udp := ip[ipv4HdrLen:]
		binary.BigEndian.PutUint16(udp[0:], sport)
		binary.BigEndian.PutUint16(udp[2:], s.DstPort)
		binary.BigEndian.PutUint16(udp[4:], uint16(udpLen))
		payload := udp[udpHdrLen:]
		for j := range payload {
			payload[j] = byte(j)
		}
		copy(payload, "gvs-bench")
		pseudo := sum16(src[:], 0)
		pseudo = sum16(dst[:], pseudo)
		pseudo += 17 + uint32(udpLen)
		c := Checksum(udp, pseudo)
		if c == 0 {
			c = 0xffff
		}
		binary.BigEndian.PutUint16(udp[6:], c)
	}
	return out, nil
}

func addV4(a netip.Addr, n uint32) netip.Addr {
	b := a.As4()
	v := binary.BigEndian.Uint32(b[:]) + n
	binary.BigEndian.PutUint32(b[:], v)
	return netip.AddrFrom4(b)
}

// sum16 adds b as big-endian 16-bit words to sum (no folding).
func sum16(b []byte, sum uint32) uint32 {
	for len(b) >= 2 {
		sum += uint32(b[0])<<8 | uint32(b[1])
		b = b[2:]
	}
	if len(b) == 1 {
		sum += uint32(b[0]) << 8
	}
	return sum
}

// Checksum is the Internet checksum (RFC 1071) of b, starting from the
// unfolded partial sum initial (a pseudo-header sum, or 0). Computed over
// data that already holds its checksum it returns 0.
func Checksum(b []byte, initial uint32) uint16 {
	s := sum16(b, initial)
	for s>>16 != 0 {
		s = s&0xffff + s>>16
	}
	return ^uint16(s)
}
