package afxdp

import (
	"sync"
	"sync/atomic"

	"golang.org/x/sys/unix"

	"gvs/driver"
)

// chunkPool is the port's free UMEM chunks, shared by all its queues. Chunks
// are taken and returned a burst at a time under one mutex, never per packet.
type chunkPool struct {
	mu   sync.Mutex
	free []uint64 // chunk base addresses
}

func (p *chunkPool) get(out []uint64) int {
	p.mu.Lock()
	n := min(len(out), len(p.free))
	top := len(p.free)
	copy(out[:n], p.free[top-n:])
	p.free = p.free[:top-n]
	p.mu.Unlock()
	return n
}

func (p *chunkPool) put(addrs []uint64) {
	if len(addrs) == 0 {
		return
	}
	p.mu.Lock()
	p.free = append(p.free, addrs...)
	p.mu.Unlock()
}

func (p *chunkPool) putFrames(frames []driver.Frame) {
	if len(frames) == 0 {
		return
	}
	p.mu.Lock()
	for i := range frames {
		p.free = append(p.free, frames[i].Handle)
	}
	p.mu.Unlock()
}

func (p *chunkPool) len() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.free)
}

// scratchSize is the number of addresses moved between a queue and the pool
// per exchange.
const scratchSize = 256

// Queue is one receive/transmit queue pair of a Port: one XDP socket bound
// to one queue of the interface, with its own RX, TX, fill and completion
// rings over the port's shared UMEM. It implements driver.Queue; like every
// driver.Queue it is used by one goroutine at a time.
type Queue struct {
	port     *Port
	id       int
	fd       int
	fdClosed bool

	fill addrRing
	comp addrRing
	rx   descRing
	tx   descRing

	txBudget   int           // descriptors the kernel sends per sendto in copy mode
	fillTarget uint32        // chunks this queue keeps lent to the kernel for RX
	rxLent     atomic.Uint32 // chunks put in the fill ring and not yet received; written by the queue's goroutine only

	scratch [scratchSize]uint64

	rxPkts, rxBytes, txPkts, txBytes, txFull, txKicks, rxKicks atomic.Uint64
}

var _ driver.Queue = (*Queue)(nil)

// reap moves completed TX chunks from the completion ring to the pool.
func (q *Queue) reap() {
	for {
		n := q.comp.avail(scratchSize)
		if n == 0 {
			return
		}
		mask := q.port.chunkMask
		for i := uint32(0); i < n; i++ {
			q.scratch[i] = q.comp.addrs[(q.comp.local+i)&q.comp.mask] & mask
		}
		q.comp.release(n)
		q.port.pool.put(q.scratch[:n])
		if n < scratchSize {
			return
		}
	}
}

// refill tops the fill ring up towards fillTarget chunks lent to the
// kernel, at most scratchSize per call. It is called per burst and only
// goes to the pool when at least a burst of chunks is missing. It reports
// whether it added any.
func (q *Queue) refill() bool {
	lent := q.rxLent.Load()
	if lent+driver.BurstSize > q.fillTarget {
		return false
	}
	want := min(q.fillTarget-lent, scratchSize)
	want = q.fill.free(want)
	if want == 0 {
		return false
	}
	n := uint32(q.port.pool.get(q.scratch[:want]))
	for i := uint32(0); i < n; i++ {
		q.fill.addrs[(q.fill.local+i)&q.fill.mask] = q.scratch[i]
	}
	if n == 0 {
		return false
	}
	q.fill.submit(n)
	q.rxLent.Store(lent + n)
	return true
}

// Receive implements driver.Queue. It never blocks; a syscall (recvfrom) is
// made only when the kernel sets the fill ring's need-wakeup flag.
func (q *Queue) Receive(frames []driver.Frame) (int, error) {
	if q.port.closed.Load() {
		return 0, driver.ErrClosed
	}
	q.reap()
	q.refill()
	if q.fill.needWakeup() {
		q.rxKicks.Add(1)
		kickRx(q.fd)
	}
	// TX descriptors left behind by a sendto that hit the budget or a busy
	// device are pushed on here, so they never wait for the next Transmit.
	if q.tx.pending() != 0 {
		q.kick()
	}
	n := q.rx.avail(uint32(len(frames)))
	if n == 0 {
		return 0, nil
	}
	p := q.port
	umem := p.umem
	fs := uint64(p.frameSize)
	bytes := 0
	for i := uint32(0); i < n; i++ {
		d := q.rx.descs[(q.rx.local+i)&q.rx.mask]
		base := d.Addr & p.chunkMask
		f := &frames[i]
		f.Buf = umem[base : base+fs : base+fs]
		f.Off = int(d.Addr - base)
		f.Len = int(d.Len)
		f.Handle = base
		f.Hops = 0
		bytes += int(d.Len)
	}
	q.rx.release(n)
	q.rxLent.Store(q.rxLent.Load() - n)
	q.rxPkts.Add(uint64(n))
	q.rxBytes.Add(uint64(bytes))
	return int(n), nil
}

// Transmit implements driver.Queue. Frames may come from any queue of the
// same port (they share the UMEM). One sendto per burst wakes the kernel
// when it asks for it (always, in copy mode).
func (q *Queue) Transmit(frames []driver.Frame) (int, error) {
	if q.port.closed.Load() {
		return 0, driver.ErrClosed
	}
	if len(frames) == 0 {
		return 0, nil
	}
	q.reap()
	n := q.tx.free(uint32(len(frames)))
	if n == 0 {
		// The kernel may be waiting for a kick to drain the ring.
		q.kick()
		q.reap()
		n = q.tx.free(uint32(len(frames)))
	}
	fs := q.port.frameSize
	bytes := 0
	bad := 0
	j := uint32(0)
	for i := uint32(0); i < n; i++ {
		f := &frames[i]
		if f.Len <= 0 || f.Off < 0 || f.Off+f.Len > fs {
			// A descriptor the kernel would reject would never complete
			// and leak its chunk: drop it here.
			q.port.pool.put([]uint64{f.Handle})
			bad++
			continue
		}
		q.tx.descs[(q.tx.local+j)&q.tx.mask] = unix.XDPDesc{Addr: f.Handle + uint64(f.Off), Len: uint32(f.Len)}
		bytes += f.Len
		j++
	}
	if j > 0 {
		q.tx.submit(j)
		q.kick()
	}
	if refused := len(frames) - int(n) + bad; refused > 0 {
		q.txFull.Add(uint64(refused))
	}
	q.txPkts.Add(uint64(j))
	q.txBytes.Add(uint64(bytes))
	return int(n), nil
}

// kick wakes the kernel's TX path if it asks for it. In copy mode each
// sendto sends at most txBudget descriptors and says EAGAIN if more remain
// (or the completion ring is full): reap and kick again, a bounded number of
// times.
func (q *Queue) kick() {
	for try := 0; try < 4; try++ {
		if !q.tx.needWakeup() {
			return
		}
		q.txKicks.Add(1)
		switch kickTx(q.fd) {
		case unix.EAGAIN, unix.EBUSY:
			q.reap()
			if q.tx.pending() == 0 {
				return
			}
		default: // 0, ENOBUFS, ENETDOWN, ...: nothing more to do now
			return
		}
	}
}

// Free implements driver.Queue.
func (q *Queue) Free(frames []driver.Frame) { q.port.pool.putFrames(frames) }

// Alloc implements driver.Queue. Allocated frames have the same headroom as
// received ones.
func (q *Queue) Alloc(frames []driver.Frame) int {
	p := q.port
	if p.closed.Load() {
		return 0
	}
	want := min(len(frames), scratchSize)
	n := p.pool.get(q.scratch[:want])
	fs := uint64(p.frameSize)
	for i := 0; i < n; i++ {
		base := q.scratch[i]
		frames[i] = driver.Frame{Buf: p.umem[base : base+fs : base+fs], Off: p.rxOff, Handle: base}
	}
	return n
}

// ID returns the interface queue this Queue is bound to.
func (q *Queue) ID() int { return q.id }
