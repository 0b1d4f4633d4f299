package lb

import "sync/atomic"

// This file holds what session sync moves between the workers and the
// control plane: SyncRecord, a session described without anything local
// to one node (no table index, no stable real id: the real by address), and
// SyncRing, the single-producer single-consumer queue that carries records
// from a worker to the sync sender (export) and from the sync receiver to a
// worker (import) without locks.

// Kinds of SyncRecord.
const (
	// SyncNew is a session the master created (or a full resync's copy).
	SyncNew uint8 = iota + 1
	// SyncUpdate is a change of an existing session's TCP state.
	SyncUpdate
	// SyncClosed is a session the master removed before it expired (its
	// real gone, its port reused); sessions that merely expire do so on
	// the backup by the same timeouts.
	SyncClosed
)

// SyncRecord is one session as session sync carries it. Key is the forward
// (client → VIP) 5-tuple; the real is named by address and port, the
// fullnat source by the index of the service's local address and the port.
type SyncRecord struct {
	Key      Key      // client → VIP
	Real     [16]byte // real address (IPv4 in the first 4 bytes)
	RealPort uint16   // real port (the service's when the real has none)
	LPort    uint16   // fullnat local port
	LAddr    uint8    // fullnat local address index
	State    uint8    // StateXxx
	Kind     uint8    // SyncNew, SyncUpdate, SyncClosed
	_        uint8
	MAC      [6]byte // the client side's next hop as the master saw it
	_        [2]byte
}

// SyncRing is a bounded single-producer single-consumer queue of
// SyncRecords. Push never blocks: when the ring is full the record is
// dropped and counted (Overflows), so a slow consumer never stalls a
// worker. head and tail are atomics on their own cache lines.
type SyncRing struct {
	_         [64]byte
	head      atomic.Uint64 // next slot to read; written by the consumer
	_         [56]byte
	tail      atomic.Uint64 // next slot to write; written by the producer
	_         [56]byte
	overflows atomic.Uint64 // written by the producer
	_         [56]byte
	mask      uint64
	slots     []SyncRecord
}

// NewSyncRing makes a ring with at least size slots (rounded up to a power
// of two).
func NewSyncRing(size int) *SyncRing {
	n := 1
	for n < size {
		n <<= 1
	}
	return &SyncRing{mask: uint64(n - 1), slots: make([]SyncRecord, n)}
}

// Push appends rec and reports whether it fit; a record that does not fit
// is counted in Overflows. Producer only.
func (r *SyncRing) Push(rec *SyncRecord) bool {
	tail := r.tail.Load()
	if tail-r.head.Load() >= uint64(len(r.slots)) {
		r.overflows.Add(1)
		return false
	}
	r.slots[tail&r.mask] = *rec
	r.tail.Store(tail + 1)
	return true
}

// Pop moves up to len(out) records out of the ring and returns how many.
// Consumer only.
func (r *SyncRing) Pop(out []SyncRecord) int {
	head := r.head.Load()
	n := min(r.tail.Load()-head, uint64(len(out)))
	for i := uint64(0); i < n; i++ {
		out[i] = r.slots[(head+i)&r.mask]
	}
	r.head.Store(head + n)
	return int(n)
}

// Len is the number of records queued; exact for the consumer, a lower
// bound for the producer.
func (r *SyncRing) Len() int { return int(r.tail.Load() - r.head.Load()) }

// Cap is the number of slots.
func (r *SyncRing) Cap() int { return len(r.slots) }

// Overflows is the number of records Push dropped because the ring was
// full.
func (r *SyncRing) Overflows() uint64 { return r.overflows.Load() }
