package config

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"gvs/ctl/bgp"
	"gvs/lb"
)

// BGP is [bgp]: the VIPs of the services with announce = true are
// announced to the neighbours while this node can serve them (ctl/bgp).
type BGP struct {
	LocalAS    uint32        `toml:"local_as" json:"local_as"`
	RouterID   string        `toml:"router_id" json:"router_id"`
	ListenPort int           `toml:"listen_port" json:"listen_port,omitempty"` // 0: do not listen, only dial
	NextHop    string        `toml:"next_hop" json:"next_hop,omitempty"`       // default: the session's local address
	Withdraw   *Duration     `toml:"withdraw_delay" json:"withdraw_delay,omitempty"`
	Neighbors  []BGPNeighbor `toml:"neighbor" json:"neighbor,omitempty"`
	BGPAttrs
	// Drain is added to every announcement by `gvsctl bgp drain`.
	Drain *BGPAttrs `toml:"drain" json:"drain,omitempty"`
}

// BGPAttrs are optional path attributes.
type BGPAttrs struct {
	Communities []string `toml:"communities" json:"communities,omitempty"` // "65000:100"
	MED         *int64   `toml:"med" json:"med,omitempty"`
	Prepend     int      `toml:"prepend" json:"prepend,omitempty"` // extra copies of local_as in the AS path
}

// BGPNeighbor is one [[bgp.neighbor]].
type BGPNeighbor struct {
	Address   string   `toml:"address" json:"address"`
	AS        uint32   `toml:"as" json:"as"`
	Hold      Duration `toml:"hold" json:"hold,omitempty"`           // default 90s (gobgp); 0 or >= 3s
	Keepalive Duration `toml:"keepalive" json:"keepalive,omitempty"` // default hold/3
	Password  string   `toml:"password" json:"password,omitempty"`   // TCP MD5
	Multihop  int      `toml:"multihop" json:"multihop,omitempty"`   // eBGP multihop TTL
	LocalAddr string   `toml:"local_address" json:"local_address,omitempty"`
	Port      int      `toml:"port" json:"port,omitempty"` // default 179
}

// DefaultWithdrawDelay is how long a stopping gvsd keeps forwarding after
// it withdrew its routes (the routers' convergence).
const DefaultWithdrawDelay = time.Second

func (v *validator) bgpConfig(in *BGP, fsvcs []Service, svcs []lb.Service) *bgp.Config {
	var pols []bgp.ServicePolicy
	for i := range fsvcs {
		key := fmt.Sprintf("service[%d]", i)
		fs := &fsvcs[i]
		if !fs.Announce {
			if fs.MinHealthy != 0 {
				v.fail(key+".min_healthy", "only with announce = true")
			}
			continue
		}
		if in == nil {
			v.fail(key+".announce", "needs a [bgp] section")
			continue
		}
		mh := fs.MinHealthy
		if mh == 0 {
			mh = 1
		}
		if mh < 1 {
			v.fail(key+".min_healthy", "%d: at least 1", fs.MinHealthy)
			continue
		}
		vip, err := netip.ParseAddr(fs.VIP)
		proto, perr := lb.ParseProto(fs.Proto)
		if err != nil || perr != nil {
			continue // reported by service()
		}
		sk := lb.ServiceKey{Proto: proto, VIP: vip, Port: uint16(fs.Port)}
		for _, s := range svcs {
			if s.Key() == sk {
				if mh > len(s.Reals) {
					v.fail(key+".min_healthy", "%d: the service has only %d reals", mh, len(s.Reals))
				}
				pols = append(pols, bgp.ServicePolicy{Key: sk, MinHealthy: mh})
				break
			}
		}
	}
	if in == nil {
		return nil
	}
	const key = "bgp"
	n := len(v.errs)
	c := &bgp.Config{LocalAS: in.LocalAS, ListenPort: in.ListenPort, Withdraw: DefaultWithdrawDelay, VIPs: bgp.Policies(pols)}
	if c.LocalAS == 0 {
		v.fail(key+".local_as", "missing (1..4294967295)")
	}
	var err error
	if c.RouterID, err = netip.ParseAddr(in.RouterID); err != nil || !c.RouterID.Is4() {
		v.fail(key+".router_id", "want an IPv4 address, not %q", in.RouterID)
	}
	if c.ListenPort < 0 || c.ListenPort > 65535 {
		v.fail(key+".listen_port", "%d out of range 0..65535 (0: do not listen)", c.ListenPort)
	}
	if in.NextHop != "" {
		if c.NextHop, err = netip.ParseAddr(in.NextHop); err != nil {
			v.fail(key+".next_hop", "bad address %q", in.NextHop)
		}
	}
	if in.Withdraw != nil {
		c.Withdraw = in.Withdraw.Duration
		if c.Withdraw < 0 || c.Withdraw > time.Minute {
			v.fail(key+".withdraw_delay", "%v out of range 0..1m", c.Withdraw)
		}
	}
	c.Attrs = v.bgpAttrs(key, &in.BGPAttrs)
	if in.Drain != nil {
		c.Drain = v.bgpAttrs(key+".drain", in.Drain)
	}
	if len(in.Neighbors) == 0 {
		v.fail(key+".neighbor", "no [[bgp.neighbor]]")
	}
	seen := map[netip.Addr]bool{}
	for i, nb := range in.Neighbors {
		k := fmt.Sprintf("%s.neighbor[%d]", key, i)
		b := bgp.Neighbor{AS: nb.AS, Hold: nb.Hold.Duration, Keepalive: nb.Keepalive.Duration, Password: nb.Password, Multihop: nb.Multihop}
		if b.Addr, err = netip.ParseAddr(nb.Address); err != nil {
			v.fail(k+".address", "bad address %q", nb.Address)
		} else if seen[b.Addr] {
			v.fail(k+".address", "%v already a neighbor", b.Addr)
		}
		seen[b.Addr] = true
		if b.AS == 0 {
			v.fail(k+".as", "missing")
		}
		if b.Hold != 0 && (b.Hold < 3*time.Second || b.Hold > 65535*time.Second || b.Hold%time.Second != 0) {
			v.fail(k+".hold", "%v: 0 or whole seconds from 3s (RFC 4271)", b.Hold)
		}
		if b.Keepalive < 0 || b.Keepalive%time.Second != 0 || (b.Hold != 0 && b.Keepalive >= b.Hold) {
			v.fail(k+".keepalive", "%v: whole seconds, below hold", b.Keepalive)
		}
		b.Port = nb.Port
		if b.Port < 0 || b.Port > 65535 {
			v.fail(k+".port", "%d out of range 0..65535 (0: 179)", b.Port)
		}
		if b.Multihop < 0 || b.Multihop > 255 {
			v.fail(k+".multihop", "%d out of range 0..255", b.Multihop)
		}
		if nb.LocalAddr != "" {
			if b.LocalAddr, err = netip.ParseAddr(nb.LocalAddr); err != nil {
				v.fail(k+".local_address", "bad address %q", nb.LocalAddr)
			}
		}
		c.Neighbors = append(c.Neighbors, b)
	}
	if len(v.errs) != n {
		return nil
	}
	return c
}

func (v *validator) bgpAttrs(key string, in *BGPAttrs) bgp.Attrs {
	var a bgp.Attrs
	for i, s := range in.Communities {
		c, err := ParseCommunity(s)
		if err != nil {
			v.fail(fmt.Sprintf("%s.communities[%d]", key, i), "%v", err)
		}
		a.Communities = append(a.Communities, c)
	}
	if in.MED != nil {
		if *in.MED < 0 || *in.MED > 1<<32-1 {
			v.fail(key+".med", "%d out of range 0..4294967295", *in.MED)
		}
		m := uint32(*in.MED)
		a.MED = &m
	}
	if in.Prepend < 0 || in.Prepend > 16 {
		v.fail(key+".prepend", "%d out of range 0..16", in.Prepend)
	}
	a.Prepend = in.Prepend
	return a
}

// ParseCommunity parses a standard community "ASN:VALUE" (or a well-known
// name: no-export, no-advertise, no-export-subconfed, graceful-shutdown).
func ParseCommunity(s string) (uint32, error) {
	switch strings.ToLower(s) {
	case "no-export":
		return 0xFFFFFF01, nil
	case "no-advertise":
		return 0xFFFFFF02, nil
	case "no-export-subconfed":
		return 0xFFFFFF03, nil
	case "graceful-shutdown":
		return 0xFFFF0000, nil
	}
	hi, lo, ok := strings.Cut(s, ":")
	a, err1 := strconv.ParseUint(hi, 10, 16)
	b, err2 := strconv.ParseUint(lo, 10, 16)
	if !ok || err1 != nil || err2 != nil {
		return 0, fmt.Errorf("bad community %q: want ASN:VALUE with 16-bit numbers, or no-export, no-advertise, graceful-shutdown", s)
	}
	return uint32(a)<<16 | uint32(b), nil
}
