package lb

import "testing"

// step is one packet of a state-machine script and what must follow.
type step struct {
	flags      uint8
	fromClient bool
	want       uint8 // state after the packet
}

const (
	cli = true
	srv = false
)

// runScript feeds steps to a fresh entry of proto at clock 1000, 1010, ...
// and checks the state, the returned previous state and Expire after each.
func runScript(t *testing.T, st *SessionTable, proto uint8, steps []step) *Entry {
	t.Helper()
	k := keyV4([4]byte{198, 18, 0, 1}, [4]byte{198, 19, 0, 1}, 40000, 80)
	k.Proto = proto
	e := &Entry{Key: k, Peer: -1}
	for n, s := range steps {
		now := uint32(1000 + 10*n)
		before := e.State
		prev := st.Advance(e, s.flags, s.fromClient, now)
		if prev != before || e.State != s.want {
			t.Fatalf("step %d (flags %#x, client %v): prev %d state %d, want prev %d state %d",
				n, s.flags, s.fromClient, prev, e.State, before, s.want)
		}
		if want := now + st.Timeouts().For(s.want); e.Expire != want {
			t.Fatalf("step %d: Expire %d, want %d", n, e.Expire, want)
		}
	}
	return e
}

const (
	fin    = tcpFin | tcpAck
	syn    = tcpSyn
	synack = tcpSyn | tcpAck
	ack    = tcpAck
	rst    = tcpRst
	psh    = 0x08 | tcpAck // data
)

func TestSessionStateTimeouts(t *testing.T) {
	to := Timeouts{SynSent: 11, Established: 22, Fin: 33, Close: 44, UDP: 55, ICMP: 66}
	st := NewSessionTable(10, to)
	k := keyV4([4]byte{1, 1, 1, 1}, [4]byte{2, 2, 2, 2}, 1, 2)
	e := &Entry{Key: k}
	for _, c := range []struct {
		flags  uint8
		client bool
		state  uint8
		expire uint32
	}{
		{syn, cli, StateSynSent, 100 + 11},
		{synack, srv, StateSynRecv, 100 + 11},
		{ack, cli, StateEstablished, 100 + 22},
		{fin, cli, StateFinWait, 100 + 33},
		{fin, srv, StateClose, 100 + 44},
	} {
		st.Advance(e, c.flags, c.client, 100)
		if e.State != c.state || e.Expire != c.expire {
			t.Fatalf("after flags %#x: state %d expire %d, want %d %d", c.flags, e.State, e.Expire, c.state, c.expire)
		}
	}
	u := &Entry{Key: k}
	u.Key.Proto = 17
	if st.Advance(u, 0, cli, 100); u.State != StateUDP || u.Expire != 155 {
		t.Fatalf("udp: state %d expire %d", u.State, u.Expire)
	}
	if prev := st.Advance(u, tcpSyn|tcpRst, srv, 200); prev != StateUDP || u.State != StateUDP || u.Expire != 255 {
		t.Fatalf("udp refresh: prev %d state %d expire %d", prev, u.State, u.Expire)
	}
	for _, p := range []uint8{1, 58} {
		i := &Entry{Key: k}
		i.Key.Proto = p
		if st.Advance(i, 0, cli, 100); i.State != StateICMP || i.Expire != 166 {
			t.Fatalf("icmp proto %d: state %d expire %d", p, i.State, i.Expire)
		}
	}
}

func TestSessionStateNAT(t *testing.T) {
	st := NewSessionTable(10, DefaultTimeouts)
	e := runScript(t, st, 6, []step{
		{syn, cli, StateSynSent},
		{syn, cli, StateSynSent}, // retransmitted SYN
		{synack, srv, StateSynRecv},
		{synack, srv, StateSynRecv},
		{ack, srv, StateSynRecv}, // the server alone cannot establish
		{ack, cli, StateEstablished},
		{psh, srv, StateEstablished},
		{psh, cli, StateEstablished},
		{syn, cli, StateEstablished}, // stray SYN changes nothing
		{0, cli, StateEstablished},   // no flags: only the timer
		{fin, cli, StateFinWait},     // client half-closes
		{psh, srv, StateFinWait},     // server still sends
		{fin, cli, StateFinWait},     // retransmitted FIN
		{ack, cli, StateFinWait},
		{fin, srv, StateClose}, // both FINs
		{ack, cli, StateClose},
	})
	if e.Flags&(entryFinClient|entryFinServer) != entryFinClient|entryFinServer {
		t.Fatalf("FIN bits %#x", e.Flags)
	}
	// The server closes first.
	runScript(t, st, 6, []step{
		{syn, cli, StateSynSent},
		{synack, srv, StateSynRecv},
		{psh, cli, StateEstablished},
		{fin, srv, StateFinWait},
		{fin, srv, StateFinWait},
		{fin, cli, StateClose},
	})
	// Refused: the server answers the SYN with a RST.
	runScript(t, st, 6, []step{
		{syn, cli, StateSynSent},
		{rst | tcpAck, srv, StateClose},
	})
	// Reset while established, by either side.
	for _, side := range []bool{cli, srv} {
		runScript(t, st, 6, []step{
			{syn, cli, StateSynSent},
			{synack, srv, StateSynRecv},
			{ack, cli, StateEstablished},
			{rst, side, StateClose},
			{ack, cli, StateClose},
		})
	}
}

// TestSessionStateDSR follows IPVS's input-only table: the balancer sees the
// client's packets alone.
func TestSessionStateDSR(t *testing.T) {
	st := NewSessionTable(10, DefaultTimeouts)
	runScript(t, st, 6, []step{
		{syn, cli, StateSynSent},
		{ack, cli, StateEstablished},
		{psh, cli, StateEstablished},
		{fin, cli, StateFinWait},
		{ack, cli, StateFinWait},
		{fin, cli, StateFinWait}, // one side's FINs never make Close
		{rst, cli, StateClose},
	})
	// Picked up mid-stream (no SYN seen, e.g. after a failover).
	runScript(t, st, 6, []step{
		{psh, cli, StateEstablished},
	})
	runScript(t, st, 6, []step{
		{fin, cli, StateClose},
	})
}

// TestSessionStateReuse checks TIME_WAIT reuse: a new SYN on a closing entry
// starts a new connection, whose own close needs both FINs again.
func TestSessionStateReuse(t *testing.T) {
	st := NewSessionTable(10, DefaultTimeouts)
	for _, closing := range [][]step{
		{{fin, cli, StateFinWait}, {fin, srv, StateClose}},
		{{fin, srv, StateFinWait}},
		{{rst, cli, StateClose}},
	} {
		script := []step{{syn, cli, StateSynSent}, {synack, srv, StateSynRecv}, {ack, cli, StateEstablished}}
		script = append(script, closing...)
		script = append(script,
			step{syn, cli, StateSynSent},
			step{synack, srv, StateSynRecv},
			step{ack, cli, StateEstablished},
			step{fin, cli, StateFinWait}, // not Close: the old FINs are forgotten
			step{fin, srv, StateClose},
		)
		runScript(t, st, 6, script)
	}
}

// TestSessionStateActive checks the transitions the connection counters
// follow: only Established is active.
func TestSessionStateActive(t *testing.T) {
	st := NewSessionTable(10, DefaultTimeouts)
	e := &Entry{Key: keyV4([4]byte{1, 1, 1, 1}, [4]byte{2, 2, 2, 2}, 1, 2)}
	active := 0
	for _, p := range []step{{syn, cli, 0}, {ack, cli, 0}, {psh, cli, 0}, {fin, cli, 0}, {fin, srv, 0}, {syn, cli, 0}, {ack, cli, 0}, {rst, srv, 0}} {
		prev := st.Advance(e, p.flags, p.fromClient, 1)
		switch {
		case !Active(prev) && Active(e.State):
			active++
		case Active(prev) && !Active(e.State):
			active--
		}
		if active < 0 || active > 1 {
			t.Fatalf("active count %d", active)
		}
	}
	if active != 0 {
		t.Fatalf("active count %d after RST", active)
	}
}
