package vethbench

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"testing"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
)

func TestBuildFrames(t *testing.T) {
	for _, size := range []int{64, 65, 128, 1518} {
		frames, err := BuildFrames(FrameSpec{SrcMAC: GenMAC, DstMAC: DUTMAC, Src: GenAddr, Dst: VIP, DstPort: VIPPort, Flows: 300, Size: size})
		if err != nil {
			t.Fatal(err)
		}
		if len(frames) != 300 {
			t.Fatalf("size %d: %d frames, want 300", size, len(frames))
		}
		seen := map[uint16]bool{}
		for i, f := range frames {
			if len(f) != size-4 {
				t.Fatalf("size %d: frame %d is %d bytes, want %d (no FCS)", size, i, len(f), size-4)
			}
			p := gopacket.NewPacket(f, layers.LayerTypeEthernet, gopacket.Default)
			if el := p.ErrorLayer(); el != nil {
				t.Fatalf("frame %d: %v", i, el.Error())
			}
			eth := p.Layer(layers.LayerTypeEthernet).(*layers.Ethernet)
			ip := p.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
			udp := p.Layer(layers.LayerTypeUDP).(*layers.UDP)
			if !bytes.Equal(eth.SrcMAC, GenMAC) || !bytes.Equal(eth.DstMAC, DUTMAC) {
				t.Fatalf("frame %d: MACs %v -> %v", i, eth.SrcMAC, eth.DstMAC)
			}
			if a, _ := netip.AddrFromSlice(ip.SrcIP); a != GenAddr {
				t.Fatalf("frame %d: source %v", i, ip.SrcIP)
			}
			if a, _ := netip.AddrFromSlice(ip.DstIP); a != VIP || udp.DstPort != VIPPort {
				t.Fatalf("frame %d: destination %v:%d", i, ip.DstIP, udp.DstPort)
			}
			if int(ip.Length) != size-4-14 || int(udp.Length) != size-4-34 {
				t.Fatalf("frame %d: IP length %d UDP length %d", i, ip.Length, udp.Length)
			}
			if Checksum(f[14:34], 0) != 0 {
				t.Fatalf("frame %d: bad IPv4 header checksum", i)
			}
			pseudo := sum16(f[26:34], 0) + 17 + uint32(udp.Length)
			if Checksum(f[34:], pseudo) != 0 {
				t.Fatalf("frame %d: bad UDP checksum", i)
			}
			if seen[uint16(udp.SrcPort)] {
				t.Fatalf("frame %d: source port %d repeats", i, udp.SrcPort)
			}
			seen[uint16(udp.SrcPort)] = true
		}
	}
}

// Past the last source port, flows continue on the next source address.
func TestBuildFramesManyFlows(t *testing.T) {
	frames, err := BuildFrames(FrameSpec{SrcMAC: GenMAC, DstMAC: DUTMAC, Src: GenAddr, Dst: VIP, DstPort: VIPPort, Flows: 70000, Size: 64})
	if err != nil {
		t.Fatal(err)
	}
	last := frames[len(frames)-1]
	if got := netip.AddrFrom4([4]byte(last[26:30])); got != netip.MustParseAddr("198.18.0.2") {
		t.Fatalf("source of the last flow %v, want 198.18.0.2", got)
	}
	if sp := binary.BigEndian.Uint16(last[34:]); sp != uint16(1024+(70000-1)-64512) {
		t.Fatalf("source port of the last flow %d", sp)
	}
	if Checksum(last[14:34], 0) != 0 {
		t.Fatal("bad IPv4 header checksum")
	}
}

func TestBuildFramesInvalid(t *testing.T) {
	good := FrameSpec{SrcMAC: GenMAC, DstMAC: DUTMAC, Src: GenAddr, Dst: VIP, DstPort: VIPPort, Flows: 1, Size: 64}
	for name, mod := range map[string]func(*FrameSpec){
		"small":   func(s *FrameSpec) { s.Size = 63 },
		"big":     func(s *FrameSpec) { s.Size = 1519 },
		"noflows": func(s *FrameSpec) { s.Flows = 0 },
		"ipv6":    func(s *FrameSpec) { s.Dst = netip.MustParseAddr("2001:db8::1") },
		"mac":     func(s *FrameSpec) { s.SrcMAC = nil },
	} {
		s := good
		mod(&s)
		if _, err := BuildFrames(s); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

// The MAC swap of the Go reflector and the XDP program agree on layout.
func TestSwapMACs(t *testing.T) {
	f := append(append(append([]byte(nil), DUTMAC...), GenMAC...), 0x08, 0x00)
	swapMACs(f)
	if !bytes.Equal(f[:6], GenMAC) || !bytes.Equal(f[6:12], DUTMAC) {
		t.Fatalf("swapped: %x", f)
	}
	if len(swapTXInstructions()) == 0 || len(countDropInstructions(3)) == 0 {
		t.Fatal("no XDP instructions")
	}
}
