package lb

// lblc and lblcr: IPVS ip_vs_lblc.c and ip_vs_lblcr.c, locality-based least
// connection (without and with replication), meant for cache clusters: flows
// to the same destination address go to the same real (lblc) or to the
// least loaded of a small set of reals (lblcr), until that real is
// overloaded.
//
// As IPVS:
//   - Without a locality entry (or with an entry whose real is not
//     available), the real is chosen as wlc does (__ip_vs_lblc_schedule)
//     and remembered for the destination.
//   - Overload rule (is_overloaded): the remembered real is overloaded when
//     its active count exceeds its weight and some real has an active count
//     below half its weight; then a new real is chosen by wlc (lblc replaces
//     the entry's real, lblcr adds it to the set).
//   - lblcr takes the least loaded (overhead/weight) available member of the
//     set; when the set has more than one member and has not changed for the
//     expiration time, its most loaded member is dropped.
//   - Entries idle longer than the expiration time (IPVS's default sysctl
//     lblc_expiration / lblcr_expiration, 24 h) are forgotten.
//
// Deviations:
//   - The table is per worker and fixed in size: locSets sets of locWays
//     entries, set-associative on a 64-bit hash of (service, destination
//     address), no Go map, no allocation. A full set evicts an expired entry
//     or else the least recently used one (IPVS grows a hash table and trims
//     it with a timer). Two destinations whose 64-bit hashes collide share an
//     entry (harmless: they only share locality).
//   - An lblcr set holds at most locSetMax reals; adding to a full set
//     replaces an unavailable member, else the most loaded one. When the set
//     shrinks on expiry, an unavailable member goes first.
//   - The overload rule looks only at reals that can take flows; weights
//     there and in the wlc choice are the slow-start effective weights.
//   - Reset (a new snapshot) forgets all entries, since real indices change.

import "time"

// Geometry of a worker's locality table (shared by all its lblc/lblcr
// services): 8192 entries of 48 bytes.
const (
	locWays   = 4
	locSetLog = 11
	locSets   = 1 << locSetLog
	locSetMax = 4 // reals per lblcr entry
)

// locExpire is how long an idle locality entry (and an unchanged lblcr set
// of several reals) lives: IPVS's default lblc/lblcr expiration.
const locExpire = int64(24 * time.Hour)

// schedLocEntry is one locality entry: destination → real (lblc) or set of
// reals (lblcr). Plain values only.
type schedLocEntry struct {
	key     uint64 // 0: empty
	lastuse int64
	lastmod int64 // lblcr: last change of the set
	set     [locSetMax]int32
	n       int32
}

// locKey is the table key of destination dst in service svc, never 0.
func locKey(svc int, dst *[16]byte) uint64 {
	return schedHashAddr(dst, 0, seedLocality+uint64(svc)*0x9e3779b97f4a7c15) | 1
}

// locFind returns the live entry of key, or nil.
func (w *WorkerSched) locFind(key uint64, now int64) *schedLocEntry {
	base := int(key>>(64-locSetLog)) * locWays
	for k := range locWays {
		if e := &w.loc[base+k]; e.key == key && now-e.lastuse <= locExpire {
			return e
		}
	}
	return nil
}

// locInsert returns a fresh entry for key: the slot of an expired entry of
// the same key, an empty or expired slot, or the least recently used one.
func (w *WorkerSched) locInsert(key uint64, now int64) *schedLocEntry {
	base := int(key>>(64-locSetLog)) * locWays
	v := &w.loc[base]
	for k := range locWays {
		e := &w.loc[base+k]
		if e.key == key || e.key == 0 || now-e.lastuse > locExpire {
			v = e
			break
		}
		if e.lastuse < v.lastuse {
			v = e
		}
	}
	w.locUsed = true
	*v = schedLocEntry{key: key, lastuse: now, lastmod: now}
	return v
}

// overloaded is IPVS's lblc/lblcr is_overloaded: real i has more active
// connections than its weight and some real has fewer than half its weight.
func (w *WorkerSched) overloaded(s *Sched, i int, now int64, ramp bool) bool {
	act, _ := w.load(s.reals[i].ID)
	if act*rampOne <= s.effWeight(i, now, ramp) {
		return false
	}
	for _, d := range s.cand {
		a, _ := w.load(s.reals[d].ID)
		if a*2*rampOne < s.effWeight(int(d), now, ramp) {
			return true
		}
	}
	return false
}

// pickLBLC is IPVS lblc.
func (w *WorkerSched) pickLBLC(svc int, st *schedSvcState, s *Sched, f *Flow, now int64) int {
	ramp := s.slowStart > 0 && s.ramping(now)
	key := locKey(svc, &f.Dst)
	e := w.locFind(key, now)
	if e != nil {
		e.lastuse = now
		if i := int(e.set[0]); e.n > 0 && s.isCand(i) && !w.overloaded(s, i, now, ramp) {
			return i
		}
	}
	i := w.pickLeast(st, s, now, leastWLC)
	if i < 0 {
		return -1
	}
	if e == nil {
		e = w.locInsert(key, now)
	}
	e.set[0], e.n, e.lastmod = int32(i), 1, now
	return i
}

// pickLBLCR is IPVS lblcr.
func (w *WorkerSched) pickLBLCR(svc int, st *schedSvcState, s *Sched, f *Flow, now int64) int {
	ramp := s.slowStart > 0 && s.ramping(now)
	key := locKey(svc, &f.Dst)
	e := w.locFind(key, now)
	if e != nil {
		e.lastuse = now
		d := w.setMin(s, e, now, ramp)
		if e.n > 1 && now-e.lastmod > locExpire {
			w.setErase(s, e, now, ramp)
		}
		if d >= 0 && !w.overloaded(s, d, now, ramp) {
			return d
		}
	}
	d := w.pickLeast(st, s, now, leastWLC)
	if d < 0 {
		return -1
	}
	if e == nil {
		e = w.locInsert(key, now)
	}
	w.setInsert(s, e, d, now, ramp)
	return d
}

// setMin is IPVS ip_vs_dest_set_min: the available member with the least
// overhead/weight, -1 if none.
func (w *WorkerSched) setMin(s *Sched, e *schedLocEntry, now int64, ramp bool) int {
	best := -1
	var bs, bw int64
	for k := range int(e.n) {
		i := int(e.set[k])
		if !s.isCand(i) {
			continue
		}
		a, in := w.load(s.reals[i].ID)
		sc, wt := a<<8+in, s.effWeight(i, now, ramp)
		if best < 0 || ratioLess(sc, wt, bs, bw) {
			best, bs, bw = i, sc, wt
		}
	}
	return best
}

// setVictim returns the position in e's set of the member to drop: the
// first unavailable one, else the most loaded (IPVS ip_vs_dest_set_max).
func (w *WorkerSched) setVictim(s *Sched, e *schedLocEntry, now int64, ramp bool) int {
	worst := -1
	var ws, ww int64
	for k := range int(e.n) {
		i := int(e.set[k])
		if !s.isCand(i) {
			return k
		}
		a, in := w.load(s.reals[i].ID)
		sc, wt := a<<8+in, s.effWeight(i, now, ramp)
		if worst < 0 || ratioLess(ws, ww, sc, wt) {
			worst, ws, ww = k, sc, wt
		}
	}
	return worst
}

// setErase drops one member (setVictim) from e's set.
func (w *WorkerSched) setErase(s *Sched, e *schedLocEntry, now int64, ramp bool) {
	k := w.setVictim(s, e, now, ramp)
	if k < 0 {
		return
	}
	e.n--
	e.set[k] = e.set[e.n]
	e.lastmod = now
}

// setInsert adds real i to e's set unless it is a member already (IPVS
// ip_vs_dest_set_insert with check); a full set gives up its victim.
func (w *WorkerSched) setInsert(s *Sched, e *schedLocEntry, i int, now int64, ramp bool) {
	for k := range int(e.n) {
		if int(e.set[k]) == i {
			return
		}
	}
	if e.n < locSetMax {
		e.set[e.n] = int32(i)
		e.n++
	} else {
		e.set[w.setVictim(s, e, now, ramp)] = int32(i)
	}
	e.lastmod = now
}
