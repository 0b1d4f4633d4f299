// Package vethbench measures forwarded packet rates over one veth pair,
// for gvs and for bare baselines, as ratios measured in the same run.
//
// Two network namespaces created for the run (named gvsbench-<pid>-gen and
// gvsbench-<pid>-dut, removed at the end, also on error or Ctrl-C) are
// joined by a veth pair. A generator in the first sends prebuilt 64-byte
// IPv4/UDP frames over many flows (source ports) to a VIP as fast as it can,
// from one thread pinned to one CPU; each device under test (DUT) in the
// second sends every frame back, and the generator side counts what
// returns with an XDP program (no kernel stack involved). DUTs, in order:
//
//	xdp-tx           a bare XDP program: swap MACs, XDP_TX
//	afxdp-reflector  a bare Go reflector over driver/afxdp
//	gvs-afxdp        lb.Balancer + pmd (1 worker) over driver/afxdp, one DR
//	                 service whose real's next hop is the generator's MAC
//	gvs-afpacket     the same over driver/afpacket
//
// Each result is the returned rate over a fixed window after a warm-up,
// and its ratio to xdp-tx and afxdp-reflector of the same run.
//
// veth does its work on the sending CPU: the DUT's XDP program and AF_XDP
// redirect run in the generator's softirq, and the generator side's counter
// runs on the DUT's CPU. xdp-tx thus runs entirely on the generator's CPU.
//
// The package is the first piece of the trafficgen work: the topology,
// generator and DUT runners are separate so other benches can reuse them.
package vethbench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// ErrNotRoot is returned by Run without root.
var ErrNotRoot = errors.New("gvs-bench needs root (network namespaces, XDP programs, AF_XDP and AF_PACKET sockets): run it with sudo")

// Options configure a run. Zero values get defaults.
type Options struct {
	Warmup   time.Duration // default 1 s
	Duration time.Duration // measured window per DUT, default 3 s
	Flows    int           // default 1024
	Size     int           // frame size incl. FCS, default 64
	DUTs     []string      // default: all, in run order
	// Rounds is how often every DUT runs, alternated (A B C A B C …);
	// the report's summary is the median of the rounds. Default 3.
	Rounds int
	// Generator is GenAFXDP (default: it gave more for every DUT on the
	// project's machines) or GenAFPacket.
	Generator string
	// GenCPU and DUTCPU pin the generator thread and the DUT worker; -1
	// picks the first two CPUs the process may use. Set both to pin.
	GenCPU, DUTCPU int
	Progress       io.Writer    // one line per second per DUT; nil: none
	Log            *slog.Logger // driver logs; default: warnings to stderr
}

func (o *Options) defaults() error {
	if o.Warmup == 0 {
		o.Warmup = time.Second
	}
	if o.Duration == 0 {
		o.Duration = 3 * time.Second
	}
	if o.Flows == 0 {
		o.Flows = 1024
	}
	if o.Rounds == 0 {
		o.Rounds = 3
	}
	if o.Size == 0 {
		o.Size = MinFrameSize
	}
	if len(o.DUTs) == 0 {
		o.DUTs = append([]string(nil), DUTNames...)
	}
	if o.Generator == "" {
		o.Generator = GenAFXDP
	}
	if o.Log == nil {
		o.Log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	if o.Progress == nil {
		o.Progress = io.Discard
	}
	switch {
	case o.Rounds < 1 || o.Rounds > 20:
		return fmt.Errorf("rounds %d: want 1..20", o.Rounds)
	case o.Warmup < 0 || o.Warmup > time.Minute:
		return fmt.Errorf("warm-up %v: want 0..1m", o.Warmup)
	case o.Duration < 100*time.Millisecond || o.Duration > 10*time.Minute:
		return fmt.Errorf("duration %v: want 100ms..10m", o.Duration)
	case o.Generator != GenAFPacket && o.Generator != GenAFXDP:
		return fmt.Errorf("generator %q: want %s or %s", o.Generator, GenAFPacket, GenAFXDP)
	}
	for _, d := range o.DUTs {
		if _, err := NewDUT(d, o.Flows, o.Log); err != nil {
			return err
		}
	}
	return nil
}

// Run builds the topology, runs every DUT in turn and tears everything
// down. On cancellation it stops at once, cleans up, and returns the
// results so far with ctx's error.
func Run(ctx context.Context, o Options) (*Report, error) {
	if os.Geteuid() != 0 {
		return nil, ErrNotRoot
	}
	if err := o.defaults(); err != nil {
		return nil, err
	}
	frames, err := BuildFrames(FrameSpec{SrcMAC: GenMAC, DstMAC: DUTMAC, Src: GenAddr, Dst: VIP, DstPort: VIPPort, Flows: o.Flows, Size: o.Size})
	if err != nil {
		return nil, err
	}
	genCPU, dutCPU, ncpu := PickCPUs()
	if o.GenCPU >= 0 && o.DUTCPU >= 0 {
		genCPU, dutCPU = o.GenCPU, o.DUTCPU
	}
	rep := &Report{
		Bench: "veth", Kernel: kernelRelease(), CPUs: ncpu, GenCPU: genCPU, DUTCPU: dutCPU,
		LoadBefore: loadAvg(), FrameSize: o.Size, Flows: o.Flows,
		WarmupSeconds: o.Warmup.Seconds(), DurationSeconds: o.Duration.Seconds(), Rounds: o.Rounds,
	}
	if genCPU == dutCPU {
		rep.Notes = append(rep.Notes, "generator and DUT share one CPU: the rates measure both together")
	}

	topo, err := NewTopology()
	if err != nil {
		return nil, err
	}
	defer topo.Close()
	gen, err := OpenGenerator(o.Generator, topo, frames, o.Log)
	if err != nil {
		return nil, fmt.Errorf("generator %s: %w", o.Generator, err)
	}
	defer gen.Close()
	rep.Generator, rep.GeneratorDetail = gen.Kind(), gen.Describe()

	for round := 1; round <= o.Rounds; round++ {
		for i, name := range o.DUTs {
			if ctx.Err() != nil {
				break
			}
			if i > 0 || round > 1 {
				sleepCtx(ctx, 200*time.Millisecond) // let the previous DUT's frames drain
			}
			res := runDUT(ctx, topo, gen, name, round, genCPU, dutCPU, &o)
			rep.Results = append(rep.Results, res)
		}
	}
	if s := gen.PinError(); s != "" {
		rep.Notes = append(rep.Notes, "generator: "+s)
	}
	rep.ComputeRatios()
	rep.LoadAfter = loadAvg()
	if err := gen.Close(); err != nil {
		rep.Notes = append(rep.Notes, "close generator: "+err.Error())
	}
	if err := topo.Close(); err != nil {
		rep.Notes = append(rep.Notes, "remove namespaces: "+err.Error())
	}
	return rep, ctx.Err()
}

// sample is one reading of the generator's counters.
type sample struct {
	at       time.Time
	sent, rx uint64
}

func takeSample(gen *Generator) (sample, error) {
	rx, err := gen.Returned()
	return sample{at: time.Now(), sent: gen.Sent(), rx: rx}, err
}

func mpps(n uint64, d time.Duration) float64 {
	if d <= 0 {
		return 0
	}
	return float64(n) / d.Seconds() / 1e6
}

// runDUT measures one DUT: start it, start the generator, warm up, measure
// over o.Duration, stop both. Every wait is bounded in time.
func runDUT(ctx context.Context, topo *Topology, gen *Generator, name string, round, genCPU, dutCPU int, o *Options) (res Result) {
	res = Result{Name: name, Round: round, What: dutDescriptions[name]}
	d, err := NewDUT(name, o.Flows, o.Log)
	if err != nil {
		res.Error = err.Error()
		return res
	}
	if err := d.Start(topo, dutCPU); err != nil {
		res.Error = "start: " + err.Error()
		d.Stop()
		return res
	}
	stopped := false
	stopAll := func() {
		if stopped {
			return
		}
		stopped = true
		if err := gen.Stop(); err != nil && res.Error == "" {
			res.Error = err.Error()
		}
		time.Sleep(50 * time.Millisecond) // frames in flight
		if err := d.Stop(); err != nil && res.Error == "" {
			res.Error = "stop: " + err.Error()
		}
		res.Detail = d.Detail()
	}
	defer stopAll()

	first, err := takeSample(gen)
	if err != nil {
		res.Error = "read counters: " + err.Error()
		return res
	}
	gen.Start(genCPU)
	begin := time.Now()
	measureAt := begin.Add(o.Warmup)
	var start sample
	var cpuStart cpuSnap
	measuring := o.Warmup == 0
	if measuring {
		start, cpuStart = first, takeCPUSnap()
	}
	last := first
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	warm := time.NewTimer(o.Warmup)
	defer warm.Stop()
	end := time.NewTimer(o.Warmup + o.Duration)
	defer end.Stop()
	progress := func(s sample) {
		phase := "warm-up"
		if measuring {
			phase = fmt.Sprintf("%4.1f/%.1f s", s.at.Sub(measureAt).Seconds(), o.Duration.Seconds())
		}
		dt := s.at.Sub(last.at)
		fmt.Fprintf(o.Progress, "  [round %d/%d %-15s] %-11s tx %6.3f Mpps  rx %6.3f Mpps\n", round, o.Rounds, name, phase, mpps(s.sent-last.sent, dt), mpps(s.rx-last.rx, dt))
		last = s
	}
	for {
		select {
		case <-ctx.Done():
			res.Error = "interrupted"
			return res
		case <-tick.C:
			s, err := takeSample(gen)
			if err != nil {
				res.Error = "read counters: " + err.Error()
				return res
			}
			progress(s)
		case <-warm.C:
			if !measuring {
				s, err := takeSample(gen)
				if err != nil {
					res.Error = "read counters: " + err.Error()
					return res
				}
				start, measuring = s, true
				cpuStart = takeCPUSnap()
			}
		case <-end.C:
			s, err := takeSample(gen)
			if err != nil {
				res.Error = "read counters: " + err.Error()
				return res
			}
			cpuEnd := takeCPUSnap()
			if !measuring { // timers fired together: measure from the first sample
				start, cpuStart = first, cpuEnd
			}
			load := cpuLoadBetween(cpuStart, cpuEnd)
			res.CPU = &load
			el := s.at.Sub(start.at)
			res.Seconds = el.Seconds()
			res.TxPackets, res.RxPackets = s.sent-start.sent, s.rx-start.rx
			res.TxMpps, res.RxMpps = mpps(res.TxPackets, el), mpps(res.RxPackets, el)
			stopAll()
			if res.Error == "" && res.RxPackets == 0 {
				res.Error = "no frames came back"
			}
			return res
		}
	}
}

func sleepCtx(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return ""
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return ""
	}
	return strings.Join(f[:3], " ")
}

func kernelRelease() string {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return ""
	}
	return unix.ByteSliceToString(u.Release[:])
}
