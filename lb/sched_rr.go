package lb

// rr and wrr: IPVS ip_vs_rr.c and ip_vs_wrr.c.
//
// rr cycles over the candidates (IPVS skips overloaded and weight-0 dests;
// Sched.cand holds exactly the reals that are Avail with Weight > 0).
//
// wrr is IPVS's gcd-based weighted round robin: a current weight cw steps
// down from the maximum weight mw by di = gcd(weights) each time the cursor
// wraps, and a real is taken when its weight is >= cw. Over a full cycle of
// sum(w)/di picks each real is taken exactly w/di times.
//
// Deviations: the cursors are per worker (IPVS has one per service, under a
// lock), each worker starting at a different real. With slow start, while
// some real ramps, weights are the effective (ramped) weights scaled by
// rampOne and di is 1; cw is clamped to the current mw when the weights
// change. The ratios over a cycle at a fixed clock are still exact.

// pickRR is IPVS rr over the candidates.
func pickRR(st *schedSvcState, s *Sched) int {
	n := int32(len(s.cand))
	c := st.cur + 1
	if c >= n || c < 0 {
		c %= n
		if c < 0 {
			c = 0
		}
	}
	st.cur = c
	return int(s.cand[c])
}

// pickWRR is IPVS wrr (ip_vs_wrr_schedule) over the candidates.
func pickWRR(st *schedSvcState, s *Sched, now int64) int {
	n := len(s.cand)
	ramp := s.slowStart > 0 && s.ramping(now)
	mw, di := s.wrrMax, s.wrrGCD
	if ramp {
		mw, di = 0, 1
		for _, i := range s.cand {
			mw = max(mw, s.effWeight(int(i), now, true))
		}
	}
	if st.cw <= 0 || st.cw > mw {
		st.cw = mw
	}
	cl := int(st.cur)
	if cl >= n {
		cl %= n
	}
	if cl < -1 {
		cl = -1
	}
	// The real with weight mw qualifies at every level, so one pass to the
	// end of the list plus one whole pass always finds a real.
	for range 2*n + 2 {
		if cl++; cl >= n {
			cl = 0
			if st.cw -= di; st.cw <= 0 {
				st.cw = mw
			}
		}
		i := int(s.cand[cl])
		var w int64
		if ramp {
			w = s.effWeight(i, now, true)
		} else {
			w = int64(s.reals[i].Weight)
		}
		if w >= st.cw {
			st.cur = int32(cl)
			return i
		}
	}
	return -1 // not reached
}
