package config

import (
	"reflect"
	"strings"
	"testing"

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
