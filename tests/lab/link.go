package lab

import (
	"fmt"
	"net"

	"github.com/vishvananda/netlink"

	"gvs/internal/ethtool"
)

// VethOpt is an option of Lab.Veth.
type VethOpt func(*vethConfig)

type vethConfig struct {
	mtu    int
	queues int
	macA   net.HardwareAddr
	macB   net.HardwareAddr
}

// MTU sets the MTU of both ends.
func MTU(n int) VethOpt { return func(c *vethConfig) { c.mtu = n } }

// Queues gives both ends n RX and n TX queues (multi-queue veth needs the
// same numbers on both ends).
func Queues(n int) VethOpt { return func(c *vethConfig) { c.queues = n } }

// MAC sets the hardware addresses of the two ends (nil: random).
func MAC(a, b net.HardwareAddr) VethOpt {
	return func(c *vethConfig) { c.macA, c.macB = a, b }
}

// Veth creates a veth pair: aName in a, bName in b (a and b may be the same
// namespace), both up.
func (l *Lab) Veth(a *NS, aName string, b *NS, bName string, opt ...VethOpt) {
	l.t.Helper()
	var c vethConfig
	for _, o := range opt {
		o(&c)
	}
	v := &netlink.Veth{
		LinkAttrs:        netlink.LinkAttrs{Name: aName, MTU: c.mtu, HardwareAddr: c.macA},
		PeerName:         bName,
		PeerHardwareAddr: c.macB,
		PeerMTU:          uint32(c.mtu),
	}
	if c.queues > 0 {
		v.NumTxQueues, v.NumRxQueues = c.queues, c.queues
		v.PeerNumTxQueues, v.PeerNumRxQueues = uint32(c.queues), uint32(c.queues)
	}
	if b != a {
		v.PeerNamespace = netlink.NsFd(int(b.handle))
	}
	err := a.withNetlink(func(h *netlink.Handle) error {
		if err := h.LinkAdd(v); err != nil {
			return err
		}
		return setUp(a, h, aName)
	})
	if err == nil {
		err = b.withNetlink(func(h *netlink.Handle) error { return setUp(b, h, bName) })
	}
	if err != nil {
		l.t.Fatalf("lab: veth %s/%s — %s/%s: %v", a.name, aName, b.name, bName, err)
	}
}

func setUp(ns *NS, h *netlink.Handle, ifname string) error {
	l, err := ns.link(h, ifname)
	if err != nil {
		return err
	}
	return h.LinkSetUp(l)
}

// Bridge creates the bridge name in ns, enslaves the links ports (already
// in ns) to it and brings everything up.
func (l *Lab) Bridge(ns *NS, name string, ports ...string) {
	l.t.Helper()
	err := ns.withNetlink(func(h *netlink.Handle) error {
		if err := h.LinkAdd(&netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: name}}); err != nil {
			return err
		}
		br, err := ns.link(h, name)
		if err != nil {
			return err
		}
		for _, p := range ports {
			pl, err := ns.link(h, p)
			if err != nil {
				return err
			}
			if err := h.LinkSetMaster(pl, br); err != nil {
				return fmt.Errorf("enslave %s: %w", p, err)
			}
			if err := h.LinkSetUp(pl); err != nil {
				return err
			}
		}
		return h.LinkSetUp(br)
	})
	if err != nil {
		l.t.Fatalf("lab: bridge %s in %s: %v", name, ns.name, err)
	}
}

// ethtool commands (linux/ethtool.h).
// TxChecksumOff turns off TX checksum offload on ifname — and with it TSO
// and the other offloads that depend on it — as `ethtool -K ifname
// tx-checksumming off` does, through the SIOCETHTOOL ioctl (ETHTOOL_STXCSUM,
// which the kernel maps onto the netdev features), so the ethtool binary is
// not needed. Packets sent by the namespace's stack then carry complete
// checksums on the wire: veth otherwise hands over partial checksums that a
// userspace dataplane (gvs on AF_PACKET / AF_XDP) sees as wrong.
func (ns *NS) TxChecksumOff(ifname string) {
	ns.lab.t.Helper()
	if err := ns.Do(func() error { return ethtool.TxChecksumOff(ifname) }); err != nil {
		ns.fatalf("tx-checksumming off on %s: %v", ifname, err)
	}
}
