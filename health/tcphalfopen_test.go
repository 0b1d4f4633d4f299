package health

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"
)

func TestHalfOpenCheck(t *testing.T) {
	_, prober, real := newTopo(t)
	l4 := listen(t, real, realV4+":8080") // never accepts: a completed handshake would queue here
	l6 := listen(t, real, "["+realV6+"]:8080")
	short := 300 * time.Millisecond

	for _, c := range []struct {
		addr string
		l    interface{}
	}{{realV4, l4}, {realV6, l6}} {
		r := run(t, prober, Check{Kind: KindTCPHalfOpen}, tgt(c.addr, 8080))
		expect(t, r, true, fmt.Sprintf("SYN to %s: SYN/ACK, reset", netip.AddrPortFrom(mustAddr(c.addr), 8080)))
	}
	// No connection was made: nothing ESTABLISHED on the real, nothing
	// waiting in the accept queues, no half-open one left.
	if out := established(t, real); out != "" {
		t.Fatalf("ESTABLISHED sockets on the real after half-open checks:\n%s", out)
	}
	if out, err := real.Run("ss", "-Htn", "state", "syn-recv"); err != nil || strings.TrimSpace(out) != "" {
		t.Fatalf("SYN-RECV sockets on the real (%v):\n%s", err, out)
	}
	if acceptOne(t, l4, 100*time.Millisecond) || acceptOne(t, l6, 100*time.Millisecond) {
		t.Fatal("a half-open check left a connection in the accept queue")
	}
	// The control: a tcp check does complete a connection, which the same
	// assertions see.
	expect(t, run(t, prober, Check{Kind: KindTCP}, tgt(realV4, 8080)), true, "connected")
	if !acceptOne(t, l4, time.Second) {
		t.Fatal("control: the tcp check's connection is not in the accept queue")
	}

	expect(t, run(t, prober, Check{Kind: KindTCPHalfOpen}, tgt(realV4, 8081)), false, "SYN to 198.18.1.2:8081: port closed (RST)")
	expect(t, run(t, prober, Check{Kind: KindTCPHalfOpen}, tgt(realV6, 8081)), false, "port closed (RST)")
	expect(t, run(t, prober, Check{Kind: KindTCPHalfOpen, Timeout: short}, tgt(blackholeV4, 80)), false, "SYN to 198.18.1.99:80: no SYN/ACK: timeout after 300ms")
	expect(t, run(t, prober, Check{Kind: KindTCPHalfOpen, Timeout: short}, tgt(blackholeV6, 80)), false, "no SYN/ACK: timeout after 300ms")
	expect(t, run(t, prober, Check{Kind: KindTCPHalfOpen, Source: mustAddr(proberV4)}, tgt(realV4, 8080)), true, "SYN/ACK")

	// Many probes in a row leave nothing behind either.
	for range 20 {
		if r := run(t, prober, Check{Kind: KindTCPHalfOpen}, tgt(realV4, 8080)); !r.OK {
			t.Fatal(r)
		}
	}
	if out := established(t, real); out != "" {
		t.Fatalf("ESTABLISHED sockets on the real:\n%s", out)
	}
	if acceptOne(t, l4, 100*time.Millisecond) {
		t.Fatal("a half-open check left a connection in the accept queue")
	}
}

// TestVIPHalfOpenCheck checks DSR reals: the probe must prove that the
// real answers on the VIP.
func TestVIPHalfOpenCheck(t *testing.T) {
	_, prober, real := newTopo(t)
	// An L2 DSR real: the VIPs on lo, no ARP for them.
	for _, k := range []string{"all", "eth0"} {
		real.Sysctl("net/ipv4/conf/"+k+"/arp_ignore", "1")
		real.Sysctl("net/ipv4/conf/"+k+"/arp_announce", "2")
	}
	real.Addr("lo", "198.18.0.10/32")
	real.Addr("lo", "2001:db8::10/128")
	vip4 := listen(t, real, "198.18.0.10:80")
	vip6 := listen(t, real, "[2001:db8::10]:80")
	listen(t, real, realV4+":81") // on the real's address only
	short := 300 * time.Millisecond
	dr := func(addr, vip string, port uint16) Target {
		tg := tgt(addr, port)
		tg.VIP = mustAddr(vip)
		return tg
	}
	mac := real.MAC("eth0").String()

	expect(t, run(t, prober, Check{Kind: KindTCPHalfOpen, Interface: "eth0"}, dr(realV4, "198.18.0.10", 80)), true,
		"SYN to 198.18.0.10:80 via 198.18.1.2 (MAC "+mac+"): SYN/ACK, reset")
	expect(t, run(t, prober, Check{Kind: KindTCPHalfOpen}, dr(realV6, "2001:db8::10", 80)), true,
		"SYN to [2001:db8::10]:80 via 2001:db8:1::2 (MAC "+mac+"): SYN/ACK, reset")
	// A plain half-open check of the real's address would pass for a
	// service listening on it; bound to the VIP it does not.
	expect(t, run(t, prober, Check{Kind: KindTCPHalfOpen}, tgt(realV4, 81)), true, "SYN/ACK")
	expect(t, run(t, prober, Check{Kind: KindTCPHalfOpen}, dr(realV4, "198.18.0.10", 81)), false, "SYN to 198.18.0.10:81 via 198.18.1.2: port closed (RST)")
	// A VIP the real does not hold: it drops the SYN (not its address,
	// no forwarding).
	expect(t, run(t, prober, Check{Kind: KindTCPHalfOpen, Timeout: short}, dr(realV4, "198.18.0.11", 80)), false, "no SYN/ACK from the VIP: timeout after 300ms")
	// A real that is gone: its MAC cannot be resolved.
	expect(t, run(t, prober, Check{Kind: KindTCPHalfOpen, Timeout: short}, dr("198.18.1.77", "198.18.0.10", 80)), false, "resolve the real's MAC on eth0: no reply: timeout after 300ms")
	// A real with a static (stale) neighbour entry to a MAC nobody has.
	expect(t, run(t, prober, Check{Kind: KindTCPHalfOpen, Timeout: short}, dr(blackholeV4, "198.18.0.10", 80)), false, "no SYN/ACK from the VIP: timeout after 300ms")

	if out := established(t, real); out != "" {
		t.Fatalf("ESTABLISHED sockets on the real after VIP half-open checks:\n%s", out)
	}
	if out, err := real.Run("ss", "-Htn", "state", "syn-recv"); err != nil || strings.TrimSpace(out) != "" {
		t.Fatalf("SYN-RECV sockets on the real (%v):\n%s", err, out)
	}
	if acceptOne(t, vip4, 100*time.Millisecond) || acceptOne(t, vip6, 100*time.Millisecond) {
		t.Fatal("a VIP half-open check left a connection in the accept queue")
	}
	// The real still answers ARP for its own address only.
	expect(t, run(t, prober, Check{Kind: KindARP, Timeout: short}, tgt("198.18.0.10", 0)), false, "no route to 198.18.0.10")
	prober.RouteDev("198.18.0.10/32", "eth0")
	expect(t, run(t, prober, Check{Kind: KindARP, Timeout: short}, tgt("198.18.0.10", 0)), false, "no reply")
}
