package daemon

import (
	"log/slog"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"gvs/ctl/api"
	"gvs/ctl/config"
	"gvs/driver"
	"gvs/driver/mem"
	"gvs/lb"
)

// steerPort is a mem port that records its steering rules.
type steerPort struct {
	*mem.Port
	mu    sync.Mutex
	rules []driver.SteerRule
}

func (p *steerPort) SetSteering(r []driver.SteerRule) error {
	p.mu.Lock()
	p.rules = append([]driver.SteerRule(nil), r...)
	p.mu.Unlock()
	return nil
}

func (p *steerPort) steers(vip string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, r := range p.rules {
		if r.Kind == driver.SteerService && r.Addr == netip.MustParseAddr(vip) {
			return true
		}
	}
	return false
}

const vrrpConfig = baseConfig + `
[[service]]
proto = "tcp"
vip = "198.18.250.2"
port = 80
method = "dr"
  [[service.real]]
  addr = "198.18.1.12"

[[vrrp]]
name = "vi"
interface = "gvs-no-such-if0"
vrid = 1
vips = ["198.18.250.1"]
track_services = ["all"]
`

// A service whose VIP belongs to a VRRP instance is steered only while the
// instance owns it; the others always.
func TestVRRPSteersOnlyOwnedVIPs(t *testing.T) {
	cfg, err := config.Parse("test.toml", []byte(vrrpConfig))
	if err != nil {
		t.Fatal(err)
	}
	var port *steerPort
	open := func(p config.Port, queues int, _ *slog.Logger) (driver.Port, error) {
		mp, err := mem.New(mem.Config{Name: p.Name, MAC: lbMAC, Queues: queues, RingSize: 1024})
		port = &steerPort{Port: mp}
		return port, err
	}
	d, err := New(Options{Config: cfg, Open: open, Hops: staticHops{}})
	if err != nil {
		t.Fatal(err)
	}
	d.Start()
	t.Cleanup(func() { d.Close() })
	if port.steers("198.18.250.1") || !port.steers("198.18.250.2") {
		t.Fatalf("before mastership: %v", port.rules)
	}
	d.vrrpOwner("vi", nil, true)
	if !port.steers("198.18.250.1") || !port.steers("198.18.250.2") {
		t.Fatalf("master: %v", port.rules)
	}
	d.vrrpOwner("vi", nil, false)
	if port.steers("198.18.250.1") {
		t.Fatalf("backup: %v", port.rules)
	}
	// The instance's interface does not exist: fault, with the reason.
	var st []api.VRRPStatus
	deadline := time.Now().Add(2 * time.Second)
	for time.Now().Before(deadline) {
		st = d.VRRP()
		if len(st) == 1 && st[0].State == "fault" {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if len(st) != 1 || st[0].State != "fault" || !strings.Contains(strings.Join(st[0].Faults, ";"), "gvs-no-such-if0") || st[0].VRID != 1 {
		t.Fatalf("status %+v", st)
	}
	// track_services: the service has resolved, weighted reals.
	if ok, why := d.serviceUp(cfg.LB.Services[0].Key()); !ok {
		t.Fatalf("service down: %s", why)
	}
	doc := strings.Replace(vrrpConfig, "  addr = \"198.18.1.10\"\n  port = 8080\n", "  addr = \"198.18.1.10\"\n  port = 8080\n  weight = 0\n", 1)
	doc = strings.Replace(doc, "  addr = \"198.18.1.11\"\n  port = 8080\n", "  addr = \"198.18.1.11\"\n  port = 8080\n  state = \"down\"\n", 1)
	cfg2, err := config.Parse("test.toml", []byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Reload(cfg2); err != nil {
		t.Fatal(err)
	}
	if ok, why := d.serviceUp(cfg.LB.Services[0].Key()); ok || !strings.Contains(why, "1 down, 1 draining") {
		t.Fatalf("service with no healthy real: %v %q", ok, why)
	}
	if ok, _ := d.serviceUp(lb.ServiceKey{Proto: lb.ProtoUDP}); ok {
		t.Fatal("unknown service up")
	}
	// The dataplane polls.
	w := &dataplaneWatch{d: d}
	if ok, why := w.up(); !ok {
		t.Fatal(why)
	}
	d.engine.Stop()
	w.up()
	time.Sleep(DataplaneStall + 100*time.Millisecond)
	if ok, why := w.up(); ok || !strings.Contains(why, "has not polled") {
		t.Fatalf("stopped workers: %v %q", ok, why)
	}
}
