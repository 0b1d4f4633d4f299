package mem

import (
	"sync"

	"gvs/driver"
)

// pool is the preallocated frame memory of a port (or of a pair of ports,
// which share one pool so frames can cross between them). Frames are handed
// out and taken back a burst at a time under one mutex: the lock is per burst,
// never per packet, and stands in for a NIC's descriptor rings.
type pool struct {
	mu        sync.Mutex
	arena     []byte
	frameSize int
	free      []uint32 // stack of free frame indices
}

func newPool(frames, frameSize int) *pool {
	p := &pool{arena: make([]byte, frames*frameSize), frameSize: frameSize, free: make([]uint32, frames)}
	for i := range p.free {
		p.free[i] = uint32(frames - 1 - i)
	}
	return p
}

// frame returns the view of frame index i with the default headroom.
func (p *pool) frame(i uint32) driver.Frame {
	off := int(i) * p.frameSize
	return driver.Frame{Buf: p.arena[off : off+p.frameSize : off+p.frameSize], Off: driver.MinHeadroom, Handle: uint64(i)}
}

// alloc fills out with free frames and returns how many it could.
func (p *pool) alloc(out []driver.Frame) int {
	p.mu.Lock()
	n := len(out)
	if n > len(p.free) {
		n = len(p.free)
	}
	top := len(p.free)
	for i := 0; i < n; i++ {
		out[i] = p.frame(p.free[top-1-i])
	}
	p.free = p.free[:top-n]
	p.mu.Unlock()
	return n
}

// release returns frames to the pool.
func (p *pool) release(frames []driver.Frame) {
	p.mu.Lock()
	for i := range frames {
		p.free = append(p.free, uint32(frames[i].Handle))
	}
	p.mu.Unlock()
}

func (p *pool) available() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.free)
}
