//go:build dpdk

package dpdk

import (
	"bytes"
	"encoding/binary"
	"net"
	"net/netip"
	"testing"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"

	"gvs/driver"
	"gvs/lb"
	"gvs/pmd"
)

// gvs's pipeline on DPDK ports: a pmd worker polls a net_ring port, frames
// injected through the ring pair come out rewritten, as in the pipeline's
// own tests on mem ports.

var (
	lbMAC     = net.HardwareAddr{0x02, 0, 0, 0, 0, 0xaa}
	routerMAC = net.HardwareAddr{0x02, 0, 0, 0, 0, 0xfe}
	vip       = netip.MustParseAddr("198.18.250.10")
	localAddr = netip.MustParseAddr("198.18.200.1")
)

func realIP(i int) netip.Addr { return netip.AddrFrom4([4]byte{198, 18, 1, byte(11 + i)}) }

func realMAC(i int) [6]byte { return [6]byte{0x02, 0, 0, 0, 1, byte(i)} }

func clientIP(i int) netip.Addr { return netip.AddrFrom4([4]byte{198, 19, byte(i >> 8), byte(i)}) }

type pkt struct {
	srcMAC, dstMAC net.HardwareAddr
	src, dst       netip.Addr
	sport, dport   uint16
	syn, ack       bool
	payload        []byte
}

func (p pkt) bytes(t testing.TB) []byte {
	t.Helper()
	eth := &layers.Ethernet{SrcMAC: p.srcMAC, DstMAC: p.dstMAC, EthernetType: layers.EthernetTypeIPv4}
	ip := &layers.IPv4{Version: 4, TTL: 64, Protocol: layers.IPProtocolTCP, SrcIP: p.src.AsSlice(), DstIP: p.dst.AsSlice()}
	tc := &layers.TCP{SrcPort: layers.TCPPort(p.sport), DstPort: layers.TCPPort(p.dport), SYN: p.syn, ACK: p.ack, Window: 1000, Seq: 1}
	_ = tc.SetNetworkLayerForChecksum(ip)
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, eth, ip, tc, gopacket.Payload(p.payload)); err != nil {
		t.Fatal(err)
	}
	return append([]byte(nil), buf.Bytes()...)
}

// seenPkt is a decoded output frame; inner is set for IPIP.
type seenPkt struct {
	dstMAC, srcMAC net.HardwareAddr
	src, dst       netip.Addr
	sport, dport   uint16
	payload        []byte
	inner          *seenPkt
}

func decodeOut(t *testing.T, b []byte) seenPkt {
	t.Helper()
	if len(b) < 14+20 || binary.BigEndian.Uint16(b[12:]) != 0x0800 {
		t.Fatalf("not IPv4: %x", b)
	}
	checkIPv4(t, b[14:])
	return decodeIP(t, b[14:], net.HardwareAddr(b[0:6]), net.HardwareAddr(b[6:12]))
}

func decodeIP(t *testing.T, ip []byte, dmac, smac net.HardwareAddr) seenPkt {
	t.Helper()
	hl := int(ip[0]&15) * 4
	s := seenPkt{dstMAC: dmac, srcMAC: smac}
	s.src, _ = netip.AddrFromSlice(ip[12:16])
	s.dst, _ = netip.AddrFromSlice(ip[16:20])
	switch ip[9] {
	case 4: // IPIP
		checkIPv4(t, ip[hl:])
		in := decodeIP(t, ip[hl:], nil, nil)
		s.inner = &in
	case 6:
		l4 := ip[hl:binary.BigEndian.Uint16(ip[2:])]
		s.sport, s.dport = binary.BigEndian.Uint16(l4[0:]), binary.BigEndian.Uint16(l4[2:])
		s.payload = l4[int(l4[12]>>4)*4:]
		if csum(pseudo4(ip, len(l4)), l4) != 0 {
			t.Errorf("TCP checksum wrong in %s:%d -> %s:%d", s.src, s.sport, s.dst, s.dport)
		}
	default:
		t.Fatalf("protocol %d", ip[9])
	}
	return s
}

func pseudo4(ip []byte, l4len int) uint32 {
	var sum uint32
	for i := 12; i < 20; i += 2 {
		sum += uint32(binary.BigEndian.Uint16(ip[i:]))
	}
	return sum + uint32(ip[9]) + uint32(l4len)
}

func csum(sum uint32, b []byte) uint16 {
	for len(b) >= 2 {
		sum += uint32(binary.BigEndian.Uint16(b))
		b = b[2:]
	}
	if len(b) == 1 {
		sum += uint32(b[0]) << 8
	}
	for sum>>16 != 0 {
		sum = sum&0xffff + sum>>16
	}
	return ^uint16(sum)
}

func checkIPv4(t *testing.T, ip []byte) {
	t.Helper()
	if csum(0, ip[:int(ip[0]&15)*4]) != 0 {
		t.Errorf("IPv4 header checksum wrong: %x", ip[:20])
	}
}

// pipeEnv is one worker over a net_ring port.
type pipeEnv struct {
	rp  *ringPort
	eng *pmd.Engine
}

func newPipeEnv(t *testing.T, workers int, svcs ...lb.Service) *pipeEnv {
	t.Helper()
	hops := map[netip.Addr]lb.NextHop{}
	for i := 0; i < 4; i++ {
		hops[realIP(i)] = lb.NextHop{MAC: realMAC(i), OK: true}
	}
	bal := lb.NewBalancer(workers, 64)
	if err := bal.Apply(lb.Config{Services: svcs, NextHops: hops}); err != nil {
		t.Fatal(err)
	}
	rp := newRingPort(t, workers, Config{MAC: lbMAC})
	eng, err := pmd.New(pmd.Config{Workers: workers, Ports: []driver.Port{rp.Port}, Balancer: bal, Sessions: 4096})
	if err != nil {
		t.Fatal(err)
	}
	eng.Start()
	t.Cleanup(eng.Stop) // before the port's cleanup (LIFO)
	return &pipeEnv{rp: rp, eng: eng}
}

func service(m lb.Method, reals int) lb.Service {
	s := lb.Service{Proto: lb.ProtoTCP, VIP: vip, Port: 80, Scheduler: "rr", Method: m}
	if m == lb.MethodFullNAT || m == lb.MethodTunnel {
		s.LocalAddrs = []netip.Addr{localAddr}
	}
	for i := 0; i < reals; i++ {
		r := lb.Real{Addr: realIP(i), Weight: 1}
		if m == lb.MethodNAT || m == lb.MethodFullNAT {
			r.Port = 8080
		}
		s.Reals = append(s.Reals, r)
	}
	return s
}

func realOfMAC(m net.HardwareAddr) int {
	for i := 0; i < 4; i++ {
		rm := realMAC(i)
		if bytes.Equal(m, rm[:]) {
			return i
		}
	}
	return -1
}

func TestPipelineOverRing(t *testing.T) {
	for _, m := range []lb.Method{lb.MethodNAT, lb.MethodFullNAT, lb.MethodDR, lb.MethodTunnel} {
		t.Run(m.String(), func(t *testing.T) { testPipelineMethod(t, m) })
	}
}

func testPipelineMethod(t *testing.T, m lb.Method) {
	before := inUse(t)
	e := newPipeEnv(t, 1, service(m, 2))
	const flows = 40
	var in [][]byte
	payload := []byte("through dpdk")
	for i := 0; i < flows; i++ {
		in = append(in, pkt{srcMAC: routerMAC, dstMAC: lbMAC, src: clientIP(i), dst: vip, sport: uint16(20000 + i), dport: 80, syn: true, payload: payload}.bytes(t))
	}
	e.rp.inject(t, 0, in...)
	out := e.rp.waitSent(t, flows)
	perReal := map[int]int{}
	type fwd struct {
		real  int
		lport uint16
	}
	flowsOut := map[uint16]fwd{} // client port -> real, local port
	for i, s := range out {
		d := decodeOut(t, s.data)
		ri := realOfMAC(d.dstMAC)
		if ri < 0 || !bytes.Equal(d.srcMAC, lbMAC) {
			t.Fatalf("frame %d: %s -> %s", i, d.srcMAC, d.dstMAC)
		}
		perReal[ri]++
		switch m {
		case lb.MethodNAT:
			if d.src != clientIP(i) || d.dst != realIP(ri) || d.dport != 8080 {
				t.Errorf("nat: %s:%d -> %s:%d", d.src, d.sport, d.dst, d.dport)
			}
			flowsOut[d.sport] = fwd{ri, 0}
		case lb.MethodFullNAT:
			if d.src != localAddr || d.dst != realIP(ri) || d.dport != 8080 {
				t.Errorf("fullnat: %s:%d -> %s:%d", d.src, d.sport, d.dst, d.dport)
			}
			flowsOut[uint16(20000+i)] = fwd{ri, d.sport}
		case lb.MethodDR:
			if d.src != clientIP(i) || d.dst != vip || !bytes.Equal(s.data[14:], in[i][14:]) {
				t.Errorf("dr changed the IP packet")
			}
		case lb.MethodTunnel:
			if d.inner == nil || d.src != localAddr || d.dst != realIP(ri) || d.inner.dst != vip {
				t.Fatalf("tunnel: %+v", d)
			}
			if s.headroom != in0Headroom-20 {
				t.Errorf("IPIP header not in the mbuf headroom: data offset %d", s.headroom)
			}
			d = *d.inner
		}
		if !bytes.Equal(d.payload, payload) {
			t.Errorf("payload %q", d.payload)
		}
	}
	if perReal[0] != flows/2 || perReal[1] != flows/2 {
		t.Errorf("rr spread %v", perReal)
	}
	if m == lb.MethodNAT || m == lb.MethodFullNAT {
		// Replies from the reals leave as the VIP, to the client.
		var replies [][]byte
		for i := 0; i < flows; i++ {
			f := flowsOut[uint16(20000+i)]
			rm := realMAC(f.real)
			p := pkt{srcMAC: net.HardwareAddr(rm[:]), dstMAC: lbMAC, src: realIP(f.real), sport: 8080, syn: true, ack: true, payload: []byte("reply")}
			if m == lb.MethodNAT {
				p.dst, p.dport = clientIP(i), uint16(20000+i)
			} else {
				p.dst, p.dport = localAddr, f.lport
			}
			replies = append(replies, p.bytes(t))
		}
		e.rp.inject(t, 0, replies...)
		for i, s := range e.rp.waitSent(t, flows) {
			d := decodeOut(t, s.data)
			if d.src != vip || d.sport != 80 || d.dst != clientIP(i) || d.dport != uint16(20000+i) {
				t.Errorf("reply %d: %s:%d -> %s:%d", i, d.src, d.sport, d.dst, d.dport)
			}
		}
	}
	e.eng.Stop()
	if d := inUse(t) - before; d != 0 {
		t.Errorf("%d mbufs leaked", d)
	}
}

// in0Headroom is the data offset of a received frame (RTE_PKTMBUF_HEADROOM).
var in0Headroom = 128

// Two workers, flows injected on both queues: nat flows are handed to their
// owner, replies find their session, whatever queue they arrive on.
func TestPipelineTwoWorkers(t *testing.T) {
	e := newPipeEnv(t, 2, service(lb.MethodNAT, 2))
	const flows = 64
	for q := 0; q < 2; q++ {
		var in [][]byte
		for i := q; i < flows; i += 2 {
			in = append(in, pkt{srcMAC: routerMAC, dstMAC: lbMAC, src: clientIP(i), dst: vip, sport: uint16(30000 + i), dport: 80, syn: true}.bytes(t))
		}
		e.rp.inject(t, q, in...)
	}
	realOf := map[uint16]netip.Addr{}
	for _, s := range e.rp.waitSent(t, flows) {
		d := decodeOut(t, s.data)
		realOf[d.sport] = d.dst
	}
	// Replies on the other queue.
	for q := 0; q < 2; q++ {
		var in [][]byte
		for i := 1 - q; i < flows; i += 2 {
			r := realOf[uint16(30000+i)]
			in = append(in, pkt{srcMAC: routerMAC, dstMAC: lbMAC, src: r, dst: clientIP(i), sport: 8080, dport: uint16(30000 + i), syn: true, ack: true}.bytes(t))
		}
		e.rp.inject(t, q, in...)
	}
	for _, s := range e.rp.waitSent(t, flows) {
		d := decodeOut(t, s.data)
		if d.src != vip || d.sport != 80 {
			t.Errorf("reply not rewritten: %s:%d -> %s:%d", d.src, d.sport, d.dst, d.dport)
		}
	}
	var handed uint64
	for _, w := range e.eng.Workers() {
		handed += w.Stats().HandoverIn
	}
	if handed == 0 {
		t.Error("no hand-over between the workers")
	}
}
