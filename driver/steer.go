package driver

import (
	"fmt"
	"net/netip"
)

// Steering is implemented by ports that sit beside a kernel (AF_XDP) and
// must be told which packets are gvs's: everything else stays with the
// kernel, so ARP, SSH, BGP and VRRP keep working. The control plane calls
// SetSteering with the full rule set after every configuration change; the
// driver replaces its rules atomically as far as it can (packets in flight
// may see the old or the new set, never an empty one).
type Steering interface {
	SetSteering(rules []SteerRule) error
}

// SteerKind says which part of a packet a rule matches.
type SteerKind uint8

// Steering rule kinds.
const (
	// SteerService matches packets to a virtual service: destination
	// (Proto, Addr, Port); Port 0 matches every port and Proto 0 both TCP
	// and UDP. ICMP errors and non-first fragments to Addr match too.
	SteerService SteerKind = iota + 1
	// SteerReplyFrom matches nat replies: source (Proto, Addr, Port) of a
	// nat real.
	SteerReplyFrom
	// SteerReplyTo matches fullnat replies: destination Addr is one of
	// gvs's local addresses (any protocol and port).
	SteerReplyTo
	// SteerLocal names an address of the host itself: packets to it are
	// never nat replies (they answer the host's own connections to a
	// real, such as health checks) and stay with the kernel.
	SteerLocal
)

// SteerRule is one steering rule.
type SteerRule struct {
	Kind  SteerKind
	Proto uint8 // 6, 17, or 0 for both
	Addr  netip.Addr
	Port  uint16
}

func (r SteerRule) String() string {
	names := map[SteerKind]string{SteerService: "service", SteerReplyFrom: "reply-from", SteerReplyTo: "reply-to", SteerLocal: "local"}
	return fmt.Sprintf("%s proto %d %s", names[r.Kind], r.Proto, netip.AddrPortFrom(r.Addr, r.Port))
}
