package tests

import (
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"gvs/ctl/api"
	"gvs/tests/lab"
)

// VRRP with real peers: gvs and keepalived as the two routers of a
// virtual router, both ways round, on a bridge; and the failover times of
// gvs next to keepalived's, measured in the same run.
//
//	a 198.18.1.1 / 2001:db8:1::1 ─┐
//	b 198.18.1.2 / 2001:db8:1::2 ─┼─ br0 (sw) ── c 198.18.1.254 (observer: captures GARP / NA)
//
// Who is master is read from the kernel: the node that has the VIP on its
// interface (both gvs and keepalived add it on becoming master and remove
// it on leaving). Transition times come from netlink address events in the
// nodes' namespaces, so gvs and keepalived are timed the same way.

const (
	vrrpVIP4 = "198.18.1.10"
	vrrpVIP6 = "2001:db8:1::10"
)

// vrrpFam is the address family and VRRP version of a run.
type vrrpFam struct {
	name    string
	v6      bool
	version int
	advert  time.Duration
	auth    string
}

var (
	famV3v4 = vrrpFam{name: "v3-ipv4", version: 3, advert: 100 * time.Millisecond}
	famV3v6 = vrrpFam{name: "v3-ipv6", v6: true, version: 3, advert: 100 * time.Millisecond}
	famV2v4 = vrrpFam{name: "v2-ipv4", version: 2, advert: time.Second, auth: "gvs-pass"}
)

func (f vrrpFam) vip() netip.Addr {
	if f.v6 {
		return netip.MustParseAddr(vrrpVIP6)
	}
	return netip.MustParseAddr(vrrpVIP4)
}

func (f vrrpFam) vipCIDR() string {
	if f.v6 {
		return vrrpVIP6 + "/64"
	}
	return vrrpVIP4 + "/24"
}

// skew and mdi are RFC 5798 §6.1's Skew_Time and Master_Down_Interval of a
// backup of priority prio (RFC 3768's for v2).
func (f vrrpFam) skew(prio int) time.Duration {
	if f.version == 2 {
		return time.Duration(256-prio) * time.Second / 256
	}
	return time.Duration(256-prio) * f.advert / 256
}

func (f vrrpFam) mdi(prio int) time.Duration { return 3*f.advert + f.skew(prio) }

// vnode is one router of the pair.
type vnode struct {
	t      *testing.T
	name   string
	ns     *lab.NS
	port   string // its port on the bridge
	mac    net.HardwareAddr
	kind   string // "gvs" or "keepalived"
	proc   *lab.Proc
	dir    string
	sock   string
	events *addrEvents
}

// vrrpSpec is what a node runs.
type vrrpSpec struct {
	prio    int
	preempt bool
	unicast bool // advertise to the other node's address instead of the group
}

// unicastAddrs returns n's address and its peer's (IPv4 lab addresses).
func (v *vrrpLab) unicastAddrs(n *vnode) (src, peer string) {
	if n == v.a {
		return "198.18.1.1", "198.18.1.2"
	}
	return "198.18.1.2", "198.18.1.1"
}

type vrrpLab struct {
	t     *testing.T
	l     *lab.Lab
	fam   vrrpFam
	sw, c *lab.NS
	a, b  *vnode
	capt  *announceCapture
}

func newVRRPLab(t *testing.T, fam vrrpFam) *vrrpLab {
	if _, err := exec.LookPath("keepalived"); err != nil {
		msg := "keepalived not installed (apt-get install keepalived; make deps-system does it)"
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	l := lab.New(t)
	v := &vrrpLab{t: t, l: l, fam: fam, sw: l.NS("sw"), c: l.NS("c")}
	v.a = &vnode{t: t, name: "a", ns: l.NS("a"), port: "pa", mac: net.HardwareAddr{2, 0, 0, 0, 1, 1}}
	v.b = &vnode{t: t, name: "b", ns: l.NS("b"), port: "pb", mac: net.HardwareAddr{2, 0, 0, 0, 1, 2}}
	for _, ns := range []*lab.NS{v.a.ns, v.b.ns, v.c} {
		// Link-local addresses usable at once (keepalived and gvs both
		// advertise IPv6 from them).
		ns.Sysctl("net.ipv6.conf.default.accept_dad", "0")
		ns.Sysctl("net.ipv6.conf.all.accept_dad", "0")
	}
	l.Veth(v.a.ns, "eth0", v.sw, "pa", lab.MAC(v.a.mac, nil))
	l.Veth(v.b.ns, "eth0", v.sw, "pb", lab.MAC(v.b.mac, nil))
	l.Veth(v.c, "eth0", v.sw, "pc")
	l.Bridge(v.sw, "br0", "pa", "pb", "pc")
	for i, n := range []*vnode{v.a, v.b} {
		n.ns.Addr("eth0", fmt.Sprintf("198.18.1.%d/24", i+1))
		n.ns.Addr("eth0", fmt.Sprintf("2001:db8:1::%d/64", i+1))
		n.ns.Sysctl("net.ipv4.ip_forward", "0")
		n.dir = t.TempDir()
		n.events = watchAddrs(t, n.ns)
	}
	v.c.Addr("eth0", "198.18.1.254/24")
	v.c.Addr("eth0", "2001:db8:1::fe/64")
	v.capt = captureAnnouncements(t, v.c)
	return v
}

// start runs the node's router with spec.
func (v *vrrpLab) start(n *vnode, kind string, s vrrpSpec) {
	v.t.Helper()
	n.kind = kind
	switch kind {
	case "gvs":
		v.startGVS(n, s)
	case "keepalived":
		v.startKeepalived(n, s)
	default:
		v.t.Fatalf("unknown router kind %q", kind)
	}
}

func (v *vrrpLab) startGVS(n *vnode, s vrrpSpec) {
	f := v.fam
	var b strings.Builder
	fmt.Fprintf(&b, "[global]\nworkers = 1\nsessions = 4096\n\n[[port]]\nname = \"eth0\"\ndriver = \"afpacket\"\n\n")
	fmt.Fprintf(&b, "[[vrrp]]\nname = \"vi\"\ninterface = \"eth0\"\nvrid = 51\npriority = %d\nadvert_int = %q\nversion = %d\npreempt = %v\naccept = true\nvips = [%q]\ngarp_count = 3\ngarp_delay = \"1s\"\n",
		s.prio, f.advert.String(), f.version, s.preempt, f.vipCIDR())
	if f.auth != "" {
		fmt.Fprintf(&b, "auth_pass = %q\n", f.auth)
	}
	if s.unicast {
		src, peer := v.unicastAddrs(n)
		fmt.Fprintf(&b, "unicast_src = %q\nunicast_peers = [%q]\n", src, peer)
	}
	cfg := filepath.Join(n.dir, "gvsd.toml")
	if err := os.WriteFile(cfg, []byte(b.String()), 0o644); err != nil {
		v.t.Fatal(err)
	}
	n.sock = filepath.Join(n.dir, "gvsd.sock")
	n.proc = n.ns.Start(bin(v.t, "gvsd"), "--config", cfg, "--log-level", "debug", "--socket", n.sock)
	lab.Eventually(v.t, 10*time.Second, "gvsd started in "+n.name, func() error {
		if n.proc.Exited() {
			v.t.Fatalf("gvsd exited:\n%s", n.proc.Output())
		}
		if !strings.Contains(n.proc.Output(), "gvs started") {
			return fmt.Errorf("not yet")
		}
		return nil
	})
}

func (v *vrrpLab) startKeepalived(n *vnode, s vrrpSpec) {
	f := v.fam
	var b strings.Builder
	fmt.Fprintf(&b, "global_defs {\n  router_id %s\n  vrrp_version %d\n  vrrp_garp_master_delay 1\n  vrrp_garp_master_repeat 3\n}\n", n.name, f.version)
	fmt.Fprintf(&b, "vrrp_instance VI {\n  state BACKUP\n  interface eth0\n  virtual_router_id 51\n  priority %d\n  advert_int %g\n", s.prio, f.advert.Seconds())
	if !s.preempt {
		b.WriteString("  nopreempt\n")
	}
	if f.auth != "" {
		fmt.Fprintf(&b, "  authentication {\n    auth_type PASS\n    auth_pass %s\n  }\n", f.auth)
	}
	if s.unicast {
		src, peer := v.unicastAddrs(n)
		fmt.Fprintf(&b, "  unicast_src_ip %s\n  unicast_peer {\n    %s\n  }\n", src, peer)
	}
	fmt.Fprintf(&b, "  virtual_ipaddress {\n    %s dev eth0\n  }\n}\n", f.vipCIDR())
	cfg := filepath.Join(n.dir, "keepalived.conf")
	if err := os.WriteFile(cfg, []byte(b.String()), 0o644); err != nil {
		v.t.Fatal(err)
	}
	n.proc = n.ns.Start("keepalived", "-f", cfg, "-P", "-n", "-l", "-D", "-G",
		"-p", filepath.Join(n.dir, "keepalived.pid"), "-r", filepath.Join(n.dir, "vrrp.pid"))
	lab.Eventually(v.t, 10*time.Second, "keepalived started in "+n.name, func() error {
		if n.proc.Exited() {
			v.t.Fatalf("keepalived exited:\n%s", n.proc.Output())
		}
		if !strings.Contains(n.proc.Output(), "Entering BACKUP STATE") && !strings.Contains(n.proc.Output(), "Entering MASTER STATE") {
			return fmt.Errorf("not yet:\n%s", n.proc.Output())
		}
		return nil
	})
}

// stop stops the node's router gracefully (SIGTERM) and waits for it.
func (n *vnode) stop() {
	n.t.Helper()
	if n.proc == nil {
		return
	}
	if err := n.proc.Stop(); err != nil {
		n.t.Fatalf("stop %s in %s: %v", n.kind, n.name, err)
	}
	n.proc = nil
}

// signal sends SIGTERM without waiting.
func (n *vnode) signal() {
	if err := syscall.Kill(n.proc.Pid(), syscall.SIGTERM); err != nil {
		n.t.Fatal(err)
	}
}

func (n *vnode) wait() {
	n.t.Helper()
	if err := n.proc.Wait(10 * time.Second); err != nil && !strings.Contains(err.Error(), "signal") && !strings.Contains(err.Error(), "exit status") {
		n.t.Fatalf("%s in %s: %v", n.kind, n.name, err)
	}
	n.proc = nil
}

// hasVIP reports whether the node has the VIP on eth0 now.
func (n *vnode) hasVIP(vip netip.Addr) bool {
	n.t.Helper()
	found := false
	err := n.ns.Netlink(func(h *netlink.Handle) error {
		l, err := h.LinkByName("eth0")
		if err != nil {
			return err
		}
		addrs, err := h.AddrList(l, netlink.FAMILY_ALL)
		if err != nil {
			return err
		}
		for _, a := range addrs {
			if ip, ok := netip.AddrFromSlice(a.IP); ok && ip.Unmap() == vip {
				found = true
			}
		}
		return nil
	})
	if err != nil {
		n.t.Fatal(err)
	}
	return found
}

// linkLocal returns the node's IPv6 link-local address on eth0.
func (n *vnode) linkLocal() netip.Addr {
	n.t.Helper()
	var ll netip.Addr
	err := n.ns.Netlink(func(h *netlink.Handle) error {
		l, err := h.LinkByName("eth0")
		if err != nil {
			return err
		}
		addrs, err := h.AddrList(l, netlink.FAMILY_V6)
		if err != nil {
			return err
		}
		for _, a := range addrs {
			if ip, ok := netip.AddrFromSlice(a.IP); ok && ip.IsLinkLocalUnicast() {
				ll = ip
			}
		}
		return nil
	})
	if err != nil || !ll.IsValid() {
		n.t.Fatalf("link-local of %s: %v", n.name, err)
	}
	return ll
}

// gvsState asks a gvs node's control socket for its instance.
func (n *vnode) gvsState() api.VRRPStatus {
	n.t.Helper()
	c, err := api.Dial(n.sock)
	if err != nil {
		n.t.Fatal(err)
	}
	defer c.Close()
	var vs []api.VRRPStatus
	if err := c.Call(api.OpVRRP, nil, &vs); err != nil || len(vs) != 1 {
		n.t.Fatalf("vrrp status: %v %v", err, vs)
	}
	return vs[0]
}

// master waits until exactly want has the VIP (and the other not).
func (v *vrrpLab) waitMaster(want *vnode, timeout time.Duration, what string) {
	v.t.Helper()
	other := v.a
	if want == v.a {
		other = v.b
	}
	vip := v.fam.vip()
	lab.Eventually(v.t, timeout, what, func() error {
		if !want.hasVIP(vip) || other.hasVIP(vip) {
			return fmt.Errorf("%s (%s) has vip %v, %s (%s) has vip %v", want.name, want.kind, want.hasVIP(vip), other.name, other.kind, other.hasVIP(vip))
		}
		return nil
	})
}

// stable checks for d that want stays the only master.
func (v *vrrpLab) stable(want *vnode, d time.Duration, what string) {
	v.t.Helper()
	other := v.a
	if want == v.a {
		other = v.b
	}
	vip := v.fam.vip()
	for end := time.Now().Add(d); time.Now().Before(end); time.Sleep(25 * time.Millisecond) {
		if !want.hasVIP(vip) || other.hasVIP(vip) {
			v.t.Fatalf("%s: %s (%s) has vip %v, %s (%s) has vip %v", what, want.name, want.kind, want.hasVIP(vip), other.name, other.kind, other.hasVIP(vip))
		}
	}
}

// tookOver returns when n added the VIP after t0 (waiting up to timeout).
func (v *vrrpLab) tookOver(n *vnode, t0 time.Time, timeout time.Duration) time.Duration {
	v.t.Helper()
	vip := v.fam.vip()
	var at time.Time
	lab.Eventually(v.t, timeout, n.name+" adds the vip", func() error {
		var ok bool
		if at, ok = n.events.added(vip, t0); !ok {
			return fmt.Errorf("no address event yet")
		}
		return nil
	})
	return at.Sub(t0)
}

// announced checks that the observer saw n announce the VIP after t0.
func (v *vrrpLab) announced(n *vnode, t0 time.Time) {
	v.t.Helper()
	vip := v.fam.vip()
	lab.Eventually(v.t, 2*time.Second, fmt.Sprintf("%s (%s) announces %v (GARP / NA seen on the wire)", n.name, n.kind, vip), func() error {
		if c := v.capt.count(vip, n.mac, t0); c == 0 {
			return fmt.Errorf("none seen")
		}
		return nil
	})
}

func (v *vrrpLab) setPort(n *vnode, up bool) {
	v.t.Helper()
	err := v.sw.Netlink(func(h *netlink.Handle) error {
		l, err := h.LinkByName(n.port)
		if err != nil {
			return err
		}
		if up {
			return h.LinkSetUp(l)
		}
		return h.LinkSetDown(l)
	})
	if err != nil {
		v.t.Fatal(err)
	}
}

// partition detaches n's port from the bridge (its link stays up) or
// attaches it again.
func (v *vrrpLab) partition(n *vnode, cut bool) {
	v.t.Helper()
	err := v.sw.Netlink(func(h *netlink.Handle) error {
		l, err := h.LinkByName(n.port)
		if err != nil {
			return err
		}
		if cut {
			return h.LinkSetNoMaster(l)
		}
		br, err := h.LinkByName("br0")
		if err != nil {
			return err
		}
		return h.LinkSetMaster(l, br)
	})
	if err != nil {
		v.t.Fatal(err)
	}
}

// TestVRRPInterop runs gvs against keepalived, both ways round, for
// VRRPv3 over IPv4 and IPv6 and VRRPv2 (with a password) over IPv4:
// preemption off and on, election by priority, gratuitous ARP / NA on the
// wire, graceful stop (priority 0), node loss (the master's link down),
// partition and heal, and the equal-priority tie-break.
func TestVRRPInterop(t *testing.T) {
	for _, fam := range []vrrpFam{famV3v4, famV3v6, famV2v4} {
		for _, order := range [][2]string{{"gvs", "keepalived"}, {"keepalived", "gvs"}} {
			t.Run(fmt.Sprintf("%s/%s-over-%s", fam.name, order[0], order[1]), func(t *testing.T) {
				interop(t, fam, order[0], order[1])
			})
		}
	}
}

// interop: node a runs hiKind at priority 200, node b loKind at 100.
func interop(t *testing.T, fam vrrpFam, hiKind, loKind string) {
	v := newVRRPLab(t, fam)
	hi, lo := v.a, v.b
	mdiLo, mdiHi := fam.mdi(100), fam.mdi(200)
	slack := 2 * time.Second

	// The low-priority router alone becomes master.
	v.start(lo, loKind, vrrpSpec{prio: 100, preempt: true})
	t0 := time.Now()
	v.waitMaster(lo, mdiLo+slack, "lo alone becomes master")
	v.announced(lo, t0)

	// Preemption off: the higher-priority router stays backup.
	v.start(hi, hiKind, vrrpSpec{prio: 200, preempt: false})
	v.stable(lo, mdiHi+2*fam.advert, "hi with preemption off does not take over")
	if hi.kind == "gvs" {
		if st := hi.gvsState(); st.State != "backup" || st.MasterPriority != 100 {
			t.Fatalf("gvs with preemption off: %+v", st)
		}
	}
	hi.stop()

	// Preemption on: election by priority, the higher one takes over.
	v.start(hi, hiKind, vrrpSpec{prio: 200, preempt: true})
	t0 = time.Now()
	v.waitMaster(hi, 2*mdiHi+slack, "hi preempts lo")
	v.announced(hi, t0)
	v.stable(hi, mdiLo+fam.advert, "hi stays master")
	if lo.kind == "gvs" {
		st := lo.gvsState()
		if st.State != "backup" || st.MasterPriority != 200 || len(st.Discards) != 0 {
			t.Fatalf("gvs backup: %+v", st)
		}
		t.Logf("gvs backup status: %+v", st)
	}
	if hi.kind == "gvs" {
		t.Logf("gvs master status: %+v", hi.gvsState())
	}

	// Graceful stop: the master sends priority 0, the backup takes over
	// after its skew time.
	t0 = time.Now()
	hi.signal()
	took := v.tookOver(lo, t0, mdiLo+slack)
	hi.wait()
	v.waitMaster(lo, time.Second, "lo master after graceful stop")
	v.announced(lo, t0)
	bound := fam.skew(100) + 100*time.Millisecond
	t.Logf("FAILOVER %s graceful: %s takes over from %s in %v (bound skew + 100ms = %v)", fam.name, loKind, hiKind, took.Round(time.Millisecond), bound)
	if loKind == "gvs" && took > bound {
		t.Errorf("gvs took %v to take over after priority 0, want <= %v", took, bound)
	}

	// Back to hi master, then node loss: hi's link goes down.
	v.start(hi, hiKind, vrrpSpec{prio: 200, preempt: true})
	v.waitMaster(hi, 2*mdiHi+slack, "hi preempts again")
	v.stable(hi, 2*fam.advert, "hi master")
	t0 = time.Now()
	v.setPort(hi, false)
	took = v.tookOver(lo, t0, mdiLo+slack)
	bound = mdiLo + 100*time.Millisecond
	t.Logf("FAILOVER %s node loss: %s takes over from %s in %v (bound 3 x advert + skew + 100ms = %v)", fam.name, loKind, hiKind, took.Round(time.Millisecond), bound)
	if loKind == "gvs" && took > bound {
		t.Errorf("gvs took %v to take over after the master's link went down, want <= %v", took, bound)
	}
	if !lo.hasVIP(fam.vip()) {
		t.Fatal("lo lost the vip again")
	}
	v.announced(lo, t0)
	// hi comes back and preempts; one master afterwards.
	v.setPort(hi, true)
	v.waitMaster(hi, 2*mdiHi+slack, "hi back after its link is up")
	v.stable(hi, mdiLo+fam.advert, "one master after the link is back")

	// Partition: hi's port leaves the bridge (its link stays up): two
	// masters; heal: one (hi, the higher priority).
	v.partition(hi, true)
	lab.Eventually(t, mdiLo+slack, "lo master during the partition", func() error {
		if !lo.hasVIP(fam.vip()) || !hi.hasVIP(fam.vip()) {
			return fmt.Errorf("a %v b %v", hi.hasVIP(fam.vip()), lo.hasVIP(fam.vip()))
		}
		return nil
	})
	v.partition(hi, false)
	v.waitMaster(hi, mdiLo+slack, "heal: the higher priority stays master")
	v.stable(hi, mdiLo+fam.advert, "one master after the heal")

	// Equal priority: lo restarts at hi's priority; a partition makes both
	// masters; on heal the greater primary address wins (RFC 5798 §6.4.3).
	lo.stop()
	v.start(lo, loKind, vrrpSpec{prio: 200, preempt: true})
	v.stable(hi, mdiHi+fam.advert, "equal priority: the running master stays")
	v.partition(hi, true)
	lab.Eventually(t, mdiHi+slack, "both masters during the partition", func() error {
		if !lo.hasVIP(fam.vip()) || !hi.hasVIP(fam.vip()) {
			return fmt.Errorf("a %v b %v", hi.hasVIP(fam.vip()), lo.hasVIP(fam.vip()))
		}
		return nil
	})
	v.partition(hi, false)
	winner, loser := lo, hi // b: 198.18.1.2 > 198.18.1.1, fe80::ff:fe00:102 > ...101
	if fam.v6 && hi.linkLocal().Compare(lo.linkLocal()) > 0 {
		winner, loser = hi, lo
	}
	v.waitMaster(winner, mdiHi+slack, fmt.Sprintf("tie-break: %s (%s) with the greater address wins", winner.name, winner.kind))
	v.stable(winner, mdiHi+fam.advert, "one master after the tie-break")
	if loser.kind == "gvs" {
		if st := loser.gvsState(); st.State != "backup" || !strings.Contains(st.Reason, "equal priority") {
			t.Fatalf("gvs lost the tie-break without saying so: %+v", st)
		}
	}
	v.a.stop()
	v.b.stop()
}

// TestVRRPFailoverTiming measures the failover of a gvs pair and of a
// keepalived pair in the same run, with 100 ms adverts: graceful stop
// (priority 0) and node loss (the master's link down). gvs must take over
// within skew + 100 ms and 3 × advert + skew + 100 ms (under 0.5 s).
func TestVRRPFailoverTiming(t *testing.T) {
	const reps = 5
	type result struct{ graceful, loss []time.Duration }
	results := map[string]*result{}
	var kinds []string
	for _, kind := range []string{"gvs", "keepalived"} {
		kinds = append(kinds, kind)
		r := &result{}
		results[kind] = r
		t.Run(kind, func(t *testing.T) {
			fam := famV3v4
			v := newVRRPLab(t, fam)
			hi, lo := v.a, v.b
			v.start(lo, kind, vrrpSpec{prio: 100, preempt: true})
			v.start(hi, kind, vrrpSpec{prio: 200, preempt: true})
			for i := 0; i < reps; i++ {
				v.waitMaster(hi, 3*time.Second, "hi master")
				v.stable(hi, 300*time.Millisecond, "hi master")
				t0 := time.Now()
				hi.signal()
				r.graceful = append(r.graceful, v.tookOver(lo, t0, 3*time.Second))
				hi.wait()
				v.start(hi, kind, vrrpSpec{prio: 200, preempt: true})
				v.waitMaster(hi, 3*time.Second, "hi master again")
				v.stable(hi, 300*time.Millisecond+time.Duration(i*37)*time.Millisecond, "hi master")
				t0 = time.Now()
				v.setPort(hi, false)
				r.loss = append(r.loss, v.tookOver(lo, t0, 3*time.Second))
				v.setPort(hi, true)
			}
			v.a.stop()
			v.b.stop()
			if kind == "gvs" {
				g, l := slices.Max(r.graceful), slices.Max(r.loss)
				if g > fam.skew(100)+100*time.Millisecond {
					t.Errorf("gvs graceful failover up to %v, want <= skew + 100ms = %v", g, fam.skew(100)+100*time.Millisecond)
				}
				if l > fam.mdi(100)+100*time.Millisecond || l >= 500*time.Millisecond {
					t.Errorf("gvs node-loss failover up to %v, want <= 3 x advert + skew + 100ms = %v and < 500ms", l, fam.mdi(100)+100*time.Millisecond)
				}
			}
		})
	}
	fam := famV3v4
	t.Logf("FAILOVER TIMES (VRRPv3, IPv4, advert 100ms, backup priority 100: skew %v, master down interval %v; %d runs each; min / median / max)",
		fam.skew(100), fam.mdi(100), reps)
	for _, k := range kinds {
		r := results[k]
		if len(r.graceful) == 0 {
			continue
		}
		t.Logf("  %-10s graceful stop (priority 0): %s   node loss (link down): %s", k, stats(r.graceful), stats(r.loss))
	}
}

func stats(ds []time.Duration) string {
	s := slices.Clone(ds)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	r := func(d time.Duration) time.Duration { return d.Round(time.Millisecond) }
	return fmt.Sprintf("%v / %v / %v", r(s[0]), r(s[len(s)/2]), r(s[len(s)-1]))
}

// addrEvents records a namespace's address additions and removals.
type addrEvents struct {
	mu  sync.Mutex
	evs []addrEvent
}

type addrEvent struct {
	at    time.Time
	addr  netip.Addr
	added bool
}

func watchAddrs(t *testing.T, ns *lab.NS) *addrEvents {
	t.Helper()
	h, err := netns.GetFromPath(ns.Path())
	if err != nil {
		t.Fatal(err)
	}
	ch := make(chan netlink.AddrUpdate, 256)
	done := make(chan struct{})
	if err := netlink.AddrSubscribeWithOptions(ch, done, netlink.AddrSubscribeOptions{Namespace: &h}); err != nil {
		h.Close()
		t.Fatal(err)
	}
	e := &addrEvents{}
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		for u := range ch {
			ip, ok := netip.AddrFromSlice(u.LinkAddress.IP)
			if !ok {
				continue
			}
			e.mu.Lock()
			e.evs = append(e.evs, addrEvent{at: time.Now(), addr: ip.Unmap(), added: u.NewAddr})
			e.mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		close(done)
		h.Close()
		select {
		case <-stopped:
		case <-time.After(time.Second):
		}
	})
	return e
}

// added returns the first addition of a after t0.
func (e *addrEvents) added(a netip.Addr, t0 time.Time) (time.Time, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, ev := range e.evs {
		if ev.addr == a && ev.added && !ev.at.Before(t0) {
			return ev.at, true
		}
	}
	return time.Time{}, false
}

// announceCapture records the gratuitous ARPs and unsolicited neighbour
// advertisements a namespace sees on eth0 (an AF_PACKET socket).
type announceCapture struct {
	mu   sync.Mutex
	seen []announcement
}

type announcement struct {
	at  time.Time
	mac string
	vip netip.Addr
}

func captureAnnouncements(t *testing.T, ns *lab.NS) *announceCapture {
	t.Helper()
	c := &announceCapture{}
	var fd int
	err := ns.Do(func() error {
		var err error
		fd, err = unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, int(htons16(unix.ETH_P_ALL)))
		if err != nil {
			return err
		}
		l, err := net.InterfaceByName("eth0")
		if err != nil {
			return err
		}
		return unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons16(unix.ETH_P_ALL), Ifindex: l.Index})
	})
	if err != nil {
		t.Fatal(err)
	}
	tv := unix.NsecToTimeval(int64(100 * time.Millisecond))
	unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv)
	done, stopped := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(stopped)
		buf := make([]byte, 2048)
		for {
			select {
			case <-done:
				return
			default:
			}
			n, _, err := unix.Recvfrom(fd, buf, 0)
			if err != nil {
				continue
			}
			if mac, vip, ok := parseAnnouncement(buf[:n]); ok {
				c.mu.Lock()
				c.seen = append(c.seen, announcement{at: time.Now(), mac: mac, vip: vip})
				c.mu.Unlock()
			}
		}
	}()
	t.Cleanup(func() { close(done); <-stopped; unix.Close(fd) })
	return c
}

func htons16(v uint16) uint16 { return v<<8 | v>>8 }

// parseAnnouncement recognises a gratuitous ARP (sender = target protocol
// address; the sender hardware address is the announcer) and an
// unsolicited neighbour advertisement (type 136, Solicited flag clear; the
// announcer is the Ethernet source).
func parseAnnouncement(f []byte) (mac string, vip netip.Addr, ok bool) {
	if len(f) < 14 {
		return "", vip, false
	}
	switch binary.BigEndian.Uint16(f[12:]) {
	case unix.ETH_P_ARP:
		a := f[14:]
		if len(a) < 28 {
			return "", vip, false
		}
		spa, tpa := netip.AddrFrom4([4]byte(a[14:18])), netip.AddrFrom4([4]byte(a[24:28]))
		if spa == tpa {
			return net.HardwareAddr(a[8:14]).String(), spa, true
		}
	case unix.ETH_P_IPV6:
		ip := f[14:]
		if len(ip) >= 64 && ip[6] == unix.IPPROTO_ICMPV6 && ip[40] == 136 && ip[44]&0x40 == 0 {
			return net.HardwareAddr(f[6:12]).String(), netip.AddrFrom16([16]byte(ip[48:64])), true
		}
	}
	return "", vip, false
}

func (c *announceCapture) count(vip netip.Addr, mac net.HardwareAddr, since time.Time) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, a := range c.seen {
		if a.vip == vip && a.mac == mac.String() && !a.at.Before(since) {
			n++
		}
	}
	return n
}

// TestVRRPCrash: a gvsd killed outright while master (SIGKILL: no clean-up
// at all) must not leave its host answering for the VIP: the addresses it
// adds have a lifetime it keeps renewing, so they expire by themselves.
// The backup takes over within its master down interval; the restarted
// gvsd removes any leftover first and, being of higher priority, preempts.
func TestVRRPCrash(t *testing.T) {
	fam := famV3v4
	v := newVRRPLab(t, fam)
	hi, lo := v.a, v.b
	v.start(lo, "gvs", vrrpSpec{prio: 100, preempt: true})
	v.start(hi, "gvs", vrrpSpec{prio: 200, preempt: true})
	v.waitMaster(hi, 3*time.Second, "hi master")
	t0 := time.Now()
	if err := syscall.Kill(hi.proc.Pid(), syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	took := v.tookOver(lo, t0, 2*time.Second)
	t.Logf("backup took over %v after the master was killed", took.Round(time.Millisecond))
	if !hi.hasVIP(fam.vip()) {
		t.Log("the killed master's vip is already gone")
	}
	lab.Eventually(t, 5*time.Second, "the killed master's vip expires", func() error {
		if hi.hasVIP(fam.vip()) {
			return fmt.Errorf("still there after %v", time.Since(t0).Round(time.Millisecond))
		}
		return nil
	})
	gone := time.Since(t0)
	t.Logf("the killed master's vip expired %v after the kill (lifetime 3s)", gone.Round(time.Millisecond))
	hi.wait()
	v.waitMaster(lo, time.Second, "lo master")
	// Restart: a leftover (simulated: the address added by hand) is
	// removed at start, then hi preempts.
	hi.ns.Addr("eth0", fam.vipCIDR())
	v.start(hi, "gvs", vrrpSpec{prio: 200, preempt: true})
	lab.Eventually(t, 2*time.Second, "clean-up at start", func() error {
		if !strings.Contains(hi.proc.Output(), "removed leftover virtual addresses") {
			return fmt.Errorf("not logged:\n%s", hi.proc.Output())
		}
		return nil
	})
	v.waitMaster(hi, 3*time.Second, "hi master again")
	v.stable(hi, time.Second, "one master")
	v.a.stop()
	v.b.stop()
}

// TestVRRPInteropUnicast: gvs and keepalived with unicast peers (VRRPv3,
// IPv4), both ways round: election, graceful stop, node loss.
func TestVRRPInteropUnicast(t *testing.T) {
	for _, order := range [][2]string{{"gvs", "keepalived"}, {"keepalived", "gvs"}} {
		t.Run(order[0]+"-over-"+order[1], func(t *testing.T) {
			fam := famV3v4
			v := newVRRPLab(t, fam)
			hi, lo := v.a, v.b
			v.start(lo, order[1], vrrpSpec{prio: 100, preempt: true, unicast: true})
			v.start(hi, order[0], vrrpSpec{prio: 200, preempt: true, unicast: true})
			v.waitMaster(hi, 3*time.Second, "hi master")
			v.stable(hi, fam.mdi(100)+fam.advert, "hi stays master")
			if lo.kind == "gvs" {
				if st := lo.gvsState(); st.State != "backup" || len(st.Discards) != 0 || st.Counters["adverts_received"] == 0 {
					t.Fatalf("gvs backup: %+v", st)
				}
			}
			t0 := time.Now()
			hi.signal()
			took := v.tookOver(lo, t0, 2*time.Second)
			hi.wait()
			t.Logf("FAILOVER unicast graceful: %s takes over from %s in %v", order[1], order[0], took.Round(time.Millisecond))
			if order[1] == "gvs" && took > fam.skew(100)+100*time.Millisecond {
				t.Errorf("gvs took %v", took)
			}
			v.start(hi, order[0], vrrpSpec{prio: 200, preempt: true, unicast: true})
			v.waitMaster(hi, 3*time.Second, "hi preempts")
			v.stable(hi, 2*fam.advert, "hi master")
			t0 = time.Now()
			v.setPort(hi, false)
			took = v.tookOver(lo, t0, 2*time.Second)
			t.Logf("FAILOVER unicast node loss: %s takes over from %s in %v", order[1], order[0], took.Round(time.Millisecond))
			if order[1] == "gvs" && took > fam.mdi(100)+100*time.Millisecond {
				t.Errorf("gvs took %v", took)
			}
			v.setPort(hi, true)
			v.waitMaster(hi, 5*time.Second, "hi back")
			v.stable(hi, fam.mdi(100), "one master")
			v.a.stop()
			v.b.stop()
		})
	}
}
