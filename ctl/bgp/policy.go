// Package bgp announces gvs's VIPs to routers over BGP (gobgp/v4 as a
// library) so that several gvs nodes share a VIP through ECMP. A VIP is
// announced as a host route (/32 or /128) only while this node can serve
// it: the dataplane polls, every announcing service on the VIP has at
// least min_healthy healthy reals, the VIP's VRRP instance (if any) is
// master, and gvsd is not stopping. Policy (this file) is pure and
// tested; Speaker (speaker.go) talks BGP.
package bgp

import (
	"fmt"
	"net/netip"
	"slices"
	"time"

	"gvs/lb"
)

// Neighbor is one BGP peer (a router).
type Neighbor struct {
	Addr      netip.Addr
	AS        uint32
	Hold      time.Duration // 0: gobgp's default (90s)
	Keepalive time.Duration // 0: hold/3
	Password  string        // TCP MD5 (RFC 2385)
	Multihop  int           // eBGP multihop TTL (0: directly connected)
	LocalAddr netip.Addr    // optional source address
	Port      int           // 0: 179
}

// Attrs are optional path attributes.
type Attrs struct {
	Communities []uint32 // "65000:100" as 65000<<16|100
	MED         *uint32
	Prepend     int // extra copies of the local AS
}

// VIPPolicy is the announcement policy of one VIP: the services on it with
// announce = true and their min_healthy.
type VIPPolicy struct {
	VIP      netip.Addr
	Services []ServicePolicy
}

// ServicePolicy is one announcing service.
type ServicePolicy struct {
	Key        lb.ServiceKey
	MinHealthy int // at least 1
}

// Config is the validated [bgp] section.
type Config struct {
	LocalAS    uint32
	RouterID   netip.Addr
	ListenPort int // 0: do not listen (dial only)
	Neighbors  []Neighbor
	NextHop    netip.Addr    // optional; default: the session's local address
	Attrs      Attrs         // on every announcement
	Drain      Attrs         // added while drained (gvsctl bgp drain)
	Withdraw   time.Duration // how long a stopping gvsd keeps forwarding after withdrawing
	VIPs       []VIPPolicy
}

// Prefix is the host route of a VIP.
func Prefix(a netip.Addr) netip.Prefix { return netip.PrefixFrom(a, a.BitLen()) }

// Input is what the policy decides on.
type Input struct {
	Stopping   bool
	Polling    bool   // the dataplane's workers poll
	PollReason string // why not
	// Healthy returns how many reals of a service take new flows (up,
	// weight > 0, next hop resolved) and false if the service is unknown.
	Healthy func(lb.ServiceKey) (int, bool)
	// Backup returns the VRRP instance of a VIP that is not master ("" if
	// the VIP has no instance or its instance is master).
	Backup func(netip.Addr) string
}

// Decision is whether one VIP is announced, and why (not).
type Decision struct {
	Prefix   netip.Prefix
	Announce bool
	Reason   string
}

// Decide applies the policies to in. The order of the result follows
// policies.
func Decide(policies []VIPPolicy, in Input) []Decision {
	out := make([]Decision, 0, len(policies))
	for _, p := range policies {
		d := Decision{Prefix: Prefix(p.VIP)}
		switch {
		case in.Stopping:
			d.Reason = "gvsd is stopping"
		case !in.Polling:
			d.Reason = "dataplane not polling"
			if in.PollReason != "" {
				d.Reason += ": " + in.PollReason
			}
		case in.Backup != nil && in.Backup(p.VIP) != "":
			d.Reason = fmt.Sprintf("vrrp instance %s is not master", in.Backup(p.VIP))
		default:
			d.Announce, d.Reason = true, "healthy"
			for _, s := range p.Services {
				n, ok := in.Healthy(s.Key)
				if !ok {
					d.Announce, d.Reason = false, fmt.Sprintf("service %s not configured", s.Key)
					break
				}
				if n < s.MinHealthy {
					d.Announce, d.Reason = false, fmt.Sprintf("service %s has %d healthy reals, fewer than min_healthy %d", s.Key, n, s.MinHealthy)
					break
				}
			}
		}
		out = append(out, d)
	}
	return out
}

// Policies groups the services with announce = true by VIP, in the order
// of first appearance.
func Policies(svcs []ServicePolicy) []VIPPolicy {
	var out []VIPPolicy
	for _, s := range svcs {
		i := slices.IndexFunc(out, func(p VIPPolicy) bool { return p.VIP == s.Key.VIP })
		if i < 0 {
			out = append(out, VIPPolicy{VIP: s.Key.VIP})
			i = len(out) - 1
		}
		out[i].Services = append(out[i].Services, s)
	}
	return out
}
