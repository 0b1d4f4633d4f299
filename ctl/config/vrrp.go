package config

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"gvs/ctl/vrrp"
	"gvs/lb"
)

// VRRPInstance is one [[vrrp]] table: a virtual router gvs runs with its
// peer (another gvs, or keepalived) so that the master owns the VIPs.
// Defaults follow RFC 5798 (preempt on, accept off) and keepalived
// (priority 100, 1s adverts, 3 gratuitous ARPs and 3 more a second later).
type VRRPInstance struct {
	Name         string    `toml:"name" json:"name"`
	Interface    string    `toml:"interface" json:"interface"`
	VRID         int       `toml:"vrid" json:"vrid"`
	Priority     int       `toml:"priority" json:"priority,omitempty"`     // 1..255 (default 100; 255: address owner)
	AdvertInt    Duration  `toml:"advert_int" json:"advert_int,omitempty"` // default 1s; v3: 10ms steps, v2: whole seconds
	Version      int       `toml:"version" json:"version,omitempty"`       // 3 (default) or 2
	Preempt      *bool     `toml:"preempt" json:"preempt,omitempty"`       // default true
	PreemptDelay Duration  `toml:"preempt_delay" json:"preempt_delay,omitempty"`
	Accept       bool      `toml:"accept" json:"accept,omitempty"` // the host accepts packets to the VIPs while master (default false)
	VIPs         []string  `toml:"vips" json:"vips"`               // "198.18.1.10" (a /32) or "198.18.1.10/24"
	UnicastSrc   string    `toml:"unicast_src" json:"unicast_src,omitempty"`
	UnicastPeers []string  `toml:"unicast_peers" json:"unicast_peers,omitempty"`
	AuthPass     string    `toml:"auth_pass" json:"auth_pass,omitempty"` // VRRPv2 simple password (<= 8 bytes)
	VirtualMAC   bool      `toml:"virtual_mac" json:"virtual_mac,omitempty"`
	GARPCount    *int      `toml:"garp_count" json:"garp_count,omitempty"`     // per VIP on becoming master (default 3)
	GARPDelay    *Duration `toml:"garp_delay" json:"garp_delay,omitempty"`     // second round after (default 1s; "0s": none)
	GARPRefresh  Duration  `toml:"garp_refresh" json:"garp_refresh,omitempty"` // periodic while master (default off)
	// Tracking: a failure puts the instance in fault, or with
	// track_weight < 0 lowers its priority by -track_weight per failure.
	TrackInterface []string `toml:"track_interface" json:"track_interface,omitempty"`
	TrackServices  []string `toml:"track_services" json:"track_services,omitempty"` // "tcp:VIP:PORT", or "all" (the services on the VIPs)
	TrackDataplane bool     `toml:"track_dataplane" json:"track_dataplane,omitempty"`
	TrackWeight    int      `toml:"track_weight" json:"track_weight,omitempty"`
	SyncGroup      string   `toml:"sync_group" json:"sync_group,omitempty"`
}

// vrrpInstances validates the [[vrrp]] tables; services are the validated
// services (track_services refers to them).
func (v *validator) vrrpInstances(in []VRRPInstance, services []lb.Service) []vrrp.Config {
	var out []vrrp.Config
	names := map[string]string{}
	type vk struct {
		ifname string
		v6     bool
		vrid   int
	}
	vrids := map[vk]string{}
	vipOwner := map[netip.Addr]string{}
	for i := range in {
		key := fmt.Sprintf("vrrp[%d]", i)
		c, ok := v.vrrpInstance(key, &in[i], services)
		if !ok {
			continue
		}
		if prev, dup := names[c.Name]; dup {
			v.fail(key+".name", "instance %q already defined at %s", c.Name, prev)
			continue
		}
		names[c.Name] = fmt.Sprintf("%s:%d", v.name, v.lines[key])
		k := vk{c.Interface, c.Is6(), int(c.VRID)}
		if prev, dup := vrids[k]; dup {
			v.fail(key+".vrid", "vrid %d on %s already used by instance %s", c.VRID, c.Interface, prev)
			continue
		}
		vrids[k] = c.Name
		dup := false
		for j, p := range c.VIPs {
			if prev, ok := vipOwner[p.Addr()]; ok {
				v.fail(fmt.Sprintf("%s.vips[%d]", key, j), "%v already belongs to instance %s", p.Addr(), prev)
				dup = true
			}
			vipOwner[p.Addr()] = c.Name
		}
		if dup {
			continue
		}
		out = append(out, c)
	}
	if err := vrrp.CheckConfigs(out); err != nil {
		v.fail("vrrp", "%v", err)
	}
	return out
}

func (v *validator) vrrpInstance(key string, in *VRRPInstance, services []lb.Service) (vrrp.Config, bool) {
	n := len(v.errs)
	c := vrrp.Config{
		Name: in.Name, Interface: in.Interface, Version: in.Version, Accept: in.Accept,
		AuthPass: in.AuthPass, VirtualMAC: in.VirtualMAC, SyncGroup: in.SyncGroup,
		PreemptDelay: in.PreemptDelay.Duration, GARPRefresh: in.GARPRefresh.Duration,
		TrackDataplane: in.TrackDataplane, TrackWeight: in.TrackWeight,
		Preempt: true, GARPCount: vrrp.DefaultGARPCount, GARPDelay: vrrp.DefaultGARPDelay,
	}
	if c.Name == "" {
		v.fail(key+".name", "missing instance name")
	}
	if c.Interface == "" {
		v.fail(key+".interface", "missing interface name")
	}
	if in.VRID < 1 || in.VRID > 255 {
		v.fail(key+".vrid", "%d out of range 1..255", in.VRID)
	}
	c.VRID = uint8(in.VRID)
	prio := in.Priority
	if prio == 0 {
		prio = vrrp.DefaultPriority
	}
	if prio < 1 || prio > 255 {
		v.fail(key+".priority", "%d out of range 1..255 (255: the address owner)", in.Priority)
	}
	c.Priority = uint8(prio)
	if c.Version == 0 {
		c.Version = 3
	}
	c.AdvertInt = in.AdvertInt.Duration
	if c.AdvertInt == 0 {
		c.AdvertInt = vrrp.DefaultAdvertInt
	}
	switch c.Version {
	case 3:
		if c.AdvertInt < vrrp.MinInterval3 || c.AdvertInt > vrrp.MaxInterval3 || c.AdvertInt%(10*time.Millisecond) != 0 {
			v.fail(key+".advert_int", "%v: VRRPv3 counts centiseconds: want a multiple of 10ms from 10ms to 40.95s", c.AdvertInt)
		}
		if c.AuthPass != "" {
			v.fail(key+".auth_pass", "authentication is VRRPv2 only (RFC 5798 removed it); set version = 2 or drop it")
		}
	case 2:
		if c.AdvertInt < vrrp.MinInterval2 || c.AdvertInt > vrrp.MaxInterval2 || c.AdvertInt%time.Second != 0 {
			v.fail(key+".advert_int", "%v: VRRPv2 counts seconds: want 1s..255s in whole seconds", c.AdvertInt)
		}
		if len(c.AuthPass) > 8 {
			v.fail(key+".auth_pass", "longer than 8 bytes (VRRPv2 carries 8)")
		}
	default:
		v.fail(key+".version", "%d: want 3 (RFC 5798) or 2 (RFC 3768)", c.Version)
	}
	if in.Preempt != nil {
		c.Preempt = *in.Preempt
	}
	if c.PreemptDelay > 1000*time.Second {
		v.fail(key+".preempt_delay", "%v: at most 1000s", c.PreemptDelay)
	}
	if in.GARPCount != nil {
		c.GARPCount = *in.GARPCount
		if c.GARPCount < 0 || c.GARPCount > 100 {
			v.fail(key+".garp_count", "%d out of range 0..100", c.GARPCount)
		}
	}
	if in.GARPDelay != nil {
		c.GARPDelay = in.GARPDelay.Duration
	}
	if c.GARPRefresh != 0 && c.GARPRefresh < 100*time.Millisecond {
		v.fail(key+".garp_refresh", "%v: want 100ms or more (or 0s: off)", c.GARPRefresh)
	}
	if c.TrackWeight > 0 || c.TrackWeight < -254 {
		v.fail(key+".track_weight", "%d: want -254..-1 (priority lowered per failure) or 0 (fault)", c.TrackWeight)
	}
	if len(in.VIPs) == 0 {
		v.fail(key+".vips", "at least one virtual address is needed")
	}
	fam := 0
	for j, s := range in.VIPs {
		p, err := parseVIP(s)
		if err != nil {
			v.fail(fmt.Sprintf("%s.vips[%d]", key, j), "%v", err)
			continue
		}
		f := 4
		if p.Addr().Is6() {
			f = 6
		}
		if fam == 0 {
			fam = f
		} else if f != fam {
			v.fail(fmt.Sprintf("%s.vips[%d]", key, j), "%v: every vip of an instance must be of one family (run one instance per family)", p.Addr())
			continue
		}
		c.VIPs = append(c.VIPs, p)
	}
	if len(in.VIPs) > 255 {
		v.fail(key+".vips", "%d addresses: at most 255 fit an advertisement", len(in.VIPs))
	}
	if fam == 6 && c.Version == 2 {
		v.fail(key+".version", "VRRPv2 is IPv4 only: use version = 3 for IPv6")
	}
	if in.UnicastSrc != "" {
		a, err := netip.ParseAddr(in.UnicastSrc)
		if err != nil {
			v.fail(key+".unicast_src", "bad address %q", in.UnicastSrc)
		} else if fam != 0 && a.Is6() != (fam == 6) {
			v.fail(key+".unicast_src", "%v is not of the vips' family", a)
		}
		c.UnicastSrc = a
	}
	for j, s := range in.UnicastPeers {
		a, err := netip.ParseAddr(s)
		if err != nil {
			v.fail(fmt.Sprintf("%s.unicast_peers[%d]", key, j), "bad address %q", s)
			continue
		}
		if fam != 0 && a.Is6() != (fam == 6) {
			v.fail(fmt.Sprintf("%s.unicast_peers[%d]", key, j), "%v is not of the vips' family", a)
			continue
		}
		c.UnicastPeers = append(c.UnicastPeers, a)
	}
	for j, s := range in.TrackServices {
		tkey := fmt.Sprintf("%s.track_services[%d]", key, j)
		if s == "all" {
			found := false
			for _, svc := range services {
				for _, p := range c.VIPs {
					if svc.VIP == p.Addr() {
						c.TrackServices = append(c.TrackServices, svc.Key())
						found = true
					}
				}
			}
			if !found {
				v.fail(tkey, "\"all\": no [[service]] has one of the instance's vips")
			}
			continue
		}
		k, err := parseServiceKey(s)
		if err != nil {
			v.fail(tkey, "%v", err)
			continue
		}
		found := false
		for _, svc := range services {
			found = found || svc.Key() == k
		}
		if !found {
			v.fail(tkey, "no [[service]] %s", k)
			continue
		}
		c.TrackServices = append(c.TrackServices, k)
	}
	for j, s := range in.TrackInterface {
		if s == "" {
			v.fail(fmt.Sprintf("%s.track_interface[%d]", key, j), "empty interface name")
		}
		c.TrackInterfaces = append(c.TrackInterfaces, s)
	}
	if len(v.errs) != n {
		return c, false
	}
	if err := c.Validate(); err != nil {
		v.fail(key, "%v", err)
		return c, false
	}
	return c, true
}

// parseVIP parses "ADDR" (a host prefix) or "ADDR/BITS".
func parseVIP(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return p, fmt.Errorf("bad address %q", s)
		}
		return netip.PrefixFrom(p.Addr().Unmap(), p.Bits()), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("bad address %q", s)
	}
	a = a.Unmap()
	return netip.PrefixFrom(a, a.BitLen()), nil
}

// parseServiceKey parses a service as gvsctl writes it: PROTO:VIP:PORT
// (tcp:198.18.0.10:80, udp:[2001:db8::1]:53, any:198.18.0.20:0).
func parseServiceKey(s string) (lb.ServiceKey, error) {
	proto, rest, ok := strings.Cut(s, ":")
	if !ok {
		return lb.ServiceKey{}, fmt.Errorf("bad service %q (want PROTO:VIP:PORT, e.g. tcp:198.18.0.10:80, or \"all\")", s)
	}
	p, err := lb.ParseProto(proto)
	if err != nil {
		return lb.ServiceKey{}, fmt.Errorf("bad service %q: %v", s, err)
	}
	ap, err := netip.ParseAddrPort(rest)
	if err != nil {
		// A bare IPv6 address with a port: the last colon separates.
		i := strings.LastIndex(rest, ":")
		if i < 0 {
			return lb.ServiceKey{}, fmt.Errorf("bad service %q (want PROTO:VIP:PORT)", s)
		}
		a, aerr := netip.ParseAddr(rest[:i])
		port, perr := strconv.ParseUint(rest[i+1:], 10, 16)
		if aerr != nil || perr != nil {
			return lb.ServiceKey{}, fmt.Errorf("bad service %q (want PROTO:VIP:PORT)", s)
		}
		ap = netip.AddrPortFrom(a, uint16(port))
	}
	return lb.ServiceKey{Proto: p, VIP: ap.Addr().Unmap(), Port: ap.Port()}, nil
}

// SessionSync is the [session_sync] table: while the named VRRP instance
// is master, this node streams its sessions to the peer; while it is
// backup, it installs the peer's (ctl/sessync).
type SessionSync struct {
	Listen   string   `toml:"listen" json:"listen"`               // "ADDR:PORT" this node receives on (UDP)
	Peer     string   `toml:"peer" json:"peer"`                   // "ADDR:PORT" of the other node
	VRRP     string   `toml:"vrrp" json:"vrrp"`                   // the instance whose master sends
	Interval Duration `toml:"interval" json:"interval,omitempty"` // batching delay (default 10ms)
	Refresh  Duration `toml:"refresh" json:"refresh,omitempty"`   // full resync period while master (default 60s; "0s": default)
	Ring     int      `toml:"ring" json:"ring,omitempty"`         // records per worker ring (default 65536)
}

// SyncSettings is a validated [session_sync].
type SyncSettings struct {
	Listen, Peer      netip.AddrPort
	VRRP              string
	Interval, Refresh time.Duration
	Ring              int
}

// sessionSync validates [session_sync] against the VRRP instances.
func (v *validator) sessionSync(in *SessionSync, insts []vrrp.Config) *SyncSettings {
	if in == nil {
		return nil
	}
	const key = "session_sync"
	n := len(v.errs)
	s := &SyncSettings{VRRP: in.VRRP, Interval: in.Interval.Duration, Refresh: in.Refresh.Duration, Ring: in.Ring}
	parse := func(field, val string) netip.AddrPort {
		ap, err := netip.ParseAddrPort(val)
		if err != nil || ap.Port() == 0 {
			v.fail(key+"."+field, "want ADDR:PORT (e.g. 198.18.1.1:8848), not %q", val)
		}
		return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	}
	s.Listen, s.Peer = parse("listen", in.Listen), parse("peer", in.Peer)
	if s.Listen.IsValid() && s.Peer.IsValid() && s.Listen.Addr().Is4() != s.Peer.Addr().Is4() {
		v.fail(key+".peer", "%v is not of listen's family", s.Peer)
	}
	found := false
	for _, c := range insts {
		found = found || c.Name == in.VRRP
	}
	if !found {
		v.fail(key+".vrrp", "no [[vrrp]] instance named %q (its master sends)", in.VRRP)
	}
	if s.Interval == 0 {
		s.Interval = 10 * time.Millisecond
	}
	if s.Interval < time.Millisecond || s.Interval > time.Second {
		v.fail(key+".interval", "%v out of range 1ms..1s", s.Interval)
	}
	if s.Refresh == 0 {
		s.Refresh = time.Minute
	}
	if s.Refresh < time.Second {
		v.fail(key+".refresh", "%v: at least 1s", s.Refresh)
	}
	if s.Ring == 0 {
		s.Ring = 1 << 16
	}
	if s.Ring < 1024 || s.Ring > 1<<22 || s.Ring&(s.Ring-1) != 0 {
		v.fail(key+".ring", "%d: want a power of two from 1024 to %d", s.Ring, 1<<22)
	}
	if len(v.errs) != n {
		return nil
	}
	return s
}
