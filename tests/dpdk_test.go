//go:build dpdk

package tests

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/net/icmp"
	"golang.org/x/net/ipv4"

	"gvs/tests/lab"
)

// gvsd with driver = "dpdk": net_af_packet bound to the gvs namespace's
// veth, and no kernel behind it — a tc ingress program drops everything the
// kernel would see on eth0 (AF_PACKET taps see frames before tc does), and
// the host's addresses move to the exception TAP gvsd creates. gvs answers
// ARP for the VIP and its addresses, resolves the reals itself, and the
// host's own traffic (a ping to its address, a TCP connection to a service
// of the host) goes through the TAP. Run by make test as
// `go test -tags dpdk -run '^TestDPDK' ./tests/`.

// dpdkGVSD builds gvsd with the dpdk build tag into the test's temporary
// directory (the Go build cache makes every build after the first a link).
func dpdkGVSD(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "gvsd")
	out, err := exec.Command("go", "build", "-tags", "dpdk", "-o", bin, "gvs/cmd/gvsd").CombinedOutput()
	if err != nil {
		t.Fatalf("go build -tags dpdk gvsd: %v\n%s", err, out)
	}
	return bin
}

func TestDPDKMethods(t *testing.T) {
	if os.Geteuid() != 0 {
		if os.Getenv("CI") != "" {
			t.Fatal("namespace tests need root")
		}
		t.Skip("namespace tests need root")
	}
	for _, c := range []struct {
		method string
		fam    family
	}{{"nat", v4}, {"fullnat", v4}, {"dr", v4}, {"nat", v6}} {
		t.Run(c.method+"/"+c.fam.name(), func(t *testing.T) { runDPDKCase(t, c.method, c.fam) })
	}
}

func runDPDKCase(t *testing.T, method string, fam family) {
	tp := newTopo(t, "dpdk", method, fam, 2)
	realHTTP := httpPort
	if method == "nat" || method == "fullnat" {
		realHTTP = 8080
	}
	anyAddr := "0.0.0.0"
	if fam.v6 {
		anyAddr = "::"
	}
	for i, r := range tp.reals {
		r.HTTPBackend(fmt.Sprintf("real%d", i), hostPort(anyAddr, realHTTP))
	}
	rp := 0
	if realHTTP != httpPort {
		rp = realHTTP
	}
	tp.writeConfig(svcSpec{proto: "tcp", sched: "rr", port: httpPort, realPort: rp, reals: []realSpec{{0, 1}, {1, 1}}})
	dpdkConfig(t, tp)

	// Take the kernel away from eth0: its addresses go to the TAP, and a
	// tc ingress program drops every frame before the kernel's stack
	// (net_af_packet still gets its copy).
	if err := tp.gvs.Netlink(func(h *netlink.Handle) error {
		l, err := h.LinkByName("eth0")
		if err != nil {
			return err
		}
		routes, err := h.RouteList(l, netlink.FAMILY_ALL)
		if err != nil {
			return err
		}
		for _, r := range routes {
			if r.Gw != nil {
				if err := h.RouteDel(&r); err != nil {
					return fmt.Errorf("delete route %s: %w", r, err)
				}
			}
		}
		addrs, err := h.AddrList(l, netlink.FAMILY_ALL)
		if err != nil {
			return err
		}
		for _, a := range addrs {
			if a.IP.IsLinkLocalUnicast() {
				continue
			}
			if err := h.AddrDel(l, &a); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	tp.gvs.Sysctl("net.ipv6.conf.eth0.disable_ipv6", "1")
	for _, args := range [][]string{{"qdisc", "add", "dev", "eth0", "clsact"},
		{"filter", "add", "dev", "eth0", "ingress", "bpf", "da", "bytecode", "1,6 0 0 2,"}} {
		if out, err := tp.gvs.Run("tc", args...); err != nil {
			t.Fatalf("tc %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}

	tp.sock = filepath.Join(t.TempDir(), "gvsd.sock")
	tp.gvsd = tp.gvs.Start(dpdkGVSD(t), "--config", tp.cfg, "--log-level", "debug", "--socket", tp.sock)
	lab.Eventually(t, 20*time.Second, "gvsd started", func() error {
		if tp.gvsd.Exited() {
			t.Fatalf("gvsd exited:\n%s", tp.gvsd.Output())
		}
		if !strings.Contains(tp.gvsd.Output(), "gvs started") {
			return fmt.Errorf("no 'gvs started' yet")
		}
		return nil
	})
	// The host's routes live on the TAP now.
	tp.gvs.Route("default", fam.routerL)

	client := tp.cl.HTTPClient(3 * time.Second)
	url := "http://" + hostPort(fam.vip.String(), httpPort) + "/"
	get := func() (string, error) {
		resp, err := client.Get(url)
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		return strings.TrimSpace(string(b)), err
	}
	lab.Eventually(t, 15*time.Second, "first request through gvs", func() error {
		_, err := get()
		return err
	})
	spread := map[string]int{}
	for i := 0; i < 100; i++ {
		who, err := get()
		if err != nil {
			t.Fatalf("request %d: %v\ngvsd:\n%s", i+1, err, tail(tp.gvsd.Output(), 30))
		}
		spread[who]++
	}
	checkSpread(t, "rr", spread, map[string]float64{"real0": 1, "real1": 1})

	// ARP (ND) for the VIP, answered by gvs: the router reaches the VIP
	// on-link.
	tp.rt.DelRoute(fam.vip.String() + fam.hostBits)
	tp.rt.RouteDev(fam.vip.String()+fam.hostBits, "eth0")
	for i := 0; i < 10; i++ {
		if _, err := get(); err != nil {
			t.Fatalf("request with the VIP on-link at the router: %v", err)
		}
	}
	gvsMAC := tp.gvs.MAC("eth0")
	if err := tp.rt.Netlink(func(h *netlink.Handle) error {
		l, err := h.LinkByName("eth0")
		if err != nil {
			return err
		}
		nf := netlink.FAMILY_V4
		if fam.v6 {
			nf = netlink.FAMILY_V6
		}
		ns, err := h.NeighList(l.Attrs().Index, nf)
		if err != nil {
			return err
		}
		for _, n := range ns {
			if n.IP.Equal(fam.vip.AsSlice()) {
				if n.HardwareAddr.String() != gvsMAC.String() {
					return fmt.Errorf("router has VIP at %s, gvs is %s", n.HardwareAddr, gvsMAC)
				}
				return nil
			}
		}
		return fmt.Errorf("router has no neighbour entry for the VIP")
	}); err != nil {
		t.Error(err)
	}

	// Exception path: a ping to the host's address from the client...
	if !fam.v6 {
		pingFrom(t, tp.cl, fam.gvs)
	}
	// ... and a TCP connection to a service of the host.
	ln, err := tp.gvs.Listen("tcp", hostPort(fam.gvs, 2222))
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				c.SetDeadline(time.Now().Add(5 * time.Second))
				b := make([]byte, 64)
				n, _ := c.Read(b)
				c.Write(append([]byte("host says: "), b[:n]...))
			}()
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := tp.cl.Dial(ctx, "tcp", hostPort(fam.gvs, 2222))
	if err != nil {
		t.Fatalf("TCP to the host through the TAP: %v\ngvsd:\n%s", err, tail(tp.gvsd.Output(), 20))
	}
	c.SetDeadline(time.Now().Add(5 * time.Second))
	c.Write([]byte("hello"))
	b := make([]byte, 64)
	n, _ := io.ReadAtLeast(c, b, len("host says: hello"))
	c.Close()
	if string(b[:n]) != "host says: hello" {
		t.Errorf("host service answered %q", b[:n])
	}

	out := tp.stopGVSD()
	if testing.Verbose() {
		t.Logf("gvsd output:\n%s", tail(out, 40))
	}
	if !strings.Contains(out, "driver=net_af_packet") || !strings.Contains(out, "dpdk exception path") {
		t.Errorf("gvsd did not run the DPDK driver:\n%s", tail(out, 30))
	}
	if !strings.Contains(out, "port eth0 (") {
		t.Errorf("no port counters at exit:\n%s", tail(out, 10))
	}
}

// dpdkConfig turns the port of the written config into a DPDK port with
// the host's addresses and gateways, and adds EAL options.
func dpdkConfig(t *testing.T, tp *topo) {
	t.Helper()
	b, err := os.ReadFile(tp.cfg)
	if err != nil {
		t.Fatal(err)
	}
	s := strings.Replace(string(b), "driver = \"dpdk\"\n", fmt.Sprintf(
		"driver = \"dpdk\"\naddresses = [%q, %q]\ngateways = [%q, %q]\ntap = \"gvs-tap0\"\n",
		v4.gvs+v4.bits, v6.gvs+v6.bits, v4.routerL, v6.routerL), 1)
	s += fmt.Sprintf("\n[global.dpdk]\nfile_prefix = %q\nmemory_mb = 256\nlog_level = \"*:warning\"\nargs = [\"--no-telemetry\"]\n",
		fmt.Sprintf("gvs-e2e-%d-%d", os.Getpid(), time.Now().UnixNano()%1e6))
	if err := os.WriteFile(tp.cfg, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
}

// pingFrom sends ICMP echo requests from ns to dst until one is answered.
func pingFrom(t *testing.T, ns *lab.NS, dst string) {
	t.Helper()
	err := ns.Do(func() error {
		c, err := icmp.ListenPacket("ip4:icmp", "0.0.0.0")
		if err != nil {
			return err
		}
		defer c.Close()
		to := &net.IPAddr{IP: net.ParseIP(dst)}
		for seq := 1; seq <= 10; seq++ {
			m := icmp.Message{Type: ipv4.ICMPTypeEcho, Body: &icmp.Echo{ID: 0x4747, Seq: seq, Data: []byte("gvs-dpdk")}}
			wb, _ := m.Marshal(nil)
			if _, err := c.WriteTo(wb, to); err != nil {
				return err
			}
			c.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
			for {
				rb := make([]byte, 1500)
				n, peer, err := c.ReadFrom(rb)
				if err != nil {
					break
				}
				rm, err := icmp.ParseMessage(1, rb[:n])
				if err == nil && rm.Type == ipv4.ICMPTypeEchoReply && peer.String() == dst {
					if e, ok := rm.Body.(*icmp.Echo); ok && e.ID == 0x4747 {
						return nil
					}
				}
			}
		}
		return fmt.Errorf("no echo reply from %s", dst)
	})
	if err != nil {
		t.Errorf("ping to the host's address through the TAP: %v", err)
	}
}
