package trafficgen

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"gvs/driver"
)

// stamped returns a frame of class c, flow, seq, sent at ts.
func stamped(t testing.TB, ps *packetSource, flow int, seq uint32, ts uint64) []byte {
	t.Helper()
	buf := make([]byte, ps.maxFrameLen())
	ps.next, ps.seq[flow] = flow, seq
	n, _, _ := ps.fill(buf, ts)
	return buf[:n]
}

func TestReceiverAccounting(t *testing.T) {
	o := testOptions()
	o.Family, o.Proto, o.Flows = "4", "udp:1,ack:1", 4 // flows 0, 2: udp4; 1, 3: ack4
	ps, err := newPacketSource(&o, testSrcMAC, testDstMAC)
	if err != nil {
		t.Fatal(err)
	}
	type pkt struct {
		flow int
		seq  uint32
	}
	// Flow 0: 0 1 3 2 2 5 4 0 100 30 (30 is more than 64 behind 100: a
	// late packet, not known as a duplicate), 7 sent and never received
	// counts as nothing here (loss is Sent minus received).
	// Flow 1: 5 5 5 6 (first packet need not be 0).
	// Flow 3: 10 9 8 (each lower than the highest: two reorders).
	order := []pkt{
		{0, 0}, {0, 1}, {1, 5}, {0, 3}, {0, 2}, {0, 2}, {1, 5}, {0, 5}, {3, 10}, {0, 4}, {1, 5}, {0, 0},
		{3, 9}, {1, 6}, {0, 100}, {0, 30}, {3, 8},
	}
	r := NewReceiver(o.Flows)
	var frames []driver.Frame
	now := uint64(10_000_000)
	for i, p := range order {
		b := stamped(t, ps, p.flow, p.seq, now-uint64(i+1)*1000)
		frames = append(frames, driver.Frame{Buf: b, Len: len(b)})
	}
	// Foreign: ARP-like, an IPv4 frame without stamp, a stamp for flow 9
	// (the receiver knows 4 flows), a truncated stamped frame.
	// Flow 2 stays silent.
	arp := make([]byte, 60)
	arp[12], arp[13] = 0x08, 0x06
	plain := slices.Clone(frames[0].Buf)
	plain[len(plain)-StampLen] ^= 0xff
	o9 := o
	o9.Flows = 10
	ps9, _ := newPacketSource(&o9, testSrcMAC, testDstMAC)
	f9 := stamped(t, ps9, 9, 0, 1)
	frames = append(frames, driver.Frame{Buf: arp, Len: len(arp)}, driver.Frame{Buf: plain, Len: len(plain)},
		driver.Frame{Buf: f9, Len: len(f9)}, driver.Frame{Buf: frames[0].Buf, Len: 30})
	r.Process(frames, now)

	udp, ack := r.Class[classOf(protoUDP, 4)], r.Class[classOf(protoACK, 4)]
	// flow 0: 10 packets; dups: 2 (2nd), 0 (2nd); reorders: 2, 4, 30
	if udp.Received != 10 || udp.Duplicates != 2 || udp.Reordered != 3 {
		t.Errorf("udp4: received %d dup %d reorder %d, want 10 2 3", udp.Received, udp.Duplicates, udp.Reordered)
	}
	// flow 1: 5 5 5 6: dup 2; flow 3: 10 9 8: reorder 2
	if ack.Received != 7 || ack.Duplicates != 2 || ack.Reordered != 2 {
		t.Errorf("ack4: received %d dup %d reorder %d, want 7 2 2", ack.Received, ack.Duplicates, ack.Reordered)
	}
	if r.Foreign != 4 || r.Total() != 17 {
		t.Errorf("foreign %d total %d, want 4 17", r.Foreign, r.Total())
	}
	if udp.Latency.N != 10 || udp.Latency.Min != 1000 || ack.Latency.Max != 17000 {
		t.Errorf("latency: n %d min %d, ack max %d", udp.Latency.N, udp.Latency.Min, ack.Latency.Max)
	}
	if udp.Bytes != 10*64 {
		t.Errorf("udp4 bytes %d, want %d", udp.Bytes, 10*64)
	}

	var m Receiver
	m.Merge(r)
	m.Merge(r)
	if m.Class[0].Received != 20 || m.Class[0].Latency.N != 20 || m.Foreign != 8 || m.Total() != 34 {
		t.Errorf("merge: %d %d %d %d", m.Class[0].Received, m.Class[0].Latency.N, m.Foreign, m.Total())
	}
}

func TestHistogramIndex(t *testing.T) {
	for _, v := range []uint64{0, 1, 255, 256, 257, 511, 512, 1000, 123456789, 1 << 35, 1<<36 - 1} {
		i := histIndex(v)
		if lo, w := histLow(i), histWidth(i); v < lo || v >= lo+w {
			t.Errorf("%d: bucket %d is [%d, %d)", v, i, lo, lo+w)
		}
		if w := histWidth(i); v >= 256 && float64(w)/float64(v) > 1.0/128 {
			t.Errorf("%d: bucket width %d", v, w)
		}
	}
	if histIndex(1<<40) != histBuckets-1 {
		t.Error("overflow not in the last bucket")
	}
}

func TestHistogramQuantiles(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	dists := map[string]func() float64{
		"uniform 1µs..10ms": func() float64 { return 1e3 + rng.Float64()*(1e7-1e3) },
		"exponential 50µs":  func() float64 { return rng.ExpFloat64() * 5e4 },
		"lognormal":         func() float64 { return math.Exp(rng.NormFloat64()*1.5 + 12) },
	}
	for name, gen := range dists {
		var h, h1, h2 Histogram
		vals := make([]float64, 200000)
		for i := range vals {
			vals[i] = gen()
			h.Record(uint64(vals[i]))
			if i%2 == 0 {
				h1.Record(uint64(vals[i]))
			} else {
				h2.Record(uint64(vals[i]))
			}
		}
		h1.Merge(&h2)
		slices.Sort(vals)
		for _, q := range []float64{0.5, 0.9, 0.99, 0.999} {
			exact := vals[int(math.Ceil(q*float64(len(vals))))-1]
			got := float64(h.Quantile(q))
			if math.Abs(got-exact)/exact > 0.01 {
				t.Errorf("%s: q%.3f = %.0f, exact %.0f", name, q, got, exact)
			}
			if h1.Quantile(q) != h.Quantile(q) {
				t.Errorf("%s: merged q%.3f = %v, whole %v", name, q, h1.Quantile(q), h.Quantile(q))
			}
		}
		if h.N != uint64(len(vals)) || h1.N != h.N || h.Min != uint64(vals[0]) || h.Max != uint64(vals[len(vals)-1]) {
			t.Errorf("%s: n %d/%d min %d max %d", name, h.N, h1.N, h.Min, h.Max)
		}
		cdf := h.CDF()
		if len(cdf) == 0 || cdf[len(cdf)-1].Fraction != 1 {
			t.Errorf("%s: CDF ends at %v", name, cdf[len(cdf)-1])
		}
	}
	var e Histogram
	if e.Quantile(0.5) != 0 || e.Mean() != 0 {
		t.Error("empty histogram")
	}
	e.Record(uint64(3 * time.Millisecond))
	if e.Quantile(0.999) != 3*time.Millisecond {
		t.Errorf("single value: %v", e.Quantile(0.999))
	}
}

func TestReceiveAllocs(t *testing.T) {
	o := testOptions()
	o.Flows = 64
	ps, _ := newPacketSource(&o, testSrcMAC, testDstMAC)
	var frames [driver.BurstSize]driver.Frame
	for i := range frames {
		b := stamped(t, ps, i, uint32(i), 1)
		frames[i] = driver.Frame{Buf: b, Len: len(b)}
	}
	r := NewReceiver(o.Flows)
	if a := testing.AllocsPerRun(100, func() { r.Process(frames[:], 1000) }); a != 0 {
		t.Fatalf("%v allocations per burst", a)
	}
}
