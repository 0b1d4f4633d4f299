package afxdp

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/link"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"gvs/driver"
)

// Test topology: two network namespaces joined by a veth pair.
//
//	ns "gvsxdp-<pid>-<n>-a"   xa0 198.18.0.1/24 2001:db8::1/64  (the driver)
//	ns "gvsxdp-<pid>-<n>-b"   xb0 198.18.0.2/24 2001:db8::2/64  (the peer)
//
// The peer injects crafted frames and captures what arrives with a raw
// AF_PACKET socket. Only 198.18.0.0/15 and 2001:db8::/32 are used.

var (
	ipA4 = netip.MustParseAddr("198.18.0.1")
	ipB4 = netip.MustParseAddr("198.18.0.2")
	ipA6 = netip.MustParseAddr("2001:db8::1")
	ipB6 = netip.MustParseAddr("2001:db8::2")
)

var topoSeq atomic.Int32

// requireRoot skips the test without root, or fails it under CI.
func requireRoot(tb testing.TB) {
	tb.Helper()
	if os.Geteuid() == 0 {
		return
	}
	if os.Getenv("CI") == "true" {
		tb.Fatal("afxdp tests need root (network namespaces, XDP, AF_XDP); CI=true so this is a failure, not a skip")
	}
	tb.Skip("afxdp tests need root (network namespaces, XDP, AF_XDP): skipped")
}

type topo struct {
	tb         testing.TB
	nsA, nsB   netns.NsHandle
	ifA, ifB   string
	idxA, idxB int
	macA, macB net.HardwareAddr
	peer       *peerSock
}

type topoOpts struct {
	queues  int
	peerMTU int
	noPeerX bool // do not attach an XDP_PASS program to the peer
}

// inNS runs fn on a fresh OS thread switched into ns.
func inNS(ns netns.NsHandle, fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			errc <- err
			return // thread stays locked: it is discarded
		}
		defer orig.Close()
		if err := netns.Set(ns); err != nil {
			errc <- err
			return
		}
		err = fn()
		if netns.Set(orig) == nil {
			runtime.UnlockOSThread()
		}
		errc <- err
	}()
	return <-errc
}

func newTopo(tb testing.TB, o topoOpts) *topo {
	tb.Helper()
	requireRoot(tb)
	if o.queues == 0 {
		o.queues = 1
	}
	base := fmt.Sprintf("gvsxdp-%d-%d", os.Getpid(), topoSeq.Add(1))
	t := &topo{tb: tb, ifA: "xa0", ifB: "xb0"}

	// Create both namespaces on a throw-away thread (NewNamed switches the
	// calling thread into the new namespace).
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			errc <- err
			return
		}
		defer orig.Close()
		t.nsA, err = netns.NewNamed(base + "-a")
		if err == nil {
			t.nsB, err = netns.NewNamed(base + "-b")
		}
		if netns.Set(orig) == nil {
			runtime.UnlockOSThread()
		}
		errc <- err
	}()
	err := <-errc
	tb.Cleanup(func() {
		for _, n := range []string{base + "-a", base + "-b"} {
			if err := netns.DeleteNamed(n); err != nil && !errors.Is(err, os.ErrNotExist) && !errors.Is(err, unix.EINVAL) {
				tb.Logf("delete netns %s: %v", n, err)
			}
		}
		if t.nsA.IsOpen() {
			t.nsA.Close()
		}
		if t.nsB.IsOpen() {
			t.nsB.Close()
		}
	})
	if err != nil {
		tb.Fatalf("create network namespaces: %v", err)
	}

	hA, err := netlink.NewHandleAt(t.nsA)
	if err != nil {
		tb.Fatal(err)
	}
	defer hA.Close()
	hB, err := netlink.NewHandleAt(t.nsB)
	if err != nil {
		tb.Fatal(err)
	}
	defer hB.Close()

	veth := &netlink.Veth{
		LinkAttrs:       netlink.LinkAttrs{Name: t.ifA, NumRxQueues: o.queues, NumTxQueues: o.queues, MTU: 1500, TxQLen: -1},
		PeerName:        t.ifB,
		PeerNamespace:   netlink.NsFd(int(t.nsB)),
		PeerNumRxQueues: uint32(o.queues),
		PeerNumTxQueues: uint32(o.queues),
		PeerTxQLen:      -1,
	}
	if o.peerMTU != 0 {
		veth.PeerMTU = uint32(o.peerMTU)
	}
	if err := hA.LinkAdd(veth); err != nil {
		tb.Fatalf("create veth: %v", err)
	}
	la, err := hA.LinkByName(t.ifA)
	if err != nil {
		tb.Fatal(err)
	}
	lb, err := hB.LinkByName(t.ifB)
	if err != nil {
		tb.Fatal(err)
	}
	t.idxA, t.idxB = la.Attrs().Index, lb.Attrs().Index
	t.macA, t.macB = la.Attrs().HardwareAddr, lb.Attrs().HardwareAddr
	addrs := []struct {
		h    *netlink.Handle
		l    netlink.Link
		cidr string
	}{
		{hA, la, "198.18.0.1/24"}, {hA, la, "198.18.0.100/32"}, {hA, la, "2001:db8::1/64"},
		{hB, lb, "198.18.0.2/24"}, {hB, lb, "2001:db8::2/64"},
	}
	for _, a := range addrs {
		ad, err := netlink.ParseAddr(a.cidr)
		if err != nil {
			tb.Fatal(err)
		}
		ad.Flags = unix.IFA_F_NODAD
		if err := a.h.AddrAdd(a.l, ad); err != nil {
			tb.Fatalf("add %s: %v", a.cidr, err)
		}
	}
	for _, x := range []struct {
		h *netlink.Handle
		l netlink.Link
	}{{hA, la}, {hB, lb}} {
		if err := x.h.LinkSetUp(x.l); err != nil {
			tb.Fatal(err)
		}
	}
	if !o.noPeerX {
		t.attachPeerXDP()
	}
	t.peer = openPeer(tb, t.nsB, t.idxB)
	return t
}

// attachPeerXDP attaches an XDP_PASS program to the peer: frames that XDP
// transmits or redirects into a veth are dropped unless the receiving end
// has an XDP program (or GRO).
func (t *topo) attachPeerXDP() {
	prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{
		Type:         ebpf.XDP,
		License:      "GPL",
		Instructions: asm.Instructions{asm.Mov.Imm(asm.R0, 2 /* XDP_PASS */), asm.Return()},
	})
	if err != nil {
		t.tb.Fatalf("load peer XDP_PASS program: %v", err)
	}
	var l link.Link
	err = inNS(t.nsB, func() error {
		var err error
		l, err = link.AttachXDP(link.XDPOptions{Program: prog, Interface: t.idxB, Flags: link.XDPDriverMode})
		return err
	})
	if err != nil {
		prog.Close()
		t.tb.Fatalf("attach XDP_PASS to peer %s: %v", t.ifB, err)
	}
	t.tb.Cleanup(func() {
		l.Close()
		prog.Close()
	})
}

// open opens the driver on the A side.
func (t *topo) open(cfg Config) (*Port, error) {
	cfg.Interface = t.ifA
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(testWriter{t.tb}, nil))
	}
	var p *Port
	err := inNS(t.nsA, func() error {
		var err error
		p, err = Open(cfg)
		return err
	})
	return p, err
}

func (t *topo) mustOpen(cfg Config) *Port {
	t.tb.Helper()
	p, err := t.open(cfg)
	if err != nil {
		t.tb.Fatalf("Open: %v", err)
	}
	t.tb.Cleanup(func() { p.Close() })
	t.tb.Logf("opened %v", p)
	return p
}

// xdpAttached reports whether the A side has an XDP program, per netlink.
func (t *topo) xdpAttached() bool {
	h, err := netlink.NewHandleAt(t.nsA)
	if err != nil {
		t.tb.Fatal(err)
	}
	defer h.Close()
	l, err := h.LinkByName(t.ifA)
	if err != nil {
		t.tb.Fatal(err)
	}
	x := l.Attrs().Xdp
	return x != nil && (x.Attached || x.ProgId != 0)
}

type testWriter struct{ tb testing.TB }

func (w testWriter) Write(b []byte) (int, error) {
	w.tb.Logf("%s", b)
	return len(b), nil
}

var _ io.Writer = testWriter{}

// peerSock is a raw AF_PACKET socket on the peer interface.
type peerSock struct {
	tb    testing.TB
	fd    int
	ifidx int
}

func openPeer(tb testing.TB, ns netns.NsHandle, ifidx int) *peerSock {
	var fd int
	err := inNS(ns, func() error {
		var err error
		fd, err = unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, int(htons(unix.ETH_P_ALL)))
		if err != nil {
			return err
		}
		return unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ALL), Ifindex: ifidx})
	})
	if err != nil {
		tb.Fatalf("peer AF_PACKET socket: %v", err)
	}
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &unix.Timeval{Usec: 20000}); err != nil {
		tb.Fatal(err)
	}
	_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, 4<<20)
	p := &peerSock{tb: tb, fd: fd, ifidx: ifidx}
	tb.Cleanup(func() { unix.Close(fd) })
	return p
}

func (p *peerSock) send(frames ...[]byte) {
	p.tb.Helper()
	for _, f := range frames {
		if err := unix.Sendto(p.fd, f, 0, &unix.SockaddrLinklayer{Ifindex: p.ifidx}); err != nil {
			p.tb.Fatalf("peer send: %v", err)
		}
	}
}

// waitFor reads incoming frames until match returns true for one (which it
// returns) or the timeout passes (nil).
func (p *peerSock) waitFor(timeout time.Duration, match func([]byte) bool) []byte {
	deadline := time.Now().Add(timeout)
	buf := make([]byte, 65536)
	for time.Now().Before(deadline) {
		n, from, err := unix.Recvfrom(p.fd, buf, 0)
		if err != nil {
			if errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EINTR) {
				continue
			}
			p.tb.Fatalf("peer recv: %v", err)
		}
		if ll, ok := from.(*unix.SockaddrLinklayer); ok && ll.Pkttype == unix.PACKET_OUTGOING {
			continue
		}
		if match(buf[:n]) {
			return append([]byte(nil), buf[:n]...)
		}
	}
	return nil
}

// collect reads incoming frames for which keep returns true until want were
// seen or the timeout passes.
func (p *peerSock) collect(want int, timeout time.Duration, keep func([]byte) bool) [][]byte {
	var got [][]byte
	deadline := time.Now().Add(timeout)
	for len(got) < want && time.Now().Before(deadline) {
		f := p.waitFor(time.Until(deadline), keep)
		if f != nil {
			got = append(got, f)
		}
	}
	return got
}

// receive polls the queues until want frames arrived or the timeout passed;
// it returns copies of the packets and frees the frames.
func receive(tb testing.TB, qs []*Queue, want int, timeout time.Duration) [][]byte {
	tb.Helper()
	var got [][]byte
	var burst [driver.BurstSize]driver.Frame
	deadline := time.Now().Add(timeout)
	for len(got) < want && time.Now().Before(deadline) {
		idle := true
		for _, q := range qs {
			n, err := q.Receive(burst[:])
			if err != nil {
				tb.Fatalf("Receive: %v", err)
			}
			for i := 0; i < n; i++ {
				f := &burst[i]
				if f.Off < driver.MinHeadroom {
					tb.Errorf("frame headroom %d < MinHeadroom %d", f.Off, driver.MinHeadroom)
				}
				if len(f.Buf) != q.port.frameSize || f.Off+f.Len > len(f.Buf) {
					tb.Errorf("frame view: len(Buf) %d Off %d Len %d", len(f.Buf), f.Off, f.Len)
				}
				got = append(got, append([]byte(nil), f.Data()...))
			}
			q.Free(burst[:n])
			if n > 0 {
				idle = false
			}
		}
		if idle {
			time.Sleep(200 * time.Microsecond) // poll interval, not synchronization
		}
	}
	return got
}

// drainNone asserts that no queue has a frame right now.
func drainNone(tb testing.TB, qs []*Queue, what string) {
	tb.Helper()
	var burst [driver.BurstSize]driver.Frame
	for _, q := range qs {
		n, err := q.Receive(burst[:])
		if err != nil {
			tb.Fatalf("Receive: %v", err)
		}
		if n > 0 {
			tb.Errorf("%s: %d unexpected frame(s) on queue %d, first %x", what, n, q.id, burst[0].Data())
			q.Free(burst[:n])
		}
	}
}
