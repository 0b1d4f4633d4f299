package httpbench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"gvs/internal/ethtool"

	"gvs/internal/namedns"
)

// NamePrefix starts the name of every namespace a run creates:
// "gvshttp-<pid>-<role>". Namespaces of a process that no longer exists are
// swept by the next run.
const NamePrefix = "gvshttp-"

// The topology's fixed addresses (198.18.0.0/15 only).
const (
	ClientAddr       = "198.18.20.2"   // client namespace (wrk), eth0
	RouterClientAddr = "198.18.20.1"   // router, towards the client
	RouterAddr       = "198.18.21.254" // router, on the server LAN
	LBAddr           = "198.18.21.1"   // load balancer namespace, eth0
	VIP              = "198.18.22.10"  // virtual address, routed by the router to LBAddr
	VIPPort          = 80
)

// clientSources is how many source addresses the client cycles through,
// 198.18.20.10 and up: each contender's runs of a round use their own, so
// that no two contenders' connections share a 4-tuple at a backend or in
// the lb (a TIME_WAIT socket there, left by another contender whose SYNs
// carried other TCP timestamp offsets — Linux derives them from the
// address pair — would reject or stall the new SYNs).
const clientSources = 200

// ClientSource is the client's source address of the k-th contender run
// (k counts from 0 over rounds × contenders, modulo clientSources).
func ClientSource(k int) string { return fmt.Sprintf("198.18.20.%d", 10+k%clientSources) }

// BackendAddr is the address of backend i (0-based) on the server LAN.
func BackendAddr(i int) string { return fmt.Sprintf("198.18.21.%d", 11+i) }

// maxBackends keeps BackendAddr inside the /24 and below LB/router addresses.
const maxBackends = 200

// netNS is a named network namespace of the topology.
type netNS struct {
	name string
	h    netns.NsHandle
}

// do runs fn on an OS thread switched into the namespace. Sockets fn
// creates stay in the namespace.
func (ns *netNS) do(fn func() error) error {
	return namedns.Do(ns.h, ns.name, fn)
}

func (ns *netNS) sysctl(key, value string) error {
	path := filepath.Join("/proc/sys", strings.ReplaceAll(key, ".", "/"))
	err := ns.do(func() error { return os.WriteFile(path, []byte(value), 0o644) })
	if err != nil {
		return fmt.Errorf("sysctl %s=%s in %s: %w", key, value, ns.name, err)
	}
	return nil
}

func (ns *netNS) nl(fn func(h *netlink.Handle) error) error {
	h, err := netlink.NewHandleAt(ns.h)
	if err != nil {
		return fmt.Errorf("netlink in %s: %w", ns.name, err)
	}
	defer h.Close()
	return fn(h)
}

// addr adds cidr to ifname.
func (ns *netNS) addr(ifname, cidr string) error {
	return ns.nl(func(h *netlink.Handle) error {
		l, err := h.LinkByName(ifname)
		if err != nil {
			return fmt.Errorf("%s in %s: %w", ifname, ns.name, err)
		}
		a, err := netlink.ParseAddr(cidr)
		if err != nil {
			return err
		}
		if err := h.AddrAdd(l, a); err != nil {
			return fmt.Errorf("address %s on %s in %s: %w", cidr, ifname, ns.name, err)
		}
		return nil
	})
}

// delAddr removes cidr from ifname (absent is not an error).
func (ns *netNS) delAddr(ifname, cidr string) error {
	return ns.nl(func(h *netlink.Handle) error {
		l, err := h.LinkByName(ifname)
		if err != nil {
			return err
		}
		a, err := netlink.ParseAddr(cidr)
		if err != nil {
			return err
		}
		if err := h.AddrDel(l, a); err != nil && !errors.Is(err, unix.EADDRNOTAVAIL) {
			return fmt.Errorf("delete address %s on %s in %s: %w", cidr, ifname, ns.name, err)
		}
		return nil
	})
}

// route replaces the route to dst ("default" or a CIDR) with one via gw.
func (ns *netNS) route(dst, gw string) error {
	return ns.nl(func(h *netlink.Handle) error {
		r := &netlink.Route{Gw: net.ParseIP(gw)}
		if dst != "default" {
			_, n, err := net.ParseCIDR(dst)
			if err != nil {
				return err
			}
			r.Dst = n
		}
		if err := h.RouteReplace(r); err != nil {
			return fmt.Errorf("route %s via %s in %s: %w", dst, gw, ns.name, err)
		}
		return nil
	})
}

func (ns *netNS) linkUp(ifname string) error {
	return ns.nl(func(h *netlink.Handle) error {
		l, err := h.LinkByName(ifname)
		if err != nil {
			return fmt.Errorf("%s in %s: %w", ifname, ns.name, err)
		}
		return h.LinkSetUp(l)
	})
}

// ethtool commands (linux/ethtool.h).
// txChecksumOff is `ethtool -K ifname tx-checksumming off`: veth otherwise
// hands partial checksums to a userspace dataplane (ENVIRONMENT.md).
func (ns *netNS) txChecksumOff(ifname string) error {
	if err := ns.do(func() error { return ethtool.TxChecksumOff(ifname) }); err != nil {
		return fmt.Errorf("tx-checksumming off in %s: %w", ns.name, err)
	}
	return nil
}

// setGRO turns GRO on ifname on or off and returns the previous state.
func (ns *netNS) setGRO(ifname string, on bool) (was bool, err error) {
	err = ns.do(func() (err error) {
		was, err = ethtool.SetGRO(ifname, on)
		return err
	})
	if err != nil {
		err = fmt.Errorf("gro in %s: %w", ns.name, err)
	}
	return was, err
}

// topology is the bench network:
//
//	cl  eth0 198.18.20.2/24 ── rt eth1 198.18.20.1/24
//	rt  eth0 198.18.21.254/24 ── sw p-rt ┐
//	lb  eth0 198.18.21.1/24   ── sw p-lb ├ br0 (bridge in its own namespace)
//	beI eth0 198.18.21.11+I   ── sw p-beI┘
//
// The router routes VIP/32 to the lb; the client's default route is the
// router; the lb's default route is the router; the backends' default route
// is set by each contender (router for direct, haproxy and dr; lb for
// nftables and nat, so that replies pass the translation).
type topology struct {
	prefix         string
	cl, rt, sw, lb *netNS
	be             []*netNS
	all            []*netNS
	srcAdded       map[string]bool // client source addresses present

	mu    sync.Mutex
	procs []*proc

	closeOnce sync.Once
	closeErr  error
}

func newTopology(backends int) (_ *topology, err error) {
	if err := namedns.EnsureDir(); err != nil {
		return nil, err
	}
	SweepStale()
	t := &topology{prefix: fmt.Sprintf("%s%d-", NamePrefix, os.Getpid()), srcAdded: map[string]bool{}}
	defer func() {
		if err != nil {
			t.close()
		}
	}()
	mk := func(role string) (*netNS, error) {
		name := t.prefix + role
		h, err := namedns.Create(name)
		if err != nil {
			return nil, fmt.Errorf("create netns %s: %w", name, err)
		}
		ns := &netNS{name: name, h: h}
		t.all = append(t.all, ns)
		return ns, nil
	}
	for _, p := range []struct {
		dst  **netNS
		role string
	}{{&t.cl, "cl"}, {&t.rt, "rt"}, {&t.sw, "sw"}, {&t.lb, "lb"}} {
		if *p.dst, err = mk(p.role); err != nil {
			return nil, err
		}
	}
	for i := 0; i < backends; i++ {
		ns, err := mk(fmt.Sprintf("be%d", i))
		if err != nil {
			return nil, err
		}
		t.be = append(t.be, ns)
	}
	for _, ns := range t.all {
		for _, kv := range [][2]string{
			{"net.ipv6.conf.all.disable_ipv6", "1"},
			{"net.ipv6.conf.default.disable_ipv6", "1"},
			{"net.ipv4.ip_forward", "0"},
		} {
			if err := ns.sysctl(kv[0], kv[1]); err != nil {
				return nil, err
			}
		}
		if err := ns.linkUp("lo"); err != nil {
			return nil, err
		}
	}
	if err := t.rt.sysctl("net.ipv4.ip_forward", "1"); err != nil {
		return nil, err
	}
	// Many short connections: the widest port range on the connecting
	// sides, big accept queues on the accepting ones.
	for _, ns := range []*netNS{t.cl, t.lb} {
		if err := ns.sysctl("net.ipv4.ip_local_port_range", "1024 65535"); err != nil {
			return nil, err
		}
	}
	for _, ns := range append([]*netNS{t.lb}, t.be...) {
		for _, kv := range [][2]string{{"net.core.somaxconn", "65535"}, {"net.ipv4.tcp_max_syn_backlog", "65535"}} {
			if err := ns.sysctl(kv[0], kv[1]); err != nil {
				return nil, err
			}
		}
	}

	type vethSpec struct {
		a     *netNS
		aName string
		b     *netNS
		bName string
	}
	veths := []vethSpec{{t.cl, "eth0", t.rt, "eth1"}, {t.rt, "eth0", t.sw, "p-rt"}, {t.lb, "eth0", t.sw, "p-lb"}}
	ports := []string{"p-rt", "p-lb"}
	for i, b := range t.be {
		p := fmt.Sprintf("p-be%d", i)
		veths = append(veths, vethSpec{b, "eth0", t.sw, p})
		ports = append(ports, p)
	}
	for _, v := range veths {
		if err := v.a.nl(func(h *netlink.Handle) error {
			return h.LinkAdd(&netlink.Veth{
				LinkAttrs:       netlink.LinkAttrs{Name: v.aName, MTU: 1500, NumTxQueues: 1, NumRxQueues: 1},
				PeerName:        v.bName,
				PeerMTU:         1500,
				PeerNumTxQueues: 1,
				PeerNumRxQueues: 1,
				PeerNamespace:   netlink.NsFd(int(v.b.h)),
			})
		}); err != nil {
			return nil, fmt.Errorf("veth %s/%s — %s/%s: %w", v.a.name, v.aName, v.b.name, v.bName, err)
		}
		for _, end := range []struct {
			ns   *netNS
			name string
		}{{v.a, v.aName}, {v.b, v.bName}} {
			if err := end.ns.txChecksumOff(end.name); err != nil {
				return nil, err
			}
			if err := end.ns.linkUp(end.name); err != nil {
				return nil, err
			}
		}
	}
	if err := t.sw.nl(func(h *netlink.Handle) error {
		if err := h.LinkAdd(&netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: "br0"}}); err != nil {
			return fmt.Errorf("bridge: %w", err)
		}
		br, err := h.LinkByName("br0")
		if err != nil {
			return err
		}
		for _, p := range ports {
			pl, err := h.LinkByName(p)
			if err != nil {
				return err
			}
			if err := h.LinkSetMaster(pl, br); err != nil {
				return fmt.Errorf("enslave %s: %w", p, err)
			}
		}
		return h.LinkSetUp(br)
	}); err != nil {
		return nil, fmt.Errorf("bridge in %s: %w", t.sw.name, err)
	}

	steps := []func() error{
		func() error { return t.cl.addr("eth0", ClientAddr+"/24") },
		func() error { return t.cl.route("default", RouterClientAddr) },
		func() error { return t.rt.addr("eth1", RouterClientAddr+"/24") },
		func() error { return t.rt.addr("eth0", RouterAddr+"/24") },
		func() error { return t.rt.route(VIP+"/32", LBAddr) },
		func() error { return t.lb.addr("eth0", LBAddr+"/24") },
		func() error { return t.lb.route("default", RouterAddr) },
	}
	for i, b := range t.be {
		steps = append(steps,
			func() error { return b.addr("eth0", BackendAddr(i)+"/24") },
			func() error { return b.route("default", RouterAddr) })
	}
	for _, s := range steps {
		if err := s(); err != nil {
			return nil, err
		}
	}
	return t, nil
}

// useClientSource makes the client's connections leave from
// ClientSource(k): the address is added (once) and the default route's
// preferred source set to it.
func (t *topology) useClientSource(k int) error {
	src := ClientSource(k)
	if !t.srcAdded[src] {
		if err := t.cl.addr("eth0", src+"/24"); err != nil {
			return err
		}
		t.srcAdded[src] = true
	}
	return t.cl.nl(func(h *netlink.Handle) error {
		if err := h.RouteReplace(&netlink.Route{Gw: net.ParseIP(RouterClientAddr), Src: net.ParseIP(src)}); err != nil {
			return fmt.Errorf("client default route from %s: %w", src, err)
		}
		return nil
	})
}

// backendRoutes points every backend's default route at gw.
func (t *topology) backendRoutes(gw string) error {
	for _, b := range t.be {
		if err := b.route("default", gw); err != nil {
			return err
		}
	}
	return nil
}

// close stops the processes still running and deletes the namespaces
// (with them the veths and the bridge). Idempotent.
func (t *topology) close() error {
	t.closeOnce.Do(func() {
		var errs []error
		t.mu.Lock()
		procs := t.procs
		t.mu.Unlock()
		for _, p := range procs {
			if err := p.stop(); err != nil && !errors.Is(err, errExited) {
				errs = append(errs, err)
			}
		}
		for _, ns := range t.all {
			if err := namedns.Delete(ns.name); err != nil {
				errs = append(errs, fmt.Errorf("delete netns %s: %w", ns.name, err))
			}
			if ns.h.IsOpen() {
				ns.h.Close()
			}
		}
		t.closeErr = errors.Join(errs...)
	})
	return t.closeErr
}

var staleRE = regexp.MustCompile(`^` + NamePrefix + `([0-9]+)-`)

// SweepStale deletes namespaces left by a bench process that is gone
// (killed with SIGKILL, so it ran no cleanup). Run calls it first.
func SweepStale() {
	ents, err := os.ReadDir(namedns.Dir)
	if err != nil {
		return
	}
	for _, e := range ents {
		m := staleRE.FindStringSubmatch(e.Name())
		if m == nil {
			continue
		}
		pid, err := strconv.Atoi(m[1])
		if err != nil || pid == os.Getpid() {
			continue
		}
		if processGone(pid) {
			killNetnsProcs(filepath.Join(namedns.Dir, e.Name()))
			namedns.Delete(e.Name())
		}
	}
}

// processGone reports whether pid no longer runs: it does not exist or is
// a zombie (killed, not yet reaped by its parent).
func processGone(pid int) bool {
	if unix.Kill(pid, 0) == unix.ESRCH {
		return true
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return os.IsNotExist(err)
	}
	// "pid (comm) S ...": the state follows the last ')'.
	if i := strings.LastIndexByte(string(b), ')'); i >= 0 {
		if f := strings.Fields(string(b[i+1:])); len(f) > 0 && f[0] == "Z" {
			return true
		}
	}
	return false
}

// killNetnsProcs SIGKILLs the processes inside the namespace bind-mounted
// at path (as `ip netns pids`): the nginx, HAProxy and gvsd of a bench
// process that was killed itself.
func killNetnsProcs(path string) {
	var ns unix.Stat_t
	if unix.Stat(path, &ns) != nil {
		return
	}
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		var st unix.Stat_t
		if unix.Stat(filepath.Join("/proc", e.Name(), "ns", "net"), &st) != nil {
			continue
		}
		if st.Dev == ns.Dev && st.Ino == ns.Ino {
			unix.Kill(pid, unix.SIGKILL)
		}
	}
}

// ListNetns returns this process's bench namespaces still present (for a
// check after Run).
func ListNetns() []string {
	var out []string
	own := fmt.Sprintf("%s%d-", NamePrefix, os.Getpid())
	ents, _ := os.ReadDir(namedns.Dir)
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), own) {
			out = append(out, e.Name())
		}
	}
	return out
}

// Processes.

var errExited = errors.New("already exited")

// stopGrace is how long a process gets between SIGTERM and SIGKILL.
const stopGrace = 3 * time.Second

type syncBuffer struct {
	mu sync.Mutex
	b  []byte
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.b) < 1<<20 { // bounded: a chatty daemon must not eat memory
		s.b = append(s.b, p...)
	}
	return len(p), nil
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return string(s.b)
}

// proc is a process started in a namespace, in its own process group.
type proc struct {
	name     string
	cmd      *exec.Cmd
	out      *syncBuffer
	done     chan struct{}
	err      error
	stopOnce sync.Once
	stopErr  error
}

// command is `ip netns exec NS name args...` (ip execs name, so the pid is
// the program's own), in a new process group.
func command(ns *netNS, name string, args ...string) *exec.Cmd {
	cmd := exec.Command("ip", append([]string{"netns", "exec", ns.name, name}, args...)...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.WaitDelay = time.Second
	return cmd
}

// start starts name in ns; close stops it if the caller does not.
func (t *topology) start(ns *netNS, name string, args ...string) (*proc, error) {
	cmd := command(ns, name, args...)
	p := &proc{name: filepath.Base(name) + " in " + ns.name, cmd: cmd, out: &syncBuffer{}, done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = p.out, p.out
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", p.name, err)
	}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	t.mu.Lock()
	t.procs = append(t.procs, p)
	t.mu.Unlock()
	return p, nil
}

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// output is what the process wrote so far (its last lines).
func (p *proc) output() string { return tail(p.out.String(), 15) }

// stop sends SIGTERM to the process group, SIGKILL after stopGrace.
// Idempotent; stopping an exited process returns errExited.
func (p *proc) stop() error {
	p.stopOnce.Do(func() {
		if p.exited() {
			p.stopErr = errExited
			return
		}
		pgid := p.cmd.Process.Pid
		syscall.Kill(-pgid, syscall.SIGTERM)
		select {
		case <-p.done:
			return
		case <-time.After(stopGrace):
		}
		syscall.Kill(-pgid, syscall.SIGKILL)
		select {
		case <-p.done:
		case <-time.After(stopGrace):
			p.stopErr = fmt.Errorf("%s: not gone %v after SIGKILL", p.name, stopGrace)
		}
	})
	return p.stopErr
}

// run runs name in ns to completion, at most timeout (or until ctx ends:
// the process group is killed), and returns its combined output.
func run(ctx context.Context, ns *netNS, timeout time.Duration, name string, args ...string) (string, error) {
	cmd := command(ns, name, args...)
	var out syncBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		return "", fmt.Errorf("start %s: %w", name, err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	select {
	case err := <-done:
		if err != nil {
			err = fmt.Errorf("%s in %s: %w: %s", name, ns.name, err, tail(out.String(), 5))
		}
		return out.String(), err
	case <-timer.C:
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-done
		return out.String(), fmt.Errorf("%s in %s: killed after %v", name, ns.name, timeout)
	case <-ctx.Done():
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-done
		return out.String(), ctx.Err()
	}
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// httpGet makes one HTTP/1.0 GET of / to addr (host:port) from ns and
// returns an error unless the status is 200.
func httpGet(ns *netNS, addr string, timeout time.Duration) error {
	var conn net.Conn
	err := ns.do(func() error {
		d := net.Dialer{Timeout: timeout}
		c, err := d.Dial("tcp4", addr)
		conn = c
		return err
	})
	if err != nil {
		return err
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(timeout))
	if _, err := io.WriteString(conn, "GET / HTTP/1.0\r\nHost: bench\r\n\r\n"); err != nil {
		return err
	}
	b, err := io.ReadAll(io.LimitReader(conn, 4096))
	if err != nil {
		return err
	}
	line, _, _ := strings.Cut(string(b), "\r\n")
	if f := strings.Fields(line); len(f) < 2 || f[1] != "200" {
		return fmt.Errorf("GET http://%s/: status line %q", addr, line)
	}
	return nil
}

// waitHTTP polls httpGet every 50 ms until it succeeds, limit passes, ctx
// ends or alive (if not nil) reports an error.
func waitHTTP(ctx context.Context, ns *netNS, addr string, limit time.Duration, alive func() error) error {
	deadline := time.Now().Add(limit)
	for {
		err := httpGet(ns, addr, 500*time.Millisecond)
		if err == nil {
			return nil
		}
		if alive != nil {
			if aerr := alive(); aerr != nil {
				return aerr
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("no HTTP 200 from %s (from %s) within %v: %w", addr, ns.name, limit, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}
