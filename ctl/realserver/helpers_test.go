package realserver

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"gvs/tests/lab"

	"github.com/google/nftables"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

var (
	clientV4 = netip.MustParseAddr("198.18.0.1")
	realV4   = netip.MustParseAddr("198.18.0.2")
	clientV6 = netip.MustParseAddr("2001:db8::1")
	realV6   = netip.MustParseAddr("2001:db8::2")
	vip4a    = netip.MustParseAddr("198.18.100.1")
	vip4b    = netip.MustParseAddr("198.18.100.2")
	vip6a    = netip.MustParseAddr("2001:db8:100::1")
	vip6b    = netip.MustParseAddr("2001:db8:100::2")
)

// topo is a client and a real server on a veth ("eth0" on both sides). The
// client's TX checksum offload is off, so what it sends carries complete
// checksums, as gvs's rewritten packets do: the real verifies them.
type topo struct {
	lab            *lab.Lab
	client, real   *lab.NS
	stateDir       string
	sysctlsAtStart map[string]string
}

var watchedSysctls = []string{
	"net/ipv4/conf/all/arp_ignore", "net/ipv4/conf/all/arp_announce",
	"net/ipv4/conf/eth0/arp_ignore", "net/ipv4/conf/eth0/arp_announce",
}

func newTopo(t *testing.T) *topo {
	l := lab.New(t)
	c, r := l.NS("client"), l.NS("real")
	l.Veth(c, "eth0", r, "eth0")
	c.Addr("eth0", clientV4.String()+"/24")
	c.Addr("eth0", clientV6.String()+"/64")
	r.Addr("eth0", realV4.String()+"/24")
	r.Addr("eth0", realV6.String()+"/64")
	c.TxChecksumOff("eth0")
	tp := &topo{lab: l, client: c, real: r, stateDir: t.TempDir(), sysctlsAtStart: map[string]string{}}
	for _, k := range watchedSysctls {
		tp.sysctlsAtStart[k] = r.SysctlValue(k)
	}
	return tp
}

func (tp *topo) cfg(method string) Config {
	return Config{Method: method, Interface: "eth0", StateDir: tp.stateDir}
}

func (tp *topo) setup(t *testing.T, cfg Config) {
	t.Helper()
	cfg.Logf = func(f string, a ...any) { t.Logf("setup: "+f, a...) }
	if err := tp.real.Do(func() error { return Setup(cfg) }); err != nil {
		t.Fatalf("Setup(%+v): %v", cfg, err)
	}
}

func (tp *topo) teardown(t *testing.T, cfg Config) {
	t.Helper()
	cfg.Logf = func(f string, a ...any) { t.Logf("teardown: "+f, a...) }
	if err := tp.real.Do(func() error { return Teardown(cfg) }); err != nil {
		t.Fatalf("Teardown(%+v): %v", cfg, err)
	}
}

// loAddrs lists the addresses of the real's lo other than 127.0.0.1/::1.
func (tp *topo) loAddrs(t *testing.T) []netip.Addr {
	t.Helper()
	var out []netip.Addr
	err := tp.real.Netlink(func(h *netlink.Handle) error {
		lo, err := h.LinkByName("lo")
		if err != nil {
			return err
		}
		as, err := h.AddrList(lo, netlink.FAMILY_ALL)
		if err != nil {
			return err
		}
		for _, a := range as {
			ip, _ := netip.AddrFromSlice(a.IP)
			if ip = ip.Unmap(); !ip.IsLoopback() {
				out = append(out, ip)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// assertClean checks that the real is as before Setup: no VIP on lo,
// sysctls as at the start, no nft table, no clsact qdisc / filter, no
// tunnel device, no state file.
func (tp *topo) assertClean(t *testing.T) {
	t.Helper()
	if as := tp.loAddrs(t); len(as) != 0 {
		t.Errorf("addresses left on lo: %v", as)
	}
	for k, v := range tp.sysctlsAtStart {
		if got := tp.real.SysctlValue(k); got != v {
			t.Errorf("sysctl %s = %s, was %s before Setup", k, got, v)
		}
	}
	for _, is4 := range []bool{true, false} {
		if tp.hasNftTable(t, is4) {
			t.Errorf("nft table %s left (ip4: %v)", nftTable, is4)
		}
	}
	err := tp.real.Netlink(func(h *netlink.Handle) error {
		eth, err := h.LinkByName("eth0")
		if err != nil {
			return err
		}
		qs, err := h.QdiscList(eth)
		if err != nil {
			return err
		}
		for _, q := range qs {
			if q.Type() == "clsact" {
				t.Errorf("clsact qdisc left on eth0")
			}
		}
		for _, n := range []string{tunDev4, tunDev6} {
			if _, err := h.LinkByName(n); err == nil {
				t.Errorf("tunnel device %s left", n)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	ents, err := os.ReadDir(tp.stateDir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		b, _ := os.ReadFile(tp.stateDir + "/" + e.Name())
		t.Errorf("state file left: %s\n%s", e.Name(), b)
	}
}

func (tp *topo) hasNftTable(t *testing.T, is4 bool) bool {
	t.Helper()
	found := false
	err := tp.real.Do(func() error {
		c, err := nftables.New()
		if err != nil {
			return err
		}
		ts, err := c.ListTablesOfFamily(nftFamily(is4))
		if err != nil {
			return err
		}
		for _, tb := range ts {
			found = found || tb.Name == nftTable
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return found
}

// decapFilters lists the names of the BPF filters on the real's eth0 ingress.
func (tp *topo) decapFilters(t *testing.T) []string {
	t.Helper()
	var names []string
	err := tp.real.Netlink(func(h *netlink.Handle) error {
		eth, err := h.LinkByName("eth0")
		if err != nil {
			return err
		}
		fs, err := h.FilterList(eth, netlink.HANDLE_MIN_INGRESS)
		if err != nil {
			return err
		}
		for _, f := range fs {
			if bf, ok := f.(*netlink.BpfFilter); ok {
				names = append(names, bf.Name)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return names
}

// snmpCounter reads a counter of the real's /proc/net/snmp (v4: "Udp"
// "InCsumErrors") or snmp6 ("Udp6InCsumErrors"). /proc/thread-self/net:
// /proc/self/net would show the main thread's namespace.
func (tp *topo) snmpCounter(t *testing.T, v6 bool, proto, field string) int64 {
	t.Helper()
	var data []byte
	file := "/proc/thread-self/net/snmp"
	if v6 {
		file += "6"
	}
	if err := tp.real.Do(func() (err error) { data, err = os.ReadFile(file); return }); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(data), "\n")
	if v6 {
		for _, l := range lines {
			f := strings.Fields(l)
			if len(f) == 2 && f[0] == proto+field {
				n, _ := strconv.ParseInt(f[1], 10, 64)
				return n
			}
		}
		t.Fatalf("%s%s not in %s", proto, field, file)
	}
	for i := 0; i+1 < len(lines); i++ {
		h, v := strings.Fields(lines[i]), strings.Fields(lines[i+1])
		if len(h) == 0 || h[0] != proto+":" || len(v) != len(h) {
			continue
		}
		for j := range h {
			if h[j] == field {
				n, _ := strconv.ParseInt(v[j], 10, 64)
				return n
			}
		}
	}
	t.Fatalf("%s %s not in %s", proto, field, file)
	return 0
}

// udpExchange sends payload from the client's socket pc to dst (setting
// the DSCP with IP_TOS / IPV6_TCLASS first) and returns the source of the
// reply, retrying a few times within 3 s.
func udpExchange(t *testing.T, pc net.PacketConn, dst netip.AddrPort, dscp uint8, payload string) (netip.AddrPort, error) {
	t.Helper()
	rc, err := pc.(*net.UDPConn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var serr error
	err = rc.Control(func(fd uintptr) {
		if dst.Addr().Is4() {
			serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_IP, unix.IP_TOS, int(dscp)<<2)
		} else {
			serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_IPV6, unix.IPV6_TCLASS, int(dscp)<<2)
		}
	})
	if err != nil || serr != nil {
		t.Fatalf("set DSCP: %v %v", err, serr)
	}
	buf := make([]byte, 1500)
	var last error
	for try := 0; try < 6; try++ {
		if _, err := pc.WriteTo([]byte(payload), net.UDPAddrFromAddrPort(dst)); err != nil {
			t.Fatal(err)
		}
		pc.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
		n, from, err := pc.ReadFrom(buf)
		if err != nil {
			last = err
			continue
		}
		if string(buf[:n]) != payload {
			last = fmt.Errorf("reply %q, want %q", buf[:n], payload)
			continue
		}
		ap := from.(*net.UDPAddr).AddrPort()
		return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()), nil
	}
	return netip.AddrPort{}, last
}

// arpProbe sends an ARP request for target out of ifname (from the
// namespace of the calling thread) and returns the MAC of the first reply
// from target within timeout, or nil.
func arpProbe(ifname string, sender, target netip.Addr, timeout time.Duration) (net.HardwareAddr, error) {
	ifi, err := net.InterfaceByName(ifname)
	if err != nil {
		return nil, err
	}
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, int(htons(unix.ETH_P_ARP)))
	if err != nil {
		return nil, err
	}
	defer unix.Close(fd)
	if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ARP), Ifindex: ifi.Index}); err != nil {
		return nil, err
	}
	req := make([]byte, 28)
	binary.BigEndian.PutUint16(req[0:], 1)      // Ethernet
	binary.BigEndian.PutUint16(req[2:], 0x0800) // IPv4
	req[4], req[5] = 6, 4
	binary.BigEndian.PutUint16(req[6:], 1) // request
	copy(req[8:14], ifi.HardwareAddr)
	copy(req[14:18], sender.AsSlice())
	copy(req[24:28], target.AsSlice())
	to := &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ARP), Ifindex: ifi.Index, Halen: 6}
	copy(to.Addr[:], []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff})
	if err := unix.Sendto(fd, req, 0, to); err != nil {
		return nil, err
	}
	tv := unix.NsecToTimeval((100 * time.Millisecond).Nanoseconds())
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		return nil, err
	}
	deadline := time.Now().Add(timeout)
	buf := make([]byte, 128)
	for i := 0; i < 1000 && time.Now().Before(deadline); i++ {
		n, _, err := unix.Recvfrom(fd, buf, 0)
		if err != nil {
			if errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EINTR) {
				continue
			}
			return nil, err
		}
		p := buf[:n]
		if n >= 28 && binary.BigEndian.Uint16(p[6:]) == 2 && bytes.Equal(p[14:18], target.AsSlice()) {
			return net.HardwareAddr(bytes.Clone(p[8:14])), nil
		}
	}
	return nil, nil
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

// checksum is the Internet checksum of b, starting from sum.
func checksum(sum uint32, b []byte) uint16 {
	for len(b) >= 2 {
		sum += uint32(b[0])<<8 | uint32(b[1])
		b = b[2:]
	}
	if len(b) == 1 {
		sum += uint32(b[0]) << 8
	}
	for sum>>16 != 0 {
		sum = sum&0xffff + sum>>16
	}
	return ^uint16(sum)
}

// udpPacket builds an IPv4 or IPv6 packet src:sport → dst:dport with a
// UDP payload and correct checksums.
func udpPacket(src, dst netip.AddrPort, payload []byte) []byte {
	udp := make([]byte, 8+len(payload))
	binary.BigEndian.PutUint16(udp[0:], src.Port())
	binary.BigEndian.PutUint16(udp[2:], dst.Port())
	binary.BigEndian.PutUint16(udp[4:], uint16(len(udp)))
	copy(udp[8:], payload)
	var pseudo []byte
	pseudo = append(pseudo, src.Addr().AsSlice()...)
	pseudo = append(pseudo, dst.Addr().AsSlice()...)
	pseudo = append(pseudo, 0, syscall.IPPROTO_UDP)
	pseudo = binary.BigEndian.AppendUint16(pseudo, uint16(len(udp)))
	var sum uint32
	for i := 0; i+1 < len(pseudo); i += 2 {
		sum += uint32(pseudo[i])<<8 | uint32(pseudo[i+1])
	}
	cs := checksum(sum, udp)
	if cs == 0 {
		cs = 0xffff
	}
	binary.BigEndian.PutUint16(udp[6:], cs)
	if src.Addr().Is4() {
		ip := make([]byte, 20, 20+len(udp))
		ip[0] = 0x45
		binary.BigEndian.PutUint16(ip[2:], uint16(20+len(udp)))
		binary.BigEndian.PutUint16(ip[6:], 0x4000) // DF
		ip[8] = 64
		ip[9] = syscall.IPPROTO_UDP
		copy(ip[12:16], src.Addr().AsSlice())
		copy(ip[16:20], dst.Addr().AsSlice())
		binary.BigEndian.PutUint16(ip[10:], checksum(0, ip))
		return append(ip, udp...)
	}
	ip := make([]byte, 40, 40+len(udp))
	ip[0] = 0x60
	binary.BigEndian.PutUint16(ip[4:], uint16(len(udp)))
	ip[6] = syscall.IPPROTO_UDP
	ip[7] = 64
	copy(ip[8:24], src.Addr().AsSlice())
	copy(ip[24:40], dst.Addr().AsSlice())
	return append(ip, udp...)
}

// sendTunneled sends inner (a whole IP packet) to outerDst in an outer
// IPv4/IPv6 header with protocol proto (4: IPIP, 41: IPv6), through a raw
// socket of the calling thread's namespace: the kernel writes the outer
// header.
func sendTunneled(outerDst netip.Addr, proto int, inner []byte) error {
	family := unix.AF_INET6
	var sa unix.Sockaddr = &unix.SockaddrInet6{Addr: outerDst.As16()}
	if outerDst.Is4() {
		family = unix.AF_INET
		sa = &unix.SockaddrInet4{Addr: outerDst.As4()}
	}
	fd, err := unix.Socket(family, unix.SOCK_RAW|unix.SOCK_CLOEXEC, proto)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	return unix.Sendto(fd, inner, 0, sa)
}

// synAckFromVIP makes the client connect to dst with the DSCP dscp (the
// l3dsr request as gvs forwards it) and reports whether a SYN-ACK from vip
// (same port) to src reaches the client within the time: the real accepted the
// rewritten SYN (so its TCP checksum was right) and answers from the VIP.
// The client's kernel then resets that SYN-ACK, as it expects one from dst:
// in a real deployment the client connected to the VIP in the first place.
func synAckFromVIP(t *testing.T, client *lab.NS, src, dst netip.AddrPort, dscp uint8, vip netip.Addr) bool {
	t.Helper()
	family := unix.AF_INET6
	if dst.Addr().Is4() {
		family = unix.AF_INET
	}
	var fd int
	if err := client.Do(func() (err error) {
		fd, err = unix.Socket(family, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.IPPROTO_TCP)
		return
	}); err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	tv := unix.NsecToTimeval((100 * time.Millisecond).Nanoseconds())
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		t.Fatal(err)
	}
	dialDone := make(chan struct{})
	go func() {
		defer close(dialDone)
		ctx, cancel := context.WithTimeout(context.Background(), 1500*time.Millisecond)
		defer cancel()
		client.Do(func() error {
			d := net.Dialer{LocalAddr: net.TCPAddrFromAddrPort(src), Control: func(network, address string, c syscall.RawConn) error {
				var serr error
				c.Control(func(fd uintptr) {
					if family == unix.AF_INET {
						serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_IP, unix.IP_TOS, int(dscp)<<2)
					} else {
						serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_IPV6, unix.IPV6_TCLASS, int(dscp)<<2)
					}
				})
				return serr
			}}
			c, err := d.DialContext(ctx, "tcp", dst.String())
			if err == nil {
				c.Close()
			}
			return nil
		})
	}()
	defer func() { <-dialDone }()
	buf := make([]byte, 1500)
	deadline := time.Now().Add(1500 * time.Millisecond)
	for i := 0; i < 200 && time.Now().Before(deadline); i++ {
		n, sa, err := unix.Recvfrom(fd, buf, 0)
		if err != nil {
			continue
		}
		seg := buf[:n]
		var from netip.Addr
		if family == unix.AF_INET {
			if n < 20 || n < int(buf[0]&0x0f)*4+20 {
				continue
			}
			from = netip.AddrFrom4([4]byte(seg[12:16]))
			seg = seg[int(buf[0]&0x0f)*4:]
		} else {
			sa, ok := sa.(*unix.SockaddrInet6)
			if !ok || n < 20 {
				continue
			}
			from = netip.AddrFrom16(sa.Addr)
		}
		sport := binary.BigEndian.Uint16(seg[0:])
		dport := binary.BigEndian.Uint16(seg[2:])
		if from == vip && sport == dst.Port() && dport == src.Port() && seg[13]&0x12 == 0x12 {
			return true
		}
	}
	return false
}
