//go:build dpdk

package dpdk

import (
	"bytes"
	"io"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"

	"gvs/driver"
	"gvs/lb"
	"gvs/pmd"
)

// Deterministic correctness through a real PMD: a pcap file is fed to
// net_pcap's receive side, gvs's pipeline rewrites, net_pcap's transmit side
// writes a pcap, and every output packet must equal, byte for byte, the
// packet built independently (gopacket, full checksums) from what the
// pipeline tests expect: nat SYNs to the real's address and port with the
// real's MAC, round robin over two reals.
func TestPcapNAT(t *testing.T) {
	dir := t.TempDir()
	in, out, ctl := filepath.Join(dir, "in.pcap"), filepath.Join(dir, "out.pcap"), filepath.Join(dir, "ctl.pcap")
	const flows = 50
	payload := []byte("pcap through gvs")
	var pkts [][]byte
	for i := 0; i < flows; i++ {
		pkts = append(pkts, pkt{srcMAC: routerMAC, dstMAC: lbMAC, src: clientIP(i), dst: vip, sport: uint16(40000 + i), dport: 80, syn: true, payload: payload}.bytes(t))
	}
	writePcap(t, in, pkts)

	bal := lb.NewBalancer(1, 64)
	nh := map[netip.Addr]lb.NextHop{realIP(0): {MAC: realMAC(0), OK: true}, realIP(1): {MAC: realMAC(1), OK: true}}
	if err := bal.Apply(lb.Config{Services: []lb.Service{service(lb.MethodNAT, 2)}, NextHops: nh}); err != nil {
		t.Fatal(err)
	}
	p, err := Open(Config{Name: "pcap", Device: "net_pcap_g0,rx_pcap=" + in + ",tx_pcap=" + out + ",tx_pcap=" + ctl, MAC: lbMAC})
	if err != nil {
		t.Fatal(err)
	}
	eng, err := pmd.New(pmd.Config{Workers: 1, Ports: []driver.Port{p}, Balancer: bal, Sessions: 1024})
	if err != nil {
		p.Close()
		t.Fatal(err)
	}
	eng.Start()
	deadline := time.Now().Add(5 * time.Second)
	for p.Stats().TxPackets < flows && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	eng.Stop()
	if err := p.Close(); err != nil { // flushes the pcap
		t.Fatal(err)
	}
	got := readPcap(t, out)
	if len(got) != flows {
		t.Fatalf("%d packets in the output pcap, want %d", len(got), flows)
	}
	first := realOfMAC(net.HardwareAddr(got[0][0:6]))
	if first < 0 {
		t.Fatalf("first packet to %x", got[0][0:6])
	}
	for i, b := range got {
		ri := (first + i) % 2
		rm := realMAC(ri)
		want := pkt{srcMAC: lbMAC, dstMAC: net.HardwareAddr(rm[:]), src: clientIP(i), dst: realIP(ri), sport: uint16(40000 + i), dport: 8080, syn: true, payload: payload}.bytes(t)
		if !bytes.Equal(b, want) {
			t.Errorf("packet %d:\n got %x\nwant %x", i, b, want)
		}
	}
}

func writePcap(t *testing.T, path string, pkts [][]byte) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	w := pcapgo.NewWriter(f)
	if err := w.WriteFileHeader(65535, layers.LinkTypeEthernet); err != nil {
		t.Fatal(err)
	}
	ts := time.Unix(1700000000, 0)
	for i, b := range pkts {
		ci := gopacket.CaptureInfo{Timestamp: ts.Add(time.Duration(i) * time.Microsecond), CaptureLength: len(b), Length: len(b)}
		if err := w.WritePacket(ci, b); err != nil {
			t.Fatal(err)
		}
	}
}

func readPcap(t *testing.T, path string) [][]byte {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r, err := pcapgo.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	var out [][]byte
	for {
		b, _, err := r.ReadPacketData()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, append([]byte(nil), b...))
	}
}
