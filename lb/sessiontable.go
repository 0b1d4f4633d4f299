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
//   - sigs: one 16-bit lane per slot, four to a uint64 word. The low 15 bits
//     are the slot's signature (0 = empty). A bucket is 8 slots = 2 words =
//     16 bytes, and four buckets make a 64-byte "line" (the cache line).
//   - ents: the 64-byte Entry of each slot; slot = bucket*8 + lane.
//
// Placement. A key has two home buckets, one in each half of the table
// (d-left: from the low and the high 32 bits of its hash), and a 15-bit
// signature from all 64 bits. Insert picks the emptier of the two homes'
// lines and puts the key in its home bucket there; if that bucket is full,
// in the emptiest other bucket of the same line ("spilled"), and counts the
// spill in the home bucket. Lookup compares the signature with the 8 lanes of
// each home bucket (SWAR, four lanes per word), and with the rest of a home's
// line only if that home has spilled entries; it reads an Entry only on a
// signature match (a false match, about one lookup in 2000, costs one key
// comparison). A hit touches at most three cache lines, two of signatures
// and the entry; searching a spill loads no further line.
//
// Why spill rather than move: Entry.Peer links a forward and a reverse entry
// by index and the pipeline keeps indices across packets, so an entry must
// never move (no cuckoo displacement). Without moves, plain 8-slot buckets
// with two choices fail their first insert at 67-75% load (simulated, 2^17 to
// 2^25 slots) and 0.8% of inserts fail when filling to 90%. Balancing whole
// lines (32 slots) instead fails first at 92-95%, and steady churn (delete
// one, insert one) at 85% load never fails. Preferring the home bucket inside
// the line keeps lookups to the two home buckets: at 45% load 0.6% of entries
// are spilled and a miss searches a spilled line 0.04 times on average; at
// 70%, 8% and 0.6 times; at 90%, 30% and 1.7 times.
//
// Spill counts use the top bit of each lane: the 8 top bits of a bucket are
// an 8-bit count of the entries whose home it is but which live elsewhere in
// its line (at most 24). Removing an entry from a line that has spills
// rehashes its key to find its home; otherwise removal costs nothing extra.
//
// Sizing: capacity/0.9 slots, rounded up to a power of two buckets, so that
// `capacity` sessions always fit and bucket selection is a mask.

const (
	bucketSlots = 8             // slots per bucket
	lineSlots   = 32            // slots per line (4 buckets)
	lineWords   = lineSlots / 4 // signature words per line: 64 bytes

	laneLow  = 0x0001000100010001 // 1 in each 16-bit lane
	laneLo15 = 0x7fff7fff7fff7fff // signature bits of each lane
	laneHigh = 0x8000800080008000 // spill-count bit of each lane

	// bucketBits selects bucket 0 of a line in a line mask (see lineLanes);
	// bucket k is bucketBits << 2k.
	bucketBits = 0x0003000300030003
)

// sigZero returns the top bit of every lane of w whose signature equals the
// one replicated in pat (pat 0: of every empty lane), and nothing else. Exact:
// with the top bits masked off, adding 0x7fff to a lane carries into its top
// bit if and only if the lane is non-zero, and never into the next lane.
func sigZero(w, pat uint64) uint64 {
	return ^(((w ^ pat) & laneLo15) + laneLo15) & laneHigh
}

// SessionTable is one pmd worker's session table. It is used by that worker's
// goroutine only: no locks, no atomics. Lookup, LookupBurst, Insert, Link,
// Delete, Expire and Advance never allocate.
type SessionTable struct {
	sigs []uint64 // 2 words (8 lanes) per bucket, 64-byte aligned
	ents []Entry  // 8 entries per bucket
	half uint32   // buckets per half (whole lines, at least one)

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
	Full    uint64 // inserts refused because both home lines were full
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
	// Any number of whole lines per half (not a power of two): home buckets
	// are picked by multiply-shift, so memory follows capacity closely.
	// 85% load: two-choice placement with line-local spill first fails
	// around 92-95% on large tables; small tables need the slack.
	slots := (capacity*20 + 16) / 17 // ceil(capacity / 0.85)
	lines := (slots + 2*lineSlots - 1) / (2 * lineSlots)
	nb := 2 * lines * lineSlots / bucketSlots
	if nb*bucketSlots > 1<<31 {
		panic(fmt.Sprintf("lb: session table capacity %d too large (entry indices are int32)", capacity))
	}
	st := &SessionTable{
		sigs:     alignedWords(nb * bucketSlots / 4),
		ents:     make([]Entry, nb*bucketSlots),
		half:     uint32(nb / 2),
		timeouts: t.withDefaults(),
	}
	adviseHuge(unsafe.Pointer(&st.sigs[0]), uintptr(len(st.sigs))*8)
	adviseHuge(unsafe.Pointer(&st.ents[0]), uintptr(len(st.ents))*entrySize)
	for i := range st.ents {
		st.ents[i].Peer = -1 // also faults the pages in now, not on the fast path
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
// each line of signatures is exactly one cache line.
func alignedWords(n int) []uint64 {
	s := make([]uint64, n+lineWords-1)
	off := 0
	for !isLineAligned(&s[off]) {
		off++
	}
	return s[off : off+n : off+n]
}

// locate returns the two home buckets of hash h and its signature replicated
// into the four lanes of a word.
func (t *SessionTable) locate(h uint64) (b1, b2 uint32, pat uint64) {
	b1 = uint32(uint64(uint32(h)) * uint64(t.half) >> 32)
	b2 = t.half + uint32((h>>32)*uint64(t.half)>>32)
	// The signature takes the top bits of h times an odd constant: they depend
	// on every bit of h, including those the bucket indices do not use.
	sig := (h * 0x9e3779b97f4a7c15) >> 49
	if sig == 0 {
		sig = 1
	}
	return b1, b2, sig * laneLow
}

// bucketLanes returns the lanes of bucket b whose signature equals pat's as
// a mask: lane l of the bucket's word j (slot 4j+l) is bit 16l+j.
func (t *SessionTable) bucketLanes(b uint32, pat uint64) uint64 {
	w := (*[2]uint64)(t.sigs[2*b:])
	return sigZero(w[0], pat)>>15 | sigZero(w[1], pat)>>14
}

// lineLanes is bucketLanes for a whole line: lane l of word j (slot 4j+l of
// the line; bucket j/2) is bit 16l+j. Shifting each word's top bits right by
// 15-j interleaves the eight words into one mask with no collisions, so a
// line is tested with straight-line code.
func (t *SessionTable) lineLanes(line uint32, pat uint64) uint64 {
	l := (*[lineWords]uint64)(t.sigs[line*lineWords:])
	return sigZero(l[0], pat)>>15 | sigZero(l[1], pat)>>14 |
		sigZero(l[2], pat)>>13 | sigZero(l[3], pat)>>12 |
		sigZero(l[4], pat)>>11 | sigZero(l[5], pat)>>10 |
		sigZero(l[6], pat)>>9 | sigZero(l[7], pat)>>8
}

// maskSlot returns the slot of the lowest bit of a non-zero lanes mask m of
// the block of slots starting at base (a bucket's or a line's first slot).
func maskSlot(base uint32, m uint64) int32 {
	p := bits.TrailingZeros64(m)
	return int32(base) + int32((p&15)*4+p>>4)
}

// spilled reports whether some entry whose home is bucket b lives elsewhere
// in b's line.
func (t *SessionTable) spilled(b uint32) bool {
	return (t.sigs[2*b]|t.sigs[2*b+1])&laneHigh != 0
}

// spillCount returns bucket b's spill count.
func (t *SessionTable) spillCount(b uint32) int {
	w0, w1 := t.sigs[2*b], t.sigs[2*b+1]
	c := 0
	for l := range 4 {
		c |= int(w0>>(16*l+15)&1)<<l | int(w1>>(16*l+15)&1)<<(4+l)
	}
	return c
}

// setSpillCount sets bucket b's spill count to c (0..255).
func (t *SessionTable) setSpillCount(b uint32, c int) {
	w0, w1 := t.sigs[2*b]&^laneHigh, t.sigs[2*b+1]&^laneHigh
	for l := range 4 {
		w0 |= uint64(c>>l&1) << (16*l + 15)
		w1 |= uint64(c>>(4+l)&1) << (16*l + 15)
	}
	t.sigs[2*b], t.sigs[2*b+1] = w0, w1
}

// findBucket returns the index of k in bucket b, or -1.
func (t *SessionTable) findBucket(b uint32, k *Key, pat uint64) int32 {
	for m := t.bucketLanes(b, pat); m != 0; m &= m - 1 {
		if i := maskSlot(b*bucketSlots, m); t.ents[i].Key.Equal(k) {
			return i
		}
	}
	return -1
}

// findSpilled returns the index of k among the entries spilled from bucket b
// into the rest of its line, or -1.
func (t *SessionTable) findSpilled(b uint32, k *Key, pat uint64) int32 {
	line := b / 4
	m := t.lineLanes(line, pat) &^ (bucketBits << (2 * (b % 4)))
	for ; m != 0; m &= m - 1 {
		if i := maskSlot(line*lineSlots, m); t.ents[i].Key.Equal(k) {
			return i
		}
	}
	return -1
}

// find is Lookup without the counters.
func (t *SessionTable) find(k *Key, h uint64) int32 {
	b1, b2, pat := t.locate(h)
	if i := t.findBucket(b1, k, pat); i >= 0 {
		return i
	}
	if i := t.findBucket(b2, k, pat); i >= 0 {
		return i
	}
	if t.spilled(b1) {
		if i := t.findSpilled(b1, k, pat); i >= 0 {
			return i
		}
	}
	if t.spilled(b2) {
		return t.findSpilled(b2, k, pat)
	}
	return -1
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
		sink += sigs[2*b1] + sigs[2*b2]
	}
	const searchAll = -2 // no match in the home buckets, but spills to search
	for i, h := range hashes {
		b1, b2, pat := t.locate(h)
		c := int32(-1)
		if m := t.bucketLanes(b1, pat); m != 0 {
			c = maskSlot(b1*bucketSlots, m)
		} else if m := t.bucketLanes(b2, pat); m != 0 {
			c = maskSlot(b2*bucketSlots, m)
		} else if t.spilled(b1) || t.spilled(b2) {
			c = searchAll
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
		if c == -1 {
			continue // no signature matched anywhere: a certain miss
		}
		if c == searchAll || !ents[c].Key.Equal(&keys[i]) {
			// Spills, or a false signature match (rare): search fully.
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

// Insert adds key k, whose hash is h (k.Hash()), and returns its index. k
// must not be present (Lookup first), and an entry's Key must not change
// while it lives. The new entry is zero but for Key and Peer = -1. If both
// home lines are full it counts Full and returns -1.
func (t *SessionTable) Insert(k *Key, h uint64) int32 {
	b1, b2, pat := t.locate(h)
	home, free := b1, t.lineLanes(b1/4, 0)
	if f2 := t.lineLanes(b2/4, 0); bits.OnesCount64(f2) > bits.OnesCount64(free) {
		home, free = b2, f2
	}
	if free == 0 {
		t.stats.Full++
		return -1
	}
	base := home / 4 * lineSlots
	hb := free & (bucketBits << (2 * (home % 4)))
	if hb == 0 {
		// The home bucket is full: spill to the emptiest bucket of its line,
		// which keeps the other buckets of the line from filling up early.
		for k := range 4 {
			if fk := free & (bucketBits << (2 * k)); bits.OnesCount64(fk) > bits.OnesCount64(hb) {
				hb = fk
			}
		}
		t.setSpillCount(home, t.spillCount(home)+1)
	}
	i := maskSlot(base, hb)
	t.sigs[i>>2] |= (pat & 0x7fff) << (16 * (i & 3))
	t.ents[i] = Entry{Key: *k, Peer: -1}
	t.live++
	t.stats.Inserts++
	return i
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
	return t.sigs[i>>2]>>(16*(i&3))&0x7fff != 0
}

// remove empties slot i, which must be used.
func (t *SessionTable) remove(i int32) {
	line := uint32(i) / lineSlots
	l := (*[lineWords]uint64)(t.sigs[line*lineWords:])
	if (l[0]|l[1]|l[2]|l[3]|l[4]|l[5]|l[6]|l[7])&laneHigh != 0 {
		// The line holds spilled entries; this may be one: find its home.
		b1, b2, _ := t.locate(t.ents[i].Key.Hash())
		home := b1
		if b2/4 == line {
			home = b2
		}
		if c := t.spillCount(home); home != uint32(i)/bucketSlots && c > 0 {
			t.setSpillCount(home, c-1)
		}
	}
	t.sigs[i>>2] &^= 0x7fff << (16 * (i & 3))
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
	nw := uint32(len(sigs))
	c := t.cursor
	if c >= nw {
		c = 0
	}
	for scanned := 0; scanned < budget; scanned += 4 {
		occ := ^sigZero(sigs[c], 0) & laneHigh
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
			occ &^= sigZero(sigs[c], 0)
		}
		if c++; c == nw {
			c = 0
		}
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
	clear(t.sigs) // spill counts too
	clear(t.ents)
	for i := range t.ents {
		t.ents[i].Peer = -1
	}
	t.stats.Deletes += uint64(t.live)
	t.live = 0
	t.cursor = 0
}
