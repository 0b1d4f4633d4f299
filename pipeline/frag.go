package pipeline

import "encoding/binary"

// This file keeps non-first fragments on the flow of their first fragment.
// A first fragment carries the ports, so it finds (or creates) its session;
// the worker then remembers (src, dst, id, proto) → session in a small
// direct-mapped table, and the later fragments, which have no ports, look it
// up there. Fragments that arrive before their first one (or after the slot
// was reused) are scheduled on (src, dst, proto) alone.

// fragTimeout is how long a fragment entry lives, in seconds (the Linux
// reassembly timeout is 30 s).
const fragTimeout = 30

type fragKey struct {
	src, dst [16]byte
	id       uint32
	proto    uint8
	family   uint8
}

type fragEntry struct {
	key    fragKey
	sess   int32  // session index (forward or reverse entry)
	realID uint32 // the session's real at insert time, to detect reuse
	expire uint32
	used   bool
}

type fragTable struct {
	slots []fragEntry
	mask  uint32
}

func newFragTable(n int) fragTable {
	size := 64
	for size < n {
		size <<= 1
	}
	return fragTable{slots: make([]fragEntry, size), mask: uint32(size - 1)}
}

func makeFragKey(p *Packet, data []byte) fragKey {
	var k fragKey
	copy(k.src[:], p.Src(data))
	copy(k.dst[:], p.Dst(data))
	k.id, k.proto, k.family = p.FragID, p.Proto, p.Family
	return k
}

func (t *fragTable) slot(k *fragKey) *fragEntry {
	h := binary.LittleEndian.Uint64(k.src[0:8]) ^ binary.LittleEndian.Uint64(k.src[8:16])*31 ^
		binary.LittleEndian.Uint64(k.dst[0:8])*0x9E3779B97F4A7C15 ^ binary.LittleEndian.Uint64(k.dst[8:16]) ^
		uint64(k.id)<<8 ^ uint64(k.proto)
	h ^= h >> 29
	h *= 0xBF58476D1CE4E5B9
	h ^= h >> 32
	return &t.slots[uint32(h)&t.mask]
}

// put remembers the session of a first fragment.
func (t *fragTable) put(k *fragKey, sess int32, realID uint32, now uint32) {
	e := t.slot(k)
	*e = fragEntry{key: *k, sess: sess, realID: realID, expire: now + fragTimeout, used: true}
}

// get returns the entry of a fragment's datagram, or nil.
func (t *fragTable) get(k *fragKey, now uint32) *fragEntry {
	e := t.slot(k)
	if !e.used || e.key != *k || e.expire < now {
		return nil
	}
	return e
}
