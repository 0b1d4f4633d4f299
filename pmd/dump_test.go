package pmd

import (
	"context"
	"errors"
	"net/netip"
	"testing"
	"time"

	"gvs/driver"
	"gvs/driver/mem"
	"gvs/lb"
)

// dumpAll pages through a worker's sessions max at a time.
func dumpAll(t *testing.T, w *Worker, max int, match func(*lb.Entry) bool) []lb.Entry {
	t.Helper()
	var all []lb.Entry
	start, pages := 0, 0
	for start >= 0 {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		ents, next, err := w.DumpSessions(ctx, start, max, match)
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		if len(ents) > max {
			t.Fatalf("page of %d entries, max %d", len(ents), max)
		}
		if next >= 0 && len(ents) != max {
			t.Fatalf("short page (%d of %d) with a next page at %d", len(ents), max, next)
		}
		all = append(all, ents...)
		start = next
		pages++
	}
	return all
}

// Sessions are listed while the workers forward (the worker serves the
// request between bursts, in slices), and directly before Start and after
// Stop; reverse entries never appear, filters apply, pages never overlap.
func TestDumpSessions(t *testing.T) {
	svc, hops := natService(3)
	bal := lb.NewBalancer(2, 64)
	if err := bal.Apply(lb.Config{Services: []lb.Service{svc}, NextHops: hops}); err != nil {
		t.Fatal(err)
	}
	port, err := mem.New(mem.Config{MAC: lbMAC, Queues: 2, RingSize: 4096, Frames: 16384})
	if err != nil {
		t.Fatal(err)
	}
	// Large enough that one dump takes many visits of DumpBudget slots.
	e, err := New(Config{Workers: 2, Ports: []driver.Port{port}, Balancer: bal, Sessions: 1 << 15})
	if err != nil {
		t.Fatal(err)
	}
	if n := e.Workers()[0].Pipeline().Sessions().Cap(); n < 8*DumpBudgetIdle {
		t.Fatalf("table of %d slots is too small for the test", n)
	}
	if ents, next, err := e.Workers()[0].DumpSessions(context.Background(), 0, 10, nil); err != nil || len(ents) != 0 || next != -1 {
		t.Fatalf("dump before start: %d entries, next %d, %v", len(ents), next, err)
	}
	if _, _, err := e.Workers()[0].DumpSessions(context.Background(), -1, 10, nil); !errors.Is(err, ErrBadDump) {
		t.Fatalf("negative start: %v", err)
	}
	e.Start()
	t.Cleanup(e.Stop)

	const flows = 300
	var pkts [][]byte
	for i := 0; i < flows; i++ {
		pkts = append(pkts, tcp4(t, client(i), vip, uint16(10000+i), 80, true, clientMAC))
	}
	port.MemQueue(0).Inject(pkts...)
	drainAll(t, port, flows)

	check := func(max int) map[netip.AddrPort]uint32 {
		t.Helper()
		seen := map[netip.AddrPort]uint32{}
		for _, w := range e.Workers() {
			for _, ent := range dumpAll(t, w, max, nil) {
				if ent.Flags&lb.EntryReverse != 0 {
					t.Fatal("reverse entry listed")
				}
				if int(ent.Worker) != w.ID() {
					t.Fatalf("worker %d listed an entry of worker %d", w.ID(), ent.Worker)
				}
				src := netip.AddrFrom4([4]byte(ent.Key.Src[:4]))
				k := netip.AddrPortFrom(src, ent.Key.SPort)
				if _, dup := seen[k]; dup {
					t.Fatalf("session %s listed twice", k)
				}
				seen[k] = ent.RealID
			}
		}
		if len(seen) != flows {
			t.Fatalf("%d sessions listed, want %d", len(seen), flows)
		}
		return seen
	}
	byReal := check(7)
	check(1000)

	// A filter runs on the worker: one real's sessions.
	want := 0
	for _, id := range byReal {
		if id == 1 {
			want++
		}
	}
	got := 0
	for _, w := range e.Workers() {
		got += len(dumpAll(t, w, 50, func(ent *lb.Entry) bool { return ent.RealID == 1 }))
	}
	if got != want || want == 0 {
		t.Fatalf("filtered dump: %d sessions of real 1, want %d", got, want)
	}

	// Concurrent dumps of one worker are served one after the other.
	done := make(chan int, 4)
	for i := 0; i < 4; i++ {
		go func() {
			n := 0
			for _, w := range e.Workers() {
				ents, _, err := w.DumpSessions(context.Background(), 0, flows, nil)
				if err != nil {
					n = -1000
				}
				n += len(ents)
			}
			done <- n
		}()
	}
	for i := 0; i < 4; i++ {
		if n := <-done; n != flows {
			t.Fatalf("concurrent dump listed %d sessions, want %d", n, flows)
		}
	}

	// A cancelled request returns the context's error.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, _, err := e.Workers()[1].DumpSessions(ctx, 0, 10, func(*lb.Entry) bool { return false }); err != nil && !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled dump: %v", err)
	}

	// Stopped: read directly.
	e.Stop()
	check(13)
}
