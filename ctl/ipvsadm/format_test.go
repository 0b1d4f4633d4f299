package ipvsadm

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"gvs/ctl/api"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden from the current output")

// golden compares got with testdata/name, or rewrites it with -update.
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs (go test -update rewrites it)\n--- got\n%s--- want\n%s", name, got, want)
	}
}

// fixture is a running configuration in the daemon's order (not
// ipvsadm's): an IPv6 UDP service before the IPv4 ones, reals unsorted;
// every forwarding method; counters that need each of ipvsadm's K/M/G/T
// suffixes.
func fixture() []api.ServiceStats {
	return []api.ServiceStats{
		{
			ServiceID: api.ServiceID{Proto: "udp", VIP: "2001:db8::53", Port: 53}, Scheduler: "sh", Method: "dr",
			Flags: []string{"fallback", "hash-port", "one-packet"},
			Counters: api.Counters{Conns: 99_999_999, InPkts: 100_000_000, OutPkts: 0, InBytes: 999_999_999_999,
				OutBytes: 100_000_000_000_000, CPS: 12.4, InPPS: 12.5, OutPPS: 0, InBPS: 123_456_789, OutBPS: 0},
			Reals: []api.RealStats{
				{Addr: "2001:db8:1::12", Port: 53, Method: "dr", Weight: 1, State: "up", ActiveConns: 0, InactiveConns: 7,
					Counters: api.Counters{Conns: 5, InPkts: 5, InBytes: 400}},
				{Addr: "2001:db8:1::11", Port: 53, Method: "tunnel", Weight: 2, State: "up", ActiveConns: 0, InactiveConns: 3,
					Counters: api.Counters{Conns: 3, InPkts: 3, InBytes: 240}},
			},
		},
		{
			ServiceID: api.ServiceID{Proto: "tcp", VIP: "198.18.0.10", Port: 80}, Scheduler: "wrr", Method: "nat",
			Persistence: 300, PersistMask: 24,
			Counters: api.Counters{Conns: 600, InPkts: 4200, OutPkts: 3600, InBytes: 123_456_789, OutBytes: 12_345_678_901,
				CPS: 100, InPPS: 700.2, OutPPS: 600.7, InBPS: 4_000_000, OutBPS: 123_456_789_012},
			Reals: []api.RealStats{
				{Addr: "198.18.1.13", Port: 8080, Method: "nat", Weight: 1, State: "drain", ActiveConns: 0, InactiveConns: 100,
					Counters: api.Counters{Conns: 100, InPkts: 700, OutPkts: 600, InBytes: 20_576_131, OutBytes: 2_057_613_150, CPS: 16.6}},
				{Addr: "198.18.1.11", Port: 8080, Method: "nat", Weight: 3, State: "up", ActiveConns: 12, InactiveConns: 288,
					Counters: api.Counters{Conns: 300, InPkts: 2100, OutPkts: 1800, InBytes: 61_728_394, OutBytes: 6_172_839_450, CPS: 50}},
				{Addr: "198.18.1.12", Port: 8080, Method: "nat", Weight: 2, State: "up", ActiveConns: 8, InactiveConns: 192,
					Counters: api.Counters{Conns: 200, InPkts: 1400, OutPkts: 1200, InBytes: 41_152_264, OutBytes: 4_115_226_301, CPS: 33.3}},
			},
		},
		{
			ServiceID: api.ServiceID{Proto: "any", VIP: "198.18.0.20", Port: 0}, Scheduler: "mh", Method: "fullnat",
			Flags: []string{"hash-port"}, Persistence: 600, PersistMask: 32,
			Reals: []api.RealStats{
				{Addr: "198.18.1.21", Port: 0, Method: "fullnat", Weight: 100, State: "up", ActiveConns: 1_000_000, InactiveConns: 0},
			},
		},
		{
			ServiceID: api.ServiceID{Proto: "tcp", VIP: "198.18.0.10", Port: 443}, Scheduler: "wlc", Method: "l3dsr",
			Reals: []api.RealStats{
				{Addr: "198.18.1.31", Port: 443, Method: "l3dsr", Weight: 0, State: "removed", InactiveConns: 1},
				{Addr: "198.18.1.32", Port: 0, Weight: 1, State: "up"}, // method and port from the service
			},
		},
		{
			ServiceID: api.ServiceID{Proto: "tcp", VIP: "2001:db8::80", Port: 80}, Scheduler: "rr", Method: "dr",
			Persistence: 60, PersistMask: 64, Reals: []api.RealStats{},
		},
	}
}

func TestFormatList(t *testing.T) {
	for _, tc := range []struct {
		name string
		f    func(*bytes.Buffer) error
	}{
		{"list.golden", func(b *bytes.Buffer) error { return FormatList(b, fixture(), ListOptions{}) }},
		{"list_nosort.golden", func(b *bytes.Buffer) error { return FormatList(b, fixture(), ListOptions{NoSort: true}) }},
		{"list_single.golden", func(b *bytes.Buffer) error {
			return FormatList(b, fixture()[1:2], ListOptions{Single: true})
		}},
		{"stats.golden", func(b *bytes.Buffer) error { return FormatStats(b, fixture(), ListOptions{Stats: true}) }},
		{"stats_exact.golden", func(b *bytes.Buffer) error {
			return FormatStats(b, fixture(), ListOptions{Stats: true, Exact: true})
		}},
		{"rate.golden", func(b *bytes.Buffer) error { return FormatRate(b, fixture(), ListOptions{Rate: true}) }},
		{"report.golden", func(b *bytes.Buffer) error { return FormatReport(b, reportFixture()) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var b bytes.Buffer
			if err := tc.f(&b); err != nil {
				t.Fatal(err)
			}
			golden(t, tc.name, b.Bytes())
		})
	}
}

// TestFormatListColumns checks -Ln's layout against ipvsadm's own
// printf formats, independently of the golden file.
func TestFormatListColumns(t *testing.T) {
	var b bytes.Buffer
	if err := FormatList(&b, fixture(), ListOptions{}); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(b.String(), "\n")
	want(t, lines[0], "IP Virtual Server version 1.2.1 (size=4096)")
	want(t, lines[1], "Prot LocalAddress:Port Scheduler Flags")
	want(t, lines[2], "  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn")
	// Services sorted by family, protocol, address, port.
	want(t, lines[3], "ANY  198.18.0.20:0 mh (mh-port) persistent 600")
	want(t, lines[5], "TCP  198.18.0.10:80 wrr persistent 300 mask 255.255.255.0")
	// "  -> %-28s %-7s %-6d %-10u %-10u"
	want(t, lines[6], "  -> 198.18.1.11:8080             Masq    3      12         288       ")
	if !strings.Contains(b.String(), "UDP  [2001:db8::53]:53 sh (sh-fallback,sh-port) ops\n") {
		t.Errorf("IPv6 sh service line missing:\n%s", b.String())
	}
	if !strings.Contains(b.String(), "TCP  [2001:db8::80]:80 rr persistent 60 mask 64\n") {
		t.Errorf("IPv6 persistent service line missing:\n%s", b.String())
	}
}

func TestLargeNum(t *testing.T) {
	for _, tc := range []struct {
		n     uint64
		exact bool
		want  string
	}{
		{0, false, "        0"},
		{99_999_999, false, " 99999999"},
		{100_000_000, false, "  100000K"},
		{999_999_999, false, "  999999K"},
		{1_000_000_000, false, "    1000M"},
		{99_999_999_999, false, "   99999M"},
		{100_000_000_000, false, "     100G"},
		{99_999_999_999_999, false, "   99999G"},
		{100_000_000_000_000, false, "     100T"},
		{12, true, "       12"},
		{12_345_678, true, " 12345678"},
		{123_456_789, true, " 123456789"},
		{12_345_678_901_234, true, " 12345678901234"},
	} {
		if got := largeNum(tc.n, tc.exact); got != tc.want {
			t.Errorf("largeNum(%d, %v) = %q, want %q", tc.n, tc.exact, got, tc.want)
		}
	}
}

func sessionsFixture() []api.Session {
	return []api.Session{
		{Worker: 0, Proto: "tcp", Client: "198.18.100.7:51234", VIP: "198.18.0.10:80", Real: "198.18.1.11:8080", State: "established", Expires: 899},
		{Worker: 1, Proto: "tcp", Client: "198.18.100.8:40000", VIP: "198.18.0.10:80", Real: "198.18.1.12:8080", State: "time_wait", Expires: 59},
		{Worker: 1, Proto: "udp", Client: "[2001:db8:f::1]:5353", VIP: "[2001:db8::53]:53", Real: "[2001:db8:1::11]:53", State: "udp", Expires: 300},
		{Worker: 0, Proto: "tcp", Client: "198.18.100.9:33333", VIP: "198.18.0.20:22", Real: "198.18.1.21:22", Local: "198.18.9.1:40001", State: "syn_recv", Expires: 0},
	}
}

func TestFormatConns(t *testing.T) {
	var b bytes.Buffer
	if err := FormatConns(&b, sessionsFixture(), ListOptions{}); err != nil {
		t.Fatal(err)
	}
	golden(t, "conns.golden", b.Bytes())
	lines := strings.Split(b.String(), "\n")
	want(t, lines[0], "IPVS connection entries")
	want(t, lines[1], "pro expire state       source             virtual            destination")
	want(t, lines[2], "TCP 14:59  ESTABLISHED 198.18.100.7:51234 198.18.0.10:80     198.18.1.11:8080")

	b.Reset()
	if err := FormatSessions(&b, sessionsFixture()); err != nil {
		t.Fatal(err)
	}
	golden(t, "sessions.golden", b.Bytes())
}

func reportFixture() api.Stats {
	return api.Stats{
		IntervalSec: 2,
		Services:    fixture()[1:3],
		Workers: []api.WorkerStats{
			{Worker: 0, Counters: map[string]uint64{"rx_packets": 5000, "tx_packets": 4900, "slow_path": 12, "sessions_new": 400},
				Drops: map[string]uint64{"no_service": 70, "bad_checksum": 3, "ttl": 70}, Sessions: 380, IdleRatio: 0.25, HandoverDepth: 2},
			{Worker: 1, Counters: map[string]uint64{"rx_packets": 10}, Drops: map[string]uint64{}, IdleRatio: 0.999},
		},
		Ports: []api.PortStats{
			{Name: "eth0", Driver: "afxdp", RxPackets: 5010, RxBytes: 700_000, TxPackets: 4900, TxBytes: 6_000_000, RxDropped: 1},
		},
	}
}

func TestFormatTables(t *testing.T) {
	var b bytes.Buffer
	hs := []api.HealthStatus{
		{Service: api.ServiceID{Proto: "tcp", VIP: "198.18.0.10", Port: 80}, Real: "198.18.1.11:8080", Up: true,
			Since: "2025-01-02T03:04:05Z", LastResult: "ok", LatencyMS: 1.25},
		{Service: api.ServiceID{Proto: "tcp", VIP: "198.18.0.10", Port: 80}, Real: "198.18.1.13:8080", Up: false,
			Since: "2025-01-02T03:05:00Z", LastResult: "fail", Reason: "connection refused", LatencyMS: 0.3},
	}
	if err := FormatHealth(&b, hs); err != nil {
		t.Fatal(err)
	}
	golden(t, "health.golden", b.Bytes())
	b.Reset()
	vs := []api.VRRPStatus{{Name: "vi_1", State: "master", Priority: 150}, {Name: "vi_2", State: "backup", Priority: 100, Master: "198.18.0.3"}}
	if err := FormatVRRP(&b, vs); err != nil {
		t.Fatal(err)
	}
	golden(t, "vrrp.golden", b.Bytes())
	b.Reset()
	if err := FormatVersion(&b, api.VersionInfo{Version: "0.1.0", Protocol: 1, Go: "go1.26.0"}, "go1.26.0"); err != nil {
		t.Fatal(err)
	}
	want(t, b.String(), "gvsd 0.1.0 (protocol 1, go1.26.0)\ngvsctl (protocol 1, go1.26.0)\n")
}

func TestForwardName(t *testing.T) {
	for m, n := range map[string]string{"nat": "Masq", "dr": "Route", "tunnel": "Tunnel", "fullnat": "FullNAT", "l3dsr": "L3DSR", "odd": "odd"} {
		want(t, ForwardName(m), n)
	}
}

// A failing writer's error comes back.
type failWriter struct{}

func (failWriter) Write([]byte) (int, error) { return 0, os.ErrClosed }

func TestFormatWriteError(t *testing.T) {
	for name, err := range map[string]error{
		"list":     FormatList(failWriter{}, fixture(), ListOptions{}),
		"stats":    FormatStats(failWriter{}, fixture(), ListOptions{}),
		"conns":    FormatConns(failWriter{}, sessionsFixture(), ListOptions{}),
		"report":   FormatReport(failWriter{}, reportFixture()),
		"sessions": FormatSessions(failWriter{}, sessionsFixture()),
	} {
		if err == nil {
			t.Errorf("%s: no error from a failing writer", name)
		}
	}
}
