package afpacket

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"runtime"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"gvs/driver"
)

const waitFor = 5 * time.Second // bound of every wait in these tests

func TestOpenErrors(t *testing.T) {
	n := newTestNet(t, 1)

	var err error
	n.do(func() error { _, err = Open(Config{Interface: "nosuch0"}); return nil })
	if err == nil || !strings.Contains(err.Error(), "open AF_PACKET on nosuch0") || !strings.Contains(err.Error(), "no such interface") || !errors.Is(err, unix.ENODEV) {
		t.Errorf("missing interface: got %v", err)
	}

	n.do(func() error { _, err = Open(Config{Interface: gvsIf, FrameSize: 1024}); return nil })
	if err == nil || !strings.Contains(err.Error(), "open AF_PACKET on gvs0") || !strings.Contains(err.Error(), "frame size 1024") {
		t.Errorf("small frame size: got %v", err)
	}

	n.do(func() error { _, err = Open(Config{Interface: gvsIf, BlockSize: 5000}); return nil })
	if err == nil || !strings.Contains(err.Error(), "block size 5000") {
		t.Errorf("odd block size: got %v", err)
	}

	// The kernel's own refusal names the ring parameters: a ring of 2^20
	// blocks of 1 MiB is more than any machine has.
	n.do(func() error { _, err = Open(Config{Interface: gvsIf, BlockCount: 1 << 20}); return nil })
	if err == nil || !strings.Contains(err.Error(), "PACKET_RX_RING (TPACKET_V3, 1048576 blocks of 1048576 bytes") {
		t.Errorf("huge ring: got %v", err)
	}

	// Without CAP_NET_RAW (dropped on this thread only).
	n.do(func() error {
		hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
		var data [2]unix.CapUserData
		if err := unix.Capget(&hdr, &data[0]); err != nil {
			return err
		}
		data[0].Effective &^= 1 << unix.CAP_NET_RAW
		if err := unix.Capset(&hdr, &data[0]); err != nil {
			return err
		}
		_, err = Open(Config{Interface: gvsIf})
		return nil
	})
	if err == nil || !strings.Contains(err.Error(), "open AF_PACKET on gvs0") || !strings.Contains(err.Error(), "CAP_NET_RAW") || !errors.Is(err, unix.EPERM) {
		t.Errorf("without CAP_NET_RAW: got %v", err)
	}
}

func TestPortInfo(t *testing.T) {
	n := newTestNet(t, 1)
	p := n.open(Config{})
	if p.Name() != gvsIf || !bytes.Equal(p.MAC(), gvsMAC) || p.MTU() != 1500 || p.NumQueues() != 1 {
		t.Errorf("port: name %q mac %v mtu %d queues %d", p.Name(), p.MAC(), p.MTU(), p.NumQueues())
	}
	c := p.Config()
	if c.FrameSize != DefaultFrameSize || c.BlockSize != DefaultBlockSize || c.PoolFrames != DefaultPoolPerQueue {
		t.Errorf("defaults not applied: %+v", c)
	}
	if s := p.PacketQueue(0).TxSlots(); s < DefaultTxFrames {
		t.Errorf("TX ring has %d slots, want >= %d", s, DefaultTxFrames)
	}
	t.Logf("TX ring: %d slots", p.PacketQueue(0).TxSlots())
}

// TestReceive: frames the peer sends arrive exactly, byte for byte, with
// headroom, VLAN tags restored, read in small bursts.
func TestReceive(t *testing.T) {
	n := newTestNet(t, 1)
	p := n.open(Config{})
	peer := n.raw(peerIf, false)

	var sent [][]byte
	for i := 0; i < 200; i++ {
		size := 60 + (i*37)%(1514-60+1)
		if i == 199 {
			size = 1514
		}
		sent = append(sent, testFrame(gvsMAC, peerMAC, i, size))
	}
	// Tagged frames: the kernel strips the outer tag into tp_vlan_tci; the
	// driver must put it back. 802.1Q, 802.1Q with PCP and TCI 0, QinQ.
	for i, tags := range [][]vlanTag{{{0x8100, 100}}, {{0x8100, 0xe000}}, {{0x88a8, 7}, {0x8100, 4094}}, {{0x8100, 1}, {0x8100, 2}}} {
		f := testFrame(gvsMAC, peerMAC, 1000+i, 300)
		var hdr []byte
		for _, tg := range tags {
			hdr = binary.BigEndian.AppendUint16(hdr, tg.tpid)
			hdr = binary.BigEndian.AppendUint16(hdr, tg.tci)
		}
		f = append(f[:12:12], append(hdr, f[12:]...)...)
		sent = append(sent, f)
	}
	for _, f := range sent {
		peer.send(f)
	}
	peer.send(barrierFrame(gvsMAC, peerMAC))

	// Receive in bursts of 7 so blocks are consumed partly.
	var got []rxPkt
	var burst [7]driver.Frame
	q := p.Queue(0)
	deadline := time.Now().Add(waitFor)
	for done := false; !done; {
		k, err := q.Receive(burst[:])
		if err != nil {
			t.Fatal(err)
		}
		if k > len(burst) {
			t.Fatalf("Receive returned %d > %d", k, len(burst))
		}
		for i := 0; i < k; i++ {
			f := &burst[i]
			if f.Off < driver.MinHeadroom {
				t.Fatalf("frame with headroom %d < %d", f.Off, driver.MinHeadroom)
			}
			if hdr := f.Prepend(driver.MinHeadroom); hdr == nil {
				t.Fatal("Prepend(MinHeadroom) failed")
			}
			f.TrimFront(driver.MinHeadroom)
			got = append(got, rxPkt{off: f.Off, data: bytes.Clone(f.Data())})
			if isBarrier(f.Data()) {
				done = true
			}
		}
		q.Free(burst[:k])
		if k == 0 {
			if time.Now().After(deadline) {
				t.Fatalf("barrier not received within %v (%d frames)", waitFor, len(got))
			}
			time.Sleep(50 * time.Microsecond)
		}
	}
	var ours [][]byte
	for _, g := range got {
		if isBarrier(g.data) {
			break
		}
		if len(g.data) >= 24 && bytes.Contains(g.data[12:min(len(g.data), 40)], []byte("GVSAFP")) {
			ours = append(ours, g.data)
		} else {
			t.Logf("other frame: % x", g.data[:min(len(g.data), 34)])
		}
	}
	if len(ours) != len(sent) {
		t.Fatalf("received %d test frames, sent %d", len(ours), len(sent))
	}
	for i := range sent {
		if !bytes.Equal(ours[i], sent[i]) {
			t.Fatalf("frame %d differs:\n got % x\nwant % x", i, ours[i][:min(40, len(ours[i]))], sent[i][:min(40, len(sent[i]))])
		}
	}
	st, c := p.Stats(), p.Counters()
	if st.RxPackets < uint64(len(sent)+1) || st.RxDropped != 0 || c.VlanRestored < 4 {
		t.Errorf("stats %+v counters %+v", st, c)
	}
	if free := p.FreeFrames(); free != p.Config().PoolFrames {
		t.Errorf("pool leak: %d of %d buffers free", free, p.Config().PoolFrames)
	}
}

// TestTransmit: frames the driver sends reach the peer byte-identical;
// oversize frames are dropped and counted.
func TestTransmit(t *testing.T) {
	n := newTestNet(t, 1)
	p := n.open(Config{})
	peer := n.raw(peerIf, false)
	tap := n.rawSock(gvsIf, false, false) // sees outgoing frames, like tcpdump
	q := p.Queue(0)

	var sent [][]byte
	for i := 0; i < 300; i++ {
		sent = append(sent, testFrame(peerMAC, gvsMAC, i, 60+(i*53)%(1514-60+1)))
	}
	sent = append(sent, testFrame(peerMAC, gvsMAC, 300, 1514))
	udp := pktSpec{dst: peerMAC, src: gvsMAC, srcIP: farIP, dstIP: peerIP, proto: 17, sport: 4000, dport: 5000, payload: []byte("GVSAFP udp")}.build().frame
	sent = append(sent, udp)

	var burst [driver.BurstSize]driver.Frame
	for i := 0; i < len(sent); {
		k := q.Alloc(burst[:min(len(burst), len(sent)-i)])
		if k == 0 {
			t.Fatal("Alloc returned no frames")
		}
		for j := 0; j < k; j++ {
			f := &burst[j]
			if f.Off < driver.MinHeadroom || f.Len != 0 {
				t.Fatalf("Alloc: off %d len %d", f.Off, f.Len)
			}
			f.Len = copy(f.Buf[f.Off:], sent[i+j])
		}
		m, err := q.Transmit(burst[:k])
		if err != nil || m != k {
			t.Fatalf("Transmit took %d of %d: %v", m, k, err)
		}
		i += k
	}
	// Too long: MTU+14+1 untagged, MTU+18+1 tagged, and a runt.
	long := testFrame(peerMAC, gvsMAC, 9999, 1515)
	tagged := append(testFrame(peerMAC, gvsMAC, 9998, 1519)[:12:12], 0x81, 0, 0, 5)
	tagged = append(tagged, testFrame(peerMAC, gvsMAC, 9998, 1519)[12:]...)
	if k := q.Alloc(burst[:3]); k != 3 {
		t.Fatal("Alloc")
	}
	burst[0].Len = copy(burst[0].Buf[burst[0].Off:], long)
	burst[1].Len = copy(burst[1].Buf[burst[1].Off:], tagged)
	burst[2].Len = 10
	if m, _ := q.Transmit(burst[:3]); m != 3 {
		t.Fatalf("Transmit of oversize frames took %d, want 3 (taken and dropped)", m)
	}
	barrier := barrierFrame(peerMAC, gvsMAC)
	if k := q.Alloc(burst[:1]); k != 1 {
		t.Fatal("Alloc")
	}
	burst[0].Len = copy(burst[0].Buf[burst[0].Off:], barrier)
	if m, _ := q.Transmit(burst[:1]); m != 1 {
		t.Fatal("Transmit barrier")
	}

	var got [][]byte
	peer.recvUntil(waitFor, func(f []byte) bool {
		if isBarrier(f) {
			return true
		}
		if bytes.Contains(f, []byte("GVSAFP")) {
			got = append(got, f)
		} else {
			t.Logf("other frame at peer: % x", f[:min(len(f), 34)])
		}
		return false
	})
	if len(got) != len(sent) {
		t.Fatalf("peer received %d frames, sent %d", len(got), len(sent))
	}
	for i := range sent {
		if !bytes.Equal(got[i], sent[i]) {
			t.Fatalf("frame %d differs (len %d vs %d)", i, len(got[i]), len(sent[i]))
		}
	}
	// PACKET_QDISC_BYPASS: the frames never passed the packet taps of gvs0
	// (outgoing tap delivery happens before the peer receives a frame).
	if k := tap.drain(func(f []byte) bool { return bytes.Equal(f[6:12], gvsMAC) }); k != 0 {
		t.Errorf("a tap on %s saw %d of gvs's frames despite PACKET_QDISC_BYPASS", gvsIf, k)
	}
	st, c := p.Stats(), p.Counters()
	if st.TxPackets != uint64(len(sent)+1) || c.TxBadLength != 3 || st.TxDropped != 3 || c.TxKickErrors != 0 {
		t.Errorf("stats %+v counters %+v", st, c)
	}
	if free := p.FreeFrames(); free != p.Config().PoolFrames {
		t.Errorf("pool leak: %d of %d buffers free", free, p.Config().PoolFrames)
	}
}

// TestChecksumPartial: packets left CHECKSUM_PARTIAL by the sender (veth
// with tx checksum offload, the default) come out of the driver with a full,
// independently verified L4 checksum.
func TestChecksumPartial(t *testing.T) {
	n := newTestNet(t, 1)
	p := n.open(Config{})

	// 1. The kernel's own UDP over IPv4, as any client on a veth sends it.
	var fd int
	n.do(func() (err error) {
		fd, err = unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return err
		}
		return unix.Bind(fd, &unix.SockaddrInet4{Addr: [4]byte(peerIP), Port: 4321})
	})
	defer unix.Close(fd)
	payloads := [][]byte{[]byte("GVSAFP-0"), []byte("GVSAFP-odd"), bytes.Repeat([]byte("GVSAFP-1234567"), 100)}
	for _, pl := range payloads {
		if err := unix.Sendto(fd, pl, 0, &unix.SockaddrInet4{Addr: [4]byte(farIP), Port: 7777}); err != nil {
			t.Fatal(err)
		}
	}
	var udps []rxPkt
	collect(t, p, waitFor, func(pkt rxPkt) bool {
		if len(pkt.data) > 42 && binary.BigEndian.Uint16(pkt.data[12:]) == 0x0800 && pkt.data[23] == 17 {
			udps = append(udps, pkt)
		}
		return len(udps) == len(payloads)
	})
	for i, pkt := range udps {
		valid, ok := l4Valid(pkt.data)
		if !ok || !valid {
			t.Errorf("kernel UDP %d: checksum %#04x not valid", i, binary.BigEndian.Uint16(pkt.data[40:]))
		}
		if !bytes.Equal(pkt.data[42:], payloads[i]) {
			t.Errorf("kernel UDP %d: payload differs", i)
		}
	}
	c := p.Counters()
	if c.CsumFixed < uint64(len(payloads)) {
		t.Errorf("only %d checksums completed (kernel sent CHECKSUM_PARTIAL?): %+v", c.CsumFixed, c)
	}

	// 2. Crafted CHECKSUM_PARTIAL frames (virtio_net_hdr NEEDS_CSUM) behind
	// VLAN tags, over IPv6 with extension headers, TCP and UDP.
	vnet := n.raw(peerIf, true)
	v6a, v6b := net.ParseIP("2001:db8::1"), net.ParseIP("2001:db8::2")
	specs := []pktSpec{
		{proto: 17, srcIP: peerIP, dstIP: farIP, payload: []byte("GVSAFP plain udp4")},
		{proto: 6, srcIP: peerIP, dstIP: farIP, tags: []vlanTag{{0x8100, 42}}, payload: []byte("GVSAFP tcp4 in vlan, odd")},
		{proto: 17, v6: true, srcIP: v6a, dstIP: v6b, tags: []vlanTag{{0x88a8, 10}, {0x8100, 20}}, payload: bytes.Repeat([]byte("GVSAFP qinq udp6 "), 50)},
		{proto: 6, v6: true, hbh: true, srcIP: v6a, dstIP: v6b, payload: []byte("GVSAFP tcp6 with hop-by-hop")},
		{proto: 6, v6: true, srcIP: v6a, dstIP: v6b, tags: []vlanTag{{0x8100, 3}}, payload: bytes.Repeat([]byte{0xab}, 1401)},
	}
	before := p.Counters().CsumFixed
	var want [][]byte
	for i, s := range specs {
		s.dst, s.src, s.sport, s.dport = gvsMAC, peerMAC, uint16(1000+i), 80
		b := s.build()
		want = append(want, b.frame)
		// A partial checksum holds the folded pseudo-header sum; whatever
		// completes it (the driver, or the kernel if it falls back to
		// software) then gets the right answer.
		f := bytes.Clone(b.frame)
		l4len := len(f) - b.l4
		var src, dst net.IP = s.srcIP, s.dstIP
		binary.BigEndian.PutUint16(f[b.l4+b.csumOff:], fold16(pseudoSum(s.v6, src, dst, s.proto, l4len)))
		vnet.sendVnet(f, b.l4, b.csumOff)
	}
	var got [][]byte
	collect(t, p, waitFor, func(pkt rxPkt) bool {
		if bytes.Contains(pkt.data, []byte("GVSAFP")) || bytes.Contains(pkt.data, bytes.Repeat([]byte{0xab}, 100)) {
			got = append(got, pkt.data)
		}
		return len(got) == len(want)
	})
	for i := range want {
		if valid, ok := l4Valid(got[i]); !ok || !valid {
			t.Errorf("crafted %d: checksum not valid", i)
		}
		if !bytes.Equal(got[i], want[i]) {
			t.Errorf("crafted %d: frame differs\n got % x\nwant % x", i, got[i][:min(80, len(got[i]))], want[i][:min(80, len(want[i]))])
		}
	}
	if fixed := p.Counters().CsumFixed - before; fixed != uint64(len(want)) {
		t.Errorf("driver completed %d of %d crafted partial checksums", fixed, len(want))
	}
}

// udpFlow builds UDP frames of one flow for the fanout tests.
func udpFlow(sport uint16, seq int) []byte {
	return pktSpec{dst: gvsMAC, src: peerMAC, srcIP: peerIP, dstIP: farIP, proto: 17, sport: sport, dport: 53,
		payload: []byte(fmt.Sprintf("GVSAFP flow %d seq %d", sport, seq))}.build().frame
}

// TestFanout: with two queues, flows spread over both queues and each flow
// stays on one queue; fragments of one datagram stay together.
func TestFanout(t *testing.T) {
	n := newTestNet(t, 2)
	p := n.open(Config{Queues: 2})
	if p.NumQueues() != 2 {
		t.Fatalf("fanout group %d, %d queues", p.FanoutGroup(), p.NumQueues())
	}
	if p.SeesOutgoing() {
		t.Error("kernel refused PACKET_FANOUT_FLAG_IGNORE_OUTGOING")
	}
	peer := n.raw(peerIf, false)
	const flows, per = 16, 6
	for s := 0; s < per; s++ {
		for f := 0; f < flows; f++ {
			peer.send(udpFlow(uint16(10000+f), s))
		}
	}
	// Fragments of 8 datagrams (3 pieces each, IPv4), different ports: if
	// the first fragment were hashed with its ports and the others without,
	// some datagram would be split across the queues.
	const datagrams = 8
	var frags [][]byte
	for d := 0; d < datagrams; d++ {
		whole := pktSpec{dst: gvsMAC, src: peerMAC, srcIP: peerIP, dstIP: farIP, proto: 17, sport: uint16(900 + d), dport: 53,
			ipID: uint16(0x4200 + d), payload: bytes.Repeat([]byte("GVSAFP-frag"), 200)}.build().frame
		frags = append(frags, fragment(whole, 1000)...)
	}
	for _, f := range frags {
		peer.send(f)
	}
	total := flows*per + len(frags)
	seen := 0
	pkts := collect(t, p, waitFor, func(pkt rxPkt) bool {
		if bytes.Contains(pkt.data, []byte("GVSAFP")) || isFragment(pkt.data) {
			seen++
		}
		return seen == total
	})
	queueOf := map[uint16]map[int]int{}
	fragQueues := map[uint16]map[int]int{} // by IP ID
	nfrags := 0
	used := map[int]bool{}
	for _, pkt := range pkts {
		d := pkt.data
		if binary.BigEndian.Uint16(d[12:]) != 0x0800 {
			continue
		}
		if isFragment(d) {
			id := binary.BigEndian.Uint16(d[18:])
			if fragQueues[id] == nil {
				fragQueues[id] = map[int]int{}
			}
			fragQueues[id][pkt.q]++
			nfrags++
			continue
		}
		sport := binary.BigEndian.Uint16(d[34:])
		if queueOf[sport] == nil {
			queueOf[sport] = map[int]int{}
		}
		queueOf[sport][pkt.q]++
		used[pkt.q] = true
	}
	if len(queueOf) != flows {
		t.Fatalf("saw %d flows, sent %d", len(queueOf), flows)
	}
	for sport, qs := range queueOf {
		if len(qs) != 1 {
			t.Errorf("flow %d spread over queues %v", sport, qs)
		}
		for _, k := range qs {
			if k != per {
				t.Errorf("flow %d: %d packets, want %d", sport, k, per)
			}
		}
	}
	if len(used) != 2 {
		t.Errorf("flows used queues %v, want both", used)
	}
	if nfrags != len(frags) || len(fragQueues) != datagrams {
		t.Errorf("received %d fragments of %d datagrams, sent %d of %d", nfrags, len(fragQueues), len(frags), datagrams)
	}
	for id, qs := range fragQueues {
		if len(qs) != 1 {
			t.Errorf("fragments of datagram %#x spread over queues %v", id, qs)
		}
	}
	t.Logf("flows per queue: %v", func() [2]int {
		var c [2]int
		for _, qs := range queueOf {
			for q := range qs {
				c[q]++
			}
		}
		return c
	}())
}

// TestFanoutDefrag documents what PACKET_FANOUT_FLAG_DEFRAG really does:
// the kernel reassembles the datagram, gvs receives one packet.
func TestFanoutDefrag(t *testing.T) {
	n := newTestNet(t, 2)
	p := n.open(Config{Queues: 2, FanoutDefrag: true})
	peer := n.raw(peerIf, false)
	whole := pktSpec{dst: gvsMAC, src: peerMAC, srcIP: peerIP, dstIP: farIP, proto: 17, sport: 999, dport: 53, ipID: 0x4343,
		payload: bytes.Repeat([]byte("GVSAFP-frag"), 100)}.build().frame // 1142 bytes: reassembled fits a buffer
	frags := fragment(whole, 400)
	for _, f := range frags {
		peer.send(f)
	}
	var got []rxPkt
	collect(t, p, waitFor, func(pkt rxPkt) bool {
		if binary.BigEndian.Uint16(pkt.data[12:]) == 0x0800 && pkt.data[23] == 17 {
			got = append(got, pkt)
		}
		return len(got) == 1
	})
	if len(got) != 1 {
		t.Fatalf("got %d IPv4/UDP packets", len(got))
	}
	d := got[0].data
	if isFragment(d) || len(d) != len(whole) || !bytes.Equal(d[34:], whole[34:]) {
		t.Errorf("with FanoutDefrag: got %d bytes (fragment %v), want the reassembled %d-byte datagram", len(d), isFragment(d), len(whole))
	}
}

// fragment splits an IPv4 frame (no tags, no options) into fragments of at
// most mtu bytes of IP.
func fragment(frame []byte, mtu int) [][]byte {
	hdr, body := frame[14:34], frame[34:]
	step := (mtu - 20) &^ 7
	var out [][]byte
	for off := 0; off < len(body); off += step {
		end := min(off+step, len(body))
		f := append([]byte(nil), frame[:14]...)
		ip := append([]byte(nil), hdr...)
		binary.BigEndian.PutUint16(ip[2:], uint16(20+end-off))
		fo := uint16(off / 8)
		if end < len(body) {
			fo |= 0x2000
		}
		binary.BigEndian.PutUint16(ip[6:], fo)
		ip[10], ip[11] = 0, 0
		binary.BigEndian.PutUint16(ip[10:], ^fold16(sum16(ip)))
		f = append(append(f, ip...), body[off:end]...)
		out = append(out, f)
	}
	return out
}

func isFragment(f []byte) bool {
	return len(f) >= 34 && binary.BigEndian.Uint16(f[12:]) == 0x0800 && binary.BigEndian.Uint16(f[20:])&0x3fff != 0
}

// TestIgnoreOutgoing: neither what gvs transmits nor what the host sends out
// of the interface comes back to gvs's queues.
func TestIgnoreOutgoing(t *testing.T) {
	for _, queues := range []int{1, 2} {
		t.Run(fmt.Sprintf("queues=%d", queues), func(t *testing.T) {
			n := newTestNet(t, queues)
			p := n.open(Config{Queues: queues})
			peer := n.raw(peerIf, false)
			host := n.raw(gvsIf, false) // the host's own sender on gvs0

			const k = 20
			var burst [driver.BurstSize]driver.Frame
			q := p.Queue(0)
			if q.Alloc(burst[:k]) != k {
				t.Fatal("Alloc")
			}
			for i := 0; i < k; i++ {
				f := udpFlow(uint16(20000+i), 0) // spread over the fanout hash
				copy(f[0:], peerMAC)
				copy(f[6:], gvsMAC)
				burst[i].Len = copy(burst[i].Buf[burst[i].Off:], f)
			}
			if m, err := q.Transmit(burst[:k]); m != k || err != nil {
				t.Fatalf("Transmit %d: %v", m, err)
			}
			for i := 0; i < k; i++ {
				f := udpFlow(uint16(30000+i), 1)
				copy(f[0:], peerMAC)
				copy(f[6:], gvsMAC)
				host.send(f)
			}
			seen := 0
			peer.recvUntil(waitFor, func(f []byte) bool {
				if bytes.Contains(f, []byte("GVSAFP")) {
					seen++
				}
				return seen == 2*k
			})
			peer.send(barrierFrame(gvsMAC, peerMAC))
			pkts := collect(t, p, waitFor, func(pkt rxPkt) bool { return isBarrier(pkt.data) })
			for _, pkt := range pkts {
				if !isBarrier(pkt.data) {
					t.Errorf("queue %d received an outgoing frame: % x", pkt.q, pkt.data[:min(len(pkt.data), 48)])
				}
			}
		})
	}
}

// TestCloseReopen: Close releases sockets and rings; the interface can be
// opened again; queue calls after Close fail cleanly.
func TestCloseReopen(t *testing.T) {
	n := newTestNet(t, 2)
	peer := n.raw(peerIf, false)
	fds, maps := openFDs(t), socketMappings(t)
	for round := 0; round < 3; round++ {
		var p *Port
		n.do(func() (err error) { p, err = Open(Config{Interface: gvsIf, Queues: 2}); return err })
		if got := socketMappings(t); got != maps+2 {
			t.Errorf("round %d: %d socket mappings while open, want %d", round, got, maps+2)
		}
		peer.send(barrierFrame(gvsMAC, peerMAC))
		collect(t, p, waitFor, func(pkt rxPkt) bool { return isBarrier(pkt.data) })

		var held [4]driver.Frame
		q := p.Queue(1)
		if q.Alloc(held[:]) != 4 {
			t.Fatal("Alloc")
		}
		if err := p.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
		if err := p.Close(); err != nil {
			t.Fatalf("second Close: %v", err)
		}
		if _, err := q.Receive(held[:]); !errors.Is(err, driver.ErrClosed) {
			t.Errorf("Receive after Close: %v", err)
		}
		if _, err := q.Transmit(held[:]); !errors.Is(err, driver.ErrClosed) {
			t.Errorf("Transmit after Close: %v", err)
		}
		if q.Alloc(held[:1]) != 0 {
			t.Error("Alloc after Close returned frames")
		}
		q.Free(held[:]) // harmless
		_ = p.Stats()   // no socket access after Close
		if got := openFDs(t); got != fds {
			t.Errorf("round %d: %d fds open after Close, want %d", round, got, fds)
		}
		if got := socketMappings(t); got != maps {
			t.Errorf("round %d: %d socket mappings after Close, want %d", round, got, maps)
		}
	}
}

// TestPoolBackpressure: with every buffer held by the caller, packets wait
// in the ring (nothing is lost) and arrive once buffers come back.
func TestPoolBackpressure(t *testing.T) {
	n := newTestNet(t, 1)
	pool := 2 * driver.BurstSize
	p := n.open(Config{PoolFrames: pool})
	peer := n.raw(peerIf, false)
	const total = 150
	for i := 0; i < total; i++ {
		peer.send(testFrame(gvsMAC, peerMAC, i, 100))
	}
	q := p.Queue(0)
	var held []driver.Frame
	var burst [driver.BurstSize]driver.Frame
	deadline := time.Now().Add(waitFor)
	for len(held) < pool {
		k, _ := q.Receive(burst[:])
		held = append(held, burst[:k]...)
		if k == 0 {
			if time.Now().After(deadline) {
				t.Fatalf("only %d frames received", len(held))
			}
			time.Sleep(50 * time.Microsecond)
		}
	}
	if k, _ := q.Receive(burst[:]); k != 0 {
		t.Fatalf("Receive returned %d frames with the pool empty", k)
	}
	if c := p.Counters(); c.RxPoolEmpty == 0 {
		t.Errorf("pool exhaustion not counted: %+v", c)
	}
	seqs := make([]int, 0, total)
	for _, f := range held {
		seqs = append(seqs, int(binary.BigEndian.Uint32(f.Data()[20:])))
	}
	q.Free(held)
	for len(seqs) < total {
		k, _ := q.Receive(burst[:])
		for i := 0; i < k; i++ {
			seqs = append(seqs, int(binary.BigEndian.Uint32(burst[i].Data()[20:])))
		}
		q.Free(burst[:k])
		if k == 0 {
			if time.Now().After(deadline) {
				t.Fatalf("only %d of %d frames received", len(seqs), total)
			}
			time.Sleep(50 * time.Microsecond)
		}
	}
	for i, s := range seqs {
		if s != i {
			t.Fatalf("frame %d has sequence %d", i, s)
		}
	}
	if st := p.Stats(); st.RxDropped != 0 {
		t.Errorf("drops: %+v", st)
	}
}

// TestTxRingFull: Transmit takes a prefix up to the free ring slots and
// counts the rest; the peer receives exactly the prefix.
func TestTxRingFull(t *testing.T) {
	n := newTestNet(t, 1)
	p := n.open(Config{TxFrames: 8})
	peer := n.raw(peerIf, false)
	q := p.PacketQueue(0)
	slots := q.TxSlots()
	want := slots + 20
	frames := make([]driver.Frame, want)
	if q.Alloc(frames) != want {
		t.Fatal("Alloc")
	}
	for i := range frames {
		frames[i].Len = copy(frames[i].Buf[frames[i].Off:], testFrame(peerMAC, gvsMAC, i, 200))
	}
	m, err := q.Transmit(frames)
	if err != nil || m != slots {
		t.Fatalf("Transmit took %d of %d with %d slots: %v", m, want, slots, err)
	}
	q.Free(frames[m:])
	if st := p.Stats(); st.TxDropped != uint64(want-slots) || st.TxPackets != uint64(slots) {
		t.Errorf("stats %+v", st)
	}
	seen := 0
	peer.recvUntil(waitFor, func(f []byte) bool {
		if isTestFrame(f) {
			if s := int(binary.BigEndian.Uint32(f[20:])); s != seen {
				t.Fatalf("peer got frame %d, want %d", s, seen)
			}
			seen++
		}
		return seen == slots
	})
	// The ring drains: the next burst goes through again.
	if q.Alloc(frames[:1]) != 1 {
		t.Fatal("Alloc")
	}
	frames[0].Len = copy(frames[0].Buf[frames[0].Off:], barrierFrame(peerMAC, gvsMAC))
	deadline := time.Now().Add(waitFor)
	for {
		if m, _ := q.Transmit(frames[:1]); m == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("TX ring never drained")
		}
		time.Sleep(100 * time.Microsecond)
	}
	peer.recvUntil(waitFor, isBarrier)
	if free := p.FreeFrames(); free != p.Config().PoolFrames {
		t.Errorf("pool leak: %d of %d buffers free", free, p.Config().PoolFrames)
	}
}

// TestCloseWhileBusy: Close waits for a Receive loop on another goroutine
// instead of unmapping under it.
func TestCloseWhileBusy(t *testing.T) {
	n := newTestNet(t, 1)
	p := n.open(Config{})
	stopped := make(chan error, 1)
	go func() {
		var burst [driver.BurstSize]driver.Frame
		for {
			k, err := p.Queue(0).Receive(burst[:])
			if err != nil {
				stopped <- err
				return
			}
			p.Queue(0).Free(burst[:k])
			runtime.Gosched()
		}
	}()
	time.Sleep(time.Millisecond) // let the loop run; correctness does not depend on it
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-stopped:
		if !errors.Is(err, driver.ErrClosed) {
			t.Fatalf("Receive: %v", err)
		}
	case <-time.After(waitFor):
		t.Fatal("Receive loop did not stop after Close")
	}
}

// TestForeignFrames: a port transmits and frees frames of another afpacket
// port (a two-arm pmd that could not copy): they are sent and go back to
// their own pool. Frames of no afpacket port are counted.
func TestForeignFrames(t *testing.T) {
	n := newTestNet(t, 1)
	a := n.open(Config{})
	b := n.openIf(Config{Interface: peerIf})
	var fr [3]driver.Frame
	if b.Queue(0).Alloc(fr[:]) != 3 {
		t.Fatal("Alloc")
	}
	want := testFrame(peerMAC, gvsMAC, 7, 200)
	fr[0].Len = copy(fr[0].Buf[fr[0].Off:], want)
	if m, err := a.Queue(0).Transmit(fr[:1]); m != 1 || err != nil {
		t.Fatalf("Transmit: %d %v", m, err)
	}
	a.Queue(0).Free(fr[1:3])
	a.Queue(0).Free([]driver.Frame{{Buf: make([]byte, 2048), Off: driver.MinHeadroom, Handle: 0xdead}})
	pkts := collect(t, b, waitFor, func(pkt rxPkt) bool { return isTestFrame(pkt.data) })
	found := false
	for _, p := range pkts {
		found = found || bytes.Equal(p.data, want)
	}
	if !found {
		t.Error("peer port did not receive the frame")
	}
	if fa, fb := a.FreeFrames(), b.FreeFrames(); fa != a.Config().PoolFrames || fb != b.Config().PoolFrames {
		t.Errorf("free frames: %d/%d and %d/%d", fa, a.Config().PoolFrames, fb, b.Config().PoolFrames)
	}
	if c := a.Counters(); c.BadHandles != 1 {
		t.Errorf("BadHandles %d, want 1", c.BadHandles)
	}
}
