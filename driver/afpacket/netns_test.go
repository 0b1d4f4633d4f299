package afpacket

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"gvs/driver"
)

// Test topology: one network namespace per test (name "gvsafp-<pid>-<n>")
// holding a veth pair gvs0 <-> peer0. The driver runs on gvs0, which has no
// address; peer0 has 198.18.0.1/24 and a permanent neighbour entry for
// 198.18.0.2 -> gvs0's MAC, so the peer's kernel can send to "the far side"
// without ARP. IPv6 is disabled in the namespace (no DAD/RS/MLD noise) and
// forwarding is off, so the kernel drops its copies of what gvs receives.

const (
	gvsIf    = "gvs0"
	peerIf   = "peer0"
	testType = 0x88b5 // IEEE 802 local experimental EtherType
)

var (
	gvsMAC  = net.HardwareAddr{0x02, 0x47, 0x56, 0x53, 0x00, 0x02}
	peerMAC = net.HardwareAddr{0x02, 0x47, 0x56, 0x53, 0x00, 0x01}
	peerIP  = net.IPv4(198, 18, 0, 1).To4()
	farIP   = net.IPv4(198, 18, 0, 2).To4() // "behind" gvs0, not configured anywhere
)

var nsSeq atomic.Int32

// requireRoot skips a test that needs root, or fails it when CI=true.
func requireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() == 0 {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("this test needs root (network namespaces, AF_PACKET); CI=true forbids skipping")
	}
	t.Skip("skipping: needs root (network namespaces, AF_PACKET sockets); run as root, CI=true turns this into a failure")
}

type testNet struct {
	t    testing.TB
	name string
}

func runCmd(t testing.TB, args ...string) {
	t.Helper()
	out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// newTestNet makes the namespace and the veth pair with queues queue pairs
// per end; everything is removed in t.Cleanup, also when the test fails.
func newTestNet(t testing.TB, queues int) *testNet {
	t.Helper()
	requireRoot(t)
	n := &testNet{t: t, name: fmt.Sprintf("gvsafp-%d-%d", os.Getpid(), nsSeq.Add(1))}
	runCmd(t, "ip", "netns", "add", n.name)
	t.Cleanup(func() {
		if out, err := exec.Command("ip", "netns", "del", n.name).CombinedOutput(); err != nil {
			t.Errorf("removing netns %s: %v\n%s", n.name, err, out)
		}
	})
	n.do(func() error {
		for _, kv := range [][2]string{
			{"/proc/sys/net/ipv6/conf/all/disable_ipv6", "1"},
			{"/proc/sys/net/ipv6/conf/default/disable_ipv6", "1"},
			{"/proc/sys/net/ipv4/ip_forward", "0"},
		} {
			if err := os.WriteFile(kv[0], []byte(kv[1]), 0o644); err != nil {
				return err
			}
		}
		return nil
	})
	q := fmt.Sprint(queues)
	runCmd(t, "ip", "-n", n.name, "link", "add", gvsIf, "address", gvsMAC.String(), "numtxqueues", q, "numrxqueues", q,
		"type", "veth", "peer", "name", peerIf, "address", peerMAC.String(), "numtxqueues", q, "numrxqueues", q)
	runCmd(t, "ip", "-n", n.name, "addr", "add", "198.18.0.1/24", "dev", peerIf)
	runCmd(t, "ip", "-n", n.name, "link", "set", gvsIf, "up")
	runCmd(t, "ip", "-n", n.name, "link", "set", peerIf, "up")
	runCmd(t, "ip", "-n", n.name, "neigh", "add", farIP.String(), "lladdr", gvsMAC.String(), "dev", peerIf, "nud", "permanent")
	return n
}

// do runs fn on a fresh OS thread that entered the namespace. The thread is
// never reused: the goroutine exits locked, so the runtime discards it.
func (n *testNet) do(fn func() error) {
	n.t.Helper()
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		f, err := os.Open("/run/netns/" + n.name)
		if err != nil {
			errc <- err
			return
		}
		err = unix.Setns(int(f.Fd()), unix.CLONE_NEWNET)
		f.Close() // before fn: tests count open fds
		if err != nil {
			errc <- fmt.Errorf("setns %s: %w", n.name, err)
			return
		}
		errc <- fn()
	}()
	if err := <-errc; err != nil {
		n.t.Fatalf("in netns %s: %v", n.name, err)
	}
}

// open opens the driver on gvs0 inside the namespace.
func (n *testNet) open(cfg Config) *Port {
	n.t.Helper()
	cfg.Interface = gvsIf
	return n.openIf(cfg)
}

// openIf opens the driver on cfg.Interface inside the namespace; it is
// closed in t.Cleanup.
func (n *testNet) openIf(cfg Config) *Port {
	n.t.Helper()
	var p *Port
	n.do(func() (err error) {
		p, err = Open(cfg)
		return err
	})
	n.t.Cleanup(func() { p.Close() })
	return p
}

// rawSock is a plain (ring-less) AF_PACKET socket on one end of the veth.
type rawSock struct {
	t       testing.TB
	fd      int
	ifindex int
}

// raw opens a raw socket bound to ifname that receives all incoming frames
// (not its own outgoing ones). vnet adds PACKET_VNET_HDR: every frame sent
// must then start with a struct virtio_net_hdr.
func (n *testNet) raw(ifname string, vnet bool) *rawSock {
	n.t.Helper()
	return n.rawSock(ifname, vnet, true)
}

// rawSock opens a raw socket; ignoreOut false makes it see outgoing frames
// too, as a capture tool would.
func (n *testNet) rawSock(ifname string, vnet, ignoreOut bool) *rawSock {
	n.t.Helper()
	s := &rawSock{t: n.t}
	n.do(func() error {
		ifi, err := net.InterfaceByName(ifname)
		if err != nil {
			return err
		}
		s.ifindex = ifi.Index
		fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return err
		}
		s.fd = fd
		if vnet {
			if err := unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_VNET_HDR, 1); err != nil {
				return fmt.Errorf("PACKET_VNET_HDR: %w", err)
			}
		}
		if ignoreOut {
			if err := unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_IGNORE_OUTGOING, 1); err != nil {
				return err
			}
		}
		if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, 4<<20); err != nil {
			return err
		}
		tv := unix.NsecToTimeval(int64(20 * time.Millisecond))
		if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
			return err
		}
		proto := htons(unix.ETH_P_ALL)
		if vnet {
			proto = 0 // send only
		}
		return unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: proto, Ifindex: ifi.Index})
	})
	n.t.Cleanup(func() { unix.Close(s.fd) })
	return s
}

func (s *rawSock) send(frame []byte) {
	s.t.Helper()
	et := binary.BigEndian.Uint16(frame[12:])
	sa := &unix.SockaddrLinklayer{Protocol: htons(et), Ifindex: s.ifindex, Halen: 6}
	copy(sa.Addr[:], frame[:6])
	if err := unix.Sendto(s.fd, frame, 0, sa); err != nil {
		s.t.Fatalf("raw send of %d bytes: %v", len(frame), err)
	}
}

// sendVnet sends frame with a virtio_net_hdr asking for the L4 checksum at
// csumStart+csumOff to be completed by "hardware" (CHECKSUM_PARTIAL).
func (s *rawSock) sendVnet(frame []byte, csumStart, csumOff int) {
	s.t.Helper()
	var h [10]byte
	h[0] = 1 // VIRTIO_NET_HDR_F_NEEDS_CSUM; gso_type 0 (none)
	binary.NativeEndian.PutUint16(h[6:], uint16(csumStart))
	binary.NativeEndian.PutUint16(h[8:], uint16(csumOff))
	et := binary.BigEndian.Uint16(frame[12:])
	sa := &unix.SockaddrLinklayer{Protocol: htons(et), Ifindex: s.ifindex, Halen: 6}
	copy(sa.Addr[:], frame[:6])
	if err := unix.Sendto(s.fd, append(h[:], frame...), 0, sa); err != nil {
		s.t.Fatalf("vnet send of %d bytes: %v", len(frame), err)
	}
}

// drain reads whatever is queued without waiting and returns how many
// frames match.
func (s *rawSock) drain(match func(frame []byte) bool) int {
	s.t.Helper()
	buf := make([]byte, 65536)
	k := 0
	for {
		n, _, err := unix.Recvfrom(s.fd, buf, unix.MSG_DONTWAIT)
		if err != nil {
			if err == unix.EAGAIN || err == unix.EINTR {
				return k
			}
			s.t.Fatalf("raw recv: %v", err)
		}
		if match(buf[:n]) {
			k++
		}
	}
}

// recvUntil reads frames until done returns true; it fails the test at the
// deadline.
func (s *rawSock) recvUntil(timeout time.Duration, done func(frame []byte) bool) {
	s.t.Helper()
	deadline := time.Now().Add(timeout)
	buf := make([]byte, 65536)
	for {
		n, _, err := unix.Recvfrom(s.fd, buf, 0)
		if err == nil {
			if done(bytes.Clone(buf[:n])) {
				return
			}
		} else if err != unix.EAGAIN && err != unix.EINTR {
			s.t.Fatalf("raw recv: %v", err)
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("raw recv: deadline of %v passed", timeout)
		}
	}
}

type rxPkt struct {
	q    int
	off  int
	data []byte
}

// settle is how long collect keeps reading after its stop condition: a
// TPACKET_V3 block is handed over at the latest when its retire timer fires
// (BlockTimeout, rounded up to a jiffy), so anything that arrived before the
// stop packet is visible by then.
const settle = 60 * time.Millisecond

// collect polls every queue of p, copying and freeing each frame, until stop
// returns true for one frame, then keeps reading for settle. It fails the
// test if stop never fires within timeout.
func collect(t testing.TB, p *Port, timeout time.Duration, stop func(pkt rxPkt) bool) []rxPkt {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var out []rxPkt
	var burst [driver.BurstSize]driver.Frame
	var until time.Time
	for {
		got := 0
		for qi := 0; qi < p.NumQueues(); qi++ {
			q := p.Queue(qi)
			n, err := q.Receive(burst[:])
			if err != nil {
				t.Fatalf("queue %d: Receive: %v", qi, err)
			}
			for i := 0; i < n; i++ {
				pkt := rxPkt{q: qi, off: burst[i].Off, data: bytes.Clone(burst[i].Data())}
				out = append(out, pkt)
				if until.IsZero() && stop(pkt) {
					until = time.Now().Add(settle)
				}
			}
			q.Free(burst[:n])
			got += n
		}
		now := time.Now()
		if !until.IsZero() && now.After(until) {
			return out
		}
		if now.After(deadline) {
			t.Fatalf("collect: stop condition not met within %v (%d frames received)", timeout, len(out))
		}
		if got == 0 {
			time.Sleep(50 * time.Microsecond) // poll back-off, not synchronisation
		}
	}
}

// testFrame builds a frame of the test EtherType, total length size, from
// src to dst, carrying a marker, a sequence number and a pattern.
func testFrame(dst, src net.HardwareAddr, seq, size int) []byte {
	f := make([]byte, size)
	copy(f, dst)
	copy(f[6:], src)
	binary.BigEndian.PutUint16(f[12:], testType)
	copy(f[14:], "GVSAFP")
	binary.BigEndian.PutUint32(f[20:], uint32(seq))
	for i := 24; i < size; i++ {
		f[i] = byte(i*7 + seq)
	}
	return f
}

func barrierFrame(dst, src net.HardwareAddr) []byte {
	f := make([]byte, 60)
	copy(f, dst)
	copy(f[6:], src)
	binary.BigEndian.PutUint16(f[12:], testType)
	copy(f[14:], "BARRIER")
	return f
}

func isTestFrame(f []byte) bool {
	return len(f) >= 24 && binary.BigEndian.Uint16(f[12:]) == testType && string(f[14:20]) == "GVSAFP"
}

func isBarrier(f []byte) bool {
	return len(f) >= 21 && binary.BigEndian.Uint16(f[12:]) == testType && string(f[14:21]) == "BARRIER"
}

// openFDs counts the process's open file descriptors.
func openFDs(t testing.TB) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}

// socketMappings counts memory mappings of sockets (the packet rings).
func socketMappings(t testing.TB) int {
	t.Helper()
	b, err := os.ReadFile("/proc/self/maps")
	if err != nil {
		t.Fatal(err)
	}
	return strings.Count(string(b), "socket:[")
}

// TestMain removes namespaces left behind by earlier runs that died before
// their cleanups ran (a panic, a kill): "gvsafp-<pid>-<n>" whose process is
// gone. Namespaces of live processes (concurrent runs) are left alone.
func TestMain(m *testing.M) {
	if os.Geteuid() == 0 {
		ents, _ := os.ReadDir("/run/netns")
		for _, e := range ents {
			var pid, seq int
			if _, err := fmt.Sscanf(e.Name(), "gvsafp-%d-%d", &pid, &seq); err != nil || pid == os.Getpid() {
				continue
			}
			if _, err := os.Stat(fmt.Sprintf("/proc/%d", pid)); os.IsNotExist(err) {
				_ = exec.Command("ip", "netns", "del", e.Name()).Run()
			}
		}
	}
	os.Exit(m.Run())
}
