package daemon

import (
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"

	"gvs/ctl/config"
	"gvs/ctl/nexthop"
	"gvs/driver"
	"gvs/driver/mem"
	"gvs/lb"
)

// staticHops resolves every address to a MAC derived from it.
type staticHops struct{}

func (staticHops) Resolve(addrs []netip.Addr) (map[netip.Addr]lb.NextHop, []nexthop.Problem) {
	m := map[netip.Addr]lb.NextHop{}
	for _, a := range addrs {
		b := a.As16()
		m[a] = lb.NextHop{MAC: [6]byte{2, 0, 0, 0, b[14], b[15]}, OK: true}
	}
	return m, nil
}

const baseConfig = `
[global]
workers = 2
sessions = 4096

[[port]]
name = "mem0"

[[service]]
proto = "tcp"
vip = "198.18.250.1"
port = 80
scheduler = "rr"
method = "nat"

  [[service.real]]
  addr = "198.18.1.10"
  port = 8080

  [[service.real]]
  addr = "198.18.1.11"
  port = 8080
`

var lbMAC = net.HardwareAddr{2, 0, 0, 0, 0, 0xaa}

func syn(t *testing.T, i int) []byte {
	eth := &layers.Ethernet{SrcMAC: net.HardwareAddr{2, 0, 0, 0, 0, 0xcc}, DstMAC: lbMAC, EthernetType: layers.EthernetTypeIPv4}
	ip := &layers.IPv4{Version: 4, TTL: 64, Protocol: layers.IPProtocolTCP, SrcIP: net.IP{198, 19, 0, byte(i)}, DstIP: net.IP{198, 18, 250, 1}}
	tc := &layers.TCP{SrcPort: layers.TCPPort(20000 + i), DstPort: 80, SYN: true, Window: 10}
	_ = tc.SetNetworkLayerForChecksum(ip)
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, eth, ip, tc); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func startDaemon(t *testing.T, doc string) (*Daemon, *mem.Port) {
	t.Helper()
	cfg, err := config.Parse("test.toml", []byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	var port *mem.Port
	open := func(p config.Port, queues int, _ *slog.Logger) (driver.Port, error) {
		mp, err := mem.New(mem.Config{Name: p.Name, MAC: lbMAC, Queues: queues, RingSize: 1024})
		port = mp
		return mp, err
	}
	d, err := New(Options{Config: cfg, Open: open, Hops: staticHops{}})
	if err != nil {
		t.Fatal(err)
	}
	d.Start()
	t.Cleanup(func() { d.Close() })
	return d, port
}

// collect drains both queues' transmit rings until n frames arrived.
func collect(t *testing.T, p *mem.Port, n int) [][]byte {
	t.Helper()
	var got [][]byte
	deadline := time.Now().Add(5 * time.Second)
	for len(got) < n && time.Now().Before(deadline) {
		for q := 0; q < p.NumQueues(); q++ {
			p.MemQueue(q).Drain(0, func(b []byte) { got = append(got, append([]byte(nil), b...)) })
		}
		time.Sleep(time.Millisecond)
	}
	if len(got) != n {
		t.Fatalf("%d frames forwarded, want %d", len(got), n)
	}
	return got
}

func dstOf(b []byte) netip.Addr { a, _ := netip.AddrFromSlice(b[30:34]); return a }

func TestDaemonForwardsAndReloads(t *testing.T) {
	d, port := startDaemon(t, baseConfig)
	for i := 0; i < 10; i++ {
		port.MemQueue(0).Inject(syn(t, i))
	}
	seen := map[netip.Addr]int{}
	for _, b := range collect(t, port, 10) {
		seen[dstOf(b)]++
	}
	if seen[netip.MustParseAddr("198.18.1.10")] == 0 || seen[netip.MustParseAddr("198.18.1.11")] == 0 {
		t.Fatalf("distribution %v", seen)
	}
	// Reload: a third real; workers keep running.
	doc := baseConfig + "\n  [[service.real]]\n  addr = \"198.18.1.12\"\n  port = 8080\n  weight = 5\n"
	cfg, err := config.Parse("test2.toml", []byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Reload(cfg); err != nil {
		t.Fatal(err)
	}
	for i := 10; i < 40; i++ {
		port.MemQueue(0).Inject(syn(t, i))
	}
	seen = map[netip.Addr]int{}
	for _, b := range collect(t, port, 30) {
		seen[dstOf(b)]++
	}
	if seen[netip.MustParseAddr("198.18.1.12")] == 0 {
		t.Fatalf("new real got nothing after reload: %v", seen)
	}
	// A reload that changes [global] is refused and changes nothing.
	bad, err := config.Parse("test3.toml", []byte(strings.Replace(baseConfig, "workers = 2", "workers = 1", 1)))
	if err != nil {
		t.Fatal(err)
	}
	gen := d.Balancer().Load().Gen
	if err := d.Reload(bad); err == nil || !strings.Contains(err.Error(), "restart") {
		t.Fatalf("global change accepted: %v", err)
	}
	if d.Balancer().Load().Gen != gen {
		t.Fatal("refused reload changed the snapshot")
	}
	d.Engine().Stop()
	st := d.Stats(nil)
	var conns, news uint64
	for _, s := range st.Services {
		conns += s.Conns
	}
	for _, w := range st.Workers {
		news += w.Counters["sessions_new"]
	}
	if len(st.Services) != 1 || len(st.Services[0].Reals) != 3 || conns != 40 || news != 40 {
		t.Fatalf("stats: %d services, %d conns, %d sessions_new, want 1, 40, 40", len(st.Services), conns, news)
	}
}

func TestSteerRules(t *testing.T) {
	cfg, err := config.Parse("t.toml", []byte(baseConfig+`
[[service]]
vip = "198.18.250.2"
port = 443
method = "fullnat"
local_addrs = ["198.18.200.1"]
  [[service.real]]
  addr = "198.18.1.20"
`))
	if err != nil {
		t.Fatal(err)
	}
	rules := SteerRules(cfg.LB.Services)
	want := map[string]bool{
		"service proto 6 198.18.250.1:80":     true,
		"reply-from proto 6 198.18.1.10:8080": true,
		"reply-from proto 6 198.18.1.11:8080": true,
		"service proto 0 198.18.250.2:443":    true,
		"reply-to proto 0 198.18.200.1:0":     true,
	}
	if len(rules) != len(want) {
		t.Fatalf("rules %v", rules)
	}
	for _, r := range rules {
		if !want[r.String()] {
			t.Errorf("unexpected rule %s", r)
		}
	}
}
