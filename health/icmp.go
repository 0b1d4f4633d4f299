package health

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/net/icmp"
	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
)

// icmpChecker is the icmp check: one echo request (ICMP or ICMPv6), success
// on the echo reply with the same identifier, sequence number and payload.
//
// Each probe opens its own socket: a raw socket connected to the real (as
// root: it then receives only the real's ICMP), or, where raw sockets are
// not permitted, an unprivileged ping socket ("udp4"/"udp6", allowed by
// net.ipv4.ping_group_range), whose identifier the kernel chooses.
type icmpChecker struct {
	addr    netip.Addr
	src     netip.Addr
	timeout time.Duration
	seq     atomic.Uint32
}

func newICMPChecker(c Check, t *Target) *icmpChecker {
	return &icmpChecker{addr: t.Addr, src: c.Source, timeout: c.Timeout}
}

func (c *icmpChecker) String() string { return fmt.Sprintf("icmp echo to %s", c.addr) }

// Check sends one echo request and waits for its reply.
func (c *icmpChecker) Check(ctx context.Context) Result {
	start := time.Now()
	conn, raw, err := c.open()
	if err != nil {
		return fail(start, "echo to %s: %v", c.addr, err)
	}
	defer conn.Close()
	conn.SetDeadline(deadline(ctx, c.timeout))

	var token [8]byte
	rand.Read(token[:])
	id := int(binary.BigEndian.Uint16(token[:2]))
	seq := int(uint16(c.seq.Add(1)))
	var typ, replyType icmp.Type = ipv4.ICMPTypeEcho, ipv4.ICMPTypeEchoReply
	proto := 1
	if c.addr.Is6() {
		typ, replyType, proto = ipv6.ICMPTypeEchoRequest, ipv6.ICMPTypeEchoReply, 58
	}
	msg := icmp.Message{Type: typ, Body: &icmp.Echo{ID: id, Seq: seq, Data: token[:]}}
	b, err := msg.Marshal(nil) // ICMPv6: the kernel fills the checksum
	if err != nil {
		return fail(start, "echo to %s: %v", c.addr, err)
	}
	if raw {
		_, err = conn.(*net.IPConn).Write(b) // connected
	} else {
		_, err = conn.WriteTo(b, &net.UDPAddr{IP: c.addr.AsSlice()})
	}
	if err != nil {
		return fail(start, "echo to %s: send: %s", c.addr, describe(err, c.timeout))
	}
	buf := make([]byte, 1500)
	for {
		n, from, err := conn.ReadFrom(buf)
		if err != nil {
			return fail(start, "echo to %s: no reply: %s", c.addr, describe(err, c.timeout))
		}
		if fromAddr(from) != c.addr {
			continue
		}
		m, err := icmp.ParseMessage(proto, buf[:n])
		if err != nil || m.Type != replyType {
			continue
		}
		e, ok := m.Body.(*icmp.Echo)
		if !ok || e.Seq != seq || !bytes.Equal(e.Data, token[:]) || (raw && e.ID != id) {
			continue
		}
		return pass(start, "echo reply from %s", c.addr)
	}
}

// open returns a socket for one probe and whether it is a raw one.
func (c *icmpChecker) open() (net.PacketConn, bool, error) {
	network, src := "ip4:1", "0.0.0.0"
	if c.addr.Is6() {
		network, src = "ip6:58", "::"
	}
	if c.src.IsValid() {
		src = c.src.String()
	}
	conn, err := net.DialIP(network, &net.IPAddr{IP: net.ParseIP(src)}, &net.IPAddr{IP: c.addr.AsSlice()})
	if err == nil {
		return conn, true, nil
	}
	if !errors.Is(err, syscall.EPERM) && !errors.Is(err, syscall.EACCES) {
		return nil, false, fmt.Errorf("raw ICMP socket: %s", describe(err, c.timeout))
	}
	udp := "udp4"
	if c.addr.Is6() {
		udp = "udp6"
	}
	pc, uerr := icmp.ListenPacket(udp, src)
	if uerr != nil {
		return nil, false, fmt.Errorf("raw ICMP socket: %s; ping socket: %s (see net.ipv4.ping_group_range)", describe(err, 0), describe(uerr, 0))
	}
	return pc, false, nil
}

// fromAddr extracts the address of a raw or ping socket's peer.
func fromAddr(a net.Addr) netip.Addr {
	var ip net.IP
	switch a := a.(type) {
	case *net.IPAddr:
		ip = a.IP
	case *net.UDPAddr:
		ip = a.IP
	}
	r, _ := netip.AddrFromSlice(ip)
	return r.Unmap()
}
