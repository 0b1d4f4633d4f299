package lab

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync/atomic"
	"testing"
	"time"
)

// Backend is an HTTP server inside a namespace that answers every request
// with its name ("name\n") and counts the requests.
type Backend struct {
	name     string
	addr     string
	srv      *http.Server
	requests atomic.Int64
}

// HTTPBackend starts a backend called name listening on addr ("ip:port";
// port 0 picks one) inside the namespace. It is closed at cleanup.
func (ns *NS) HTTPBackend(name, addr string) *Backend {
	ns.lab.t.Helper()
	l, err := ns.Listen("tcp", addr)
	if err != nil {
		ns.fatalf("backend %s: %v", name, err)
	}
	b := &Backend{name: name, addr: l.Addr().String()}
	body := []byte(name + "\n")
	b.srv = &http.Server{
		ReadHeaderTimeout: 5 * time.Second,
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			b.requests.Add(1)
			w.Header().Set("Content-Type", "text/plain")
			w.Write(body)
		}),
	}
	go b.srv.Serve(l)
	ns.lab.track(b)
	return b
}

// Name is the backend's name, its answer without the newline.
func (b *Backend) Name() string { return b.name }

// Addr is the address the backend listens on.
func (b *Backend) Addr() string { return b.addr }

// Requests is the number of requests answered so far.
func (b *Backend) Requests() int64 { return b.requests.Load() }

// Close stops the backend and closes its connections.
func (b *Backend) Close() error { return b.srv.Close() }

// UDPEchoServer is a UDP server inside a namespace that sends every
// datagram back to its sender, from the address it is bound to.
type UDPEchoServer struct {
	conn    net.PacketConn
	packets atomic.Int64
	done    chan struct{}
}

// UDPEcho starts a UDP echo server on addr ("ip:port") inside the
// namespace. It is closed at cleanup.
func (ns *NS) UDPEcho(addr string) *UDPEchoServer {
	ns.lab.t.Helper()
	c, err := ns.ListenPacket("udp", addr)
	if err != nil {
		ns.fatalf("udp echo: %v", err)
	}
	e := &UDPEchoServer{conn: c, done: make(chan struct{})}
	go e.serve()
	ns.lab.track(e)
	return e
}

func (e *UDPEchoServer) serve() {
	defer close(e.done)
	buf := make([]byte, 65536)
	for { // ends when the socket is closed (at the latest by the lab's cleanup)
		n, from, err := e.conn.ReadFrom(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		e.packets.Add(1)
		e.conn.WriteTo(buf[:n], from)
	}
}

// Addr is the address the server is bound to.
func (e *UDPEchoServer) Addr() net.Addr { return e.conn.LocalAddr() }

// Packets is the number of datagrams received so far.
func (e *UDPEchoServer) Packets() int64 { return e.packets.Load() }

// Close stops the server.
func (e *UDPEchoServer) Close() error {
	err := e.conn.Close()
	<-e.done
	return err
}

// Eventually polls cond with back-off (10 ms doubling up to 500 ms) until it
// returns nil, and fails the test with what and cond's last error if that
// does not happen within timeout.
func Eventually(t testing.TB, timeout time.Duration, what string, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	wait := 10 * time.Millisecond
	for {
		err := cond()
		if err == nil {
			return
		}
		left := time.Until(deadline)
		if left <= 0 {
			t.Fatalf("%s: not true after %v: %v", what, timeout, err)
		}
		time.Sleep(min(wait, left))
		wait = min(2*wait, 500*time.Millisecond)
	}
}

// WaitTCP waits until a TCP connection from inside the namespace to addr
// succeeds, for up to timeout.
func (ns *NS) WaitTCP(addr string, timeout time.Duration) {
	ns.lab.t.Helper()
	Eventually(ns.lab.t, timeout, fmt.Sprintf("TCP connect from %s to %s", ns.short, addr), func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
		defer cancel()
		c, err := ns.Dial(ctx, "tcp", addr)
		if err != nil {
			return err
		}
		return c.Close()
	})
}
