package trafficgen

import (
	"bytes"
	"encoding/binary"
	"net"
	"net/netip"
	"testing"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
)

var (
	testSrcMAC = net.HardwareAddr{0x02, 0, 0xc6, 0x12, 0, 1}
	testDstMAC = net.HardwareAddr{0x02, 0, 0xc6, 0x12, 0, 2}
	testSrc4   = netip.MustParseAddr("198.18.0.1")
	testDst4   = netip.MustParseAddr("198.18.1.10")
	testSrc6   = netip.MustParseAddr("2001:db8::1")
	testDst6   = netip.MustParseAddr("2001:db8:1::10")
)

func testOptions() Options {
	o := Options{Driver: DriverMem, Src: []netip.Addr{testSrc4, testSrc6}, Dst: []netip.Addr{testDst4, testDst6}, Count: 1, Flows: 1}
	o.Defaults()
	return o
}

// reserialize decodes frame with gopacket and serializes its layers again
// with gopacket's own checksums and lengths: the slow, independent way.
func reserialize(t *testing.T, pkt gopacket.Packet) []byte {
	t.Helper()
	var ls []gopacket.SerializableLayer
	var nl gopacket.NetworkLayer
	for _, l := range pkt.Layers() {
		switch v := l.(type) {
		case *layers.IPv4:
			nl = v
		case *layers.IPv6:
			nl = v
		case *layers.UDP:
			_ = v.SetNetworkLayerForChecksum(nl)
		case *layers.TCP:
			_ = v.SetNetworkLayerForChecksum(nl)
		}
		if s, ok := l.(gopacket.SerializableLayer); ok {
			ls = append(ls, s)
		} else if p, ok := l.(*gopacket.Payload); ok {
			ls = append(ls, p)
		}
	}
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, ls...); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestTemplates(t *testing.T) {
	sizes := []struct {
		name string
		size int
		imix bool
	}{{"64", 64, false}, {"odd-97", 97, false}, {"1518", 1518, false}, {"imix", 0, true}}
	for _, fam := range []string{"4", "6"} {
		for _, proto := range []string{"udp", "syn", "ack"} {
			for _, sz := range sizes {
				t.Run(fam+"/"+proto+"/"+sz.name, func(t *testing.T) {
					o := testOptions()
					o.Family, o.Proto, o.Size, o.IMIX = fam, proto, sz.size, sz.imix
					o.Flows, o.SportBase = 10, 65530 // 6 ports per address: flows 6..9 use the next address
					if err := o.Validate(); err != nil {
						t.Fatal(err)
					}
					ps, err := newPacketSource(&o, testSrcMAC, testDstMAC)
					if err != nil {
						t.Fatal(err)
					}
					ps.seq[3] = 0xffffffff // wraps to 0 after
					buf := make([]byte, ps.maxFrameLen())
					times := []uint64{0, 1, 0xffffffffffffffff, 0x0123456789abcdef, Nanotime()}
					for k := 0; k < 3*len(ps.flows)*len(ps.sizeSeq); k++ {
						flow := ps.next
						seq := ps.seq[flow]
						ts := times[k%len(times)]
						n, wire, class := ps.fill(buf, ts)
						frame := buf[:n]
						checkFrame(t, &o, frame, wire, class, flow, seq, ts)
					}
				})
			}
		}
	}
}

func checkFrame(t *testing.T, o *Options, frame []byte, wire int, class uint8, flow int, seq uint32, ts uint64) {
	t.Helper()
	if wire != len(frame)+4 {
		t.Fatalf("wire length %d, frame %d", wire, len(frame))
	}
	if wire < minFrame(class) {
		t.Fatalf("%d-byte frame below the %s minimum %d", wire, ClassName(int(class)), minFrame(class))
	}
	if o.IMIX {
		ok := false
		for _, s := range imixSizes {
			ok = ok || wire == max(s, minFrame(class))
		}
		if !ok {
			t.Fatalf("IMIX frame of %d bytes", wire)
		}
	} else if wire != max(o.Size, minFrame(class)) {
		t.Fatalf("frame of %d bytes, want %d", wire, max(o.Size, minFrame(class)))
	}
	pkt := gopacket.NewPacket(frame, layers.LayerTypeEthernet, gopacket.Default)
	if el := pkt.ErrorLayer(); el != nil {
		t.Fatalf("decode: %v", el.Error())
	}
	eth := pkt.Layer(layers.LayerTypeEthernet).(*layers.Ethernet)
	if !bytes.Equal(eth.SrcMAC, testSrcMAC) || !bytes.Equal(eth.DstMAC, testDstMAC) {
		t.Fatalf("MACs %v > %v", eth.SrcMAC, eth.DstMAC)
	}
	fam := classFamily(class)
	wantSrc, _ := flowSrc(pick(o.Src, fam), o.SportBase, flow)
	wantDst := pick(o.Dst, fam)
	var src, dst netip.Addr
	if fam == 4 {
		ip := pkt.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
		src, _ = netip.AddrFromSlice(ip.SrcIP)
		dst, _ = netip.AddrFromSlice(ip.DstIP)
		if int(ip.Length) != len(frame)-14 || ip.TTL != 64 || ip.Flags != layers.IPv4DontFragment {
			t.Fatalf("IPv4 length %d (frame %d), ttl %d, flags %v", ip.Length, len(frame), ip.TTL, ip.Flags)
		}
	} else {
		ip := pkt.Layer(layers.LayerTypeIPv6).(*layers.IPv6)
		src, _ = netip.AddrFromSlice(ip.SrcIP)
		dst, _ = netip.AddrFromSlice(ip.DstIP)
		if int(ip.Length) != len(frame)-14-40 {
			t.Fatalf("IPv6 payload length %d (frame %d)", ip.Length, len(frame))
		}
	}
	if src != wantSrc || dst != wantDst {
		t.Fatalf("flow %d: %v > %v, want %v > %v", flow, src, dst, wantSrc, wantDst)
	}
	var sport, dport uint16
	switch protoClass(class % uint8(numProtos)) {
	case protoUDP:
		u := pkt.Layer(layers.LayerTypeUDP).(*layers.UDP)
		sport, dport = uint16(u.SrcPort), uint16(u.DstPort)
		if int(u.Length) != len(u.Contents)+len(u.Payload) {
			t.Fatalf("UDP length %d, have %d", u.Length, len(u.Contents)+len(u.Payload))
		}
	case protoSYN, protoACK:
		tc := pkt.Layer(layers.LayerTypeTCP).(*layers.TCP)
		sport, dport = uint16(tc.SrcPort), uint16(tc.DstPort)
		syn := protoClass(class%uint8(numProtos)) == protoSYN
		if tc.SYN != syn || tc.ACK == syn || tc.FIN || tc.RST {
			t.Fatalf("TCP flags SYN %v ACK %v for %s", tc.SYN, tc.ACK, ClassName(int(class)))
		}
	}
	if sport != flowSport(o.SportBase, flow) || dport != o.DstPort {
		t.Fatalf("flow %d: ports %d > %d, want %d > %d", flow, sport, dport, flowSport(o.SportBase, flow), o.DstPort)
	}
	if again := reserialize(t, pkt); !bytes.Equal(again, frame) {
		t.Fatalf("%s flow %d seq %d ts %#x: checksums differ from gopacket's:\n got %x\nwant %x", ClassName(int(class)), flow, seq, ts, frame, again)
	}
	s, ok := FindStamp(frame)
	if !ok || s != (Stamp{Class: class, Flow: uint32(flow), Seq: seq, TxNanos: ts}) {
		t.Fatalf("stamp %+v %v, want class %d flow %d seq %d ts %d", s, ok, class, flow, seq, ts)
	}
}

func TestMixSchedule(t *testing.T) {
	o := testOptions()
	o.Family, o.Proto, o.Flows = "both", "udp:2,ack:4,syn:0", 12
	if err := o.Validate(); err != nil {
		t.Fatal(err)
	}
	ps, err := newPacketSource(&o, testSrcMAC, testDstMAC)
	if err != nil {
		t.Fatal(err)
	}
	var per [NumClasses]int
	for _, f := range ps.flows {
		per[f.class]++
	}
	// weights 2:4 reduce to 1:2; both families: udp4 ack4 ack4 udp6 ack6 ack6
	want := [NumClasses]int{2, 0, 4, 2, 0, 4}
	if per != want {
		t.Fatalf("flows per class %v, want %v", per, want)
	}
}

func TestStampFoundAfterRewrite(t *testing.T) {
	for _, fam := range []string{"4", "6"} {
		o := testOptions()
		o.Family, o.Size = fam, 200
		ps, err := newPacketSource(&o, testSrcMAC, testDstMAC)
		if err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, ps.maxFrameLen())
		ps.seq[0] = 41
		n, _, class := ps.fill(buf, 12345)
		frame := append([]byte(nil), buf[:n]...)
		want := Stamp{Class: class, Flow: 0, Seq: 41, TxNanos: 12345}

		// NAT: a new destination (the real) and source, new MACs.
		nat := append([]byte(nil), frame...)
		if fam == "4" {
			copy(nat[14+16:], []byte{198, 18, 2, 7})
			copy(nat[14+12:], []byte{198, 18, 3, 1})
		} else {
			nat[14+24+15] ^= 0x55
		}
		copy(nat[0:12], []byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12})
		if s, ok := FindStamp(nat); !ok || s != want {
			t.Errorf("IPv%s NAT: %+v %v", fam, s, ok)
		}

		// IPIP (or IPv6 in IPv4): an outer IPv4 header in front of the
		// inner packet, then Ethernet padding and a VLAN tag.
		inner := frame[14:]
		outer := make([]byte, 14+4+20, 14+4+20+len(inner)+16)
		copy(outer, frame[:12])
		binary.BigEndian.PutUint16(outer[12:], 0x8100)
		binary.BigEndian.PutUint16(outer[14:], 7)
		binary.BigEndian.PutUint16(outer[16:], 0x0800)
		ip := outer[18:]
		ip[0], ip[8], ip[9] = 0x45, 64, 4
		if fam == "6" {
			ip[9] = 41
		}
		binary.BigEndian.PutUint16(ip[2:], uint16(20+len(inner)))
		copy(ip[12:], []byte{198, 18, 0, 100, 198, 18, 2, 7})
		outer = append(outer, inner...)
		outer = append(outer, make([]byte, 16)...) // padding the stamp must not be read from
		if s, ok := FindStamp(outer); !ok || s != want {
			t.Errorf("IPv%s in IPv4 with VLAN and padding: %+v %v", fam, s, ok)
		}
		// Truncated or foreign frames are not stamped.
		for _, bad := range [][]byte{frame[:40], outer[:len(outer)-20], {}, make([]byte, 60)} {
			if _, ok := FindStamp(bad); ok {
				t.Errorf("stamp found in %x", bad)
			}
		}
	}
}

func TestFillAllocs(t *testing.T) {
	o := testOptions()
	o.Family, o.Proto, o.Flows, o.IMIX, o.Size = "both", "mix", 600, true, 0
	ps, err := newPacketSource(&o, testSrcMAC, testDstMAC)
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, ps.maxFrameLen())
	if a := testing.AllocsPerRun(1000, func() { ps.fill(buf, Nanotime()) }); a != 0 {
		t.Fatalf("%v allocations per packet", a)
	}
}
