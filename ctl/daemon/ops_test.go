package daemon

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"gvs/ctl/api"
	"gvs/ctl/config"
)

func wantCode(t *testing.T, err error, code string) {
	t.Helper()
	var ae *api.Error
	if !errors.As(err, &ae) || ae.Code != code {
		t.Fatalf("error %v, want code %s", err, code)
	}
}

func intp(n int) *int { return &n }

var svc1 = api.ServiceID{Proto: "tcp", VIP: "198.18.250.1", Port: 80}

func TestEditMergesAndKeeps(t *testing.T) {
	d, _ := startDaemon(t, baseConfig+`
[[service]]
proto = "tcp"
vip = "198.18.250.2"
port = 443
method = "fullnat"
local_addrs = ["198.18.200.1"]
persistence = "300s"
slow_start = "5s"
  [[service.real]]
  addr = "198.18.1.20"
  weight = 2
`)
	id := api.ServiceID{Proto: "tcp", VIP: "198.18.250.2", Port: 443}
	// ipvsadm -E -t ... -s rr: the scheduler changes, persistence goes (as
	// in ipvsadm), the method, local addresses and slow start stay.
	if err := d.EditService(config.Service{Proto: "tcp", VIP: "198.18.250.2", Port: 443, Scheduler: "rr"}); err != nil {
		t.Fatal(err)
	}
	got, err := d.Services(api.ServiceFilter{Service: &id})
	if err != nil {
		t.Fatal(err)
	}
	s := got[0]
	if s.Scheduler != "rr" || s.Method != "fullnat" || len(s.LocalAddrs) != 1 || s.SlowStart.Seconds() != 5 || s.Persistence.Duration != 0 || len(s.Reals) != 1 {
		t.Fatalf("after edit: %+v", s)
	}
	// edit_real: only what is given changes.
	if err := d.EditReal(api.RealArgs{Service: id, Real: config.Real{Addr: "198.18.1.20", State: "drain"}}); err != nil {
		t.Fatal(err)
	}
	got, _ = d.Services(api.ServiceFilter{Service: &id})
	if r := got[0].Reals[0]; *r.Weight != 2 || r.State != "drain" {
		t.Fatalf("after edit_real: %+v", r)
	}
	// A real named with the service's port is the real of port 0.
	if err := d.EditReal(api.RealArgs{Service: id, Real: config.Real{Addr: "198.18.1.20", Port: 443, Weight: intp(7)}}); err != nil {
		t.Fatal(err)
	}
	if err := d.AddReal(api.RealArgs{Service: id, Real: config.Real{Addr: "198.18.1.20", Port: 443}}); err == nil {
		t.Fatal("duplicate real (port 0 = 443) added")
	} else {
		wantCode(t, err, api.CodeExists)
	}
	// Errors are typed and change nothing.
	gen := d.Balancer().Load().Gen
	wantCode(t, d.AddService(config.Service{Proto: "tcp", VIP: "198.18.250.1", Port: 80}), api.CodeExists)
	wantCode(t, d.DeleteService(api.ServiceID{Proto: "udp", VIP: "198.18.250.1", Port: 80}), api.CodeNotFound)
	wantCode(t, d.AddReal(api.RealArgs{Service: api.ServiceID{Proto: "tcp", VIP: "198.18.9.9", Port: 1}, Real: config.Real{Addr: "198.18.1.1"}}), api.CodeNotFound)
	wantCode(t, d.DeleteReal(api.RealArgs{Service: svc1, Real: config.Real{Addr: "198.18.1.99", Port: 8080}}), api.CodeNotFound)
	wantCode(t, d.EditReal(api.RealArgs{Service: svc1, Real: config.Real{Addr: "198.18.1.10", Port: 8080, Weight: intp(-1)}}), api.CodeInvalid)
	err = d.AddService(config.Service{Proto: "tcp", VIP: "198.18.250.3", Port: 80, Scheduler: "nope"})
	wantCode(t, err, api.CodeInvalid)
	if !strings.Contains(err.Error(), "scheduler") {
		t.Fatalf("invalid error does not name the key: %v", err)
	}
	wantCode(t, d.AddService(config.Service{Proto: "tcp", VIP: "not-an-ip", Port: 80}), api.CodeInvalid)
	wantCode(t, d.AddService(config.Service{Proto: "tcp", VIP: "198.18.250.4", Port: 80, Method: "tunnel"}), api.CodeInvalid)
	if d.Balancer().Load().Gen != gen {
		t.Fatal("a refused change published a snapshot")
	}
}

// normalize makes services comparable across a save/restore: real methods
// equal to the service's become "", weights default to 1.
func normalize(svcs []config.Service) []config.Service {
	out := cloneServices(svcs)
	for i := range out {
		s := &out[i]
		if s.Scheduler == "" {
			s.Scheduler = "wlc"
		}
		for j := range s.Reals {
			r := &s.Reals[j]
			if r.Weight == nil {
				r.Weight = intp(1)
			}
			if r.Method == s.Method || (r.Method == "dr" && s.Method == "") {
				r.Method = ""
			}
		}
	}
	return out
}

const richServices = `
[[service]]
proto = "udp"
vip = "2001:db8::10"
port = 53
scheduler = "mh"
flags = ["hash-port", "fallback"]
persistence = "600s"
persistence_mask = 64
  [[service.real]]
  addr = "2001:db8:1::11"
  [[service.real]]
  addr = "2001:db8:1::12"
  state = "drain"
  weight = 0

[[service]]
proto = "any"
vip = "198.18.250.5"
port = 0
scheduler = "sh"
method = "fullnat"
local_addrs = ["198.18.200.1", "198.18.200.2"]
on_remove = "drop"
slow_start = "10s"
  [[service.real]]
  addr = "198.18.1.50"
  weight = 4
  [[service.real]]
  addr = "198.18.1.51"
  method = "nat"

[[service]]
proto = "tcp"
vip = "198.18.250.6"
port = 443
scheduler = "wrr"
method = "l3dsr"
dscp = 12
local_addrs = ["198.18.200.6"]
  [[service.real]]
  addr = "198.18.1.60"
  [[service.real]]
  addr = "198.18.1.61"
  method = "tunnel"
  [[service.real]]
  addr = "198.18.1.62"
  method = "l3dsr"
`

func TestSaveRestoreRoundTrip(t *testing.T) {
	d, _ := startDaemon(t, strings.Replace(baseConfig, "[[port]]", `[[port]]
name = "mem1"
[[port]]`, 1)+`
[[service]]
proto = "tcp"
vip = "198.18.250.7"
port = 80
client_port = "mem1"
maglev_size = 251
scheduler = "mh"
  [[service.real]]
  addr = "198.18.1.70"
`+richServices)
	before, _ := d.Services(api.ServiceFilter{})
	if len(before) != 5 {
		t.Fatalf("%d services", len(before))
	}

	// TOML: the whole file, which loads back to the same balancer config.
	text, err := d.Save("toml")
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Parse("saved.toml", []byte(text))
	if err != nil {
		t.Fatalf("saved TOML does not load: %v\n%s", err, text)
	}
	if !reflect.DeepEqual(cfg.LB.Services, d.cfg.LB.Services) || cfg.Global.Workers != 2 || len(cfg.Ports) != 2 {
		t.Fatalf("TOML round trip differs:\n%s", text)
	}

	// ipvsadm: save, clear, restore gives the same services.
	rules, err := d.Save("ipvsadm")
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Clear(); err != nil {
		t.Fatal(err)
	}
	if s, _ := d.Services(api.ServiceFilter{}); len(s) != 0 {
		t.Fatalf("%d services after clear", len(s))
	}
	if err := d.Restore(rules); err != nil {
		t.Fatalf("restore: %v\n%s", err, rules)
	}
	after, _ := d.Services(api.ServiceFilter{})
	if !reflect.DeepEqual(normalize(after), normalize(before)) {
		t.Fatalf("ipvsadm round trip differs:\nrules:\n%s\nbefore %+v\nafter  %+v", rules, normalize(before), normalize(after))
	}
	again, _ := d.Save("ipvsadm")
	if again != rules {
		t.Fatalf("second save differs:\n%s\nvs\n%s", again, rules)
	}
	_, err = d.Save("xml")
	wantCode(t, err, api.CodeBadRequest)
}

func TestRestoreIsAtomic(t *testing.T) {
	d, _ := startDaemon(t, baseConfig)
	gen := d.Balancer().Load().Gen
	// Line 3 names a service that does not exist: nothing is applied.
	err := d.Restore("-A -t 198.18.250.9:80 -s rr -m\n-a -t 198.18.250.9:80 -r 198.18.1.90:80 -m\n-a -t 198.18.250.8:80 -r 198.18.1.91:80 -m\n")
	wantCode(t, err, api.CodeNotFound)
	if !strings.Contains(err.Error(), "line 3") {
		t.Fatalf("error does not name the line: %v", err)
	}
	wantCode(t, d.Restore("-A -t 198.18.250.1:80 -s rr"), api.CodeExists)
	wantCode(t, d.Restore("-A -t 198.18.250.9:80 -s bogus"), api.CodeInvalid)
	wantCode(t, d.Restore("-A -t 198.18.250.9:80 --frobnicate"), api.CodeBadRequest)
	err = d.Restore("-A -t 198.18.250.9:80 --l3dsr 10\n-a -t 198.18.250.9:80 -r 198.18.1.1 --l3dsr 11")
	wantCode(t, err, api.CodeInvalid)
	if d.Balancer().Load().Gen != gen {
		t.Fatal("a failed restore changed the configuration")
	}
	// -C then new rules, in one step; -e and -d of what the text made.
	if err := d.Restore("-C\n-A -u 198.18.250.9:53 -s rr -i --laddr 198.18.200.9\n-a -u 198.18.250.9:53 -r 198.18.1.1 -i -w 2\n-a -u 198.18.250.9:53 -r 198.18.1.2 -m -w 2\n-e -u 198.18.250.9:53 -r 198.18.1.1 -w 9\n-d -u 198.18.250.9:53 -r 198.18.1.2:53\n"); err != nil {
		t.Fatal(err)
	}
	svcs, _ := d.Services(api.ServiceFilter{})
	if len(svcs) != 1 || svcs[0].Method != "tunnel" || len(svcs[0].Reals) != 1 || *svcs[0].Reals[0].Weight != 9 || svcs[0].Reals[0].Method != "" {
		t.Fatalf("restored %+v", svcs)
	}
}

func TestReloadFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "gvsd.toml")
	if err := os.WriteFile(path, []byte(baseConfig), 0o644); err != nil {
		t.Fatal(err)
	}
	d, _ := startDaemon(t, baseConfig)
	d.cfg.Path = path // as if loaded from the file
	if err := d.AddService(config.Service{Proto: "udp", VIP: "198.18.250.9", Port: 53}); err != nil {
		t.Fatal(err)
	}
	if d.ConfigPath() != path {
		t.Fatalf("a change lost the file path: %q", d.ConfigPath())
	}
	// Reload discards runtime changes and picks up the file's.
	if err := os.WriteFile(path, []byte(baseConfig+"\n  [[service.real]]\n  addr = \"198.18.1.12\"\n  port = 8080\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := d.ReloadFile(); err != nil {
		t.Fatal(err)
	}
	svcs, _ := d.Services(api.ServiceFilter{})
	if len(svcs) != 1 || len(svcs[0].Reals) != 3 {
		t.Fatalf("after reload: %+v", svcs)
	}
	// An invalid file is refused with its line; nothing changes.
	if err := os.WriteFile(path, []byte(baseConfig+"\n  [[service.real]]\n  addr = \"198.18.1.300\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	gen := d.Balancer().Load().Gen
	err := d.ReloadFile()
	wantCode(t, err, api.CodeInvalid)
	if !strings.Contains(err.Error(), "gvsd.toml:") {
		t.Fatalf("error without file:line: %v", err)
	}
	if d.Balancer().Load().Gen != gen {
		t.Fatal("refused reload changed the snapshot")
	}
}

func TestSessionsPaging(t *testing.T) {
	d, port := startDaemon(t, baseConfig)
	const flows = 57
	for i := 0; i < flows; i++ {
		port.MemQueue(0).Inject(syn(t, i))
	}
	perReal := map[string]int{}
	for _, b := range collect(t, port, flows) {
		perReal[dstOf(b).String()+":8080"]++
	}
	ctx := context.Background()
	seen := map[string]api.Session{}
	cursor, pages := "", 0
	for {
		page, err := d.Sessions(ctx, api.SessionFilter{Limit: 5, Cursor: cursor})
		if err != nil {
			t.Fatal(err)
		}
		if len(page.Sessions) > 5 {
			t.Fatalf("page of %d", len(page.Sessions))
		}
		for _, s := range page.Sessions {
			if _, dup := seen[s.Client]; dup {
				t.Fatalf("session %s twice", s.Client)
			}
			seen[s.Client] = s
		}
		pages++
		if page.Next == "" {
			break
		}
		cursor = page.Next
	}
	if len(seen) != flows || pages < flows/5 {
		t.Fatalf("%d sessions in %d pages, want %d", len(seen), pages, flows)
	}
	for _, s := range seen {
		if s.Proto != "tcp" || s.VIP != "198.18.250.1:80" || s.State != "SYN_SENT" || s.Expires < 50 || s.Expires > 60 || s.Local != "" {
			t.Fatalf("session %+v", s)
		}
		if _, ok := perReal[s.Real]; !ok {
			t.Fatalf("session on real %q, traffic went to %v", s.Real, perReal)
		}
	}
	// Filters: real, client, service.
	for r, n := range perReal {
		page, err := d.Sessions(ctx, api.SessionFilter{Real: r})
		if err != nil || len(page.Sessions) != n || page.Next != "" {
			t.Fatalf("real %s: %d sessions (%v), want %d", r, len(page.Sessions), err, n)
		}
	}
	page, err := d.Sessions(ctx, api.SessionFilter{Client: "198.19.0.7"})
	if err != nil || len(page.Sessions) != 1 || page.Sessions[0].Client != "198.19.0.7:20007" {
		t.Fatalf("client filter: %+v %v", page, err)
	}
	page, _ = d.Sessions(ctx, api.SessionFilter{Client: "198.19.0.7:1"})
	if len(page.Sessions) != 0 {
		t.Fatalf("client port filter: %+v", page)
	}
	page, err = d.Sessions(ctx, api.SessionFilter{Service: &svc1, Limit: 100000})
	if err != nil || len(page.Sessions) != flows {
		t.Fatalf("service filter: %d, %v", len(page.Sessions), err)
	}
	_, err = d.Sessions(ctx, api.SessionFilter{Service: &api.ServiceID{Proto: "udp", VIP: "198.18.250.1", Port: 80}})
	wantCode(t, err, api.CodeNotFound)
	_, err = d.Sessions(ctx, api.SessionFilter{Cursor: "9:0"})
	wantCode(t, err, api.CodeBadRequest)
	_, err = d.Sessions(ctx, api.SessionFilter{Real: "nope"})
	wantCode(t, err, api.CodeBadRequest)
	_, err = d.Sessions(ctx, api.SessionFilter{Limit: -1})
	wantCode(t, err, api.CodeBadRequest)
}

func TestHandle(t *testing.T) {
	d, _ := startDaemon(t, baseConfig)
	ctx := context.Background()
	res, err := d.Handle(ctx, api.OpHealth, nil)
	if b, _ := json.Marshal(res); err != nil || string(b) != "[]" {
		t.Fatalf("health: %s %v", b, err)
	}
	res, err = d.Handle(ctx, api.OpVRRP, nil)
	if b, _ := json.Marshal(res); err != nil || string(b) != "[]" {
		t.Fatalf("vrrp: %s %v", b, err)
	}
	d.SetHealth(func() []api.HealthStatus { return []api.HealthStatus{{Real: "x", Up: true}} })
	if h := d.Health(); len(h) != 1 {
		t.Fatalf("health provider: %v", h)
	}
	_, err = d.Handle(ctx, "frob", nil)
	wantCode(t, err, api.CodeUnknownOp)
	_, err = d.Handle(ctx, api.OpAddService, nil)
	wantCode(t, err, api.CodeBadRequest)
	_, err = d.Handle(ctx, api.OpAddService, json.RawMessage(`{"proto":"tcp","vipp":"1.2.3.4"}`))
	wantCode(t, err, api.CodeBadRequest)
	_, err = d.Handle(ctx, api.OpStats, json.RawMessage(`{"service":{"proto":"tcp","vip":"198.18.9.9","port":80}}`))
	wantCode(t, err, api.CodeNotFound)
	res, err = d.Handle(ctx, api.OpStats, json.RawMessage(`{"service":{"proto":"tcp","vip":"198.18.250.1","port":80}}`))
	if st, ok := res.(api.Stats); err != nil || !ok || len(st.Services) != 1 {
		t.Fatalf("stats: %+v %v", res, err)
	}
	res, err = d.Handle(ctx, api.OpVersion, nil)
	if v, ok := res.(api.VersionInfo); err != nil || !ok || v.Protocol != api.Version {
		t.Fatalf("version: %+v %v", res, err)
	}
}

// Changes run concurrently with stats and session listings (race detector).
func TestConcurrentOps(t *testing.T) {
	d, port := startDaemon(t, baseConfig)
	done := make(chan error, 3)
	go func() {
		for i := 0; i < 20; i++ {
			id := api.ServiceID{Proto: "udp", VIP: "198.18.250.20", Port: 1000 + i}
			if err := d.AddService(config.Service{Proto: id.Proto, VIP: id.VIP, Port: id.Port, Reals: []config.Real{{Addr: "198.18.1.1"}}}); err != nil {
				done <- err
				return
			}
			if i%2 == 0 {
				if err := d.DeleteService(id); err != nil {
					done <- err
					return
				}
			}
		}
		done <- nil
	}()
	go func() {
		for i := 0; i < 40; i++ {
			port.MemQueue(0).Inject(syn(t, i))
			if _, err := d.Sessions(context.Background(), api.SessionFilter{Limit: 3}); err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	go func() {
		for i := 0; i < 40; i++ {
			d.Stats(nil)
			d.Zero(nil)
			if _, err := d.Save("ipvsadm"); err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	for i := 0; i < 3; i++ {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	svcs, _ := d.Services(api.ServiceFilter{})
	if len(svcs) != 11 {
		t.Fatalf("%d services, want 11", len(svcs))
	}
}
