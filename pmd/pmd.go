// Package pmd runs the poll-mode workers of gvs: one goroutine per worker,
// locked to an OS thread and pinned to a CPU, that loops receive burst →
// pipeline → transmit burst, with an idle back-off (spin, yield, sleep),
// per-worker counters and a clean stop.
//
// Workers hand packets of flows they do not own to the owning worker through
// single-producer single-consumer rings (one per ordered pair of workers);
// see pipeline for the ownership rules.
//
// Imports: gvs/pipeline, gvs/lb, gvs/driver.
package pmd

import (
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"gvs/driver"
	"gvs/lb"
	"gvs/pipeline"
)

// Idle configures the back-off of a worker that receives nothing: it polls
// Spin more times at full speed, then yields the thread Yield more times,
// then sleeps, doubling from 1 µs up to Sleep, until a packet arrives.
type Idle struct {
	Spin  int
	Yield int
	Sleep time.Duration
}

// DefaultIdle spins briefly and sleeps at most 200 µs: a few µs of added
// latency on an idle worker against a core left free.
var DefaultIdle = Idle{Spin: 256, Yield: 64, Sleep: 200 * time.Microsecond}

// SlowPath receives the frames the pipeline does not handle (not for a VIP:
// ARP, the host's own traffic). It runs on the worker's goroutine, owns the
// frames and must transmit or free them through q.
type SlowPath func(worker int, port int, q driver.Queue, frames []driver.Frame)

// Config configures an Engine.
type Config struct {
	Workers  int
	CPUs     []int // worker i is pinned to CPUs[i % len(CPUs)]; empty: not pinned
	Ports    []driver.Port
	Balancer *lb.Balancer
	Sessions int // session table capacity per worker
	Idle     Idle
	SlowPath SlowPath // nil: such frames are freed and counted
	RingSize int      // hand-over ring slots (default 1024)
	// SyncRing, when > 0, gives every worker two session sync rings of
	// that many records (sync.go): the pipeline exports into one, the
	// worker imports from the other between bursts.
	SyncRing int
	Pipeline pipeline.Config
}

// Engine owns the workers.
type Engine struct {
	cfg     Config
	workers []*Worker
	stop    atomic.Bool
	wg      sync.WaitGroup
	runMu   sync.Mutex // guards started (session dumps read it)
	started bool
}

// Worker is one poll-mode worker.
type Worker struct {
	id     int
	cpu    int
	e      *Engine
	pipe   *pipeline.Pipeline
	queues []driver.Queue // by port: the queue this worker transmits and frees on
	rx     []rxQueue      // every queue this worker polls
	in     []*driver.Ring // from every other worker (nil for itself)
	out    []*driver.Ring // to every other worker
	outs   *pipeline.Output
	burst  [driver.BurstSize]driver.Frame
	scr    [driver.BurstSize]driver.Frame

	// Counters written by this worker only, read by anyone.
	loops, idleLoops, handoverIn, handoverDrops, txDrops, slowFreed atomic.Uint64
	pinErr                                                          atomic.Value

	// Session dumps (dump.go): the pending request, checked once per loop
	// iteration; requests are served one at a time; exited is set once the
	// worker's goroutine no longer touches its session table.
	dump   atomic.Pointer[dumpReq]
	dumpMu sync.Mutex
	exited atomic.Bool

	// Session sync (sync.go); nil rings: off.
	exp, imp *lb.SyncRing
	impBuf   []lb.SyncRecord
	syncSt   syncCounters
}

// rxQueue is a queue a worker polls and the port it belongs to.
type rxQueue struct {
	port int
	q    driver.Queue
}

// New builds the workers: one pipeline (with its session table) each, and
// the hand-over rings. Worker i transmits on queue i of every port and polls
// queues i, i+workers, i+2·workers, ... (a device may have more queues than
// there are workers).
func New(cfg Config) (*Engine, error) {
	if cfg.Workers < 1 {
		return nil, errors.New("pmd: need at least one worker")
	}
	if len(cfg.Ports) == 0 {
		return nil, errors.New("pmd: need at least one port")
	}
	for _, p := range cfg.Ports {
		if p.NumQueues() < cfg.Workers {
			return nil, fmt.Errorf("pmd: port %s has %d queues, %d workers need one each", p.Name(), p.NumQueues(), cfg.Workers)
		}
	}
	if cfg.Idle == (Idle{}) {
		cfg.Idle = DefaultIdle
	}
	if cfg.RingSize == 0 {
		cfg.RingSize = 1024
	}
	e := &Engine{cfg: cfg}
	for i := 0; i < cfg.Workers; i++ {
		pc := cfg.Pipeline
		pc.Worker, pc.Workers, pc.Balancer = i, cfg.Workers, cfg.Balancer
		if pc.Sessions == 0 {
			pc.Sessions = cfg.Sessions
		}
		pc.PortMACs, pc.PortMTUs = nil, nil
		for _, p := range cfg.Ports {
			pc.PortMACs = append(pc.PortMACs, p.MAC())
			pc.PortMTUs = append(pc.PortMTUs, p.MTU())
		}
		var exp, imp *lb.SyncRing
		if cfg.SyncRing > 0 {
			exp, imp = lb.NewSyncRing(cfg.SyncRing), lb.NewSyncRing(cfg.SyncRing)
			pc.Export = exp
		}
		pipe, err := pipeline.New(pc)
		if err != nil {
			return nil, err
		}
		w := &Worker{id: i, cpu: -1, e: e, pipe: pipe, outs: pipeline.NewOutput(len(cfg.Ports), cfg.Workers), exp: exp, imp: imp}
		if imp != nil {
			w.impBuf = make([]lb.SyncRecord, ImportBudgetIdle)
		}
		if len(cfg.CPUs) > 0 {
			w.cpu = cfg.CPUs[i%len(cfg.CPUs)]
		}
		for pi, p := range cfg.Ports {
			w.queues = append(w.queues, p.Queue(i))
			for q := i; q < p.NumQueues(); q += cfg.Workers {
				w.rx = append(w.rx, rxQueue{port: pi, q: p.Queue(q)})
			}
		}
		w.in = make([]*driver.Ring, cfg.Workers)
		w.out = make([]*driver.Ring, cfg.Workers)
		e.workers = append(e.workers, w)
	}
	for i, a := range e.workers {
		for j, b := range e.workers {
			if i != j {
				r := driver.NewRing(cfg.RingSize)
				a.out[j], b.in[i] = r, r
			}
		}
	}
	return e, nil
}

// Workers returns the workers.
func (e *Engine) Workers() []*Worker { return e.workers }

// Start starts every worker.
func (e *Engine) Start() {
	e.runMu.Lock()
	defer e.runMu.Unlock()
	if e.started {
		return
	}
	e.started = true
	for _, w := range e.workers {
		e.wg.Add(1)
		go w.run()
	}
}

// Stop stops the workers, waits for them, publishes their final counters
// and frees every frame still in a hand-over ring. The pipelines' session
// tables stay readable afterwards. Stop may be called more than once.
func (e *Engine) Stop() {
	e.stop.Store(true)
	e.wg.Wait()
	for _, w := range e.workers {
		w.pipe.Publish()
		for _, r := range w.in {
			if r == nil {
				continue
			}
			for {
				n := r.Pop(w.burst[:])
				if n == 0 {
					break
				}
				w.freeByPort(w.burst[:n])
			}
		}
	}
}

// Pipeline returns worker i's pipeline (its counters, its session table
// once stopped).
func (w *Worker) Pipeline() *pipeline.Pipeline { return w.pipe }

// ID returns the worker number.
func (w *Worker) ID() int { return w.id }

// WorkerStats are a worker's loop counters.
type WorkerStats struct {
	Loops, IdleLoops          uint64
	HandoverIn, HandoverDrops uint64
	TxDrops, SlowFreed        uint64
	HandoverDepth             int // frames waiting in this worker's incoming rings
	PinError                  string
}

// Stats returns the worker's loop counters.
func (w *Worker) Stats() WorkerStats {
	s := WorkerStats{
		Loops: w.loops.Load(), IdleLoops: w.idleLoops.Load(),
		HandoverIn: w.handoverIn.Load(), HandoverDrops: w.handoverDrops.Load(),
		TxDrops: w.txDrops.Load(), SlowFreed: w.slowFreed.Load(),
	}
	for _, r := range w.in {
		if r != nil {
			s.HandoverDepth += r.Len()
		}
	}
	if v, ok := w.pinErr.Load().(string); ok {
		s.PinError = v
	}
	return s
}

func (w *Worker) run() {
	defer w.e.wg.Done()
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if w.cpu >= 0 {
		var set unix.CPUSet
		set.Set(w.cpu)
		if err := unix.SchedSetaffinity(0, &set); err != nil {
			w.pinErr.Store(fmt.Sprintf("pin worker %d to CPU %d: %v", w.id, w.cpu, err))
		}
	}
	idle := w.e.cfg.Idle
	empty := 0
	sleep := time.Microsecond
	for !w.e.stop.Load() {
		now := time.Now().UnixNano()
		got := w.poll(now)
		w.loops.Add(1)
		if r := w.dump.Load(); r != nil {
			budget := DumpBudget
			if got == 0 {
				budget = DumpBudgetIdle
			}
			w.serveDump(r, budget)
		}
		if w.imp != nil && w.imp.Len() > 0 {
			w.importSync(now, got == 0)
		}
		if got > 0 {
			empty, sleep = 0, time.Microsecond
			continue
		}
		w.idleLoops.Add(1)
		w.pipe.Tick(now)
		empty++
		switch {
		case empty <= idle.Spin:
		case empty <= idle.Spin+idle.Yield:
			runtime.Gosched()
		default:
			time.Sleep(sleep)
			if sleep < idle.Sleep {
				sleep *= 2
				if sleep > idle.Sleep {
					sleep = idle.Sleep
				}
			}
		}
	}
	// Last look at the session table: finish a pending dump, then let
	// readers at it directly.
	if r := w.dump.Load(); r != nil {
		w.serveDump(r, -1)
	}
	w.exited.Store(true)
}

// poll does one round: a burst from every port queue and from every
// incoming hand-over ring. It returns how many frames it processed.
func (w *Worker) poll(now int64) int {
	got := 0
	for _, rq := range w.rx {
		n, err := rq.q.Receive(w.burst[:])
		if err != nil || n == 0 {
			continue
		}
		for i := 0; i < n; i++ {
			w.burst[i].Port = uint16(rq.port)
			w.burst[i].Hops = 0
		}
		w.process(now, w.burst[:n])
		got += n
	}
	for _, r := range w.in {
		if r == nil {
			continue
		}
		n := r.Pop(w.burst[:])
		if n == 0 {
			continue
		}
		w.handoverIn.Add(uint64(n))
		w.process(now, w.burst[:n])
		got += n
	}
	return got
}

// Poll runs one round on the caller's goroutine, for tests and benchmarks
// that drive a worker without starting it (queued session sync records are
// installed too). It returns how many frames it processed.
func (w *Worker) Poll(now int64) int {
	n := w.poll(now)
	if w.imp != nil && w.imp.Len() > 0 {
		w.importSync(now, n == 0)
	}
	return n
}

func (w *Worker) process(now int64, frames []driver.Frame) {
	out := w.outs
	out.Reset()
	w.pipe.Process(now, frames, out)
	for pi, tx := range out.Tx {
		if len(tx) > 0 {
			w.transmit(pi, tx)
		}
	}
	for j, h := range out.Handover {
		if len(h) == 0 {
			continue
		}
		m := w.out[j].Push(h)
		if m < len(h) {
			w.handoverDrops.Add(uint64(len(h) - m))
			w.freeByPort(h[m:])
		}
	}
	if len(out.Slow) > 0 {
		if sp := w.e.cfg.SlowPath; sp != nil {
			w.slowByPort(sp, out.Slow)
		} else {
			w.slowFreed.Add(uint64(len(out.Slow)))
			w.freeByPort(out.Slow)
		}
	}
	if len(out.Drop) > 0 {
		w.freeByPort(out.Drop)
	}
}

// transmit sends frames on port pi. Frames received on another port are
// copied into the port's own memory first (two-arm setups).
func (w *Worker) transmit(pi int, frames []driver.Frame) {
	q := w.queues[pi]
	for i := range frames {
		if int(frames[i].Port) != pi {
			w.copyToPort(pi, &frames[i])
		}
	}
	n, _ := q.Transmit(frames)
	if n < len(frames) {
		w.txDrops.Add(uint64(len(frames) - n))
		q.Free(frames[n:])
	}
}

// copyToPort replaces f (a frame of another port) by a copy in port pi's
// memory, freeing the original. If pi has no free frame, f stays and the
// driver sees a foreign frame; drivers that share memory (mem pairs) accept
// it, the others count it as a TX drop.
func (w *Worker) copyToPort(pi int, f *driver.Frame) {
	var nf [1]driver.Frame
	if w.queues[pi].Alloc(nf[:]) != 1 {
		return
	}
	nf[0].Len = copy(nf[0].Buf[nf[0].Off:], f.Data())
	nf[0].Port = uint16(pi)
	one := [1]driver.Frame{*f}
	w.queues[f.Port].Free(one[:])
	*f = nf[0]
}

// freeByPort gives frames back to the queues of the ports they came from.
func (w *Worker) freeByPort(frames []driver.Frame) {
	for pi, q := range w.queues {
		n := 0
		for i := range frames {
			if int(frames[i].Port) == pi {
				w.scr[n] = frames[i]
				n++
			}
		}
		if n > 0 {
			q.Free(w.scr[:n])
		}
	}
}

func (w *Worker) slowByPort(sp SlowPath, frames []driver.Frame) {
	for pi, q := range w.queues {
		n := 0
		for i := range frames {
			if int(frames[i].Port) == pi {
				w.scr[n] = frames[i]
				n++
			}
		}
		if n > 0 {
			sp(w.id, pi, q, w.scr[:n])
		}
	}
}
