package lb

import (
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"time"
)

// Config is everything a Balancer turns into a Snapshot.
type Config struct {
	Services []Service
	Timeouts Timeouts
	// NextHops maps a real's address to where its frames leave. A real with
	// no entry is unresolved: it is kept but receives no new flows.
	NextHops map[netip.Addr]NextHop
}

// Balancer is the control-plane owner of the load-balancing state: it
// validates configurations, assigns stable ids to services and reals, keeps
// removed reals while they drain, builds snapshots (schedulers and Maglev
// tables included) and publishes them atomically. Its methods are safe for
// concurrent use; workers only call Load.
type Balancer struct {
	cur   atomic.Pointer[Snapshot]
	conns *ConnCounters

	mu       sync.Mutex
	gen      uint64
	cfg      Config
	svcIDs   map[ServiceKey]uint32
	nextSvc  uint32
	realIDs  map[RealKey]uint32
	freeIDs  []uint32
	parked   map[uint32]bool // ids of dropped reals still counted in conns
	nextReal uint32
	upSince  map[RealKey]int64     // for slow start
	draining map[RealKey]drainInfo // removed from config, sessions kept
	now      func() time.Time
}

type drainInfo struct {
	real Real
	svc  Service
}

// ErrTooManyReals is returned when more reals exist (configured plus
// draining) than the connection counters were sized for.
var ErrTooManyReals = errors.New("too many real servers")

// NewBalancer makes a Balancer for the given number of workers and at most
// maxReals real servers (configured plus draining), publishing an empty
// snapshot.
func NewBalancer(workers, maxReals int) *Balancer {
	b := &Balancer{
		conns:    NewConnCounters(workers, maxReals),
		svcIDs:   map[ServiceKey]uint32{},
		realIDs:  map[RealKey]uint32{},
		upSince:  map[RealKey]int64{},
		draining: map[RealKey]drainInfo{},
		now:      time.Now,
	}
	b.cur.Store(&Snapshot{Timeouts: DefaultTimeouts})
	return b
}

// Load returns the current snapshot. Workers call it once per burst.
func (b *Balancer) Load() *Snapshot { return b.cur.Load() }

// Conns returns the connection counters the workers update.
func (b *Balancer) Conns() *ConnCounters { return b.conns }

// Config returns the configuration last applied.
func (b *Balancer) Config() Config {
	b.mu.Lock()
	defer b.mu.Unlock()
	return cloneConfig(b.cfg)
}

func cloneConfig(c Config) Config {
	out := c
	out.Services = make([]Service, len(c.Services))
	for i, s := range c.Services {
		s.Reals = append([]Real(nil), s.Reals...)
		s.LocalAddrs = append([]netip.Addr(nil), s.LocalAddrs...)
		out.Services[i] = s
	}
	if c.NextHops != nil {
		out.NextHops = make(map[netip.Addr]NextHop, len(c.NextHops))
		for k, v := range c.NextHops {
			out.NextHops[k] = v
		}
	}
	return out
}

// Apply validates cfg, builds a snapshot from it and publishes it. On error
// nothing changes. Reals that disappear from a service whose OnRemove is
// RemoveDrain stay in the snapshot (not schedulable) until Purge finds them
// without sessions.
func (b *Balancer) Apply(cfg Config) error {
	cfg = cloneConfig(cfg)
	if err := Validate(&cfg); err != nil {
		return err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	saved := b.save()
	now := b.now().UnixNano()

	// Reals removed by this config start draining (or go at once).
	present := map[RealKey]bool{}
	for _, s := range cfg.Services {
		for _, r := range s.Reals {
			present[RealKey{s.Key(), r.Addr, r.Port}] = true
		}
	}
	for _, s := range b.cfg.Services {
		for _, r := range s.Reals {
			k := RealKey{s.Key(), r.Addr, r.Port}
			if present[k] {
				continue
			}
			if s.OnRemove == RemoveDrain {
				b.draining[k] = drainInfo{real: r, svc: s}
			}
		}
	}
	for k := range b.draining {
		if present[k] {
			delete(b.draining, k) // re-added while draining: keeps its id
		}
	}
	snap, err := b.build(cfg, now)
	if err != nil {
		b.restore(saved)
		return err
	}
	b.cfg = cfg
	b.releaseUnused()
	b.cur.Store(snap)
	return nil
}

type balState struct {
	nextSvc, nextReal uint32
	g                 uint64
	svcIDs            map[ServiceKey]uint32
	realIDs           map[RealKey]uint32
	freeIDs           []uint32
	upSince           map[RealKey]int64
	draining          map[RealKey]drainInfo
}

func (b *Balancer) save() balState {
	return balState{g: b.gen, nextSvc: b.nextSvc, nextReal: b.nextReal,
		svcIDs: maps.Clone(b.svcIDs), realIDs: maps.Clone(b.realIDs), freeIDs: slices.Clone(b.freeIDs),
		upSince: maps.Clone(b.upSince), draining: maps.Clone(b.draining)}
}

func (b *Balancer) restore(st balState) {
	b.gen, b.nextSvc, b.nextReal = st.g, st.nextSvc, st.nextReal
	b.svcIDs, b.realIDs, b.freeIDs, b.upSince, b.draining = st.svcIDs, st.realIDs, st.freeIDs, st.upSince, st.draining
}

// Purge drops draining reals that have no sessions left on any worker and
// publishes a snapshot without them. It returns how many it dropped.
func (b *Balancer) Purge() (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	n := 0
	for k := range b.draining {
		id := b.realIDs[k]
		if a, i := b.conns.Sum(id); a+i == 0 {
			delete(b.draining, k)
			n++
		}
	}
	if n == 0 {
		b.releaseUnused()
		return 0, nil
	}
	snap, err := b.build(b.cfg, b.now().UnixNano())
	if err != nil {
		return 0, err
	}
	b.releaseUnused()
	b.cur.Store(snap)
	return n, nil
}

// Draining lists the reals kept only for their sessions.
func (b *Balancer) Draining() []RealKey {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := make([]RealKey, 0, len(b.draining))
	for k := range b.draining {
		out = append(out, k)
	}
	return out
}

// releaseUnused frees the ids of reals that are neither configured nor
// draining, so they can be reused.
func (b *Balancer) releaseUnused() {
	live := map[RealKey]bool{}
	for _, s := range b.cfg.Services {
		for _, r := range s.Reals {
			live[RealKey{s.Key(), r.Addr, r.Port}] = true
		}
	}
	for k := range b.draining {
		live[k] = true
	}
	for k, id := range b.realIDs {
		if !live[k] {
			delete(b.realIDs, k)
			delete(b.upSince, k)
			if b.parked == nil {
				b.parked = map[uint32]bool{}
			}
			b.parked[id] = true
		}
	}
	for id := range b.parked {
		if a, i := b.conns.Sum(id); a+i == 0 {
			delete(b.parked, id)
			b.freeIDs = append(b.freeIDs, id)
		}
	}
}

func (b *Balancer) realID(k RealKey) (uint32, error) {
	if id, ok := b.realIDs[k]; ok {
		return id, nil
	}
	var id uint32
	if n := len(b.freeIDs); n > 0 {
		id = b.freeIDs[n-1]
		b.freeIDs = b.freeIDs[:n-1]
	} else {
		if int(b.nextReal) >= b.conns.MaxReals() {
			return 0, fmt.Errorf("real %s: %w (limit %d)", k, ErrTooManyReals, b.conns.MaxReals())
		}
		id = b.nextReal
		b.nextReal++
	}
	b.realIDs[k] = id
	return id, nil
}

// build turns a validated config into a snapshot. Called with b.mu held.
func (b *Balancer) build(cfg Config, now int64) (*Snapshot, error) {
	b.gen++
	snap := &Snapshot{Gen: b.gen, Timeouts: cfg.Timeouts}
	if snap.Timeouts == (Timeouts{}) {
		snap.Timeouts = DefaultTimeouts
	}
	// Draining reals belong to their service if it still exists.
	drainBySvc := map[ServiceKey][]Real{}
	for k, d := range b.draining {
		drainBySvc[k.Service] = append(drainBySvc[k.Service], d.real)
	}
	for _, rs := range drainBySvc {
		sort.Slice(rs, func(i, j int) bool {
			return netip.AddrPortFrom(rs[i].Addr, rs[i].Port).String() < netip.AddrPortFrom(rs[j].Addr, rs[j].Port).String()
		})
	}
	nEndpoints := 0
	for _, s := range cfg.Services {
		nEndpoints += 1 + len(s.Reals) + len(s.LocalAddrs) + len(drainBySvc[s.Key()])
	}
	snap.index = newEndpointTable(nEndpoints)

	prevUp := map[RealKey]bool{}
	if old := b.cur.Load(); old != nil {
		for i := range old.Reals {
			r := &old.Reals[i]
			prevUp[r.Key] = r.State == RealUp && !r.Removed && r.NextHop.OK
		}
	}

	for si, s := range cfg.Services {
		key := s.Key()
		id, ok := b.svcIDs[key]
		if !ok {
			id = b.nextSvc
			b.nextSvc++
			b.svcIDs[key] = id
		}
		vip, fam := addrBytes(s.VIP)
		e := SvcEntry{
			Key: key, ID: id, Family: fam, Proto: uint8(s.Proto), Port: s.Port, VIP: vip,
			Method: s.Method, Flags: s.Flags, DSCP: s.DSCP, ClientPort: s.ClientPort, OnRemove: s.OnRemove,
			PersistTimeout: uint32((s.PersistTimeout + time.Second - 1) / time.Second),
		}
		if e.PersistTimeout > 0 {
			e.PersistMask = prefixMask(fam, s.PersistMask)
		}
		for _, la := range s.LocalAddrs {
			lb, lfam := addrBytes(la.Unmap())
			if lfam == fam {
				e.LocalAddrs = append(e.LocalAddrs, lb)
			}
		}
		snap.index.put(epService, fam, uint8(s.Proto), vip[:addrLen(fam)], s.Port, int32(si))
		if s.Port == 0 {
			snap.anyPort = true
		}
		if s.Proto == ProtoAny {
			snap.anyProto = true
		}
		for _, la := range e.LocalAddrs {
			snap.index.put(epLocalAddr, fam, 0, la[:addrLen(fam)], 0, int32(si))
		}

		all := append(append([]Real(nil), s.Reals...), drainBySvc[key]...)
		sreals := make([]SchedReal, 0, len(all))
		idxByID := map[uint32]int32{}
		for ri, r := range all {
			rk := RealKey{key, r.Addr, r.Port}
			rid, err := b.realID(rk)
			if err != nil {
				return nil, err
			}
			removed := ri >= len(s.Reals)
			m := r.Method
			if m == MethodDefault {
				m = s.Method
			}
			ra, rfam := addrBytes(r.Addr)
			hop, hopOK := cfg.NextHops[r.Addr]
			hop.OK = hop.OK || hopOK
			re := RealEntry{
				Key: rk, ID: rid, Svc: int32(si), Family: rfam, Method: m, State: r.State,
				Removed: removed, Port: r.Port, Addr: ra, Weight: int32(r.Weight), NextHop: hop,
			}
			// Slow start counts from when the real can take flows: up,
			// configured, and its next hop resolved.
			up := r.State == RealUp && !removed && hop.OK
			if up && !prevUp[rk] {
				b.upSince[rk] = now
			}
			idxByID[rid] = int32(len(snap.Reals))
			snap.Reals = append(snap.Reals, re)
			if m == MethodNAT {
				port := r.Port
				if port == 0 {
					port = s.Port
				}
				// A real shared by several nat services answers from one
				// address:port; the first service wins the reply index.
				if s.Proto == ProtoAny || port == 0 {
					snap.natWild = true
				}
				snap.index.put(epNATReal, rfam, uint8(s.Proto), ra[:addrLen(rfam)], port, int32(len(snap.Reals)-1))
			}
			sw := int32(r.Weight)
			if removed {
				sw = 0
			}
			sreals = append(sreals, SchedReal{
				ID: rid, Weight: sw, Avail: up,
				UpSince: b.upSince[rk], Hash: RealHash(r.Addr, r.Port),
			})
		}
		kind, err := ParseSched(s.Scheduler)
		if err != nil {
			return nil, fmt.Errorf("service %s: %w", key, err)
		}
		sched, err := NewSched(kind, s.Flags, sreals, s.MaglevSize, s.SlowStart)
		if err != nil {
			return nil, fmt.Errorf("service %s: %w", key, err)
		}
		e.Sched = sched
		e.Owned = e.PersistTimeout > 0 || s.Method == MethodNAT || s.Method == MethodFullNAT
		for _, r := range all {
			if r.Method == MethodNAT || r.Method == MethodFullNAT {
				e.Owned = true
			}
		}
		for _, sr := range sched.Reals() {
			e.RealIdx = append(e.RealIdx, idxByID[sr.ID])
		}
		snap.Services = append(snap.Services, e)
	}
	maxID := uint32(0)
	for i := range snap.Reals {
		if snap.Reals[i].ID+1 > maxID {
			maxID = snap.Reals[i].ID + 1
		}
	}
	snap.realByID = make([]int32, maxID)
	for i := range snap.realByID {
		snap.realByID[i] = -1
	}
	for i := range snap.Reals {
		snap.realByID[snap.Reals[i].ID] = int32(i)
	}
	return snap, nil
}

func prefixMask(family uint8, bits int) [16]byte {
	var m [16]byte
	n := addrLen(family)
	if bits <= 0 || bits > 8*n {
		bits = 8 * n
	}
	for i := 0; i < n; i++ {
		switch {
		case bits >= 8:
			m[i] = 0xff
			bits -= 8
		case bits > 0:
			m[i] = byte(0xff << (8 - bits))
			bits = 0
		}
	}
	return m
}
