package lb

import (
	"sync/atomic"
	"unsafe"
)

// ConnCounters holds per-worker active and inactive connection counts per
// real id, for the lc family of schedulers (lc, wlc, sed, nq, lblc, lblcr,
// ovf, twos) and for draining decisions. Each worker writes only its own
// row; readers sum over all rows with atomic loads. There is no lock, and
// rows are padded to whole 64-byte cache lines (and the array aligned) so
// that workers never write to the same cache line.
//
// IPVS keeps one atomic activeconns/inactconns per destination; per-worker
// rows trade a W-fold read (W = workers) for writes that never bounce a
// cache line between cores.
type ConnCounters struct {
	workers  int
	maxReals int
	stride   int // counters per row: maxReals rounded up to a cache line
	c        []connCounterPair
}

// connCounterPair is one worker's counts for one real: 8 bytes, so 8 per
// cache line.
type connCounterPair struct {
	active   atomic.Int32
	inactive atomic.Int32
}

const connCacheLine = 64

// NewConnCounters makes counters for workers workers and real ids below
// maxReals.
func NewConnCounters(workers, maxReals int) *ConnCounters {
	workers = max(workers, 1)
	maxReals = max(maxReals, 0)
	const per = connCacheLine / int(unsafe.Sizeof(connCounterPair{}))
	stride := (maxReals + per - 1) / per * per
	if stride == 0 {
		stride = per
	}
	n := workers * stride
	// One spare cache line in front and behind: align the start and keep
	// neighbouring allocations off the first and last rows' lines.
	buf := make([]connCounterPair, n+3*per)
	off := per
	if a := uintptr(unsafe.Pointer(&buf[0])) % connCacheLine; a != 0 {
		off += int((connCacheLine - a) / unsafe.Sizeof(connCounterPair{}))
	}
	return &ConnCounters{workers: workers, maxReals: maxReals, stride: stride, c: buf[off : off+n : off+n]}
}

// Workers returns the number of worker rows.
func (c *ConnCounters) Workers() int { return c.workers }

// MaxReals returns the bound on real ids the counters were made for.
func (c *ConnCounters) MaxReals() int { return c.maxReals }

// Add changes worker's counts of real realID by dActive and dInactive. Only
// the owning worker calls it for its row. Out-of-range workers or ids are
// ignored (the data path must not panic on a stale id).
func (c *ConnCounters) Add(worker int, realID uint32, dActive, dInactive int32) {
	if uint(worker) >= uint(c.workers) || uint64(realID) >= uint64(c.maxReals) {
		return
	}
	p := &c.c[worker*c.stride+int(realID)]
	if dActive != 0 {
		p.active.Add(dActive)
	}
	if dInactive != 0 {
		p.inactive.Add(dInactive)
	}
}

// Sum returns the active and inactive counts of real realID summed over all
// workers. A worker's row may go negative when a session it did not count is
// closed by it (hand-over); a sum below zero (a transient of racing loads)
// reads as zero. Out-of-range ids read as zero.
func (c *ConnCounters) Sum(realID uint32) (active, inactive int64) {
	if uint64(realID) >= uint64(c.maxReals) {
		return 0, 0
	}
	for i := int(realID); i < len(c.c); i += c.stride {
		p := &c.c[i]
		active += int64(p.active.Load())
		inactive += int64(p.inactive.Load())
	}
	return max(active, 0), max(inactive, 0)
}

// Reset zeroes the counts of real realID on every worker, for a real id that
// is reused. Call it only while no worker can count that id.
func (c *ConnCounters) Reset(realID uint32) {
	if uint64(realID) >= uint64(c.maxReals) {
		return
	}
	for i := int(realID); i < len(c.c); i += c.stride {
		c.c[i].active.Store(0)
		c.c[i].inactive.Store(0)
	}
}

// WorkerConns is how a worker counts: its own counts in plain memory that
// it alone touches, published to its row of the shared ConnCounters once per
// burst by Flush. Atomic read-modify-writes per new connection would wait
// for the store buffer — full of the session table's cache-missing inserts —
// to drain; a burst's worth of plain adds and one store per touched real do
// not. The worker's own picks see its exact counts (Sum adds the local row
// to the other workers' published ones).
type WorkerConns struct {
	c      *ConnCounters
	worker int
	local  []connLocal // by real id
	dirty  []uint32    // ids changed since the last Flush
}

type connLocal struct {
	active, inactive int32
	dirty            bool
}

// Writer returns worker's writer. Use one per worker, from its goroutine.
func (c *ConnCounters) Writer(worker int) *WorkerConns {
	return &WorkerConns{c: c, worker: worker, local: make([]connLocal, c.maxReals), dirty: make([]uint32, 0, 64)}
}

// Add changes the worker's counts of realID; visible to other workers after
// the next Flush.
func (w *WorkerConns) Add(realID uint32, dActive, dInactive int32) {
	if uint64(realID) >= uint64(len(w.local)) {
		return
	}
	l := &w.local[realID]
	l.active += dActive
	l.inactive += dInactive
	if !l.dirty {
		l.dirty = true
		w.dirty = append(w.dirty, realID)
	}
}

// Flush publishes the counts changed since the last Flush.
func (w *WorkerConns) Flush() {
	if uint(w.worker) >= uint(w.c.workers) {
		w.dirty = w.dirty[:0]
		return
	}
	row := w.c.c[w.worker*w.c.stride:]
	for _, id := range w.dirty {
		l := &w.local[id]
		row[id].active.Store(l.active)
		row[id].inactive.Store(l.inactive)
		l.dirty = false
	}
	w.dirty = w.dirty[:0]
}

// Sum is ConnCounters.Sum with this worker's own counts taken from its
// local row, so they are exact even before a Flush.
func (w *WorkerConns) Sum(realID uint32) (active, inactive int64) {
	if uint64(realID) >= uint64(w.c.maxReals) {
		return 0, 0
	}
	for wk, i := 0, int(realID); i < len(w.c.c); wk, i = wk+1, i+w.c.stride {
		if wk == w.worker {
			l := &w.local[realID]
			active += int64(l.active)
			inactive += int64(l.inactive)
			continue
		}
		p := &w.c.c[i]
		active += int64(p.active.Load())
		inactive += int64(p.inactive.Load())
	}
	return max(active, 0), max(inactive, 0)
}
