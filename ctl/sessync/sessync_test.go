package sessync

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"gvs/lb"
)

// fakeDP is a dataplane of n workers with a fixed table for dumps.
type fakeDP struct {
	exp, imp []*lb.SyncRing
	mu       sync.Mutex
	table    []lb.SyncRecord
	dumps    int
}

func newFakeDP(n int) *fakeDP {
	d := &fakeDP{}
	for i := 0; i < n; i++ {
		d.exp = append(d.exp, lb.NewSyncRing(4096))
		d.imp = append(d.imp, lb.NewSyncRing(4096))
	}
	return d
}

func (d *fakeDP) Workers() int                             { return len(d.exp) }
func (d *fakeDP) Rings(i int) (*lb.SyncRing, *lb.SyncRing) { return d.exp[i], d.imp[i] }
func (d *fakeDP) Owner(r *lb.SyncRecord) int               { return int(r.Key.SPort) % len(d.exp) }

func (d *fakeDP) Dump(ctx context.Context, i, start, max int) ([]lb.SyncRecord, int, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if i == 0 && start == 0 {
		d.dumps++
	}
	if i != 0 {
		return nil, -1, nil
	}
	end := min(start+max, len(d.table))
	next := end
	if end == len(d.table) {
		next = -1
	}
	return append([]lb.SyncRecord(nil), d.table[start:end]...), next, nil
}

// imported drains every import ring.
func (d *fakeDP) imported() []lb.SyncRecord {
	var out []lb.SyncRecord
	buf := make([]lb.SyncRecord, 256)
	for _, r := range d.imp {
		for {
			n := r.Pop(buf)
			if n == 0 {
				break
			}
			out = append(out, buf[:n]...)
		}
	}
	return out
}

func rec(i int, kind uint8) lb.SyncRecord {
	r := lb.SyncRecord{Kind: kind, State: lb.StateEstablished, RealPort: 8080, LPort: uint16(2000 + i), MAC: [6]byte{2, 0, 0, 0, 0, 1}}
	r.Key = lb.Key{SPort: uint16(10000 + i), DPort: 80, Proto: 6, Family: lb.FamilyV4}
	copy(r.Key.Src[:], []byte{198, 19, byte(i >> 8), byte(i)})
	copy(r.Key.Dst[:], []byte{198, 18, 1, 10})
	copy(r.Real[:], []byte{198, 18, 1, 11})
	return r
}

func freePort(t *testing.T) netip.AddrPort {
	t.Helper()
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).AddrPort()
}

func pair(t *testing.T) (a, b *Syncer, da, db *fakeDP) {
	t.Helper()
	pa, pb := freePort(t), freePort(t)
	da, db = newFakeDP(2), newFakeDP(3)
	var err error
	if a, err = New(Config{Listen: pa, Peer: pb, Interval: 5 * time.Millisecond, Refresh: -1}, da); err != nil {
		t.Fatal(err)
	}
	if b, err = New(Config{Listen: pb, Peer: pa, Interval: 5 * time.Millisecond, Refresh: -1}, db); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Stop(); b.Stop() })
	return a, b, da, db
}

func eventually(t *testing.T, what string, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(3 * time.Second)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %v", what, err)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// The master streams its exported records; the backup, which asked for a
// resync when it started, gets the master's table first, then the stream,
// each record in the import ring of its owner.
func TestStreamAndResyncOnStart(t *testing.T) {
	a, b, da, db := pair(t)
	for i := 0; i < 10; i++ {
		da.table = append(da.table, rec(1000+i, lb.SyncNew))
	}
	a.SetMaster(true)
	if err := a.Start(); err != nil {
		t.Fatal(err)
	}
	if err := b.Start(); err != nil {
		t.Fatal(err)
	}
	var got []lb.SyncRecord
	eventually(t, "resync at start", func() error {
		got = append(got, db.imported()...)
		if len(got) != 10 {
			return fmt.Errorf("%d records", len(got))
		}
		return nil
	})
	for i := 0; i < 100; i++ {
		r := rec(i, lb.SyncNew)
		da.exp[i%2].Push(&r)
	}
	got = got[:0]
	eventually(t, "stream", func() error {
		got = append(got, db.imported()...)
		if len(got) != 100 {
			return fmt.Errorf("%d records", len(got))
		}
		return nil
	})
	seen := map[uint16]bool{}
	for _, r := range got {
		if r.RealPort != 8080 || r.Kind != lb.SyncNew || r.State != lb.StateEstablished {
			t.Fatalf("record %+v", r)
		}
		seen[r.Key.SPort] = true
	}
	if len(seen) != 100 {
		t.Fatalf("%d distinct records", len(seen))
	}
	sa, sb := a.Stats(), b.Stats()
	if sa.RecordsSent != 110 || sb.RecordsReceived != 110 || sb.Lost != 0 || sa.ResyncsSent != 1 || !sa.Master || sb.Master {
		t.Fatalf("stats a %+v b %+v", sa, sb)
	}
	if want := (100 + MaxRecords - 1) / MaxRecords; sa.DatagramsSent < uint64(want)+1 {
		t.Fatalf("%d datagrams", sa.DatagramsSent)
	}
}

// A gap in the sequence makes the backup ask for a full resync; records
// received while master are ignored; a backup drops its own exports.
func TestLossAndRoles(t *testing.T) {
	a, b, da, db := pair(t)
	da.table = []lb.SyncRecord{rec(1, lb.SyncNew)}
	a.SetMaster(true)
	a.Start()
	b.Start()
	eventually(t, "first resync", func() error {
		if n := len(db.imported()); n != 1 {
			return fmt.Errorf("%d", n)
		}
		return nil
	})
	time.Sleep(1100 * time.Millisecond) // past the resync rate limit
	a.sendMu.Lock()
	a.seq += 3 // three datagrams "lost"
	a.sendMu.Unlock()
	r := rec(2, lb.SyncUpdate)
	da.exp[0].Push(&r)
	eventually(t, "resync after loss", func() error {
		if st := a.Stats(); st.ResyncsSent != 2 {
			return fmt.Errorf("resyncs %d", st.ResyncsSent)
		}
		if st := b.Stats(); st.Lost != 3 {
			return fmt.Errorf("lost %d", st.Lost)
		}
		return nil
	})
	// Both masters (a partition): records are ignored.
	b.SetMaster(true)
	r = rec(3, lb.SyncNew)
	da.exp[1].Push(&r)
	eventually(t, "ignored", func() error {
		if st := b.Stats(); st.Ignored == 0 {
			return fmt.Errorf("none ignored")
		}
		return nil
	})
	// Back to backup: its exports are dropped, it asks again.
	b.SetMaster(false)
	r = rec(4, lb.SyncNew)
	db.exp[0].Push(&r)
	eventually(t, "backup drops its exports", func() error {
		if st := b.Stats(); st.DroppedAsBackup != 1 || st.ResyncsRequested < 2 {
			return fmt.Errorf("%+v", st)
		}
		return nil
	})
}

func TestWire(t *testing.T) {
	r := rec(7, lb.SyncClosed)
	var b [recordLen]byte
	putRecord(b[:], &r)
	var got lb.SyncRecord
	if !parseRecord(b[:], &got) || got != r {
		t.Fatalf("round trip %+v != %+v", got, r)
	}
	b[0] = 5
	if parseRecord(b[:], &got) {
		t.Fatal("bad family accepted")
	}
	putRecord(b[:], &r)
	b[24] = 1 // a non-zero byte past an IPv4 address
	if parseRecord(b[:], &got) {
		t.Fatal("dirty IPv4 address accepted")
	}
	var h [headerLen]byte
	putHeader(h[:], header{typ: typeRecords, count: 2, boot: 9, seq: 3})
	if _, err := parseHeader(h[:]); err == nil {
		t.Fatal("header announcing records it lacks accepted")
	}
	putHeader(h[:], header{typ: typeResync, boot: 9})
	if hh, err := parseHeader(h[:]); err != nil || hh.boot != 9 || hh.typ != typeResync {
		t.Fatalf("%+v %v", hh, err)
	}
	h[0] = 'X'
	if _, err := parseHeader(h[:]); err == nil {
		t.Fatal("bad magic accepted")
	}
}

// A resync request that finds no one listening (the peer not up yet, or
// this node's link down) is repeated until a dump answers it; and a gap
// the master's silence would hide shows with its next heartbeat.
func TestRetriedRequestAndHeartbeat(t *testing.T) {
	a, b, da, db := pair(t)
	for i := 0; i < 5; i++ {
		da.table = append(da.table, rec(i, lb.SyncNew))
	}
	if err := b.Start(); err != nil { // asks a, which is not listening yet
		t.Fatal(err)
	}
	eventually(t, "the request repeated while unanswered", func() error {
		if n := b.Stats().ResyncsRequested; n < 2 {
			return fmt.Errorf("%d requests", n)
		}
		return nil
	})
	a.SetMaster(true)
	if err := a.Start(); err != nil {
		t.Fatal(err)
	}
	var got []lb.SyncRecord
	eventually(t, "the repeated request answered", func() error {
		got = append(got, db.imported()...)
		if len(got) != 5 {
			return fmt.Errorf("%d records imported, %+v", len(got), b.Stats())
		}
		return nil
	})
	// Nothing is asked once the dump came.
	asked := b.Stats().ResyncsRequested
	time.Sleep(RetryInterval + 200*time.Millisecond)
	if st := b.Stats(); st.ResyncsRequested != asked {
		t.Fatalf("requests went on after the dump: %d, then %d", asked, st.ResyncsRequested)
	}
	// Two datagrams lost while a has nothing more to say: its heartbeat
	// shows the gap, and b asks for (and gets) another dump.
	a.sendMu.Lock()
	a.seq += 2
	a.sendMu.Unlock()
	eventually(t, "gap seen through a heartbeat", func() error {
		if st := b.Stats(); st.Lost != 2 {
			return fmt.Errorf("lost %d", st.Lost)
		}
		if st := a.Stats(); st.ResyncsSent != 2 {
			return fmt.Errorf("resyncs sent %d", st.ResyncsSent)
		}
		return nil
	})
}
