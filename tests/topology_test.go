// Package tests holds gvs's end-to-end tests: gvsd, real drivers and real
// peers in network namespaces built by tests/lab.
package tests

import (
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"gvs/tests/lab"
)

// binaries builds gvsd and gvs-realserver once per test binary.
var (
	buildOnce sync.Once
	binDir    string
	buildErr  error
)

func bin(t *testing.T, name string) string {
	t.Helper()
	buildOnce.Do(func() {
		binDir, buildErr = os.MkdirTemp("", "gvs-e2e-bin-")
		if buildErr != nil {
			return
		}
		for _, cmd := range []string{"gvsd", "gvs-realserver"} {
			out, err := exec.Command("go", "build", "-o", filepath.Join(binDir, cmd), "gvs/cmd/"+cmd).CombinedOutput()
			if err != nil {
				buildErr = fmt.Errorf("go build %s: %v\n%s", cmd, err, out)
				return
			}
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return filepath.Join(binDir, name)
}

func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// Addresses of the topology (RFC 2544 benchmark range and the IPv6
// documentation prefix only).
//
//	client 198.18.0.2 ── 198.18.0.1 router 198.18.1.254 ─┐
//	                                                   bridge (sw) ── gvs 198.18.1.1
//	                                                      ├── real0 198.18.1.11
//	                                                      ├── real1 198.18.1.12 ...
//
// The router sends VIP traffic to gvs; nat reals route back through gvs,
// the others answer through the router (DSR).
type family struct {
	v6                                   bool
	client, routerC, routerL, gvs, local string
	vip                                  netip.Addr
	bits, hostBits                       string
	realFmt                              string
}

var (
	v4 = family{client: "198.18.0.2", routerC: "198.18.0.1", routerL: "198.18.1.254", gvs: "198.18.1.1", local: "198.18.1.100",
		vip: netip.MustParseAddr("198.18.250.10"), bits: "/24", hostBits: "/32", realFmt: "198.18.1.%d"}
	v6 = family{v6: true, client: "2001:db8::2", routerC: "2001:db8::1", routerL: "2001:db8:1::fe", gvs: "2001:db8:1::1", local: "2001:db8:1::100",
		vip: netip.MustParseAddr("2001:db8:250::10"), bits: "/64", hostBits: "/128", realFmt: "2001:db8:1::%d"}
)

func (f family) real(i int) string { return fmt.Sprintf(f.realFmt, 11+i) }

func (f family) name() string {
	if f.v6 {
		return "ipv6"
	}
	return "ipv4"
}

// hostPort joins an address and a port for URLs and dialing.
func hostPort(addr string, port int) string {
	return netip.AddrPortFrom(netip.MustParseAddr(addr), uint16(port)).String()
}

// topo is one test network: client, router, gvs, reals.
type topo struct {
	t      *testing.T
	lab    *lab.Lab
	fam    family
	method string
	driver string
	cl, rt *lab.NS
	gvs    *lab.NS
	reals  []*lab.NS
	gvsd   *lab.Proc
	cfg    string // config file path
	sock   string // gvsd's control socket
}

// newTopo builds the network with n reals (all started as backends; the
// config decides which are in the service) and sets the reals up for the
// method.
func newTopo(t *testing.T, drv, method string, fam family, n int) *topo {
	l := lab.New(t)
	tp := &topo{t: t, lab: l, fam: fam, method: method, driver: drv}
	sw := l.NS("sw")
	tp.cl, tp.rt, tp.gvs = l.NS("cl"), l.NS("rt"), l.NS("gvs")
	l.Veth(tp.cl, "eth0", tp.rt, "eth1")
	ports := []string{"p-rt", "p-gvs"}
	l.Veth(tp.rt, "eth0", sw, "p-rt")
	l.Veth(tp.gvs, "eth0", sw, "p-gvs")
	for i := 0; i < n; i++ {
		r := l.NS(fmt.Sprintf("r%d", i))
		l.Veth(r, "eth0", sw, fmt.Sprintf("p-r%d", i))
		ports = append(ports, fmt.Sprintf("p-r%d", i))
		tp.reals = append(tp.reals, r)
	}
	l.Bridge(sw, "br0", ports...)

	// Both families always get addresses; the test's family is the one
	// the service uses.
	for _, f := range []family{v4, v6} {
		tp.cl.Addr("eth0", f.client+f.bits)
		tp.cl.Route("default", f.routerC)
		tp.rt.Addr("eth1", f.routerC+f.bits)
		tp.rt.Addr("eth0", f.routerL+f.bits)
		tp.rt.Route(f.vip.String()+f.hostBits, f.gvs)
		tp.gvs.Addr("eth0", f.gvs+f.bits)
		tp.gvs.Route("default", f.routerL)
		for i, r := range tp.reals {
			r.Addr("eth0", f.real(i)+f.bits)
			if method == "nat" {
				r.Route("default", f.gvs) // replies go back through gvs
			} else {
				r.Route("default", f.routerL)
			}
			if method == "fullnat" {
				// gvs's local address is not a kernel address (with
				// AF_PACKET the kernel would reset the replies it sees):
				// the reals reach it by a static neighbour.
				r.Neigh("eth0", f.local, tp.gvs.MAC("eth0"))
			}
		}
	}
	tp.rt.Sysctl("net.ipv4.ip_forward", "1")
	tp.rt.Sysctl("net.ipv6.conf.all.forwarding", "1")
	// The kernel beside an AF_PACKET port sees VIP traffic too; it must
	// not forward it (README of driver/afpacket).
	tp.gvs.Sysctl("net.ipv4.ip_forward", "0")
	tp.gvs.Sysctl("net.ipv6.conf.all.forwarding", "0")
	// veth senders leave checksums partial; a userspace dataplane needs
	// them complete (ENVIRONMENT.md).
	tp.cl.TxChecksumOff("eth0")
	tp.rt.TxChecksumOff("eth0")
	tp.rt.TxChecksumOff("eth1")
	for _, r := range tp.reals {
		r.TxChecksumOff("eth0")
	}
	for i, r := range tp.reals {
		tp.realserver(r, i, "setup")
	}
	return tp
}

// realserver runs gvs-realserver setup/teardown in a real for the method.
func (tp *topo) realserver(r *lab.NS, i int, verb string) {
	if tp.method == "nat" || tp.method == "fullnat" {
		return
	}
	args := []string{verb, "--method", tp.method, "--vip", tp.fam.vip.String(), "--dev", "eth0"}
	switch tp.method {
	case "l3dsr":
		args = append(args, "--dscp", fmt.Sprintf("%d=%s", testDSCP, tp.fam.vip), "--addr", tp.fam.real(i))
	case "tunnel":
		args = append(args, "--addr", tp.fam.real(i))
	}
	if out, err := r.Run(bin(tp.t, "gvs-realserver"), args...); err != nil {
		tp.t.Fatalf("gvs-realserver %s in %s: %v\n%s", verb, r.Name(), err, out)
	}
}

const testDSCP = 10

// realSpec is one real of the generated config.
type realSpec struct {
	idx, weight int
}

// svcSpec is a service of the generated config.
type svcSpec struct {
	proto, sched string
	port         int
	realPort     int
	reals        []realSpec
	extra        string // TOML lines inside the [[service]] table (checks)
}

// writeConfig writes gvsd's configuration for the services.
func (tp *topo) writeConfig(svcs ...svcSpec) {
	var b strings.Builder
	fmt.Fprintf(&b, "[global]\nworkers = 1\nsessions = 65536\n\n[global.timeouts]\ntcp_fin = \"5s\"\n\n[[port]]\nname = \"eth0\"\ndriver = %q\n", tp.driver)
	for _, s := range svcs {
		fmt.Fprintf(&b, "\n[[service]]\nproto = %q\nvip = %q\nport = %d\nscheduler = %q\nmethod = %q\n", s.proto, tp.fam.vip, s.port, s.sched, tp.method)
		switch tp.method {
		case "l3dsr":
			fmt.Fprintf(&b, "dscp = %d\n", testDSCP)
		case "fullnat":
			fmt.Fprintf(&b, "local_addrs = [%q]\n", tp.fam.local)
		case "tunnel":
			fmt.Fprintf(&b, "local_addrs = [%q]\n", tp.fam.gvs)
		}
		b.WriteString(s.extra)
		for _, r := range s.reals {
			fmt.Fprintf(&b, "  [[service.real]]\n  addr = %q\n  weight = %d\n", tp.fam.real(r.idx), r.weight)
			if s.realPort != 0 {
				fmt.Fprintf(&b, "  port = %d\n", s.realPort)
			}
		}
	}
	if tp.cfg == "" {
		tp.cfg = filepath.Join(tp.t.TempDir(), "gvsd.toml")
	}
	if err := os.WriteFile(tp.cfg, []byte(b.String()), 0o644); err != nil {
		tp.t.Fatal(err)
	}
}

// startGVSD starts gvsd in the gvs namespace and waits until it runs.
func (tp *topo) startGVSD() {
	tp.sock = filepath.Join(tp.t.TempDir(), "gvsd.sock")
	tp.gvsd = tp.gvs.Start(bin(tp.t, "gvsd"), "--config", tp.cfg, "--log-level", "debug", "--socket", tp.sock)
	lab.Eventually(tp.t, 10*time.Second, "gvsd started", func() error {
		if tp.gvsd.Exited() {
			tp.t.Fatalf("gvsd exited:\n%s", tp.gvsd.Output())
		}
		if !strings.Contains(tp.gvsd.Output(), "gvs started") {
			return fmt.Errorf("no 'gvs started' yet")
		}
		return nil
	})
}

// reload rewrites the config and sends SIGHUP; it waits for gvsd to say so.
func (tp *topo) reload(svcs ...svcSpec) {
	before := strings.Count(tp.gvsd.Output(), "configuration reloaded")
	tp.writeConfig(svcs...)
	if err := syscall.Kill(tp.gvsd.Pid(), syscall.SIGHUP); err != nil {
		tp.t.Fatal(err)
	}
	lab.Eventually(tp.t, 5*time.Second, "gvsd reloaded", func() error {
		if strings.Count(tp.gvsd.Output(), "configuration reloaded") <= before {
			return fmt.Errorf("not reloaded; output:\n%s", tail(tp.gvsd.Output(), 5))
		}
		return nil
	})
}

// stopGVSD stops gvsd and returns its output (the final counters).
func (tp *topo) stopGVSD() string {
	if err := tp.gvsd.Stop(); err != nil {
		tp.t.Errorf("stop gvsd: %v", err)
	}
	return tp.gvsd.Output()
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
