package afpacket

import (
	"bytes"
	"encoding/binary"
	"math/rand/v2"
	"net"
	"testing"
)

func randSpec(r *rand.Rand) pktSpec {
	s := pktSpec{dst: gvsMAC, src: peerMAC, sport: uint16(r.IntN(65536)), dport: uint16(r.IntN(65536)), ipID: uint16(r.IntN(65536))}
	for i := r.IntN(3); i > 0; i-- {
		tpid := uint16(0x8100)
		if i == 2 {
			tpid = 0x88a8
		}
		s.tags = append(s.tags, vlanTag{tpid, uint16(r.IntN(4096))})
	}
	s.proto = 17
	if r.IntN(2) == 0 {
		s.proto = 6
	}
	if r.IntN(2) == 0 {
		s.v6 = true
		s.srcIP = net.ParseIP("2001:db8::1")
		s.dstIP = net.ParseIP("2001:db8::2")
		s.srcIP[15] = byte(r.IntN(256))
		s.hbh = r.IntN(2) == 0
	} else {
		s.srcIP = net.IPv4(198, 18, byte(r.IntN(2)), byte(r.IntN(256))).To4()
		s.dstIP = net.IPv4(198, 19, 0, byte(r.IntN(256))).To4()
	}
	s.payload = make([]byte, r.IntN(1400))
	for i := range s.payload {
		s.payload[i] = byte(r.IntN(256))
	}
	return s
}

func TestCompleteChecksum(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < 2000; i++ {
		s := randSpec(r)
		b := s.build()
		if v, ok := l4Valid(b.frame); !v || !ok {
			t.Fatalf("case %d: test builder made an invalid frame", i)
		}
		got := bytes.Clone(b.frame)
		// What a CHECKSUM_PARTIAL sender leaves: anything (the pseudo-header
		// sum, usually); the driver must not depend on it.
		binary.BigEndian.PutUint16(got[b.l4+b.csumOff:], uint16(r.IntN(65536)))
		pad := 0
		if len(got) < 60 || r.IntN(4) == 0 {
			pad = 60 - len(got)
			if pad < 0 {
				pad = 7
			}
			got = append(got, make([]byte, pad)...) // Ethernet padding
			for j := len(got) - pad; j < len(got); j++ {
				got[j] = 0xee
			}
		}
		if !completeChecksum(got) {
			t.Fatalf("case %d (v6 %v proto %d tags %d hbh %v len %d): not fixed", i, s.v6, s.proto, len(s.tags), s.hbh, len(b.frame))
		}
		if !bytes.Equal(got[:len(b.frame)], b.frame) {
			t.Fatalf("case %d (v6 %v proto %d tags %d hbh %v): checksum %#04x, want %#04x", i, s.v6, s.proto, len(s.tags), s.hbh,
				binary.BigEndian.Uint16(got[b.l4+b.csumOff:]), binary.BigEndian.Uint16(b.frame[b.l4+b.csumOff:]))
		}
	}
}

func TestCompleteChecksumUDPZero(t *testing.T) {
	// A UDP checksum that computes to zero must be sent as 0xffff.
	s := pktSpec{dst: gvsMAC, src: peerMAC, srcIP: peerIP, dstIP: farIP, proto: 17, sport: 1, dport: 2, payload: make([]byte, 2)}
	for v := 0; v < 65536; v++ {
		binary.BigEndian.PutUint16(s.payload, uint16(v))
		b := s.build()
		if binary.BigEndian.Uint16(b.frame[b.l4+6:]) != 0xffff {
			continue
		}
		got := bytes.Clone(b.frame)
		got[b.l4+6], got[b.l4+7] = 0x12, 0x34
		if !completeChecksum(got) || !bytes.Equal(got, b.frame) {
			t.Fatalf("payload %#04x: checksum %#04x, want 0xffff", v, binary.BigEndian.Uint16(got[b.l4+6:]))
		}
		return
	}
	t.Fatal("no payload gives a zero UDP checksum")
}

func TestCompleteChecksumRefuses(t *testing.T) {
	base := pktSpec{dst: gvsMAC, src: peerMAC, srcIP: peerIP, dstIP: farIP, proto: 17, sport: 1, dport: 2, payload: []byte("hello")}
	frag := base
	frag.frag = 0x2000 // MF
	icmp := base.build().frame
	icmp[14+9] = 1
	arp := bytes.Clone(icmp)
	binary.BigEndian.PutUint16(arp[12:], 0x0806)
	v6frag := base
	v6frag.v6, v6frag.srcIP, v6frag.dstIP = true, net.ParseIP("2001:db8::1"), net.ParseIP("2001:db8::2")
	v6f := v6frag.build().frame
	v6f[14+6] = 44 // next header: fragment
	for name, f := range map[string][]byte{
		"ipv4 fragment": frag.build().frame,
		"icmp":          icmp,
		"arp":           arp,
		"ipv6 fragment": v6f,
		"truncated":     base.build().frame[:40],
		"runt":          base.build().frame[:13],
	} {
		orig := bytes.Clone(f)
		if completeChecksum(f) {
			t.Errorf("%s: completeChecksum reported success", name)
		}
		if !bytes.Equal(f, orig) {
			t.Errorf("%s: frame changed", name)
		}
	}
}

func BenchmarkCompleteChecksum(b *testing.B) {
	s := pktSpec{dst: gvsMAC, src: peerMAC, srcIP: peerIP, dstIP: farIP, proto: 6, sport: 1, dport: 2, payload: make([]byte, 1400)}
	f := s.build().frame
	b.SetBytes(int64(len(f)))
	for b.Loop() {
		completeChecksum(f)
	}
}
