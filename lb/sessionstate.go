package lb

// This file holds the TCP state machine of session entries, after IPVS's
// tcp_states (net/netfilter/ipvs/ip_vs_proto_tcp.c) reduced to the states of
// session.go, and the timeouts it arms.
//
// A packet is classified by its flags, first match wins as in IPVS: RST, else
// SYN, else FIN, else ACK; a packet with none of these changes nothing but
// the timer. Columns are the current state, cells the next one:
//
//	from client  None     SynSent  SynRecv  Estab    FinWait  Close
//	  SYN        SynSent  SynSent  SynRecv  Estab    SynSent  SynSent
//	  FIN        Close    FinWait  FinWait  FinWait  FinWait* Close
//	  ACK        Estab    Estab    Estab    Estab    FinWait  Close
//	  RST        Close    Close    Close    Close    Close    Close
//
//	from server  None     SynSent  SynRecv  Estab    FinWait  Close
//	  SYN(+ACK)  SynRecv  SynRecv  SynRecv  Estab    FinWait  Close
//	  FIN        Close    FinWait  FinWait  FinWait  FinWait* Close
//	  ACK        Estab    SynSent  SynRecv  Estab    FinWait  Close
//	  RST        Close    Close    Close    Close    Close    Close
//
// * FinWait becomes Close once both sides have sent a FIN (IPVS: TIME_WAIT;
// here the real server keeps TIME_WAIT and the balancer keeps the short Close
// timer for the last ACKs). Which sides have sent one is kept in two private
// Flags bits, since there is no CLOSE_WAIT state to tell them apart.
//
// DSR (dr, l3dsr, tunnel) sees only the client's half: that is IPVS's
// "input only" table, the first block alone. SYN/ACK never shows, ACK after
// SYN establishes, a FIN leads to FinWait for good (Fin timeout) and a RST to
// Close. nat/fullnat see both halves and use both blocks.
//
// IPVS names its states from the server's side (a client SYN gives its
// SYN_RECV); session.go names them from the client's, and the table maps
// them. Like IPVS: a stray SYN on Established changes nothing, and a SYN on
// FinWait/Close starts over at SynSent (TIME_WAIT reuse of a client port;
// Advance keeps RealID, rescheduling is the caller's choice). Departures, on
// purpose: the server's ACK alone never establishes (the client's ACK of the
// SYN/ACK does); a client RST on SynRecv closes (IPVS keeps SYN_RECV); both
// FINs give Close rather than TIME_WAIT.

// TCP header flag bits Advance looks at (the pipeline passes the raw byte).
const (
	tcpFin uint8 = 0x01
	tcpSyn uint8 = 0x02
	tcpRst uint8 = 0x04
	tcpAck uint8 = 0x10
)

// Private Entry.Flags bits: which sides have sent a FIN. session.go defines
// bits 0 and 1; these take the top two.
const (
	entryFinClient uint8 = 1 << 6
	entryFinServer uint8 = 1 << 7
)

// TCP events, in the order of the rows above.
const (
	tcpEvSyn = iota
	tcpEvFin
	tcpEvAck
	tcpEvRst
	tcpEvNone
)

const (
	sNO = StateNone
	sSS = StateSynSent
	sSR = StateSynRecv
	sES = StateEstablished
	sFW = StateFinWait
	sCL = StateClose
)

// tcpNext is the table above: [0 client, 1 server][event][state].
var tcpNext = [2][4][StateClose + 1]uint8{
	{ // from client
		tcpEvSyn: {sSS, sSS, sSR, sES, sSS, sSS},
		tcpEvFin: {sCL, sFW, sFW, sFW, sFW, sCL},
		tcpEvAck: {sES, sES, sES, sES, sFW, sCL},
		tcpEvRst: {sCL, sCL, sCL, sCL, sCL, sCL},
	},
	{ // from server
		tcpEvSyn: {sSR, sSR, sSR, sES, sFW, sCL},
		tcpEvFin: {sCL, sFW, sFW, sFW, sFW, sCL},
		tcpEvAck: {sES, sSS, sSR, sES, sFW, sCL},
		tcpEvRst: {sCL, sCL, sCL, sCL, sCL, sCL},
	},
}

// tcpEvent classifies a TCP flags byte like IPVS's tcp_state_idx.
func tcpEvent(flags uint8) int {
	switch {
	case flags&tcpRst != 0:
		return tcpEvRst
	case flags&tcpSyn != 0:
		return tcpEvSyn
	case flags&tcpFin != 0:
		return tcpEvFin
	case flags&tcpAck != 0:
		return tcpEvAck
	}
	return tcpEvNone
}

// Advance updates e for one packet and returns e's previous state. tcpFlags
// is the TCP header's flags byte (FIN 0x01, SYN 0x02, RST 0x04, ACK 0x10;
// ignored for other protocols) and fromClient the packet's direction. A TCP
// entry follows the table at the top of this file; an entry of another
// protocol gets StateUDP (UDP and anything else) or StateICMP (ICMP, ICMPv6)
// on its first packet and afterwards is only refreshed. Either way e.Expire
// becomes now + the new state's timeout. The caller moves the real's
// connection from inactive to active (or back) when Active(prev) !=
// Active(e.State).
func (t *SessionTable) Advance(e *Entry, tcpFlags uint8, fromClient bool, now uint32) (prev uint8) {
	prev = e.State
	next := prev
	switch {
	case prev == StateUDP || prev == StateICMP:
	case e.Key.Proto == 1 || e.Key.Proto == 58:
		next = StateICMP
	case e.Key.Proto != 6:
		next = StateUDP
	default:
		next = e.tcpAdvance(tcpFlags, fromClient)
	}
	e.State = next
	e.Expire = now + t.timeouts.For(next)
	return prev
}

// tcpAdvance returns e's next TCP state and keeps its FIN bits.
func (e *Entry) tcpAdvance(flags uint8, fromClient bool) uint8 {
	st := e.State
	if st > StateClose {
		st = StateNone // not a TCP state: start over
	}
	ev := tcpEvent(flags)
	if ev == tcpEvNone {
		return st
	}
	dir, mine, theirs := 0, entryFinClient, entryFinServer
	if !fromClient {
		dir, mine, theirs = 1, entryFinServer, entryFinClient
	}
	next := tcpNext[dir][ev][st]
	switch {
	case ev == tcpEvFin:
		e.Flags |= mine
		if next == StateFinWait && e.Flags&theirs != 0 {
			next = StateClose
		}
	case next == StateSynSent && st >= StateFinWait:
		e.Flags &^= entryFinClient | entryFinServer // a new connection
	}
	return next
}
