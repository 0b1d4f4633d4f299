package rules

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"gvs/ctl/config"
)

func intp(n int) *int { return &n }

// What `ipvsadm -S -n` prints is read as ipvsadm -R reads it.
func TestParseIpvsadmSave(t *testing.T) {
	text := `# saved by ipvsadm -Sn
-A -t 198.18.0.10:80 -s wrr -p 300 -M 255.255.255.0
-a -t 198.18.0.10:80 -r 198.18.1.11:8080 -m -w 3
-a -t 198.18.0.10:80 -r 198.18.1.12:8080 -m -w 1

-A -u [2001:db8::10]:53 -s mh -b sh-port,sh-fallback
-a -u [2001:db8::10]:53 -r [2001:db8:1::11]:53 -g -w 1
-A -u 198.18.0.11:53 -s rr -o
-a -u 198.18.0.11:53 -r 198.18.1.20 -i -w 0
-e -u 198.18.0.11:53 -r 198.18.1.20 --weight=5
-d -t 198.18.0.10:80 -r 198.18.1.12:8080
-D -u 198.18.0.11:53
-C
`
	rs, err := Parse(text)
	if err != nil {
		t.Fatal(err)
	}
	if len(rs) != 11 {
		t.Fatalf("%d rules, want 11", len(rs))
	}
	a := rs[0]
	if a.Line != 2 || a.Cmd != AddService || a.Service.Proto != "tcp" || a.Service.VIP != "198.18.0.10" || a.Service.Port != 80 ||
		a.Service.Scheduler != "wrr" || a.Service.Persistence.Duration != 300*time.Second || a.Service.PersistMask != 24 || a.Service.Method != "" {
		t.Fatalf("-A: %+v", a)
	}
	r := rs[1]
	if r.Cmd != AddReal || r.Real.Addr != "198.18.1.11" || r.Real.Port != 8080 || r.Real.Method != "nat" || *r.Real.Weight != 3 {
		t.Fatalf("-a: %+v", r)
	}
	v6 := rs[3]
	if v6.Service.VIP != "2001:db8::10" || v6.Service.Port != 53 || !reflect.DeepEqual(v6.Service.Flags, []string{"sh-port", "sh-fallback"}) {
		t.Fatalf("v6 -A: %+v", v6)
	}
	if rs[4].Real.Addr != "2001:db8:1::11" || rs[4].Real.Port != 53 || rs[4].Real.Method != "dr" {
		t.Fatalf("v6 -a: %+v", rs[4])
	}
	if !reflect.DeepEqual(rs[5].Service.Flags, []string{"one-packet"}) {
		t.Fatalf("-o: %+v", rs[5].Service)
	}
	if rs[6].Real.Port != 0 || rs[6].Real.Method != "tunnel" || *rs[6].Real.Weight != 0 {
		t.Fatalf("real without port: %+v", rs[6].Real)
	}
	if rs[7].Cmd != EditReal || *rs[7].Real.Weight != 5 || rs[7].Real.Method != "" {
		t.Fatalf("-e: %+v", rs[7])
	}
	if rs[8].Cmd != DeleteReal || rs[9].Cmd != DeleteService || rs[10].Cmd != Clear || rs[10].Line != 13 {
		t.Fatalf("-d -D -C: %+v %+v %+v", rs[8], rs[9], rs[10])
	}
}

func TestParseGvsExtensions(t *testing.T) {
	rs, err := Parse(`-A --any 198.18.0.12:0 -s mh --fullnat --laddr 198.18.200.1 --laddr 198.18.200.2 --slow-start 10s --on-remove drop --maglev-size 251 --client-port eth1
-a --any 198.18.0.12:0 -r 198.18.1.30 --fullnat -w 2 --state drain
-A -t 198.18.0.13:443 --l3dsr 10
-a -t 198.18.0.13:443 -r 198.18.1.40 --l3dsr
-a -t 198.18.0.13:443 -r 198.18.1.41 --l3dsr 10 -w 4
-E -t 198.18.0.13:443 -s rr -p
`)
	if err != nil {
		t.Fatal(err)
	}
	s := rs[0].Service
	want := config.Service{Proto: "any", VIP: "198.18.0.12", Port: 0, Scheduler: "mh", Method: "fullnat",
		LocalAddrs: []string{"198.18.200.1", "198.18.200.2"}, SlowStart: config.Duration{Duration: 10 * time.Second},
		OnRemove: "drop", MaglevSize: 251, ClientPort: "eth1"}
	if !reflect.DeepEqual(s, want) {
		t.Fatalf("-A --any:\n got %+v\nwant %+v", s, want)
	}
	if r := rs[1].Real; r.Method != "fullnat" || r.State != "drain" || *r.Weight != 2 {
		t.Fatalf("-a --fullnat: %+v", r)
	}
	if s := rs[2].Service; s.Method != "l3dsr" || s.DSCP != 10 || s.Scheduler != "wlc" {
		t.Fatalf("-A --l3dsr: %+v", s)
	}
	if rs[3].Real.Method != "l3dsr" || rs[3].DSCP != 0 || rs[4].DSCP != 10 {
		t.Fatalf("-a --l3dsr: %+v %+v", rs[3], rs[4])
	}
	if s := rs[5].Service; rs[5].Cmd != EditService || s.Scheduler != "rr" || s.Persistence.Duration != DefaultPersistence || s.Method != "" {
		t.Fatalf("-E: %+v", s)
	}
}

func TestParseErrors(t *testing.T) {
	for _, c := range []struct{ text, want string }{
		{"-A -t 1.2.3.4:80\n-A -f 1", "line 2: fwmark services are not supported"},
		{"-A -t 1.2.3.4:80 -x 5", "line 1: unknown or unsupported option -x"},
		{"\n\n-a -t 1.2.3.4:80 -m", "line 3: -a needs a real server"},
		{"-A -s rr", "line 1: -A needs a service"},
		{"-A -t 1.2.3.4:80 -r 10.0.0.1", "-r is an option of -a, -e and -d"},
		{"-D -t 1.2.3.4:80 -s rr", "-s is an option of -A and -E"},
		{"-d -t 1.2.3.4:80 -r 10.0.0.1 -w 3", "-w is an option of -a and -e"},
		{"-d -t 1.2.3.4:80 -r 10.0.0.1 -m", "-m is an option of -A, -E, -a and -e"},
		{"-C -t 1.2.3.4:80", "-C takes no options"},
		{"-A -t host.example:80", "numeric address"},
		{"-A -t 1.2.3.4:no-such-service-name", `bad port "no-such-service-name"`},
		{"-A -t 1.2.3.4:70000", "out of range"},
		{"-A -t [2001:db8::1:80", "missing ']'"},
		{"-A -t 1.2.3.4:80 -u 1.2.3.4:80", "more than one service address"},
		{"-a -t 1.2.3.4:80 -r 10.0.0.1 -m -g", "more than one forwarding method"},
		{"-A -t 1.2.3.4:80 --l3dsr", "--l3dsr needs the DSCP value"},
		{"-A -t 1.2.3.4:80 -M 255.0.255.0", "not contiguous"},
		{"-A -t 1.2.3.4:80 -p 0", "want a timeout in seconds"},
		{"-A -t 1.2.3.4:80 -s", "-s needs a value"},
		{"-A -E -t 1.2.3.4:80", "two commands"},
		{"-t 1.2.3.4:80", "no command"},
		{"-A -t 1.2.3.4:80 wlc", `unexpected argument "wlc"`},
	} {
		_, err := Parse(c.text)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: error %v, want %q", c.text, err, c.want)
		}
	}
}

func TestFormat(t *testing.T) {
	svcs := []config.Service{
		{Proto: "tcp", VIP: "198.18.0.10", Port: 80, Scheduler: "wrr", Method: "nat",
			Persistence: config.Duration{Duration: 600 * time.Second}, PersistMask: 24,
			Reals: []config.Real{{Addr: "198.18.1.11", Port: 8080, Weight: intp(3)}, {Addr: "198.18.1.12", Port: 8080, Method: "dr"}}},
		{Proto: "udp", VIP: "2001:db8::10", Port: 53, Scheduler: "mh", Flags: []string{"hash-port", "one-packet"}, PersistMask: 64,
			Reals: []config.Real{{Addr: "2001:db8:1::11", State: "drain"}}},
		{Proto: "any", VIP: "198.18.0.12", Method: "fullnat", LocalAddrs: []string{"198.18.200.1"}, OnRemove: "drop",
			SlowStart: config.Duration{Duration: 5 * time.Second}, MaglevSize: 251, ClientPort: "eth1"},
		{Proto: "tcp", VIP: "198.18.0.13", Port: 443, Method: "dr", DSCP: 12,
			Reals: []config.Real{{Addr: "198.18.1.40", Method: "l3dsr"}}},
	}
	got := Format(svcs)
	want := `-A -t 198.18.0.10:80 -s wrr -p 600 -M 255.255.255.0 -m
-a -t 198.18.0.10:80 -r 198.18.1.11:8080 -m -w 3
-a -t 198.18.0.10:80 -r 198.18.1.12:8080 -g -w 1
-A -u [2001:db8::10]:53 -s mh -M 64 -b hash-port -o
-a -u [2001:db8::10]:53 -r [2001:db8:1::11] -g -w 1 --state drain
-A --any 198.18.0.12:0 -s wlc --fullnat --laddr 198.18.200.1 --slow-start 5s --on-remove drop --maglev-size 251 --client-port eth1
-A -t 198.18.0.13:443 -s wlc -g
-a -t 198.18.0.13:443 -r 198.18.1.40 --l3dsr 12 -w 1
`
	if got != want {
		t.Fatalf("Format:\n%s\nwant:\n%s", got, want)
	}
	rs, err := Parse(got)
	if err != nil {
		t.Fatal(err)
	}
	if len(rs) != 8 {
		t.Fatalf("%d rules back", len(rs))
	}
	// The -A lines give back the services' settings (reals aside).
	for i, j := range []int{0, 3, 5, 6} {
		s := svcs[i]
		s.Reals = nil
		if s.Scheduler == "" {
			s.Scheduler = "wlc"
		}
		if i == 3 {
			s.DSCP = 0 // on the real's line
		}
		if !reflect.DeepEqual(rs[j].Service, s) {
			t.Errorf("service %d:\n got %+v\nwant %+v", i, rs[j].Service, s)
		}
	}
	if rs[7].DSCP != 12 {
		t.Errorf("l3dsr real lost its DSCP: %+v", rs[7])
	}
}

// Plain ipvsadm -S (without -n) writes port names.
func TestPortNames(t *testing.T) {
	rs, err := Parse("-A -t 198.18.0.10:http -s rr\n-a -t 198.18.0.10:http -r 198.18.1.11:https -m\n-A -u [2001:db8::1]:domain\n-a -u [2001:db8::1]:domain -r [2001:db8::2]")
	if err != nil {
		t.Fatal(err)
	}
	if rs[0].Service.Port != 80 || rs[1].Real.Port != 443 || rs[2].Service.Port != 53 || rs[3].Real.Port != 0 || rs[3].Real.Addr != "2001:db8::2" {
		t.Fatalf("%+v", rs)
	}
}

func TestParseMask(t *testing.T) {
	for in, want := range map[string]int{"255.255.255.255": 32, "255.255.0.0": 16, "0.0.0.0": 0, "24": 24, "/64": 64} {
		if got, err := parseMask(in); err != nil || got != want {
			t.Errorf("%s: %d, %v; want %d", in, got, err, want)
		}
	}
}
