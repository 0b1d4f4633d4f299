package pipeline

import (
	"sync/atomic"
)

// Counter names a per-worker counter. Counters are plain uint64s the worker
// alone increments; Publish copies them into atomics that readers sum, so a
// reader never slows the fast path and the race detector stays quiet.
type Counter int

// Worker counters.
const (
	CtrRxPkts Counter = iota
	CtrRxBytes
	CtrTxPkts
	CtrTxBytes
	CtrSlowPath     // handed to the slow path (not for a VIP, ARP, ...)
	CtrHandoverOut  // given to the owning worker
	CtrSessionHit   // packets that found their session
	CtrSessionNew   // sessions created
	CtrReplies      // nat/fullnat replies rewritten back to the VIP
	CtrStateless    // forwarded with a stateless Maglev pick (table full, mid-flow)
	CtrPersistHit   // new connections that followed a persistence template
	CtrICMPErrors   // ICMP errors sent to the real of their flow
	CtrFragFollowed // non-first fragments that followed their first fragment
	CtrFrag3Tuple   // non-first fragments scheduled on (src, dst, proto)
	CtrExpired      // sessions expired
	CtrRealGone     // sessions dropped because their real was removed (RemoveDrop)
	CtrSessionsLive // entries in the session table now (a gauge, set when published)
	CtrSessionReuse // SYNs on the 5-tuple of a closed session, scheduled anew
	numCounters
)

var counterNames = [numCounters]string{
	"rx_packets", "rx_bytes", "tx_packets", "tx_bytes", "slow_path", "handover_out",
	"session_hits", "sessions_new", "replies", "stateless_picks", "persist_hits",
	"icmp_errors", "frags_followed", "frags_3tuple", "sessions_expired", "sessions_real_gone", "sessions_live", "sessions_reused",
}

func (c Counter) String() string { return counterNames[c] }

// NumCounters is the number of worker counters.
const NumCounters = int(numCounters)

// DropReason says why the pipeline dropped a packet.
type DropReason int

// Drop reasons. The first ones mirror the parser's verdicts.
const (
	DropParseTruncated DropReason = iota
	DropParseBadVersion
	DropParseBadIHL
	DropParseBadLength
	DropParseBadExtHeader
	DropParseBadFragment
	DropNoReal        // the service has no available real
	DropNoNextHop     // the real's next hop is not resolved
	DropSessionFull   // nat/fullnat flow and no room in the session table
	DropNATCollision  // the reply tuple of a nat flow is taken
	DropNoLocalPort   // fullnat: no free local port
	DropTooBig        // encapsulated packet exceeds the port MTU
	DropICMPNoSession // ICMP error for a VIP flow no worker knows
	DropFragNoSession // non-first fragment of a nat/fullnat flow no worker knows
	DropTCPNoSession  // nat/fullnat mid-flow TCP packet without a session
	numDropReasons
)

var dropNames = [numDropReasons]string{
	"truncated", "bad_version", "bad_ihl", "bad_length", "bad_ext_header", "bad_fragment",
	"no_real", "no_nexthop", "session_full", "nat_collision", "no_local_port", "too_big",
	"icmp_no_session", "frag_no_session", "tcp_no_session",
}

func (d DropReason) String() string { return dropNames[d] }

// NumDropReasons is the number of drop reasons.
const NumDropReasons = int(numDropReasons)

// dropForVerdict maps a parser drop verdict to its reason.
func dropForVerdict(v Verdict) DropReason {
	switch v {
	case DropTruncated:
		return DropParseTruncated
	case DropBadVersion:
		return DropParseBadVersion
	case DropBadIHL:
		return DropParseBadIHL
	case DropBadLength:
		return DropParseBadLength
	case DropBadExtHeader:
		return DropParseBadExtHeader
	}
	return DropParseBadFragment
}

// Per-real counters, indexed by real id.
const (
	RealConns = iota // sessions created
	RealInPkts
	RealInBytes
	RealOutPkts // replies (nat, fullnat)
	RealOutBytes
	// Passive health signals (DPVS dest-check style): TCP sessions that
	// reached ESTABLISHED, and TCP sessions that expired still in the
	// handshake (the real never completed it).
	RealEstablished
	RealSynExpired
	numRealCounters
)

// NumRealCounters is the number of counters per real.
const NumRealCounters = numRealCounters

// counters are one worker's plain counters.
type counters struct {
	c    [numCounters]uint64
	drop [numDropReasons]uint64
	real [][numRealCounters]uint64 // by real id
}

// Stats is the published copy of a worker's counters: safe to read from any
// goroutine, updated by the worker every publish interval.
type Stats struct {
	c    [numCounters]atomic.Uint64
	drop [numDropReasons]atomic.Uint64
	real [][numRealCounters]atomic.Uint64
}

func newStats(maxReals int) *Stats {
	return &Stats{real: make([][numRealCounters]atomic.Uint64, maxReals)}
}

// Counter returns a published worker counter.
func (s *Stats) Counter(c Counter) uint64 { return s.c[c].Load() }

// Drops returns the published count of one drop reason.
func (s *Stats) Drops(d DropReason) uint64 { return s.drop[d].Load() }

// Real returns a published per-real counter (RealConns, RealInPkts, ...).
func (s *Stats) Real(id uint32, which int) uint64 {
	if int(id) >= len(s.real) {
		return 0
	}
	return s.real[id][which].Load()
}

// publish copies the first nReals per-real counters and all others.
func (s *Stats) publish(c *counters, nReals int) {
	for i := range c.c {
		s.c[i].Store(c.c[i])
	}
	for i := range c.drop {
		s.drop[i].Store(c.drop[i])
	}
	if nReals > len(c.real) {
		nReals = len(c.real)
	}
	for id := 0; id < nReals; id++ {
		for j := 0; j < numRealCounters; j++ {
			s.real[id][j].Store(c.real[id][j])
		}
	}
}
