package health

import (
	"context"
	"errors"
	"net"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func TestICMPCheck(t *testing.T) {
	_, prober, real := newTopo(t)
	short := 300 * time.Millisecond
	expect(t, run(t, prober, Check{Kind: KindICMP}, tgt(realV4, 0)), true, "echo reply from 198.18.1.2")
	expect(t, run(t, prober, Check{Kind: KindICMP}, tgt(realV6, 0)), true, "echo reply from 2001:db8:1::2")
	expect(t, run(t, prober, Check{Kind: KindICMP, Source: mustAddr(proberV4)}, tgt(realV4, 0)), true, "echo reply")
	expect(t, run(t, prober, Check{Kind: KindICMP, Timeout: short}, tgt(blackholeV4, 0)), false, "echo to 198.18.1.99: no reply: timeout after 300ms")
	expect(t, run(t, prober, Check{Kind: KindICMP, Timeout: short}, tgt(blackholeV6, 0)), false, "no reply: timeout after 300ms")
	// Replies from another host do not count: 198.18.1.1 is the prober
	// itself, which answers; the connected socket only sees the real.
	expect(t, run(t, prober, Check{Kind: KindICMP}, tgt(proberV4, 0)), true, "echo reply from 198.18.1.1")

	// A host that answers ARP but not ICMP.
	real.Sysctl("net.ipv4.icmp_echo_ignore_all", "1")
	real.Sysctl("net.ipv6.icmp.echo_ignore_all", "1")
	expect(t, run(t, prober, Check{Kind: KindICMP, Timeout: short}, tgt(realV4, 0)), false, "echo to 198.18.1.2: no reply: timeout after 300ms")
	expect(t, run(t, prober, Check{Kind: KindICMP, Timeout: short}, tgt(realV6, 0)), false, "no reply: timeout after 300ms")
	expect(t, run(t, prober, Check{Kind: KindARP}, tgt(realV4, 0)), true, "198.18.1.2 is at "+real.MAC("eth0").String()+" on eth0")
	expect(t, run(t, prober, Check{Kind: KindARP}, tgt(realV6, 0)), true, "2001:db8:1::2 is at "+real.MAC("eth0").String())
}

func TestARPCheck(t *testing.T) {
	_, prober, real := newTopo(t)
	mac := real.MAC("eth0").String()
	short := 300 * time.Millisecond
	expect(t, run(t, prober, Check{Kind: KindARP}, tgt(realV4, 0)), true, "198.18.1.2 is at "+mac+" on eth0")
	expect(t, run(t, prober, Check{Kind: KindARP, Interface: "eth0"}, tgt(realV4, 0)), true, "is at "+mac)
	expect(t, run(t, prober, Check{Kind: KindARP, Source: mustAddr(proberV4)}, tgt(realV4, 0)), true, "is at "+mac)
	expect(t, run(t, prober, Check{Kind: KindARP}, tgt(realV6, 0)), true, "2001:db8:1::2 is at "+mac+" on eth0")
	// The static neighbour entry of the blackhole address does not fool
	// the check: it asks on the wire.
	expect(t, run(t, prober, Check{Kind: KindARP, Timeout: short}, tgt(blackholeV4, 0)), false, "arp who-has 198.18.1.99 on eth0: no reply: timeout after 300ms")
	expect(t, run(t, prober, Check{Kind: KindARP, Timeout: short}, tgt(blackholeV6, 0)), false, "ndp solicit 2001:db8:1::99 on eth0: no advertisement: timeout after 300ms")
	expect(t, run(t, prober, Check{Kind: KindARP, Interface: "eth9"}, tgt(realV4, 0)), false, "interface eth9")
	// A routed address is not on-link.
	prober.Route("198.18.7.0/24", realV4)
	expect(t, run(t, prober, Check{Kind: KindARP}, tgt("198.18.7.7", 0)), false, "not on-link (routed via 198.18.1.2 on eth0)")
	// The real's address moves away: no more replies.
	if out, err := real.Run("ip", "addr", "del", realV4+"/24", "dev", "eth0"); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	expect(t, run(t, prober, Check{Kind: KindARP, Timeout: short}, tgt(realV4, 0)), false, "no reply")
}

// TestICMPUnprivileged checks the fall-back to ping sockets: without
// CAP_NET_RAW (dropped from this thread's effective set for the probe)
// the raw socket is refused, and the probe uses a "udp4"/"udp6" ping
// socket, which net.ipv4.ping_group_range must allow.
func TestICMPUnprivileged(t *testing.T) {
	_, prober, _ := newTopo(t)
	prober.Sysctl("net.ipv4.ping_group_range", "0 2147483647")
	for _, addr := range []string{realV4, realV6, blackholeV4} {
		ck, err := NewChecker(Check{Kind: KindICMP, Timeout: 300 * time.Millisecond}, tgt(addr, 0))
		if err != nil {
			t.Fatal(err)
		}
		var r Result
		err = prober.Do(func() error {
			hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
			var caps [2]unix.CapUserData
			if err := unix.Capget(&hdr, &caps[0]); err != nil {
				return err
			}
			saved := caps
			caps[0].Effective &^= 1 << unix.CAP_NET_RAW
			if err := unix.Capset(&hdr, &caps[0]); err != nil {
				return err
			}
			defer unix.Capset(&hdr, &saved[0])
			if _, err := net.DialIP("ip4:1", nil, &net.IPAddr{IP: net.ParseIP(realV4)}); err == nil {
				return errors.New("raw socket still allowed")
			}
			ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
			defer cancel()
			r = ck.Check(ctx)
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("%s: %v", ck, r)
		expect(t, r, addr != blackholeV4, map[bool]string{true: "echo reply from " + addr, false: "no reply: timeout after 300ms"}[addr != blackholeV4])
	}
}
