package afpacket

import (
	"encoding/binary"
	"net"
)

// Test packet builders and an independent L4 checksum check: plain 16-bit
// word sums, written separately from the driver's 64-bit implementation.

type vlanTag struct{ tpid, tci uint16 }

type pktSpec struct {
	dst, src net.HardwareAddr
	tags     []vlanTag
	v6       bool
	srcIP    net.IP
	dstIP    net.IP
	proto    byte // 6 or 17
	hbh      bool // IPv6 only: add an 8-byte hop-by-hop options header
	sport    uint16
	dport    uint16
	payload  []byte
	ipID     uint16
	frag     uint16 // IPv4 flags+offset field
}

// built is a frame with valid checksums and where its L4 header starts.
type built struct {
	frame   []byte
	l4      int // offset of the TCP/UDP header
	csumOff int // offset of the checksum within the L4 header
}

func sum16(b []byte) uint32 {
	var s uint32
	for i := 0; i+1 < len(b); i += 2 {
		s += uint32(b[i])<<8 | uint32(b[i+1])
	}
	if len(b)%2 == 1 {
		s += uint32(b[len(b)-1]) << 8
	}
	return s
}

func fold16(s uint32) uint16 {
	for s > 0xffff {
		s = s>>16 + s&0xffff
	}
	return uint16(s)
}

func pseudoSum(v6 bool, src, dst net.IP, proto byte, l4len int) uint32 {
	if v6 {
		return sum16(src.To16()) + sum16(dst.To16()) + uint32(l4len>>16) + uint32(l4len&0xffff) + uint32(proto)
	}
	return sum16(src.To4()) + sum16(dst.To4()) + uint32(proto) + uint32(l4len)
}

func (s pktSpec) build() built {
	var f []byte
	f = append(f, s.dst...)
	f = append(f, s.src...)
	for _, t := range s.tags {
		f = binary.BigEndian.AppendUint16(f, t.tpid)
		f = binary.BigEndian.AppendUint16(f, t.tci)
	}
	var seg []byte
	csumOff := 6
	if s.proto == 6 {
		csumOff = 16
		seg = make([]byte, 20)
		binary.BigEndian.PutUint16(seg[0:], s.sport)
		binary.BigEndian.PutUint16(seg[2:], s.dport)
		binary.BigEndian.PutUint32(seg[4:], 0x01020304)
		binary.BigEndian.PutUint32(seg[8:], 0x0a0b0c0d)
		seg[12] = 5 << 4
		seg[13] = 0x18 // PSH ACK
		binary.BigEndian.PutUint16(seg[14:], 65535)
	} else {
		seg = make([]byte, 8)
		binary.BigEndian.PutUint16(seg[0:], s.sport)
		binary.BigEndian.PutUint16(seg[2:], s.dport)
		binary.BigEndian.PutUint16(seg[4:], uint16(8+len(s.payload)))
	}
	seg = append(seg, s.payload...)
	c := ^fold16(pseudoSum(s.v6, s.srcIP, s.dstIP, s.proto, len(seg)) + sum16(seg))
	if c == 0 && s.proto == 17 {
		c = 0xffff
	}
	binary.BigEndian.PutUint16(seg[csumOff:], c)

	if s.v6 {
		f = binary.BigEndian.AppendUint16(f, 0x86dd)
		ip := make([]byte, 40)
		ip[0] = 0x60
		ext := 0
		if s.hbh {
			ext = 8
		}
		binary.BigEndian.PutUint16(ip[4:], uint16(ext+len(seg)))
		ip[6] = s.proto
		if s.hbh {
			ip[6] = 0
		}
		ip[7] = 64
		copy(ip[8:], s.srcIP.To16())
		copy(ip[24:], s.dstIP.To16())
		f = append(f, ip...)
		if s.hbh {
			f = append(f, s.proto, 0, 1, 4, 0, 0, 0, 0) // PadN option
		}
	} else {
		f = binary.BigEndian.AppendUint16(f, 0x0800)
		ip := make([]byte, 20)
		ip[0] = 0x45
		binary.BigEndian.PutUint16(ip[2:], uint16(20+len(seg)))
		binary.BigEndian.PutUint16(ip[4:], s.ipID)
		binary.BigEndian.PutUint16(ip[6:], s.frag)
		ip[8] = 64
		ip[9] = s.proto
		copy(ip[12:], s.srcIP.To4())
		copy(ip[16:], s.dstIP.To4())
		binary.BigEndian.PutUint16(ip[10:], ^fold16(sum16(ip)))
		f = append(f, ip...)
	}
	l4 := len(f)
	f = append(f, seg...)
	return built{frame: f, l4: l4, csumOff: csumOff}
}

// l4Valid independently checks the TCP/UDP checksum of an Ethernet frame:
// the one's complement sum over pseudo-header and segment, checksum field
// included, must be all ones. It returns ok=false if the frame is not
// TCP/UDP over IPv4/IPv6 (behind 802.1Q/802.1ad tags, IPv6 hop-by-hop).
func l4Valid(f []byte) (valid, ok bool) {
	off := 12
	et := binary.BigEndian.Uint16(f[off:])
	for et == 0x8100 || et == 0x88a8 {
		off += 4
		et = binary.BigEndian.Uint16(f[off:])
	}
	off += 2
	var src, dst net.IP
	var proto byte
	var seg []byte
	v6 := false
	switch et {
	case 0x0800:
		ihl := int(f[off]&15) * 4
		tot := int(binary.BigEndian.Uint16(f[off+2:]))
		proto = f[off+9]
		src, dst = net.IP(f[off+12:off+16]), net.IP(f[off+16:off+20])
		seg = f[off+ihl : off+tot]
	case 0x86dd:
		v6 = true
		plen := int(binary.BigEndian.Uint16(f[off+4:]))
		proto = f[off+6]
		src, dst = net.IP(f[off+8:off+24]), net.IP(f[off+24:off+40])
		seg = f[off+40 : off+40+plen]
		if proto == 0 {
			n := (int(seg[1]) + 1) * 8
			proto, seg = seg[0], seg[n:]
		}
	default:
		return false, false
	}
	if proto != 6 && proto != 17 {
		return false, false
	}
	return fold16(pseudoSum(v6, src, dst, proto, len(seg))+sum16(seg)) == 0xffff, true
}
