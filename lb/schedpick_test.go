package lb

import (
	"math/rand/v2"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"
)

var allSchedKinds = []SchedKind{SchedRR, SchedWRR, SchedLC, SchedWLC, SchedSED, SchedNQ, SchedSH,
	SchedDH, SchedLBLC, SchedLBLCR, SchedFO, SchedOVF, SchedTwoS, SchedMH}

// testReals makes available reals 10.0.<i/256>.<i%256>:80 with the given
// weights and ids 0..n-1.
func testReals(weights ...int32) []SchedReal {
	rs := make([]SchedReal, len(weights))
	for i, w := range weights {
		a := netip.AddrFrom4([4]byte{10, 0, byte(i >> 8), byte(i)})
		rs[i] = SchedReal{ID: uint32(i), Weight: w, Avail: true, Hash: RealHash(a, 80)}
	}
	return rs
}

func mustSched(t testing.TB, k SchedKind, flags ServiceFlags, rs []SchedReal, size int, ss time.Duration) *Sched {
	t.Helper()
	s, err := NewSched(k, flags, rs, size, ss)
	if err != nil {
		t.Fatalf("NewSched(%s): %v", k, err)
	}
	return s
}

// testFlow makes a flow with random v4 source and destination.
func testFlow(r *rand.Rand) Flow {
	var f Flow
	f.Family = FamilyV4
	v := r.Uint64()
	f.Src[0], f.Src[1], f.Src[2], f.Src[3] = byte(v), byte(v>>8), byte(v>>16), byte(v>>24)
	f.Dst[0], f.Dst[1], f.Dst[2], f.Dst[3] = 198, 18, byte(v>>32), byte(v>>40)
	f.SPort, f.DPort = uint16(v>>48), 80
	f.Hash = r.Uint64()
	return f
}

// byID maps a pick index to the real's ID.
func byID(s *Sched, i int) int {
	if i < 0 {
		return -1
	}
	return int(s.Reals()[i].ID)
}

func TestSchedParse(t *testing.T) {
	for _, k := range allSchedKinds {
		got, err := ParseSched(k.String())
		if err != nil || got != k {
			t.Errorf("ParseSched(%q) = %v, %v", k.String(), got, err)
		}
		if got, err := ParseSched(strings.ToUpper(k.String())); err != nil || got != k {
			t.Errorf("ParseSched upper %q = %v, %v", k.String(), got, err)
		}
	}
	_, err := ParseSched("maglevv")
	if err == nil || !strings.Contains(err.Error(), "lblcr") || !strings.Contains(err.Error(), "mh") {
		t.Errorf("ParseSched(bad) error = %v, want a list of names", err)
	}
	if SchedKind(200).String() != "sched(200)" {
		t.Errorf("bad kind string %q", SchedKind(200).String())
	}
}

func TestSchedRealHashStable(t *testing.T) {
	a := netip.MustParseAddr("192.0.2.1")
	if RealHash(a, 80) != RealHash(netip.MustParseAddr("::ffff:192.0.2.1"), 80) {
		t.Error("v4 and v4-mapped differ")
	}
	if RealHash(a, 80) == RealHash(a, 81) || RealHash(a, 80) == RealHash(netip.MustParseAddr("192.0.2.2"), 80) {
		t.Error("collision on neighbours")
	}
	// Pinned values: the hash must never change between releases (nodes of
	// different versions must agree on Maglev tables).
	if got := RealHash(a, 80); got != 0xd1745266a38cbc82 {
		t.Errorf("RealHash(192.0.2.1, 80) = %#x", got)
	}
	if got := RealHash(netip.MustParseAddr("2001:db8::1"), 443); got != 0x1714080a4615e4cf {
		t.Errorf("RealHash(2001:db8::1, 443) = %#x", got)
	}
}

func TestSchedNewErrors(t *testing.T) {
	rs := testReals(1, 2)
	for _, size := range []int{1, 4, 65536, 100} {
		if _, err := NewSched(SchedMH, 0, rs, size, 0); err == nil {
			t.Errorf("mh size %d accepted", size)
		}
	}
	for _, size := range []int{0, 251, 65537, 655373} {
		s, err := NewSched(SchedMH, 0, rs, size, 0)
		if err != nil {
			t.Fatalf("mh size %d: %v", size, err)
		}
		want := size
		if size == 0 {
			want = DefaultMaglevSize
		}
		if s.MaglevSize() != want {
			t.Errorf("mh size %d: table %d", size, s.MaglevSize())
		}
	}
	if _, err := NewSched(SchedRR, 0, rs, 0, -time.Second); err == nil {
		t.Error("negative slow start accepted")
	}
	if _, err := NewSched(SchedRR, 0, testReals(MaxWeight+1), 0, 0); err == nil {
		t.Error("weight above MaxWeight accepted")
	}
	if _, err := NewSched(SchedKind(99), 0, rs, 0, 0); err == nil {
		t.Error("bad kind accepted")
	}
	// Non-mh kinds size their stateless table themselves.
	s := mustSched(t, SchedRR, 0, testReals(1, 1, 1), 4, 0)
	if s.MaglevSize() != 307 {
		t.Errorf("rr stateless table %d, want 307", s.MaglevSize())
	}
	if s := mustSched(t, SchedWLC, 0, testReals(make([]int32, 1000)...), 0, 0); s.MaglevSize() != 0 {
		t.Errorf("no available real but table of %d", s.MaglevSize())
	}
}

func TestSchedRealsSortedCopy(t *testing.T) {
	rs := testReals(1, 2, 3, 4, 5)
	orig := slices.Clone(rs)
	s := mustSched(t, SchedRR, 0, rs, 0, 0)
	if !slices.Equal(rs, orig) {
		t.Fatal("NewSched modified its input")
	}
	got := s.Reals()
	if !slices.IsSortedFunc(got, func(a, b SchedReal) int {
		if a.Hash < b.Hash {
			return -1
		}
		return 1
	}) {
		t.Error("Reals not sorted by Hash")
	}
	rev := slices.Clone(rs)
	slices.Reverse(rev)
	if !slices.Equal(mustSched(t, SchedRR, 0, rev, 0, 0).Reals(), got) {
		t.Error("Reals depends on input order")
	}
}

// TestSchedNeverPicksUnavailable: for every kind, reals that are not Avail
// or have weight 0 are never chosen, by Pick or Stateless, and an empty or
// all-unavailable set gives -1.
func TestSchedNeverPicksUnavailable(t *testing.T) {
	rs := testReals(1, 0, 3, 2, 5, 0, 4, 1)
	rs[2].Avail = false
	rs[4].Avail = false
	// Some reals ramp (slow start 1 min, picks at 1 ms steps from 0).
	rs[0].UpSince, rs[2].UpSince, rs[3].UpSince = 1, 1, int64(10*time.Second)
	bad := map[uint32]bool{1: true, 5: true, 2: true, 4: true}
	r := rand.New(rand.NewPCG(1, 2))
	for _, k := range allSchedKinds {
		for _, flags := range []ServiceFlags{0, FlagFallback | FlagHashPort} {
			conns := NewConnCounters(1, 16)
			s := mustSched(t, k, flags, rs, 0, time.Minute)
			w := NewWorkerSched(0, conns, 1)
			w.Reset(1)
			seen := map[int]int{}
			for n := range 20000 {
				f := testFlow(r)
				now := int64(n) * int64(time.Millisecond)
				i := w.Pick(0, s, &f, now)
				if i >= 0 {
					id := s.Reals()[i].ID
					if bad[id] {
						t.Fatalf("%s flags %b: picked unavailable real id %d", k, flags, id)
					}
					conns.Add(0, id, 1, 0)
				}
				seen[byID(s, i)]++
				if j := s.Stateless(&f); j < 0 || bad[s.Reals()[j].ID] {
					t.Fatalf("%s: Stateless gave %d", k, byID(s, j))
				}
			}
			// Hash kinds without fallback may fail (-1) on unavailable
			// buckets; all others must always find a real.
			hashFail := k == SchedDH || k == SchedSH && flags&FlagFallback == 0
			if seen[-1] > 0 && !hashFail && k != SchedOVF {
				t.Errorf("%s flags %b: %d picks failed", k, flags, seen[-1])
			}
			if hashFail && seen[-1] == 0 {
				t.Errorf("%s flags %b: never failed although unavailable reals hold buckets", k, flags)
			}
		}
		for _, set := range [][]SchedReal{nil, testReals(0, 0), func() []SchedReal {
			x := testReals(3, 4)
			x[0].Avail, x[1].Avail = false, false
			return x
		}()} {
			s := mustSched(t, k, FlagFallback, set, 0, 0)
			w := NewWorkerSched(0, NewConnCounters(1, 4), 1)
			w.Reset(1)
			f := testFlow(r)
			if i := w.Pick(0, s, &f, 1); i != -1 {
				t.Errorf("%s: pick %d from %d unavailable reals", k, i, len(set))
			}
			if i := s.Stateless(&f); i != -1 {
				t.Errorf("%s: stateless %d from unavailable reals", k, i)
			}
		}
	}
}

// TestSchedPickNoAlloc proves Pick does not allocate, for every kind, also
// while slow start ramps.
func TestSchedPickNoAlloc(t *testing.T) {
	rs := testReals(1, 2, 3, 4, 5, 6, 7, 8)
	base := int64(1_000_000 * time.Hour)
	rs[3].UpSince = base
	r := rand.New(rand.NewPCG(3, 4))
	flows := make([]Flow, 256)
	for i := range flows {
		flows[i] = testFlow(r)
	}
	for _, k := range allSchedKinds {
		for _, ss := range []time.Duration{0, time.Minute} {
			s := mustSched(t, k, FlagHashPort|FlagFallback, rs, 0, ss)
			conns := NewConnCounters(2, 16)
			w := NewWorkerSched(1, conns, 7)
			w.Reset(4)
			n := 0
			allocs := testing.AllocsPerRun(2000, func() {
				f := &flows[n&255]
				n++
				if i := w.Pick(2, s, f, base+int64(n)*int64(time.Millisecond)); i >= 0 {
					conns.Add(1, s.Reals()[i].ID, 1, 0)
				}
				_ = s.Stateless(f)
			})
			if allocs != 0 {
				t.Errorf("%s slowstart %v: %v allocs per pick", k, ss, allocs)
			}
		}
	}
}

// TestSchedSvcOutOfRange: a service number beyond Reset's count must not
// panic.
func TestSchedSvcOutOfRange(t *testing.T) {
	s := mustSched(t, SchedWRR, 0, testReals(1, 2), 0, 0)
	w := NewWorkerSched(0, nil, 1)
	f := Flow{}
	for _, svc := range []int{-1, 0, 5} {
		if i := w.Pick(svc, s, &f, 0); i < 0 {
			t.Errorf("svc %d: %d", svc, i)
		}
	}
	if w.Pick(0, nil, &f, 0) != -1 {
		t.Error("nil Sched")
	}
}

func BenchmarkPick(b *testing.B) {
	rs := testReals(5, 3, 8, 1, 4, 6, 2, 7, 5, 5)
	r := rand.New(rand.NewPCG(5, 6))
	flows := make([]Flow, 1024)
	for i := range flows {
		flows[i] = testFlow(r)
	}
	for _, k := range allSchedKinds {
		b.Run(k.String(), func(b *testing.B) {
			s := mustSched(b, k, 0, rs, 0, 0)
			conns := NewConnCounters(2, 16)
			for i := range rs {
				conns.Add(1, uint32(i), int32(50*rs[i].Weight), 100)
			}
			w := NewWorkerSched(0, conns, 1)
			w.Reset(1)
			b.ReportAllocs()
			n := 0
			for b.Loop() {
				w.Pick(0, s, &flows[n&1023], int64(n))
				n++
			}
		})
	}
}
