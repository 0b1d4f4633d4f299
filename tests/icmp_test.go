package tests

import (
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"gvs/tests/lab"
)

// An ICMP "fragmentation needed" about a flow's reply direction, injected on
// the client side and addressed to the VIP (as a router on the way back to
// the client would send it), reaches the real of that flow and no other.
func TestICMPFragNeededReachesReal(t *testing.T) {
	for _, drv := range []string{"afxdp", "afpacket"} {
		for _, method := range []string{"nat", "dr", "tunnel"} {
			t.Run(drv+"/"+method, func(t *testing.T) { runICMPCase(t, drv, method) })
		}
	}
}

func runICMPCase(t *testing.T, drv, method string) {
	tp := newTopo(t, drv, method, v4, 3)
	realPort := 0
	if method == "nat" {
		realPort = 8080
	}
	for i, r := range tp.reals {
		r.HTTPBackend(fmt.Sprintf("real%d", i), hostPort("0.0.0.0", max(realPort, httpPort)))
	}
	tp.writeConfig(svcSpec{proto: "tcp", sched: "rr", port: httpPort, realPort: realPort, reals: []realSpec{{0, 1}, {1, 1}, {2, 1}}})
	tp.startGVSD()
	client := tp.cl.HTTPClient(3 * time.Second)
	url := "http://" + hostPort(v4.vip.String(), httpPort) + "/"
	lab.Eventually(t, 10*time.Second, "first request through gvs", func() error {
		resp, err := client.Get(url)
		if err == nil {
			resp.Body.Close()
		}
		return err
	})
	// Two connections so the flow's real is not simply the first one.
	other := newKeepAlive(t, tp, v4, httpPort)
	defer other.close()
	other.get(t)
	keep := newKeepAlive(t, tp, v4, httpPort)
	defer keep.close()
	owner := keep.get(t)
	cport := uint16(keep.c.LocalAddr().(*net.TCPAddr).Port)

	// Every real listens for ICMP.
	type hit struct{ real string }
	hits := make(chan hit, 16)
	var wg sync.WaitGroup
	var listeners []net.PacketConn
	for i, r := range tp.reals {
		pc, err := r.ListenPacket("ip4:icmp", "0.0.0.0")
		if err != nil {
			t.Fatal(err)
		}
		defer pc.Close()
		listeners = append(listeners, pc)
		name := fmt.Sprintf("real%d", i)
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, 1500)
			deadline := time.Now().Add(5 * time.Second)
			for time.Now().Before(deadline) {
				pc.SetReadDeadline(deadline)
				n, _, err := pc.ReadFrom(buf)
				if err != nil {
					return
				}
				// type 3 code 4, embedded IPv4 header, then the TCP ports.
				m := buf[:n]
				if n >= 8+20+4 && m[0] == 3 && m[1] == 4 {
					ihl := int(m[8]&0x0f) * 4
					if n >= 8+ihl+4 && binary.BigEndian.Uint16(m[8+ihl+2:]) == cport {
						hits <- hit{name}
					}
				}
			}
		}()
	}
	// The client side injects the error (the kernel adds the outer IP header).
	pc, err := tp.cl.ListenPacket("ip4:icmp", "0.0.0.0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	msg := fragNeeded(v4.vip, netip.MustParseAddr(v4.client), httpPort, cport, 1300)
	if _, err := pc.WriteTo(msg, &net.IPAddr{IP: v4.vip.AsSlice()}); err != nil {
		t.Fatal(err)
	}
	select {
	case h := <-hits:
		if h.real != owner {
			t.Fatalf("fragmentation needed for the flow on %s reached %s", owner, h.real)
		}
	case <-time.After(5 * time.Second):
		t.Fatalf("fragmentation needed for the flow on %s reached no real\ngvsd:\n%s", owner, tail(tp.gvsd.Output(), 10))
	}
	// No copy may reach another real: give stragglers a bounded moment.
	select {
	case h := <-hits:
		t.Fatalf("a second copy reached %s", h.real)
	case <-time.After(300 * time.Millisecond):
	}
	for _, c := range listeners {
		c.Close()
	}
	wg.Wait()
}

// fragNeeded builds an ICMP type 3 code 4 message about a TCP packet
// src:sport -> dst:dport (its IP header and first 8 bytes).
func fragNeeded(src, dst netip.Addr, sport, dport uint16, mtu uint16) []byte {
	m := make([]byte, 8+20+8)
	m[0], m[1] = 3, 4
	binary.BigEndian.PutUint16(m[6:], mtu)
	ip := m[8:28]
	ip[0] = 0x45
	binary.BigEndian.PutUint16(ip[2:], 1500)
	binary.BigEndian.PutUint16(ip[6:], 0x4000)
	ip[8], ip[9] = 64, 6
	copy(ip[12:16], src.AsSlice())
	copy(ip[16:20], dst.AsSlice())
	binary.BigEndian.PutUint16(ip[10:], inetChecksum(ip))
	binary.BigEndian.PutUint16(m[28:], sport)
	binary.BigEndian.PutUint16(m[30:], dport)
	binary.BigEndian.PutUint32(m[32:], 12345)
	binary.BigEndian.PutUint16(m[2:], inetChecksum(m))
	return m
}

func inetChecksum(b []byte) uint16 {
	var s uint32
	for i := 0; i+1 < len(b); i += 2 {
		s += uint32(b[i])<<8 | uint32(b[i+1])
	}
	if len(b)%2 == 1 {
		s += uint32(b[len(b)-1]) << 8
	}
	for s>>16 != 0 {
		s = s>>16 + s&0xffff
	}
	return ^uint16(s)
}

// nginx as the real servers (dr): the backends are a real web server.
func TestNginxBackends(t *testing.T) {
	nginx, err := exec.LookPath("nginx")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("nginx is not installed (make deps-system installs nginx-light); CI=true, so this is a failure")
		}
		t.Skip("nginx is not installed (make deps-system installs nginx-light)")
	}
	tp := newTopo(t, "afxdp", "dr", v4, 3)
	for i, r := range tp.reals {
		dir := t.TempDir()
		conf := fmt.Sprintf(`daemon off;
master_process off;
worker_processes 1;
pid %[1]s/nginx.pid;
error_log stderr warn;
events { worker_connections 256; }
http {
  access_log off;
  client_body_temp_path %[1]s;
  proxy_temp_path %[1]s;
  fastcgi_temp_path %[1]s;
  uwsgi_temp_path %[1]s;
  scgi_temp_path %[1]s;
  server {
    listen 80;
    location / { default_type text/plain; return 200 "nginx%[2]d\n"; }
  }
}
`, dir, i)
		path := filepath.Join(dir, "nginx.conf")
		if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
			t.Fatal(err)
		}
		r.Start(nginx, "-p", dir, "-c", path)
		r.WaitTCP("127.0.0.1:80", 10*time.Second)
	}
	tp.writeConfig(svcSpec{proto: "tcp", sched: "rr", port: httpPort, reals: []realSpec{{0, 1}, {1, 1}, {2, 1}}})
	tp.startGVSD()
	client := tp.cl.HTTPClient(3 * time.Second)
	url := "http://" + hostPort(v4.vip.String(), httpPort) + "/"
	lab.Eventually(t, 10*time.Second, "first request through gvs", func() error {
		resp, err := client.Get(url)
		if err == nil {
			resp.Body.Close()
		}
		return err
	})
	spread := map[string]int{}
	for i := 0; i < 300; i++ {
		resp, err := client.Get(url)
		if err != nil {
			t.Fatalf("request %d: %v", i+1, err)
		}
		var b [32]byte
		n, _ := resp.Body.Read(b[:])
		resp.Body.Close()
		spread[strings.TrimSpace(string(b[:n]))]++
	}
	checkSpread(t, "rr over nginx", spread, map[string]float64{"nginx0": 1, "nginx1": 1, "nginx2": 1})
}
