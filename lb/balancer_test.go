package lb

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Helpers shared by balancer_test.go, snapshot_test.go and validate_test.go
// (prefix bt, to stay clear of the other test files of the package).

func btAddr(s string) netip.Addr { return netip.MustParseAddr(s) }

// btBytes returns the address as the snapshot's lookups take it: 4 bytes for
// IPv4, 16 for IPv6, and its family.
func btBytes(s string) ([]byte, uint8) {
	b, fam := addrBytes(btAddr(s))
	return b[:addrLen(fam)], fam
}

// btHops resolves a next hop for every real of every service, with a MAC
// derived from the address and port 1.
func btHops(svcs []Service) map[netip.Addr]NextHop {
	h := map[netip.Addr]NextHop{}
	for _, s := range svcs {
		for _, r := range s.Reals {
			a := r.Addr.As16()
			h[r.Addr.Unmap()] = NextHop{MAC: [6]byte{0x02, 0, a[12], a[13], a[14], a[15]}, Port: 1}
		}
	}
	return h
}

// btCfg wraps services in a config with next hops for all their reals.
func btCfg(svcs ...Service) Config { return Config{Services: svcs, NextHops: btHops(svcs)} }

// btSvc is a tcp service on vip:port with scheduler rr and one real per
// address (weight 1, service port).
func btSvc(vip string, port uint16, m Method, reals ...string) Service {
	s := Service{Proto: ProtoTCP, VIP: btAddr(vip), Port: port, Scheduler: "rr", Method: m}
	for _, r := range reals {
		s.Reals = append(s.Reals, Real{Addr: btAddr(r), Weight: 1})
	}
	return s
}

func btApply(t testing.TB, b *Balancer, cfg Config) *Snapshot {
	t.Helper()
	if err := b.Apply(cfg); err != nil {
		t.Fatalf("Apply: %v", err)
	}
	return b.Load()
}

// btRealKey is the key of real addr (port 0) of a service.
func btRealKey(s Service, addr string) RealKey {
	return RealKey{s.Key(), btAddr(addr), 0}
}

// btFind returns the snapshot's entries for key (normally zero or one).
func btFind(snap *Snapshot, k RealKey) []*RealEntry {
	var out []*RealEntry
	for i := range snap.Reals {
		if snap.Reals[i].Key == k {
			out = append(out, &snap.Reals[i])
		}
	}
	return out
}

// btReal returns the single entry of key, failing the test otherwise.
func btReal(t testing.TB, snap *Snapshot, k RealKey) *RealEntry {
	t.Helper()
	rs := btFind(snap, k)
	if len(rs) != 1 {
		t.Fatalf("gen %d: %d entries for real %s, want 1", snap.Gen, len(rs), k)
	}
	return rs[0]
}

// btSvcIdx returns the index of service key in the snapshot.
func btSvcIdx(t testing.TB, snap *Snapshot, k ServiceKey) int {
	t.Helper()
	for i := range snap.Services {
		if snap.Services[i].Key == k {
			return i
		}
	}
	t.Fatalf("gen %d: no service %s", snap.Gen, k)
	return -1
}

// btSchedReal returns the scheduler's view of real id in service si.
func btSchedReal(t testing.TB, snap *Snapshot, si int, id uint32) SchedReal {
	t.Helper()
	for _, sr := range snap.Services[si].Sched.Reals() {
		if sr.ID == id {
			return sr
		}
	}
	t.Fatalf("gen %d: real id %d not in the scheduler of %s", snap.Gen, id, snap.Services[si].Key)
	return SchedReal{}
}

// btPicks picks n flows of service si and counts the real ids chosen.
func btPicks(b *Balancer, snap *Snapshot, si, n int) map[uint32]int {
	w := NewWorkerSched(0, b.Conns(), 1)
	w.Reset(len(snap.Services))
	svc := &snap.Services[si]
	got := map[uint32]int{}
	for i := range n {
		f := Flow{Family: svc.Family, SPort: uint16(i), DPort: svc.Port, Hash: uint64(i) * 0x9E3779B97F4A7C15}
		f.Src = [16]byte{198, 19, byte(i >> 8), byte(i)}
		f.Dst = svc.VIP
		ri := w.Pick(si, svc.Sched, &f, time.Now().UnixNano())
		if ri < 0 {
			got[^uint32(0)]++
			continue
		}
		got[snap.Reals[svc.RealIdx[ri]].ID]++
	}
	return got
}

func TestBalancerInvalidKeepsSnapshot(t *testing.T) {
	b := NewBalancer(2, 64)
	empty := b.Load()
	if empty == nil || len(empty.Services) != 0 || empty.Timeouts != DefaultTimeouts {
		t.Fatalf("initial snapshot = %+v, want empty with default timeouts", empty)
	}
	bad := btCfg(btSvc("198.18.0.1", 80, MethodDR, "198.18.1.1", "2001:db8:1::1"))
	if err := b.Apply(bad); err == nil {
		t.Fatal("Apply of a config with a family mismatch succeeded")
	}
	if b.Load() != empty {
		t.Fatal("failed Apply replaced the initial snapshot")
	}

	good := btCfg(btSvc("198.18.0.1", 80, MethodDR, "198.18.1.1", "198.18.1.2"))
	s1 := btApply(t, b, good)
	invalid := []Config{
		btCfg(good.Services[0], good.Services[0]),                   // duplicate service
		btCfg(btSvc("198.18.0.1", 80, MethodL3DSR, "198.18.1.1")),   // no DSCP
		btCfg(btSvc("198.18.0.1", 80, MethodFullNAT, "198.18.1.1")), // no local address
		{Services: []Service{{Proto: ProtoTCP, Port: 80}}},          // no VIP
	}
	for i, c := range invalid {
		if err := b.Apply(c); err == nil {
			t.Fatalf("invalid config %d accepted", i)
		}
		if got := b.Load(); got != s1 {
			t.Fatalf("invalid config %d replaced the snapshot (gen %d -> %d)", i, s1.Gen, got.Gen)
		}
	}
	if c := b.Config(); len(c.Services) != 1 || len(c.Services[0].Reals) != 2 {
		t.Fatalf("Config() after failed Applies = %+v, want the good config", c)
	}
	if d := b.Draining(); len(d) != 0 {
		t.Fatalf("Draining() after failed Applies = %v", d)
	}
}

func TestBalancerGenIncreases(t *testing.T) {
	b := NewBalancer(1, 64)
	prev := b.Load().Gen
	for i := range 10 {
		reals := []string{"198.18.1.1"}
		if i%2 == 1 {
			reals = append(reals, "198.18.1.2")
		}
		cfg := btCfg(btSvc("198.18.0.1", 80, MethodDR, reals...))
		cfg.Services[0].OnRemove = RemoveDrop
		snap := btApply(t, b, cfg)
		if snap.Gen <= prev {
			t.Fatalf("apply %d: Gen %d, not above %d", i, snap.Gen, prev)
		}
		prev = snap.Gen
		// An identical config is still a new generation.
		if snap2 := btApply(t, b, cfg); snap2.Gen <= prev || snap2 == snap {
			t.Fatalf("apply %d again: Gen %d (same pointer %v), not above %d", i, snap2.Gen, snap2 == snap, prev)
		} else {
			prev = snap2.Gen
		}
		if err := b.Apply(btCfg(btSvc("198.18.0.1", 80, MethodDR, "198.18.1.1", "198.18.1.1"))); err == nil {
			t.Fatal("duplicate real accepted")
		}
		if g := b.Load().Gen; g != prev {
			t.Fatalf("failed Apply changed Gen %d -> %d", prev, g)
		}
	}
}

func TestBalancerStableIDs(t *testing.T) {
	b := NewBalancer(2, 64)
	a := btSvc("198.18.0.1", 80, MethodDR, "198.18.1.1", "198.18.1.2", "198.18.1.3")
	v6 := btSvc("2001:db8::1", 443, MethodNAT, "2001:db8:1::1", "2001:db8:1::2")
	snap := btApply(t, b, btCfg(a, v6))

	realIDs := map[RealKey]uint32{}
	for _, r := range snap.Reals {
		if _, dup := realIDs[r.Key]; dup {
			t.Fatalf("real %s twice", r.Key)
		}
		realIDs[r.Key] = r.ID
	}
	seen := map[uint32]bool{}
	for _, id := range realIDs {
		if seen[id] {
			t.Fatalf("real id %d given twice: %v", id, realIDs)
		}
		seen[id] = true
	}
	svcIDs := map[ServiceKey]uint32{}
	for _, s := range snap.Services {
		svcIDs[s.Key] = s.ID
	}
	if svcIDs[a.Key()] == svcIDs[v6.Key()] {
		t.Fatalf("two services share id %d", svcIDs[a.Key()])
	}

	check := func(what string, snap *Snapshot) {
		t.Helper()
		for k, id := range realIDs {
			rs := btFind(snap, k)
			if len(rs) != 1 {
				t.Fatalf("%s: %d entries for %s", what, len(rs), k)
			}
			if rs[0].ID != id {
				t.Errorf("%s: real %s has id %d, was %d", what, k, rs[0].ID, id)
			}
			if got := snap.Real(id); got != rs[0] {
				t.Errorf("%s: Real(%d) = %v, want the entry of %s", what, id, got, k)
			}
		}
		for k, id := range svcIDs {
			if got := snap.Services[btSvcIdx(t, snap, k)].ID; got != id {
				t.Errorf("%s: service %s has id %d, was %d", what, k, got, id)
			}
		}
	}

	// Reals reordered, weights changed.
	a2 := btSvc("198.18.0.1", 80, MethodDR, "198.18.1.3", "198.18.1.1", "198.18.1.2")
	a2.Reals[1].Weight = 7
	check("reordered reals", btApply(t, b, btCfg(a2, v6)))

	// Services reordered, an unrelated service and real added before them.
	other := btSvc("198.18.0.9", 25, MethodNAT, "198.18.1.9")
	v6b := v6
	v6b.Reals = append([]Real{{Addr: btAddr("2001:db8:1::9"), Weight: 1}}, v6.Reals...)
	snap = btApply(t, b, btCfg(other, v6b, a2))
	check("services reordered and added", snap)
	if id := btReal(t, snap, btRealKey(other, "198.18.1.9")).ID; seen[id] {
		t.Errorf("new real got id %d of an existing real", id)
	}
	if id := snap.Services[btSvcIdx(t, snap, other.Key())].ID; id == svcIDs[a.Key()] || id == svcIDs[v6.Key()] {
		t.Errorf("new service got id %d of an existing service", id)
	}

	// Method and scheduler of a service changed: same ids.
	a3 := a2
	a3.Scheduler, a3.Method = "wlc", MethodNAT
	check("method and scheduler changed", btApply(t, b, btCfg(a3, v6, other)))
}

func TestBalancerRemoveDrain(t *testing.T) {
	b := NewBalancer(2, 64)
	s := btSvc("198.18.0.1", 80, MethodNAT, "198.18.1.1", "198.18.1.2", "198.18.1.3")
	s.OnRemove = RemoveDrain
	all := btCfg(s)
	snap := btApply(t, b, all)
	k2 := btRealKey(s, "198.18.1.2")
	id2 := btReal(t, snap, k2).ID

	less := s
	less.Reals = []Real{s.Reals[0], s.Reals[2]}
	snap = btApply(t, b, Config{Services: []Service{less}, NextHops: all.NextHops})

	r2 := btReal(t, snap, k2)
	if !r2.Removed || r2.ID != id2 {
		t.Fatalf("removed real: Removed=%v ID=%d, want Removed with id %d", r2.Removed, r2.ID, id2)
	}
	if snap.Real(id2) != r2 {
		t.Fatalf("Real(%d) does not find the draining real", id2)
	}
	for _, a := range []string{"198.18.1.1", "198.18.1.3"} {
		if r := btReal(t, snap, btRealKey(s, a)); r.Removed {
			t.Errorf("configured real %s marked Removed", a)
		}
	}
	si := btSvcIdx(t, snap, s.Key())
	if sr := btSchedReal(t, snap, si, id2); sr.Avail {
		t.Fatalf("draining real is Avail in the scheduler: %+v", sr)
	}
	if n := snap.Services[si].Sched.Available(); n != 2 {
		t.Fatalf("Available() = %d, want 2", n)
	}
	for _, sched := range []string{"rr", "wlc", "twos", "mh"} {
		ls := less
		ls.Scheduler = sched
		if sched == "mh" {
			ls.MaglevSize = 251
		}
		snap := btApply(t, b, Config{Services: []Service{ls}, NextHops: all.NextHops})
		si := btSvcIdx(t, snap, s.Key())
		got := btPicks(b, snap, si, 2000)
		if got[id2] != 0 || got[^uint32(0)] != 0 {
			t.Fatalf("%s: picks %v include the draining real %d or failures", sched, got, id2)
		}
		if len(got) != 2 {
			t.Fatalf("%s: picks %v, want both remaining reals", sched, got)
		}
	}
	if d := b.Draining(); len(d) != 1 || d[0] != k2 {
		t.Fatalf("Draining() = %v, want [%s]", d, k2)
	}
	// Replies of its nat sessions are still recognised.
	a, fam := btBytes("198.18.1.2")
	if ri := snap.NATReal(fam, uint8(ProtoTCP), a, 80); ri < 0 || snap.Reals[ri].ID != id2 {
		t.Fatalf("NATReal of the draining nat real = %d", ri)
	}

	// Re-added while draining: same id, no longer removed nor draining.
	snap = btApply(t, b, all)
	if r := btReal(t, snap, k2); r.Removed || r.ID != id2 {
		t.Fatalf("re-added real: Removed=%v ID=%d, want id %d", r.Removed, r.ID, id2)
	}
	if sr := btSchedReal(t, snap, btSvcIdx(t, snap, s.Key()), id2); !sr.Avail {
		t.Fatal("re-added real not Avail")
	}
	if d := b.Draining(); len(d) != 0 {
		t.Fatalf("Draining() after re-adding = %v", d)
	}
}

// TestBalancerRemoveDrainHashSched: a real removed from an sh service with
// RemoveDrain keeps its Weight in the scheduler (Avail false), so the sh
// bucket table, which holds every real with Weight > 0 "so that a health
// flap moves only the flows of the real that flapped", keeps its buckets:
// every new flow hashing there fails (Pick -1, dropped) until Purge. In IPVS
// a deleted destination leaves the list and its buckets are reassigned; a
// removed real never comes back, so it should not keep buckets.
func TestBalancerRemoveDrainHashSched(t *testing.T) {
	b := NewBalancer(2, 64)
	s := btSvc("198.18.0.1", 80, MethodDR, "198.18.1.1", "198.18.1.2", "198.18.1.3")
	s.Scheduler, s.OnRemove = "sh", RemoveDrain
	all := btCfg(s)
	snap := btApply(t, b, all)
	si := btSvcIdx(t, snap, s.Key())
	if got := btPicks(b, snap, si, 3000); got[^uint32(0)] != 0 || len(got) != 3 {
		t.Fatalf("before removal: picks %v", got)
	}
	id2 := btReal(t, snap, btRealKey(s, "198.18.1.2")).ID
	b.Conns().Add(0, id2, 1, 0) // a session keeps it draining

	less := s
	less.Reals = []Real{s.Reals[0], s.Reals[2]}
	snap = btApply(t, b, Config{Services: []Service{less}, NextHops: all.NextHops})
	got := btPicks(b, snap, btSvcIdx(t, snap, s.Key()), 3000)
	if got[id2] != 0 {
		t.Fatalf("sh picked the draining real: %v", got)
	}
	if fails := got[^uint32(0)]; fails != 0 {
		t.Errorf("sh without fallback: %d of 3000 new flows find no real after 198.18.1.2 was removed (draining): %v", fails, got)
	}
}

func TestBalancerRemoveDrop(t *testing.T) {
	b := NewBalancer(2, 64)
	s := btSvc("198.18.0.1", 80, MethodNAT, "198.18.1.1", "198.18.1.2")
	s.OnRemove = RemoveDrop
	all := btCfg(s)
	snap := btApply(t, b, all)
	k2 := btRealKey(s, "198.18.1.2")
	id2 := btReal(t, snap, k2).ID

	less := s
	less.Reals = s.Reals[:1]
	snap = btApply(t, b, Config{Services: []Service{less}, NextHops: all.NextHops})
	if rs := btFind(snap, k2); len(rs) != 0 {
		t.Fatalf("dropped real still in the snapshot: %+v", rs[0])
	}
	if r := snap.Real(id2); r != nil {
		t.Fatalf("Real(%d) of a dropped real = %+v", id2, r)
	}
	if d := b.Draining(); len(d) != 0 {
		t.Fatalf("Draining() = %v, want none", d)
	}
	a, fam := btBytes("198.18.1.2")
	if ri := snap.NATReal(fam, uint8(ProtoTCP), a, 80); ri >= 0 {
		t.Fatalf("NATReal finds the dropped real: %+v", snap.Reals[ri])
	}
	if n := len(snap.Services[0].Sched.Reals()); n != 1 {
		t.Fatalf("scheduler has %d reals, want 1", n)
	}
}

// A whole service removed with RemoveDrain: its reals drain (listed, ids
// kept) even though they have no service to live in.
func TestBalancerRemoveServiceDrains(t *testing.T) {
	b := NewBalancer(2, 64)
	s := btSvc("198.18.0.1", 80, MethodDR, "198.18.1.1")
	keep := btSvc("198.18.0.2", 80, MethodDR, "198.18.1.2")
	snap := btApply(t, b, btCfg(s, keep))
	id := btReal(t, snap, btRealKey(s, "198.18.1.1")).ID
	b.Conns().Add(0, id, 1, 0)
	btApply(t, b, btCfg(keep))
	if d := b.Draining(); len(d) != 1 || d[0] != btRealKey(s, "198.18.1.1") {
		t.Fatalf("Draining() = %v", d)
	}
	if n, err := b.Purge(); n != 0 || err != nil {
		t.Fatalf("Purge with sessions = %d, %v", n, err)
	}
	// Its id is not reused while it drains.
	snap = btApply(t, b, btCfg(keep, btSvc("198.18.0.3", 80, MethodDR, "198.18.1.3")))
	if got := btReal(t, snap, btRealKey(btSvc("198.18.0.3", 80, MethodDR), "198.18.1.3")).ID; got == id {
		t.Fatalf("draining real's id %d reused", id)
	}
	b.Conns().Add(0, id, -1, 0)
	if n, err := b.Purge(); n != 1 || err != nil {
		t.Fatalf("Purge without sessions = %d, %v", n, err)
	}
}

func TestBalancerPurge(t *testing.T) {
	b := NewBalancer(2, 64)
	s := btSvc("198.18.0.1", 80, MethodDR, "198.18.1.1", "198.18.1.2", "198.18.1.3")
	all := btCfg(s)
	snap := btApply(t, b, all)
	k2 := btRealKey(s, "198.18.1.2")
	id2 := btReal(t, snap, k2).ID

	if n, err := b.Purge(); n != 0 || err != nil {
		t.Fatalf("Purge with nothing draining = %d, %v", n, err)
	}
	if b.Load() != snap {
		t.Fatal("Purge with nothing to do published a snapshot")
	}

	less := s
	less.Reals = []Real{s.Reals[0], s.Reals[2]}
	lessCfg := Config{Services: []Service{less}, NextHops: all.NextHops}
	// Sessions on two workers: one active on worker 0, two inactive on 1.
	b.Conns().Add(0, id2, 1, 0)
	b.Conns().Add(1, id2, 0, 2)
	btApply(t, b, lessCfg)

	steps := []struct {
		worker  int
		da, di  int32
		dropped int
	}{
		{0, 0, 0, 0},
		{0, -1, 0, 0}, // inactive sessions remain
		{1, 0, -1, 0},
		{1, 0, -1, 1}, // none left
	}
	for i, st := range steps {
		b.Conns().Add(st.worker, id2, st.da, st.di)
		before := b.Load()
		n, err := b.Purge()
		if err != nil || n != st.dropped {
			t.Fatalf("step %d: Purge = %d, %v; want %d", i, n, err, st.dropped)
		}
		after := b.Load()
		if n == 0 {
			if after != before {
				t.Fatalf("step %d: Purge that dropped nothing published gen %d", i, after.Gen)
			}
			if r := after.Real(id2); r == nil || !r.Removed {
				t.Fatalf("step %d: draining real gone early: %+v", i, r)
			}
			if d := b.Draining(); len(d) != 1 {
				t.Fatalf("step %d: Draining() = %v", i, d)
			}
			continue
		}
		if after.Gen <= before.Gen {
			t.Fatalf("step %d: Purge published gen %d after %d", i, after.Gen, before.Gen)
		}
		if r := after.Real(id2); r != nil {
			t.Fatalf("step %d: purged real still there: %+v", i, r)
		}
		if rs := btFind(after, k2); len(rs) != 0 {
			t.Fatalf("step %d: purged real still in Reals", i)
		}
		if d := b.Draining(); len(d) != 0 {
			t.Fatalf("step %d: Draining() = %v", i, d)
		}
		for _, a := range []string{"198.18.1.1", "198.18.1.3"} {
			if r := btReal(t, after, btRealKey(s, a)); r.Removed {
				t.Fatalf("step %d: configured real %s removed", i, a)
			}
		}
	}

	// The id is free again: the next new real takes it.
	more := less
	more.Reals = append(slices.Clone(less.Reals), Real{Addr: btAddr("198.18.1.4"), Weight: 1})
	cfg := btCfg(more)
	snap = btApply(t, b, cfg)
	r4 := btReal(t, snap, btRealKey(s, "198.18.1.4"))
	if r4.ID != id2 {
		t.Fatalf("new real got id %d, want the purged id %d", r4.ID, id2)
	}
	if snap.Real(id2) != r4 || r4.Removed {
		t.Fatalf("Real(%d) = %+v, want the new real", id2, snap.Real(id2))
	}
}

func TestBalancerTooManyReals(t *testing.T) {
	b := NewBalancer(1, 3)
	s := btSvc("198.18.0.1", 80, MethodDR, "198.18.1.1", "198.18.1.2", "198.18.1.3")
	snap := btApply(t, b, btCfg(s))
	// Four configured reals (the fourth in another service).
	four := btCfg(s, btSvc("198.18.0.2", 80, MethodDR, "198.18.1.4"))
	if err := b.Apply(four); !errors.Is(err, ErrTooManyReals) {
		t.Fatalf("4 reals with maxReals 3: err = %v, want ErrTooManyReals", err)
	}
	if b.Load() != snap {
		t.Fatal("failed Apply replaced the snapshot")
	}
	id3 := btReal(t, snap, btRealKey(s, "198.18.1.3")).ID
	b.Conns().Add(0, id3, 1, 0)

	// 198.18.1.3 drains, so 198.18.1.4 would be the fourth.
	swap := btSvc("198.18.0.1", 80, MethodDR, "198.18.1.1", "198.18.1.2", "198.18.1.4")
	if err := b.Apply(btCfg(swap)); !errors.Is(err, ErrTooManyReals) {
		t.Fatalf("3 configured + 1 draining with maxReals 3: err = %v, want ErrTooManyReals", err)
	}
	if b.Load() != snap {
		t.Fatal("failed Apply replaced the snapshot")
	}
	b.Conns().Add(0, id3, -1, 0)
	// Removing it again now (it has no sessions) and purging makes room.
	two := btSvc("198.18.0.1", 80, MethodDR, "198.18.1.1", "198.18.1.2")
	btApply(t, b, btCfg(two))
	if n, err := b.Purge(); n != 1 || err != nil {
		t.Fatalf("Purge = %d, %v", n, err)
	}
	snap = btApply(t, b, btCfg(swap))
	if got := btReal(t, snap, btRealKey(s, "198.18.1.4")).ID; got != id3 {
		t.Fatalf("198.18.1.4 got id %d, want reused %d", got, id3)
	}
}

// TestBalancerTooManyRealsLeaksIDs: a config rejected with ErrTooManyReals
// keeps the ids build handed to its reals before it ran out (they are only
// released by the next successful Apply or Purge), so the next config, well
// within the limit but with other reals, is rejected too.
func TestBalancerTooManyRealsLeaksIDs(t *testing.T) {
	b := NewBalancer(1, 3)
	four := btCfg(btSvc("198.18.0.1", 80, MethodDR, "198.18.1.1", "198.18.1.2"),
		btSvc("198.18.0.2", 80, MethodDR, "198.18.1.3", "198.18.1.4"))
	if err := b.Apply(four); !errors.Is(err, ErrTooManyReals) {
		t.Fatalf("4 reals with maxReals 3: err = %v, want ErrTooManyReals", err)
	}
	if len(b.Load().Services) != 0 {
		t.Fatal("failed Apply published a snapshot")
	}
	three := btCfg(btSvc("198.18.0.3", 80, MethodDR, "198.18.1.5", "198.18.1.6", "198.18.1.7"))
	if err := b.Apply(three); err != nil {
		t.Fatalf("3 reals with maxReals 3 after a rejected config: %v", err)
	}
}

// TestBalancerFailedApplyChangesNothing: Apply documents "On error nothing
// changes", but an error from build (here an mh table size that is not a
// prime, which Validate does not check) comes after Apply has already put
// the reals missing from the rejected config into b.draining. The real is
// still configured, yet Draining() lists it, and the next rebuild (Purge)
// puts it into the snapshot twice.
func TestBalancerFailedApplyChangesNothing(t *testing.T) {
	b := NewBalancer(2, 64)
	s := btSvc("198.18.0.1", 80, MethodDR, "198.18.1.1", "198.18.1.2", "198.18.1.3")
	all := btCfg(s)
	snap := btApply(t, b, all)
	k2, k3 := btRealKey(s, "198.18.1.2"), btRealKey(s, "198.18.1.3")
	b.Conns().Add(0, btReal(t, snap, k2).ID, 1, 0) // 198.18.1.2 has a session

	// 198.18.1.3 drains for real (no sessions).
	two := btSvc("198.18.0.1", 80, MethodDR, "198.18.1.1", "198.18.1.2")
	snap = btApply(t, b, Config{Services: []Service{two}, NextHops: all.NextHops})

	// Rejected: mh with table size 100.
	bad := btSvc("198.18.0.1", 80, MethodDR, "198.18.1.1")
	bad.Scheduler, bad.MaglevSize = "mh", 100
	if err := b.Apply(Config{Services: []Service{bad}, NextHops: all.NextHops}); err == nil {
		t.Fatal("mh with table size 100 accepted")
	}
	if b.Load() != snap {
		t.Fatal("failed Apply replaced the snapshot")
	}
	if d := b.Draining(); len(d) != 1 || d[0] != k3 {
		t.Errorf("Draining() after a failed Apply = %v, want only [%s]", d, k3)
	}
	if n, err := b.Purge(); n != 1 || err != nil {
		t.Fatalf("Purge = %d, %v; want 1 (198.18.1.3)", n, err)
	}
	snap = b.Load()
	if rs := btFind(snap, k2); len(rs) != 1 || rs[0].Removed {
		t.Errorf("configured real %s after failed Apply + Purge: %d entries (%v), want 1 not removed", k2, len(rs), rs)
	}
	if got := b.Config(); len(got.Services) != 1 || len(got.Services[0].Reals) != 2 {
		t.Errorf("Config() = %+v, want the last good config", got)
	}
}

// TestBalancerConfigIsACopy: Apply keeps the caller's Services slice (and
// Config returns it), so editing the config obtained from Config() in place
// and applying it rewrites the Balancer's record of the previous config: the
// removed real is then not seen as removed and vanishes instead of draining.
func TestBalancerConfigIsACopy(t *testing.T) {
	b := NewBalancer(2, 64)
	s := btSvc("198.18.0.1", 80, MethodDR, "198.18.1.1", "198.18.1.2")
	s.OnRemove = RemoveDrain
	snap := btApply(t, b, btCfg(s))
	k2 := btRealKey(s, "198.18.1.2")
	id2 := btReal(t, snap, k2).ID
	b.Conns().Add(0, id2, 1, 0)

	c := b.Config()
	c.Services[0].Reals = c.Services[0].Reals[:1] // ipvsadm -d, edited in place
	snap = btApply(t, b, c)
	if r := snap.Real(id2); r == nil || !r.Removed || r.Key != k2 {
		t.Errorf("real removed through an edited Config() is not draining: Real(%d) = %+v", id2, r)
	}
	if d := b.Draining(); len(d) != 1 || d[0] != k2 {
		t.Errorf("Draining() = %v, want [%s]", d, k2)
	}
}

// TestBalancerDroppedIDNotReused: a real removed with RemoveDrop leaves the
// snapshot at once, but its sessions live on in the workers' tables (they
// are rescheduled on their next packet, when Snapshot.Real(id) is nil). Its
// id must not be handed to a new real while ConnCounters still counts
// sessions for it: the new real would inherit their counts (skewing lc-family
// schedulers), and a stale session's Real(id) would find the new real and be
// forwarded to it instead of being rescheduled.
func TestBalancerDroppedIDNotReused(t *testing.T) {
	b := NewBalancer(2, 64)
	s := btSvc("198.18.0.1", 80, MethodDR, "198.18.1.1", "198.18.1.2")
	s.OnRemove = RemoveDrop
	snap := btApply(t, b, btCfg(s))
	id2 := btReal(t, snap, btRealKey(s, "198.18.1.2")).ID
	b.Conns().Add(1, id2, 2, 1)

	one := s
	one.Reals = s.Reals[:1]
	snap = btApply(t, b, btCfg(one))
	if snap.Real(id2) != nil {
		t.Fatal("dropped real still in the snapshot")
	}
	other := btSvc("198.18.0.2", 443, MethodDR, "198.18.1.5")
	snap = btApply(t, b, btCfg(one, other))
	r5 := btReal(t, snap, btRealKey(other, "198.18.1.5"))
	if r5.ID == id2 {
		t.Errorf("new real 198.18.1.5 got id %d of the dropped real, which still counts sessions", id2)
	}
	if a, i := b.Conns().Sum(r5.ID); a != 0 || i != 0 {
		t.Errorf("new real starts with %d active, %d inactive connections", a, i)
	}
}

func TestBalancerSlowStartUpSince(t *testing.T) {
	b := NewBalancer(1, 64)
	var clock int64 = 1_000_000_000_000
	b.now = func() time.Time { return time.Unix(0, clock) }

	s := btSvc("198.18.0.1", 80, MethodDR, "198.18.1.1", "198.18.1.2")
	s.Scheduler, s.SlowStart = "wlc", 10*time.Second
	all := []string{"198.18.1.1", "198.18.1.2", "198.18.1.3"}
	hops := btHops([]Service{btSvc("198.18.0.1", 80, MethodDR, all...)})
	snap := btApply(t, b, Config{Services: []Service{s}, NextHops: hops})
	t0 := clock
	upSince := func(snap *Snapshot, addr string) int64 {
		t.Helper()
		si := btSvcIdx(t, snap, s.Key())
		return btSchedReal(t, snap, si, btReal(t, snap, btRealKey(s, addr)).ID).UpSince
	}
	for _, a := range all[:2] {
		if u := upSince(snap, a); u != t0 {
			t.Fatalf("%s: UpSince %d, want %d (first Apply)", a, u, t0)
		}
	}

	// A real added later ramps from its own time.
	clock += int64(5 * time.Second)
	t1 := clock
	s3 := s
	s3.Reals = append(slices.Clone(s.Reals), Real{Addr: btAddr("198.18.1.3"), Weight: 1})
	snap = btApply(t, b, Config{Services: []Service{s3}, NextHops: hops})
	if u1, u3 := upSince(snap, "198.18.1.1"), upSince(snap, "198.18.1.3"); u1 != t0 || u3 != t1 || u3 <= u1 {
		t.Fatalf("UpSince: existing %d (want %d), added %d (want %d)", u1, t0, u3, t1)
	}

	// An unrelated change keeps every UpSince.
	clock += int64(time.Second)
	s3w := s3
	s3w.Reals = slices.Clone(s3.Reals)
	s3w.Reals[1].Weight = 5
	snap = btApply(t, b, Config{Services: []Service{s3w}, NextHops: hops})
	if u1, u2, u3 := upSince(snap, "198.18.1.1"), upSince(snap, "198.18.1.2"), upSince(snap, "198.18.1.3"); u1 != t0 || u2 != t0 || u3 != t1 {
		t.Fatalf("weight change moved UpSince: %d %d %d, want %d %d %d", u1, u2, u3, t0, t0, t1)
	}

	// 198.18.1.1 goes down, then up again: a new UpSince.
	clock += int64(time.Second)
	down := s3
	down.Reals = slices.Clone(s3.Reals)
	down.Reals[0].State = RealDown
	snap = btApply(t, b, Config{Services: []Service{down}, NextHops: hops})
	si := btSvcIdx(t, snap, s.Key())
	if sr := btSchedReal(t, snap, si, btReal(t, snap, btRealKey(s, "198.18.1.1")).ID); sr.Avail {
		t.Fatal("down real is Avail")
	}
	clock += int64(3 * time.Second)
	t3 := clock
	snap = btApply(t, b, Config{Services: []Service{s3}, NextHops: hops})
	if u := upSince(snap, "198.18.1.1"); u != t3 {
		t.Fatalf("real up again: UpSince %d, want %d", u, t3)
	}
	if u := upSince(snap, "198.18.1.2"); u != t0 {
		t.Fatalf("198.18.1.2 UpSince moved to %d", u)
	}

	// Removed (draining) and re-added: ramps again.
	clock += int64(time.Second)
	btApply(t, b, Config{Services: []Service{s}, NextHops: hops})
	clock += int64(time.Second)
	t5 := clock
	snap = btApply(t, b, Config{Services: []Service{s3}, NextHops: hops})
	if u := upSince(snap, "198.18.1.3"); u != t5 {
		t.Fatalf("re-added real: UpSince %d, want %d", u, t5)
	}
}

func TestBalancerNextHops(t *testing.T) {
	b := NewBalancer(1, 64)
	s := btSvc("198.18.0.1", 80, MethodDR, "198.18.1.1", "198.18.1.2")
	v6 := btSvc("2001:db8::1", 80, MethodDR, "2001:db8:1::1", "2001:db8:1::2")
	hop1 := NextHop{MAC: [6]byte{0x02, 0xaa, 0xbb, 0xcc, 0xdd, 0x01}, Port: 3}
	hop6 := NextHop{MAC: [6]byte{0x02, 0xaa, 0xbb, 0xcc, 0xdd, 0x06}, Port: 7}
	cfg := Config{Services: []Service{s, v6}, NextHops: map[netip.Addr]NextHop{
		btAddr("198.18.1.1"):    hop1,
		btAddr("2001:db8:1::2"): hop6,
	}}
	snap := btApply(t, b, cfg)
	check := func(svc Service, addr string, want NextHop, ok bool) {
		t.Helper()
		r := btReal(t, snap, btRealKey(svc, addr))
		if r.NextHop.OK != ok {
			t.Fatalf("%s: NextHop.OK = %v, want %v", addr, r.NextHop.OK, ok)
		}
		if ok && (r.NextHop.MAC != want.MAC || r.NextHop.Port != want.Port) {
			t.Fatalf("%s: NextHop = %+v, want %+v", addr, r.NextHop, want)
		}
		sr := btSchedReal(t, snap, btSvcIdx(t, snap, svc.Key()), r.ID)
		if sr.Avail != ok {
			t.Fatalf("%s: Avail = %v, want %v", addr, sr.Avail, ok)
		}
	}
	check(s, "198.18.1.1", hop1, true)
	check(s, "198.18.1.2", NextHop{}, false)
	check(v6, "2001:db8:1::1", NextHop{}, false)
	check(v6, "2001:db8:1::2", hop6, true)

	idUnresolved := btReal(t, snap, btRealKey(s, "198.18.1.2")).ID
	if got := btPicks(b, snap, btSvcIdx(t, snap, s.Key()), 500); got[idUnresolved] != 0 || len(got) != 1 {
		t.Fatalf("picks %v include the unresolved real %d", got, idUnresolved)
	}

	// Resolved later: now available with its hop.
	hop2 := NextHop{MAC: [6]byte{0x02, 0, 0, 0, 0, 0x02}, Port: 2}
	cfg.NextHops = map[netip.Addr]NextHop{btAddr("198.18.1.1"): hop1, btAddr("198.18.1.2"): hop2, btAddr("2001:db8:1::2"): hop6}
	snap = btApply(t, b, cfg)
	check(s, "198.18.1.2", hop2, true)
	if r := btReal(t, snap, btRealKey(s, "198.18.1.2")); r.ID != idUnresolved {
		t.Fatalf("resolving the hop changed the id %d -> %d", idUnresolved, r.ID)
	}

	// A resolved hop does not make a down real available.
	down := s
	down.Reals = slices.Clone(s.Reals)
	down.Reals[0].State = RealDown
	cfg.Services = []Service{down, v6}
	snap = btApply(t, b, cfg)
	r := btReal(t, snap, btRealKey(s, "198.18.1.1"))
	if !r.NextHop.OK || r.State != RealDown {
		t.Fatalf("down real: %+v", r)
	}
	if sr := btSchedReal(t, snap, btSvcIdx(t, snap, s.Key()), r.ID); sr.Avail {
		t.Fatal("down real with a next hop is Avail")
	}
}

func TestBalancerConcurrentApplyLoad(t *testing.T) {
	b := NewBalancer(2, 256)
	mk := func(i int) Config {
		var svcs []Service
		for sv := range 3 {
			s := Service{Proto: ProtoTCP, VIP: netip.AddrFrom4([4]byte{198, 18, 0, byte(1 + sv)}), Port: 80,
				Scheduler: []string{"rr", "wlc", "sh"}[sv], Method: []Method{MethodDR, MethodNAT, MethodDR}[sv]}
			if i%3 == 0 {
				s.OnRemove = RemoveDrop
			}
			n := 2 + (i+sv)%5
			for r := range n {
				s.Reals = append(s.Reals, Real{Addr: netip.AddrFrom4([4]byte{198, 18, byte(1 + sv), byte(1 + (r+i)%8)}), Weight: 1 + r})
			}
			svcs = append(svcs, s)
		}
		v6 := btSvc("2001:db8::1", 443, MethodNAT, "2001:db8:1::1")
		if i%2 == 0 {
			v6.Reals = append(v6.Reals, Real{Addr: btAddr("2001:db8:1::2"), Weight: 2})
		}
		return btCfg(append(svcs, v6)...)
	}
	// Built before the race starts: Apply writes defaults into the
	// caller's slices, so each config is used by the writer only.
	cfgs := make([]Config, 200)
	for i := range cfgs {
		cfgs[i] = mk(i)
	}

	var done atomic.Bool
	var wg sync.WaitGroup
	errs := make(chan error, 3)
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer done.Store(true)
		for i, c := range cfgs {
			if err := b.Apply(c); err != nil {
				errs <- fmt.Errorf("apply %d: %w", i, err)
				return
			}
			if i%10 == 0 {
				if _, err := b.Purge(); err != nil {
					errs <- fmt.Errorf("purge %d: %w", i, err)
					return
				}
			}
		}
	}()
	reader := func() {
		defer wg.Done()
		var lastGen uint64
		for loads := 0; !done.Load() || loads < 10; loads++ {
			snap := b.Load()
			if snap.Gen < lastGen {
				errs <- fmt.Errorf("gen went back %d -> %d", lastGen, snap.Gen)
				return
			}
			lastGen = snap.Gen
			if err := btWalk(snap); err != nil {
				errs <- fmt.Errorf("gen %d: %w", snap.Gen, err)
				return
			}
		}
	}
	wg.Add(2)
	go reader()
	go reader()
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if err := btWalk(b.Load()); err != nil {
		t.Error(err)
	}
}

// btWalk checks a snapshot's internal consistency through its lookups.
func btWalk(snap *Snapshot) error {
	for si := range snap.Services {
		sv := &snap.Services[si]
		if got := snap.Classify(sv.Family, sv.Proto, sv.VIP[:addrLen(sv.Family)], sv.Port); got != int32(si) {
			return fmt.Errorf("Classify(%s) = %d, want %d", sv.Key, got, si)
		}
		if !snap.IsVIP(sv.Family, sv.VIP[:addrLen(sv.Family)]) {
			return fmt.Errorf("IsVIP(%s) false", sv.Key)
		}
		srs := sv.Sched.Reals()
		if len(srs) != len(sv.RealIdx) {
			return fmt.Errorf("%s: %d sched reals, %d RealIdx", sv.Key, len(srs), len(sv.RealIdx))
		}
		for i, sr := range srs {
			re := &snap.Reals[sv.RealIdx[i]]
			if re.ID != sr.ID || re.Svc != int32(si) || re.Key.Service != sv.Key {
				return fmt.Errorf("%s: RealIdx[%d] -> %+v, sched id %d", sv.Key, i, re.Key, sr.ID)
			}
			if sr.Avail && (re.Removed || re.State != RealUp || !re.NextHop.OK) {
				return fmt.Errorf("%s: unusable real %s is Avail", sv.Key, re.Key)
			}
		}
	}
	for i := range snap.Reals {
		r := &snap.Reals[i]
		if snap.Real(r.ID) != r {
			return fmt.Errorf("Real(%d) does not find %s", r.ID, r.Key)
		}
	}
	return nil
}
