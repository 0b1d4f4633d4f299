// Package realserver configures a Linux real server for a gvs forwarding
// method, and undoes it. Methods that need no help from the real (nat,
// fullnat) are not here; the DSR and tunnel methods are:
//
//   - dr (L2 DSR): the VIPs on lo (/32, /128 nodad) and arp_ignore=1,
//     arp_announce=2 on "all" and on the interface towards gvs, so the real
//     accepts packets for the VIPs but neither answers ARP for them nor uses
//     them as ARP sender addresses. IPv6 needs only the VIP on lo: Linux
//     answers neighbour solicitations only for addresses of the receiving
//     interface.
//   - l3dsr (L3 DSR with DSCP): as dr, plus a stateless nftables table
//     "gvsrs" (family ip or ip6) whose raw-priority prerouting chain turns a
//     packet to RealAddr with a DSCP found in the DSCP → VIP map back into a
//     packet to that VIP with DSCP 0, fixing the IP and L4 checksums. No
//     nat/dnat: conntrack would reverse it and the replies would leave from
//     RealAddr instead of the VIP.
//   - tunnel (IPIP / IPv6-in-IPv6): as dr, plus decapsulation of tunnel
//     packets addressed to RealAddr. With Decap "auto" a kernel tunnel
//     device (ipip "gvsrs-ip4", ip6tnl "gvsrs-ip6", local RealAddr) is used
//     when the kernel has that device type; otherwise — kernels without the
//     ipip/ip6_tunnel modules — a tc cls_bpf direct-action program on the
//     interface's clsact ingress strips the outer header
//     (bpf_skb_adjust_room) so the inner packet to the VIP goes up the
//     stack as if received on the interface.
//
// Everything acts on the network namespace of the calling thread: run it in
// a process inside the namespace (ip netns exec), or from a locked thread
// switched into it. Setup is idempotent. What Setup changed — sysctls' former
// values, the VIPs it added, the qdisc and devices it created — is recorded
// in a small JSON state file per network namespace (StateDir), so Teardown
// restores exactly that, from another process too. Teardown is tolerant: it
// removes what is there and ignores what is already gone, also without a
// state file.
//
// realserver imports nothing of gvs; the command is cmd/gvs-realserver.
package realserver

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
)

// Forwarding methods a real server can be set up for.
const (
	MethodDR     = "dr"
	MethodL3DSR  = "l3dsr"
	MethodTunnel = "tunnel"
)

// Tunnel decapsulation choices (Config.Decap).
const (
	DecapAuto   = "auto"   // kernel tunnel device if available, else BPF
	DecapKernel = "kernel" // ipip / ip6tnl device; fail if the kernel has none
	DecapBPF    = "bpf"    // tc cls_bpf program
)

// DefaultStateDir is where Setup records what it changed when
// Config.StateDir is empty.
const DefaultStateDir = "/run/gvs-realserver"

// Config describes a real server's part of one forwarding method.
type Config struct {
	// Method is dr, l3dsr or tunnel.
	Method string
	// VIPs are the virtual IPs the real serves; they go on lo. For l3dsr
	// the VIPs of the DSCP map are added to them.
	VIPs []netip.Addr
	// Interface is the real's interface towards gvs (ARP sysctls; for
	// tunnel, where the decapsulation program is attached).
	Interface string
	// DSCP maps a DSCP value (1..63) to the VIP it stands for (l3dsr). All
	// VIPs of the map have RealAddr's family.
	DSCP map[uint8]netip.Addr
	// RealAddr is the real's own address that gvs sends to (l3dsr: the
	// rewritten destination; tunnel: the outer destination).
	RealAddr netip.Addr
	// Decap chooses the tunnel decapsulation: "" or DecapAuto, DecapKernel,
	// DecapBPF.
	Decap string
	// StateDir holds the state files; "" means DefaultStateDir.
	StateDir string
	// Logf, if not nil, is told about each change made or undone and about
	// the decapsulation path taken.
	Logf func(format string, args ...any)
}

func (c *Config) logf(format string, args ...any) {
	if c.Logf != nil {
		c.Logf(format, args...)
	}
}

func (c *Config) stateDir() string {
	if c.StateDir == "" {
		return DefaultStateDir
	}
	return c.StateDir
}

// vips is the set of VIPs to put on lo: VIPs and the DSCP map's values,
// without duplicates, 4-in-6 mapped addresses unmapped.
func (c *Config) vips() []netip.Addr {
	var out []netip.Addr
	add := func(a netip.Addr) {
		a = a.Unmap()
		if !slices.Contains(out, a) {
			out = append(out, a)
		}
	}
	for _, v := range c.VIPs {
		add(v)
	}
	for _, d := range slices.Sorted(mapKeys(c.DSCP)) {
		add(c.DSCP[d])
	}
	return out
}

func mapKeys[K comparable, V any](m map[K]V) func(func(K) bool) {
	return func(yield func(K) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

func (c *Config) hasV4() bool {
	return slices.ContainsFunc(c.vips(), netip.Addr.Is4)
}

// validate checks c and normalises the method and decap names.
func (c *Config) validate() error {
	c.Method = strings.ToLower(c.Method)
	switch c.Method {
	case MethodDR, MethodL3DSR, MethodTunnel:
	default:
		return fmt.Errorf("unknown method %q (want dr, l3dsr or tunnel)", c.Method)
	}
	if c.Interface == "" {
		return errors.New("no interface given")
	}
	for _, v := range c.VIPs {
		if !v.IsValid() || v.IsUnspecified() || v.IsMulticast() {
			return fmt.Errorf("bad VIP %v", v)
		}
	}
	c.RealAddr = c.RealAddr.Unmap()
	switch c.Method {
	case MethodDR:
		if len(c.VIPs) == 0 {
			return errors.New("dr: no VIP given")
		}
		if len(c.DSCP) != 0 {
			return errors.New("dr: DSCP map given (l3dsr only)")
		}
	case MethodL3DSR:
		if !c.RealAddr.IsValid() {
			return errors.New("l3dsr: no real address given")
		}
		if len(c.DSCP) == 0 {
			return errors.New("l3dsr: empty DSCP map")
		}
		for d, v := range c.DSCP {
			if d == 0 || d > 63 {
				return fmt.Errorf("l3dsr: DSCP %d out of range 1..63", d)
			}
			if !v.IsValid() || v.Unmap().Is4() != c.RealAddr.Is4() {
				return fmt.Errorf("l3dsr: DSCP %d maps to %v, not an address of the real address's family (%v)", d, v, c.RealAddr)
			}
		}
	case MethodTunnel:
		if !c.RealAddr.IsValid() {
			return errors.New("tunnel: no real address given")
		}
		if len(c.VIPs) == 0 {
			return errors.New("tunnel: no VIP given")
		}
		if len(c.DSCP) != 0 {
			return errors.New("tunnel: DSCP map given (l3dsr only)")
		}
		c.Decap = strings.ToLower(c.Decap)
		switch c.Decap {
		case "":
			c.Decap = DecapAuto
		case DecapAuto, DecapKernel, DecapBPF:
		default:
			return fmt.Errorf("tunnel: unknown decap %q (want auto, kernel or bpf)", c.Decap)
		}
	}
	return nil
}

// user is the record of one Setup in the state file: Teardown removes
// shared things (VIPs, the nft table, the decap program) only when no other
// recorded setup still needs them.
func (c *Config) user() stateUser {
	u := stateUser{Method: c.Method, Interface: c.Interface}
	if c.RealAddr.IsValid() {
		u.RealAddr = c.RealAddr.String()
	}
	for _, v := range c.vips() {
		u.VIPs = append(u.VIPs, v.String())
	}
	return u
}

// Setup configures the real server (the current network namespace) for
// cfg. It is idempotent; a second Setup with another config adds to the
// first (for l3dsr and tunnel, the nft table / decap program of RealAddr's
// family is replaced by the new one).
func Setup(cfg Config) (err error) {
	if err := cfg.validate(); err != nil {
		return err
	}
	sys, err := newSystem()
	if err != nil {
		return err
	}
	defer sys.close()
	// Check the interface before changing anything.
	if _, err := sys.nl.LinkByName(cfg.Interface); err != nil {
		return fmt.Errorf("interface %s: %w", cfg.Interface, err)
	}
	st, err := openState(cfg.stateDir())
	if err != nil {
		return err
	}
	defer func() {
		// Record progress even on failure, so Teardown can undo it.
		if serr := st.save(); serr != nil {
			err = errors.Join(err, serr)
		}
		st.unlock()
	}()
	st.addUser(cfg.user())

	if err := sys.ensureLoUp(); err != nil {
		return err
	}
	if cfg.hasV4() {
		for _, dev := range []string{"all", cfg.Interface} {
			for _, kv := range [][2]string{{"arp_ignore", "1"}, {"arp_announce", "2"}} {
				key := "net/ipv4/conf/" + dev + "/" + kv[0]
				changed, err := st.setSysctl(key, kv[1])
				if err != nil {
					return err
				}
				if changed {
					cfg.logf("sysctl %s = %s", key, kv[1])
				}
			}
		}
	}
	for _, v := range cfg.vips() {
		added, err := sys.addVIP(v)
		if err != nil {
			return fmt.Errorf("add VIP %v to lo: %w", v, err)
		}
		if added {
			st.recordAddr(v.String())
			cfg.logf("added %v to lo", v)
		}
	}
	switch cfg.Method {
	case MethodL3DSR:
		if err := sys.setupNft(&cfg); err != nil {
			return fmt.Errorf("l3dsr: nftables: %w", err)
		}
		cfg.logf("nftables table %s %s: DSCP → VIP for packets to %v", nftFamilyName(cfg.RealAddr), nftTable, cfg.RealAddr)
	case MethodTunnel:
		if err := sys.setupTunnel(&cfg, st); err != nil {
			return fmt.Errorf("tunnel: %w", err)
		}
	}
	return nil
}

// Teardown undoes what Setup(cfg) did: it removes the nft table or the
// decapsulation of cfg's method and family, the VIPs Setup added (unless
// another recorded setup still uses them) and, when the last recorded setup
// of the namespace is torn down, restores the sysctls to their former
// values. Things already gone are skipped. Without a state file (Setup
// never ran, or the state was lost) it removes cfg's VIPs and objects if
// present and leaves the sysctls as they are.
func Teardown(cfg Config) error {
	if err := cfg.validate(); err != nil {
		return err
	}
	sys, err := newSystem()
	if err != nil {
		return err
	}
	defer sys.close()
	st, err := openState(cfg.stateDir())
	if err != nil {
		return err
	}
	defer st.unlock()
	u := cfg.user()
	st.removeUser(u)
	var errs []error

	switch cfg.Method {
	case MethodL3DSR:
		if !st.familyInUse(MethodL3DSR, cfg.RealAddr.Is4()) {
			removed, err := sys.teardownNft(cfg.RealAddr.Is4())
			if err != nil {
				errs = append(errs, fmt.Errorf("l3dsr: nftables: %w", err))
			} else if removed {
				cfg.logf("deleted nftables table %s %s", nftFamilyName(cfg.RealAddr), nftTable)
			}
		}
	case MethodTunnel:
		if !st.familyInUse(MethodTunnel, cfg.RealAddr.Is4()) {
			if err := sys.teardownTunnel(&cfg, st); err != nil {
				errs = append(errs, fmt.Errorf("tunnel: %w", err))
			}
		}
	}
	for _, v := range cfg.vips() {
		if st.exists && (!st.addedAddr(v.String()) || st.addrInUse(v.String())) {
			continue // not ours, or still needed by another setup
		}
		removed, err := sys.delVIP(v)
		if err != nil {
			errs = append(errs, fmt.Errorf("remove VIP %v from lo: %w", v, err))
			continue
		}
		st.forgetAddr(v.String())
		if removed {
			cfg.logf("removed %v from lo", v)
		}
	}
	if len(st.Users) == 0 {
		for _, key := range slices.Sorted(mapKeys(st.Sysctls)) {
			val := st.Sysctls[key]
			cur, err := readSysctl(key)
			if err == nil && cur != val {
				err = writeSysctl(key, val)
				if err == nil {
					cfg.logf("sysctl %s = %s (restored)", key, val)
				}
			}
			if err != nil && !errors.Is(err, errNoSysctl) {
				errs = append(errs, err)
				continue
			}
			delete(st.Sysctls, key)
		}
		if !st.exists && cfg.hasV4() {
			cfg.logf("no state recorded: arp sysctls left as they are")
		}
	}
	if err := st.save(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}
