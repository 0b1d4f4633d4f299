package lb

import (
	"math/rand/v2"
	"slices"
	"testing"
)

// TestSchedHashStable: sh, dh and mh give the same real for the same flow
// across calls, across workers and across two Scheds built from the same
// reals listed in different orders (two nodes).
func TestSchedHashStable(t *testing.T) {
	rs := testReals(1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12)
	rs[5].Avail = false
	other := slices.Clone(rs)
	rand.New(rand.NewPCG(9, 9)).Shuffle(len(other), func(i, j int) { other[i], other[j] = other[j], other[i] })
	r := rand.New(rand.NewPCG(1, 1))
	for _, k := range []SchedKind{SchedSH, SchedDH, SchedMH} {
		for _, flags := range []ServiceFlags{0, FlagHashPort, FlagFallback, FlagHashPort | FlagFallback} {
			a := mustSched(t, k, flags, rs, 0, 0)
			b := mustSched(t, k, flags, other, 0, 0)
			wa, wb := NewWorkerSched(0, nil, 1), NewWorkerSched(3, nil, 99)
			wa.Reset(1)
			wb.Reset(1)
			for range 20000 {
				f := testFlow(r)
				x := byID(a, wa.Pick(0, a, &f, 0))
				if y := byID(b, wb.Pick(0, b, &f, 0)); x != y {
					t.Fatalf("%s flags %b: node a %d, node b %d", k, flags, x, y)
				}
				if y := byID(a, wa.Pick(0, a, &f, 123)); x != y {
					t.Fatalf("%s: unstable across calls: %d, %d", k, x, y)
				}
				// The port matters only with FlagHashPort (dh never looks
				// at the source).
				g := f
				g.SPort++
				y := byID(a, wa.Pick(0, a, &g, 0))
				if flags&FlagHashPort == 0 && y != x {
					t.Fatalf("%s: source port changed the pick without FlagHashPort", k)
				}
			}
		}
	}
}

// TestSchedHashPortSpreads: with FlagHashPort one client's flows spread.
func TestSchedHashPortSpreads(t *testing.T) {
	rs := testReals(1, 1, 1, 1)
	for _, k := range []SchedKind{SchedSH, SchedMH} {
		s := mustSched(t, k, FlagHashPort, rs, 0, 0)
		w := NewWorkerSched(0, nil, 1)
		w.Reset(1)
		f := Flow{Src: [16]byte{192, 0, 2, 1}, Family: FamilyV4}
		got := map[int]int{}
		for p := range 4000 {
			f.SPort = uint16(p)
			got[byID(s, w.Pick(0, s, &f, 0))]++
		}
		for id := range 4 {
			if got[id] < 800 {
				t.Errorf("%s: ports of one client: %v", k, got)
				break
			}
		}
	}
}

// TestSchedHashBuckets: every weighted real takes buckets in proportion to
// its weight; reals with weight 0 take none.
func TestSchedHashBuckets(t *testing.T) {
	for _, weights := range [][]int32{{1, 1, 1}, {100, 101}, {1, 2, 3, 0, 4}, {MaxWeight, 1}} {
		s := mustSched(t, SchedSH, 0, testReals(weights...), 0, 0)
		cnt := map[uint32]int{}
		for _, i := range s.hashTab {
			cnt[s.Reals()[i].ID]++
		}
		var sum int64
		for _, w := range weights {
			sum += int64(w)
		}
		for id, w := range weights {
			exact := float64(len(s.hashTab)) * float64(w) / float64(sum)
			c := float64(cnt[uint32(id)])
			if w == 0 && c != 0 || w > 0 && (c < exact-1 && c != 1 || c > exact+1) {
				t.Errorf("weights %v: real %d has %v buckets, want %.1f", weights, id, c, exact)
			}
		}
		if len(s.hashTab) != 256 {
			t.Errorf("table size %d", len(s.hashTab))
		}
	}
	if s := mustSched(t, SchedDH, 0, testReals(make([]int32, 300)...), 0, 0); s.hashTab != nil {
		t.Error("table over weight-0 reals")
	}
	ws := make([]int32, 300)
	for i := range ws {
		ws[i] = 1
	}
	if s := mustSched(t, SchedDH, 0, testReals(ws...), 0, 0); len(s.hashTab) != 2048 {
		t.Errorf("300 reals: table size %d, want 2048", len(s.hashTab))
	}
}

// TestSchedSHFallback: a real that goes down loses only its own flows; with
// FlagFallback they go to other reals, without it they fail. Flows of the
// other reals do not move.
func TestSchedSHFallback(t *testing.T) {
	up := testReals(1, 2, 3, 4, 5)
	down := slices.Clone(up)
	down[2].Avail = false
	r := rand.New(rand.NewPCG(2, 2))
	for _, flags := range []ServiceFlags{0, FlagFallback} {
		a := mustSched(t, SchedSH, flags, up, 0, 0)
		b := mustSched(t, SchedSH, flags, down, 0, 0)
		w := NewWorkerSched(0, nil, 1)
		w.Reset(1)
		moved, lost := 0, 0
		for range 10000 {
			f := testFlow(r)
			x, y := byID(a, w.Pick(0, a, &f, 0)), byID(b, w.Pick(0, b, &f, 0))
			switch {
			case x == 2 && flags&FlagFallback == 0:
				if y != -1 {
					t.Fatalf("no fallback: flow of the down real went to %d", y)
				}
				lost++
			case x == 2:
				if y < 0 || y == 2 {
					t.Fatalf("fallback: flow of the down real went to %d", y)
				}
				moved++
			case x != y:
				t.Fatalf("flow of real %d moved to %d", x, y)
			}
		}
		if lost+moved < 1500 || lost+moved > 2500 { // weight 3 of 15
			t.Errorf("flags %b: %d flows on the down real", flags, lost+moved)
		}
	}
}

func TestSchedDHUsesDestination(t *testing.T) {
	s := mustSched(t, SchedDH, FlagFallback|FlagHashPort, testReals(1, 1, 1, 1, 1, 1, 1, 1), 0, 0)
	w := NewWorkerSched(0, nil, 1)
	w.Reset(1)
	r := rand.New(rand.NewPCG(4, 4))
	got := map[int]int{}
	for range 8000 {
		f := testFlow(r)
		x := byID(s, w.Pick(0, s, &f, 0))
		got[x]++
		g := testFlow(r)
		g.Dst = f.Dst
		if y := byID(s, w.Pick(0, s, &g, 0)); x != y {
			t.Fatalf("same destination, different real: %d, %d", x, y)
		}
	}
	for id := range 8 {
		if got[id] < 700 {
			t.Errorf("destinations spread badly: %v", got)
			break
		}
	}
}
