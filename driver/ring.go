package driver

import "sync/atomic"

// Ring is a bounded single-producer single-consumer queue of frames. The
// producer and the consumer may be different goroutines; head and tail are
// atomics, so the frame slots written before a tail store are visible after
// the matching load (release/acquire), which the race detector understands.
type Ring struct {
	_     [64]byte
	head  atomic.Uint64 // next slot to read; written by the consumer
	_     [56]byte
	tail  atomic.Uint64 // next slot to write; written by the producer
	_     [56]byte
	mask  uint64
	slots []Frame
}

// NewRing makes a ring with at least size slots (rounded up to a power of two).
func NewRing(size int) *Ring {
	n := 1
	for n < size {
		n <<= 1
	}
	return &Ring{mask: uint64(n - 1), slots: make([]Frame, n)}
}

// Push appends as many frames as fit and returns how many it took.
func (r *Ring) Push(frames []Frame) int {
	tail := r.tail.Load()
	free := uint64(len(r.slots)) - (tail - r.head.Load())
	n := uint64(len(frames))
	if n > free {
		n = free
	}
	for i := uint64(0); i < n; i++ {
		r.slots[(tail+i)&r.mask] = frames[i]
	}
	r.tail.Store(tail + n)
	return int(n)
}

// Pop moves up to len(out) frames out of the ring and returns how many.
func (r *Ring) Pop(out []Frame) int {
	head := r.head.Load()
	avail := r.tail.Load() - head
	n := uint64(len(out))
	if n > avail {
		n = avail
	}
	for i := uint64(0); i < n; i++ {
		j := (head + i) & r.mask
		out[i] = r.slots[j]
		r.slots[j] = Frame{}
	}
	r.head.Store(head + n)
	return int(n)
}

// Len is the number of frames queued; exact for the consumer, a lower bound
// for the producer.
func (r *Ring) Len() int { return int(r.tail.Load() - r.head.Load()) }
