package vrrp

import (
	"encoding/binary"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/nftables"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"gvs/tests/lab"
)

// These tests run Managers with real sockets, netlink and nftables in
// network namespaces (root only): two routers and an observer on a bridge.
//
//	a 198.18.1.1 / 2001:db8:1::1 ─┐
//	b 198.18.1.2 / 2001:db8:1::2 ─┼─ br0 (sw)
//	obs 198.18.1.254             ─┘

type lan struct {
	l         *lab.Lab
	sw        *lab.NS
	a, b, obs *lab.NS
}

func newLAN(t *testing.T) *lan {
	l := lab.New(t)
	n := &lan{l: l, sw: l.NS("sw"), a: l.NS("a"), b: l.NS("b"), obs: l.NS("obs")}
	for _, ns := range []*lab.NS{n.a, n.b, n.obs} {
		ns.Sysctl("net.ipv6.conf.default.accept_dad", "0")
		ns.Sysctl("net.ipv6.conf.all.accept_dad", "0")
	}
	l.Veth(n.a, "eth0", n.sw, "pa")
	l.Veth(n.b, "eth0", n.sw, "pb")
	l.Veth(n.obs, "eth0", n.sw, "po")
	l.Bridge(n.sw, "br0", "pa", "pb", "po")
	n.a.Addr("eth0", "198.18.1.1/24")
	n.b.Addr("eth0", "198.18.1.2/24")
	n.obs.Addr("eth0", "198.18.1.254/24")
	n.a.Addr("eth0", "2001:db8:1::1/64")
	n.b.Addr("eth0", "2001:db8:1::2/64")
	n.obs.Addr("eth0", "2001:db8:1::fe/64")
	return n
}

// hasAddr reports whether ns has a on link (and its valid lifetime).
func hasAddr(t *testing.T, ns *lab.NS, link string, a netip.Addr) (bool, int) {
	t.Helper()
	found, lft := false, 0
	err := ns.Netlink(func(h *netlink.Handle) error {
		l, err := h.LinkByName(link)
		if err != nil {
			return nil // no link, no address
		}
		addrs, err := h.AddrList(l, netlink.FAMILY_ALL)
		if err != nil {
			return err
		}
		for _, ad := range addrs {
			if ip, ok := netip.AddrFromSlice(ad.IP); ok && ip.Unmap() == a {
				found, lft = true, ad.ValidLft
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return found, lft
}

func startManager(t *testing.T, ns *lab.NS, cfgs []Config, opts Options) *Manager {
	t.Helper()
	opts.Netns = ns.Path()
	if opts.Log == nil {
		opts.Log = testLog(t, ns.Name())
	}
	m, err := New(cfgs, opts)
	if err != nil {
		t.Fatal(err)
	}
	m.Start()
	t.Cleanup(m.Stop)
	return m
}

func stateOf(m *Manager, name string) State {
	for _, s := range m.Status() {
		if s.Name == name {
			return s.State
		}
	}
	return 255
}

func waitState(t *testing.T, m *Manager, name string, st State, timeout time.Duration) {
	t.Helper()
	lab.Eventually(t, timeout, fmt.Sprintf("%s %s", name, st), func() error {
		if got := stateOf(m, name); got != st {
			return fmt.Errorf("state %s", got)
		}
		return nil
	})
}

// capture records gratuitous ARPs and unsolicited NAs seen by ns on eth0.
type capture struct {
	mu   sync.Mutex
	seen []announcement
	fd   int
}

type announcement struct {
	at  time.Time
	mac net.HardwareAddr
	vip netip.Addr
}

func startCapture(t *testing.T, ns *lab.NS) *capture {
	t.Helper()
	c := &capture{}
	err := ns.Do(func() error {
		fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, int(htons(unix.ETH_P_ALL)))
		if err != nil {
			return err
		}
		c.fd = fd
		l, err := net.InterfaceByName("eth0")
		if err != nil {
			return err
		}
		return unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ALL), Ifindex: l.Index})
	})
	if err != nil {
		t.Fatal(err)
	}
	tv := unix.NsecToTimeval(int64(100 * time.Millisecond))
	unix.SetsockoptTimeval(c.fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv)
	done := make(chan struct{})
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		buf := make([]byte, 2048)
		for {
			select {
			case <-done:
				return
			default:
			}
			n, _, err := unix.Recvfrom(c.fd, buf, 0)
			if err != nil {
				continue
			}
			if a, ok := parseAnnouncement(buf[:n]); ok {
				a.at = time.Now()
				c.mu.Lock()
				c.seen = append(c.seen, a)
				c.mu.Unlock()
			}
		}
	}()
	t.Cleanup(func() { close(done); <-stopped; unix.Close(c.fd) })
	return c
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

// parseAnnouncement recognises a gratuitous ARP (request or reply with
// sender = target address) and an unsolicited NA (type 136, S flag clear).
func parseAnnouncement(f []byte) (announcement, bool) {
	if len(f) < 14 {
		return announcement{}, false
	}
	mac := net.HardwareAddr(append([]byte(nil), f[6:12]...))
	switch binary.BigEndian.Uint16(f[12:]) {
	case unix.ETH_P_ARP:
		a := f[14:]
		if len(a) < 28 {
			return announcement{}, false
		}
		spa, tpa := netip.AddrFrom4([4]byte(a[14:18])), netip.AddrFrom4([4]byte(a[24:28]))
		if spa == tpa {
			return announcement{mac: net.HardwareAddr(append([]byte(nil), a[8:14]...)), vip: spa}, true
		}
	case unix.ETH_P_IPV6:
		ip := f[14:]
		if len(ip) < 40+24 || ip[6] != unix.IPPROTO_ICMPV6 || ip[40] != 136 || ip[44]&0x40 != 0 {
			return announcement{}, false
		}
		return announcement{mac: mac, vip: netip.AddrFrom16([16]byte(ip[48:64]))}, true
	}
	return announcement{}, false
}

func (c *capture) count(vip netip.Addr, mac net.HardwareAddr, since time.Time) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, a := range c.seen {
		if a.vip == vip && a.mac.String() == mac.String() && !a.at.Before(since) {
			n++
		}
	}
	return n
}

func testLog(t *testing.T, prefix string) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t, prefix}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type testWriter struct {
	t      *testing.T
	prefix string
}

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Logf("%s: %s", w.prefix, strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func baseCfg(prio uint8, vip string) Config {
	return Config{Name: "vi", Interface: "eth0", VRID: 51, Priority: prio, AdvertInt: 100 * time.Millisecond, Version: 3,
		Preempt: true, Accept: true, VIPs: []netip.Prefix{netip.MustParsePrefix(vip)}, GARPCount: 2, GARPDelay: 300 * time.Millisecond}
}

func TestManagerFailover(t *testing.T) {
	for _, fam := range []struct {
		name string
		vip  string
	}{{"ipv4", "198.18.1.10/32"}, {"ipv6", "2001:db8:1::10/128"}} {
		t.Run(fam.name, func(t *testing.T) {
			n := newLAN(t)
			capt := startCapture(t, n.obs)
			vip := netip.MustParsePrefix(fam.vip).Addr()
			var owned sync.Map
			ma := startManager(t, n.a, []Config{baseCfg(200, fam.vip)}, Options{Owner: func(name string, _ []netip.Prefix, m bool) { owned.Store("a", m) }})
			waitState(t, ma, "vi", Master, 3*time.Second)
			mb := startManager(t, n.b, []Config{baseCfg(100, fam.vip)}, Options{})
			waitState(t, mb, "vi", Backup, 3*time.Second)
			time.Sleep(500 * time.Millisecond)
			if st := stateOf(mb, "vi"); st != Backup {
				t.Fatalf("b is %s with a master at higher priority", st)
			}
			if ok, lft := hasAddr(t, n.a, "eth0", vip); !ok || lft <= 0 || lft > 3 {
				t.Fatalf("a: vip present %v, valid lifetime %d (want 1..3 s)", ok, lft)
			}
			if ok, _ := hasAddr(t, n.b, "eth0", vip); ok {
				t.Fatal("b has the vip")
			}
			if v, _ := owned.Load("a"); v != true {
				t.Fatal("owner callback not called")
			}
			if c := capt.count(vip, n.a.MAC("eth0"), time.Time{}); c < 4 {
				t.Fatalf("saw %d announcements from a, want 2 + 2 (garp_count, garp_delay)", c)
			}
			for _, s := range mb.Status() {
				if s.Master.IsValid() == false || s.MasterPriority != 200 || len(s.Discards) != 0 || s.Counters[CountAdvertsRcvd] == 0 {
					t.Fatalf("b's status %+v", s)
				}
			}
			// Graceful stop: priority 0, b takes over after its skew time.
			stop := time.Now()
			ma.Stop()
			waitState(t, mb, "vi", Master, time.Second)
			took := time.Since(stop)
			t.Logf("graceful failover: %v (skew %v)", took, (156*100*time.Millisecond)/256)
			if ok, _ := hasAddr(t, n.a, "eth0", vip); ok {
				t.Fatal("a kept the vip after Stop")
			}
			if v, _ := owned.Load("a"); v != false {
				t.Fatal("owner not told of the release")
			}
			lab.Eventually(t, time.Second, "b's announcements", func() error {
				if c := capt.count(vip, n.b.MAC("eth0"), stop); c < 2 {
					return fmt.Errorf("%d", c)
				}
				return nil
			})
			if ok, _ := hasAddr(t, n.b, "eth0", vip); !ok {
				t.Fatal("b has no vip")
			}
		})
	}
}

// The master's own interface goes down: Fault, addresses removed; the
// backup takes over within its master down interval. A tracked interface
// going down does the same.
func TestManagerInterfaceTracking(t *testing.T) {
	n := newLAN(t)
	n.l.Veth(n.a, "eth1", n.a, "eth1p")
	vip := netip.MustParseAddr("198.18.1.10")
	ca := baseCfg(200, "198.18.1.10/32")
	ca.TrackInterfaces = []string{"eth1"}
	ma := startManager(t, n.a, []Config{ca}, Options{})
	mb := startManager(t, n.b, []Config{baseCfg(100, "198.18.1.10/32")}, Options{})
	waitState(t, ma, "vi", Master, 3*time.Second)
	waitState(t, mb, "vi", Backup, 3*time.Second)
	setLink(t, n.a, "eth1", false)
	waitState(t, ma, "vi", Fault, time.Second)
	waitState(t, mb, "vi", Master, time.Second)
	if ok, _ := hasAddr(t, n.a, "eth0", vip); ok {
		t.Fatal("a in fault kept the vip")
	}
	setLink(t, n.a, "eth1", true)
	waitState(t, ma, "vi", Master, 2*time.Second)
	waitState(t, mb, "vi", Backup, time.Second)
	// Node loss: a's bridge port down; a sees no carrier (Fault), b takes
	// over within 3 × 100 ms + skew.
	setLink(t, n.sw, "pa", false)
	lost := time.Now()
	waitState(t, mb, "vi", Master, time.Second)
	t.Logf("node loss failover: %v", time.Since(lost))
	waitState(t, ma, "vi", Fault, time.Second)
	setLink(t, n.sw, "pa", true)
	waitState(t, ma, "vi", Master, 2*time.Second)
	waitState(t, mb, "vi", Backup, time.Second)
}

func setLink(t *testing.T, ns *lab.NS, name string, up bool) {
	t.Helper()
	err := ns.Netlink(func(h *netlink.Handle) error {
		l, err := h.LinkByName(name)
		if err != nil {
			return err
		}
		if up {
			return h.LinkSetUp(l)
		}
		return h.LinkSetDown(l)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// Virtual MAC: the master answers for the address with 00:00:5e:00:01:VRID
// from a macvlan; the backup has no such interface.
func TestManagerVirtualMAC(t *testing.T) {
	n := newLAN(t)
	capt := startCapture(t, n.obs)
	ca, cb := baseCfg(200, "198.18.1.10/32"), baseCfg(100, "198.18.1.10/32")
	ca.VirtualMAC, cb.VirtualMAC = true, true
	vip := netip.MustParseAddr("198.18.1.10")
	vmac := net.HardwareAddr{0, 0, 0x5e, 0, 1, 51}
	ma := startManager(t, n.a, []Config{ca}, Options{})
	mb := startManager(t, n.b, []Config{cb}, Options{})
	waitState(t, ma, "vi", Master, 3*time.Second)
	waitState(t, mb, "vi", Backup, 3*time.Second)
	if ok, _ := hasAddr(t, n.a, "gvs4.51", vip); !ok {
		t.Fatal("vip not on a's macvlan")
	}
	if got := n.a.MAC("gvs4.51"); got.String() != vmac.String() {
		t.Fatalf("macvlan MAC %v", got)
	}
	lab.Eventually(t, time.Second, "announcements from the virtual MAC", func() error {
		if c := capt.count(vip, vmac, time.Time{}); c < 2 {
			return fmt.Errorf("%d", c)
		}
		return nil
	})
	// The observer resolves the vip to the virtual MAC.
	if out, err := n.obs.Run("ping", "-c1", "-W1", vip.String()); err != nil && !strings.Contains(err.Error(), "executable") {
		t.Logf("ping: %v %s", err, out)
	}
	ma.Stop()
	waitState(t, mb, "vi", Master, time.Second)
	if ok, _ := hasAddr(t, n.b, "gvs4.51", vip); !ok {
		t.Fatal("vip not on b's macvlan")
	}
	err := n.a.Netlink(func(h *netlink.Handle) error {
		if _, err := h.LinkByName("gvs4.51"); err == nil {
			return fmt.Errorf("a kept its macvlan after stopping")
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// Unicast peers with VRRPv2 and a password.
func TestManagerUnicastV2(t *testing.T) {
	n := newLAN(t)
	ca, cb := baseCfg(200, "198.18.1.10/32"), baseCfg(100, "198.18.1.10/32")
	for _, c := range []*Config{&ca, &cb} {
		c.Version, c.AdvertInt, c.AuthPass = 2, time.Second, "secret"
	}
	ca.UnicastPeers = []netip.Addr{netip.MustParseAddr("198.18.1.2")}
	cb.UnicastPeers = []netip.Addr{netip.MustParseAddr("198.18.1.1")}
	ma := startManager(t, n.a, []Config{ca}, Options{})
	mb := startManager(t, n.b, []Config{cb}, Options{})
	waitState(t, ma, "vi", Master, 5*time.Second)
	waitState(t, mb, "vi", Backup, 5*time.Second)
	time.Sleep(1500 * time.Millisecond)
	for _, s := range mb.Status() {
		if s.State != Backup || s.Counters[CountAdvertsRcvd] == 0 || len(s.Discards) != 0 {
			t.Fatalf("b: %+v", s)
		}
	}
}

// Accept mode off: while master, the host drops packets to the vip (an
// nftables table); the table goes with the mastership.
func TestManagerAcceptMode(t *testing.T) {
	n := newLAN(t)
	c := baseCfg(200, "198.18.1.10/32")
	c.Accept = false
	ma := startManager(t, n.a, []Config{c}, Options{})
	waitState(t, ma, "vi", Master, 3*time.Second)
	if !hasTable(t, n.a) {
		t.Fatal("no nftables table while master with accept = false")
	}
	l, err := n.a.Listen("tcp", "198.18.1.10:7")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	ctxDial := func() error {
		conn, err := net.DialTimeout("tcp", "198.18.1.10:7", 300*time.Millisecond)
		if err == nil {
			conn.Close()
		}
		return err
	}
	var derr error
	n.obs.Do(func() error { derr = ctxDial(); return nil })
	if derr == nil {
		t.Fatal("connection to the vip accepted with accept = false")
	}
	ma.Stop()
	if hasTable(t, n.a) {
		t.Fatal("nftables table left after stop")
	}
}

func hasTable(t *testing.T, ns *lab.NS) bool {
	t.Helper()
	found := false
	err := ns.Do(func() error {
		c, err := nftables.New()
		if err != nil {
			return err
		}
		tables, err := c.ListTablesOfFamily(nftables.TableFamilyINet)
		if err != nil {
			return err
		}
		for _, tb := range tables {
			found = found || tb.Name == NftTable
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return found
}

// Start-up clean-up: addresses and the table a dead gvsd left are removed.
func TestManagerCleansUpLeftovers(t *testing.T) {
	n := newLAN(t)
	n.a.Addr("eth0", "198.18.1.10/32")
	c := baseCfg(100, "198.18.1.10/32")
	c.Interface = "eth0"
	peer := baseCfg(200, "198.18.1.10/32")
	startManager(t, n.b, []Config{peer}, Options{})
	time.Sleep(300 * time.Millisecond)
	ma := startManager(t, n.a, []Config{c}, Options{})
	waitState(t, ma, "vi", Backup, 2*time.Second)
	if ok, _ := hasAddr(t, n.a, "eth0", netip.MustParseAddr("198.18.1.10")); ok {
		t.Fatal("leftover vip not removed")
	}
}
