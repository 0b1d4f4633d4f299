package pmd

import (
	"fmt"
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

var (
	lbMAC     = net.HardwareAddr{0x02, 0, 0, 0, 0, 0xaa}
	clientMAC = net.HardwareAddr{0x02, 0, 0, 0, 0, 0xcc}
	vip       = netip.MustParseAddr("198.18.250.1")
)

func realAddr(i int) netip.Addr { return netip.AddrFrom4([4]byte{198, 18, 1, byte(10 + i)}) }

func client(i int) netip.Addr { return netip.AddrFrom4([4]byte{198, 19, byte(i >> 8), byte(i)}) }

func tcp4(t testing.TB, src, dst netip.Addr, sport, dport uint16, syn bool, srcMAC net.HardwareAddr) []byte {
	t.Helper()
	eth := &layers.Ethernet{SrcMAC: srcMAC, DstMAC: lbMAC, EthernetType: layers.EthernetTypeIPv4}
	ip := &layers.IPv4{Version: 4, TTL: 64, Protocol: layers.IPProtocolTCP, SrcIP: src.AsSlice(), DstIP: dst.AsSlice()}
	tc := &layers.TCP{SrcPort: layers.TCPPort(sport), DstPort: layers.TCPPort(dport), SYN: syn, ACK: !syn, Window: 1000}
	_ = tc.SetNetworkLayerForChecksum(ip)
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, eth, ip, tc); err != nil {
		t.Fatal(err)
	}
	return append([]byte(nil), buf.Bytes()...)
}

func natService(n int) (lb.Service, map[netip.Addr]lb.NextHop) {
	s := lb.Service{Proto: lb.ProtoTCP, VIP: vip, Port: 80, Scheduler: "rr", Method: lb.MethodNAT}
	hops := map[netip.Addr]lb.NextHop{}
	for i := 0; i < n; i++ {
		s.Reals = append(s.Reals, lb.Real{Addr: realAddr(i), Port: 8080, Weight: 1})
		hops[realAddr(i)] = lb.NextHop{MAC: [6]byte{2, 0, 0, 0, 1, byte(i)}, OK: true}
	}
	return s, hops
}

type seen struct {
	src, dst     netip.Addr
	sport, dport uint16
	dstMAC       net.HardwareAddr
}

func decode(t *testing.T, b []byte) seen {
	t.Helper()
	p := gopacket.NewPacket(b, layers.LayerTypeEthernet, gopacket.Default)
	eth, _ := p.Layer(layers.LayerTypeEthernet).(*layers.Ethernet)
	ip, _ := p.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
	tc, _ := p.Layer(layers.LayerTypeTCP).(*layers.TCP)
	if eth == nil || ip == nil || tc == nil {
		t.Fatalf("undecodable output %x", b)
	}
	s, _ := netip.AddrFromSlice(ip.SrcIP)
	d, _ := netip.AddrFromSlice(ip.DstIP)
	return seen{s, d, uint16(tc.SrcPort), uint16(tc.DstPort), eth.DstMAC}
}

// drainAll collects transmitted packets from every queue until want have
// arrived or the deadline passes.
func drainAll(t *testing.T, port *mem.Port, want int) [][]byte {
	t.Helper()
	var got [][]byte
	deadline := time.Now().Add(10 * time.Second)
	for len(got) < want && time.Now().Before(deadline) {
		n := 0
		for q := 0; q < port.NumQueues(); q++ {
			n += port.MemQueue(q).Drain(0, func(b []byte) { got = append(got, append([]byte(nil), b...)) })
		}
		if n == 0 {
			time.Sleep(200 * time.Microsecond)
		}
	}
	if len(got) != want {
		t.Fatalf("got %d transmitted packets, want %d", len(got), want)
	}
	return got
}

// Two workers; packets of nat flows arrive on either queue and are handed
// to the owner, so every packet of a flow reaches the same real and replies
// find their session.
func TestTwoWorkersHandOver(t *testing.T) {
	svc, hops := natService(3)
	bal := lb.NewBalancer(2, 64)
	if err := bal.Apply(lb.Config{Services: []lb.Service{svc}, NextHops: hops}); err != nil {
		t.Fatal(err)
	}
	port, err := mem.New(mem.Config{MAC: lbMAC, Queues: 2, RingSize: 4096, Frames: 16384})
	if err != nil {
		t.Fatal(err)
	}
	e, err := New(Config{Workers: 2, Ports: []driver.Port{port}, Balancer: bal, Sessions: 4096})
	if err != nil {
		t.Fatal(err)
	}
	e.Start()
	t.Cleanup(e.Stop)

	const flows = 200
	// SYNs on queue i%2.
	for q := 0; q < 2; q++ {
		var pkts [][]byte
		for i := q; i < flows; i += 2 {
			pkts = append(pkts, tcp4(t, client(i), vip, uint16(10000+i), 80, true, clientMAC))
		}
		if n := port.MemQueue(q).Inject(pkts...); n != len(pkts) {
			t.Fatalf("inject %d of %d", n, len(pkts))
		}
	}
	realOf := map[netip.AddrPort]netip.Addr{}
	for _, b := range drainAll(t, port, flows) {
		s := decode(t, b)
		if s.dport != 8080 {
			t.Fatalf("SYN not DNATed: %+v", s)
		}
		realOf[netip.AddrPortFrom(s.src, s.sport)] = s.dst
	}
	if len(realOf) != flows {
		t.Fatalf("%d distinct flows forwarded, want %d", len(realOf), flows)
	}
	// ACKs on the other queue: same real.
	for q := 0; q < 2; q++ {
		var pkts [][]byte
		for i := 1 - q; i < flows; i += 2 {
			pkts = append(pkts, tcp4(t, client(i), vip, uint16(10000+i), 80, false, clientMAC))
		}
		port.MemQueue(q).Inject(pkts...)
	}
	for _, b := range drainAll(t, port, flows) {
		s := decode(t, b)
		if want := realOf[netip.AddrPortFrom(s.src, s.sport)]; s.dst != want {
			t.Fatalf("flow %s:%d moved from %s to %s", s.src, s.sport, want, s.dst)
		}
	}
	// Replies from the reals, on queue 0 only: half belong to worker 1.
	var replies [][]byte
	for cl, r := range realOf {
		replies = append(replies, tcp4(t, r, cl.Addr(), 8080, cl.Port(), false, net.HardwareAddr{2, 0, 0, 0, 1, 0}))
	}
	port.MemQueue(0).Inject(replies...)
	for _, b := range drainAll(t, port, flows) {
		s := decode(t, b)
		if s.src != vip || s.sport != 80 {
			t.Fatalf("reply not rewritten to the VIP: %+v", s)
		}
		if s.dstMAC.String() != clientMAC.String() {
			t.Fatalf("reply to %s, want the client's MAC %s", s.dstMAC, clientMAC)
		}
	}
	var in uint64
	for _, w := range e.Workers() {
		st := w.Stats()
		in += st.HandoverIn
		if st.HandoverDrops != 0 {
			t.Fatalf("worker %d dropped %d hand-overs", w.ID(), st.HandoverDrops)
		}
	}
	if in == 0 {
		t.Fatal("no packet was handed over between workers")
	}
	// Both workers own sessions.
	e.Stop()
	for _, w := range e.Workers() {
		if w.Pipeline().Sessions().Len() == 0 {
			t.Fatalf("worker %d owns no session", w.ID())
		}
	}
}

func TestNewRejectsTooFewQueues(t *testing.T) {
	port, _ := mem.New(mem.Config{Queues: 1})
	_, err := New(Config{Workers: 2, Ports: []driver.Port{port}, Balancer: lb.NewBalancer(2, 8)})
	if err == nil {
		t.Fatal("2 workers on a 1-queue port accepted")
	}
}

// BenchmarkWorkers runs the same dr traffic (established flows, replayed by
// the mem driver) over 1 and 2 workers and reports packets per second.
func BenchmarkWorkers(b *testing.B) {
	for _, n := range []int{1, 2} {
		b.Run(fmt.Sprint(n), func(b *testing.B) { benchWorkers(b, n) })
	}
}

func benchWorkers(b *testing.B, workers int) {
	svc, hops := natService(8)
	svc.Method = lb.MethodDR
	for i := range svc.Reals {
		svc.Reals[i].Port = 0
	}
	bal := lb.NewBalancer(workers, 64)
	if err := bal.Apply(lb.Config{Services: []lb.Service{svc}, NextHops: hops}); err != nil {
		b.Fatal(err)
	}
	port, _ := mem.New(mem.Config{MAC: lbMAC, Queues: workers, Frames: 4096 * workers})
	const flows = 65536
	for q := 0; q < workers; q++ {
		var pkts [][]byte
		for i := q; i < flows; i += workers {
			pkts = append(pkts, tcp4(b, client(i), vip, uint16(1024+i%50000), 80, false, clientMAC))
		}
		port.MemQueue(q).SetReplay(pkts)
		port.MemQueue(q).SetDiscard(true)
	}
	e, err := New(Config{Workers: workers, Ports: []driver.Port{port}, Balancer: bal, Sessions: flows * 2, Idle: Idle{Spin: 1 << 30}})
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	start := time.Now()
	e.Start()
	for port.Stats().RxPackets < uint64(b.N) {
		time.Sleep(100 * time.Microsecond)
	}
	e.Stop()
	el := time.Since(start)
	b.StopTimer()
	rx := port.Stats().RxPackets
	b.ReportMetric(float64(rx)/el.Seconds(), "pkts/s")
	b.ReportMetric(float64(el.Nanoseconds())/float64(rx), "ns/pkt")
}

// A worker polls every queue assigned to it: with one worker and two
// queues, packets arriving on queue 1 are balanced too.
func TestWorkerPollsExtraQueues(t *testing.T) {
	svc, hops := natService(2)
	bal := lb.NewBalancer(1, 16)
	if err := bal.Apply(lb.Config{Services: []lb.Service{svc}, NextHops: hops}); err != nil {
		t.Fatal(err)
	}
	port, _ := mem.New(mem.Config{MAC: lbMAC, Queues: 2})
	e, err := New(Config{Workers: 1, Ports: []driver.Port{port}, Balancer: bal, Sessions: 256})
	if err != nil {
		t.Fatal(err)
	}
	w := e.Workers()[0]
	port.MemQueue(1).Inject(tcp4(t, client(1), vip, 1234, 80, true, clientMAC))
	if n := w.Poll(time.Now().UnixNano()); n != 1 {
		t.Fatalf("polled %d packets, want the one on queue 1", n)
	}
	if got := drainAll(t, port, 1); decode(t, got[0]).dport != 8080 {
		t.Fatal("packet from queue 1 not balanced")
	}
}
