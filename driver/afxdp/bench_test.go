package afxdp

import (
	"net/netip"
	"testing"
	"time"

	"gvs/driver"
)

// BenchmarkAFXDP measures round trips over a veth pair with gvs's driver on
// both ends: a generator port on the peer transmits 64-byte UDP frames, the
// port under test receives them (RX) and sends them back unchanged (TX),
// and the generator receives them again. One goroutine drives all three
// steps, so on veth (which does its work on the sending CPU) the number is
// the single-core rx+tx rate of the driver in copy mode. Reported: pps of
// completed round trips (each one RX and one TX of the port under test).
func BenchmarkAFXDP(b *testing.B) {
	tp := newTopo(b, topoOpts{noPeerX: true})
	port := tp.mustOpen(Config{})
	var gen *Port
	err := inNS(tp.nsB, func() error {
		var err error
		gen, err = Open(Config{Interface: tp.ifB, Logger: port.cfg.Logger})
		return err
	})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { gen.Close() })
	rule := []driver.SteerRule{{Kind: driver.SteerService, Proto: 17, Addr: ipA4, Port: 9}}
	if err := port.SetSteering(rule); err != nil {
		b.Fatal(err)
	}
	if err := gen.SetSteering(rule); err != nil {
		b.Fatal(err)
	}
	tmpl := pkt{srcMAC: tp.macB, dstMAC: tp.macA}.udp(netip.AddrPortFrom(ipB4, 1000), netip.AddrPortFrom(ipA4, 9), make([]byte, 18))
	gq, pq := gen.XSKQueue(0), port.XSKQueue(0)

	const window = 512 // frames in flight
	var burst, rburst [driver.BurstSize]driver.Frame
	sent, back := 0, 0
	lastProgress := time.Now()
	b.ResetTimer()
	start := time.Now()
	for back < b.N {
		if want := min(driver.BurstSize, b.N-sent, window-(sent-back)); want > 0 {
			k := gq.Alloc(burst[:want])
			for i := 0; i < k; i++ {
				burst[i].Len = copy(burst[i].Buf[burst[i].Off:], tmpl)
			}
			m, _ := gq.Transmit(burst[:k])
			gq.Free(burst[m:k])
			sent += m
		}
		n, _ := pq.Receive(rburst[:])
		m, _ := pq.Transmit(rburst[:n])
		pq.Free(rburst[m:n])
		n, _ = gq.Receive(burst[:])
		gq.Free(burst[:n])
		back += n
		if n > 0 {
			lastProgress = time.Now()
		} else if time.Since(lastProgress) > time.Second {
			// Frames lost on the way: count them and refill the window.
			b.Logf("lost %d frames in flight", sent-back)
			sent = back
			lastProgress = time.Now()
		}
	}
	el := time.Since(start)
	b.StopTimer()
	b.ReportMetric(float64(back)/el.Seconds(), "roundtrips/s")
	st := port.Stats()
	b.Logf("N=%d port stats %+v, tx budget %d, rx kicks %d, tx kicks %d", b.N, st, pq.txBudget, pq.rxKicks.Load(), pq.txKicks.Load())
}
