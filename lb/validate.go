package lb

import (
	"fmt"
	"net/netip"
)

// Validate checks a configuration for everything the dataplane relies on and
// fills in the service defaults it may (methods of reals stay MethodDefault).
// Errors name the service and real.
func Validate(cfg *Config) error {
	seen := map[ServiceKey]bool{}
	for i := range cfg.Services {
		s := &cfg.Services[i]
		key := s.Key()
		if !s.VIP.IsValid() {
			return fmt.Errorf("service #%d: missing or invalid VIP", i+1)
		}
		if s.VIP.Is4In6() {
			s.VIP = s.VIP.Unmap()
			key = s.Key()
		}
		if s.Proto != ProtoAny && s.Proto != ProtoTCP && s.Proto != ProtoUDP {
			return fmt.Errorf("service %s: protocol %s not supported", key, s.Proto)
		}
		if seen[key] {
			return fmt.Errorf("service %s: defined twice", key)
		}
		seen[key] = true
		if s.Scheduler == "" {
			s.Scheduler = "wlc" // ipvsadm's default
		}
		if _, err := ParseSched(s.Scheduler); err != nil {
			return fmt.Errorf("service %s: %w", key, err)
		}
		if s.Method == MethodDefault {
			s.Method = MethodDR // ipvsadm's default (-g)
		}
		if s.Method > MethodTunnel {
			return fmt.Errorf("service %s: %s", key, s.Method)
		}
		if s.PersistTimeout < 0 {
			return fmt.Errorf("service %s: negative persistence timeout", key)
		}
		maxBits := 32
		if s.VIP.Is6() {
			maxBits = 128
		}
		if s.PersistMask < 0 || s.PersistMask > maxBits {
			return fmt.Errorf("service %s: persistence netmask /%d out of range 0..%d", key, s.PersistMask, maxBits)
		}
		if s.DSCP > 63 {
			return fmt.Errorf("service %s: DSCP %d out of range 0..63", key, s.DSCP)
		}
		usesMethod := func(m Method) bool {
			if s.Method == m {
				return true
			}
			for _, r := range s.Reals {
				if r.Method == m {
					return true
				}
			}
			return false
		}
		if usesMethod(MethodL3DSR) && s.DSCP == 0 {
			return fmt.Errorf("service %s: l3dsr needs a non-zero DSCP value", key)
		}
		if usesMethod(MethodFullNAT) || usesMethod(MethodTunnel) {
			if !hasFamily(s.LocalAddrs, s.VIP.Is4()) {
				return fmt.Errorf("service %s: fullnat and tunnel need a local address of the VIP's family", key)
			}
		}
		if len(s.LocalAddrs) > 255 {
			return fmt.Errorf("service %s: at most 255 local addresses", key)
		}
		if s.MaglevSize != 0 && (s.MaglevSize < 2 || s.MaglevSize > 1<<24 || !schedIsPrime(s.MaglevSize)) {
			return fmt.Errorf("service %s: Maglev table size %d is not a prime in 2..%d", key, s.MaglevSize, 1<<24)
		}
		if s.SlowStart < 0 {
			return fmt.Errorf("service %s: negative slow-start time", key)
		}
		reals := map[netip.AddrPort]bool{}
		for j := range s.Reals {
			r := &s.Reals[j]
			if !r.Addr.IsValid() {
				return fmt.Errorf("service %s: real #%d: missing or invalid address", key, j+1)
			}
			r.Addr = r.Addr.Unmap()
			ap := netip.AddrPortFrom(r.Addr, r.Port)
			eff := ap
			if r.Port == 0 {
				eff = netip.AddrPortFrom(r.Addr, s.Port)
			}
			if reals[eff] {
				return fmt.Errorf("service %s: real %s defined twice", key, ap)
			}
			reals[eff] = true
			if r.Addr.Is4() != s.VIP.Is4() {
				return fmt.Errorf("service %s: real %s: address family differs from the VIP's", key, ap)
			}
			if r.Weight < 0 || r.Weight > MaxWeight {
				return fmt.Errorf("service %s: real %s: weight %d out of range 0..%d", key, ap, r.Weight, MaxWeight)
			}
			if r.Method > MethodTunnel {
				return fmt.Errorf("service %s: real %s: %s", key, ap, r.Method)
			}
			if r.State > RealDown {
				return fmt.Errorf("service %s: real %s: %s", key, ap, r.State)
			}
			m := r.Method
			if m == MethodDefault {
				m = s.Method
			}
			if r.Port != 0 && r.Port != s.Port && (m == MethodDR || m == MethodTunnel || m == MethodL3DSR) {
				return fmt.Errorf("service %s: real %s: %s cannot change the port (the real answers from the VIP's port)", key, ap, m)
			}
		}
	}
	return nil
}

func hasFamily(addrs []netip.Addr, v4 bool) bool {
	for _, a := range addrs {
		if a.Unmap().Is4() == v4 {
			return true
		}
	}
	return false
}
