package lab

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vishvananda/netlink"

	"gvs/internal/ethtool"
)

// twoNS builds a —veth— b with 198.18.0.1/24, 2001:db8::1/64 on a and .2 / ::2 on b.
func twoNS(t *testing.T, opt ...VethOpt) (*Lab, *NS, *NS) {
	l := New(t)
	a, b := l.NS("a"), l.NS("b")
	l.Veth(a, "eth0", b, "eth0", opt...)
	a.Addr("eth0", "198.18.0.1/24")
	a.Addr("eth0", "2001:db8::1/64")
	b.Addr("eth0", "198.18.0.2/24")
	b.Addr("eth0", "2001:db8::2/64")
	return l, a, b
}

func get(t *testing.T, ns *NS, url string) string {
	t.Helper()
	resp, err := ns.HTTPClient(5 * time.Second).Get(url)
	if err != nil {
		t.Fatalf("GET %s from %s: %v", url, ns.Name(), err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(body)
}

func TestHTTPAcrossVeth(t *testing.T) {
	_, a, b := twoNS(t)
	be4 := b.HTTPBackend("b4", "198.18.0.2:8080")
	be6 := b.HTTPBackend("b6", "[2001:db8::2]:8080")
	a.WaitTCP("198.18.0.2:8080", 5*time.Second)
	if got := get(t, a, "http://198.18.0.2:8080/"); got != "b4\n" {
		t.Fatalf("v4 body %q, want %q", got, "b4\n")
	}
	if got := get(t, a, "http://[2001:db8::2]:8080/x"); got != "b6\n" {
		t.Fatalf("v6 body %q, want %q", got, "b6\n")
	}
	if be4.Requests() != 1 || be6.Requests() != 1 {
		t.Fatalf("requests: v4 %d, v6 %d; want 1 each", be4.Requests(), be6.Requests())
	}
	// The backend lives in b only: a has no such address.
	if _, err := a.Listen("tcp", "198.18.0.2:0"); err == nil {
		t.Fatal("listening on b's address inside a succeeded")
	}
}

func TestUDPEchoAndRoutes(t *testing.T) {
	l := New(t)
	c, r, s := l.NS("c"), l.NS("r"), l.NS("s")
	l.Veth(c, "eth0", r, "c0")
	l.Veth(r, "s0", s, "eth0")
	c.Addr("eth0", "198.18.1.1/24")
	r.Addr("c0", "198.18.1.254/24")
	r.Addr("s0", "198.18.2.254/24")
	s.Addr("eth0", "198.18.2.1/24")
	c.Route("default", "198.18.1.254")
	s.Route("198.18.1.0/24", "198.18.2.254")
	r.Sysctl("net.ipv4.ip_forward", "1")
	if v := r.SysctlValue("net/ipv4/ip_forward"); v != "1" {
		t.Fatalf("ip_forward in r = %q", v)
	}
	if v := c.SysctlValue("net.ipv4.ip_forward"); v != "0" {
		t.Fatalf("ip_forward in c = %q: sysctl leaked across namespaces", v)
	}
	echo := s.UDPEcho("198.18.2.1:7")
	pc, err := c.ListenPacket("udp4", "198.18.1.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dst := &net.UDPAddr{IP: net.ParseIP("198.18.2.1"), Port: 7}
	buf := make([]byte, 64)
	Eventually(t, 5*time.Second, "UDP echo through the router", func() error {
		if _, err := pc.WriteTo([]byte("ping"), dst); err != nil {
			return err
		}
		pc.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
		n, from, err := pc.ReadFrom(buf)
		if err != nil {
			return err
		}
		if string(buf[:n]) != "ping" || from.String() != dst.String() {
			t.Fatalf("echo %q from %v", buf[:n], from)
		}
		return nil
	})
	if echo.Packets() < 1 {
		t.Fatal("echo counted no packet")
	}
}

func TestVethOptionsNeighAndChecksum(t *testing.T) {
	macA, _ := net.ParseMAC("02:00:5e:10:00:01")
	macB, _ := net.ParseMAC("02:00:5e:10:00:02")
	l, a, b := twoNS(t, MTU(3000), Queues(2), MAC(macA, macB))
	if got := a.MAC("eth0"); got.String() != macA.String() {
		t.Fatalf("a MAC %v, want %v", got, macA)
	}
	if got := b.MAC("eth0"); got.String() != macB.String() {
		t.Fatalf("b MAC %v, want %v", got, macB)
	}
	for _, ns := range []*NS{a, b} {
		err := ns.Netlink(func(h *netlink.Handle) error {
			lk, err := h.LinkByName("eth0")
			if err != nil {
				return err
			}
			at := lk.Attrs()
			if at.MTU != 3000 || at.NumTxQueues != 2 || at.NumRxQueues != 2 {
				t.Errorf("%s: mtu %d, queues tx %d rx %d", ns.Name(), at.MTU, at.NumTxQueues, at.NumRxQueues)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	a.TxChecksumOff("eth0")
	out, err := a.Run("ip", "-d", "link", "show", "eth0")
	if err != nil || !strings.Contains(out, "mtu 3000") {
		t.Fatalf("ip link in a: %v\n%s", err, out)
	}
	var on bool
	if err := a.Do(func() (err error) { on, err = ethtool.TxChecksum("eth0"); return }); err != nil || on {
		t.Fatalf("tx csum after TxChecksumOff: %t, %v", on, err)
	}
	if err := b.Do(func() (err error) { on, err = ethtool.TxChecksum("eth0"); return }); err != nil || !on {
		t.Fatalf("tx csum on untouched peer: %t, %v", on, err)
	}
	// A static neighbour with a wrong MAC: traffic from a to b is lost.
	bogus, _ := net.ParseMAC("02:00:5e:10:00:99")
	a.Neigh("eth0", "198.18.0.2", bogus)
	b.HTTPBackend("b", "198.18.0.2:80")
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if c, err := a.Dial(ctx, "tcp", "198.18.0.2:80"); err == nil {
		c.Close()
		t.Fatal("connected through a bogus static neighbour")
	}
	a.Neigh("eth0", "198.18.0.2", macB)
	a.WaitTCP("198.18.0.2:80", 5*time.Second)
	_ = l
}

func TestBridge(t *testing.T) {
	l := New(t)
	sw, h1, h2 := l.NS("sw"), l.NS("h1"), l.NS("h2")
	l.Veth(h1, "eth0", sw, "p1")
	l.Veth(h2, "eth0", sw, "p2")
	l.Bridge(sw, "br0", "p1", "p2")
	h1.Addr("eth0", "2001:db8:1::1/64")
	h2.Addr("eth0", "2001:db8:1::2/64")
	h2.HTTPBackend("h2", "[2001:db8:1::2]:80")
	h1.WaitTCP("[2001:db8:1::2]:80", 10*time.Second)
	if got := get(t, h1, "http://[2001:db8:1::2]/"); got != "h2\n" {
		t.Fatalf("body %q", got)
	}
}

// TestCleanup runs a sub-test that builds namespaces, links, listeners and a
// process, and fails; afterwards nothing of it may remain.
func TestCleanup(t *testing.T) {
	var names []string
	var pid int
	t.Run("build", func(t *testing.T) {
		l := New(t)
		a, b := l.NS("a"), l.NS("b")
		l.Veth(a, "v-a", b, "v-b")
		a.Addr("v-a", "198.18.3.1/24")
		b.Addr("v-b", "198.18.3.2/24")
		b.HTTPBackend("b", "198.18.3.2:80")
		b.UDPEcho("198.18.3.2:7")
		p := b.Start("sleep", "300")
		pid = p.Pid()
		names = []string{a.Name(), b.Name()}
		out, err := a.Run("ip", "link", "show", "v-a")
		if err != nil || !strings.Contains(out, "v-a") {
			t.Fatalf("ip link in ns: %v %s", err, out)
		}
		if _, err := os.Stat(a.Path()); err != nil {
			t.Fatal(err)
		}
		listed, err := a.Run("ip", "netns", "list")
		if err != nil || !strings.Contains(listed, a.Name()) {
			t.Fatalf("ip netns list: %v %s", err, listed)
		}
	})
	if len(names) != 2 {
		t.Fatal("sub-test did not run")
	}
	for _, n := range names {
		if _, err := os.Stat(filepath.Join(NetnsDir, n)); !os.IsNotExist(err) {
			t.Errorf("namespace %s still in %s (%v)", n, NetnsDir, err)
		}
	}
	out, err := hostRun("ip", "netns", "list")
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range names {
		if strings.Contains(out, n) {
			t.Errorf("ip netns list still shows %s:\n%s", n, out)
		}
	}
	if err := syscall.Kill(pid, 0); err != syscall.ESRCH {
		t.Errorf("process %d still exists after cleanup (kill 0: %v)", pid, err)
	}
}

// TestProcStopAndWait checks Start/Stop/Wait/Output and Run's exit status.
func TestProcStopAndWait(t *testing.T) {
	l := New(t)
	a := l.NS("a")
	p := a.Start("sh", "-c", "echo started; ip -o link show lo; trap 'echo bye; exit 0' TERM; while :; do sleep 0.1; done")
	Eventually(t, 5*time.Second, "process output", func() error {
		if !strings.Contains(p.Output(), "lo:") {
			return io.ErrUnexpectedEOF
		}
		return nil
	})
	if err := p.Wait(100 * time.Millisecond); err == nil {
		t.Fatal("Wait returned nil for a running process")
	}
	if err := p.Stop(); err != nil {
		t.Fatal(err)
	}
	if !p.Exited() {
		t.Fatal("not exited after Stop")
	}
	if _, err := a.Run("false"); err == nil {
		t.Fatal("Run(false) returned nil")
	}
	// Run sees only the namespace's links.
	out, err := a.Run("ip", "-o", "link")
	if err != nil || strings.Count(out, "\n") != 1 {
		t.Fatalf("links in a fresh namespace: %v\n%s", err, out)
	}
}

func hostRun(name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
	return string(out), err
}

// TestCleanupOnFailureAndPanic runs a helper test in a child test process
// that builds a lab and then fails (t.Fatal) or panics; the namespaces and
// the process it started must be gone when the child has exited.
func TestCleanupOnFailureAndPanic(t *testing.T) {
	New(t) // skip unless root
	for _, mode := range []string{"fatal", "panic"} {
		t.Run(mode, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestHelperBuildAndDie$", "-test.v")
			cmd.Env = append(os.Environ(), "LAB_HELPER_MODE="+mode)
			out, err := cmd.CombinedOutput()
			if err == nil {
				t.Fatalf("helper test did not fail:\n%s", out)
			}
			var names []string
			pid := 0
			for _, line := range strings.Split(string(out), "\n") {
				if _, rest, ok := strings.Cut(line, "LABNS "); ok {
					names = append(names, strings.TrimSpace(rest))
				}
				if _, rest, ok := strings.Cut(line, "LABPID "); ok {
					pid, _ = strconv.Atoi(strings.TrimSpace(rest))
				}
			}
			if len(names) != 2 || pid == 0 {
				t.Fatalf("helper output without names/pid:\n%s", out)
			}
			if mode == "fatal" && !strings.Contains(string(out), "output of sh") {
				t.Errorf("failed test did not log the process output:\n%s", out)
			}
			for _, n := range names {
				if _, err := os.Stat(filepath.Join(NetnsDir, n)); !os.IsNotExist(err) {
					t.Errorf("namespace %s left behind after %s", n, mode)
				}
			}
			if err := syscall.Kill(pid, 0); err != syscall.ESRCH {
				t.Errorf("process %d left behind after %s", pid, mode)
			}
		})
	}
}

// TestHelperBuildAndDie is run by TestCleanupOnFailureAndPanic only.
func TestHelperBuildAndDie(t *testing.T) {
	mode := os.Getenv("LAB_HELPER_MODE")
	if mode == "" {
		t.Skip("helper of TestCleanupOnFailureAndPanic")
	}
	l := New(t)
	a, b := l.NS("a"), l.NS("b")
	l.Veth(a, "eth0", b, "eth0")
	p := b.Start("sh", "-c", "echo helper-proc-output; exec sleep 300")
	Eventually(t, 5*time.Second, "helper output", func() error {
		if !strings.Contains(p.Output(), "helper-proc-output") {
			return io.ErrUnexpectedEOF
		}
		return nil
	})
	fmt.Printf("LABNS %s\nLABNS %s\nLABPID %d\n", a.Name(), b.Name(), p.Pid())
	if mode == "panic" {
		panic("deliberate panic")
	}
	t.Fatal("deliberate failure")
}
