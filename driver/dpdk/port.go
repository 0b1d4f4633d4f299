//go:build dpdk

package dpdk

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"

	"gvs/driver"
	"gvs/driver/dpdk/internal/rte"
)

// SymmetricRSSKey is the Toeplitz key gvs sets on devices with RSS: 0x6d5a
// repeated, which makes the hash symmetric (a flow and its reply hash
// alike, so both directions of a nat flow land on one queue). Port.RSS
// reports the key the device actually uses.
var SymmetricRSSKey = func() []byte {
	k := make([]byte, 52)
	for i := range k {
		if i%2 == 0 {
			k[i] = 0x6d
		} else {
			k[i] = 0x5a
		}
	}
	return k
}()

// Config configures a Port.
type Config struct {
	// Name is gvs's name of the port (logs, metrics, next hops).
	Name string
	// Device is the DPDK device: a PCI address that EAL was allowed to
	// probe ("0000:01:00.0"), a virtual device spec created on Open
	// ("net_af_packet0,iface=eth0", "net_null0", "net_pcap0,rx_pcap=a.pcap"),
	// or the name of an ethdev that already exists (net_ring ports made by
	// tests, vdevs given to EAL). Default: Name.
	Device string
	// Queues is the number of workers: the port gets Queues receive
	// queues and Queues+1 transmit queues (the last one is the control
	// queue of the exception path: ARP/ND replies and solicitations,
	// frames from the kernel).
	Queues int
	// RxQueues overrides the number of receive queues (default Queues;
	// Queues+1 for net_af_packet, whose queues are socket pairs that all
	// receive). Extra queues are polled by the workers in turn (pmd) and
	// left out of RSS.
	RxQueues int
	// RxDesc and TxDesc are the descriptor ring sizes (default 1024).
	RxDesc, TxDesc int
	// MTU sets the device's MTU (0: keep the device's).
	MTU int
	// MAC overrides the device's Ethernet address.
	MAC net.HardwareAddr
	// Promiscuous receives frames for every destination (default: only
	// the port's MAC, broadcast and multicast).
	Promiscuous bool
	// Logger receives the port's notices (default slog.Default()).
	Logger *slog.Logger

	// noCtl: no control queue (the exception TAP, whose receive and
	// transmit queue counts must match).
	noCtl bool
	// pool overrides the socket's pool (the exception TAP takes its
	// port's, so every mbuf the port sends is of one pool: fast free).
	pool *rte.Pool
}

// Port is a DPDK ethdev driven by gvs. It implements driver.Port.
type Port struct {
	cfg    Config
	id     rte.Port
	info   rte.DevInfo
	vdev   string // vdev created by Open (removed by Close)
	pool   *rte.Pool
	mac    net.HardwareAddr
	mtu    int
	nrx    int
	ntx    int
	rss    []byte
	rsshf  uint64
	txoffs uint64
	queues []*Queue
	ctl    *Queue // transmit queue ntx-1: the exception path's
	closed atomic.Bool
	mu     sync.Mutex // Close

	ex *exception // nil until EnableException

	steerMu sync.Mutex
	steered []netip.Addr // VIPs and local addresses from SetSteering
}

var _ driver.Port = (*Port)(nil)

// Queue is one receive/transmit queue pair of a Port.
type Queue struct {
	p   *Port
	idx int
	rxb *rte.Burst
	txb *rte.Burst
	// counters written by the queue's user only
	txRefused atomic.Uint64
}

var _ driver.Queue = (*Queue)(nil)

// splitDevice splits "net_x0,a=b" into its name and devargs.
func splitDevice(dev string) (name, args string) {
	name, args, _ = strings.Cut(dev, ",")
	return name, args
}

// isVdev tells a virtual device spec from a PCI address or ethdev name.
func isVdev(name string) bool {
	return strings.HasPrefix(name, "net_") || strings.HasPrefix(name, "eth_")
}

// Open opens a port. EAL must be initialised (Init).
func Open(c Config) (*Port, error) {
	if !Initialized() {
		return nil, errors.New("dpdk: EAL not initialised")
	}
	if c.Device == "" {
		c.Device = c.Name
	}
	if c.Name == "" {
		c.Name, _ = splitDevice(c.Device)
	}
	if c.Queues == 0 {
		c.Queues = 1
	}
	if c.RxDesc == 0 {
		c.RxDesc = 1024
	}
	if c.TxDesc == 0 {
		c.TxDesc = 1024
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	p := &Port{cfg: c}
	name, args := splitDevice(c.Device)
	id, err := rte.PortByName(name)
	if err != nil {
		if !isVdev(name) {
			return nil, fmt.Errorf("dpdk port %s: device %s not found (a PCI device must be in the EAL allow list and bound to vfio-pci): %w", c.Name, name, err)
		}
		if strings.HasPrefix(name, "net_af_packet") && !strings.Contains(args, "qpairs=") {
			// net_af_packet's queues are socket pairs that all
			// receive: one per worker and the control queue.
			args = joinArgs(args, fmt.Sprintf("qpairs=%d", c.Queues+1))
		}
		if err := rte.VdevInit(name, args); err != nil {
			return nil, fmt.Errorf("dpdk port %s: %w", c.Name, err)
		}
		p.vdev = name
		if id, err = rte.PortByName(name); err != nil {
			_ = rte.VdevUninit(name)
			return nil, fmt.Errorf("dpdk port %s: %w", c.Name, err)
		}
	}
	p.id = id
	if err := p.setup(); err != nil {
		_ = p.id.Stop()
		_ = p.id.Close()
		if p.vdev != "" {
			_ = rte.VdevUninit(p.vdev)
		}
		return nil, fmt.Errorf("dpdk port %s (%s): %w", c.Name, c.Device, err)
	}
	return p, nil
}

func joinArgs(a, b string) string {
	if a == "" {
		return b
	}
	return a + "," + b
}

func (p *Port) setup() error {
	c := &p.cfg
	info, err := p.id.Info()
	if err != nil {
		return err
	}
	p.info = info
	p.nrx = c.Queues
	if c.RxQueues > 0 {
		p.nrx = c.RxQueues
	} else if info.Driver == "net_af_packet" {
		p.nrx = c.Queues + 1
	}
	p.ntx = c.Queues + 1
	if c.noCtl {
		p.ntx = p.nrx
	}
	if p.nrx < c.Queues {
		return fmt.Errorf("%d receive queues for %d workers", p.nrx, c.Queues)
	}
	if info.MaxRxQueues < p.nrx || info.MaxTxQueues < p.ntx {
		return fmt.Errorf("device %s has %d rx / %d tx queues; gvs needs %d / %d (one per worker, and a transmit queue for the exception path)",
			info.Driver, info.MaxRxQueues, info.MaxTxQueues, p.nrx, p.ntx)
	}
	if p.pool = c.pool; p.pool == nil {
		if p.pool, err = pool(info.Socket); err != nil {
			return err
		}
	}
	conf := rte.Conf{RxQueues: p.nrx, TxQueues: p.ntx, MTU: c.MTU}
	if p.nrx > 1 {
		if hf := info.FlowTypeRSSOffloads & rte.RSSIPTCPUDP; hf != 0 {
			n := info.HashKeySize
			if n == 0 {
				n = 40
			}
			if n > len(SymmetricRSSKey) {
				n = len(SymmetricRSSKey)
			}
			conf.RSSKey, conf.RSSHf = SymmetricRSSKey[:n], hf
		}
	}
	// Every mbuf a port sends comes from its socket's one pool (its TAP's
	// too; frames of ports on other sockets are copied by pmd) with a
	// reference count of 1 (gvs never clones): fast free is safe.
	if info.TxOffloadCapa&rte.TxOffloadFastFree != 0 {
		conf.TxOffloads |= rte.TxOffloadFastFree
	}
	p.txoffs = conf.TxOffloads
	if err := p.id.Configure(conf); err != nil {
		return err
	}
	rxd, txd, err := p.id.AdjustDesc(c.RxDesc, c.TxDesc)
	if err != nil {
		return err
	}
	for q := 0; q < p.nrx; q++ {
		if err := p.id.SetupRxQueue(q, rxd, info.Socket, p.pool); err != nil {
			return err
		}
	}
	for q := 0; q < p.ntx; q++ {
		if err := p.id.SetupTxQueue(q, txd, info.Socket, conf.TxOffloads); err != nil {
			return err
		}
	}
	softMAC := false
	if c.MAC != nil {
		var m [6]byte
		copy(m[:], c.MAC)
		if err := p.id.SetMAC(m); err != nil {
			if !errors.Is(err, syscall.ENOTSUP) {
				return fmt.Errorf("set MAC %s: %w", c.MAC, err)
			}
			// Virtual devices without a MAC filter (net_ring, net_null):
			// gvs uses the address in software and receives everything.
			c.Logger.Info("dpdk: device cannot change its MAC; using it in software, promiscuous", "port", c.Name, "mac", c.MAC.String())
			softMAC = true
			c.Promiscuous = true
		}
	}
	if err := p.id.Start(); err != nil {
		return err
	}
	if c.Promiscuous {
		if err := p.id.Promiscuous(true); err != nil {
			c.Logger.Warn("dpdk: promiscuous mode not available", "port", c.Name, "error", err)
		}
	}
	if err := p.id.AllMulticast(); err != nil {
		c.Logger.Debug("dpdk: all-multicast not available", "port", c.Name, "error", err)
	}
	if conf.RSSHf != 0 {
		p.rss, p.rsshf = conf.RSSKey, conf.RSSHf
		if err := p.id.SetRSS(conf.RSSKey, conf.RSSHf); err != nil {
			c.Logger.Debug("dpdk: RSS key not set after configure", "port", c.Name, "error", err)
		}
		if key, hf, err := p.id.RSSKey(len(conf.RSSKey)); err == nil && len(key) > 0 {
			p.rss, p.rsshf = key, hf
		}
		if p.nrx > c.Queues && info.RetaSize > 0 {
			if err := p.id.SetReta(info.RetaSize, c.Queues); err != nil {
				c.Logger.Debug("dpdk: RSS redirection table not set", "port", c.Name, "error", err)
			}
		}
	}
	m, err := p.id.MAC()
	if err != nil {
		return err
	}
	p.mac = net.HardwareAddr(m[:])
	if softMAC {
		p.mac = append(net.HardwareAddr(nil), c.MAC...)
	}
	p.mtu = 1500
	if mtu, err := p.id.MTU(); err == nil && mtu > 0 {
		p.mtu = mtu
	}
	for q := 0; q < p.nrx; q++ {
		p.queues = append(p.queues, &Queue{p: p, idx: q, rxb: rte.NewBurst(), txb: rte.NewBurst()})
	}
	p.ctl = &Queue{p: p, idx: p.ntx - 1, rxb: rte.NewBurst(), txb: rte.NewBurst()}
	if c.noCtl {
		p.ctl = p.queues[0]
	}
	link, _ := p.id.Link()
	c.Logger.Info("dpdk port open", "port", c.Name, "device", c.Device, "driver", info.Driver, "ethdev", int(p.id),
		"rxq", p.nrx, "txq", p.ntx, "rss", conf.RSSHf != 0, "fast_free", conf.TxOffloads&rte.TxOffloadFastFree != 0,
		"mac", p.mac.String(), "mtu", p.mtu, "link_up", link.Up, "speed_mbps", link.SpeedMbps, "socket", info.Socket)
	return nil
}

// Name implements driver.Port.
func (p *Port) Name() string { return p.cfg.Name }

// MAC implements driver.Port.
func (p *Port) MAC() net.HardwareAddr { return p.mac }

// MTU implements driver.Port.
func (p *Port) MTU() int { return p.mtu }

// NumQueues implements driver.Port: the receive queues (Queues, or more).
func (p *Port) NumQueues() int { return p.nrx }

// Queue implements driver.Port.
func (p *Port) Queue(i int) driver.Queue { return p.queues[i] }

// DPDKQueue returns queue i with its concrete type.
func (p *Port) DPDKQueue(i int) *Queue { return p.queues[i] }

// EthdevID is the port's DPDK port id.
func (p *Port) EthdevID() uint16 { return uint16(p.id) }

// DriverName is the DPDK driver of the device (net_ixgbe, net_af_packet, ...).
func (p *Port) DriverName() string { return p.info.Driver }

// RSS returns the Toeplitz key and hash types the device uses, or nil if
// RSS is off (one receive queue, or a device without RSS).
func (p *Port) RSS() (key []byte, hashTypes uint64) { return p.rss, p.rsshf }

// TxOffloads returns the transmit offloads in use.
func (p *Port) TxOffloads() uint64 { return p.txoffs }

// Link reports whether the link is up and its speed in Mbit/s.
func (p *Port) Link() (up bool, mbps uint32) {
	l, err := p.id.Link()
	if err != nil {
		return false, 0
	}
	return l.Up, l.SpeedMbps
}

// Stats implements driver.Port: the device's counters, plus mbufs dropped
// by gvs (chained mbufs on receive, bursts the device refused on transmit).
func (p *Port) Stats() driver.PortStats {
	var s driver.PortStats
	if p.closed.Load() {
		return s
	}
	ds, err := p.id.Stats()
	if err == nil {
		s = driver.PortStats{RxPackets: ds.IPackets, RxBytes: ds.IBytes, TxPackets: ds.OPackets, TxBytes: ds.OBytes,
			RxDropped: ds.IMissed + ds.IErrors + ds.RxNoMbuf, TxDropped: ds.OErrors}
	}
	qs := p.queues[:len(p.queues):len(p.queues)]
	if !p.cfg.noCtl {
		qs = append(qs, p.ctl)
	}
	for _, q := range qs {
		s.RxDropped += q.rxb.SegDrops()
		s.TxDropped += q.txRefused.Load()
	}
	return s
}

// Close implements driver.Port: it stops the exception path and the
// device and releases the device. The workers must be stopped first.
func (p *Port) Close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed.Load() {
		return nil
	}
	if p.ex != nil {
		p.ex.stop()
	}
	p.closed.Store(true)
	var errs []error
	if err := p.id.Stop(); err != nil {
		errs = append(errs, err)
	}
	if err := p.id.Close(); err != nil {
		errs = append(errs, err)
	}
	if p.vdev != "" {
		if err := rte.VdevUninit(p.vdev); err != nil {
			errs = append(errs, err)
		}
	}
	for _, q := range p.queues {
		q.rxb.Free()
		q.txb.Free()
	}
	if !p.cfg.noCtl {
		p.ctl.rxb.Free()
		p.ctl.txb.Free()
	}
	return errors.Join(errs...)
}

// Receive implements driver.Queue: one rx burst (one cgo call); the frames
// are views of the mbufs' buffers (Buf spans headroom, data and tailroom,
// Off is the mbuf's data offset, Handle the mbuf).
func (q *Queue) Receive(frames []driver.Frame) (int, error) {
	if q.p.closed.Load() {
		return 0, driver.ErrClosed
	}
	n := len(frames)
	if n > driver.BurstSize {
		n = driver.BurstSize
	}
	b := q.rxb
	got := q.p.id.Rx(q.idx, b, n)
	for i := 0; i < got; i++ {
		f := &frames[i]
		f.Buf = b.Buf(i)
		f.Off = b.Off(i)
		f.Len = b.Len(i)
		f.Handle = uint64(b.Mbuf(i))
	}
	return got, nil
}

// Transmit implements driver.Queue: the frames' offsets and lengths go to
// their mbufs and the device takes a prefix, one tx burst (one cgo call)
// per BurstSize frames.
func (q *Queue) Transmit(frames []driver.Frame) (int, error) {
	if q.p.closed.Load() {
		return 0, driver.ErrClosed
	}
	return q.tx(frames), nil
}

func (q *Queue) tx(frames []driver.Frame) int {
	b := q.txb
	sent := 0
	for sent < len(frames) {
		chunk := frames[sent:]
		if len(chunk) > driver.BurstSize {
			chunk = chunk[:driver.BurstSize]
		}
		for i := range chunk {
			f := &chunk[i]
			b.Set(i, uintptr(f.Handle), f.Off, f.Len)
		}
		n := q.p.id.Tx(q.idx, b, len(chunk))
		sent += n
		if n < len(chunk) {
			q.txRefused.Add(uint64(len(frames) - sent))
			break
		}
	}
	return sent
}

// Free implements driver.Queue: rte_pktmbuf_free_bulk, one cgo call per
// BurstSize frames.
func (q *Queue) Free(frames []driver.Frame) {
	if q.p.closed.Load() {
		return
	}
	b := q.txb
	for len(frames) > 0 {
		chunk := frames
		if len(chunk) > driver.BurstSize {
			chunk = chunk[:driver.BurstSize]
		}
		for i := range chunk {
			b.SetMbuf(i, uintptr(chunk[i].Handle))
		}
		b.FreeBulk(len(chunk))
		frames = frames[len(chunk):]
	}
}

// Alloc implements driver.Queue: empty mbufs from the port's pool (Off at
// the mbuf headroom, Len 0), one cgo call.
func (q *Queue) Alloc(frames []driver.Frame) int {
	if q.p.closed.Load() {
		return 0
	}
	n := len(frames)
	if n > driver.BurstSize {
		n = driver.BurstSize
	}
	b := q.txb
	got := q.p.pool.Alloc(b, n)
	for i := 0; i < got; i++ {
		f := &frames[i]
		f.Buf = b.Buf(i)
		f.Off = b.Off(i)
		f.Len = 0
		f.Handle = uint64(b.Mbuf(i))
	}
	return got
}

// Index is the queue's number.
func (q *Queue) Index() int { return q.idx }
