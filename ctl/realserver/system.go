package realserver

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"runtime"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// system is the current network namespace, seen through netlink.
type system struct {
	nl   *netlink.Handle
	nsFd *os.File // this thread's network namespace, for nftables
}

// newSystem opens netlink in the calling thread's network namespace. It
// locks the goroutine to its thread until close, so that sysctl files opened
// meanwhile belong to the same namespace.
func newSystem() (*system, error) {
	runtime.LockOSThread()
	nsFd, err := os.Open("/proc/thread-self/ns/net")
	if err != nil {
		runtime.UnlockOSThread()
		return nil, err
	}
	h, err := netlink.NewHandle(unix.NETLINK_ROUTE)
	if err != nil {
		nsFd.Close()
		runtime.UnlockOSThread()
		return nil, fmt.Errorf("netlink: %w", err)
	}
	return &system{nl: h, nsFd: nsFd}, nil
}

func (s *system) close() {
	s.nl.Close()
	s.nsFd.Close()
	runtime.UnlockOSThread()
}

func (s *system) lo() (netlink.Link, error) {
	lo, err := s.nl.LinkByName("lo")
	if err != nil {
		return nil, fmt.Errorf("lo: %w", err)
	}
	return lo, nil
}

func (s *system) ensureLoUp() error {
	lo, err := s.lo()
	if err != nil {
		return err
	}
	if lo.Attrs().Flags&net.FlagUp != 0 {
		return nil
	}
	return s.nl.LinkSetUp(lo)
}

func hostPrefix(a netip.Addr) *net.IPNet {
	return &net.IPNet{IP: a.AsSlice(), Mask: net.CIDRMask(a.BitLen(), a.BitLen())}
}

func nlFamily(a netip.Addr) int {
	if a.Is4() {
		return netlink.FAMILY_V4
	}
	return netlink.FAMILY_V6
}

// onLo reports whether a is an address of lo (any prefix length).
func (s *system) onLo(lo netlink.Link, a netip.Addr) (*netlink.Addr, error) {
	addrs, err := s.nl.AddrList(lo, nlFamily(a))
	if err != nil {
		return nil, err
	}
	for i := range addrs {
		if b, ok := netip.AddrFromSlice(addrs[i].IP); ok && b.Unmap() == a {
			return &addrs[i], nil
		}
	}
	return nil, nil
}

// addVIP puts a on lo as a host address (IPv6: nodad, usable at once). It
// reports false if a was there already.
func (s *system) addVIP(a netip.Addr) (bool, error) {
	lo, err := s.lo()
	if err != nil {
		return false, err
	}
	if cur, err := s.onLo(lo, a); err != nil || cur != nil {
		return false, err
	}
	addr := &netlink.Addr{IPNet: hostPrefix(a)}
	if a.Is6() {
		addr.Flags = unix.IFA_F_NODAD
	}
	if err := s.nl.AddrAdd(lo, addr); err != nil && !errors.Is(err, unix.EEXIST) {
		return false, err
	}
	return true, nil
}

// delVIP removes a from lo; false if it was not there.
func (s *system) delVIP(a netip.Addr) (bool, error) {
	lo, err := s.lo()
	if err != nil {
		return false, err
	}
	cur, err := s.onLo(lo, a)
	if err != nil || cur == nil {
		return false, err
	}
	if err := s.nl.AddrDel(lo, cur); err != nil && !errors.Is(err, unix.EADDRNOTAVAIL) {
		return false, err
	}
	return true, nil
}
