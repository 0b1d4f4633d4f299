// Package vrrp is gvs's VRRP: the virtual router redundancy protocol of RFC
// 5798 (version 3, IPv4 and IPv6) with RFC 3768 (version 2, IPv4, simple
// password authentication as keepalived offers it) for older peers, so that
// two gvs nodes — or gvs and keepalived — form an active/standby pair whose
// master owns the virtual addresses.
//
// The package has three layers:
//
//   - Instance (fsm.go) is one virtual router's state machine, written
//     after RFC 5798 §6: Initialize, Backup, Master, plus keepalived's Fault
//     for failed tracking. It is deterministic: time is a parameter, and
//     every effect on the world goes through the Host interface.
//   - Router (router.go) holds the instances of a node: it checks received
//     packets (§7.1) and hands them to their instance, runs sync groups and
//     tracking, and counts every discarded packet by reason.
//   - Manager (manager.go) runs a Router on Linux: raw IP sockets for
//     protocol 112 joined to 224.0.0.18 / ff02::12 on the interface (or
//     unicast peers), the virtual addresses through netlink (with a finite
//     lifetime the master keeps renewing, so a gvsd that dies without
//     cleaning up loses them within seconds), an optional macvlan with the
//     virtual MAC, gratuitous ARP and unsolicited neighbour advertisements,
//     an nftables table for accept mode and for AF_PACKET hosts (nft.go),
//     and the owner callback through which the daemon steers the
//     instance's services only while master.
//
// Imports: gvs/lb (service keys for tracking).
package vrrp

import (
	"fmt"
	"net/netip"
	"time"

	"gvs/lb"
)

// State is the state of an instance (RFC 5798 §6.4, plus Fault).
type State uint8

// States. Fault is not in the RFC: it is keepalived's state of an instance
// whose tracking failed; it neither advertises nor owns the addresses.
const (
	Initialize State = iota
	Backup
	Master
	Fault
)

// String returns the state as gvsctl and the metrics show it: init,
// backup, master, fault.
func (s State) String() string {
	switch s {
	case Initialize:
		return "init"
	case Backup:
		return "backup"
	case Master:
		return "master"
	case Fault:
		return "fault"
	}
	return fmt.Sprintf("state(%d)", uint8(s))
}

// Defaults of an instance.
const (
	DefaultPriority  = 100
	DefaultAdvertInt = time.Second
	DefaultGARPCount = 3
	DefaultGARPDelay = time.Second
)

// Config is one VRRP instance (a virtual router on an interface). Use
// Validate, or ctl/config, to check it; the Manager refuses invalid ones.
type Config struct {
	Name      string // unique among the instances
	Interface string // where it advertises and adds the addresses
	VRID      uint8  // 1..255
	// Priority is 1..254 for a backup-capable router, 255 for the owner of
	// the addresses (RFC 5798 §5.2.4). Higher wins.
	Priority uint8
	// AdvertInt is the advertisement interval: a multiple of 10 ms from
	// 10 ms to 40.95 s (v3), whole seconds from 1 to 255 (v2).
	AdvertInt time.Duration
	Version   int // 3 (RFC 5798) or 2 (RFC 3768, IPv4 only)
	// Preempt lets a backup of higher priority take over from a master of
	// lower priority (RFC 5798 §6.1 Preempt_Mode); PreemptDelay holds the
	// takeover back, counted from the first lower-priority advertisement
	// seen after entering Backup (keepalived's preempt_delay).
	Preempt      bool
	PreemptDelay time.Duration
	// Accept lets the host itself accept packets to the virtual addresses
	// while master (RFC 5798 §6.1 Accept_Mode); when false gvs drops them
	// (nftables) except IPv6 neighbour discovery. Traffic of gvs's
	// services is the dataplane's, not the host's: it is never affected.
	Accept bool
	// VIPs are the virtual addresses, all of one family; the first is the
	// one other routers log. A bare address is a /32 or /128.
	VIPs []netip.Prefix
	// UnicastSrc is the source of advertisements (default: the first
	// address of the interface; for IPv6 its link-local address).
	UnicastSrc netip.Addr
	// UnicastPeers, when set, receive the advertisements instead of the
	// multicast group, and are the only routers listened to.
	UnicastPeers []netip.Addr
	// AuthPass is VRRPv2's simple password (at most 8 bytes, as
	// keepalived's auth_pass); empty: no authentication.
	AuthPass string
	// VirtualMAC makes the master own 00:00:5e:00:01:VRID (IPv6:
	// 00:00:5e:00:02:VRID) on a macvlan over Interface, instead of using
	// the interface's own MAC.
	VirtualMAC bool
	// GARPCount gratuitous ARPs (IPv4) or unsolicited neighbour
	// advertisements (IPv6) are sent per address on becoming master, and
	// again GARPDelay later (0: no second round); GARPRefresh, if set,
	// repeats one per address at that period while master.
	GARPCount   int
	GARPDelay   time.Duration
	GARPRefresh time.Duration
	// Tracking: the instance goes to Fault when one of these fails (or,
	// with TrackWeight < 0, lowers its priority by -TrackWeight per
	// failure). The interface itself is always tracked (down: Fault).
	TrackInterfaces []string
	TrackServices   []lb.ServiceKey // a service with no healthy real fails
	TrackDataplane  bool            // the poll-mode workers stop polling: fails
	TrackWeight     int
	// SyncGroup names a set of instances that change state together.
	SyncGroup string
}

// Is6 reports whether the instance is an IPv6 virtual router.
func (c *Config) Is6() bool { return len(c.VIPs) > 0 && c.VIPs[0].Addr().Is6() }

// Unicast reports whether advertisements go to peers instead of the group.
func (c *Config) Unicast() bool { return len(c.UnicastPeers) > 0 }

// Group is the multicast group of the instance's family.
func (c *Config) Group() netip.Addr {
	if c.Is6() {
		return Group6
	}
	return Group4
}

// VirtualMACAddr is the virtual router MAC address of RFC 5798 §7.3.
func (c *Config) VirtualMACAddr() [6]byte {
	if c.Is6() {
		return [6]byte{0x00, 0x00, 0x5e, 0x00, 0x02, c.VRID}
	}
	return [6]byte{0x00, 0x00, 0x5e, 0x00, 0x01, c.VRID}
}

// Addrs returns the virtual addresses without their prefix lengths.
func (c *Config) Addrs() []netip.Addr {
	out := make([]netip.Addr, len(c.VIPs))
	for i, p := range c.VIPs {
		out[i] = p.Addr()
	}
	return out
}

// Validate checks c, naming the first problem.
func (c *Config) Validate() error {
	if c.Name == "" {
		return fmt.Errorf("vrrp instance without a name")
	}
	if c.Interface == "" {
		return fmt.Errorf("vrrp %s: no interface", c.Name)
	}
	if c.VRID == 0 {
		return fmt.Errorf("vrrp %s: vrid must be 1..255", c.Name)
	}
	if c.Priority == 0 {
		return fmt.Errorf("vrrp %s: priority must be 1..255", c.Name)
	}
	switch c.Version {
	case 3:
		if c.AdvertInt < MinInterval3 || c.AdvertInt > MaxInterval3 || c.AdvertInt%(10*time.Millisecond) != 0 {
			return fmt.Errorf("vrrp %s: advert_int %v: VRRPv3 wants a multiple of 10ms from 10ms to 40.95s", c.Name, c.AdvertInt)
		}
		if c.AuthPass != "" {
			return fmt.Errorf("vrrp %s: auth_pass is VRRPv2 only (RFC 5798 removed authentication)", c.Name)
		}
	case 2:
		if c.AdvertInt < MinInterval2 || c.AdvertInt > MaxInterval2 || c.AdvertInt%time.Second != 0 {
			return fmt.Errorf("vrrp %s: advert_int %v: VRRPv2 wants whole seconds from 1s to 255s", c.Name, c.AdvertInt)
		}
		if len(c.AuthPass) > authLen {
			return fmt.Errorf("vrrp %s: auth_pass longer than %d bytes", c.Name, authLen)
		}
	default:
		return fmt.Errorf("vrrp %s: version %d (want 2 or 3)", c.Name, c.Version)
	}
	if len(c.VIPs) == 0 {
		return fmt.Errorf("vrrp %s: no vips", c.Name)
	}
	if len(c.VIPs) > 255 {
		return fmt.Errorf("vrrp %s: %d vips, at most 255 fit an advertisement", c.Name, len(c.VIPs))
	}
	is6 := c.Is6()
	for _, p := range c.VIPs {
		if !p.IsValid() || p.Addr().Is6() != is6 || p.Addr().Is4In6() {
			return fmt.Errorf("vrrp %s: vip %v: every vip must be of one family", c.Name, p)
		}
	}
	if is6 && c.Version == 2 {
		return fmt.Errorf("vrrp %s: VRRPv2 is IPv4 only; use version 3 for IPv6", c.Name)
	}
	if c.UnicastSrc.IsValid() && c.UnicastSrc.Is6() != is6 {
		return fmt.Errorf("vrrp %s: unicast_src %v is not of the vips' family", c.Name, c.UnicastSrc)
	}
	for _, p := range c.UnicastPeers {
		if p.Is6() != is6 {
			return fmt.Errorf("vrrp %s: unicast peer %v is not of the vips' family", c.Name, p)
		}
	}
	if c.GARPCount < 0 || c.PreemptDelay < 0 || c.GARPDelay < 0 || c.GARPRefresh < 0 {
		return fmt.Errorf("vrrp %s: negative garp or preempt setting", c.Name)
	}
	if c.TrackWeight > 0 || c.TrackWeight < -254 {
		return fmt.Errorf("vrrp %s: track_weight %d (want -254..0)", c.Name, c.TrackWeight)
	}
	return nil
}

// Status is an instance's state as gvsctl vrrp and the metrics show it.
type Status struct {
	Name      string
	Interface string
	VRID      uint8
	Version   int
	State     State
	Since     time.Time // of the last transition
	Reason    string    // cause of the last transition
	// Priority is what the instance advertises (after tracking);
	// BasePriority the configured one.
	Priority, BasePriority uint8
	// Master is the current master's primary address: ours while master,
	// the last advertiser's while backup; invalid when unknown.
	Master         netip.Addr
	MasterPriority uint8
	// AdvertInt is ours; MasterAdvertInt the master's (RFC 5798
	// Master_Adver_Interval), which times the backup.
	AdvertInt, MasterAdvertInt time.Duration
	MasterDownInterval         time.Duration
	VIPs                       []netip.Prefix
	SyncGroup                  string
	Faults                     []string // failing trackers
	Transitions                uint64
	Counters                   map[string]uint64
	Discards                   map[string]uint64 // by Discard reason
}

// Counter names of Status.Counters.
const (
	CountAdvertsSent   = "adverts_sent"
	CountAdvertsRcvd   = "adverts_received"
	CountPrio0Sent     = "priority_zero_sent"
	CountPrio0Rcvd     = "priority_zero_received"
	CountBecameMaster  = "became_master"
	CountAnnounceSent  = "garp_sent" // gratuitous ARPs and unsolicited NAs
	CountSendErrors    = "send_errors"
	CountLowerPriority = "lower_priority_received" // ignored: a master of lower priority, or ours is higher (RFC 5798 §6.4.2, §6.4.3)
	CountAddrMismatch  = "addr_list_mismatch"      // v3: logged, not discarded (RFC 5798 §7.1)
	CountHostErrors    = "host_errors"             // address, macvlan, nftables or owner-callback failures
)
