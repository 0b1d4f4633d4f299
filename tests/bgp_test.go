package tests

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vishvananda/netlink"

	"gvs/ctl/api"
	"gvs/ctl/config"
	"gvs/tests/lab"
)

// Two gvs nodes announce a VIP over BGP to a BIRD 2 router that spreads
// the flows with ECMP:
//
//	client 198.18.0.2 ── 198.18.0.1 rt 198.18.1.254 (BIRD, AS 65000) ─┐
//	                                                     br0 (sw) ── gvs a 198.18.1.1 (AS 65010)
//	                                                        ├── gvs b 198.18.1.2 (AS 65010)
//	                                                        ├── real0 198.18.1.11 ┐ VIP 198.18.2.10 on lo,
//	                                                        └── real1 198.18.1.12 ┘ replies via rt (dr)
//
// The service is dr with the mh scheduler: both nodes pick the same real
// for a flow, and a node that gets a flow it has no session for (after
// ECMP moved it) picks it statelessly.

const (
	bgpVIP   = "198.18.2.10"
	bgpNodes = 2
)

type bgpLab struct {
	t     *testing.T
	l     *lab.Lab
	cl    *lab.NS
	rt    *lab.NS
	sw    *lab.NS
	nodes []*bgpNode
	reals []*lab.NS
	bird  *lab.Proc
	dir   string
}

type bgpNode struct {
	name string
	addr string
	ns   *lab.NS
	proc *lab.Proc
	dir  string
	sock string
}

func newBGPLab(t *testing.T) *bgpLab {
	if _, err := exec.LookPath("bird"); err != nil {
		t.Skip("bird (BIRD 2) not installed: make deps-system")
	}
	l := lab.New(t)
	b := &bgpLab{t: t, l: l, cl: l.NS("cl"), rt: l.NS("rt"), sw: l.NS("sw"), dir: t.TempDir()}
	l.Veth(b.cl, "eth0", b.rt, "eth1")
	l.Veth(b.rt, "eth0", b.sw, "prt")
	ports := []string{"prt"}
	for i := 0; i < bgpNodes; i++ {
		n := &bgpNode{name: string(rune('a' + i)), addr: fmt.Sprintf("198.18.1.%d", i+1), dir: t.TempDir()}
		n.ns = l.NS(n.name)
		l.Veth(n.ns, "eth0", b.sw, "p"+n.name)
		ports = append(ports, "p"+n.name)
		n.ns.Addr("eth0", n.addr+"/24")
		n.ns.Route("default", "198.18.1.254")
		n.ns.Sysctl("net.ipv4.ip_forward", "0")
		b.nodes = append(b.nodes, n)
	}
	for i := 0; i < 2; i++ {
		r := l.NS(fmt.Sprintf("r%d", i))
		l.Veth(r, "eth0", b.sw, fmt.Sprintf("pr%d", i))
		ports = append(ports, fmt.Sprintf("pr%d", i))
		b.reals = append(b.reals, r)
	}
	l.Bridge(b.sw, "br0", ports...)
	b.cl.Addr("eth0", "198.18.0.2/24")
	b.cl.Route("default", "198.18.0.1")
	b.rt.Addr("eth1", "198.18.0.1/24")
	b.rt.Addr("eth0", "198.18.1.254/24")
	b.rt.Sysctl("net.ipv4.ip_forward", "1")
	b.rt.Sysctl("net.ipv4.fib_multipath_hash_policy", "1") // L4 hash: one client's connections spread
	for i, r := range b.reals {
		addr := fmt.Sprintf("198.18.1.%d", 11+i)
		r.Addr("eth0", addr+"/24")
		r.Route("default", "198.18.1.254")
		r.TxChecksumOff("eth0")
		if out, err := r.Run(bin(t, "gvs-realserver"), "setup", "--method", "dr", "--vip", bgpVIP, "--dev", "eth0"); err != nil {
			t.Fatalf("gvs-realserver: %v\n%s", err, out)
		}
		r.HTTPBackend(fmt.Sprintf("real%d", i), bgpVIP+":80")
	}
	b.cl.TxChecksumOff("eth0")
	b.rt.TxChecksumOff("eth0")
	b.rt.TxChecksumOff("eth1")
	return b
}

// startBird runs BIRD 2 in the router: one eBGP session per node,
// the learnt routes merged into ECMP routes in the kernel.
func (b *bgpLab) startBird() {
	var c strings.Builder
	c.WriteString("router id 198.18.1.254;\nlog stderr all;\nprotocol device { scan time 1; }\n")
	c.WriteString("protocol kernel { ipv4 { import none; export all; }; merge paths on limit 8; }\n")
	for _, n := range b.nodes {
		fmt.Fprintf(&c, "protocol bgp gvs_%s { local 198.18.1.254 as 65000; neighbor %s as 65010; hold time 3; keepalive time 1; connect retry time 1; error wait time 1, 2; ipv4 { import all; export none; }; }\n", n.name, n.addr)
	}
	conf := filepath.Join(b.dir, "bird.conf")
	if err := os.WriteFile(conf, []byte(c.String()), 0o644); err != nil {
		b.t.Fatal(err)
	}
	b.bird = b.rt.Start("bird", "-f", "-c", conf, "-s", filepath.Join(b.dir, "bird.ctl"), "-P", filepath.Join(b.dir, "bird.pid"))
}

func (b *bgpLab) config(n *bgpNode) string {
	var c strings.Builder
	fmt.Fprintf(&c, "[global]\nworkers = 1\nsessions = 65536\n\n[[port]]\nname = \"eth0\"\ndriver = \"afxdp\"\n\n")
	fmt.Fprintf(&c, "[bgp]\nlocal_as = 65010\nrouter_id = %q\nwithdraw_delay = \"1s\"\n  [bgp.drain]\n  prepend = 2\n  [[bgp.neighbor]]\n  address = \"198.18.1.254\"\n  as = 65000\n  hold = \"3s\"\n  keepalive = \"1s\"\n\n", n.addr)
	fmt.Fprintf(&c, "[[service]]\nproto = \"tcp\"\nvip = %q\nport = 80\nscheduler = \"mh\"\nmethod = \"dr\"\nannounce = true\nmin_healthy = 1\n", bgpVIP)
	for i := range b.reals {
		fmt.Fprintf(&c, "  [[service.real]]\n  addr = \"198.18.1.%d\"\n", 11+i)
	}
	return c.String()
}

func (b *bgpLab) start(n *bgpNode) {
	b.t.Helper()
	cfg := filepath.Join(n.dir, "gvsd.toml")
	if err := os.WriteFile(cfg, []byte(b.config(n)), 0o644); err != nil {
		b.t.Fatal(err)
	}
	n.sock = filepath.Join(n.dir, "gvsd.sock")
	n.proc = n.ns.Start(bin(b.t, "gvsd"), "--config", cfg, "--socket", n.sock)
	lab.Eventually(b.t, 10*time.Second, "gvsd started in "+n.name, func() error {
		if n.proc.Exited() {
			b.t.Fatalf("gvsd exited:\n%s", n.proc.Output())
		}
		if !strings.Contains(n.proc.Output(), "gvs started") {
			return fmt.Errorf("not yet")
		}
		return nil
	})
}

func (n *bgpNode) call(t *testing.T, op string, args, res any) {
	t.Helper()
	c, err := api.Dial(n.sock)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Call(op, args, res); err != nil {
		t.Fatalf("%s %s: %v", n.name, op, err)
	}
}

func (n *bgpNode) conns(t *testing.T) uint64 {
	var st api.Stats
	n.call(t, api.OpStats, nil, &st)
	var c uint64
	for _, s := range st.Services {
		c += s.Conns
	}
	return c
}

// nexthops returns the router's next hops for the VIP.
func (b *bgpLab) nexthops() []string {
	out, err := b.rt.Run("ip", "-4", "route", "show", bgpVIP+"/32")
	if err != nil {
		return nil
	}
	var hops []string
	for _, f := range strings.Split(out, "via ")[1:] {
		hops = append(hops, strings.Fields(f)[0])
	}
	return hops
}

func (b *bgpLab) waitHops(want int, timeout time.Duration) time.Duration {
	b.t.Helper()
	start := time.Now()
	for time.Since(start) < timeout {
		if len(b.nexthops()) == want {
			return time.Since(start)
		}
		time.Sleep(5 * time.Millisecond)
	}
	out, _ := b.rt.Run("ip", "route")
	b.t.Fatalf("router: %d next hops for %s after %v, want %d:\n%s\nbird:\n%s", len(b.nexthops()), bgpVIP, timeout, want, out, b.bird.Output())
	return 0
}

// newConns opens n connections one after the other (each a request) and
// counts the failures.
func (b *bgpLab) newConns(n int, interval time.Duration) (ok, fail int, errs map[string]int) {
	c := b.cl.HTTPClient(2 * time.Second)
	errs = map[string]int{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := c.Get("http://" + bgpVIP + "/")
			if err == nil {
				_, err = io.ReadAll(resp.Body)
				resp.Body.Close()
			}
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				fail++
				errs[err.Error()[max(0, strings.LastIndex(err.Error(), ": ")+2):]]++
				return
			}
			ok++
		}()
		time.Sleep(interval)
	}
	wg.Wait()
	return ok, fail, errs
}

// longConns keeps n keep-alive connections sending a request every
// interval until stop is closed; it reports how many broke and whether any
// answer came from another real than the first.
type longResult struct {
	broken, moved int
	requests      atomic.Int64
	done          chan struct{}
}

func (b *bgpLab) longConns(n int, interval time.Duration, stop <-chan struct{}) *longResult {
	b.t.Helper()
	res := &longResult{done: make(chan struct{})}
	var mu sync.Mutex
	var ready, wg sync.WaitGroup
	for i := 0; i < n; i++ {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		conn, err := b.cl.Dial(ctx, "tcp", bgpVIP+":80")
		cancel()
		if err != nil {
			b.t.Fatalf("long-lived connection %d: %v", i, err)
		}
		ready.Add(1)
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer conn.Close()
			br := bufio.NewReader(conn)
			first := ""
			once := sync.OnceFunc(ready.Done)
			defer once()
			for {
				conn.SetDeadline(time.Now().Add(10 * time.Second)) // TCP retransmits across a hold-time outage
				_, err := io.WriteString(conn, "GET / HTTP/1.1\r\nHost: vip\r\n\r\n")
				var body []byte
				if err == nil {
					var resp *http.Response
					if resp, err = http.ReadResponse(br, nil); err == nil {
						body, err = io.ReadAll(resp.Body)
						resp.Body.Close()
					}
				}
				if err != nil {
					mu.Lock()
					res.broken++
					mu.Unlock()
					b.t.Logf("long-lived connection broke: %v", err)
					return
				}
				res.requests.Add(1)
				real := strings.TrimSpace(string(body))
				if first == "" {
					first = real
				} else if real != first {
					mu.Lock()
					res.moved++
					mu.Unlock()
					return
				}
				once()
				select {
				case <-stop:
					return
				case <-time.After(interval):
				}
			}
		}()
	}
	ready.Wait()
	go func() { wg.Wait(); close(res.done) }()
	return res
}

func (r *longResult) wait() { <-r.done }

func TestBGPECMP(t *testing.T) {
	b := newBGPLab(t)
	b.startBird()
	for _, n := range b.nodes {
		b.start(n)
	}
	up := b.waitHops(2, 15*time.Second)
	t.Logf("router installed 2 next hops %v %v after the nodes started", b.nexthops(), up.Round(time.Millisecond))
	var st api.BGPStatus
	b.nodes[0].call(t, api.OpBGP, nil, &st)
	if len(st.Prefixes) != 1 || !st.Prefixes[0].Announced || len(st.Sessions) != 1 || st.Sessions[0].State != "established" {
		t.Fatalf("bgp status %+v", st)
	}

	// New connections spread across both nodes, all succeed.
	before := []uint64{b.nodes[0].conns(t), b.nodes[1].conns(t)}
	ok, fail, errs := b.newConns(200, 5*time.Millisecond)
	spread := []uint64{b.nodes[0].conns(t) - before[0], b.nodes[1].conns(t) - before[1]}
	t.Logf("200 new connections: %d ok, %d failed %v; node a took %d, node b %d", ok, fail, errs, spread[0], spread[1])
	if fail > 0 || spread[0] < 30 || spread[1] < 30 {
		t.Fatalf("ECMP spread: %d failed, a %d b %d", fail, spread[0], spread[1])
	}

	// Graceful stop of node a under load: the route is withdrawn before
	// the workers stop; long-lived connections move to b and keep their
	// real; new connections keep succeeding.
	stop := make(chan struct{})
	onA := b.nodes[0].conns(t)
	long := b.longConns(40, 50*time.Millisecond, stop)
	time.Sleep(1500 * time.Millisecond) // the counters are sampled
	onA = b.nodes[0].conns(t) - onA
	type nc struct {
		ok, fail int
		errs     map[string]int
	}
	ncCh := make(chan nc, 1)
	go func() {
		ok, fail, errs := b.newConns(300, 10*time.Millisecond) // 3 s
		ncCh <- nc{ok, fail, errs}
	}()
	time.Sleep(500 * time.Millisecond)
	t0 := time.Now()
	stopped := make(chan struct{})
	go func() { b.nodes[0].proc.Stop(); close(stopped) }()
	conv := b.waitHops(1, 10*time.Second)
	<-stopped
	exit := time.Since(t0)
	time.Sleep(2 * time.Second)
	close(stop)
	long.wait()
	r := <-ncCh
	t.Logf("graceful stop of a: route withdrawn at the router after %v (gvsd exited after %v)", conv.Round(time.Millisecond), exit.Round(time.Millisecond))
	t.Logf("graceful stop: long-lived connections: %d/40 broken (%d of them went through a and moved to b), %d changed real, %d requests; new connections: %d ok, %d failed (%.1f%%) %v",
		long.broken, onA, long.moved, long.requests.Load(), r.ok, r.fail, 100*float64(r.fail)/float64(r.ok+r.fail), r.errs)
	if !strings.Contains(b.nodes[0].proc.Output(), "bgp: prefix withdrawn") {
		t.Errorf("node a did not log the withdrawal:\n%s", b.nodes[0].proc.Output())
	}
	if long.broken > 0 || long.moved > 0 || r.fail > 0 {
		t.Errorf("graceful stop broke %d long-lived connections (%d moved real) and %d new ones", long.broken, long.moved, r.fail)
	}

	// a comes back; then b loses its healthy reals (weight 0 through the
	// control socket) and withdraws while a keeps announcing.
	b.start(b.nodes[0])
	b.waitHops(2, 15*time.Second)
	for i := range b.reals {
		w := 0
		b.nodes[1].call(t, api.OpEditReal, api.RealArgs{Service: api.ServiceID{Proto: "tcp", VIP: bgpVIP, Port: 80},
			Real: config.Real{Addr: fmt.Sprintf("198.18.1.%d", 11+i), Weight: &w}}, nil)
	}
	conv = b.waitHops(1, 5*time.Second)
	if h := b.nexthops(); h[0] != b.nodes[0].addr {
		t.Fatalf("remaining next hop %v, want %s", h, b.nodes[0].addr)
	}
	b.nodes[1].call(t, api.OpBGP, nil, &st)
	if st.Prefixes[0].Announced || !strings.Contains(st.Prefixes[0].Reason, "fewer than min_healthy") {
		t.Fatalf("b's prefix: %+v", st.Prefixes[0])
	}
	t.Logf("node without healthy reals: withdrawn at the router after %v (%s)", conv.Round(time.Millisecond), st.Prefixes[0].Reason)
	ok, fail, errs = b.newConns(100, 5*time.Millisecond)
	if fail > 0 {
		t.Errorf("after b withdrew: %d ok, %d failed %v", ok, fail, errs)
	}
	// And it comes back when a real does.
	w := 1
	b.nodes[1].call(t, api.OpEditReal, api.RealArgs{Service: api.ServiceID{Proto: "tcp", VIP: bgpVIP, Port: 80},
		Real: config.Real{Addr: "198.18.1.11", Weight: &w}}, nil)
	conv = b.waitHops(2, 5*time.Second)
	t.Logf("b re-announced after a real came back: %v", conv.Round(time.Millisecond))

	// gvsctl bgp drain on b: its path gets a longer AS path, the router
	// keeps only a's; undrain brings b back.
	b.nodes[1].call(t, api.OpBGPDrain, api.BGPDrainArgs{Drain: true}, &st)
	if !st.Drained {
		t.Fatalf("drain: %+v", st)
	}
	conv = b.waitHops(1, 5*time.Second)
	if h := b.nexthops(); h[0] != b.nodes[0].addr {
		t.Fatalf("drained b: next hops %v", h)
	}
	b.nodes[1].call(t, api.OpBGPDrain, api.BGPDrainArgs{Drain: false}, &st)
	conv2 := b.waitHops(2, 5*time.Second)
	t.Logf("drain of b (AS path +2): router moved to a after %v; undrain: back after %v", conv.Round(time.Millisecond), conv2.Round(time.Millisecond))

	// b fails (its link goes down): the router keeps the route until the
	// hold time (3 s) runs out, then converges on a.
	stop = make(chan struct{})
	onB := b.nodes[1].conns(t)
	long = b.longConns(40, 50*time.Millisecond, stop)
	time.Sleep(1500 * time.Millisecond)
	onB = b.nodes[1].conns(t) - onB
	go func() {
		ok, fail, errs := b.newConns(500, 10*time.Millisecond) // 5 s
		ncCh <- nc{ok, fail, errs}
	}()
	time.Sleep(500 * time.Millisecond)
	if err := b.nodes[1].ns.Netlink(func(h *netlink.Handle) error {
		l, err := h.LinkByName("eth0")
		if err != nil {
			return err
		}
		return h.LinkSetDown(l)
	}); err != nil {
		t.Fatal(err)
	}
	conv = b.waitHops(1, 10*time.Second)
	time.Sleep(3 * time.Second)
	close(stop)
	long.wait()
	r = <-ncCh
	t.Logf("link down on b: route withdrawn at the router after %v (hold time 3s)", conv.Round(time.Millisecond))
	t.Logf("link down: long-lived connections: %d/40 broken (%d went through b), %d changed real, %d requests; new connections: %d ok, %d failed (%.1f%%) %v",
		long.broken, onB, long.moved, long.requests.Load(), r.ok, r.fail, 100*float64(r.fail)/float64(r.ok+r.fail), r.errs)
	if conv > 5*time.Second || long.moved > 0 {
		t.Errorf("link down: convergence %v, %d long-lived connections changed real", conv, long.moved)
	}
	ok, fail, errs = b.newConns(100, 5*time.Millisecond)
	if fail > 0 {
		t.Errorf("after b failed: %d ok, %d failed %v", ok, fail, errs)
	}
}
