package tests

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"gvs/ctl/api"
	"gvs/tests/lab"
)

// An active/standby pair of gvs with traffic:
//
//	client 198.18.0.2 ── 198.18.0.1 rt 198.18.1.254 ─┐
//	                                               br0 (sw) ── gvs a 198.18.1.1 ┐ VIPs 198.18.1.10 (service),
//	                                                  ├── gvs b 198.18.1.2 ┘      198.18.1.253 (reals' gateway)
//	                                                  ├── real0 198.18.1.11
//	                                                  └── real1 198.18.1.12
//
// Two VRRP instances in one sync group: "front" holds the service VIP,
// "gw" the reals' default gateway (nat replies must come back to the node
// that has the session) and the fullnat local address. The router reaches
// the VIP on the LAN; gratuitous ARPs move it.

const (
	haVIP     = "198.18.1.10"
	haGateway = "198.18.1.253"
	haLocal   = "198.18.1.100"
)

type haLab struct {
	t      *testing.T
	l      *lab.Lab
	driver string
	method string
	cl, rt *lab.NS
	sw     *lab.NS
	a, b   *vnode
	reals  []*lab.NS
	// extra is appended to both nodes' configuration (session sync).
	extra func(n *vnode) string
}

func newHALab(t *testing.T, drv, method string) *haLab {
	l := lab.New(t)
	h := &haLab{t: t, l: l, driver: drv, method: method, sw: l.NS("sw"), cl: l.NS("cl"), rt: l.NS("rt")}
	h.a = &vnode{t: t, name: "a", ns: l.NS("a"), port: "pa"}
	h.b = &vnode{t: t, name: "b", ns: l.NS("b"), port: "pb"}
	l.Veth(h.cl, "eth0", h.rt, "eth1")
	l.Veth(h.rt, "eth0", h.sw, "prt")
	l.Veth(h.a.ns, "eth0", h.sw, "pa")
	l.Veth(h.b.ns, "eth0", h.sw, "pb")
	ports := []string{"prt", "pa", "pb"}
	for i := 0; i < 2; i++ {
		r := l.NS(fmt.Sprintf("r%d", i))
		l.Veth(r, "eth0", h.sw, fmt.Sprintf("pr%d", i))
		ports = append(ports, fmt.Sprintf("pr%d", i))
		h.reals = append(h.reals, r)
	}
	l.Bridge(h.sw, "br0", ports...)
	h.cl.Addr("eth0", "198.18.0.2/24")
	h.cl.Route("default", "198.18.0.1")
	h.rt.Addr("eth1", "198.18.0.1/24")
	h.rt.Addr("eth0", "198.18.1.254/24")
	h.rt.Sysctl("net.ipv4.ip_forward", "1")
	for i, n := range []*vnode{h.a, h.b} {
		n.ns.Addr("eth0", fmt.Sprintf("198.18.1.%d/24", i+1))
		n.ns.Route("default", "198.18.1.254")
		n.ns.Sysctl("net.ipv4.ip_forward", "0")
		n.dir = t.TempDir()
		n.events = watchAddrs(t, n.ns)
		n.mac = n.ns.MAC("eth0")
	}
	for i, r := range h.reals {
		r.Addr("eth0", fmt.Sprintf("198.18.1.%d/24", 11+i))
		if method == "nat" {
			r.Route("default", haGateway)
		} else {
			r.Route("default", "198.18.1.254")
		}
		r.TxChecksumOff("eth0")
		r.HTTPBackend(fmt.Sprintf("real%d", i), fmt.Sprintf("198.18.1.%d:8080", 11+i))
	}
	h.cl.TxChecksumOff("eth0")
	h.rt.TxChecksumOff("eth0")
	h.rt.TxChecksumOff("eth1")
	return h
}

// config returns node n's gvsd configuration at priority prio.
func (h *haLab) config(n *vnode, prio int) string {
	var b strings.Builder
	fmt.Fprintf(&b, "[global]\nworkers = 1\nsessions = 65536\n\n[global.timeouts]\ntcp_fin = \"5s\"\n\n[[port]]\nname = \"eth0\"\ndriver = %q\n\n", h.driver)
	fmt.Fprintf(&b, "[[service]]\nproto = \"tcp\"\nvip = %q\nport = 80\nscheduler = \"rr\"\nmethod = %q\n", haVIP, h.method)
	gwVIPs := fmt.Sprintf("%q", haGateway+"/24")
	if h.method == "fullnat" {
		fmt.Fprintf(&b, "local_addrs = [%q]\n", haLocal)
		gwVIPs += fmt.Sprintf(", %q", haLocal+"/24")
	}
	for i := range h.reals {
		fmt.Fprintf(&b, "  [[service.real]]\n  addr = \"198.18.1.%d\"\n  port = 8080\n", 11+i)
	}
	for _, inst := range []struct {
		name string
		vrid int
		vips string
		more string
	}{
		{"front", 51, fmt.Sprintf("%q", haVIP+"/24"), "track_services = [\"all\"]\ntrack_dataplane = true\n"},
		{"gw", 52, gwVIPs, ""},
	} {
		fmt.Fprintf(&b, "\n[[vrrp]]\nname = %q\ninterface = \"eth0\"\nvrid = %d\npriority = %d\nadvert_int = \"100ms\"\naccept = true\nvips = [%s]\nsync_group = \"lb\"\n%s",
			inst.name, inst.vrid, prio, inst.vips, inst.more)
	}
	if h.extra != nil {
		b.WriteString(h.extra(n))
	}
	return b.String()
}

func (h *haLab) start(n *vnode, prio int) {
	h.t.Helper()
	n.kind = "gvs"
	cfg := filepath.Join(n.dir, "gvsd.toml")
	if err := os.WriteFile(cfg, []byte(h.config(n, prio)), 0o644); err != nil {
		h.t.Fatal(err)
	}
	n.sock = filepath.Join(n.dir, "gvsd.sock")
	n.proc = n.ns.Start(bin(h.t, "gvsd"), "--config", cfg, "--log-level", "debug", "--socket", n.sock)
	lab.Eventually(h.t, 10*time.Second, "gvsd started in "+n.name, func() error {
		if n.proc.Exited() {
			h.t.Fatalf("gvsd exited:\n%s", n.proc.Output())
		}
		if !strings.Contains(n.proc.Output(), "gvs started") {
			return fmt.Errorf("not yet")
		}
		return nil
	})
}

// waitMaster waits until n's instances are both master and the other
// node's both backup.
func (h *haLab) waitMaster(n *vnode, timeout time.Duration) {
	h.t.Helper()
	other := h.a
	if n == h.a {
		other = h.b
	}
	vip, gw := netip.MustParseAddr(haVIP), netip.MustParseAddr(haGateway)
	lab.Eventually(h.t, timeout, n.name+" master", func() error {
		if !n.hasVIP(vip) || !n.hasVIP(gw) {
			return fmt.Errorf("%s lacks a vip", n.name)
		}
		if other.proc != nil && (other.hasVIP(vip) || other.hasVIP(gw)) {
			return fmt.Errorf("%s still has a vip", other.name)
		}
		return nil
	})
}

// stream is a bounded stream of HTTP requests, each on a new connection.
type stream struct {
	mu       sync.Mutex
	ok, fail int
	slow     int // succeeded after more than 500 ms (a SYN retransmitted)
	errs     map[string]int
	maxLat   time.Duration
	failedAt []time.Time
}

// runStream sends a request every interval for d; the client gives each
// request timeout.
func (h *haLab) runStream(d, interval, timeout time.Duration) *stream {
	s := &stream{errs: map[string]int{}}
	c := h.cl.HTTPClient(timeout)
	var wg sync.WaitGroup
	url := fmt.Sprintf("http://%s/", haVIP)
	for end := time.Now().Add(d); time.Now().Before(end); time.Sleep(interval) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			start := time.Now()
			resp, err := c.Get(url)
			if err == nil {
				_, err = io.ReadAll(resp.Body)
				resp.Body.Close()
				if err == nil && resp.StatusCode != 200 {
					err = fmt.Errorf("status %d", resp.StatusCode)
				}
			}
			lat := time.Since(start)
			s.mu.Lock()
			defer s.mu.Unlock()
			if err != nil {
				s.fail++
				msg := err.Error()
				if i := strings.LastIndex(msg, ": "); i >= 0 {
					msg = msg[i+2:]
				}
				s.errs[msg]++
				s.failedAt = append(s.failedAt, start)
				return
			}
			s.ok++
			s.maxLat = max(s.maxLat, lat)
			if lat > 500*time.Millisecond {
				s.slow++
			}
		}()
	}
	wg.Wait()
	return s
}

func (s *stream) String() string {
	return fmt.Sprintf("%d requests, %d failed %v, %d delayed > 500ms, slowest success %v", s.ok+s.fail, s.fail, s.errs, s.slow, s.maxLat.Round(time.Millisecond))
}

// TestVRRPTrafficFailover: new connections through a gvs pair keep being
// served across failovers — graceful stop, the master's link down, and
// the preemption back — on AF_XDP (the backup does not steer the VIP; the
// kernel answers ARP, XDP takes the service's packets) and on AF_PACKET
// (the kernel's copy of the service traffic is dropped by the guard). The
// failed requests of a bounded stream are counted and reported.
func TestVRRPTrafficFailover(t *testing.T) {
	for _, drv := range []string{"afxdp", "afpacket"} {
		t.Run(drv, func(t *testing.T) {
			h := newHALab(t, drv, "nat")
			h.start(h.a, 200)
			h.start(h.b, 100)
			h.waitMaster(h.a, 5*time.Second)
			h.cl.WaitTCP(haVIP+":80", 5*time.Second)
			// Requests every 10 ms; the client waits up to 2 s for each, so
			// a SYN lost to the outage is retransmitted after 1 s.
			const interval, timeout = 10 * time.Millisecond, 2 * time.Second
			scenario := func(name string, act func(), newMaster *vnode) {
				var s *stream
				done := make(chan struct{})
				go func() { s = h.runStream(3*time.Second, interval, timeout); close(done) }()
				time.Sleep(time.Second)
				act()
				<-done
				h.waitMaster(newMaster, 3*time.Second)
				t.Logf("TRAFFIC %s %s: %v", drv, name, s)
				if s.ok < 200 {
					t.Errorf("%s: %v", name, s)
				}
			}
			scenario("graceful stop of the master", func() { h.a.signal() }, h.b)
			h.a.wait()
			if st := h.b.gvsStates(); len(st) != 2 || st[0].State != "master" || st[1].State != "master" {
				t.Fatalf("b: %+v", st)
			}
			scenario("a restarts and preempts", func() { h.start(h.a, 200) }, h.a)
			scenario("a's link down", func() { h.setPort(h.a, false) }, h.b)
			scenario("a's link up, preemption", func() { h.setPort(h.a, true) }, h.a)
			h.a.stop()
			h.b.stop()
		})
	}
}

func (h *haLab) setPort(n *vnode, up bool) {
	h.t.Helper()
	(&vrrpLab{t: h.t, sw: h.sw}).setPort(n, up)
}

// gvsStates asks a gvs node for all its instances.
func (n *vnode) gvsStates() []api.VRRPStatus {
	n.t.Helper()
	c, err := api.Dial(n.sock)
	if err != nil {
		n.t.Fatal(err)
	}
	defer c.Close()
	var vs []api.VRRPStatus
	if err := c.Call(api.OpVRRP, nil, &vs); err != nil {
		n.t.Fatal(err)
	}
	return vs
}

// longConn is one keep-alive HTTP connection from the client to the VIP,
// sending a request every interval and counting the answers.
type longConn struct {
	mu       sync.Mutex
	ok, fail int
	reals    map[string]int
	firstErr error
	slowest  time.Duration
}

func (h *haLab) runLongConn(d, interval time.Duration) *longConn {
	h.t.Helper()
	lc := &longConn{reals: map[string]int{}}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	conn, err := h.cl.Dial(ctx, "tcp", haVIP+":80")
	if err != nil {
		h.t.Fatalf("long-lived connection: %v", err)
	}
	defer conn.Close()
	br := bufio.NewReader(conn)
	for end := time.Now().Add(d); time.Now().Before(end); time.Sleep(interval) {
		start := time.Now()
		conn.SetDeadline(start.Add(3 * time.Second))
		_, err := io.WriteString(conn, "GET / HTTP/1.1\r\nHost: vip\r\n\r\n")
		var body []byte
		if err == nil {
			var resp *http.Response
			if resp, err = http.ReadResponse(br, nil); err == nil {
				body, err = io.ReadAll(resp.Body)
				resp.Body.Close()
			}
		}
		lc.mu.Lock()
		if err != nil {
			lc.fail++
			if lc.firstErr == nil {
				lc.firstErr = err
			}
			lc.mu.Unlock()
			return lc // the connection is gone
		}
		lc.ok++
		lc.reals[strings.TrimSpace(string(body))]++
		lc.slowest = max(lc.slowest, time.Since(start))
		lc.mu.Unlock()
	}
	return lc
}

func (lc *longConn) String() string {
	return fmt.Sprintf("%d requests answered on one connection by %v, %d failed (%v), slowest %v",
		lc.ok, lc.reals, lc.fail, lc.firstErr, lc.slowest.Round(time.Millisecond))
}

// syncConfig is the [session_sync] of node n.
func (h *haLab) syncConfig(n *vnode) string {
	me, peer := "198.18.1.1", "198.18.1.2"
	if n == h.b {
		me, peer = peer, me
	}
	return fmt.Sprintf("\n[session_sync]\nlisten = \"%s:8848\"\npeer = \"%s:8848\"\nvrrp = \"front\"\n", me, peer)
}

// TestSessionSyncFailover: with session sync, a long-lived TCP connection
// through nat and fullnat (round robin, so a stateless pick on the new
// master would not find its real) survives the master's failure — its
// link goes down — and goes on on the same real; a bounded stream of new
// connections counts the requests lost. Without session sync (the
// control), the long-lived nat connection dies.
func TestSessionSyncFailover(t *testing.T) {
	for _, c := range []struct {
		drv, method string
		sync        bool
	}{
		{"afxdp", "nat", true}, {"afxdp", "fullnat", true}, {"afpacket", "nat", true}, {"afxdp", "nat", false},
	} {
		name := fmt.Sprintf("%s/%s/sync=%v", c.drv, c.method, c.sync)
		t.Run(name, func(t *testing.T) {
			h := newHALab(t, c.drv, c.method)
			if c.sync {
				h.extra = h.syncConfig
			}
			h.start(h.a, 200)
			h.start(h.b, 100)
			h.waitMaster(h.a, 5*time.Second)
			h.cl.WaitTCP(haVIP+":80", 5*time.Second)
			var lc *longConn
			var s *stream
			var wg sync.WaitGroup
			wg.Add(2)
			go func() { defer wg.Done(); lc = h.runLongConn(4*time.Second, 50*time.Millisecond) }()
			go func() { defer wg.Done(); s = h.runStream(4*time.Second, 10*time.Millisecond, 2*time.Second) }()
			time.Sleep(1500 * time.Millisecond)
			h.setPort(h.a, false)
			wg.Wait()
			h.waitMaster(h.b, 2*time.Second)
			t.Logf("SYNC %s long-lived: %v", name, lc)
			t.Logf("SYNC %s new connections: %v", name, s)
			st := h.b.gvsStats()
			t.Logf("SYNC %s backup's session sync counters: %v", name, st.SessionSync)
			if !c.sync {
				if lc.fail == 0 {
					t.Logf("without session sync the long-lived connection survived (the stateless pick found its real)")
				}
				return
			}
			if lc.fail != 0 || len(lc.reals) != 1 {
				t.Errorf("the long-lived connection did not survive the failover on its real: %v", lc)
			}
			if st.SessionSync["imported"] == 0 || st.SessionSync["lost_datagrams"] != 0 {
				t.Errorf("backup's sync counters: %v", st.SessionSync)
			}
			// Fail back: a's link returns, a (still holding the sessions,
			// and b's updates) preempts; the connection goes on.
			// (a also re-resolves its reals' next hops after the link
			// returns: track_services holds it in fault until then.)
			done := make(chan *longConn)
			go func() { done <- h.runLongConn(6*time.Second, 50*time.Millisecond) }()
			time.Sleep(200 * time.Millisecond)
			up := time.Now()
			h.setPort(h.a, true)
			h.waitMaster(h.a, 10*time.Second)
			t.Logf("SYNC %s a master again %v after its link came back", name, time.Since(up).Round(time.Millisecond))
			lc = <-done
			t.Logf("SYNC %s new long-lived connection across the fail-back: %v", name, lc)
			if lc.fail != 0 {
				t.Errorf("fail-back broke a connection made on b: %v", lc)
			}
			h.a.stop()
			h.b.stop()
		})
	}
}

// gvsStats asks a gvs node for its counters.
func (n *vnode) gvsStats() api.Stats {
	n.t.Helper()
	c, err := api.Dial(n.sock)
	if err != nil {
		n.t.Fatal(err)
	}
	defer c.Close()
	var st api.Stats
	if err := c.Call(api.OpStats, nil, &st); err != nil {
		n.t.Fatal(err)
	}
	return st
}
