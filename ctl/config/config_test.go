package config

import (
	"net/netip"
	"reflect"
	"strings"
	"testing"
	"time"

	"gvs/lb"
)

func TestExampleLoads(t *testing.T) {
	cfg, err := Load("testdata/example.toml")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Global.Workers != 2 || len(cfg.Ports) != 1 || cfg.Ports[0].Driver != "afxdp" {
		t.Fatalf("global/ports: %+v %+v", cfg.Global, cfg.Ports)
	}
	if len(cfg.LB.Services) != 2 {
		t.Fatalf("%d services", len(cfg.LB.Services))
	}
	s := cfg.LB.Services[0]
	if s.Method != lb.MethodNAT || s.Scheduler != "wrr" || len(s.Reals) != 2 || s.Reals[0].Weight != 3 || s.Reals[0].Port != 8080 {
		t.Fatalf("service 0: %+v", s)
	}
	d := cfg.LB.Services[1]
	if d.Flags&lb.FlagHashPort == 0 || d.Reals[1].State != lb.RealDrain || d.Reals[0].Weight != 1 {
		t.Fatalf("service 1: %+v", d)
	}
	if cfg.Timeouts.Established != 900 || cfg.Timeouts.SynSent != lb.DefaultTimeouts.SynSent {
		t.Fatalf("timeouts %+v", cfg.Timeouts)
	}
}

// Every class of error names the file, the line and the key.
func TestErrorsNameFileLineKey(t *testing.T) {
	base := "[[port]]\nname = \"eth0\"\n\n[[service]]\nproto = \"tcp\"\nvip = \"198.18.0.10\"\nport = 80\n\n  [[service.real]]\n  addr = \"198.18.1.11\"\n"
	cases := []struct {
		name, doc, want string
	}{
		{"unknown key", base + "  wieght = 3\n", "x.toml:11: service.real.wieght: unknown key"},
		{"bad address", strings.Replace(base, "198.18.1.11", "198.18.1.300", 1), "x.toml:10: service[0].real[0].addr: bad address"},
		{"bad vip", strings.Replace(base, "198.18.0.10", "nope", 1), "x.toml:6: service[0].vip: bad address"},
		{"bad scheduler", base + "\n[[service]]\nvip = \"198.18.0.11\"\nscheduler = \"fastest\"\n", "x.toml:14: service[1].scheduler: unknown scheduler"},
		{"duplicate service", base + "\n[[service]]\nproto = \"tcp\"\nvip = \"198.18.0.10\"\nport = 80\n", "x.toml:12: service[1]: service tcp 198.18.0.10:80 already defined at x.toml:4"},
		{"weight range", base + "  weight = -2\n", "x.toml:11: service[0].real[0].weight: -2 out of range"},
		{"second real weight", base + "\n  [[service.real]]\n  addr = \"198.18.1.12\"\n  weight = 2000000\n", "x.toml:14: service[0].real[1].weight: 2000000 out of range"},
		{"bad duration", base + "\n[global.timeouts]\ntcp = \"forever\"\n", "x.toml:13: global.timeouts.tcp: "},
		{"short timeout", base + "\n[global.timeouts]\nudp = \"10ms\"\n", "x.toml:13: global.timeouts.udp: 10ms is below"},
		{"type mismatch", strings.Replace(base, "port = 80", "port = \"80\"", 1), "x.toml:7"},
		{"family mismatch", strings.Replace(base, "198.18.1.11", "2001:db8::1", 1), "x.toml:4: service[0]: service tcp 198.18.0.10:80: real [2001:db8::1]:0: address family differs"},
		{"no port", "[[service]]\nvip = \"198.18.0.1\"\n", "x.toml: port: at least one [[port]] is needed"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Parse("x.toml", []byte(c.doc))
			if err == nil {
				t.Fatalf("accepted:\n%s", c.doc)
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %q\ndoes not contain %q", err, c.want)
			}
		})
	}
}

// A file marshalled back to TOML loads to the same configuration.
func TestRoundTrip(t *testing.T) {
	cfg, err := Load("testdata/example.toml")
	if err != nil {
		t.Fatal(err)
	}
	out, err := Marshal(cfg.File)
	if err != nil {
		t.Fatal(err)
	}
	again, err := Parse("round.toml", out)
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if !reflect.DeepEqual(cfg.LB, again.LB) || !reflect.DeepEqual(cfg.Global, again.Global) {
		t.Fatalf("round trip changed the configuration:\n%s", out)
	}
	b, err := Build("socket", again.File)
	if err != nil || !reflect.DeepEqual(b.LB, cfg.LB) {
		t.Fatalf("Build: %v", err)
	}
}

func TestHealthChecks(t *testing.T) {
	doc := `[[port]]
name = "eth0"

[[service]]
vip = "198.18.0.10"
port = 80
  [[service.check]]
  kind = "tcp"
  interval = "1s"
  [[service.check]]
  kind = "http"
  path = "/health"
  status = "200-299"
  [service.passive]
  min_syns = 10
  [[service.real]]
  addr = "198.18.1.11"
  [[service.real]]
  addr = "198.18.1.12"
    [[service.real.check]]
    kind = "icmp"
`
	cfg, err := Parse("h.toml", []byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Health) != 2 || len(cfg.Health[0].Chain) != 2 || len(cfg.Health[1].Chain) != 1 || cfg.Health[1].Chain[0].Kind != "icmp" {
		t.Fatalf("targets %+v", cfg.Health)
	}
	if cfg.Health[0].Passive == nil || cfg.Health[0].Passive.MinSYNs != 10 {
		t.Fatalf("passive rule lost")
	}
	bad := strings.Replace(doc, `kind = "icmp"`, `kind = "smoke-signal"`, 1)
	if _, err := Parse("h.toml", []byte(bad)); err == nil || !strings.Contains(err.Error(), "h.toml:20: service[0].real[1].check[0]: ") {
		t.Fatalf("bad check kind: %v", err)
	}
	bad = strings.Replace(doc, `status = "200-299"`, `status = "ok"`, 1)
	if _, err := Parse("h.toml", []byte(bad)); err == nil || !strings.Contains(err.Error(), "h.toml:13: service[0].check[1].status: ") {
		t.Fatalf("bad status: %v", err)
	}
}

func TestVRRP(t *testing.T) {
	cfg, err := Load("testdata/ha.toml")
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.VRRP) != 4 {
		t.Fatalf("%d instances", len(cfg.VRRP))
	}
	f := cfg.VRRP[0]
	if f.Name != "front" || f.VRID != 51 || f.Priority != 150 || f.AdvertInt != 100*time.Millisecond || f.Version != 3 ||
		!f.Preempt || !f.Accept || f.GARPCount != 3 || f.GARPDelay != time.Second || f.GARPRefresh != time.Minute ||
		!f.TrackDataplane || f.SyncGroup != "lb" || len(f.VIPs) != 1 || f.VIPs[0] != netip.MustParsePrefix("198.18.1.10/32") {
		t.Fatalf("front: %+v", f)
	}
	if len(f.TrackServices) != 1 || f.TrackServices[0].String() != "tcp 198.18.1.10:80" {
		t.Fatalf("track all: %v", f.TrackServices)
	}
	b := cfg.VRRP[1]
	if b.VIPs[0] != netip.MustParsePrefix("198.18.2.1/24") || b.Accept || !b.Preempt || b.AdvertInt != 100*time.Millisecond {
		t.Fatalf("back: %+v", b)
	}
	d := cfg.VRRP[2]
	if !d.Is6() || d.Priority != 100 || d.AdvertInt != time.Second || d.GARPCount != 3 {
		t.Fatalf("defaults: %+v", d)
	}
	l := cfg.VRRP[3]
	if l.Version != 2 || l.AuthPass != "secret" || !l.VirtualMAC || l.TrackWeight != -60 || len(l.UnicastPeers) != 1 ||
		l.UnicastSrc != netip.MustParseAddr("198.18.1.2") || l.TrackInterfaces[0] != "eth1" {
		t.Fatalf("legacy: %+v", l)
	}
	// Round trip through TOML keeps it.
	out, err := Marshal(cfg.File)
	if err != nil {
		t.Fatal(err)
	}
	again, err := Parse("round.toml", out)
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if !reflect.DeepEqual(again.VRRP, cfg.VRRP) {
		t.Fatalf("round trip changed the instances:\n%s", out)
	}
}

// Every VRRP error names the file, the line and the key.
func TestVRRPErrors(t *testing.T) {
	base := "[[port]]\nname = \"eth0\"\n\n[[service]]\nvip = \"198.18.1.10\"\nport = 80\n\n[[vrrp]]\nname = \"vi\"\ninterface = \"eth0\"\nvrid = 51\nvips = [\"198.18.1.10\"]\n"
	if _, err := Parse("x.toml", []byte(base)); err != nil {
		t.Fatal(err)
	}
	cases := []struct{ name, doc, want string }{
		{"vrid", strings.Replace(base, "vrid = 51", "vrid = 256", 1), "x.toml:11: vrrp[0].vrid: 256 out of range 1..255"},
		{"no vrid", strings.Replace(base, "vrid = 51\n", "", 1), "x.toml:8: vrrp[0].vrid: 0 out of range"},
		{"priority", base + "priority = 300\n", "x.toml:13: vrrp[0].priority: 300 out of range"},
		{"interval v3", base + "advert_int = \"15ms\"\n", "x.toml:13: vrrp[0].advert_int: 15ms: VRRPv3 counts centiseconds"},
		{"interval v2", base + "version = 2\nadvert_int = \"500ms\"\n", "x.toml:14: vrrp[0].advert_int: 500ms: VRRPv2 counts seconds"},
		{"version", base + "version = 4\n", "x.toml:13: vrrp[0].version: 4: want 3"},
		{"auth on v3", base + "auth_pass = \"x\"\n", "x.toml:13: vrrp[0].auth_pass: authentication is VRRPv2 only"},
		{"long password", base + "version = 2\nauth_pass = \"123456789\"\n", "x.toml:14: vrrp[0].auth_pass: longer than 8 bytes"},
		{"bad vip", strings.Replace(base, "[\"198.18.1.10\"]", "[\"198.18.1.10\", \"nope\"]", 1), "x.toml:12: vrrp[0].vips[1]: bad address \"nope\""},
		{"mixed families", strings.Replace(base, "[\"198.18.1.10\"]", "[\"198.18.1.10\", \"2001:db8::1\"]", 1), "x.toml:12: vrrp[0].vips[1]: 2001:db8::1: every vip of an instance must be of one family"},
		{"v2 ipv6", strings.Replace(base, "[\"198.18.1.10\"]", "[\"2001:db8::1\"]", 1) + "version = 2\n", "x.toml:13: vrrp[0].version: VRRPv2 is IPv4 only"},
		{"peer family", base + "unicast_peers = [\"2001:db8::2\"]\n", "x.toml:13: vrrp[0].unicast_peers[0]: 2001:db8::2 is not of the vips' family"},
		{"unknown service", base + "track_services = [\"tcp:198.18.1.10:81\"]\n", "x.toml:13: vrrp[0].track_services[0]: no [[service]] tcp 198.18.1.10:81"},
		{"bad service", base + "track_services = [\"198.18.1.10\"]\n", "x.toml:13: vrrp[0].track_services[0]: bad service"},
		{"weight", base + "track_weight = 10\n", "x.toml:13: vrrp[0].track_weight: 10: want -254..-1"},
		{"garp count", base + "garp_count = -1\n", "x.toml:13: vrrp[0].garp_count: -1 out of range"},
		{"unknown key", base + "advert_intervall = \"1s\"\n", "x.toml:13: vrrp.advert_intervall: unknown key"},
		{"duplicate name", base + "\n[[vrrp]]\nname = \"vi\"\ninterface = \"eth0\"\nvrid = 52\nvips = [\"198.18.1.11\"]\n", "x.toml:15: vrrp[1].name: instance \"vi\" already defined at x.toml:8"},
		{"duplicate vrid", base + "\n[[vrrp]]\nname = \"v2\"\ninterface = \"eth0\"\nvrid = 51\nvips = [\"198.18.1.11\"]\n", "x.toml:17: vrrp[1].vrid: vrid 51 on eth0 already used by instance vi"},
		{"duplicate vip", base + "\n[[vrrp]]\nname = \"v2\"\ninterface = \"eth0\"\nvrid = 52\nvips = [\"198.18.1.10\"]\n", "x.toml:18: vrrp[1].vips[0]: 198.18.1.10 already belongs to instance vi"},
		{"no vips", strings.Replace(base, "vips = [\"198.18.1.10\"]\n", "", 1), "x.toml:8: vrrp[0].vips: at least one virtual address"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Parse("x.toml", []byte(c.doc))
			if err == nil {
				t.Fatalf("accepted:\n%s", c.doc)
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %q\ndoes not contain %q", err, c.want)
			}
		})
	}
	// IPv6 service keys and "all".
	doc := "[[port]]\nname = \"eth0\"\n\n[[service]]\nproto = \"udp\"\nvip = \"2001:db8::10\"\nport = 53\n\n[[vrrp]]\nname = \"v6\"\ninterface = \"eth0\"\nvrid = 1\nvips = [\"2001:db8::10\"]\ntrack_services = [\"udp:[2001:db8::10]:53\", \"udp:2001:db8::10:53\"]\n"
	cfg, err := Parse("y.toml", []byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.VRRP[0].TrackServices) != 2 || cfg.VRRP[0].TrackServices[1].Port != 53 {
		t.Fatalf("%v", cfg.VRRP[0].TrackServices)
	}
}

func TestSessionSyncConfig(t *testing.T) {
	cfg, err := Load("testdata/ha.toml")
	if err != nil {
		t.Fatal(err)
	}
	s := cfg.SessionSync
	if s == nil || s.Listen != netip.MustParseAddrPort("198.18.1.1:8848") || s.Peer != netip.MustParseAddrPort("198.18.1.2:8848") ||
		s.VRRP != "front" || s.Interval != 10*time.Millisecond || s.Refresh != time.Minute || s.Ring != 65536 {
		t.Fatalf("%+v", s)
	}
	base := "[[port]]\nname = \"eth0\"\n\n[[vrrp]]\nname = \"vi\"\ninterface = \"eth0\"\nvrid = 51\nvips = [\"198.18.1.10\"]\n\n[session_sync]\nlisten = \"198.18.1.1:8848\"\npeer = \"198.18.1.2:8848\"\nvrrp = \"vi\"\n"
	cfg, err = Parse("x.toml", []byte(base))
	if err != nil {
		t.Fatal(err)
	}
	if s := cfg.SessionSync; s.Interval != 10*time.Millisecond || s.Refresh != time.Minute || s.Ring != 1<<16 {
		t.Fatalf("defaults %+v", s)
	}
	cases := []struct{ name, doc, want string }{
		{"listen", strings.Replace(base, "198.18.1.1:8848", "198.18.1.1", 1), "x.toml:11: session_sync.listen: want ADDR:PORT"},
		{"family", strings.Replace(base, "198.18.1.2:8848", "[2001:db8::2]:8848", 1), "x.toml:12: session_sync.peer: [2001:db8::2]:8848 is not of listen's family"},
		{"instance", strings.Replace(base, "vrrp = \"vi\"\n", "vrrp = \"nope\"\n", 1), "x.toml:13: session_sync.vrrp: no [[vrrp]] instance named \"nope\""},
		{"interval", base + "interval = \"2s\"\n", "x.toml:14: session_sync.interval: 2s out of range"},
		{"ring", base + "ring = 3000\n", "x.toml:14: session_sync.ring: 3000: want a power of two"},
		{"unknown", base + "pear = \"x\"\n", "x.toml:14: session_sync.pear: unknown key"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Parse("x.toml", []byte(c.doc))
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %v\nwant %q", err, c.want)
			}
		})
	}
}
