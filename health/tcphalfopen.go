package health

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"time"

	"golang.org/x/sys/unix"
)

// halfOpenChecker is the tcp-halfopen check (seeds 000/001): a SYN from a
// raw socket, success on the SYN/ACK, failure on a RST or no answer by the
// timeout. gvs answers the SYN/ACK with its own RST at once, so the real
// never holds a connection for the probe (no accept, no ESTABLISHED
// socket); the kernel does the same for the port, since no socket of its
// own is connected to it (the port is reserved by a bound, unconnected
// TCP socket, so no local connection can use it meanwhile).
//
// The raw IPPROTO_TCP socket is connected to the real, so it receives only
// the real's segments.
type halfOpenChecker struct {
	addr    netip.AddrPort
	src     netip.Addr
	timeout time.Duration
}

func newHalfOpenChecker(c Check, t *Target) *halfOpenChecker {
	return &halfOpenChecker{addr: netip.AddrPortFrom(t.Addr, c.Port), src: c.Source, timeout: c.Timeout}
}

func (c *halfOpenChecker) String() string { return fmt.Sprintf("tcp half-open to %s", c.addr) }

// Check sends a SYN and waits for the SYN/ACK (then resets) or a RST.
func (c *halfOpenChecker) Check(ctx context.Context) Result {
	start := time.Now()
	src, err := sourceFor(c.src, c.addr.Addr())
	if err != nil {
		return fail(start, "SYN to %s: %v", c.addr, err)
	}
	rfd, sport, err := reservePort(src)
	if err != nil {
		return fail(start, "SYN to %s: %v", c.addr, err)
	}
	defer unix.Close(rfd)
	network := "ip4:6"
	if src.Is6() {
		network = "ip6:6"
	}
	conn, err := net.DialIP(network, &net.IPAddr{IP: src.AsSlice()}, &net.IPAddr{IP: c.addr.Addr().AsSlice()})
	if err != nil {
		return fail(start, "SYN to %s: raw TCP socket: %s", c.addr, describe(err, c.timeout))
	}
	defer conn.Close()
	conn.SetDeadline(deadline(ctx, c.timeout))

	local := netip.AddrPortFrom(src, sport)
	iss := randUint32()
	if _, err := conn.Write(tcpSegment(local, c.addr, iss, 0, tcpSYN)); err != nil {
		return fail(start, "SYN to %s: send: %s", c.addr, describe(err, c.timeout))
	}
	buf := make([]byte, 1500)
	for {
		n, err := conn.Read(buf)
		if err != nil {
			return fail(start, "SYN to %s: no SYN/ACK: %s", c.addr, describe(err, c.timeout))
		}
		seg := buf[:n]
		if !src.Is6() {
			seg = stripIPv4(seg) // raw IPv4 sockets deliver the IP header
		}
		h, ok := parseTCP(seg)
		if !ok || h.sport != c.addr.Port() || h.dport != sport {
			continue
		}
		if r := judgeSYNReply(h, iss); r != "" {
			if h.flags&tcpRST != 0 {
				return fail(start, "SYN to %s: %s", c.addr, r)
			}
			conn.Write(tcpSegment(local, c.addr, iss+1, 0, tcpRST))
			return pass(start, "SYN to %s: %s", c.addr, r)
		}
	}
}

// TCP flags.
const (
	tcpFIN = 0x01
	tcpSYN = 0x02
	tcpRST = 0x04
	tcpACK = 0x10
)

// tcpHeader is what a half-open probe reads of a segment.
type tcpHeader struct {
	sport, dport uint16
	seq, ack     uint32
	flags        uint8
}

func parseTCP(b []byte) (tcpHeader, bool) {
	if len(b) < 20 {
		return tcpHeader{}, false
	}
	return tcpHeader{
		sport: binary.BigEndian.Uint16(b[0:]),
		dport: binary.BigEndian.Uint16(b[2:]),
		seq:   binary.BigEndian.Uint32(b[4:]),
		ack:   binary.BigEndian.Uint32(b[8:]),
		flags: b[13],
	}, true
}

// judgeSYNReply words the answer to a SYN with initial sequence number
// iss: "" when h is not one (another segment of the ports, a stale one).
func judgeSYNReply(h tcpHeader, iss uint32) string {
	switch {
	case h.flags&(tcpSYN|tcpACK|tcpRST) == tcpSYN|tcpACK && h.ack == iss+1:
		return "SYN/ACK, reset"
	case h.flags&tcpRST != 0 && h.flags&tcpACK != 0 && h.ack == iss+1:
		return "port closed (RST)"
	}
	return ""
}

// stripIPv4 returns the payload of the IPv4 packet b.
func stripIPv4(b []byte) []byte {
	if len(b) < 20 || b[0]>>4 != 4 {
		return nil
	}
	hl := int(b[0]&0x0f) * 4
	if hl < 20 || hl > len(b) {
		return nil
	}
	return b[hl:]
}

// tcpSegment builds a TCP segment from src to dst with a valid checksum:
// a SYN carries an MSS option, other segments no options.
func tcpSegment(src, dst netip.AddrPort, seq, ack uint32, flags uint8) []byte {
	hl := 20
	if flags&tcpSYN != 0 {
		hl = 24
	}
	b := make([]byte, hl)
	binary.BigEndian.PutUint16(b[0:], src.Port())
	binary.BigEndian.PutUint16(b[2:], dst.Port())
	binary.BigEndian.PutUint32(b[4:], seq)
	binary.BigEndian.PutUint32(b[8:], ack)
	b[12] = byte(hl/4) << 4
	b[13] = flags
	if flags&tcpRST == 0 {
		binary.BigEndian.PutUint16(b[14:], 64240) // window
	}
	if hl == 24 {
		mss := uint16(1460)
		if dst.Addr().Is6() {
			mss = 1440
		}
		b[20], b[21] = 2, 4 // MSS
		binary.BigEndian.PutUint16(b[22:], mss)
	}
	binary.BigEndian.PutUint16(b[16:], checksum(pseudoSum(src.Addr(), dst.Addr(), 6, hl), b))
	return b
}

func randUint32() uint32 {
	var b [4]byte
	rand.Read(b[:])
	return binary.BigEndian.Uint32(b[:])
}
