package health

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"syscall"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
)

// Helpers shared by the checkers: deadlines, error wording, interface and
// source-address lookup, raw AF_PACKET sockets and checksums.

// deadline is ctx's deadline, or now+timeout if it has none.
func deadline(ctx context.Context, timeout time.Duration) time.Time {
	if d, ok := ctx.Deadline(); ok {
		return d
	}
	return time.Now().Add(timeout)
}

// isTimeout reports whether err is a deadline or context expiry.
func isTimeout(err error) bool {
	var ne net.Error
	return errors.Is(err, os.ErrDeadlineExceeded) || errors.Is(err, context.DeadlineExceeded) ||
		(errors.As(err, &ne) && ne.Timeout())
}

// describe words err for a Result: "timeout after 1s", "connection
// refused", or the error's own text without Go's "dial tcp ...:" prefixes.
func describe(err error, timeout time.Duration) string {
	if isTimeout(err) {
		return fmt.Sprintf("timeout after %v", timeout)
	}
	if errors.Is(err, context.Canceled) {
		return "canceled"
	}
	var errno syscall.Errno
	if errors.As(err, &errno) {
		return errno.Error()
	}
	return err.Error()
}

// fail and pass build Results; latency is measured from start.
func fail(start time.Time, format string, args ...any) Result {
	return Result{Reason: fmt.Sprintf(format, args...), Latency: time.Since(start)}
}

func pass(start time.Time, format string, args ...any) Result {
	return Result{OK: true, Reason: fmt.Sprintf(format, args...), Latency: time.Since(start)}
}

// outLink returns the link named name, or, if name is empty, the one the
// route to dst leaves by, and the route's gateway (invalid: dst is on-link
// or name was given).
func outLink(name string, dst netip.Addr) (netlink.Link, netip.Addr, error) {
	if name != "" {
		l, err := netlink.LinkByName(name)
		if err != nil {
			return nil, netip.Addr{}, fmt.Errorf("interface %s: %w", name, err)
		}
		return l, netip.Addr{}, nil
	}
	rs, err := netlink.RouteGet(dst.AsSlice())
	if err != nil || len(rs) == 0 {
		return nil, netip.Addr{}, fmt.Errorf("no route to %s: %v", dst, err)
	}
	l, err := netlink.LinkByIndex(rs[0].LinkIndex)
	if err != nil {
		return nil, netip.Addr{}, fmt.Errorf("interface %d of the route to %s: %w", rs[0].LinkIndex, dst, err)
	}
	gw, _ := netip.AddrFromSlice(rs[0].Gw)
	return l, gw.Unmap(), nil
}

// linkAddr returns an address of the family of like on link: the first
// global one, else (IPv6) a link-local one, else the zero Addr.
func linkAddr(link netlink.Link, like netip.Addr) netip.Addr {
	fam := netlink.FAMILY_V4
	if like.Is6() {
		fam = netlink.FAMILY_V6
	}
	as, err := netlink.AddrList(link, fam)
	if err != nil {
		return netip.Addr{}
	}
	var ll netip.Addr
	for _, a := range as {
		ip, ok := netip.AddrFromSlice(a.IP)
		if !ok {
			continue
		}
		ip = ip.Unmap()
		if ip.IsLinkLocalUnicast() {
			if !ll.IsValid() {
				ll = ip
			}
			continue
		}
		if a.Flags&(unix.IFA_F_TENTATIVE|unix.IFA_F_DADFAILED) != 0 {
			continue
		}
		return ip
	}
	return ll
}

// sourceFor returns src if valid, else the source address the kernel would
// use towards dst (a connected UDP socket sends nothing).
func sourceFor(src, dst netip.Addr) (netip.Addr, error) {
	if src.IsValid() {
		return src, nil
	}
	c, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(netip.AddrPortFrom(dst, 9)))
	if err != nil {
		return netip.Addr{}, fmt.Errorf("no source address towards %s: %v", dst, describe(err, 0))
	}
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).AddrPort().Addr().Unmap(), nil
}

// reservePort binds a TCP socket to src:0 and returns it and its port: a
// port no other local socket uses while the probe runs. The socket neither
// listens nor connects, so the kernel answers segments to the port with a
// RST, as for a free port.
func reservePort(src netip.Addr) (fd int, port uint16, err error) {
	fam := unix.AF_INET
	var sa unix.Sockaddr
	if src.Is6() {
		fam = unix.AF_INET6
		sa = &unix.SockaddrInet6{Addr: src.As16()}
	} else {
		sa = &unix.SockaddrInet4{Addr: src.As4()}
	}
	fd, err = unix.Socket(fam, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, 0, fmt.Errorf("reserve a local port: %w", err)
	}
	if err := unix.Bind(fd, sa); err != nil {
		unix.Close(fd)
		return -1, 0, fmt.Errorf("reserve a local port on %s: %w", src, err)
	}
	got, err := unix.Getsockname(fd)
	if err != nil {
		unix.Close(fd)
		return -1, 0, fmt.Errorf("reserve a local port: %w", err)
	}
	switch a := got.(type) {
	case *unix.SockaddrInet4:
		port = uint16(a.Port)
	case *unix.SockaddrInet6:
		port = uint16(a.Port)
	}
	return fd, port, nil
}

// packetConn is an AF_PACKET socket bound to one interface, driven by the
// runtime poller so that deadlines work.
type packetConn struct {
	f  *os.File
	rc syscall.RawConn
}

// htons converts a 16-bit value to network byte order.
func htons(v uint16) uint16 { return v<<8 | v>>8 }

// listenPacket opens an AF_PACKET socket of type typ (SOCK_RAW: frames
// with their Ethernet header; SOCK_DGRAM: payloads) on ifindex for
// EtherType proto, with the classic BPF filter prog (nil: none) attached
// before any frame can be queued.
func listenPacket(typ, ifindex int, proto uint16, prog []bpf.Instruction) (*packetConn, error) {
	// Protocol 0 receives nothing until bind, so no frame gets past the
	// filter in between.
	fd, err := unix.Socket(unix.AF_PACKET, typ|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, 0)
	if err != nil {
		return nil, fmt.Errorf("AF_PACKET socket: %w", err)
	}
	if prog != nil {
		raw, err := bpf.Assemble(prog)
		if err != nil {
			unix.Close(fd)
			return nil, fmt.Errorf("assemble BPF filter: %w", err)
		}
		f := make([]unix.SockFilter, len(raw))
		for i, r := range raw {
			f[i] = unix.SockFilter{Code: r.Op, Jt: r.Jt, Jf: r.Jf, K: r.K}
		}
		if err := unix.SetsockoptSockFprog(fd, unix.SOL_SOCKET, unix.SO_ATTACH_FILTER, &unix.SockFprog{Len: uint16(len(f)), Filter: &f[0]}); err != nil {
			unix.Close(fd)
			return nil, fmt.Errorf("attach BPF filter: %w", err)
		}
	}
	_ = unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_IGNORE_OUTGOING, 1)
	if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(proto), Ifindex: ifindex}); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("bind AF_PACKET socket to interface %d: %w", ifindex, err)
	}
	f := os.NewFile(uintptr(fd), "packet")
	rc, err := f.SyscallConn()
	if err != nil {
		f.Close()
		return nil, err
	}
	return &packetConn{f: f, rc: rc}, nil
}

// Close closes the socket in the background: closing an AF_PACKET socket
// waits for an RCU grace period (synchronize_net, ~10 ms), which the
// probe's latency and its worker need not wait for.
func (c *packetConn) Close() error {
	go c.f.Close()
	return nil
}

func (c *packetConn) SetDeadline(t time.Time) error     { return c.f.SetDeadline(t) }
func (c *packetConn) SetReadDeadline(t time.Time) error { return c.f.SetReadDeadline(t) }

// Read reads one frame (or payload, for SOCK_DGRAM) into b.
func (c *packetConn) Read(b []byte) (int, error) {
	var n int
	var rerr error
	err := c.rc.Read(func(fd uintptr) bool {
		n, _, rerr = unix.Recvfrom(int(fd), b, 0)
		return rerr != unix.EAGAIN
	})
	if err != nil {
		return 0, err
	}
	return n, rerr
}

// WriteTo sends b; for SOCK_DGRAM sockets to is the link-layer
// destination, for SOCK_RAW ones b holds it.
func (c *packetConn) WriteTo(b []byte, ifindex int, proto uint16, to net.HardwareAddr) error {
	sa := &unix.SockaddrLinklayer{Protocol: htons(proto), Ifindex: ifindex, Halen: uint8(len(to))}
	copy(sa.Addr[:], to)
	var werr error
	err := c.rc.Write(func(fd uintptr) bool {
		werr = unix.Sendto(int(fd), b, 0, sa)
		return werr != unix.EAGAIN
	})
	if err != nil {
		return err
	}
	return werr
}

// checksum is the Internet checksum (RFC 1071) of b, continuing from the
// partial sum sum.
func checksum(sum uint32, b []byte) uint16 {
	for len(b) >= 2 {
		sum += uint32(b[0])<<8 | uint32(b[1])
		b = b[2:]
	}
	if len(b) == 1 {
		sum += uint32(b[0]) << 8
	}
	for sum > 0xffff {
		sum = sum>>16 + sum&0xffff
	}
	return ^uint16(sum)
}

// pseudoSum is the partial sum of the TCP/UDP pseudo-header.
func pseudoSum(src, dst netip.Addr, proto uint8, length int) uint32 {
	var sum uint32
	add := func(b []byte) {
		for i := 0; i+1 < len(b); i += 2 {
			sum += uint32(b[i])<<8 | uint32(b[i+1])
		}
	}
	add(src.AsSlice())
	add(dst.AsSlice())
	sum += uint32(proto) + uint32(length)
	return sum
}
