package lb

// The connection-count schedulers: lc, wlc, sed, nq (IPVS ip_vs_lc.c,
// ip_vs_wlc.c, ip_vs_sed.c, ip_vs_nq.c), fo, ovf (ip_vs_fo.c, ip_vs_ovf.c)
// and twos (ip_vs_twos.c). Counts are ConnCounters.Sum over all workers.
//
// As IPVS:
//   - lc takes the least ip_vs_dest_conn_overhead = active*256 + inactive.
//   - wlc takes the least overhead/weight, compared by cross-multiplying.
//   - sed takes the least (active+1)/weight.
//   - nq takes an idle real (active == 0) at once, else as sed.
//   - fo takes the available real with the highest weight (the first of
//     equals).
//   - ovf takes the real with the highest weight among those whose active
//     count does not exceed their weight (IPVS skips active > weight, so a
//     real with exactly weight active connections still qualifies), else
//     none.
//   - twos draws two reals at random in proportion to weight and takes the
//     one with the lower overhead/weight.
//
// Deviations:
//   - Ties among lc/wlc/sed/nq (and nq's idle reals) go to the first real
//     from a per-worker rotating start instead of the first in the list:
//     with per-worker state and equal counts (e.g. at start), every worker
//     would otherwise pile its new flows onto the same real.
//   - Cross-multiplications are done in 128 bits (no overflow at any count).
//   - twos draws r uniformly in [0, total) and takes the first real whose
//     cumulative weight exceeds r (IPVS's "r -= w; r <= 0" gives the first
//     real one extra chance); it binary-searches precomputed cumulative
//     weights when no real ramps.
//   - Slow start (IPVS has none): weights are the ramped effective weights
//     (scaled by rampOne). Plain lc has no weights, so a ramping real's
//     overhead is scaled up by rampOne/factor, i.e. overhead*slowStart/
//     elapsed: compared as wlc with weight = ramp factor, it takes about
//     factor × the connections of a fully up real instead of all new flows
//     until it has caught up (the flood of seed 001). For the same reason
//     nq's idle shortcut applies only to reals that are fully up; a ramping
//     idle real is compared as sed. fo and ovf compare effective weights
//     (ovf's capacity is the effective weight).

import "math/bits"

// Modes of pickLeast.
const (
	leastLC = iota
	leastWLC
	leastSED
	leastNQ
)

// pickLeast is lc, wlc, sed and nq over the candidates.
func (w *WorkerSched) pickLeast(st *schedSvcState, s *Sched, now int64, mode int) int {
	n := len(s.cand)
	ramp := s.slowStart > 0 && s.ramping(now)
	start := int(st.next % uint32(n))
	st.next++
	best := -1
	var bs, bw int64
	for k := 0; k < n; k++ {
		j := start + k
		if j >= n {
			j -= n
		}
		i := int(s.cand[j])
		act, inact := w.load(s.reals[i].ID)
		var sc, wt int64
		switch mode {
		case leastLC:
			sc, wt = act<<8+inact, 1
			if ramp {
				wt = s.rampFactor(i, now)
			}
		case leastWLC:
			sc, wt = act<<8+inact, s.effWeight(i, now, ramp)
		default: // sed, nq
			if mode == leastNQ && act == 0 && (!ramp || s.rampFactor(i, now) == rampOne) {
				return i
			}
			sc, wt = act+1, s.effWeight(i, now, ramp)
		}
		if best < 0 || ratioLess(sc, wt, bs, bw) {
			best, bs, bw = i, sc, wt
		}
	}
	return best
}

// pickFO is IPVS fo: the candidate with the highest (effective) weight, the
// first one among equals.
func (s *Sched) pickFO(now int64) int {
	if !(s.slowStart > 0 && s.ramping(now)) {
		return int(s.foIdx)
	}
	best, bw := -1, int64(0)
	for _, i := range s.cand {
		if w := s.effWeight(int(i), now, true); w > bw {
			best, bw = int(i), w
		}
	}
	return best
}

// pickOVF is IPVS ovf: the candidate with the highest (effective) weight
// whose active connections do not exceed that weight; -1 when all overflow.
func (w *WorkerSched) pickOVF(s *Sched, now int64) int {
	ramp := s.slowStart > 0 && s.ramping(now)
	best, bw := -1, int64(0)
	for _, i := range s.cand {
		ew := s.effWeight(int(i), now, ramp)
		if ew <= bw {
			continue // cannot beat the best: skip the counter read
		}
		act, _ := w.load(s.reals[i].ID)
		if act*rampOne > ew { // active > effective weight
			continue
		}
		best, bw = int(i), ew
	}
	return best
}

// pickTwoS is IPVS twos: two weighted random draws, the less loaded
// (overhead/weight) of the two wins; the first on a tie.
func (w *WorkerSched) pickTwoS(s *Sched, now int64) int {
	n := len(s.cand)
	var c1, c2 int
	var w1, w2 int64
	if !(s.slowStart > 0 && s.ramping(now)) {
		total := s.cum[n-1]
		c1 = int(s.cand[searchCum(s.cum, w.randBelow(total))])
		c2 = int(s.cand[searchCum(s.cum, w.randBelow(total))])
		w1, w2 = int64(s.reals[c1].Weight), int64(s.reals[c2].Weight)
	} else {
		var total int64
		for _, i := range s.cand {
			total += s.effWeight(int(i), now, true)
		}
		r1, r2 := w.randBelow(total), w.randBelow(total)
		c1, c2 = -1, -1
		var acc int64
		for _, i := range s.cand {
			ew := s.effWeight(int(i), now, true)
			acc += ew
			if c1 < 0 && r1 < acc {
				c1, w1 = int(i), ew
			}
			if c2 < 0 && r2 < acc {
				c2, w2 = int(i), ew
			}
			if c1 >= 0 && c2 >= 0 {
				break
			}
		}
	}
	if c1 == c2 {
		return c1
	}
	a1, i1 := w.load(s.reals[c1].ID)
	a2, i2 := w.load(s.reals[c2].ID)
	if ratioLess(a2<<8+i2, w2, a1<<8+i1, w1) {
		return c2
	}
	return c1
}

// randBelow returns a uniform pseudo-random number in [0, n) for n > 0
// (Lemire's multiply-shift; the bias is below 2^-30 for n < 2^34).
func (w *WorkerSched) randBelow(n int64) int64 {
	hi, _ := bits.Mul64(w.rand(), uint64(n))
	return int64(hi)
}

// searchCum returns the first j with cum[j] > r (cum strictly increasing,
// r < cum[len-1]).
func searchCum(cum []int64, r int64) int {
	lo, hi := 0, len(cum)-1
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if cum[m] > r {
			hi = m
		} else {
			lo = m + 1
		}
	}
	return lo
}
