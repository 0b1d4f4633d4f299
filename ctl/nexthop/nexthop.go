// Package nexthop resolves where gvs sends frames for a real server: the
// driver port and the Ethernet address of the next hop (the real itself when
// it is on-link, else its gateway), from the kernel's routing and neighbour
// tables through netlink. It writes no ARP or ND code of its own: missing
// entries are created as kernel-managed neighbours (the kernel resolves and
// keeps them fresh), and changes are followed through neighbour events.
//
// Imports: gvs/lb.
package nexthop

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"gvs/lb"
)

// Resolver resolves next hops for the reals of a configuration.
type Resolver struct {
	ports map[int]uint16 // interface index -> gvs port index
}

// New makes a resolver for the interfaces gvs drives, in port order.
func New(ifaces []string) (*Resolver, error) {
	r := &Resolver{ports: map[int]uint16{}}
	for i, name := range ifaces {
		l, err := netlink.LinkByName(name)
		if err != nil {
			return nil, fmt.Errorf("next hops: interface %s: %w", name, err)
		}
		r.ports[l.Attrs().Index] = uint16(i)
	}
	return r, nil
}

// Problem says why a real's next hop is not resolved.
type Problem struct {
	Addr   netip.Addr
	Reason string
}

// Resolve looks up every address. It returns the resolved next hops and, for
// the others, why not; for those it asks the kernel to resolve them, so a
// later call (or a neighbour event) finds them.
func (r *Resolver) Resolve(addrs []netip.Addr) (map[netip.Addr]lb.NextHop, []Problem) {
	hops := map[netip.Addr]lb.NextHop{}
	var probs []Problem
	for _, a := range addrs {
		if _, done := hops[a]; done {
			continue
		}
		h, err := r.resolve(a)
		if err != nil {
			probs = append(probs, Problem{a, err.Error()})
			continue
		}
		hops[a] = h
	}
	return hops, probs
}

func (r *Resolver) resolve(a netip.Addr) (lb.NextHop, error) {
	routes, err := netlink.RouteGet(a.AsSlice())
	if err != nil || len(routes) == 0 {
		return lb.NextHop{}, fmt.Errorf("no route to %s: %v", a, err)
	}
	rt := routes[0]
	port, ok := r.ports[rt.LinkIndex]
	if !ok {
		name := fmt.Sprint(rt.LinkIndex)
		if l, err := netlink.LinkByIndex(rt.LinkIndex); err == nil {
			name = l.Attrs().Name
		}
		return lb.NextHop{}, fmt.Errorf("route to %s leaves through %s, which gvs does not drive", a, name)
	}
	hop := a
	if rt.Gw != nil {
		if g, ok := netip.AddrFromSlice(rt.Gw); ok {
			hop = g.Unmap()
		}
	}
	family := netlink.FAMILY_V4
	if hop.Is6() {
		family = netlink.FAMILY_V6
	}
	neighs, err := netlink.NeighList(rt.LinkIndex, family)
	if err != nil {
		return lb.NextHop{}, fmt.Errorf("neighbours of %s: %w", hop, err)
	}
	for _, n := range neighs {
		ip, ok := netip.AddrFromSlice(n.IP)
		if !ok || ip.Unmap() != hop || len(n.HardwareAddr) != 6 {
			continue
		}
		if n.State&(netlink.NUD_REACHABLE|netlink.NUD_STALE|netlink.NUD_DELAY|netlink.NUD_PROBE|netlink.NUD_PERMANENT|netlink.NUD_NOARP) == 0 {
			continue
		}
		var h lb.NextHop
		copy(h.MAC[:], n.HardwareAddr)
		h.Port, h.OK = port, true
		return h, nil
	}
	kick(rt.LinkIndex, hop)
	return lb.NextHop{}, fmt.Errorf("next hop %s of %s not resolved yet (asked the kernel)", hop, a)
}

// kick asks the kernel to resolve hop: a managed neighbour entry (the kernel
// resolves it and keeps it fresh without traffic), or, where that is not
// supported, a datagram to the discard port, which makes the kernel resolve
// the address to send it.
func kick(link int, hop netip.Addr) {
	family := netlink.FAMILY_V4
	if hop.Is6() {
		family = netlink.FAMILY_V6
	}
	n := &netlink.Neigh{LinkIndex: link, Family: family, IP: hop.AsSlice(), State: netlink.NUD_NONE, FlagsExt: netlink.NTF_EXT_MANAGED}
	if err := netlink.NeighAdd(n); err == nil || errors.Is(err, unix.EEXIST) {
		return
	}
	c, err := net.DialTimeout("udp", netip.AddrPortFrom(hop, 9).String(), time.Second)
	if err != nil {
		return
	}
	_ = c.SetWriteDeadline(time.Now().Add(100 * time.Millisecond))
	_, _ = c.Write([]byte{0})
	c.Close()
}

// Watch calls changed (at most every debounce) whenever a neighbour entry
// on a driven interface changes, until ctx ends. Subscription errors are
// returned at once.
func (r *Resolver) Watch(ctx context.Context, debounce time.Duration, changed func()) error {
	ch := make(chan netlink.NeighUpdate, 256)
	done := make(chan struct{})
	if err := netlink.NeighSubscribe(ch, done); err != nil {
		close(done)
		return fmt.Errorf("subscribe to neighbour events: %w", err)
	}
	go func() {
		defer close(done)
		var timer <-chan time.Time
		for {
			select {
			case <-ctx.Done():
				return
			case u, ok := <-ch:
				if !ok {
					return
				}
				if _, ours := r.ports[u.LinkIndex]; ours && timer == nil {
					timer = time.After(debounce)
				}
			case <-timer:
				timer = nil
				changed()
			}
		}
	}()
	return nil
}

// LocalAddrs returns the addresses of the driven interfaces: the host's own
// (steering drivers leave packets to them to the kernel).
func (r *Resolver) LocalAddrs() []netip.Addr {
	var out []netip.Addr
	for idx := range r.ports {
		l, err := netlink.LinkByIndex(idx)
		if err != nil {
			continue
		}
		addrs, err := netlink.AddrList(l, netlink.FAMILY_ALL)
		if err != nil {
			continue
		}
		for _, a := range addrs {
			if ip, ok := netip.AddrFromSlice(a.IP); ok {
				out = append(out, ip.Unmap())
			}
		}
	}
	return out
}
