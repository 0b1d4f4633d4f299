package tests

import (
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"gvs/ctl/api"
	"gvs/tests/lab"
)

// End to end with gvsd: an http check takes a real whose server stops out
// of the service within fall × interval, new flows avoid it; when the
// server comes back the real returns after rise × interval.
func TestHealthCheckTakesRealOut(t *testing.T) {
	tp := newTopo(t, "afxdp", "nat", v4, 3)
	backends := make([]*lab.Backend, 3)
	for i, r := range tp.reals {
		backends[i] = r.HTTPBackend(fmt.Sprintf("real%d", i), hostPort("0.0.0.0", 8080))
	}
	checks := `  [[service.check]]
  kind = "http"
  path = "/"
  interval = "200ms"
  timeout = "150ms"
  rise = 2
  fall = 2
`
	tp.writeConfig(svcSpec{proto: "tcp", sched: "rr", port: httpPort, realPort: 8080, reals: []realSpec{{0, 1}, {1, 1}, {2, 1}}, extra: checks})
	tp.startGVSD()
	client := tp.cl.HTTPClient(2 * time.Second)
	url := "http://" + hostPort(v4.vip.String(), httpPort) + "/"
	get := func() (string, error) {
		resp, err := client.Get(url)
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		return strings.TrimSpace(string(b)), err
	}
	health := func() map[string]bool {
		c, err := api.Dial(tp.sock)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		var hs []api.HealthStatus
		if err := c.Call(api.OpHealth, nil, &hs); err != nil {
			t.Fatal(err)
		}
		m := map[string]bool{}
		for _, h := range hs {
			m[h.Real] = h.Up
		}
		return m
	}
	real1 := hostPort(v4.real(1), 8080)
	lab.Eventually(t, 10*time.Second, "every real checked up", func() error {
		if h := health(); len(h) != 3 || !h[real1] {
			return fmt.Errorf("health %v", h)
		}
		_, err := get()
		return err
	})
	// Stop real1's server: down within fall × interval (plus a probe's
	// timeout and scheduling slack).
	backends[1].Close()
	stopped := time.Now()
	lab.Eventually(t, 3*time.Second, "real1 down", func() error {
		if health()[real1] {
			return fmt.Errorf("still up")
		}
		return nil
	})
	t.Logf("real1 went down %v after its server stopped", time.Since(stopped).Round(time.Millisecond))
	for i := 0; i < 60; i++ {
		who, err := get()
		if err != nil {
			t.Fatalf("request %d with real1 down: %v", i, err)
		}
		if who == "real1" {
			t.Fatal("a new connection reached real1 after its check failed")
		}
	}
	// Start it again: back after rise × interval, and it gets flows again.
	backends[1] = tp.reals[1].HTTPBackend("real1", hostPort("0.0.0.0", 8080))
	lab.Eventually(t, 5*time.Second, "real1 up again and serving", func() error {
		if !health()[real1] {
			return fmt.Errorf("still down")
		}
		for i := 0; i < 6; i++ {
			if who, err := get(); err == nil && who == "real1" {
				return nil
			}
		}
		return fmt.Errorf("up but no flow reached it")
	})
}
