package lb

import (
	"net/netip"
	"strings"
	"testing"
	"time"
)

// vtConfig is a valid configuration with a v4 dr service, a v6 nat service,
// a v4 fullnat service and a v6 l3dsr service. Every call returns fresh
// slices, so cases may mutate it.
func vtConfig() Config {
	return Config{Services: []Service{
		{
			Proto: ProtoTCP, VIP: btAddr("198.18.0.1"), Port: 80, Scheduler: "rr", Method: MethodDR,
			Reals: []Real{{Addr: btAddr("198.18.1.1"), Weight: 1}, {Addr: btAddr("198.18.1.2"), Port: 80, Weight: 2}},
		},
		{
			Proto: ProtoTCP, VIP: btAddr("2001:db8::1"), Port: 443, Scheduler: "wlc", Method: MethodNAT,
			Reals: []Real{{Addr: btAddr("2001:db8:1::1"), Port: 8443, Weight: 1}},
		},
		{
			Proto: ProtoUDP, VIP: btAddr("198.18.0.2"), Port: 53, Scheduler: "sh", Method: MethodFullNAT,
			LocalAddrs: []netip.Addr{btAddr("198.18.3.1")},
			Reals:      []Real{{Addr: btAddr("198.18.1.3"), Port: 5353, Weight: 1}},
		},
		{
			Proto: ProtoAny, VIP: btAddr("2001:db8::2"), Port: 0, Scheduler: "mh", Method: MethodL3DSR, DSCP: 10,
			MaglevSize: 251,
			Reals:      []Real{{Addr: btAddr("2001:db8:1::2"), Weight: 1}},
		},
	}}
}

func TestValidateAcceptsValid(t *testing.T) {
	cfg := vtConfig()
	if err := Validate(&cfg); err != nil {
		t.Fatalf("valid config rejected: %v", err)
	}
	valid := []struct {
		name string
		mod  func(c *Config)
	}{
		{"empty", func(c *Config) { c.Services = nil }},
		{"weight 0 and MaxWeight", func(c *Config) {
			c.Services[0].Reals[0].Weight = 0
			c.Services[0].Reals[1].Weight = MaxWeight
		}},
		{"nat real changes the port", func(c *Config) { c.Services[1].Reals[0].Port = 1 }},
		{"fullnat real changes the port", func(c *Config) { c.Services[2].Reals[0].Port = 1 }},
		{"dr real with the service port", func(c *Config) { c.Services[0].Reals[0].Port = 80 }},
		{"DSCP 63", func(c *Config) { c.Services[3].DSCP = 63 }},
		{"persistence /0 /32 v4", func(c *Config) {
			c.Services[0].PersistTimeout, c.Services[0].PersistMask = time.Minute, 32
			c.Services[2].PersistTimeout, c.Services[2].PersistMask = time.Minute, 0
		}},
		{"persistence /128 v6", func(c *Config) { c.Services[1].PersistTimeout, c.Services[1].PersistMask = time.Minute, 128 }},
		{"same VIP other proto and port", func(c *Config) {
			s := c.Services[0]
			s.Proto, s.Reals = ProtoUDP, []Real{{Addr: btAddr("198.18.1.1"), Weight: 1}}
			s2 := c.Services[0]
			s2.Port, s2.Reals = 0, []Real{{Addr: btAddr("198.18.1.1"), Weight: 1}}
			c.Services = append(c.Services, s, s2)
		}},
		{"same real in two services", func(c *Config) {
			s := c.Services[0]
			s.Port, s.Reals = 81, []Real{{Addr: btAddr("198.18.1.1"), Weight: 1}}
			c.Services = append(c.Services, s)
		}},
		{"same real address on two ports (nat)", func(c *Config) {
			c.Services[1].Reals = append(c.Services[1].Reals, Real{Addr: btAddr("2001:db8:1::1"), Port: 8444, Weight: 1})
		}},
		{"tunnel with a local address of the VIP's family", func(c *Config) {
			c.Services[0].Method = MethodTunnel
			c.Services[0].LocalAddrs = []netip.Addr{btAddr("2001:db8:3::1"), btAddr("198.18.3.9")}
		}},
		{"nat service with a dr real on the service port", func(c *Config) {
			c.Services[1].Reals = append(c.Services[1].Reals, Real{Addr: btAddr("2001:db8:1::9"), Port: 443, Method: MethodDR})
		}},
		{"every state", func(c *Config) {
			c.Services[0].Reals[0].State = RealDrain
			c.Services[0].Reals[1].State = RealDown
		}},
	}
	for _, tc := range valid {
		cfg := vtConfig()
		tc.mod(&cfg)
		if err := Validate(&cfg); err != nil {
			t.Errorf("%s: valid config rejected: %v", tc.name, err)
		}
	}
}

func TestValidateErrors(t *testing.T) {
	// Names as they appear in errors.
	const (
		svc0 = "tcp 198.18.0.1:80"
		svc1 = "tcp [2001:db8::1]:443"
		svc2 = "udp 198.18.0.2:53"
		svc3 = "any [2001:db8::2]:0"
	)
	cases := []struct {
		name string
		mod  func(c *Config)
		want []string // substrings of the error
	}{
		{"missing VIP", func(c *Config) { c.Services[1].VIP = netip.Addr{} }, []string{"#2", "VIP"}},
		{"duplicate service", func(c *Config) {
			d := c.Services[1]
			d.Reals = []Real{{Addr: btAddr("2001:db8:1::7"), Weight: 1}}
			c.Services = append(c.Services, d)
		}, []string{svc1}},
		{"duplicate service through a v4-mapped VIP", func(c *Config) {
			d := c.Services[0]
			d.VIP = btAddr("::ffff:198.18.0.1")
			d.Reals = []Real{{Addr: btAddr("198.18.1.7"), Weight: 1}}
			c.Services = append(c.Services, d)
		}, []string{svc0}},
		{"duplicate real", func(c *Config) {
			c.Services[1].Reals = append(c.Services[1].Reals, Real{Addr: btAddr("2001:db8:1::1"), Port: 8443, Weight: 5})
		}, []string{svc1, "[2001:db8:1::1]:8443"}},
		{"duplicate real through a v4-mapped address", func(c *Config) {
			c.Services[0].Reals[0].Addr = btAddr("::ffff:198.18.1.2")
			c.Services[0].Reals[0].Port = 80
		}, []string{svc0, "198.18.1.2:80"}},
		{"v6 real in a v4 service", func(c *Config) { c.Services[0].Reals[1].Addr = btAddr("2001:db8:1::5") }, []string{svc0, "2001:db8:1::5"}},
		{"v4 real in a v6 service", func(c *Config) { c.Services[1].Reals[0].Addr = btAddr("198.18.1.5") }, []string{svc1, "198.18.1.5"}},
		{"missing real address", func(c *Config) { c.Services[2].Reals[0].Addr = netip.Addr{} }, []string{svc2, "real #1"}},
		{"weight -1", func(c *Config) { c.Services[0].Reals[1].Weight = -1 }, []string{svc0, "198.18.1.2:80", "-1"}},
		{"weight MaxWeight+1", func(c *Config) { c.Services[1].Reals[0].Weight = MaxWeight + 1 }, []string{svc1, "[2001:db8:1::1]:8443"}},
		{"unknown scheduler", func(c *Config) { c.Services[2].Scheduler = "bogus" }, []string{svc2, "bogus"}},
		{"unknown protocol", func(c *Config) { c.Services[0].Proto = Proto(1) }, []string{"198.18.0.1:80"}},
		{"unknown service method", func(c *Config) { c.Services[0].Method = MethodTunnel + 1 }, []string{svc0}},
		{"unknown real method", func(c *Config) { c.Services[0].Reals[0].Method = MethodTunnel + 1 }, []string{svc0, "198.18.1.1"}},
		{"unknown real state", func(c *Config) { c.Services[0].Reals[0].State = RealDown + 1 }, []string{svc0, "198.18.1.1"}},
		{"l3dsr without DSCP", func(c *Config) { c.Services[3].DSCP = 0 }, []string{svc3, "DSCP"}},
		{"l3dsr real in a dr service without DSCP", func(c *Config) { c.Services[0].Reals[0].Method = MethodL3DSR }, []string{svc0, "DSCP"}},
		{"DSCP 64", func(c *Config) { c.Services[3].DSCP = 64 }, []string{svc3, "64"}},
		{"DSCP 255 on a dr service", func(c *Config) { c.Services[0].DSCP = 255 }, []string{svc0, "255"}},
		{"fullnat without local address", func(c *Config) { c.Services[2].LocalAddrs = nil }, []string{svc2, "local address"}},
		{"fullnat v4 with only a v6 local address", func(c *Config) {
			c.Services[2].LocalAddrs = []netip.Addr{btAddr("2001:db8:3::1")}
		}, []string{svc2, "local address"}},
		{"fullnat v6 with only a v4 local address", func(c *Config) {
			c.Services[1].Method = MethodFullNAT
			c.Services[1].LocalAddrs = []netip.Addr{btAddr("198.18.3.1")}
		}, []string{svc1, "local address"}},
		{"tunnel without local address", func(c *Config) { c.Services[0].Method = MethodTunnel }, []string{svc0, "local address"}},
		{"fullnat real in a nat service without local address", func(c *Config) {
			c.Services[1].Reals[0].Method = MethodFullNAT
		}, []string{svc1, "local address"}},
		{"tunnel real in a dr service without local address", func(c *Config) {
			c.Services[0].Reals[0].Method = MethodTunnel
		}, []string{svc0, "local address"}},
		{"persistence mask -1", func(c *Config) { c.Services[0].PersistTimeout, c.Services[0].PersistMask = time.Minute, -1 }, []string{svc0, "-1"}},
		{"persistence mask /33 on v4", func(c *Config) { c.Services[0].PersistTimeout, c.Services[0].PersistMask = time.Minute, 33 }, []string{svc0, "33"}},
		{"persistence mask /129 on v6", func(c *Config) { c.Services[1].PersistTimeout, c.Services[1].PersistMask = time.Minute, 129 }, []string{svc1, "129"}},
		{"negative persistence timeout", func(c *Config) { c.Services[0].PersistTimeout = -time.Second }, []string{svc0}},
		{"negative slow start", func(c *Config) { c.Services[0].SlowStart = -time.Second }, []string{svc0}},
		{"dr real with a different port", func(c *Config) { c.Services[0].Reals[0].Port = 8080 }, []string{svc0, "198.18.1.1:8080"}},
		{"dr real with a port on a port-0 service", func(c *Config) {
			c.Services[0].Port = 0
			c.Services[0].Reals[1].Port = 80
		}, []string{"tcp 198.18.0.1:0", "198.18.1.2:80"}},
		{"l3dsr real with a different port", func(c *Config) { c.Services[3].Reals[0].Port = 53 }, []string{svc3, "[2001:db8:1::2]:53"}},
		{"tunnel real with a different port", func(c *Config) {
			c.Services[0].Method = MethodTunnel
			c.Services[0].LocalAddrs = []netip.Addr{btAddr("198.18.3.1")}
			c.Services[0].Reals[1].Port = 81
		}, []string{svc0, "198.18.1.2:81"}},
		{"dr real override with a different port in a nat service", func(c *Config) {
			c.Services[1].Reals[0].Method = MethodDR
		}, []string{svc1, "[2001:db8:1::1]:8443"}},
		{"too many local addresses", func(c *Config) {
			for i := range 256 {
				c.Services[2].LocalAddrs = append(c.Services[2].LocalAddrs, netip.AddrFrom4([4]byte{198, 19, byte(i >> 8), byte(i)}))
			}
		}, []string{svc2}},
	}
	for _, tc := range cases {
		cfg := vtConfig()
		tc.mod(&cfg)
		err := Validate(&cfg)
		if err == nil {
			t.Errorf("%s: no error", tc.name)
			continue
		}
		for _, w := range tc.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: error %q does not mention %q", tc.name, err, w)
			}
		}
	}
}

func TestValidateDefaults(t *testing.T) {
	cfg := Config{Services: []Service{
		{Proto: ProtoTCP, VIP: btAddr("::ffff:198.18.0.1"), Port: 80,
			Reals: []Real{{Addr: btAddr("::ffff:198.18.1.1"), Weight: 1}, {Addr: btAddr("198.18.1.2"), Method: MethodNAT, Weight: 1}}},
		{Proto: ProtoUDP, VIP: btAddr("2001:db8::1"), Port: 53, Scheduler: "SH", Method: MethodNAT,
			Reals: []Real{{Addr: btAddr("2001:db8:1::1"), Weight: 1}}},
	}}
	if err := Validate(&cfg); err != nil {
		t.Fatal(err)
	}
	s := cfg.Services[0]
	if s.Scheduler != "wlc" {
		t.Errorf("default scheduler = %q, want wlc", s.Scheduler)
	}
	if s.Method != MethodDR {
		t.Errorf("default method = %s, want dr", s.Method)
	}
	if s.VIP != btAddr("198.18.0.1") {
		t.Errorf("v4-mapped VIP not unmapped: %s", s.VIP)
	}
	if s.Reals[0].Addr != btAddr("198.18.1.1") {
		t.Errorf("v4-mapped real not unmapped: %s", s.Reals[0].Addr)
	}
	if s.Reals[0].Method != MethodDefault || s.Reals[1].Method != MethodNAT {
		t.Errorf("real methods changed: %s, %s (want default, nat)", s.Reals[0].Method, s.Reals[1].Method)
	}
	s = cfg.Services[1]
	if s.Scheduler != "SH" || s.Method != MethodNAT {
		t.Errorf("explicit scheduler/method changed: %q %s", s.Scheduler, s.Method)
	}
}

// TestValidateDuplicateRealPortZero: a real's port 0 means the service's
// port, so 198.18.1.1 and 198.18.1.1:80 on a service on port 80 are the same
// server (ipvsadm fills in the service port and IPVS refuses the second as
// "destination already exists"). Accepting both gives the server two
// scheduler slots (twice its share) and two nat reply-index entries for one
// address:port.
func TestValidateDuplicateRealPortZero(t *testing.T) {
	for _, m := range []Method{MethodDR, MethodNAT} {
		cfg := Config{Services: []Service{{
			Proto: ProtoTCP, VIP: btAddr("198.18.0.1"), Port: 80, Method: m,
			Reals: []Real{{Addr: btAddr("198.18.1.1"), Weight: 1}, {Addr: btAddr("198.18.1.1"), Port: 80, Weight: 1}},
		}}}
		err := Validate(&cfg)
		if err == nil {
			t.Errorf("%s: real 198.18.1.1 (port 0 = service port) and 198.18.1.1:80 accepted as two reals", m)
			continue
		}
		if !strings.Contains(err.Error(), "tcp 198.18.0.1:80") || !strings.Contains(err.Error(), "198.18.1.1") {
			t.Errorf("%s: error %q does not name the service and real", m, err)
		}
	}
}
