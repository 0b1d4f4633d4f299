package lab

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"gvs/internal/namedns"
)

// NS is a network namespace of a lab.
type NS struct {
	lab    *Lab
	name   string // full name, with the lab prefix
	short  string // as given to Lab.NS
	handle netns.NsHandle

	nlMu sync.Mutex
	nl   *netlink.Handle
}

// Name is the namespace's full name ("<prefix>-<name>"), as `ip netns`
// knows it.
func (ns *NS) Name() string { return ns.name }

// Path is the namespace's bind mount, usable with setns(2), nsenter --net=
// or netns.GetFromPath.
func (ns *NS) Path() string { return filepath.Join(NetnsDir, ns.name) }

// String is the namespace's full name.
func (ns *NS) String() string { return ns.name }

// Do runs fn on an OS thread switched into the namespace and returns its
// error. Sockets fn creates stay in the namespace after it returns; fn must
// create them itself (not in goroutines it starts) and must not call
// t.Fatal. A panic in fn is returned as an error.
func (ns *NS) Do(fn func() error) error {
	return namedns.Do(ns.handle, ns.name, fn)
}

// netlink returns the namespace's netlink handle (one per NS, serialised
// by nlMu in the callers' use through withNetlink).
func (ns *NS) netlink() (*netlink.Handle, error) {
	ns.nlMu.Lock()
	defer ns.nlMu.Unlock()
	if ns.nl == nil {
		h, err := netlink.NewHandleAt(ns.handle)
		if err != nil {
			return nil, err
		}
		ns.nl = h
	}
	return ns.nl, nil
}

// withNetlink runs fn with the namespace's netlink handle, serialised.
func (ns *NS) withNetlink(fn func(h *netlink.Handle) error) error {
	h, err := ns.netlink()
	if err != nil {
		return err
	}
	ns.nlMu.Lock()
	defer ns.nlMu.Unlock()
	return fn(h)
}

func (ns *NS) closeNetlink() {
	ns.nlMu.Lock()
	defer ns.nlMu.Unlock()
	if ns.nl != nil {
		ns.nl.Close()
		ns.nl = nil
	}
}

func (ns *NS) fatalf(format string, args ...any) {
	ns.lab.t.Helper()
	ns.lab.t.Fatalf("lab: %s: "+format, append([]any{ns.name}, args...)...)
}

// link looks up ifname in the namespace.
func (ns *NS) link(h *netlink.Handle, ifname string) (netlink.Link, error) {
	l, err := h.LinkByName(ifname)
	if err != nil {
		return nil, fmt.Errorf("link %s: %w", ifname, err)
	}
	return l, nil
}

// Addr adds the address cidr ("198.18.0.1/24", "2001:db8::1/64") to
// ifname. IPv6 addresses are added with nodad and, on a running link,
// waited for until the kernel routes them to this host.
func (ns *NS) Addr(ifname, cidr string) {
	ns.lab.t.Helper()
	a, err := netlink.ParseAddr(cidr)
	if err != nil {
		ns.fatalf("address %q: %v", cidr, err)
	}
	if a.IP.To4() == nil {
		a.Flags |= unix.IFA_F_NODAD
	}
	err = ns.withNetlink(func(h *netlink.Handle) error {
		l, err := ns.link(h, ifname)
		if err != nil {
			return err
		}
		if err := h.AddrAdd(l, a); err != nil {
			return err
		}
		if a.IP.To4() == nil && l.Attrs().RawFlags&unix.IFF_RUNNING != 0 {
			return waitLocalRoute(h, a.IP)
		}
		return nil
	})
	if err != nil {
		ns.fatalf("add address %s to %s: %v", cidr, ifname, err)
	}
}

// waitLocalRoute waits until the kernel has installed the local route of
// the IPv6 address ip. Even a nodad address is only routed to this host
// once the kernel's DAD work has run, and that work needs the RTNL lock,
// which the cleanup of a namespace deleted just before can hold for a
// second on a busy machine: until then the address can be bound, but
// packets to it are not delivered. Links that are not running finish the
// work when they come up, so they are not waited for.
func waitLocalRoute(h *netlink.Handle, ip net.IP) error {
	filter := &netlink.Route{Table: unix.RT_TABLE_LOCAL, Dst: &net.IPNet{IP: ip, Mask: net.CIDRMask(128, 128)}}
	deadline := time.Now().Add(5 * time.Second)
	for {
		rs, err := h.RouteListFiltered(netlink.FAMILY_V6, filter, netlink.RT_FILTER_TABLE|netlink.RT_FILTER_DST)
		if err != nil {
			return fmt.Errorf("list local routes: %w", err)
		}
		if len(rs) > 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the kernel did not install the local route of %s within 5s", ip)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// Route adds a route to dst (a prefix, an address, or "default") through
// the gateway via. A link-local gateway names its interface as a zone:
// "fe80::1%eth0".
func (ns *NS) Route(dst, via string) {
	ns.lab.t.Helper()
	gw, zone, _ := strings.Cut(via, "%")
	gwIP := net.ParseIP(gw)
	if gwIP == nil {
		ns.fatalf("route %s: bad gateway %q", dst, via)
	}
	r := &netlink.Route{Gw: gwIP, Family: family(gwIP)}
	if dst != "default" {
		d, err := parsePrefix(dst)
		if err != nil {
			ns.fatalf("route: %v", err)
		}
		r.Dst = d
	}
	err := ns.withNetlink(func(h *netlink.Handle) error {
		if zone != "" {
			l, err := ns.link(h, zone)
			if err != nil {
				return err
			}
			r.LinkIndex = l.Attrs().Index
		}
		return h.RouteAdd(r)
	})
	if err != nil {
		ns.fatalf("add route %s via %s: %v", dst, via, err)
	}
}

// RouteDev adds an on-link route to dst (a prefix or an address) out of
// ifname: the namespace resolves the destination itself (ARP / NDP).
func (ns *NS) RouteDev(dst, ifname string) {
	ns.lab.t.Helper()
	d, err := parsePrefix(dst)
	if err != nil {
		ns.fatalf("route: %v", err)
	}
	err = ns.withNetlink(func(h *netlink.Handle) error {
		l, err := ns.link(h, ifname)
		if err != nil {
			return err
		}
		return h.RouteAdd(&netlink.Route{Dst: d, LinkIndex: l.Attrs().Index, Scope: netlink.SCOPE_LINK, Family: family(d.IP)})
	})
	if err != nil {
		ns.fatalf("add route %s dev %s: %v", dst, ifname, err)
	}
}

// DelRoute deletes the route to dst ("default", a prefix or an address).
func (ns *NS) DelRoute(dst string) {
	ns.lab.t.Helper()
	err := ns.withNetlink(func(h *netlink.Handle) error {
		var fam int
		var d *net.IPNet
		if dst == "default" {
			fam = netlink.FAMILY_ALL
		} else {
			var err error
			if d, err = parsePrefix(dst); err != nil {
				return err
			}
			fam = family(d.IP)
		}
		rs, err := h.RouteListFiltered(fam, &netlink.Route{Dst: d}, netlink.RT_FILTER_DST)
		if err != nil {
			return err
		}
		if len(rs) == 0 {
			return fmt.Errorf("no route to %s", dst)
		}
		for i := range rs {
			if err := h.RouteDel(&rs[i]); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		ns.fatalf("delete route %s: %v", dst, err)
	}
}

func parsePrefix(s string) (*net.IPNet, error) {
	if !strings.Contains(s, "/") {
		ip := net.ParseIP(s)
		if ip == nil {
			return nil, fmt.Errorf("bad address %q", s)
		}
		bits := 128
		if ip.To4() != nil {
			ip, bits = ip.To4(), 32
		}
		return &net.IPNet{IP: ip, Mask: net.CIDRMask(bits, bits)}, nil
	}
	_, n, err := net.ParseCIDR(s)
	if err != nil {
		return nil, err
	}
	return n, nil
}

func family(ip net.IP) int {
	if ip.To4() != nil {
		return netlink.FAMILY_V4
	}
	return netlink.FAMILY_V6
}

// sysctlPath maps "net.ipv4.ip_forward" or "net/ipv4/ip_forward" to its
// file under /proc/sys. In the dotted form an interface name cannot contain
// dots; use the slash form for those.
func sysctlPath(key string) string {
	if !strings.Contains(key, "/") {
		key = strings.ReplaceAll(key, ".", "/")
	}
	return filepath.Join("/proc/sys", key)
}

// Sysctl sets key ("net.ipv4.ip_forward" or "net/ipv4/conf/eth0.5/rp_filter")
// inside the namespace: /proc/sys/net shows the namespace of the thread that
// opens it, so the write is done from a thread in the namespace.
func (ns *NS) Sysctl(key, value string) {
	ns.lab.t.Helper()
	err := ns.Do(func() error { return os.WriteFile(sysctlPath(key), []byte(value), 0o644) })
	if err != nil {
		ns.fatalf("sysctl %s=%s: %v", key, value, err)
	}
}

// SysctlValue reads key inside the namespace, without the trailing newline.
func (ns *NS) SysctlValue(key string) string {
	ns.lab.t.Helper()
	var b []byte
	err := ns.Do(func() (err error) { b, err = os.ReadFile(sysctlPath(key)); return })
	if err != nil {
		ns.fatalf("sysctl %s: %v", key, err)
	}
	return strings.TrimSpace(string(b))
}

// Listen opens a listener inside the namespace (network "tcp", "tcp4",
// "tcp6", "unix"). It is closed at cleanup if not before.
func (ns *NS) Listen(network, addr string) (net.Listener, error) {
	var l net.Listener
	err := ns.Do(func() (err error) { l, err = net.Listen(network, addr); return })
	if err != nil {
		return nil, err
	}
	ns.lab.track(l)
	return l, nil
}

// ListenPacket opens a packet socket inside the namespace (network "udp",
// "udp4", "udp6", "ip4:1", ...). It is closed at cleanup if not before.
func (ns *NS) ListenPacket(network, addr string) (net.PacketConn, error) {
	var c net.PacketConn
	err := ns.Do(func() (err error) { c, err = net.ListenPacket(network, addr); return })
	if err != nil {
		return nil, err
	}
	ns.lab.track(c)
	return c, nil
}

// Dial connects from inside the namespace. addr must be a literal
// address (no name resolution: sockets of parallel dials to several
// resolved addresses would be made outside the namespace). The caller
// closes the connection.
func (ns *NS) Dial(ctx context.Context, network, addr string) (net.Conn, error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	if h, _, _ := strings.Cut(host, "%"); net.ParseIP(h) == nil {
		return nil, fmt.Errorf("lab: Dial %q: literal IP address needed", addr)
	}
	var c net.Conn
	err = ns.Do(func() (err error) {
		var d net.Dialer
		c, err = d.DialContext(ctx, network, addr)
		return
	})
	if err != nil {
		return nil, err
	}
	return c, nil
}

// HTTPClient returns a client whose connections are made inside the
// namespace, one new connection per request (keep-alives off, so every
// request is a new flow through a load balancer), no proxy. URLs must use
// literal IP addresses (see Dial).
func (ns *NS) HTTPClient(timeout time.Duration) *http.Client {
	return &http.Client{
		Timeout: timeout,
		Transport: &http.Transport{
			Proxy:             nil,
			DisableKeepAlives: true,
			DialContext:       ns.Dial,
		},
	}
}

// MAC returns the hardware address of ifname.
func (ns *NS) MAC(ifname string) net.HardwareAddr {
	ns.lab.t.Helper()
	var mac net.HardwareAddr
	err := ns.withNetlink(func(h *netlink.Handle) error {
		l, err := ns.link(h, ifname)
		if err == nil {
			mac = l.Attrs().HardwareAddr
		}
		return err
	})
	if err != nil {
		ns.fatalf("%v", err)
	}
	return mac
}

// Neigh adds (or replaces) a permanent neighbour entry ip → mac on ifname.
func (ns *NS) Neigh(ifname, ip string, mac net.HardwareAddr) {
	ns.lab.t.Helper()
	addr := net.ParseIP(ip)
	if addr == nil {
		ns.fatalf("neighbour: bad address %q", ip)
	}
	err := ns.withNetlink(func(h *netlink.Handle) error {
		l, err := ns.link(h, ifname)
		if err != nil {
			return err
		}
		return h.NeighSet(&netlink.Neigh{
			LinkIndex:    l.Attrs().Index,
			Family:       family(addr),
			State:        netlink.NUD_PERMANENT,
			IP:           addr,
			HardwareAddr: mac,
		})
	})
	if err != nil {
		ns.fatalf("neighbour %s %s on %s: %v", ip, mac, ifname, err)
	}
}

// Netlink runs fn with a netlink handle of the namespace (for what the
// helpers do not cover). Calls are serialised.
func (ns *NS) Netlink(fn func(h *netlink.Handle) error) error { return ns.withNetlink(fn) }
