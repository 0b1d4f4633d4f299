package realserver

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"gvs/tests/lab"
)

func TestValidate(t *testing.T) {
	bad := []Config{
		{Method: "nat", Interface: "eth0", VIPs: []netip.Addr{vip4a}},
		{Method: "dr", VIPs: []netip.Addr{vip4a}},
		{Method: "dr", Interface: "eth0"},
		{Method: "l3dsr", Interface: "eth0", DSCP: map[uint8]netip.Addr{10: vip4a}},
		{Method: "l3dsr", Interface: "eth0", RealAddr: realV4},
		{Method: "l3dsr", Interface: "eth0", RealAddr: realV4, DSCP: map[uint8]netip.Addr{64: vip4a}},
		{Method: "l3dsr", Interface: "eth0", RealAddr: realV4, DSCP: map[uint8]netip.Addr{0: vip4a}},
		{Method: "l3dsr", Interface: "eth0", RealAddr: realV4, DSCP: map[uint8]netip.Addr{10: vip6a}},
		{Method: "tunnel", Interface: "eth0", VIPs: []netip.Addr{vip4a}},
		{Method: "tunnel", Interface: "eth0", VIPs: []netip.Addr{vip4a}, RealAddr: realV4, Decap: "gre"},
	}
	for _, c := range bad {
		if err := c.validate(); err == nil {
			t.Errorf("validate(%+v) = nil, want an error", c)
		}
	}
	good := Config{Method: "L3DSR", Interface: "eth0", RealAddr: realV4, VIPs: []netip.Addr{vip4a},
		DSCP: map[uint8]netip.Addr{12: vip4b, 10: vip4a}}
	if err := good.validate(); err != nil {
		t.Fatal(err)
	}
	if got := good.vips(); !slices.Equal(got, []netip.Addr{vip4a, vip4b}) {
		t.Fatalf("vips %v", got)
	}
}

// TestDR: VIPs on lo and ARP sysctls; a TCP connection routed to the VIP
// with the real as next hop (what gvs's MAC rewrite does) reaches a
// listener on the VIP, the real does not answer ARP for the VIP, and
// Teardown restores everything.
func TestDR(t *testing.T) {
	tp := newTopo(t)
	cfg := tp.cfg(MethodDR)
	cfg.VIPs = []netip.Addr{vip4a, vip6a}
	tp.setup(t, cfg)
	tp.setup(t, cfg) // idempotent

	if as := tp.loAddrs(t); !slices.Contains(as, vip4a) || !slices.Contains(as, vip6a) || len(as) != 2 {
		t.Fatalf("lo addresses %v", as)
	}
	for _, k := range watchedSysctls {
		want := "1"
		if strings.HasSuffix(k, "announce") {
			want = "2"
		}
		if got := tp.real.SysctlValue(k); got != want {
			t.Errorf("%s = %s, want %s", k, got, want)
		}
	}

	tp.real.HTTPBackend("real4", netip.AddrPortFrom(vip4a, 80).String())
	tp.real.HTTPBackend("real6", netip.AddrPortFrom(vip6a, 80).String())
	tp.client.Route(vip4a.String(), realV4.String())
	tp.client.Route(vip6a.String(), realV6.String())
	hc := tp.client.HTTPClient(3 * time.Second)
	for _, u := range []string{"http://198.18.100.1/", "http://[2001:db8:100::1]/"} {
		var body string
		lab.Eventually(t, 5*time.Second, "GET "+u+" through the real as next hop", func() error {
			resp, err := hc.Get(u)
			if err != nil {
				return err
			}
			defer resp.Body.Close()
			b, err := io.ReadAll(resp.Body)
			body = string(b)
			return err
		})
		if !strings.HasPrefix(body, "real") {
			t.Fatalf("GET %s: %q", u, body)
		}
	}

	// ARP: the real answers for its own address, not for the VIP.
	err := tp.client.Do(func() error {
		mac, err := arpProbe("eth0", clientV4, realV4, time.Second)
		if err != nil {
			return err
		}
		if mac == nil {
			return fmt.Errorf("control: no ARP reply for the real's own address")
		}
		if mac, err = arpProbe("eth0", clientV4, vip4a, time.Second); err != nil {
			return err
		}
		if mac != nil {
			return fmt.Errorf("the real answered ARP for the VIP %v with %v", vip4a, mac)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// NDP: an on-link route to the VIP makes the client solicit it; the
	// real must not answer, so the connection fails.
	tp.client.DelRoute(vip6a.String())
	tp.client.RouteDev(vip6a.String(), "eth0")
	ctx, cancel := context.WithTimeout(context.Background(), 1500*time.Millisecond)
	defer cancel()
	if c, err := tp.client.Dial(ctx, "tcp", "[2001:db8:100::1]:80"); err == nil {
		c.Close()
		t.Fatal("the real answered neighbour solicitation for the IPv6 VIP")
	}

	tp.teardown(t, cfg)
	tp.assertClean(t)
	tp.teardown(t, cfg) // again: nothing to do, no error
}

// TestL3DSR: packets to the real's address with a DSCP of the map (what
// gvs's l3dsr rewrite sends) are delivered to a socket on the mapped VIP,
// with good checksums, and the reply leaves from the VIP; other DSCPs are
// left alone.
func TestL3DSR(t *testing.T) {
	for _, v6 := range []bool{false, true} {
		name := map[bool]string{false: "v4", true: "v6"}[v6]
		t.Run(name, func(t *testing.T) {
			tp := newTopo(t)
			real, client, va, vb, network := realV4, clientV4, vip4a, vip4b, "udp4"
			if v6 {
				real, client, va, vb, network = realV6, clientV6, vip6a, vip6b, "udp6"
			}
			cfg := tp.cfg(MethodL3DSR)
			cfg.RealAddr = real
			cfg.VIPs = []netip.Addr{va}
			cfg.DSCP = map[uint8]netip.Addr{10: va, 12: vb}
			tp.setup(t, cfg)
			tp.setup(t, cfg) // idempotent: the table is replaced
			if !tp.hasNftTable(t, !v6) {
				t.Fatal("no nft table after Setup")
			}
			const port = 5353
			ea := tp.real.UDPEcho(netip.AddrPortFrom(va, port).String())
			eb := tp.real.UDPEcho(netip.AddrPortFrom(vb, port).String())
			er := tp.real.UDPEcho(netip.AddrPortFrom(real, port).String())
			pc, err := tp.client.ListenPacket(network, netip.AddrPortFrom(client, 0).String())
			if err != nil {
				t.Fatal(err)
			}
			csumErrors := tp.snmpCounter(t, v6, map[bool]string{false: "Udp", true: "Udp6"}[v6], "InCsumErrors")
			dst := netip.AddrPortFrom(real, port)
			for _, c := range []struct {
				dscp uint8
				from netip.Addr
			}{
				{10, va}, {12, vb}, {0, real}, {14, real} /* not in the map */, {10, va},
			} {
				from, err := udpExchange(t, pc, dst, c.dscp, fmt.Sprintf("dscp %d", c.dscp))
				if err != nil {
					t.Fatalf("DSCP %d to %v: no reply: %v", c.dscp, dst, err)
				}
				if from != netip.AddrPortFrom(c.from, port) {
					t.Fatalf("DSCP %d to %v: reply from %v, want %v", c.dscp, dst, from, netip.AddrPortFrom(c.from, port))
				}
			}
			if ea.Packets() < 2 || eb.Packets() < 1 || er.Packets() < 2 {
				t.Fatalf("echo counts: vip a %d, vip b %d, real %d", ea.Packets(), eb.Packets(), er.Packets())
			}
			if n := tp.snmpCounter(t, v6, map[bool]string{false: "Udp", true: "Udp6"}[v6], "InCsumErrors"); n != csumErrors {
				t.Fatalf("UDP checksum errors on the real went from %d to %d", csumErrors, n)
			}

			// TCP: the SYN is rewritten (checksum fixed, or the real would
			// drop it) and the real's SYN-ACK comes from the VIP.
			if _, err := tp.real.Listen("tcp", netip.AddrPortFrom(vb, 8080).String()); err != nil {
				t.Fatal(err)
			}
			if synAckFromVIP(t, tp.client, netip.AddrPortFrom(client, 41000), netip.AddrPortFrom(real, 8080), 0, vb) {
				t.Fatal("TCP SYN without DSCP was rewritten to the VIP")
			}
			if !synAckFromVIP(t, tp.client, netip.AddrPortFrom(client, 41012), netip.AddrPortFrom(real, 8080), 12, vb) {
				t.Fatal("TCP SYN with DSCP 12 to the real: no SYN-ACK from the VIP")
			}

			tp.teardown(t, cfg)
			tp.assertClean(t)
			// After teardown the DSCP is not mapped any more: the real address answers.
			ea.Close()
			eb.Close()
			from, err := udpExchange(t, pc, dst, 10, "after")
			if err != nil || from != dst {
				t.Fatalf("after teardown: reply from %v (%v), want %v", from, err, dst)
			}
		})
	}
}

// TestTunnel: IPIP and IPv6-in-IPv6 packets to the real's address (what
// gvs's tunnel method sends) are decapsulated and reach a socket on the
// VIP, whose reply goes straight back to the client from the VIP; so do the
// mixed 4-in-6 and 6-in-4.
func TestTunnel(t *testing.T) {
	tp := newTopo(t)
	cfg4 := tp.cfg(MethodTunnel)
	cfg4.RealAddr, cfg4.VIPs = realV4, []netip.Addr{vip4a}
	cfg6 := tp.cfg(MethodTunnel)
	cfg6.RealAddr, cfg6.VIPs = realV6, []netip.Addr{vip6a}
	tp.setup(t, cfg4)
	tp.setup(t, cfg6)
	tp.setup(t, cfg4) // idempotent
	fs := tp.decapFilters(t)
	if !slices.Contains(fs, decapName4) || !slices.Contains(fs, decapName6) {
		t.Logf("decap filters on eth0: %v (a kernel tunnel device may have been used)", fs)
	}

	const port = 5353
	tp.real.UDPEcho(netip.AddrPortFrom(vip4a, port).String())
	tp.real.UDPEcho(netip.AddrPortFrom(vip6a, port).String())
	tp.real.UDPEcho(netip.AddrPortFrom(realV4, port).String())
	pc4, err := tp.client.ListenPacket("udp4", netip.AddrPortFrom(clientV4, 0).String())
	if err != nil {
		t.Fatal(err)
	}
	pc6, err := tp.client.ListenPacket("udp6", netip.AddrPortFrom(clientV6, 0).String())
	if err != nil {
		t.Fatal(err)
	}
	src4 := netip.AddrPortFrom(clientV4, uint16(pc4.LocalAddr().(*net.UDPAddr).Port))
	src6 := netip.AddrPortFrom(clientV6, uint16(pc6.LocalAddr().(*net.UDPAddr).Port))
	csum4 := tp.snmpCounter(t, false, "Udp", "InCsumErrors")
	csum6 := tp.snmpCounter(t, true, "Udp6", "InCsumErrors")

	cases := []struct {
		name     string
		outer    netip.Addr
		proto    int
		src, dst netip.AddrPort
		pc       net.PacketConn
	}{
		{"ipip", realV4, ipprotoIPIP, src4, netip.AddrPortFrom(vip4a, port), pc4},
		{"ip6ip6", realV6, ipprotoIPv6, src6, netip.AddrPortFrom(vip6a, port), pc6},
		{"4in6", realV6, ipprotoIPIP, src4, netip.AddrPortFrom(vip4a, port), pc4},
		{"6in4", realV4, ipprotoIPv6, src6, netip.AddrPortFrom(vip6a, port), pc6},
	}
	for _, c := range cases {
		payload := "tunnel " + c.name
		inner := udpPacket(c.src, c.dst, []byte(payload))
		buf := make([]byte, 1500)
		var got string
		var from net.Addr
		lab.Eventually(t, 5*time.Second, c.name+" to "+c.dst.String()+" via "+c.outer.String(), func() error {
			if err := tp.client.Do(func() error { return sendTunneled(c.outer, c.proto, inner) }); err != nil {
				t.Fatalf("send %s: %v", c.name, err)
			}
			c.pc.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
			n, f, err := c.pc.ReadFrom(buf)
			if err != nil {
				return err
			}
			got, from = string(buf[:n]), f
			return nil
		})
		ap := from.(*net.UDPAddr).AddrPort()
		if got != payload || netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()) != c.dst {
			t.Fatalf("%s: reply %q from %v, want %q from %v", c.name, got, from, payload, c.dst)
		}
	}
	// Plain traffic to the real's address still passes the filter.
	if from, err := udpExchange(t, pc4, netip.AddrPortFrom(realV4, port), 0, "plain"); err != nil || from.Addr() != realV4 {
		t.Fatalf("plain UDP to the real with decap attached: %v %v", from, err)
	}
	if n4, n6 := tp.snmpCounter(t, false, "Udp", "InCsumErrors"), tp.snmpCounter(t, true, "Udp6", "InCsumErrors"); n4 != csum4 || n6 != csum6 {
		t.Fatalf("UDP checksum errors: v4 %d→%d, v6 %d→%d", csum4, n4, csum6, n6)
	}

	tp.teardown(t, cfg4)
	if fs := tp.decapFilters(t); slices.Contains(fs, decapName4) {
		t.Fatalf("v4 filter left after its teardown: %v", fs)
	}
	if !slices.Contains(tp.loAddrs(t), vip6a) {
		t.Fatal("v6 VIP removed by the v4 teardown")
	}
	tp.teardown(t, cfg6)
	tp.assertClean(t)
}

// TestPreexistingAndHalfApplied: Setup keeps what was there before (a VIP
// already on lo stays after Teardown, a clsact qdisc someone else made
// stays), and Teardown without any Setup, or after the state was lost, is
// not an error.
func TestPreexistingAndHalfApplied(t *testing.T) {
	tp := newTopo(t)
	cfg := tp.cfg(MethodDR)
	cfg.VIPs = []netip.Addr{vip4a, vip4b}
	tp.teardown(t, cfg) // nothing set up: fine
	tp.real.Addr("lo", vip4a.String()+"/32")
	if _, err := tp.real.Run("tc", "qdisc", "add", "dev", "eth0", "clsact"); err != nil {
		t.Skipf("tc: %v", err)
	}
	tp.setup(t, cfg)
	tun := tp.cfg(MethodTunnel)
	tun.RealAddr, tun.VIPs, tun.Decap = realV4, []netip.Addr{vip4b}, DecapBPF
	tp.setup(t, tun)
	tp.teardown(t, tun)
	if as := tp.loAddrs(t); !slices.Contains(as, vip4b) {
		t.Fatalf("VIP still used by the dr setup was removed by the tunnel teardown: %v", as)
	}
	tp.teardown(t, cfg)
	if as := tp.loAddrs(t); !slices.Equal(as, []netip.Addr{vip4a}) {
		t.Fatalf("after teardown lo has %v, want only the pre-existing %v", as, vip4a)
	}
	if out, err := tp.real.Run("tc", "qdisc", "show", "dev", "eth0"); err != nil || !strings.Contains(out, "clsact") {
		t.Fatalf("pre-existing clsact qdisc removed: %v %s", err, out)
	}

	// State lost: Teardown still removes the VIPs and the table.
	l3 := tp.cfg(MethodL3DSR)
	l3.RealAddr, l3.DSCP = realV4, map[uint8]netip.Addr{10: vip4b}
	tp.setup(t, l3)
	l3lost := l3
	l3lost.StateDir = t.TempDir()
	tp.teardown(t, l3lost)
	if tp.hasNftTable(t, true) || slices.Contains(tp.loAddrs(t), vip4b) {
		t.Fatal("teardown without state left the table or the VIP")
	}
}
