package mem

import (
	"bytes"
	"sync"
	"testing"

	"gvs/driver"
)

func TestInjectReceiveTransmitDrain(t *testing.T) {
	p, err := New(Config{Frames: 64, RingSize: 16})
	if err != nil {
		t.Fatal(err)
	}
	q := p.MemQueue(0)
	free0 := p.FreeFrames()
	if n := q.Inject([]byte("one"), []byte("two")); n != 2 {
		t.Fatalf("Inject = %d, want 2", n)
	}
	var burst [driver.BurstSize]driver.Frame
	n, err := q.Receive(burst[:])
	if err != nil || n != 2 {
		t.Fatalf("Receive = %d, %v; want 2", n, err)
	}
	if string(burst[0].Data()) != "one" || string(burst[1].Data()) != "two" {
		t.Fatalf("got %q %q", burst[0].Data(), burst[1].Data())
	}
	if burst[0].Off < driver.MinHeadroom {
		t.Fatalf("headroom %d < %d", burst[0].Off, driver.MinHeadroom)
	}
	// Use headroom, then send.
	h := burst[0].Prepend(4)
	copy(h, "hdr:")
	if m, _ := q.Transmit(burst[:1]); m != 1 {
		t.Fatalf("Transmit = %d", m)
	}
	q.Free(burst[1:2])
	var got [][]byte
	q.Drain(0, func(b []byte) { got = append(got, append([]byte(nil), b...)) })
	if len(got) != 1 || string(got[0]) != "hdr:one" {
		t.Fatalf("drained %q", got)
	}
	if p.FreeFrames() != free0 {
		t.Fatalf("leaked frames: %d free, want %d", p.FreeFrames(), free0)
	}
	s := p.Stats()
	if s.RxPackets != 2 || s.TxPackets != 1 || s.TxBytes != 7 {
		t.Fatalf("stats %+v", s)
	}
}

func TestRingFullCountsDrops(t *testing.T) {
	p, _ := New(Config{Frames: 64, RingSize: 4})
	q := p.MemQueue(0)
	pkts := make([][]byte, 10)
	for i := range pkts {
		pkts[i] = []byte{byte(i)}
	}
	if n := q.Inject(pkts...); n != 4 {
		t.Fatalf("Inject into 4-slot ring = %d", n)
	}
	if d := p.Stats().RxDropped; d != 6 {
		t.Fatalf("RxDropped = %d, want 6", d)
	}
	if p.FreeFrames() != 60 {
		t.Fatalf("free = %d, want 60", p.FreeFrames())
	}
}

func TestPairCrossesFrames(t *testing.T) {
	a, b, err := NewPair(Config{Name: "a", Queues: 2}, Config{Name: "b", Queues: 2})
	if err != nil {
		t.Fatal(err)
	}
	qa := a.MemQueue(1)
	var burst [4]driver.Frame
	n := qa.Alloc(burst[:2])
	for i := 0; i < n; i++ {
		burst[i].Len = copy(burst[i].Buf[burst[i].Off:], []byte{0xaa, byte(i)})
	}
	if m, _ := qa.Transmit(burst[:n]); m != 2 {
		t.Fatalf("Transmit = %d", m)
	}
	m, _ := b.MemQueue(1).Receive(burst[:])
	if m != 2 || !bytes.Equal(burst[1].Data(), []byte{0xaa, 1}) {
		t.Fatalf("peer got %d frames", m)
	}
	if m0, _ := b.MemQueue(0).Receive(burst[:]); m0 != 0 {
		t.Fatalf("queue 0 got %d frames", m0)
	}
}

func TestReplay(t *testing.T) {
	p, _ := New(Config{})
	q := p.MemQueue(0)
	q.SetReplay([][]byte{{1}, {2}, {3}})
	q.SetDiscard(true)
	var burst [5]driver.Frame
	n, _ := q.Receive(burst[:])
	if n != 5 || burst[3].Data()[0] != 1 || burst[4].Data()[0] != 2 {
		t.Fatalf("replay order wrong")
	}
	q.Transmit(burst[:n])
	if p.FreeFrames() != 4096 {
		t.Fatalf("discard leaked frames")
	}
}

// Producer and consumer on different goroutines; the race detector checks
// the ring's memory ordering.
func TestConcurrentInjectReceive(t *testing.T) {
	p, _ := New(Config{Frames: 256, RingSize: 64})
	q := p.MemQueue(0)
	const total = 20000
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		sent := 0
		for sent < total {
			b := []byte{byte(sent), byte(sent >> 8), byte(sent >> 16)}
			if q.Inject(b) == 1 {
				sent++
			}
		}
	}()
	var burst [driver.BurstSize]driver.Frame
	next := 0
	for next < total {
		n, _ := q.Receive(burst[:])
		for i := 0; i < n; i++ {
			d := burst[i].Data()
			v := int(d[0]) | int(d[1])<<8 | int(d[2])<<16
			if v != next {
				t.Fatalf("got packet %d, want %d", v, next)
			}
			next++
		}
		q.Free(burst[:n])
	}
	wg.Wait()
}
