package lb

import (
	"math/rand/v2"
	"testing"
	"time"
)

func dstFlow(r *rand.Rand, d byte) *Flow {
	f := testFlow(r)
	f.Dst = [16]byte{203, 0, 113, d}
	return &f
}

func TestSchedLBLCLocality(t *testing.T) {
	const t0 = int64(1_700_000_000) * int64(time.Second)
	r := rand.New(rand.NewPCG(7, 7))
	for _, kind := range []SchedKind{SchedLBLC, SchedLBLCR} {
		rs := testReals(100, 100, 100, 100)
		s := mustSched(t, kind, 0, rs, 0, 0)
		conns := NewConnCounters(2, 4)
		w := NewWorkerSched(0, conns, 1)
		w.Reset(3)
		pick := func(d byte, now int64) int {
			i := byID(s, w.Pick(2, s, dstFlow(r, d), now))
			if i >= 0 {
				conns.Add(0, uint32(i), 1, 0)
			}
			return i
		}
		// Same destination, many clients: one real, up to its weight.
		home := pick(1, t0)
		for n := range 99 {
			if got := pick(1, t0+int64(n)); got != home {
				t.Fatalf("%s: destination moved from %d to %d at %d active", kind, home, got, n+1)
			}
		}
		// Other destinations go to the least loaded reals.
		seen := map[int]bool{}
		for d := byte(2); d < 5; d++ {
			seen[pick(d, t0)] = true
		}
		if len(seen) != 3 || seen[home] {
			t.Errorf("%s: new destinations went to %v (home %d)", kind, seen, home)
		}
		// 100 active = weight: not yet overloaded.
		if got := pick(1, t0); got != home {
			t.Fatalf("%s: moved at active == weight", kind)
		}
		// 101 active > weight and others below half their weight: move.
		moved := pick(1, t0)
		if moved == home {
			t.Fatalf("%s: overloaded real %d kept the destination", kind, home)
		}
		// The others fill up to half their weight: overloaded but nowhere
		// better, so the destination stays (lblc: on the new real).
		for id := range uint32(4) {
			if a, _ := conns.Sum(id); a < 50 {
				conns.Add(1, id, int32(50-a), 0)
			}
		}
		conns.Add(1, uint32(moved), 200, 0)
		stay := pick(1, t0)
		if kind == SchedLBLC && stay != moved {
			t.Errorf("lblc: moved again to %d although no real is below half load", stay)
		}
		if kind == SchedLBLCR && stay != home && stay != moved {
			t.Errorf("lblcr: went to %d outside the set {%d, %d}", stay, home, moved)
		}
		// Reset forgets the locality.
		w.Reset(3)
		if e := w.locFind(locKey(2, &dstFlow(r, 1).Dst), t0); e != nil {
			t.Errorf("%s: entry survived Reset", kind)
		}
	}
}

// TestSchedLBLCExpiry: an idle entry lives 24 h (IPVS's default), then the
// destination is scheduled afresh.
func TestSchedLBLCExpiry(t *testing.T) {
	const t0 = int64(1_700_000_000) * int64(time.Second)
	r := rand.New(rand.NewPCG(8, 8))
	for _, kind := range []SchedKind{SchedLBLC, SchedLBLCR} {
		s := mustSched(t, kind, 0, testReals(100, 100), 0, 0)
		conns := NewConnCounters(1, 4)
		w := NewWorkerSched(0, conns, 1)
		w.Reset(1)
		home := byID(s, w.Pick(0, s, dstFlow(r, 9), t0))
		conns.Add(0, uint32(home), 30, 0) // more loaded, not overloaded
		steps := []struct {
			now  int64
			keep bool
		}{
			{t0 + int64(time.Hour), true},                    // refreshed
			{t0 + int64(time.Hour) + locExpire, true},        // exactly 24 h idle
			{t0 + int64(time.Hour) + 2*locExpire + 1, false}, // expired
			{t0 + int64(time.Hour) + 2*locExpire + 2, false}, // new entry sticks
		}
		for k, st := range steps {
			got := byID(s, w.Pick(0, s, dstFlow(r, 9), st.now))
			if (got == home) != st.keep {
				t.Errorf("%s step %d: picked %d, home %d, want kept=%v", kind, k, got, home, st.keep)
			}
		}
	}
}

// TestSchedLBLCUnavailable: when the remembered real is no longer available
// the destination is rescheduled at once.
func TestSchedLBLCUnavailable(t *testing.T) {
	r := rand.New(rand.NewPCG(9, 9))
	for _, kind := range []SchedKind{SchedLBLC, SchedLBLCR} {
		rs := testReals(5, 5, 5)
		s := mustSched(t, kind, 0, rs, 0, 0)
		w := NewWorkerSched(0, nil, 1)
		w.Reset(1)
		home := byID(s, w.Pick(0, s, dstFlow(r, 1), 1))
		rs[home].Avail = false
		s2 := mustSched(t, kind, 0, rs, 0, 0) // same order: indices unchanged
		for range 10 {
			if got := byID(s2, w.Pick(0, s2, dstFlow(r, 1), 2)); got == home || got < 0 {
				t.Fatalf("%s: picked %d (home %d unavailable)", kind, got, home)
			}
		}
	}
}

// TestSchedLBLCRSet: an lblcr set grows on overload, serves its least loaded
// member, and after 24 h without change drops its most loaded member.
func TestSchedLBLCRSet(t *testing.T) {
	const t0 = int64(1_700_000_000) * int64(time.Second)
	r := rand.New(rand.NewPCG(10, 10))
	s := mustSched(t, SchedLBLCR, 0, testReals(10, 10, 10, 10, 10, 10), 0, 0)
	conns := NewConnCounters(1, 8)
	w := NewWorkerSched(0, conns, 1)
	w.Reset(1)
	key := locKey(0, &dstFlow(r, 1).Dst)
	members := map[int]bool{}
	for step := range 5 {
		i := byID(s, w.Pick(0, s, dstFlow(r, 1), t0))
		members[i] = true
		conns.Add(0, uint32(i), 11, 0) // overloaded: > weight, others idle
		e := w.locFind(key, t0)
		if e == nil || int(e.n) != min(step+1, locSetMax) {
			t.Fatalf("step %d: set %+v", step, e)
		}
	}
	if len(members) != 5 {
		t.Errorf("picked %v, want 5 distinct reals", members)
	}
	// Unchanged for more than 24 h with several members: shrinks by one
	// per use.
	e := w.locFind(key, t0)
	conns.Add(0, uint32(s.Reals()[e.set[0]].ID), -11, 0) // member 0 least loaded
	want := e.set[0]
	if got := w.Pick(0, s, dstFlow(r, 1), t0+int64(12*time.Hour)); got != int(want) || e.n != locSetMax {
		t.Fatalf("set min: picked %d, want %d (set of %d)", got, want, e.n)
	}
	later := t0 + int64(24*time.Hour) + 1
	if got := w.Pick(0, s, dstFlow(r, 1), later); got != int(want) {
		t.Errorf("set min: picked %d, want %d", got, want)
	}
	if e.n != locSetMax-1 {
		t.Errorf("set of %d after expiry, want %d", e.n, locSetMax-1)
	}
}
