package pipeline

import (
	"bytes"
	"net"
	"net/netip"
	"testing"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"

	"gvs/lb"
)

// frameOf builds a frame from layers with lengths and checksums fixed.
func frameOf(t *testing.T, ls ...gopacket.SerializableLayer) []byte {
	t.Helper()
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, ls...); err != nil {
		t.Fatal(err)
	}
	return append([]byte(nil), buf.Bytes()...)
}

// icmpError builds an ICMP "fragmentation needed" (v4) or "packet too big"
// (v6) from router to to, about the packet (IP header and first 8 bytes of
// L4) from about.src:sport to about.dst:dport.
func icmpError(t *testing.T, router, to netip.Addr, about pktSpec) []byte {
	t.Helper()
	full := build(t, about)[14:]
	v6 := to.Is6()
	hl := 20
	if v6 {
		hl = 40
	}
	quote := full[:hl+8]
	eth := &layers.Ethernet{SrcMAC: clientMAC, DstMAC: portMAC}
	if !v6 {
		eth.EthernetType = layers.EthernetTypeIPv4
		ip := &layers.IPv4{Version: 4, TTL: 64, Protocol: layers.IPProtocolICMPv4, SrcIP: router.AsSlice(), DstIP: to.AsSlice()}
		ic := &layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(3, 4), Seq: 1400} // next-hop MTU in the low half
		return frameOf(t, eth, ip, ic, gopacket.Payload(quote))
	}
	eth.EthernetType = layers.EthernetTypeIPv6
	ip := &layers.IPv6{Version: 6, HopLimit: 64, NextHeader: layers.IPProtocolICMPv6, SrcIP: router.AsSlice(), DstIP: to.AsSlice()}
	ic := &layers.ICMPv6{TypeCode: layers.CreateICMPv6TypeCode(2, 0)}
	_ = ic.SetNetworkLayerForChecksum(ip)
	mtu := []byte{0, 0, 0x05, 0x78}
	return frameOf(t, eth, ip, ic, gopacket.Payload(append(mtu, quote...)))
}

// checkICMP verifies the ICMP checksum of an output frame and returns the
// embedded packet's addresses and ports.
func checkICMP(t *testing.T, frame []byte, v6 bool) (outer *decoded, src, dst netip.Addr, sport, dport uint16) {
	t.Helper()
	p := gopacket.NewPacket(frame, layers.LayerTypeEthernet, gopacket.Default)
	outer = &decoded{}
	var msg []byte
	var l3 []byte
	if v6 {
		ip := p.Layer(layers.LayerTypeIPv6).(*layers.IPv6)
		outer.src, _ = netip.AddrFromSlice(ip.SrcIP)
		outer.dst, _ = netip.AddrFromSlice(ip.DstIP)
		msg = ip.Payload
		s := sum16(0, ip.SrcIP)
		s = sum16(s, ip.DstIP)
		s += 58 + uint32(len(msg))
		if fold(sum16(s, msg)) != 0xffff {
			t.Errorf("ICMPv6 checksum does not verify")
		}
		l3 = msg[8:]
		src, _ = netip.AddrFromSlice(l3[8:24])
		dst, _ = netip.AddrFromSlice(l3[24:40])
		sport, dport = uint16(l3[40])<<8|uint16(l3[41]), uint16(l3[42])<<8|uint16(l3[43])
		return
	}
	ip := p.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
	checkIPv4Header(t, frame[14:])
	outer.src, _ = netip.AddrFromSlice(ip.SrcIP.To4())
	outer.dst, _ = netip.AddrFromSlice(ip.DstIP.To4())
	msg = ip.Payload
	if fold(sum16(0, msg)) != 0xffff {
		t.Errorf("ICMP checksum does not verify")
	}
	l3 = msg[8:]
	checkIPv4Header(t, l3)
	src, _ = netip.AddrFromSlice(l3[12:16])
	dst, _ = netip.AddrFromSlice(l3[16:20])
	sport, dport = uint16(l3[20])<<8|uint16(l3[21]), uint16(l3[22])<<8|uint16(l3[23])
	return
}

// An ICMP error about the reply direction of a flow (VIP -> client), sent
// to the VIP by a router on the client side, reaches that flow's real with
// the method's rewrite.
func TestICMPErrorFollowsFlow(t *testing.T) {
	for _, m := range methods {
		for _, v6 := range []bool{false, true} {
			name := m.String() + "/v4"
			if v6 {
				name = m.String() + "/v6"
			}
			t.Run(name, func(t *testing.T) {
				svc := testService(m, v6, lb.ProtoTCP, "rr", 3)
				e := newEnv(t, 1024, svc)
				cl := clientAddr(v6, 3)
				// Two flows so the error's flow is not simply "the first real".
				e.run(build(t, pktSpec{src: clientAddr(v6, 9), dst: svc.VIP, sport: 555, dport: vipPort, syn: true}))
				res := e.run(build(t, pktSpec{src: cl, dst: svc.VIP, sport: 40000, dport: vipPort, syn: true}))
				if len(res.tx) != 1 {
					t.Fatal("flow not forwarded")
				}
				ri := realIndex(decodeFrame(t, res.tx[0]).eth.DstMAC)
				router := netip.MustParseAddr("198.18.77.1")
				if v6 {
					router = netip.MustParseAddr("2001:db8:77::1")
				}
				errPkt := icmpError(t, router, svc.VIP, pktSpec{src: svc.VIP, sport: vipPort, dst: cl, dport: 40000, syn: true, ack: true})
				res = e.run(errPkt)
				if len(res.tx) != 1 {
					t.Fatalf("ICMP error: %d out (slow %d, drop %d)", len(res.tx), len(res.slow), len(res.drop))
				}
				out := res.tx[0]
				if got := realIndex(out[0:6]); got != ri {
					t.Fatalf("ICMP error went to real %d, flow is on real %d", got, ri)
				}
				realIP := realFor(m, v6, ri)
				switch m {
				case lb.MethodNAT, lb.MethodFullNAT:
					o, isrc, idst, isport, idport := checkICMP(t, out, v6)
					if o.dst != realIP {
						t.Errorf("outer dst %s, want %s", o.dst, realIP)
					}
					if isrc != realIP || isport != natRealPrt {
						t.Errorf("embedded source %s:%d, want %s:%d", isrc, isport, realIP, natRealPrt)
					}
					if m == lb.MethodNAT && (idst != cl || idport != 40000) {
						t.Errorf("embedded destination %s:%d, want %s:40000", idst, idport, cl)
					}
					if m == lb.MethodFullNAT && (idst != localFor(v6) || o.src != localFor(v6)) {
						t.Errorf("fullnat: embedded dst %s outer src %s, want %s", idst, o.src, localFor(v6))
					}
				case lb.MethodDR:
					if !bytes.Equal(out[14:], errPkt[14:]) {
						t.Errorf("dr changed the ICMP packet")
					}
				case lb.MethodL3DSR:
					o, _, _, _, _ := checkICMP(t, out, v6)
					if o.dst != realIP {
						t.Errorf("l3dsr: outer dst %s, want %s", o.dst, realIP)
					}
				case lb.MethodTunnel:
					d := decodeFrame(t, out)
					if d.inner == nil || d.dst != realIP {
						t.Errorf("tunnel: ICMP error not encapsulated to %s", realIP)
					}
				}
				if n := e.pipe.Stats().Counter(CtrICMPErrors); n != 1 {
					t.Errorf("icmp_errors = %d, want 1", n)
				}
			})
		}
	}
}

// fragments splits an IPv4 UDP datagram into two fragments at offset 24.
func fragments(t *testing.T, src, dst netip.Addr, sport, dport uint16, id uint16) (first, second []byte) {
	t.Helper()
	payload := bytes.Repeat([]byte("x"), 40)
	whole := build(t, pktSpec{src: src, dst: dst, sport: sport, dport: dport, udp: true, payload: payload})[14:]
	l4 := whole[20:] // UDP header + payload, 48 bytes
	mk := func(off int, data []byte, mf bool) []byte {
		eth := &layers.Ethernet{SrcMAC: clientMAC, DstMAC: portMAC, EthernetType: layers.EthernetTypeIPv4}
		ip := &layers.IPv4{Version: 4, TTL: 64, Protocol: layers.IPProtocolUDP, SrcIP: src.AsSlice(), DstIP: dst.AsSlice(), Id: id, FragOffset: uint16(off / 8)}
		if mf {
			ip.Flags = layers.IPv4MoreFragments
		}
		return frameOf(t, eth, ip, gopacket.Payload(data))
	}
	return mk(0, l4[:24], true), mk(24, l4[24:], false)
}

// Non-first fragments follow the real of their first fragment; a fragment
// whose first fragment was never seen is scheduled on (src, dst, proto).
func TestFragmentsFollowFlow(t *testing.T) {
	for _, m := range []lb.Method{lb.MethodDR, lb.MethodNAT, lb.MethodTunnel} {
		t.Run(m.String(), func(t *testing.T) {
			svc := testService(m, false, lb.ProtoUDP, "rr", 3)
			e := newEnv(t, 1024, svc)
			e.run(build(t, pktSpec{src: clientAddr(false, 1), dst: svc.VIP, sport: 9, dport: vipPort, udp: true}))
			cl := clientAddr(false, 2)
			first, second := fragments(t, cl, svc.VIP, 5353, vipPort, 777)
			res := e.run(first, second)
			if len(res.tx) != 2 {
				t.Fatalf("%d of 2 fragments forwarded (drop %d, slow %d)", len(res.tx), len(res.drop), len(res.slow))
			}
			r1, r2 := realIndex(res.tx[0][:6]), realIndex(res.tx[1][:6])
			if r1 < 0 || r1 != r2 {
				t.Fatalf("fragments went to reals %d and %d", r1, r2)
			}
			if m == lb.MethodNAT {
				d := decodeFrame(t, res.tx[1])
				if d.dst != realFor(m, false, r1) {
					t.Errorf("second fragment to %s, want %s", d.dst, realFor(m, false, r1))
				}
			}
			if n := e.pipe.Stats().Counter(CtrFragFollowed); n != 1 {
				t.Errorf("frags_followed = %d, want 1", n)
			}
			// A lone non-first fragment.
			_, lone := fragments(t, cl, svc.VIP, 5353, vipPort, 778)
			res = e.run(lone)
			if m == lb.MethodNAT {
				if len(res.drop) != 1 || e.pipe.Stats().Drops(DropFragNoSession) != 1 {
					t.Errorf("nat: lone fragment not dropped as frag_no_session")
				}
				return
			}
			if len(res.tx) != 1 || e.pipe.Stats().Counter(CtrFrag3Tuple) != 1 {
				t.Errorf("lone fragment: tx %d, frags_3tuple %d", len(res.tx), e.pipe.Stats().Counter(CtrFrag3Tuple))
			}
		})
	}
}

// Every truncation of valid packets is dropped with a parse reason or sent
// to the slow path; nothing panics, nothing is forwarded half-parsed.
func TestMalformedDropped(t *testing.T) {
	svc := testService(lb.MethodNAT, false, lb.ProtoTCP, "rr", 2)
	svc6 := testService(lb.MethodNAT, true, lb.ProtoTCP, "rr", 2)
	e := newEnv(t, 1024, svc, svc6)
	for _, v6 := range []bool{false, true} {
		s := svc
		if v6 {
			s = svc6
		}
		full := build(t, pktSpec{src: clientAddr(v6, 1), dst: s.VIP, sport: 1, dport: vipPort, syn: true})
		hdr := 14 + 20 + 20
		if v6 {
			hdr = 14 + 40 + 20
		}
		for n := 0; n < hdr; n++ {
			res := e.run(full[:n])
			if len(res.tx) != 0 || len(res.handover) != 0 {
				t.Fatalf("truncated to %d bytes: forwarded", n)
			}
			if len(res.drop)+len(res.slow) != 1 {
				t.Fatalf("truncated to %d bytes: frame lost", n)
			}
		}
	}
	st := e.pipe.Stats()
	if st.Drops(DropParseTruncated) == 0 || st.Drops(DropParseBadLength) == 0 {
		t.Errorf("drop counters: truncated %d, bad_length %d", st.Drops(DropParseTruncated), st.Drops(DropParseBadLength))
	}
	// Bad IHL.
	bad := build(t, pktSpec{src: clientAddr(false, 1), dst: svc.VIP, sport: 1, dport: vipPort, syn: true})
	bad[14] = 0x43
	if res := e.run(bad); len(res.drop) != 1 || e.pipe.Stats().Drops(DropParseBadIHL) != 1 {
		t.Errorf("bad IHL not dropped as bad_ihl")
	}
}

// Weight 0 drains: the established flow stays, new flows avoid the real.
// Removing the real with the drop policy moves its flow on.
func TestDrainAndRemove(t *testing.T) {
	for _, policy := range []lb.RemovePolicy{lb.RemoveDrain, lb.RemoveDrop} {
		svc := testService(lb.MethodDR, false, lb.ProtoTCP, "rr", 2)
		svc.OnRemove = policy
		e := newEnv(t, 1024, svc)
		flow := pktSpec{src: clientAddr(false, 1), dst: svc.VIP, sport: 1000, dport: vipPort, syn: true}
		res := e.run(build(t, flow))
		ri := realIndex(res.tx[0][:6])
		// Weight 0 on that real.
		svc.Reals[ri].Weight = 0
		if err := e.bal.Apply(lb.Config{Services: []lb.Service{svc}, NextHops: hopsFor([]lb.Service{svc})}); err != nil {
			t.Fatal(err)
		}
		flow.syn, flow.ack = false, true
		if got := realIndex(e.run(build(t, flow)).tx[0][:6]); got != ri {
			t.Fatalf("established flow left draining real %d for %d", ri, got)
		}
		for i := 0; i < 20; i++ {
			nf := pktSpec{src: clientAddr(false, 100+i), dst: svc.VIP, sport: 2000, dport: vipPort, syn: true}
			if got := realIndex(e.run(build(t, nf)).tx[0][:6]); got == ri {
				t.Fatalf("new flow scheduled on weight-0 real %d", ri)
			}
		}
		// Remove the real.
		removed := svc
		removed.Reals = append([]lb.Real(nil), svc.Reals...)
		removed.Reals = append(removed.Reals[:ri], removed.Reals[ri+1:]...)
		if err := e.bal.Apply(lb.Config{Services: []lb.Service{removed}, NextHops: hopsFor([]lb.Service{svc})}); err != nil {
			t.Fatal(err)
		}
		got := realIndex(e.run(build(t, flow)).tx[0][:6])
		if policy == lb.RemoveDrain && got != ri {
			t.Errorf("drain policy: flow moved off removed real %d to %d", ri, got)
		}
		if policy == lb.RemoveDrop && got == ri {
			t.Errorf("drop policy: flow still on removed real %d", ri)
		}
	}
}

// A full session table: dr flows go on statelessly, nat flows are dropped.
func TestSessionTableFull(t *testing.T) {
	for _, m := range []lb.Method{lb.MethodDR, lb.MethodNAT} {
		svc := testService(m, false, lb.ProtoTCP, "rr", 3)
		e := newEnv(t, 8, svc)
		cap := e.pipe.Sessions().Cap()
		var pkts [][]byte
		for i := 0; i < cap+64; i++ {
			pkts = append(pkts, build(t, pktSpec{src: clientAddr(false, i), dst: svc.VIP, sport: 3000, dport: vipPort, syn: true}))
		}
		var tx, drop int
		for i := 0; i < len(pkts); i += 32 {
			end := min(i+32, len(pkts))
			res := e.run(pkts[i:end]...)
			tx += len(res.tx)
			drop += len(res.drop)
		}
		st := e.pipe.Stats()
		if m == lb.MethodDR {
			if tx != len(pkts) || st.Counter(CtrStateless) == 0 {
				t.Errorf("dr: %d of %d forwarded, stateless %d", tx, len(pkts), st.Counter(CtrStateless))
			}
		} else if drop == 0 || st.Drops(DropSessionFull) == 0 {
			t.Errorf("nat: full table dropped %d (session_full %d)", drop, st.Drops(DropSessionFull))
		}
	}
}

// Persistence: a client's connections share a real; the template is hit.
func TestPersistence(t *testing.T) {
	svc := testService(lb.MethodDR, false, lb.ProtoTCP, "rr", 4)
	svc.PersistTimeout = 300e9
	svc.PersistMask = 24
	e := newEnv(t, 1024, svc)
	first := -1
	for i := 0; i < 8; i++ {
		// Same /24, different hosts and ports.
		src := netip.AddrFrom4([4]byte{198, 19, 5, byte(10 + i)})
		res := e.run(build(t, pktSpec{src: src, dst: svc.VIP, sport: uint16(4000 + i), dport: vipPort, syn: true}))
		got := realIndex(res.tx[0][:6])
		if first < 0 {
			first = got
		} else if got != first {
			t.Fatalf("connection %d went to real %d, persistence says %d", i, got, first)
		}
	}
	if n := e.pipe.Stats().Counter(CtrPersistHit); n != 7 {
		t.Errorf("persist_hits = %d, want 7", n)
	}
	// Another /24 is scheduled independently (rr moves on).
	res := e.run(build(t, pktSpec{src: netip.MustParseAddr("198.19.6.1"), dst: svc.VIP, sport: 1, dport: vipPort, syn: true}))
	if realIndex(res.tx[0][:6]) == first {
		t.Errorf("a new client network got the persistent real of another")
	}
}

// Packets not for a VIP go to the slow path; ARP too.
func TestSlowPath(t *testing.T) {
	svc := testService(lb.MethodDR, false, lb.ProtoTCP, "rr", 1)
	e := newEnv(t, 64, svc)
	other := build(t, pktSpec{src: clientAddr(false, 1), dst: netip.MustParseAddr("198.18.9.9"), sport: 1, dport: 22, syn: true})
	arp := frameOf(t, &layers.Ethernet{SrcMAC: clientMAC, DstMAC: net.HardwareAddr{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, EthernetType: layers.EthernetTypeARP},
		&layers.ARP{AddrType: layers.LinkTypeEthernet, Protocol: layers.EthernetTypeIPv4, HwAddressSize: 6, ProtAddressSize: 4, Operation: 1,
			SourceHwAddress: clientMAC, SourceProtAddress: []byte{198, 18, 0, 1}, DstHwAddress: make([]byte, 6), DstProtAddress: []byte{198, 18, 250, 3}})
	res := e.run(other, arp)
	if len(res.slow) != 2 || len(res.tx) != 0 {
		t.Fatalf("slow %d tx %d, want 2 and 0", len(res.slow), len(res.tx))
	}
}

// A packet that no longer fits the MTU once encapsulated is answered with
// an ICMP "fragmentation needed" / "packet too big" to the client.
func TestTunnelTooBig(t *testing.T) {
	for _, v6 := range []bool{false, true} {
		svc := testService(lb.MethodTunnel, v6, lb.ProtoTCP, "rr", 1)
		e := newEnv(t, 64, svc)
		cl := clientAddr(v6, 1)
		hdr := 40
		if v6 {
			hdr = 60
		}
		big := build(t, pktSpec{src: cl, dst: svc.VIP, sport: 1, dport: vipPort, syn: true, payload: make([]byte, 1500-hdr)})
		res := e.run(big)
		if len(res.tx) != 1 {
			t.Fatalf("v6=%v: %d out, want the ICMP error", v6, len(res.tx))
		}
		out := res.tx[0]
		o, isrc, idst, _, _ := checkICMP(t, out, v6)
		if o.src != svc.VIP || o.dst != cl || isrc != cl || idst != svc.VIP {
			t.Errorf("v6=%v: error %s -> %s about %s -> %s", v6, o.src, o.dst, isrc, idst)
		}
		if !bytes.Equal(out[0:6], clientMAC) {
			t.Errorf("v6=%v: error sent to %x, not the client", v6, out[0:6])
		}
		wantMTU := 1480
		msg := out[14+20:]
		if v6 {
			wantMTU, msg = 1460, out[14+40:]
			if msg[0] != 2 {
				t.Errorf("ICMPv6 type %d, want 2", msg[0])
			}
		} else if msg[0] != 3 || msg[1] != 4 {
			t.Errorf("ICMP type/code %d/%d, want 3/4", msg[0], msg[1])
		}
		if got := int(msg[6])<<8 | int(msg[7]); got != wantMTU {
			t.Errorf("v6=%v: advertised MTU %d, want %d", v6, got, wantMTU)
		}
		if len(out) > 14+1280 {
			t.Errorf("error of %d bytes exceeds the quote limit", len(out))
		}
		if e.pipe.Stats().Drops(DropTooBig) != 1 {
			t.Errorf("too_big not counted")
		}
	}
}

// 802.1Q-tagged frames are balanced like untagged ones; the tag stays.
func TestVLANTagged(t *testing.T) {
	for _, m := range []lb.Method{lb.MethodNAT, lb.MethodTunnel} {
		svc := testService(m, false, lb.ProtoTCP, "rr", 1)
		e := newEnv(t, 64, svc)
		eth := &layers.Ethernet{SrcMAC: clientMAC, DstMAC: portMAC, EthernetType: layers.EthernetTypeDot1Q}
		tag := &layers.Dot1Q{VLANIdentifier: 42, Type: layers.EthernetTypeIPv4}
		ip := &layers.IPv4{Version: 4, TTL: 64, Protocol: layers.IPProtocolTCP, SrcIP: clientAddr(false, 1).AsSlice(), DstIP: svc.VIP.AsSlice()}
		tc := &layers.TCP{SrcPort: 999, DstPort: vipPort, SYN: true, Window: 1}
		_ = tc.SetNetworkLayerForChecksum(ip)
		res := e.run(frameOf(t, eth, tag, ip, tc, gopacket.Payload([]byte("tagged"))))
		if len(res.tx) != 1 {
			t.Fatalf("%s: tagged frame not forwarded", m)
		}
		p := gopacket.NewPacket(res.tx[0], layers.LayerTypeEthernet, gopacket.Default)
		q, ok := p.Layer(layers.LayerTypeDot1Q).(*layers.Dot1Q)
		if !ok || q.VLANIdentifier != 42 {
			t.Fatalf("%s: VLAN tag lost", m)
		}
		d := decodeIP(t, q.Payload, false)
		if d.dst != realFor(m, false, 0) {
			t.Errorf("%s: sent to %s, want %s", m, d.dst, realFor(m, false, 0))
		}
	}
}

// Passive health signals: a handshake that completes and one that never
// does (the session expires in SYN state) are counted per real.
func TestPassiveHealthCounters(t *testing.T) {
	svc := testService(lb.MethodDR, false, lb.ProtoTCP, "rr", 1)
	e := newEnv(t, 1024, svc)
	ok := pktSpec{src: clientAddr(false, 1), dst: svc.VIP, sport: 1000, dport: vipPort, syn: true}
	e.run(build(t, ok))
	ok.syn, ok.ack = false, true
	e.run(build(t, ok))
	e.run(build(t, pktSpec{src: clientAddr(false, 2), dst: svc.VIP, sport: 1001, dport: vipPort, syn: true}))
	id := e.bal.Load().Reals[0].ID
	st := e.pipe.Stats()
	if got := st.Real(id, RealEstablished); got != 1 {
		t.Fatalf("established = %d, want 1", got)
	}
	// Past the SYN timeout, expiry finds the unanswered handshake.
	e.now += int64(lb.DefaultTimeouts.SynSent+1) * 1e9
	for i := 0; i < e.pipe.Sessions().Cap()/64+2; i++ {
		e.pipe.Tick(e.now)
	}
	e.pipe.Publish()
	if got := st.Real(id, RealSynExpired); got != 1 {
		t.Fatalf("syn_expired = %d, want 1", got)
	}
}

// A client that reuses the port of a closed connection gets a new
// schedule, not the old (here draining) real.
func TestClosedSessionReuseReschedules(t *testing.T) {
	svc := testService(lb.MethodNAT, false, lb.ProtoTCP, "rr", 2)
	e := newEnv(t, 1024, svc)
	flow := pktSpec{src: clientAddr(false, 1), dst: svc.VIP, sport: 4242, dport: vipPort, syn: true}
	first := realIndex(e.run(build(t, flow)).tx[0][:6])
	flow.syn, flow.ack = false, true
	e.run(build(t, flow))
	flow.fin = true
	e.run(build(t, flow)) // the client closes
	svc.Reals[first].Weight = 0
	if err := e.bal.Apply(lb.Config{Services: []lb.Service{svc}, NextHops: hopsFor([]lb.Service{svc})}); err != nil {
		t.Fatal(err)
	}
	again := pktSpec{src: flow.src, dst: svc.VIP, sport: 4242, dport: vipPort, syn: true}
	res := e.run(build(t, again))
	if len(res.tx) != 1 || realIndex(res.tx[0][:6]) == first {
		t.Fatalf("a new connection on a closed session's tuple went to the drained real %d", first)
	}
	if e.pipe.Stats().Counter(CtrSessionReuse) != 1 {
		t.Fatal("reuse not counted")
	}
}
