package lb

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

func TestMaglevPrimes(t *testing.T) {
	primes := 0
	for n := range 1000 {
		p := schedIsPrime(n)
		if p {
			primes++
		}
	}
	if primes != 168 || !schedIsPrime(65537) || !schedIsPrime(655373) || schedIsPrime(65535) {
		t.Errorf("schedIsPrime: %d primes below 1000", primes)
	}
	for n, want := range map[int]int{0: 101, 1: 101, 3: 307, 10: 1009, 655: 65519, 656: 65537, 5000: 65537} {
		if got := maglevSmallSize(n); got != want {
			t.Errorf("maglevSmallSize(%d) = %d, want %d", n, got, want)
		}
	}
}

func TestMaglevApportion(t *testing.T) {
	for _, c := range []struct {
		w     []int64
		total int
		want  []int
	}{
		{[]int64{1, 1, 1}, 10, []int{4, 3, 3}},
		{[]int64{1, 2, 3}, 12, []int{2, 4, 6}},
		{[]int64{1000000, 1, 1}, 10, []int{8, 1, 1}},
		{[]int64{1, 1, 1, 1}, 2, []int{1, 1, 0, 0}},
		{[]int64{5}, 7, []int{7}},
	} {
		if got := apportion(c.w, c.total); !slices.Equal(got, c.want) {
			t.Errorf("apportion(%v, %d) = %v, want %v", c.w, c.total, got, c.want)
		}
	}
}

// maglevFlows makes n flows with random source addresses (v4 and v6).
func maglevFlows(n int) []Flow {
	r := rand.New(rand.NewPCG(11, 12))
	fs := make([]Flow, n)
	for i := range fs {
		fs[i] = testFlow(r)
		if i&1 == 1 {
			for j := range 16 {
				fs[i].Src[j] = byte(r.Uint32())
			}
			fs[i].Family = FamilyV6
		}
	}
	return fs
}

// TestMaglevDisruption: removing one of N reals remaps at most 1/N + 1% of
// flows (those of the removed real must all move, the others mostly stay);
// adding one back remaps about 1/(N+1).
func TestMaglevDisruption(t *testing.T) {
	flows := maglevFlows(1_000_000)
	for _, n := range []int{10, 100} {
		for _, weighted := range []bool{false, true} {
			ws := make([]int32, n)
			for i := range ws {
				ws[i] = 10
				if weighted {
					ws[i] = int32(1 + i%7)
				}
			}
			rs := testReals(ws...)
			full := mustSched(t, SchedMH, 0, rs, 0, 0)
			victim := uint32(n / 3)
			rs[victim].Avail = false
			less := mustSched(t, SchedMH, 0, rs, 0, 0)
			var moved, victims, sum int
			for i := range flows {
				a := byID(full, full.Stateless(&flows[i]))
				b := byID(less, less.Stateless(&flows[i]))
				if a == int(victim) {
					victims++
					if b == int(victim) || b < 0 {
						t.Fatalf("flow of the removed real went to %d", b)
					}
				}
				if a != b {
					moved++
				}
			}
			for _, w := range ws {
				sum += int(w)
			}
			share := float64(ws[victim]) / float64(sum)
			frac := float64(moved) / float64(len(flows))
			t.Logf("N=%d weighted=%v: removed real had %.4f of flows, %.4f moved", n, weighted, float64(victims)/float64(len(flows)), frac)
			if frac > share+0.01 {
				t.Errorf("N=%d weighted=%v: %.4f of flows moved, want <= %.4f", n, weighted, frac, share+0.01)
			}
			if math.Abs(float64(victims)/float64(len(flows))-share) > 0.1*share {
				t.Errorf("N=%d: removed real had %d flows, want about %.0f", n, victims, share*float64(len(flows)))
			}
		}
	}
}

// TestMaglevWeights: table entries per real are proportional to weight, and
// so are the flows that land on each real.
func TestMaglevWeights(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 5))
	flows := maglevFlows(200_000)
	for _, n := range []int{10, 100} {
		ws := make([]int32, n)
		var sum int64
		for i := range ws {
			ws[i] = int32(1 + r.IntN(100))
			sum += int64(ws[i])
		}
		for _, size := range []int{0, 655373} {
			s := mustSched(t, SchedMH, 0, testReals(ws...), size, 0)
			m := s.MaglevSize()
			entries := map[uint32]int{}
			for _, i := range s.mag {
				entries[s.Reals()[i].ID]++
			}
			for id, w := range ws {
				exact := float64(m) * float64(w) / float64(sum)
				if got := float64(entries[uint32(id)]); math.Abs(got-exact) > 1 {
					t.Errorf("N=%d size %d: real %d has %v entries, want %.1f", n, m, id, got, exact)
				}
			}
			if n == 10 {
				got := map[uint32]int{}
				for i := range flows {
					got[uint32(byID(s, s.Stateless(&flows[i])))]++
				}
				want := map[uint32]float64{}
				for id, w := range ws {
					want[uint32(id)] = float64(w)
				}
				checkShares(t, fmt.Sprintf("mh flows size %d", m), got, want, 0.05)
			}
		}
	}
}

// TestMaglevStatelessAllKinds: every kind's stateless table is a weighted
// Maglev table over the available reals, keyed by Flow.Hash and
// independent of the order of the reals.
func TestMaglevStatelessAllKinds(t *testing.T) {
	rs := testReals(1, 2, 3, 4, 5, 6)
	rs[1].Avail = false
	rev := slices.Clone(rs)
	slices.Reverse(rev)
	flows := maglevFlows(100_000)
	for _, k := range allSchedKinds {
		if k == SchedMH {
			continue
		}
		a, b := mustSched(t, k, 0, rs, 0, 0), mustSched(t, k, 0, rev, 0, 0)
		if a.MaglevSize() != 601 {
			t.Errorf("%s: stateless table %d, want 601", k, a.MaglevSize())
		}
		got := map[uint32]int{}
		for i := range flows {
			x := byID(a, a.Stateless(&flows[i]))
			if y := byID(b, b.Stateless(&flows[i])); x != y {
				t.Fatalf("%s: order-dependent stateless pick", k)
			}
			g := flows[i]
			g.Src[0]++ // only Hash counts for non-mh kinds
			if y := byID(a, a.Stateless(&g)); x != y {
				t.Fatalf("%s: stateless pick depends on more than Flow.Hash", k)
			}
			got[uint32(x)]++
		}
		checkShares(t, k.String()+" stateless", got, map[uint32]float64{0: 1, 2: 3, 3: 4, 4: 5, 5: 6}, 0.05)
	}
}

func BenchmarkMaglevBuild(b *testing.B) {
	r := rand.New(rand.NewPCG(1, 2))
	ws := make([]int32, 100)
	for i := range ws {
		ws[i] = int32(1 + r.IntN(10))
	}
	rs := testReals(ws...)
	for _, size := range []int{65537, 655373} {
		b.Run(fmt.Sprint(size), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := NewSched(SchedMH, 0, rs, size, 0); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
