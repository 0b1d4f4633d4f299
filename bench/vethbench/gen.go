package vethbench

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"runtime"
	"sync/atomic"

	"golang.org/x/sys/unix"

	"gvs/driver"
	"gvs/driver/afpacket"
	"gvs/driver/afxdp"
)

// Generator kinds.
const (
	GenAFPacket = "afpacket" // AF_PACKET TX ring (driver/afpacket) + a count-and-drop XDP program
	GenAFXDP    = "afxdp"    // AF_XDP (driver/afxdp); returns counted by its steering program
)

// Generator sends prebuilt frames into the generator veth as fast as it
// can, from one thread pinned to a CPU, and counts the frames that come
// back on the same veth without the kernel stack (an XDP program).
type Generator struct {
	kind   string
	port   driver.Port
	q      driver.Queue
	frames [][]byte
	batch  int
	// drainEvery: Receive (and free) on the queue every n loops; 0: never.
	drainEvery int
	returned   func() (uint64, error)
	closers    []io.Closer

	stop    atomic.Bool
	done    chan error
	sent    atomic.Uint64
	next    int
	pinErr  atomic.Value
	running bool
}

// OpenGenerator opens a generator of the given kind on the topology's
// generator veth.
func OpenGenerator(kind string, t *Topology, frames [][]byte, log *slog.Logger) (_ *Generator, err error) {
	g := &Generator{kind: kind, frames: frames}
	defer func() {
		if err != nil {
			g.Close()
		}
	}()
	switch kind {
	case GenAFPacket:
		ctr, err := attachCounter(t.Gen, t.GenIndex)
		if err != nil {
			return nil, err
		}
		g.closers = append(g.closers, ctr)
		g.returned = ctr.count
		var p *afpacket.Port
		err = t.Gen.Do(func() (err error) {
			p, err = afpacket.Open(afpacket.Config{Interface: t.GenIf, TxFrames: 4096})
			return err
		})
		if err != nil {
			return nil, err
		}
		// The AF_PACKET socket sees only what the counter passes (not
		// IPv4/UDP): drain it now and then.
		g.port, g.batch, g.drainEvery = p, 256, 1024
	case GenAFXDP:
		var p *afxdp.Port
		err := t.Gen.Do(func() (err error) {
			p, err = afxdp.Open(afxdp.Config{Interface: t.GenIf, Logger: log, TxSize: 2048, CompSize: 2048, Frames: 4096})
			return err
		})
		if err != nil {
			return nil, err
		}
		// The steering program matches the frames coming back and counts
		// them exactly, then redirects them to the generator's socket. The
		// generator never receives from it: once its RX ring is full the
		// redirect fails before copying (on veth it runs on the CPU that
		// sent the frame back, the DUT's), so counting costs the DUT
		// little. Transmit reaps the TX completions itself.
		g.port, g.batch, g.drainEvery = p, 64, 0
		rules := []driver.SteerRule{{Kind: driver.SteerService, Proto: 17, Addr: VIP, Port: VIPPort}}
		for _, b := range Backends { // what nftables DNATs back
			rules = append(rules, driver.SteerRule{Kind: driver.SteerService, Proto: 17, Addr: b, Port: VIPPort})
		}
		if err := p.SetSteering(rules); err != nil {
			return nil, err
		}
		g.returned = func() (uint64, error) {
			m, _, err := p.ProgramStats()
			return m, err
		}
	default:
		return nil, fmt.Errorf("unknown generator %q (want %s or %s)", kind, GenAFPacket, GenAFXDP)
	}
	g.q = g.port.Queue(0)
	return g, nil
}

// Kind is GenAFPacket or GenAFXDP.
func (g *Generator) Kind() string { return g.kind }

// Start starts transmitting from a thread pinned to cpu (-1: not pinned).
func (g *Generator) Start(cpu int) {
	if g.running {
		return
	}
	g.running = true
	g.stop.Store(false)
	g.done = make(chan error, 1)
	go func() { g.done <- g.loop(cpu) }()
}

// Stop stops transmitting and waits for the sending thread.
func (g *Generator) Stop() error {
	if !g.running {
		return nil
	}
	g.running = false
	g.stop.Store(true)
	return <-g.done
}

// Sent is the number of frames handed to the kernel so far.
func (g *Generator) Sent() uint64 { return g.sent.Load() }

// Returned is the number of IPv4/UDP frames received back so far.
func (g *Generator) Returned() (uint64, error) { return g.returned() }

// PinError says why the sending thread could not be pinned ("" if it was).
func (g *Generator) PinError() string {
	s, _ := g.pinErr.Load().(string)
	return s
}

// Describe says how the generator sends, for the report.
func (g *Generator) Describe() string {
	switch g.kind {
	case GenAFPacket:
		return "AF_PACKET TX ring (driver/afpacket), returns counted by an XDP count-and-drop program"
	case GenAFXDP:
		return "AF_XDP copy mode (driver/afxdp); returns counted by its steering program, never received"
	}
	return g.kind
}

func (g *Generator) loop(cpu int) error {
	runtime.LockOSThread()
	// The thread is left locked (and pinned) when the loop returns: the
	// runtime then discards it instead of reusing a pinned thread.
	if cpu >= 0 {
		if err := pinThread(cpu); err != nil {
			g.pinErr.Store(err.Error())
		}
	}
	q := g.q
	burst := make([]driver.Frame, g.batch)
	var rx [driver.BurstSize]driver.Frame
	nf := len(g.frames)
	next := g.next
	var loops int
	for !g.stop.Load() {
		k := q.Alloc(burst)
		for i := 0; i < k; i++ {
			f := &burst[i]
			f.Len = copy(f.Buf[f.Off:], g.frames[next])
			if next++; next == nf {
				next = 0
			}
		}
		if k > 0 {
			m, err := q.Transmit(burst[:k])
			if m < k {
				q.Free(burst[m:k])
			}
			if err != nil {
				return fmt.Errorf("generator transmit: %w", err)
			}
			g.sent.Add(uint64(m))
		}
		if loops++; g.drainEvery > 0 && loops%g.drainEvery == 0 {
			for j := 0; j < 8; j++ {
				n, err := q.Receive(rx[:])
				if n > 0 {
					q.Free(rx[:n])
				}
				if err != nil {
					return fmt.Errorf("generator receive: %w", err)
				}
				if n < len(rx) {
					break
				}
			}
		}
	}
	g.next = next
	return nil
}

// Close closes the port and detaches the XDP programs.
func (g *Generator) Close() error {
	g.Stop()
	var errs []error
	if g.port != nil {
		errs = append(errs, g.port.Close())
		g.port = nil
	}
	for i := len(g.closers) - 1; i >= 0; i-- {
		errs = append(errs, g.closers[i].Close())
	}
	g.closers = nil
	return errors.Join(errs...)
}

// pinThread pins the calling thread (which must be locked) to cpu.
func pinThread(cpu int) error {
	var set unix.CPUSet
	set.Set(cpu)
	if err := unix.SchedSetaffinity(0, &set); err != nil {
		return fmt.Errorf("pin thread to CPU %d: %w", cpu, err)
	}
	return nil
}

// PickCPUs returns the CPUs for the generator and the DUT: the first two
// this process may run on (the same one twice on a single-CPU machine), and
// how many there are.
func PickCPUs() (gen, dut, n int) {
	var set unix.CPUSet
	if err := unix.SchedGetaffinity(0, &set); err != nil {
		return 0, min(1, runtime.NumCPU()-1), runtime.NumCPU()
	}
	var cpus []int
	for i := 0; i < 1024 && len(cpus) < set.Count(); i++ {
		if set.IsSet(i) {
			cpus = append(cpus, i)
		}
	}
	if len(cpus) == 0 {
		return 0, 0, 1
	}
	if len(cpus) == 1 {
		return cpus[0], cpus[0], 1
	}
	return cpus[0], cpus[1], len(cpus)
}
