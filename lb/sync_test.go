package lb

import (
	"sync"
	"testing"
)

// One producer and one consumer on two goroutines: every record arrives
// once, in order (run with -race).
func TestSyncRingSPSC(t *testing.T) {
	r := NewSyncRing(64)
	const n = 100000
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; i < n; {
			rec := SyncRecord{LPort: uint16(i), RealPort: uint16(i >> 16)}
			if r.Push(&rec) {
				i++
			}
		}
	}()
	buf := make([]SyncRecord, 16)
	for next := 0; next < n; {
		k := r.Pop(buf)
		for _, rec := range buf[:k] {
			if got := int(rec.LPort) | int(rec.RealPort)<<16; got != next {
				t.Fatalf("record %d, want %d", got, next)
			}
			next++
		}
	}
	wg.Wait()
	if r.Len() != 0 {
		t.Fatalf("%d left", r.Len())
	}
}

func TestSyncRingOverflow(t *testing.T) {
	r := NewSyncRing(3)
	if r.Cap() != 4 {
		t.Fatalf("cap %d", r.Cap())
	}
	for i := 0; i < 6; i++ {
		r.Push(&SyncRecord{State: uint8(i)})
	}
	if r.Len() != 4 || r.Overflows() != 2 {
		t.Fatalf("len %d overflows %d", r.Len(), r.Overflows())
	}
	buf := make([]SyncRecord, 8)
	if n := r.Pop(buf); n != 4 || buf[3].State != 3 {
		t.Fatalf("popped %d, last %d", n, buf[3].State)
	}
}
