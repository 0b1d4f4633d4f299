package afpacket

import (
	"sync"
	"unsafe"

	"gvs/driver"
)

// pool is the frame memory of a port: fixed-size buffers in one Go-allocated
// arena (so frames stay valid memory even if a caller holds them past
// Close), indexed by Frame.Handle. Buffers move between the shared free
// stack and the per-queue caches a burst at a time under one mutex; the
// queues hand single buffers out of and back into their caches without a
// lock (a queue is used by one goroutine at a time).
type pool struct {
	mu        sync.Mutex
	arena     []byte
	frameSize int
	n         uint64
	id        uint64   // registry id, the upper 32 bits of every Handle
	free      []uint32 // stack of free buffer indices
}

// The registry of live pools lets a port take back frames of another
// afpacket port (a two-arm pmd transmitting a frame it could not copy):
// they are returned to the pool they came from instead of leaking.
var (
	poolsMu sync.RWMutex
	pools   = map[uint64]*pool{}
	poolSeq uint64
)

func registerPool(p *pool) {
	poolsMu.Lock()
	poolSeq++
	p.id = poolSeq
	pools[p.id] = p
	poolsMu.Unlock()
}

func unregisterPool(p *pool) {
	poolsMu.Lock()
	delete(pools, p.id)
	poolsMu.Unlock()
}

// owns reports whether f is buffer idx of p.
func (p *pool) owns(f *driver.Frame, idx uint64) bool {
	return idx < p.n && unsafe.SliceData(f.Buf) == &p.arena[int(idx)*p.frameSize]
}

// returnForeign gives a frame of another afpacket port back to its own
// pool. It reports false if the frame is not from a live afpacket pool.
func returnForeign(f *driver.Frame) bool {
	poolsMu.RLock()
	p := pools[f.Handle>>32]
	poolsMu.RUnlock()
	idx := f.Handle & 0xffffffff
	if p == nil || !p.owns(f, idx) {
		return false
	}
	p.mu.Lock()
	p.free = append(p.free, uint32(idx))
	p.mu.Unlock()
	return true
}

// cacheMax is the capacity of a queue's buffer cache; refills and flushes
// move half of it.
const cacheMax = 4 * driver.BurstSize

func newPool(frames, frameSize int) *pool {
	p := &pool{arena: make([]byte, frames*frameSize), frameSize: frameSize, n: uint64(frames), free: make([]uint32, frames)}
	for i := range p.free {
		p.free[i] = uint32(frames - 1 - i)
	}
	return p
}

// frame returns the view of buffer i with the default headroom.
func (p *pool) frame(i uint32) driver.Frame {
	off := int(i) * p.frameSize
	return driver.Frame{Buf: p.arena[off : off+p.frameSize : off+p.frameSize], Off: driver.MinHeadroom, Handle: p.id<<32 | uint64(i)}
}

// get appends up to n free indices to dst.
func (p *pool) get(dst []uint32, n int) []uint32 {
	p.mu.Lock()
	if n > len(p.free) {
		n = len(p.free)
	}
	top := len(p.free)
	dst = append(dst, p.free[top-n:]...)
	p.free = p.free[:top-n]
	p.mu.Unlock()
	return dst
}

// put returns indices to the free stack.
func (p *pool) put(idx []uint32) {
	p.mu.Lock()
	p.free = append(p.free, idx...)
	p.mu.Unlock()
}

func (p *pool) available() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.free)
}

// getBuf takes one buffer index from the queue's cache, refilling the cache
// from the pool when it is empty.
func (q *Queue) getBuf() (uint32, bool) {
	if len(q.cache) == 0 {
		q.cache = q.port.pool.get(q.cache, cacheMax/2)
		if len(q.cache) == 0 {
			return 0, false
		}
	}
	i := q.cache[len(q.cache)-1]
	q.cache = q.cache[:len(q.cache)-1]
	return i, true
}

// putBufs gives the frames' buffers back to the queue's cache, flushing half
// of it to the pool whenever it is full. Frames of another afpacket port go
// back to their own pool; frames of no afpacket port (or whose Buf is not
// the buffer their Handle names) are counted in BadHandles and ignored.
func (q *Queue) putBufs(frames []driver.Frame) {
	p := q.port.pool
	for i := range frames {
		f := &frames[i]
		if f.Handle>>32 != p.id || !p.owns(f, f.Handle&0xffffffff) {
			if !returnForeign(f) {
				q.ctr.badHandles.Add(1)
			}
			continue
		}
		if len(q.cache) == cacheMax {
			p.put(q.cache[cacheMax/2:])
			q.cache = q.cache[:cacheMax/2]
		}
		q.cache = append(q.cache, uint32(f.Handle))
	}
}
