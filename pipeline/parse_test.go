package pipeline

import (
	"encoding/binary"
	"net"
	"testing"
	"unsafe"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
)

// Packets for the parser tests are built with gopacket and every field Parse
// fills is compared with what gopacket decodes from the same bytes
// (gopacketView), plus explicit expectations per case.

var (
	macA = net.HardwareAddr{0x02, 0, 0, 0, 0, 0x01}
	macB = net.HardwareAddr{0x02, 0, 0, 0, 0, 0x02}
	ip4A = net.IP{198, 18, 0, 1}
	ip4B = net.IP{198, 18, 0, 100}
	ip4R = net.IP{198, 18, 1, 1} // router that sends ICMP errors
	ip6A = net.ParseIP("2001:db8::1")
	ip6B = net.ParseIP("2001:db8::100")
	ip6R = net.ParseIP("2001:db8:ffff::1")
)

func serialize(tb testing.TB, ls ...gopacket.SerializableLayer) []byte {
	tb.Helper()
	buf := gopacket.NewSerializeBuffer()
	opts := gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}
	if err := gopacket.SerializeLayers(buf, opts, ls...); err != nil {
		tb.Fatalf("serialize: %v", err)
	}
	return append([]byte(nil), buf.Bytes()...)
}

func ethL(et layers.EthernetType) *layers.Ethernet {
	return &layers.Ethernet{SrcMAC: macA, DstMAC: macB, EthernetType: et}
}

func ip4L(proto layers.IPProtocol) *layers.IPv4 {
	return &layers.IPv4{Version: 4, TTL: 64, Id: 0x1234, Flags: layers.IPv4DontFragment,
		Protocol: proto, SrcIP: ip4A, DstIP: ip4B}
}

func ip6L(nh layers.IPProtocol) *layers.IPv6 {
	return &layers.IPv6{Version: 6, HopLimit: 63, FlowLabel: 0x12345, NextHeader: nh, SrcIP: ip6A, DstIP: ip6B}
}

func tcpL(nl gopacket.NetworkLayer) *layers.TCP {
	t := &layers.TCP{SrcPort: 40000, DstPort: 80, Seq: 1000, Ack: 0, SYN: true, ECE: true, Window: 65535,
		Options: []layers.TCPOption{{OptionType: layers.TCPOptionKindMSS, OptionLength: 4, OptionData: []byte{0x05, 0xb4}}}}
	if err := t.SetNetworkLayerForChecksum(nl); err != nil {
		panic(err)
	}
	return t
}

func udpL(nl gopacket.NetworkLayer) *layers.UDP {
	u := &layers.UDP{SrcPort: 5353, DstPort: 53}
	if err := u.SetNetworkLayerForChecksum(nl); err != nil {
		panic(err)
	}
	return u
}

func payload(n int) gopacket.Payload {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7 + 3)
	}
	return b
}

func hbhL(nh layers.IPProtocol) *layers.IPv6HopByHop {
	h := &layers.IPv6HopByHop{}
	h.NextHeader = nh
	// 2 + (2+4) = 8 bytes: no padding needed.
	h.Options = []*layers.IPv6HopByHopOption{{OptionType: 0x3e, OptionData: []byte{1, 2, 3, 4}}}
	return h
}

func destL(nh layers.IPProtocol) *layers.IPv6Destination {
	d := &layers.IPv6Destination{}
	d.NextHeader = nh
	// 2 + (2+12) = 16 bytes.
	d.Options = []*layers.IPv6DestinationOption{{OptionType: 0x1e, OptionData: make([]byte, 12)}}
	return d
}

// ahL is an IPv6 authentication header (gopacket cannot serialize one):
// 12 fixed bytes + 12 bytes of ICV = 24 bytes, payload length (24/4)-2 = 4.
func ahL(nh layers.IPProtocol) gopacket.Payload {
	b := make([]byte, 24)
	b[0] = byte(nh)
	b[1] = 4
	binary.BigEndian.PutUint32(b[4:], 0xdeadbeef) // SPI
	binary.BigEndian.PutUint32(b[8:], 7)          // sequence
	return b
}

// Frame builders, used by the tests, the benchmarks and the fuzz seeds.

func frameTCP4(tb testing.TB) []byte {
	ip := ip4L(layers.IPProtocolTCP)
	return serialize(tb, ethL(layers.EthernetTypeIPv4), ip, tcpL(ip), payload(40))
}

func frameTCP6(tb testing.TB) []byte {
	ip := ip6L(layers.IPProtocolTCP)
	return serialize(tb, ethL(layers.EthernetTypeIPv6), ip, tcpL(ip), payload(40))
}

func frameUDP4VLAN(tb testing.TB) []byte {
	ip := ip4L(layers.IPProtocolUDP)
	return serialize(tb, ethL(layers.EthernetTypeDot1Q),
		&layers.Dot1Q{VLANIdentifier: 100, Priority: 5, Type: layers.EthernetTypeIPv4},
		ip, udpL(ip), payload(64))
}

func frameUDP6Ext(tb testing.TB) []byte {
	ip := ip6L(layers.IPProtocolIPv6HopByHop)
	return serialize(tb, ethL(layers.EthernetTypeIPv6), ip, hbhL(layers.IPProtocolIPv6Destination),
		destL(layers.IPProtocolUDP), udpL(ip), payload(30))
}

// innerTCP4 is a packet sent by the other side of the flow of the outer
// packet, from ip4B:80 to ip4A:40000, as an ICMP error quotes it.
func innerTCP4(tb testing.TB, opts bool) []byte {
	ip := &layers.IPv4{Version: 4, TTL: 1, Id: 0x4321, Flags: layers.IPv4DontFragment,
		Protocol: layers.IPProtocolTCP, SrcIP: ip4B, DstIP: ip4A}
	if opts {
		ip.Options = []layers.IPv4Option{{OptionType: 1}, {OptionType: 1}, {OptionType: 1}, {OptionType: 1}}
	}
	t := &layers.TCP{SrcPort: 80, DstPort: 40000, Seq: 77, ACK: true, PSH: true, Window: 512}
	if err := t.SetNetworkLayerForChecksum(ip); err != nil {
		tb.Fatal(err)
	}
	return serialize(tb, ip, t, payload(1400))
}

// frameICMP4FragNeeded is an ICMP "fragmentation needed" (type 3 code 4,
// next-hop MTU 1400) from a router, quoting innerLen bytes of a TCP packet.
func frameICMP4FragNeeded(tb testing.TB, inner []byte) []byte {
	ip := ip4L(layers.IPProtocolICMPv4)
	ip.SrcIP, ip.DstIP = ip4R, ip4B
	ic := &layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(layers.ICMPv4TypeDestinationUnreachable,
		layers.ICMPv4CodeFragmentationNeeded), Seq: 1400}
	return serialize(tb, ethL(layers.EthernetTypeIPv4), ip, ic, gopacket.Payload(inner))
}

func innerUDP6(tb testing.TB, ext bool) []byte {
	ip := &layers.IPv6{Version: 6, HopLimit: 5, NextHeader: layers.IPProtocolUDP, SrcIP: ip6B, DstIP: ip6A}
	u := &layers.UDP{SrcPort: 53, DstPort: 5353}
	if err := u.SetNetworkLayerForChecksum(ip); err != nil {
		tb.Fatal(err)
	}
	if ext {
		ip.NextHeader = layers.IPProtocolIPv6Destination
		return serialize(tb, ip, destL(layers.IPProtocolUDP), u, payload(1500))
	}
	return serialize(tb, ip, u, payload(1500))
}

// frameICMP6PTB is an ICMPv6 packet too big (MTU 1280) quoting inner.
func frameICMP6PTB(tb testing.TB, inner []byte) []byte {
	ip := ip6L(layers.IPProtocolICMPv6)
	ip.SrcIP, ip.DstIP = ip6R, ip6B
	ic := &layers.ICMPv6{TypeCode: layers.CreateICMPv6TypeCode(layers.ICMPv6TypePacketTooBig, 0)}
	if err := ic.SetNetworkLayerForChecksum(ip); err != nil {
		tb.Fatal(err)
	}
	body := binary.BigEndian.AppendUint32(nil, 1280)
	return serialize(tb, ethL(layers.EthernetTypeIPv6), ip, ic, gopacket.Payload(append(body, inner...)))
}

// offsetIn returns the offset of sub within data; sub must be a non-empty
// subslice of data.
func offsetIn(tb testing.TB, data, sub []byte) int {
	tb.Helper()
	d := uintptr(unsafe.Pointer(unsafe.SliceData(data)))
	s := uintptr(unsafe.Pointer(unsafe.SliceData(sub)))
	if len(sub) == 0 || s < d || s+uintptr(len(sub)) > d+uintptr(len(data)) {
		tb.Fatalf("gopacket layer is not a subslice of the frame")
	}
	return int(s - d)
}

// netInfo is what gopacket says about one IP header and its extensions.
type netInfo struct {
	ok                  bool
	family              uint8
	l3, l4, l3len       int
	proto, ttl, frag    uint8
	fragID              uint32
	fragHdr             int
	nonFirst, firstFrag bool
}

// gopacketNet decodes the IP packet of the given family at the start of b (a
// subslice of data) with gopacket and walks its extension headers. ok is
// false if gopacket rejects the IP header or an extension header.
func gopacketNet(tb testing.TB, data, b []byte, family uint8) netInfo {
	tb.Helper()
	var n netInfo
	switch family {
	case 4:
		var ip layers.IPv4
		if err := ip.DecodeFromBytes(b, gopacket.NilDecodeFeedback); err != nil || ip.Version != 4 {
			return n
		}
		n.l3 = offsetIn(tb, data, ip.Contents)
		n.l4 = n.l3 + len(ip.Contents)
		n.l3len = int(ip.Length)
		n.proto = uint8(ip.Protocol)
		n.ttl = ip.TTL
		n.fragID = uint32(ip.Id)
		n.nonFirst = ip.FragOffset != 0
		n.firstFrag = ip.FragOffset == 0 && ip.Flags&layers.IPv4MoreFragments != 0
	case 6:
		var ip layers.IPv6
		if err := ip.DecodeFromBytes(b, gopacket.NilDecodeFeedback); err != nil || ip.Version != 6 {
			return n
		}
		n.l3 = offsetIn(tb, data, ip.Contents)
		n.l3len = 40 + int(ip.Length)
		n.ttl = ip.HopLimit
		nh := ip.NextHeader
		next := n.l3 + 40
		pk := gopacket.NewPacket(b, layers.LayerTypeIPv6, gopacket.NoCopy)
		for _, l := range pk.Layers() {
			if l.LayerType() != layers.LayerTypeIPv6 && len(l.LayerContents()) == 0 {
				return netInfo{} // a layer gopacket failed to decode
			}
			switch x := l.(type) {
			case *layers.IPv6HopByHop:
				nh, next = x.NextHeader, offsetIn(tb, data, x.Contents)+len(x.Contents)
			case *layers.IPv6Destination:
				nh, next = x.NextHeader, offsetIn(tb, data, x.Contents)+len(x.Contents)
			case *layers.IPv6Routing:
				nh, next = x.NextHeader, offsetIn(tb, data, x.Contents)+len(x.Contents)
			case *layers.IPSecAH:
				nh, next = x.NextHeader, offsetIn(tb, data, x.Contents)+len(x.Contents)
			case *layers.IPv6Fragment:
				nh, next = x.NextHeader, offsetIn(tb, data, x.Contents)+8
				n.fragHdr = next - 8
				n.fragID = x.Identification
				n.nonFirst = x.FragmentOffset != 0
				n.firstFrag = x.FragmentOffset == 0 && x.MoreFragments
			}
		}
		switch nh {
		case layers.IPProtocolIPv6HopByHop, layers.IPProtocolIPv6Destination, layers.IPProtocolIPv6Routing,
			layers.IPProtocolAH, layers.IPProtocolIPv6Fragment:
			if !n.nonFirst {
				return netInfo{} // gopacket could not decode this extension header
			}
		}
		n.proto = uint8(nh)
		n.l4 = next
	default:
		tb.Fatalf("family %d", family)
	}
	n.family = family
	n.ok = true
	switch {
	case n.nonFirst:
		n.frag = FragMore
	case n.firstFrag:
		n.frag = FragFirst
	}
	return n
}

func tcpFlagsOf(t *layers.TCP) uint8 {
	var f uint8
	for i, b := range []bool{t.FIN, t.SYN, t.RST, t.PSH, t.ACK, t.URG, t.ECE, t.CWR} {
		if b {
			f |= 1 << i
		}
	}
	return f
}

// gopacketView builds the Packet Parse should return for data, from
// gopacket's decoding of it.
func gopacketView(tb testing.TB, data []byte) (Packet, Verdict) {
	tb.Helper()
	var w Packet
	pk := gopacket.NewPacket(data, layers.LayerTypeEthernet, gopacket.NoCopy)
	e, ok := pk.Layer(layers.LayerTypeEthernet).(*layers.Ethernet)
	if !ok {
		tb.Fatalf("gopacket: no Ethernet layer")
	}
	w.EtherType = uint16(e.EthernetType)
	w.L3Off = 14
	tagged := false
	for _, l := range pk.Layers() {
		if d, ok := l.(*layers.Dot1Q); ok {
			if !tagged {
				w.VLAN = d.VLANIdentifier
				tagged = true
			}
			w.EtherType = uint16(d.Type)
			w.L3Off += 4
		}
	}
	if w.EtherType != uint16(layers.EthernetTypeIPv4) && w.EtherType != uint16(layers.EthernetTypeIPv6) {
		return w, NotIP
	}
	family := uint8(4)
	if w.EtherType == uint16(layers.EthernetTypeIPv6) {
		family = 6
	}
	n := gopacketNet(tb, data, data[w.L3Off:], family)
	if !n.ok {
		tb.Fatalf("gopacket: no IP layer")
	}
	if n.l3 != w.L3Off {
		tb.Fatalf("gopacket: IP header at %d, want %d", n.l3, w.L3Off)
	}
	w.Family, w.TTL, w.Proto, w.L3Len = n.family, n.ttl, n.proto, n.l3len
	w.L4Off, w.PayOff, w.Frag, w.FragID, w.FragHdrOff = n.l4, n.l4, n.frag, n.fragID, n.fragHdr
	if w.Frag == FragMore {
		return w, ParsedOK
	}
	l4 := data[w.L4Off : w.L3Off+w.L3Len]
	switch {
	case w.Proto == 6:
		var t layers.TCP
		if err := t.DecodeFromBytes(l4, gopacket.NilDecodeFeedback); err != nil {
			tb.Fatalf("gopacket TCP: %v", err)
		}
		w.SPort, w.DPort, w.TCPFlags = uint16(t.SrcPort), uint16(t.DstPort), tcpFlagsOf(&t)
		w.PayOff = w.L4Off + len(t.Contents)
	case w.Proto == 17:
		var u layers.UDP
		if err := u.DecodeFromBytes(l4, gopacket.NilDecodeFeedback); err != nil {
			tb.Fatalf("gopacket UDP: %v", err)
		}
		w.SPort, w.DPort = uint16(u.SrcPort), uint16(u.DstPort)
		w.PayOff = w.L4Off + 8
	case w.Proto == 1 && w.Family == 4:
		var c layers.ICMPv4
		if err := c.DecodeFromBytes(l4, gopacket.NilDecodeFeedback); err != nil {
			tb.Fatalf("gopacket ICMPv4: %v", err)
		}
		w.ICMPType, w.ICMPCode = c.TypeCode.Type(), c.TypeCode.Code()
		w.PayOff = w.L4Off + 8
		switch w.ICMPType {
		case layers.ICMPv4TypeEchoRequest, layers.ICMPv4TypeEchoReply:
			w.SPort, w.DPort = c.Id, c.Id
		case layers.ICMPv4TypeDestinationUnreachable, layers.ICMPv4TypeTimeExceeded, layers.ICMPv4TypeParameterProblem:
			innerView(tb, data, c.Payload, 4, &w)
		}
	case w.Proto == 58 && w.Family == 6:
		var c layers.ICMPv6
		if err := c.DecodeFromBytes(l4, gopacket.NilDecodeFeedback); err != nil {
			tb.Fatalf("gopacket ICMPv6: %v", err)
		}
		w.ICMPType, w.ICMPCode = c.TypeCode.Type(), c.TypeCode.Code()
		w.PayOff = w.L4Off + 8
		switch w.ICMPType {
		case layers.ICMPv6TypeEchoRequest, layers.ICMPv6TypeEchoReply:
			var echo layers.ICMPv6Echo
			if err := echo.DecodeFromBytes(c.Payload, gopacket.NilDecodeFeedback); err != nil {
				tb.Fatalf("gopacket ICMPv6 echo: %v", err)
			}
			w.SPort, w.DPort = echo.Identifier, echo.Identifier
		case layers.ICMPv6TypeDestinationUnreachable, layers.ICMPv6TypePacketTooBig,
			layers.ICMPv6TypeTimeExceeded, layers.ICMPv6TypeParameterProblem:
			innerView(tb, data, c.Payload[4:], 6, &w)
		}
	}
	return w, ParsedOK
}

// innerView fills the Inner fields of w from gopacket's decoding of the
// packet quoted by an ICMP error. A quote gopacket cannot decode leaves them
// zero, as Parse must.
func innerView(tb testing.TB, data, quote []byte, family uint8, w *Packet) {
	tb.Helper()
	if len(quote) == 0 {
		return
	}
	n := gopacketNet(tb, data, quote, family)
	if !n.ok {
		return
	}
	quoteEnd := offsetIn(tb, data, quote) + len(quote)
	if quoteEnd-n.l4 < 8 {
		return
	}
	w.InnerL3Off, w.InnerL4Off, w.InnerProto = n.l3, n.l4, n.proto
	if n.nonFirst {
		return
	}
	h := data[n.l4 : n.l4+8]
	switch {
	case n.proto == 6 || n.proto == 17:
		// The first 8 bytes of a TCP header hold the ports at the same
		// place as UDP's: decode them as a UDP header (gopacket's TCP
		// decoder wants 20 bytes, and a quote may hold only 8).
		var u layers.UDP
		if err := u.DecodeFromBytes(h, gopacket.NilDecodeFeedback); err != nil {
			tb.Fatalf("gopacket inner ports: %v", err)
		}
		w.InnerSPort, w.InnerDPort = uint16(u.SrcPort), uint16(u.DstPort)
	case n.proto == 1 && n.family == 4:
		var c layers.ICMPv4
		if err := c.DecodeFromBytes(h, gopacket.NilDecodeFeedback); err != nil {
			tb.Fatalf("gopacket inner ICMPv4: %v", err)
		}
		if t := c.TypeCode.Type(); t == layers.ICMPv4TypeEchoRequest || t == layers.ICMPv4TypeEchoReply {
			w.InnerSPort, w.InnerDPort = c.Id, c.Id
		}
	case n.proto == 58 && n.family == 6:
		var c layers.ICMPv6
		if err := c.DecodeFromBytes(h, gopacket.NilDecodeFeedback); err != nil {
			tb.Fatalf("gopacket inner ICMPv6: %v", err)
		}
		if t := c.TypeCode.Type(); t == layers.ICMPv6TypeEchoRequest || t == layers.ICMPv6TypeEchoReply {
			id := binary.BigEndian.Uint16(h[4:6])
			w.InnerSPort, w.InnerDPort = id, id
		}
	}
}

// checkInvariants checks what must hold for any frame Parse accepted.
func checkInvariants(tb testing.TB, data []byte, p *Packet, v Verdict) {
	tb.Helper()
	if v >= NumVerdicts {
		tb.Fatalf("verdict %d out of range", v)
	}
	if v == NotIP {
		if p.Family != 0 || p.L3Off > len(data) {
			tb.Fatalf("NotIP with Family %d L3Off %d len %d", p.Family, p.L3Off, len(data))
		}
		return
	}
	if v != ParsedOK {
		return
	}
	if !(p.L3Off < p.L4Off && p.L4Off <= p.PayOff && p.PayOff <= len(data)) {
		tb.Fatalf("offsets L3 %d L4 %d Pay %d len %d", p.L3Off, p.L4Off, p.PayOff, len(data))
	}
	if p.L3Off+p.L3Len > len(data) || p.PayOff > p.L3Off+p.L3Len {
		tb.Fatalf("L3Len %d at %d beyond frame %d or before payload %d", p.L3Len, p.L3Off, len(data), p.PayOff)
	}
	alen := map[uint8]int{4: 4, 6: 16}[p.Family]
	if alen == 0 {
		tb.Fatalf("ParsedOK with Family %d", p.Family)
	}
	for _, a := range [][]byte{p.Src(data), p.Dst(data)} {
		if len(a) != alen {
			tb.Fatalf("address length %d, want %d", len(a), alen)
		}
		o := offsetIn(tb, data, a)
		if o < p.L3Off || o+alen > p.L4Off {
			tb.Fatalf("address at %d outside the IP header [%d,%d)", o, p.L3Off, p.L4Off)
		}
	}
	if p.FragHdrOff != 0 && (p.Family != 6 || p.FragHdrOff < p.L3Off+40 || p.FragHdrOff+8 > p.L4Off) {
		tb.Fatalf("FragHdrOff %d outside the extension headers", p.FragHdrOff)
	}
	if p.Frag == FragMore && (p.SPort != 0 || p.DPort != 0 || p.PayOff != p.L4Off) {
		tb.Fatalf("non-first fragment with ports %d/%d", p.SPort, p.DPort)
	}
	if p.InnerL3Off != 0 {
		if !p.IsICMPError() {
			tb.Fatalf("inner packet on a non-error (type %d)", p.ICMPType)
		}
		if !(p.InnerL3Off == p.L4Off+8 && p.InnerL3Off < p.InnerL4Off && p.InnerL4Off+8 <= p.L3Off+p.L3Len) {
			tb.Fatalf("inner offsets L3 %d L4 %d, outer L4 %d end %d", p.InnerL3Off, p.InnerL4Off, p.L4Off, p.L3Off+p.L3Len)
		}
		for _, a := range [][]byte{p.InnerSrc(data), p.InnerDst(data)} {
			if len(a) != alen {
				tb.Fatalf("inner address length %d, want %d", len(a), alen)
			}
			if o := offsetIn(tb, data, a); o < p.InnerL3Off || o+alen > p.InnerL4Off {
				tb.Fatalf("inner address at %d outside the inner IP header", o)
			}
		}
	} else if p.InnerL4Off != 0 || p.InnerProto != 0 || p.InnerSPort != 0 || p.InnerDPort != 0 ||
		p.InnerSrc(data) != nil || p.InnerDst(data) != nil {
		tb.Fatalf("inner fields set without InnerL3Off: %+v", p)
	}
}

func TestParseValid(t *testing.T) {
	ip4 := func(proto layers.IPProtocol) *layers.IPv4 { return ip4L(proto) }
	ip6 := func(nh layers.IPProtocol) *layers.IPv6 { return ip6L(nh) }

	type tc struct {
		name    string
		data    []byte
		verdict Verdict
		check   func(t *testing.T, p *Packet, data []byte)
	}
	var cases []tc
	add := func(name string, data []byte, v Verdict, check func(t *testing.T, p *Packet, data []byte)) {
		cases = append(cases, tc{name, data, v, check})
	}
	is := func(t *testing.T, what string, got, want any) {
		t.Helper()
		if got != want {
			t.Errorf("%s = %v, want %v", what, got, want)
		}
	}
	ports := func(sp, dp uint16) func(t *testing.T, p *Packet, _ []byte) {
		return func(t *testing.T, p *Packet, _ []byte) {
			is(t, "SPort", p.SPort, sp)
			is(t, "DPort", p.DPort, dp)
		}
	}

	add("tcp4", frameTCP4(t), ParsedOK, func(t *testing.T, p *Packet, d []byte) {
		is(t, "L3Off", p.L3Off, 14)
		is(t, "L4Off", p.L4Off, 34)
		is(t, "PayOff", p.PayOff, 34+24)
		is(t, "Proto", p.Proto, uint8(6))
		is(t, "TCPFlags", p.TCPFlags, uint8(0x42)) // ECE|SYN
		is(t, "SPort", p.SPort, uint16(40000))
		is(t, "DPort", p.DPort, uint16(80))
		is(t, "TTL", p.TTL, uint8(64))
		is(t, "Src", string(p.Src(d)), string(ip4A.To4()))
		is(t, "Dst", string(p.Dst(d)), string(ip4B.To4()))
	})
	{
		ip := ip4(layers.IPProtocolUDP)
		// 42 bytes, padded to 60 by gopacket: the padding must not count.
		add("udp4_padded", serialize(t, ethL(layers.EthernetTypeIPv4), ip, udpL(ip)), ParsedOK,
			func(t *testing.T, p *Packet, d []byte) {
				is(t, "len", len(d), 60)
				is(t, "L3Len", p.L3Len, 28)
				is(t, "PayOff", p.PayOff, 42)
				ports(5353, 53)(t, p, d)
			})
	}
	add("tcp6", frameTCP6(t), ParsedOK, func(t *testing.T, p *Packet, d []byte) {
		is(t, "L4Off", p.L4Off, 54)
		is(t, "Family", p.Family, uint8(6))
		is(t, "TTL", p.TTL, uint8(63))
		is(t, "Src", string(p.Src(d)), string(ip6A))
		is(t, "Dst", string(p.Dst(d)), string(ip6B))
		ports(40000, 80)(t, p, d)
	})
	{
		ip := ip6(layers.IPProtocolUDP)
		add("udp6", serialize(t, ethL(layers.EthernetTypeIPv6), ip, udpL(ip), payload(10)), ParsedOK, ports(5353, 53))
	}
	{
		ip := ip4(layers.IPProtocolTCP)
		add("tcp4_vlan", serialize(t, ethL(layers.EthernetTypeDot1Q),
			&layers.Dot1Q{VLANIdentifier: 4094, Priority: 7, DropEligible: true, Type: layers.EthernetTypeIPv4},
			ip, tcpL(ip), payload(3)), ParsedOK, func(t *testing.T, p *Packet, d []byte) {
			is(t, "VLAN", p.VLAN, uint16(4094))
			is(t, "L3Off", p.L3Off, 18)
			is(t, "EtherType", p.EtherType, uint16(0x0800))
		})
	}
	add("udp4_vlan", frameUDP4VLAN(t), ParsedOK, func(t *testing.T, p *Packet, d []byte) {
		is(t, "VLAN", p.VLAN, uint16(100))
	})
	{
		ip := ip6(layers.IPProtocolUDP)
		add("udp6_qinq", serialize(t, ethL(layers.EthernetTypeQinQ),
			&layers.Dot1Q{VLANIdentifier: 200, Type: layers.EthernetTypeDot1Q},
			&layers.Dot1Q{VLANIdentifier: 300, Type: layers.EthernetTypeIPv6},
			ip, udpL(ip), payload(20)), ParsedOK, func(t *testing.T, p *Packet, d []byte) {
			is(t, "VLAN (outer)", p.VLAN, uint16(200))
			is(t, "L3Off", p.L3Off, 22)
			is(t, "EtherType", p.EtherType, uint16(0x86DD))
			ports(5353, 53)(t, p, d)
		})
	}
	{
		ip := ip4(layers.IPProtocolTCP)
		ip.Options = []layers.IPv4Option{
			{OptionType: 7, OptionLength: 7, OptionData: []byte{4, 0, 0, 0, 0}}, // record route
			{OptionType: 1}, // NOP
		}
		add("tcp4_options", serialize(t, ethL(layers.EthernetTypeIPv4), ip, tcpL(ip), payload(5)), ParsedOK,
			func(t *testing.T, p *Packet, d []byte) {
				is(t, "IHL", int(d[14]&0xf), 7)
				is(t, "L4Off", p.L4Off, 14+28)
				ports(40000, 80)(t, p, d)
			})
	}
	add("udp6_hbh_dest", frameUDP6Ext(t), ParsedOK, func(t *testing.T, p *Packet, d []byte) {
		is(t, "L4Off", p.L4Off, 54+8+16)
		is(t, "Proto", p.Proto, uint8(17))
		ports(5353, 53)(t, p, d)
	})
	{
		ip := ip6(layers.IPProtocolIPv6HopByHop)
		frag := &layers.IPv6Fragment{NextHeader: layers.IPProtocolTCP, MoreFragments: true, Identification: 0xabcdef01}
		// TCP 24 + 16 = 40 bytes of fragment data, a multiple of 8.
		add("tcp6_hbh_dest_frag_first", serialize(t, ethL(layers.EthernetTypeIPv6), ip,
			hbhL(layers.IPProtocolIPv6Destination), destL(layers.IPProtocolIPv6Fragment), frag, tcpL(ip), payload(16)),
			ParsedOK, func(t *testing.T, p *Packet, d []byte) {
				is(t, "Frag", p.Frag, FragFirst)
				is(t, "FragHdrOff", p.FragHdrOff, 54+8+16)
				is(t, "FragID", p.FragID, uint32(0xabcdef01))
				is(t, "L4Off", p.L4Off, 54+8+16+8)
				is(t, "Proto", p.Proto, uint8(6))
				ports(40000, 80)(t, p, d)
			})
	}
	{
		ip := ip6(layers.IPProtocolIPv6HopByHop)
		frag := &layers.IPv6Fragment{NextHeader: layers.IPProtocolUDP, FragmentOffset: 185, Identification: 7}
		add("udp6_hbh_dest_frag_more", serialize(t, ethL(layers.EthernetTypeIPv6), ip,
			hbhL(layers.IPProtocolIPv6Destination), destL(layers.IPProtocolIPv6Fragment), frag, payload(101)),
			ParsedOK, func(t *testing.T, p *Packet, d []byte) {
				is(t, "Frag", p.Frag, FragMore)
				is(t, "FragID", p.FragID, uint32(7))
				is(t, "L4Off", p.L4Off, 54+8+16+8)
				is(t, "PayOff", p.PayOff, p.L4Off)
				is(t, "Proto", p.Proto, uint8(17))
				ports(0, 0)(t, p, d)
			})
	}
	{
		ip := ip6(layers.IPProtocolIPv6Fragment)
		frag := &layers.IPv6Fragment{NextHeader: layers.IPProtocolUDP, Identification: 9}
		add("udp6_atomic_frag", serialize(t, ethL(layers.EthernetTypeIPv6), ip, frag, udpL(ip), payload(3)),
			ParsedOK, func(t *testing.T, p *Packet, d []byte) {
				is(t, "Frag", p.Frag, FragNone)
				is(t, "FragHdrOff", p.FragHdrOff, 54)
				ports(5353, 53)(t, p, d)
			})
	}
	{
		ip := ip6(layers.IPProtocolIPv6Routing)
		rt := &layers.IPv6Routing{RoutingType: 0, SourceRoutingIPs: []net.IP{ip6R}}
		rt.NextHeader = layers.IPProtocolAH
		add("udp6_routing_ah", serialize(t, ethL(layers.EthernetTypeIPv6), ip, rt, ahL(layers.IPProtocolUDP),
			udpL(ip), payload(8)), ParsedOK, func(t *testing.T, p *Packet, d []byte) {
			is(t, "L4Off", p.L4Off, 54+24+24)
			ports(5353, 53)(t, p, d)
		})
	}
	{
		ip := ip6(layers.IPProtocolIPv6Destination)
		add("esp6", serialize(t, ethL(layers.EthernetTypeIPv6), ip, destL(layers.IPProtocolESP), payload(40)),
			ParsedOK, func(t *testing.T, p *Packet, d []byte) {
				is(t, "Proto", p.Proto, uint8(50))
				is(t, "L4Off", p.L4Off, 54+16)
				ports(0, 0)(t, p, d)
			})
		ip = ip6(layers.IPProtocolNoNextHeader)
		add("nonext6", serialize(t, ethL(layers.EthernetTypeIPv6), ip, payload(8)), ParsedOK, func(t *testing.T, p *Packet, d []byte) {
			is(t, "Proto", p.Proto, uint8(59))
			is(t, "L4Off", p.L4Off, 54)
		})
	}
	{
		ip := ip4(layers.IPProtocolUDP)
		ip.Flags = layers.IPv4MoreFragments
		ip.Id = 0xbeef
		add("udp4_frag_first", serialize(t, ethL(layers.EthernetTypeIPv4), ip, udpL(ip), payload(1472)), ParsedOK,
			func(t *testing.T, p *Packet, d []byte) {
				is(t, "Frag", p.Frag, FragFirst)
				is(t, "FragID", p.FragID, uint32(0xbeef))
				ports(5353, 53)(t, p, d)
			})
		ip = ip4(layers.IPProtocolUDP)
		ip.Flags = 0
		ip.FragOffset = 185
		add("udp4_frag_last", serialize(t, ethL(layers.EthernetTypeIPv4), ip, payload(300)), ParsedOK,
			func(t *testing.T, p *Packet, d []byte) {
				is(t, "Frag", p.Frag, FragMore)
				is(t, "L4Off", p.L4Off, 34)
				ports(0, 0)(t, p, d)
			})
		ip = ip4(layers.IPProtocolTCP)
		ip.Flags = layers.IPv4MoreFragments
		ip.FragOffset = 1
		add("tcp4_frag_middle", serialize(t, ethL(layers.EthernetTypeIPv4), ip, payload(16)), ParsedOK,
			func(t *testing.T, p *Packet, d []byte) {
				is(t, "Frag", p.Frag, FragMore)
				ports(0, 0)(t, p, d)
			})
	}
	{
		ip := ip4(layers.IPProtocolICMPv4)
		add("icmp4_echo", serialize(t, ethL(layers.EthernetTypeIPv4), ip, &layers.ICMPv4{
			TypeCode: layers.CreateICMPv4TypeCode(layers.ICMPv4TypeEchoRequest, 0), Id: 0x7777, Seq: 1}, payload(56)),
			ParsedOK, func(t *testing.T, p *Packet, d []byte) {
				is(t, "ICMPType", p.ICMPType, uint8(8))
				is(t, "IsICMPError", p.IsICMPError(), false)
				ports(0x7777, 0x7777)(t, p, d)
			})
		ip6 := ip6(layers.IPProtocolICMPv6)
		ic := &layers.ICMPv6{TypeCode: layers.CreateICMPv6TypeCode(layers.ICMPv6TypeEchoReply, 0)}
		if err := ic.SetNetworkLayerForChecksum(ip6); err != nil {
			t.Fatal(err)
		}
		add("icmp6_echo", serialize(t, ethL(layers.EthernetTypeIPv6), ip6, ic,
			&layers.ICMPv6Echo{Identifier: 0x6666, SeqNumber: 2}, payload(56)),
			ParsedOK, func(t *testing.T, p *Packet, d []byte) {
				is(t, "ICMPType", p.ICMPType, uint8(129))
				ports(0x6666, 0x6666)(t, p, d)
			})
	}
	fragNeeded := func(t *testing.T, p *Packet, d []byte) {
		is(t, "IsICMPError", p.IsICMPError(), true)
		is(t, "ICMPType", p.ICMPType, uint8(3))
		is(t, "ICMPCode", p.ICMPCode, uint8(4))
		is(t, "InnerL3Off", p.InnerL3Off, 14+20+8)
		is(t, "InnerProto", p.InnerProto, uint8(6))
		is(t, "InnerSPort", p.InnerSPort, uint16(80))
		is(t, "InnerDPort", p.InnerDPort, uint16(40000))
		is(t, "InnerSrc", string(p.InnerSrc(d)), string(ip4B.To4()))
		is(t, "InnerDst", string(p.InnerDst(d)), string(ip4A.To4()))
		is(t, "Src", string(p.Src(d)), string(ip4R.To4()))
	}
	{
		inner := innerTCP4(t, false)
		add("icmp4_frag_needed_tcp", frameICMP4FragNeeded(t, inner[:20+20+8]), ParsedOK, fragNeeded)
		add("icmp4_frag_needed_tcp_trunc8", frameICMP4FragNeeded(t, inner[:20+8]), ParsedOK,
			func(t *testing.T, p *Packet, d []byte) {
				fragNeeded(t, p, d)
				is(t, "InnerL4Off", p.InnerL4Off, 14+20+8+20)
			})
		add("icmp4_frag_needed_tcp_trunc7", frameICMP4FragNeeded(t, inner[:20+7]), ParsedOK,
			func(t *testing.T, p *Packet, d []byte) {
				is(t, "IsICMPError", p.IsICMPError(), true)
				is(t, "InnerL3Off", p.InnerL3Off, 0)
			})
		inner = innerTCP4(t, true)
		add("icmp4_frag_needed_tcp_opts", frameICMP4FragNeeded(t, inner[:24+8]), ParsedOK,
			func(t *testing.T, p *Packet, d []byte) {
				fragNeeded(t, p, d)
				is(t, "InnerL4Off", p.InnerL4Off, 14+20+8+24)
			})
		add("icmp4_bad_inner", frameICMP4FragNeeded(t, payload(48)), ParsedOK,
			func(t *testing.T, p *Packet, d []byte) {
				is(t, "IsICMPError", p.IsICMPError(), true)
				is(t, "InnerL3Off", p.InnerL3Off, 0)
			})
		// Time exceeded quoting a UDP packet, whole.
		ipIn := &layers.IPv4{Version: 4, TTL: 1, Protocol: layers.IPProtocolUDP, SrcIP: ip4B, DstIP: ip4A}
		uIn := udpL(ipIn)
		q := serialize(t, ipIn, uIn, payload(10))
		ip := ip4(layers.IPProtocolICMPv4)
		add("icmp4_time_exceeded_udp", serialize(t, ethL(layers.EthernetTypeIPv4), ip, &layers.ICMPv4{
			TypeCode: layers.CreateICMPv4TypeCode(layers.ICMPv4TypeTimeExceeded, 0)}, gopacket.Payload(q)),
			ParsedOK, func(t *testing.T, p *Packet, d []byte) {
				is(t, "InnerProto", p.InnerProto, uint8(17))
				is(t, "InnerSPort", p.InnerSPort, uint16(5353))
			})
		// Destination unreachable quoting an ICMP echo request.
		ipIn = &layers.IPv4{Version: 4, TTL: 1, Protocol: layers.IPProtocolICMPv4, SrcIP: ip4B, DstIP: ip4A}
		q = serialize(t, ipIn, &layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(layers.ICMPv4TypeEchoRequest, 0), Id: 99})
		ip = ip4(layers.IPProtocolICMPv4)
		add("icmp4_unreach_echo", serialize(t, ethL(layers.EthernetTypeIPv4), ip, &layers.ICMPv4{
			TypeCode: layers.CreateICMPv4TypeCode(layers.ICMPv4TypeDestinationUnreachable, 1)}, gopacket.Payload(q)),
			ParsedOK, func(t *testing.T, p *Packet, d []byte) {
				is(t, "InnerProto", p.InnerProto, uint8(1))
				is(t, "InnerSPort", p.InnerSPort, uint16(99))
				is(t, "InnerDPort", p.InnerDPort, uint16(99))
			})
	}
	ptb := func(l4 int) func(t *testing.T, p *Packet, d []byte) {
		return func(t *testing.T, p *Packet, d []byte) {
			is(t, "IsICMPError", p.IsICMPError(), true)
			is(t, "ICMPType", p.ICMPType, uint8(2))
			is(t, "InnerL3Off", p.InnerL3Off, 54+8)
			is(t, "InnerL4Off", p.InnerL4Off, l4)
			is(t, "InnerProto", p.InnerProto, uint8(17))
			is(t, "InnerSPort", p.InnerSPort, uint16(53))
			is(t, "InnerDPort", p.InnerDPort, uint16(5353))
			is(t, "InnerSrc", string(p.InnerSrc(d)), string(ip6B))
			is(t, "InnerDst", string(p.InnerDst(d)), string(ip6A))
		}
	}
	add("icmp6_ptb_udp", frameICMP6PTB(t, innerUDP6(t, false)[:1232]), ParsedOK, ptb(54+8+40))
	add("icmp6_ptb_udp_trunc8", frameICMP6PTB(t, innerUDP6(t, false)[:48]), ParsedOK, ptb(54+8+40))
	add("icmp6_ptb_udp_dest", frameICMP6PTB(t, innerUDP6(t, true)[:1232]), ParsedOK, ptb(54+8+40+16))
	add("icmp6_ptb_trunc_ext", frameICMP6PTB(t, innerUDP6(t, true)[:50]), ParsedOK,
		func(t *testing.T, p *Packet, d []byte) {
			is(t, "IsICMPError", p.IsICMPError(), true)
			is(t, "InnerL3Off", p.InnerL3Off, 0)
		})
	add("arp", serialize(t, ethL(layers.EthernetTypeARP), &layers.ARP{AddrType: layers.LinkTypeEthernet,
		Protocol: layers.EthernetTypeIPv4, HwAddressSize: 6, ProtAddressSize: 4, Operation: layers.ARPRequest,
		SourceHwAddress: macA, SourceProtAddress: ip4A.To4(), DstHwAddress: make([]byte, 6), DstProtAddress: ip4B.To4()}),
		NotIP, func(t *testing.T, p *Packet, d []byte) {
			is(t, "EtherType", p.EtherType, uint16(0x0806))
			is(t, "Family", p.Family, uint8(0))
			is(t, "Src", p.Src(d) == nil, true)
		})
	add("arp_vlan", serialize(t, ethL(layers.EthernetTypeDot1Q), &layers.Dot1Q{VLANIdentifier: 7, Type: layers.EthernetTypeARP},
		&layers.ARP{AddrType: layers.LinkTypeEthernet, Protocol: layers.EthernetTypeIPv4, HwAddressSize: 6,
			ProtAddressSize: 4, Operation: layers.ARPReply, SourceHwAddress: macA, SourceProtAddress: ip4A.To4(),
			DstHwAddress: macB, DstProtAddress: ip4B.To4()}),
		NotIP, func(t *testing.T, p *Packet, d []byte) {
			is(t, "VLAN", p.VLAN, uint16(7))
			is(t, "L3Off", p.L3Off, 18)
		})

	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var p Packet
			// Dirty the reused Packet: Parse must overwrite everything.
			p.InnerL3Off, p.FragHdrOff, p.SPort, p.VLAN = 99, 99, 99, 99
			v := Parse(c.data, &p)
			if v != c.verdict {
				t.Fatalf("verdict %v, want %v", v, c.verdict)
			}
			checkInvariants(t, c.data, &p, v)
			want, wv := gopacketView(t, c.data)
			if wv != v {
				t.Fatalf("gopacket verdict %v, parse %v", wv, v)
			}
			if p != want {
				t.Errorf("parse and gopacket disagree:\n parse    %+v\n gopacket %+v", p, want)
			}
			if c.check != nil {
				c.check(t, &p, c.data)
			}
		})
	}
}

// mutate returns a copy of data with f applied.
func mutate(data []byte, f func(b []byte)) []byte {
	b := append([]byte(nil), data...)
	f(b)
	return b
}

func TestParseMalformed(t *testing.T) {
	tcp4 := frameTCP4(t)
	tcp6 := frameTCP6(t)
	udp4 := frameUDP4VLAN(t)[4:] // untagged: drop the tag
	udp4 = mutate(udp4, func(b []byte) { binary.BigEndian.PutUint16(b[12:], 0x0800) })
	const l3 = 14
	put16 := binary.BigEndian.PutUint16
	// setTot4 sets the IPv4 total length and cuts the frame to it.
	setTot4 := func(tot int) func(b []byte) {
		return func(b []byte) { put16(b[l3+2:], uint16(tot)) }
	}
	ext6 := func(nh ...byte) []byte {
		// An IPv6 frame with the given chain of 8-byte extension headers
		// (each naming the next one), then UDP.
		ip := ip6L(layers.IPProtocol(nh[0]))
		var body []byte
		for i := range nh {
			next := byte(17)
			if i+1 < len(nh) {
				next = nh[i+1]
			}
			body = append(body, next, 0, 0, 0, 0, 0, 0, 0)
		}
		body = append(body, 0x13, 0x88, 0, 53, 0, 8, 0, 0)
		return serialize(t, ethL(layers.EthernetTypeIPv6), ip, gopacket.Payload(body))
	}
	many := make([]byte, 20)
	for i := range many {
		many[i] = 60
	}

	cases := []struct {
		name string
		data []byte
		want Verdict
	}{
		{"empty", nil, DropTruncated},
		{"eth_short", tcp4[:13], DropTruncated},
		{"vlan_short", frameUDP4VLAN(t)[:17], DropTruncated},
		{"qinq_short", mutate(frameUDP4VLAN(t)[:21], func(b []byte) { put16(b[16:], 0x8100) }), DropTruncated},
		{"three_tags", mutate(frameUDP4VLAN(t), func(b []byte) { put16(b[12:], 0x88a8); put16(b[16:], 0x8100); put16(b[20:], 0x8100) }), NotIP},
		{"llc", mutate(tcp4, func(b []byte) { put16(b[12:], 100) }), NotIP},
		{"ipv4_short", tcp4[:l3+19], DropTruncated},
		{"ipv6_short", tcp6[:l3+39], DropTruncated},
		{"v4_version6", mutate(tcp4, func(b []byte) { b[l3] = 0x65 }), DropBadVersion},
		{"v4_version0", mutate(tcp4, func(b []byte) { b[l3] = 0x05 }), DropBadVersion},
		{"v6_version4", mutate(tcp6, func(b []byte) { b[l3] = 0x45 }), DropBadVersion},
		{"ihl4", mutate(tcp4, func(b []byte) { b[l3] = 0x44 }), DropBadIHL},
		{"ihl0", mutate(tcp4, func(b []byte) { b[l3] = 0x40 }), DropBadIHL},
		{"ihl_beyond_frame", mutate(tcp4, func(b []byte) { b[l3] = 0x4f })[:l3+40], DropBadIHL},
		{"ihl_beyond_total", mutate(tcp4, func(b []byte) { b[l3] = 0x4f; put16(b[l3+2:], 40) }), DropBadLength},
		{"tot_beyond_frame", mutate(tcp4, setTot4(len(tcp4)-l3+1)), DropBadLength},
		{"tot_below_header", mutate(tcp4, setTot4(19)), DropBadLength},
		{"tot_zero", mutate(tcp4, setTot4(0)), DropBadLength},
		{"v6_plen_beyond_frame", mutate(tcp6, func(b []byte) { put16(b[l3+4:], uint16(len(tcp6)-l3-40+1)) }), DropBadLength},
		{"tcp4_header_cut_by_tot", mutate(tcp4, setTot4(20+19)), DropTruncated},
		{"tcp6_header_cut_by_plen", mutate(tcp6, func(b []byte) { put16(b[l3+4:], 19) }), DropTruncated},
		{"tcp_doff4", mutate(tcp4, func(b []byte) { b[l3+20+12] = 0x40 }), DropBadLength},
		{"tcp_doff0", mutate(tcp6, func(b []byte) { b[l3+40+12] = 0x00 }), DropBadLength},
		{"tcp_doff_beyond_tot", mutate(tcp4, func(b []byte) { b[l3+20+12] = 0xf0; put16(b[l3+2:], 20+56) }), DropBadLength},
		{"udp_len7", mutate(udp4, func(b []byte) { put16(b[l3+20+4:], 7) }), DropBadLength},
		{"udp_len0", mutate(udp4, func(b []byte) { put16(b[l3+20+4:], 0) }), DropBadLength},
		{"udp_len_beyond_ip", mutate(udp4, func(b []byte) { put16(b[l3+20+4:], uint16(len(udp4)-l3-20+1)) }), DropBadLength},
		{"udp_cut_by_tot", mutate(udp4, setTot4(27)), DropTruncated},
		{"icmp_cut_by_tot", mutate(frameICMP4FragNeeded(t, payload(28)), setTot4(27)), DropTruncated},
		{"ext_chain_20_destopts", ext6(many...), DropBadExtHeader},
		{"ext_chain_8_ok", ext6(many[:8]...), ParsedOK},
		{"ext_chain_9", ext6(many[:9]...), DropBadExtHeader},
		{"hbh_not_first", ext6(60, 0), DropBadExtHeader},
		{"two_frag_headers", ext6(44, 44), DropBadExtHeader},
		{"ext_len_beyond_payload", mutate(ext6(60), func(b []byte) { b[l3+40+1] = 2 }), DropBadExtHeader},
		{"ext_cut_by_plen", mutate(ext6(60), func(b []byte) { put16(b[l3+4:], 7) }), DropTruncated},
		{"ah_too_short", mutate(ext6(51), func(b []byte) { b[l3+40+1] = 0 }), DropBadExtHeader},
		{"v4_frag_too_big", mutate(tcp4, func(b []byte) { put16(b[l3+6:], 8191) }), DropBadFragment},
		{"v4_frag_max_ok", mutate(udp4, func(b []byte) { put16(b[l3+2:], 20+8); put16(b[l3+6:], uint16((65535-28)/8)) })[:l3+28], ParsedOK},
		{"v4_mf_empty", mutate(tcp4, func(b []byte) { put16(b[l3+2:], 20); put16(b[l3+6:], 0x2000) }), DropBadFragment},
		// 7 bytes of fragment data with M set: not a multiple of 8.
		{"v6_mf_odd_len", mutate(ext6(44), func(b []byte) { b[l3+40+3] = 1; put16(b[l3+4:], 15) }), DropBadFragment},
		{"v6_mf_odd_len_nonfirst", mutate(ext6(44), func(b []byte) { b[l3+40+3] = 1 | 8; put16(b[l3+4:], 15) }), DropBadFragment},
		{"v6_nonfirst_ok", mutate(ext6(44), func(b []byte) { b[l3+40+3] = 8 }), ParsedOK},
		{"v6_frag_too_big", mutate(ext6(44), func(b []byte) { put16(b[l3+40+2:], 0xfff8) }), DropBadFragment},
		{"v6_mf_empty", mutate(ext6(44), func(b []byte) { b[l3+40+3] = 1; put16(b[l3+4:], 8) }), DropBadFragment},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var p Packet
			v := Parse(c.data, &p)
			if v != c.want {
				t.Fatalf("verdict %v, want %v (%+v)", v, c.want, p)
			}
			checkInvariants(t, c.data, &p, v)
		})
	}
}

// TestParseTruncatedEveryOffset cuts valid frames at every byte: Parse must
// drop them with the verdict of the header that no longer fits.
func TestParseTruncatedEveryOffset(t *testing.T) {
	cases := []struct {
		name  string
		data  []byte
		ipEnd int // length below which the IP header itself is cut
	}{
		{"tcp4", frameTCP4(t), 14 + 20},
		{"tcp6", frameTCP6(t), 14 + 40},
		{"udp4_vlan", frameUDP4VLAN(t), 18 + 20},
		{"udp6_ext", frameUDP6Ext(t), 14 + 40},
		{"icmp4_err", frameICMP4FragNeeded(t, innerTCP4(t, false)[:48]), 14 + 20},
		{"icmp6_err", frameICMP6PTB(t, innerUDP6(t, true)[:100]), 14 + 40},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var p Packet
			if v := Parse(c.data, &p); v != ParsedOK {
				t.Fatalf("whole frame: %v", v)
			}
			for n := 0; n < len(c.data); n++ {
				d := c.data[:n:n]
				v := Parse(d, &p)
				want := DropBadLength // the IP length now exceeds the frame
				if n < c.ipEnd {
					want = DropTruncated
				}
				if v != want {
					t.Fatalf("cut at %d: %v, want %v", n, v, want)
				}
				checkInvariants(t, d, &p, v)
			}
		})
	}
}

func TestParseVerdictString(t *testing.T) {
	seen := map[string]bool{}
	for v := Verdict(0); v < NumVerdicts; v++ {
		s := v.String()
		if s == "" || s == "unknown" || seen[s] {
			t.Errorf("verdict %d: name %q empty or duplicate", v, s)
		}
		seen[s] = true
	}
	if ParsedOK.String() != "ok" || DropTruncated.String() != "truncated" || DropBadExtHeader.String() != "bad_ext_header" {
		t.Errorf("unexpected names: %v %v %v", ParsedOK, DropTruncated, DropBadExtHeader)
	}
	if NumVerdicts.String() != "unknown" || Verdict(200).String() != "unknown" {
		t.Errorf("out-of-range verdicts must be unknown")
	}
}

func TestParseAllocs(t *testing.T) {
	frames := [][]byte{
		frameTCP4(t), frameTCP6(t), frameUDP4VLAN(t), frameUDP6Ext(t),
		frameICMP4FragNeeded(t, innerTCP4(t, true)[:32]), frameICMP6PTB(t, innerUDP6(t, true)[:200]),
		frameTCP4(t)[:30],
	}
	var p Packet
	allocs := testing.AllocsPerRun(100, func() {
		for _, f := range frames {
			Parse(f, &p)
			_ = p.Src(f)
			_ = p.InnerDst(f)
		}
	})
	if allocs != 0 {
		t.Fatalf("Parse allocates: %v allocs per run", allocs)
	}
}

func BenchmarkParse(b *testing.B) {
	cases := []struct {
		name string
		data []byte
	}{
		{"tcp4", frameTCP4(b)},
		{"tcp6", frameTCP6(b)},
		{"udp4_vlan", frameUDP4VLAN(b)},
		{"icmp4_err", frameICMP4FragNeeded(b, innerTCP4(b, false)[:48])},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			var p Packet
			b.ReportAllocs()
			for b.Loop() {
				if Parse(c.data, &p) != ParsedOK {
					b.Fatal("not parsed")
				}
			}
		})
	}
}
