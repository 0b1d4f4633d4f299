package lb

import (
	"math"
	"testing"
	"time"
)

// countPicks runs n picks at clock now and counts them per real id.
func countPicks(t testing.TB, w *WorkerSched, s *Sched, n int, now int64, conns *ConnCounters, worker int) map[uint32]int {
	t.Helper()
	got := map[uint32]int{}
	var f Flow
	for range n {
		i := w.Pick(0, s, &f, now)
		if i < 0 {
			t.Fatalf("%s: no real", s.Kind())
		}
		id := s.Reals()[i].ID
		got[id]++
		if conns != nil {
			conns.Add(worker, id, 1, 0)
		}
	}
	return got
}

// checkShares asserts that counts[id]/total is within rel of want[id]/sum.
func checkShares(t *testing.T, what string, counts map[uint32]int, want map[uint32]float64, rel float64) {
	t.Helper()
	var total, sum float64
	for _, c := range counts {
		total += float64(c)
	}
	for _, w := range want {
		sum += w
	}
	for id, w := range want {
		exp := w / sum
		got := float64(counts[id]) / total
		if math.Abs(got-exp) > rel*exp {
			t.Errorf("%s: real %d share %.5f, want %.5f ±%.1f%%", what, id, got, exp, 100*rel)
		}
	}
	for id := range counts {
		if _, ok := want[id]; !ok {
			t.Errorf("%s: real %d picked %d times, want never", what, id, counts[id])
		}
	}
}

func TestSchedRREven(t *testing.T) {
	rs := testReals(1, 5, 1, 0, 2)
	rs[2].Avail = false
	s := mustSched(t, SchedRR, 0, rs, 0, 0)
	for worker := range 3 {
		w := NewWorkerSched(worker, nil, 1)
		w.Reset(1)
		got := countPicks(t, w, s, 3000, 0, nil, 0)
		for _, id := range []uint32{0, 1, 4} {
			if got[id] != 1000 {
				t.Errorf("worker %d: real %d got %d of 3000, want 1000 (%v)", worker, id, got[id], got)
			}
		}
		if len(got) != 3 {
			t.Errorf("picked %v", got)
		}
	}
	// Consecutive picks of one worker cycle: no real twice in a row.
	w := NewWorkerSched(0, nil, 1)
	w.Reset(1)
	prev := -1
	for range 30 {
		i := w.Pick(0, s, &Flow{}, 0)
		if i == prev {
			t.Fatal("rr picked the same real twice in a row")
		}
		prev = i
	}
}

func TestSchedWRRRatios(t *testing.T) {
	for _, weights := range [][]int32{
		{1, 2, 3, 5, 10, 37, 100},
		{4, 6, 10},
		{MaxWeight, 1, 1000},
		{7},
	} {
		s := mustSched(t, SchedWRR, 0, testReals(weights...), 0, 0)
		w := NewWorkerSched(1, nil, 1)
		w.Reset(1)
		// 1M picks, rounded up to whole cycles of sum(w)/gcd(w) picks (the
		// {MaxWeight, 1, 1000} cycle alone is longer than 1M).
		var sum, g int64
		want := map[uint32]float64{}
		for i, x := range weights {
			want[uint32(i)] = float64(x)
			sum += int64(x)
			g = schedGCD(g, int64(x))
		}
		cycle := sum / g
		n := (1_000_000 + cycle - 1) / cycle * cycle
		got := countPicks(t, w, s, int(n), 0, nil, 0)
		checkShares(t, "wrr", got, want, 0.01)
	}
}

// TestSchedWRRSequence checks IPVS's wrr order for weights 4, 3, 2: the
// LVS documentation's "AABABCABC".
func TestSchedWRRSequence(t *testing.T) {
	s := mustSched(t, SchedWRR, 0, testReals(4, 3, 2), 0, 0)
	w := NewWorkerSched(0, nil, 1)
	w.Reset(1)
	want := []int32{4, 4, 3, 4, 3, 2, 4, 3, 2}
	for round := range 3 {
		for k, ww := range want {
			i := w.Pick(0, s, &Flow{}, 0)
			if got := s.Reals()[i].Weight; got != ww {
				t.Fatalf("round %d pick %d: weight %d, want %d", round, k, got, ww)
			}
		}
	}
}

// TestSlowStartWRR: a real that came up at T0 with slow start 100 s gets
// 10%, 50% and 100% of its weight's share at T0+10 s, +50 s and +100 s.
func TestSlowStartWRR(t *testing.T) {
	const t0 = int64(1_700_000_000) * int64(time.Second)
	rs := testReals(10, 10, 10, 10)
	rs[2].UpSince = t0
	rs[1].UpSince = t0 - int64(time.Hour) // long up
	s := mustSched(t, SchedWRR, 0, rs, 0, 100*time.Second)
	for _, frac := range []float64{0.1, 0.5, 1, 2} {
		w := NewWorkerSched(0, nil, 1)
		w.Reset(1)
		now := t0 + int64(frac*float64(100*time.Second))
		got := countPicks(t, w, s, 1_000_000, now, nil, 0)
		f := min(frac, 1)
		checkShares(t, "wrr ramp", got, map[uint32]float64{0: 1, 1: 1, 2: f, 3: 1}, 0.02)
	}
}
