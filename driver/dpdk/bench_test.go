//go:build dpdk

package dpdk

import (
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"gvs/driver"
	"gvs/driver/dpdk/internal/rte"
	"gvs/lb"
	"gvs/pmd"
)

// Benchmarks on net_null (one port, rx burst → tx burst on the same port,
// 64-byte frames, one core): the bare poll loop through the binding, the
// same loop in C (reference), and gvs's pipeline on the same port.
// scripts/bench-dpdk.sh runs them beside dpdk-testpmd's io forwarding and
// prints the ratios (make bench-dpdk). Each reports Mpps.

var nullSeq atomic.Int64

// nullPort opens a net_null port with the devargs GVS_BENCH_NULL names
// (default size=64,copy=0; scripts/bench-dpdk.sh sets it), or with args.
func nullPort(b *testing.B, args ...string) *Port {
	b.Helper()
	devargs := os.Getenv("GVS_BENCH_NULL")
	if devargs == "" {
		devargs = "size=64,copy=0"
	}
	if len(args) > 0 {
		devargs = args[0]
	}
	p, err := Open(Config{Name: "bench", Device: fmt.Sprintf("net_null_b%d,%s", nullSeq.Add(1), devargs), Queues: 1, MAC: lbMAC,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { p.Close() })
	return p
}

func reportMpps(b *testing.B, pkts uint64, el time.Duration) {
	b.ReportMetric(float64(pkts)/el.Seconds()/1e6, "Mpps")
	b.ReportMetric(float64(el.Nanoseconds())/float64(pkts), "ns/pkt")
}

// BenchmarkNullBareLoop: Receive → Transmit through the driver.Queue of a
// Port (frame views built per burst, one cgo call per burst each way).
func BenchmarkNullBareLoop(b *testing.B) {
	p := nullPort(b)
	q := p.Queue(0)
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	var fr [driver.BurstSize]driver.Frame
	var pkts uint64
	b.ResetTimer()
	start := time.Now()
	for pkts < uint64(b.N) {
		n, _ := q.Receive(fr[:])
		m, _ := q.Transmit(fr[:n])
		if m < n {
			q.Free(fr[m:n])
		}
		pkts += uint64(m)
	}
	reportMpps(b, pkts, time.Since(start))
}

// BenchmarkNullBareLoopRte: the same loop on the raw binding (no frame
// views).
func BenchmarkNullBareLoopRte(b *testing.B) {
	p := nullPort(b)
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	bu := rte.NewBurst()
	defer bu.Free()
	var pkts uint64
	b.ResetTimer()
	start := time.Now()
	for pkts < uint64(b.N) {
		n := p.id.Rx(0, bu, driver.BurstSize)
		for i := 0; i < n; i++ {
			bu.Set(i, bu.Mbuf(i), bu.Off(i), bu.Len(i))
		}
		m := p.id.Tx(0, bu, n)
		if m < n {
			bu.FreeBulk(0) // not reached on net_null
		}
		pkts += uint64(m)
	}
	reportMpps(b, pkts, time.Since(start))
}

// BenchmarkNullBareLoopC: the loop in C, one cgo call for all of it (the
// ceiling of the binding).
func BenchmarkNullBareLoopC(b *testing.B) {
	p := nullPort(b)
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	bu := rte.NewBurst()
	defer bu.Free()
	b.ResetTimer()
	start := time.Now()
	pkts := p.id.ForwardC(0, p.id, 0, bu, uint64(b.N+driver.BurstSize-1)/driver.BurstSize)
	reportMpps(b, pkts, time.Since(start))
}

// BenchmarkNullBareLoopDescC: the C loop through gvs_rx/gvs_tx (the
// binding's descriptor arrays), without Go.
func BenchmarkNullBareLoopDescC(b *testing.B) {
	p := nullPort(b)
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	bu := rte.NewBurst()
	defer bu.Free()
	b.ResetTimer()
	start := time.Now()
	pkts := p.id.ForwardDescC(0, p.id, 0, bu, uint64(b.N+driver.BurstSize-1)/driver.BurstSize)
	reportMpps(b, pkts, time.Since(start))
}

// BenchmarkMbufAllocFree measures what registering worker threads with EAL
// buys: bulk alloc+free of 32 mbufs from a registered thread (lcore cache)
// and from an unregistered one (the pool's shared ring every time).
func BenchmarkMbufAllocFree(b *testing.B) {
	pl, err := pool(0)
	if err != nil {
		b.Fatal(err)
	}
	for _, registered := range []bool{true, false} {
		b.Run(fmt.Sprintf("registered=%v", registered), func(b *testing.B) {
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			if registered {
				if _, err := rte.RegisterThread(); err != nil {
					b.Fatal(err)
				}
			} else if rte.LcoreID() >= 0 {
				rte.UnregisterThread()
			}
			bu := rte.NewBurst()
			defer bu.Free()
			b.ResetTimer()
			start := time.Now()
			n := pl.AllocFreeLoop(bu, uint64(b.N+driver.BurstSize-1)/driver.BurstSize)
			el := time.Since(start)
			b.ReportMetric(float64(el.Nanoseconds())/float64(n), "ns/mbuf")
		})
	}
}

// prefillPool writes valid frames (TCP ACKs of flows client i → VIP:80)
// into every mbuf of the pool: net_null with copy=0 hands out mbufs as they
// are, so its "received" packets are then real traffic for the pipeline.
func prefillPool(b *testing.B, flows int) {
	b.Helper()
	p, err := pool(0)
	if err != nil {
		b.Fatal(err)
	}
	var tmpl [][]byte
	for i := 0; i < flows; i++ {
		tmpl = append(tmpl, pkt{srcMAC: routerMAC, dstMAC: lbMAC, src: clientIP(i), dst: vip, sport: uint16(1024 + i), dport: 80, ack: true}.bytes(b))
	}
	type held struct {
		bu *rte.Burst
		n  int
	}
	var all []held
	k := 0
	for {
		bu := rte.NewBurst()
		n := p.Alloc(bu, driver.BurstSize)
		for i := 0; i < n; i++ {
			copy(bu.Buf(i)[bu.Off(i):], tmpl[k%flows])
			k++
		}
		all = append(all, held{bu, n})
		if n < driver.BurstSize {
			break
		}
	}
	for _, h := range all {
		h.bu.FreeBulk(h.n)
		h.bu.Free()
	}
	if k < 1024 {
		b.Fatalf("prefilled only %d mbufs", k)
	}
}

// BenchmarkNullPipeline: gvs's pipeline (parse, classify, session lookup,
// dr rewrite, transmit) in a pmd worker polled on the benchmark's locked
// thread, on a net_null port whose mbufs hold 1024 flows to a dr service.
func BenchmarkNullPipeline(b *testing.B) {
	const flows = 1024
	prefillPool(b, flows)
	p := nullPort(b, "size=64,copy=0") // copy=0: the prefilled frames are what it receives
	svc := lb.Service{Proto: lb.ProtoTCP, VIP: vip, Port: 80, Scheduler: "rr", Method: lb.MethodDR}
	hops := map[netip.Addr]lb.NextHop{}
	for i := 0; i < 4; i++ {
		svc.Reals = append(svc.Reals, lb.Real{Addr: realIP(i), Weight: 1})
		hops[realIP(i)] = lb.NextHop{MAC: realMAC(i), OK: true}
	}
	bal := lb.NewBalancer(1, 64)
	if err := bal.Apply(lb.Config{Services: []lb.Service{svc}, NextHops: hops}); err != nil {
		b.Fatal(err)
	}
	eng, err := pmd.New(pmd.Config{Workers: 1, Ports: []driver.Port{p}, Balancer: bal, Sessions: 4 * flows})
	if err != nil {
		b.Fatal(err)
	}
	w := eng.Workers()[0]
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	// Warm up: sessions in, caches warm.
	for i := 0; i < 1000; i++ {
		w.Poll(time.Now().UnixNano())
	}
	before := p.Stats().TxPackets
	b.ResetTimer()
	start := time.Now()
	var pkts uint64
	for pkts < uint64(b.N) {
		pkts += uint64(w.Poll(time.Now().UnixNano()))
	}
	el := time.Since(start)
	b.StopTimer()
	tx := p.Stats().TxPackets - before
	if tx < pkts*9/10 {
		b.Fatalf("pipeline transmitted %d of %d packets (the rest went to the slow path or were dropped)", tx, pkts)
	}
	reportMpps(b, tx, el)
}
