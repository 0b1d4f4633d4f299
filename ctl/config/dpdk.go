package config

import (
	"fmt"
	"net"
	"net/netip"
	"strings"
)

// Validation of the DPDK settings: [global.dpdk] and the dpdk keys of
// [[port]]. The config package knows no DPDK; whether this gvsd was built
// with it (build tag dpdk) is checked when the port is opened.

// dpdkPort checks the dpdk-only keys of a port.
func (v *validator) dpdkPort(key string, p *Port) {
	dpdkOnly := p.Device != "" || p.MAC != "" || p.MTU != 0 || p.Promiscuous || len(p.Addresses) > 0 ||
		len(p.Gateways) > 0 || p.Exception != "" || p.Tap != ""
	if p.Driver != "dpdk" {
		if dpdkOnly {
			v.fail(key, "device, mac, mtu, promiscuous, addresses, gateways, exception and tap are for driver = \"dpdk\" only")
		}
		return
	}
	if p.MAC != "" {
		if m, err := net.ParseMAC(p.MAC); err != nil || len(m) != 6 {
			v.fail(key+".mac", "bad Ethernet address %q", p.MAC)
		}
	}
	if p.MTU != 0 && (p.MTU < 68 || p.MTU > 9600) {
		v.fail(key+".mtu", "%d out of range 68..9600", p.MTU)
	}
	for i, a := range p.Addresses {
		if _, err := netip.ParsePrefix(a); err != nil {
			v.fail(fmt.Sprintf("%s.addresses[%d]", key, i), "want an address with its prefix length (198.18.1.1/24), not %q", a)
		}
	}
	fams := map[bool]bool{}
	for i, g := range p.Gateways {
		a, err := netip.ParseAddr(g)
		if err != nil {
			v.fail(fmt.Sprintf("%s.gateways[%d]", key, i), "bad address %q", g)
			continue
		}
		if fams[a.Is4()] {
			v.fail(fmt.Sprintf("%s.gateways[%d]", key, i), "one gateway per address family")
		}
		fams[a.Is4()] = true
	}
	switch p.Exception {
	case "", "tap", "none":
	default:
		v.fail(key+".exception", "want tap or none, not %q", p.Exception)
	}
	if p.Tap != "" && (len(p.Tap) > 15 || strings.ContainsAny(p.Tap, "/ ,=")) {
		v.fail(key+".tap", "bad interface name %q (at most 15 characters, no '/', ',', '=' or spaces)", p.Tap)
	}
	if p.FrameSz != 0 || p.Frames != 0 || p.Mode != "" || p.ZeroCopy != "" {
		v.fail(key, "frames, frame_size, mode and zerocopy are not dpdk keys (mbufs are sized in [global.dpdk])")
	}
}

// dpdkGlobal checks [global.dpdk] and that DPDK ports are not mixed with
// kernel-driver ports (gvs resolves the next hops of DPDK ports itself and
// those of the others through the kernel: one process does one or the
// other).
func (v *validator) dpdkGlobal(cfg *Config) {
	n := 0
	for _, p := range cfg.Ports {
		if p.Driver == "dpdk" {
			n++
		}
	}
	if n > 0 && n < len(cfg.Ports) {
		v.fail("port", "driver = \"dpdk\" cannot be mixed with kernel drivers (afxdp, afpacket, auto) in one gvsd")
	}
	if cfg.Global.DPDK == nil {
		return
	}
	d := *cfg.Global.DPDK
	switch d.Memory {
	case "", "no-huge", "hugepages", "in-memory":
	default:
		v.fail("global.dpdk.memory", "want no-huge, hugepages or in-memory, not %q", d.Memory)
	}
	if d.MemoryMB < 0 || d.MemoryMB > 1<<20 {
		v.fail("global.dpdk.memory_mb", "%d out of range", d.MemoryMB)
	}
	if d.Mbufs < 0 || d.Mbufs > 1<<26 {
		v.fail("global.dpdk.mbufs", "%d out of range", d.Mbufs)
	}
	if d.Memory == "in-memory" && d.FilePrefix != "" {
		v.fail("global.dpdk.file_prefix", "in-memory mode keeps no files: no prefix")
	}
	if n == 0 && (d.Lcores != "" || d.Memory != "" || d.MemoryMB != 0 || d.FilePrefix != "" || len(d.Allow) > 0 ||
		len(d.Vdevs) > 0 || d.Mbufs != 0 || d.LogLevel != "" || len(d.Args) > 0) {
		v.fail("global.dpdk", "set, but no [[port]] has driver = \"dpdk\"")
	}
}
