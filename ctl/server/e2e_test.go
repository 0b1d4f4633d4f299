package server

import (
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"

	"gvs/ctl/api"
	"gvs/ctl/config"
	"gvs/ctl/daemon"
	"gvs/ctl/nexthop"
	"gvs/driver"
	"gvs/driver/mem"
	"gvs/lb"
)

// This file drives every operation through the socket against a daemon
// running the mem driver, and checks where traffic goes after each change.

type staticHops struct{}

func (staticHops) Resolve(addrs []netip.Addr) (map[netip.Addr]lb.NextHop, []nexthop.Problem) {
	m := map[netip.Addr]lb.NextHop{}
	for _, a := range addrs {
		b := a.As16()
		m[a] = lb.NextHop{MAC: [6]byte{2, 0, 0, 0, b[14], b[15]}, OK: true}
	}
	return m, nil
}

const e2eConfig = `
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

type e2e struct {
	t    *testing.T
	d    *daemon.Daemon
	port *mem.Port
	c    *api.Client
	path string // the configuration file
	sock string // the control socket
	next int    // next client number
}

func startE2E(t *testing.T) *e2e {
	t.Helper()
	path := filepath.Join(t.TempDir(), "gvsd.toml")
	if err := os.WriteFile(path, []byte(e2eConfig), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	var port *mem.Port
	open := func(p config.Port, queues int, _ *slog.Logger) (driver.Port, error) {
		mp, err := mem.New(mem.Config{Name: p.Name, MAC: lbMAC, Queues: queues, RingSize: 1024})
		port = mp
		return mp, err
	}
	d, err := daemon.New(daemon.Options{Config: cfg, Open: open, Hops: staticHops{}, Log: quiet})
	if err != nil {
		t.Fatal(err)
	}
	d.Start()
	t.Cleanup(func() { d.Close() })
	s := listen(t, Config{Handler: d})
	c, err := api.Dial(s.Path())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &e2e{t: t, d: d, port: port, c: c, path: path, sock: s.Path()}
}

func (e *e2e) call(op string, args, result any) {
	e.t.Helper()
	if err := e.c.Call(op, args, result); err != nil {
		e.t.Fatalf("%s: %v", op, err)
	}
}

func (e *e2e) callErr(op string, args any, code string) *api.Error {
	e.t.Helper()
	err := e.c.Call(op, args, nil)
	var ae *api.Error
	if !errors.As(err, &ae) || ae.Code != code {
		e.t.Fatalf("%s: error %v, want %s", op, err, code)
	}
	return ae
}

// send injects n new TCP flows (SYNs from new clients) to vip:port and
// returns how many reached each real address.
func (e *e2e) send(proto layers.IPProtocol, vip string, port uint16, n int) map[string]int {
	e.t.Helper()
	for i := 0; i < n; i++ {
		e.next++
		eth := &layers.Ethernet{SrcMAC: net.HardwareAddr{2, 0, 0, 0, 0, 0xcc}, DstMAC: lbMAC, EthernetType: layers.EthernetTypeIPv4}
		ip := &layers.IPv4{Version: 4, TTL: 64, Protocol: proto, SrcIP: net.IP{198, 19, byte(e.next >> 8), byte(e.next)}, DstIP: net.ParseIP(vip).To4()}
		var l4 gopacket.SerializableLayer
		if proto == layers.IPProtocolTCP {
			tc := &layers.TCP{SrcPort: layers.TCPPort(20000 + e.next), DstPort: layers.TCPPort(port), SYN: true, Window: 10}
			_ = tc.SetNetworkLayerForChecksum(ip)
			l4 = tc
		} else {
			u := &layers.UDP{SrcPort: layers.UDPPort(20000 + e.next), DstPort: layers.UDPPort(port)}
			_ = u.SetNetworkLayerForChecksum(ip)
			l4 = u
		}
		buf := gopacket.NewSerializeBuffer()
		if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, eth, ip, l4, gopacket.Payload("hi")); err != nil {
			e.t.Fatal(err)
		}
		e.port.MemQueue(0).Inject(buf.Bytes())
	}
	got := map[string]int{}
	total := 0
	deadline := time.Now().Add(300 * time.Millisecond)
	if n > 0 {
		deadline = time.Now().Add(5 * time.Second)
	}
	for time.Now().Before(deadline) && (n == 0 || total < n) {
		for q := 0; q < e.port.NumQueues(); q++ {
			e.port.MemQueue(q).Drain(0, func(b []byte) {
				a, _ := netip.AddrFromSlice(b[30:34])
				got[a.String()]++
				total++
			})
		}
		time.Sleep(time.Millisecond)
	}
	return got
}

func (e *e2e) services() []config.Service {
	e.t.Helper()
	var svcs []config.Service
	e.call(api.OpServices, nil, &svcs)
	return svcs
}

func intp(n int) *int { return &n }

func TestEveryOperation(t *testing.T) {
	e := startE2E(t)
	svc1 := api.ServiceID{Proto: "tcp", VIP: "198.18.250.1", Port: 80}
	svc2 := api.ServiceID{Proto: "tcp", VIP: "198.18.250.2", Port: 80}

	var v api.VersionInfo
	e.call(api.OpVersion, nil, &v)
	if v.Protocol != api.Version || v.Version != daemon.Version || v.Go == "" {
		t.Fatalf("version %+v", v)
	}
	var health []api.HealthStatus
	e.call(api.OpHealth, nil, &health)
	var vrrp []api.VRRPStatus
	e.call(api.OpVRRP, nil, &vrrp)
	if health == nil || len(health) != 0 || vrrp == nil || len(vrrp) != 0 {
		t.Fatalf("health %v vrrp %v, want empty lists", health, vrrp)
	}

	// Baseline traffic: both reals of service 1.
	// (Each worker schedules its own flows: rr is exact per worker only.)
	if got := e.send(layers.IPProtocolTCP, "198.18.250.1", 80, 10); got["198.18.1.10"] == 0 || got["198.18.1.10"]+got["198.18.1.11"] != 10 {
		t.Fatalf("baseline %v", got)
	}

	// add_service with one real; traffic to the new VIP reaches it.
	e.call(api.OpAddService, config.Service{Proto: "tcp", VIP: "198.18.250.2", Port: 80, Scheduler: "rr", Method: "nat",
		Reals: []config.Real{{Addr: "198.18.1.20", Port: 8080}}}, nil)
	if got := e.send(layers.IPProtocolTCP, "198.18.250.2", 80, 6); got["198.18.1.20"] != 6 {
		t.Fatalf("after add_service %v", got)
	}
	e.callErr(api.OpAddService, config.Service{Proto: "tcp", VIP: "198.18.250.2", Port: 80}, api.CodeExists)
	ae := e.callErr(api.OpAddService, config.Service{Proto: "tcp", VIP: "198.18.250.3", Port: 80, Scheduler: "bogus"}, api.CodeInvalid)
	if !strings.Contains(ae.Message, "scheduler") {
		t.Fatalf("invalid: %q", ae.Message)
	}
	e.callErr(api.OpAddService, map[string]any{"vip": "198.18.250.3", "colour": "red"}, api.CodeBadRequest)

	// add_real: rr over both.
	e.call(api.OpAddReal, api.RealArgs{Service: svc2, Real: config.Real{Addr: "198.18.1.21", Port: 8080}}, nil)
	got := e.send(layers.IPProtocolTCP, "198.18.250.2", 80, 10)
	if got["198.18.1.20"] == 0 || got["198.18.1.20"]+got["198.18.1.21"] != 10 {
		t.Fatalf("after add_real %v", got)
	}
	on21 := got["198.18.1.21"] + 6 // and all of the next 6
	e.callErr(api.OpAddReal, api.RealArgs{Service: svc2, Real: config.Real{Addr: "198.18.1.21", Port: 8080}}, api.CodeExists)
	e.callErr(api.OpAddReal, api.RealArgs{Service: api.ServiceID{Proto: "udp", VIP: "198.18.250.2", Port: 80}, Real: config.Real{Addr: "198.18.1.21"}}, api.CodeNotFound)

	// edit_real weight 0: no new flows for it.
	e.call(api.OpEditReal, api.RealArgs{Service: svc2, Real: config.Real{Addr: "198.18.1.20", Port: 8080, Weight: intp(0)}}, nil)
	if got := e.send(layers.IPProtocolTCP, "198.18.250.2", 80, 6); got["198.18.1.21"] != 6 {
		t.Fatalf("after edit_real weight 0 %v", got)
	}
	e.call(api.OpEditReal, api.RealArgs{Service: svc2, Real: config.Real{Addr: "198.18.1.20", Port: 8080, Weight: intp(1)}}, nil)

	// delete_real: the other takes everything.
	e.call(api.OpDeleteReal, api.RealArgs{Service: svc2, Real: config.Real{Addr: "198.18.1.21", Port: 8080}}, nil)
	if got := e.send(layers.IPProtocolTCP, "198.18.250.2", 80, 6); got["198.18.1.20"] != 6 {
		t.Fatalf("after delete_real %v", got)
	}
	e.callErr(api.OpDeleteReal, api.RealArgs{Service: svc2, Real: config.Real{Addr: "198.18.1.21", Port: 8080}}, api.CodeNotFound)

	// edit_service: the scheduler changes, the method stays.
	e.call(api.OpEditService, config.Service{Proto: "tcp", VIP: "198.18.250.2", Port: 80, Scheduler: "wlc"}, nil)
	var one []config.Service
	e.call(api.OpServices, api.ServiceFilter{Service: &svc2}, &one)
	if len(one) != 1 || one[0].Scheduler != "wlc" || one[0].Method != "nat" || len(one[0].Reals) != 1 {
		t.Fatalf("after edit_service %+v", one)
	}
	e.callErr(api.OpServices, api.ServiceFilter{Service: &api.ServiceID{Proto: "tcp", VIP: "198.18.9.9", Port: 1}}, api.CodeNotFound)
	e.callErr(api.OpEditService, config.Service{Proto: "udp", VIP: "198.18.250.2", Port: 80}, api.CodeNotFound)

	// stats and zero.
	// Workers publish their counters every 100 ms.
	var st api.Stats
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		e.call(api.OpStats, api.ServiceFilter{Service: &svc2}, &st)
		if len(st.Services) == 1 && st.Services[0].Conns == 28 {
			break
		}
	}
	if len(st.Services) != 1 || st.Services[0].Conns != 28 || len(st.Workers) != 2 || len(st.Ports) != 1 || st.Ports[0].Name != "mem0" {
		t.Fatalf("stats %+v", st)
	}
	e.call(api.OpZero, api.ServiceFilter{Service: &svc2}, nil)
	e.call(api.OpStats, nil, &st)
	for _, s := range st.Services {
		if s.ServiceID == svc2 && s.Conns != 0 {
			t.Fatalf("service 2 not zeroed: %d", s.Conns)
		}
		if s.ServiceID == svc1 && s.Conns != 10 {
			t.Fatalf("service 1 zeroed too: %d", s.Conns)
		}
	}
	e.callErr(api.OpZero, api.ServiceFilter{Service: &api.ServiceID{Proto: "udp", VIP: "198.18.250.1", Port: 80}}, api.CodeNotFound)
	e.call(api.OpZero, nil, nil)

	// sessions: every flow sent so far, in pages, and filtered.
	seen := map[string]bool{}
	cursor := ""
	for {
		var page api.SessionPage
		e.call(api.OpSessions, api.SessionFilter{Limit: 4, Cursor: cursor}, &page)
		for _, s := range page.Sessions {
			if seen[s.Client] {
				t.Fatalf("session %s twice", s.Client)
			}
			seen[s.Client] = true
		}
		if cursor = page.Next; cursor == "" {
			break
		}
	}
	if len(seen) != 38 {
		t.Fatalf("%d sessions listed, want 38", len(seen))
	}
	var page api.SessionPage
	e.call(api.OpSessions, api.SessionFilter{Service: &svc1}, &page)
	if len(page.Sessions) != 10 || page.Next != "" {
		t.Fatalf("service 1 sessions: %d", len(page.Sessions))
	}
	e.call(api.OpSessions, api.SessionFilter{Real: "198.18.1.21:8080"}, &page)
	if len(page.Sessions) != on21 {
		t.Fatalf("sessions of the removed (draining) real: %d, want %d", len(page.Sessions), on21)
	}
	e.call(api.OpSessions, api.SessionFilter{Client: strings.Split(page.Sessions[0].Client, ":")[0]}, &page)
	if len(page.Sessions) != 1 {
		t.Fatalf("client filter: %d", len(page.Sessions))
	}
	e.callErr(api.OpSessions, api.SessionFilter{Cursor: "x"}, api.CodeBadRequest)

	// save (toml, ipvsadm), clear, restore.
	var saved api.SaveResult
	e.call(api.OpSave, api.SaveArgs{Format: "toml"}, &saved)
	if _, err := config.Parse("saved.toml", []byte(saved.Text)); err != nil || !strings.Contains(saved.Text, "198.18.250.2") {
		t.Fatalf("saved TOML: %v\n%s", err, saved.Text)
	}
	before := e.services()
	e.call(api.OpSave, api.SaveArgs{Format: "ipvsadm"}, &saved)
	wantRules := "-A -t 198.18.250.1:80 -s rr -m\n" +
		"-a -t 198.18.250.1:80 -r 198.18.1.10:8080 -m -w 1\n" +
		"-a -t 198.18.250.1:80 -r 198.18.1.11:8080 -m -w 1\n" +
		"-A -t 198.18.250.2:80 -s wlc -m\n" +
		"-a -t 198.18.250.2:80 -r 198.18.1.20:8080 -m -w 1\n"
	if saved.Text != wantRules {
		t.Fatalf("ipvsadm save:\n%s\nwant:\n%s", saved.Text, wantRules)
	}
	e.callErr(api.OpSave, api.SaveArgs{Format: "yaml"}, api.CodeBadRequest)
	e.call(api.OpClear, nil, nil)
	if svcs := e.services(); len(svcs) != 0 {
		t.Fatalf("%d services after clear", len(svcs))
	}
	if got := e.send(layers.IPProtocolTCP, "198.18.250.2", 80, 0); len(got) != 0 {
		t.Fatalf("traffic forwarded after clear: %v", got)
	}
	e.call(api.OpRestore, api.RestoreArgs(saved), nil)
	after := e.services()
	for i := range before {
		for j := range before[i].Reals {
			before[i].Reals[j].Weight = intp(1) // -w 1 written for the default
		}
	}
	if !reflect.DeepEqual(after, before) {
		t.Fatalf("restore:\n got %+v\nwant %+v", after, before)
	}
	if got := e.send(layers.IPProtocolTCP, "198.18.250.2", 80, 3); got["198.18.1.20"] != 3 {
		t.Fatalf("after restore %v", got)
	}
	ae = e.callErr(api.OpRestore, api.RestoreArgs{Text: "-A -u 198.18.250.5:53\n-a -u 198.18.250.6:53 -r 198.18.1.1"}, api.CodeNotFound)
	if !strings.Contains(ae.Message, "line 2") {
		t.Fatalf("restore error: %q", ae.Message)
	}
	e.callErr(api.OpRestore, nil, api.CodeBadRequest)

	// A udp service added with restore carries udp.
	e.call(api.OpRestore, api.RestoreArgs{Text: "-A -u 198.18.250.5:53 -s rr\n-a -u 198.18.250.5:53 -r 198.18.1.50 -g\n"}, nil)
	if got := e.send(layers.IPProtocolUDP, "198.18.250.5", 53, 4); got["198.18.250.5"] != 4 {
		// dr keeps the destination IP (the VIP); only the MAC changes.
		t.Fatalf("udp dr service %v", got)
	}

	// delete_service: its VIP is no longer served.
	e.call(api.OpDeleteService, svc2, nil)
	if got := e.send(layers.IPProtocolTCP, "198.18.250.2", 80, 0); len(got) != 0 {
		t.Fatalf("traffic forwarded after delete_service: %v", got)
	}
	e.callErr(api.OpDeleteService, svc2, api.CodeNotFound)

	// reload: the file's configuration again, runtime changes gone.
	if err := os.WriteFile(e.path, []byte(e2eConfig+"\n  [[service.real]]\n  addr = \"198.18.1.12\"\n  port = 8080\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	e.call(api.OpReload, nil, nil)
	svcs := e.services()
	if len(svcs) != 1 || len(svcs[0].Reals) != 3 {
		t.Fatalf("after reload %+v", svcs)
	}
	if got := e.send(layers.IPProtocolTCP, "198.18.250.1", 80, 9); got["198.18.1.12"] == 0 || got["198.18.1.10"]+got["198.18.1.11"]+got["198.18.1.12"] != 9 {
		t.Fatalf("after reload %v", got)
	}
	if err := os.WriteFile(e.path, []byte("[global]\nworkerz = 1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	ae = e.callErr(api.OpReload, nil, api.CodeInvalid)
	if !strings.Contains(ae.Message, "gvsd.toml:2") || !strings.Contains(ae.Message, "workerz") {
		t.Fatalf("reload error: %q", ae.Message)
	}
	if svcs := e.services(); len(svcs) != 1 {
		t.Fatal("refused reload changed the services")
	}

	// Unknown op and wrong version through the client's connection.
	e.callErr("frobnicate", nil, api.CodeUnknownOp)
}

// Many clients at once, mixing reads and changes, while traffic flows; the
// daemon serves afterwards.
func TestConcurrentClientsAgainstDaemon(t *testing.T) {
	e := startE2E(t)
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			sock, err := api.Dial(e.sock)
			if err != nil {
				errs <- err
				return
			}
			defer sock.Close()
			for j := 0; j < 10; j++ {
				id := api.ServiceID{Proto: "udp", VIP: "198.18.250.9", Port: 1000 + 100*i + j}
				var err error
				switch j % 4 {
				case 0:
					err = sock.Call(api.OpAddService, config.Service{Proto: id.Proto, VIP: id.VIP, Port: id.Port, Reals: []config.Real{{Addr: "198.18.1.1"}}}, nil)
				case 1:
					var st api.Stats
					err = sock.Call(api.OpStats, nil, &st)
				case 2:
					var p api.SessionPage
					err = sock.Call(api.OpSessions, api.SessionFilter{Limit: 10}, &p)
				case 3:
					var s api.SaveResult
					err = sock.Call(api.OpSave, api.SaveArgs{Format: "ipvsadm"}, &s)
				}
				if err != nil {
					errs <- err
					return
				}
			}
		}(i)
	}
	e.send(layers.IPProtocolTCP, "198.18.250.1", 80, 20)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if svcs := e.services(); len(svcs) != 1+8*3 {
		t.Fatalf("%d services, want %d", len(svcs), 1+8*3)
	}
}
