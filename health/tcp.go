package health

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"time"
)

// tcpChecker is the tcp check: a full connect to the real's port, then,
// if asked, Send is written and the answer must start with Expect. The
// connection is closed with a FIN (the seeds' "3-way handshake, then FIN").
type tcpChecker struct {
	addr    netip.AddrPort
	src     netip.Addr
	send    []byte
	expect  []byte
	timeout time.Duration
}

func newTCPChecker(c Check, t *Target) *tcpChecker {
	return &tcpChecker{
		addr:    netip.AddrPortFrom(t.Addr, c.Port),
		src:     c.Source,
		send:    c.Send,
		expect:  c.Expect,
		timeout: c.Timeout,
	}
}

func (c *tcpChecker) String() string { return fmt.Sprintf("tcp connect to %s", c.addr) }

// Check connects, sends and reads as configured.
func (c *tcpChecker) Check(ctx context.Context) Result {
	start := time.Now()
	conn, err := dialTCP(ctx, c.src, c.addr)
	if err != nil {
		return fail(start, "connect to %s: %s", c.addr, describe(err, c.timeout))
	}
	defer conn.Close()
	if len(c.send) == 0 && len(c.expect) == 0 {
		return pass(start, "connected to %s", c.addr)
	}
	conn.SetDeadline(deadline(ctx, c.timeout))
	if len(c.send) > 0 {
		if _, err := conn.Write(c.send); err != nil {
			return fail(start, "connected to %s; send %d bytes: %s", c.addr, len(c.send), describe(err, c.timeout))
		}
	}
	if len(c.expect) == 0 {
		return pass(start, "connected to %s, sent %d bytes", c.addr, len(c.send))
	}
	got := make([]byte, len(c.expect))
	n, err := io.ReadFull(conn, got)
	got = got[:n]
	switch {
	case err == nil && bytes.Equal(got, c.expect):
		return pass(start, "connected to %s, answer starts with %q", c.addr, c.expect)
	case err == nil || (n > 0 && !bytes.HasPrefix(c.expect, got)):
		return fail(start, "connected to %s; expected %q, got %q", c.addr, c.expect, got)
	case errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF):
		return fail(start, "connected to %s; connection closed after %q, expected %q", c.addr, got, c.expect)
	}
	return fail(start, "connected to %s; reading the answer (got %q of %q): %s", c.addr, got, c.expect, describe(err, c.timeout))
}

// dialTCP connects to addr from src (if valid) by ctx's deadline. The
// socket is created on the calling goroutine's thread, so in its network
// namespace.
func dialTCP(ctx context.Context, src netip.Addr, addr netip.AddrPort) (net.Conn, error) {
	d := net.Dialer{}
	if src.IsValid() {
		d.LocalAddr = net.TCPAddrFromAddrPort(netip.AddrPortFrom(src, 0))
	}
	return d.DialContext(ctx, "tcp", addr.String())
}
