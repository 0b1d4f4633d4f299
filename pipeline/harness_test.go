package pipeline

import (
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"

	"gvs/driver"
	"gvs/driver/mem"
	"gvs/lb"
)

// The test harness: one mem port, a Balancer with one service per method
// and family, and helpers that build packets with gopacket and run them
// through a Pipeline.

var (
	portMAC   = net.HardwareAddr{0x02, 0, 0, 0, 0, 0xaa}
	clientMAC = net.HardwareAddr{0x02, 0, 0, 0, 0, 0xcc}
	methods   = []lb.Method{lb.MethodNAT, lb.MethodFullNAT, lb.MethodDR, lb.MethodL3DSR, lb.MethodTunnel}
)

const (
	testDSCP   = 10
	vipPort    = 80
	natRealPrt = 8080
)

func realMAC(i int) [6]byte { return [6]byte{0x02, 0, 0, 0, 1, byte(i)} }

// vipFor returns the VIP of the test service of a method.
func vipFor(m lb.Method, v6 bool) netip.Addr {
	if v6 {
		return netip.MustParseAddr("2001:db8:1::" + string(rune('0'+m)))
	}
	return netip.AddrFrom4([4]byte{198, 18, 250, byte(m)})
}

// realFor returns real i (0-based) of the test service of a method.
func realFor(m lb.Method, v6 bool, i int) netip.Addr {
	if v6 {
		return netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, byte(m), byte(10 + i)})
	}
	return netip.AddrFrom4([4]byte{198, 18, byte(m), byte(10 + i)})
}

func localFor(v6 bool) netip.Addr {
	if v6 {
		return netip.MustParseAddr("2001:db8:200::1")
	}
	return netip.MustParseAddr("198.18.200.1")
}

func clientAddr(v6 bool, i int) netip.Addr {
	if v6 {
		return netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 0, 3, 0, 0, 0, 0, 0, 0, 0, byte(i >> 16), byte(i >> 8), byte(i)})
	}
	return netip.AddrFrom4([4]byte{198, 19, byte(i >> 8), byte(i)})
}

// testService builds the service of method m with n reals.
func testService(m lb.Method, v6 bool, proto lb.Proto, sched string, n int) lb.Service {
	s := lb.Service{
		Proto: proto, VIP: vipFor(m, v6), Port: vipPort, Scheduler: sched, Method: m,
		DSCP: testDSCP, LocalAddrs: []netip.Addr{localFor(v6)},
	}
	for i := 0; i < n; i++ {
		r := lb.Real{Addr: realFor(m, v6, i), Weight: 1}
		if m == lb.MethodNAT || m == lb.MethodFullNAT {
			r.Port = natRealPrt
		}
		s.Reals = append(s.Reals, r)
	}
	return s
}

// hopsFor resolves every real of the services to realMAC(i) on port 0.
func hopsFor(svcs []lb.Service) map[netip.Addr]lb.NextHop {
	hops := map[netip.Addr]lb.NextHop{}
	for _, s := range svcs {
		for i, r := range s.Reals {
			hops[r.Addr] = lb.NextHop{MAC: realMAC(i), Port: 0, OK: true}
		}
	}
	return hops
}

type env struct {
	t    testing.TB
	bal  *lb.Balancer
	pipe *Pipeline
	out  *Output
	port *mem.Port
	now  int64
}

// newEnv makes a one-worker pipeline over the given services.
func newEnv(t testing.TB, sessions int, svcs ...lb.Service) *env {
	t.Helper()
	bal := lb.NewBalancer(1, 1024)
	if err := bal.Apply(lb.Config{Services: svcs, NextHops: hopsFor(svcs)}); err != nil {
		t.Fatalf("Apply: %v", err)
	}
	port, err := mem.New(mem.Config{MAC: portMAC, MTU: 1500, Frames: 8192, RingSize: 4096})
	if err != nil {
		t.Fatal(err)
	}
	pipe, err := New(Config{Worker: 0, Workers: 1, Balancer: bal, PortMACs: []net.HardwareAddr{portMAC}, PortMTUs: []int{1500}, Sessions: sessions})
	if err != nil {
		t.Fatal(err)
	}
	return &env{t: t, bal: bal, pipe: pipe, out: NewOutput(1, 1), port: port, now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano()}
}

// result is what one run produced.
type result struct {
	tx, slow, drop, handover [][]byte
}

// run pushes packets through the pipeline in one burst (or several if more
// than BurstSize) and returns copies of what came out where.
func (e *env) run(pkts ...[]byte) result {
	e.t.Helper()
	var res result
	q := e.port.MemQueue(0)
	if n := q.Inject(pkts...); n != len(pkts) {
		e.t.Fatalf("inject: %d of %d", n, len(pkts))
	}
	var burst [driver.BurstSize]driver.Frame
	for {
		n, _ := q.Receive(burst[:])
		if n == 0 {
			break
		}
		e.out.Reset()
		e.pipe.Process(e.now, burst[:n], e.out)
		grab := func(fs []driver.Frame) [][]byte {
			var r [][]byte
			for i := range fs {
				r = append(r, append([]byte(nil), fs[i].Data()...))
			}
			q.Free(fs)
			return r
		}
		res.tx = append(res.tx, grab(e.out.Tx[0])...)
		res.slow = append(res.slow, grab(e.out.Slow)...)
		res.drop = append(res.drop, grab(e.out.Drop)...)
		for w := range e.out.Handover {
			res.handover = append(res.handover, grab(e.out.Handover[w])...)
		}
	}
	e.pipe.Publish()
	return res
}

// pktSpec describes a test packet.
type pktSpec struct {
	src, dst     netip.Addr
	sport, dport uint16
	udp          bool
	syn, ack     bool
	fin, rst     bool
	payload      []byte
	srcMAC       net.HardwareAddr
}

// build serializes a packet with correct lengths and checksums.
func build(t testing.TB, s pktSpec) []byte {
	t.Helper()
	mac := s.srcMAC
	if mac == nil {
		mac = clientMAC
	}
	eth := &layers.Ethernet{SrcMAC: mac, DstMAC: portMAC}
	var netl gopacket.NetworkLayer
	var ls []gopacket.SerializableLayer
	if s.src.Is4() {
		eth.EthernetType = layers.EthernetTypeIPv4
		ip := &layers.IPv4{Version: 4, TTL: 64, SrcIP: s.src.AsSlice(), DstIP: s.dst.AsSlice(), Flags: layers.IPv4DontFragment}
		if s.udp {
			ip.Protocol = layers.IPProtocolUDP
		} else {
			ip.Protocol = layers.IPProtocolTCP
		}
		netl = ip
		ls = append(ls, eth, ip)
	} else {
		eth.EthernetType = layers.EthernetTypeIPv6
		ip := &layers.IPv6{Version: 6, HopLimit: 64, SrcIP: s.src.AsSlice(), DstIP: s.dst.AsSlice()}
		if s.udp {
			ip.NextHeader = layers.IPProtocolUDP
		} else {
			ip.NextHeader = layers.IPProtocolTCP
		}
		netl = ip
		ls = append(ls, eth, ip)
	}
	if s.udp {
		u := &layers.UDP{SrcPort: layers.UDPPort(s.sport), DstPort: layers.UDPPort(s.dport)}
		_ = u.SetNetworkLayerForChecksum(netl)
		ls = append(ls, u)
	} else {
		tc := &layers.TCP{SrcPort: layers.TCPPort(s.sport), DstPort: layers.TCPPort(s.dport), SYN: s.syn, ACK: s.ack, FIN: s.fin, RST: s.rst, Window: 65535, Seq: 1000, DataOffset: 5}
		if s.ack {
			tc.Ack = 2000
		}
		_ = tc.SetNetworkLayerForChecksum(netl)
		ls = append(ls, tc)
	}
	ls = append(ls, gopacket.Payload(s.payload))
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, ls...); err != nil {
		t.Fatalf("serialize: %v", err)
	}
	return append([]byte(nil), buf.Bytes()...)
}
