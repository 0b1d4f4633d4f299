package vrrp

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// This file is what the Manager does to interfaces through netlink: read
// their state and addresses, add and remove the virtual addresses, and
// create the macvlan that carries the virtual MAC.

// DefaultAddrLifetime is the valid (and preferred) lifetime of a virtual
// address a master adds; the master renews it every RenewInterval. A gvsd
// killed outright, or wedged, thus loses its addresses within this time
// instead of keeping them forever (the "duplicate VIP after a crash" of
// keepalived, which adds them permanent).
const DefaultAddrLifetime = 3 * time.Second

// ifState is what the Manager knows of an interface.
type ifState struct {
	name  string
	index int
	mac   net.HardwareAddr
	up    bool // administratively up with carrier (operstate up or unknown)
	addrs []netip.Addr
	err   error // lookup failure (missing interface)
}

// readIf reads an interface's state and addresses. Tentative and
// deprecated addresses are left out.
func readIf(name string) ifState {
	st := ifState{name: name}
	l, err := netlink.LinkByName(name)
	if err != nil {
		st.err = fmt.Errorf("interface %s: %w", name, err)
		return st
	}
	a := l.Attrs()
	st.index, st.mac = a.Index, a.HardwareAddr
	st.up = a.Flags&net.FlagUp != 0 && (a.OperState == netlink.OperUp || a.OperState == netlink.OperUnknown)
	addrs, err := netlink.AddrList(l, netlink.FAMILY_ALL)
	if err != nil {
		st.err = fmt.Errorf("addresses of %s: %w", name, err)
		return st
	}
	for _, ad := range addrs {
		if ad.Flags&(unix.IFA_F_TENTATIVE|unix.IFA_F_DADFAILED|unix.IFA_F_DEPRECATED) != 0 {
			continue
		}
		if ip, ok := netip.AddrFromSlice(ad.IP); ok {
			st.addrs = append(st.addrs, ip.Unmap())
		}
	}
	return st
}

// primaryAddr chooses an instance's primary address (RFC 5798 §6.1): the
// configured unicast_src, else the interface's first IPv4 address that is
// no virtual address (IPv4), or its first link-local address (IPv6).
func primaryAddr(cfg *Config, st *ifState, vips map[netip.Addr]bool) (netip.Addr, error) {
	if cfg.UnicastSrc.IsValid() {
		return cfg.UnicastSrc, nil
	}
	for _, a := range st.addrs {
		if vips[a] {
			continue
		}
		if cfg.Is6() && a.Is6() && a.IsLinkLocalUnicast() {
			return a, nil
		}
		if !cfg.Is6() && a.Is4() {
			return a, nil
		}
	}
	if cfg.Is6() {
		return netip.Addr{}, fmt.Errorf("interface %s has no usable IPv6 link-local address yet", cfg.Interface)
	}
	return netip.Addr{}, fmt.Errorf("interface %s has no IPv4 address", cfg.Interface)
}

// vmacName is the macvlan of an instance with virtual_mac.
func vmacName(cfg *Config) string {
	if cfg.Is6() {
		return fmt.Sprintf("gvs6.%d", cfg.VRID)
	}
	return fmt.Sprintf("gvs4.%d", cfg.VRID)
}

// addrLink is the link the instance's addresses go on: the macvlan with
// virtual_mac, else the interface.
func addrLink(cfg *Config) string {
	if cfg.VirtualMAC {
		return vmacName(cfg)
	}
	return cfg.Interface
}

func nlAddr(p netip.Prefix, lifetime time.Duration) *netlink.Addr {
	a := &netlink.Addr{IPNet: &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}}
	if lifetime > 0 {
		secs := int((lifetime + time.Second - 1) / time.Second)
		a.ValidLft, a.PreferedLft = secs, secs
	}
	if p.Addr().Is6() {
		a.Flags = unix.IFA_F_NODAD
	}
	return a
}

// addVIPs adds (or renews) the addresses on the link with a lifetime.
func addVIPs(link string, vips []netip.Prefix, lifetime time.Duration) error {
	l, err := netlink.LinkByName(link)
	if err != nil {
		return fmt.Errorf("add virtual addresses to %s: %w", link, err)
	}
	var errs []error
	for _, p := range vips {
		if err := netlink.AddrReplace(l, nlAddr(p, lifetime)); err != nil {
			errs = append(errs, fmt.Errorf("add %v to %s: %w", p, link, err))
		}
	}
	return errors.Join(errs...)
}

// delVIPs removes the addresses from the link, whatever their prefix
// length; missing ones are no error. It returns how many it removed.
func delVIPs(link string, addrs []netip.Addr) (int, error) {
	l, err := netlink.LinkByName(link)
	if err != nil {
		var nf netlink.LinkNotFoundError
		if errors.As(err, &nf) {
			return 0, nil
		}
		return 0, fmt.Errorf("remove virtual addresses from %s: %w", link, err)
	}
	have, err := netlink.AddrList(l, netlink.FAMILY_ALL)
	if err != nil {
		return 0, fmt.Errorf("addresses of %s: %w", link, err)
	}
	n := 0
	var errs []error
	for i := range have {
		ip, ok := netip.AddrFromSlice(have[i].IP)
		if !ok {
			continue
		}
		ip = ip.Unmap()
		for _, a := range addrs {
			if a == ip {
				if err := netlink.AddrDel(l, &have[i]); err != nil && !errors.Is(err, unix.EADDRNOTAVAIL) {
					errs = append(errs, fmt.Errorf("remove %v from %s: %w", a, link, err))
				} else {
					n++
				}
			}
		}
	}
	return n, errors.Join(errs...)
}

// ensureVMAC creates the instance's macvlan (bridge mode, the virtual MAC,
// no IPv6 address generation) over the interface and brings it up. For
// IPv6 it gets the primary link-local address too: advertisements leave
// from it with that source.
func ensureVMAC(cfg *Config, primary netip.Addr) (created bool, err error) {
	name := vmacName(cfg)
	mac := cfg.VirtualMACAddr()
	l, err := netlink.LinkByName(name)
	if err != nil {
		parent, perr := netlink.LinkByName(cfg.Interface)
		if perr != nil {
			return false, fmt.Errorf("virtual MAC: %w", perr)
		}
		mv := &netlink.Macvlan{
			LinkAttrs: netlink.LinkAttrs{Name: name, ParentIndex: parent.Attrs().Index, HardwareAddr: net.HardwareAddr(mac[:])},
			Mode:      netlink.MACVLAN_MODE_BRIDGE,
		}
		if err := netlink.LinkAdd(mv); err != nil {
			return false, fmt.Errorf("create macvlan %s on %s: %w", name, cfg.Interface, err)
		}
		created = true
		if l, err = netlink.LinkByName(name); err != nil {
			return created, err
		}
		// No link-local of its own (it would be the same on both routers).
		_ = netlink.LinkSetIP6AddrGenMode(l, 1) // IN6_ADDR_GEN_MODE_NONE
		// Only the macvlan answers ARP for the addresses, with the
		// virtual MAC; the parent answers for its own addresses only.
		_ = setSysctl("net/ipv4/conf/"+cfg.Interface+"/arp_ignore", "1")
		_ = setSysctl("net/ipv4/conf/"+name+"/arp_ignore", "1")
	}
	if err := netlink.LinkSetUp(l); err != nil {
		return created, fmt.Errorf("bring up %s: %w", name, err)
	}
	if cfg.Is6() && primary.IsValid() {
		a := nlAddr(netip.PrefixFrom(primary, 64), 0)
		if err := netlink.AddrReplace(l, a); err != nil {
			return created, fmt.Errorf("link-local %v on %s: %w", primary, name, err)
		}
	}
	return created, nil
}

// delVMAC deletes the instance's macvlan if it exists.
func delVMAC(cfg *Config) error {
	l, err := netlink.LinkByName(vmacName(cfg))
	if err != nil {
		return nil
	}
	if err := netlink.LinkDel(l); err != nil {
		return fmt.Errorf("delete macvlan %s: %w", vmacName(cfg), err)
	}
	return nil
}

// setSysctl writes a value under /proc/sys.
func setSysctl(key, value string) error {
	return os.WriteFile(filepath.Join("/proc/sys", key), []byte(value), 0o644)
}

// enterNetns moves the calling thread into the network namespace at path.
func enterNetns(path string) error {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("network namespace %s: %w", path, err)
	}
	defer unix.Close(fd)
	if err := unix.Setns(fd, unix.CLONE_NEWNET); err != nil {
		return fmt.Errorf("enter network namespace %s: %w", path, err)
	}
	return nil
}
