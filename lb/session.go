package lb

// This file holds the session (connection) entry that lives in a per-worker
// SessionTable (sessiontable.go). Entries are plain values with no Go pointers
// so the garbage collector never scans the table.

// Family values of Key.Family.
const (
	FamilyV4 = 4
	FamilyV6 = 6
)

// Key is the 5-tuple of a packet as it is seen on the wire. IPv4 addresses
// occupy Src[0:4] / Dst[0:4] and the rest is zero. 40 bytes.
type Key struct {
	Src, Dst     [16]byte
	SPort, DPort uint16 // host byte order; ICMP echo: id in both
	Proto        uint8  // 6, 17, 1, 58
	Family       uint8  // FamilyV4 or FamilyV6
	_            [2]byte
}

// TCP session states as seen by a load balancer that may see only the
// client-to-server direction (DSR), following IPVS's input-only state table.
const (
	StateNone        uint8 = iota
	StateSynSent           // client SYN seen
	StateSynRecv           // server SYN/ACK seen (nat/fullnat only)
	StateEstablished       // ACK after SYN, or data
	StateFinWait           // FIN seen
	StateClose             // RST seen, or both FINs
	StateUDP               // UDP flow
	StateICMP              // ICMP echo flow
)

// Entry flags.
const (
	// EntryReverse marks the reply-direction entry of a nat or fullnat
	// session; its Peer is the forward entry, which alone carries Expire,
	// State and the rewrite data.
	EntryReverse uint8 = 1 << iota
	// EntryPersist marks a persistence template (client → real) rather than a
	// connection.
	EntryPersist
	// Bits 6 and 7 are the TCP state machine's (sessionstate.go: which side
	// has sent a FIN); nothing else may use them.
)

// Entry is one session in a SessionTable: 64 bytes.
type Entry struct {
	Key    Key     // 40
	RealID uint32  // stable id of the real (Balancer-assigned)
	Peer   int32   // index of the paired entry (forward <-> reverse), -1: none
	Expire uint32  // clock value (seconds) after which the entry is dead
	LPort  uint16  // fullnat: local (SNAT) port, host byte order
	LAddr  uint8   // fullnat: index into the service's LocalAddrs
	State  uint8   // StateXxx
	MAC    [6]byte // source MAC of the client-side frame (next hop for replies)
	Flags  uint8
	Worker uint8 // owning worker (for diagnostics and hand-over checks)
}

// Timeouts are the session lifetimes per state, in seconds, like
// `ipvsadm --set tcp tcpfin udp` plus the states IPVS keeps fixed.
type Timeouts struct {
	SynSent     uint32 // default 60 (IPVS SYN_RECV 60)
	Established uint32 // default 900 (IPVS tcp 900)
	Fin         uint32 // default 120 (IPVS FIN_WAIT 120)
	Close       uint32 // default 10 (IPVS CLOSE 10)
	UDP         uint32 // default 300 (IPVS udp 300)
	ICMP        uint32 // default 60
}

// DefaultTimeouts are IPVS's defaults.
var DefaultTimeouts = Timeouts{SynSent: 60, Established: 900, Fin: 120, Close: 10, UDP: 300, ICMP: 60}

// For returns the timeout of a state.
func (t *Timeouts) For(state uint8) uint32 {
	switch state {
	case StateSynSent, StateSynRecv:
		return t.SynSent
	case StateEstablished:
		return t.Established
	case StateFinWait:
		return t.Fin
	case StateClose:
		return t.Close
	case StateUDP:
		return t.UDP
	case StateICMP:
		return t.ICMP
	}
	return t.Close
}

// Active reports whether a state counts as an active connection for the
// lc-family schedulers (IPVS: ESTABLISHED is active, all else inactive).
func Active(state uint8) bool { return state == StateEstablished }
