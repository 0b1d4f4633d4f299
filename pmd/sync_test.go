package pmd

import (
	"net/netip"
	"testing"
	"time"

	"gvs/driver"
	"gvs/driver/mem"
	"gvs/lb"
	"gvs/pipeline"
)

// Two engines of two workers each, master and backup: the master's
// workers export the sessions of 100 flows, each record goes to the
// import ring of the backup worker that owns the flow (pipeline.SyncOwner),
// the running backup workers install them between bursts, and the flows'
// next packets, sent to the backup, reach the real the master chose.
func TestSyncRingsBetweenEngines(t *testing.T) {
	svc, hops := natService(3)
	engine := func() (*Engine, *mem.Port, *lb.Balancer) {
		bal := lb.NewBalancer(2, 64)
		if err := bal.Apply(lb.Config{Services: []lb.Service{svc}, NextHops: hops}); err != nil {
			t.Fatal(err)
		}
		port, err := mem.New(mem.Config{MAC: lbMAC, Queues: 2, RingSize: 4096, Frames: 16384})
		if err != nil {
			t.Fatal(err)
		}
		e, err := New(Config{Workers: 2, Ports: []driver.Port{port}, Balancer: bal, Sessions: 4096, SyncRing: 1024})
		if err != nil {
			t.Fatal(err)
		}
		e.Start()
		t.Cleanup(e.Stop)
		return e, port, bal
	}
	master, mport, _ := engine()
	backup, bport, bbal := engine()
	const flows = 100
	var pkts [][]byte
	for i := 0; i < flows; i++ {
		pkts = append(pkts, tcp4(t, client(i), vip, uint16(10000+i), 80, true, clientMAC))
	}
	mport.MemQueue(0).Inject(pkts...)
	realOf := map[netip.AddrPort]netip.Addr{}
	for _, b := range drainAll(t, mport, flows) {
		s := decode(t, b)
		realOf[netip.AddrPortFrom(s.src, s.sport)] = s.dst
	}
	// The sync sender's part: drain the master's export rings and hand
	// each record to its owner on the backup.
	var recs []lb.SyncRecord
	buf := make([]lb.SyncRecord, 64)
	deadline := time.Now().Add(5 * time.Second)
	for len(recs) < flows && time.Now().Before(deadline) {
		for _, w := range master.Workers() {
			exp, _ := w.SyncRings()
			recs = append(recs, buf[:exp.Pop(buf)]...)
		}
	}
	if len(recs) != flows {
		t.Fatalf("%d records exported, want %d", len(recs), flows)
	}
	for i := range recs {
		o := pipeline.SyncOwner(bbal.Load(), &recs[i], 2)
		_, imp := backup.Workers()[o].SyncRings()
		if !imp.Push(&recs[i]) {
			t.Fatal("import ring full")
		}
	}
	var imported uint64
	for time.Now().Before(deadline) {
		imported = backup.Workers()[0].SyncStats().Imported + backup.Workers()[1].SyncStats().Imported
		if imported == flows {
			break
		}
		time.Sleep(time.Millisecond)
	}
	if imported != flows {
		t.Fatalf("%d imported", imported)
	}
	// Mid-flow ACKs on the backup go to the same reals.
	pkts = pkts[:0]
	for i := 0; i < flows; i++ {
		pkts = append(pkts, tcp4(t, client(i), vip, uint16(10000+i), 80, false, clientMAC))
	}
	bport.MemQueue(1).Inject(pkts...)
	for _, b := range drainAll(t, bport, flows) {
		s := decode(t, b)
		if want := realOf[netip.AddrPortFrom(s.src, s.sport)]; s.dst != want {
			t.Fatalf("flow %v:%d: backup sent to %v, master to %v", s.src, s.sport, s.dst, want)
		}
	}
	st := master.Workers()[0].SyncStats()
	if st.ExportOverflows != 0 {
		t.Fatalf("%+v", st)
	}
}
