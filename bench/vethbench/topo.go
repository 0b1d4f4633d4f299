package vethbench

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"gvs/internal/namedns"
)

// NetnsDir is where named network namespaces are bind-mounted (as by
// iproute2, so `ip netns exec` works on them while a run is in progress).
const NetnsDir = namedns.Dir

// NamePrefix starts the name of every namespace a run creates:
// "gvsbench-<pid>-gen" and "gvsbench-<pid>-dut". Namespaces of a process
// that no longer exists are swept by the next run.
const NamePrefix = "gvsbench-"

// The topology's fixed addresses (198.18.0.0/15 only) and MACs (locally
// administered). Frames are prebuilt with these, so no ARP is needed.
var (
	GenAddr = netip.MustParseAddr("198.18.0.1")  // generator veth; also the real of the gvs service
	DUTAddr = netip.MustParseAddr("198.18.0.2")  // DUT veth (not used by the dataplane)
	VIP     = netip.MustParseAddr("198.18.1.10") // destination of every generated frame
	GenMAC  = net.HardwareAddr{0x02, 0x00, 0xc6, 0x12, 0x00, 0x01}
	DUTMAC  = net.HardwareAddr{0x02, 0x00, 0xc6, 0x12, 0x00, 0x02}
)

// Backends are the reals every load-balancing DUT spreads the VIP's flows
// over (gvs: DR with the generator veth's MAC as their next hop; nftables:
// DNAT, with static neighbour entries to the generator veth's MAC), so the
// generator counts what every DUT sends to them.
var Backends = []netip.Addr{netip.MustParseAddr("198.18.0.11"), netip.MustParseAddr("198.18.0.12")}

// VIPPort is the UDP destination port of the generated frames (discard).
const VIPPort = 9

// Netns is a named network namespace of a Topology.
type Netns struct {
	Name   string
	handle netns.NsHandle
}

// Do runs fn on an OS thread switched into the namespace. Sockets, XDP
// links and netlink handles fn creates stay in the namespace and may be
// used from any thread afterwards.
func (ns *Netns) Do(fn func() error) error {
	return namedns.Do(ns.handle, ns.Name, fn)
}

// sysctl writes a sysctl (dotted key) inside the namespace.
func (ns *Netns) sysctl(key, value string) error {
	path := filepath.Join("/proc/sys", strings.ReplaceAll(key, ".", "/"))
	return ns.Do(func() error { return os.WriteFile(path, []byte(value), 0o644) })
}

// Topology is the bench's two namespaces joined by one veth pair:
//
//	<prefix>gen  gen0 198.18.0.1/24  02:00:c6:12:00:01   generator
//	<prefix>dut  dut0 198.18.0.2/24  02:00:c6:12:00:02   device under test
//
// IPv6 is disabled in both (no ND/MLD noise), forwarding is off in the DUT
// namespace (the kernel drops its copy of what AF_PACKET receives).
type Topology struct {
	Prefix             string
	Gen, DUT           *Netns
	GenIf, DUTIf       string
	GenIndex, DUTIndex int

	closeOnce sync.Once
	closeErr  error
}

// NewTopology creates the namespaces and the veth pair. On error everything
// created so far is removed.
func NewTopology() (_ *Topology, err error) {
	if err := namedns.EnsureDir(); err != nil {
		return nil, err
	}
	SweepStale()
	t := &Topology{Prefix: fmt.Sprintf("%s%d-", NamePrefix, os.Getpid()), GenIf: "gen0", DUTIf: "dut0"}
	defer func() {
		if err != nil {
			t.Close()
		}
	}()
	for _, p := range []struct {
		dst  **Netns
		name string
	}{{&t.Gen, t.Prefix + "gen"}, {&t.DUT, t.Prefix + "dut"}} {
		h, err := namedns.Create(p.name)
		if err != nil {
			return nil, fmt.Errorf("create netns %s: %w", p.name, err)
		}
		*p.dst = &Netns{Name: p.name, handle: h}
	}
	for _, ns := range []*Netns{t.Gen, t.DUT} {
		for _, kv := range [][2]string{
			{"net.ipv6.conf.all.disable_ipv6", "1"},
			{"net.ipv6.conf.default.disable_ipv6", "1"},
			{"net.ipv4.ip_forward", "0"},
		} {
			if err := ns.sysctl(kv[0], kv[1]); err != nil {
				return nil, fmt.Errorf("sysctl %s=%s in %s: %w", kv[0], kv[1], ns.Name, err)
			}
		}
	}

	hg, err := netlink.NewHandleAt(t.Gen.handle)
	if err != nil {
		return nil, err
	}
	defer hg.Close()
	hd, err := netlink.NewHandleAt(t.DUT.handle)
	if err != nil {
		return nil, err
	}
	defer hd.Close()
	veth := &netlink.Veth{
		LinkAttrs:        netlink.LinkAttrs{Name: t.GenIf, MTU: 1500, HardwareAddr: GenMAC, NumTxQueues: 1, NumRxQueues: 1},
		PeerName:         t.DUTIf,
		PeerHardwareAddr: DUTMAC,
		PeerMTU:          1500,
		PeerNumTxQueues:  1,
		PeerNumRxQueues:  1,
		PeerNamespace:    netlink.NsFd(int(t.DUT.handle)),
	}
	if err := hg.LinkAdd(veth); err != nil {
		return nil, fmt.Errorf("create veth %s/%s: %w", t.GenIf, t.DUTIf, err)
	}
	for _, x := range []struct {
		h     *netlink.Handle
		name  string
		cidr  string
		index *int
	}{{hg, t.GenIf, "198.18.0.1/24", &t.GenIndex}, {hd, t.DUTIf, "198.18.0.2/24", &t.DUTIndex}} {
		l, err := x.h.LinkByName(x.name)
		if err != nil {
			return nil, fmt.Errorf("veth %s: %w", x.name, err)
		}
		*x.index = l.Attrs().Index
		a, err := netlink.ParseAddr(x.cidr)
		if err != nil {
			return nil, err
		}
		if err := x.h.AddrAdd(l, a); err != nil {
			return nil, fmt.Errorf("address %s on %s: %w", x.cidr, x.name, err)
		}
		if err := x.h.LinkSetUp(l); err != nil {
			return nil, fmt.Errorf("set %s up: %w", x.name, err)
		}
	}
	return t, nil
}

// LinkStats returns the kernel's counters of the generator and DUT veths.
func (t *Topology) LinkStats() (gen, dut *netlink.LinkStatistics, err error) {
	get := func(ns *Netns, name string) (*netlink.LinkStatistics, error) {
		h, err := netlink.NewHandleAt(ns.handle)
		if err != nil {
			return nil, err
		}
		defer h.Close()
		l, err := h.LinkByName(name)
		if err != nil {
			return nil, err
		}
		return l.Attrs().Statistics, nil
	}
	if gen, err = get(t.Gen, t.GenIf); err != nil {
		return nil, nil, err
	}
	dut, err = get(t.DUT, t.DUTIf)
	return gen, dut, err
}

// Close deletes the veth pair and both namespaces. It is idempotent. The
// namespaces disappear once nothing refers to them any more (callers must
// have closed the ports and XDP links they opened inside).
func (t *Topology) Close() error {
	t.closeOnce.Do(func() {
		var errs []error
		if t.Gen != nil {
			if h, err := netlink.NewHandleAt(t.Gen.handle); err == nil {
				if l, err := h.LinkByName(t.GenIf); err == nil {
					if err := h.LinkDel(l); err != nil {
						errs = append(errs, fmt.Errorf("delete veth %s: %w", t.GenIf, err))
					}
				}
				h.Close()
			}
		}
		for _, ns := range []*Netns{t.Gen, t.DUT} {
			if ns == nil {
				continue
			}
			if err := namedns.Delete(ns.Name); err != nil {
				errs = append(errs, fmt.Errorf("delete netns %s: %w", ns.Name, err))
			}
			if ns.handle.IsOpen() {
				ns.handle.Close()
			}
		}
		t.closeErr = errors.Join(errs...)
	})
	return t.closeErr
}

var staleRE = regexp.MustCompile(`^` + NamePrefix + `([0-9]+)-`)

// SweepStale deletes bench namespaces left by a process that is gone
// (killed with SIGKILL, so it ran no cleanup).
func SweepStale() {
	ents, err := os.ReadDir(NetnsDir)
	if err != nil {
		return
	}
	for _, e := range ents {
		m := staleRE.FindStringSubmatch(e.Name())
		if m == nil {
			continue
		}
		pid, err := strconv.Atoi(m[1])
		if err != nil || pid == os.Getpid() {
			continue
		}
		if unix.Kill(pid, 0) == unix.ESRCH {
			namedns.Delete(e.Name())
		}
	}
}

// ListNetns returns the namespaces of this process's runs still present
// (for checks after Run).
func ListNetns() []string {
	var out []string
	own := fmt.Sprintf("%s%d-", NamePrefix, os.Getpid())
	ents, _ := os.ReadDir(NetnsDir)
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), own) {
			out = append(out, e.Name())
		}
	}
	return out
}
