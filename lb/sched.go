package lb

// This file holds the scheduler types shared by every scheduler family
// (sched_*.go) and the snapshot builder. A Sched is immutable and lives in a
// Snapshot; the mutable per-worker state (rr cursors, lblc tables, random
// state) lives in a WorkerSched that one worker alone writes. Connection
// counts for the lc family are per-worker counters (ConnCounters) that the
// picking worker sums without locks.

// SchedKind names a scheduler.
type SchedKind uint8

// Schedulers, with IPVS's names.
const (
	SchedRR    SchedKind = iota // round robin
	SchedWRR                    // weighted round robin
	SchedLC                     // least connection
	SchedWLC                    // weighted least connection
	SchedSED                    // shortest expected delay
	SchedNQ                     // never queue
	SchedSH                     // source hashing
	SchedDH                     // destination hashing
	SchedLBLC                   // locality-based least connection
	SchedLBLCR                  // locality-based least connection with replication
	SchedFO                     // weighted failover
	SchedOVF                    // weighted overflow
	SchedTwoS                   // weighted random twos choice
	SchedMH                     // Maglev hashing
)

// SchedReal is what a scheduler knows of one real server.
type SchedReal struct {
	ID     uint32 // stable real id: index into ConnCounters
	Weight int32  // configured weight; 0 takes no new flows
	// Avail is false for reals that are draining, down or removed: they are
	// never picked for new flows (sh/mh without FlagFallback then fail).
	Avail bool
	// UpSince is the clock (unix nanoseconds) at which the real was added or
	// last came up; slow start ramps its weight from there.
	UpSince int64
	// Hash is a stable hash of the real's address and port, used by the
	// Maglev permutation and consistent tie-breaks (same on every node).
	Hash uint64
}

// Flow is what a scheduler may look at of a new flow. Addresses as in Key.
type Flow struct {
	Src, Dst     [16]byte
	SPort, DPort uint16
	Family       uint8
	Hash         uint64 // hash of the 5-tuple (for stateless picks)
}
