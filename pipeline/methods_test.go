package pipeline

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"testing"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"

	"gvs/lb"
)

// sum16 is an independent full Internet checksum over b (with a starting
// sum), used to verify what the pipeline computed incrementally.
func sum16(s uint32, b []byte) uint32 {
	for len(b) >= 2 {
		s += uint32(b[0])<<8 | uint32(b[1])
		b = b[2:]
	}
	if len(b) == 1 {
		s += uint32(b[0]) << 8
	}
	return s
}

func fold(s uint32) uint16 {
	for s>>16 != 0 {
		s = s>>16 + s&0xffff
	}
	return uint16(s)
}

// checkIPv4Header verifies an IPv4 header checksum.
func checkIPv4Header(t *testing.T, hdr []byte) {
	t.Helper()
	ihl := int(hdr[0]&0x0f) * 4
	if got := fold(sum16(0, hdr[:ihl])); got != 0xffff {
		t.Errorf("IPv4 header checksum does not verify (sum %#04x)", got)
	}
}

// checkL4 verifies the TCP/UDP checksum of a segment with the pseudo-header
// of src, dst.
func checkL4(t *testing.T, src, dst net.IP, proto uint8, seg []byte) {
	t.Helper()
	if proto == 17 && len(src) == 4 && binary.BigEndian.Uint16(seg[6:]) == 0 {
		return // IPv4 UDP without checksum
	}
	s := sum16(0, src)
	s = sum16(s, dst)
	s += uint32(proto) + uint32(len(seg))
	if got := fold(sum16(s, seg)); got != 0xffff {
		t.Errorf("L4 checksum does not verify (sum %#04x)", got)
	}
}

// decoded is the interesting part of an output frame.
type decoded struct {
	eth          *layers.Ethernet
	src, dst     netip.Addr
	proto        uint8
	sport, dport uint16
	tos          uint8 // IPv4 TOS or IPv6 traffic class
	l4           []byte
	payload      []byte
	inner        *decoded // tunnel: the encapsulated packet
}

// decodeIP decodes an IP packet (no Ethernet) and verifies its checksums.
func decodeIP(t *testing.T, b []byte, v6 bool) *decoded {
	t.Helper()
	lt := layers.LayerTypeIPv4
	if v6 {
		lt = layers.LayerTypeIPv6
	}
	p := gopacket.NewPacket(b, lt, gopacket.Default)
	d := &decoded{}
	var srcIP, dstIP net.IP
	if v6 {
		ip, ok := p.Layer(layers.LayerTypeIPv6).(*layers.IPv6)
		if !ok {
			t.Fatalf("no IPv6 layer in %x", b)
		}
		srcIP, dstIP, d.proto, d.tos = ip.SrcIP, ip.DstIP, uint8(ip.NextHeader), ip.TrafficClass
	} else {
		ip, ok := p.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
		if !ok {
			t.Fatalf("no IPv4 layer in %x", b)
		}
		checkIPv4Header(t, b)
		srcIP, dstIP, d.proto, d.tos = ip.SrcIP, ip.DstIP, uint8(ip.Protocol), ip.TOS
		if int(ip.Length) > len(b) {
			t.Errorf("IPv4 total length %d, packet %d bytes", ip.Length, len(b))
		}
	}
	d.src, _ = netip.AddrFromSlice(srcIP)
	d.dst, _ = netip.AddrFromSlice(dstIP)
	d.src, d.dst = d.src.Unmap(), d.dst.Unmap()
	switch d.proto {
	case 4, 41: // IPIP, IPv6-in-IPv6
		hl := 20
		if v6 {
			hl = 40
		}
		d.inner = decodeIP(t, b[hl:], d.proto == 41)
		return d
	case 6:
		tc, ok := p.Layer(layers.LayerTypeTCP).(*layers.TCP)
		if !ok {
			return d // a non-first fragment
		}
		d.sport, d.dport, d.l4, d.payload = uint16(tc.SrcPort), uint16(tc.DstPort), tc.Contents, tc.Payload
		checkL4(t, addrBytes(d.src), addrBytes(d.dst), 6, append(append([]byte(nil), tc.Contents...), tc.Payload...))
	case 17:
		u, ok := p.Layer(layers.LayerTypeUDP).(*layers.UDP)
		if !ok {
			return d
		}
		d.sport, d.dport, d.l4, d.payload = uint16(u.SrcPort), uint16(u.DstPort), u.Contents, u.Payload
		checkL4(t, addrBytes(d.src), addrBytes(d.dst), 17, append(append([]byte(nil), u.Contents...), u.Payload...))
	}
	return d
}

func addrBytes(a netip.Addr) []byte { return a.AsSlice() }

// decodeFrame decodes an Ethernet frame.
func decodeFrame(t *testing.T, b []byte) *decoded {
	t.Helper()
	p := gopacket.NewPacket(b, layers.LayerTypeEthernet, gopacket.Default)
	eth, ok := p.Layer(layers.LayerTypeEthernet).(*layers.Ethernet)
	if !ok {
		t.Fatalf("no Ethernet layer in %x", b)
	}
	d := decodeIP(t, b[14:], eth.EthernetType == layers.EthernetTypeIPv6)
	d.eth = eth
	return d
}

// realIndex returns which test real a MAC belongs to, or -1.
func realIndex(mac net.HardwareAddr) int {
	for i := 0; i < 16; i++ {
		m := realMAC(i)
		if bytes.Equal(mac, m[:]) {
			return i
		}
	}
	return -1
}

// TestMethods sends a new flow, a second packet and (nat, fullnat) the
// reply through the pipeline for every method × family × protocol and
// checks every rewritten field and checksum with gopacket.
func TestMethods(t *testing.T) {
	for _, m := range methods {
		for _, v6 := range []bool{false, true} {
			for _, udp := range []bool{false, true} {
				name := fmt.Sprintf("%s/v4/tcp", m)
				if v6 {
					name = fmt.Sprintf("%s/v6/tcp", m)
				}
				if udp {
					name = name[:len(name)-3] + "udp"
				}
				t.Run(name, func(t *testing.T) { testMethod(t, m, v6, udp) })
			}
		}
	}
}

func testMethod(t *testing.T, m lb.Method, v6, udp bool) {
	proto := lb.ProtoTCP
	if udp {
		proto = lb.ProtoUDP
	}
	svc := testService(m, v6, proto, "rr", 3)
	e := newEnv(t, 1024, svc)
	cl := clientAddr(v6, 7)
	payload := []byte("hello, real")
	spec := pktSpec{src: cl, dst: svc.VIP, sport: 40000, dport: vipPort, udp: udp, syn: !udp, payload: payload}
	in := build(t, spec)
	res := e.run(in)
	if len(res.tx) != 1 {
		t.Fatalf("forward: %d frames out (slow %d, drop %d)", len(res.tx), len(res.slow), len(res.drop))
	}
	d := decodeFrame(t, res.tx[0])
	ri := realIndex(d.eth.DstMAC)
	if ri < 0 {
		t.Fatalf("frame sent to %s, not a real's MAC", d.eth.DstMAC)
	}
	if !bytes.Equal(d.eth.SrcMAC, portMAC) {
		t.Errorf("source MAC %s, want the port's %s", d.eth.SrcMAC, portMAC)
	}
	realIP := realFor(m, v6, ri)
	var lport uint16
	switch m {
	case lb.MethodNAT:
		if d.src != cl || d.sport != 40000 || d.dst != realIP || d.dport != natRealPrt {
			t.Errorf("nat: got %s:%d -> %s:%d, want %s:40000 -> %s:%d", d.src, d.sport, d.dst, d.dport, cl, realIP, natRealPrt)
		}
	case lb.MethodFullNAT:
		if d.src != localFor(v6) || d.dst != realIP || d.dport != natRealPrt {
			t.Errorf("fullnat: got %s:%d -> %s:%d, want %s:* -> %s:%d", d.src, d.sport, d.dst, d.dport, localFor(v6), realIP, natRealPrt)
		}
		if d.sport < 1024 {
			t.Errorf("fullnat: local port %d below 1024", d.sport)
		}
		lport = d.sport
	case lb.MethodDR:
		if d.src != cl || d.dst != svc.VIP || d.sport != 40000 || d.dport != vipPort {
			t.Errorf("dr changed the IP packet: %s:%d -> %s:%d", d.src, d.sport, d.dst, d.dport)
		}
		if !bytes.Equal(res.tx[0][14:], in[14:]) {
			t.Errorf("dr: IP packet differs from the input")
		}
	case lb.MethodL3DSR:
		if d.src != cl || d.dst != realIP || d.sport != 40000 || d.dport != vipPort {
			t.Errorf("l3dsr: got %s:%d -> %s:%d, want %s:40000 -> %s:%d", d.src, d.sport, d.dst, d.dport, cl, realIP, vipPort)
		}
		if d.tos>>2 != testDSCP {
			t.Errorf("l3dsr: DSCP %d, want %d", d.tos>>2, testDSCP)
		}
	case lb.MethodTunnel:
		if d.inner == nil {
			t.Fatalf("tunnel: not encapsulated (proto %d)", d.proto)
		}
		if d.src != localFor(v6) || d.dst != realIP {
			t.Errorf("tunnel outer: %s -> %s, want %s -> %s", d.src, d.dst, localFor(v6), realIP)
		}
		inner := ipPacket(in[14:], v6)
		if out := res.tx[0]; !bytes.Equal(out[len(out)-len(inner):], inner) {
			t.Errorf("tunnel: inner packet differs from the input")
		}
		d = d.inner
		if d.src != cl || d.dst != svc.VIP {
			t.Errorf("tunnel inner: %s -> %s", d.src, d.dst)
		}
	}
	if !bytes.Equal(d.payload, payload) {
		t.Errorf("payload %q, want %q", d.payload, payload)
	}

	// Second packet of the flow: same real.
	spec.syn, spec.ack = false, !udp
	res = e.run(build(t, spec))
	if len(res.tx) != 1 || realIndex(decodeFrame(t, res.tx[0]).eth.DstMAC) != ri {
		t.Fatalf("second packet did not follow the session to real %d", ri)
	}
	if hits := e.pipe.Stats().Counter(CtrSessionHit); hits != 1 {
		t.Errorf("session hits %d, want 1", hits)
	}

	if m != lb.MethodNAT && m != lb.MethodFullNAT {
		return
	}
	// The reply comes back through gvs and leaves as the VIP.
	rspec := pktSpec{src: realIP, sport: natRealPrt, dst: cl, dport: 40000, udp: udp, syn: !udp, ack: !udp, payload: []byte("hi client"), srcMAC: net.HardwareAddr(realMACs(ri))}
	if m == lb.MethodFullNAT {
		rspec.dst, rspec.dport = localFor(v6), lport
	}
	res = e.run(build(t, rspec))
	if len(res.tx) != 1 {
		t.Fatalf("reply: %d frames out (slow %d, drop %d)", len(res.tx), len(res.slow), len(res.drop))
	}
	r := decodeFrame(t, res.tx[0])
	if r.src != svc.VIP || r.sport != vipPort || r.dst != cl || r.dport != 40000 {
		t.Errorf("reply: got %s:%d -> %s:%d, want %s:%d -> %s:40000", r.src, r.sport, r.dst, r.dport, svc.VIP, vipPort, cl)
	}
	if !bytes.Equal(r.eth.DstMAC, clientMAC) || !bytes.Equal(r.eth.SrcMAC, portMAC) {
		t.Errorf("reply MACs %s -> %s, want %s -> %s", r.eth.SrcMAC, r.eth.DstMAC, portMAC, clientMAC)
	}
	if !bytes.Equal(r.payload, []byte("hi client")) {
		t.Errorf("reply payload %q", r.payload)
	}
	if n := e.pipe.Stats().Counter(CtrReplies); n != 1 {
		t.Errorf("replies counter %d, want 1", n)
	}
}

// ipPacket strips Ethernet padding from an IP packet.
func ipPacket(b []byte, v6 bool) []byte {
	if v6 {
		return b[:40+int(binary.BigEndian.Uint16(b[4:]))]
	}
	return b[:binary.BigEndian.Uint16(b[2:])]
}

func realMACs(i int) []byte {
	m := realMAC(i)
	return m[:]
}
