package afpacket

import (
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"gvs/driver"
)

// BenchmarkAFPacket measures a gvs-style reflector on a veth pair: a second
// afpacket port on the peer end generates 64-byte frames (64 flows) as fast
// as it can; the port under test receives them and transmits them back. It
// reports the reflected rate (rx+tx through the driver, pps) and what the
// generator offered and got back. On 2 shared vCPUs the generator and the
// reflector compete for the same cores (veth processes a frame on the
// sending CPU), so read the numbers as a lower bound.
func BenchmarkAFPacket(b *testing.B) {
	n := newTestNet(b, 1)
	port := n.open(Config{})
	gen := n.openIf(Config{Interface: peerIf})

	var templates [][]byte
	for i := 0; i < 64; i++ {
		f := testFrame(gvsMAC, peerMAC, i, 64)
		templates = append(templates, f)
	}
	var offered, back atomic.Uint64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		runtime.LockOSThread()
		q := gen.Queue(0)
		var tx, rx [driver.BurstSize]driver.Frame
		next := 0
		for {
			select {
			case <-stop:
				return
			default:
			}
			k := q.Alloc(tx[:])
			for i := 0; i < k; i++ {
				tx[i].Len = copy(tx[i].Buf[tx[i].Off:], templates[next])
				next = (next + 1) % len(templates)
			}
			m, _ := q.Transmit(tx[:k])
			q.Free(tx[m:k])
			offered.Add(uint64(m))
			r, _ := q.Receive(rx[:])
			q.Free(rx[:r])
			back.Add(uint64(r))
			if m == 0 && r == 0 {
				runtime.Gosched()
			}
		}
	}()

	q := port.Queue(0)
	var burst [driver.BurstSize]driver.Frame
	b.ResetTimer()
	start := time.Now()
	deadline := start.Add(60 * time.Second)
	got := 0
	for got < b.N {
		k, _ := q.Receive(burst[:])
		if k == 0 {
			if time.Now().After(deadline) {
				b.Fatalf("only %d of %d packets reflected within 60 s", got, b.N)
			}
			runtime.Gosched()
			continue
		}
		m, _ := q.Transmit(burst[:k])
		q.Free(burst[m:k])
		got += k
	}
	el := time.Since(start)
	b.StopTimer()
	close(stop)
	wg.Wait()
	b.ReportMetric(float64(got)/el.Seconds(), "reflected-pps")
	b.ReportMetric(float64(offered.Load())/el.Seconds(), "offered-pps")
	b.ReportMetric(float64(back.Load())/el.Seconds(), "returned-pps")
	st, c := port.Stats(), port.Counters()
	b.Logf("N=%d port stats %+v kernel drops %d tx ring full %d", b.N, st, c.KernelDrops, c.TxRingFull)
}
