//go:build dpdk

// Package rte is gvs's thin cgo binding to DPDK (libdpdk 22.11 through
// pkg-config): EAL init and cleanup, lcores, mbuf pools, ethdev
// configuration, queue setup, start/stop, stats, link, MAC and MTU, rx and tx
// bursts, bulk mbuf alloc and free, rte_rings (for net_ring test ports) and
// virtual devices. It covers what driver/dpdk needs and nothing more.
//
// Fast-path rule: one cgo call per burst, never per packet, and burst arrays
// in C memory (Burst), so no Go pointer is passed to C on the fast path (a
// Go slice per burst costs 2–2.5× in cgo pointer checks, measured). DPDK's
// static inline functions are wrapped in gvs_rte.h.
//
// It is internal to driver/dpdk: the rest of gvs sees DPDK only through the
// driver interface.
//
// Imports: standard library only.
package rte

/*
#cgo pkg-config: libdpdk
#cgo LDFLAGS: -lrte_net_ring -lrte_bus_vdev
#include "gvs_rte.h"
*/
import "C"

import (
	"errors"
	"fmt"
	"runtime"
	"sync"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// BurstSize is the size of every burst array (driver.BurstSize).
const BurstSize = C.GVS_BURST

// Headroom is RTE_PKTMBUF_HEADROOM, the bytes in front of a received
// packet's data.
var Headroom = int(C.gvs_headroom())

// DefaultBufSize is RTE_MBUF_DEFAULT_BUF_SIZE (2048 bytes of data room plus
// the headroom).
var DefaultBufSize = int(C.gvs_default_buf_size())

// Error is a DPDK error: the call that failed and its errno.
type Error struct {
	Op    string
	Errno syscall.Errno
}

func (e *Error) Error() string {
	return fmt.Sprintf("%s: %s", e.Op, C.GoString(C.rte_strerror(C.int(e.Errno))))
}

// Unwrap lets errors.Is match syscall errnos.
func (e *Error) Unwrap() error { return e.Errno }

// rc turns a DPDK return code (negative errno, or -1 with rte_errno) into an
// error.
func rc(op string, r C.int) error {
	if r >= 0 {
		return nil
	}
	if e := C.gvs_errno(); r == -1 && e != 0 {
		return &Error{op, syscall.Errno(e)}
	}
	return &Error{op, syscall.Errno(-r)}
}

func errnoErr(op string) error { return &Error{op, syscall.Errno(C.gvs_errno())} }

var (
	initMu   sync.Mutex
	initDone bool
	initArgs []string
	cleaned  bool
)

// ErrInitialized is returned by Init after EAL was initialised once: EAL
// cannot be initialised twice in a process (not even after Cleanup).
var ErrInitialized = errors.New("rte: EAL already initialised in this process (once per process)")

// Init initialises EAL with args (without the program name). It may be
// called once per process. The calling thread becomes EAL's main lcore;
// Init runs on a locked thread of its own and restores that thread's CPU
// affinity afterwards, so the Go scheduler is not left pinned to the main
// lcore's CPU.
func Init(args []string) error {
	initMu.Lock()
	defer initMu.Unlock()
	if initDone {
		return ErrInitialized
	}
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		var saved unix.CPUSet
		haveSaved := unix.SchedGetaffinity(0, &saved) == nil
		argv := make([]*C.char, 0, len(args)+2)
		argv = append(argv, C.CString("gvs"))
		for _, a := range args {
			argv = append(argv, C.CString(a)) // EAL keeps pointers into argv: never freed
		}
		cargv := (**C.char)(C.malloc(C.size_t(unsafe.Sizeof(uintptr(0)) * uintptr(len(argv)+1))))
		s := unsafe.Slice(cargv, len(argv)+1)
		copy(s, argv)
		s[len(argv)] = nil
		r := C.rte_eal_init(C.int(len(argv)), cargv)
		if haveSaved {
			_ = unix.SchedSetaffinity(0, &saved)
		}
		if r < 0 {
			errc <- fmt.Errorf("EAL init %q: %w", args, errnoErr("rte_eal_init"))
			return
		}
		errc <- nil
	}()
	err := <-errc
	// Even a failed rte_eal_init cannot be retried (EAL refuses a second
	// call in the same process).
	initDone = true
	if err == nil {
		initArgs = append([]string(nil), args...)
	}
	return err
}

// Initialized reports whether Init succeeded, and with which arguments.
func Initialized() (bool, []string) {
	initMu.Lock()
	defer initMu.Unlock()
	return initArgs != nil && !cleaned, initArgs
}

// Cleanup releases EAL's resources (rte_eal_cleanup). DPDK cannot be used
// again in this process afterwards.
func Cleanup() error {
	initMu.Lock()
	defer initMu.Unlock()
	if initArgs == nil || cleaned {
		return nil
	}
	cleaned = true
	return rc("rte_eal_cleanup", C.rte_eal_cleanup())
}

// Version is DPDK's version string.
func Version() string { return C.GoString(C.gvs_version()) }

// LcoreID is the calling thread's lcore id, or -1 if it has none.
func LcoreID() int {
	id := C.gvs_lcore_id()
	if id == C.gvs_lcore_any() {
		return -1
	}
	return int(id)
}

// RegisterThread gives the calling (locked) OS thread an lcore id
// (rte_thread_register), so mempool caches work on it. Burst calls do this
// themselves on a thread's first burst.
func RegisterThread() (int, error) {
	if id := LcoreID(); id >= 0 {
		return id, nil
	}
	if C.rte_thread_register() != 0 {
		return -1, errnoErr("rte_thread_register")
	}
	return LcoreID(), nil
}

// UnregisterThread releases the calling thread's lcore id.
func UnregisterThread() { C.rte_thread_unregister() }

// LcoreCount is the number of lcores EAL uses (rte_lcore_count).
func LcoreCount() int { return int(C.rte_lcore_count()) }

// SocketID is the NUMA socket of the calling thread (rte_socket_id).
func SocketID() int { return int(C.gvs_socket_id()) }

// SocketAny is SOCKET_ID_ANY.
const SocketAny = -1

// Pool is an mbuf pool (rte_pktmbuf_pool_create).
type Pool struct {
	p    *C.struct_rte_mempool
	name string
}

// NewPool makes a pool of n mbufs with dataRoom bytes each (headroom
// included; 0: DefaultBufSize) and a per-lcore cache of cache mbufs, on
// socket (SocketAny: any).
func NewPool(name string, n, cache, dataRoom, socket int) (*Pool, error) {
	if dataRoom == 0 {
		dataRoom = DefaultBufSize
	}
	if max := int(C.gvs_cache_max()); cache > max {
		cache = max
	}
	if cache > n/2 {
		cache = n / 2
	}
	cn := C.CString(name)
	defer C.free(unsafe.Pointer(cn))
	p := C.gvs_pool_create(cn, C.uint(n), C.uint(cache), C.uint16_t(dataRoom), C.int(socket))
	if p == nil {
		return nil, fmt.Errorf("mbuf pool %s (%d mbufs of %d bytes, socket %d): %w", name, n, dataRoom, socket, errnoErr("rte_pktmbuf_pool_create"))
	}
	return &Pool{p: p, name: name}, nil
}

// Name is the pool's name.
func (p *Pool) Name() string { return p.name }

// Avail is the number of free mbufs (in the ring and every lcore cache).
func (p *Pool) Avail() int { return int(C.rte_mempool_avail_count(p.p)) }

// InUse is the number of mbufs allocated.
func (p *Pool) InUse() int { return int(C.rte_mempool_in_use_count(p.p)) }

// Free releases the pool; every mbuf must be back.
func (p *Pool) Free() {
	if p.p != nil {
		C.rte_mempool_free(p.p)
		p.p = nil
	}
}

// Burst is a burst array in C memory (struct gvs_burst): mbuf pointers and,
// after a receive or an alloc, each mbuf's buffer address, data offset,
// data length and buffer length. One Burst per queue and direction; not
// safe for concurrent use.
type Burst struct {
	c *C.struct_gvs_burst
}

// NewBurst allocates a burst array (C memory; Free it).
func NewBurst() *Burst {
	b := C.gvs_burst_new()
	if b == nil {
		panic("rte: out of memory for a burst array")
	}
	return &Burst{c: b}
}

// Free releases the array (not the mbufs in it).
func (b *Burst) Free() {
	if b.c != nil {
		C.gvs_burst_free(b.c)
		b.c = nil
	}
}

// Mbuf returns mbuf i's address.
func (b *Burst) Mbuf(i int) uintptr { return uintptr(b.c.m[i]) }

// Buf returns mbuf i's whole buffer (headroom, data, tailroom) as a slice
// over C memory.
func (b *Burst) Buf(i int) []byte {
	return unsafe.Slice((*byte)(b.c.addr[i]), int(b.c.cap[i]))
}

// Off is mbuf i's data offset within its buffer.
func (b *Burst) Off(i int) int { return int(b.c.off[i]) }

// Len is mbuf i's data length.
func (b *Burst) Len(i int) int { return int(b.c.len[i]) }

// Set puts an mbuf with the data offset and length to apply into slot i
// (before Tx, Enqueue or FreeBulk).
func (b *Burst) Set(i int, mbuf uintptr, off, n int) {
	b.c.m[i] = C.uintptr_t(mbuf)
	b.c.off[i] = C.uint16_t(off)
	b.c.len[i] = C.uint16_t(n)
}

// SetMbuf puts an mbuf into slot i (before FreeBulk).
func (b *Burst) SetMbuf(i int, mbuf uintptr) {
	b.c.m[i] = C.uintptr_t(mbuf)
}

// SegDrops is the number of chained (multi-segment) mbufs Rx dropped.
func (b *Burst) SegDrops() uint64 { return uint64(b.c.segdrops) }

// RegFailures counts threads that could not get an lcore id.
func (b *Burst) RegFailures() uint64 { return uint64(b.c.regfail) }

// FreeBulk frees mbufs b[0:n] (rte_pktmbuf_free_bulk).
func (b *Burst) FreeBulk(n int) {
	if n > 0 {
		C.gvs_free_bulk(b.c, C.uint16_t(n))
	}
}

// Alloc fills b[0:n'] with empty mbufs from p and returns n' <= n.
func (p *Pool) Alloc(b *Burst, n int) int {
	return int(C.gvs_alloc(p.p, b.c, C.uint16_t(n)))
}

// AllocFreeLoop allocates and frees a burst iters times on the calling
// thread as it is (registered or not) and returns the mbufs cycled
// (benchmarks).
func (p *Pool) AllocFreeLoop(b *Burst, iters uint64) uint64 {
	return uint64(C.gvs_alloc_free_loop(p.p, b.c, C.uint64_t(iters)))
}

// Port is an ethdev port id.
type Port uint16

// PortByName finds an ethdev by its device name (a PCI address, a vdev
// name such as net_ring0).
func PortByName(name string) (Port, error) {
	cn := C.CString(name)
	defer C.free(unsafe.Pointer(cn))
	var id C.uint16_t
	if err := rc("rte_eth_dev_get_port_by_name "+name, C.rte_eth_dev_get_port_by_name(cn, &id)); err != nil {
		return 0, err
	}
	return Port(id), nil
}

// PortCount is the number of usable ethdev ports.
func PortCount() int { return int(C.rte_eth_dev_count_avail()) }

// VdevInit probes a virtual device (rte_vdev_init): name such as
// "net_null0", args its devargs ("size=64,copy=0").
func VdevInit(name, args string) error {
	cn, ca := C.CString(name), C.CString(args)
	defer C.free(unsafe.Pointer(cn))
	defer C.free(unsafe.Pointer(ca))
	return rc("rte_vdev_init "+name+","+args, C.rte_vdev_init(cn, ca))
}

// VdevUninit removes a virtual device.
func VdevUninit(name string) error {
	cn := C.CString(name)
	defer C.free(unsafe.Pointer(cn))
	return rc("rte_vdev_uninit "+name, C.rte_vdev_uninit(cn))
}

// DevInfo is what gvs reads of rte_eth_dev_info.
type DevInfo struct {
	Driver                   string
	MaxRxQueues, MaxTxQueues int
	MinMTU, MaxMTU           int
	RetaSize, HashKeySize    int
	RxDescMax, TxDescMax     int
	RxOffloadCapa            uint64
	TxOffloadCapa            uint64
	FlowTypeRSSOffloads      uint64
	Socket                   int // -1 if unknown
}

// Info returns the device's capabilities.
func (p Port) Info() (DevInfo, error) {
	var d C.struct_gvs_dev_info
	if err := rc("rte_eth_dev_info_get", C.gvs_dev_info(C.uint16_t(p), &d)); err != nil {
		return DevInfo{}, err
	}
	return DevInfo{
		Driver:      C.GoString(&d.driver[0]),
		MaxRxQueues: int(d.max_rxq), MaxTxQueues: int(d.max_txq),
		MinMTU: int(d.min_mtu), MaxMTU: int(d.max_mtu),
		RetaSize: int(d.reta_size), HashKeySize: int(d.hash_key_size),
		RxDescMax: int(d.rx_desc_max), TxDescMax: int(d.tx_desc_max),
		RxOffloadCapa: uint64(d.rx_offload_capa), TxOffloadCapa: uint64(d.tx_offload_capa),
		FlowTypeRSSOffloads: uint64(d.flow_type_rss_offloads),
		Socket:              int(d.socket),
	}, nil
}

// RSSIPTCPUDP is RTE_ETH_RSS_IP | RTE_ETH_RSS_TCP | RTE_ETH_RSS_UDP.
var RSSIPTCPUDP = uint64(C.gvs_rss_ip_tcp_udp())

// TxOffloadFastFree is RTE_ETH_TX_OFFLOAD_MBUF_FAST_FREE.
var TxOffloadFastFree = uint64(C.gvs_tx_fast_free())

// Conf is a port configuration (rte_eth_dev_configure).
type Conf struct {
	RxQueues, TxQueues int
	RSSKey             []byte // with RSSHf != 0: RSS on
	RSSHf              uint64
	RxOffloads         uint64
	TxOffloads         uint64
	MTU                int // 0: the device's default
}

// Configure configures the port (stopped).
func (p Port) Configure(c Conf) error {
	var key *C.uint8_t
	if c.RSSHf != 0 && len(c.RSSKey) > 0 {
		k := C.CBytes(c.RSSKey)
		defer C.free(k)
		key = (*C.uint8_t)(k)
	}
	return rc("rte_eth_dev_configure", C.gvs_configure(C.uint16_t(p), C.uint16_t(c.RxQueues), C.uint16_t(c.TxQueues),
		key, C.uint8_t(len(c.RSSKey)), C.uint64_t(c.RSSHf), C.uint64_t(c.RxOffloads), C.uint64_t(c.TxOffloads), C.uint32_t(c.MTU)))
}

// AdjustDesc clamps descriptor counts to the device's limits.
func (p Port) AdjustDesc(rx, tx int) (int, int, error) {
	r, t := C.uint16_t(rx), C.uint16_t(tx)
	if err := rc("rte_eth_dev_adjust_nb_rx_tx_desc", C.gvs_adjust_desc(C.uint16_t(p), &r, &t)); err != nil {
		return rx, tx, err
	}
	return int(r), int(t), nil
}

// SetupRxQueue sets up receive queue q with n descriptors filled from pool.
func (p Port) SetupRxQueue(q, n, socket int, pool *Pool) error {
	return rc(fmt.Sprintf("rte_eth_rx_queue_setup %d", q), C.gvs_rxq_setup(C.uint16_t(p), C.uint16_t(q), C.uint16_t(n), C.int(socket), pool.p))
}

// SetupTxQueue sets up transmit queue q with n descriptors.
func (p Port) SetupTxQueue(q, n, socket int, offloads uint64) error {
	return rc(fmt.Sprintf("rte_eth_tx_queue_setup %d", q), C.gvs_txq_setup(C.uint16_t(p), C.uint16_t(q), C.uint16_t(n), C.int(socket), C.uint64_t(offloads)))
}

// Start starts the port.
func (p Port) Start() error { return rc("rte_eth_dev_start", C.rte_eth_dev_start(C.uint16_t(p))) }

// Stop stops the port.
func (p Port) Stop() error { return rc("rte_eth_dev_stop", C.rte_eth_dev_stop(C.uint16_t(p))) }

// Close closes the (stopped) port and releases its queues.
func (p Port) Close() error { return rc("rte_eth_dev_close", C.rte_eth_dev_close(C.uint16_t(p))) }

// SetReta spreads RSS over queues 0..n-1 only.
func (p Port) SetReta(retaSize, n int) error {
	return rc("rte_eth_dev_rss_reta_update", C.gvs_reta(C.uint16_t(p), C.uint16_t(retaSize), C.uint16_t(n)))
}

// SetRSS sets the RSS key and hash types (rte_eth_dev_rss_hash_update).
func (p Port) SetRSS(key []byte, hf uint64) error {
	k := C.CBytes(key)
	defer C.free(k)
	return rc("rte_eth_dev_rss_hash_update", C.gvs_rss_update(C.uint16_t(p), (*C.uint8_t)(k), C.uint8_t(len(key)), C.uint64_t(hf)))
}

// RSSKey reads the RSS key (size bytes: the device's hash_key_size) and
// the hash functions the device uses.
func (p Port) RSSKey(size int) ([]byte, uint64, error) {
	if size <= 0 || size > 255 {
		return nil, 0, fmt.Errorf("rte: RSS key size %d", size)
	}
	key := (*C.uint8_t)(C.calloc(1, 255))
	defer C.free(unsafe.Pointer(key))
	var hf C.uint64_t
	n := C.gvs_rss_key(C.uint16_t(p), key, C.uint8_t(size), &hf)
	if n < 0 {
		return nil, 0, rc("rte_eth_dev_rss_hash_conf_get", n)
	}
	return C.GoBytes(unsafe.Pointer(key), C.int(size)), uint64(hf), nil
}

// Promiscuous turns promiscuous mode on or off.
func (p Port) Promiscuous(on bool) error {
	if on {
		return rc("rte_eth_promiscuous_enable", C.rte_eth_promiscuous_enable(C.uint16_t(p)))
	}
	return rc("rte_eth_promiscuous_disable", C.rte_eth_promiscuous_disable(C.uint16_t(p)))
}

// AllMulticast turns all-multicast reception on.
func (p Port) AllMulticast() error {
	return rc("rte_eth_allmulticast_enable", C.rte_eth_allmulticast_enable(C.uint16_t(p)))
}

// Stats are the device's counters.
type Stats struct {
	IPackets, OPackets, IBytes, OBytes  uint64
	IMissed, IErrors, OErrors, RxNoMbuf uint64
}

// Stats reads the device's counters.
func (p Port) Stats() (Stats, error) {
	var s C.struct_gvs_stats
	if err := rc("rte_eth_stats_get", C.gvs_stats(C.uint16_t(p), &s)); err != nil {
		return Stats{}, err
	}
	return Stats{uint64(s.ipackets), uint64(s.opackets), uint64(s.ibytes), uint64(s.obytes),
		uint64(s.imissed), uint64(s.ierrors), uint64(s.oerrors), uint64(s.rx_nombuf)}, nil
}

// ResetStats zeroes the device's counters.
func (p Port) ResetStats() error {
	return rc("rte_eth_stats_reset", C.rte_eth_stats_reset(C.uint16_t(p)))
}

// Link is the link state.
type Link struct {
	SpeedMbps  uint32
	Up, Duplex bool
}

// Link reads the link state without waiting.
func (p Port) Link() (Link, error) {
	var speed C.uint32_t
	var up, duplex C.int
	if err := rc("rte_eth_link_get_nowait", C.gvs_link(C.uint16_t(p), &speed, &up, &duplex)); err != nil {
		return Link{}, err
	}
	return Link{uint32(speed), up != 0, duplex != 0}, nil
}

// MAC is the port's Ethernet address.
func (p Port) MAC() ([6]byte, error) {
	var m [6]byte
	cm := (*C.uint8_t)(C.calloc(1, 6))
	defer C.free(unsafe.Pointer(cm))
	if err := rc("rte_eth_macaddr_get", C.gvs_mac(C.uint16_t(p), cm)); err != nil {
		return m, err
	}
	copy(m[:], unsafe.Slice((*byte)(unsafe.Pointer(cm)), 6))
	return m, nil
}

// SetMAC sets the port's default Ethernet address.
func (p Port) SetMAC(m [6]byte) error {
	cm := C.CBytes(m[:])
	defer C.free(cm)
	return rc("rte_eth_dev_default_mac_addr_set", C.gvs_set_mac(C.uint16_t(p), (*C.uint8_t)(cm)))
}

// MTU is the port's MTU.
func (p Port) MTU() (int, error) {
	var m C.uint16_t
	if err := rc("rte_eth_dev_get_mtu", C.rte_eth_dev_get_mtu(C.uint16_t(p), &m)); err != nil {
		return 0, err
	}
	return int(m), nil
}

// SetMTU sets the port's MTU.
func (p Port) SetMTU(mtu int) error {
	return rc("rte_eth_dev_set_mtu", C.rte_eth_dev_set_mtu(C.uint16_t(p), C.uint16_t(mtu)))
}

// Rx receives up to n (<= BurstSize) packets from queue q into b and
// returns how many: one cgo call.
func (p Port) Rx(q int, b *Burst, n int) int {
	return int(C.gvs_rx(C.uint16_t(p), C.uint16_t(q), b.c, C.uint16_t(n)))
}

// Tx applies the offsets and lengths of b[0:n] to the mbufs, sends them on
// queue q and returns how many the device took (a prefix): one cgo call.
func (p Port) Tx(q int, b *Burst, n int) int {
	return int(C.gvs_tx(C.uint16_t(p), C.uint16_t(q), b.c, C.uint16_t(n)))
}

// TxFrom sends b[from:from+n] as they are (a retry of the part Tx did not
// send).
func (p Port) TxFrom(q int, b *Burst, from, n int) int {
	return int(C.gvs_tx_from(C.uint16_t(p), C.uint16_t(q), b.c, C.uint16_t(from), C.uint16_t(n)))
}

// ForwardC runs the reference forwarding loop in C (rx burst on (p, rq) →
// tx burst on (to, tq)) for iters rounds and returns the packets forwarded
// (benchmarks: the cost of the binding's Go loop is measured against it).
func (p Port) ForwardC(rq int, to Port, tq int, b *Burst, iters uint64) uint64 {
	return uint64(C.gvs_fwd_c(C.uint16_t(p), C.uint16_t(rq), C.uint16_t(to), C.uint16_t(tq), b.c, C.uint64_t(iters)))
}

// ForwardDescC is ForwardC through the burst descriptors (gvs_rx/gvs_tx),
// in C: the binding's per-packet work without crossing into Go.
func (p Port) ForwardDescC(rq int, to Port, tq int, b *Burst, iters uint64) uint64 {
	return uint64(C.gvs_fwd_desc(C.uint16_t(p), C.uint16_t(rq), C.uint16_t(to), C.uint16_t(tq), b.c, C.uint64_t(iters)))
}

// Ring is an rte_ring of mbufs (single producer, single consumer).
type Ring struct {
	r *C.struct_rte_ring
}

// NewRing makes a ring of count slots (a power of two; count-1 usable).
func NewRing(name string, count, socket int) (*Ring, error) {
	cn := C.CString(name)
	defer C.free(unsafe.Pointer(cn))
	r := C.gvs_ring_create(cn, C.uint(count), C.int(socket))
	if r == nil {
		return nil, fmt.Errorf("ring %s: %w", name, errnoErr("rte_ring_create"))
	}
	return &Ring{r: r}, nil
}

// Free releases the ring (not the mbufs in it).
func (r *Ring) Free() {
	if r.r != nil {
		C.rte_ring_free(r.r)
		r.r = nil
	}
}

// Enqueue puts b[0:n] (offsets and lengths applied) on the ring and
// returns how many fit.
func (r *Ring) Enqueue(b *Burst, n int) int {
	return int(C.gvs_ring_enqueue(r.r, b.c, C.uint(n)))
}

// Dequeue takes up to n mbufs into b and describes them.
func (r *Ring) Dequeue(b *Burst, n int) int {
	return int(C.gvs_ring_dequeue(r.r, b.c, C.uint(n)))
}

// Count is the number of mbufs on the ring.
func (r *Ring) Count() int { return int(C.rte_ring_count(r.r)) }

// PortFromRings makes a net_ring ethdev named name whose receive queue i
// reads rx[i] and whose transmit queue i writes tx[i].
func PortFromRings(name string, rx, tx []*Ring, socket int) (Port, error) {
	if len(rx) == 0 || len(tx) == 0 {
		return 0, errors.New("rte: net_ring port needs rings")
	}
	crx := (**C.struct_rte_ring)(C.calloc(C.size_t(len(rx)), C.size_t(unsafe.Sizeof(uintptr(0)))))
	ctx := (**C.struct_rte_ring)(C.calloc(C.size_t(len(tx)), C.size_t(unsafe.Sizeof(uintptr(0)))))
	defer C.free(unsafe.Pointer(crx))
	defer C.free(unsafe.Pointer(ctx))
	for i, r := range rx {
		unsafe.Slice(crx, len(rx))[i] = r.r
	}
	for i, r := range tx {
		unsafe.Slice(ctx, len(tx))[i] = r.r
	}
	cn := C.CString(name)
	defer C.free(unsafe.Pointer(cn))
	id := C.gvs_eth_from_rings(cn, crx, C.uint(len(rx)), ctx, C.uint(len(tx)), C.int(socket))
	if id < 0 {
		return 0, fmt.Errorf("net_ring port %s: %w", name, errnoErr("rte_eth_from_rings"))
	}
	return Port(id), nil
}
