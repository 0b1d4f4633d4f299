package pipeline

import (
	"fmt"
	"net"
	"time"

	"gvs/driver"
	"gvs/lb"
)

// Config configures one worker's pipeline.
type Config struct {
	Worker, Workers int
	Balancer        *lb.Balancer
	// Ports lists the driver ports by index (Frame.Port, NextHop.Port):
	// their MACs are the source of rewritten frames, their MTUs bound
	// encapsulation.
	PortMACs []net.HardwareAddr
	PortMTUs []int
	// Sessions is the session table capacity of this worker.
	Sessions int
	// FragSlots is the size of the fragment table (default 1024).
	FragSlots int
	// ExpireBudget is the number of session slots scanned for expiry per
	// burst (default 64): bounded work, the whole table is swept in
	// Cap/ExpireBudget bursts.
	ExpireBudget int
	// PublishEvery is how often counters are published for readers
	// (default 20 ms; the cost is one atomic store per counter of each real).
	PublishEvery time.Duration
	// Export, if set, receives a record of every session this worker
	// creates, every TCP state change and every early removal (session
	// sync, sync.go). The worker is its only producer.
	Export *lb.SyncRing
}

// Output collects where the frames of one Process call go. pmd empties it
// after every call. Every frame given to Process ends in exactly one list.
type Output struct {
	Tx       [][]driver.Frame // by port index
	Slow     []driver.Frame   // not for a VIP: the driver's slow path
	Drop     []driver.Frame   // to free
	Handover [][]driver.Frame // by worker: flows another worker owns
}

// NewOutput makes an Output for the given numbers of ports and workers.
func NewOutput(ports, workers int) *Output {
	o := &Output{Tx: make([][]driver.Frame, ports), Handover: make([][]driver.Frame, workers)}
	for i := range o.Tx {
		o.Tx[i] = make([]driver.Frame, 0, driver.BurstSize)
	}
	for i := range o.Handover {
		o.Handover[i] = make([]driver.Frame, 0, driver.BurstSize)
	}
	o.Slow = make([]driver.Frame, 0, driver.BurstSize)
	o.Drop = make([]driver.Frame, 0, driver.BurstSize)
	return o
}

// Reset empties every list (keeping their memory).
func (o *Output) Reset() {
	for i := range o.Tx {
		o.Tx[i] = o.Tx[i][:0]
	}
	for i := range o.Handover {
		o.Handover[i] = o.Handover[i][:0]
	}
	o.Slow = o.Slow[:0]
	o.Drop = o.Drop[:0]
}

// What the lookup key of a burst slot means.
const (
	kindNone  = iota // dropped, not IP, or nothing to look up
	kindFlow         // TCP/UDP 5-tuple
	kindICMP         // ICMP error: key is its embedded flow, reversed
	kindFrag         // non-first fragment: fragment table
	kindOther        // IP without a flow we balance (ICMP echo, ESP, ...)
)

// zeroKeyHash is the hash of the zero key that stands in for frames without
// a flow in a burst lookup.
var zeroKeyHash = new(lb.Key).Hash()

// Pipeline is one worker's packet processing state.
type Pipeline struct {
	worker, workers int
	bal             *lb.Balancer
	snap            *lb.Snapshot
	gen             uint64
	sched           *lb.WorkerSched
	conns           *lb.ConnCounters
	cw              *lb.WorkerConns // this worker's connection counts
	table           *lb.SessionTable
	frags           fragTable
	macs            [][6]byte
	mtu             []int
	now             int64  // unix ns, one clock read per burst
	sec             uint32 // session clock (unix seconds)
	lport           uint32 // next fullnat local port candidate
	inserted        bool   // a session was inserted in this burst
	expireBudget    int
	publishEvery    int64
	lastPublish     int64
	exp             *lb.SyncRing // session sync export (nil: off)

	ctr     counters
	stats   *Stats
	expired [64]lb.Expired

	pkts   [driver.BurstSize]Packet
	keys   [driver.BurstSize]lb.Key
	hashes [driver.BurstSize]uint64
	hits   [driver.BurstSize]int32
	kinds  [driver.BurstSize]uint8
	verd   [driver.BurstSize]Verdict
}

// New makes a worker's pipeline. The session table is allocated here, once.
func New(cfg Config) (*Pipeline, error) {
	if cfg.Workers < 1 || cfg.Worker < 0 || cfg.Worker >= cfg.Workers || cfg.Workers > 255 {
		return nil, fmt.Errorf("pipeline: worker %d of %d out of range (1..255 workers)", cfg.Worker, cfg.Workers)
	}
	if cfg.Balancer == nil || len(cfg.PortMACs) == 0 || len(cfg.PortMTUs) != len(cfg.PortMACs) {
		return nil, fmt.Errorf("pipeline: need a balancer and the MAC and MTU of every port")
	}
	if cfg.Sessions <= 0 {
		cfg.Sessions = 1 << 16
	}
	if cfg.FragSlots <= 0 {
		cfg.FragSlots = 1024
	}
	if cfg.ExpireBudget <= 0 {
		cfg.ExpireBudget = 64
	}
	if cfg.PublishEvery <= 0 {
		cfg.PublishEvery = 20 * time.Millisecond
	}
	w := &Pipeline{
		worker: cfg.Worker, workers: cfg.Workers, bal: cfg.Balancer,
		conns: cfg.Balancer.Conns(),
		frags: newFragTable(cfg.FragSlots), mtu: cfg.PortMTUs,
		expireBudget: cfg.ExpireBudget, publishEvery: int64(cfg.PublishEvery),
		lport: uint32(1024 + cfg.Worker), exp: cfg.Export,
	}
	for (w.lport % uint32(w.workers)) != uint32(w.worker) {
		w.lport++
	}
	w.sched = lb.NewWorkerSched(cfg.Worker, w.conns, uint64(cfg.Worker)*0x9E3779B97F4A7C15+1)
	w.cw = w.conns.Writer(cfg.Worker)
	w.sched.UseWriter(w.cw)
	snap := cfg.Balancer.Load()
	w.table = lb.NewSessionTable(cfg.Sessions, snap.Timeouts)
	w.macs = make([][6]byte, len(cfg.PortMACs))
	for i, m := range cfg.PortMACs {
		copy(w.macs[i][:], m)
	}
	maxReals := w.conns.MaxReals()
	w.ctr.real = make([][numRealCounters]uint64, maxReals)
	w.stats = newStats(maxReals)
	return w, nil
}

// Stats returns the worker's published counters (any goroutine).
func (w *Pipeline) Stats() *Stats { return w.stats }

// Sessions returns the worker's session table. Only the worker's goroutine
// may use it while the worker runs.
func (w *Pipeline) Sessions() *lb.SessionTable { return w.table }

// Worker returns the worker number.
func (w *Pipeline) Worker() int { return w.worker }

// Process runs one burst through the pipeline. now is the burst's clock
// (unix nanoseconds). Every frame ends up in one list of out.
func (w *Pipeline) Process(now int64, frames []driver.Frame, out *Output) {
	w.refresh()
	w.now = now
	w.sec = uint32(now / int64(time.Second))
	w.inserted = false

	// Stage 1: parse every frame and build its lookup key. Frames without a
	// flow key get the zero key, a certain miss, so the burst stays dense.
	for i := range frames {
		f := &frames[i]
		data := f.Data()
		p := &w.pkts[i]
		v := Parse(data, p)
		w.verd[i] = v
		k := &w.keys[i]
		kind := uint8(kindNone)
		if v == ParsedOK {
			switch {
			case p.Frag == FragMore:
				kind = kindFrag
			case p.Proto == protoTCP || p.Proto == protoUDP:
				kind = kindFlow
				setKey(k, p.Family, p.Proto, p.Src(data), p.Dst(data), p.SPort, p.DPort)
			case p.IsICMPError() && p.InnerL3Off != 0 && (p.InnerProto == protoTCP || p.InnerProto == protoUDP):
				kind = kindICMP
				setKey(k, p.Family, p.InnerProto, p.InnerDst(data), p.InnerSrc(data), p.InnerDPort, p.InnerSPort)
			default:
				kind = kindOther
			}
		}
		w.kinds[i] = kind
		if kind != kindFlow && kind != kindICMP {
			*k = lb.Key{}
			w.hashes[i] = zeroKeyHash
			continue
		}
		w.hashes[i] = k.Hash()
	}
	// Stage 2: look the whole burst up at once so the cache misses overlap.
	n := len(frames)
	w.table.LookupBurst(w.keys[:n], w.hashes[:n], w.hits[:n])
	// Stage 3: per packet, in order.
	for i := range frames {
		w.handle(&frames[i], i, out)
	}
	w.housekeeping(now)
}

func setKey(k *lb.Key, family, proto uint8, src, dst []byte, sport, dport uint16) {
	*k = lb.Key{SPort: sport, DPort: dport, Proto: proto, Family: family}
	copy(k.Src[:], src)
	copy(k.Dst[:], dst)
}

func (w *Pipeline) handle(f *driver.Frame, i int, out *Output) {
	if v := w.verd[i]; v != ParsedOK {
		if v == NotIP {
			w.slow(f, out)
			return
		}
		w.drop(f, dropForVerdict(v), out)
		return
	}
	w.ctr.c[CtrRxPkts]++
	w.ctr.c[CtrRxBytes] += uint64(f.Len)
	p := &w.pkts[i]
	switch w.kinds[i] {
	case kindFlow:
		idx := w.hits[i]
		if idx < 0 && w.inserted {
			idx = w.table.Lookup(&w.keys[i], w.hashes[i])
		}
		w.flow(f, p, &w.keys[i], w.hashes[i], idx, out)
	case kindICMP:
		idx := w.hits[i]
		if idx < 0 && w.inserted {
			idx = w.table.Lookup(&w.keys[i], w.hashes[i])
		}
		w.icmpError(f, p, &w.keys[i], idx, out)
	case kindFrag:
		w.fragment(f, p, out)
	default:
		w.slow(f, out)
	}
}

func (w *Pipeline) slow(f *driver.Frame, out *Output) {
	w.ctr.c[CtrSlowPath]++
	out.Slow = append(out.Slow, *f)
}

func (w *Pipeline) drop(f *driver.Frame, why DropReason, out *Output) {
	w.ctr.drop[why]++
	out.Drop = append(out.Drop, *f)
}

func (w *Pipeline) send(f *driver.Frame, port uint16, out *Output) {
	w.ctr.c[CtrTxPkts]++
	w.ctr.c[CtrTxBytes] += uint64(f.Len)
	out.Tx[port] = append(out.Tx[port], *f)
}

// handover gives a frame to the worker that owns its flow.
func (w *Pipeline) handover(f *driver.Frame, owner int, out *Output) {
	w.ctr.c[CtrHandoverOut]++
	out.Handover[owner] = append(out.Handover[owner], *f)
}

// circulate passes a frame whose flow this worker does not know to the next
// worker; it reports false once every worker has seen it.
func (w *Pipeline) circulate(f *driver.Frame, out *Output) bool {
	if int(f.Hops)+1 >= w.workers {
		return false
	}
	f.Hops++
	w.handover(f, (w.worker+1)%w.workers, out)
	return true
}

// Tick does the per-burst housekeeping (snapshot refresh, session expiry,
// counter publishing) for a worker that received nothing, so idle workers
// still expire sessions.
func (w *Pipeline) Tick(now int64) {
	w.refresh()
	w.now = now
	w.sec = uint32(now / int64(time.Second))
	w.housekeeping(now)
}

// refresh picks up a new snapshot.
func (w *Pipeline) refresh() {
	if snap := w.bal.Load(); snap != w.snap {
		if snap.Gen != w.gen {
			w.sched.Reset(len(snap.Services))
			w.gen = snap.Gen
		}
		w.snap = snap
		*w.table.Timeouts() = snap.Timeouts
	}
}

// housekeeping does the bounded per-burst work: expiry and publishing.
func (w *Pipeline) housekeeping(now int64) {
	n := w.table.Expire(w.sec, w.expireBudget, w.expired[:])
	for i := 0; i < n; i++ {
		e := &w.expired[i]
		if e.Flags&lb.EntryPersist != 0 {
			continue
		}
		w.ctr.c[CtrExpired]++
		if e.State == lb.StateSynSent || e.State == lb.StateSynRecv {
			w.ctr.real[e.RealID][RealSynExpired]++
		}
		w.connsGone(e.RealID, e.State)
	}
	w.cw.Flush()
	if now-w.lastPublish >= w.publishEvery {
		w.Publish()
		w.lastPublish = now
	}
}

// Publish copies the counters for readers. The worker calls it
// periodically; tests call it after Process.
func (w *Pipeline) Publish() {
	n := w.conns.MaxReals()
	if w.snap != nil {
		n = 0
		for i := range w.snap.Reals {
			if id := int(w.snap.Reals[i].ID) + 1; id > n {
				n = id
			}
		}
	}
	w.ctr.c[CtrSessionsLive] = uint64(w.table.Len())
	w.stats.publish(&w.ctr, n)
}

// connsGone adjusts the lc-family counters for a session that ended.
func (w *Pipeline) connsGone(realID uint32, state uint8) {
	if lb.Active(state) {
		w.cw.Add(realID, -1, 0)
	} else {
		w.cw.Add(realID, 0, -1)
	}
}

// connsMoved adjusts the counters after a state change.
func (w *Pipeline) connsMoved(realID uint32, prev, cur uint8) {
	a, b := lb.Active(prev), lb.Active(cur)
	switch {
	case a && !b:
		w.cw.Add(realID, -1, 1)
	case !a && b:
		w.cw.Add(realID, 1, -1)
		if cur == lb.StateEstablished && (prev == lb.StateSynSent || prev == lb.StateSynRecv) {
			w.ctr.real[realID][RealEstablished]++
		}
	}
}
