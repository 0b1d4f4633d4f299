package health

import (
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"gvs/lb"
	"gvs/tests/lab"
)

// TestManagerInNamespace runs a Manager on the real clock with the
// built-in checkers in the prober namespace: a chained check (L3 → L4
// half-open → L7) of one real in two services, which goes down when its
// HTTP server stops and comes back when it starts again.
func TestManagerInNamespace(t *testing.T) {
	_, prober, real := newTopo(t)
	backend := real.HTTPBackend("b1", realV4+":80")
	prober.WaitTCP(realV4+":80", 5*time.Second)

	var mu sync.Mutex
	var changes []string
	m := New(Options{
		Workers: 4,
		Netns:   prober.Path(),
		Logger:  slog.New(slog.DiscardHandler),
		OnChange: func(k lb.RealKey, up bool, reason string) {
			mu.Lock()
			defer mu.Unlock()
			changes = append(changes, fmt.Sprintf("%s up=%t %s", k.Service.VIP, up, reason))
		},
	})
	if err := m.Start(); err != nil {
		t.Fatal(err)
	}
	defer m.Stop()
	const iv = 100 * time.Millisecond
	chk := func(kind string) Check {
		return Check{Kind: kind, Interval: iv, Timeout: 200 * time.Millisecond, Rise: 2, Fall: 2}
	}
	chain := []Check{chk(KindICMP), chk(KindTCPHalfOpen), chk(KindHTTP)}
	a := realKey(realV4, 80)
	b := a
	b.Service.VIP = b.Service.VIP.Next()
	if err := m.Set([]Target{{Key: a, Chain: chain}, {Key: b, Chain: chain}}); err != nil {
		t.Fatal(err)
	}
	allUp := func(want bool, layer int, reason string) func() error {
		return func() error {
			for _, s := range m.Status() {
				if s.Up != want || !s.Checked || s.Layer != layer || !strings.Contains(s.Reason, reason) {
					return fmt.Errorf("%v: up=%t layer %d: %s", s.Key, s.Up, s.Layer, s.Reason)
				}
			}
			return nil
		}
	}
	lab.Eventually(t, 5*time.Second, "both targets up", allUp(true, -1, "status 200"))

	// The two targets share their probes: the backend sees one request per
	// interval, not two.
	st := m.Status()
	if st[0].Checks[2].Shared != 2 || m.Stats().Probes != 3 {
		t.Fatalf("not shared: %+v, %+v", st[0].Checks, m.Stats())
	}
	r0, t0 := backend.Requests(), time.Now()
	lab.Eventually(t, 5*time.Second, "10 more requests", func() error {
		if n := backend.Requests() - r0; n < 10 {
			return fmt.Errorf("%d requests", n)
		}
		return nil
	})
	if el := time.Since(t0); el < 7*iv {
		t.Fatalf("10 requests in %v with a %v interval: the shared check ran more than once per interval", el, iv)
	}

	backend.Close()
	down := time.Now()
	lab.Eventually(t, 5*time.Second, "both targets down at the tcp-halfopen layer", allUp(false, 1, "port closed (RST)"))
	t.Logf("down %v after the backend stopped (fall 2 × interval %v)", time.Since(down).Round(time.Millisecond), iv)
	if s := m.Status()[0]; s.Checks[2].State != "paused" || s.Transitions != 1 {
		t.Fatalf("after the stop: %+v", s)
	}

	real.HTTPBackend("b1 again", realV4+":80")
	lab.Eventually(t, 5*time.Second, "both targets up again", allUp(true, -1, "status 200"))
	m.Stop()
	mu.Lock()
	defer mu.Unlock()
	if len(changes) != 6 {
		t.Fatalf("changes %q: want up, down, up for each target", changes)
	}
	for i, want := range []string{"up=true", "up=true", "up=false", "up=false", "up=true", "up=true"} {
		if !strings.Contains(changes[i], want) {
			t.Fatalf("change %d %q, want %s", i, changes[i], want)
		}
	}
}
