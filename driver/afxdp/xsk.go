package afxdp

import (
	"errors"
	"fmt"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// prodRing is a ring gvs produces into (fill of addresses, TX of
// descriptors); consRing one it consumes from (completion, RX). Both are
// views of a ring mmapped from an XDP socket: producer and consumer indices
// are free-running uint32 shared with the kernel, accessed atomically
// (Go's atomics are sequentially consistent, stronger than the
// acquire/release the protocol needs).
type ringHdr struct {
	prod   *atomic.Uint32
	cons   *atomic.Uint32
	flags  *atomic.Uint32
	mask   uint32
	size   uint32
	cached uint32 // prodRing: cached consumer; consRing: cached producer
	local  uint32 // prodRing: local producer; consRing: local consumer
	mem    []byte
}

func newRingHdr(mem []byte, off unix.XDPRingOffset, size uint32) ringHdr {
	base := unsafe.Pointer(unsafe.SliceData(mem))
	return ringHdr{
		prod:  (*atomic.Uint32)(unsafe.Add(base, off.Producer)),
		cons:  (*atomic.Uint32)(unsafe.Add(base, off.Consumer)),
		flags: (*atomic.Uint32)(unsafe.Add(base, off.Flags)),
		mask:  size - 1,
		size:  size,
		mem:   mem,
	}
}

// free returns how many slots a producer may fill, up to want.
func (r *ringHdr) free(want uint32) uint32 {
	n := r.size - (r.local - r.cached)
	if n < want {
		r.cached = r.cons.Load()
		n = r.size - (r.local - r.cached)
	}
	if n > want {
		n = want
	}
	return n
}

// avail returns how many entries a consumer may read, up to want.
func (r *ringHdr) avail(want uint32) uint32 {
	n := r.cached - r.local
	if n < want {
		r.cached = r.prod.Load()
		n = r.cached - r.local
	}
	if n > want {
		n = want
	}
	return n
}

// submit publishes n produced entries.
func (r *ringHdr) submit(n uint32) {
	r.local += n
	r.prod.Store(r.local)
}

// release gives n consumed entries back.
func (r *ringHdr) release(n uint32) {
	r.local += n
	r.cons.Store(r.local)
}

// needWakeup reports whether the kernel asks for a syscall on this ring.
func (r *ringHdr) needWakeup() bool { return r.flags.Load()&unix.XDP_RING_NEED_WAKEUP != 0 }

// pending is the number of entries produced but not yet consumed by the
// kernel (producer rings only).
func (r *ringHdr) pending() uint32 { return r.local - r.cons.Load() }

type addrRing struct {
	ringHdr
	addrs []uint64
}

type descRing struct {
	ringHdr
	descs []unix.XDPDesc
}

const descSize = uint64(unsafe.Sizeof(unix.XDPDesc{}))

// mapRing mmaps one ring of the socket fd at page offset pgoff.
func mapRing(fd int, off unix.XDPRingOffset, size uint32, entry uint64, pgoff int64) ([]byte, error) {
	length := int(off.Desc + uint64(size)*entry)
	mem, err := unix.Mmap(fd, pgoff, length, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_POPULATE)
	if err != nil {
		return nil, err
	}
	return mem, nil
}

func mapAddrRing(fd int, off unix.XDPRingOffset, size uint32, pgoff int64) (addrRing, error) {
	mem, err := mapRing(fd, off, size, 8, pgoff)
	if err != nil {
		return addrRing{}, err
	}
	r := addrRing{ringHdr: newRingHdr(mem, off, size)}
	r.addrs = unsafe.Slice((*uint64)(unsafe.Pointer(&mem[off.Desc])), size)
	return r, nil
}

func mapDescRing(fd int, off unix.XDPRingOffset, size uint32, pgoff int64) (descRing, error) {
	mem, err := mapRing(fd, off, size, descSize, pgoff)
	if err != nil {
		return descRing{}, err
	}
	r := descRing{ringHdr: newRingHdr(mem, off, size)}
	r.descs = unsafe.Slice((*unix.XDPDesc)(unsafe.Pointer(&mem[off.Desc])), size)
	return r, nil
}

func unmapRing(h *ringHdr) {
	if h.mem != nil {
		_ = unix.Munmap(h.mem)
		h.mem = nil
	}
}

func setsockoptPtr(fd, opt int, p unsafe.Pointer, size uintptr) error {
	_, _, e := unix.Syscall6(unix.SYS_SETSOCKOPT, uintptr(fd), unix.SOL_XDP, uintptr(opt), uintptr(p), size, 0)
	if e != 0 {
		return e
	}
	return nil
}

func getsockoptPtr(fd, opt int, p unsafe.Pointer, size uintptr) error {
	l := uint32(size)
	_, _, e := unix.Syscall6(unix.SYS_GETSOCKOPT, uintptr(fd), unix.SOL_XDP, uintptr(opt), uintptr(p), uintptr(unsafe.Pointer(&l)), 0)
	if e != 0 {
		return e
	}
	return nil
}

// registerUmem registers the UMEM area on fd.
func registerUmem(fd int, umem []byte, frameSize, headroom uint32) error {
	reg := unix.XDPUmemReg{
		Addr:     uint64(uintptr(unsafe.Pointer(unsafe.SliceData(umem)))),
		Len:      uint64(len(umem)),
		Size:     frameSize,
		Headroom: headroom,
	}
	return setsockoptPtr(fd, unix.XDP_UMEM_REG, unsafe.Pointer(&reg), unsafe.Sizeof(reg))
}

// mmapOffsets reads the ring layout of the socket.
func mmapOffsets(fd int) (unix.XDPMmapOffsets, error) {
	var off unix.XDPMmapOffsets
	err := getsockoptPtr(fd, unix.XDP_MMAP_OFFSETS, unsafe.Pointer(&off), unsafe.Sizeof(off))
	return off, err
}

// xdpStatistics reads the socket's kernel counters.
func xdpStatistics(fd int) (unix.XDPStatistics, error) {
	var st unix.XDPStatistics
	err := getsockoptPtr(fd, unix.XDP_STATISTICS, unsafe.Pointer(&st), unsafe.Sizeof(st))
	return st, err
}

// zeroCopy reports whether the bound socket runs in zero-copy mode.
func zeroCopy(fd int) bool {
	var opts uint32
	if err := getsockoptPtr(fd, unix.XDP_OPTIONS, unsafe.Pointer(&opts), unsafe.Sizeof(opts)); err != nil {
		return false
	}
	return opts&unix.XDP_OPTIONS_ZEROCOPY != 0
}

// kick wakes the kernel for TX (sendto) without blocking.
func kickTx(fd int) unix.Errno {
	_, _, e := unix.Syscall6(unix.SYS_SENDTO, uintptr(fd), 0, 0, unix.MSG_DONTWAIT, 0, 0)
	return e
}

// kickRx wakes the kernel for RX (recvfrom) without blocking.
func kickRx(fd int) unix.Errno {
	_, _, e := unix.Syscall6(unix.SYS_RECVFROM, uintptr(fd), 0, 0, unix.MSG_DONTWAIT, 0, 0)
	return e
}

// bindTimeout bounds the EBUSY retries of bind: a queue that was just
// released by a closed socket stays busy until the kernel's deferred
// cleanup ran.
var bindTimeout = 5 * time.Second

// bindBusyHook, if set (tests), is called on every EBUSY before the back-off.
var bindBusyHook func()

// bindRetry binds fd, retrying with exponential back-off while the queue is
// busy (EBUSY), for at most bindTimeout.
func bindRetry(fd int, sa *unix.SockaddrXDP) (retries int, err error) {
	deadline := time.Now().Add(bindTimeout)
	wait := time.Millisecond
	for {
		err = unix.Bind(fd, sa)
		if !errors.Is(err, unix.EBUSY) || time.Now().Add(wait).After(deadline) {
			return retries, err
		}
		if bindBusyHook != nil {
			bindBusyHook()
		}
		time.Sleep(wait)
		retries++
		if wait < 100*time.Millisecond {
			wait *= 2
		}
	}
}

// setupSocket creates an XDP socket for one queue: rings sized and mapped,
// not yet bound. If umem is non-nil it is registered on this socket (the
// first socket of a port); otherwise the socket will share the UMEM of
// another one at bind time, with its own fill and completion rings.
func (q *Queue) setupSocket(cfg *Config, umem []byte, headroom uint32) error {
	fd, err := unix.Socket(unix.AF_XDP, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("socket(AF_XDP): %w", err)
	}
	q.fd = fd
	if umem != nil {
		if err := registerUmem(fd, umem, uint32(cfg.FrameSize), headroom); err != nil {
			return &umemError{size: len(umem), err: err}
		}
	}
	sizes := []struct {
		opt  int
		size int
		name string
	}{
		{unix.XDP_UMEM_FILL_RING, cfg.FillSize, "fill"},
		{unix.XDP_UMEM_COMPLETION_RING, cfg.CompSize, "completion"},
		{unix.XDP_RX_RING, cfg.RxSize, "rx"},
		{unix.XDP_TX_RING, cfg.TxSize, "tx"},
	}
	for _, s := range sizes {
		if err := unix.SetsockoptInt(fd, unix.SOL_XDP, s.opt, s.size); err != nil {
			return fmt.Errorf("set %s ring size %d: %w", s.name, s.size, err)
		}
	}
	off, err := mmapOffsets(fd)
	if err != nil {
		return fmt.Errorf("getsockopt XDP_MMAP_OFFSETS: %w", err)
	}
	if q.fill, err = mapAddrRing(fd, off.Fr, uint32(cfg.FillSize), unix.XDP_UMEM_PGOFF_FILL_RING); err != nil {
		return fmt.Errorf("mmap fill ring: %w", err)
	}
	if q.comp, err = mapAddrRing(fd, off.Cr, uint32(cfg.CompSize), unix.XDP_UMEM_PGOFF_COMPLETION_RING); err != nil {
		return fmt.Errorf("mmap completion ring: %w", err)
	}
	if q.rx, err = mapDescRing(fd, off.Rx, uint32(cfg.RxSize), unix.XDP_PGOFF_RX_RING); err != nil {
		return fmt.Errorf("mmap rx ring: %w", err)
	}
	if q.tx, err = mapDescRing(fd, off.Tx, uint32(cfg.TxSize), unix.XDP_PGOFF_TX_RING); err != nil {
		return fmt.Errorf("mmap tx ring: %w", err)
	}
	// Recent kernels (6.17+) let copy-mode TX build more than 32 skbs per
	// sendto; older ones say ENOPROTOOPT, which is fine.
	if err := unix.SetsockoptInt(fd, unix.SOL_XDP, unix.XDP_MAX_TX_SKB_BUDGET, cfg.TxSize); err == nil {
		q.txBudget = cfg.TxSize
	} else {
		q.txBudget = 32
	}
	return nil
}

// closeSocket unmaps the rings and closes the socket.
func (q *Queue) closeSocket() {
	unmapRing(&q.fill.ringHdr)
	unmapRing(&q.comp.ringHdr)
	unmapRing(&q.rx.ringHdr)
	unmapRing(&q.tx.ringHdr)
	if q.fd >= 0 && !q.fdClosed {
		_ = unix.Close(q.fd)
		q.fdClosed = true
	}
}

// umemError is a failed XDP_UMEM_REG.
type umemError struct {
	size int
	err  error
}

func (e *umemError) Error() string {
	var lim unix.Rlimit
	_ = unix.Getrlimit(unix.RLIMIT_MEMLOCK, &lim)
	switch {
	case errors.Is(e.err, unix.ENOBUFS), errors.Is(e.err, unix.ENOMEM), errors.Is(e.err, unix.EPERM):
		return fmt.Sprintf("register UMEM of %d bytes: %v: the UMEM is locked memory charged to RLIMIT_MEMLOCK "+
			"(soft %s, hard %s) unless the process has CAP_IPC_LOCK; keep CAP_IPC_LOCK, raise the limit, "+
			"or use fewer/smaller frames (Frames, FrameSize)", e.size, e.err, rlimString(lim.Cur), rlimString(lim.Max))
	}
	return fmt.Sprintf("register UMEM of %d bytes: %v", e.size, e.err)
}

func (e *umemError) Unwrap() error { return e.err }

func rlimString(v uint64) string {
	if v == unix.RLIM_INFINITY {
		return "unlimited"
	}
	return fmt.Sprintf("%d bytes", v)
}
