package daemon

import (
	"net"
	"net/netip"
	"strings"
	"testing"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"

	"gvs/ctl/config"
)

// tcpPkt builds a client packet of flow i (SYN or ACK).
func tcpPkt(t *testing.T, i int, synFlag bool) []byte {
	t.Helper()
	eth := &layers.Ethernet{SrcMAC: net.HardwareAddr{2, 0, 0, 0, 0, 0xcc}, DstMAC: lbMAC, EthernetType: layers.EthernetTypeIPv4}
	ip := &layers.IPv4{Version: 4, TTL: 64, Protocol: layers.IPProtocolTCP, SrcIP: net.IP{198, 19, byte(i >> 8), byte(i)}, DstIP: net.IP{198, 18, 250, 1}}
	tc := &layers.TCP{SrcPort: layers.TCPPort(30000 + i), DstPort: 80, SYN: synFlag, ACK: !synFlag, Window: 10}
	_ = tc.SetNetworkLayerForChecksum(ip)
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, eth, ip, tc); err != nil {
		t.Fatal(err)
	}
	return append([]byte(nil), buf.Bytes()...)
}

// flowOf returns the client port and the real of a forwarded frame.
func flowOf(b []byte) (int, netip.Addr) {
	dst, _ := netip.AddrFromSlice(b[30:34])
	return int(b[34])<<8 | int(b[35]), dst
}

// Reload under traffic: with established flows on the mem driver, a
// config that adds one real and removes another moves no established flow
// except, under the drop policy, those of the removed real.
func TestReloadUnderTrafficKeepsFlows(t *testing.T) {
	for _, policy := range []string{"drain", "drop"} {
		t.Run(policy, func(t *testing.T) {
			three := strings.Replace(baseConfig, "scheduler = \"rr\"", "scheduler = \"rr\"\non_remove = \""+policy+"\"", 1) +
				"\n  [[service.real]]\n  addr = \"198.18.1.12\"\n  port = 8080\n"
			d, port := startDaemon(t, three)
			const flows = 300
			send := func(synFlag bool, want int) map[int]netip.Addr {
				for q := 0; q < 2; q++ {
					var pkts [][]byte
					for i := q; i < flows; i += 2 {
						pkts = append(pkts, tcpPkt(t, i, synFlag))
					}
					if n := port.MemQueue(q).Inject(pkts...); n != len(pkts) {
						t.Fatalf("inject: %d of %d", n, len(pkts))
					}
				}
				got := map[int]netip.Addr{}
				for _, b := range collect(t, port, want) {
					p, r := flowOf(b)
					got[p-30000] = r
				}
				return got
			}
			before := send(true, flows)
			after := send(false, flows) // established
			for i, r := range before {
				if after[i] != r {
					t.Fatalf("flow %d moved before any reload", i)
				}
			}
			// Remove 198.18.1.11, add 198.18.1.13.
			next := strings.Replace(three, "  [[service.real]]\n  addr = \"198.18.1.11\"\n  port = 8080\n", "", 1) +
				"\n  [[service.real]]\n  addr = \"198.18.1.13\"\n  port = 8080\n"
			cfg, err := config.Parse("next.toml", []byte(next))
			if err != nil {
				t.Fatal(err)
			}
			if err := d.Reload(cfg); err != nil {
				t.Fatal(err)
			}
			removed := netip.MustParseAddr("198.18.1.11")
			onRemoved := 0
			for _, r := range before {
				if r == removed {
					onRemoved++
				}
			}
			if onRemoved == 0 {
				t.Fatal("no flow was on the removed real; the test proves nothing")
			}
			// Under drop, a nat flow whose real is gone is forgotten and its
			// next (non-SYN) packet dropped, as IPVS's expire_nodest_conn.
			want := flows
			if policy == "drop" {
				want -= onRemoved
			}
			moved := 0
			for i, r := range send(false, want) {
				if before[i] == removed {
					onRemoved++
					if policy == "drain" && r != removed {
						t.Fatalf("drain: flow %d left the removed real for %s", i, r)
					}
					if policy == "drop" && r == removed {
						t.Fatalf("drop: flow %d still sent to the removed real", i)
					}
					continue
				}
				if r != before[i] {
					moved++
				}
			}
			if moved != 0 {
				t.Fatalf("%d established flows on kept reals changed real after the reload", moved)
			}
			// New flows avoid the removed real and reach the new one.
			seen := map[netip.Addr]int{}
			for q := 0; q < 2; q++ {
				var pkts [][]byte
				for i := flows + q; i < flows+60; i += 2 {
					pkts = append(pkts, tcpPkt(t, i, true))
				}
				port.MemQueue(q).Inject(pkts...)
			}
			for _, b := range collect(t, port, 60) {
				_, r := flowOf(b)
				seen[r]++
			}
			if seen[removed] != 0 || seen[netip.MustParseAddr("198.18.1.13")] == 0 {
				t.Fatalf("new flows after reload: %v", seen)
			}
		})
	}
}
