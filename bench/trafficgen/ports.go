package trafficgen

import (
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"gvs/driver"
	"gvs/driver/afpacket"
	"gvs/driver/afxdp"
	"gvs/internal/namedns"
)

// ErrNotRoot is returned when a kernel driver is asked for without root.
var ErrNotRoot = errors.New("the afxdp and afpacket drivers need root (CAP_NET_RAW, CAP_NET_ADMIN, CAP_BPF)")

func init() {
	openers[DriverAFPacket] = func(iface string, sink bool) (driver.Port, error) {
		if !sink {
			return afpacket.Open(afpacket.Config{Interface: iface, TxFrames: 4096})
		}
		// A 1 ms block timeout (the kernel's granularity) bounds the
		// latency the TPACKET_V3 ring adds at low rates. A block is
		// handed over after that long however few packets it holds, so
		// the ring lasts BlockCount ms when the sink is descheduled
		// (a loaded machine): many small blocks, 32 MiB in all.
		return afpacket.Open(afpacket.Config{Interface: iface, BlockTimeout: time.Millisecond,
			BlockSize: 256 << 10, BlockCount: 128, PoolFrames: 8192})
	}
	openers[DriverAFXDP] = func(iface string, sink bool) (driver.Port, error) {
		if !sink {
			return afxdp.Open(afxdp.Config{Interface: iface, TxSize: 2048, CompSize: 2048, Frames: 4096, Logger: slog.Default()})
		}
		// A sink binds every rx queue of the device (up to 16): a
		// packet arriving on a queue without a socket goes to the
		// kernel and would count as lost. A veth made without
		// numrxqueues has one per CPU.
		q := 1
		if l, err := netlink.LinkByName(iface); err == nil {
			q = min(max(1, min(l.Attrs().NumRxQueues, l.Attrs().NumTxQueues)), 16)
		}
		// Rings of 4096 ride out a few ms of the sink being descheduled
		// at a few hundred kpps.
		cfg := afxdp.Config{Interface: iface, Queues: q, Frames: 8192 * q, RxSize: 4096, FillSize: 4096, Logger: slog.Default()}
		p, err := afxdp.Open(cfg)
		if err != nil && q > 1 {
			// Some devices (veth) announce more queues than a socket
			// can bind to; one queue then.
			slog.Warn("afxdp sink: binding all rx queues failed, binding queue 0 only: packets on other queues reach the kernel, not the sink",
				"interface", iface, "queues", q, "err", err)
			cfg.Queues, cfg.Frames = 1, 8192
			p, err = afxdp.Open(cfg)
		}
		return p, err
	}
}

// inNetns runs fn on an OS thread switched into the named network
// namespace (name "" : the caller's). Sockets, XDP links and netlink
// handles fn creates stay in that namespace and may be used from any
// thread afterwards.
func inNetns(name string, fn func() error) error {
	if name == "" {
		return fn()
	}
	h, err := netns.GetFromName(name)
	if err != nil {
		return fmt.Errorf("network namespace %q: %w (create it with ip netns add)", name, err)
	}
	defer h.Close()
	return namedns.Do(h, name, fn)
}

// openPort opens iface in namespace ns with driver drv, as a sink
// (receive only) or to send.
func openPort(drv, ns, iface string, sink bool) (driver.Port, error) {
	open, ok := openers[drv]
	if !ok {
		return nil, fmt.Errorf("driver %q not in this build", drv)
	}
	if os.Geteuid() != 0 && drv != DriverDPDK {
		return nil, fmt.Errorf("open %s with %s: %w", iface, drv, ErrNotRoot)
	}
	var p driver.Port
	err := inNetns(ns, func() (err error) {
		p, err = open(iface, sink)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("open %s in netns %q with %s: %w", iface, ns, drv, err)
	}
	return p, nil
}

// steerSink makes an afxdp sink take every packet addressed to one of
// addrs or to an address of its interface, whatever the protocol (TCP,
// UDP, IPIP, ...): the driver's "reply-to" rule matches on the destination
// address alone. Other packets (ARP, ND) stay with the kernel.
func steerSink(p driver.Port, ns, iface string, addrs []netip.Addr) error {
	st, ok := p.(driver.Steering)
	if !ok {
		return nil
	}
	all := append([]netip.Addr(nil), addrs...)
	err := inNetns(ns, func() error {
		l, err := netlink.LinkByName(iface)
		if err != nil {
			return err
		}
		as, err := netlink.AddrList(l, unix.AF_UNSPEC)
		if err != nil {
			return err
		}
		for _, a := range as {
			if ip, ok := netip.AddrFromSlice(a.IP); ok {
				all = append(all, ip.Unmap())
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("addresses of sink %s in netns %q: %w", iface, ns, err)
	}
	var rules []driver.SteerRule
	seen := map[netip.Addr]bool{}
	for _, a := range all {
		if a.IsValid() && !a.IsLinkLocalUnicast() && !seen[a] {
			seen[a] = true
			rules = append(rules, driver.SteerRule{Kind: driver.SteerReplyTo, Addr: a})
		}
	}
	if err := st.SetSteering(rules); err != nil {
		return fmt.Errorf("steer sink %s: %w", iface, err)
	}
	return nil
}
