package health

import (
	"context"
	"errors"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"gvs/tests/lab"
)

// Namespace topology of the checker tests:
//
//	prober (eth0 198.18.1.1/24, 2001:db8:1::1/64) ── real (eth0 198.18.1.2/24, 2001:db8:1::2/64)
//
// Checks run from prober; servers listen in real.
const (
	proberV4 = "198.18.1.1"
	realV4   = "198.18.1.2"
	realV6   = "2001:db8:1::2"
	// blackholeV4 has a static neighbour entry in prober to a MAC that no
	// host has: frames to it leave and are dropped by real's interface.
	blackholeV4 = "198.18.1.99"
	blackholeV6 = "2001:db8:1::99"
)

func newTopo(t *testing.T) (*lab.Lab, *lab.NS, *lab.NS) {
	t.Helper()
	l := lab.New(t)
	prober, real := l.NS("prober"), l.NS("real")
	l.Veth(prober, "eth0", real, "eth0")
	prober.Addr("eth0", proberV4+"/24")
	prober.Addr("eth0", "2001:db8:1::1/64")
	real.Addr("eth0", realV4+"/24")
	real.Addr("eth0", realV6+"/64")
	nobody := net.HardwareAddr{0x02, 0, 0, 0, 0, 0x99}
	prober.Neigh("eth0", blackholeV4, nobody)
	prober.Neigh("eth0", blackholeV6, nobody)
	// Right after a namespace is deleted (by a previous test) the kernel
	// can take ~100 ms to finish setting up new IPv6 addresses (their
	// solicited-node groups): wait until neighbour discovery and an echo
	// work between the two.
	ping, err := NewChecker(Check{Kind: KindICMP, Timeout: 100 * time.Millisecond}, tgt(realV6, 0))
	if err != nil {
		t.Fatal(err)
	}
	lab.Eventually(t, 5*time.Second, "IPv6 between prober and real", func() error {
		var r Result
		if err := prober.Do(func() error {
			ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
			defer cancel()
			r = ping.Check(ctx)
			return nil
		}); err != nil {
			return err
		}
		if !r.OK {
			return errors.New(r.Reason)
		}
		return nil
	})
	return l, prober, real
}

// run builds the checker of c for tg and runs it once inside ns.
func run(t *testing.T, ns *lab.NS, c Check, tg Target) Result {
	t.Helper()
	if c.Timeout == 0 {
		c.Timeout = time.Second
	}
	ck, err := NewChecker(c, tg)
	if err != nil {
		t.Fatalf("NewChecker(%+v): %v", c, err)
	}
	var r Result
	err = ns.Do(func() error {
		ctx, cancel := context.WithTimeout(context.Background(), c.Timeout)
		defer cancel()
		r = ck.Check(ctx)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%s: %v", ck, r)
	if r.Latency <= 0 || r.Latency > c.Timeout+500*time.Millisecond {
		t.Errorf("%s: latency %v with timeout %v", ck, r.Latency, c.Timeout)
	}
	return r
}

// expect checks a result's outcome and that its reason contains want.
func expect(t *testing.T, r Result, ok bool, want string) {
	t.Helper()
	if r.OK != ok || !strings.Contains(r.Reason, want) {
		t.Errorf("result %v: want ok=%t with reason containing %q", r, ok, want)
	}
}

func tgt(addr string, port uint16) Target {
	return Target{Key: realKey(addr, port), Addr: mustAddr(addr), Port: port}
}

// established lists the ESTABLISHED TCP sockets of ns (ss -Htn).
func established(t *testing.T, ns *lab.NS) string {
	t.Helper()
	out, err := ns.Run("ss", "-Htn", "state", "established")
	if err != nil {
		t.Fatalf("ss in %s: %v: %s", ns, err, out)
	}
	return strings.TrimSpace(out)
}

// acceptOne reports whether l has a connection queued within d.
func acceptOne(t *testing.T, l net.Listener, d time.Duration) bool {
	t.Helper()
	l.(*net.TCPListener).SetDeadline(time.Now().Add(d))
	c, err := l.Accept()
	if err != nil {
		if !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("accept: %v", err)
		}
		return false
	}
	c.Close()
	return true
}

// serve accepts connections on l until it is closed, handing each to fn.
func serve(l net.Listener, fn func(net.Conn)) {
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go fn(c)
		}
	}()
}

func listen(t *testing.T, ns *lab.NS, addr string) net.Listener {
	t.Helper()
	l, err := ns.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("listen %s in %s: %v", addr, ns, err)
	}
	return l
}
