//go:build dpdk

package dpdk

import (
	"bytes"
	"net"
	"net/netip"
	"runtime"
	"testing"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/vishvananda/netns"

	"gvs/driver"
	"gvs/driver/dpdk/nokernel"
	"gvs/lb"
	"gvs/pmd"
)

var (
	ownAddr = netip.MustParsePrefix("198.18.1.1/24")
	peerIP  = realIP(0) // 198.18.1.11
)

// inNewNetns runs the rest of the test on a locked thread in a network
// namespace of its own (the TAP appears there, not on the host).
func inNewNetns(t *testing.T) {
	t.Helper()
	runtime.LockOSThread()
	orig, err := netns.Get()
	if err != nil {
		t.Fatal(err)
	}
	ns, err := netns.New()
	if err != nil {
		orig.Close()
		runtime.UnlockOSThread()
		t.Skipf("cannot make a network namespace: %v", err)
	}
	t.Cleanup(func() {
		netns.Set(orig)
		ns.Close()
		orig.Close()
		runtime.UnlockOSThread()
	})
}

func arpFrame(t testing.TB, op uint16, sha net.HardwareAddr, spa, tpa netip.Addr, dst net.HardwareAddr) []byte {
	eth := &layers.Ethernet{SrcMAC: sha, DstMAC: dst, EthernetType: layers.EthernetTypeARP}
	a := &layers.ARP{AddrType: layers.LinkTypeEthernet, Protocol: layers.EthernetTypeIPv4, HwAddressSize: 6, ProtAddressSize: 4,
		Operation: op, SourceHwAddress: sha, SourceProtAddress: spa.AsSlice(), DstHwAddress: make([]byte, 6), DstProtAddress: tpa.AsSlice()}
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true}, eth, a); err != nil {
		t.Fatal(err)
	}
	return append([]byte(nil), buf.Bytes()...)
}

func echoFrame(t testing.TB, src, dst netip.Addr, dstMAC net.HardwareAddr) []byte {
	eth := &layers.Ethernet{SrcMAC: routerMAC, DstMAC: dstMAC, EthernetType: layers.EthernetTypeIPv4}
	ip := &layers.IPv4{Version: 4, TTL: 64, Protocol: layers.IPProtocolICMPv4, SrcIP: src.AsSlice(), DstIP: dst.AsSlice()}
	ic := &layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(8, 0), Id: 9, Seq: 3}
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, eth, ip, ic, gopacket.Payload("hello kernel")); err != nil {
		t.Fatal(err)
	}
	return append([]byte(nil), buf.Bytes()...)
}

// waitCtl collects frames from the control queue's ring (the last tx ring)
// until match accepts one.
func (rp *ringPort) waitCtl(t *testing.T, what string, match func(gopacket.Packet) bool) gopacket.Packet {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		for _, s := range rp.drain(len(rp.tx) - 1) {
			p := gopacket.NewPacket(s.data, layers.LayerTypeEthernet, gopacket.Default)
			if match(p) {
				return p
			}
		}
		time.Sleep(time.Millisecond)
	}
	t.Fatalf("%s: nothing on the control queue within 5s", what)
	return nil
}

func isARP(op uint16, target netip.Addr) func(gopacket.Packet) bool {
	return func(p gopacket.Packet) bool {
		a, _ := p.Layer(layers.LayerTypeARP).(*layers.ARP)
		return a != nil && a.Operation == op && bytes.Equal(a.DstProtAddress, target.AsSlice())
	}
}

// The exception path end to end on a net_ring port with a pmd worker and a
// real TAP: ARP for a VIP answered by gvs; next-hop resolution by gvs's own
// ARP; a ping to the host address answered by the kernel behind the TAP
// (which resolves the pinger through the port first).
func TestExceptionPath(t *testing.T) {
	inNewNetns(t)
	before := inUse(t)
	rp := newRingPort(t, 1, Config{MAC: lbMAC})
	if err := rp.EnableException(ExceptionConfig{Addrs: []netip.Prefix{ownAddr}, Tap: "gvst0", Timeout: 200 * time.Millisecond}); err != nil {
		t.Fatal(err)
	}
	bal := lb.NewBalancer(1, 16)
	svc := service(lb.MethodDR, 1)
	if err := bal.Apply(lb.Config{Services: []lb.Service{svc}, NextHops: map[netip.Addr]lb.NextHop{realIP(0): {MAC: realMAC(0), OK: true}}}); err != nil {
		t.Fatal(err)
	}
	if err := rp.SetSteering([]driver.SteerRule{{Kind: driver.SteerService, Proto: 6, Addr: vip, Port: 80}}); err != nil {
		t.Fatal(err)
	}
	eng, err := pmd.New(pmd.Config{Workers: 1, Ports: []driver.Port{rp.Port}, Balancer: bal, Sessions: 256,
		SlowPath: func(w, _ int, q driver.Queue, f []driver.Frame) { rp.SlowPath(w, q, f) }})
	if err != nil {
		t.Fatal(err)
	}
	eng.Start()
	t.Cleanup(eng.Stop)

	// 1. ARP for the VIP: gvs answers.
	rp.inject(t, 0, arpFrame(t, 1, routerMAC, netip.MustParseAddr("198.18.1.254"), vip, net.HardwareAddr{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}))
	p := rp.waitCtl(t, "ARP reply for the VIP", isARP(2, netip.MustParseAddr("198.18.1.254")))
	if a := p.Layer(layers.LayerTypeARP).(*layers.ARP); !bytes.Equal(a.SourceHwAddress, lbMAC) || !bytes.Equal(a.SourceProtAddress, vip.AsSlice()) {
		t.Errorf("ARP reply %+v", a)
	}

	// 2. gvs resolves a next hop itself.
	h := rp.Host()
	if _, st := h.Neighbour(peerIP, time.Now()); st != nokernel.Incomplete {
		t.Fatalf("state %s", st)
	}
	rp.waitCtl(t, "ARP request for the real", isARP(1, peerIP))
	rm := realMAC(0)
	rp.inject(t, 0, arpFrame(t, 2, rm[:], peerIP, ownAddr.Addr(), lbMAC))
	deadline := time.Now().Add(5 * time.Second)
	for {
		mac, st := h.Neighbour(peerIP, time.Now())
		if st == nokernel.Reachable && mac == rm {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("real not resolved: %s", st)
		}
		time.Sleep(time.Millisecond)
	}
	// An address nobody answers for fails after the retries.
	ghost := netip.MustParseAddr("198.18.1.99")
	h.Neighbour(ghost, time.Now())
	deadline = time.Now().Add(5 * time.Second)
	for {
		if _, st := h.Neighbour(ghost, time.Now()); st == nokernel.Failed {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("unanswered neighbour did not fail")
		}
		time.Sleep(5 * time.Millisecond)
	}

	// 3. A ping to the host's address goes through the TAP to the kernel;
	// the kernel resolves the pinger (its ARP request leaves through the
	// port, the reply comes back through gvs) and answers.
	pinger := netip.MustParseAddr("198.18.1.50")
	rp.inject(t, 0, echoFrame(t, pinger, ownAddr.Addr(), lbMAC))
	rp.waitCtl(t, "the kernel's ARP request for the pinger", isARP(1, pinger))
	rp.inject(t, 0, arpFrame(t, 2, routerMAC, pinger, ownAddr.Addr(), lbMAC))
	p = rp.waitCtl(t, "the kernel's echo reply", func(p gopacket.Packet) bool {
		ic, _ := p.Layer(layers.LayerTypeICMPv4).(*layers.ICMPv4)
		return ic != nil && ic.TypeCode.Type() == 0
	})
	ip := p.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
	if !ip.SrcIP.Equal(ownAddr.Addr().AsSlice()) || !ip.DstIP.Equal(pinger.AsSlice()) || !bytes.Equal(p.LinkLayer().LinkFlow().Src().Raw(), lbMAC) {
		t.Errorf("echo reply %s -> %s from %s", ip.SrcIP, ip.DstIP, p.LinkLayer().LinkFlow().Src())
	}
	// 4. A ping to the VIP: gvs answers.
	rp.inject(t, 0, echoFrame(t, pinger, vip, lbMAC))
	rp.waitCtl(t, "echo reply from the VIP", func(p gopacket.Packet) bool {
		ic, _ := p.Layer(layers.LayerTypeICMPv4).(*layers.ICMPv4)
		ip, _ := p.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
		return ic != nil && ic.TypeCode.Type() == 0 && ip.SrcIP.Equal(vip.AsSlice())
	})
	st := rp.ExceptionStats()
	if st.ToKernel < 2 || st.FromKernel < 2 || st.Host.ARPRepliesOut != 1 || st.Host.EchoReplies != 1 || st.Host.Resolved != 1 || st.Host.Timeouts != 1 {
		t.Errorf("exception stats %+v", st)
	}
	eng.Stop()
	rp.drainAll()
	if err := rp.Close(); err != nil {
		t.Fatal(err)
	}
	if d := inUse(t) - before; d > 0 {
		t.Errorf("%d mbufs not returned", d)
	}
}
