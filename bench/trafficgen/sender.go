package trafficgen

import (
	"fmt"
	"runtime"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"gvs/driver"
)

// sender is the one transmitting goroutine: Alloc a burst, fill it from the
// templates, stamp, Transmit; paced against the monotonic clock when a rate
// is set. It owns its packetSource; the progress reporter reads only the
// atomic counters.
type sender struct {
	q        driver.Queue
	src      *packetSource
	rate     float64       // packets/s; 0: flat out
	count    uint64        // 0: no bound
	duration time.Duration // 0: no bound
	cpu      int           // -1: not pinned

	stop      atomic.Bool
	sent      atomic.Uint64
	sentClass [NumClasses]atomic.Uint64
	bytes     [NumClasses]atomic.Uint64 // L2 with FCS
	unsent    atomic.Uint64             // built but given back: the driver refused them until the end
	elapsed   atomic.Int64              // ns from the first burst to the end, once done
	pinErr    string
}

// Spin below this much time ahead of schedule, sleep above it: sleeping
// costs tens of µs of timer slack, spinning a CPU.
const spinBelow = 200 * time.Microsecond

// run sends until count, duration or stop; it runs on a locked, pinned
// thread and never returns that thread to the runtime's pool pinned.
func (s *sender) run() error {
	runtime.LockOSThread()
	// The thread stays locked: when the goroutine ends the runtime
	// discards it rather than reuse a thread pinned to one CPU.
	if s.cpu >= 0 {
		var set unix.CPUSet
		set.Set(s.cpu)
		if err := unix.SchedSetaffinity(0, &set); err != nil {
			s.pinErr = fmt.Sprintf("pin sender to CPU %d: %v", s.cpu, err)
		}
	}
	var (
		burst   [driver.BurstSize]driver.Frame
		cls     [driver.BurstSize]uint8
		wire    [driver.BurstSize]int
		rx      [driver.BurstSize]driver.Frame
		made    uint64 // packets built (sent + pending + unsent)
		pending int    // burst[off:off+pending] built, not yet taken by the driver
		off     int
		loops   uint
	)
	need := s.src.maxFrameLen()
	start := time.Now()
	defer func() {
		s.elapsed.Store(int64(time.Since(start)))
		if pending > 0 {
			s.q.Free(burst[off : off+pending])
			s.unsent.Add(uint64(pending))
		}
	}()
	for !s.stop.Load() {
		el := time.Since(start)
		if s.duration > 0 && el >= s.duration {
			return nil
		}
		if loops++; loops%1024 == 0 {
			// Whatever comes back to the sending port (ARP, ICMP
			// errors) would fill its receive ring; the AF_XDP queue
			// also reaps TX completions here.
			if n, _ := s.q.Receive(rx[:]); n > 0 {
				s.q.Free(rx[:n])
			}
		}
		if pending == 0 {
			k := uint64(driver.BurstSize)
			if s.count > 0 {
				if made >= s.count {
					return nil
				}
				k = min(k, s.count-made)
			}
			if s.rate > 0 {
				due := uint64(el.Seconds()*s.rate) + 1
				if due <= made {
					ahead := time.Duration(float64(made)/s.rate*1e9) - el
					if ahead > spinBelow {
						// Bounded so that stop is seen within 10 ms
						// even at a few packets per second.
						time.Sleep(min(ahead-spinBelow/2, 10*time.Millisecond))
					} else {
						// Let the sinks' goroutines have the P.
						runtime.Gosched()
					}
					continue
				}
				k = min(k, due-made)
			}
			n := s.q.Alloc(burst[:k])
			if n == 0 {
				// Pool empty: completions are reaped on Receive.
				if m, _ := s.q.Receive(rx[:]); m > 0 {
					s.q.Free(rx[:m])
				}
				continue
			}
			now := Nanotime()
			for i := 0; i < n; i++ {
				f := &burst[i]
				if len(f.Buf)-f.Off < need {
					s.q.Free(burst[:n])
					return fmt.Errorf("driver frames hold %d bytes, the largest packet needs %d", len(f.Buf)-f.Off, need)
				}
				f.Len, wire[i], cls[i] = s.src.fill(f.Buf[f.Off:], now)
			}
			made += uint64(n)
			pending, off = n, 0
		}
		m, err := s.q.Transmit(burst[off : off+pending])
		if m > 0 {
			var cnt, byt [NumClasses]uint64
			for i := off; i < off+m; i++ {
				cnt[cls[i]]++
				byt[cls[i]] += uint64(wire[i])
			}
			for c := range cnt {
				if cnt[c] > 0 {
					s.sentClass[c].Add(cnt[c])
					s.bytes[c].Add(byt[c])
				}
			}
			s.sent.Add(uint64(m))
			off += m
			pending -= m
		}
		if err != nil {
			return fmt.Errorf("transmit: %w", err)
		}
	}
	return nil
}
