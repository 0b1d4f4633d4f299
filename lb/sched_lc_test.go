package lb

import (
	"math"
	"testing"
	"time"
)

// pickID picks once and returns the real's id (-1: none).
func pickID(w *WorkerSched, s *Sched, now int64) int {
	return byID(s, w.Pick(0, s, &Flow{}, now))
}

func TestSchedLCFamilyRules(t *testing.T) {
	type load struct{ act, inact int32 }
	cases := []struct {
		name    string
		weights []int32
		loads   []load
		want    map[SchedKind]int
	}{
		{
			// overheads 512, 556, 600; per weight 512, 278, 200; sed 3, 1, .33
			name: "mixed", weights: []int32{1, 2, 3},
			loads: []load{{2, 0}, {1, 300}, {0, 600}},
			want:  map[SchedKind]int{SchedLC: 0, SchedWLC: 2, SchedSED: 2, SchedNQ: 2},
		},
		{
			// inactive counts 1/256 of active: 10 inactive < 1 active
			name: "inactive", weights: []int32{1, 1},
			loads: []load{{0, 10}, {1, 0}},
			want:  map[SchedKind]int{SchedLC: 0, SchedWLC: 0, SchedSED: 0, SchedNQ: 0},
		},
		{
			// sed: 1/1 vs 2/10 -> 1; nq: 0 is idle -> 0
			name: "nq idle", weights: []int32{1, 10},
			loads: []load{{0, 0}, {1, 0}},
			want:  map[SchedKind]int{SchedLC: 0, SchedWLC: 0, SchedSED: 1, SchedNQ: 0},
		},
		{
			// sed ignores inactive: (3+1)/4=1 vs (1+1)/1=2 -> 0; wlc: 1024/4=256 vs 256/1 -> tie
			name: "sed active only", weights: []int32{4, 1},
			loads: []load{{3, 100}, {1, 0}},
			want:  map[SchedKind]int{SchedLC: 1, SchedSED: 0, SchedNQ: 0},
		},
	}
	for _, c := range cases {
		rs := testReals(c.weights...)
		conns := NewConnCounters(3, 8)
		for i, l := range c.loads {
			// Spread the counts over workers: pickers must sum them.
			conns.Add(i%3, uint32(i), l.act, 0)
			conns.Add((i+1)%3, uint32(i), 0, l.inact)
		}
		for k, want := range c.want {
			s := mustSched(t, k, 0, rs, 0, 0)
			for worker := range 3 { // the tie-break rotation must not matter
				w := NewWorkerSched(worker, conns, 1)
				w.Reset(1)
				for range 5 {
					if got := pickID(w, s, 0); got != want {
						t.Errorf("%s %s worker %d: picked %d, want %d", c.name, k, worker, got, want)
					}
				}
			}
		}
	}
}

// TestSchedLCTiesRotate: with equal counts, consecutive picks of one worker
// spread over the reals (gvs deviation from IPVS's first-in-list).
func TestSchedLCTiesRotate(t *testing.T) {
	for _, k := range []SchedKind{SchedLC, SchedWLC, SchedSED, SchedNQ} {
		s := mustSched(t, k, 0, testReals(1, 1, 1, 1), 0, 0)
		w := NewWorkerSched(0, NewConnCounters(1, 4), 1)
		w.Reset(1)
		got := countPicks(t, w, s, 400, 0, nil, 0)
		for id := range uint32(4) {
			if got[id] != 100 {
				t.Errorf("%s: ties %v", k, got)
				break
			}
		}
	}
}

// TestSchedWLCRatios: with connections that never close, wlc keeps
// active/weight equal, so picks follow weights within 1%, with one worker
// and with two workers sharing the counters.
func TestSchedWLCRatios(t *testing.T) {
	weights := []int32{1, 2, 3, 5, 10, 37, 100}
	want := map[uint32]float64{}
	for i, x := range weights {
		want[uint32(i)] = float64(x)
	}
	rs := testReals(weights...)
	for _, kind := range []SchedKind{SchedWLC, SchedSED} {
		s := mustSched(t, kind, 0, rs, 0, 0)
		conns := NewConnCounters(1, 8)
		w := NewWorkerSched(0, conns, 1)
		w.Reset(1)
		checkShares(t, kind.String(), countPicks(t, w, s, 1_000_000, 0, conns, 0), want, 0.01)

		conns = NewConnCounters(2, 8)
		ws := []*WorkerSched{NewWorkerSched(0, conns, 1), NewWorkerSched(1, conns, 2)}
		ws[0].Reset(1)
		ws[1].Reset(1)
		got := map[uint32]int{}
		for n := range 1_000_000 {
			wk := n & 1
			i := ws[wk].Pick(0, s, &Flow{}, 0)
			id := s.Reals()[i].ID
			conns.Add(wk, id, 1, 0)
			got[id]++
		}
		checkShares(t, kind.String()+" 2 workers", got, want, 0.01)
	}
}

func TestSchedFO(t *testing.T) {
	rs := testReals(3, 7, 7, 5, 0)
	rs[2].Avail = false
	s := mustSched(t, SchedFO, 0, rs, 0, 0)
	w := NewWorkerSched(0, nil, 1)
	w.Reset(1)
	for range 10 {
		if got := pickID(w, s, 0); got != 1 {
			t.Fatalf("fo picked %d, want 1", got)
		}
	}
	// Equal highest weights: the same real whatever the config order.
	rs = testReals(9, 9, 9, 1)
	s1 := mustSched(t, SchedFO, 0, rs, 0, 0)
	a := byID(s1, w.Pick(0, s1, &Flow{}, 0))
	rs[0], rs[2] = rs[2], rs[0]
	s2 := mustSched(t, SchedFO, 0, rs, 0, 0)
	if b := byID(s2, w.Pick(0, s2, &Flow{}, 0)); a != b || a == 3 {
		t.Errorf("fo tie: %d vs %d", a, b)
	}
}

func TestSchedOVF(t *testing.T) {
	rs := testReals(10, 5, 2, 20)
	rs[3].Avail = false
	s := mustSched(t, SchedOVF, 0, rs, 0, 0)
	conns := NewConnCounters(2, 4)
	w := NewWorkerSched(0, conns, 1)
	w.Reset(1)
	steps := []struct {
		id   uint32
		act  int32
		want int
	}{
		{0, 0, 0},
		{0, 10, 0}, // active == weight still qualifies (IPVS: skip active > weight)
		{0, 1, 1},  // 11 > 10: overflow to the next highest weight
		{1, 5, 1},
		{1, 1, 2},
		{2, 3, -1}, // all over their weights
		{1, -6, 1}, // a connection of 1 closed (on the other worker)
	}
	for k, st := range steps {
		conns.Add(k&1, st.id, st.act, 0)
		if got := pickID(w, s, 0); got != st.want {
			t.Errorf("step %d: picked %d, want %d", k, got, st.want)
		}
	}
}

func TestSchedTwoS(t *testing.T) {
	rs := testReals(1, 2, 3, 4, 100, 0)
	rs[4].Avail = false
	s := mustSched(t, SchedTwoS, 0, rs, 0, 0)
	// Equal (zero) load: the first draw wins, so picks follow weights.
	w := NewWorkerSched(0, NewConnCounters(1, 8), 42)
	w.Reset(1)
	got := countPicks(t, w, s, 200_000, 0, nil, 0)
	checkShares(t, "twos", got, map[uint32]float64{0: 1, 1: 2, 2: 3, 3: 4}, 0.05)

	// With load, the less loaded per weight of the two wins: a heavily
	// loaded real is picked only when drawn twice.
	conns := NewConnCounters(1, 8)
	conns.Add(0, 3, 1000, 0)
	w = NewWorkerSched(0, conns, 43)
	w.Reset(1)
	got = countPicks(t, w, s, 100_000, 0, nil, 0)
	share := float64(got[3]) / 100_000
	if want := 0.4 * 0.4; math.Abs(share-want) > 0.02 {
		t.Errorf("loaded real share %.3f, want about %.3f", share, want)
	}
	if got[4] != 0 || got[5] != 0 {
		t.Errorf("unavailable picked: %v", got)
	}

	// Counts follow weights also when connections stay open.
	conns = NewConnCounters(1, 8)
	w = NewWorkerSched(0, conns, 44)
	w.Reset(1)
	got = countPicks(t, w, s, 100_000, 0, conns, 0)
	checkShares(t, "twos with load", got, map[uint32]float64{0: 1, 1: 2, 2: 3, 3: 4}, 0.1)
}

// TestSlowStartWLC: a real that came up at T0 with slow start 100 s takes
// 10%, 50%, 100% of its weight's share at T0+10 s, +50 s, +100 s.
func TestSlowStartWLC(t *testing.T) {
	const t0 = int64(1_700_000_000) * int64(time.Second)
	rs := testReals(10, 10, 10, 10)
	rs[3].UpSince = t0
	for _, kind := range []SchedKind{SchedWLC, SchedSED, SchedNQ, SchedLC} {
		s := mustSched(t, kind, 0, rs, 0, 100*time.Second)
		for _, frac := range []float64{0.1, 0.5, 1} {
			conns := NewConnCounters(1, 4)
			w := NewWorkerSched(0, conns, 1)
			w.Reset(1)
			now := t0 + int64(frac*float64(100*time.Second))
			got := countPicks(t, w, s, 200_000, now, conns, 0)
			checkShares(t, kind.String()+" ramp", got, map[uint32]float64{0: 1, 1: 1, 2: 1, 3: frac}, 0.02)
		}
	}
}

// TestSlowStartLCNoFlood: seed 001's problem. Three reals hold 1000
// connections each and a fourth has just been added with none. Plain lc
// gives it every new connection; with slow start it takes about its ramp
// fraction of the others' load.
func TestSlowStartLCNoFlood(t *testing.T) {
	const t0 = int64(1_700_000_000) * int64(time.Second)
	rs := testReals(1, 1, 1, 1)
	rs[3].UpSince = t0
	setup := func() (*ConnCounters, *WorkerSched) {
		conns := NewConnCounters(2, 4)
		for id := range uint32(3) {
			conns.Add(1, id, 1000, 500)
		}
		w := NewWorkerSched(0, conns, 1)
		w.Reset(1)
		return conns, w
	}
	for _, kind := range []SchedKind{SchedLC, SchedWLC} {
		// Without slow start: the flood.
		conns, w := setup()
		got := countPicks(t, w, mustSched(t, kind, 0, rs, 0, 0), 1000, t0+int64(time.Second), conns, 0)
		if got[3] != 1000 {
			t.Errorf("%s without slow start: new real took %d of 1000 (test premise)", kind, got[3])
		}
		// 1 s into a 100 s ramp: about 1% of the others' load.
		s := mustSched(t, kind, 0, rs, 0, 100*time.Second)
		conns, w = setup()
		got = countPicks(t, w, s, 1000, t0+int64(time.Second), conns, 0)
		if got[3] > 30 || got[3] == 0 {
			t.Errorf("%s 1%% into the ramp: new real took %d of 1000, want a few", kind, got[3])
		}
		// Half way: it fills up to about half the others' load, then shares.
		conns, w = setup()
		now := t0 + 50*int64(time.Second)
		countPicks(t, w, s, 30_000, now, conns, 0)
		a3, _ := conns.Sum(3)
		a0, _ := conns.Sum(0)
		if r := float64(a3) / float64(a0); math.Abs(r-0.5) > 0.02 {
			t.Errorf("%s half way: new/old active %.3f, want 0.5", kind, r)
		}
	}
}

// TestSlowStartNQIdle: nq takes an idle real at once, but not one that is
// still ramping (its handshakes count as inactive, so it would stay "idle"
// while a burst of new connections lands on it).
func TestSlowStartNQIdle(t *testing.T) {
	const t0 = int64(1_700_000_000) * int64(time.Second)
	rs := testReals(10, 10, 10)
	rs[2].UpSince = t0
	conns := NewConnCounters(1, 4)
	conns.Add(0, 0, 5, 0)
	conns.Add(0, 1, 5, 0)
	conns.Add(0, 2, 0, 50) // new real: 50 handshakes in progress, 0 active
	w := NewWorkerSched(0, conns, 1)
	w.Reset(1)
	now := t0 + int64(time.Second)
	if got := pickID(w, mustSched(t, SchedNQ, 0, rs, 0, 0), now); got != 2 {
		t.Errorf("nq without slow start: picked %d, want the idle real 2", got)
	}
	s := mustSched(t, SchedNQ, 0, rs, 0, 100*time.Second)
	for range 10 {
		if got := pickID(w, s, now); got == 2 {
			t.Fatal("nq: ramping idle real taken at once")
		}
	}
	// Fully up: the idle rule applies again.
	if got := pickID(w, s, t0+int64(100*time.Second)); got != 2 {
		t.Errorf("nq after the ramp: picked %d, want 2", got)
	}
}
