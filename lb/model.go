// Package lb holds the load-balancing model of gvs: virtual services and their
// real servers, the schedulers (every IPVS scheduler plus Maglev), the
// immutable configuration snapshot the workers read once per burst, and the
// per-worker session tables.
//
// lb owns no goroutines and does no I/O. The control plane builds snapshots
// with a Balancer; pmd workers read them and own one session table and one
// WorkerSched each. lb imports nothing of gvs.
package lb

import (
	"fmt"
	"net/netip"
	"strings"
	"time"
)

// Proto is the transport protocol of a virtual service.
type Proto uint8

// IANA protocol numbers; ProtoAny matches TCP and UDP.
const (
	ProtoAny Proto = 0
	ProtoTCP Proto = 6
	ProtoUDP Proto = 17
)

func (p Proto) String() string {
	switch p {
	case ProtoAny:
		return "any"
	case ProtoTCP:
		return "tcp"
	case ProtoUDP:
		return "udp"
	}
	return fmt.Sprintf("proto(%d)", uint8(p))
}

// ParseProto parses "tcp", "udp" or "any".
func ParseProto(s string) (Proto, error) {
	switch strings.ToLower(s) {
	case "tcp":
		return ProtoTCP, nil
	case "udp":
		return ProtoUDP, nil
	case "any", "":
		return ProtoAny, nil
	}
	return 0, fmt.Errorf("unknown protocol %q (want tcp, udp or any)", s)
}

// Method is a forwarding method: how a packet is rewritten for its real.
type Method uint8

// Forwarding methods. MethodDefault on a real means "the service's method".
const (
	MethodDefault Method = iota
	MethodNAT            // DNAT to the real; replies come back through gvs
	MethodFullNAT        // DNAT + SNAT to a local address and port of gvs
	MethodDR             // L2 DSR: destination MAC rewrite only
	MethodL3DSR          // L3 DSR: destination IP rewrite + DSCP mark
	MethodTunnel         // IPIP (v4) / IPv6-in-IPv6 (v6) encapsulation
)

var methodNames = [...]string{"default", "nat", "fullnat", "dr", "l3dsr", "tunnel"}

func (m Method) String() string {
	if int(m) < len(methodNames) {
		return methodNames[m]
	}
	return fmt.Sprintf("method(%d)", uint8(m))
}

// ParseMethod parses a method name as written in configs (also the ipvsadm
// words "masq", "route", "gatewaying", "ipip").
func ParseMethod(s string) (Method, error) {
	switch strings.ToLower(s) {
	case "nat", "masq", "masquerading":
		return MethodNAT, nil
	case "fullnat", "snat":
		return MethodFullNAT, nil
	case "dr", "route", "gatewaying", "l2dsr":
		return MethodDR, nil
	case "l3dsr":
		return MethodL3DSR, nil
	case "tunnel", "ipip", "tun":
		return MethodTunnel, nil
	}
	return 0, fmt.Errorf("unknown forwarding method %q (want nat, fullnat, dr, l3dsr or tunnel)", s)
}

// RealState is the administrative/health state of a real server.
type RealState uint8

// Real server states. Drain keeps established sessions and takes no new ones
// (the same as weight 0); Down also takes no new ones, and its sessions are
// handled per the service's DownPolicy.
const (
	RealUp RealState = iota
	RealDrain
	RealDown
)

func (s RealState) String() string {
	switch s {
	case RealUp:
		return "up"
	case RealDrain:
		return "drain"
	case RealDown:
		return "down"
	}
	return fmt.Sprintf("state(%d)", uint8(s))
}

// ServiceFlags are the per-service options of IPVS (-b flags) and gvs.
type ServiceFlags uint16

// Service flags.
const (
	// FlagHashPort makes sh and mh hash the source port as well as the
	// source address (IPVS sh-port / mh-port).
	FlagHashPort ServiceFlags = 1 << iota
	// FlagFallback makes sh and mh skip reals with weight 0 / not up
	// instead of failing (IPVS sh-fallback / mh-fallback).
	FlagFallback
	// FlagOnePacket schedules every UDP datagram anew (IPVS -o): no session.
	FlagOnePacket
)

// RemovePolicy says what happens to the sessions of a real that is removed
// from the configuration (or goes down).
type RemovePolicy uint8

// Remove policies.
const (
	// RemoveDrain keeps the real's established sessions until they expire;
	// it takes no new ones.
	RemoveDrain RemovePolicy = iota
	// RemoveDrop forgets the real at once: its sessions are rescheduled on
	// their next packet (IPVS expire_nodest_conn).
	RemoveDrop
)

// Real is the configuration of one real server of a service.
type Real struct {
	Addr   netip.Addr
	Port   uint16 // 0: the service port (or the packet's port for port-0 services)
	Weight int    // 0..MaxWeight; 0 drains
	Method Method // MethodDefault: the service's method
	State  RealState
	// Tunnel source override etc. would go here; MAC and output port are
	// resolved by the control plane and given to the Balancer separately.
}

// MaxWeight is the largest weight of a real (IPVS allows int, gvs caps it so
// that weight × connections never overflows 64 bits).
const MaxWeight = 1 << 20

// Service is the configuration of one virtual service.
type Service struct {
	Proto     Proto
	VIP       netip.Addr
	Port      uint16 // 0: all ports
	Scheduler string // rr, wrr, lc, wlc, sed, nq, sh, dh, lblc, lblcr, fo, ovf, twos, mh
	Method    Method
	Flags     ServiceFlags

	// Persistence: a client (address masked with PersistMask) keeps its real
	// for PersistTimeout after its last connection. 0 disables it.
	PersistTimeout time.Duration
	PersistMask    int // prefix length, e.g. 32 / 128 for one client; 0: whole address

	DSCP uint8 // l3dsr: DSCP value the real maps back to the VIP
	// LocalAddrs are gvs's own addresses towards the reals: the SNAT
	// sources of fullnat (each worker owns a slice of their ports) and the
	// outer source of tunnel packets (the first of the VIP's family).
	LocalAddrs []netip.Addr
	MaglevSize int           // mh: lookup table size, prime; 0: 65537
	SlowStart  time.Duration // ramp for a newly added or recovered real; 0: none
	OnRemove   RemovePolicy
	// Port is the index of the driver port the VIP is reached on; replies
	// to clients (nat, fullnat) leave through it.
	ClientPort uint16

	Reals []Real
}

// Key returns the (proto, VIP, port) triple that identifies the service.
func (s *Service) Key() ServiceKey { return ServiceKey{s.Proto, s.VIP, s.Port} }

// ServiceKey identifies a virtual service.
type ServiceKey struct {
	Proto Proto
	VIP   netip.Addr
	Port  uint16
}

func (k ServiceKey) String() string {
	return fmt.Sprintf("%s %s", k.Proto, netip.AddrPortFrom(k.VIP, k.Port))
}

// RealKey identifies a real server within all services.
type RealKey struct {
	Service ServiceKey
	Addr    netip.Addr
	Port    uint16
}

func (k RealKey) String() string {
	return fmt.Sprintf("%s -> %s", k.Service, netip.AddrPortFrom(k.Addr, k.Port))
}
