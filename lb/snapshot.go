package lb

import (
	"encoding/binary"
	"net/netip"
)

// Snapshot is one immutable configuration as the workers see it. The control
// plane builds a new one for every change (Balancer.Apply) and publishes it
// with an atomic pointer; a worker loads it once per burst and never writes
// to it. Everything a packet needs is reachable from here through slices and
// flat open-addressed tables: no Go map, no lock.
type Snapshot struct {
	Gen      uint64 // increases with every published snapshot
	Services []SvcEntry
	Reals    []RealEntry // all reals of all services, including draining ones
	Timeouts Timeouts

	realByID []int32 // real id -> index into Reals, -1
	index    endpointTable

	// anyPort/anyProto say whether port-0 or proto-any services exist, so
	// Classify can skip the wildcard probes when none do.
	anyPort, anyProto bool
	natWild           bool
}

// SvcEntry is a service as the fast path reads it.
type SvcEntry struct {
	Key        ServiceKey
	ID         uint32 // stable across snapshots, for counters
	Family     uint8
	Proto      uint8
	Port       uint16
	VIP        [16]byte
	Method     Method
	Flags      ServiceFlags
	DSCP       uint8
	ClientPort uint16 // driver port of the client side
	OnRemove   RemovePolicy
	// Owned says the service's flows must be handled by one computable
	// worker (nat/fullnat replies, persistence templates): see pipeline.
	Owned bool

	PersistTimeout uint32 // seconds; 0: no persistence
	PersistMask    [16]byte

	Sched   *Sched
	RealIdx []int32 // Sched.Reals()[i] -> index into Snapshot.Reals

	LocalAddrs [][16]byte // fullnat SNAT sources, tunnel outer source (same family as VIP)
}

// RealEntry is a real server as the fast path reads it.
type RealEntry struct {
	Key     RealKey
	ID      uint32
	Svc     int32 // index into Snapshot.Services
	Family  uint8
	Method  Method // resolved (never MethodDefault)
	State   RealState
	Removed bool // no longer configured; kept while its sessions drain
	Port    uint16
	Addr    [16]byte
	Weight  int32
	NextHop NextHop
}

// NextHop is where frames for a real leave: the driver port and the
// Ethernet destination (the real's own MAC when it is on-link, else its
// gateway's). Resolved by the control plane (neighbour table, ARP).
type NextHop struct {
	MAC  [6]byte
	Port uint16
	OK   bool // false: unresolved; packets to the real are dropped and counted
}

// Real returns the real with the given stable id, or nil.
func (s *Snapshot) Real(id uint32) *RealEntry {
	if int(id) >= len(s.realByID) {
		return nil
	}
	i := s.realByID[id]
	if i < 0 {
		return nil
	}
	return &s.Reals[i]
}

// Endpoint kinds in the snapshot's index.
const (
	epService   = 1 // (proto, VIP, port) -> service index
	epNATReal   = 2 // (proto, real addr, real port) of a nat real -> real index
	epLocalAddr = 3 // fullnat local address -> service index (first one)
)

// Classify returns the index of the service that takes packets of proto to
// dst:port, or -1. Exact port first, then port 0 (all ports); exact protocol
// first, then "any".
func (s *Snapshot) Classify(family, proto uint8, dst []byte, port uint16) int32 {
	if i := s.index.find(epService, family, proto, dst, port); i >= 0 {
		return i
	}
	if s.anyPort {
		if i := s.index.find(epService, family, proto, dst, 0); i >= 0 {
			return i
		}
	}
	if s.anyProto && (proto == uint8(ProtoTCP) || proto == uint8(ProtoUDP)) {
		if i := s.index.find(epService, family, 0, dst, port); i >= 0 {
			return i
		}
		if s.anyPort {
			return s.index.find(epService, family, 0, dst, 0)
		}
	}
	return -1
}

// NATReal returns the index into Reals of the nat real that sends from
// src:port, or -1: such packets are replies to rewrite back to the VIP.
func (s *Snapshot) NATReal(family, proto uint8, src []byte, port uint16) int32 {
	if i := s.index.find(epNATReal, family, proto, src, port); i >= 0 || !s.natWild {
		return i
	}
	if i := s.index.find(epNATReal, family, 0, src, port); i >= 0 {
		return i
	}
	if i := s.index.find(epNATReal, family, proto, src, 0); i >= 0 {
		return i
	}
	return s.index.find(epNATReal, family, 0, src, 0)
}

// LocalAddr returns the index of a fullnat service that owns dst as a local
// address, or -1: packets to it are fullnat replies.
func (s *Snapshot) LocalAddr(family uint8, dst []byte) int32 {
	return s.index.find(epLocalAddr, family, 0, dst, 0)
}

// IsVIP reports whether addr is the VIP of any service (for the slow path:
// ARP and ICMP echo answering by drivers that have no kernel).
func (s *Snapshot) IsVIP(family uint8, addr []byte) bool {
	for i := range s.Services {
		sv := &s.Services[i]
		if sv.Family == family && string(sv.VIP[:addrLen(family)]) == string(addr) {
			return true
		}
	}
	return false
}

func addrLen(family uint8) int {
	if family == FamilyV4 {
		return 4
	}
	return 16
}

// endpointTable is a small open-addressed hash table (linear probing, power
// of two slots, load <= 1/2) from (kind, family, proto, addr, port) to an
// index. Built once per snapshot, read-only afterwards.
type endpointTable struct {
	slots []endpointSlot
	mask  uint32
}

type endpointSlot struct {
	addr   [16]byte
	port   uint16
	kind   uint8
	family uint8
	proto  uint8
	used   bool
	val    int32
}

func endpointHash(kind, family, proto uint8, addr []byte, port uint16) uint32 {
	var a [16]byte
	copy(a[:], addr)
	h := binary.LittleEndian.Uint64(a[0:8])*0x9E3779B97F4A7C15 ^ binary.LittleEndian.Uint64(a[8:16])
	h ^= uint64(port)<<32 | uint64(kind)<<24 | uint64(family)<<16 | uint64(proto)
	h *= 0xBF58476D1CE4E5B9
	h ^= h >> 31
	return uint32(h)
}

func newEndpointTable(n int) endpointTable {
	size := 8
	for size < 2*n {
		size <<= 1
	}
	return endpointTable{slots: make([]endpointSlot, size), mask: uint32(size - 1)}
}

// put inserts a key; it reports false if the key is already present.
func (t *endpointTable) put(kind, family, proto uint8, addr []byte, port uint16, val int32) bool {
	var a [16]byte
	copy(a[:], addr)
	for i := endpointHash(kind, family, proto, addr, port) & t.mask; ; i = (i + 1) & t.mask {
		sl := &t.slots[i]
		if !sl.used {
			*sl = endpointSlot{addr: a, port: port, kind: kind, family: family, proto: proto, used: true, val: val}
			return true
		}
		if sl.addr == a && sl.port == port && sl.kind == kind && sl.family == family && sl.proto == proto {
			return false
		}
	}
}

func (t *endpointTable) find(kind, family, proto uint8, addr []byte, port uint16) int32 {
	if len(t.slots) == 0 {
		return -1
	}
	for i := endpointHash(kind, family, proto, addr, port) & t.mask; ; i = (i + 1) & t.mask {
		sl := &t.slots[i]
		if !sl.used {
			return -1
		}
		if sl.port == port && sl.kind == kind && sl.family == family && sl.proto == proto &&
			string(sl.addr[:len(addr)]) == string(addr) {
			return sl.val
		}
	}
}

// addrBytes returns the 16-byte form gvs uses in keys: IPv4 in the first 4
// bytes, zero after.
func addrBytes(a netip.Addr) (b [16]byte, family uint8) {
	if a.Is4() {
		v := a.As4()
		copy(b[:], v[:])
		return b, FamilyV4
	}
	return a.As16(), FamilyV6
}

// AddrBytes is addrBytes for other packages (tests, control plane).
func AddrBytes(a netip.Addr) ([16]byte, uint8) { return addrBytes(a) }
