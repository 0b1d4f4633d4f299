package nokernel

import (
	"bytes"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
)

var (
	portMAC = [6]byte{0x02, 0, 0, 0, 0, 0xaa}
	peerMAC = [6]byte{0x02, 0, 0, 0, 0, 0x11}
	own4    = netip.MustParsePrefix("198.18.1.1/24")
	own6    = netip.MustParsePrefix("2001:db8:1::1/64")
	vip4    = netip.MustParseAddr("198.18.250.10")
	vip6    = netip.MustParseAddr("2001:db8:250::10")
	peer4   = netip.MustParseAddr("198.18.1.11")
	peer6   = netip.MustParseAddr("2001:db8:1::11")
	gw4     = netip.MustParseAddr("198.18.1.254")
	t0      = time.Unix(1000, 0)
)

func newHost() *Host {
	h := New(Config{MAC: portMAC, Addrs: []netip.Prefix{own4, own6}, Gateways: []netip.Addr{gw4}, KernelOwnsAddrs: true})
	h.SetAnswered([]netip.Addr{vip4, vip6})
	return h
}

func ser(t *testing.T, ls ...gopacket.SerializableLayer) []byte {
	t.Helper()
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, ls...); err != nil {
		t.Fatal(err)
	}
	out := make([]byte, 256) // room behind the packet, as an mbuf has
	n := copy(out, buf.Bytes())
	return out[:n:256]
}

func arpFrame(t *testing.T, op uint16, sha [6]byte, spa, tpa netip.Addr, dst net.HardwareAddr) []byte {
	eth := &layers.Ethernet{SrcMAC: sha[:], DstMAC: dst, EthernetType: layers.EthernetTypeARP}
	a := &layers.ARP{AddrType: layers.LinkTypeEthernet, Protocol: layers.EthernetTypeIPv4, HwAddressSize: 6, ProtAddressSize: 4,
		Operation: op, SourceHwAddress: sha[:], SourceProtAddress: spa.AsSlice(), DstHwAddress: make([]byte, 6), DstProtAddress: tpa.AsSlice()}
	return ser(t, eth, a)
}

var bcast = net.HardwareAddr{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}

func input(h *Host, f []byte, now time.Time) (Verdict, []byte) {
	v, n := h.Input(f[:cap(f)], len(f), now)
	return v, f[:n]
}

func TestARPForVIPAnswered(t *testing.T) {
	h := newHost()
	v, out := input(h, arpFrame(t, 1, peerMAC, peer4, vip4, bcast), t0)
	if v != Reply {
		t.Fatalf("verdict %d", v)
	}
	p := gopacket.NewPacket(out, layers.LayerTypeEthernet, gopacket.Default)
	a, _ := p.Layer(layers.LayerTypeARP).(*layers.ARP)
	eth, _ := p.Layer(layers.LayerTypeEthernet).(*layers.Ethernet)
	if a == nil || a.Operation != 2 || !bytes.Equal(a.SourceHwAddress, portMAC[:]) || !bytes.Equal(a.SourceProtAddress, vip4.AsSlice()) ||
		!bytes.Equal(a.DstHwAddress, peerMAC[:]) || !bytes.Equal(a.DstProtAddress, peer4.AsSlice()) {
		t.Fatalf("reply %+v", a)
	}
	if !bytes.Equal(eth.DstMAC, peerMAC[:]) || !bytes.Equal(eth.SrcMAC, portMAC[:]) {
		t.Errorf("ethernet %s -> %s", eth.SrcMAC, eth.DstMAC)
	}
	// The port's own address too; anything else goes to the kernel.
	if v, _ := input(h, arpFrame(t, 1, peerMAC, peer4, own4.Addr(), bcast), t0); v != Reply {
		t.Errorf("own address: verdict %d", v)
	}
	if v, _ := input(h, arpFrame(t, 1, peerMAC, peer4, netip.MustParseAddr("198.18.1.77"), bcast), t0); v != Kernel {
		t.Errorf("other address: verdict %d", v)
	}
	// Gratuitous ARP for a VIP (someone else claims it): the kernel's.
	if v, _ := input(h, arpFrame(t, 1, peerMAC, vip4, vip4, bcast), t0); v != Kernel {
		t.Errorf("gratuitous: verdict %d", v)
	}
	if s := h.Stats(); s.ARPRepliesOut != 2 || s.ARPRequestsIn != 4 {
		t.Errorf("stats %+v", s)
	}
}

func TestUnicastNotForUsDropped(t *testing.T) {
	h := newHost()
	f := arpFrame(t, 1, peerMAC, peer4, vip4, net.HardwareAddr{2, 0, 0, 0, 0, 0x99})
	if v, _ := input(h, f, t0); v != Drop || h.Stats().NotForUs != 1 {
		t.Errorf("verdict %d", v)
	}
}

func TestResolveARP(t *testing.T) {
	h := newHost()
	if nh, ok := h.NextHop(peer4); !ok || nh != peer4 {
		t.Fatalf("on-link next hop %v", nh)
	}
	if nh, ok := h.NextHop(netip.MustParseAddr("203.0.113.5")); !ok || nh != gw4 {
		t.Fatalf("off-link next hop %v", nh)
	}
	if _, ok := h.NextHop(netip.MustParseAddr("2001:db8:9::1")); ok {
		t.Fatal("v6 off-link without a v6 gateway resolved")
	}
	if _, st := h.Neighbour(peer4, t0); st != Incomplete {
		t.Fatalf("state %s", st)
	}
	buf := make([]byte, 128)
	n := h.Solicit(buf, t0)
	if n != 60 {
		t.Fatalf("solicitation of %d bytes", n)
	}
	p := gopacket.NewPacket(buf[:n], layers.LayerTypeEthernet, gopacket.Default)
	a, _ := p.Layer(layers.LayerTypeARP).(*layers.ARP)
	if a == nil || a.Operation != 1 || !bytes.Equal(a.DstProtAddress, peer4.AsSlice()) || !bytes.Equal(a.SourceProtAddress, own4.Addr().AsSlice()) {
		t.Fatalf("request %+v", a)
	}
	if h.Solicit(buf, t0.Add(500*time.Millisecond)) != 0 {
		t.Error("second request before the timeout")
	}
	// The answer.
	v, _ := input(h, arpFrame(t, 2, peerMAC, peer4, own4.Addr(), net.HardwareAddr(portMAC[:])), t0.Add(10*time.Millisecond))
	if v != Kernel {
		t.Errorf("reply verdict %d (the kernel may be waiting for it too)", v)
	}
	select {
	case <-h.Changed():
	default:
		t.Error("no change signalled")
	}
	mac, st := h.Neighbour(peer4, t0.Add(20*time.Millisecond))
	if st != Reachable || mac != peerMAC {
		t.Fatalf("after reply: %s %x", st, mac)
	}
	// After the reachable time it is confirmed again (unicast), and
	// usable meanwhile.
	later := t0.Add(31 * time.Second)
	n = h.Solicit(buf, later)
	if n == 0 || !bytes.Equal(buf[0:6], peerMAC[:]) {
		t.Fatalf("confirmation %x", buf[:n])
	}
	if _, st := h.Neighbour(peer4, later); st != Stale {
		t.Errorf("state %s while confirming", st)
	}
	// No answer: after three tries it fails, and the loss is signalled.
	now := later
	for i := 0; i < 3; i++ {
		now = now.Add(time.Second)
		h.Solicit(buf, now)
	}
	if _, st := h.Neighbour(peer4, now); st != Failed {
		t.Fatalf("state %s after unanswered confirmations", st)
	}
	<-h.Changed()
	s := h.Stats()
	if s.Resolved != 1 || s.Timeouts != 1 || s.SolicitsOut != 4 {
		t.Errorf("stats %+v", s)
	}
	// After the hold time, asking again starts a new round.
	if _, st := h.Neighbour(peer4, now.Add(6*time.Second)); st != Incomplete {
		t.Errorf("state %s after the hold", st)
	}
}

func TestUnaskedNeighboursNotLearnt(t *testing.T) {
	h := newHost()
	input(h, arpFrame(t, 2, peerMAC, peer4, own4.Addr(), net.HardwareAddr(portMAC[:])), t0)
	if len(h.Neighbours()) != 0 {
		t.Error("unsolicited reply created an entry")
	}
}

func nsFrame(t *testing.T, src netip.Addr, target netip.Addr) []byte {
	eth := &layers.Ethernet{SrcMAC: peerMAC[:], DstMAC: net.HardwareAddr{0x33, 0x33, 0xff, 0, 0, 0x10}, EthernetType: layers.EthernetTypeIPv6}
	ip := &layers.IPv6{Version: 6, NextHeader: layers.IPProtocolICMPv6, HopLimit: 255, SrcIP: src.AsSlice(), DstIP: net.ParseIP("ff02::1:ff00:10")}
	icmp := &layers.ICMPv6{TypeCode: layers.CreateICMPv6TypeCode(layers.ICMPv6TypeNeighborSolicitation, 0)}
	_ = icmp.SetNetworkLayerForChecksum(ip)
	ns := &layers.ICMPv6NeighborSolicitation{TargetAddress: target.AsSlice(),
		Options: layers.ICMPv6Options{{Type: layers.ICMPv6OptSourceAddress, Data: peerMAC[:]}}}
	return ser(t, eth, ip, icmp, ns)
}

func checkICMPv6(t *testing.T, out []byte) *layers.ICMPv6 {
	t.Helper()
	p := gopacket.NewPacket(out, layers.LayerTypeEthernet, gopacket.Default)
	ip, _ := p.Layer(layers.LayerTypeIPv6).(*layers.IPv6)
	ic, _ := p.Layer(layers.LayerTypeICMPv6).(*layers.ICMPv6)
	if ip == nil || ic == nil {
		t.Fatalf("not ICMPv6: %x", out)
	}
	// Recompute the checksum.
	want := ic.Checksum
	c := *ic
	_ = c.SetNetworkLayerForChecksum(ip)
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{ComputeChecksums: true}, &c, gopacket.Payload(ic.Payload)); err != nil {
		t.Fatal(err)
	}
	p2 := gopacket.NewPacket(buf.Bytes(), layers.LayerTypeICMPv6, gopacket.Default)
	if got := p2.Layer(layers.LayerTypeICMPv6).(*layers.ICMPv6).Checksum; got != want {
		t.Errorf("ICMPv6 checksum %04x, want %04x", want, got)
	}
	return ic
}

func TestNSForVIPAnswered(t *testing.T) {
	h := newHost()
	// A neighbour gvs asked for is learnt from the solicitation's option.
	h.Neighbour(peer6, t0)
	v, out := input(h, nsFrame(t, peer6, vip6), t0)
	if v != Reply {
		t.Fatalf("verdict %d", v)
	}
	ic := checkICMPv6(t, out)
	p := gopacket.NewPacket(out, layers.LayerTypeEthernet, gopacket.Default)
	na, _ := p.Layer(layers.LayerTypeICMPv6NeighborAdvertisement).(*layers.ICMPv6NeighborAdvertisement)
	if ic.TypeCode.Type() != layers.ICMPv6TypeNeighborAdvertisement || na == nil || !na.TargetAddress.Equal(vip6.AsSlice()) || !na.Solicited() {
		t.Fatalf("advertisement %+v", na)
	}
	ip := p.Layer(layers.LayerTypeIPv6).(*layers.IPv6)
	if !ip.DstIP.Equal(peer6.AsSlice()) || ip.HopLimit != 255 || !bytes.Equal(out[0:6], peerMAC[:]) {
		t.Errorf("addressed to %s / %x", ip.DstIP, out[0:6])
	}
	if mac, st := h.Neighbour(peer6, t0); st != Reachable || mac != peerMAC {
		t.Errorf("sender not learnt: %s", st)
	}
	if v, _ := input(h, nsFrame(t, peer6, netip.MustParseAddr("2001:db8:1::77")), t0); v != Kernel {
		t.Errorf("other target: verdict %d", v)
	}
}

func TestResolveND(t *testing.T) {
	h := newHost()
	h.Neighbour(peer6, t0)
	buf := make([]byte, 128)
	n := h.Solicit(buf, t0)
	if n != 86 {
		t.Fatalf("NS of %d bytes", n)
	}
	checkICMPv6(t, buf[:n])
	p := gopacket.NewPacket(buf[:n], layers.LayerTypeEthernet, gopacket.Default)
	ns, _ := p.Layer(layers.LayerTypeICMPv6NeighborSolicitation).(*layers.ICMPv6NeighborSolicitation)
	if ns == nil || !ns.TargetAddress.Equal(peer6.AsSlice()) || !bytes.Equal(buf[0:3], []byte{0x33, 0x33, 0xff}) {
		t.Fatalf("NS %+v", ns)
	}
	// The advertisement.
	eth := &layers.Ethernet{SrcMAC: peerMAC[:], DstMAC: portMAC[:], EthernetType: layers.EthernetTypeIPv6}
	ip := &layers.IPv6{Version: 6, NextHeader: layers.IPProtocolICMPv6, HopLimit: 255, SrcIP: peer6.AsSlice(), DstIP: own6.Addr().AsSlice()}
	icmp := &layers.ICMPv6{TypeCode: layers.CreateICMPv6TypeCode(layers.ICMPv6TypeNeighborAdvertisement, 0)}
	_ = icmp.SetNetworkLayerForChecksum(ip)
	na := &layers.ICMPv6NeighborAdvertisement{Flags: 0x60, TargetAddress: peer6.AsSlice(),
		Options: layers.ICMPv6Options{{Type: layers.ICMPv6OptTargetAddress, Data: peerMAC[:]}}}
	if v, _ := input(h, ser(t, eth, ip, icmp, na), t0); v != Kernel {
		t.Errorf("NA verdict %d", v)
	}
	if mac, st := h.Neighbour(peer6, t0); st != Reachable || mac != peerMAC {
		t.Errorf("not resolved: %s", st)
	}
}

func TestEcho(t *testing.T) {
	h := newHost()
	for _, c := range []struct {
		dst  netip.Addr
		want Verdict
	}{{vip4, Reply}, {own4.Addr(), Kernel}, {vip6, Reply}, {own6.Addr(), Kernel}} {
		var f []byte
		if c.dst.Is4() {
			eth := &layers.Ethernet{SrcMAC: peerMAC[:], DstMAC: portMAC[:], EthernetType: layers.EthernetTypeIPv4}
			ip := &layers.IPv4{Version: 4, TTL: 30, Protocol: layers.IPProtocolICMPv4, SrcIP: peer4.AsSlice(), DstIP: c.dst.AsSlice()}
			ic := &layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(8, 0), Id: 7, Seq: 1}
			f = ser(t, eth, ip, ic, gopacket.Payload("ping-payload"))
		} else {
			eth := &layers.Ethernet{SrcMAC: peerMAC[:], DstMAC: portMAC[:], EthernetType: layers.EthernetTypeIPv6}
			ip := &layers.IPv6{Version: 6, NextHeader: layers.IPProtocolICMPv6, HopLimit: 30, SrcIP: peer6.AsSlice(), DstIP: c.dst.AsSlice()}
			ic := &layers.ICMPv6{TypeCode: layers.CreateICMPv6TypeCode(128, 0)}
			_ = ic.SetNetworkLayerForChecksum(ip)
			f = ser(t, eth, ip, ic, &layers.ICMPv6Echo{Identifier: 7, SeqNumber: 1}, gopacket.Payload("ping-payload"))
		}
		v, out := input(h, f, t0)
		if v != c.want {
			t.Errorf("echo to %s: verdict %d, want %d", c.dst, v, c.want)
			continue
		}
		if v != Reply {
			continue
		}
		p := gopacket.NewPacket(out, layers.LayerTypeEthernet, gopacket.Default)
		if c.dst.Is4() {
			ip := p.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
			ic := p.Layer(layers.LayerTypeICMPv4).(*layers.ICMPv4)
			if ic.TypeCode.Type() != 0 || !ip.SrcIP.Equal(c.dst.AsSlice()) || !ip.DstIP.Equal(peer4.AsSlice()) {
				t.Errorf("v4 reply %+v", ic)
			}
			if checksum(0, out[14:34]) != 0 || checksum(0, out[34:]) != 0 {
				t.Error("v4 reply checksums")
			}
		} else {
			ic := checkICMPv6(t, out)
			if ic.TypeCode.Type() != 129 {
				t.Errorf("v6 reply type %d", ic.TypeCode.Type())
			}
		}
		if !bytes.Equal(out[0:6], peerMAC[:]) || !bytes.Contains(out, []byte("ping-payload")) {
			t.Error("reply addressing or payload")
		}
	}
	if h.Stats().EchoReplies != 2 {
		t.Errorf("echo replies %d", h.Stats().EchoReplies)
	}
}
