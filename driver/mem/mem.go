// Package mem is the in-memory driver of gvs: ports backed by preallocated
// frame memory and in-process rings, used by every unit test and benchmark.
// It is the pure software ceiling of the pipeline.
//
// A port's queue receives from one of two sources: a ring that a test fills
// with Inject (any one goroutine per queue), or a replay list of template
// packets copied into fresh frames on every Receive (benchmarks: a NIC that
// never runs dry). It transmits into a ring that a test empties with Drain,
// into the receive ring of a peer port (NewPair), or into nothing (Discard).
//
// Imports: gvs/driver only.
package mem

import (
	"fmt"
	"net"
	"sync/atomic"

	"gvs/driver"
)

// Config sizes a port. Zero values get defaults.
type Config struct {
	Name      string
	MAC       net.HardwareAddr
	MTU       int // default 1500
	Queues    int // default 1
	Frames    int // frames in the pool, default 4096 per queue
	FrameSize int // bytes per frame including headroom, default 2048
	RingSize  int // slots per RX and TX ring, default 1024
}

func (c *Config) defaults() {
	if c.Name == "" {
		c.Name = "mem0"
	}
	if c.MAC == nil {
		c.MAC = net.HardwareAddr{0x02, 0, 0, 0, 0, 1}
	}
	if c.MTU == 0 {
		c.MTU = 1500
	}
	if c.Queues == 0 {
		c.Queues = 1
	}
	if c.Frames == 0 {
		c.Frames = 4096 * c.Queues
	}
	if c.FrameSize == 0 {
		c.FrameSize = 2048
	}
	if c.RingSize == 0 {
		c.RingSize = 1024
	}
}

// Port is an in-memory port.
type Port struct {
	cfg    Config
	pool   *pool
	queues []*Queue
	closed atomic.Bool
}

var _ driver.Port = (*Port)(nil)

// New makes a port with its own frame pool.
func New(cfg Config) (*Port, error) {
	cfg.defaults()
	if cfg.FrameSize < driver.MinHeadroom+64 {
		return nil, fmt.Errorf("mem port %s: frame size %d leaves no room after %d bytes of headroom", cfg.Name, cfg.FrameSize, driver.MinHeadroom)
	}
	return newPort(cfg, newPool(cfg.Frames, cfg.FrameSize)), nil
}

// NewPair makes two ports that share one frame pool; whatever one transmits
// on queue i the other receives on queue i.
func NewPair(a, b Config) (*Port, *Port, error) {
	a.defaults()
	b.defaults()
	if a.Queues != b.Queues || a.FrameSize != b.FrameSize {
		return nil, nil, fmt.Errorf("mem pair %s/%s: queues and frame sizes must match", a.Name, b.Name)
	}
	p := newPool(a.Frames+b.Frames, a.FrameSize)
	pa, pb := newPort(a, p), newPort(b, p)
	for i := range pa.queues {
		pa.queues[i].peer = pb.queues[i].rx
		pb.queues[i].peer = pa.queues[i].rx
	}
	return pa, pb, nil
}

func newPort(cfg Config, p *pool) *Port {
	port := &Port{cfg: cfg, pool: p}
	for i := 0; i < cfg.Queues; i++ {
		port.queues = append(port.queues, &Queue{port: port, rx: driver.NewRing(cfg.RingSize), tx: driver.NewRing(cfg.RingSize)})
	}
	return port
}

// Name implements driver.Port.
func (p *Port) Name() string { return p.cfg.Name }

// MAC implements driver.Port.
func (p *Port) MAC() net.HardwareAddr { return p.cfg.MAC }

// MTU implements driver.Port.
func (p *Port) MTU() int { return p.cfg.MTU }

// NumQueues implements driver.Port.
func (p *Port) NumQueues() int { return len(p.queues) }

// Queue implements driver.Port.
func (p *Port) Queue(i int) driver.Queue { return p.queues[i] }

// MemQueue returns queue i with its test-side methods.
func (p *Port) MemQueue(i int) *Queue { return p.queues[i] }

// Close implements driver.Port.
func (p *Port) Close() error {
	p.closed.Store(true)
	return nil
}

// Stats implements driver.Port by summing the queues' counters.
func (p *Port) Stats() driver.PortStats {
	var s driver.PortStats
	for _, q := range p.queues {
		s.RxPackets += q.rxPkts.Load()
		s.RxBytes += q.rxBytes.Load()
		s.TxPackets += q.txPkts.Load()
		s.TxBytes += q.txBytes.Load()
		s.RxDropped += q.rxDropped.Load()
		s.TxDropped += q.txDropped.Load()
	}
	return s
}

// FreeFrames is the number of frames in the pool, for leak checks in tests.
func (p *Port) FreeFrames() int { return p.pool.available() }

// Queue is one queue pair of a mem port.
type Queue struct {
	port *Port
	rx   *driver.Ring
	tx   *driver.Ring
	peer *driver.Ring // NewPair: TX goes to the peer's RX ring

	replay   [][]byte // if set, Receive copies these round robin
	replayAt int
	discard  bool

	rxPkts, rxBytes, txPkts, txBytes, rxDropped, txDropped atomic.Uint64
}

// Receive implements driver.Queue.
func (q *Queue) Receive(frames []driver.Frame) (int, error) {
	if q.port.closed.Load() {
		return 0, driver.ErrClosed
	}
	var n int
	if q.replay != nil {
		n = q.port.pool.alloc(frames)
		bytes := 0
		for i := 0; i < n; i++ {
			t := q.replay[q.replayAt]
			q.replayAt++
			if q.replayAt == len(q.replay) {
				q.replayAt = 0
			}
			f := &frames[i]
			f.Len = copy(f.Buf[f.Off:], t)
			bytes += f.Len
		}
		q.rxBytes.Add(uint64(bytes))
	} else {
		n = q.rx.Pop(frames)
		bytes := 0
		for i := 0; i < n; i++ {
			bytes += frames[i].Len
		}
		q.rxBytes.Add(uint64(bytes))
	}
	q.rxPkts.Add(uint64(n))
	return n, nil
}

// Transmit implements driver.Queue.
func (q *Queue) Transmit(frames []driver.Frame) (int, error) {
	if q.port.closed.Load() {
		return 0, driver.ErrClosed
	}
	bytes := 0
	for i := range frames {
		bytes += frames[i].Len
	}
	var n int
	switch {
	case q.discard:
		q.port.pool.release(frames)
		n = len(frames)
	case q.peer != nil:
		n = q.peer.Push(frames)
	default:
		n = q.tx.Push(frames)
	}
	if n < len(frames) {
		q.txDropped.Add(uint64(len(frames) - n))
		for i := n; i < len(frames); i++ {
			bytes -= frames[i].Len
		}
	}
	q.txPkts.Add(uint64(n))
	q.txBytes.Add(uint64(bytes))
	return n, nil
}

// Free implements driver.Queue.
func (q *Queue) Free(frames []driver.Frame) { q.port.pool.release(frames) }

// Alloc implements driver.Queue.
func (q *Queue) Alloc(frames []driver.Frame) int { return q.port.pool.alloc(frames) }

// SetReplay makes Receive copy the given packets round robin into fresh
// frames instead of reading the receive ring. Call before the queue's worker
// starts.
func (q *Queue) SetReplay(pkts [][]byte) { q.replay, q.replayAt = pkts, 0 }

// SetDiscard makes Transmit count and free frames instead of queueing them.
// Call before the queue's worker starts.
func (q *Queue) SetDiscard(on bool) { q.discard = on }

// Inject copies packets into fresh frames and queues them for Receive. One
// goroutine per queue may inject. It returns how many packets were queued;
// the rest are counted as RX drops (pool or ring exhausted), as a NIC would.
func (q *Queue) Inject(pkts ...[]byte) int {
	var burst [driver.BurstSize]driver.Frame
	done := 0
	for done < len(pkts) {
		chunk := pkts[done:]
		if len(chunk) > len(burst) {
			chunk = chunk[:len(burst)]
		}
		n := q.port.pool.alloc(burst[:len(chunk)])
		for i := 0; i < n; i++ {
			burst[i].Len = copy(burst[i].Buf[burst[i].Off:], chunk[i])
		}
		m := q.rx.Push(burst[:n])
		if m < n {
			q.port.pool.release(burst[m:n])
		}
		done += m
		if m < len(chunk) {
			break
		}
	}
	q.rxDropped.Add(uint64(len(pkts) - done))
	return done
}

// Drain takes up to max transmitted frames off the transmit ring (max <= 0:
// all), calls fn with each packet's bytes (valid only during the call) and
// frees the frames. It returns how many it took. One goroutine may drain.
func (q *Queue) Drain(max int, fn func(pkt []byte)) int {
	var burst [driver.BurstSize]driver.Frame
	total := 0
	for max <= 0 || total < max {
		want := len(burst)
		if max > 0 && max-total < want {
			want = max - total
		}
		n := q.tx.Pop(burst[:want])
		if n == 0 {
			break
		}
		for i := 0; i < n; i++ {
			if fn != nil {
				fn(burst[i].Data())
			}
		}
		q.port.pool.release(burst[:n])
		total += n
	}
	return total
}

// Pending returns the number of frames waiting in the receive ring and in
// the transmit ring.
func (q *Queue) Pending() (rx, tx int) { return q.rx.Len(), q.tx.Len() }
