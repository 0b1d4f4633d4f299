package lb

// This file holds the Sched (the immutable per-service scheduler that lives
// in a snapshot), its constructor, the per-worker WorkerSched and the Pick
// dispatch. The algorithms themselves live in sched_rr.go (rr, wrr),
// sched_lc.go (lc, wlc, sed, nq, fo, ovf, twos), sched_locality.go (lblc,
// lblcr), sched_hash.go (sh, dh, hashing helpers) and maglev.go (mh and the
// stateless fallback table of every Sched).
//
// Semantics follow Linux IPVS (net/netfilter/ipvs/ip_vs_*.c). The places
// where gvs deviates are marked "Deviation" in the comments; in short:
//
//   - State is per worker (rr/wrr cursors, lblc/lblcr tables), counts are
//     summed over workers; IPVS has one state per service under a lock.
//   - lc-family ties are broken by a per-worker rotating start instead of
//     "first in the list", so that workers do not all pile onto one real.
//   - Slow start (IPVS has none) scales weights while a real ramps up:
//     effective weight = Weight × min(1, (now-UpSince)/slowStart), in steps
//     of 1/rampOne and at least Weight/rampOne, for wrr, wlc, sed, nq,
//     twos, fo, ovf, lblc and lblcr; plain lc scales the ramping real's
//     overhead up instead (see sched_lc.go). rr has no weights and the hash
//     schedulers (sh, dh, mh, Stateless) ignore slow start: ramping a hash
//     would move flows.
//   - Reals are kept sorted by their stable Hash so that hash-based results
//     are the same on every node whatever order the config lists them in.

import (
	"errors"
	"fmt"
	"math/bits"
	"net/netip"
	"slices"
	"strings"
	"time"
)

var schedNames = [...]string{
	SchedRR:    "rr",
	SchedWRR:   "wrr",
	SchedLC:    "lc",
	SchedWLC:   "wlc",
	SchedSED:   "sed",
	SchedNQ:    "nq",
	SchedSH:    "sh",
	SchedDH:    "dh",
	SchedLBLC:  "lblc",
	SchedLBLCR: "lblcr",
	SchedFO:    "fo",
	SchedOVF:   "ovf",
	SchedTwoS:  "twos",
	SchedMH:    "mh",
}

// String returns the IPVS name of the scheduler ("rr", "wlc", "mh", ...).
func (k SchedKind) String() string {
	if int(k) < len(schedNames) {
		return schedNames[k]
	}
	return fmt.Sprintf("sched(%d)", uint8(k))
}

// ParseSched parses an IPVS scheduler name (case-insensitive): rr, wrr, lc,
// wlc, sed, nq, sh, dh, lblc, lblcr, fo, ovf, twos or mh.
func ParseSched(name string) (SchedKind, error) {
	n := strings.ToLower(strings.TrimSpace(name))
	for k, s := range schedNames {
		if s == n {
			return SchedKind(k), nil
		}
	}
	return 0, fmt.Errorf("unknown scheduler %q (want one of %s)", name, strings.Join(schedNames[:], ", "))
}

// RealHash is the stable 64-bit hash of a real server's address and port:
// FNV-1a over the 16-byte form of the address (IPv4 as v4-mapped IPv6, zone
// ignored) and the port in network byte order, then a 64-bit finalizer. It is
// the same on every node and every run, so Maglev tables and hash-based
// schedulers agree across gvs nodes.
func RealHash(addr netip.Addr, port uint16) uint64 {
	const offset64, prime64 = 14695981039346656037, 1099511628211
	a := addr.As16() // IPv4 as ::ffff:a.b.c.d, the same as its v4-mapped form
	h := uint64(offset64)
	for _, b := range append(a[:], byte(port>>8), byte(port)) {
		h ^= uint64(b)
		h *= prime64
	}
	return schedMix(h)
}

// maxSchedReals is the largest number of reals of one Sched: table entries
// are uint16 indices.
const maxSchedReals = 65535

// DefaultMaglevSize is the Maglev lookup table size of an mh service whose
// size is not configured (a prime, as the Maglev paper requires).
const DefaultMaglevSize = 65537

// maxMaglevSize bounds a configured mh table size (32 MiB of entries).
const maxMaglevSize = 1 << 24

// rampOne is the fixed-point unit of the slow-start ramp factor: a real that
// is fully up has factor rampOne, a ramping one 1..rampOne-1.
const rampOne = 1024

// Sched is the scheduler of one virtual service over its reals. It is
// immutable once built: it lives in a configuration snapshot and is read
// concurrently by every worker. The mutable per-worker part of scheduling
// (cursors, locality tables, random state) lives in a WorkerSched.
type Sched struct {
	kind  SchedKind
	flags ServiceFlags
	reals []SchedReal // sorted by Hash (then ID): Pick's indices refer to this order
	cand  []int32     // indices of candidates (Avail && Weight > 0), in reals order

	slowStart int64 // ns; 0: none
	rampEnd   int64 // no candidate ramps at or after this clock value

	// wrr over static weights (IPVS ip_vs_wrr_mark's mw and di).
	wrrMax, wrrGCD int64
	// twos over static weights: cum[j] = sum of the weights of cand[0..j].
	cum []int64
	// fo over static weights: the candidate with the highest weight.
	foIdx int32

	// sh/dh bucket table (power-of-two size) over reals with Weight > 0,
	// available or not; nil for other kinds.
	hashTab []uint16

	// Maglev lookup table over the candidates, weighted; nil when there is
	// no candidate. mh uses it for Pick, every kind for Stateless.
	mag []uint16
}

// NewSched builds the scheduler kind over reals, which may come in any
// order: they are copied and sorted by Hash (ties by ID), so results of sh,
// dh and mh do not depend on the order of the configuration, and Reals
// returns that order, which Pick's indices refer to.
//
// maglevSize is the mh lookup table size: 0 means DefaultMaglevSize, any
// other value must be a prime (it is ignored by other kinds, whose stateless
// table is sized from the number of reals). slowStart 0 disables slow start.
func NewSched(kind SchedKind, flags ServiceFlags, reals []SchedReal, maglevSize int, slowStart time.Duration) (*Sched, error) {
	if int(kind) >= len(schedNames) {
		return nil, fmt.Errorf("unknown scheduler kind %d", uint8(kind))
	}
	if len(reals) > maxSchedReals {
		return nil, fmt.Errorf("%s: %d reals, at most %d per service", kind, len(reals), maxSchedReals)
	}
	if slowStart < 0 {
		return nil, errors.New("negative slow start")
	}
	for i := range reals {
		if reals[i].Weight < 0 || reals[i].Weight > MaxWeight {
			return nil, fmt.Errorf("real id %d: weight %d out of range 0..%d", reals[i].ID, reals[i].Weight, MaxWeight)
		}
	}
	if kind == SchedMH {
		if maglevSize == 0 {
			maglevSize = DefaultMaglevSize
		}
		if maglevSize < 2 || maglevSize > maxMaglevSize || !schedIsPrime(maglevSize) {
			return nil, fmt.Errorf("mh: table size %d is not a prime in 2..%d", maglevSize, maxMaglevSize)
		}
	} else {
		maglevSize = maglevSmallSize(len(reals))
	}

	s := &Sched{
		kind:      kind,
		flags:     flags,
		reals:     slices.Clone(reals),
		slowStart: int64(slowStart),
		foIdx:     -1,
	}
	slices.SortStableFunc(s.reals, func(a, b SchedReal) int {
		switch {
		case a.Hash != b.Hash:
			if a.Hash < b.Hash {
				return -1
			}
			return 1
		case a.ID != b.ID:
			if a.ID < b.ID {
				return -1
			}
			return 1
		}
		return 0
	})

	var sum, hw int64
	for i := range s.reals {
		r := &s.reals[i]
		if !r.Avail || r.Weight <= 0 {
			continue
		}
		w := int64(r.Weight)
		s.cand = append(s.cand, int32(i))
		sum += w
		s.cum = append(s.cum, sum)
		s.wrrGCD = schedGCD(s.wrrGCD, w)
		s.wrrMax = max(s.wrrMax, w)
		if w > hw { // IPVS fo: first real with the highest weight
			hw, s.foIdx = w, int32(i)
		}
		if s.slowStart > 0 && r.UpSince != 0 {
			s.rampEnd = max(s.rampEnd, satAdd(r.UpSince, s.slowStart))
		}
	}

	switch kind {
	case SchedSH, SchedDH:
		s.hashTab = buildHashTable(s.reals)
	}
	s.mag = buildMaglev(s.reals, s.cand, maglevSize)
	return s, nil
}

// Kind returns the scheduler kind.
func (s *Sched) Kind() SchedKind { return s.kind }

// Flags returns the service flags the scheduler was built with.
func (s *Sched) Flags() ServiceFlags { return s.flags }

// Reals returns the reals in the order Pick's and Stateless's indices refer
// to (sorted by Hash). The slice is shared: callers must not modify it.
func (s *Sched) Reals() []SchedReal { return s.reals }

// Available returns how many reals can take new flows (Avail && Weight > 0).
func (s *Sched) Available() int { return len(s.cand) }

// ramping reports whether some candidate may still be in its slow-start ramp
// at clock now.
func (s *Sched) ramping(now int64) bool { return now < s.rampEnd }

// rampFactor returns real i's slow-start factor at clock now in 1..rampOne
// (rampOne: fully up). A real with UpSince 0 is taken as up since forever.
// Deviation from the brief's "at least 1 weight unit": the floor is
// 1/rampOne of the weight, so that weight-1 reals ramp too. Not inlined,
// so that its callers (effWeight) stay small enough to inline.
//
//go:noinline
func (s *Sched) rampFactor(i int, now int64) int64 {
	up := s.reals[i].UpSince
	if up == 0 {
		return rampOne
	}
	el := now - up
	if el >= s.slowStart {
		return rampOne
	}
	if el <= 0 {
		return 1
	}
	hi, lo := bits.Mul64(uint64(el), rampOne)
	q, _ := bits.Div64(hi, lo, uint64(s.slowStart)) // hi < slowStart since el < slowStart
	return max(int64(q), 1)
}

// effWeight returns real i's weight scaled by rampOne and by its slow-start
// factor when ramp is set: Weight*rampOne when fully up.
func (s *Sched) effWeight(i int, now int64, ramp bool) int64 {
	f := int64(rampOne)
	if ramp {
		f = s.rampFactor(i, now)
	}
	return int64(s.reals[i].Weight) * f
}

// isCand reports whether real i may take new flows.
func (s *Sched) isCand(i int) bool {
	return uint(i) < uint(len(s.reals)) && s.reals[i].Avail && s.reals[i].Weight > 0
}

// WorkerSched is one worker's mutable scheduling state: rr/wrr cursors and
// tie-break rotation per service, the lblc/lblcr locality table and the
// random state of twos. Only its worker touches it; nothing in it is shared.
type WorkerSched struct {
	worker  int
	conns   *ConnCounters
	own     *WorkerConns // if set, the worker's exact own counts
	rng     uint64
	svcs    []schedSvcState
	spare   schedSvcState // for an out-of-range service number
	loc     []schedLocEntry
	locUsed bool
}

// schedSvcState is a worker's state for one service.
type schedSvcState struct {
	cur  int32  // rr/wrr: index into Sched.cand of the last pick
	next uint32 // lc family: start of the next scan (tie-break rotation)
	cw   int64  // wrr: current weight (IPVS mark->cw); 0: unset
}

// NewWorkerSched makes the scheduling state of worker number worker, which
// reads connection counts from conns (nil: all counts read as zero) and seeds
// its random state from seed (twos).
func NewWorkerSched(worker int, conns *ConnCounters, seed uint64) *WorkerSched {
	if conns == nil {
		conns = NewConnCounters(1, 0) // every id reads as zero
	}
	w := &WorkerSched{
		worker: worker,
		conns:  conns,
		rng:    schedMix(seed ^ uint64(worker)*0x9e3779b97f4a7c15),
		loc:    make([]schedLocEntry, locSets*locWays),
	}
	w.spare = w.initState()
	return w
}

func (w *WorkerSched) initState() schedSvcState {
	// Start each worker at a different place so that workers do not pick in
	// lockstep (the cursor is taken modulo the number of candidates).
	return schedSvcState{cur: int32(w.worker) - 1, next: uint32(w.worker)}
}

// Reset sizes the per-service state for a snapshot with nServices services
// and resets the state of every service (cursors, locality table). Workers
// call it when the snapshot generation changes.
func (w *WorkerSched) Reset(nServices int) {
	if nServices < 0 {
		nServices = 0
	}
	if cap(w.svcs) >= nServices {
		w.svcs = w.svcs[:nServices]
	} else {
		w.svcs = make([]schedSvcState, nServices)
	}
	st := w.initState()
	for i := range w.svcs {
		w.svcs[i] = st
	}
	w.spare = st
	if w.locUsed {
		clear(w.loc)
		w.locUsed = false
	}
}

// UseWriter makes the scheduler read the worker's own counts from wc (exact,
// unflushed) and the other workers' from the shared counters.
func (w *WorkerSched) UseWriter(wc *WorkerConns) { w.own = wc }

// load returns the summed active and inactive connection counts of real id.
func (w *WorkerSched) load(id uint32) (active, inactive int64) {
	if w.own != nil {
		return w.own.Sum(id)
	}
	return w.conns.Sum(id)
}

// rand returns the next 64-bit pseudo-random number (wyrand).
func (w *WorkerSched) rand() uint64 {
	w.rng += 0xa0761d6478bd642f
	hi, lo := bits.Mul64(w.rng, w.rng^0xe7037ed1a0b428db)
	return hi ^ lo
}

// Pick chooses a real for a new flow f of service number svc (its index in
// the snapshot, below the count given to Reset), scheduled by s. now is the
// clock in unix nanoseconds, read once per burst by the caller (slow start,
// locality expiry). It returns an index into s.Reals(), or -1 when no real
// can take the flow. Pick does not allocate, lock or call through an
// interface.
func (w *WorkerSched) Pick(svc int, s *Sched, f *Flow, now int64) int {
	if s == nil || len(s.cand) == 0 {
		return -1
	}
	st := &w.spare
	if uint(svc) < uint(len(w.svcs)) {
		st = &w.svcs[svc]
	}
	switch s.kind {
	case SchedRR:
		return pickRR(st, s)
	case SchedWRR:
		return pickWRR(st, s, now)
	case SchedLC:
		return w.pickLeast(st, s, now, leastLC)
	case SchedWLC:
		return w.pickLeast(st, s, now, leastWLC)
	case SchedSED:
		return w.pickLeast(st, s, now, leastSED)
	case SchedNQ:
		return w.pickLeast(st, s, now, leastNQ)
	case SchedSH:
		return s.pickSH(f)
	case SchedDH:
		return s.pickDH(f)
	case SchedLBLC:
		return w.pickLBLC(svc, st, s, f, now)
	case SchedLBLCR:
		return w.pickLBLCR(svc, st, s, f, now)
	case SchedFO:
		return s.pickFO(now)
	case SchedOVF:
		return w.pickOVF(s, now)
	case SchedTwoS:
		return w.pickTwoS(s, now)
	case SchedMH:
		return s.Stateless(f)
	}
	return -1
}

// schedGCD returns the greatest common divisor of a and b (gcd(0, b) = b).
func schedGCD(a, b int64) int64 {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}

// satAdd adds two non-negative int64s, saturating at the maximum.
func satAdd(a, b int64) int64 {
	if c := a + b; c >= a {
		return c
	}
	return int64(^uint64(0) >> 1)
}

// ratioLess reports whether a/wa < b/wb for non-negative a, b and positive
// wa, wb, comparing a*wb < b*wa in 128 bits (IPVS cross-multiplies in 64).
func ratioLess(a, wa, b, wb int64) bool {
	h1, l1 := bits.Mul64(uint64(a), uint64(wb))
	h2, l2 := bits.Mul64(uint64(b), uint64(wa))
	return h1 < h2 || h1 == h2 && l1 < l2
}
