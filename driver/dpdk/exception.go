//go:build dpdk

package dpdk

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"gvs/driver"
	"gvs/driver/dpdk/internal/rte"
	"gvs/driver/dpdk/nokernel"
)

// The exception path: a DPDK port has no kernel behind it, so the frames
// the pipeline leaves (pmd's slow path) come here. Each worker pushes them
// into a single-producer ring of its own (no lock on the worker); one
// goroutine per port, locked to a thread, drains the rings and
//
//   - answers what gvs answers itself (nokernel.Host: ARP/ND for VIPs,
//     local and own addresses, ICMP echo to VIPs) on the port's control
//     queue (its last transmit queue, used by nobody else);
//   - passes everything else to the TAP (net_tap), whose kernel side holds
//     the host's addresses: health checks, VRRP, BGP, ssh, ping to the host;
//   - sends what the kernel sends on the TAP out of the port (control
//     queue);
//   - sends the ARP requests and neighbour solicitations of gvs's own
//     next-hop resolution.
//
// The TAP is a DPDK port too (its mbufs come from the same pool), so frames
// cross in both directions without a copy.

// ExceptionConfig configures the exception path of a port.
type ExceptionConfig struct {
	// Addrs are the port's own addresses (with prefix lengths): gvs
	// answers ARP/ND for them, and they are on-link for next hops. With
	// a TAP they are also put on the TAP, so the host's stack owns them.
	Addrs []netip.Prefix
	// Gateways are the next hops of reals that are not on-link.
	Gateways []netip.Addr
	// Tap names the TAP interface; empty: no TAP, frames gvs does not
	// answer are dropped (counted).
	Tap string
	// Workers is the number of pmd workers that call SlowPath (default:
	// the port's Queues).
	Workers int
	// RingSize is each worker's ring to the exception path (default 1024).
	RingSize int
	// Neighbour resolution (see nokernel.Config; zero: defaults).
	Retries   int
	Timeout   time.Duration
	Reachable time.Duration
}

type exception struct {
	p     *Port
	host  *nokernel.Host
	tap   *Port
	tapq  *Queue
	in    []*driver.Ring
	stopc chan struct{}
	done  chan struct{}
	once  sync.Once

	ringDrops, toKernel, fromKernel, wireOut, txDrops, noTap atomic.Uint64
}

// ExceptionStats are the exception path's counters.
type ExceptionStats struct {
	Host       nokernel.Stats
	ToKernel   uint64 // frames passed to the TAP
	FromKernel uint64 // frames the kernel sent through the TAP
	WireOut    uint64 // frames sent on the port's control queue (answers, solicitations, kernel frames)
	RingDrops  uint64 // slow-path frames lost because a worker's ring was full
	TxDrops    uint64 // frames the TAP or the control queue refused
	NoTap      uint64 // frames for the kernel dropped for want of a TAP
}

// EnableException starts the port's exception path. Call it once, before
// the workers start.
func (p *Port) EnableException(c ExceptionConfig) error {
	if p.ex != nil {
		return errors.New("dpdk: exception path already enabled")
	}
	if c.Workers == 0 {
		c.Workers = p.cfg.Queues
	}
	if c.RingSize == 0 {
		c.RingSize = 1024
	}
	var mac [6]byte
	copy(mac[:], p.mac)
	e := &exception{p: p, stopc: make(chan struct{}), done: make(chan struct{})}
	e.host = nokernel.New(nokernel.Config{MAC: mac, Addrs: c.Addrs, Gateways: c.Gateways, KernelOwnsAddrs: c.Tap != "",
		Retries: c.Retries, Timeout: c.Timeout, Reachable: c.Reachable})
	e.host.SetAnswered(p.answered())
	for i := 0; i < c.Workers; i++ {
		e.in = append(e.in, driver.NewRing(c.RingSize))
	}
	if c.Tap != "" {
		tap, err := openTap(c.Tap, p.mac, p.cfg, p.pool)
		if err != nil {
			return err
		}
		if err := tapAddrs(c.Tap, c.Addrs, p.mtu); err != nil {
			tap.Close()
			return err
		}
		e.tap, e.tapq = tap, tap.queues[0]
	}
	p.ex = e
	go e.run()
	p.cfg.Logger.Info("dpdk exception path", "port", p.cfg.Name, "tap", c.Tap, "addresses", fmt.Sprint(c.Addrs), "gateways", fmt.Sprint(c.Gateways))
	return nil
}

// openTap creates the TAP (net_tap) with the port's MAC, so what the kernel
// sends through it leaves the port with the right source address.
func openTap(name string, mac net.HardwareAddr, pc Config, pool *rte.Pool) (*Port, error) {
	vdev := "net_tap_" + strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' {
			return r
		}
		return '_'
	}, name)
	t, err := Open(Config{Name: name, Device: fmt.Sprintf("%s,iface=%s,mac=%s", vdev, name, mac), Queues: 1,
		RxDesc: 512, TxDesc: 512, Logger: pc.Logger, noCtl: true, pool: pool})
	if err != nil {
		return nil, fmt.Errorf("exception TAP %s: %w", name, err)
	}
	return t, nil
}

// tapAddrs brings the TAP up with the port's addresses (without duplicate
// address detection: gvs answers for them on the wire).
func tapAddrs(name string, addrs []netip.Prefix, mtu int) error {
	l, err := netlink.LinkByName(name)
	if err != nil {
		return fmt.Errorf("exception TAP %s: %w", name, err)
	}
	if mtu > 0 && l.Attrs().MTU != mtu {
		if err := netlink.LinkSetMTU(l, mtu); err != nil {
			return fmt.Errorf("exception TAP %s: MTU %d: %w", name, mtu, err)
		}
	}
	for _, a := range addrs {
		na := &netlink.Addr{IPNet: &net.IPNet{IP: a.Addr().AsSlice(), Mask: net.CIDRMask(a.Bits(), a.Addr().BitLen())}}
		if a.Addr().Is6() {
			na.Flags = unix.IFA_F_NODAD
		}
		if err := netlink.AddrReplace(l, na); err != nil {
			return fmt.Errorf("exception TAP %s: address %s: %w", name, a, err)
		}
	}
	if err := netlink.LinkSetUp(l); err != nil {
		return fmt.Errorf("exception TAP %s: up: %w", name, err)
	}
	return nil
}

// Host returns the port's kernel-less side (neighbour table, counters), or
// nil without an exception path.
func (p *Port) Host() *nokernel.Host {
	if p.ex == nil {
		return nil
	}
	return p.ex.host
}

// Tap returns the exception TAP port, or nil.
func (p *Port) Tap() *Port {
	if p.ex == nil {
		return nil
	}
	return p.ex.tap
}

// ExceptionStats returns the exception path's counters.
func (p *Port) ExceptionStats() ExceptionStats {
	e := p.ex
	if e == nil {
		return ExceptionStats{}
	}
	return ExceptionStats{Host: e.host.Stats(), ToKernel: e.toKernel.Load(), FromKernel: e.fromKernel.Load(),
		WireOut: e.wireOut.Load(), RingDrops: e.ringDrops.Load(), TxDrops: e.txDrops.Load(), NoTap: e.noTap.Load()}
}

// SlowPath implements driver.SlowPather: the worker's frames go to its ring
// towards the exception path (freed and counted if it is full, or if the
// port has no exception path).
func (p *Port) SlowPath(worker int, q driver.Queue, frames []driver.Frame) {
	e := p.ex
	if e == nil || worker < 0 || worker >= len(e.in) {
		q.Free(frames)
		return
	}
	n := e.in[worker].Push(frames)
	if n < len(frames) {
		e.ringDrops.Add(uint64(len(frames) - n))
		q.Free(frames[n:])
	}
}

var _ driver.SlowPather = (*Port)(nil)
var _ driver.Steering = (*Port)(nil)

// SetSteering implements driver.Steering: a DPDK port receives everything
// anyway; the rules tell it which addresses are gvs's (VIPs and full-NAT
// local addresses), so that it answers ARP/ND and echo requests for them.
func (p *Port) SetSteering(rules []driver.SteerRule) error {
	var addrs []netip.Addr
	for _, r := range rules {
		if r.Kind == driver.SteerService || r.Kind == driver.SteerReplyTo {
			addrs = append(addrs, r.Addr)
		}
	}
	p.steerMu.Lock()
	p.steered = addrs
	p.steerMu.Unlock()
	if p.ex != nil {
		p.ex.host.SetAnswered(addrs)
	}
	return nil
}

func (p *Port) answered() []netip.Addr {
	p.steerMu.Lock()
	defer p.steerMu.Unlock()
	return p.steered
}

func (e *exception) stop() {
	e.once.Do(func() {
		close(e.stopc)
		<-e.done
		var fr [driver.BurstSize]driver.Frame
		for _, r := range e.in {
			for {
				n := r.Pop(fr[:])
				if n == 0 {
					break
				}
				e.p.ctl.Free(fr[:n])
			}
		}
		if e.tap != nil {
			e.tap.Close()
		}
		st := e.p.ExceptionStats()
		e.p.cfg.Logger.Info("dpdk exception path stopped", "port", e.p.cfg.Name,
			"to_kernel", st.ToKernel, "from_kernel", st.FromKernel, "wire_out", st.WireOut, "ring_drops", st.RingDrops,
			"tx_drops", st.TxDrops, "no_tap", st.NoTap, "arp_replies", st.Host.ARPRepliesOut, "na_sent", st.Host.NAOut,
			"echo_replies", st.Host.EchoReplies, "solicitations", st.Host.SolicitsOut, "resolved", st.Host.Resolved,
			"timeouts", st.Host.Timeouts, "mac_changes", st.Host.MACChanges, "not_for_us", st.Host.NotForUs)
	})
}

func (e *exception) run() {
	defer close(e.done)
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	var fr [driver.BurstSize]driver.Frame
	wire := make([]driver.Frame, 0, driver.BurstSize)
	kern := make([]driver.Frame, 0, driver.BurstSize)
	drop := make([]driver.Frame, 0, driver.BurstSize)
	ctl := e.p.ctl
	sleep := 10 * time.Microsecond
	var lastSolicit time.Time
	for {
		select {
		case <-e.stopc:
			return
		default:
		}
		now := time.Now()
		got := 0
		for _, r := range e.in {
			n := r.Pop(fr[:])
			got += n
			wire, kern, drop = wire[:0], kern[:0], drop[:0]
			for i := 0; i < n; i++ {
				f := fr[i]
				v, l := e.host.Input(f.Buf[f.Off:], f.Len, now)
				switch {
				case v == nokernel.Reply:
					f.Len = l
					wire = append(wire, f)
				case v == nokernel.Kernel && e.tapq != nil:
					kern = append(kern, f)
				case v == nokernel.Kernel:
					e.noTap.Add(1)
					drop = append(drop, f)
				default:
					drop = append(drop, f)
				}
			}
			e.send(ctl, wire, &e.wireOut)
			if len(kern) > 0 {
				e.send(e.tapq, kern, &e.toKernel)
			}
			if len(drop) > 0 {
				ctl.Free(drop)
			}
		}
		if e.tapq != nil {
			n, err := e.tapq.Receive(fr[:])
			if err == nil && n > 0 {
				got += n
				e.fromKernel.Add(uint64(n))
				e.send(ctl, fr[:n], &e.wireOut)
			}
		}
		if now.Sub(lastSolicit) >= time.Millisecond {
			lastSolicit = now
			got += e.solicit(ctl, now)
		}
		if got > 0 {
			sleep = 10 * time.Microsecond
			continue
		}
		time.Sleep(sleep)
		if sleep < time.Millisecond {
			sleep *= 2
		}
	}
}

// send transmits frames on q, freeing what it refuses.
func (e *exception) send(q *Queue, frames []driver.Frame, ctr *atomic.Uint64) {
	if len(frames) == 0 {
		return
	}
	n := q.tx(frames)
	ctr.Add(uint64(n))
	if n < len(frames) {
		e.txDrops.Add(uint64(len(frames) - n))
		q.Free(frames[n:])
	}
}

// solicit sends the due ARP requests and neighbour solicitations.
func (e *exception) solicit(ctl *Queue, now time.Time) int {
	var one [1]driver.Frame
	sent := 0
	for sent < driver.BurstSize {
		if ctl.Alloc(one[:]) != 1 {
			return sent
		}
		f := &one[0]
		n := e.host.Solicit(f.Buf[f.Off:], now)
		if n == 0 {
			ctl.Free(one[:])
			return sent
		}
		f.Len = n
		e.send(ctl, one[:], &e.wireOut)
		sent++
	}
	return sent
}
