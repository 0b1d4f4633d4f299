//go:build dpdk

package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"time"

	"gvs/ctl/config"
	"gvs/ctl/daemon"
	"gvs/ctl/nexthop"
	"gvs/driver"
	"gvs/driver/dpdk"
	"gvs/lb"
)

// checkBuild refuses configurations this build cannot run (none: this gvsd
// has DPDK).
func checkBuild(*config.Config) error { return nil }

// shutdownDrivers stops EAL (after the ports are closed) and removes its
// runtime files.
func shutdownDrivers() {
	if dpdk.Initialized() {
		_ = dpdk.Cleanup()
	}
}

// dpdkPorts opens the DPDK ports of a configuration (EAL first, once) and
// resolves their next hops with gvs's own ARP/ND (dpdk.Port.Host).
type dpdkPorts struct {
	cfg   *config.Config
	mu    sync.Mutex
	eal   bool
	ports []*dpdk.Port // in [[port]] order: the gvs port index
}

func newDPDKOpener(cfg *config.Config) (daemon.Opener, daemon.HopResolver) {
	d := &dpdkPorts{cfg: cfg}
	return d.open, d
}

func (d *dpdkPorts) open(p config.Port, queues int, log *slog.Logger) (driver.Port, error) {
	if p.Driver != "dpdk" {
		return nil, fmt.Errorf("port %s: driver %q next to DPDK ports", p.Name, p.Driver)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.initEAL(queues, log); err != nil {
		return nil, err
	}
	c := dpdk.Config{Name: p.Name, Device: deviceOf(p), Queues: queues, RxDesc: p.RingSize, TxDesc: p.RingSize,
		MTU: p.MTU, Promiscuous: p.Promiscuous, Logger: log}
	if p.MAC != "" {
		c.MAC, _ = net.ParseMAC(p.MAC)
	}
	port, err := dpdk.Open(c)
	if err != nil {
		return nil, err
	}
	ex := dpdk.ExceptionConfig{Workers: queues}
	for _, a := range p.Addresses {
		ex.Addrs = append(ex.Addrs, netip.MustParsePrefix(a)) // validated by config
	}
	for _, g := range p.Gateways {
		ex.Gateways = append(ex.Gateways, netip.MustParseAddr(g))
	}
	if p.Exception != "none" {
		ex.Tap = tapName(p)
	}
	if err := port.EnableException(ex); err != nil {
		port.Close()
		return nil, fmt.Errorf("port %s: %w", p.Name, err)
	}
	d.ports = append(d.ports, port)
	return port, nil
}

// deviceOf is the DPDK device of a port: as configured, else net_af_packet
// on the interface of the port's name (a laptop, a VM, a veth).
func deviceOf(p config.Port) string {
	if p.Device != "" {
		return p.Device
	}
	return fmt.Sprintf("net_af_packet_%s,iface=%s", alnum(p.Name), p.Name)
}

// tapName is the exception TAP of a port: as configured, else gvs-<name>.
func tapName(p config.Port) string {
	if p.Tap != "" {
		return p.Tap
	}
	n := "gvs-" + p.Name
	if len(n) > 15 {
		n = n[:15]
	}
	return n
}

func alnum(s string) string {
	return strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' {
			return r
		}
		return '_'
	}, s)
}

// isPCI tells a PCI address (0000:01:00.0, 01:00.0) from a vdev spec.
func isPCI(dev string) bool {
	name, _, _ := strings.Cut(dev, ",")
	return strings.Count(name, ":") >= 1 && strings.Contains(name, ".") && !strings.HasPrefix(name, "net_")
}

// initEAL starts EAL with [global.dpdk], once. The PCI devices the ports
// name join the allow list; without any, EAL gets --no-pci.
func (d *dpdkPorts) initEAL(queues int, log *slog.Logger) error {
	if d.eal {
		return nil
	}
	var g config.DPDK
	if d.cfg.Global.DPDK != nil {
		g = *d.cfg.Global.DPDK
	}
	ec := dpdk.EALConfig{Lcores: g.Lcores, Memory: g.Memory, MemoryMB: g.MemoryMB, FilePrefix: g.FilePrefix,
		Allow: append([]string(nil), g.Allow...), Vdevs: g.Vdevs, LogLevel: g.LogLevel, Args: g.Args, Mbufs: g.Mbufs}
	for _, p := range d.cfg.Ports {
		if dev := deviceOf(p); isPCI(dev) {
			name, _, _ := strings.Cut(dev, ",")
			found := false
			for _, a := range ec.Allow {
				found = found || strings.HasPrefix(a, name)
			}
			if !found {
				ec.Allow = append(ec.Allow, dev)
			}
		}
	}
	if ec.Mbufs == 0 {
		ec.Mbufs = mbufsFor(d.cfg, queues)
	}
	log.Info("starting DPDK EAL", "version", dpdk.Version(), "args", strings.Join(ec.EALArgs(), " "), "mbufs_per_socket", ec.Mbufs)
	if err := dpdk.Init(ec); err != nil {
		return err
	}
	d.eal = true
	return nil
}

// mbufsFor sizes each socket's mbuf pool: every descriptor of every queue,
// the exception TAP and rings, the lcore caches, and room for bursts in
// flight; at least 16383, one less than a power of two (the mempool's best
// size).
func mbufsFor(cfg *config.Config, workers int) int {
	n := 4096
	for _, p := range cfg.Ports {
		r := p.RingSize
		if r == 0 {
			r = 1024
		}
		n += (2*workers+3)*r + 2*512 + workers*1024 + 256*(workers+2)
	}
	size := 16383
	for size < n {
		size = size*2 + 1
	}
	return size
}

// Resolve implements daemon.HopResolver: the next hop of each real is
// itself when a port's addresses make it on-link, else that port's gateway
// of its family; its Ethernet address comes from the port's own neighbour
// table (ARP/ND sent by gvs, with timeouts and retries). Unknown
// neighbours are asked for now: a later call, or the Watch signal, finds
// them.
func (d *dpdkPorts) Resolve(addrs []netip.Addr) (map[netip.Addr]lb.NextHop, []nexthop.Problem) {
	d.mu.Lock()
	ports := append([]*dpdk.Port(nil), d.ports...)
	d.mu.Unlock()
	hops := map[netip.Addr]lb.NextHop{}
	var probs []nexthop.Problem
	now := time.Now()
	keep := make([]map[netip.Addr]bool, len(ports)) // next hops in use, per port
	for i := range keep {
		keep[i] = map[netip.Addr]bool{}
	}
	defer func() {
		// Neighbours no real needs any more are not confirmed forever.
		for i, p := range ports {
			if h := p.Host(); h != nil {
				h.Forget(keep[i])
			}
		}
	}()
	for _, a := range addrs {
		if _, done := hops[a]; done {
			continue
		}
		found := false
		for pi, p := range ports {
			h := p.Host()
			if h == nil {
				continue
			}
			nh, ok := h.NextHop(a)
			if !ok {
				continue
			}
			found = true
			keep[pi][nh] = true
			mac, st := h.Neighbour(nh, now)
			if st.Usable() {
				hops[a] = lb.NextHop{MAC: mac, Port: uint16(pi), OK: true}
			} else {
				probs = append(probs, nexthop.Problem{Addr: a, Reason: fmt.Sprintf("next hop %s on %s: %s after %d ARP/ND solicitations", nh, p.Name(), st, h.Tries(nh))})
			}
			break
		}
		if !found {
			probs = append(probs, nexthop.Problem{Addr: a, Reason: "not on-link on any DPDK port (port addresses) and no gateway of its family (port gateways)"})
		}
	}
	return hops, probs
}

// Watch implements daemon.HopWatcher: a neighbour learnt, changed or lost
// on any port makes the daemon resolve again.
func (d *dpdkPorts) Watch(ctx context.Context, changed func()) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, p := range d.ports {
		h := p.Host()
		if h == nil {
			continue
		}
		go func() {
			for {
				select {
				case <-ctx.Done():
					return
				case <-h.Changed():
					changed()
				}
			}
		}()
	}
}
