package afxdp

import (
	"bytes"
	"fmt"
	"log/slog"
	"net/netip"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gopacket/gopacket/layers"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"gvs/driver"
)

const wait = 3 * time.Second // bound of every wait for a packet

func ap(s string) netip.AddrPort { return netip.MustParseAddrPort(s) }
func ad(s string) netip.Addr     { return netip.MustParseAddr(s) }

// expectGVS sends frame from the peer and requires it on the queues,
// byte-exact.
func expectGVS(t *testing.T, tp *topo, qs []*Queue, name string, frame []byte) {
	t.Helper()
	tp.peer.send(frame)
	got := receive(t, qs, 1, wait)
	if len(got) != 1 {
		t.Errorf("%s: not received by gvs within %v", name, wait)
		return
	}
	if !bytes.Equal(got[0], frame) {
		t.Errorf("%s: received bytes differ\n got %x\nwant %x", name, got[0], frame)
	}
}

// expectKernel sends frame from the peer and requires the kernel's answer
// (reply matches it) on the peer; the answer proves the frame took XDP_PASS,
// after which no queue may hold a frame.
func expectKernel(t *testing.T, tp *topo, qs []*Queue, name string, frame []byte, reply func([]byte) bool) {
	t.Helper()
	tp.peer.send(frame)
	if tp.peer.waitFor(wait, reply) == nil {
		t.Errorf("%s: no answer from the kernel within %v", name, wait)
	}
	drainNone(t, qs, name)
}

func TestSteeringIPv4(t *testing.T) {
	tp := newTopo(t, topoOpts{})
	p := tp.mustOpen(Config{})
	if !tp.xdpAttached() {
		t.Fatal("no XDP program on the interface after Open")
	}
	qs := p.queues
	rules := []driver.SteerRule{
		{Kind: driver.SteerService, Proto: 17, Addr: ipA4, Port: 5000},
		{Kind: driver.SteerService, Proto: 6, Addr: ad("198.18.0.100"), Port: 0},
		{Kind: driver.SteerService, Proto: 0, Addr: ad("198.18.0.101"), Port: 80},
		{Kind: driver.SteerReplyFrom, Proto: 6, Addr: ad("198.18.0.50"), Port: 8080},
		{Kind: driver.SteerReplyTo, Addr: ad("198.18.0.200")},
	}
	if err := p.SetSteering(rules); err != nil {
		t.Fatal(err)
	}
	b := pkt{srcMAC: tp.macB, dstMAC: tp.macA}
	inner := b.udp(ap("198.18.0.100:80"), ap("198.18.0.2:40000"), []byte("x"))[14:42]

	// Steered to gvs.
	expectGVS(t, tp, qs, "udp to service port", b.udp(ap("198.18.0.2:40000"), ap("198.18.0.1:5000"), []byte("svc")))
	expectGVS(t, tp, qs, "tcp to port-0 service", b.tcp(ap("198.18.0.2:40001"), ap("198.18.0.100:1234"), nil))
	expectGVS(t, tp, qs, "tcp to proto-0 service", b.tcp(ap("198.18.0.2:40002"), ap("198.18.0.101:80"), nil))
	expectGVS(t, tp, qs, "udp to proto-0 service", b.udp(ap("198.18.0.2:40002"), ap("198.18.0.101:80"), []byte("u")))
	expectGVS(t, tp, qs, "nat reply from real", b.tcp(ap("198.18.0.50:8080"), ap("198.18.0.77:40003"), nil))
	expectGVS(t, tp, qs, "fullnat reply to local address (udp)", b.udp(ap("198.18.0.2:9999"), ap("198.18.0.200:30000"), []byte("r")))
	expectGVS(t, tp, qs, "fullnat reply to local address (icmp echo)", b.echo4(ipB4, ad("198.18.0.200"), 7, 1))
	expectGVS(t, tp, qs, "icmp frag-needed to service address", b.icmp4(ipB4, ad("198.18.0.100"), 3, 4, inner))
	expectGVS(t, tp, qs, "icmp time-exceeded to service address", b.icmp4(ipB4, ad("198.18.0.101"), 11, 0, inner))
	expectGVS(t, tp, qs, "icmp unreachable from nat real", b.icmp4(ad("198.18.0.50"), ad("198.18.0.77"), 3, 3, inner))
	expectGVS(t, tp, qs, "non-first fragment to service address", b.frag4(ipB4, ad("198.18.0.100"), layers.IPProtocolUDP, 185, []byte("fragment-tail")))
	expectGVS(t, tp, qs, "udp to service behind IPv4 options", withIPv4Options(b.udp(ap("198.18.0.2:40000"), ap("198.18.0.1:5000"), []byte("opts"))))
	vb := b
	vb.vlan = 42
	expectGVS(t, tp, qs, "802.1Q tagged udp to service", vb.udp(ap("198.18.0.2:40000"), ap("198.18.0.1:5000"), []byte("vlan")))

	// Left to the kernel, which answers.
	expectKernel(t, tp, qs, "arp request", b.arpRequest(ipB4, ipA4), isARPReply(ipA4))
	expectKernel(t, tp, qs, "ping interface address", b.echo4(ipB4, ipA4, 11, 1), isEchoReply4(ipA4, 11))
	expectKernel(t, tp, qs, "ping service address", b.echo4(ipB4, ad("198.18.0.100"), 12, 1), isEchoReply4(ad("198.18.0.100"), 12))
	expectKernel(t, tp, qs, "udp to unsteered port", b.udp(ap("198.18.0.2:40004"), ap("198.18.0.1:5001"), []byte("k")), isPortUnreachable(ipA4, 5001))
	expectKernel(t, tp, qs, "udp to tcp-only service", b.udp(ap("198.18.0.2:40004"), ap("198.18.0.100:5002"), []byte("k")), isPortUnreachable(ad("198.18.0.100"), 5002))

	// Remove the UDP service: its packets go to the kernel.
	if err := p.SetSteering(rules[1:]); err != nil {
		t.Fatal(err)
	}
	expectKernel(t, tp, qs, "udp after rule removed", b.udp(ap("198.18.0.2:40005"), ap("198.18.0.1:5000"), []byte("k")), isPortUnreachable(ipA4, 5000))
	expectGVS(t, tp, qs, "remaining rule still steered", b.tcp(ap("198.18.0.2:40001"), ap("198.18.0.100:1234"), nil))
	// And back.
	if err := p.SetSteering(rules); err != nil {
		t.Fatal(err)
	}
	expectGVS(t, tp, qs, "udp after rule re-added", b.udp(ap("198.18.0.2:40006"), ap("198.18.0.1:5000"), []byte("again")))
	// Empty set: nothing is steered.
	if err := p.SetSteering(nil); err != nil {
		t.Fatal(err)
	}
	if len(p.keys) != 0 {
		t.Errorf("%d keys left after SetSteering(nil)", len(p.keys))
	}
	expectKernel(t, tp, qs, "udp with no rules", b.udp(ap("198.18.0.2:40007"), ap("198.18.0.1:5000"), []byte("k")), isPortUnreachable(ipA4, 5000))

	matched, passed, err := p.ProgramStats()
	if err != nil {
		t.Fatal(err)
	}
	if matched < 14 || passed < 6 {
		t.Errorf("program counters matched %d passed %d, want ≥ 14 and ≥ 6", matched, passed)
	}
	s := p.Stats()
	if s.RxPackets < 14 || s.RxDropped != 0 {
		t.Errorf("stats %+v", s)
	}
	t.Logf("program matched %d passed %d; stats %+v", matched, passed, s)
}

// withIPv4Options inserts 8 bytes of NOP options into an untagged IPv4
// frame (checksums are left stale: only gvs sees it).
func withIPv4Options(f []byte) []byte {
	out := append([]byte(nil), f[:34]...)
	out = append(out, 1, 1, 1, 1, 1, 1, 1, 0)
	out = append(out, f[34:]...)
	out[14] = 0x47
	tot := int(out[16])<<8 | int(out[17]) + 8
	out[16], out[17] = byte(tot>>8), byte(tot)
	return out
}

func TestSteeringIPv6(t *testing.T) {
	tp := newTopo(t, topoOpts{})
	p := tp.mustOpen(Config{})
	qs := p.queues
	svc := ad("2001:db8::100")
	if err := p.SetSteering([]driver.SteerRule{
		{Kind: driver.SteerService, Proto: 17, Addr: svc, Port: 5000},
		{Kind: driver.SteerReplyFrom, Proto: 0, Addr: ad("2001:db8::50"), Port: 0},
		{Kind: driver.SteerReplyTo, Addr: ad("2001:db8::200")},
	}); err != nil {
		t.Fatal(err)
	}
	b := pkt{srcMAC: tp.macB, dstMAC: tp.macA}
	src := netip.AddrPortFrom(ipB6, 40000)
	dst := netip.AddrPortFrom(svc, 5000)
	inner := make([]byte, 48)
	inner[0] = 0x60

	expectGVS(t, tp, qs, "udp6 to service", b.udp(src, dst, []byte("v6")))
	expectGVS(t, tp, qs, "udp6 behind destination options", b.udp6Ext(src, dst, []ext{extDstOpts}, []byte("dstopts")))
	expectGVS(t, tp, qs, "udp6 first fragment", b.udp6Ext(src, dst, []ext{extFrag(0, true)}, []byte("frag0")))
	expectGVS(t, tp, qs, "udp6 non-first fragment", b.udp6Ext(src, netip.AddrPortFrom(svc, 1), []ext{extFrag(100, false)}, []byte("tail")))
	expectGVS(t, tp, qs, "icmp6 packet-too-big to service", b.icmp6(ipB6, svc, 2, 0, append([]byte{0, 0, 5, 0}, inner...)))
	expectGVS(t, tp, qs, "tcp6 from nat real, any port", b.tcp(ap("[2001:db8::50]:8443"), ap("[2001:db8::77]:40001"), nil))
	expectGVS(t, tp, qs, "fullnat reply to local address", b.udp(src, ap("[2001:db8::200]:30000"), []byte("r6")))
	vb := b
	vb.vlan = 7
	expectGVS(t, tp, qs, "802.1Q tagged udp6", vb.udp(src, dst, []byte("vlan6")))

	// Neighbour discovery as a host does it: the solicitation also gives A
	// the peer's address, so the echo reply needs no resolution of its own.
	expectKernel(t, tp, qs, "neighbour solicitation", b.neighSolicit(ipB6, ipA6), isNeighAdvert(ipA6))
	expectKernel(t, tp, qs, "ping6 interface address", b.echo6(ipB6, ipA6, 21, 1), isEchoReply6(ipA6, 21))
	// Echo to a service address is the kernel's too.
	tp.peer.send(b.echo6(ipB6, svc, 22, 1))
	tp.peer.send(b.udp(src, netip.AddrPortFrom(svc, 5001), []byte("k")))
	// The next kernel answer orders after both frames above.
	expectKernel(t, tp, qs, "ping6 after unsteered packets", b.echo6(ipB6, ipA6, 23, 1), isEchoReply6(ipA6, 23))
}

func TestTransmit(t *testing.T) {
	tp := newTopo(t, topoOpts{noPeerX: true})
	p := tp.mustOpen(Config{})
	q := p.XSKQueue(0)
	b := pkt{srcMAC: tp.macA, dstMAC: tp.macB}
	free0 := p.cfg.Frames
	if p.FreeFrames() != free0 {
		t.Fatalf("FreeFrames %d after Open, want %d", p.FreeFrames(), free0)
	}

	// Generated frames.
	const n = 100
	var sent [][]byte
	for done := 0; done < n; {
		var burst [driver.BurstSize]driver.Frame
		k := q.Alloc(burst[:min(driver.BurstSize, n-done)])
		if k == 0 {
			t.Fatal("Alloc returned no frames")
		}
		for i := 0; i < k; i++ {
			f := &burst[i]
			if f.Len != 0 || f.Off < driver.MinHeadroom {
				t.Fatalf("Alloc frame Off %d Len %d", f.Off, f.Len)
			}
			pk := b.udp(ap("198.18.0.1:7000"), ap("198.18.0.2:7001"), fmt.Appendf(nil, "gvs-tx-%03d", done+i))
			f.Len = copy(f.Buf[f.Off:], pk)
			sent = append(sent, pk)
		}
		m, err := q.Transmit(burst[:k])
		if err != nil {
			t.Fatal(err)
		}
		q.Free(burst[m:k])
		done += m
		if m < k {
			sent = sent[:len(sent)-(k-m)]
		}
	}
	got := tp.peer.collect(len(sent), wait, hasPayload([]byte("gvs-tx-")))
	if len(got) != len(sent) {
		t.Fatalf("peer received %d of %d transmitted frames", len(got), len(sent))
	}
	want := map[string]bool{}
	for _, s := range sent {
		want[string(s)] = true
	}
	for _, g := range got {
		if !want[string(g)] {
			t.Errorf("peer received a frame that was not sent byte-identical: %x", g)
		}
		delete(want, string(g))
	}

	// Received frames sent back in place, with a header prepended in the
	// headroom and removed again.
	if err := p.SetSteering([]driver.SteerRule{{Kind: driver.SteerService, Proto: 17, Addr: ipA4, Port: 5000}}); err != nil {
		t.Fatal(err)
	}
	in := pkt{srcMAC: tp.macB, dstMAC: tp.macA}.udp(ap("198.18.0.2:40000"), ap("198.18.0.1:5000"), []byte("gvs-echo"))
	tp.peer.send(in)
	var burst [driver.BurstSize]driver.Frame
	deadline := time.Now().Add(wait)
	k := 0
	for k == 0 && time.Now().Before(deadline) {
		k, _ = q.Receive(burst[:])
	}
	if k != 1 {
		t.Fatalf("Receive = %d, want 1", k)
	}
	f := &burst[0]
	copy(f.Prepend(40), make([]byte, 40))
	f.TrimFront(40)
	d := f.Data()
	copy(d[0:6], tp.macB)
	copy(d[6:12], tp.macA)
	out := append([]byte(nil), d...)
	if m, err := q.Transmit(burst[:1]); m != 1 || err != nil {
		t.Fatalf("Transmit = %d, %v", m, err)
	}
	if tp.peer.waitFor(wait, func(b []byte) bool { return bytes.Equal(b, out) }) == nil {
		t.Fatal("peer did not receive the reflected frame")
	}

	// Every chunk comes back to the pool once the kernel completed.
	for time.Now().Before(deadline.Add(wait)) && p.FreeFrames() != free0 {
		q.Receive(burst[:0])
		time.Sleep(time.Millisecond)
	}
	if p.FreeFrames() != free0 {
		t.Errorf("free chunks %d, want %d: leak", p.FreeFrames(), free0)
	}
	if s := p.Stats(); s.TxPackets != uint64(len(sent)+1) || s.TxDropped != 0 {
		t.Errorf("stats %+v, want %d tx packets", s, len(sent)+1)
	}
}

func TestMultiQueue(t *testing.T) {
	tp := newTopo(t, topoOpts{queues: 2})
	p := tp.mustOpen(Config{Queues: 2})
	if p.NumQueues() != 2 {
		t.Fatalf("NumQueues %d", p.NumQueues())
	}
	if err := p.SetSteering([]driver.SteerRule{{Kind: driver.SteerService, Proto: 17, Addr: ipA4, Port: 5000}}); err != nil {
		t.Fatal(err)
	}
	b := pkt{srcMAC: tp.macB, dstMAC: tp.macA}
	const flows = 64
	for i := 0; i < flows; i++ {
		tp.peer.send(b.udp(netip.AddrPortFrom(ipB4, uint16(20000+i)), ap("198.18.0.1:5000"), []byte("mq")))
	}
	// Count per queue.
	per := make([]int, 2)
	var burst [driver.BurstSize]driver.Frame
	var held []driver.Frame // one frame of each queue, kept for the cross test
	heldFrom := []int{}
	deadline := time.Now().Add(wait)
	for per[0]+per[1] < flows && time.Now().Before(deadline) {
		for i := 0; i < 2; i++ {
			n, err := p.queues[i].Receive(burst[:])
			if err != nil {
				t.Fatal(err)
			}
			per[i] += n
			start := 0
			if n > 0 && !containsInt(heldFrom, i) {
				held = append(held, burst[0])
				heldFrom = append(heldFrom, i)
				start = 1
			}
			p.queues[i].Free(burst[start:n])
		}
	}
	t.Logf("per-queue receive: %v", per)
	if per[0]+per[1] != flows {
		t.Fatalf("received %d of %d", per[0]+per[1], flows)
	}
	if per[0] == 0 || per[1] == 0 {
		t.Fatalf("one queue received nothing: %v (the veth should spread flows)", per)
	}
	// Transmit each held frame on the other queue (shared UMEM).
	for j, f := range held {
		other := 1 - heldFrom[j]
		d := f.Data()
		copy(d[0:6], tp.macB)
		copy(d[6:12], tp.macA)
		copy(d[len(d)-2:], fmt.Sprintf("x%d", j))
		want := append([]byte(nil), d...)
		fr := []driver.Frame{f}
		if m, err := p.queues[other].Transmit(fr); m != 1 || err != nil {
			t.Fatalf("cross-queue Transmit = %d, %v", m, err)
		}
		if tp.peer.waitFor(wait, func(b []byte) bool { return bytes.Equal(b, want) }) == nil {
			t.Errorf("frame from queue %d sent on queue %d not received by the peer", heldFrom[j], other)
		}
	}
}

func containsInt(s []int, v int) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

func TestCloseDetachesAndReopen(t *testing.T) {
	tp := newTopo(t, topoOpts{})
	rule := []driver.SteerRule{{Kind: driver.SteerService, Proto: 17, Addr: ipA4, Port: 5000}}
	b := pkt{srcMAC: tp.macB, dstMAC: tp.macA}
	for round := 0; round < 3; round++ {
		p, err := tp.open(Config{})
		if err != nil {
			t.Fatalf("round %d: Open right after Close: %v", round, err)
		}
		if err := p.SetSteering(rule); err != nil {
			t.Fatal(err)
		}
		expectGVS(t, tp, p.queues, fmt.Sprintf("round %d", round), b.udp(ap("198.18.0.2:40000"), ap("198.18.0.1:5000"), []byte("reopen")))
		if err := p.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
		if err := p.Close(); err != nil {
			t.Fatalf("second Close: %v", err)
		}
		if tp.xdpAttached() {
			t.Fatalf("round %d: XDP program still attached after Close", round)
		}
		var burst [1]driver.Frame
		if _, err := p.Queue(0).Receive(burst[:]); err != driver.ErrClosed {
			t.Fatalf("Receive after Close: %v, want ErrClosed", err)
		}
		if err := p.SetSteering(rule); err != driver.ErrClosed {
			t.Fatalf("SetSteering after Close: %v", err)
		}
		// With the program gone the kernel answers for the port.
		expectKernel(t, tp, nil, "after close", b.udp(ap("198.18.0.2:40000"), ap("198.18.0.1:5000"), []byte("k")), isPortUnreachable(ipA4, 5000))
	}
}

func TestNativeMTUFallback(t *testing.T) {
	// A peer MTU above one page's worth makes native XDP on veth fail.
	tp := newTopo(t, topoOpts{peerMTU: 4000, noPeerX: true})
	if _, err := tp.open(Config{Mode: ModeNative}); err == nil || !strings.Contains(err.Error(), "MTU") {
		t.Fatalf("Open in native mode with peer MTU 4000: %v, want an MTU error", err)
	}
	p := tp.mustOpen(Config{})
	if !strings.HasPrefix(p.Mode(), "generic/") {
		t.Fatalf("Mode %q, want generic fallback", p.Mode())
	}
	if err := p.SetSteering([]driver.SteerRule{{Kind: driver.SteerService, Proto: 17, Addr: ipA4, Port: 5000}}); err != nil {
		t.Fatal(err)
	}
	b := pkt{srcMAC: tp.macB, dstMAC: tp.macA}
	expectGVS(t, tp, p.queues, "generic mode steering", b.udp(ap("198.18.0.2:40000"), ap("198.18.0.1:5000"), []byte("generic")))
	expectKernel(t, tp, p.queues, "generic mode ping", b.echo4(ipB4, ipA4, 31, 1), isEchoReply4(ipA4, 31))
}

func TestGenericMode(t *testing.T) {
	tp := newTopo(t, topoOpts{})
	p := tp.mustOpen(Config{Mode: ModeGeneric, ZeroCopy: ZeroCopyOff, Queues: 1})
	if p.Mode() != "generic/copy" {
		t.Fatalf("Mode %q", p.Mode())
	}
	if err := p.SetSteering([]driver.SteerRule{{Kind: driver.SteerService, Proto: 6, Addr: ipA4, Port: 80}}); err != nil {
		t.Fatal(err)
	}
	b := pkt{srcMAC: tp.macB, dstMAC: tp.macA}
	expectGVS(t, tp, p.queues, "generic tcp", b.tcp(ap("198.18.0.2:40000"), ap("198.18.0.1:80"), nil))
}

func TestOpenErrors(t *testing.T) {
	for _, c := range []struct {
		cfg  Config
		want string
	}{
		{Config{}, "Interface is empty"},
		{Config{Interface: "x", FrameSize: 3000}, "FrameSize"},
		{Config{Interface: "x", RxSize: 1000}, "power of two"},
		{Config{Interface: "x", Frames: 16}, "too few"},
	} {
		if _, err := Open(c.cfg); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Open(%+v) = %v, want %q", c.cfg, err, c.want)
		}
	}
	tp := newTopo(t, topoOpts{})
	if _, err := tp.open(Config{Queues: 2}); err == nil || !strings.Contains(err.Error(), "queues") {
		t.Errorf("Open with 2 queues on a 1-queue veth: %v", err)
	}
	if _, err := tp.open(Config{ZeroCopy: ZeroCopyOn}); err == nil || !strings.Contains(err.Error(), "zero-copy") {
		t.Errorf("Open zero-copy on veth: %v, want a zero-copy error", err)
	}
	if tp.xdpAttached() {
		t.Error("a failed Open left the XDP program attached")
	}
	p, err := tp.open(Config{})
	if err != nil {
		t.Fatalf("Open after failed Opens: %v", err)
	}
	defer p.Close()
	if _, err := tp.open(Config{}); err == nil || !strings.Contains(err.Error(), "another XDP program") {
		t.Errorf("second Open on the same interface: %v, want 'another XDP program'", err)
	} else {
		t.Logf("second Open: %v", err)
	}
	if !tp.xdpAttached() {
		t.Error("the failed second Open detached the first port's program")
	}
}

func TestSteerKeys(t *testing.T) {
	keys, err := steerKeys([]driver.SteerRule{
		{Kind: driver.SteerService, Proto: 0, Addr: ad("::ffff:198.18.0.1"), Port: 80},
		{Kind: driver.SteerService, Proto: 6, Addr: ad("198.18.0.1"), Port: 443},
		{Kind: driver.SteerReplyTo, Addr: ad("2001:db8::9")},
	})
	if err != nil {
		t.Fatal(err)
	}
	// tcp/80, udp/80, tcp/443, service-addr, reply-to.
	if len(keys) != 5 {
		t.Fatalf("%d keys: %v", len(keys), keys)
	}
	k := steerSteerKey{Kind: kindService, Proto: 17, Port: htons(80), Family: 4}
	copy(k.Addr[:], []byte{198, 18, 0, 1})
	if _, ok := keys[k]; !ok {
		t.Errorf("missing udp/80 key (v4-mapped address must be unmapped, port in network order)")
	}
	if _, err := steerKeys([]driver.SteerRule{{Kind: driver.SteerService, Proto: 1, Addr: ipA4}}); err == nil {
		t.Error("ICMP service rule accepted")
	}
	if _, err := steerKeys([]driver.SteerRule{{Kind: driver.SteerService, Proto: 6}}); err == nil {
		t.Error("rule without address accepted")
	}
}

// TestBindBusyRetry holds queue 0 with a foreign XDP socket and releases it
// while the port's bind is retrying: Open must succeed after EBUSY back-off.
func TestBindBusyRetry(t *testing.T) {
	tp := newTopo(t, topoOpts{})
	cfg := Config{Interface: tp.ifA, Frames: 256}
	if err := cfg.setDefaults(); err != nil {
		t.Fatal(err)
	}
	umem, err := unix.Mmap(-1, 0, cfg.Frames*cfg.FrameSize, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Munmap(umem)
	holder := &Queue{fd: -1}
	err = inNS(tp.nsA, func() error {
		if err := holder.setupSocket(&cfg, umem, 0); err != nil {
			return err
		}
		return unix.Bind(holder.fd, &unix.SockaddrXDP{Flags: unix.XDP_COPY, Ifindex: uint32(tp.idxA), QueueID: 0})
	})
	if err != nil {
		holder.closeSocket()
		t.Fatalf("foreign socket on queue 0: %v", err)
	}
	// Held for longer than the bind timeout: a clear error naming the
	// interface and queue.
	saved := bindTimeout
	bindTimeout = 50 * time.Millisecond
	_, err = tp.open(Config{})
	bindTimeout = saved
	if err == nil || !strings.Contains(err.Error(), "xa0 queue 0") || !strings.Contains(err.Error(), "busy") {
		t.Fatalf("Open on a held queue: %v, want a queue-busy error naming xa0 queue 0", err)
	}
	t.Logf("held queue: %v", err)

	// Release the queue when the port's bind first meets EBUSY.
	busy := make(chan struct{})
	var once sync.Once
	bindBusyHook = func() { once.Do(func() { close(busy) }) }
	defer func() { bindBusyHook = nil }()
	released := make(chan struct{})
	go func() {
		defer close(released)
		select {
		case <-busy:
		case <-time.After(wait):
		}
		holder.closeSocket()
	}()
	p, err := tp.open(Config{})
	<-released
	if err != nil {
		t.Fatalf("Open while the queue was busy: %v", err)
	}
	defer p.Close()
	select {
	case <-busy:
	default:
		t.Fatal("bind never saw EBUSY while a foreign socket held the queue")
	}
	expectGVS(t, tp, p.queues, "after busy bind", func() []byte {
		if err := p.SetSteering([]driver.SteerRule{{Kind: driver.SteerService, Proto: 17, Addr: ipA4, Port: 5000}}); err != nil {
			t.Fatal(err)
		}
		return pkt{srcMAC: tp.macB, dstMAC: tp.macA}.udp(ap("198.18.0.2:40000"), ap("198.18.0.1:5000"), []byte("busy"))
	}())
}

// TestMemlockError opens a port whose UMEM exceeds the RLIMIT_MEMLOCK hard
// limit from a thread without CAP_IPC_LOCK: the error must say the size and
// the limits.
func TestMemlockError(t *testing.T) {
	tp := newTopo(t, topoOpts{})
	var lim unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_MEMLOCK, &lim); err != nil {
		t.Fatal(err)
	}
	if lim.Max == unix.RLIM_INFINITY || lim.Max > 64<<20 {
		t.Skipf("RLIMIT_MEMLOCK hard limit %d is too large to exceed with a test UMEM", lim.Max)
	}
	t.Cleanup(func() { unix.Setrlimit(unix.RLIMIT_MEMLOCK, &lim) })
	frames := int(lim.Max/2048) + 1024
	err := openWithoutCaps(t, tp, Config{Frames: frames}, unix.CAP_IPC_LOCK)
	if err == nil {
		t.Fatal("Open with a UMEM above RLIMIT_MEMLOCK and without CAP_IPC_LOCK succeeded")
	}
	t.Logf("error: %v", err)
	for _, want := range []string{"xa0 queue 0", fmt.Sprint(frames * 2048), "RLIMIT_MEMLOCK", "CAP_IPC_LOCK"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
	if tp.xdpAttached() {
		t.Error("failed Open left the XDP program attached")
	}
}

// openWithoutCaps opens a port from a thread that dropped caps from its
// effective set. The thread is never unlocked, so it exits with its
// goroutine and the capabilities of the rest of the process are untouched.
func openWithoutCaps(t *testing.T, tp *topo, cfg Config, caps ...int) error {
	cfg.Interface = tp.ifA
	cfg.Logger = slog.New(slog.NewTextHandler(testWriter{t}, nil))
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		if err := netns.Set(tp.nsA); err != nil { // setns needs CAP_SYS_ADMIN: first
			errc <- err
			return
		}
		hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
		var data [2]unix.CapUserData
		if err := unix.Capget(&hdr, &data[0]); err != nil {
			errc <- err
			return
		}
		for _, c := range caps {
			data[c/32].Effective &^= 1 << (c % 32)
		}
		if err := unix.Capset(&hdr, &data[0]); err != nil {
			errc <- err
			return
		}
		p, err := Open(cfg)
		if err == nil {
			p.Close()
		}
		errc <- err
	}()
	return <-errc
}

// TestPermissionError opens a port without CAP_NET_ADMIN, CAP_SYS_ADMIN and
// CAP_BPF: the error names the interface and the capabilities.
func TestPermissionError(t *testing.T) {
	tp := newTopo(t, topoOpts{})
	err := openWithoutCaps(t, tp, Config{}, unix.CAP_NET_ADMIN, unix.CAP_SYS_ADMIN, unix.CAP_BPF)
	if err == nil {
		t.Fatal("Open without CAP_NET_ADMIN/CAP_BPF succeeded")
	}
	t.Logf("error: %v", err)
	for _, want := range []string{"xa0", "CAP_NET_ADMIN", "CAP_BPF"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
}

// TestWorkersHandOff runs one goroutine per queue, as pmd does: each
// receives on its queue and hands every frame to the other worker through a
// driver.Ring, which transmits it on its own queue. Under -race this checks
// that frames may cross queues and goroutines.
func TestWorkersHandOff(t *testing.T) {
	tp := newTopo(t, topoOpts{queues: 2})
	p := tp.mustOpen(Config{Queues: 2})
	if err := p.SetSteering([]driver.SteerRule{{Kind: driver.SteerService, Proto: 17, Addr: ipA4, Port: 5000}}); err != nil {
		t.Fatal(err)
	}
	rings := []*driver.Ring{driver.NewRing(1024), driver.NewRing(1024)} // rings[i]: to worker i
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var handed [2]int
	for w := 0; w < 2; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			q := p.queues[w]
			var burst [driver.BurstSize]driver.Frame
			for {
				select {
				case <-stop:
					n := rings[w].Pop(burst[:])
					q.Free(burst[:n])
					return
				default:
				}
				n, err := q.Receive(burst[:])
				if err != nil {
					t.Error(err)
					return
				}
				for i := 0; i < n; i++ {
					d := burst[i].Data()
					copy(d[0:6], tp.macB)
					copy(d[6:12], tp.macA)
					d[len(d)-1] = 'A' + byte(w) // marks the receiving worker
				}
				m := rings[1-w].Push(burst[:n])
				q.Free(burst[m:n])
				handed[w] += m
				n = rings[w].Pop(burst[:])
				m, _ = q.Transmit(burst[:n])
				q.Free(burst[m:n])
				if n == 0 {
					time.Sleep(50 * time.Microsecond) // idle back-off, not synchronization
				}
			}
		}(w)
	}
	const flows = 200
	b := pkt{srcMAC: tp.macB, dstMAC: tp.macA}
	for i := 0; i < flows; i++ {
		tp.peer.send(b.udp(netip.AddrPortFrom(ipB4, uint16(30000+i)), ap("198.18.0.1:5000"), []byte("handoff-?")))
	}
	got := tp.peer.collect(flows, 2*wait, func(f []byte) bool {
		return bytes.Contains(f, []byte("handoff-")) && bytes.Equal(f[0:6], tp.macB)
	})
	close(stop)
	wg.Wait()
	t.Logf("handed over by worker 0/1: %v; peer got %d", handed, len(got))
	if len(got) != flows {
		t.Fatalf("peer received %d of %d frames handed between workers", len(got), flows)
	}
	if handed[0] == 0 || handed[1] == 0 {
		t.Errorf("a worker received nothing: %v", handed)
	}
	var burst [driver.BurstSize]driver.Frame
	deadline := time.Now().Add(wait)
	for p.FreeFrames() != p.cfg.Frames && time.Now().Before(deadline) {
		p.queues[0].Receive(burst[:0])
		p.queues[1].Receive(burst[:0])
		time.Sleep(time.Millisecond)
	}
	if p.FreeFrames() != p.cfg.Frames {
		t.Errorf("free chunks %d, want %d", p.FreeFrames(), p.cfg.Frames)
	}
}
