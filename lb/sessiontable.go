package lb

import (
	"fmt"
	"math/bits"
	"unsafe"
)

// This file holds SessionTable, the per-worker session (connection) table.
//
// Layout. Two flat arrays of plain values, allocated once, never grown, never
// scanned by the GC:
//
//   - sigs: one 16-bit signature per slot (0 = empty), four to a uint64 word.
//     A bucket is 32 slots, so its signatures are 8 words = exactly one
//     64-byte cache line (rte_hash keeps 8 per bucket; see below why 32).
//   - ents: the 64-byte Entry of each slot; slot index = bucket*32 + lane.
//
// Placement. A key has two candidate buckets, one in each half of the table
// ("d-left": the left half from the low 32 bits of its hash, the right half
// from the high 32), and a signature from all 64 bits. Insert puts it in the
// emptier of the two (ties go left). Lookup compares the key's signature with
// the 32 signatures of each candidate line, four lanes per word with SWAR
// arithmetic, and reads an Entry only on a signature match (a false match
// costs one key comparison, about once per 1000 lookups). A hit touches at
// most three cache lines: two signature lines and the entry.
//
// Entries never move. Entry.Peer links a forward and a reverse entry by index,
// and the pipeline keeps indices across packets, so an index stays valid for
// its entry's life. Cuckoo displacement is therefore out, and the load a
// no-move table reaches depends on the bucket size. Measured (simulation of
// this placement at 2^17..2^25 slots): with 8-slot buckets the first insert
// fails at 67-75% load and 0.8% of inserts fail when filling to 90%; with
// 16-slot buckets at 83-88%; with 32-slot buckets at 92-95%, and steady churn
// (delete one, insert one) at 85% load never fails. So a bucket is a whole
// cache line of signatures: the two lines a lookup loads anyway, fully used.
//
// Sizing: capacity/0.9 slots, rounded up to a power of two buckets, so that
// `capacity` sessions always fit and bucket selection is a mask.

const (
	bucketSlots = 32              // slots per bucket
	bucketWords = bucketSlots / 4 // uint64 signature words per bucket (one cache line)
	loadFactor  = 0.9             // design load at `capacity` sessions

	laneLow  = 0x0001000100010001 // 1 in each 16-bit lane
	laneLo15 = 0x7fff7fff7fff7fff // low 15 bits of each lane
	laneHigh = 0x8000800080008000 // top bit of each lane
)

// zeroLanes returns the top bit of every 16-bit lane of x that is zero, and
// nothing else: exact, with no borrow between lanes, so it serves both to find
// empty slots and (on w ^ sig*laneLow) to find signature matches.
func zeroLanes(x uint64) uint64 {
	return ^(((x & laneLo15) + laneLo15) | x | laneLo15)
}

// SessionTable is one pmd worker's session table. It is used by that worker's
// goroutine only: no locks, no atomics. Lookup, LookupBurst, Insert, Link,
// Delete, Expire and Advance never allocate.
type SessionTable struct {
	sigs  []uint64 // 8 words (32 signatures) per bucket, 64-byte aligned
	ents  []Entry  // 32 entries per bucket
	half  uint32   // buckets per half (a power of two)
	hmask uint32   // half - 1

	live   int    // live entries
	cursor uint32 // next signature word Expire scans

	stats    SessionStats
	timeouts Timeouts

	// sink receives the values LookupBurst loads only to start their cache
	// misses early, so the compiler cannot drop those loads.
	sink uint64
}

// SessionStats are a SessionTable's counters. The owning worker increments
// them without atomics and publishes copies (Stats). Entries are counted,
// not sessions: a nat session is two entries. Len() == Inserts - Deletes.
type SessionStats struct {
	Lookups uint64 // keys looked up (Lookup and LookupBurst)
	Hits    uint64 // lookups that found their key
	Inserts uint64 // successful inserts
	Deletes uint64 // entries removed for any reason (Delete, Expire, Flush)
	Expired uint64 // sessions (forward entries) removed by Expire
	Full    uint64 // inserts refused because both candidate buckets were full
}

// Expired reports one session removed by Expire, so that the worker can fix
// its per-real connection counters (Active(State)) and skip persistence
// templates (Flags&EntryPersist).
type Expired struct {
	RealID uint32
	State  uint8
	Flags  uint8
}

// NewSessionTable allocates a table that holds at least capacity sessions
// (entries, strictly: a nat/fullnat session takes two) with the given
// timeouts; zero fields of t take DefaultTimeouts' values. All memory is
// allocated here, once: about 66/0.9 bytes per session before rounding to a
// power of two buckets.
func NewSessionTable(capacity int, t Timeouts) *SessionTable {
	if capacity < 1 {
		capacity = 1
	}
	slots := (capacity*10 + 8) / 9 // ceil(capacity / loadFactor)
	nb := 2                        // one bucket per half at least
	for nb*bucketSlots < slots {
		nb <<= 1
	}
	if nb*bucketSlots > 1<<31 {
		panic(fmt.Sprintf("lb: session table capacity %d too large (entry indices are int32)", capacity))
	}
	st := &SessionTable{
		sigs:     alignedWords(nb * bucketWords),
		ents:     make([]Entry, nb*bucketSlots),
		half:     uint32(nb / 2),
		hmask:    uint32(nb/2 - 1),
		timeouts: t.withDefaults(),
	}
	for i := range st.ents {
		st.ents[i].Peer = -1
	}
	return st
}

// withDefaults fills zero timeouts from DefaultTimeouts: a zero timeout would
// make every session of that state die at the next Expire.
func (t Timeouts) withDefaults() Timeouts {
	d := DefaultTimeouts
	for _, p := range [...]struct{ v, d *uint32 }{
		{&t.SynSent, &d.SynSent}, {&t.Established, &d.Established}, {&t.Fin, &d.Fin},
		{&t.Close, &d.Close}, {&t.UDP, &d.UDP}, {&t.ICMP, &d.ICMP},
	} {
		if *p.v == 0 {
			*p.v = *p.d
		}
	}
	return t
}

// alignedWords returns n zeroed uint64 starting on a 64-byte boundary, so that
// each bucket's signatures are exactly one cache line.
func alignedWords(n int) []uint64 {
	s := make([]uint64, n+bucketWords-1)
	off := 0
	for !isLineAligned(&s[off]) {
		off++
	}
	return s[off : off+n : off+n]
}

// locate returns the two candidate buckets of hash h and its signature
// replicated into the four lanes of a word.
func (t *SessionTable) locate(h uint64) (b1, b2 uint32, pat uint64) {
	b1 = uint32(h) & t.hmask
	b2 = t.half + uint32(h>>32)&t.hmask
	// The signature takes the top bits of h times an odd constant: they depend
	// on every bit of h, including those the bucket indices do not use.
	sig := uint16((h * 0x9e3779b97f4a7c15) >> 48)
	if sig == 0 {
		sig = 1
	}
	return b1, b2, uint64(sig) * laneLow
}

// line returns bucket b's signature words.
func (t *SessionTable) line(b uint32) *[bucketWords]uint64 {
	return (*[bucketWords]uint64)(t.sigs[b*bucketWords:])
}

// findIn returns the index of k in bucket b, or -1.
func (t *SessionTable) findIn(b uint32, k *Key, pat uint64) int32 {
	for j, w := range t.line(b) {
		for m := zeroLanes(w ^ pat); m != 0; m &= m - 1 {
			i := int32(b*bucketSlots) + int32(j*4+bits.TrailingZeros64(m)>>4)
			if t.ents[i].Key.Equal(k) {
				return i
			}
		}
	}
	return -1
}

// firstMatch returns the index of the first slot of bucket b whose signature
// matches pat, or -1.
func (t *SessionTable) firstMatch(b uint32, pat uint64) int32 {
	for j, w := range t.line(b) {
		if m := zeroLanes(w ^ pat); m != 0 {
			return int32(b*bucketSlots) + int32(j*4+bits.TrailingZeros64(m)>>4)
		}
	}
	return -1
}

// find is Lookup without the counters.
func (t *SessionTable) find(k *Key, h uint64) int32 {
	b1, b2, pat := t.locate(h)
	if i := t.findIn(b1, k, pat); i >= 0 {
		return i
	}
	return t.findIn(b2, k, pat)
}

// Lookup returns the index of the entry for k, whose hash is h (k.Hash()), or
// -1 if there is none.
func (t *SessionTable) Lookup(k *Key, h uint64) int32 {
	t.stats.Lookups++
	i := t.find(k, h)
	if i >= 0 {
		t.stats.Hits++
	}
	return i
}

// LookupBurst looks up len(keys) keys: hashes[i] must be keys[i].Hash(), and
// out[i] receives the index of keys[i]'s entry or -1. hashes and out must be
// at least as long as keys.
//
// It works in passes so that the cache misses of the whole burst overlap
// instead of following one another (DESIGN.md: hash the whole burst before
// probing): load every key's two signature lines; find each key's first
// signature match; load those entries; compare the keys, by then in cache.
// The loading passes are tight loops on purpose: a load that misses holds
// its place in the CPU's reorder window, and the fewer instructions between
// two loads, the more of them are in flight at once.
func (t *SessionTable) LookupBurst(keys []Key, hashes []uint64, out []int32) {
	n := len(keys)
	hashes, out = hashes[:n], out[:n]
	sigs, ents := t.sigs, t.ents
	sink := t.sink
	for _, h := range hashes {
		b1, b2, _ := t.locate(h)
		sink += sigs[b1*bucketWords] + sigs[b2*bucketWords]
	}
	for i, h := range hashes {
		b1, b2, pat := t.locate(h)
		c := t.firstMatch(b1, pat)
		if c < 0 {
			c = t.firstMatch(b2, pat)
		}
		out[i] = c
	}
	for _, c := range out {
		if c >= 0 {
			sink += uint64(ents[c].Expire)
		}
	}
	t.sink = sink
	hits := 0
	for i, c := range out {
		if c < 0 {
			continue // no signature matched: a certain miss
		}
		if !ents[c].Key.Equal(&keys[i]) {
			// A false signature match (rare): search both buckets fully.
			c = t.find(&keys[i], hashes[i])
			out[i] = c
			if c < 0 {
				continue
			}
		}
		hits++
	}
	t.stats.Lookups += uint64(n)
	t.stats.Hits += uint64(hits)
}

// Entry returns entry i (an index from Lookup, LookupBurst or Insert). The
// pointer is valid until the entry is deleted or expired.
func (t *SessionTable) Entry(i int32) *Entry { return &t.ents[i] }

// emptyCount returns the number of empty slots of bucket b.
func (t *SessionTable) emptyCount(b uint32) int {
	n := 0
	for _, w := range t.line(b) {
		n += bits.OnesCount64(zeroLanes(w))
	}
	return n
}

// Insert adds key k, whose hash is h (k.Hash()), and returns its index. k
// must not be present (Lookup first). The new entry is zero but for Key and
// Peer = -1. If both candidate buckets are full it counts Full and returns -1.
func (t *SessionTable) Insert(k *Key, h uint64) int32 {
	b1, b2, pat := t.locate(h)
	b := b1
	if t.emptyCount(b2) > t.emptyCount(b1) {
		b = b2
	}
	line := t.line(b)
	for j, w := range line {
		z := zeroLanes(w)
		if z == 0 {
			continue
		}
		shift := bits.TrailingZeros64(z) - 15 // 16 * lane
		line[j] = w | (pat&0xffff)<<shift
		i := int32(b*bucketSlots) + int32(j*4+shift>>4)
		t.ents[i] = Entry{Key: *k, Peer: -1}
		t.live++
		t.stats.Inserts++
		return i
	}
	t.stats.Full++
	return -1
}

// Link makes fwd and rev peers, the forward and reverse entries of one
// nat/fullnat session, and marks rev with EntryReverse: from then on rev lives
// and dies with fwd, which alone carries State and Expire.
func (t *SessionTable) Link(fwd, rev int32) {
	f, r := &t.ents[fwd], &t.ents[rev]
	f.Peer, r.Peer = rev, fwd
	f.Flags &^= EntryReverse
	r.Flags |= EntryReverse
}

// used reports whether slot i holds an entry.
func (t *SessionTable) used(i int32) bool {
	return t.sigs[i>>2]>>(16*(i&3))&0xffff != 0
}

// remove empties slot i, which must be used.
func (t *SessionTable) remove(i int32) {
	t.sigs[i>>2] &^= 0xffff << (16 * (i & 3))
	// Zeroing makes a stale index visible (zero Key, Peer -1) instead of
	// silently aliasing the next entry's data until a new insert.
	t.ents[i] = Entry{Peer: -1}
	t.live--
	t.stats.Deletes++
}

// removePeer removes the peer of entry i (whose Peer is p) if it points back.
func (t *SessionTable) removePeer(i, p int32) {
	if p >= 0 && p != i && t.used(p) && t.ents[p].Peer == i {
		t.remove(p)
	}
}

// Delete removes entry i and its peer, if any. Deleting an empty slot does
// nothing, so a double delete is harmless.
func (t *SessionTable) Delete(i int32) {
	if !t.used(i) {
		return
	}
	p := t.ents[i].Peer
	t.remove(i)
	t.removePeer(i, p)
}

// Expire scans at most budget slots (rounded up to a multiple of 4) from an
// internal cursor that wraps around the table, and removes every forward
// entry whose Expire < now together with its reverse peer. Reverse entries
// are not judged by their own Expire (their forward entry carries it) unless
// they have lost their peer. For each forward entry removed it writes an
// Expired to out and returns how many it wrote; when out is full it stops,
// and the next call resumes where this one stopped. Call it once per burst:
// the work is bounded by budget.
func (t *SessionTable) Expire(now uint32, budget int, out []Expired) int {
	n := 0
	sigs := t.sigs
	wmask := uint32(len(sigs) - 1)
	c := t.cursor & wmask
	for scanned := 0; scanned < budget; scanned += 4 {
		occ := ^zeroLanes(sigs[c]) & laneHigh
		for occ != 0 {
			lane := bits.TrailingZeros64(occ) >> 4
			occ &= occ - 1
			i := int32(c*4) + int32(lane)
			e := &t.ents[i]
			if e.Expire >= now {
				continue
			}
			if e.Flags&EntryReverse != 0 {
				if e.Peer >= 0 {
					continue
				}
				t.remove(i) // an orphan: nothing else would ever free it
				continue
			}
			if n == len(out) {
				t.cursor = c
				return n
			}
			out[n] = Expired{RealID: e.RealID, State: e.State, Flags: e.Flags}
			n++
			t.stats.Expired++
			p := e.Peer
			t.remove(i)
			t.removePeer(i, p)
			// The peer may sit in this very word: forget emptied lanes.
			occ &= ^zeroLanes(sigs[c])
		}
		c = (c + 1) & wmask
	}
	t.cursor = c
	return n
}

// Len returns the number of live entries.
func (t *SessionTable) Len() int { return t.live }

// Cap returns the number of slots (not all usable: see NewSessionTable).
func (t *SessionTable) Cap() int { return len(t.ents) }

// Timeouts returns the table's timeouts. Only the owning worker may change
// them (the control plane sends new values through the worker).
func (t *SessionTable) Timeouts() *Timeouts { return &t.timeouts }

// Stats returns a copy of the counters.
func (t *SessionTable) Stats() SessionStats { return t.stats }

// MemoryBytes returns the size of the table's arrays, for "bytes per session"
// and memory accounting.
func (t *SessionTable) MemoryBytes() int {
	return len(t.sigs)*8 + len(t.ents)*entrySize
}

// entrySize is the size of an Entry, fixed by its layout in session.go; the
// two array declarations fail to compile if the layout ever changes.
const entrySize = 64

var (
	_ [entrySize - unsafe.Sizeof(Entry{})]byte
	_ [unsafe.Sizeof(Entry{}) - entrySize]byte
)

// isLineAligned reports whether p starts a 64-byte cache line.
func isLineAligned(p *uint64) bool { return uintptr(unsafe.Pointer(p))&63 == 0 }

// Flush removes every entry (when a worker stops, and in tests). Removed
// entries count as Deletes; the Expire cursor restarts at slot 0.
func (t *SessionTable) Flush() {
	clear(t.sigs)
	clear(t.ents)
	for i := range t.ents {
		t.ents[i].Peer = -1
	}
	t.stats.Deletes += uint64(t.live)
	t.live = 0
	t.cursor = 0
}
