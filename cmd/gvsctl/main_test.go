package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"flag"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"gvs/ctl/api"
	"gvs/ctl/config"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden from the current output")

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

// answer is the fake daemon's reply to one request: a result or an error.
type answer func(req api.Request) (any, *api.Error)

func result(v any) answer { return func(api.Request) (any, *api.Error) { return v, nil } }

func refuse(code, msg string) answer {
	return func(api.Request) (any, *api.Error) { return nil, &api.Error{Code: code, Message: msg} }
}

// fakeDaemon speaks ctl/api on a Unix socket: it answers each op from its
// table (unknown ops get unknown_op) and records every request.
type fakeDaemon struct {
	t    *testing.T
	path string
	mu   sync.Mutex
	ops  map[string]answer
	reqs []api.Request
}

func newFake(t *testing.T, ops map[string]answer) *fakeDaemon {
	t.Helper()
	// A short directory: Unix socket paths are limited to 108 bytes.
	dir, err := os.MkdirTemp("", "gvsctl")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	f := &fakeDaemon{t: t, path: filepath.Join(dir, "gvsd.sock"), ops: ops}
	ln, err := net.Listen("unix", f.path)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				f.serve(c)
			}()
		}
	}()
	return f
}

func (f *fakeDaemon) serve(c net.Conn) {
	defer c.Close()
	sc := bufio.NewScanner(c)
	sc.Buffer(make([]byte, 64<<10), api.MaxRequest)
	for sc.Scan() {
		var req api.Request
		resp := api.Response{Version: api.Version}
		if err := json.Unmarshal(sc.Bytes(), &req); err != nil {
			resp.Error = api.Errorf(api.CodeBadRequest, "bad request: %v", err)
		} else if req.Version != api.Version {
			resp.Error = api.Errorf(api.CodeVersion, "version %d", req.Version)
		} else {
			resp.ID = req.ID
			f.mu.Lock()
			f.reqs = append(f.reqs, req)
			a := f.ops[req.Op]
			f.mu.Unlock()
			if a == nil {
				resp.Error = api.Errorf(api.CodeUnknownOp, "unknown op %q", req.Op)
			} else if v, e := a(req); e != nil {
				resp.Error = e
			} else if v != nil {
				resp.Result, _ = json.Marshal(v)
			}
		}
		b, _ := json.Marshal(resp)
		if _, err := c.Write(append(b, '\n')); err != nil {
			return
		}
	}
}

// requests returns the recorded requests and forgets them.
func (f *fakeDaemon) requests() []api.Request {
	f.mu.Lock()
	defer f.mu.Unlock()
	r := f.reqs
	f.reqs = nil
	return r
}

// call is an expected request: the op and its arguments as the typed value
// the daemon decodes them into.
type call struct {
	op   string
	args any // nil: no arguments
}

// checkCalls compares the recorded requests with want, decoding each
// request's arguments into the type of the wanted ones.
func checkCalls(t *testing.T, got []api.Request, want ...call) {
	t.Helper()
	if len(got) != len(want) {
		var ops []string
		for _, r := range got {
			ops = append(ops, r.Op+" "+string(r.Args))
		}
		t.Fatalf("%d requests, want %d:\n%s", len(got), len(want), strings.Join(ops, "\n"))
	}
	for i, w := range want {
		if got[i].Op != w.op {
			t.Errorf("request %d: op %q, want %q", i, got[i].Op, w.op)
			continue
		}
		if w.args == nil {
			if len(got[i].Args) != 0 {
				t.Errorf("request %d (%s): args %s, want none", i, w.op, got[i].Args)
			}
			continue
		}
		p := reflect.New(reflect.TypeOf(w.args))
		if err := json.Unmarshal(got[i].Args, p.Interface()); err != nil {
			t.Errorf("request %d (%s): %v", i, w.op, err)
			continue
		}
		if g := p.Elem().Interface(); !reflect.DeepEqual(g, w.args) {
			t.Errorf("request %d (%s):\n got %#v\nwant %#v", i, w.op, g, w.args)
		}
	}
}

// gvsctl runs the command in-process against the fake daemon.
func (f *fakeDaemon) gvsctl(stdin string, args ...string) (code int, stdout, stderr string) {
	var out, errb bytes.Buffer
	code = run(append([]string{"--socket", f.path}, args...), strings.NewReader(stdin), &out, &errb)
	return code, out.String(), errb.String()
}

func ptr[T any](v T) *T { return &v }

func statsFixture() api.Stats {
	return api.Stats{
		IntervalSec: 1,
		Services: []api.ServiceStats{
			{
				ServiceID: api.ServiceID{Proto: "udp", VIP: "2001:db8::53", Port: 53}, Scheduler: "sh", Method: "tunnel",
				Flags:    []string{"fallback"},
				Counters: api.Counters{Conns: 2, InPkts: 150_000_000, InBytes: 9_000_000_000, CPS: 0.4, InPPS: 1500},
				Reals: []api.RealStats{{Addr: "2001:db8:1::11", Port: 53, Method: "tunnel", Weight: 1, State: "up",
					InactiveConns: 2, Counters: api.Counters{Conns: 2, InPkts: 150_000_000, InBytes: 9_000_000_000, CPS: 0.4, InPPS: 1500}}},
			},
			{
				ServiceID: api.ServiceID{Proto: "tcp", VIP: "198.18.0.10", Port: 80}, Scheduler: "wrr", Method: "nat",
				Persistence: 300, PersistMask: 32,
				Counters: api.Counters{Conns: 600, InPkts: 4200, OutPkts: 3600, InBytes: 300_000, OutBytes: 2_400_000, CPS: 10, InPPS: 70, OutPPS: 60, InBPS: 5000, OutBPS: 40000},
				Reals: []api.RealStats{
					{Addr: "198.18.1.12", Port: 8080, Method: "nat", Weight: 2, State: "up", ActiveConns: 2, InactiveConns: 198,
						Counters: api.Counters{Conns: 200, InPkts: 1400, OutPkts: 1200, InBytes: 100_000, OutBytes: 800_000}},
					{Addr: "198.18.1.11", Port: 8080, Method: "nat", Weight: 3, State: "up", ActiveConns: 3, InactiveConns: 297,
						Counters: api.Counters{Conns: 300, InPkts: 2100, OutPkts: 1800, InBytes: 150_000, OutBytes: 1_200_000}},
					{Addr: "198.18.1.13", Port: 8080, Method: "fullnat", Weight: 1, State: "drain", InactiveConns: 100,
						Counters: api.Counters{Conns: 100, InPkts: 700, OutPkts: 600, InBytes: 50_000, OutBytes: 400_000}},
				},
			},
		},
		Workers: []api.WorkerStats{{Worker: 0, Counters: map[string]uint64{"rx_packets": 4200}, Drops: map[string]uint64{}}},
		Ports:   []api.PortStats{{Name: "eth0", Driver: "afpacket", RxPackets: 4200}},
	}
}

// saveText is what the daemon's OpSave returns for format ipvsadm: gvsctl
// -S prints it unchanged.
const saveText = `-A -t 198.18.0.10:80 -s wrr -p 300
-a -t 198.18.0.10:80 -r 198.18.1.11:8080 -m -w 3
-a -t 198.18.0.10:80 -r 198.18.1.12:8080 -m -w 2
-A -u [2001:db8::53]:53 -s sh -b sh-fallback
-a -u [2001:db8::53]:53 -r [2001:db8:1::11]:53 -i -w 1
`

func TestGoldenOutputs(t *testing.T) {
	f := newFake(t, map[string]answer{
		api.OpStats: result(statsFixture()),
		api.OpSave: func(req api.Request) (any, *api.Error) {
			var a api.SaveArgs
			_ = json.Unmarshal(req.Args, &a)
			if a.Format != "ipvsadm" {
				return nil, api.Errorf(api.CodeBadRequest, "format %q", a.Format)
			}
			return api.SaveResult{Text: saveText}, nil
		},
		api.OpSessions: result(api.SessionPage{Sessions: []api.Session{
			{Proto: "tcp", Client: "198.18.100.7:51234", VIP: "198.18.0.10:80", Real: "198.18.1.11:8080", State: "established", Expires: 899},
			{Proto: "udp", Client: "[2001:db8:f::1]:5353", VIP: "[2001:db8::53]:53", Real: "[2001:db8:1::11]:53", State: "udp", Expires: 61},
		}}),
	})
	for _, tc := range []struct {
		golden string
		args   []string
		call   call
	}{
		{"list.golden", []string{"-Ln"}, call{api.OpStats, api.ServiceFilter{}}},
		{"stats.golden", []string{"-L", "-n", "--stats"}, call{api.OpStats, api.ServiceFilter{}}},
		{"rate.golden", []string{"-Ln", "--rate"}, call{api.OpStats, api.ServiceFilter{}}},
		{"conns.golden", []string{"-Lnc"}, call{api.OpSessions, api.SessionFilter{Limit: api.MaxSessions}}},
		{"save.golden", []string{"-S", "-n"}, call{api.OpSave, api.SaveArgs{Format: "ipvsadm"}}},
		{"report.golden", []string{"stats"}, call{api.OpStats, api.ServiceFilter{}}},
	} {
		t.Run(tc.golden, func(t *testing.T) {
			code, out, errs := f.gvsctl("", tc.args...)
			if code != 0 {
				t.Fatalf("exit %d: %s", code, errs)
			}
			checkCalls(t, f.requests(), tc.call)
			golden(t, tc.golden, []byte(out))
		})
	}
	// -S prints exactly the daemon's text.
	if out, _ := os.ReadFile("testdata/save.golden"); string(out) != saveText && !*update {
		t.Errorf("save.golden is not the daemon's text")
	}
}

// TestCommands: each command line sends the right op and arguments and
// prints what it should.
func TestCommands(t *testing.T) {
	web := api.ServiceID{Proto: "tcp", VIP: "198.18.0.10", Port: 80}
	f := newFake(t, map[string]answer{
		api.OpAddService: result(nil), api.OpEditService: result(nil), api.OpDeleteService: result(nil),
		api.OpAddReal: result(nil), api.OpEditReal: result(nil), api.OpDeleteReal: result(nil),
		api.OpClear: result(nil), api.OpZero: result(nil), api.OpRestore: result(nil), api.OpReload: result(nil),
		api.OpStats:   result(statsFixture()),
		api.OpVersion: result(api.VersionInfo{Version: "0.1.0", Protocol: api.Version, Go: "go1.26.0"}),
		api.OpHealth: result([]api.HealthStatus{{Service: web, Real: "198.18.1.11:8080", Up: true, Since: "2025-01-02T03:04:05Z",
			LastResult: "ok", LatencyMS: 0.5}}),
		api.OpVRRP: result([]api.VRRPStatus{{Name: "vi_1", State: "master", Priority: 150}}),
	})
	svc := func(mod func(*config.Service)) config.Service {
		s := config.Service{Proto: "tcp", VIP: "198.18.0.10", Port: 80, Scheduler: "wlc", Method: "dr"}
		mod(&s)
		return s
	}
	for _, tc := range []struct {
		args   string
		stdin  string
		calls  []call
		stdout string // substring; "" for none expected
	}{
		{args: "-A -t 198.18.0.10:80 -s wrr -p", calls: []call{{api.OpAddService, svc(func(s *config.Service) {
			s.Scheduler, s.Persistence = "wrr", config.Duration{Duration: 300 * time.Second}
		})}}},
		{args: "-A -t 198.18.0.10:80 --fullnat --laddr 198.18.9.1 -s mh", calls: []call{{api.OpAddService, svc(func(s *config.Service) {
			s.Scheduler, s.Method, s.LocalAddrs = "mh", "fullnat", []string{"198.18.9.1"}
		})}}},
		{args: "-E -t 198.18.0.10:80 -s wrr", calls: []call{
			{api.OpEditService, config.Service{Proto: "tcp", VIP: "198.18.0.10", Port: 80, Scheduler: "wrr"}},
		}},
		{args: "-D -t 198.18.0.10:80", calls: []call{{api.OpDeleteService, web}}},
		{args: "-a -t 198.18.0.10:80 -r 198.18.1.12:8080 -m -w 2", calls: []call{{api.OpAddReal,
			api.RealArgs{Service: web, Real: config.Real{Addr: "198.18.1.12", Port: 8080, Weight: ptr(2), Method: "nat"}}}}},
		{args: "-e -t 198.18.0.10:80 -r 198.18.1.11:8080 -w 5", calls: []call{
			{api.OpEditReal, api.RealArgs{Service: web, Real: config.Real{Addr: "198.18.1.11", Port: 8080, Weight: ptr(5)}}},
		}},
		{args: "-a -t 198.18.0.10:80 -r 198.18.1.14 --l3dsr 10", calls: []call{
			{api.OpRestore, api.RestoreArgs{Text: "-a -t 198.18.0.10:80 -r 198.18.1.14 --l3dsr 10 -w 1\n"}},
		}},
		{args: "-d -t 198.18.0.10:80 -r 198.18.1.11:8080", calls: []call{{api.OpDeleteReal,
			api.RealArgs{Service: web, Real: config.Real{Addr: "198.18.1.11", Port: 8080}}}}},
		{args: "-C", calls: []call{{api.OpClear, nil}}},
		{args: "-Z", calls: []call{{api.OpZero, api.ServiceFilter{}}}},
		{args: "-Z -t 198.18.0.10:80", calls: []call{{api.OpZero, api.ServiceFilter{Service: &web}}}},
		{args: "-R", stdin: saveText, calls: []call{{api.OpRestore, api.RestoreArgs{Text: saveText}}}},
		{args: "reload", calls: []call{{api.OpReload, nil}}},
		{args: "-Ln -t 198.18.0.10:80", calls: []call{{api.OpStats, api.ServiceFilter{Service: &web}}},
			stdout: "Prot LocalAddress:Port Scheduler Flags\n"},
		{args: "version", calls: []call{{api.OpVersion, nil}}, stdout: "gvsd 0.1.0 (protocol 1, go1.26.0)\n"},
		{args: "-v", calls: []call{{api.OpVersion, nil}}, stdout: "gvsd 0.1.0"},
		{args: "health", calls: []call{{api.OpHealth, nil}}, stdout: "tcp 198.18.0.10:80  198.18.1.11:8080  up"},
		{args: "vrrp", calls: []call{{api.OpVRRP, nil}}, stdout: "vi_1  master  150"},
		{args: "stats --service tcp:198.18.0.10:80", calls: []call{{api.OpStats, api.ServiceFilter{Service: &web}}},
			stdout: "Workers\n"},
	} {
		t.Run(tc.args, func(t *testing.T) {
			code, out, errs := f.gvsctl(tc.stdin, strings.Fields(tc.args)...)
			if code != 0 {
				t.Fatalf("exit %d: %s", code, errs)
			}
			checkCalls(t, f.requests(), tc.calls...)
			if tc.stdout == "" && out != "" {
				t.Errorf("unexpected output %q", out)
			}
			if !strings.Contains(out, tc.stdout) {
				t.Errorf("output does not contain %q:\n%s", tc.stdout, out)
			}
			if errs != "" {
				t.Errorf("stderr: %s", errs)
			}
		})
	}
}

// TestJSON: -o json prints the API result, decodable into its type.
func TestJSON(t *testing.T) {
	vi := api.VersionInfo{Version: "0.1.0", Protocol: 1, Go: "go1.26.0"}
	f := newFake(t, map[string]answer{
		api.OpStats:    result(statsFixture()),
		api.OpVersion:  result(vi),
		api.OpSave:     result(api.SaveResult{Text: saveText}),
		api.OpSessions: result(api.SessionPage{Sessions: []api.Session{{Proto: "tcp", Client: "198.18.100.7:1", State: "established"}}}),
		api.OpHealth:   result([]api.HealthStatus{{Real: "198.18.1.11:8080", Up: true}}),
		api.OpVRRP:     result([]api.VRRPStatus{{Name: "vi_1", State: "backup"}}),
	})
	for _, tc := range []struct {
		args string
		want any
	}{
		{"-Ln -o json", statsFixture()},
		{"-L --stats --output=json", statsFixture()},
		{"-o json stats", statsFixture()},
		{"version -o json", vi},
		{"-S -o json", api.SaveResult{Text: saveText}},
		{"-Lnc -o json", api.SessionPage{Sessions: []api.Session{{Proto: "tcp", Client: "198.18.100.7:1", State: "established"}}}},
		{"conns -o json", api.SessionPage{Sessions: []api.Session{{Proto: "tcp", Client: "198.18.100.7:1", State: "established"}}}},
		{"health -o json", []api.HealthStatus{{Real: "198.18.1.11:8080", Up: true}}},
		{"vrrp --output json", []api.VRRPStatus{{Name: "vi_1", State: "backup"}}},
	} {
		t.Run(tc.args, func(t *testing.T) {
			code, out, errs := f.gvsctl("", strings.Fields(tc.args)...)
			if code != 0 {
				t.Fatalf("exit %d: %s", code, errs)
			}
			p := reflect.New(reflect.TypeOf(tc.want))
			if err := json.Unmarshal([]byte(out), p.Interface()); err != nil {
				t.Fatalf("%v:\n%s", err, out)
			}
			if got := p.Elem().Interface(); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got %#v\nwant %#v", got, tc.want)
			}
		})
	}
}

// TestSessionPaging: -Lnc follows the cursor to the last page; conns
// stops at --limit and says there are more.
func TestSessionPaging(t *testing.T) {
	sess := func(n int) api.Session {
		return api.Session{Proto: "tcp", Client: "198.18.100.7:" + string(rune('0'+n)), VIP: "198.18.0.10:80", Real: "198.18.1.11:8080", State: "established", Expires: n}
	}
	f := newFake(t, map[string]answer{
		api.OpSessions: func(req api.Request) (any, *api.Error) {
			var sf api.SessionFilter
			_ = json.Unmarshal(req.Args, &sf)
			switch sf.Cursor {
			case "":
				return api.SessionPage{Sessions: []api.Session{sess(1), sess(2)}, Next: "c2"}, nil
			case "c2":
				return api.SessionPage{Sessions: []api.Session{sess(3)}, Next: "c3"}, nil
			case "c3":
				return api.SessionPage{Sessions: []api.Session{sess(4)}}, nil
			}
			return nil, api.Errorf(api.CodeBadRequest, "bad cursor %q", sf.Cursor)
		},
	})
	code, out, errs := f.gvsctl("", "-Lnc")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	checkCalls(t, f.requests(),
		call{api.OpSessions, api.SessionFilter{Limit: api.MaxSessions}},
		call{api.OpSessions, api.SessionFilter{Limit: api.MaxSessions, Cursor: "c2"}},
		call{api.OpSessions, api.SessionFilter{Limit: api.MaxSessions, Cursor: "c3"}})
	if n := strings.Count(out, "ESTABLISHED"); n != 4 {
		t.Errorf("%d sessions listed, want 4:\n%s", n, out)
	}

	code, out, errs = f.gvsctl("", "conns", "--limit", "3", "--client", "198.18.100.7")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	checkCalls(t, f.requests(),
		call{api.OpSessions, api.SessionFilter{Client: "198.18.100.7", Limit: 3}},
		call{api.OpSessions, api.SessionFilter{Client: "198.18.100.7", Limit: 1, Cursor: "c2"}})
	if n := strings.Count(out, "established"); n != 3 {
		t.Errorf("%d sessions listed, want 3:\n%s", n, out)
	}
	if !strings.Contains(errs, "more sessions") {
		t.Errorf("no note about more sessions: %q", errs)
	}
}

// TestWatch: stats --watch redraws (clear screen) each refresh, --count
// bounds it; -o json gives one line per refresh.
func TestWatch(t *testing.T) {
	f := newFake(t, map[string]answer{api.OpStats: result(statsFixture())})
	start := time.Now()
	code, out, errs := f.gvsctl("", "stats", "--watch", "0.1", "--count", "2")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	if d := time.Since(start); d < 500*time.Millisecond {
		t.Errorf("two refreshes in %v: the refresh rate is not bounded", d)
	}
	if n := strings.Count(out, "\x1b[H\x1b[2J"); n != 2 {
		t.Errorf("%d redraws, want 2", n)
	}
	if len(f.requests()) != 2 {
		t.Errorf("want 2 stats requests")
	}
	code, out, _ = f.gvsctl("", "stats", "--watch=0.5", "--count=2", "-o", "json")
	if code != 0 || strings.Count(out, "\n") != 2 {
		t.Errorf("exit %d, want 2 JSON lines:\n%s", code, out)
	}
}

// TestDaemonErrors: a refusal is printed as "gvsctl: <message>" with exit
// status 1.
func TestDaemonErrors(t *testing.T) {
	f := newFake(t, map[string]answer{
		api.OpAddService:  refuse(api.CodeExists, "service tcp 198.18.0.10:80 already exists"),
		api.OpDeleteReal:  refuse(api.CodeNotFound, "no real 198.18.1.99:80 in service tcp 198.18.0.10:80"),
		api.OpEditService: refuse(api.CodeNotFound, "no service tcp 198.18.0.10:80"),
		api.OpStats:       result(api.Stats{}),
		api.OpRestore:     refuse(api.CodeInvalid, "line 2: unknown scheduler \"xx\""),
		api.OpReload:      refuse(api.CodeInvalid, "/etc/gvs/gvsd.toml:3: service[0].vip: bad address \"x\""),
	})
	for _, tc := range []struct{ args, stdin, msg string }{
		{"-A -t 198.18.0.10:80", "", "gvsctl: service tcp 198.18.0.10:80 already exists\n"},
		{"-d -t 198.18.0.10:80 -r 198.18.1.99", "", "gvsctl: no real 198.18.1.99:80 in service tcp 198.18.0.10:80\n"},
		{"-E -t 198.18.0.10:80 -s rr", "", "gvsctl: no service tcp 198.18.0.10:80\n"},
		{"-Ln -t 198.18.0.10:81", "", "gvsctl: no service tcp 198.18.0.10:81\n"},
		{"-R", "-A -t 198.18.0.10:80 -s xx\n", "gvsctl: line 2: unknown scheduler \"xx\"\n"},
		{"reload", "", "gvsctl: /etc/gvs/gvsd.toml:3: service[0].vip: bad address \"x\"\n"},
		{"vrrp", "", "gvsctl: unknown op \"vrrp\"\n"},
	} {
		t.Run(tc.args, func(t *testing.T) {
			code, out, errs := f.gvsctl(tc.stdin, strings.Fields(tc.args)...)
			if code != 1 {
				t.Errorf("exit %d, want 1", code)
			}
			if errs != tc.msg {
				t.Errorf("stderr %q, want %q", errs, tc.msg)
			}
			if out != "" {
				t.Errorf("stdout %q", out)
			}
		})
	}
}

// TestUsageExit: usage errors print the error and the usage on stderr,
// exit 2 and send nothing; -h prints the usage on stdout and exits 0.
func TestUsageExit(t *testing.T) {
	f := newFake(t, map[string]answer{})
	for _, args := range []string{
		"-A", "-A -t 198.18.0.10:80 -s nope", "-a -t 198.18.0.10:80 -r 198.18.1.1 -w -1", "-Lnq",
		"-A -D -t 198.18.0.10:80", "-C -o json", "frobnicate", "stats --count 2", "-f 1",
		"-a -t [2001:db8::1]:80 -r 198.18.1.1",
	} {
		t.Run(args, func(t *testing.T) {
			code, out, errs := f.gvsctl("", strings.Fields(args)...)
			if code != 2 {
				t.Errorf("exit %d, want 2", code)
			}
			if !strings.HasPrefix(errs, "gvsctl: ") || !strings.Contains(errs, "Usage (ipvsadm's grammar):") {
				t.Errorf("stderr lacks the error or the usage:\n%s", errs)
			}
			if out != "" {
				t.Errorf("stdout %q", out)
			}
			if r := f.requests(); len(r) != 0 {
				t.Errorf("sent %d requests", len(r))
			}
		})
	}
	for _, args := range []string{"-h", "--help", "help", "stats --help"} {
		code, out, errs := f.gvsctl("", strings.Fields(args)...)
		if code != 0 || !strings.Contains(out, "Usage (ipvsadm's grammar):") || errs != "" {
			t.Errorf("%s: exit %d, stdout %q, stderr %q", args, code, out, errs)
		}
	}
}

// TestSocket: --socket beats $GVS_SOCKET, which beats the default; no
// daemon is exit 1 with the path in the message.
func TestSocket(t *testing.T) {
	f := newFake(t, map[string]answer{api.OpReload: result(nil)})
	t.Setenv("GVS_SOCKET", f.path)
	var out, errb bytes.Buffer
	if code := run([]string{"reload"}, strings.NewReader(""), &out, &errb); code != 0 {
		t.Fatalf("with GVS_SOCKET: exit %d: %s", code, errb.String())
	}
	checkCalls(t, f.requests(), call{api.OpReload, nil})

	missing := filepath.Join(t.TempDir(), "none.sock")
	errb.Reset()
	if code := run([]string{"--socket", missing, "reload"}, strings.NewReader(""), &out, &errb); code != 1 {
		t.Errorf("missing socket: exit %d, want 1", code)
	}
	if !strings.Contains(errb.String(), "gvsctl: connect to gvsd at "+missing) {
		t.Errorf("stderr %q", errb.String())
	}
	if len(f.requests()) != 0 {
		t.Errorf("--socket did not override GVS_SOCKET")
	}
}
