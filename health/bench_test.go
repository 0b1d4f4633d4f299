package health

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"gvs/lb"
	"gvs/tests/lab"
)

var (
	benchTargets  = flag.Int("health.targets", 10000, "targets of the Manager benchmarks")
	benchDuration = flag.Duration("health.benchtime", 3*time.Second, "measured time of the Manager benchmarks (after 1.5s of warm-up)")
	benchKind     = flag.String("health.kind", KindTCP, "check kind of BenchmarkManagerReal: tcp, tcp-halfopen or http")
	benchNetns    = flag.Bool("health.netns", false, "BenchmarkManagerReal: probe from this process through Options.Netns (locked threads)")
	loadKind      = flag.String("health.load", "", "internal: run TestProbeLoad with checks of this kind")
	acceptorAddr  = flag.String("health.acceptor", "", "internal: run TestAcceptor as a server on this address")
)

// okChecker passes at once: the Manager's own cost.
type okChecker struct{}

func (okChecker) Check(context.Context) Result { return Result{OK: true, Reason: "ok"} }
func (okChecker) String() string               { return "ok" }

func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// load is what a measurement saw.
type load struct {
	Targets, Up        int
	CPU, Wall          float64 // seconds
	Runs, Failed, Late uint64
}

func (l load) report(b *testing.B) {
	b.ReportMetric(l.CPU/l.Wall, "cpu-s/s")
	b.ReportMetric(float64(l.Runs)/l.Wall, "probes/s")
	b.ReportMetric(float64(l.Failed)/l.Wall, "failed/s")
	b.ReportMetric(float64(l.Late)/l.Wall, "late/s")
	b.ReportMetric(l.CPU*1e6/float64(l.Runs), "cpu-µs/probe")
	b.Logf("%d targets, %d up; %.0f probes/s; CPU %.3f s per s of wall clock", l.Targets, l.Up, float64(l.Runs)/l.Wall, l.CPU/l.Wall)
	if l.Up != l.Targets {
		b.Errorf("%d of %d targets up", l.Up, l.Targets)
	}
}

// measure runs a Manager with ts for the warm-up and the measured time and
// returns the CPU time of this process over the measured time.
func measure(opts Options, ts []Target) (load, error) {
	opts.Logger = slog.New(slog.DiscardHandler)
	m := New(opts)
	if err := m.Set(ts); err != nil {
		return load{}, err
	}
	if err := m.Start(); err != nil {
		return load{}, err
	}
	defer m.Stop()
	time.Sleep(1500 * time.Millisecond) // warm-up: the first round and the schedule spreading out
	s0, c0, t0 := m.Stats(), cpuTime(), time.Now()
	time.Sleep(*benchDuration) // the measurement window
	s1, c1, t1 := m.Stats(), cpuTime(), time.Now()
	l := load{
		Targets: len(ts), CPU: (c1 - c0).Seconds(), Wall: t1.Sub(t0).Seconds(),
		Runs: s1.Runs - s0.Runs, Failed: s1.Failed - s0.Failed, Late: s1.Late - s0.Late,
	}
	for _, s := range m.Status() {
		if s.Up {
			l.Up++
		}
	}
	return l, nil
}

// BenchmarkManagerFake is the Manager's own cost: 10,000 targets at a 1 s
// interval (10% jitter) whose checker returns at once.
func BenchmarkManagerFake(b *testing.B) {
	ts := make([]Target, *benchTargets)
	base := netip.MustParseAddr("198.18.64.0")
	for i := range ts {
		a := addrPlus(base, i)
		ts[i] = Target{Key: lb.RealKey{Service: svc, Addr: a, Port: 80}, Chain: []Check{{Kind: KindTCP, Interval: time.Second}}}
	}
	for b.Loop() {
		l, err := measure(Options{NewChecker: func(Check, Target) (Checker, error) { return okChecker{}, nil }}, ts)
		if err != nil {
			b.Fatal(err)
		}
		l.report(b)
	}
}

// BenchmarkManagerReal is the cost of real probes: 10,000 targets at a 1 s
// interval, each a distinct address of a /18 that a server namespace holds
// on lo, probed over a veth by a Manager in a process of its own running
// in the prober namespace (as gvsd would: no Options.Netns, so no locked
// threads). The server accepts and answers in another process; only the
// prober process's CPU time is counted — which includes the kernel's work
// for both ends of each connection that veth does in the sender's context.
func BenchmarkManagerReal(b *testing.B) {
	l := lab.New(b)
	prober, real := l.NS("prober"), l.NS("real")
	l.Veth(prober, "eth0", real, "eth0")
	prober.Addr("eth0", proberV4+"/24")
	real.Addr("eth0", realV4+"/24")
	real.Addr("lo", "198.18.64.0/18") // every address of the /18 is local
	prober.Route("198.18.64.0/18", realV4)
	real.Start(os.Args[0], "-test.run=^TestAcceptor$", "-health.acceptor=0.0.0.0:80")
	prober.WaitTCP("198.18.64.1:80", 10*time.Second)
	if *benchNetns {
		for b.Loop() {
			l, err := measure(Options{Netns: prober.Path()}, loadTargets(*benchKind))
			if err != nil {
				b.Fatal(err)
			}
			l.report(b)
		}
		return
	}
	for b.Loop() {
		out, err := prober.Run(os.Args[0], "-test.run=^TestProbeLoad$", "-test.v",
			"-health.load="+*benchKind, fmt.Sprintf("-health.targets=%d", *benchTargets), "-health.benchtime="+benchDuration.String())
		if err != nil {
			b.Fatalf("prober process: %v\n%s", err, out)
		}
		_, res, ok := strings.Cut(out, "LOAD ")
		res, _, _ = strings.Cut(res, "\n")
		var l load
		if !ok || json.Unmarshal([]byte(res), &l) != nil {
			b.Fatalf("prober process said:\n%s", out)
		}
		l.report(b)
	}
}

// TestProbeLoad is the prober process of BenchmarkManagerReal: it checks
// the /18 from inside the prober namespace and prints the load as JSON. It
// skips unless -health.load names a kind.
func TestProbeLoad(t *testing.T) {
	if *loadKind == "" {
		t.Skip("helper process of BenchmarkManagerReal")
	}
	l, err := measure(Options{}, loadTargets(*loadKind))
	if err != nil {
		t.Fatal(err)
	}
	j, _ := json.Marshal(l)
	fmt.Printf("LOAD %s\n", j)
}

// loadTargets are the targets of BenchmarkManagerReal: one check of kind
// per address of the /18, port 80, every second.
func loadTargets(kind string) []Target {
	ts := make([]Target, *benchTargets)
	base := netip.MustParseAddr("198.18.64.0")
	for i := range ts {
		a := addrPlus(base, i+1)
		ts[i] = Target{Key: lb.RealKey{Service: svc, Addr: a, Port: 80}, Chain: []Check{{Kind: kind, Interval: time.Second, Fall: 1000}}}
	}
	return ts
}

func addrPlus(a netip.Addr, n int) netip.Addr {
	b := a.As4()
	v := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3]) + uint32(n)
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}

// TestAcceptor is the server process of BenchmarkManagerReal: it accepts
// connections and answers a minimal HTTP response to whatever arrives
// (tcp checks close before reading it), until killed. It skips unless
// -health.acceptor is given.
func TestAcceptor(t *testing.T) {
	if *acceptorAddr == "" {
		t.Skip("helper process of BenchmarkManagerReal")
	}
	l, err := net.Listen("tcp", *acceptorAddr)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Println("listening on", l.Addr())
	resp := []byte("HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
	for {
		c, err := l.Accept()
		if err != nil {
			t.Fatal(err)
		}
		go func() {
			defer c.Close()
			c.SetDeadline(time.Now().Add(5 * time.Second))
			buf := make([]byte, 512)
			if n, _ := c.Read(buf); n > 0 {
				c.Write(resp)
			}
		}()
	}
}
