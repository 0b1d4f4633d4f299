package pipeline

import (
	"net"
	"slices"
	"testing"

	"gvs/lb"
)

// withExport replaces e's pipeline by one that exports into a new ring.
func withExport(t *testing.T, e *env) *lb.SyncRing {
	t.Helper()
	ring := lb.NewSyncRing(1024)
	p, err := New(Config{Worker: 0, Workers: 1, Balancer: e.bal, PortMACs: []net.HardwareAddr{portMAC}, PortMTUs: []int{1500}, Sessions: 1024, Export: ring})
	if err != nil {
		t.Fatal(err)
	}
	e.pipe = p
	return ring
}

func drain(r *lb.SyncRing) []lb.SyncRecord {
	out := make([]lb.SyncRecord, r.Len())
	return out[:r.Pop(out)]
}

// Session sync between two nodes whose reals have other stable ids (the
// backup lists them in another order): the master exports the session and
// its state changes, the backup imports them, and after a failover the
// backup forwards the flow's next packets to the same real, maps the
// replies back — with the same fullnat local port — and removes the
// session when the master says so.
func TestSessionSyncExportImport(t *testing.T) {
	for _, m := range []lb.Method{lb.MethodNAT, lb.MethodFullNAT, lb.MethodDR} {
		for _, v6 := range []bool{false, true} {
			name := m.String() + map[bool]string{false: "/v4", true: "/v6"}[v6]
			t.Run(name, func(t *testing.T) {
				svc := testService(m, v6, lb.ProtoTCP, "rr", 4)
				master := newEnv(t, 1024, svc)
				exp := withExport(t, master)
				back := svc
				back.Reals = slices.Clone(svc.Reals)
				slices.Reverse(back.Reals)
				backup := newEnv(t, 1024, back)
				cl := clientAddr(v6, 7)

				// Two flows on the master, so the second lands on real 1
				// (rr), which is the backup's real 2.
				master.run(build(t, pktSpec{src: clientAddr(v6, 1), dst: svc.VIP, sport: 1000, dport: vipPort, syn: true}))
				res := master.run(build(t, pktSpec{src: cl, dst: svc.VIP, sport: 40000, dport: vipPort, syn: true}))
				if len(res.tx) != 1 {
					t.Fatal("SYN not forwarded")
				}
				first := decodeFrame(t, res.tx[0])
				recs := drain(exp)
				if len(recs) != 2 || recs[1].Kind != lb.SyncNew || recs[1].State != lb.StateSynSent {
					t.Fatalf("exported %+v", recs)
				}
				if m == lb.MethodFullNAT && recs[1].LPort == 0 {
					t.Fatal("no local port in the record")
				}
				// The handshake's last ACK changes the state: an update.
				master.run(build(t, pktSpec{src: cl, dst: svc.VIP, sport: 40000, dport: vipPort, ack: true}))
				up := drain(exp)
				if len(up) != 1 || up[0].Kind != lb.SyncUpdate || up[0].State != lb.StateEstablished {
					t.Fatalf("update %+v", up)
				}
				// The backup imports everything.
				st := backup.pipe.Import(backup.now, append(recs, up...))
				if st.New != 2 || st.Updated != 1 || st.Skipped != 0 {
					t.Fatalf("import %+v", st)
				}
				// Failover: the next data packet reaches the backup.
				res = backup.run(build(t, pktSpec{src: cl, dst: svc.VIP, sport: 40000, dport: vipPort, ack: true, payload: []byte("GET /")}))
				if len(res.tx) != 1 {
					t.Fatalf("backup did not forward the synced flow: drops %d", len(res.drop))
				}
				got := decodeFrame(t, res.tx[0])
				if m == lb.MethodDR {
					if got.eth.DstMAC.String() != net.HardwareAddr(backupMAC(first.eth.DstMAC, len(svc.Reals))).String() {
						t.Fatalf("dr: sent to %v, master used %v", got.eth.DstMAC, first.eth.DstMAC)
					}
					return
				}
				if got.dst != first.dst || got.dport != first.dport || got.src != first.src || got.sport != first.sport {
					t.Fatalf("backup rewrote to %v:%d from %v:%d, master to %v:%d from %v:%d",
						got.dst, got.dport, got.src, got.sport, first.dst, first.dport, first.src, first.sport)
				}
				// The real's reply is mapped back to the VIP.
				reply := build(t, pktSpec{src: got.dst, dst: got.src, sport: got.dport, dport: got.sport, ack: true, payload: []byte("200")})
				res = backup.run(reply)
				if len(res.tx) != 1 {
					t.Fatalf("reply not mapped: drops %d slow %d", len(res.drop), len(res.slow))
				}
				r := decodeFrame(t, res.tx[0])
				if r.src != svc.VIP || r.sport != vipPort || r.dst != cl || r.dport != 40000 {
					t.Fatalf("reply %v:%d -> %v:%d", r.src, r.sport, r.dst, r.dport)
				}
				// A removal on the master removes the copy.
				closed := lb.SyncRecord{Key: recs[1].Key, Kind: lb.SyncClosed}
				if st := backup.pipe.Import(backup.now, []lb.SyncRecord{closed}); st.Closed != 1 {
					t.Fatalf("close %+v", st)
				}
				res = backup.run(build(t, pktSpec{src: cl, dst: svc.VIP, sport: 40000, dport: vipPort, ack: true}))
				if len(res.tx) != 0 {
					t.Fatal("closed session still forwarded")
				}
			})
		}
	}
}

// backupMAC maps real i's MAC in the master's order to the backup's
// (reversed) order.
func backupMAC(mac net.HardwareAddr, n int) []byte {
	i := int(mac[5])
	m := realMAC(n - 1 - i)
	return m[:]
}

// Records the backup cannot place are skipped and counted; a full dump
// converts entries back to records.
func TestSessionSyncSkipsAndRecords(t *testing.T) {
	svc := testService(lb.MethodNAT, false, lb.ProtoTCP, "rr", 2)
	master := newEnv(t, 1024, svc)
	exp := withExport(t, master)
	master.run(build(t, pktSpec{src: clientAddr(false, 1), dst: svc.VIP, sport: 1000, dport: vipPort, syn: true}))
	recs := drain(exp)
	other := testService(lb.MethodNAT, false, lb.ProtoTCP, "rr", 2)
	other.Reals[0].Addr, other.Reals[1].Addr = realFor(lb.MethodNAT, false, 5), realFor(lb.MethodNAT, false, 6)
	backup := newEnv(t, 1024, other)
	if st := backup.pipe.Import(backup.now, recs); st.Skipped != 1 || st.New != 0 {
		t.Fatalf("unknown real: %+v", st)
	}
	// RecordOf over the master's table gives the same record.
	tab := master.pipe.Sessions()
	var got []lb.SyncRecord
	for i := 0; i < tab.Cap(); i++ {
		if r, ok := RecordOf(master.bal.Load(), tab.Entry(int32(i))); ok {
			got = append(got, r)
		}
	}
	if len(got) != 1 || got[0] != recs[0] {
		t.Fatalf("RecordOf %+v, exported %+v", got, recs)
	}
	// The owner of a nat flow is the pipeline's.
	if SyncOwner(master.bal.Load(), &recs[0], 1) != 0 {
		t.Fatal("owner with one worker")
	}
	k := recs[0].Key
	want := int(clientHash(k.Src[:4], k.SPort) % 4)
	if o := SyncOwner(master.bal.Load(), &recs[0], 4); o != want {
		t.Fatalf("owner %d, want %d", o, want)
	}
}

// A full export ring drops and counts; it never blocks the worker.
func TestSessionSyncExportOverflow(t *testing.T) {
	svc := testService(lb.MethodNAT, false, lb.ProtoUDP, "rr", 2)
	e := newEnv(t, 4096, svc)
	ring := lb.NewSyncRing(8)
	p, err := New(Config{Worker: 0, Workers: 1, Balancer: e.bal, PortMACs: []net.HardwareAddr{portMAC}, PortMTUs: []int{1500}, Sessions: 4096, Export: ring})
	if err != nil {
		t.Fatal(err)
	}
	e.pipe = p
	var pkts [][]byte
	for i := 0; i < 20; i++ {
		pkts = append(pkts, build(t, pktSpec{src: clientAddr(false, i), dst: svc.VIP, sport: 1000, dport: vipPort, udp: true}))
	}
	if res := e.run(pkts...); len(res.tx) != 20 {
		t.Fatalf("forwarded %d", len(res.tx))
	}
	if ring.Len() != 8 || ring.Overflows() != 12 {
		t.Fatalf("ring %d queued, %d overflows", ring.Len(), ring.Overflows())
	}
}
