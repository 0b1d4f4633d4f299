// Package afxdp is the AF_XDP driver of gvs: the fast path on a stock Linux
// kernel, beside the kernel's own network stack.
//
// A Port owns, for one interface:
//
//   - an XDP program (bpf/steer.c, compiled with bpf2go; the object is
//     committed) attached through a bpf_link, so it goes away with the
//     process. It redirects only gvs's packets — as described by the
//     driver.SteerRule set given to SetSteering, kept in BPF hash maps — to
//     the AF_XDP socket of the receive queue (XSKMAP index = rx queue), and
//     returns XDP_PASS for everything else, so ARP, NDP, ICMP echo, SSH, BGP
//     and VRRP keep working through the kernel;
//   - one UMEM (an mmapped area of Frames chunks of FrameSize bytes) shared
//     by all its queues, and the free-chunk pool over it;
//   - one XDP socket per queue (XDP_SHARED_UMEM, each with its own fill and
//     completion ring), so a frame received on one queue can be transmitted
//     on any other queue of the port.
//
// Frames are views into UMEM chunks: Buf is the whole chunk, Off the data
// offset (XDP_PACKET_HEADROOM, 256 bytes, plus the UMEM headroom, so at least
// driver.MinHeadroom), Handle the chunk address.
//
// Attach: native (driver) mode first, generic (SKB) mode as a logged
// fallback; zero-copy first where the device supports it, copy otherwise.
//
// Transmit: one sendto(MSG_DONTWAIT) per burst when the TX ring asks for a
// wake-up (always, in copy mode); the socket's XDP_MAX_TX_SKB_BUDGET is
// raised to the TX ring size where the kernel has it (6.17+), so one sendto
// sends a whole burst. Receive makes no syscall unless the fill ring asks.
//
// veth notes (kernel 6.18): AF_XDP on veth is copy mode only. Native XDP on
// a veth needs the peer's MTU small enough for one page (≤ 3506), otherwise
// the attach fails with ERANGE and Open falls back to generic mode and logs
// why. Frames that XDP_TX or XDP_REDIRECT push into a veth are dropped unless
// the peer has an XDP program or GRO on; gvs's own copy-mode transmissions
// are skbs (dev_direct_xmit) and reach a peer that has neither — TestTransmit
// checks exactly that — but a deployment that mixes in XDP_TX should give
// the peer an XDP_PASS program (the other tests do).
//
// Limits: IPv6 packets with more than 6 extension headers are not steered
// (they reach the kernel); only one VLAN tag is parsed; packets on an rx
// queue without a gvs socket (Queues smaller than the device's queue count)
// reach the kernel.
//
// Imports: gvs/driver, github.com/cilium/ebpf, golang.org/x/sys/unix,
// github.com/vishvananda/netlink.
package afxdp

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"path/filepath"
	"sync"
	"sync/atomic"

	"github.com/cilium/ebpf/link"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"gvs/driver"
)

// AttachMode selects how the XDP program is attached.
type AttachMode int

// Attach modes.
const (
	// ModeAuto tries native (driver) mode and falls back to generic mode.
	ModeAuto AttachMode = iota
	// ModeNative requires native (driver) mode.
	ModeNative
	// ModeGeneric uses generic (SKB) mode.
	ModeGeneric
)

// ZeroCopyMode selects zero-copy or copy mode for the XDP sockets.
type ZeroCopyMode int

// Zero-copy settings.
const (
	// ZeroCopyAuto uses zero-copy where the device supports it (native mode
	// only), copy mode otherwise.
	ZeroCopyAuto ZeroCopyMode = iota
	// ZeroCopyOn requires zero-copy.
	ZeroCopyOn
	// ZeroCopyOff forces copy mode.
	ZeroCopyOff
)

// Config describes a port. Zero values get defaults.
type Config struct {
	// Interface is the network interface name (required).
	Interface string
	// Queues is the number of queue pairs, bound to interface queues
	// 0..Queues-1 (default 1). It must not exceed the device's queue count.
	Queues int
	// FrameSize is the UMEM chunk size: 2048 (default) or 4096. A chunk
	// holds 256 bytes of headroom plus one packet.
	FrameSize int
	// Frames is the number of UMEM chunks of the port, shared by its queues
	// (default: as many as fit in 4 MiB).
	Frames int
	// RxSize, TxSize, FillSize and CompSize are the ring sizes of each
	// queue, powers of two (default 1024 each).
	RxSize, TxSize, FillSize, CompSize int
	// Mode selects native or generic XDP (default auto).
	Mode AttachMode
	// ZeroCopy selects zero-copy or copy sockets (default auto).
	ZeroCopy ZeroCopyMode
	// MaxRules is the capacity of the steering map in keys (default 8192).
	// A rule takes one key, two if its Proto is 0, plus one per distinct
	// service or reply-from address.
	MaxRules int
	// Logger receives the attach decisions (default slog.Default()).
	Logger *slog.Logger
}

const (
	defaultUmemBytes = 4 << 20
	defaultRingSize  = 1024
	defaultMaxRules  = 8192
)

func (c *Config) setDefaults() error {
	if c.Interface == "" {
		return errors.New("afxdp: Config.Interface is empty")
	}
	if c.Queues == 0 {
		c.Queues = 1
	}
	if c.FrameSize == 0 {
		c.FrameSize = 2048
	}
	if c.FrameSize != 2048 && c.FrameSize != 4096 {
		return fmt.Errorf("afxdp %s: FrameSize %d: must be 2048 or 4096", c.Interface, c.FrameSize)
	}
	if c.Frames == 0 {
		c.Frames = defaultUmemBytes / c.FrameSize
	}
	for _, r := range []*int{&c.RxSize, &c.TxSize, &c.FillSize, &c.CompSize} {
		if *r == 0 {
			*r = defaultRingSize
		}
		if *r < driver.BurstSize || *r&(*r-1) != 0 {
			return fmt.Errorf("afxdp %s: ring size %d: must be a power of two ≥ %d", c.Interface, *r, driver.BurstSize)
		}
	}
	if c.Queues < 1 || c.Queues > 256 {
		return fmt.Errorf("afxdp %s: Queues %d out of range 1..256", c.Interface, c.Queues)
	}
	if c.Frames < 4*driver.BurstSize*c.Queues {
		return fmt.Errorf("afxdp %s: Frames %d too few for %d queues (need at least %d)", c.Interface, c.Frames, c.Queues, 4*driver.BurstSize*c.Queues)
	}
	if c.MaxRules == 0 {
		c.MaxRules = defaultMaxRules
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return nil
}

// Port is one interface driven through AF_XDP. It implements driver.Port
// and driver.Steering.
type Port struct {
	cfg     Config
	ifindex int
	mac     net.HardwareAddr
	mtu     int
	log     *slog.Logger

	objs  steerObjects
	xlink link.Link
	mode  string // "native" or "generic"
	zc    bool

	umem      []byte
	frameSize int
	chunkMask uint64
	rxOff     int
	pool      chunkPool
	queues    []*Queue

	steerMu sync.Mutex
	keys    map[steerSteerKey]struct{}

	closed    atomic.Bool
	closeOnce sync.Once
	closeErr  error
}

var (
	_ driver.Port     = (*Port)(nil)
	_ driver.Steering = (*Port)(nil)
)

// Open attaches gvs's XDP program to cfg.Interface and binds one XDP socket
// per queue. It must run in the network namespace of the interface; the
// returned port may then be used from any thread. The steering rule set is
// empty until SetSteering: nothing is redirected before.
func Open(cfg Config) (_ *Port, err error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	name := cfg.Interface
	lnk, err := netlink.LinkByName(name)
	if err != nil {
		return nil, fmt.Errorf("afxdp %s: %w", name, err)
	}
	attrs := lnk.Attrs()
	if nq := min(attrs.NumRxQueues, attrs.NumTxQueues); nq > 0 && cfg.Queues > nq {
		return nil, fmt.Errorf("afxdp %s: %d queues asked, the device has %d rx and %d tx queues", name, cfg.Queues, attrs.NumRxQueues, attrs.NumTxQueues)
	}
	// A chunk holds XDP_PACKET_HEADROOM, the UMEM headroom and one frame
	// with an optional VLAN tag.
	headroom := max(0, driver.MinHeadroom-unix.XDP_PACKET_HEADROOM)
	rxOff := unix.XDP_PACKET_HEADROOM + headroom
	if need := rxOff + 14 + 4 + attrs.MTU; need > cfg.FrameSize {
		return nil, fmt.Errorf("afxdp %s: MTU %d does not fit a %d-byte frame after %d bytes of headroom; use FrameSize 4096 or a smaller MTU", name, attrs.MTU, cfg.FrameSize, rxOff)
	}

	p := &Port{
		cfg:       cfg,
		ifindex:   attrs.Index,
		mac:       append(net.HardwareAddr(nil), attrs.HardwareAddr...),
		mtu:       attrs.MTU,
		log:       cfg.Logger.With("driver", "afxdp", "interface", name),
		frameSize: cfg.FrameSize,
		chunkMask: ^uint64(cfg.FrameSize - 1),
		rxOff:     rxOff,
		keys:      make(map[steerSteerKey]struct{}),
	}
	defer func() {
		if err != nil {
			p.release()
		}
	}()

	if err := p.loadProgram(max(cfg.Queues, attrs.NumRxQueues)); err != nil {
		return nil, err
	}
	if err := p.attach(attrs.MTU); err != nil {
		return nil, err
	}
	if err := p.setupUmem(); err != nil {
		return nil, err
	}
	if err := p.setupQueues(uint32(headroom)); err != nil {
		return nil, err
	}
	if n := realRxQueues(cfg.Interface, attrs.NumRxQueues); n > cfg.Queues {
		p.log.Warn("the device has more rx queues than the port: gvs's packets arriving on the others go to the kernel",
			"device_rx_queues", n, "queues", cfg.Queues)
	}
	p.log.Info("afxdp port open", "mode", p.Mode(), "queues", cfg.Queues, "frames", cfg.Frames,
		"frame_size", cfg.FrameSize, "tx_budget", p.queues[0].txBudget)
	return p, nil
}

// loadProgram loads the steering program and its maps.
func (p *Port) loadProgram(xskEntries int) error {
	spec, err := loadSteer()
	if err != nil {
		return fmt.Errorf("afxdp %s: %w", p.cfg.Interface, err)
	}
	spec.Maps[steerMapXsks].MaxEntries = uint32(max(xskEntries, 1))
	// Room for the union of the old and the new key set while
	// SetSteering swaps them.
	spec.Maps[steerMapRules].MaxEntries = uint32(2 * p.cfg.MaxRules)
	if err := spec.LoadAndAssign(&p.objs, nil); err != nil {
		if errors.Is(err, unix.EPERM) {
			return fmt.Errorf("afxdp %s: load XDP program: %w (needs CAP_BPF and CAP_NET_ADMIN, or root)", p.cfg.Interface, err)
		}
		return fmt.Errorf("afxdp %s: load XDP program: %w", p.cfg.Interface, err)
	}
	return nil
}

// attach links the program to the interface: native first, then generic.
func (p *Port) attach(mtu int) error {
	name := p.cfg.Interface
	try := func(flags link.XDPAttachFlags) error {
		l, err := link.AttachXDP(link.XDPOptions{Program: p.objs.GvsSteer, Interface: p.ifindex, Flags: flags})
		if err == nil {
			p.xlink = l
		}
		return err
	}
	explain := func(err error) string {
		switch {
		case errors.Is(err, unix.ERANGE):
			return fmt.Sprintf("MTU too large for native XDP (MTU %d here; on veth the peer's MTU counts too, at most 3506 with a single-buffer program)", mtu)
		case errors.Is(err, unix.EOPNOTSUPP):
			return "driver has no native XDP support"
		case errors.Is(err, unix.EBUSY), errors.Is(err, unix.EEXIST):
			return "another XDP program is attached to the interface (remove it: ip link set dev " + name + " xdp off)"
		case errors.Is(err, unix.EPERM):
			return "permission denied: needs CAP_NET_ADMIN and CAP_BPF"
		case errors.Is(err, unix.EINVAL):
			return "the driver refused native XDP (MTU, LRO or channel configuration)"
		}
		return err.Error()
	}
	if p.cfg.Mode == ModeAuto || p.cfg.Mode == ModeNative {
		err := try(link.XDPDriverMode)
		if err == nil {
			p.mode = "native"
			return nil
		}
		if p.cfg.Mode == ModeNative || errors.Is(err, unix.EPERM) || errors.Is(err, unix.EBUSY) {
			return fmt.Errorf("afxdp %s: attach XDP in native mode: %s: %w", name, explain(err), err)
		}
		p.log.Warn("native XDP attach failed, falling back to generic (SKB) mode", "reason", explain(err), "err", err)
	}
	if err := try(link.XDPGenericMode); err != nil {
		return fmt.Errorf("afxdp %s: attach XDP in generic mode: %s: %w", name, explain(err), err)
	}
	p.mode = "generic"
	return nil
}

// setupUmem maps the UMEM area and fills the free-chunk pool. If the
// RLIMIT_MEMLOCK soft limit is below the UMEM size it is raised up to the
// hard limit first (root with CAP_IPC_LOCK is not limited at all).
func (p *Port) setupUmem() error {
	size := p.cfg.Frames * p.cfg.FrameSize
	var lim unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_MEMLOCK, &lim); err == nil && lim.Cur != unix.RLIM_INFINITY && lim.Cur < uint64(size) && lim.Cur < lim.Max {
		old := lim.Cur
		lim.Cur = lim.Max
		if err := unix.Setrlimit(unix.RLIMIT_MEMLOCK, &lim); err == nil {
			p.log.Info("raised RLIMIT_MEMLOCK soft limit for the UMEM", "from", old, "to", lim.Cur, "umem_bytes", size)
		}
	}
	mem, err := unix.Mmap(-1, 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS|unix.MAP_POPULATE)
	if err != nil {
		return fmt.Errorf("afxdp %s: mmap UMEM of %d bytes: %w", p.cfg.Interface, size, err)
	}
	p.umem = mem
	p.pool.free = make([]uint64, 0, p.cfg.Frames)
	for i := p.cfg.Frames - 1; i >= 0; i-- {
		p.pool.free = append(p.pool.free, uint64(i*p.cfg.FrameSize))
	}
	return nil
}

// setupQueues creates, binds and registers one socket per queue and primes
// its fill ring.
func (p *Port) setupQueues(headroom uint32) error {
	name := p.cfg.Interface
	// Each queue keeps about half of its share of the chunks lent to the
	// kernel for RX; the rest serves TX in flight and Alloc.
	target := uint32(min(p.cfg.FillSize, p.cfg.Frames/(2*p.cfg.Queues)))
	for i := 0; i < p.cfg.Queues; i++ {
		q := &Queue{port: p, id: i, fd: -1, fillTarget: target}
		p.queues = append(p.queues, q)
		var umem []byte
		if i == 0 {
			umem = p.umem
		}
		if err := q.setupSocket(&p.cfg, umem, headroom); err != nil {
			if errors.Is(err, unix.EPERM) || errors.Is(err, unix.EACCES) {
				return fmt.Errorf("afxdp %s queue %d: %w (AF_XDP sockets need CAP_NET_RAW and CAP_NET_ADMIN)", name, i, err)
			}
			return fmt.Errorf("afxdp %s queue %d: %w", name, i, err)
		}
		sa := &unix.SockaddrXDP{Ifindex: uint32(p.ifindex), QueueID: uint32(i)}
		if i == 0 {
			sa.Flags = unix.XDP_USE_NEED_WAKEUP
			switch {
			case p.cfg.ZeroCopy == ZeroCopyOn:
				sa.Flags |= unix.XDP_ZEROCOPY
			case p.cfg.ZeroCopy == ZeroCopyOff, p.mode == "generic":
				sa.Flags |= unix.XDP_COPY
			}
			// ZeroCopyAuto in native mode: no flag, the kernel tries
			// zero-copy and falls back to copy by itself.
		} else {
			// Mode and need-wakeup are inherited from the first socket.
			sa.Flags = unix.XDP_SHARED_UMEM
			sa.SharedUmemFD = uint32(p.queues[0].fd)
		}
		retries, err := bindRetry(q.fd, sa)
		if err != nil {
			return p.bindError(i, retries, err)
		}
		if retries > 0 {
			p.log.Info("queue was busy, bound after retrying", "queue", i, "retries", retries)
		}
		if i == 0 {
			p.zc = zeroCopy(q.fd)
		}
		if err := p.objs.Xsks.Put(uint32(i), uint32(q.fd)); err != nil {
			return fmt.Errorf("afxdp %s queue %d: register socket in XSKMAP: %w", name, i, err)
		}
		for q.rxLent.Load() < q.fillTarget && q.refill() {
		}
	}
	return nil
}

func (p *Port) bindError(queue, retries int, err error) error {
	name := p.cfg.Interface
	switch {
	case errors.Is(err, unix.EBUSY):
		return fmt.Errorf("afxdp %s queue %d: bind: queue busy after %d retries over %v (another AF_XDP socket holds it): %w", name, queue, retries, bindTimeout, err)
	case errors.Is(err, unix.EOPNOTSUPP) && p.cfg.ZeroCopy == ZeroCopyOn:
		return fmt.Errorf("afxdp %s queue %d: bind: zero-copy not supported by the driver (%s mode): %w", name, queue, p.mode, err)
	case errors.Is(err, unix.EPERM):
		return fmt.Errorf("afxdp %s queue %d: bind: %w (needs CAP_NET_RAW and CAP_NET_ADMIN)", name, queue, err)
	case errors.Is(err, unix.EINVAL):
		return fmt.Errorf("afxdp %s queue %d: bind: %w (queue id beyond the device's queues, or flags not supported)", name, queue, err)
	}
	return fmt.Errorf("afxdp %s queue %d: bind: %w", name, queue, err)
}

// Name implements driver.Port.
func (p *Port) Name() string { return p.cfg.Interface }

// MAC implements driver.Port.
func (p *Port) MAC() net.HardwareAddr { return p.mac }

// MTU implements driver.Port: the interface MTU when the port was opened.
func (p *Port) MTU() int { return p.mtu }

// NumQueues implements driver.Port.
func (p *Port) NumQueues() int { return len(p.queues) }

// Queue implements driver.Port.
func (p *Port) Queue(i int) driver.Queue { return p.queues[i] }

// XSKQueue returns queue i with its concrete type.
func (p *Port) XSKQueue(i int) *Queue { return p.queues[i] }

// Mode says how the port runs, for logs: "native/zerocopy", "native/copy"
// or "generic/copy".
func (p *Port) Mode() string {
	if p.zc {
		return p.mode + "/zerocopy"
	}
	return p.mode + "/copy"
}

// FreeFrames is the number of chunks that are neither held by callers nor
// in flight on TX: those in the free pool plus those lent to the kernel for
// RX. With no frame held and all transmissions completed it equals
// Config.Frames (leak checks in tests).
func (p *Port) FreeFrames() int {
	n := p.pool.len()
	for _, q := range p.queues {
		n += int(q.rxLent.Load())
	}
	return n
}

// Stats implements driver.Port. RxDropped is what the kernel dropped for
// want of fill buffers or RX ring space; TxDropped counts frames refused by
// a full TX ring or invalid.
func (p *Port) Stats() driver.PortStats {
	var s driver.PortStats
	for _, q := range p.queues {
		s.RxPackets += q.rxPkts.Load()
		s.RxBytes += q.rxBytes.Load()
		s.TxPackets += q.txPkts.Load()
		s.TxBytes += q.txBytes.Load()
		s.TxDropped += q.txFull.Load()
		if !p.closed.Load() {
			if st, err := xdpStatistics(q.fd); err == nil {
				s.RxDropped += st.Rx_dropped + st.Rx_ring_full
				s.TxDropped += st.Tx_invalid_descs
			}
		}
	}
	return s
}

// ProgramStats returns the XDP program's counters summed over CPUs: packets
// that matched a steering rule (redirected to gvs) and packets passed to the
// kernel.
func (p *Port) ProgramStats() (matched, passed uint64, err error) {
	var per []uint64
	for idx, dst := range map[uint32]*uint64{0: &passed, 1: &matched} {
		if err := p.objs.Counters.Lookup(idx, &per); err != nil {
			return 0, 0, fmt.Errorf("afxdp %s: read counters: %w", p.cfg.Interface, err)
		}
		for _, v := range per {
			*dst += v
		}
	}
	return matched, passed, nil
}

// Close implements driver.Port: it detaches the XDP program, closes the
// sockets and unmaps the rings and the UMEM. Workers must have stopped
// using the port's queues and frames.
func (p *Port) Close() error {
	p.closeOnce.Do(func() {
		p.closed.Store(true)
		p.closeErr = p.release()
	})
	return p.closeErr
}

func (p *Port) release() error {
	var errs []error
	if p.xlink != nil {
		if err := p.xlink.Close(); err != nil {
			errs = append(errs, fmt.Errorf("detach XDP: %w", err))
		}
		p.xlink = nil
	}
	for _, q := range p.queues {
		q.closeSocket()
	}
	if err := p.objs.Close(); err != nil {
		errs = append(errs, err)
	}
	if p.umem != nil {
		if err := unix.Munmap(p.umem); err != nil {
			errs = append(errs, fmt.Errorf("munmap UMEM: %w", err))
		}
		p.umem = nil
	}
	if len(errs) > 0 {
		return fmt.Errorf("afxdp %s: close: %w", p.cfg.Interface, errors.Join(errs...))
	}
	return nil
}

// String describes the port for logs.
func (p *Port) String() string {
	return fmt.Sprintf("afxdp %s (%s, %d queues)", p.cfg.Interface, p.Mode(), len(p.queues))
}

// realRxQueues is the number of receive queues the device uses (sysfs lists
// the real number; the netlink attribute is the number allocated, which for
// veth can be larger). It falls back to allocated when sysfs does not show
// the device (sysfs of another namespace).
func realRxQueues(ifname string, allocated int) int {
	m, err := filepath.Glob(filepath.Join("/sys/class/net", ifname, "queues", "rx-*"))
	if err != nil || len(m) == 0 {
		return allocated
	}
	return len(m)
}
