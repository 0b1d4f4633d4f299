package ipvsadm

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"gvs/ctl/api"
	"gvs/ctl/config"
)

func ptr[T any](v T) *T { return &v }

func secs(n int) config.Duration { return config.Duration{Duration: time.Duration(n) * time.Second} }

func sid(proto, vip string, port int) api.ServiceID {
	return api.ServiceID{Proto: proto, VIP: vip, Port: port}
}

func filter(proto, vip string, port int) api.ServiceFilter {
	id := sid(proto, vip, port)
	return api.ServiceFilter{Service: &id}
}

func svc(proto, vip string, port int, f func(*config.Service)) config.Service {
	s := config.Service{Proto: proto, VIP: vip, Port: port, Scheduler: "wlc", Method: "dr"}
	if f != nil {
		f(&s)
	}
	return s
}

func realArgs(id api.ServiceID, addr string, port int, weight *int, method string) api.RealArgs {
	return api.RealArgs{Service: id, Real: config.Real{Addr: addr, Port: port, Weight: weight, Method: method}}
}

// TestParse runs real ipvsadm command lines (and gvs's additions) and
// checks the API call each one makes.
func TestParse(t *testing.T) {
	web := sid("tcp", "10.0.0.1", 80)
	web6 := sid("tcp", "2001:db8::1", 80)
	for _, tc := range []struct {
		args   string
		action Action
		op     string
		want   any
		check  func(t *testing.T, c Command)
	}{
		// services
		{args: "-A -t 10.0.0.1:80", action: ActAddService, op: api.OpAddService, want: svc("tcp", "10.0.0.1", 80, nil)},
		{args: "-A -t 10.0.0.1:80 -s rr", action: ActAddService, op: api.OpAddService,
			want: svc("tcp", "10.0.0.1", 80, func(s *config.Service) { s.Scheduler = "rr" })},
		{args: "-A -t 10.0.0.1:80 -s wrr -p", action: ActAddService, op: api.OpAddService,
			want: svc("tcp", "10.0.0.1", 80, func(s *config.Service) { s.Scheduler, s.Persistence = "wrr", secs(300) })},
		{args: "-A -t 10.0.0.1:80 -p -M 255.255.255.0", action: ActAddService, op: api.OpAddService,
			want: svc("tcp", "10.0.0.1", 80, func(s *config.Service) { s.Persistence, s.PersistMask = secs(300), 24 })},
		{args: "-A -t 10.0.0.1:80 -s rr -p 600 -M 255.255.0.0", action: ActAddService, op: api.OpAddService,
			want: svc("tcp", "10.0.0.1", 80, func(s *config.Service) { s.Scheduler, s.Persistence, s.PersistMask = "rr", secs(600), 16 })},
		{args: "-At 10.0.0.1:80 -sRR -p120", action: ActAddService, op: api.OpAddService,
			want: svc("tcp", "10.0.0.1", 80, func(s *config.Service) { s.Scheduler, s.Persistence = "rr", secs(120) })},
		{args: "--add-service --tcp-service=10.0.0.1:https --scheduler=sh --persistent=120 --sched-flags sh-fallback,sh-port",
			action: ActAddService, op: api.OpAddService,
			want: svc("tcp", "10.0.0.1", 443, func(s *config.Service) {
				s.Scheduler, s.Persistence, s.Flags = "sh", secs(120), []string{"fallback", "hash-port"}
			})},
		{args: "-A -u [2001:db8::1]:53 -s mh -b mh-port -o", action: ActAddService, op: api.OpAddService,
			want: svc("udp", "2001:db8::1", 53, func(s *config.Service) { s.Scheduler, s.Flags = "mh", []string{"hash-port", "one-packet"} })},
		{args: "-A -u 10.0.0.1:53 --ops -b flag-1", action: ActAddService, op: api.OpAddService,
			want: svc("udp", "10.0.0.1", 53, func(s *config.Service) { s.Flags = []string{"fallback", "one-packet"} })},
		{args: "-A -t 10.0.0.1 -p 60 -M 24", action: ActAddService, op: api.OpAddService,
			want: svc("tcp", "10.0.0.1", 0, func(s *config.Service) { s.Persistence, s.PersistMask = secs(60), 24 })},
		{args: "-A -t [2001:db8::1]:80 -p 60 -M 64 -i --laddr 2001:db8::9", action: ActAddService, op: api.OpAddService,
			want: svc("tcp", "2001:db8::1", 80, func(s *config.Service) {
				s.Persistence, s.PersistMask, s.Method, s.LocalAddrs = secs(60), 64, "tunnel", []string{"2001:db8::9"}
			})},
		{args: "-A -t 2001:db8::1 -s lc", action: ActAddService, op: api.OpAddService,
			want: svc("tcp", "2001:db8::1", 0, func(s *config.Service) { s.Scheduler = "lc" })},
		{args: "-A --any 10.0.0.1:0 -s mh --fullnat --laddr 10.0.9.1 --laddr 10.0.9.2,10.0.9.3", action: ActAddService, op: api.OpAddService,
			want: svc("any", "10.0.0.1", 0, func(s *config.Service) {
				s.Scheduler, s.Method, s.LocalAddrs = "mh", "fullnat", []string{"10.0.9.1", "10.0.9.2", "10.0.9.3"}
			})},
		{args: "-A -t 10.0.0.1:80 -s wrr --l3dsr 10", action: ActAddService, op: api.OpAddService,
			want: svc("tcp", "10.0.0.1", 80, func(s *config.Service) { s.Scheduler, s.Method, s.DSCP = "wrr", "l3dsr", 10 })},
		{args: "-A -t 10.0.0.1:80 --l3dsr=12 -m", action: -1}, // two methods: an error, checked below
		{args: "-A -t 10.0.0.1:80 -m", action: ActAddService, op: api.OpAddService,
			want: svc("tcp", "10.0.0.1", 80, func(s *config.Service) { s.Method = "nat" })},
		{args: "-A -t 10.0.0.1:80 --slow-start 10s --on-remove drop --maglev-size 251 --client-port eth1 -s mh",
			action: ActAddService, op: api.OpAddService,
			want: svc("tcp", "10.0.0.1", 80, func(s *config.Service) {
				s.Scheduler, s.SlowStart, s.OnRemove, s.MaglevSize, s.ClientPort = "mh", secs(10), "drop", 251, "eth1"
			})},
		{args: "-A --any-service 10.0.0.1:0 --tunnel --laddr 10.0.9.1", action: ActAddService, op: api.OpAddService,
			want: svc("any", "10.0.0.1", 0, func(s *config.Service) { s.Method, s.LocalAddrs = "tunnel", []string{"10.0.9.1"} })},
		// -E: what is given; persistence, mask and flags off unless given;
		// the rest (scheduler included) kept by gvsd when empty.
		{args: "-E -t 10.0.0.1:80 -s wrr", action: ActEditService, op: api.OpEditService,
			want: config.Service{Proto: "tcp", VIP: "10.0.0.1", Port: 80, Scheduler: "wrr"}},
		{args: "-E -t 10.0.0.1:80 -p 60", action: ActEditService, op: api.OpEditService,
			want: config.Service{Proto: "tcp", VIP: "10.0.0.1", Port: 80, Persistence: secs(60)}},
		{args: "-E -t 10.0.0.1:80 --fullnat --laddr 10.0.9.7", action: ActEditService, op: api.OpEditService,
			want: config.Service{Proto: "tcp", VIP: "10.0.0.1", Port: 80, Method: "fullnat", LocalAddrs: []string{"10.0.9.7"}}},
		{args: "-E -t 10.0.0.1:80 --l3dsr 20", action: ActEditService, op: api.OpEditService,
			want: config.Service{Proto: "tcp", VIP: "10.0.0.1", Port: 80, Method: "l3dsr", DSCP: 20}},
		{args: "-D -t 10.0.0.1:80", action: ActDeleteService, op: api.OpDeleteService, want: web},
		{args: "--delete-service -u [2001:db8::1]:53", action: ActDeleteService, op: api.OpDeleteService, want: sid("udp", "2001:db8::1", 53)},
		{args: "-D --any 10.0.0.1", action: ActDeleteService, op: api.OpDeleteService, want: sid("any", "10.0.0.1", 0)},

		// reals
		{args: "-a -t 10.0.0.1:80 -r 10.0.1.11:8080 -m -w 3", action: ActAddReal, op: api.OpAddReal,
			want: realArgs(web, "10.0.1.11", 8080, ptr(3), "nat")},
		// No real port: 0, the service's (ipvsadm copies the virtual port).
		{args: "-a -t 10.0.0.1:80 -r 10.0.1.11", action: ActAddReal, op: api.OpAddReal,
			want: realArgs(web, "10.0.1.11", 0, ptr(1), "")},
		{args: "-a -t 10.0.0.1:80 -r 10.0.1.11 -g", action: ActAddReal, op: api.OpAddReal,
			want: realArgs(web, "10.0.1.11", 0, ptr(1), "dr")},
		{args: "-a -t 10.0.0.1:80 -r 10.0.1.11 --state drain", action: ActAddReal, op: api.OpAddReal,
			want: api.RealArgs{Service: web, Real: config.Real{Addr: "10.0.1.11", Weight: ptr(1), State: "drain"}}},
		{args: "-a -t 10.0.0.1:80 -r 10.0.1.11:80 -i -w 0", action: ActAddReal, op: api.OpAddReal,
			want: realArgs(web, "10.0.1.11", 80, ptr(0), "tunnel")},
		{args: "-at 10.0.0.1:80 -r10.0.1.11:8080 -mw5", action: ActAddReal, op: api.OpAddReal,
			want: realArgs(web, "10.0.1.11", 8080, ptr(5), "nat")},
		{args: "--add-server --tcp-service 10.0.0.1:80 --real-server 10.0.1.11:8080 --masquerading --weight=2", action: ActAddReal, op: api.OpAddReal,
			want: realArgs(web, "10.0.1.11", 8080, ptr(2), "nat")},
		{args: "-a -t [2001:db8::1]:80 -r [2001:db8::11]:80 -g -w 7", action: ActAddReal, op: api.OpAddReal,
			want: realArgs(web6, "2001:db8::11", 80, ptr(7), "dr")},
		{args: "-a -t [2001:db8::1]:80 -r 2001:db8::12", action: ActAddReal, op: api.OpAddReal,
			want: realArgs(web6, "2001:db8::12", 0, ptr(1), "")},
		{args: "-a -t 10.0.0.1:80 -r 10.0.1.11:8080 --fullnat", action: ActAddReal, op: api.OpAddReal,
			want: realArgs(web, "10.0.1.11", 8080, ptr(1), "fullnat")},
		{args: "-a -t 10.0.0.1:80 -r 10.0.1.11 --l3dsr -w 4", action: ActAddReal, op: api.OpAddReal,
			want: realArgs(web, "10.0.1.11", 0, ptr(4), "l3dsr")},
		// --l3dsr DSCP on a real (as -S writes it when the service's
		// method is another): add_real has no DSCP, so it goes as an -R rule.
		{args: "-a -t 10.0.0.1:80 -r 10.0.1.11 --l3dsr 10 -w 2", action: ActAddReal, op: api.OpRestore,
			want: api.RestoreArgs{Text: "-a -t 10.0.0.1:80 -r 10.0.1.11 --l3dsr 10 -w 2\n"}},
		{args: "-a -t 10.0.0.1:80 -r 10.0.1.11:80 --l3dsr 10", action: ActAddReal, op: api.OpRestore,
			want: api.RestoreArgs{Text: "-a -t 10.0.0.1:80 -r 10.0.1.11:80 --l3dsr 10 -w 1\n"}},
		{args: "-e -t [2001:db8::1]:80 -r 2001:db8::11 --l3dsr 10 --state drain", action: ActEditReal, op: api.OpRestore,
			want: api.RestoreArgs{Text: "-e -t [2001:db8::1]:80 -r [2001:db8::11] --l3dsr 10 --state drain\n"}},
		// -e: what is given; gvsd keeps the rest.
		{args: "-e -t 10.0.0.1:80 -r 10.0.1.11:8080 -m -w 5", action: ActEditReal, op: api.OpEditReal,
			want: realArgs(web, "10.0.1.11", 8080, ptr(5), "nat")},
		{args: "-e -t 10.0.0.1:80 -r 10.0.1.11:8080 -w 0", action: ActEditReal, op: api.OpEditReal,
			want: realArgs(web, "10.0.1.11", 8080, ptr(0), "")},
		{args: "-e -t 10.0.0.1:80 -r 10.0.1.11:8080 --state down", action: ActEditReal, op: api.OpEditReal,
			want: api.RealArgs{Service: web, Real: config.Real{Addr: "10.0.1.11", Port: 8080, State: "down"}}},
		{args: "-d -t 10.0.0.1:80 -r 10.0.1.11:8080", action: ActDeleteReal, op: api.OpDeleteReal,
			want: api.RealArgs{Service: web, Real: config.Real{Addr: "10.0.1.11", Port: 8080}}},
		{args: "-d -t 10.0.0.1:http -r 10.0.1.11", action: ActDeleteReal, op: api.OpDeleteReal,
			want: api.RealArgs{Service: web, Real: config.Real{Addr: "10.0.1.11"}}},

		// table-wide commands
		{args: "-C", action: ActClear, op: api.OpClear, want: nil},
		{args: "--clear", action: ActClear, op: api.OpClear, want: nil},
		{args: "-Z", action: ActZero, op: api.OpZero, want: api.ServiceFilter{}},
		{args: "-Z -t 10.0.0.1:80", action: ActZero, op: api.OpZero, want: filter("tcp", "10.0.0.1", 80)},
		{args: "-R", action: ActRestore, op: api.OpRestore, want: api.RestoreArgs{}},
		{args: "-S", action: ActSave, op: api.OpSave, want: api.SaveArgs{Format: "ipvsadm"}},
		{args: "-S -n", action: ActSave, op: api.OpSave, want: api.SaveArgs{Format: "ipvsadm"}},
		{args: "-Sn --format toml", action: ActSave, op: api.OpSave, want: api.SaveArgs{Format: "toml"}},
		{args: "-S -o json", action: ActSave, op: api.OpSave, want: api.SaveArgs{Format: "ipvsadm"},
			check: func(t *testing.T, c Command) { want(t, c.JSON, true) }},

		// listing
		{args: "", action: ActList, op: api.OpStats, want: api.ServiceFilter{}},
		{args: "-L", action: ActList, op: api.OpStats, want: api.ServiceFilter{}},
		{args: "-Ln", action: ActList, op: api.OpStats, want: api.ServiceFilter{},
			check: func(t *testing.T, c Command) { want(t, c.List, ListOptions{}) }},
		{args: "-l -n", action: ActList, op: api.OpStats, want: api.ServiceFilter{}},
		{args: "--list --numeric", action: ActList, op: api.OpStats, want: api.ServiceFilter{}},
		{args: "-Ln --stats", action: ActList, op: api.OpStats, want: api.ServiceFilter{},
			check: func(t *testing.T, c Command) { want(t, c.List, ListOptions{Stats: true}) }},
		{args: "-L -n --rate --exact --nosort", action: ActList, op: api.OpStats, want: api.ServiceFilter{},
			check: func(t *testing.T, c Command) { want(t, c.List, ListOptions{Rate: true, Exact: true, NoSort: true}) }},
		{args: "-LnX --stats --sort", action: ActList, op: api.OpStats, want: api.ServiceFilter{},
			check: func(t *testing.T, c Command) { want(t, c.List, ListOptions{Stats: true, Exact: true}) }},
		{args: "-Ln -t 10.0.0.1:80", action: ActList, op: api.OpStats, want: filter("tcp", "10.0.0.1", 80),
			check: func(t *testing.T, c Command) { want(t, c.List, ListOptions{Single: true}) }},
		{args: "-Ln -u [2001:db8::1]:53 --stats", action: ActList, op: api.OpStats, want: filter("udp", "2001:db8::1", 53),
			check: func(t *testing.T, c Command) { want(t, c.List, ListOptions{Single: true, Stats: true}) }},
		{args: "-lnc", action: ActConns, op: api.OpSessions, want: api.SessionFilter{Limit: api.MaxSessions}},
		{args: "-L -n -c", action: ActConns, op: api.OpSessions, want: api.SessionFilter{Limit: api.MaxSessions}},
		{args: "-Lnc -t 10.0.0.1:80", action: ActConns, op: api.OpSessions,
			want: api.SessionFilter{Service: &web, Limit: api.MaxSessions}},
		{args: "-Ln -o json", action: ActList, op: api.OpStats, want: api.ServiceFilter{},
			check: func(t *testing.T, c Command) { want(t, c.JSON, true) }},
		{args: "-Lno json", action: ActList, op: api.OpStats, want: api.ServiceFilter{},
			check: func(t *testing.T, c Command) { want(t, c.JSON, true) }},
		{args: "-Ln -ojson", action: ActList, op: api.OpStats, want: api.ServiceFilter{},
			check: func(t *testing.T, c Command) { want(t, c.JSON, true) }},
		{args: "--output=json -L", action: ActList, op: api.OpStats, want: api.ServiceFilter{},
			check: func(t *testing.T, c Command) { want(t, c.JSON, true) }},
		{args: "-o json", action: ActList, op: api.OpStats, want: api.ServiceFilter{},
			check: func(t *testing.T, c Command) { want(t, c.JSON, true) }},
		{args: "--socket /tmp/g.sock -Ln", action: ActList, op: api.OpStats, want: api.ServiceFilter{},
			check: func(t *testing.T, c Command) { want(t, c.Socket, "/tmp/g.sock") }},
		{args: "-Ln --socket=/tmp/g.sock -o text", action: ActList, op: api.OpStats, want: api.ServiceFilter{},
			check: func(t *testing.T, c Command) { want(t, c.Socket, "/tmp/g.sock"); want(t, c.JSON, false) }},

		// help and version
		{args: "-h", action: ActHelp},
		{args: "--help", action: ActHelp},
		{args: "-A -h", action: ActHelp},
		{args: "-v", action: ActVersion, op: api.OpVersion},
		{args: "--version -o json", action: ActVersion, op: api.OpVersion},

		// subcommands
		{args: "reload", action: ActReload, op: api.OpReload},
		{args: "health", action: ActHealth, op: api.OpHealth},
		{args: "health -o json", action: ActHealth, op: api.OpHealth, check: func(t *testing.T, c Command) { want(t, c.JSON, true) }},
		{args: "-o json vrrp", action: ActVRRP, op: api.OpVRRP, check: func(t *testing.T, c Command) { want(t, c.JSON, true) }},
		{args: "bgp", action: ActBGP, op: api.OpBGP},
		{args: "bgp drain", action: ActBGPDrain, op: api.OpBGPDrain, want: api.BGPDrainArgs{Drain: true}},
		{args: "bgp undrain", action: ActBGPDrain, op: api.OpBGPDrain, want: api.BGPDrainArgs{Drain: false}},
		{args: "--socket /run/x.sock version", action: ActVersion, op: api.OpVersion,
			check: func(t *testing.T, c Command) { want(t, c.Socket, "/run/x.sock") }},
		{args: "help", action: ActHelp},
		{args: "stats -h", action: ActHelp},
		{args: "conns", action: ActSessions, op: api.OpSessions, want: api.SessionFilter{Limit: api.MaxSessions},
			check: func(t *testing.T, c Command) { want(t, c.Limit, api.MaxSessions) }},
		{args: "conns --service udp:[2001:db8::1]:53 --real [2001:db8::11]:53 --client 2001:db8:f::1 --limit 50",
			action: ActSessions, op: api.OpSessions,
			want:  api.SessionFilter{Service: ptr(sid("udp", "2001:db8::1", 53)), Real: "[2001:db8::11]:53", Client: "2001:db8:f::1", Limit: 50},
			check: func(t *testing.T, c Command) { want(t, c.Limit, 50) }},
		{args: "conns --service 10.0.0.1:80 --limit 0", action: ActSessions, op: api.OpSessions,
			want:  api.SessionFilter{Service: &web, Limit: api.MaxSessions},
			check: func(t *testing.T, c Command) { want(t, c.Limit, 0) }},
		{args: "stats", action: ActStats, op: api.OpStats, want: api.ServiceFilter{},
			check: func(t *testing.T, c Command) { want(t, c.Watch, time.Duration(0)) }},
		{args: "stats --service any:10.0.0.1:0", action: ActStats, op: api.OpStats, want: filter("any", "10.0.0.1", 0)},
		{args: "stats --watch", action: ActStats, op: api.OpStats, want: api.ServiceFilter{},
			check: func(t *testing.T, c Command) { want(t, c.Watch, time.Second) }},
		{args: "stats --watch 2", action: ActStats, op: api.OpStats, want: api.ServiceFilter{},
			check: func(t *testing.T, c Command) { want(t, c.Watch, 2*time.Second) }},
		{args: "stats --watch=1500ms --count 3", action: ActStats, op: api.OpStats, want: api.ServiceFilter{},
			check: func(t *testing.T, c Command) { want(t, c.Watch, 1500*time.Millisecond); want(t, c.Count, 3) }},
		{args: "stats --watch=0.01", action: ActStats, op: api.OpStats, want: api.ServiceFilter{},
			check: func(t *testing.T, c Command) { want(t, c.Watch, MinWatch) }},
	} {
		t.Run(tc.args, func(t *testing.T) {
			c, err := Parse(strings.Fields(tc.args))
			if tc.action < 0 {
				if err == nil {
					t.Fatalf("no error, got %+v", c)
				}
				return
			}
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if c.Action != tc.action || c.Op != tc.op {
				t.Fatalf("action %v op %q, want %v %q", c.Action, c.Op, tc.action, tc.op)
			}
			if !reflect.DeepEqual(c.Args, tc.want) {
				t.Errorf("args\n got %#v\nwant %#v", c.Args, tc.want)
			}
			if tc.check != nil {
				tc.check(t, c)
			}
		})
	}
}

func want[T any](t *testing.T, got, want T) {
	t.Helper()
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %#v, want %#v", got, want)
	}
}

// TestParseErrors: every bad command line is a *UsageError saying what is
// wrong.
func TestParseErrors(t *testing.T) {
	for _, tc := range []struct{ args, msg string }{
		{"-A", "you need to supply the service-address"},
		{"-a -t 10.0.0.1:80", "you need to supply the -r"},
		{"-d -r 10.0.1.1", "you need to supply the service-address"},
		{"-A -D -t 10.0.0.1:80", "multiple commands"},
		{"-Ln -L", "multiple commands"},
		{"-A -t 10.0.0.1:80 -t 10.0.0.2:80", "multiple -t options"},
		{"-A -t 10.0.0.1:80 -u 10.0.0.1:80", "multiple service-address"},
		{"-a -t 10.0.0.1:80 -r 10.0.1.1 -g -m", "multiple forwarding-method"},
		{"-a -t 10.0.0.1:80 -r 10.0.1.1 -w 1 -w 2", "multiple -w options"},
		{"-A -t 10.0.0.1:80 -r 10.0.1.1", "illegal -r option with -A"},
		{"-A -t 10.0.0.1:80 -w 3", "illegal -w option with -A"},
		{"-D -t 10.0.0.1:80 -s rr", "illegal -s option with -D"},
		{"-C -t 10.0.0.1:80", "illegal -t option with -C"},
		{"-Z -n", "illegal -n option with -Z"},
		{"-L -s rr", "illegal -s option with -L"},
		{"-S --stats", "illegal --stats option with -S"},
		{"-d -t 10.0.0.1:80 -r 10.0.1.1 -w 2", "illegal -w option with -d"},
		{"-A -t 10.0.0.1:80 --format toml", "illegal --format option"},
		{"-A -t 10.0.0.1:80 -s foo", "unknown scheduler"},
		{"-A -t 10.0.0.1:80 -p 0", "invalid timeout"},
		{"-A -t 10.0.0.1:80 -p abc", "invalid timeout"},
		{"-A -t 10.0.0.1:80 -p 2678401", "invalid timeout"},
		{"-A -t 10.0.0.1:80 -p -M 255.0.255.0", "not contiguous"},
		{"-A -t 10.0.0.1:80 -M 33", "out of range"},
		{"-A -t [2001:db8::1]:80 -M 255.255.255.0", "prefix length"},
		{"-A -t 10.0.0.1:80 -b flag-3", "flag-3"},
		{"-A -t 10.0.0.1:80 -b sh-nope", "unknown scheduler flag"},
		{"-A -t www.example.com:80", "numeric addresses"},
		{"-A -t 10.0.0.1:99999", "bad port"},
		{"-A -t 10.0.0.1:nosuchport", "unknown port name"},
		{"-A -t 10.0.0.1:", "empty port"},
		{"-A -t [2001:db8::1:80", "missing ']'"},
		{"-A -t [10.0.0.1]:80", "bad IPv6"},
		{"-A -t [2001:db8::1]80", "want [IPv6]:port"},
		{"-A -t fe80::1%eth0", "zones"},
		{"-A -t 10.0.0.1:80 -o", "only for UDP"},
		{"-A -u 10.0.0.1:53 -o json", "-o json is for read commands"},
		{"-C -o json", "-o json is for read commands"},
		{"-L -o yaml", "want json or text"},
		{"-L -o json -o text", "multiple -o"},
		{"-A -t 10.0.0.1:80 --l3dsr", "needs the DSCP"},
		{"-A -t 10.0.0.1:80 --l3dsr 64", "DSCP value 1..63"},
		{"-A -t 10.0.0.1:80 --l3dsr=12 -m", "multiple forwarding-method"},
		{"-A -t 10.0.0.1:80 --laddr bogus", "--laddr"},
		{"-A -t 10.0.0.1:80 --fullnat --laddr 2001:db8::1", "family"},
		{"-a -t 10.0.0.1:80 -r 10.0.1.1 --l3dsr 64", "DSCP value 1..63"},
		{"-a -t 10.0.0.1:80 -r 10.0.1.1 --state gone", "want up, drain or down"},
		{"-A -t 10.0.0.1:80 --state drain", "illegal --state option with -A"},
		{"-a -t 10.0.0.1:80 -r 10.0.1.1 --maglev-size 7", "illegal --maglev-size option with -a"},
		{"-A -t 10.0.0.1:80 --on-remove keep", "want drain or drop"},
		{"-A -t 10.0.0.1:80 --slow-start soon", "--slow-start soon"},
		{"-A -t 10.0.0.1:80 --maglev-size x", "--maglev-size x"},
		{"-A -t 10.0.0.1:80 --client-port=", "--client-port needs"},
		{"-a -t 10.0.0.1:80 -r 10.0.1.1 --laddr 10.0.9.1", "illegal --laddr option with -a"},
		{"-a -t 10.0.0.1:80 -r 2001:db8::11", "family"},
		{"-a -t 10.0.0.1:80 -r 10.0.1.1 -w -1", "illegal weight"},
		{"-a -t 10.0.0.1:80 -r 10.0.1.1 -w 2000000", "illegal weight"},
		{"-a -t 10.0.0.1:80 -r 10.0.1.1 -w x", "illegal weight"},
		{"-a -t 10.0.0.1:80 -r 10.0.1.1:8080 -g", "cannot change the port"},
		{"-e -t 10.0.0.1:80 -r 10.0.1.1:8080 -i", "cannot change the port"},
		{"-A -f 1", "-f is not supported"},
		{"-A -t 10.0.0.1:80 -6", "-6 is not supported"},
		{"-a -t 10.0.0.1:80 -r 10.0.1.1 -x 5", "-x is not supported"},
		{"--set 1 2 3", "--set is not supported"},
		{"--start-daemon master", "--start-daemon is not supported"},
		{"-L --timeout", "--timeout is not supported"},
		{"-L --thresholds", "--thresholds is not supported"},
		{"-L --persistent-conn", "--persistent-conn is not supported"},
		{"-L -c --stats", "options conflict"},
		{"-Lnq", "unknown option -q"},
		{"--bogus", "unknown option --bogus"},
		{"-L --stats=1", "takes no value"},
		{"-n", "no command given"},
		{"-L extra", "unexpected argument"},
		{"-L -- extra", "unexpected argument"},
		{"-A -t", "needs a value"},
		{"--socket", "needs a value"},
		{"-L --socket=", "--socket needs a path"},
		{"-L --socket /a --socket /b", "multiple --socket"},
		{"-S --format xml", "want ipvsadm or toml"},
		{"frobnicate", "unknown command"},
		{"stats --count 3", "--count needs --watch"},
		{"stats --watch abc", "--watch abc"},
		{"stats --watch=-1s", "--watch"},
		{"stats --bogus", "unknown flag"},
		{"conns --limit -1", "--limit"},
		{"conns --real 10.0.0.1", "--real"},
		{"conns --client nope", "--client"},
		{"conns --service tcp:10.0.0.1:99999", "--service"},
		{"reload -o json", "-o json is for read commands"},
		{"health -o xml", "want json or text"},
		{"health extra", "unexpected argument"},
		{"bgp sideways", "want drain or undrain"},
		{"version --socket=", "--socket needs a path"},
	} {
		t.Run(tc.args, func(t *testing.T) {
			c, err := Parse(strings.Fields(tc.args))
			if err == nil {
				t.Fatalf("no error; got %+v", c)
			}
			var ue *UsageError
			if !errors.As(err, &ue) {
				t.Errorf("error %T is not a *UsageError: %v", err, err)
			}
			if !strings.Contains(err.Error(), tc.msg) {
				t.Errorf("error %q does not mention %q", err, tc.msg)
			}
		})
	}
}

func TestActionString(t *testing.T) {
	for a := ActHelp; a <= ActStats; a++ {
		if strings.HasPrefix(a.String(), "action(") {
			t.Errorf("action %d has no name", int(a))
		}
	}
	want(t, Action(99).String(), "action(99)")
}

// FuzzParse: no command line panics, and every error is a usage error.
func FuzzParse(f *testing.F) {
	for _, s := range []string{"-Ln", "-A -t 10.0.0.1:80 -p", "-a -t [2001:db8::1]:80 -r 2001:db8::2 -w 3",
		"stats --watch 2", "-lnc -o json", "conns --service udp:[::1]:53", "-o", "-E --any 1.2.3.4 --l3dsr 9"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, line string) {
		_, err := Parse(strings.Fields(line))
		var ue *UsageError
		if err != nil && !errors.As(err, &ue) {
			t.Fatalf("%q: error %T is not a usage error: %v", line, err, err)
		}
	})
}
