package trafficgen

import (
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
)

// protoClass is the kind of L4 packet a flow sends.
type protoClass uint8

const (
	protoUDP protoClass = iota // UDP datagram
	protoSYN                   // TCP SYN (with the stamp as data, as TFO would)
	protoACK                   // TCP ACK|PSH with data: an established flow
	numProtos
)

var protoNames = [numProtos]string{"udp", "syn", "ack"}

func protoByName(s string) (protoClass, bool) {
	for i, n := range protoNames {
		if n == s {
			return protoClass(i), true
		}
	}
	return 0, false
}

// NumClasses is the number of traffic classes: protocol × family. Class
// c is protocol c%3 over IPv4 for c < 3, over IPv6 otherwise.
const NumClasses = 2 * int(numProtos)

func classOf(p protoClass, family int) uint8 {
	if family == 6 {
		return uint8(numProtos) + uint8(p)
	}
	return uint8(p)
}

// ClassName names class c: udp4, syn4, ack4, udp6, syn6, ack6.
func ClassName(c int) string {
	if c < 0 || c >= NumClasses {
		return fmt.Sprintf("class%d", c)
	}
	f := "4"
	if c >= int(numProtos) {
		f = "6"
	}
	return protoNames[c%int(numProtos)] + f
}

func classFamily(c uint8) int {
	if c >= uint8(numProtos) {
		return 6
	}
	return 4
}

// imixSizes and imixPattern: simple IMIX, 7:4:1 frames of 64, 594 and 1518
// bytes (with FCS), interleaved so that a short run already has the mix.
var (
	imixSizes   = []int{64, 594, 1518}
	imixPattern = []uint8{0, 1, 0, 0, 1, 0, 2, 0, 1, 0, 0, 1}
)

// minFrame is the smallest frame (with FCS) that holds class c's headers
// and the stamp; smaller sizes are raised to it.
func minFrame(c uint8) int {
	l3 := 20
	if classFamily(c) == 6 {
		l3 = 40
	}
	l4 := 8
	if protoClass(c%uint8(numProtos)) != protoUDP {
		l4 = 20
	}
	return 14 + l3 + l4 + StampLen + 4
}

// template is one prebuilt frame of a class and size, built by gopacket
// with the per-flow and per-packet fields zeroed: source address, source
// port, the stamp's class/flow, seq and time. Its checksums are those of
// the zeroed frame; the sender adds the one's-complement sums of the real
// values (RFC 1624 style), so a packet never needs a full checksum pass.
type template struct {
	frame    []byte // without FCS
	wireLen  int    // with FCS
	v6, udp  bool
	srcOff   int    // source address
	l4Off    int    // L4 header (source port at +0)
	l4CsOff  int    // L4 checksum
	ipCsOff  int    // IPv4 header checksum (unused for IPv6)
	stampOff int    // stamp
	odd      bool   // stamp at an odd offset from the L4 header: its words straddle the checksum's
	l4Base   uint64 // one's-complement sum of the zeroed frame's L4 checksum input
	ipBase   uint64 // same for the IPv4 header
}

// buildTemplate builds class c's frame of wire size size (clamped up to
// the class minimum) from src/dst MAC to dst:dport.
func buildTemplate(c uint8, size int, srcMAC, dstMAC net.HardwareAddr, dst netip.Addr, dport uint16) (*template, error) {
	size = max(size, minFrame(c))
	t := &template{wireLen: size, v6: classFamily(c) == 6, udp: protoClass(c%uint8(numProtos)) == protoUDP}
	frameLen := size - 4
	eth := &layers.Ethernet{SrcMAC: srcMAC, DstMAC: dstMAC}
	var ip gopacket.SerializableLayer
	var nl gopacket.NetworkLayer
	l3Len := 20
	proto := layers.IPProtocolUDP
	if !t.udp {
		proto = layers.IPProtocolTCP
	}
	if t.v6 {
		l3Len = 40
		eth.EthernetType = layers.EthernetTypeIPv6
		ip6 := &layers.IPv6{Version: 6, HopLimit: 64, NextHeader: proto, SrcIP: net.IPv6zero, DstIP: dst.AsSlice()}
		ip, nl = ip6, ip6
		t.srcOff = 14 + 8
	} else {
		eth.EthernetType = layers.EthernetTypeIPv4
		ip4 := &layers.IPv4{Version: 4, IHL: 5, TTL: 64, Flags: layers.IPv4DontFragment, Protocol: proto,
			SrcIP: net.IPv4zero.To4(), DstIP: dst.AsSlice()}
		ip, nl = ip4, ip4
		t.srcOff = 14 + 12
		t.ipCsOff = 14 + 10
	}
	t.l4Off = 14 + l3Len
	var l4 gopacket.SerializableLayer
	l4Hdr := 8
	if t.udp {
		u := &layers.UDP{DstPort: layers.UDPPort(dport)}
		_ = u.SetNetworkLayerForChecksum(nl)
		l4 = u
		t.l4CsOff = t.l4Off + 6
	} else {
		l4Hdr = 20
		tc := &layers.TCP{DstPort: layers.TCPPort(dport), Window: 65535}
		if protoClass(c%uint8(numProtos)) == protoSYN {
			tc.SYN, tc.Seq = true, 0x67767300
		} else {
			tc.ACK, tc.PSH, tc.Seq, tc.Ack = true, true, 0x67767301, 1
		}
		_ = tc.SetNetworkLayerForChecksum(nl)
		l4 = tc
		t.l4CsOff = t.l4Off + 16
	}
	payload := make([]byte, frameLen-t.l4Off-l4Hdr)
	binary.BigEndian.PutUint16(payload[len(payload)-StampLen:], StampMagic)
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true},
		eth, ip, l4, gopacket.Payload(payload)); err != nil {
		return nil, fmt.Errorf("build %s template of %d bytes: %w", ClassName(int(c)), size, err)
	}
	t.frame = append([]byte(nil), buf.Bytes()...)
	if len(t.frame) != frameLen {
		return nil, fmt.Errorf("build %s template: %d bytes, want %d", ClassName(int(c)), len(t.frame), frameLen)
	}
	t.stampOff = frameLen - StampLen
	t.odd = (t.stampOff-t.l4Off)&1 == 1
	t.l4Base = uint64(^binary.BigEndian.Uint16(t.frame[t.l4CsOff:]))
	if !t.v6 {
		t.ipBase = uint64(^binary.BigEndian.Uint16(t.frame[t.ipCsOff:]))
	}
	return t, nil
}

// flowEntry is what a flow adds to its class's template.
type flowEntry struct {
	src       [16]byte // source address (first 4 bytes for IPv4)
	addrSum   uint64   // sum of the source address words (IPv4 header, pseudo-header)
	l4Sum     uint64   // addrSum + source port
	classFlow uint32   // stamp word: class<<24 | flow
	sport     uint16
	class     uint8
	sizeAt    uint8 // next index into sizeSeq: each flow walks the whole IMIX pattern
}

// buildSchedule lists the classes flows take in turn: for each family,
// each protocol as often as its weight (divided by the weights' GCD).
func buildSchedule(fams []int, w [numProtos]int) []uint8 {
	g := 0
	for _, v := range w {
		g = gcd(g, v)
	}
	var s []uint8
	for _, f := range fams {
		for p, v := range w {
			for i := 0; i < v/g; i++ {
				s = append(s, classOf(protoClass(p), f))
			}
		}
	}
	return s
}

func gcd(a, b int) int {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}

// packetSource turns templates and flows into packets; the sender owns it.
type packetSource struct {
	tpls    [NumClasses][]*template // by size index
	sizeSeq []uint8                 // size index of a flow's consecutive packets
	flows   []flowEntry
	seq     []uint32 // next sequence number per flow
	next    int      // next flow
}

// newPacketSource builds every template and flow entry of o (validated,
// with SrcMAC and DstMAC set). Flow i has class schedule[i%len], source
// port SportBase+i (wrapping to SportBase past 65535, with the source
// address one higher), and its family's source address.
func newPacketSource(o *Options, srcMAC, dstMAC net.HardwareAddr) (*packetSource, error) {
	fams, err := o.families()
	if err != nil {
		return nil, err
	}
	w, err := ParseProto(o.Proto)
	if err != nil {
		return nil, err
	}
	sched := buildSchedule(fams, w)
	ps := &packetSource{flows: make([]flowEntry, o.Flows), seq: make([]uint32, o.Flows)}
	sizes := []int{o.Size}
	ps.sizeSeq = []uint8{0}
	if o.IMIX {
		sizes, ps.sizeSeq = imixSizes, imixPattern
	}
	for _, c := range sched {
		if ps.tpls[c] != nil {
			continue
		}
		for _, sz := range sizes {
			t, err := buildTemplate(c, sz, srcMAC, dstMAC, pick(o.Dst, classFamily(c)), o.DstPort)
			if err != nil {
				return nil, err
			}
			ps.tpls[c] = append(ps.tpls[c], t)
		}
	}
	// Source addresses per family, advanced every perAddr flows.
	perAddr := 65536 - int(o.SportBase)
	cur := map[int]netip.Addr{4: pick(o.Src, 4), 6: pick(o.Src, 6)}
	for i := range ps.flows {
		if i > 0 && i%perAddr == 0 {
			for f, a := range cur {
				if a.IsValid() {
					cur[f] = a.Next()
				}
			}
		}
		c := sched[i%len(sched)]
		a := cur[classFamily(c)]
		fe := &ps.flows[i]
		fe.class = c
		// Flows start at different points of the size pattern, so
		// every burst has the mix, not only every flow over time.
		fe.sizeAt = uint8(i % len(ps.sizeSeq))
		fe.sport = flowSport(o.SportBase, i)
		fe.classFlow = uint32(c)<<24 | uint32(i)
		if a.Is4() {
			b := a.As4()
			copy(fe.src[:], b[:])
			fe.addrSum = sum16(b[:], 0)
		} else {
			fe.src = a.As16()
			fe.addrSum = sum16(fe.src[:], 0)
		}
		fe.l4Sum = fe.addrSum + uint64(fe.sport)
	}
	return ps, nil
}

// maxFrameLen is the longest frame (without FCS) the source makes.
func (ps *packetSource) maxFrameLen() int {
	n := 0
	for _, ts := range ps.tpls {
		for _, t := range ts {
			n = max(n, len(t.frame))
		}
	}
	return n
}

// fill writes the next packet into buf and returns its length, wire
// length (with FCS) and class. buf must hold maxFrameLen bytes. Only the
// flow's fields and the stamp are written over the template copy; the
// checksums are the template's plus the new fields' sums.
func (ps *packetSource) fill(buf []byte, now uint64) (n, wire int, class uint8) {
	i := ps.next
	if ps.next++; ps.next == len(ps.flows) {
		ps.next = 0
	}
	fe := &ps.flows[i]
	t := ps.tpls[fe.class][ps.sizeSeq[fe.sizeAt]]
	if fe.sizeAt++; int(fe.sizeAt) == len(ps.sizeSeq) {
		fe.sizeAt = 0
	}
	n = copy(buf, t.frame)
	b := buf[:n]
	if t.v6 {
		copy(b[t.srcOff:t.srcOff+16], fe.src[:])
	} else {
		copy(b[t.srcOff:t.srcOff+4], fe.src[:4])
		binary.BigEndian.PutUint16(b[t.ipCsOff:], ^fold(t.ipBase+fe.addrSum))
	}
	binary.BigEndian.PutUint16(b[t.l4Off:], fe.sport)
	seq := ps.seq[i]
	ps.seq[i] = seq + 1
	st := b[t.stampOff : t.stampOff+StampLen]
	binary.BigEndian.PutUint32(st[2:], fe.classFlow)
	binary.BigEndian.PutUint32(st[6:], seq)
	binary.BigEndian.PutUint64(st[10:], now)
	ss := stampSum(fe.classFlow, seq, now)
	if t.odd {
		// One's-complement sums are byte-order independent: words that
		// start at an odd offset sum to the byte-swapped value.
		ss = ss<<8 | ss>>8
	}
	cs := ^fold(t.l4Base + fe.l4Sum + uint64(ss))
	if cs == 0 && t.udp {
		cs = 0xffff // 0 means "no checksum" in UDP
	}
	binary.BigEndian.PutUint16(b[t.l4CsOff:], cs)
	return n, t.wireLen, fe.class
}
