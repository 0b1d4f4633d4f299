package trafficgen

import (
	"encoding/binary"
	"time"

	"golang.org/x/sys/unix"
)

// The stamp is the last StampLen bytes of the L4 payload, so it is also the
// last bytes of the outermost IP datagram whatever a load balancer did to
// the headers in front of it (NAT, full NAT, IPIP/IPv6 encapsulation): a
// receiver finds it from the outermost IP length alone, before any Ethernet
// padding. Layout, big endian:
//
//	offset  size  field
//	0       2     magic 0x7467 ("tg")
//	2       1     class (0..NumClasses-1: protocol × family)
//	3       3     flow id (0..MaxFlows-1)
//	6       4     sequence number, per flow, from 0
//	10      8     transmit time, ns of CLOCK_MONOTONIC
//
// 18 bytes: exactly the UDP payload of a 64-byte IPv4 frame. The magic,
// class and flow are the same for every packet of a flow and part of the
// flow's precomputed checksum sum; seq and time change per packet and their
// one's-complement sum is added to the template's checksum.
const (
	StampLen   = 18
	StampMagic = 0x7467
)

// Stamp is the decoded stamp of a packet.
type Stamp struct {
	Class   uint8
	Flow    uint32
	Seq     uint32
	TxNanos uint64
}

// PutStamp writes s into b[:StampLen].
func PutStamp(b []byte, s Stamp) {
	_ = b[StampLen-1]
	binary.BigEndian.PutUint16(b[0:], StampMagic)
	binary.BigEndian.PutUint32(b[2:], uint32(s.Class)<<24|s.Flow&0xffffff)
	binary.BigEndian.PutUint32(b[6:], s.Seq)
	binary.BigEndian.PutUint64(b[10:], s.TxNanos)
}

// FindStamp locates the stamp of an Ethernet frame: behind up to two VLAN
// tags, at the end of the outermost IPv4 or IPv6 datagram as its length
// field gives it. It reports false for frames without a valid stamp.
func FindStamp(frame []byte) (Stamp, bool) {
	if len(frame) < 14 {
		return Stamp{}, false
	}
	et := binary.BigEndian.Uint16(frame[12:])
	l3 := 14
	for i := 0; i < 2 && (et == 0x8100 || et == 0x88a8); i++ {
		if len(frame) < l3+4 {
			return Stamp{}, false
		}
		et = binary.BigEndian.Uint16(frame[l3+2:])
		l3 += 4
	}
	var start, end int
	switch et {
	case 0x0800:
		if len(frame) < l3+20 || frame[l3]>>4 != 4 {
			return Stamp{}, false
		}
		start = l3 + int(frame[l3]&0xf)*4
		end = l3 + int(binary.BigEndian.Uint16(frame[l3+2:]))
	case 0x86dd:
		if len(frame) < l3+40 || frame[l3]>>4 != 6 {
			return Stamp{}, false
		}
		start = l3 + 40
		end = start + int(binary.BigEndian.Uint16(frame[l3+4:]))
	default:
		return Stamp{}, false
	}
	if end > len(frame) || end-StampLen < start {
		return Stamp{}, false
	}
	b := frame[end-StampLen : end]
	if binary.BigEndian.Uint16(b) != StampMagic {
		return Stamp{}, false
	}
	cf := binary.BigEndian.Uint32(b[2:])
	s := Stamp{Class: uint8(cf >> 24), Flow: cf & 0xffffff, Seq: binary.BigEndian.Uint32(b[6:]), TxNanos: binary.BigEndian.Uint64(b[10:])}
	if int(s.Class) >= NumClasses {
		return Stamp{}, false
	}
	return s, true
}

// stampSum is the one's-complement sum (folded) of the per-packet stamp
// fields as 16-bit words aligned at the stamp's start: class/flow, seq and
// time. The magic is in the template.
func stampSum(classFlow, seq uint32, ts uint64) uint16 {
	s := uint64(classFlow>>16) + uint64(classFlow&0xffff) +
		uint64(seq>>16) + uint64(seq&0xffff) +
		ts>>48 + ts>>32&0xffff + ts>>16&0xffff + ts&0xffff
	return fold(s)
}

// fold folds a one's-complement sum to 16 bits.
func fold(s uint64) uint16 {
	s = s&0xffffffff + s>>32
	s = s&0xffff + s>>16
	s = s&0xffff + s>>16
	s = s&0xffff + s>>16
	return uint16(s)
}

// sum16 adds b as big-endian 16-bit words to s (no folding).
func sum16(b []byte, s uint64) uint64 {
	for len(b) >= 2 {
		s += uint64(b[0])<<8 | uint64(b[1])
		b = b[2:]
	}
	if len(b) == 1 {
		s += uint64(b[0]) << 8
	}
	return s
}

// monoBase anchors Go's monotonic clock to CLOCK_MONOTONIC: Go reads the
// same clock but does not expose its value, and a stamp must be comparable
// with another process's (CLOCK_MONOTONIC is one clock for all network
// namespaces of a host). time.Since goes through the vDSO; a raw
// clock_gettime system call per burst would cost more.
var clockBase, monoBase = func() (time.Time, int64) {
	var a, b unix.Timespec
	_ = unix.ClockGettime(unix.CLOCK_MONOTONIC, &a)
	t := time.Now()
	_ = unix.ClockGettime(unix.CLOCK_MONOTONIC, &b)
	return t, (a.Nano() + b.Nano()) / 2
}()

// Nanotime returns CLOCK_MONOTONIC in nanoseconds (to within the
// microsecond it took to anchor it), the clock of the stamps.
func Nanotime() uint64 { return uint64(monoBase + int64(time.Since(clockBase))) }
