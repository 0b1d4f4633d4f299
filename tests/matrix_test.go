package tests

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"gvs/tests/lab"
)

// TestMatrix runs every forwarding method over both Linux drivers, IPv4 for
// all and IPv6 for nat, dr and tunnel: new connections all succeed and
// spread per the scheduler, a long-lived connection keeps its real while
// reals are added and while its real drains (weight 0), UDP works, and the
// drained real gets no new flow.
func TestMatrix(t *testing.T) {
	for _, drv := range []string{"afxdp", "afpacket"} {
		for _, method := range []string{"nat", "fullnat", "dr", "l3dsr", "tunnel"} {
			fams := []family{v4}
			if method == "nat" || method == "dr" || method == "tunnel" {
				fams = append(fams, v6)
			}
			for _, fam := range fams {
				t.Run(fmt.Sprintf("%s/%s/%s", drv, method, fam.name()), func(t *testing.T) {
					runMatrixCase(t, drv, method, fam)
				})
			}
		}
	}
}

const (
	httpPort    = 80
	httpWRRPort = 81
	udpPort     = 7
	requests    = 500
)

func runMatrixCase(t *testing.T, drv, method string, fam family) {
	tp := newTopo(t, drv, method, fam, 4)
	// nat and fullnat reals listen on other ports than the VIP's: gvs
	// rewrites the port; DSR reals answer from the VIP's port.
	realHTTP, realWRR, realUDP := httpPort, httpWRRPort, udpPort
	if method == "nat" || method == "fullnat" {
		realHTTP, realWRR, realUDP = 8080, 8081, 7007
	}
	any := "0.0.0.0"
	if fam.v6 {
		any = "::"
	}
	// A UDP server behind DSR must answer from the VIP: bind it there (a
	// socket on the wildcard address would answer from the real's own).
	udpAddr := any
	if method != "nat" && method != "fullnat" {
		udpAddr = fam.vip.String()
	}
	for i, r := range tp.reals {
		r.HTTPBackend(fmt.Sprintf("real%d", i), hostPort(any, realHTTP))
		r.HTTPBackend(fmt.Sprintf("real%d", i), hostPort(any, realWRR))
		r.UDPEcho(hostPort(udpAddr, realUDP))
	}
	portOf := func(p int) int {
		if method == "nat" || method == "fullnat" {
			return p
		}
		return 0
	}
	three := []realSpec{{0, 1}, {1, 1}, {2, 1}}
	svcs := func(reals []realSpec) []svcSpec {
		return []svcSpec{
			{proto: "tcp", sched: "rr", port: httpPort, realPort: portOf(realHTTP), reals: reals},
			{proto: "tcp", sched: "wrr", port: httpWRRPort, realPort: portOf(realWRR), reals: []realSpec{{0, 3}, {1, 1}}},
			{proto: "udp", sched: "rr", port: udpPort, realPort: portOf(realUDP), reals: reals},
		}
	}
	tp.writeConfig(svcs(three)...)
	tp.startGVSD()

	vipURL := func(port int) string { return "http://" + hostPort(fam.vip.String(), port) + "/" }
	client := tp.cl.HTTPClient(3 * time.Second)
	get := func(c *http.Client, url string) (string, error) {
		resp, err := c.Get(url)
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		return strings.TrimSpace(string(b)), err
	}
	// gvs resolves the reals' next hops as it starts: wait until a request
	// goes through, then every request must.
	lab.Eventually(t, 10*time.Second, "first request through gvs", func() error {
		_, err := get(client, vipURL(httpPort))
		return err
	})

	// 1. rr over three reals, new connection per request.
	spread := map[string]int{}
	for i := 0; i < requests; i++ {
		who, err := get(client, vipURL(httpPort))
		if err != nil {
			t.Fatalf("request %d of %d: %v\ngvsd:\n%s", i+1, requests, err, tail(tp.gvsd.Output(), 20))
		}
		spread[who]++
	}
	checkSpread(t, "rr", spread, map[string]float64{"real0": 1, "real1": 1, "real2": 1})

	// 2. wrr 3:1.
	spread = map[string]int{}
	for i := 0; i < 400; i++ {
		who, err := get(client, vipURL(httpWRRPort))
		if err != nil {
			t.Fatalf("wrr request %d: %v", i+1, err)
		}
		spread[who]++
	}
	checkSpread(t, "wrr", spread, map[string]float64{"real0": 3, "real1": 1})

	// 3. UDP echo through the VIP.
	udpEcho(t, tp, fam, udpPort)

	// 4. A long-lived connection keeps its real while a real is added...
	keep := newKeepAlive(t, tp, fam, httpPort)
	first := keep.get(t)
	tp.reload(svcs(append(three, realSpec{3, 1}))...)
	seen := map[string]int{}
	for i := 0; i < 60; i++ {
		who, err := get(client, vipURL(httpPort))
		if err != nil {
			t.Fatalf("after adding a real: %v", err)
		}
		seen[who]++
	}
	if seen["real3"] == 0 {
		t.Errorf("the added real got none of 60 new connections: %v", seen)
	}
	if got := keep.get(t); got != first {
		t.Fatalf("long-lived connection moved from %s to %s when a real was added", first, got)
	}
	// 5. ... and while its real drains: weight 0 takes no new flows.
	var drained []realSpec
	for _, r := range append(three, realSpec{3, 1}) {
		if fmt.Sprintf("real%d", r.idx) == first {
			r.weight = 0
		}
		drained = append(drained, r)
	}
	tp.reload(svcs(drained)...)
	for i := 0; i < 60; i++ {
		who, err := get(client, vipURL(httpPort))
		if err != nil {
			t.Fatalf("after draining %s: %v", first, err)
		}
		if who == first {
			t.Fatalf("drained real %s (weight 0) got a new connection", first)
		}
	}
	if got := keep.get(t); got != first {
		t.Fatalf("established connection left its draining real %s for %s", first, got)
	}
	keep.close()

	out := tp.stopGVSD()
	if !strings.Contains(out, "SERVICE") {
		t.Errorf("gvsd printed no counters at exit:\n%s", tail(out, 10))
	}
}

// checkSpread asserts every real's share is within ±10% of its weight's.
func checkSpread(t *testing.T, what string, got map[string]int, weights map[string]float64) {
	t.Helper()
	total, wsum := 0, 0.0
	for _, n := range got {
		total += n
	}
	for _, w := range weights {
		wsum += w
	}
	for name, w := range weights {
		want := float64(total) * w / wsum
		if math.Abs(float64(got[name])-want) > 0.1*want {
			t.Errorf("%s: %s answered %d of %d, want %.0f ±10%% (spread %v)", what, name, got[name], total, want, got)
		}
	}
	for name := range got {
		if _, ok := weights[name]; !ok {
			t.Errorf("%s: %s answered though not in the service (spread %v)", what, name, got)
		}
	}
}

// udpEcho sends datagrams to the VIP and expects each back from the VIP.
func udpEcho(t *testing.T, tp *topo, fam family, port int) {
	t.Helper()
	network := "udp4"
	if fam.v6 {
		network = "udp6"
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for i := 0; i < 20; i++ {
		c, err := tp.cl.Dial(ctx, network, hostPort(fam.vip.String(), port))
		if err != nil {
			t.Fatal(err)
		}
		msg := fmt.Sprintf("ping %d", i)
		var got string
		for try := 0; try < 5 && got != msg; try++ { // UDP may lose the first datagram while next hops resolve
			c.SetDeadline(time.Now().Add(500 * time.Millisecond))
			if _, err := c.Write([]byte(msg)); err != nil {
				t.Fatal(err)
			}
			buf := make([]byte, 100)
			if n, err := c.Read(buf); err == nil {
				got = string(buf[:n])
			}
		}
		c.Close()
		if got != msg {
			t.Fatalf("UDP echo %d through the VIP: got %q", i, got)
		}
	}
}

// keepAlive is one TCP connection to the VIP carrying several requests.
type keepAlive struct {
	c  net.Conn
	r  *bufio.Reader
	vh string
}

func newKeepAlive(t *testing.T, tp *topo, fam family, port int) *keepAlive {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := tp.cl.Dial(ctx, "tcp", hostPort(fam.vip.String(), port))
	if err != nil {
		t.Fatal(err)
	}
	return &keepAlive{c: c, r: bufio.NewReader(c), vh: hostPort(fam.vip.String(), port)}
}

func (k *keepAlive) get(t *testing.T) string {
	t.Helper()
	k.c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := fmt.Fprintf(k.c, "GET / HTTP/1.1\r\nHost: %s\r\n\r\n", k.vh); err != nil {
		t.Fatalf("long-lived connection: %v", err)
	}
	resp, err := http.ReadResponse(k.r, nil)
	if err != nil {
		t.Fatalf("long-lived connection: %v", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return strings.TrimSpace(string(b))
}

func (k *keepAlive) close() { k.c.Close() }
