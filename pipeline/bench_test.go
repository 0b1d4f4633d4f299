package pipeline

import (
	"encoding/binary"
	"fmt"
	"testing"

	"gvs/driver"
	"gvs/lb"
)

// benchFlows is the number of flows the established benchmarks cycle over:
// enough that the session table does not fit in the CPU caches.
const benchFlows = 131072

// BenchmarkPipeline measures one packet through parse → classify →
// schedule → rewrite over the mem driver (replayed receive, discarding
// transmit), for every method, for established flows (session hits over
// benchFlows flows) and new flows (every packet a SYN of a new flow).
func BenchmarkPipeline(b *testing.B) {
	for _, m := range methods {
		for _, state := range []string{"established", "new"} {
			for _, v6 := range []bool{false, true} {
				name := fmt.Sprintf("%s/%s/ipv4", m, state)
				if v6 {
					name = fmt.Sprintf("%s/%s/ipv6", m, state)
				}
				b.Run(name, func(b *testing.B) { benchPipeline(b, m, state == "new", v6, benchFlows) })
			}
		}
	}
}

// BenchmarkPipelineCached is BenchmarkPipeline/*/established with 1024
// flows: the session table and the replayed packets stay in the CPU caches,
// so it measures the pipeline's own work without the memory latency that
// dominates the 131072-flow runs.
func BenchmarkPipelineCached(b *testing.B) {
	for _, m := range methods {
		b.Run(m.String(), func(b *testing.B) { benchPipeline(b, m, false, false, 1024) })
	}
}

func benchPipeline(b *testing.B, m lb.Method, fresh, v6 bool, benchFlows int) {
	svc := testService(m, v6, lb.ProtoTCP, "wrr", 8)
	sessions := benchFlows * 4
	e := newEnv(b, sessions, svc)
	q := e.port.MemQueue(0)
	q.SetDiscard(true)

	// Templates: one packet per flow. Established runs first send the
	// SYNs (outside the timer) so every measured packet is a session hit.
	pkts := make([][]byte, benchFlows)
	for i := range pkts {
		pkts[i] = build(b, pktSpec{src: clientAddr(v6, i), dst: svc.VIP, sport: uint16(1024 + i%60000), dport: vipPort, syn: fresh, ack: !fresh, payload: make([]byte, 6)})
	}
	if !fresh {
		syns := make([][]byte, len(pkts))
		for i := range pkts {
			syns[i] = build(b, pktSpec{src: clientAddr(v6, i), dst: svc.VIP, sport: uint16(1024 + i%60000), dport: vipPort, syn: true})
		}
		q.SetReplay(syns)
		var burst [driver.BurstSize]driver.Frame
		for done := 0; done < len(syns); {
			n, _ := q.Receive(burst[:])
			e.out.Reset()
			e.pipe.Process(e.now, burst[:n], e.out)
			free(q, e.out)
			done += n
		}
		if got := e.pipe.Sessions().Len(); got < benchFlows {
			b.Fatalf("only %d sessions after %d SYNs", got, benchFlows)
		}
	}
	q.SetReplay(pkts)
	srcOff := 14 + 12 // IPv4 source address
	if v6 {
		srcOff = 14 + 8 + 12 // last 4 bytes of the IPv6 source
	}
	var burst [driver.BurstSize]driver.Frame
	gen := uint32(0)
	b.ReportAllocs()
	b.ResetTimer()
	done := 0
	for done < b.N {
		if fresh {
			// New flows every time: change the client address of the
			// frames the next Receive copies. Keep the table from
			// filling (outside the timer).
			gen++
			if e.pipe.Sessions().Len() > sessions/2 {
				b.StopTimer()
				e.pipe.Sessions().Flush()
				b.StartTimer()
			}
		}
		n, _ := q.Receive(burst[:])
		if fresh {
			for i := 0; i < n; i++ {
				d := burst[i].Data()
				binary.BigEndian.PutUint32(d[srcOff:], binary.BigEndian.Uint32(d[srcOff:])+gen*0x10000)
			}
		}
		e.out.Reset()
		e.pipe.Process(e.now, burst[:n], e.out)
		free(q, e.out)
		done += n
	}
	b.StopTimer()
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(done), "ns/pkt")
	e.pipe.Publish()
	st := e.pipe.Stats()
	tx := st.Counter(CtrTxPkts)
	if tx == 0 {
		b.Fatalf("nothing forwarded (drops: no_real %d, session_full %d)", st.Drops(DropNoReal), st.Drops(DropSessionFull))
	}
}

// free sends the transmit list (mem discard) and frees everything else.
func free(q interface {
	Transmit([]driver.Frame) (int, error)
	Free([]driver.Frame)
}, out *Output) {
	if len(out.Tx[0]) > 0 {
		q.Transmit(out.Tx[0])
	}
	q.Free(out.Slow)
	q.Free(out.Drop)
	for i := range out.Handover {
		q.Free(out.Handover[i])
	}
}
