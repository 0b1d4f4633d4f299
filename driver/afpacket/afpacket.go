// Package afpacket is the universal fallback driver of gvs: it drives any
// Linux Ethernet interface (veth, virtio, physical NICs without an AF_XDP or
// DPDK path) through AF_PACKET sockets with memory-mapped rings. It needs
// golang.org/x/sys/unix only (no cgo) and root or CAP_NET_RAW.
//
// # Layout
//
// Every queue of a Port is one AF_PACKET socket (SOCK_RAW, ETH_P_ALL) bound
// to the interface, with
//
//   - a TPACKET_V3 receive ring (PACKET_RX_RING): blocks of packets that the
//     kernel hands over when full or when BlockTimeout expires;
//   - a transmit ring (PACKET_TX_RING) on the same socket. The ring version
//     is per socket, so the TX ring is TPACKET_V3 too; the kernel (since
//     4.11, checked on 6.18) accepts V3 for TX with fixed-size frames
//     (tp_next_offset must be 0, the frame data starts right after the
//     48-byte tpacket3_hdr);
//   - PACKET_QDISC_BYPASS (gvs's frames skip the qdisc layer and are not
//     seen by other packet taps such as tcpdump on that interface),
//     PACKET_LOSS (a malformed TX frame is skipped, never wedges the ring) and
//     PACKET_IGNORE_OUTGOING (gvs does not receive what the host sends);
//   - with Queues > 1, membership in one PACKET_FANOUT_HASH group so flows
//     spread across queues (the kernel's symmetric flow hash: both directions
//     of a flow land on the same queue). The group also carries
//     PACKET_FANOUT_FLAG_IGNORE_OUTGOING, because a fanout group delivers
//     through its own hook and ignores the per-socket PACKET_IGNORE_OUTGOING.
//
// # Frames
//
// Receive copies every packet out of the RX block into a buffer of a
// per-port frame pool (driver.MinHeadroom bytes of headroom) and gives the
// block back to the kernel as soon as all its packets are copied; a block
// consumed only partly (Receive got fewer slots than the block has packets)
// is remembered and continued on the next call. Receive makes no system call:
// it polls the block status word. Transmit copies each frame into the next
// free TX ring slot, marks it TP_STATUS_SEND_REQUEST, kicks the kernel with
// one sendto(MSG_DONTWAIT) per burst and returns the buffers to the pool.
// Pool buffers are handed out through a small per-queue cache refilled and
// flushed a burst at a time under one mutex, so the hot path takes no lock.
//
// Packets that were not finished by the sender (TP_STATUS_CSUMNOTREADY,
// CHECKSUM_PARTIAL: the normal case on veth and for locally generated
// traffic) get their full TCP or UDP checksum (IPv4 and IPv6, behind any
// number of 802.1Q/802.1ad tags, through IPv6 extension headers) computed in
// software, so the pipeline's incremental updates (RFC 1624) start from a
// correct value. The kernel strips the outer VLAN tag of every received frame
// into tp_vlan_tci (TP_STATUS_VLAN_VALID); the driver re-inserts it (with its
// TPID) so the pipeline sees the frame as it was on the wire.
//
// # The kernel sees every packet too
//
// AF_PACKET is a tap: the kernel stack ALSO receives every packet gvs
// receives. A VIP is not a local address, so with forwarding off the kernel
// drops its copy. Operators must therefore keep forwarding off on the
// interface gvs drives (net.ipv4.ip_forward=0, net.ipv6.conf.all.forwarding=0,
// or the per-interface conf.IFACE.forwarding=0), or drop VIP traffic in an
// nftables prerouting rule at raw priority; otherwise the kernel forwards a
// duplicate of every packet gvs forwards. For the same reason the pipeline's
// slow path (ARP, ICMP to the host, anything not for a VIP) is simply freed
// with this driver: the kernel already has its own copy and answers it.
//
// # Operational notes and limits
//
//   - Turn off GRO and LRO on the interface (ethtool -K IFACE gro off lro off)
//     and make sure peers on a veth do not send TSO/GSO super-packets
//     (ethtool -K PEER tx-checksumming off, or tso off gso off): a received
//     packet larger than a pool buffer (FrameSize-MinHeadroom bytes) is
//     dropped and counted in Counters.RxOversize.
//   - Frames shorter than an Ethernet header or longer than MTU+14 bytes
//     (MTU+18 for VLAN-tagged frames, the kernel's own limit) or than a TX
//     slot are taken and dropped by Transmit (Counters.TxBadLength).
//   - With PACKET_QDISC_BYPASS there is no queueing discipline behind the TX
//     ring: when a NIC's own TX queue is full the kernel drops the frame and
//     the kick fails (Counters.TxKickErrors); tc rules on the egress qdisc do
//     not apply to gvs's frames, and tcpdump on the interface does not see
//     them (capture on the peer or the switch instead).
//   - PACKET_FANOUT_FLAG_DEFRAG is off by default (Config.FanoutDefrag):
//     it does not merely steer fragments, it reassembles IPv4 datagrams, so
//     gvs would get one packet larger than the MTU instead of the fragments.
//     The kernel's flow hash already keeps all fragments of a datagram on one
//     queue (it hashes fragments on addresses only, and so a flow's
//     fragments may land on another queue than its unfragmented packets;
//     the pipeline's hand-over between workers covers that).
//   - MAC and MTU are read once at Open. The interface may be down at Open
//     (nothing is received until it is up).
//   - Transmit and Free take frames of any queue of the port, and also
//     frames of another open afpacket port (sent by copy like any frame,
//     then returned to the pool they came from). Frames of other drivers
//     are sent but cannot be returned (Counters.BadHandles).
//   - Latency at low rates is up to BlockTimeout (a TPACKET_V3 block is
//     handed over when full or when the timer retires it).
//
// Imports: gvs/driver and golang.org/x/sys/unix.
package afpacket

import (
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"gvs/driver"
)

// Defaults for the zero values of Config.
const (
	DefaultBlockSize    = 1 << 20 // bytes per RX block
	DefaultBlockCount   = 8       // RX blocks per queue
	DefaultFrameSize    = 2048    // bytes per pool buffer (and TX slot payload)
	DefaultTxFrames     = 1024    // TX ring slots per queue
	DefaultBlockTimeout = 2 * time.Millisecond
	DefaultPoolPerQueue = 4096 // pool buffers per queue
)

// Config describes a port. Zero values get the defaults above.
type Config struct {
	// Interface is the name of the Ethernet interface, in the network
	// namespace of the thread that calls Open.
	Interface string
	// Queues is the number of queue pairs (= pmd workers); default 1.
	// With more than one, the sockets form a PACKET_FANOUT_HASH group.
	Queues int
	// BlockSize and BlockCount are the TPACKET_V3 RX ring geometry per
	// queue: BlockCount blocks of BlockSize bytes (a multiple of the page
	// size). Ring memory is kernel memory, not charged to RLIMIT_MEMLOCK.
	BlockSize, BlockCount int
	// FrameSize is the size of a pool buffer including the headroom; it
	// must hold driver.MinHeadroom + MTU + 22 bytes (Ethernet header and two
	// VLAN tags). Default 2048, or the next power of two that fits the MTU.
	FrameSize int
	// TxFrames is the number of TX ring slots per queue (default 1024); the
	// kernel rounds it up to whole ring blocks.
	TxFrames int
	// BlockTimeout is the TPACKET_V3 block retire timeout: how long a block
	// with packets in it may wait before the kernel hands it to gvs.
	// Millisecond granularity; default 2 ms.
	BlockTimeout time.Duration
	// FanoutGroup is the PACKET_FANOUT group id used when Queues > 1. Zero
	// lets the kernel pick an unused id (PACKET_FANOUT_FLAG_UNIQUEID), which,
	// unlike an id derived from ifindex and pid, can never join a group of
	// another process by accident.
	FanoutGroup uint16
	// FanoutDefrag adds PACKET_FANOUT_FLAG_DEFRAG: the kernel reassembles
	// IPv4 fragments before fanout and gvs receives whole datagrams, which
	// may be larger than the MTU (and than a pool buffer). Off by default.
	FanoutDefrag bool
	// PoolFrames is the number of frame buffers of the port, shared by all
	// its queues; default 4096 per queue.
	PoolFrames int
}

func (c *Config) defaults(mtu int) {
	if c.Queues == 0 {
		c.Queues = 1
	}
	if c.BlockSize == 0 {
		c.BlockSize = DefaultBlockSize
	}
	if c.BlockCount == 0 {
		c.BlockCount = DefaultBlockCount
	}
	if c.FrameSize == 0 {
		c.FrameSize = DefaultFrameSize
		for c.FrameSize < minFrameSize(mtu) {
			c.FrameSize <<= 1
		}
	}
	if c.TxFrames == 0 {
		c.TxFrames = DefaultTxFrames
	}
	if c.BlockTimeout == 0 {
		c.BlockTimeout = DefaultBlockTimeout
	}
	if c.PoolFrames == 0 {
		c.PoolFrames = DefaultPoolPerQueue * c.Queues
	}
}

// minFrameSize is the smallest pool buffer that holds a full-size frame with
// two VLAN tags behind the headroom.
func minFrameSize(mtu int) int { return driver.MinHeadroom + mtu + 14 + 8 }

func (c *Config) validate(mtu, pageSize int) error {
	switch {
	case c.Queues < 0 || c.Queues > 1024:
		return fmt.Errorf("queues %d out of range 1..1024", c.Queues)
	case c.BlockSize <= 0 || c.BlockSize%pageSize != 0:
		return fmt.Errorf("block size %d is not a positive multiple of the page size %d", c.BlockSize, pageSize)
	case c.BlockCount <= 0:
		return fmt.Errorf("block count %d must be positive", c.BlockCount)
	case c.FrameSize%16 != 0:
		return fmt.Errorf("frame size %d is not a multiple of 16 (TPACKET_ALIGNMENT)", c.FrameSize)
	case c.FrameSize < minFrameSize(mtu):
		return fmt.Errorf("frame size %d cannot hold %d bytes of headroom and a frame of MTU %d (need %d)", c.FrameSize, driver.MinHeadroom, mtu, minFrameSize(mtu))
	case c.FrameSize > c.BlockSize:
		return fmt.Errorf("frame size %d is larger than the block size %d", c.FrameSize, c.BlockSize)
	case c.TxFrames <= 0:
		return fmt.Errorf("tx frames %d must be positive", c.TxFrames)
	case c.BlockTimeout < 0:
		return fmt.Errorf("block timeout %v is negative", c.BlockTimeout)
	case c.PoolFrames < c.Queues*2*driver.BurstSize:
		return fmt.Errorf("pool of %d frames is smaller than two bursts per queue (%d)", c.PoolFrames, c.Queues*2*driver.BurstSize)
	case c.PoolFrames > 1<<24:
		return fmt.Errorf("pool of %d frames is larger than %d", c.PoolFrames, 1<<24)
	}
	return nil
}

// Port is an interface driven through AF_PACKET sockets. It implements
// driver.Port.
type Port struct {
	cfg     Config
	name    string
	ifindex int
	mac     net.HardwareAddr
	mtu     int
	pool    *pool
	queues  []*Queue

	fanoutID     uint16 // fanout group (Queues > 1)
	seesOutgoing bool   // the kernel refused PACKET_FANOUT_FLAG_IGNORE_OUTGOING

	closed    atomic.Bool
	mu        sync.Mutex // serialises Stats' socket reads and Close
	done      bool       // Close finished
	kernDrops uint64     // tp_drops accumulated from PACKET_STATISTICS, under mu
	kernFrz   uint64     // tp_freeze_q_cnt, under mu
}

var _ driver.Port = (*Port)(nil)

// Open opens cfg.Interface with cfg.Queues queue pairs. The sockets belong to
// the network namespace of the calling thread and stay there; to open an
// interface of another namespace, call Open on a goroutine locked to a thread
// that entered it (runtime.LockOSThread, setns).
func Open(cfg Config) (*Port, error) {
	p, err := open(cfg)
	if err != nil {
		return nil, fmt.Errorf("open AF_PACKET on %s: %w", cfg.Interface, err)
	}
	return p, nil
}

func open(cfg Config) (*Port, error) {
	if cfg.Interface == "" {
		return nil, errors.New("no interface name given")
	}
	info, err := lookupInterface(cfg.Interface)
	if err != nil {
		return nil, err
	}
	cfg.defaults(info.mtu)
	if err := cfg.validate(info.mtu, unix.Getpagesize()); err != nil {
		return nil, err
	}
	p := &Port{
		cfg:     cfg,
		name:    cfg.Interface,
		ifindex: info.index,
		mac:     info.mac,
		mtu:     info.mtu,
		pool:    newPool(cfg.PoolFrames, cfg.FrameSize),
	}
	registerPool(p.pool)
	fanoutID := cfg.FanoutGroup
	fanoutFlags := unix.PACKET_FANOUT_FLAG_IGNORE_OUTGOING
	if cfg.FanoutDefrag {
		fanoutFlags |= unix.PACKET_FANOUT_FLAG_DEFRAG
	}
	for i := 0; i < cfg.Queues; i++ {
		q, err := openQueue(p, i)
		if err != nil {
			p.release()
			return nil, fmt.Errorf("queue %d: %w", i, err)
		}
		p.queues = append(p.queues, q)
		if cfg.Queues == 1 {
			break
		}
		unique := cfg.FanoutGroup == 0 && i == 0
		id, err := q.joinFanout(fanoutID, unique, fanoutFlags)
		if err != nil && unique && errors.Is(err, unix.EINVAL) {
			// Kernels without PACKET_FANOUT_FLAG_IGNORE_OUTGOING (a 2024 addition):
			// the group then also delivers the host's outgoing packets.
			fanoutFlags &^= unix.PACKET_FANOUT_FLAG_IGNORE_OUTGOING
			id, err = q.joinFanout(fanoutID, unique, fanoutFlags)
			p.seesOutgoing = err == nil
		}
		if err != nil {
			p.release()
			return nil, fmt.Errorf("queue %d: %w", i, err)
		}
		fanoutID = id
	}
	p.fanoutID = fanoutID
	// A socket receives everything on the interface between its bind and
	// its fanout join; forget what arrived while the group was incomplete.
	for _, q := range p.queues {
		q.discardRx()
	}
	return p, nil
}

// Name implements driver.Port: the interface name.
func (p *Port) Name() string { return p.name }

// MAC implements driver.Port: the interface's address at Open.
func (p *Port) MAC() net.HardwareAddr { return p.mac }

// MTU implements driver.Port: the interface MTU at Open.
func (p *Port) MTU() int { return p.mtu }

// NumQueues implements driver.Port.
func (p *Port) NumQueues() int { return len(p.queues) }

// Queue implements driver.Port.
func (p *Port) Queue(i int) driver.Queue { return p.queues[i] }

// PacketQueue returns queue i as its concrete type.
func (p *Port) PacketQueue(i int) *Queue { return p.queues[i] }

// Ifindex is the interface index the sockets are bound to.
func (p *Port) Ifindex() int { return p.ifindex }

// FanoutGroup is the PACKET_FANOUT group id of the queues' sockets (0 with
// a single queue).
func (p *Port) FanoutGroup() uint16 { return p.fanoutID }

// SeesOutgoing reports that the kernel did not accept
// PACKET_FANOUT_FLAG_IGNORE_OUTGOING (kernels before its 2024 addition): the fanout
// group then also receives the host's outgoing packets on the interface.
// gvs's own transmissions are never received (they bypass the packet taps).
func (p *Port) SeesOutgoing() bool { return p.seesOutgoing }

// Config returns the configuration in effect, defaults filled in.
func (p *Port) Config() Config { return p.cfg }

// Counters are the driver's detailed cumulative counters of a port, beyond
// driver.PortStats.
type Counters struct {
	// KernelDrops is tp_drops of PACKET_STATISTICS: packets the kernel
	// could not put into a full RX ring. KernelFreezes is tp_freeze_q_cnt.
	KernelDrops, KernelFreezes uint64
	// RxOversize counts packets larger than a pool buffer (GRO/GSO
	// super-packets, reassembled datagrams) and truncated ones, dropped.
	RxOversize uint64
	// RxPoolEmpty counts Receive calls that stopped early because the pool
	// had no free buffer; the packets stay in the ring until buffers return.
	RxPoolEmpty uint64
	// CsumFixed counts packets whose partial L4 checksum was completed;
	// CsumUnfixable those marked partial that are not TCP or UDP over
	// IPv4/IPv6 (passed on unchanged).
	CsumFixed, CsumUnfixable uint64
	// VlanRestored counts frames whose stripped VLAN tag was re-inserted.
	VlanRestored uint64
	// TxRingFull counts frames Transmit refused because the ring was full.
	// TxBadLength counts frames Transmit took and dropped because the
	// interface cannot send them: shorter than an Ethernet header, longer
	// than MTU+14 (MTU+18 with a VLAN tag) or than a TX slot.
	TxRingFull, TxBadLength uint64
	// TxKicks counts sendto calls, TxKickErrors the failed ones (the
	// frames stay queued in the ring and go with the next kick).
	TxKicks, TxKickErrors uint64
	// BadHandles counts frames given back that came from no open afpacket
	// port (their buffers cannot be returned).
	BadHandles uint64
}

// Stats implements driver.Port. It reads and accumulates the kernel's
// PACKET_STATISTICS of every socket; safe to call from any goroutine.
func (p *Port) Stats() driver.PortStats {
	c := p.Counters()
	var s driver.PortStats
	for _, q := range p.queues {
		s.RxPackets += q.ctr.rxPkts.Load()
		s.RxBytes += q.ctr.rxBytes.Load()
		s.TxPackets += q.ctr.txPkts.Load()
		s.TxBytes += q.ctr.txBytes.Load()
	}
	s.RxDropped = c.KernelDrops + c.RxOversize
	s.TxDropped = c.TxRingFull + c.TxBadLength
	return s
}

// Counters returns the detailed counters; safe to call from any goroutine.
func (p *Port) Counters() Counters {
	p.mu.Lock()
	if !p.done {
		for _, q := range p.queues {
			if st, err := unix.GetsockoptTpacketStatsV3(q.fd, unix.SOL_PACKET, unix.PACKET_STATISTICS); err == nil {
				p.kernDrops += uint64(st.Drops)
				p.kernFrz += uint64(st.Freeze_q_cnt)
			}
		}
	}
	c := Counters{KernelDrops: p.kernDrops, KernelFreezes: p.kernFrz}
	p.mu.Unlock()
	for _, q := range p.queues {
		c.RxOversize += q.ctr.rxOversize.Load()
		c.RxPoolEmpty += q.ctr.rxPoolEmpty.Load()
		c.CsumFixed += q.ctr.csumFixed.Load()
		c.CsumUnfixable += q.ctr.csumUnfixable.Load()
		c.VlanRestored += q.ctr.vlanRestored.Load()
		c.TxRingFull += q.ctr.txRingFull.Load()
		c.TxBadLength += q.ctr.txBadLength.Load()
		c.TxKicks += q.ctr.txKicks.Load()
		c.TxKickErrors += q.ctr.txKickErrors.Load()
		c.BadHandles += q.ctr.badHandles.Load()
	}
	return c
}

// FreeFrames is the number of pool buffers not held by callers, for leak
// checks in tests. Call it only while no queue is in use.
func (p *Port) FreeFrames() int {
	n := p.pool.available()
	for _, q := range p.queues {
		n += len(q.cache)
	}
	return n
}

// Close implements driver.Port: it waits for queue calls in progress on
// other goroutines to return, then unmaps the rings and closes the sockets.
// Queue operations afterwards return driver.ErrClosed (Receive, Transmit) or
// do nothing (Alloc returns 0, Free drops the frames). Close is idempotent.
func (p *Port) Close() error {
	p.closed.Store(true)
	for _, q := range p.queues {
		for i := 0; q.busy.Load() != 0; i++ {
			// Receive and Transmit never block, so this ends quickly.
			if i > 100 {
				time.Sleep(10 * time.Microsecond)
			}
		}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.done {
		return nil
	}
	// Fold in the kernel's last counters before the sockets go away.
	for _, q := range p.queues {
		if st, err := unix.GetsockoptTpacketStatsV3(q.fd, unix.SOL_PACKET, unix.PACKET_STATISTICS); err == nil {
			p.kernDrops += uint64(st.Drops)
			p.kernFrz += uint64(st.Freeze_q_cnt)
		}
	}
	p.done = true
	return p.releaseLocked()
}

// release frees what open allocated so far (error paths of Open).
func (p *Port) release() {
	p.closed.Store(true)
	p.done = true
	_ = p.releaseLocked()
}

func (p *Port) releaseLocked() error {
	unregisterPool(p.pool)
	var errs []error
	for _, q := range p.queues {
		if err := q.release(); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("close AF_PACKET on %s: %w", p.name, errors.Join(errs...))
	}
	return nil
}
